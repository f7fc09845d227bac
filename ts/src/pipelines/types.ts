/** The option, output and pipeline types of every `pipeline()` task (ts/src/pipeline.ts builds them). */

import type { ModelSource } from "../files.js";
import type { GenerateOptions, ModelLoadOptions, T5EncoderModel, T5ForConditionalGeneration, Tensor } from "../models.js";
import type { T5ForQuestionAnswering, T5ForSequenceClassification, T5ForTokenClassification } from "../heads.js";
import type { T5Tokenizer } from "../tokenizer.js";

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

export interface PipelineBase<M> {
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

export type TranslationTask = `translation_${string}_to_${string}`;
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

export type PipelineFor<T extends SupportedTask> = T extends "text2text-generation"
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

export type AnyModel = T5ForConditionalGeneration | T5EncoderModel | T5ForSequenceClassification | T5ForTokenClassification | T5ForQuestionAnswering;

/** Any pipeline (what `pipeline()` builds, before its task picks the type). */
export type AnyPipeline = PipelineFor<SupportedTask>;
