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
 *   end}`; `ignore_labels` (default `["O"]`); `is_split_into_words` (+ `delimiter`) for pre-split words, as
 *   transformers 5's TokenClassificationPipeline. `start` / `end` index the input string (JavaScript indices).
 * - `question-answering` (T5ForQuestionAnswering) → `{score, start, end, answer}`: transformers 4's
 *   QuestionAnsweringPipeline: the context is split into windows of `max_seq_len` tokens overlapping by
 *   `doc_stride` (the tokenizer's "only_second" truncation with overflowing tokens), answers are scored per window
 *   (softmax over the window's context tokens, spans up to `max_answer_len`), the same answer text found in several
 *   windows adds up its scores, and spans map back to the context through the tokenizer's word ids and offsets
 *   (`align_to_words`); `top_k`, `handle_impossible_answer`.
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
  /** Inputs are pre-split words: `string[]` is one input, `string[][]` several; the words are joined with
   * `delimiter` (default " ") into the sentence that `start` / `end` index. */
  is_split_into_words?: boolean;
  delimiter?: string;
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
  /** Answers to return (default 1: one object; more: a sorted list). */
  top_k?: number;
  /** Tokens shared by consecutive windows of a long context (default `min(max_seq_len / 2, 128)`). */
  doc_stride?: number;
  /** Longest answer, in tokens (default 15). */
  max_answer_len?: number;
  /** Tokens per window, question and special tokens included (default `min(model_max_length, 384)`). */
  max_seq_len?: number;
  /** Accepted for transformers' signature; like transformers' fast-tokenizer path, it changes nothing. */
  max_question_len?: number;
  /** Also consider the empty answer (score: the smallest null score over the windows). */
  handle_impossible_answer?: boolean;
  /** Widen spans to whole words (word ids of the tokenizer; default true). */
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
  (texts: string | string[] | string[][], options?: TokenClassificationOptions): Promise<TokenClassificationOutput[] | TokenClassificationOutput[][]>;
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
export async function pipeline<T extends SupportedTask>(task: T, model: AnyModel | ModelSource, options?: PipelineOptions): Promise<PipelineFor<T>>;
export async function pipeline(task: SupportedTask, model: AnyModel | ModelSource, options: PipelineOptions = {}): Promise<AnyPipeline> {
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
    return wrap(task, run, m, tok, owned);
  } catch (e) {
    for (const o of owned) o.dispose();
    throw e;
  }
}

/** Any pipeline (what `pipeline()` builds, before its task picks the type). */
type AnyPipeline = PipelineFor<SupportedTask>;

function wrap(task: string, run: (inputs: never, opts?: never) => Promise<unknown>, model: AnyModel, tokenizer: T5Tokenizer, owned: { dispose(): void }[]): AnyPipeline {
  let disposed = false;
  const call = async (inputs: unknown, opts?: unknown): Promise<never> => {
    if (disposed) throw new DisposedError("this pipeline");
    // the task's runner checks its inputs and resolves to the task's output type (PipelineFor picks it)
    return run(inputs as never, opts as never) as Promise<never>;
  };
  // the properties are set just below (read-only, as defineProperties makes them)
  const p = call as typeof call & PipelineBase<never>;
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
      const seqs = await model.generate(enc, { ...presets, ...generate });
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
    const h = (await model.forward(enc)).last_hidden_state;
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
      const logits = (await model.forward(enc)).logits;
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

  return async (texts: string | string[] | string[][], options: TokenClassificationOptions = {}) => {
    const split = options.is_split_into_words ?? false;
    const delimiter = options.delimiter ?? " ";
    if (typeof delimiter !== "string") throw new BadInputError("delimiter must be a string");
    // transformers: with is_split_into_words, one list of words is one input (and gives a list of one result)
    let inputs: (string | string[])[];
    if (split) {
      const isWords = (x: unknown): x is string[] => Array.isArray(x) && x.length > 0 && x.every((w) => typeof w === "string");
      if (isWords(texts)) inputs = [texts];
      else if (Array.isArray(texts) && texts.length > 0 && texts.every(isWords)) inputs = texts as string[][];
      else throw new BadInputError("with is_split_into_words, the input must be a non-empty array of words or an array of such arrays");
    } else {
      inputs = textList(texts);
    }
    const strategy = options.aggregation_strategy ?? "none";
    if (!["none", "simple", "first", "average", "max"].includes(strategy)) throw new BadInputError(`unknown aggregation_strategy ${JSON.stringify(strategy)}`);
    const ignore = options.ignore_labels ?? ["O"];
    const bs = batchSize(options.batch_size);
    const results: TokenClassificationOutput[][] = [];
    for (let i = 0; i < inputs.length; i += bs) {
      const chunk = inputs.slice(i, i + bs);
      // transformers: truncation when the tokenizer has a model_max_length; offsets and the special-tokens mask
      const enc = tokenizer(split ? (chunk as string[][]) : (chunk as string[]), {
        padding: true,
        truncation: tokenizer.model_max_length !== undefined,
        is_split_into_words: split,
        return_offsets_mapping: true,
        return_special_tokens_mask: true,
      });
      const logits = (await model.forward({ input_ids: enc.input_ids, attention_mask: enc.attention_mask })).logits;
      const [, seq, n] = logits.dims as [number, number, number];
      chunk.forEach((input, r) => {
        // the sentence start / end index: the text, or the words joined with the delimiter
        let sentence: string;
        let wordStarts: number[] | undefined;
        if (typeof input === "string") sentence = input;
        else {
          wordStarts = [];
          let at = 0;
          for (const w of input) {
            wordStarts.push(at);
            at += w.length + delimiter.length;
          }
          sentence = input.join(delimiter);
        }
        const ids = enc.input_ids[r]!;
        const special = enc.special_tokens_mask![r]!;
        const offsets = enc.offset_mapping![r]!;
        const wordIds = enc.word_ids(r);
        const pre: PreEntity[] = [];
        ids.forEach((id, idx) => {
          if (special[idx]) return;
          const row = logits.data.subarray((r * seq + idx) * n, (r * seq + idx + 1) * n);
          let [start, end] = offsets[idx]!;
          const w = wordIds[idx];
          if (wordStarts && w !== null && w !== undefined) {
            start += wordStarts[w]!;
            end += wordStarts[w]!;
          }
          let word = tokenizer.convertIdsToTokens([id])[0] ?? "";
          // transformers' fallback heuristic for tokenizers without real words
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

/** transformers' `Encoding.word_to_chars(word, sequence_index)`: the char span of the tokens of `word` in sequence
 * `seq` (scanning that sequence's tokens while their word ids are not past `word`), `undefined` when there is none. */
function wordToChars(seqIds: (number | null)[], wordIds: (number | null)[], offsets: [number, number][], word: number, seq: number): [number, number] | undefined {
  let lo = seqIds.indexOf(seq);
  let hi = seqIds.lastIndexOf(seq) + 1;
  if (lo < 0) [lo, hi] = [0, seqIds.length];
  let first = -1;
  let last = -1;
  for (let i = lo; i < hi; i++) {
    const w = wordIds[i] ?? null;
    if (w !== null && w > word) break;
    if (w === word) {
      if (first < 0) first = i;
      last = i;
    }
  }
  return first < 0 ? undefined : [offsets[first]![0], offsets[last]![1]];
}

/** numpy's choice of the `k` best (start, end) spans of one window: `tril(triu(outer), max_answer_len - 1)` flattened,
 * best first (ties in index order), zero entries after the positive ones when fewer than `k` are positive. */
function bestSpans(start: number[], end: number[], k: number, maxLen: number): { s: number; t: number; score: number }[] {
  const L = start.length;
  const cands: { s: number; t: number; score: number; flat: number }[] = [];
  for (let s = 0; s < L; s++) {
    if (start[s] === 0) continue;
    for (let t = s; t < Math.min(L, s + maxLen); t++) {
      const score = start[s]! * end[t]!;
      if (score > 0) cands.push({ s, t, score, flat: s * L + t });
    }
  }
  cands.sort((a, b) => b.score - a.score || a.flat - b.flat);
  const picked = cands.slice(0, k);
  if (picked.length < k) {
    const taken = new Set(picked.map((c) => c.flat));
    for (let f = 0; f < L * L && picked.length < k; f++) {
      if (!taken.has(f)) picked.push({ s: Math.floor(f / L), t: f % L, score: 0, flat: f });
    }
  }
  return picked;
}

function questionAnswering(model: T5ForQuestionAnswering, tokenizer: T5Tokenizer) {
  const posInt = (v: number | undefined, name: string, min: number) => {
    if (v !== undefined && (!Number.isInteger(v) || v < min)) throw new BadInputError(`${name} must be an integer >= ${min}, got ${String(v)}`);
    return v;
  };
  const one = async (q: QuestionAnsweringInput, o: QuestionAnsweringOptions): Promise<QuestionAnsweringOutput | QuestionAnsweringOutput[]> => {
    if (!q || typeof q.question !== "string" || typeof q.context !== "string") throw new BadInputError("question-answering input must be {question, context}");
    const topK = posInt(o.top_k, "top_k", 1) ?? 1;
    const maxAnswerLen = posInt(o.max_answer_len, "max_answer_len", 1) ?? 15;
    posInt(o.max_question_len, "max_question_len", 1);
    const maxSeqLen = posInt(o.max_seq_len, "max_seq_len", 1) ?? Math.min(tokenizer.model_max_length ?? 384, 384);
    const docStride = posInt(o.doc_stride, "doc_stride", 0) ?? Math.min(Math.floor(maxSeqLen / 2), 128);
    if (docStride > maxSeqLen) throw new BadInputError(`doc_stride (${docStride}) is larger than max_seq_len (${maxSeqLen})`);
    const align = o.align_to_words ?? true;
    const impossible = o.handle_impossible_answer ?? false;
    // transformers: the question first (truncating only the context) unless the tokenizer pads on the left
    const questionFirst = tokenizer.padding_side === "right";
    const enc = tokenizer(questionFirst ? q.question : q.context, questionFirst ? q.context : q.question, {
      truncation: questionFirst ? "only_second" : "only_first",
      max_length: maxSeqLen,
      stride: docStride,
      return_overflowing_tokens: true,
      return_offsets_mapping: true,
    });
    const windows = enc.input_ids.length;
    // all windows in one padded batch (padding on the right; the decoder is causal, the encoder masked)
    const seq = Math.max(...enc.input_ids.map((r) => r.length));
    const pad = tokenizer.pad_token_id;
    const out = await model.forward({
      input_ids: enc.input_ids.map((r) => [...r, ...Array<number>(seq - r.length).fill(pad)]),
      attention_mask: enc.input_ids.map((r) => [...Array<number>(r.length).fill(1), ...Array<number>(seq - r.length).fill(0)]),
    });
    let minNull = 1000000;
    const answers: QuestionAnsweringOutput[] = [];
    const seqIndex = questionFirst ? 1 : 0;
    for (let w = 0; w < windows; w++) {
      const ids = enc.input_ids[w]!;
      const L = ids.length;
      const seqIds = enc.sequence_ids(w);
      const wordIds = enc.word_ids(w);
      const offsets = enc.offset_mapping![w]!;
      // tokens that can be part of an answer (p_mask = 0): the context's, or every token (transformers' left-padding path)
      const ok = seqIds.map((x) => (questionFirst ? x === 1 : true));
      const norm = (logits: Float32Array) => softmax(Array.from(logits.subarray(w * seq, w * seq + L), (v, i) => (ok[i] ? v : -10000)));
      const start = norm(out.start_logits.data);
      const end = norm(out.end_logits.data);
      if (impossible) minNull = Math.min(minNull, start[0]! * end[0]!);
      start[0] = end[0] = 0;
      const picked = bestSpans(start, end, align ? topK * 2 + 10 : topK, maxAnswerLen).filter((c) => ok[c.s] && ok[c.t]);
      // transformers shifts by the pad tokens of a left-padded window (none without padding, but a "<pad>" typed in the text counts)
      const shift = questionFirst ? 0 : ids.filter((id) => id === pad).length;
      for (const c of picked) {
        const s = c.s - shift;
        const t = c.t - shift;
        let span: [number, number] | undefined;
        if (align && s >= 0 && t >= 0) {
          const sw = seqIds[s] === null ? null : wordIds[s];
          const tw = seqIds[t] === null ? null : wordIds[t];
          const a = sw === null || sw === undefined ? undefined : wordToChars(seqIds, wordIds, offsets, sw, seqIndex);
          const b = tw === null || tw === undefined ? undefined : wordToChars(seqIds, wordIds, offsets, tw, seqIndex);
          if (a && b) span = [a[0], b[1]];
        }
        // no word to align to: the token offsets (Python's negative indices count from the end)
        span ??= [offsets.at(s)![0], offsets.at(t)![1]];
        const answer = q.context.slice(span[0], span[1]);
        const same = answers.find((x) => x.answer.toLowerCase() === answer.toLowerCase());
        if (same) same.score += c.score;
        else answers.push({ score: c.score, start: span[0], end: span[1], answer });
      }
    }
    if (impossible) answers.push({ score: minNull, start: 0, end: 0, answer: "" });
    answers.sort((a, b) => b.score - a.score);
    const top = answers.slice(0, topK);
    return top.length === 1 ? top[0]! : top;
  };
  return async (inputs: QuestionAnsweringInput | QuestionAnsweringInput[], options: QuestionAnsweringOptions = {}) => {
    if (Array.isArray(inputs)) {
      if (inputs.length === 0) throw new BadInputError("question-answering needs at least one {question, context}");
      const res = [];
      for (const q of inputs) {
        res.push(await one(q, options));
        await Promise.resolve();
      }
      return res;
    }
    return one(inputs, options);
  };
}

export type { LoadOptions };
