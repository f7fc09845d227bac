/**
 * `T5Config`: transformers' T5 configuration with every field, its defaults and validation coming
 * from the engine (the same parser that loads models), so the two can never disagree.
 */

import { wasmCall } from "./errors.js";
import { checkJson, openSource, readJsonText, type LoadOptions, type ModelSource } from "./files.js";
import { initWasm } from "./wasm.js";

/** The fields of transformers' `T5Config` (plus the common `PretrainedConfig` ones T5 uses). */
export interface T5ConfigFields {
  vocab_size: number;
  d_model: number;
  d_kv: number;
  d_ff: number;
  num_layers: number;
  /** Resolved: `num_layers` when the file leaves it out or null. */
  num_decoder_layers: number;
  num_heads: number;
  relative_attention_num_buckets: number;
  relative_attention_max_distance: number;
  dropout_rate: number;
  layer_norm_epsilon: number;
  initializer_factor: number;
  /** "relu" | "gelu" | "gated-gelu" | "gated-silu" | "[gated-]ACT" */
  feed_forward_proj: string;
  /** Derived from `feed_forward_proj` as transformers does (`gated-gelu` → "gelu_new"). */
  dense_act_fn: string;
  /** Derived: whether `feed_forward_proj` starts with "gated-". */
  is_gated_act: boolean;
  tie_word_embeddings: boolean;
  /** transformers 5: whether the decoder output is scaled by `d_model**-0.5` before the LM head;
   * `null` in v4-era files (then it follows `tie_word_embeddings`). */
  scale_decoder_outputs: boolean | null;
  decoder_start_token_id: number | null;
  pad_token_id: number | null;
  eos_token_id: number | number[] | null;
  is_encoder_decoder: boolean;
  use_cache: boolean;
  classifier_dropout: number | null;
  architectures: string[] | null;
  model_type: string | null;
  /** Legacy; T5's relative positions do not limit the input length. */
  n_positions: number | null;
  num_labels: number | null;
  id2label: Record<string, string> | null;
  label2id: Record<string, number> | null;
  problem_type: string | null;
  task_specific_params: Record<string, Record<string, unknown>> | null;
}

export class T5Config implements T5ConfigFields {
  declare vocab_size: number;
  declare d_model: number;
  declare d_kv: number;
  declare d_ff: number;
  declare num_layers: number;
  declare num_decoder_layers: number;
  declare num_heads: number;
  declare relative_attention_num_buckets: number;
  declare relative_attention_max_distance: number;
  declare dropout_rate: number;
  declare layer_norm_epsilon: number;
  declare initializer_factor: number;
  declare feed_forward_proj: string;
  declare dense_act_fn: string;
  declare is_gated_act: boolean;
  declare tie_word_embeddings: boolean;
  declare scale_decoder_outputs: boolean | null;
  declare decoder_start_token_id: number | null;
  declare pad_token_id: number | null;
  declare eos_token_id: number | number[] | null;
  declare is_encoder_decoder: boolean;
  declare use_cache: boolean;
  declare classifier_dropout: number | null;
  declare architectures: string[] | null;
  declare model_type: string | null;
  declare n_positions: number | null;
  declare num_labels: number | null;
  declare id2label: Record<string, string> | null;
  declare label2id: Record<string, number> | null;
  declare problem_type: string | null;
  declare task_specific_params: Record<string, Record<string, unknown>> | null;
  /** Any other key of config.json, kept as is (e.g. `transformers_version`, `dtype`). */
  [key: string]: unknown;

  /** @internal From the engine's normalised JSON (see `parseConfig` in t5-wasm). */
  constructor(fields: Record<string, unknown>) {
    Object.assign(this, fields);
  }

  /** Parse and validate config.json text (or an already parsed object). */
  static async fromJSON(json: string | object): Promise<T5Config> {
    const text = typeof json === "string" ? json : JSON.stringify(json);
    if (typeof json === "string") checkJson(text, "config.json");
    const wasm = await initWasm();
    return new T5Config(JSON.parse(wasmCall(() => wasm.parseConfig(text), "config.json")) as Record<string, unknown>);
  }

  /** `config.json` of a model directory, base URL, Hub id (`owner/name`) or in-memory files. */
  static async fromPretrained(dirOrUrl: ModelSource, opts: LoadOptions = {}): Promise<T5Config> {
    const src = await openSource(dirOrUrl, opts);
    return T5Config.fromJSON(await readJsonText(src, "config.json", true));
  }

  /** transformers' name of {@link fromPretrained}: `config.json` of a directory, URL, Hub id or in-memory files. */
  static from_pretrained(dirOrUrl: ModelSource, opts: LoadOptions = {}): Promise<T5Config> {
    return T5Config.fromPretrained(dirOrUrl, opts);
  }

  /** Plain object with every field (what `JSON.stringify` writes). */
  toJSON(): Record<string, unknown> {
    return { ...this };
  }
}
