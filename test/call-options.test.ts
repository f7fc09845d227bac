/**
 * Tokenizer call options, left-padded models and the windowed pipelines against scripts/make_pipeline_fixtures.py
 * (test/fixtures/pipelines/): padding_side as a property, a load option and a call option; pairs truncated
 * "only_second" into windows with a stride (ids, masks, offsets, special-tokens mask, word ids, sequence ids,
 * overflow_to_sample_mapping); is_split_into_words; a left-padded batch through the encoder and greedy generation
 * (transformers' outputs, and each row's ids alone); transformers 4.57's QuestionAnsweringPipeline on a context split
 * into several windows; transformers 5.24's TokenClassificationPipeline on pre-split words. Ids, offsets, words and
 * labels exact; tensors within 1e-4 + 4 × fp64 spread; scores within 1e-4 + 4 × their fp64 spread.
 */

import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AutoTokenizer,
  BadInputError,
  pipeline,
  T5EncoderModel,
  T5ForConditionalGeneration,
  T5ForQuestionAnswering,
  T5ForTokenClassification,
  TokenizerError,
  type BatchEncoding,
  type T5Tokenizer,
} from "../ts/src/index.js";
import { expectScore, headsDir, type Json } from "./helpers/heads.js";
import { compareTensor, FIXTURES, modelDir } from "./helpers/oracle.js";
import { readF32Tensors } from "./helpers/safetensors.js";

const o: Json = JSON.parse(readFileSync(`${FIXTURES}pipelines/oracle.json`, "utf8"));
const T = o.tokenizer;
const texts: string[] = o.left_padded.texts;

/** Python str index → JavaScript string index. */
const jsIndex = (s: string, i: number) => Array.from(s).slice(0, i).join("").length;

/** Same structure; `score` within tolerance of the float32 result (spread from the float64 one), the rest exact. */
function expectLike(what: string, ours: Json, f32: Json, f64: Json) {
  if (Array.isArray(f32)) {
    expect(Array.isArray(ours), `${what}: array`).toBe(true);
    expect(ours.length, `${what}: length`).toBe(f32.length);
    f32.forEach((x: Json, i: number) => expectLike(`${what}[${i}]`, ours[i], x, f64[i]));
  } else if (f32 !== null && typeof f32 === "object") {
    expect(Object.keys(ours).sort(), `${what}: keys`).toEqual(Object.keys(f32).sort());
    for (const k of Object.keys(f32)) {
      if (k === "score") expectScore(`${what}.score`, ours[k], f32[k], f64[k]);
      else expectLike(`${what}.${k}`, ours[k], f32[k], f64[k]);
    }
  } else {
    expect(ours, what).toEqual(f32);
  }
}

/** Every row of a BatchEncoding as transformers has it; `sources(row, token)` is the string the offsets index. */
function expectRows(what: string, enc: BatchEncoding, rows: Json[], sources: (row: number, token: number) => string | undefined) {
  expect(enc.input_ids.length, `${what}: rows`).toBe(rows.length);
  rows.forEach((w: Json, r: number) => {
    expect(enc.input_ids[r], `${what}[${r}] input_ids`).toEqual(w.input_ids);
    expect(enc.attention_mask[r], `${what}[${r}] attention_mask`).toEqual(w.attention_mask);
    expect(enc.special_tokens_mask![r], `${what}[${r}] special_tokens_mask`).toEqual(w.special_tokens_mask);
    expect(enc.word_ids(r), `${what}[${r}] word_ids`).toEqual(w.word_ids);
    expect(enc.sequence_ids(r), `${what}[${r}] sequence_ids`).toEqual(w.sequence_ids);
    const want = (w.offset_mapping as [number, number][]).map(([a, b], k) => {
      const s = sources(r, k);
      return s === undefined ? [a, b] : [jsIndex(s, a), jsIndex(s, b)];
    });
    expect(enc.offset_mapping![r], `${what}[${r}] offset_mapping`).toEqual(want);
  });
}

const DETAILS = { return_offsets_mapping: true, return_special_tokens_mask: true } as const;

let tok: T5Tokenizer;
beforeAll(async () => {
  tok = await AutoTokenizer.fromPretrained(modelDir("tiny-t5"));
});
afterAll(() => tok?.dispose());

describe("padding side", () => {
  it("property, load option and call option give transformers' left padding", async () => {
    expect(tok.padding_side).toBe("right");
    const call = tok(texts, { padding: true, padding_side: "left" });
    expect(call).toEqual({ input_ids: T.left_call_option.input_ids, attention_mask: T.left_call_option.attention_mask });
    const maxLen = tok(texts, { padding: "max_length", max_length: T.left_max_length.max_length, truncation: true, padding_side: "left" });
    expect(maxLen.input_ids).toEqual(T.left_max_length.input_ids);
    expect(maxLen.attention_mask).toEqual(T.left_max_length.attention_mask);
    expect(tok.padding_side, "a call option does not change the tokenizer").toBe("right");

    const left = await AutoTokenizer.fromPretrained(modelDir("tiny-t5"), { padding_side: "left" });
    try {
      expect(left.padding_side).toBe("left");
      expect(left(texts, { padding: true })).toEqual({ input_ids: T.left_load_option.input_ids, attention_mask: T.left_load_option.attention_mask });
      const trunc = left(texts, { padding: true, truncation: true, max_length: T.left_truncated.max_length });
      expect(trunc.input_ids).toEqual(T.left_truncated.input_ids);
      expect(trunc.attention_mask).toEqual(T.left_truncated.attention_mask);
      const right = left(texts, { padding: true, padding_side: "right" });
      expect(right.input_ids).toEqual(T.right_call_option_on_left.input_ids);
      expect(right.attention_mask).toEqual(T.right_call_option_on_left.attention_mask);
    } finally {
      left.dispose();
    }

    const prop = await AutoTokenizer.fromPretrained(modelDir("tiny-t5"));
    try {
      prop.padding_side = "left";
      expect(prop(texts, { padding: true }).input_ids).toEqual(T.left_property.input_ids);
      const d = T.details_left;
      expectRows("details_left", prop(d.texts, { padding: true, ...DETAILS }), d.rows, (r) => d.texts[r]);
      prop.padding_side = "right";
      expect(prop(texts, { padding: true }).input_ids).toEqual(T.right_call_option_on_left.input_ids);
      expect(() => {
        prop.padding_side = "top" as "left";
      }).toThrow(BadInputError);
      expect(() => prop(texts, { padding: true, padding_side: "middle" as "left" })).toThrow(BadInputError);
      await expect(AutoTokenizer.fromPretrained(modelDir("tiny-t5"), { padding_side: "up" as "left" })).rejects.toThrow(BadInputError);
    } finally {
      prop.dispose();
    }
  });
});

describe("word ids, sequence ids, windows", () => {
  it("pre-split words (is_split_into_words): ids, word ids, offsets within each word", () => {
    const one = T.words_single;
    expectRows("words_single", tok(one.words, { is_split_into_words: true, ...DETAILS }), one.rows, (_r, k) => {
      const w = one.rows[0].word_ids[k];
      return w === null ? undefined : one.words[w];
    });
    const b = T.words_batch;
    expectRows("words_batch", tok(b.words, { is_split_into_words: true, padding: true, ...DETAILS }), b.rows, (r, k) => {
      const w = b.rows[r].word_ids[k];
      return w === null ? undefined : b.words[r][w];
    });
    expect(() => tok([["a"], []], { is_split_into_words: true })).toThrow(BadInputError);
    expect(() => tok([["a"]])).toThrow(BadInputError);
  });

  it("question / context windows: truncation only_second with a stride and overflowing tokens", () => {
    for (const [name, w] of Object.entries(T.windows) as [string, Json][]) {
      const enc = tok(w.question, w.context, {
        truncation: "only_second",
        max_length: w.max_length,
        stride: w.stride,
        return_overflowing_tokens: true,
        padding: w.padding ?? false,
        ...DETAILS,
      });
      expect(enc.input_ids.length, name).toBeGreaterThan(Array.isArray(w.question) ? w.question.length : 1);
      expect(enc.overflow_to_sample_mapping, name).toEqual(w.overflow_to_sample_mapping);
      const pick = (x: string | string[], r: number) => (Array.isArray(x) ? x[w.overflow_to_sample_mapping[r]]! : x);
      expectRows(name, enc, w.rows, (r, k) => {
        const s = w.rows[r].sequence_ids[k];
        return s === null ? undefined : s === 0 ? pick(w.question, r) : pick(w.context, r);
      });
      // the same pair as text_pair
      if (!Array.isArray(w.question)) {
        const again = tok(w.question, { text_pair: w.context, truncation: "only_second", max_length: w.max_length, stride: w.stride, return_overflowing_tokens: true });
        expect(again.input_ids, name).toEqual(enc.input_ids);
      }
    }
  });

  it("settings the tokenizers crate would panic on are typed errors, and the instance stays usable", () => {
    const w = T.windows["48_16"];
    // a window shorter than the stride: TokenizerError, not an abort of the WebAssembly instance
    expect(() => tok(w.question, w.context, { truncation: "only_second", max_length: 12, stride: 4, return_overflowing_tokens: true })).toThrow(TokenizerError);
    expect(() => tok(w.question, w.context, { truncation: "only_second", max_length: 2 })).toThrow(TokenizerError);
    expect(() => tok(w.context, { truncation: true, max_length: 8, stride: 7, return_overflowing_tokens: true })).toThrow(TokenizerError);
    expect(() => tok(w.context, { truncation: "only_second", max_length: 8 })).toThrow(TokenizerError);
    expect(() => tok(w.context, { truncation: "sideways" as "only_first" })).toThrow(BadInputError);
    expect(() => tok(w.context, { stride: -1 })).toThrow(BadInputError);
    expect(() => tok(w.question, ["a", "b"])).toThrow(BadInputError);
    expect(tok(w.question, w.context, { truncation: "only_second", max_length: 48, stride: 16, return_overflowing_tokens: true }).input_ids).toEqual(
      w.rows.map((r: Json) => r.input_ids),
    );
  });
});

describe("models on a left-padded batch", () => {
  const tensors = readF32Tensors(new Uint8Array(readFileSync(`${FIXTURES}pipelines/oracle.safetensors`)));
  for (const name of ["tiny-t5", "tiny-t5-v1_1"]) {
    it(`${name}: encoder outputs and greedy ids as transformers; each row as the row alone`, async () => {
      const left = await AutoTokenizer.fromPretrained(modelDir(name), { padding_side: "left" });
      const enc = await T5EncoderModel.fromPretrained(modelDir(name));
      const lm = await T5ForConditionalGeneration.fromPretrained(modelDir(name));
      try {
        const lp = o.left_padded;
        const inputs = left(texts, { padding: true });
        expect(inputs.input_ids).toEqual(lp.input_ids);
        expect(inputs.attention_mask[0]![0]).toBe(0);
        const key = `left.${name}.encoder_last_hidden_state`;
        expect(compareTensor(key, enc.forwardSync(inputs).last_hidden_state, tensors.get(key)!, o.fp64_diff[key])).toBeUndefined();
        const seqs = lm.generateSync(inputs, { max_new_tokens: lp.max_new_tokens });
        expect(seqs).toEqual(lp.models[name].sequences);
        texts.forEach((t, i) => {
          const alone = lm.generateSync(left(t), { max_new_tokens: lp.max_new_tokens });
          expect(alone[0], `row ${i} alone`).toEqual(lp.models[name].sequences_single[i]);
          expect(seqs[i]!.slice(0, alone[0]!.length), `row ${i} of the batch`).toEqual(alone[0]);
        });
      } finally {
        left.dispose();
        enc.dispose();
        lm.dispose();
      }
    });
  }
});

describe("question-answering over several windows (transformers 4.57's pipeline)", () => {
  const cases = o.question_answering.cases;
  const windows = o.question_answering.windows;

  it("answers, scores and spans of each case", async () => {
    const m = await T5ForQuestionAnswering.fromPretrained(headsDir("qa"));
    const qa = await pipeline("question-answering", m, { tokenizer: tok });
    const left = await AutoTokenizer.fromPretrained(modelDir("tiny-t5"), { padding_side: "left" });
    const qaLeft = await pipeline("question-answering", m, { tokenizer: left });
    try {
      for (const [name, c] of Object.entries(cases) as [string, Json][]) {
        if (name !== "left_tokenizer") expect(windows[name], `${name}: windows`).toBeGreaterThan(1);
        const p = c.padding_side === "left" ? qaLeft : qa;
        const ours = await p(c.inputs, c.options);
        expectLike(name, ours, c["torch.float32"], c["torch.float64"]);
      }
    } finally {
      qa.dispose();
      qaLeft.dispose();
      left.dispose();
      m.dispose();
    }
  });

  it("bad options are typed errors", async () => {
    const m = await T5ForQuestionAnswering.fromPretrained(headsDir("qa"));
    const qa = await pipeline("question-answering", m, { tokenizer: tok });
    try {
      const x = cases.small_top1.inputs;
      await expect(qa(x, { doc_stride: 50, max_seq_len: 40 })).rejects.toThrow(BadInputError);
      await expect(qa(x, { max_seq_len: 0 })).rejects.toThrow(BadInputError);
      await expect(qa(x, { max_question_len: -1 })).rejects.toThrow(BadInputError);
      await expect(qa(x, { top_k: 0 })).rejects.toThrow(BadInputError);
      // the question leaves no room for a window of context longer than the stride
      await expect(qa(x, { max_seq_len: 14, doc_stride: 6 })).rejects.toThrow(TokenizerError);
      expect(((await qa(x, { max_seq_len: 48, doc_stride: 16 })) as { answer: string }).answer).toBe(cases.small_top1["torch.float32"].answer);
    } finally {
      qa.dispose();
      m.dispose();
    }
  });
});

describe("token-classification on pre-split words (is_split_into_words)", () => {
  const tc = o.token_classification_words;
  const f32 = tc["torch.float32"];
  const f64 = tc["torch.float64"];
  const words: string[][] = tc.words;
  /** transformers' start / end index the words joined by the delimiter (Python indices). */
  const js = (ws: string[], ents: Json[], delimiter = " ") => ents.map((e) => ({ ...e, start: jsIndex(ws.join(delimiter), e.start), end: jsIndex(ws.join(delimiter), e.end) }));
  const jsAll = (lists: Json[][]) => lists.map((l, i) => js(words[i]!, l));

  it("entities with every aggregation strategy, batched and one at a time", async () => {
    const m = await T5ForTokenClassification.fromPretrained(headsDir("token-cls"));
    const ner = await pipeline("token-classification", m, { tokenizer: tok });
    try {
      expect(words[1]!.join(" ")).toContain("😀");
      const split = { is_split_into_words: true } as const;
      expectLike("none", await ner(words, split), jsAll(f32.none), f64.none);
      expectLike("batched", await ner(words, { ...split, batch_size: 3 }), jsAll(f32.none), f64.none);
      expectLike("none_all", await ner(words[0]!, { ...split, ignore_labels: [] }), [js(words[0]!, f32.none_all[0])], f64.none_all);
      for (const s of ["simple", "first", "average", "max"] as const) {
        expectLike(s, await ner(words, { ...split, aggregation_strategy: s }), jsAll(f32[s]), f64[s]);
      }
      expectLike("max_all", await ner(words[1]!, { ...split, aggregation_strategy: "max", ignore_labels: [] }), [js(words[1]!, f32.max_all[0])], f64.max_all);
      expectLike("delimiter", await ner(words[1]!, { ...split, delimiter: "_", ignore_labels: [] }), [js(words[1]!, f32.delimiter[0], "_")], f64.delimiter);
      await expect(ner([["a"], []], split)).rejects.toThrow(BadInputError);
      await expect(ner("a sentence", split)).rejects.toThrow(BadInputError);
    } finally {
      ner.dispose();
      m.dispose();
    }
  });
});
