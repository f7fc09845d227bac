/**
 * The threaded engine build: `num_threads` N gives the same bits as 1 on every fixture model and
 * storage form (logits, encoder states, greedy and beam ids and scores), N threads really run (the
 * pool has them), and bad `num_threads` is a typed error. vitest.config.ts sets T5_WEB_CPU_GRAIN=0,
 * so every job of these tiny models is split across the threads (the default leaves small jobs on
 * one thread). The oracle suites run on this build too (the default one in Node, with 2+ threads).
 */

import { afterAll, describe, expect, it } from "vitest";
import { BadConfigError, T5EncoderModel, T5ForConditionalGeneration, hasRelaxedSimd, initWasm, threadsSupported, wasmFlavour, wasmThreads } from "../ts/src/index.js";
import { loadOracle, MODELS, modelDir } from "./helpers/oracle.js";
import { withoutRefused, workerExecArgv } from "../ts/src/wasm-threads.js";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

describe("worker options", () => {
  it("leaves out the parent's per-process Node options a worker refuses (--expose-gc, --input-type, V8 wasm flags)", () => {
    const saved = process.execArgv;
    try {
      Object.defineProperty(process, "execArgv", { value: ["--expose-gc", "--input-type", "module", "--expose_gc", "--input-type=module", "--no-warnings"], configurable: true });
      expect(workerExecArgv()).toEqual(["--no-warnings"]);
      // V8's wasm feature flags (Node 20 validates relaxed SIMD only behind one) hold for the whole process
      Object.defineProperty(process, "execArgv", { value: ["--experimental-wasm-relaxed-simd", "--conditions=x", "--wasm-max-mem-pages=1", "--no-experimental-wasm-stringref"], configurable: true });
      expect(workerExecArgv()).toEqual(["--conditions=x"]);
    } finally {
      Object.defineProperty(process, "execArgv", { value: saved, configurable: true });
    }
  });
});

describe("V8 options of the parent process", () => {
  it("a worker that refuses some (ERR_WORKER_INVALID_EXEC_ARGV) starts again without the ones it names", () => {
    const refused = Object.assign(new Error("Initiated Worker with invalid execArgv flags: --stack-size=900, --max-old-space-size=3000"), { code: "ERR_WORKER_INVALID_EXEC_ARGV" });
    expect(withoutRefused(["--max-old-space-size=3000", "--conditions=x", "--stack-size=900"], refused)).toEqual(["--conditions=x"]);
    // a wording that names none of them: none is kept
    const other = Object.assign(new Error("invalid execArgv"), { code: "ERR_WORKER_INVALID_EXEC_ARGV" });
    expect(withoutRefused(["--conditions=x", "--no-opt"], other)).toEqual([]);
    expect(withoutRefused(["--no-opt"], new Error("other"))).toBeUndefined();
  });

  // `node --max-old-space-size=…` is common; it used to stop the threaded build from starting (each worker refused it)
  it.skipIf(!threadsSupported())("node --max-old-space-size=3000 --stack-size=900 loads and runs the threaded build", async () => {
    const root = fileURLToPath(new URL("..", import.meta.url));
    const script = `
      const { T5ForConditionalGeneration, wasmFlavour } = await import(${JSON.stringify(`${root}dist/index.js`)});
      const lm = await T5ForConditionalGeneration.fromPretrained(${JSON.stringify(modelDir("tiny-t5"))}, { num_threads: 2 });
      const ids = await lm.generate({ input_ids: [[5, 6, 7, 1]] }, { max_new_tokens: 3 });
      console.log(JSON.stringify({ flavour: wasmFlavour(), threads: lm.threads, n: ids[0].length }));
      lm.dispose();`;
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ["--max-old-space-size=3000", "--stack-size=900", "--input-type=module", "-e", script], { cwd: root, timeout: 60_000, env: { ...process.env, T5_WEB_WASM: "" } }, (e, stdout, stderr) =>
        e ? reject(new Error(`${e.message}\n${stderr}`)) : resolve(stdout),
      ),
    );
    const r = JSON.parse(out.trim().split("\n").pop()!);
    expect(r.threads).toBe(2);
    expect(r.flavour).toMatch(/^threads/);
    expect(r.n).toBeGreaterThan(0);
  });
});

const THREADS = 3;
const threaded = process.env.T5_WEB_WASM === undefined || process.env.T5_WEB_WASM === "threads" || process.env.T5_WEB_WASM === "threads-relaxed-simd";

describe.skipIf(!threaded)("threaded build", () => {
  it("runs in Node, with the pool grown to the threads asked for", async () => {
    expect(threadsSupported()).toBe(true);
    const engine = await initWasm();
    expect(wasmFlavour()).toBe(process.env.T5_WEB_WASM ?? (hasRelaxedSimd() ? "threads-relaxed-simd" : "threads"));
    expect(engine.threadsBuilt()).toBe(true);
    const lm = await T5ForConditionalGeneration.fromPretrained(modelDir("tiny-t5"), { num_threads: THREADS });
    try {
      expect(lm.threads).toBe(THREADS);
      expect(wasmThreads()).toBeGreaterThanOrEqual(THREADS);
      // the workers have joined the engine's pool (its capacity counts them)
      expect(engine.threadCapacity()).toBeGreaterThanOrEqual(THREADS);
    } finally {
      lm.dispose();
    }
    const one = await T5ForConditionalGeneration.fromPretrained(modelDir("tiny-t5"), { num_threads: 1 });
    expect(one.threads).toBe(1);
    one.dispose();
  });

  const loaded: { dispose(): void }[] = [];
  afterAll(() => loaded.forEach((m) => m.dispose()));

  for (const { dir, oracle } of MODELS) {
    for (const dtype of ["fp32", "bf16", "q8", "q4"] as const) {
      it(`${dir} ${dtype}: ${THREADS} threads give the bits of 1`, async () => {
        const o = loadOracle(oracle).json;
        const [one, many] = await Promise.all(
          [1, THREADS].map((n) => T5ForConditionalGeneration.fromPretrained(modelDir(dir), { dtype, num_threads: n })),
        );
        loaded.push(one!, many!);
        const run = async (lm: T5ForConditionalGeneration) => {
          const out = await lm.forward({ input_ids: o.input_ids, attention_mask: o.attention_mask, decoder_input_ids: o.decoder_input_ids });
          const inputs = { input_ids: o.input_ids, attention_mask: o.attention_mask };
          const greedy = await lm.generate(inputs, { max_new_tokens: 8 });
          const beam = await lm.generate(inputs, { max_new_tokens: 8, num_beams: 3, return_dict_in_generate: true });
          return { logits: Array.from(out.logits.data), greedy, beam };
        };
        expect(await run(many!)).toStrictEqual(await run(one!));
      });
    }
  }

  it("encoder 1 vs N threads, a batch of 8", async () => {
    const o = loadOracle("tiny-t5").json;
    const ids = Array.from({ length: 8 }, (_, r) => o.input_ids[r % o.input_ids.length]!);
    const mask = Array.from({ length: 8 }, (_, r) => o.attention_mask[r % o.attention_mask.length]!);
    const [one, many] = await Promise.all([1, THREADS].map((n) => T5EncoderModel.fromPretrained(modelDir("tiny-t5"), { num_threads: n })));
    loaded.push(one!, many!);
    const a = (await one!.forward({ input_ids: ids, attention_mask: mask })).last_hidden_state.data;
    const b = (await many!.forward({ input_ids: ids, attention_mask: mask })).last_hidden_state.data;
    expect(Array.from(b)).toStrictEqual(Array.from(a));
  });
});

describe("num_threads", () => {
  it.each([0, -1, 1.5, Number.NaN, 65, "2"])("%s is a BadConfigError", async (n) => {
    await expect(T5ForConditionalGeneration.fromPretrained(modelDir("tiny-t5"), { num_threads: n as number })).rejects.toThrow(BadConfigError);
  });
});
