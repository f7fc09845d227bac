/**
 * The `t5-web` command (entry point: cli.ts), modelled on `transformers run`. Kept separate from the
 * entry so tests can call {@link main} with their own streams.
 *
 *   t5-web run [--task text2text-generation] [--model <hub id|dir|url>] [generation flags] [--json] < inputs
 *   t5-web convert <in dir|url> <out dir>
 *   t5-web --version
 */

import { BadInputError, wasmCall } from "./errors.js";
import { addWeightFiles, openSource, readJsonText } from "./files.js";

/** The loaders' `progress_callback` events that the bar draws (transformers.js's shape). */
export type ProgressInfo = { status: string; file?: string; loaded?: number; total?: number };
import { pipeline } from "./pipeline.js";
import { initWasm } from "./wasm.js";
import { armDebugTrap } from "./debug.js";
import { readEnv } from "./runtime-env.js";

/**
 * Model used when `--model` is not given: a directory relative to the package root (the trained
 * numbers/words model). While it is absent (a checkout without it), {@link FALLBACK_MODEL} is used.
 */
export const DEFAULT_MODEL = "models/t5-numbers";
/** The tiny random fixture, used only when {@link DEFAULT_MODEL} does not exist. */
export const FALLBACK_MODEL = "test/fixtures/tiny-t5";

const TASKS = ["text2text-generation", "summarization", "translation"] as const;

export const USAGE = `Usage:
  t5-web run [--task TASK] [--model <hub id|dir|url>] [options] [--input TEXT]...   < inputs.txt
  t5-web convert <in dir|url> <out dir>
  t5-web --help | --version

Commands:
  run       Generate with a T5 checkpoint in the Hugging Face layout (config.json, weights,
            tokenizer.json or spiece.model). Reads one input per line from stdin (or the
            --input values) and writes one output per line to stdout, in order. On a
            terminal each output is printed token by token as it is generated.
  convert   Write <out dir>/model.safetensors from the weights of <in>: pytorch_model.bin
            (read with a restricted unpickler that runs no code), pytorch_model.bin.index.json
            shards, model.safetensors.index.json shards or model.safetensors. Dtypes are kept;
            tied embeddings are written once. config.json, generation_config.json and the
            tokenizer files are copied alongside.

Run options:
  --task TASK              ${TASKS.join(" | ")} (default: text2text-generation)
  --model <hub id|dir|url> a Hugging Face Hub id (e.g. google-t5/t5-small; downloaded once, then
                           cached), a model directory or a base URL. Default: ${DEFAULT_MODEL} in a
                           checkout of t5-web (an npm installation ships no model: pass --model)
  --device cpu|webgpu|auto where to compute (default: cpu). webgpu needs a runtime with WebGPU
                           (navigator.gpu); auto uses it when present, else the CPU.
  --tokenizer <dir|url>    where tokenizer.json / spiece.model are (default: the model's)
  --dtype fp32|fp16|bf16|q8|q4
                           storage of the linear weights (default: fp32)
  --input TEXT             an input (repeatable); without it, one input per line of stdin
  --json                   one JSON object per input: {"input": ..., "outputs": [...]} with the
                           pipeline's output objects (e.g. {"generated_text": ...})
  --truncate               truncate inputs longer than the tokenizer's model_max_length
                           (default: such an input is an error)

Generation options (over the model's generation_config.json; as transformers' generate()):
  --max-new-tokens N       tokens to generate per input
  --min-new-tokens N       generate at least N tokens before EOS
  --max-length N           maximum output length including the decoder start token
  --num-beams N            beam search with N beams (1: greedy)
  --num-return-sequences N outputs per input (each on its own line; <= num beams when beam searching)
  --length-penalty X       beam search length penalty
  --early-stopping         stop beam search when num_beams candidates are done
  --do-sample              sample instead of greedy / beam search
  --temperature X          sampling temperature
  --top-k N                sample from the N most likely tokens
  --top-p X                nucleus sampling probability mass
  --seed N                 seed of the sampler (same seed, same output)
  --repetition-penalty X   penalise tokens already generated (1.0: none)
  --no-repeat-ngram-size N never repeat an n-gram of this size

Other:
  -h, --help               show this help
  -V, --version            print the version

Exit status: 0 on success, 1 when the model cannot be loaded, there is no input, or an input
cannot be run (the message names the typed error, e.g. MissingFileError, InputTooLongError),
2 on bad usage.
A progress bar is drawn on stderr while the model loads, when stderr is a terminal.

Examples:
  echo "translate English to German: The house is wonderful." | t5-web run --model google-t5/t5-small
  t5-web run --model google-t5/t5-small --num-beams 4 --max-new-tokens 40 --input "summarize: ..."
  t5-web run --model ./t5-small --dtype q8 --json < inputs.txt
  echo "numbers to words: 1204" | t5-web run        (in a checkout: the default model)
  t5-web convert ./old-t5-checkpoint ./t5-safetensors
`;

export interface CliIO {
  stdin: AsyncIterable<string | Uint8Array>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Whether stderr is a terminal (draws the loading progress bar). */
  stderrIsTTY?: boolean;
  /** Whether stdout is a terminal (outputs are printed token by token as they are generated). */
  stdoutIsTTY?: boolean;
  /** Whether stdin is a terminal (a hint says that inputs are read from it, one per line). */
  stdinIsTTY?: boolean;
}

class UsageError extends Error {}

type Task = (typeof TASKS)[number];

export interface RunArgs {
  command: "run";
  task: Task;
  model: string;
  tokenizer: string | undefined;
  device: "cpu" | "webgpu" | "auto";
  dtype: string | undefined;
  inputs: string[];
  json: boolean;
  truncate: boolean;
  generate: Record<string, number | boolean>;
}

export interface ConvertArgs {
  command: "convert";
  input: string;
  output: string;
}

/** Generation flags → generate() option names and value kinds. */
const GEN_FLAGS: Record<string, { key: string; kind: "int" | "posint" | "float" | "flag" }> = {
  "--max-new-tokens": { key: "max_new_tokens", kind: "int" },
  "--min-new-tokens": { key: "min_new_tokens", kind: "int" },
  "--max-length": { key: "max_length", kind: "posint" },
  "--num-beams": { key: "num_beams", kind: "posint" },
  "--num-return-sequences": { key: "num_return_sequences", kind: "posint" },
  "--length-penalty": { key: "length_penalty", kind: "float" },
  "--early-stopping": { key: "early_stopping", kind: "flag" },
  "--do-sample": { key: "do_sample", kind: "flag" },
  "--temperature": { key: "temperature", kind: "float" },
  "--top-k": { key: "top_k", kind: "int" },
  "--top-p": { key: "top_p", kind: "float" },
  "--seed": { key: "seed", kind: "int" },
  "--repetition-penalty": { key: "repetition_penalty", kind: "float" },
  "--no-repeat-ngram-size": { key: "no_repeat_ngram_size", kind: "int" },
};

function parseNumber(flag: string, v: string, kind: "int" | "posint" | "float"): number {
  if (kind === "float") {
    const x = Number(v);
    if (v.trim() === "" || !Number.isFinite(x)) throw new UsageError(`${flag} needs a number, got ${JSON.stringify(v)}`);
    return x;
  }
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw new UsageError(`${flag} needs a non-negative integer, got ${JSON.stringify(v)}`);
  if (kind === "posint" && n === 0) throw new UsageError(`${flag} needs a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

/** The command line → what to do (exported for tests). Throws on bad usage. */
export function parseArgs(argv: string[]): RunArgs | ConvertArgs | "help" | "version" {
  if (argv.length === 0 || argv.includes("-h") || argv.includes("--help")) return "help";
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V")) return "version";
  const [cmd, ...rest] = argv;
  if (cmd === "convert") {
    const pos = rest.filter((a) => !a.startsWith("--"));
    const flags = rest.filter((a) => a.startsWith("--"));
    if (flags.length > 0) throw new UsageError(`unknown option ${JSON.stringify(flags[0])} for convert`);
    if (pos.length !== 2) throw new UsageError("convert needs <in dir|url> and <out dir>");
    return { command: "convert", input: pos[0]!, output: pos[1]! };
  }
  if (cmd !== "run") throw new UsageError(`unknown command ${JSON.stringify(cmd)} (expected run or convert)`);
  const args: RunArgs = { command: "run", task: "text2text-generation", model: "", tokenizer: undefined, device: "cpu", dtype: undefined, inputs: [], json: false, truncate: false, generate: {} };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    const eq = a.startsWith("--") ? a.indexOf("=") : -1;
    const [flag, inline] = eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    const value = (): string => {
      if (inline !== undefined) return inline;
      const v = rest[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    const noValue = () => {
      if (inline !== undefined) throw new UsageError(`${flag} takes no value`);
    };
    const gen = GEN_FLAGS[flag];
    if (gen) {
      if (gen.kind === "flag") {
        noValue();
        args.generate[gen.key] = true;
      } else {
        args.generate[gen.key] = parseNumber(flag, value(), gen.kind);
      }
      continue;
    }
    switch (flag) {
      case "--task": {
        const t = value();
        const ok = (TASKS as readonly string[]).includes(t) || /^translation_[a-z]+_to_[a-z]+$/.test(t);
        if (!ok) throw new UsageError(`unknown task ${JSON.stringify(t)}: expected ${TASKS.join(", ")} or translation_xx_to_yy`);
        args.task = t as Task;
        break;
      }
      case "--model":
        args.model = value();
        if (args.model === "") throw new UsageError("--model needs a Hub id, a directory or a URL");
        break;
      case "--tokenizer":
        args.tokenizer = value();
        if (args.tokenizer === "") throw new UsageError("--tokenizer needs a directory or URL");
        break;
      case "--device": {
        const d = value();
        if (d !== "cpu" && d !== "webgpu" && d !== "auto") throw new UsageError(`--device must be cpu, webgpu or auto, got ${JSON.stringify(d)}`);
        args.device = d;
        break;
      }
      case "--dtype": {
        const d = value();
        if (!["fp32", "fp16", "bf16", "q8", "q4"].includes(d)) throw new UsageError(`--dtype must be fp32, fp16, bf16, q8 or q4, got ${JSON.stringify(d)}`);
        args.dtype = d;
        break;
      }
      case "--input":
        args.inputs.push(value());
        break;
      case "--json":
        noValue();
        args.json = true;
        break;
      case "--truncate":
        noValue();
        args.truncate = true;
        break;
      default:
        throw new UsageError(`unknown option ${JSON.stringify(a)}`);
    }
  }
  return args;
}

/** The `version` of t5-web's package.json (the package root is one or two levels above this module). */
export async function packageVersion(): Promise<string> {
  const fs = await import("node:fs");
  const { fileURLToPath } = await import("node:url");
  for (const up of ["../", "../../"]) {
    const file = fileURLToPath(new URL(`${up}package.json`, import.meta.url));
    if (!fs.existsSync(file)) continue;
    const pkg = JSON.parse(fs.readFileSync(file, "utf8")) as { name?: unknown; version?: unknown };
    if (pkg.name === "t5-web" && typeof pkg.version === "string") return pkg.version;
  }
  return "(unknown version)";
}

/** Package root (dist/ or ts/src/ are one or two levels below) joined with `rel`, if it exists. */
async function packagePath(rel: string): Promise<string | undefined> {
  const fs = await import("node:fs");
  const { fileURLToPath } = await import("node:url");
  for (const up of ["../", "../../"]) {
    const dir = fileURLToPath(new URL(up + rel, import.meta.url));
    if (fs.existsSync(`${dir}/config.json`)) return dir;
  }
  return undefined;
}

/**
 * The model `run` uses without `--model`: {@link DEFAULT_MODEL}, or {@link FALLBACK_MODEL} while it
 * is absent; `undefined` when neither is there (an installed package ships no model).
 */
export async function resolveDefaultModel(): Promise<string | undefined> {
  return (await packagePath(DEFAULT_MODEL)) ?? (await packagePath(FALLBACK_MODEL));
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

function formatBytes(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(0)} KiB`;
}

/** A one-line progress bar on stderr fed by the loaders' progress events. */
export function progressBar(write: (t: string) => void, width = 24): { onProgress: (p: ProgressInfo) => void; finish: () => void } {
  let drawn = false;
  const onProgress = (p: ProgressInfo) => {
    if (p.status !== "progress") return;
    const loaded = p.loaded ?? 0;
    const total = p.total ?? 0;
    const frac = total > 0 ? Math.min(1, loaded / total) : 0;
    const full = Math.round(frac * width);
    const size = total > 0 ? ` ${formatBytes(loaded)}/${formatBytes(total)}` : "";
    write(`\r\x1b[2KLoading ${p.file ?? ""} [${"#".repeat(full)}${"-".repeat(width - full)}] ${Math.round(frac * 100)}%${size}`);
    drawn = true;
  };
  const finish = () => {
    if (drawn) write("\r\x1b[2K");
    drawn = false;
  };
  return { onProgress, finish };
}

function webgpuAvailable(): boolean {
  return typeof (globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu === "object";
}

/** An output on one line (outputs are separated by newlines). */
function oneLine(text: string): string {
  return text.replace(/\r?\n/g, " ");
}

/**
 * Whether generation for `args` can be streamed: one sequence per input, no beams (the running best beam changes).
 * The number of beams comes from the flags, else the task's `task_specific_params` (as the pipeline applies them),
 * else the model's generation config.
 */
export function streamable(args: RunArgs, config: Record<string, unknown>, generationConfig: Record<string, unknown>): boolean {
  const tsp = (config["task_specific_params"] ?? {}) as Record<string, Record<string, unknown> | undefined>;
  const taskKey = args.task === "translation" ? Object.keys(tsp).find((k) => k.startsWith("translation")) : args.task;
  const preset = (taskKey !== undefined ? tsp[taskKey] : undefined) ?? {};
  const setting = (key: string): unknown => args.generate[key] ?? preset[key] ?? generationConfig[key];
  return Number(setting("num_beams") ?? 1) <= 1 && Number(setting("num_return_sequences") ?? 1) <= 1;
}

/**
 * Prints the first row's text as its tokens are generated (a `generate()` streamer): each step writes what the
 * decoded text gained; {@link finish} writes the rest of the pipeline's final text and the newline.
 */
export class TokenPrinter {
  private readonly ids: number[] = [];
  /** What has been written so far. */
  shown = "";

  constructor(
    private readonly decode: (ids: number[]) => string,
    private readonly write: (text: string) => void,
  ) {}

  put(value: number[][]): void {
    const id = value[0]?.[0];
    if (id === undefined) return;
    this.ids.push(id);
    this.show(oneLine(this.decode(this.ids)));
  }

  end(): void {}

  /** The final text: its unwritten rest, or (if it does not continue what was written) the line written again. */
  finish(text: string): void {
    if (text.startsWith(this.shown)) this.write(`${text.slice(this.shown.length)}\n`);
    else this.write(`\r\x1b[2K${text}\n`);
    this.shown = "";
    this.ids.length = 0;
  }

  private show(text: string): void {
    // a prefix of the ids can decode to text the longer sequence revises (a piece joined with the next): wait
    if (!text.startsWith(this.shown) || text.length === this.shown.length) return;
    this.write(text.slice(this.shown.length));
    this.shown = text;
  }
}

/** The text of one pipeline output object (generated_text / summary_text / translation_text). */
function outputText(o: Record<string, unknown>): string {
  for (const k of ["generated_text", "summary_text", "translation_text"]) {
    if (typeof o[k] === "string") return o[k] as string;
  }
  return JSON.stringify(o);
}

async function run(args: RunArgs, io: CliIO): Promise<number> {
  // "webgpu" / "auto" go to the loader as `device`; "auto" means the CPU where no GPU path exists
  const device = args.device;
  const bar = io.stderrIsTTY ? progressBar(io.stderr) : undefined;
  const modelPath = args.model || (await resolveDefaultModel());
  if (modelPath === undefined) {
    io.stderr(
      `t5-web: no default model here (${DEFAULT_MODEL} ships only with a checkout of t5-web, not with the npm package): ` +
        `pass --model <hub id|dir|url>, e.g. --model google-t5/t5-small\n`,
    );
    return 1;
  }
  let pipe;
  try {
    const options = {
      ...(bar ? { progress_callback: bar.onProgress } : {}),
      ...(args.dtype ? { dtype: args.dtype } : {}),
      ...(args.tokenizer ? { tokenizer: args.tokenizer } : {}),
      ...(device !== "cpu" ? { device } : {}),
    };
    // the task name is passed through: pipeline() answers BadInputError for a task it lacks
    pipe = await pipeline(args.task as "text2text-generation", modelPath, options as Parameters<typeof pipeline>[2]);
  } catch (e) {
    bar?.finish();
    io.stderr(`t5-web: cannot load the model ${modelPath}: ${describe(e)}\n`);
    return 1;
  }
  bar?.finish();
  // test-only (test/cli.test.ts): the first generation traps inside the engine, as a panic would (debug.ts)
  if (readEnv("T5_WEB_DEBUG_TRAP") === "1") await armDebugTrap();
  const { device: ran, deviceNote } = pipe.model;
  if (device === "auto" && typeof deviceNote === "string") io.stderr(`t5-web: note: ${deviceNote}\n`);
  if (device === "webgpu" && ran !== "webgpu") {
    pipe.dispose();
    io.stderr(`t5-web: --device webgpu: ${webgpuAvailable() ? "this build loaded the model on the CPU" : "no WebGPU in this runtime (navigator.gpu)"}; use --device cpu or auto\n`);
    return 1;
  }
  try {
    const opts: Record<string, unknown> = { truncation: args.truncate, ...args.generate };
    const source: AsyncIterable<string> =
      args.inputs.length > 0
        ? (async function* () {
            yield* args.inputs;
          })()
        : lines(io.stdin);
    // on a terminal, one output per input is printed token by token (not with beams or several sequences)
    const stream = io.stdoutIsTTY === true && !args.json && streamable(args, pipe.model.config, pipe.model.generation_config);
    if (args.inputs.length === 0 && io.stdinIsTTY === true) io.stderr("t5-web: reading inputs from the terminal, one per line (end with Ctrl-D)\n");
    let n = 0;
    for await (const text of source) {
      n++;
      let outs: Record<string, unknown>[];
      const printer = stream ? new TokenPrinter((ids) => pipe.tokenizer.decode(ids, { skip_special_tokens: true }), io.stdout) : undefined;
      if (printer) opts["streamer"] = printer;
      try {
        outs = (await pipe(text, opts as Parameters<typeof pipe>[1])).map((o) => ({ ...o }));
      } catch (e) {
        if (printer?.shown) io.stdout("\n");
        const where = args.inputs.length > 0 ? `input ${n}` : `line ${n} of stdin`;
        io.stderr(`t5-web: ${where}: ${describe(e)}\n`);
        return 1;
      }
      if (args.json) {
        io.stdout(`${JSON.stringify({ input: text, outputs: outs })}\n`);
      } else if (printer) {
        printer.finish(oneLine(outputText(outs[0] ?? {})));
      } else {
        for (const o of outs) io.stdout(`${oneLine(outputText(o))}\n`);
      }
    }
    if (n === 0) {
      io.stderr(`t5-web: no input: ${args.inputs.length > 0 ? "no --input given" : "stdin was empty"}: give one input per line on stdin (e.g. echo "summarize: ..." | t5-web run ...) or --input TEXT\n`);
      return 1;
    }
    return 0;
  } catch (e) {
    io.stderr(`t5-web: ${describe(e)}\n`);
    return 1;
  } finally {
    try {
      pipe.dispose();
    } catch {
      // dispose() does not throw; an exit code is already set
    }
  }
}

/** Files copied next to the converted weights when the input has them. */
const CONVERT_COPY = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "spiece.model",
];

/** `t5-web convert <in> <out>`: the weights of `input` as `<output>/model.safetensors`, plus the other files. */
export async function convert(input: string, output: string, log: (t: string) => void = () => {}): Promise<string[]> {
  const fs = await import("node:fs/promises");
  const path = await import("node:path");
  const wasm = await initWasm();
  const src = await openSource(input);
  const configText = await readJsonText(src, "config.json", true);
  const genText = await readJsonText(src, "generation_config.json", false);
  const builder = wasmCall(() => new wasm.WasmModelBuilder(configText, genText), "config.json");
  try {
    const used = await addWeightFiles(src, builder, (text) => wasm.shardFilesFromIndex(text));
    const bytes = wasmCall(() => builder.toSafetensors());
    await fs.mkdir(output, { recursive: true });
    const written: string[] = [];
    const out = path.join(output, "model.safetensors");
    if (used.length === 1 && used[0] === "model.safetensors" && path.resolve(src.location) === path.resolve(output)) {
      throw new BadInputError(`${output} already holds model.safetensors: nothing to convert`);
    }
    await fs.writeFile(out, bytes);
    written.push("model.safetensors");
    log(`wrote ${out} (${formatBytes(bytes.byteLength)}) from ${used.join(", ")}\n`);
    for (const f of CONVERT_COPY) {
      const b = await src.read(f);
      if (b === undefined) continue;
      const dest = path.join(output, f);
      if (path.resolve(dest) !== path.resolve(src.location, f)) await fs.writeFile(dest, b);
      written.push(f);
    }
    return written;
  } finally {
    builder.free();
  }
}

/** Run the CLI; returns the exit code. */
export async function main(argv: string[], io: CliIO): Promise<number> {
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(argv);
  } catch (e) {
    io.stderr(`t5-web: ${(e as Error).message}\n\nRun t5-web --help for the options.\n`);
    return 2;
  }
  if (args === "help") {
    io.stdout(USAGE);
    return 0;
  }
  if (args === "version") {
    io.stdout(`t5-web ${await packageVersion()}\n`);
    return 0;
  }
  if (args.command === "convert") {
    try {
      await convert(args.input, args.output, io.stderr);
      return 0;
    } catch (e) {
      io.stderr(`t5-web: cannot convert ${args.input}: ${describe(e)}\n`);
      return 1;
    }
  }
  return run(args, io);
}

/** One line: the error's class and message (no stack, newlines folded). */
export function describe(e: unknown): string {
  const text = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return text.replace(/\s*\r?\n\s*/g, " ");
}
