/**
 * Generation options and the per-call plumbing shared by every driver of `generate` (async engine on any device,
 * `generateSync` on the CPU, `generateStream`): the options the engine checks (Rust) vs. those that shape the call
 * (streamer, callback, signal, return_dict_in_generate; checked here), and the step callback that feeds them.
 */

import { BadConfigError, GenerationAbortedError } from "./errors.js";
import type { RawGenerate, StepCallback } from "./engine.js";
import type { IdsLike } from "./inputs.js";
import { GeneratedIds } from "./ids.js";

/** transformers' generation options, over the model's generation_config.json: checked by the engine (Rust,
 * crates/t5-wasm/src/options.rs) on every device — an unknown name, NaN, Infinity, a negative or non-integer count or a
 * wrong type is a {@link BadConfigError} naming the option. */
export interface EngineGenerateOptions {
  max_new_tokens?: number;
  /** Maximum length of the output including the decoder start token (unset: 20 new tokens, as transformers 5). */
  max_length?: number;
  min_new_tokens?: number;
  min_length?: number;
  eos_token_id?: number | number[];
  pad_token_id?: number;
  decoder_start_token_id?: number;
  /** Beam search when > 1. */
  num_beams?: number;
  /** Multinomial sampling (beam sampling with `num_beams > 1`). */
  do_sample?: boolean;
  /** Sequences per input (beam search: at most `num_beams`; sampling: independent samples). */
  num_return_sequences?: number;
  /** Beam scores are divided by `generated_length ** length_penalty` (default 1). */
  length_penalty?: number;
  /** Beam search stopping: `true`, `false` (default, heuristic) or `"never"` (canonical). */
  early_stopping?: boolean | "never";
  temperature?: number;
  /** Default 50 when sampling; 0 disables. */
  top_k?: number;
  top_p?: number;
  repetition_penalty?: number;
  no_repeat_ngram_size?: number;
  /** Token sequences that must not be generated. */
  bad_words_ids?: number[][];
  /** Forced as the last token when `max_length` is reached. */
  forced_eos_token_id?: number | number[];
  /** `"static"`: the KV cache is allocated once for the longest allowed length and written in place; default: growing. */
  cache_implementation?: "static" | "dynamic";
  /**
   * Seed of t5-web's own sampling PRNG: the same seed gives the same samples (not torch's RNG stream, so not the
   * ids transformers samples for `torch.manual_seed(seed)`). Unset: a fresh seed per call.
   */
  seed?: number;
}

/** Options of {@link T5ForConditionalGeneration.generate}: the engine's options plus who hears about the steps. */
export interface GenerateOptions extends EngineGenerateOptions {
  /** With `true`, {@link T5ForConditionalGeneration.generate} returns `{sequences, sequences_scores?}`. */
  return_dict_in_generate?: boolean;
  /** Accepted for transformers compatibility; beam search always reports `sequences_scores`. */
  output_scores?: boolean;
  /** Told the prompt (the decoder start token of each row), each step's new tokens, and the end (transformers.js'
   * streamer interface, e.g. {@link TextStreamer}). Not with beam search. */
  streamer?: GenerationStreamer;
  /**
   * Called after each step with its index and the new token of each row (beam search: of each input's best running
   * beam); returning `false` stops generation there.
   */
  callback_function?: (step: { index: number; tokens: number[] }) => unknown;
  /** Stops generation after the current step; generate then throws a {@link GenerationAbortedError} (its `cause`:
   * the signal's reason). CPU generation yields to the event loop between steps, so timers fire during it. */
  signal?: AbortSignal;
}

/** `put(rows)`: first the prompt (decoder start token of each row), then after each step the new token of each
 * row (`[[t0], [t1], …]`); `end()` once generation stops. */
export interface GenerationStreamer {
  put(value: number[][]): void;
  end(): void;
}

/** What `generate(…, {return_dict_in_generate: true})` returns. */
export interface GenerateOutput {
  /** The rows as `number[][]` that also read as transformers.js's int64 `Tensor` ({@link GeneratedIds}). */
  sequences: GeneratedIds;
  /** Beam search: the length-penalised score of each returned sequence (transformers' `sequences_scores`). */
  sequences_scores?: number[];
}

const ENGINE_KEYS: Record<keyof EngineGenerateOptions, true> = {
  max_new_tokens: true,
  max_length: true,
  min_new_tokens: true,
  min_length: true,
  eos_token_id: true,
  pad_token_id: true,
  decoder_start_token_id: true,
  num_beams: true,
  do_sample: true,
  num_return_sequences: true,
  length_penalty: true,
  early_stopping: true,
  temperature: true,
  top_k: true,
  top_p: true,
  repetition_penalty: true,
  no_repeat_ngram_size: true,
  bad_words_ids: true,
  forced_eos_token_id: true,
  cache_implementation: true,
  seed: true,
};

/** The engine's option names (pipelines filter task presets by it); a test checks them against the engine's
 * `generateOptionNames()`, read from the Rust struct. */
export const GENERATE_KEYS: ReadonlySet<string> = new Set(Object.keys(ENGINE_KEYS));

const CALL_KEYS = ["return_dict_in_generate", "output_scores", "streamer", "callback_function", "signal"] as const;

interface CallOptions {
  return_dict_in_generate?: boolean;
  streamer?: GenerationStreamer;
  callback_function?: (step: { index: number; tokens: number[] }) => unknown;
  signal?: AbortSignal;
}

/** Split the call-side options (checked here) from the engine's (checked by the engine). */
function splitOptions(options: GenerateOptions): { engine: Record<string, unknown>; call: CallOptions } {
  const engine: Record<string, unknown> = { ...options };
  const call: CallOptions = {};
  for (const k of CALL_KEYS) delete engine[k];
  const { return_dict_in_generate: rd, output_scores: os, streamer, callback_function: cb, signal } = options;
  if (rd !== undefined && typeof rd !== "boolean") throw new BadConfigError("generation option return_dict_in_generate must be a boolean");
  if (os !== undefined && typeof os !== "boolean") throw new BadConfigError("generation option output_scores must be a boolean");
  if (streamer !== undefined && (typeof streamer?.put !== "function" || typeof streamer?.end !== "function")) {
    throw new BadConfigError("generation option streamer must have put(value) and end() methods");
  }
  if (cb !== undefined && typeof cb !== "function") throw new BadConfigError("generation option callback_function must be a function");
  if (signal !== undefined && !(typeof signal === "object" && signal !== null && typeof signal.throwIfAborted === "function")) {
    throw new BadConfigError("generation option signal must be an AbortSignal");
  }
  if (streamer !== undefined && typeof options.num_beams === "number" && options.num_beams > 1) {
    // as transformers: "`streamer` cannot be used with beam search (yet!)"
    throw new BadConfigError("streamer cannot be used with beam search (num_beams > 1)");
  }
  if (rd) call.return_dict_in_generate = true;
  if (streamer) call.streamer = streamer;
  if (cb) call.callback_function = cb;
  if (signal) call.signal = signal;
  return { engine, call };
}

function rowsOf(r: RawGenerate): GeneratedIds {
  return GeneratedIds.fromFlat(r.sequences, r.batch, r.length);
}

/** Encoder input for {@link T5ForConditionalGeneration.generate}: a tokenizer output or rows of ids. With the
 * options beside the inputs (`generate({...inputs, ...options})`) as transformers.js calls it. */
export type GenerateInputs = ({ input_ids?: IdsLike; inputs?: IdsLike; attention_mask?: IdsLike } & GenerateOptions) | IdsLike;

/** A generation call, prepared once for every driver (async engine, sync CPU): the step callback that feeds the
 * streamer / callback / signal, and what to do with the result. */
export class GenerationCall {
  readonly onStep: StepCallback | undefined;
  readonly engineOptions: Record<string, unknown>;
  private readonly call: CallOptions;

  constructor(options: GenerateOptions, rows: number, decoderStart: number) {
    const { engine, call } = splitOptions(options);
    this.engineOptions = engine;
    this.call = call;
    const { streamer, signal, callback_function } = call;
    if (signal?.aborted) throw aborted(signal);
    // the prompt first, as transformers.js does (the decoder start token of each row): TextStreamer's skip_prompt
    streamer?.put(Array.from({ length: rows }, () => [decoderStart]));
    this.onStep =
      streamer || signal || callback_function
        ? (index, tokens) => {
            streamer?.put(Array.from(tokens, (t) => [t]));
            const go = callback_function ? callback_function({ index, tokens: Array.from(tokens) }) : true;
            return go !== false && !signal?.aborted;
          }
        : undefined;
  }

  finish(r: RawGenerate): GeneratedIds | GenerateOutput {
    const out = this.finishDict(r);
    return this.call.return_dict_in_generate ? out : out.sequences;
  }

  /** {@link finish} as `{sequences, sequences_scores?}` whatever `return_dict_in_generate` says (generateStream). */
  finishDict(r: RawGenerate): GenerateOutput {
    this.call.streamer?.end();
    const signal = this.call.signal;
    if (signal?.aborted) throw aborted(signal);
    const out: GenerateOutput = { sequences: rowsOf(r) };
    if (r.sequences_scores) out.sequences_scores = Array.from(r.sequences_scores);
    return out;
  }

}

function aborted(signal: AbortSignal): GenerationAbortedError {
  const reason: unknown = signal.reason;
  const why = reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason ?? "aborted");
  return new GenerationAbortedError(`generation aborted (${why})`, { cause: reason });
}

