/**
 * The task heads on WebGPU in Node (Dawn, SwiftShader where there is no GPU): `T5ForSequenceClassification`,
 * `T5ForTokenClassification`, `T5ForQuestionAnswering` loaded with `device: "webgpu"` run the model and the head on
 * the GPU (`WasmGpuModel.forwardFull`), their calls return Promises, and they give transformers' outputs (the
 * oracle of scripts/make_head_fixtures.py, its tolerance) and the CPU's (within 1e-3); so do their pipelines.
 */

import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AutoTokenizer, pipeline, T5ForQuestionAnswering, T5ForSequenceClassification, T5ForTokenClassification, type T5Tokenizer } from "../../ts/src/index.js";
import { BadInputError } from "../../ts/src/errors.js";
import { installNodeWebGpu } from "../../ts/src/webgpu.js";
import { expectScalar, expectTensor, headsDir, headsOracle } from "../helpers/heads.js";

const SWIFTSHADER = "/usr/lib/chromium/vk_swiftshader_icd.json";
if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER)) process.env.VK_ICD_FILENAMES = SWIFTSHADER;

const TOL = 1e-3;
const SLOW = 180_000;

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= worst)) worst = d;
  }
  return worst;
}

/** Pipeline results: the same structure and strings, numbers within 1e-3. */
function expectNear(got: unknown, want: unknown, path = "result"): void {
  if (typeof want === "number") {
    expect(typeof got, path).toBe("number");
    expect(Math.abs((got as number) - want), `${path}: ${got} vs ${want}`).toBeLessThanOrEqual(TOL);
  } else if (Array.isArray(want)) {
    expect(Array.isArray(got), path).toBe(true);
    expect((got as unknown[]).length, path).toBe(want.length);
    want.forEach((w, i) => expectNear((got as unknown[])[i], w, `${path}[${i}]`));
  } else if (want !== null && typeof want === "object") {
    expect(Object.keys(got as object).sort(), path).toEqual(Object.keys(want).sort());
    for (const [k, w] of Object.entries(want)) expectNear((got as Record<string, unknown>)[k], w, `${path}.${k}`);
  } else {
    expect(got, path).toEqual(want);
  }
}

describe("task heads on WebGPU in Node (Dawn)", { timeout: SLOW }, () => {
  const o = headsOracle().json;
  let tok: T5Tokenizer;
  let gpu: T5ForSequenceClassification;
  beforeAll(async () => {
    expect(await installNodeWebGpu(), "the `webgpu` package is a devDependency").toBe(true);
    // a WebGPU model first: the first load picks the single-thread engine build (a threaded one refuses WebGPU)
    gpu = await T5ForSequenceClassification.fromPretrained(headsDir("seq-cls"), { device: "webgpu" });
    tok = await AutoTokenizer.fromPretrained(headsDir("seq-cls"));
  });
  afterAll(() => {
    tok?.dispose();
    gpu?.dispose();
  });

  it("T5ForSequenceClassification: logits and losses as transformers' and the CPU's; calls return Promises", async () => {
    const cpu = await T5ForSequenceClassification.fromPretrained(headsDir("seq-cls"));
    try {
      expect(gpu.device).toBe("webgpu");
      const c = o.seq_cls;
      const inputs = { input_ids: c.input_ids, attention_mask: c.attention_mask, labels: c.labels };
      const pending = gpu.forward(inputs);
      expect(pending).toBeInstanceOf(Promise);
      const g = await pending;
      expectTensor("seq_cls.logits", g.logits);
      expectScalar("seq_cls.loss_single", g.loss);
      expect(maxDiff(g.logits.data, cpu.forwardSync(inputs).logits.data)).toBeLessThanOrEqual(TOL);
      const multi = await gpu({ input_ids: c.input_ids, attention_mask: c.attention_mask, labels: c.multi_labels });
      expectScalar("seq_cls.loss_multi", multi.loss);
      expectTensor("seq_cls.logits_dec", (await gpu.forward({ input_ids: c.input_ids, attention_mask: c.attention_mask, decoder_input_ids: c.decoder_input_ids })).logits);
      // transformers' error for rows with different EOS counts, typed
      await expect(gpu.forward({ input_ids: c.bad_input_ids })).rejects.toThrow(BadInputError);
      // what runs on the CPU engine only is a typed error naming it, not a wrong answer
      await expect(gpu.forward({ input_ids: c.input_ids, output_hidden_states: true })).rejects.toThrow(/output_hidden_states/);
      expect(() => gpu.forwardSync({ input_ids: c.input_ids })).toThrow(BadInputError);
    } finally {
      cpu.dispose();
    }
  });

  it("T5ForTokenClassification and T5ForQuestionAnswering: transformers' logits and losses", async () => {
    const tc = await T5ForTokenClassification.fromPretrained(headsDir("token-cls"), { device: "webgpu" });
    const qa = await T5ForQuestionAnswering.fromPretrained(headsDir("qa"), { device: "webgpu" });
    try {
      const t = o.token_cls;
      const out = await tc.forward({ input_ids: t.input_ids, attention_mask: t.attention_mask, labels: t.labels });
      expectTensor("token_cls.logits", out.logits);
      expectScalar("token_cls.loss", out.loss);
      const q = o.qa;
      const a = await qa.forward({ input_ids: q.input_ids, attention_mask: q.attention_mask, start_positions: q.start_positions, end_positions: q.end_positions });
      expectTensor("qa.start_logits", a.start_logits);
      expectTensor("qa.end_logits", a.end_logits);
      expectScalar("qa.loss", a.loss);
    } finally {
      tc.dispose();
      qa.dispose();
    }
  });

  it("text-classification, token-classification and question-answering pipelines with device: 'webgpu' give the CPU's results", async () => {
    const texts: string[] = o.seq_cls.texts;
    const clfG = await pipeline("text-classification", headsDir("seq-cls"), { device: "webgpu" });
    const clfC = await pipeline("text-classification", headsDir("seq-cls"));
    try {
      expect(clfG.model.device).toBe("webgpu");
      expectNear(await clfG(texts, { top_k: null }), await clfC(texts, { top_k: null }));
    } finally {
      clfG.dispose();
      clfC.dispose();
    }
    const nerG = await pipeline("token-classification", headsDir("token-cls"), { device: "webgpu" });
    const nerC = await pipeline("token-classification", headsDir("token-cls"));
    try {
      const t: string[] = o.token_cls.texts;
      expectNear(await nerG(t, { ignore_labels: [] }), await nerC(t, { ignore_labels: [] }));
    } finally {
      nerG.dispose();
      nerC.dispose();
    }
    const mG = await T5ForQuestionAnswering.fromPretrained(headsDir("qa"), { device: "webgpu" });
    const mC = await T5ForQuestionAnswering.fromPretrained(headsDir("qa"));
    const qaG = await pipeline("question-answering", mG, { tokenizer: tok });
    const qaC = await pipeline("question-answering", mC, { tokenizer: tok });
    try {
      const ex: { question: string; context: string }[] = o.qa.examples;
      expectNear(await qaG(ex, { top_k: 2 }), await qaC(ex, { top_k: 2 }));
    } finally {
      qaG.dispose();
      qaC.dispose();
      mG.dispose();
      mC.dispose();
    }
  });
});
