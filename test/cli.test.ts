import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_MODEL, FALLBACK_MODEL, USAGE, main, parseArgs, progressBar, resolveDefaultModel, type RunArgs } from "../ts/src/cli-main.js";
import { pipeline } from "../ts/src/index.js";
import { FIXTURES, ROOT, modelDir } from "./helpers/oracle.js";

async function run(argv: string[], stdin: string[] = [], stderrIsTTY = false, stdoutIsTTY = false) {
  let out = "";
  let err = "";
  const writes: string[] = [];
  const code = await main(argv, {
    stdin: (async function* () {
      yield* stdin;
    })(),
    stdout: (t) => (writes.push(t), (out += t)),
    stderr: (t) => (err += t),
    stderrIsTTY,
    stdoutIsTTY,
  });
  return { code, out, err, writes };
}

/** `node dist/cli.js ...` with `input` on stdin. */
function spawnCli(args: string[], input = "", bin = "dist/cli.js", env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [join(ROOT, bin), ...args], { cwd: ROOT, timeout: 60_000, env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
      resolve({ code, out: stdout, err: stderr });
    });
    child.stdin!.end(input);
  });
}

const tiny = modelDir("tiny-t5");
const f16Tokenizer = modelDir("tiny-t5-f16");

describe("t5-web CLI: help and usage", () => {
  it("--help documents every command and option", async () => {
    const r = await run(["--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toBe(USAGE);
    expect(r.out).toMatch(/t5-web run/);
    expect(r.out).toMatch(/t5-web convert <in dir\|url> <out dir>/);
    expect(r.out).toContain(DEFAULT_MODEL);
    for (const flag of [
      "--task",
      "--model",
      "--device cpu|webgpu|auto",
      "--tokenizer",
      "--dtype",
      "--input",
      "--json",
      "--truncate",
      "--max-new-tokens",
      "--min-new-tokens",
      "--max-length",
      "--num-beams",
      "--num-return-sequences",
      "--length-penalty",
      "--early-stopping",
      "--do-sample",
      "--temperature",
      "--top-k",
      "--top-p",
      "--seed",
      "--repetition-penalty",
      "--no-repeat-ngram-size",
      "pytorch_model.bin",
      "Exit status",
    ]) {
      expect(r.out, flag).toContain(flag);
    }
    expect((await run([])).out).toBe(USAGE);
    expect((await run(["run", "-h"])).out).toBe(USAGE);
  });

  it("node dist/cli.js --help (and the packaged bin, dist/npm/cli.js, when built)", async () => {
    const r = await spawnCli(["--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toBe(USAGE);
    if (existsSync(join(ROOT, "dist/npm/cli.js"))) {
      const p = await spawnCli(["--help"], "", "dist/npm/cli.js");
      expect(p.code).toBe(0);
      expect(p.out).toBe(USAGE);
    }
  });

  it("generation flags pass through to generate() with transformers' names", () => {
    const a = parseArgs([
      "run",
      "--max-new-tokens", "7",
      "--min-new-tokens=2",
      "--num-beams", "4",
      "--num-return-sequences", "2",
      "--length-penalty", "2.0",
      "--early-stopping",
      "--do-sample",
      "--temperature", "0.7",
      "--top-k", "50",
      "--top-p=0.9",
      "--seed", "42",
      "--repetition-penalty", "1.2",
      "--no-repeat-ngram-size", "3",
      "--max-length", "30",
    ]) as RunArgs;
    expect(a.generate).toEqual({
      max_new_tokens: 7,
      min_new_tokens: 2,
      num_beams: 4,
      num_return_sequences: 2,
      length_penalty: 2,
      early_stopping: true,
      do_sample: true,
      temperature: 0.7,
      top_k: 50,
      top_p: 0.9,
      seed: 42,
      repetition_penalty: 1.2,
      no_repeat_ngram_size: 3,
      max_length: 30,
    });
    const b = parseArgs(["run", "--task", "summarization", "--model", "m", "--device", "auto", "--json", "--truncate", "--dtype", "q8", "--tokenizer", "t"]) as RunArgs;
    expect(b).toMatchObject({ task: "summarization", model: "m", device: "auto", json: true, truncate: true, dtype: "q8", tokenizer: "t", generate: {} });
    expect(parseArgs(["convert", "a", "b"])).toEqual({ command: "convert", input: "a", output: "b" });
  });

  it("--version / -V print the package's version", async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
    for (const flag of ["--version", "-V"]) {
      const r = await run([flag]);
      expect(r).toMatchObject({ code: 0, out: `t5-web ${version}\n`, err: "" });
    }
    const s = await spawnCli(["--version"]);
    expect(s).toMatchObject({ code: 0, out: `t5-web ${version}\n` });
    if (existsSync(join(ROOT, "dist/npm/cli.js"))) expect((await spawnCli(["--version"], "", "dist/npm/cli.js")).out).toBe(`t5-web ${version}\n`);
  });

  it("the help's examples name a model that an npm installation can load (a Hub id)", () => {
    const examples = USAGE.slice(USAGE.indexOf("Examples:")).split("\n").filter((l) => l.includes("t5-web run"));
    expect(examples[0]).toMatch(/--model google-t5\/t5-small/);
    // the one example without --model says where it works
    for (const l of examples.filter((l) => !l.includes("--model"))) expect(l).toMatch(/in a checkout/);
  });

  it("bad usage exits 2 with a message", async () => {
    const cases: [string[], RegExp][] = [
      [["serve"], /unknown command "serve"/],
      [["run", "--max-new-tokens", "many"], /--max-new-tokens needs a non-negative integer/],
      [["run", "--model"], /--model needs a value/],
      [["run", "--num-beams", "0"], /--num-beams needs a positive integer/],
      [["run", "--temperature", "hot"], /--temperature needs a number/],
      [["run", "--device", "tpu"], /--device must be cpu, webgpu or auto/],
      [["run", "--task", "fill-mask"], /unknown task "fill-mask"/],
      [["run", "--bogus"], /unknown option "--bogus"/],
      [["run", "--json=yes"], /--json takes no value/],
      [["convert", "only-one"], /convert needs <in dir\|url> and <out dir>/],
    ];
    for (const [argv, msg] of cases) {
      const r = await run(argv);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.err, argv.join(" ")).toMatch(msg);
      expect(r.out).toBe("");
    }
  });
});

describe("t5-web run", () => {
  it("the default model is models/t5-numbers, or the tiny fixture while it is absent", async () => {
    expect(DEFAULT_MODEL).toBe("models/t5-numbers");
    const resolved = (await resolveDefaultModel())!;
    const want = existsSync(join(ROOT, DEFAULT_MODEL, "config.json")) ? DEFAULT_MODEL : FALLBACK_MODEL;
    expect(resolved.replace(/\\/g, "/").replace(/\/$/, "")).toBe(join(ROOT, want).replace(/\\/g, "/"));
    const pipe = await pipeline("text2text-generation", resolved);
    const [expected] = await pipe("numbers to words: 1204", { max_new_tokens: 12 });
    pipe.dispose();
    const r = await run(["run", "--max-new-tokens", "12", "--input", "numbers to words: 1204"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toBe(`${expected!.generated_text}\n`);
  });

  it("one output line per stdin line, in order, as the pipeline gives them", async () => {
    const texts = ["first line", "second line", "third"];
    const pipe = await pipeline("text2text-generation", tiny);
    const want = [];
    for (const t of texts) want.push((await pipe(t, { max_new_tokens: 4 }))[0]!.generated_text);
    pipe.dispose();
    const r = await run(["run", "--model", tiny, "--max-new-tokens=4"], ["first line\nsecond", " line\r\nthird"]);
    expect(r.code).toBe(0);
    expect(r.out).toBe(want.map((t) => `${t}\n`).join(""));
  });

  it("--task summarization / translation_xx_to_yy print the pipeline's text", async () => {
    for (const [task, key] of [["summarization", "summary_text"], ["translation_en_to_de", "translation_text"]] as const) {
      const pipe = await pipeline(task as "text2text-generation", tiny);
      const [want] = (await pipe("The house is small.", { max_new_tokens: 4 })) as unknown as Record<string, string>[];
      pipe.dispose();
      const r = await run(["run", "--task", task, "--model", tiny, "--max-new-tokens", "4", "--input", "The house is small."]);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toBe(`${want![key]}\n`);
    }
  });

  it("empty stdin is an error with a message (exit 1), not a silent success", async () => {
    const r = await run(["run", "--model", tiny, "--max-new-tokens", "2"], []);
    expect(r.code).toBe(1);
    expect(r.out).toBe("");
    expect(r.err).toMatch(/no input: stdin was empty: give one input per line on stdin .* or --input TEXT/);
    const s = await spawnCli(["run", "--model", tiny], "");
    expect(s.code).toBe(1);
    expect(s.err).toMatch(/no input/);
    // a terminal on stdin: a hint that inputs are read from it (Ctrl-D with nothing typed: the same error)
    let err = "";
    const code = await main(["run", "--model", tiny], { stdin: (async function* () {})(), stdout: () => {}, stderr: (t) => (err += t), stdinIsTTY: true });
    expect(code).toBe(1);
    expect(err).toMatch(/^t5-web: reading inputs from the terminal, one per line \(end with Ctrl-D\)\nt5-web: no input/);
  });

  it("on a terminal, tokens are printed as they are generated; the text equals the pipeline's", async () => {
    const texts = ["numbers to words: 1204", "numbers to words: 77641"];
    const pipe = await pipeline("text2text-generation", join(ROOT, DEFAULT_MODEL));
    const want: string[] = [];
    for (const t of texts) want.push((await pipe(t, { max_new_tokens: 16 }))[0]!.generated_text);
    pipe.dispose();
    const r = await run(["run", "--model", join(ROOT, DEFAULT_MODEL), "--max-new-tokens", "16"], texts.map((t) => `${t}\n`), false, true);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toBe(want.map((t) => `${t}\n`).join(""));
    // each output arrived in several writes (one per token that extends the text), not one line at once
    const words = want.map((t) => t.split(" ").length);
    expect(r.writes.length).toBeGreaterThanOrEqual(words[0]! + words[1]!);
    // not on a pipe: one write per output line
    const p = await run(["run", "--model", join(ROOT, DEFAULT_MODEL), "--max-new-tokens", "16"], texts.map((t) => `${t}\n`));
    expect(p.out).toBe(r.out);
    expect(p.writes).toEqual(want.map((t) => `${t}\n`));
    // beam search cannot stream (the best beam changes): printed whole, same as on a pipe
    const b = await run(["run", "--model", join(ROOT, DEFAULT_MODEL), "--num-beams", "2", "--input", texts[0]!], [], false, true);
    expect(b.code).toBe(0);
    expect(b.writes).toHaveLength(1);
  });

  it("--json: one object per input with the pipeline's outputs", async () => {
    const r = await run(["run", "--model", tiny, "--max-new-tokens", "3", "--json", "--input", "a", "--input", "b c"]);
    expect(r.code).toBe(0);
    const rows = r.out.trim().split("\n").map((l) => JSON.parse(l) as { input: string; outputs: { generated_text: string }[] });
    expect(rows.map((x) => x.input)).toEqual(["a", "b c"]);
    for (const x of rows) expect(typeof x.outputs[0]!.generated_text).toBe("string");
  });

  it("node dist/cli.js: stdin lines, --json, and a bad model directory", async () => {
    const r = await spawnCli(["run", "--model", tiny, "--max-new-tokens", "3"], "one\ntwo\n");
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out.split("\n")).toHaveLength(3);
    const j = await spawnCli(["run", "--model", tiny, "--max-new-tokens", "3", "--json"], "x\n");
    expect(j.code).toBe(0);
    expect(JSON.parse(j.out.trim())).toMatchObject({ input: "x", outputs: [{ generated_text: expect.any(String) }] });
    const bad = await spawnCli(["run", "--model", "/nonexistent/model"], "x\n");
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/cannot load the model \/nonexistent\/model: MissingFileError/);
    const usage = await spawnCli(["run", "--top-k", "-1"]);
    expect(usage.code).toBe(2);
  });

  it("a missing model or weights-less directory exits 1 with the typed error", async () => {
    const r = await run(["run", "--model", "/nonexistent/model", "--input", "x"]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/MissingFileError: .*\/nonexistent\/model/);
    const dir = mkdtempSync(join(tmpdir(), "t5-web-cli-"));
    try {
      copyFileSync(join(tiny, "config.json"), join(dir, "config.json"));
      const w = await run(["run", "--model", dir, "--input", "x"]);
      expect(w.code).toBe(1);
      expect(w.err).toMatch(/MissingFileError: no weights in .*pytorch_model\.bin/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("an input that cannot run exits 1 naming the line; --truncate makes it fit", async () => {
    const long = Array.from({ length: 600 }, (_, i) => `w${i}`).join(" ");
    const r = await run(["run", "--model", tiny, "--max-new-tokens", "1"], [`short\n${long}\n`]);
    expect(r.code).toBe(1);
    expect(r.out.split("\n")).toHaveLength(2); // the first line's output, then the stop
    expect(r.err).toMatch(/line 2 of stdin: InputTooLongError/);
    expect((await run(["run", "--model", tiny, "--max-new-tokens", "1", "--truncate", "--input", long])).code).toBe(0);
  });

  it("generation options the engine rejects exit 1 with its typed error", async () => {
    // passed through untouched: whatever the engine does not support or accept is its typed error, on exit 1
    const r = await run(["run", "--model", tiny, "--max-new-tokens", "2", "--input", "x", "--num-beams", "2", "--num-return-sequences", "3"]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^t5-web: input 1: \w+Error: /);
  });

  it("empty stdin exits 1 with a message; an over-budget call is one line and exit 1", async () => {
    const e = await run(["run", "--model", tiny, "--max-new-tokens", "1"], []);
    expect(e.code).toBe(1);
    expect(e.err).toMatch(/^t5-web: no input: stdin was empty/);
    const b = await run(["run", "--model", tiny, "--max-new-tokens", "2", "--input", "x", "--num-beams", "100000"]);
    expect(b.code).toBe(1);
    expect(b.err).toMatch(/^t5-web: input 1: MemoryBudgetError: .*\n$/);
    expect(b.err.split("\n")).toHaveLength(2);
  });

  it("a trap inside the engine (T5_WEB_DEBUG_TRAP=1, test-only): one line on stderr, exit 1", async () => {
    const r = await spawnCli(["run", "--model", tiny, "--max-new-tokens", "2"], "x\ny\n", "dist/cli.js", { T5_WEB_DEBUG_TRAP: "1" });
    expect(r.code).toBe(1);
    expect(r.out).toBe("");
    expect(r.err).toMatch(/^t5-web: line 1 of stdin: EngineFailureError: startGeneration: the WebAssembly engine failed \(.*unreachable.*\n$/);
    expect(r.err.split("\n")).toHaveLength(2);
    // without the variable the same run succeeds
    const ok = await spawnCli(["run", "--model", tiny, "--max-new-tokens", "2"], "x\ny\n");
    expect(ok.code).toBe(0);
    expect(ok.out.split("\n")).toHaveLength(3);
  });

  it("--device webgpu without a GPU path is a clear error; auto runs on the CPU", async () => {
    const r = await run(["run", "--model", tiny, "--device", "webgpu", "--input", "x"]);
    // no GPU on the test machines: the loader's typed WebGPU error (a GPU machine runs it)
    if (r.code !== 0) {
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/WebGPU|--device webgpu/);
    }
    const a = await run(["run", "--model", tiny, "--device", "auto", "--max-new-tokens", "2", "--input", "x"]);
    expect(a.code).toBe(0);
    expect(a.out.split("\n")).toHaveLength(2);
  });

  it("draws a progress bar on a terminal only", async () => {
    const tty = await run(["run", "--model", tiny, "--max-new-tokens", "1", "--input", "x"], [], true);
    expect(tty.code).toBe(0);
    if (tty.err !== "") {
      expect(tty.err).toMatch(/\rLoading|\r\x1b\[2KLoading/);
      expect(tty.err.endsWith("\r\x1b[2K")).toBe(true); // cleared before the outputs
    }
    const plain = await run(["run", "--model", tiny, "--max-new-tokens", "1", "--input", "x"], [], false);
    expect(plain.err).toBe("");
    let drawn = "";
    const bar = progressBar((t) => (drawn += t), 10);
    bar.onProgress({ status: "progress", file: "model.safetensors", loaded: 512 * 1024, total: 1024 * 1024 });
    bar.finish();
    expect(drawn).toContain("Loading model.safetensors [#####-----] 50% 512 KiB/1.0 MiB");
    expect(drawn.endsWith("\r\x1b[2K")).toBe(true);
  });
});

describe("t5-web convert", () => {
  it("pytorch_model.bin → model.safetensors that runs like the original", async () => {
    const out = mkdtempSync(join(tmpdir(), "t5-web-convert-"));
    try {
      const r = await run(["convert", join(FIXTURES, "formats/tiny-t5-f16-bin"), out]);
      expect(r.code).toBe(0);
      expect(r.err).toMatch(/wrote .*model\.safetensors .* from pytorch_model\.bin/);
      expect(readdirSync(out).sort()).toEqual(["config.json", "generation_config.json", "model.safetensors"]);
      const a = await run(["run", "--model", out, "--tokenizer", f16Tokenizer, "--max-new-tokens", "5", "--input", "translate English to German: Hello"]);
      const b = await run(["run", "--model", f16Tokenizer, "--max-new-tokens", "5", "--input", "translate English to German: Hello"]);
      expect(a.code).toBe(0);
      expect(a.out).toBe(b.out);
      // the .bin directory itself runs too
      const c = await run(["run", "--model", join(FIXTURES, "formats/tiny-t5-f16-bin"), "--tokenizer", f16Tokenizer, "--max-new-tokens", "5", "--input", "translate English to German: Hello"]);
      expect(c.out).toBe(b.out);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it("sharded safetensors → one file, tokenizer files copied", async () => {
    const out = mkdtempSync(join(tmpdir(), "t5-web-convert-"));
    try {
      const r = await spawnCli(["convert", modelDir("tiny-t5-v1_1-sharded"), out]);
      expect(r.code).toBe(0);
      expect(readdirSync(out)).toEqual(expect.arrayContaining(["model.safetensors", "config.json", "tokenizer.json", "spiece.model"]));
      expect(readdirSync(out)).not.toContain("model.safetensors.index.json");
      const a = await run(["run", "--model", out, "--max-new-tokens", "6", "--input", "summarize: a b c"]);
      const b = await run(["run", "--model", modelDir("tiny-t5-v1_1"), "--max-new-tokens", "6", "--input", "summarize: a b c"]);
      expect(a.code).toBe(0);
      expect(a.out).toBe(b.out);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it("a malicious pickle is refused with BadWeightsError and nothing is written", async () => {
    const dir = mkdtempSync(join(tmpdir(), "t5-web-evil-"));
    const out = join(dir, "out");
    try {
      copyFileSync(join(tiny, "config.json"), join(dir, "config.json"));
      copyFileSync(join(FIXTURES, "formats/evil-system.bin"), join(dir, "pytorch_model.bin"));
      const r = await run(["convert", dir, out]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/BadWeightsError: .*refusing global posix\.system/);
      expect(existsSync(join(out, "model.safetensors"))).toBe(false);
      const m = await run(["run", "--model", dir, "--input", "x"]);
      expect(m.code).toBe(1);
      expect(m.err).toMatch(/BadWeightsError/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
