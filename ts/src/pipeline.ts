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
import { T5EncoderModel, T5ForConditionalGeneration, T5PreTrainedModel, type ModelLoadOptions } from "./models.js";
import { T5ForQuestionAnswering, T5ForSequenceClassification, T5ForTokenClassification } from "./heads.js";
import { T5Tokenizer } from "./tokenizer.js";
import { textClassification, tokenClassification } from "./pipelines/classification.js";
import { featureExtraction } from "./pipelines/feature-extraction.js";
import { generation } from "./pipelines/generation.js";
import { questionAnswering } from "./pipelines/question-answering.js";
import type { AnyModel, AnyPipeline, PipelineBase, PipelineFor, PipelineOptions, SupportedTask } from "./pipelines/types.js";

export type {
  FeatureExtractionOptions,
  FeatureExtractionPipeline,
  PipelineOptions,
  QuestionAnsweringInput,
  QuestionAnsweringOptions,
  QuestionAnsweringOutput,
  QuestionAnsweringPipeline,
  SummarizationOutput,
  SummarizationPipeline,
  SupportedTask,
  Text2TextCallOptions,
  Text2TextGenerationOutput,
  Text2TextGenerationPipeline,
  TextClassificationInput,
  TextClassificationOptions,
  TextClassificationOutput,
  TextClassificationPipeline,
  TokenClassificationOptions,
  TokenClassificationOutput,
  TokenClassificationPipeline,
  TranslationOutput,
  TranslationPipeline,
} from "./pipelines/types.js";

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

export type { LoadOptions };
