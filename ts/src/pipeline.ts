/**
 * `pipeline("text2text-generation", model, {tokenizer})`, transformers' Text2TextGenerationPipeline:
 * prefix (config `prefix`) → tokenize (no truncation unless asked) → greedy generate → decode with
 * `skip_special_tokens=True` and `clean_up_tokenization_spaces=False` (the pipeline's defaults).
 * Output: `[{generated_text}]` for one text, `[{generated_text}, …]` (one per text) for an array.
 */

import { BadInputError, DisposedError } from "./errors.js";
import type { LoadOptions, ModelSource } from "./files.js";
import { T5ForConditionalGeneration, type GenerateOptions } from "./models.js";
import { T5Tokenizer } from "./tokenizer.js";

export interface Text2TextGenerationOutput {
  generated_text: string;
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

export interface Text2TextGenerationPipeline {
  (texts: string | string[], options?: Text2TextCallOptions): Promise<Text2TextGenerationOutput[]>;
  readonly task: "text2text-generation";
  readonly model: T5ForConditionalGeneration;
  readonly tokenizer: T5Tokenizer;
  /** Frees the model and tokenizer that the pipeline loaded itself (not ones passed in). */
  dispose(): void;
}

export interface PipelineOptions extends LoadOptions {
  /** A tokenizer, or where to load it from (default: the model's directory / URL). */
  tokenizer?: T5Tokenizer | ModelSource;
}

export type SupportedTask = "text2text-generation";

/**
 * Build a pipeline. `model`: a loaded {@link T5ForConditionalGeneration} or a directory / base URL.
 */
export async function pipeline(
  task: SupportedTask,
  model: T5ForConditionalGeneration | ModelSource,
  options: PipelineOptions = {},
): Promise<Text2TextGenerationPipeline> {
  if (task !== "text2text-generation") {
    throw new BadInputError(`unsupported pipeline task ${JSON.stringify(task)}: only "text2text-generation" is available`);
  }
  if (model === undefined || model === null) throw new BadInputError("pipeline() needs a model (a directory, a URL or a loaded model)");
  const owned: { dispose(): void }[] = [];
  try {
    let m: T5ForConditionalGeneration;
    if (model instanceof T5ForConditionalGeneration) {
      m = model;
    } else {
      m = await T5ForConditionalGeneration.fromPretrained(model, options);
      owned.push(m);
    }
    let tok: T5Tokenizer;
    if (options.tokenizer instanceof T5Tokenizer) {
      tok = options.tokenizer;
    } else {
      tok = await T5Tokenizer.fromPretrained(options.tokenizer ?? (model instanceof T5ForConditionalGeneration ? m.location : model), options);
      owned.push(tok);
    }
    options.progress_callback?.({ status: "ready", task, model: m.location });
    return makePipeline(m, tok, owned);
  } catch (e) {
    for (const o of owned) o.dispose();
    throw e;
  }
}

function makePipeline(model: T5ForConditionalGeneration, tokenizer: T5Tokenizer, owned: { dispose(): void }[]): Text2TextGenerationPipeline {
  let disposed = false;
  const prefix = typeof model.config["prefix"] === "string" ? (model.config["prefix"] as string) : "";

  const run = async (texts: string | string[], options: Text2TextCallOptions = {}): Promise<Text2TextGenerationOutput[]> => {
    if (disposed) throw new DisposedError("this pipeline");
    const list = typeof texts === "string" ? [texts] : texts;
    if (!Array.isArray(list) || list.length === 0 || list.some((t) => typeof t !== "string")) {
      throw new BadInputError("pipeline input must be a string or a non-empty array of strings");
    }
    const { truncation, allow_long_inputs, batch_size, clean_up_tokenization_spaces, ...generate } = options;
    const bs = batch_size ?? 1;
    if (!Number.isInteger(bs) || bs < 1) throw new BadInputError(`batch_size must be a positive integer, got ${String(batch_size)}`);
    const out: Text2TextGenerationOutput[] = [];
    for (let i = 0; i < list.length; i += bs) {
      const chunk = list.slice(i, i + bs).map((t) => prefix + t);
      const enc = tokenizer(chunk, { padding: true, truncation: truncation ?? false, allow_long_inputs: allow_long_inputs ?? false });
      const seqs = model.generate(enc, generate);
      const decoded = tokenizer.batchDecode(seqs, { skip_special_tokens: true, clean_up_tokenization_spaces: clean_up_tokenization_spaces ?? false });
      for (const text of decoded) out.push({ generated_text: text });
      // let other work run between batches (generation itself is synchronous in the engine)
      await Promise.resolve();
    }
    return out;
  };

  const p = run as unknown as Text2TextGenerationPipeline;
  Object.defineProperties(p, {
    task: { value: "text2text-generation", enumerable: true },
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
