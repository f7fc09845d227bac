/**
 * `pipeline(task, model, {tokenizer})` with transformers' task names, options and output shapes:
 *
 * - `text2text-generation` → `[{generated_text}]`, `summarization` → `[{summary_text}]`, `translation` /
 *   `translation_xx_to_yy` → `[{translation_text}]` (transformers 4's Text2TextGeneration / Summarization /
 *   TranslationPipeline): prefix (the task's `task_specific_params` entry, else config `prefix`) → tokenize (no
 *   truncation unless asked) → generate (the task's `task_specific_params` as defaults under the call's options) →
 *   decode with `skip_special_tokens=True`, `clean_up_tokenization_spaces=False`. Plain `translation` uses the first
 *   `translation_*` entry of `task_specific_params`, as transformers did.
 * - `feature-extraction` (T5EncoderModel) → a {@link Tensor}, with transformers.js' options `pooling` ("none" |
 *   "mean" | "cls" | "first_token" | "eos" | "last_token") and `normalize`.
 * - `text-classification` (alias `sentiment-analysis`; T5ForSequenceClassification) → transformers 5's
 *   TextClassificationPipeline: `top_k` (default 1: `[{label, score}]`; a number or `null`: the sorted scores) and
 *   `function_to_apply` ("softmax" | "sigmoid" | "none"; default from `problem_type` / `num_labels`).
 * - `token-classification` (alias `ner`; T5ForTokenClassification) → entities `{entity, score, index, word, start,
 *   end}` or, with `aggregation_strategy` "simple" | "first" | "average" | "max", `{entity_group, score, word, start,
 *   end}`; `ignore_labels` (default `["O"]`). `start` / `end` index the input string (JavaScript indices).
 * - `question-answering` (T5ForQuestionAnswering) → `{score, start, end, answer}` (transformers 4's
 *   QuestionAnsweringPipeline for inputs that fit one window: `top_k`, `max_answer_len`, `handle_impossible_answer`,
 *   `align_to_words`).
 *
 * Batched inputs: an array gives one result per input; `batch_size` (default 1) rows run padded together and give
 * the same results as one at a time.
 */

import { BadInputError, DisposedError } from "./errors.js";
import type { LoadOptions, ModelSource } from "./files.js";
import { GENERATE_KEYS, T5EncoderModel, T5ForConditionalGeneration, T5PreTrainedModel, Tensor, type GenerateOptions, type ModelLoadOptions } from "./models.js";
import { T5ForQuestionAnswering, T5ForSequenceClassification, T5ForTokenClassification } from "./heads.js";
import { T5Tokenizer } from "./tokenizer.js";

export interface Text2TextGenerationOutput {
  generated_text: string;
}
export interface SummarizationOutput {
  summary_text: string;
}
export interface TranslationOutput {
  translation_text: string;
}

export interface Text2TextCallOptions extends GenerateOptions {
  /** Truncate inputs to the tokenizer's `model_max_length` (transformers' default: do not truncate). */
  truncation?: boolean;
  /** Accept untruncated inputs longer than `model_max_length` (see `tokenizer.ts`). */
  allow_long_inputs?: boolean;
  /** Texts generated together (padded into one batch). transformers' default: 1. */
  batch_size?: number;
  /** Default false, as in transformers' pipelines. */
  clean_up_tokenization_spaces?: boolean;
}

export interface FeatureExtractionOptions {
  /** transformers.js: "none" (default) | "mean" (over the attention mask) | "cls" / "first_token" | "eos" / "last_token". */
  pooling?: "none" | "mean" | "cls" | "first_token" | "eos" | "last_token";
  /** L2-normalise the last dimension. */
  normalize?: boolean;
}

export interface TextClassificationOptions {
  /** Absent: the best label only (`[{label, score}]` per text); a number / `null`: that many / all, sorted. */
  top_k?: number | null;
  function_to_apply?: "softmax" | "sigmoid" | "none";
  batch_size?: number;
}
export interface TextClassificationOutput {
  label: string;
  score: number;
}

export interface TokenClassificationOptions {
  aggregation_strategy?: "none" | "simple" | "first" | "average" | "max";
  ignore_labels?: string[];
  batch_size?: number;
}
export interface TokenClassificationOutput {
  entity?: string;
  entity_group?: string;
  score: number;
  index?: number;
  word: string;
  start: number;
  end: number;
}

export interface QuestionAnsweringInput {
  question: string;
  context: string;
}
export interface QuestionAnsweringOptions {
  top_k?: number;
  max_answer_len?: number;
  handle_impossible_answer?: boolean;
  align_to_words?: boolean;
}
export interface QuestionAnsweringOutput {
  score: number;
  start: number;
  end: number;
  answer: string;
}

interface PipelineBase<M> {
  readonly task: string;
  readonly model: M;
  readonly tokenizer: T5Tokenizer;
  /** Frees the model and tokenizer that the pipeline loaded itself (not ones passed in). */
  dispose(): void;
}

export interface Text2TextGenerationPipeline extends PipelineBase<T5ForConditionalGeneration> {
  (texts: string | string[], options?: Text2TextCallOptions): Promise<Text2TextGenerationOutput[]>;
}
export interface SummarizationPipeline extends PipelineBase<T5ForConditionalGeneration> {
  (texts: string | string[], options?: Text2TextCallOptions): Promise<SummarizationOutput[]>;
}
export interface TranslationPipeline extends PipelineBase<T5ForConditionalGeneration> {
  (texts: string | string[], options?: Text2TextCallOptions): Promise<TranslationOutput[]>;
}
export interface FeatureExtractionPipeline extends PipelineBase<T5EncoderModel> {
  (texts: string | string[], options?: FeatureExtractionOptions): Promise<Tensor>;
}
/** A text, or a text pair (`text </s> text_pair </s>`). */
export type TextClassificationInput = string | { text: string; text_pair?: string };
export interface TextClassificationPipeline extends PipelineBase<T5ForSequenceClassification> {
  (
    texts: TextClassificationInput | TextClassificationInput[],
    options?: TextClassificationOptions,
  ): Promise<TextClassificationOutput | TextClassificationOutput[] | TextClassificationOutput[][]>;
}
export interface TokenClassificationPipeline extends PipelineBase<T5ForTokenClassification> {
  (texts: string | string[], options?: TokenClassificationOptions): Promise<TokenClassificationOutput[] | TokenClassificationOutput[][]>;
}
export interface QuestionAnsweringPipeline extends PipelineBase<T5ForQuestionAnswering> {
  (
    inputs: QuestionAnsweringInput | QuestionAnsweringInput[],
    options?: QuestionAnsweringOptions,
  ): Promise<QuestionAnsweringOutput | QuestionAnsweringOutput[] | (QuestionAnsweringOutput | QuestionAnsweringOutput[])[]>;
}

export interface PipelineOptions extends ModelLoadOptions {
  /** A tokenizer, or where to load it from (default: the model's directory / URL). */
  tokenizer?: T5Tokenizer | ModelSource;
}

type TranslationTask = `translation_${string}_to_${string}`;
export type SupportedTask =
  | "text2text-generation"
  | "summarization"
  | "translation"
  | TranslationTask
  | "feature-extraction"
  | "text-classification"
  | "sentiment-analysis"
  | "token-classification"
  | "ner"
  | "question-answering";

type PipelineFor<T extends SupportedTask> = T extends "text2text-generation"
  ? Text2TextGenerationPipeline
  : T extends "summarization"
    ? SummarizationPipeline
    : T extends "translation" | TranslationTask
      ? TranslationPipeline
      : T extends "feature-extraction"
        ? FeatureExtractionPipeline
        : T extends "text-classification" | "sentiment-analysis"
          ? TextClassificationPipeline
          : T extends "token-classification" | "ner"
            ? TokenClassificationPipeline
            : QuestionAnsweringPipeline;

type AnyModel = T5ForConditionalGeneration | T5EncoderModel | T5ForSequenceClassification | T5ForTokenClassification | T5ForQuestionAnswering;

const ALIASES: Record<string, string> = { "sentiment-analysis": "text-classification", ner: "token-classification" };

/** The model class and loader of each task. */
const CLASSES: Record<string, { cls: Function; load: (src: ModelSource, o: ModelLoadOptions) => Promise<AnyModel> }> = {
  "text2text-generation": { cls: T5ForConditionalGeneration, load: (s, o) => T5ForConditionalGeneration.fromPretrained(s, o) },
  summarization: { cls: T5ForConditionalGeneration, load: (s, o) => T5ForConditionalGeneration.fromPretrained(s, o) },
  translation: { cls: T5ForConditionalGeneration, load: (s, o) => T5ForConditionalGeneration.fromPretrained(s, o) },
  "feature-extraction": { cls: T5EncoderModel, load: (s, o) => T5EncoderModel.fromPretrained(s, o) },
  "text-classification": { cls: T5ForSequenceClassification, load: (s, o) => T5ForSequenceClassification.fromPretrained(s, o) },
  "token-classification": { cls: T5ForTokenClassification, load: (s, o) => T5ForTokenClassification.fromPretrained(s, o) },
  "question-answering": { cls: T5ForQuestionAnswering, load: (s, o) => T5ForQuestionAnswering.fromPretrained(s, o) },
};

/**
 * Build a pipeline. `model`: a loaded model of the task's class, or a directory / base URL / file map.
 */
export async function pipeline<T extends SupportedTask>(task: T, model: AnyModel | ModelSource, options: PipelineOptions = {}): Promise<PipelineFor<T>> {
  const name = ALIASES[task] ?? task;
  const family = name.startsWith("translation") ? "translation" : name;
  const entry = CLASSES[family];
  if (!entry || (family === "translation" && name !== "translation" && !/^translation_.+_to_.+$/.test(name))) {
    throw new BadInputError(`unsupported pipeline task ${JSON.stringify(task)}: expected one of ${[...Object.keys(CLASSES), "translation_xx_to_yy", ...Object.keys(ALIASES)].join(", ")}`);
  }
  if (model === undefined || model === null) throw new BadInputError("pipeline() needs a model (a directory, a URL or a loaded model)");
  const owned: { dispose(): void }[] = [];
  try {
    let m: AnyModel;
    if (model instanceof T5PreTrainedModel) {
      if (!(model instanceof entry.cls)) {
        throw new BadInputError(`the ${task} pipeline needs a ${entry.cls.name}, got a ${(model as object).constructor.name}`);
      }
      m = model as AnyModel;
    } else {
      m = await entry.load(model as ModelSource, options);
      owned.push(m);
    }
    let tok: T5Tokenizer;
    if (options.tokenizer instanceof T5Tokenizer) {
      tok = options.tokenizer;
    } else {
      tok = await T5Tokenizer.fromPretrained(options.tokenizer ?? (model instanceof T5PreTrainedModel ? m.location : (model as ModelSource)), options);
      owned.push(tok);
    }
    options.progress_callback?.({ status: "ready", task, model: m.location });
    let run: (inputs: never, opts?: never) => Promise<unknown>;
    switch (family) {
      case "feature-extraction":
        run = featureExtraction(m as T5EncoderModel, tok) as typeof run;
        break;
      case "text-classification":
        run = textClassification(m as T5ForSequenceClassification, tok) as typeof run;
        break;
      case "token-classification":
        run = tokenClassification(m as T5ForTokenClassification, tok) as typeof run;
        break;
      case "question-answering":
        run = questionAnswering(m as T5ForQuestionAnswering, tok) as typeof run;
        break;
      default:
        run = generation(name, m as T5ForConditionalGeneration, tok) as typeof run;
    }
    return wrap(task, run, m, tok, owned) as unknown as PipelineFor<T>;
  } catch (e) {
    for (const o of owned) o.dispose();
    throw e;
  }
}

function wrap(task: string, run: (inputs: never, opts?: never) => Promise<unknown>, model: AnyModel, tokenizer: T5Tokenizer, owned: { dispose(): void }[]) {
  let disposed = false;
  const p = (async (inputs: never, opts?: never) => {
    if (disposed) throw new DisposedError("this pipeline");
    return run(inputs, opts);
  }) as unknown as PipelineBase<AnyModel>;
  Object.defineProperties(p, {
    task: { value: task, enumerable: true },
    model: { value: model, enumerable: true },
    tokenizer: { value: tokenizer, enumerable: true },
    dispose: {
      value: () => {
        if (disposed) return;
        disposed = true;
        for (const o of owned) o.dispose();
      },
    },
  });
  return p;
}

function textList(texts: unknown): string[] {
  const list = typeof texts === "string" ? [texts] : texts;
  if (!Array.isArray(list) || list.length === 0 || list.some((t) => typeof t !== "string")) {
    throw new BadInputError("pipeline input must be a string or a non-empty array of strings");
  }
  return list as string[];
}

function batchSize(b: number | undefined): number {
  const bs = b ?? 1;
  if (!Number.isInteger(bs) || bs < 1) throw new BadInputError(`batch_size must be a positive integer, got ${String(b)}`);
  return bs;
}

// ---------------------------------------------------------------------------------------------------------------
// text2text-generation, summarization, translation

function generation(task: string, model: T5ForConditionalGeneration, tokenizer: T5Tokenizer) {
  const tsp = (model.config.task_specific_params ?? {}) as Record<string, Record<string, unknown>>;
  let key: keyof Text2TextGenerationOutput | keyof SummarizationOutput | keyof TranslationOutput = "generated_text";
  let params: Record<string, unknown> = {};
  if (task === "summarization") {
    key = "summary_text";
    params = tsp["summarization"] ?? {};
  } else if (task.startsWith("translation")) {
    key = "translation_text";
    let name = task;
    if (task === "translation") {
      const first = Object.keys(tsp).find((k) => k.startsWith("translation"));
      if (first === undefined) {
        throw new BadInputError('the "translation" task needs a translation_XX_to_YY entry in config.task_specific_params; use "translation_XX_to_YY"');
      }
      name = first;
    }
    params = tsp[name] ?? {};
  }
  const configPrefix = typeof model.config["prefix"] === "string" ? (model.config["prefix"] as string) : "";
  const prefix = typeof params["prefix"] === "string" ? (params["prefix"] as string) : configPrefix;
  // the task's generation settings, under the call's options (transformers applies them to the config)
  const presets = Object.fromEntries(Object.entries(params).filter(([k]) => GENERATE_KEYS.has(k))) as GenerateOptions;

  return async (texts: string | string[], options: Text2TextCallOptions = {}): Promise<Record<string, string>[]> => {
    const list = textList(texts);
    const { truncation, allow_long_inputs, batch_size, clean_up_tokenization_spaces, ...generate } = options;
    const bs = batchSize(batch_size);
    const out: Record<string, string>[] = [];
    for (let i = 0; i < list.length; i += bs) {
      const chunk = list.slice(i, i + bs).map((t) => prefix + t);
      const enc = tokenizer(chunk, { padding: true, truncation: truncation ?? false, allow_long_inputs: allow_long_inputs ?? false });
      // generateAsync: the same as generate on the CPU; on WebGPU (device option) results arrive asynchronously
      const seqs = await model.generateAsync(enc, { ...presets, ...generate });
      const decoded = tokenizer.batchDecode(seqs, { skip_special_tokens: true, clean_up_tokenization_spaces: clean_up_tokenization_spaces ?? false });
      for (const text of decoded) out.push({ [key]: text });
      // let other work run between batches (generation itself is synchronous in the engine)
      await Promise.resolve();
    }
    return out;
  };
}

// ---------------------------------------------------------------------------------------------------------------
// feature-extraction

function featureExtraction(model: T5EncoderModel, tokenizer: T5Tokenizer) {
  return async (texts: string | string[], options: FeatureExtractionOptions = {}): Promise<Tensor> => {
    const list = textList(texts);
    const pooling = options.pooling ?? "none";
    if (!["none", "mean", "cls", "first_token", "eos", "last_token"].includes(pooling)) throw new BadInputError(`unknown pooling ${JSON.stringify(pooling)}`);
    // transformers.js: padding and truncation
    const enc = tokenizer(list, { padding: true, truncation: tokenizer.model_max_length !== undefined });
    const h = (await model.forwardAsync(enc)).last_hidden_state;
    const [b, s, d] = h.dims as [number, number, number];
    let out: Tensor;
    if (pooling === "none") {
      out = h;
    } else {
      const data = new Float32Array(b * d);
      for (let r = 0; r < b; r++) {
        const m = enc.attention_mask[r]!;
        const row = data.subarray(r * d, (r + 1) * d);
        if (pooling === "mean") {
          let n = 0;
          const acc = new Float64Array(d);
          for (let j = 0; j < s; j++) {
            if (m[j] !== 1) continue;
            n++;
            for (let k = 0; k < d; k++) acc[k]! += h.data[(r * s + j) * d + k]!;
          }
          for (let k = 0; k < d; k++) row[k] = acc[k]! / Math.max(n, 1);
        } else {
          const j = pooling === "cls" || pooling === "first_token" ? 0 : m.lastIndexOf(1);
          row.set(h.data.subarray((r * s + j) * d, (r * s + j + 1) * d));
        }
      }
      out = new Tensor(data, [b, d]);
    }
    if (options.normalize) {
      const d = out.dims[out.dims.length - 1]!;
      for (let i = 0; i < out.data.length; i += d) {
        const v = out.data.subarray(i, i + d);
        let n = 0;
        for (const x of v) n += x * x;
        n = Math.sqrt(n);
        if (n > 0) for (let k = 0; k < d; k++) v[k] = v[k]! / n;
      }
    }
    return out;
  };
}

// ---------------------------------------------------------------------------------------------------------------
// text-classification

function softmax(x: ArrayLike<number>): number[] {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) m = Math.max(m, x[i]!);
  const e = Array.from(x, (v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

function label(model: T5PreTrainedModel, i: number): string {
  return model.config.id2label?.[String(i)] ?? `LABEL_${i}`;
}

function textClassification(model: T5ForSequenceClassification, tokenizer: T5Tokenizer) {
  return async (texts: TextClassificationInput | TextClassificationInput[], options: TextClassificationOptions = {}) => {
    const list = Array.isArray(texts) ? texts : [texts];
    const isPair = (t: unknown): t is { text: string; text_pair?: string } =>
      t !== null && typeof t === "object" && typeof (t as { text?: unknown }).text === "string" && ["string", "undefined"].includes(typeof (t as { text_pair?: unknown }).text_pair);
    if (list.length === 0 || list.some((t) => typeof t !== "string" && !isPair(t))) {
      throw new BadInputError("text-classification input must be a string, {text, text_pair} or a non-empty array of them");
    }
    const legacy = !("top_k" in options);
    const topK = legacy ? 1 : options.top_k;
    let fn = options.function_to_apply;
    if (fn === undefined) {
      const c = model.config;
      if (c.problem_type === "regression") fn = "none";
      else if (c.problem_type === "multi_label_classification" || c.num_labels === 1) fn = "sigmoid";
      else fn = "softmax";
    }
    if (!["softmax", "sigmoid", "none"].includes(fn)) throw new BadInputError(`unknown function_to_apply ${JSON.stringify(fn)}`);
    const bs = batchSize(options.batch_size);
    const results: (TextClassificationOutput | TextClassificationOutput[])[] = [];
    for (let i = 0; i < list.length; i += bs) {
      const chunk = list.slice(i, i + bs);
      let enc: { input_ids: number[][]; attention_mask: number[][] };
      if (chunk.every((t) => typeof t === "string")) {
        enc = tokenizer(chunk as string[], { padding: true, truncation: tokenizer.model_max_length !== undefined });
      } else {
        const rows = chunk.map((t) => (typeof t === "string" ? tokenizer.encodeWithOffsets(t) : tokenizer.encodeWithOffsets(t.text, t.text_pair)).input_ids);
        const len = Math.max(...rows.map((r) => r.length));
        enc = {
          input_ids: rows.map((r) => [...r, ...Array<number>(len - r.length).fill(tokenizer.pad_token_id)]),
          attention_mask: rows.map((r) => [...Array<number>(r.length).fill(1), ...Array<number>(len - r.length).fill(0)]),
        };
      }
      const logits = model.forward(enc).logits;
      const n = logits.dims[1]!;
      for (let r = 0; r < chunk.length; r++) {
        const row = logits.data.subarray(r * n, (r + 1) * n);
        const scores = fn === "softmax" ? softmax(row) : fn === "sigmoid" ? Array.from(row, sigmoid) : Array.from(row);
        if (topK === 1 && legacy) {
          let best = 0;
          scores.forEach((v, j) => (v > scores[best]! ? (best = j) : 0));
          results.push({ label: label(model, best), score: scores[best]! });
        } else {
          const all = scores.map((score, j) => ({ label: label(model, j), score }));
          all.sort((a, b) => b.score - a.score);
          results.push(topK === null || topK === undefined ? all : all.slice(0, topK));
        }
      }
      await Promise.resolve();
    }
    // transformers: a single text gives a one-element list, or with top_k its sorted list; a single pair its result
    if (!Array.isArray(texts)) return typeof texts === "string" && legacy ? results : results[0]!;
    return results as TextClassificationOutput[] | TextClassificationOutput[][];
  };
}

// ---------------------------------------------------------------------------------------------------------------
// token-classification

interface PreEntity {
  word: string;
  scores: number[];
  start: number;
  end: number;
  index: number;
  is_subword: boolean;
}

function tokenClassification(model: T5ForTokenClassification, tokenizer: T5Tokenizer) {
  const unk = tokenizer.convertTokensToIds(["<unk>"])[0];
  // transformers' convert_tokens_to_string: T5's Metaspace decoder ("▁" → space, the first one dropped)
  const tokensToString = (tokens: string[]) => {
    const s = tokens.join("").replaceAll("▁", " ");
    return s.startsWith(" ") ? s.slice(1) : s;
  };

  const groupSub = (entities: TokenClassificationOutput[]): TokenClassificationOutput => {
    const first = entities[0]!;
    const scores = entities.map((e) => e.score);
    return {
      entity_group: first.entity!.split("-").slice(1).join("-") || first.entity!,
      score: scores.reduce((a, b) => a + b, 0) / scores.length,
      word: tokensToString(entities.map((e) => e.word)),
      start: first.start,
      end: entities[entities.length - 1]!.end,
    };
  };
  const tag = (name: string): [string, string] => (name.startsWith("B-") ? ["B", name.slice(2)] : name.startsWith("I-") ? ["I", name.slice(2)] : ["I", name]);
  const groupEntities = (entities: TokenClassificationOutput[]) => {
    const groups: TokenClassificationOutput[] = [];
    let cur: TokenClassificationOutput[] = [];
    for (const e of entities) {
      if (cur.length === 0) {
        cur.push(e);
        continue;
      }
      const [bi, t] = tag(e.entity!);
      const [, lt] = tag(cur[cur.length - 1]!.entity!);
      if (t === lt && bi !== "B") cur.push(e);
      else {
        groups.push(groupSub(cur));
        cur = [e];
      }
    }
    if (cur.length) groups.push(groupSub(cur));
    return groups;
  };

  return async (texts: string | string[], options: TokenClassificationOptions = {}) => {
    const list = textList(texts);
    const strategy = options.aggregation_strategy ?? "none";
    if (!["none", "simple", "first", "average", "max"].includes(strategy)) throw new BadInputError(`unknown aggregation_strategy ${JSON.stringify(strategy)}`);
    const ignore = options.ignore_labels ?? ["O"];
    const bs = batchSize(options.batch_size);
    const results: TokenClassificationOutput[][] = [];
    for (let i = 0; i < list.length; i += bs) {
      const chunk = list.slice(i, i + bs);
      const encs = chunk.map((t) => tokenizer.encodeWithOffsets(t));
      const seq = Math.max(...encs.map((e) => e.input_ids.length));
      const pad = tokenizer.pad_token_id;
      const ids = encs.map((e) => [...e.input_ids, ...Array(seq - e.input_ids.length).fill(pad)] as number[]);
      const mask = encs.map((e) => [...Array(e.input_ids.length).fill(1), ...Array(seq - e.input_ids.length).fill(0)] as number[]);
      const logits = model.forward({ input_ids: ids, attention_mask: mask }).logits;
      const n = logits.dims[2]!;
      encs.forEach((e, r) => {
        const sentence = chunk[r]!;
        const pre: PreEntity[] = [];
        e.input_ids.forEach((id, idx) => {
          if (e.special_tokens_mask[idx]) return;
          const row = logits.data.subarray((r * seq + idx) * n, (r * seq + idx + 1) * n);
          const [start, end] = e.offset_mapping[idx]!;
          let word = tokenizer.convertIdsToTokens([id])[0] ?? "";
          let isSub = start > 0 && !sentence.slice(start - 1, start + 1).includes(" ");
          if (id === unk) {
            word = sentence.slice(start, end);
            isSub = false;
          }
          pre.push({ word, scores: softmax(row), start, end, index: idx, is_subword: isSub });
        });
        let entities: TokenClassificationOutput[];
        if (strategy === "none" || strategy === "simple") {
          entities = pre.map((p) => {
            const best = argmax(p.scores);
            return { entity: label(model, best), score: p.scores[best]!, index: p.index, word: p.word, start: p.start, end: p.end };
          });
        } else {
          // word aggregation (transformers' heuristic for tokenizers without real words)
          const words: PreEntity[][] = [];
          for (const p of pre) {
            if (words.length === 0 || !p.is_subword) words.push([p]);
            else words[words.length - 1]!.push(p);
          }
          entities = words.map((w) => {
            let scores: number[];
            if (strategy === "first") scores = w[0]!.scores;
            else if (strategy === "max") scores = w.reduce((a, b) => (Math.max(...b.scores) > Math.max(...a.scores) ? b : a)).scores;
            else scores = w[0]!.scores.map((_, k) => w.reduce((a, b) => a + b.scores[k]!, 0) / w.length);
            const best = argmax(scores);
            return { entity: label(model, best), score: scores[best]!, word: tokensToString(w.map((p) => p.word)), start: w[0]!.start, end: w[w.length - 1]!.end };
          });
        }
        const grouped = strategy === "none" ? entities : groupEntities(entities);
        results.push(grouped.filter((x) => !ignore.includes(x.entity ?? "") && !ignore.includes(x.entity_group ?? "")));
      });
      await Promise.resolve();
    }
    return typeof texts === "string" ? results[0]! : results;
  };
}

function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

// ---------------------------------------------------------------------------------------------------------------
// question-answering

function questionAnswering(model: T5ForQuestionAnswering, tokenizer: T5Tokenizer) {
  const one = (q: QuestionAnsweringInput, o: QuestionAnsweringOptions): QuestionAnsweringOutput | QuestionAnsweringOutput[] => {
    if (!q || typeof q.question !== "string" || typeof q.context !== "string") throw new BadInputError("question-answering input must be {question, context}");
    const topK = o.top_k ?? 1;
    const maxLen = o.max_answer_len ?? 15;
    if (!Number.isInteger(topK) || topK < 1) throw new BadInputError(`top_k must be a positive integer, got ${String(o.top_k)}`);
    if (!Number.isInteger(maxLen) || maxLen < 1) throw new BadInputError(`max_answer_len must be a positive integer, got ${String(o.max_answer_len)}`);
    const e = tokenizer.encodeWithOffsets(q.question, q.context);
    const L = e.input_ids.length;
    const out = model.forward({ input_ids: [e.input_ids] });
    // tokens that can be part of an answer: those of the context
    const ok = e.sequence_ids.map((s) => s === 1);
    const norm = (logits: Float32Array) => {
      const masked = Array.from(logits, (v, i) => (ok[i] ? v : -10000));
      return softmax(masked);
    };
    const start = norm(out.start_logits.data);
    const end = norm(out.end_logits.data);
    const minNull = o.handle_impossible_answer ? start[0]! * end[0]! : 1000000;
    start[0] = end[0] = 0;
    // candidates: start <= end < start + max_answer_len, both in the context
    const cands: { s: number; t: number; score: number; flat: number }[] = [];
    for (let s = 0; s < L; s++) {
      for (let t = s; t < Math.min(L, s + maxLen); t++) cands.push({ s, t, score: start[s]! * end[t]!, flat: s * L + t });
    }
    // numpy's argmax / argsort over the flattened matrix (zeros elsewhere)
    cands.sort((a, b) => b.score - a.score || a.flat - b.flat);
    let picked = cands.slice(0, topK);
    if (picked.length < topK) picked = cands;
    picked = picked.filter((c) => ok[c.s] && ok[c.t]);
    // word alignment: a word starts at a token beginning with "▁" (T5's Metaspace pre-tokenizer)
    const tokens = tokenizer.convertIdsToTokens(e.input_ids);
    const wordStart = (i: number) => {
      while (i > 0 && ok[i - 1] && !(tokens[i] ?? "").startsWith("▁")) i--;
      return i;
    };
    const wordEnd = (i: number) => {
      while (i + 1 < L && ok[i + 1] && !(tokens[i + 1] ?? "").startsWith("▁")) i++;
      return i;
    };
    const align = o.align_to_words ?? true;
    const answers: QuestionAnsweringOutput[] = picked.map((c) => {
      const a = e.offset_mapping[align ? wordStart(c.s) : c.s]![0];
      const b = e.offset_mapping[align ? wordEnd(c.t) : c.t]![1];
      return { score: c.score, start: a, end: b, answer: q.context.slice(a, b) };
    });
    if (o.handle_impossible_answer) answers.push({ score: minNull, start: 0, end: 0, answer: "" });
    answers.sort((a, b) => b.score - a.score);
    const top = answers.slice(0, topK);
    return top.length === 1 ? top[0]! : top;
  };
  return async (inputs: QuestionAnsweringInput | QuestionAnsweringInput[], options: QuestionAnsweringOptions = {}) => {
    if (Array.isArray(inputs)) {
      if (inputs.length === 0) throw new BadInputError("question-answering needs at least one {question, context}");
      const res = [];
      for (const q of inputs) {
        res.push(one(q, options));
        await Promise.resolve();
      }
      return res;
    }
    return one(inputs, options);
  };
}

export type { LoadOptions };
