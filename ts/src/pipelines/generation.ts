/** text2text-generation, summarization, translation (T5ForConditionalGeneration). */

import { BadInputError } from "../errors.js";
import { GENERATE_KEYS, type GenerateOptions, type T5ForConditionalGeneration } from "../models.js";
import type { T5Tokenizer } from "../tokenizer.js";
import { batchSize, textList } from "./common.js";
import type { SummarizationOutput, Text2TextCallOptions, Text2TextGenerationOutput, TranslationOutput } from "./types.js";

export function generation(task: string, model: T5ForConditionalGeneration, tokenizer: T5Tokenizer) {
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
