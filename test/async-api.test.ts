/**
 * The transformers.js calling conventions of the models (issue 14): `generate` / `forward` / `model(inputs)` are
 * async (CPU here; WebGPU in test/webgpu/), CPU generation yields to the event loop between steps (timers and
 * `AbortSignal.timeout` fire), `generate({...inputs, ...options})`, ids in every form, options checked by the engine
 * (NaN / Infinity / unknown names are typed errors naming the option), a fresh seed per unseeded sampling call,
 * `TextStreamer`, callable heads, and `save_pretrained` → `from_pretrained` round trips. Against the oracle fixtures.
 */

import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AutoModelForSeq2SeqLM,
  AutoModelForSequenceClassification,
  AutoTokenizer,
  BadConfigError,
  BadInputError,
  GenerationAbortedError,
  initWasm,
  T5EncoderModel,
  T5ForConditionalGeneration,
  T5ForQuestionAnswering,
  T5ForTokenClassification,
  T5Model,
  TextStreamer,
  type T5Tokenizer,
} from "../ts/src/index.js";
import { GENERATE_KEYS } from "../ts/src/models.js";
import { expectTensor, headsDir, headsOracle } from "./helpers/heads.js";
import { modelDir, ORACLE } from "./helpers/oracle.js";

interface GenOracle {
  input_ids: number[][];
  attention_mask: number[][];
  cases: { name: string; kwargs: Record<string, unknown>; sequences: number[][]; sequences_single: number[][][] }[];
}
const o = JSON.parse(readFileSync(`${ORACLE}generation/tiny-t5.json`, "utf8")) as GenOracle;
const greedy = o.cases.find((c) => c.name === "min_new_tokens_8")!; // 12 new tokens, no EOS
const inputs = () => ({ input_ids: o.input_ids, attention_mask: o.attention_mask });

let lm: T5ForConditionalGeneration;
let tok: T5Tokenizer;
beforeAll(async () => {
  lm = await AutoModelForSeq2SeqLM.from_pretrained(modelDir("tiny-t5"));
  tok = await AutoTokenizer.fromPretrained(modelDir("tiny-t5"));
});
afterAll(() => {
  lm?.dispose();
  tok?.dispose();
});

describe("async on the CPU, and callable models", () => {
  it("generate() returns a Promise with transformers' ids; generateSync gives the same", async () => {
    const p = lm.generate(inputs(), greedy.kwargs);
    expect(p).toBeInstanceOf(Promise);
    expect(await p).toEqual(greedy.sequences);
    expect(lm.generateSync(inputs(), greedy.kwargs)).toEqual(greedy.sequences);
  });

  it("await model(inputs) is forward(); forwardSync gives the same logits", async () => {
    expect(typeof lm).toBe("function");
    expect(lm).toBeInstanceOf(T5ForConditionalGeneration);
    const x = { ...inputs(), decoder_input_ids: o.input_ids.map(() => [0, 5, 9]) };
    const called = await lm(x);
    const sync = lm.forwardSync(x);
    expect(called.logits.dims).toEqual([3, 3, 32128]);
    expect(called.logits.data).toEqual(sync.logits.data);
    expect((await lm.forward(x)).logits.data).toEqual(sync.logits.data);
  });

  it("T5Model and T5EncoderModel are callable and async", async () => {
    const base = await T5Model.from_pretrained(modelDir("tiny-t5"));
    const enc = await T5EncoderModel.from_pretrained(modelDir("tiny-t5"));
    try {
      const x = { ...inputs(), decoder_input_ids: o.input_ids.map(() => [0, 5]) };
      expect((await base(x)).last_hidden_state.data).toEqual(base.forwardSync(x).last_hidden_state.data);
      expect((await enc(inputs())).last_hidden_state.data).toEqual(enc.forwardSync(inputs()).last_hidden_state.data);
    } finally {
      base.dispose();
      enc.dispose();
    }
  });

  it("CPU generation yields between steps: timers fire and AbortSignal.timeout stops it with a typed error", async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const started = Date.now();
    try {
      const err = await lm
        .generate([[37, 1000, 5, 1]], { min_new_tokens: 100000, max_new_tokens: 100000, signal: AbortSignal.timeout(50) })
        .then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(GenerationAbortedError);
      expect((err as GenerationAbortedError).code).toBe("Aborted");
      expect(((err as Error).cause as Error).name).toBe("TimeoutError");
    } finally {
      clearInterval(timer);
    }
    expect(ticks).toBeGreaterThan(0);
    // it stopped soon after the deadline, not after 100000 steps (generous bound: a loaded CI machine)
    expect(Date.now() - started).toBeLessThan(20000);
  });

  it("a throwing callback stops generation and is rethrown", async () => {
    let n = 0;
    const boom = () => {
      if (++n === 2) throw new Error("boom");
    };
    await expect(lm.generate(inputs(), { max_new_tokens: 12, callback_function: boom })).rejects.toThrow("boom");
    expect(n).toBe(2);
  });

  it("generateStream and a streamer see every step; leaving the loop stops generation", async () => {
    const steps: number[][] = [];
    for await (const s of lm.generateStream(inputs(), greedy.kwargs)) steps.push(s);
    expect(steps.map((s) => s[0])).toEqual(greedy.sequences[0]!.slice(1));
    let k = 0;
    for await (const _ of lm.generateStream(inputs(), { max_new_tokens: 50, min_new_tokens: 50 })) if (++k === 2) break;
    expect(k).toBe(2);
  });
});

describe("calling conventions", () => {
  it("generate({...inputs, ...options}) honours the options (transformers.js)", async () => {
    const seqs = await lm.generate({ ...inputs(), max_new_tokens: 2 });
    expect(seqs.map((r) => r.length)).toEqual([3, 3, 3]);
    expect(await lm.generate({ ...inputs(), ...greedy.kwargs })).toEqual(greedy.sequences);
    // the second argument wins over options beside the inputs
    expect((await lm.generate({ ...inputs(), max_new_tokens: 2 }, { max_new_tokens: 4 })).map((r) => r.length)).toEqual([5, 5, 5]);
    const dict = await lm.generate({ ...inputs(), ...greedy.kwargs, return_dict_in_generate: true });
    expect(dict.sequences).toEqual(greedy.sequences);
    // transformers.js also names the ids `inputs`
    expect(await lm.generate({ inputs: o.input_ids, attention_mask: o.attention_mask, ...greedy.kwargs })).toEqual(greedy.sequences);
    await expect(lm.generate({ ...inputs(), max_new_token: 2 } as never)).rejects.toThrow(/max_new_token/);
  });

  it("ids as number[][], bigint rows, int32 / int64 tensors and typed arrays give the same ids", async () => {
    const row = o.input_ids[0]!.slice(0, o.attention_mask[0]!.filter((x) => x === 1).length);
    const want = greedy.sequences_single[0];
    const forms: unknown[] = [
      [row],
      row,
      [row.map(BigInt)],
      Int32Array.from(row),
      BigInt64Array.from(row.map(BigInt)),
      { data: BigInt64Array.from(row.map(BigInt)), dims: [1, row.length] },
      { data: Int32Array.from(row), dims: [1, row.length] },
      { input_ids: { data: BigInt64Array.from(row.map(BigInt)), dims: [1, row.length] }, attention_mask: { data: BigInt64Array.from(row.map(() => 1n)), dims: [1, row.length] } },
    ];
    for (const f of forms) expect(await lm.generate(f as never, greedy.kwargs), String(f)).toEqual(want);
    await expect(lm.generate({ data: BigInt64Array.from([-1n]), dims: [1, 1] } as never)).rejects.toThrow(BadInputError);
  });

  it("save_pretrained writes config.json, generation_config.json and model.safetensors that load back", async () => {
    const dir = mkdtempSync(join(tmpdir(), "t5-save-"));
    try {
      const files = await lm.save_pretrained(dir);
      expect([...files.keys()].sort()).toEqual(["config.json", "generation_config.json", "model.safetensors"]);
      expect(readdirSync(dir).sort()).toEqual(["config.json", "generation_config.json", "model.safetensors"]);
      const again = await T5ForConditionalGeneration.from_pretrained(dir);
      const fromMap = await T5ForConditionalGeneration.from_pretrained(files);
      try {
        expect(await again.generate(inputs(), greedy.kwargs)).toEqual(greedy.sequences);
        const x = { ...inputs(), decoder_input_ids: o.input_ids.map(() => [0, 5]) };
        expect(again.forwardSync(x).logits.data).toEqual(lm.forwardSync(x).logits.data);
        expect(fromMap.forwardSync(x).logits.data).toEqual(lm.forwardSync(x).logits.data);
        expect(again.generation_config).toEqual(lm.generation_config);
      } finally {
        again.dispose();
        fromMap.dispose();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("options are checked once, in the engine", () => {
  it.each([
    ["max_new_tokens", NaN, /max_new_tokens.*NaN/],
    ["max_new_tokens", Infinity, /max_new_tokens.*Infinity/],
    ["max_new_tokens", -1, /max_new_tokens.*-1/],
    ["max_new_tokens", 1.5, /max_new_tokens.*1\.5/],
    ["max_new_tokens", "3", /max_new_tokens/],
    ["temperature", NaN, /temperature.*NaN/],
    ["top_p", Infinity, /top_p.*Infinity/],
    ["num_beams", 2.5, /num_beams/],
    ["seed", -3, /seed/],
    ["eos_token_id", [1, NaN], /eos_token_id/],
    ["do_sample", "yes", /do_sample/],
    ["early_stopping", "sometimes", /early_stopping/],
    ["top_n", 3, /top_n/],
  ] as const)("%s = %s is a BadConfigError naming it", async (key, value, msg) => {
    for (const run of [() => lm.generate(inputs(), { [key]: value } as never), async () => lm.generateSync(inputs(), { [key]: value } as never)]) {
      const e = await run().then(() => undefined, (x: unknown) => x);
      expect(e, `${key}=${String(value)}`).toBeInstanceOf(BadConfigError);
      expect((e as Error).message).toMatch(msg);
    }
  });

  it("the facade's option names are the engine's (crates/t5-wasm/src/options.rs)", async () => {
    const w = await initWasm();
    expect([...GENERATE_KEYS].sort()).toEqual(w.generateOptionNames().sort());
  });

  it("sampling without a seed draws a fresh one per call; a seed stays reproducible", async () => {
    const opts = { do_sample: true, top_k: 0, temperature: 2, max_new_tokens: 12, min_new_tokens: 12 };
    const draws = await Promise.all([1, 2, 3].map(() => lm.generate(inputs(), opts)));
    expect(new Set(draws.map((d) => JSON.stringify(d))).size).toBeGreaterThan(1);
    const a = await lm.generate(inputs(), { ...opts, seed: 9 });
    expect(await lm.generate(inputs(), { ...opts, seed: 9 })).toEqual(a);
  });
});

describe("TextStreamer (transformers.js)", () => {
  const one = () => [o.input_ids[0]!.slice(0, o.attention_mask[0]!.filter((x) => x === 1).length)];

  it("skip_prompt, skip_special_tokens, callback_function without a trailing newline", async () => {
    const seq = greedy.sequences_single[0]![0]!;
    const run = async (opts: ConstructorParameters<typeof TextStreamer>[1]) => {
      const pieces: string[] = [];
      await lm.generate(one(), { ...greedy.kwargs, streamer: new TextStreamer(tok, { ...opts, callback_function: (t) => pieces.push(t) }) });
      return pieces.join("");
    };
    expect(await run({})).toBe(tok.decode(seq, { skip_special_tokens: true }));
    // the prompt is the decoder start token: shown unless skipped when special tokens are kept
    expect(await run({ skip_special_tokens: false })).toBe(tok.decode(seq, { skip_special_tokens: false }));
    expect(await run({ skip_special_tokens: false, skip_prompt: true })).toBe(tok.decode(seq.slice(1), { skip_special_tokens: false }));
  });

  it("a batch > 1 is a clear error", async () => {
    await expect(lm.generate(inputs(), { max_new_tokens: 2, streamer: new TextStreamer(tok, { callback_function: () => {} }) })).rejects.toThrow(/batch of 1/);
  });
});

describe("callable async heads", () => {
  const { json: h } = headsOracle();

  it("T5ForSequenceClassification", async () => {
    const m = await AutoModelForSequenceClassification.from_pretrained(headsDir("seq-cls"));
    try {
      const out = await m({ input_ids: h.seq_cls.input_ids, attention_mask: h.seq_cls.attention_mask });
      expectTensor("seq_cls.logits", out.logits);
      expect(typeof m).toBe("function");
    } finally {
      m.dispose();
    }
  });

  it("T5ForTokenClassification and T5ForQuestionAnswering", async () => {
    const t = await T5ForTokenClassification.from_pretrained(headsDir("token-cls"));
    const q = await T5ForQuestionAnswering.from_pretrained(headsDir("qa"));
    try {
      const a = await t({ input_ids: h.token_cls.input_ids, attention_mask: h.token_cls.attention_mask });
      expect(a.logits.data).toEqual(t.forwardSync({ input_ids: h.token_cls.input_ids, attention_mask: h.token_cls.attention_mask }).logits.data);
      const x = { input_ids: h.qa.input_ids, attention_mask: h.qa.attention_mask };
      const b = await q(x);
      expect(b.start_logits.data).toEqual(q.forwardSync(x).start_logits.data);
    } finally {
      t.dispose();
      q.dispose();
    }
  });
});
