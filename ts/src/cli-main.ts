/**
 * The `t5-web` command (entry point: cli.ts). Kept separate from the entry so tests can call
 * {@link main} with their own streams.
 */

import { T5WebError } from "./errors.js";
import { pipeline } from "./pipeline.js";

/** Model used when `--model` is not given: a directory (relative to the package root) or a URL. */
export const DEFAULT_MODEL = "test/fixtures/tiny-t5";

export const USAGE = `Usage: t5-web run [--model <dir|url>] [--max-new-tokens N] [--input TEXT]...

Runs text2text generation with a T5 checkpoint in the Hugging Face layout (config.json,
model.safetensors or a sharded index, tokenizer.json).

Commands:
  run                    generate one output line per input

Options:
  --model <dir|url>      model directory or base URL (default: ${DEFAULT_MODEL})
  --max-new-tokens N     tokens to generate per input (default: the model's generation config)
  --input TEXT           input text (repeatable); without it, one input per line of stdin
  --truncate             truncate inputs longer than the tokenizer's model_max_length
  -h, --help             show this help
`;

export interface CliIO {
  stdin: AsyncIterable<string | Uint8Array>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

class UsageError extends Error {}

interface RunArgs {
  model: string;
  maxNewTokens: number | undefined;
  inputs: string[];
  truncate: boolean;
}

function parseArgs(argv: string[]): RunArgs | "help" {
  if (argv.length === 0 || argv.includes("-h") || argv.includes("--help")) return "help";
  const [cmd, ...rest] = argv;
  if (cmd !== "run") throw new UsageError(`unknown command ${JSON.stringify(cmd)}`);
  const args: RunArgs = { model: "", maxNewTokens: undefined, inputs: [], truncate: false };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    const [flag, inline] = a.startsWith("--") && a.includes("=") ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)] : [a, undefined];
    const value = (): string => {
      if (inline !== undefined) return inline;
      const v = rest[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "--model":
        args.model = value();
        break;
      case "--max-new-tokens": {
        const v = value();
        const n = Number(v);
        if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw new UsageError(`--max-new-tokens needs a non-negative integer, got ${JSON.stringify(v)}`);
        args.maxNewTokens = n;
        break;
      }
      case "--input":
        args.inputs.push(value());
        break;
      case "--truncate":
        args.truncate = true;
        break;
      default:
        throw new UsageError(`unknown option ${JSON.stringify(a)}`);
    }
  }
  return args;
}

/** `DEFAULT_MODEL` relative to the package root (dist/ or ts/src/ are one or two levels below). */
async function defaultModel(): Promise<string> {
  const fs = await import("node:fs");
  const { fileURLToPath } = await import("node:url");
  for (const up of ["../", "../../"]) {
    const dir = fileURLToPath(new URL(up + DEFAULT_MODEL, import.meta.url));
    if (fs.existsSync(dir)) return dir;
  }
  return DEFAULT_MODEL;
}

async function* lines(stdin: AsyncIterable<string | Uint8Array>): AsyncGenerator<string> {
  const dec = new TextDecoder();
  let buf = "";
  for await (const chunk of stdin) {
    buf += typeof chunk === "string" ? chunk : dec.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, nl).replace(/\r$/, "");
      buf = buf.slice(nl + 1);
    }
  }
  buf += dec.decode();
  if (buf.length > 0) yield buf.replace(/\r$/, "");
}

/** Run the CLI; returns the exit code. */
export async function main(argv: string[], io: CliIO): Promise<number> {
  let args: RunArgs | "help";
  try {
    args = parseArgs(argv);
  } catch (e) {
    io.stderr(`t5-web: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (args === "help") {
    io.stdout(USAGE);
    return 0;
  }
  let pipe;
  try {
    pipe = await pipeline("text2text-generation", args.model || (await defaultModel()));
  } catch (e) {
    io.stderr(`t5-web: cannot load the model: ${describe(e)}\n`);
    return 1;
  }
  try {
    const opts = { truncation: args.truncate, ...(args.maxNewTokens === undefined ? {} : { max_new_tokens: args.maxNewTokens }) };
    const source: AsyncIterable<string> =
      args.inputs.length > 0
        ? (async function* () {
            yield* args.inputs;
          })()
        : lines(io.stdin);
    for await (const text of source) {
      const [out] = await pipe(text, opts);
      io.stdout(`${out!.generated_text.replace(/\n/g, " ")}\n`);
    }
    return 0;
  } catch (e) {
    io.stderr(`t5-web: ${describe(e)}\n`);
    return 1;
  } finally {
    pipe.dispose();
  }
}

function describe(e: unknown): string {
  if (e instanceof T5WebError) return `${e.name}: ${e.message}`;
  if (e instanceof Error) return e.message;
  return String(e);
}
