/**
 * The WebGPU backend in Node: the wasm engine drives Dawn (the `webgpu` npm package) through wgpu,
 * on SwiftShader (Debian Chromium's Vulkan ICD) on machines without a GPU. Checked against the CPU
 * engine: logits / hidden states within 1e-3, greedy ids identical (and equal to transformers'),
 * one command buffer per decode step, dispose frees every GPU buffer, device loss is a typed error
 * and the model reloads on the CPU, `device: 'auto'` falls back and says why.
 */

import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pipeline, T5EncoderModel, T5ForConditionalGeneration } from "../../ts/src/index.js";
import { BadConfigError, BadInputError, ModelTooLargeError } from "../../ts/src/errors.js";
import { DeviceLostError, installNodeWebGpu, WebGPUUnavailableError } from "../../ts/src/webgpu.js";
import { FIXTURES, loadOracle, modelDir, ORACLE } from "../helpers/oracle.js";
import { readF32Tensors } from "../helpers/safetensors.js";

const SWIFTSHADER = "/usr/lib/chromium/vk_swiftshader_icd.json";
if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER)) process.env.VK_ICD_FILENAMES = SWIFTSHADER;

const TOL = 1e-3;
const SLOW = 180_000; // software Vulkan on a shared 2-core machine

function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= worst)) worst = d;
  }
  return worst;
}

describe("webgpu in Node (Dawn)", { timeout: SLOW }, () => {
  beforeAll(async () => {
    expect(await installNodeWebGpu(), "the `webgpu` package is a devDependency").toBe(true);
  });

  describe.each(["tiny-t5", "tiny-t5-v1_1"])("%s", (name) => {
    const { json: o } = loadOracle(name);
    let cpu: T5ForConditionalGeneration;
    let gpu: T5ForConditionalGeneration;
    beforeAll(async () => {
      // the GPU model first: a WebGPU load picks the single-thread engine build (a threaded one refuses WebGPU)
      gpu = await T5ForConditionalGeneration.fromPretrained(modelDir(name), { device: "webgpu" });
      cpu = await T5ForConditionalGeneration.fromPretrained(modelDir(name));
    });
    afterAll(() => {
      cpu.dispose();
      gpu.dispose();
    });

    it("runs on the GPU", () => {
      expect(gpu.device).toBe("webgpu");
      const info = gpu.gpuInfo!;
      expect(String(info.adapter)).toMatch(/./);
      expect(cpu.device).toBe("cpu");
      expect(cpu.gpuInfo).toBeUndefined();
    });

    it("forward: logits, hidden states and loss within 1e-3 of the CPU", async () => {
      const inputs = { input_ids: o.input_ids, attention_mask: o.attention_mask, decoder_input_ids: o.decoder_input_ids, labels: o.labels };
      const c = cpu.forwardSync(inputs);
      const g = await gpu.forward(inputs);
      expect(g.logits.dims).toEqual(c.logits.dims);
      expect(maxDiff(g.logits.data, c.logits.data)).toBeLessThanOrEqual(TOL);
      expect(maxDiff(g.encoder_last_hidden_state.data, c.encoder_last_hidden_state.data)).toBeLessThanOrEqual(TOL);
      expect(maxDiff(g.decoder_last_hidden_state.data, c.decoder_last_hidden_state.data)).toBeLessThanOrEqual(TOL);
      expect(Math.abs(g.loss! - c.loss!)).toBeLessThanOrEqual(TOL);
    });

    it("greedy ids identical to the CPU and to transformers; one submit per step", async () => {
      const opts = { max_new_tokens: o.greedy.max_new_tokens };
      const inputs = { input_ids: o.input_ids, attention_mask: o.attention_mask };
      const c = cpu.generateSync(inputs, opts);
      const g = await gpu.generate(inputs, opts);
      expect(g).toEqual(c);
      expect(g).toEqual(o.greedy.sequences);
      const s = gpu.lastGenerateStats!;
      expect(s.submits_per_step).toBe(1);
      expect(s.dispatches_per_step).toBeGreaterThan(0);
      console.log(`${name}: ${JSON.stringify(s)}`);
    });

    it("beam search, sampling and processors: transformers' beam ids, the CPU's sequences; top k read back, not the logits", async () => {
      const gen = JSON.parse(readFileSync(`${ORACLE}generation/${name}.json`, "utf8")) as {
        input_ids: number[][]; attention_mask: number[][]; cases: { name: string; kwargs: Record<string, unknown>; sequences: number[][] }[];
      };
      const inputs = { input_ids: gen.input_ids, attention_mask: gen.attention_mask };
      const rows = gen.input_ids.length;
      const vocab = Number(cpu.config.vocab_size);
      for (const cname of ["beam3_return2_scores", "beam4_lp2_early_eos", "beam_combo"]) {
        const c = gen.cases.find((x) => x.name === cname)!;
        const opts = { ...c.kwargs, return_dict_in_generate: true as const };
        const g = await gpu.generate(inputs, opts);
        expect(g.sequences, cname).toEqual(c.sequences);
        const want = cpu.generateSync(inputs, opts);
        expect(g.sequences).toEqual(want.sequences);
        expect(g.sequences_scores!.length).toBe(want.sequences_scores!.length);
        g.sequences_scores!.forEach((v, i) => expect(Math.abs(v - want.sequences_scores![i]!)).toBeLessThanOrEqual(TOL));
        const beams = Number(c.kwargs.num_beams);
        // each row's top k = max(2, 1 + #eos) · num_beams; beam_combo's processors (repetition penalty, n-grams, bad
        // words, forced EOS) add the m ids they touch: 2(k + m) + 3 + m words per row, m ≥ 1 (the start token seen)
        const k = Math.max(2, 1 + ((c.kwargs.eos_token_id as number[] | undefined)?.length ?? 1)) * beams;
        const readBack = gpu.lastGenerateStats!.read_back_per_step;
        if (cname === "beam_combo") {
          expect(readBack, cname).toBeGreaterThan(rows * beams * (2 * k + 3) * 4);
          expect(readBack * 100, cname).toBeLessThan(rows * beams * vocab * 4);
        } else expect(readBack, cname).toBe(rows * beams * (2 * k + 3) * 4);
        expect(gpu.lastGenerateStats!.whole_row_steps, cname).toBe(0);
      }
      for (const opts of [
        { do_sample: true, top_k: 20, temperature: 0.8, seed: 11, max_new_tokens: 8, num_return_sequences: 2 },
        { repetition_penalty: 1.3, no_repeat_ngram_size: 2, max_new_tokens: 8 },
      ]) {
        const g = await gpu.generate(inputs, opts);
        expect(g, JSON.stringify(opts)).toEqual(cpu.generateSync(inputs, opts));
        const whole = rows * (opts.num_return_sequences ?? 1) * vocab * 4;
        expect(gpu.lastGenerateStats!.read_back_per_step * 100).toBeLessThan(whole);
      }
    });

    it("top-p without top-k (sampling, beam sampling; after min-length and the touched-id processors, beam sampling's repetition penalty included): the CPU's ids; 128 candidates and the touched ids read back, whole rows only where they do not decide, counted in top_p_fallbacks and whole_row_steps", async () => {
      const inputs = { input_ids: o.input_ids, attention_mask: o.attention_mask };
      const vocab = Number(cpu.config.vocab_size);
      for (const opts of [
        { do_sample: true, top_k: 0, top_p: 0.9, seed: 12, max_new_tokens: 6 },
        { do_sample: true, top_k: 0, top_p: 0.9, temperature: 0.02, seed: 13, max_new_tokens: 6 },
        { do_sample: true, num_beams: 2, top_k: 0, top_p: 0.9, temperature: 0.02, seed: 14, max_new_tokens: 6 },
        // after min-length (EOS suppressed in the reduction for 5 of 6 steps)
        { do_sample: true, top_k: 0, top_p: 0.9, temperature: 0.02, min_new_tokens: 5, seed: 15, max_new_tokens: 6 },
        { do_sample: true, num_beams: 2, top_k: 0, top_p: 0.9, temperature: 0.02, min_new_tokens: 5, seed: 16, max_new_tokens: 6 },
        // after the touched-id processors, replayed on the candidates and the gathered touched ids
        { do_sample: true, top_k: 0, top_p: 0.9, temperature: 0.02, repetition_penalty: 1.3, no_repeat_ngram_size: 2, seed: 17, max_new_tokens: 6 },
        { do_sample: true, num_beams: 2, top_k: 0, top_p: 0.9, temperature: 0.02, no_repeat_ngram_size: 2, forced_eos_token_id: 1, seed: 18, max_new_tokens: 6 },
      ]) {
        const what = JSON.stringify(opts);
        const g = await gpu.generate(inputs, opts);
        expect(g, what).toEqual(cpu.generateSync(inputs, opts));
        const s = gpu.lastGenerateStats!;
        const rows = o.input_ids.length * (opts.num_beams ?? 1);
        const whole = rows * vocab * 4;
        // each row's 128 largest logits and its normalisers ((2·128 + 3)·4 bytes), and the whole rows as well where
        // those leave the cutoff uncertain: at every step on this nearly flat random-weight model at temperature 1
        const nucleus = rows * (2 * 128 + 3) * 4;
        expect(Number.isInteger(s.top_p_fallbacks) && s.top_p_fallbacks >= 0, what).toBe(true);
        expect(s.top_p_fallbacks + s.top_p_decided, what).toBe(s.steps);
        expect(s.whole_row_steps, what).toBe(s.top_p_fallbacks);
        if (opts.temperature === undefined) {
          expect(s.read_back_per_step, what).toBe(nucleus + whole);
          expect([s.top_p_fallbacks, s.top_p_decided], what).toEqual([s.steps, 0]);
        } else {
          // peaked by a low temperature: decided from the candidates at most steps (plus the g ≤ 16 touched ids'
          // values per row where a processor touches some)
          const g = ((s.read_back_per_step - nucleus) % whole) / (rows * 4);
          expect(s.read_back_per_step, what).toBeGreaterThanOrEqual(nucleus);
          expect(g <= 16 && (g === 0 || "no_repeat_ngram_size" in opts), what).toBe(true);
          expect(s.top_p_decided, what).toBeGreaterThan(2 * s.top_p_fallbacks);
        }
      }
      // beam sampling with top-p after a repetition penalty (it scales the device normaliser's error, bounded per class
      // of value): decided from the candidates at most steps, the CPU's ids
      const opts = { do_sample: true, num_beams: 2, top_k: 0, top_p: 0.9, temperature: 0.02, repetition_penalty: 1.3, seed: 19, max_new_tokens: 6 };
      expect(await gpu.generate(inputs, opts)).toEqual(cpu.generateSync(inputs, opts));
      const s = gpu.lastGenerateStats!;
      expect(s.top_p_fallbacks + s.top_p_decided).toBe(s.steps);
      expect(s.whole_row_steps).toBe(s.top_p_fallbacks);
      expect(s.top_p_decided).toBeGreaterThan(2 * s.top_p_fallbacks);
    });

    it("concurrent calls on one GPU model give the sequential results (never interleaved state)", async () => {
      const x = { input_ids: [[37, 629, 19, 1]], attention_mask: [[1, 1, 1, 1]] };
      const y = { input_ids: o.input_ids, attention_mask: o.attention_mask };
      const cases: [typeof x, Record<string, unknown>][] = [
        [x, { max_new_tokens: 6 }],
        [y, { max_new_tokens: 6, num_beams: 2 }],
        [x, { do_sample: true, top_k: 20, seed: 5, max_new_tokens: 6 }],
        [y, { max_new_tokens: 4 }],
      ];
      const want = cases.map(([i, op]) => cpu.generateSync(i, op));
      expect(await Promise.all(cases.map(([i, op]) => gpu.generate(i, op)))).toEqual(want);
      const fwd = { ...x, decoder_input_ids: [[0, 5]] };
      const steps: number[][] = [];
      const [g, f] = await Promise.all([
        gpu.generate(y, { max_new_tokens: 6 }),
        gpu.forward(fwd),
        (async () => {
          for await (const s of gpu.generateStream(x, { max_new_tokens: 5 })) steps.push(s);
        })(),
      ]);
      expect(g).toEqual(cpu.generateSync(y, { max_new_tokens: 6 }));
      expect(maxDiff(f.logits.data, cpu.forwardSync(fwd).logits.data)).toBeLessThanOrEqual(TOL);
      expect(steps.map((s) => s[0])).toEqual(cpu.generateSync(x, { max_new_tokens: 5 })[0]!.slice(1));
    });

    it("sync calls on a GPU model are a typed error; the async ones are the same on every device", async () => {
      expect(() => gpu.generateSync([[1, 2, 3]])).toThrow(BadInputError);
      expect(() => gpu.forwardSync({ input_ids: [[1, 2, 3]], decoder_input_ids: [[0]] })).toThrow(/runs on the CPU only/);
      // options checked by the same engine code on the GPU: NaN names the option
      await expect(gpu.generate([[37, 629, 19, 1]], { max_new_tokens: NaN })).rejects.toThrow(/max_new_tokens.*NaN/);
      // generate({...inputs, ...options}), model(inputs) and generateStream on WebGPU
      const x = { input_ids: [[37, 629, 19, 1]], attention_mask: [[1, 1, 1, 1]] };
      const want = cpu.generateSync(x, { max_new_tokens: 5 });
      expect(await gpu.generate({ ...x, max_new_tokens: 5 })).toEqual(want);
      const steps: number[][] = [];
      for await (const s of gpu.generateStream(x, { max_new_tokens: 5 })) steps.push(s);
      expect(steps.map((s) => s[0])).toEqual(want[0]!.slice(1));
      const called = await gpu({ ...x, decoder_input_ids: [[0, 5]] });
      expect(maxDiff(called.logits.data, cpu.forwardSync({ ...x, decoder_input_ids: [[0, 5]] }).logits.data)).toBeLessThanOrEqual(TOL);
    });
  });

  it("a load over the memory budget or the device's buffer limits: ModelTooLargeError before the GPU allocates", async () => {
    const MiB = 2 ** 20;
    // whole files (4.3 MB) held, the weights built from them and one conversion: about 13 MB over the 64 MiB reserve
    const tight = { max_memory: 64 * MiB + 6 * MiB, stream_weights: false };
    await expect(T5ForConditionalGeneration.fromPretrained(modelDir("tiny-t5"), tight)).rejects.toBeInstanceOf(ModelTooLargeError);
    const e = await T5ForConditionalGeneration.fromPretrained(modelDir("tiny-t5"), { ...tight, device: "webgpu" }).then(() => undefined, (err: unknown) => err as Error);
    expect(e).toBeInstanceOf(ModelTooLargeError);
    expect(e!.message).toMatch(/memory limit of 0\.07 GiB/);
    const ok = await T5ForConditionalGeneration.fromPretrained(modelDir("tiny-t5"), { max_memory: 64 * MiB + 16 * MiB, stream_weights: false, device: "webgpu" });
    expect(ok.device).toBe("webgpu");
    ok.dispose();
    // d_ff 2^31: one row of wo is 8 GiB, more than any storage binding; said from the config, before the weights
    const dir = mkdtempSync(join(tmpdir(), "t5-gpu-limits-"));
    try {
      for (const f of readdirSync(modelDir("tiny-t5"))) copyFileSync(join(modelDir("tiny-t5"), f), join(dir, f));
      const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
      writeFileSync(join(dir, "config.json"), JSON.stringify({ ...cfg, d_ff: 2 ** 31 }));
      const big = await T5ForConditionalGeneration.fromPretrained(dir, { device: "webgpu", max_memory: 2 ** 50 }).then(() => undefined, (err: unknown) => err as Error);
      expect(big).toBeInstanceOf(ModelTooLargeError);
      expect(big!.message).toMatch(/does not fit this WebGPU device: .*wo\.weight \(one row of \[32, 2147483648\]\) needs 8589934592 bytes in one buffer.*maxStorageBufferBindingSize/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("pipelines take the device option", async () => {
    const texts = ["translate English to German: The house is wonderful.", "summarize: a short text"];
    const cpu = await pipeline("text2text-generation", modelDir("tiny-t5"));
    const gpu = await pipeline("text2text-generation", modelDir("tiny-t5"), { device: "webgpu" });
    expect(await gpu(texts, { max_new_tokens: 8 })).toEqual(await cpu(texts, { max_new_tokens: 8 }));
    const fc = await pipeline("feature-extraction", modelDir("tiny-t5"));
    const fg = await pipeline("feature-extraction", modelDir("tiny-t5"), { device: "webgpu" });
    const [a, b] = [await fc(texts, { pooling: "mean" }), await fg(texts, { pooling: "mean" })];
    expect(b.dims).toEqual(a.dims);
    expect(maxDiff(b.data, a.data)).toBeLessThanOrEqual(TOL);
  });

  it("encoder-only model", async () => {
    const { json: o } = loadOracle("tiny-t5");
    const cpu = await T5EncoderModel.fromPretrained(modelDir("tiny-t5"));
    const gpu = await T5EncoderModel.fromPretrained(modelDir("tiny-t5"), { device: "webgpu", maxChunkBytes: 1 << 16 });
    const inputs = { input_ids: o.input_ids, attention_mask: o.attention_mask };
    expect(maxDiff((await gpu.forward(inputs)).last_hidden_state.data, cpu.forwardSync(inputs).last_hidden_state.data)).toBeLessThanOrEqual(TOL);
    expect(Number(gpu.gpuInfo!.max_chunk_bytes)).toBe(1 << 16);
    cpu.dispose();
    gpu.dispose();
  });

  // scripts/make_fp16_fixtures.py: a checkpoint whose float16 activations overflow; the oracle is
  // transformers' float16 run with its guards (fp32 wo, T5Block's inf clamp)
  it("dtype fp16: transformers' float16 logits (stated tolerance) and greedy ids on the overflow fixture", async () => {
    const name = "tiny-t5-fp16-overflow";
    const o = JSON.parse(readFileSync(`${ORACLE}${name}.json`, "utf8")) as {
      input_ids: number[][]; attention_mask: number[][]; decoder_input_ids: number[][];
      greedy: { max_new_tokens: number; sequences: number[][] }; tolerance: { atol: number; rtol: number };
    };
    const want = readF32Tensors(readFileSync(`${ORACLE}${name}.safetensors`)).get("logits")!.data;
    const gpu = await T5ForConditionalGeneration.fromPretrained(modelDir(name), { device: "webgpu", dtype: "fp16" });
    expect(gpu.device).toBe("webgpu");
    const g = await gpu.forward({ input_ids: o.input_ids, attention_mask: o.attention_mask, decoder_input_ids: o.decoder_input_ids });
    expect(g.logits.data.length).toBe(want.length);
    let worst = 0;
    for (let i = 0; i < want.length; i++) {
      const d = Math.abs(g.logits.data[i]! - want[i]!);
      expect(Number.isFinite(g.logits.data[i]!)).toBe(true);
      expect(d).toBeLessThanOrEqual(o.tolerance.atol + o.tolerance.rtol * Math.abs(want[i]!));
      worst = Math.max(worst, d);
    }
    console.log(`fp16 overflow fixture on Dawn: max |logits - transformers fp16| = ${worst}`);
    const ids = await gpu.generate({ input_ids: o.input_ids, attention_mask: o.attention_mask }, { max_new_tokens: o.greedy.max_new_tokens });
    expect(ids).toEqual(o.greedy.sequences);
    gpu.dispose();
    // bf16 is CPU-only: a typed error on 'webgpu'
    await expect(T5ForConditionalGeneration.fromPretrained(modelDir(name), { device: "webgpu", dtype: "bf16" })).rejects.toBeInstanceOf(BadConfigError);
  });

  // q8 / q4 weights stay packed on the GPU (dequantized in the kernels): the same numbers as the CPU
  // engine's q8 / q4 (torchao q4 groups of 128 on tiny-t5-q128, GGUF Q4_0 blocks of 32), pieces of 4 KiB
  // on one of them so that packed weights are split
  it.each([
    ["tiny-t5-q128", "q8", "device limit"],
    ["tiny-t5-q128", "q4", "device limit"],
    ["tiny-t5-q128", "q4", 4096],
    ["gguf/tiny-t5-q4_0.gguf", "as stored", "device limit"],
  ] as const)("%s, dtype %s, pieces %s: logits within 1e-3 of the CPU's, greedy ids identical", async (dir, dt, pieces) => {
    const dtype = dt === "as stored" ? undefined : dt;
    const maxChunkBytes = pieces === "device limit" ? undefined : pieces;
    const o = JSON.parse(readFileSync(dir.startsWith("gguf/") ? `${FIXTURES}gguf/oracle.json` : `${FIXTURES}quant/${dir}.json`, "utf8")) as {
      input_ids: number[][]; attention_mask: number[][]; decoder_input_ids: number[][];
    };
    const opts = dtype === undefined ? {} : { dtype };
    const cpu = await T5ForConditionalGeneration.fromPretrained(`${FIXTURES}${dir}`, opts);
    const gpu = await T5ForConditionalGeneration.fromPretrained(`${FIXTURES}${dir}`, { ...opts, device: "webgpu", ...(maxChunkBytes === undefined ? {} : { maxChunkBytes }) });
    expect(gpu.device).toBe("webgpu");
    const inputs = { input_ids: o.input_ids, attention_mask: o.attention_mask, decoder_input_ids: o.decoder_input_ids };
    const c = cpu.forwardSync(inputs);
    const g = await gpu.forward(inputs);
    const worst = maxDiff(g.logits.data, c.logits.data);
    expect(worst).toBeLessThanOrEqual(TOL);
    expect(maxDiff(g.encoder_last_hidden_state.data, c.encoder_last_hidden_state.data)).toBeLessThanOrEqual(TOL);
    const gen = { input_ids: o.input_ids, attention_mask: o.attention_mask };
    const ids = await gpu.generate(gen, { max_new_tokens: 8 });
    expect(ids).toEqual(cpu.generateSync(gen, { max_new_tokens: 8 }));
    console.log(`${dir} ${dtype ?? "as stored"} on Dawn: max |logits gpu - cpu| = ${worst}; ${JSON.stringify(gpu.lastGenerateStats)}`);
    cpu.dispose();
    gpu.dispose();
  });

  it("split weights (64 KiB pieces) give the same ids", async () => {
    const { json: o } = loadOracle("tiny-t5");
    const gpu = await T5ForConditionalGeneration.fromPretrained(modelDir("tiny-t5"), { device: "webgpu", maxChunkBytes: 1 << 16 });
    const g = await gpu.generate({ input_ids: o.input_ids, attention_mask: o.attention_mask }, { max_new_tokens: o.greedy.max_new_tokens });
    expect(g).toEqual(o.greedy.sequences);
    gpu.dispose();
  });

  it("dispose frees every GPU buffer", async () => {
    const gpu = await T5ForConditionalGeneration.fromPretrained(modelDir("tiny-t5"), { device: "webgpu" });
    await gpu.generate([[37, 629, 19, 1]], { max_new_tokens: 3 });
    const before = Number(gpu.gpuInfo!.live_buffers);
    expect(before).toBeGreaterThan(10);
    // the engine handle reports its count after dispose through a kept reference
    const inner = (gpu as unknown as { inner: { model: { dispose(): void; liveBuffers: number; free(): void } } }).inner.model;
    inner.dispose();
    expect(inner.liveBuffers).toBe(0);
    gpu.dispose();
  });

  it("device loss: typed error, then the model reloads on the CPU", async () => {
    const gpu = await T5ForConditionalGeneration.fromPretrained(modelDir("tiny-t5"), { device: "webgpu" });
    (gpu as unknown as { inner: { model: { destroyDevice(): void } } }).inner.model.destroyDevice();
    await new Promise((r) => setTimeout(r, 50));
    await expect(gpu.generate([[37, 629, 19, 1]], { max_new_tokens: 3 })).rejects.toBeInstanceOf(DeviceLostError);
    gpu.dispose();
    const cpu = await T5ForConditionalGeneration.fromPretrained(modelDir("tiny-t5"), { device: "cpu" });
    expect(cpu.generateSync([[37, 629, 19, 1]], { max_new_tokens: 3 })).toHaveLength(1);
    cpu.dispose();
  });

  it("'auto' falls back to the CPU and says why; 'webgpu' fails with a typed error", async () => {
    const nav = (globalThis as { navigator?: { gpu?: unknown } }).navigator!;
    const saved = nav.gpu;
    const failing = { requestAdapter: async () => null };
    Object.defineProperty(nav, "gpu", { value: failing, configurable: true, writable: true });
    try {
      const m = await T5ForConditionalGeneration.fromPretrained(modelDir("tiny-t5"), { device: "auto" });
      expect(m.device).toBe("cpu");
      expect(m.deviceNote).toMatch(/WebGPU unavailable.*adapter/i);
      m.dispose();
      await expect(T5ForConditionalGeneration.fromPretrained(modelDir("tiny-t5"), { device: "webgpu" })).rejects.toBeInstanceOf(WebGPUUnavailableError);
    } finally {
      Object.defineProperty(nav, "gpu", { value: saved, configurable: true, writable: true });
    }
    const m = await T5ForConditionalGeneration.fromPretrained(modelDir("tiny-t5"), { device: "auto" });
    expect(m.device).toBe("webgpu");
    m.dispose();
  });
});
