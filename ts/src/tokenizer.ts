/**
 * `T5Tokenizer` / `AutoTokenizer`: transformers' fast T5 tokenizer (the engine wraps the
 * `tokenizers` crate loaded from `tokenizer.json`), with the settings of `tokenizer_config.json`.
 *
 * Over-long inputs. T5 uses relative positions, so neither the model nor the engine has a hard
 * length limit, but models are trained on at most `model_max_length` tokens (512 for the Hub T5s)
 * and transformers *warns* when an untruncated input is longer. A warning on the console is easy to
 * miss in a JS app, so here it is an error instead: when `truncation` is false (the default) and a
 * row is longer than `model_max_length`, the tokenizer throws {@link InputTooLongError}. Callers
 * either truncate (`truncation: true`, optionally with `max_length`) or opt out explicitly with
 * `allow_long_inputs: true`. Tokenizers without a `model_max_length` never throw it.
 */

import { BadInputError, DisposedError, wasmCall } from "./errors.js";
import { openSource, readRequired, type LoadOptions, type ModelSource } from "./files.js";
import { initWasm } from "./wasm.js";
import type { WasmTokenizer } from "#t5-wasm";

export interface TokenizerCallOptions {
  /** `true` / "longest": pad to the longest row; "max_length": pad to `max_length`
   * (default `model_max_length`); `false` / "do_not_pad" (default): no padding. */
  padding?: boolean | "longest" | "max_length" | "do_not_pad";
  /** Truncate rows to `max_length` (default `model_max_length`). Default false. */
  truncation?: boolean;
  max_length?: number;
  /** Append `</s>` (default true). */
  add_special_tokens?: boolean;
  /** Do not throw {@link InputTooLongError} for untruncated rows longer than `model_max_length`. */
  allow_long_inputs?: boolean;
}

export interface DecodeOptions {
  skip_special_tokens?: boolean;
  /** Default: tokenizer_config.json's `clean_up_tokenization_spaces` (true for the Hub T5s). */
  clean_up_tokenization_spaces?: boolean;
}

/** Output of a tokenizer call, as transformers' `BatchEncoding` with lists. */
export interface BatchEncoding {
  input_ids: number[][];
  attention_mask: number[][];
}

interface WasmEncoded {
  ids: Uint32Array;
  mask: Uint32Array;
  lengths: Uint32Array;
  batch: number;
  seq: number;
}

type TokenIds = ArrayLike<number>;

function checkIds(ids: TokenIds, what: string): Uint32Array {
  const out = new Uint32Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i]!;
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new BadInputError(`${what}: ${String(v)} is not a token id`);
    out[i] = v;
  }
  return out;
}

/** The callable form: `tokenizer(texts, options)` is `tokenizer._call(texts, options)`. */
export interface T5Tokenizer {
  (texts: string | string[], options?: TokenizerCallOptions): BatchEncoding;
}

export class T5Tokenizer {
  private declare inner: WasmTokenizer | undefined;

  /** @internal Use {@link AutoTokenizer.fromPretrained} or {@link T5Tokenizer.fromPretrained}. */
  constructor(inner: WasmTokenizer) {
    // An instance is a function (so that `tokenizer(texts)` works like Python's `__call__`) whose
    // prototype is this class; no `Function` constructor involved, so it is CSP-safe.
    const self = ((texts: string | string[], options?: TokenizerCallOptions) => self._call(texts, options)) as T5Tokenizer;
    Object.setPrototypeOf(self, new.target.prototype);
    Object.defineProperty(self, "inner", { value: inner, writable: true, enumerable: false });
    return self;
  }

  /** From `tokenizer.json` (required) and `tokenizer_config.json` (optional) bytes. */
  static async fromBytes(tokenizerJson: Uint8Array, tokenizerConfig?: Uint8Array): Promise<T5Tokenizer> {
    const wasm = await initWasm();
    return new T5Tokenizer(wasmCall(() => new wasm.WasmTokenizer(tokenizerJson, tokenizerConfig), "tokenizer.json"));
  }

  /** From `spiece.model` bytes (a slow-tokenizer checkpoint) and optional `tokenizer_config.json` bytes. */
  static async fromSpiece(spieceModel: Uint8Array, tokenizerConfig?: Uint8Array): Promise<T5Tokenizer> {
    const wasm = await initWasm();
    return new T5Tokenizer(wasmCall(() => wasm.WasmTokenizer.fromSpiece(spieceModel, tokenizerConfig), "spiece.model"));
  }

  /**
   * The tokenizer of a model directory or base URL: `tokenizer.json`, or for older checkpoints that have none,
   * `spiece.model` (converted as transformers does); `tokenizer_config.json` when present.
   */
  static async fromPretrained(dirOrUrl: ModelSource, opts: LoadOptions = {}): Promise<T5Tokenizer> {
    const src = await openSource(dirOrUrl, opts);
    const cfg = await src.read("tokenizer_config.json");
    const json = await src.read("tokenizer.json");
    if (json) return T5Tokenizer.fromBytes(json, cfg);
    const spiece = await src.read("spiece.model");
    if (spiece) return T5Tokenizer.fromSpiece(spiece, cfg);
    return T5Tokenizer.fromBytes(await readRequired(src, "tokenizer.json"), cfg);
  }

  private get live(): WasmTokenizer {
    if (!this.inner) throw new DisposedError("this tokenizer");
    return this.inner;
  }

  /** transformers' `tokenizer(texts, padding=…, truncation=…, max_length=…)`. */
  _call(texts: string | string[], options: TokenizerCallOptions = {}): BatchEncoding {
    const list = typeof texts === "string" ? [texts] : texts;
    if (!Array.isArray(list) || list.some((t) => typeof t !== "string")) {
      throw new BadInputError("texts must be a string or an array of strings");
    }
    const padding = options.padding === true ? "longest" : options.padding === false || options.padding === undefined ? "do_not_pad" : options.padding;
    const maxLength = options.max_length;
    if (maxLength !== undefined && (!Number.isInteger(maxLength) || maxLength <= 0 || maxLength > 0xffffffff)) {
      throw new BadInputError(`max_length must be a positive integer, got ${String(maxLength)}`);
    }
    const truncation = options.truncation ?? false;
    const limit = truncation || options.allow_long_inputs ? undefined : this.live.modelMaxLength;
    const tk = this.live;
    const enc = wasmCall(
      () => tk.encodeBatch(list, padding, truncation, maxLength, options.add_special_tokens ?? true, limit) as WasmEncoded,
    );
    const input_ids: number[][] = [];
    const attention_mask: number[][] = [];
    let at = 0;
    for (const len of enc.lengths) {
      input_ids.push(Array.from(enc.ids.subarray(at, at + len)));
      attention_mask.push(Array.from(enc.mask.subarray(at, at + len)));
      at += len;
    }
    return { input_ids, attention_mask };
  }

  /** Ids of one text (`</s>` appended unless `add_special_tokens: false`). */
  encode(text: string, options: Omit<TokenizerCallOptions, "padding"> = {}): number[] {
    if (typeof text !== "string") throw new BadInputError("text must be a string");
    return this._call([text], { ...options, padding: false }).input_ids[0]!;
  }

  /** transformers' `decode(ids, skip_special_tokens)`. */
  decode(ids: TokenIds, options: DecodeOptions = {}): string {
    const u = checkIds(ids, "decode");
    const tk = this.live;
    return wasmCall(() => tk.decode(u, options.skip_special_tokens ?? false, options.clean_up_tokenization_spaces));
  }

  /** transformers' `batch_decode(rows, skip_special_tokens)`. */
  batchDecode(rows: TokenIds[], options: DecodeOptions = {}): string[] {
    const lengths = new Uint32Array(rows.map((r) => r.length));
    const flat = new Uint32Array(lengths.reduce((a, b) => a + b, 0));
    let at = 0;
    for (const r of rows) {
      flat.set(checkIds(r, "batchDecode"), at);
      at += r.length;
    }
    const tk = this.live;
    return wasmCall(() => tk.decodeBatch(flat, lengths, options.skip_special_tokens ?? false, options.clean_up_tokenization_spaces));
  }

  /** Alias of {@link batchDecode} with transformers' name. */
  batch_decode(rows: TokenIds[], options: DecodeOptions = {}): string[] {
    return this.batchDecode(rows, options);
  }

  /**
   * One text (or a `text`, `pair` pair, joined as `text </s> pair </s>`) with transformers'
   * `return_offsets_mapping` / `return_special_tokens_mask` / `sequence_ids()`. Offsets are JavaScript string
   * indices (UTF-16 code units) into the text the token came from; `(0, 0)` for added special tokens;
   * `sequence_ids` is 0 / 1 for tokens of `text` / `pair`, `null` for added special tokens.
   */
  encodeWithOffsets(text: string, pair?: string, options: { add_special_tokens?: boolean } = {}): {
    input_ids: number[];
    offset_mapping: [number, number][];
    special_tokens_mask: number[];
    sequence_ids: (number | null)[];
  } {
    if (typeof text !== "string" || (pair !== undefined && typeof pair !== "string")) throw new BadInputError("text must be a string");
    const tk = this.live;
    const r = wasmCall(() => tk.encodeWithOffsets(text, pair, options.add_special_tokens ?? true)) as {
      ids: Uint32Array;
      starts: Uint32Array;
      ends: Uint32Array;
      special: Uint32Array;
      sequence: Int32Array;
    };
    return {
      input_ids: Array.from(r.ids),
      offset_mapping: Array.from(r.starts, (s, i) => [s, r.ends[i]!] as [number, number]),
      special_tokens_mask: Array.from(r.special),
      sequence_ids: Array.from(r.sequence, (s) => (s < 0 ? null : s)),
    };
  }

  /** `<extra_id_0>`, `<extra_id_1>`, … */
  getSentinelTokens(): string[] {
    return this.live.sentinelTokens();
  }

  /** Ids of {@link getSentinelTokens}, same order (`<extra_id_0>` = 32099 for the Hub T5s). */
  getSentinelTokenIds(): number[] {
    return Array.from(this.live.sentinelTokenIds());
  }

  convertTokensToIds(tokens: string[]): (number | undefined)[] {
    const tk = this.live;
    return tokens.map((t) => tk.tokenToId(t));
  }

  convertIdsToTokens(ids: TokenIds): (string | undefined)[] {
    const tk = this.live;
    return Array.from(checkIds(ids, "convertIdsToTokens"), (id) => tk.idToToken(id));
  }

  get pad_token_id(): number {
    return this.live.padTokenId;
  }

  get eos_token_id(): number | undefined {
    return this.live.eosTokenId;
  }

  /** `model_max_length` of tokenizer_config.json; `undefined` when unlimited. */
  get model_max_length(): number | undefined {
    return this.live.modelMaxLength;
  }

  /** Size of the vocabulary including added tokens. */
  get vocab_size(): number {
    return this.live.vocabSize;
  }

  get disposed(): boolean {
    return this.inner === undefined;
  }

  /** Free the WebAssembly memory of the tokenizer. Later use throws {@link DisposedError}. */
  dispose(): void {
    if (this.inner) {
      this.inner.free();
      this.inner = undefined;
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

export class AutoTokenizer {
  /** The tokenizer of a model directory or base URL. */
  static fromPretrained(dirOrUrl: ModelSource, opts: LoadOptions = {}): Promise<T5Tokenizer> {
    return T5Tokenizer.fromPretrained(dirOrUrl, opts);
  }
}
