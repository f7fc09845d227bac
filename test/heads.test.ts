/**
 * The task heads and transformers' optional outputs against the oracle of scripts/make_head_fixtures.py:
 * logits / losses / hidden states / attentions / cached keys and values within 1e-4 + 4 × fp64_diff.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AutoModel,
  AutoModelForQuestionAnswering,
  AutoModelForSequenceClassification,
  AutoModelForTokenClassification,
  AutoTokenizer,
  BadInputError,
  PastKeyValues,
  T5EncoderModel,
  T5ForConditionalGeneration,
  T5ForQuestionAnswering,
  T5ForSequenceClassification,
  T5ForTokenClassification,
  T5Model,
} from "../ts/src/index.js";
import { wasmMemory } from "../ts/src/wasm.js";
import { expectScalar, expectTensor, headsDir, headsOracle } from "./helpers/heads.js";
import { modelDir } from "./helpers/oracle.js";

const { json: o } = headsOracle();

describe("T5ForSequenceClassification", () => {
  let m: T5ForSequenceClassification;
  beforeAll(async () => {
    m = await AutoModelForSequenceClassification.fromPretrained(headsDir("seq-cls"));
  });
  afterAll(() => m?.dispose());
  const c = o.seq_cls;

  it("labels from config.json", () => {
    expect(m.config.num_labels).toBe(3);
    expect(m.num_labels).toBe(3);
    expect(m.config.id2label).toEqual({ "0": "negative", "1": "neutral", "2": "positive" });
    expect(m.config.label2id).toEqual({ negative: 0, neutral: 1, positive: 2 });
  });

  it("logits and the single-label loss (integer labels)", () => {
    const out = m.forwardSync({ input_ids: c.input_ids, attention_mask: c.attention_mask, labels: c.labels });
    expectTensor("seq_cls.logits", out.logits);
    expectScalar("seq_cls.loss_single", out.loss);
  });

  it("multi-label loss (float targets)", () => {
    const out = m.forwardSync({ input_ids: c.input_ids, attention_mask: c.attention_mask, labels: c.multi_labels });
    expectScalar("seq_cls.loss_multi", out.loss);
  });

  it("explicit decoder_input_ids", () => {
    const out = m.forwardSync({ input_ids: c.input_ids, attention_mask: c.attention_mask, decoder_input_ids: c.decoder_input_ids });
    expectTensor("seq_cls.logits_dec", out.logits);
  });

  it("each row alone gives the batched row", () => {
    const { tensors } = headsOracle();
    const want = tensors.get("seq_cls.logits")!;
    c.input_ids.forEach((row: number[], r: number) => {
      const len = c.attention_mask[r].reduce((a: number, b: number) => a + b, 0);
      const out = m.forwardSync({ input_ids: [row.slice(0, len)] });
      const w = want.data.subarray(r * 3, r * 3 + 3);
      out.logits.data.forEach((x, j) => expect(Math.abs(x - w[j]!), `row ${r}`).toBeLessThanOrEqual(1e-4 + 4 * o.fp64_diff["seq_cls.logits"]));
    });
  });

  it("rows with different EOS counts: transformers' error, typed", () => {
    expect(() => m.forwardSync({ input_ids: c.bad_input_ids })).toThrow(BadInputError);
    expect(() => m.forwardSync({ input_ids: c.bad_input_ids })).toThrow(c.bad_error);
  });

  it("optional outputs", () => {
    const out = m.forwardSync({ input_ids: c.input_ids, attention_mask: c.attention_mask, output_hidden_states: true, output_attentions: true });
    expect(out.encoder_hidden_states).toHaveLength(3);
    expect(out.decoder_hidden_states).toHaveLength(3);
    expect(out.cross_attentions).toHaveLength(2);
    expect(out.decoder_attentions![0]!.dims).toEqual([3, 4, c.input_ids[0].length, c.input_ids[0].length]);
  });
});

describe("sequence classification problem types", () => {
  const c = o.seq_cls_small;
  it("regression (num_labels 1)", async () => {
    const m = await T5ForSequenceClassification.fromPretrained(headsDir("seq-cls-regression"));
    try {
      const out = m.forwardSync({ input_ids: c.input_ids, attention_mask: c.attention_mask, labels: c.regression_labels });
      expectTensor("seq_cls_regression.logits", out.logits);
      expectScalar("seq_cls_regression.loss", out.loss);
    } finally {
      m.dispose();
    }
  });
  it("multi_label_classification from config.json", async () => {
    const m = await T5ForSequenceClassification.fromPretrained(headsDir("seq-cls-multi"));
    try {
      expect(m.config.problem_type).toBe("multi_label_classification");
      const out = m.forwardSync({ input_ids: c.input_ids, attention_mask: c.attention_mask, labels: c.multi_labels });
      expectTensor("seq_cls_multi.logits", out.logits);
      expectScalar("seq_cls_multi.loss", out.loss);
    } finally {
      m.dispose();
    }
  });
});

describe("T5ForTokenClassification", () => {
  it("logits and loss", async () => {
    const m = await AutoModelForTokenClassification.fromPretrained(headsDir("token-cls"));
    try {
      const c = o.token_cls;
      const out = m.forwardSync({ input_ids: c.input_ids, attention_mask: c.attention_mask, labels: c.labels });
      expectTensor("token_cls.logits", out.logits);
      expectScalar("token_cls.loss", out.loss);
      expect(m.config.id2label!["1"]).toBe("B-PER");
    } finally {
      m.dispose();
    }
  });
});

describe("T5ForQuestionAnswering", () => {
  it("start / end logits and loss (an out-of-range position is ignored)", async () => {
    const m = await AutoModelForQuestionAnswering.fromPretrained(headsDir("qa"));
    try {
      const c = o.qa;
      const out = m.forwardSync({ input_ids: c.input_ids, attention_mask: c.attention_mask, start_positions: c.start_positions, end_positions: c.end_positions });
      expectTensor("qa.start_logits", out.start_logits);
      expectTensor("qa.end_logits", out.end_logits);
      expectScalar("qa.loss", out.loss);
    } finally {
      m.dispose();
    }
  });
});

describe("AutoModel picks the class from architectures", () => {
  it.each([
    ["heads/seq-cls", T5ForSequenceClassification],
    ["heads/token-cls", T5ForTokenClassification],
    ["heads/qa", T5ForQuestionAnswering],
    ["tiny-t5", T5ForConditionalGeneration],
  ] as const)("%s", async (dir, cls) => {
    const m = await AutoModel.fromPretrained(modelDir(dir));
    try {
      expect(m).toBeInstanceOf(cls);
    } finally {
      m.dispose();
    }
  });
});

describe("optional outputs (tiny-t5)", () => {
  const c = o.outputs;
  let lm: T5ForConditionalGeneration;
  beforeAll(async () => {
    lm = await T5ForConditionalGeneration.fromPretrained(modelDir("tiny-t5"));
  });
  afterAll(() => lm?.dispose());

  it("hidden states and attentions (encoder, decoder, cross) with a decoder_attention_mask", () => {
    const out = lm.forwardSync({
      input_ids: c.input_ids,
      attention_mask: c.attention_mask,
      decoder_input_ids: c.decoder_input_ids,
      decoder_attention_mask: c.decoder_attention_mask,
      output_hidden_states: true,
      output_attentions: true,
    });
    expectTensor("outputs.logits", out.logits);
    for (const name of ["encoder_hidden_states", "decoder_hidden_states", "encoder_attentions", "decoder_attentions", "cross_attentions"] as const) {
      const list = out[name]!;
      expect(list, name).toHaveLength(c.counts[name]);
      list.forEach((t, i) => expectTensor(`outputs.${name}.${i}`, t));
    }
  });

  it("past_key_values returned, its tensors, and given back with encoder_outputs", () => {
    const split: number = c.split;
    const first = lm.forwardSync({
      input_ids: c.input_ids,
      attention_mask: c.attention_mask,
      decoder_input_ids: c.decoder_input_ids.map((r: number[]) => r.slice(0, split)),
      decoder_attention_mask: c.decoder_attention_mask.map((r: number[]) => r.slice(0, split)),
      use_cache: true,
    });
    expectTensor("outputs.first_logits", first.logits);
    const pkv = first.past_key_values!;
    expect(pkv).toBeInstanceOf(PastKeyValues);
    expect(pkv.get_seq_length()).toBe(split);
    const legacy = pkv.to_legacy_cache();
    legacy.forEach((layer, l) => ["self_k", "self_v", "cross_k", "cross_v"].forEach((n, j) => expectTensor(`outputs.past.${l}.${n}`, layer[j])));
    const second = lm.forwardSync({
      encoder_outputs: { last_hidden_state: first.encoder_last_hidden_state },
      attention_mask: c.attention_mask,
      decoder_input_ids: c.decoder_input_ids.map((r: number[]) => r.slice(split)),
      decoder_attention_mask: c.decoder_attention_mask,
      past_key_values: pkv,
    });
    expectTensor("outputs.second_logits", second.logits);
    expect(second.past_key_values).toBe(pkv); // updated in place, as transformers' cache
    expect(pkv.get_seq_length()).toBe(c.decoder_input_ids[0].length);
    pkv.dispose();
    // the legacy layout given back in
    const again = lm.forwardSync({
      input_ids: c.input_ids,
      attention_mask: c.attention_mask,
      decoder_input_ids: c.decoder_input_ids.map((r: number[]) => r.slice(split)),
      decoder_attention_mask: c.decoder_attention_mask,
      past_key_values: legacy,
    });
    expectTensor("outputs.second_logits", again.logits);
    again.past_key_values!.dispose();
  });

  it("T5Model and T5EncoderModel take the options too", async () => {
    const base = await T5Model.fromPretrained(modelDir("tiny-t5"));
    const enc = await T5EncoderModel.fromPretrained(modelDir("tiny-t5"));
    try {
      const b = base.forwardSync({ input_ids: c.input_ids, attention_mask: c.attention_mask, decoder_input_ids: c.decoder_input_ids, output_attentions: true });
      expect(b.cross_attentions).toHaveLength(2);
      const e = enc.forwardSync({ input_ids: c.input_ids, attention_mask: c.attention_mask, output_hidden_states: true, output_attentions: true });
      e.hidden_states!.forEach((t, i) => expectTensor(`outputs.encoder_hidden_states.${i}`, t));
      e.attentions!.forEach((t, i) => expectTensor(`outputs.encoder_attentions.${i}`, t));
    } finally {
      base.dispose();
      enc.dispose();
    }
  });
});

describe("the engine's result structs are freed", () => {
  it("repeated full forwards, legacy caches and tokenizer calls leave the wasm memory where it was", async () => {
    const dir = modelDir("tiny-t5");
    const [lm, tok] = await Promise.all([T5ForConditionalGeneration.fromPretrained(dir), AutoTokenizer.fromPretrained(dir)]);
    try {
      const texts = ["translate English to German: The house is wonderful.", "summarize: studies have shown that owning a dog is good for you"];
      const enc = tok(texts, { padding: true });
      const round = () => {
        // every tensor kind of forwardFull (logits [2, 3, vocab] alone are ~0.8 MB a call), the cache's layers, and
        // both detailed tokenizer paths
        const out = lm.forwardSync({ ...enc, decoder_input_ids: [[0, 5, 6], [0, 7, 8]], output_hidden_states: true, output_attentions: true, use_cache: true });
        expect(out.logits.data).toBeInstanceOf(Float32Array);
        expect(out.decoder_hidden_states!.length).toBeGreaterThan(0);
        out.past_key_values!.to_legacy_cache();
        out.past_key_values!.dispose();
        tok(texts, { padding: true, return_offsets_mapping: true, return_special_tokens_mask: true });
        tok.encodeWithOffsets(texts[0]!, texts[1]);
      };
      for (let i = 0; i < 5; i++) round();
      const mem = wasmMemory()!;
      const before = mem.buffer.byteLength;
      for (let i = 0; i < 100; i++) round();
      expect(mem.buffer.byteLength).toBe(before);
    } finally {
      lm.dispose();
      tok.dispose();
    }
  });
});
