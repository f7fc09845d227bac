/**
 * Pipelines against transformers: text-classification and token-classification against transformers 5.24's
 * pipelines, question-answering against transformers 4.57.1's pipeline, summarization / translation against
 * transformers 4's logic on the same models,
 * feature-extraction against the encoder's hidden states (transformers.js pooling). Labels, words, offsets and
 * texts exact; scores within 1e-4 + 4 × their fp64 spread. Batched inputs of mixed lengths give the results of one
 * input at a time.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AutoTokenizer,
  BadInputError,
  pipeline,
  T5EncoderModel,
  T5ForConditionalGeneration,
  T5ForQuestionAnswering,
  T5ForSequenceClassification,
  T5ForTokenClassification,
  type T5Tokenizer,
} from "../ts/src/index.js";
import { expectScore, expectTensor, headsDir, headsOracle, type Json } from "./helpers/heads.js";
import { modelDir } from "./helpers/oracle.js";

const { json: o } = headsOracle();
const P = o.pipelines;

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

let tok: T5Tokenizer;
beforeAll(async () => {
  tok = await AutoTokenizer.fromPretrained(headsDir("seq-cls"));
});
afterAll(() => tok?.dispose());

describe("text-classification", () => {
  const tc32 = P.text_classification["torch.float32"];
  const tc64 = P.text_classification["torch.float64"];
  const texts: string[] = o.seq_cls.texts;

  it("outputs and options as transformers' pipeline", async () => {
    const clf = await pipeline("text-classification", headsDir("seq-cls"));
    try {
      expect(clf.model).toBeInstanceOf(T5ForSequenceClassification);
      expectLike("default", await clf(texts), tc32.default, tc64.default);
      expectLike("top_k_none", await clf(texts, { top_k: null }), tc32.top_k_none, tc64.top_k_none);
      expectLike("top_k_2", await clf(texts[0]!, { top_k: 2 }), tc32.top_k_2, tc64.top_k_2);
      expectLike("sigmoid", await clf(texts, { function_to_apply: "sigmoid", top_k: null }), tc32.sigmoid, tc64.sigmoid);
      expectLike("none", await clf(texts[1]!, { function_to_apply: "none", top_k: null }), tc32.none, tc64.none);
      expectLike("pair", await clf({ text: texts[0]!, text_pair: texts[1]! }), tc32.pair, tc64.pair);
      // one text: a one-element list, as transformers
      expectLike("single", await clf(texts[2]!), [tc32.default[2]], [tc64.default[2]]);
    } finally {
      clf.dispose();
    }
  });

  it("a batch of mixed lengths gives the results of one text at a time (sentiment-analysis alias)", async () => {
    const m = await T5ForSequenceClassification.fromPretrained(headsDir("seq-cls"));
    const clf = await pipeline("sentiment-analysis", m, { tokenizer: tok });
    try {
      const batched = await clf(texts, { batch_size: 3, top_k: null });
      expectLike("batched", batched, tc32.top_k_none, tc64.top_k_none);
      clf.dispose();
      expect(m.disposed).toBe(false);
    } finally {
      m.dispose();
    }
  });
});

describe("token-classification", () => {
  const t32 = P.token_classification["torch.float32"];
  const t64 = P.token_classification["torch.float64"];
  const texts: string[] = o.token_cls.texts;

  /** transformers' offsets index Python strings (code points); ours index JavaScript strings (UTF-16 units). */
  const js = (text: string, ents: Json[]) => {
    const at = (i: number) => Array.from(text).slice(0, i).join("").length;
    return ents.map((e) => ({ ...e, start: at(e.start), end: at(e.end) }));
  };
  const jsAll = (lists: Json[][]) => lists.map((l, i) => js(texts[i]!, l));

  it("entities with offsets (none, ignore_labels, simple)", async () => {
    const ner = await pipeline("token-classification", headsDir("token-cls"));
    try {
      expect(texts[1]).toContain("😀"); // exercises the index conversion
      expectLike("none", await ner(texts), jsAll(t32.none), t64.none);
      expectLike("none_all", await ner(texts[0]!, { ignore_labels: [] }), js(texts[0]!, t32.none_all), t64.none_all);
      expectLike("simple", await ner(texts, { aggregation_strategy: "simple" }), jsAll(t32.simple), t64.simple);
      expectLike("batched", await ner(texts, { batch_size: 3 }), jsAll(t32.none), t64.none);
      for (const strategy of ["first", "average", "max"] as const) {
        expectLike(strategy, await ner(texts, { aggregation_strategy: strategy }), jsAll(t32[strategy]), t64[strategy]);
      }
    } finally {
      ner.dispose();
    }
  });

  it("offsets are JavaScript string indices (text after an astral character)", async () => {
    const ner = await pipeline("ner", headsDir("token-cls"));
    try {
      const text = "😀 Berlin and Paris";
      const ents = (await ner(text, { ignore_labels: [] })) as { word: string; start: number; end: number }[];
      const berlin = ents.find((e) => e.word === "▁Berlin")!;
      expect(text.slice(berlin.start, berlin.end)).toBe("Berlin");
    } finally {
      ner.dispose();
    }
  });
});

describe("question-answering", () => {
  const q32 = P.question_answering["torch.float32"];
  const q64 = P.question_answering["torch.float64"];
  const ex: { question: string; context: string }[] = o.qa.examples;

  it("answers as transformers 4.57's pipeline (top_k, handle_impossible_answer)", async () => {
    const m = await T5ForQuestionAnswering.fromPretrained(headsDir("qa"));
    const qa = await pipeline("question-answering", m, { tokenizer: tok });
    try {
      expectLike("top1", await qa(ex), q32.top1, q64.top1);
      expectLike("top3", await qa(ex[0]!, { top_k: 3 }), q32.top3, q64.top3);
      expectLike("impossible", await qa(ex[1]!, { handle_impossible_answer: true, top_k: 2 }), q32.impossible, q64.impossible);
    } finally {
      qa.dispose();
      m.dispose();
    }
  });
});

describe("feature-extraction", () => {
  const texts: string[] = o.seq_cls.texts;
  it("raw hidden states, mean pooling, normalize; batched = one at a time", async () => {
    const fe = await pipeline("feature-extraction", modelDir("tiny-t5"));
    try {
      expect(fe.model).toBeInstanceOf(T5EncoderModel);
      for (let i = 0; i < texts.length; i++) {
        const raw = await fe(texts[i]!);
        expectTensor(`fe.raw.${i}`, { data: raw.data, dims: raw.dims.slice(1) });
        const mean = await fe(texts[i]!, { pooling: "mean" });
        expectTensor(`fe.mean.${i}`, { data: mean.data, dims: mean.dims.slice(1) });
        const norm = await fe(texts[i]!, { pooling: "mean", normalize: true });
        expectTensor(`fe.norm.${i}`, { data: norm.data, dims: norm.dims.slice(1) });
      }
      const batch = await fe(texts, { pooling: "mean", normalize: true });
      const d = batch.dims[1]!;
      expect(batch.dims).toEqual([texts.length, d]);
      for (let i = 0; i < texts.length; i++) expectTensor(`fe.norm.${i}`, { data: batch.data.subarray(i * d, (i + 1) * d), dims: [d] });
      const cls = await fe(texts, { pooling: "cls" });
      const raw0 = await fe(texts[0]!);
      expect(Array.from(cls.data.subarray(0, d))).toEqual(Array.from(raw0.data.subarray(0, d)));
    } finally {
      fe.dispose();
    }
  });
});

describe("summarization and translation", () => {
  let lm: T5ForConditionalGeneration;
  beforeAll(async () => {
    lm = await T5ForConditionalGeneration.fromPretrained(modelDir("tiny-t5"));
    // the oracle's task_specific_params (tiny-t5's config.json has none)
    (lm.config as { task_specific_params: unknown }).task_specific_params = P.task_specific_params;
  });
  afterAll(() => lm?.dispose());
  const texts: string[] = o.seq_cls.texts;

  it("summarization: summary_text, preset from task_specific_params", async () => {
    const s = await pipeline("summarization", lm, { tokenizer: tok });
    expect(await s(texts)).toEqual(P.summarization);
    expect(await s(texts, { batch_size: 3 })).toEqual(P.summarization);
    expect(await s(texts[1]!)).toEqual([P.summarization[1]]);
  });

  it("translation_en_to_de and translation: prefix from task_specific_params, translation_text", async () => {
    for (const task of ["translation_en_to_de", "translation"] as const) {
      const t = await pipeline(task, lm, { tokenizer: tok });
      expect(await t(texts)).toEqual(P.translation_en_to_de);
      expect(await t(texts, { batch_size: 2 })).toEqual(P.translation_en_to_de);
    }
  });

  it("typed errors: unknown task, wrong model class", async () => {
    await expect(pipeline("fill-mask" as never, lm, { tokenizer: tok })).rejects.toThrow(BadInputError);
    await expect(pipeline("text-classification", lm, { tokenizer: tok })).rejects.toThrow(BadInputError);
    const t = await pipeline("translation_en_to_fr", lm, { tokenizer: tok });
    // no preset for this pair: no prefix, still runs
    expect((await t(texts[0]!, { max_new_tokens: 2 })).length).toBe(1);
  });
});

describe("model classes", () => {
  it("token classification pipeline needs T5ForTokenClassification", async () => {
    const m = await T5ForTokenClassification.fromPretrained(headsDir("token-cls"));
    try {
      await expect(pipeline("question-answering", m as never, { tokenizer: tok })).rejects.toThrow(BadInputError);
    } finally {
      m.dispose();
    }
  });
});
