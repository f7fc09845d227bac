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

import { BadInputError, DisposedError, InputTooLongError, T5WebError, wasmCall } from "./errors.js";
import { openSource, readRequired, type LoadOptions, type ModelSource } from "./files.js";
import { IdTensor, idRow, idRows, type IdsRow, type IdsRows } from "./ids.js";
import { savePretrained, type SaveTarget } from "./save.js";
import { initWasm, wasmIfReady } from "./wasm.js";
import type { WasmTokenizer } from "#t5-wasm";
import { guardEngine } from "./engine-guard.js";

export interface TokenizerCallOptions {
  /** `true` / "longest": pad to the longest row; "max_length": pad to `max_length`
   * (default `model_max_length`); `false` / "do_not_pad" (default): no padding. */
  padding?: boolean | "longest" | "max_length" | "do_not_pad";
  /** Pad on this side for this call (transformers 4.45+); default: the tokenizer's {@link T5Tokenizer.padding_side}. */
  padding_side?: "left" | "right";
  /** `true` / "longest_first", "only_first", "only_second": truncate rows (pairs: the longer part first, or only
   * one part) to `max_length` (default `model_max_length`). Default false / "do_not_truncate". */
  truncation?: boolean | "longest_first" | "only_first" | "only_second" | "do_not_truncate";
  max_length?: number;
  /** With truncation and `return_overflowing_tokens`: tokens shared by consecutive windows. Default 0. */
  stride?: number;
  /** The second sequence of each row (`text </s> text_pair </s>`); also accepted as the call's second argument. */
  text_pair?: string | string[] | string[][];
  /** The input is pre-split into words: `string[]` is one row, `string[][]` a batch; `word_ids()` index the words. */
  is_split_into_words?: boolean;
  /** Keep every window of a truncated row (each a row of the output; `overflow_to_sample_mapping` says whose). */
  return_overflowing_tokens?: boolean;
  /** Add `offset_mapping`: per token `[start, end]` in JavaScript string indices (UTF-16 units) of the text, pair
   * or word it comes from; `[0, 0]` for added special tokens and padding. */
  return_offsets_mapping?: boolean;
  /** Add `special_tokens_mask`: 1 for tokens the tokenizer added (`</s>`, padding). */
  return_special_tokens_mask?: boolean;
  /** Append `</s>` (default true). */
  add_special_tokens?: boolean;
  /** Do not throw {@link InputTooLongError} for untruncated rows longer than `model_max_length`. */
  allow_long_inputs?: boolean;
  /** transformers' `return_tensors` ("pt", "np", …; `true`): `input_ids` / `attention_mask` as int64 {@link IdTensor}s
   * (`[batch, seq]`: rows must have one length, so pad). Default: lists (`number[][]`). */
  return_tensors?: ReturnTensors;
  /** transformers.js's name of the same choice (there a boolean, default true; here default false). */
  return_tensor?: boolean;
}

/** What `return_tensors` accepts: any of transformers' framework names (all give an {@link IdTensor}) or `true`. */
export type ReturnTensors = "pt" | "np" | "tf" | "jax" | "mlx" | "js" | boolean;

export interface DecodeOptions {
  skip_special_tokens?: boolean;
  /** Default: tokenizer_config.json's `clean_up_tokenization_spaces` (true for the Hub T5s). */
  clean_up_tokenization_spaces?: boolean;
}

/** Output of a tokenizer call, as transformers' `BatchEncoding` with lists. */
export interface BatchEncoding {
  input_ids: number[][];
  attention_mask: number[][];
  /** With `return_offsets_mapping`. */
  offset_mapping?: [number, number][][];
  /** With `return_special_tokens_mask`. */
  special_tokens_mask?: number[][];
  /** With `return_overflowing_tokens`: the input row of each output row. */
  overflow_to_sample_mapping?: number[];
  /** transformers' `word_ids(batch_index)`: the word of each token (`null` for added special tokens and padding). */
  word_ids(batch_index?: number): (number | null)[];
  /** transformers' `sequence_ids(batch_index)`: 0 (text), 1 (text_pair) or `null` (special tokens, padding). */
  sequence_ids(batch_index?: number): (number | null)[];
}

/** The fields of a wasm result struct, copied out once (each getter copies out of wasm memory); the struct is freed. */
function take<T extends { free(): void }, K extends keyof T>(r: T, keys: readonly K[]): Pick<T, K> {
  try {
    const out = {} as Pick<T, K>;
    for (const k of keys) out[k] = r[k];
    return out;
  } finally {
    r.free();
  }
}

const DETAILED = ["ids", "mask", "lengths", "starts", "ends", "special", "sequence", "words", "sample"] as const;
const OFFSETS = ["ids", "starts", "ends", "special", "sequence"] as const;
const SAVED = ["tokenizer_json", "tokenizer_config_json"] as const;

type TextInput = string | string[] | string[][];

/** Rows of a call's `text` or `text_pair`: `[strings, words per row or undefined]`. */
function rowsOf(input: TextInput, words: boolean, what: string): [string[], Uint32Array | undefined] {
  const isStrings = (x: unknown): x is string[] => Array.isArray(x) && x.every((t) => typeof t === "string");
  if (!words) {
    if (typeof input === "string") return [[input], undefined];
    if (isStrings(input)) return [input, undefined];
    throw new BadInputError(`${what} must be a string or an array of strings (pre-split words need is_split_into_words: true)`);
  }
  if (isStrings(input)) {
    if (input.length === 0) throw new BadInputError(`${what}: is_split_into_words needs at least one word per row`);
    return [input, Uint32Array.of(input.length)];
  }
  if (Array.isArray(input) && input.every(isStrings)) {
    const rows = input as string[][];
    if (rows.some((r) => r.length === 0)) throw new BadInputError(`${what}: is_split_into_words needs at least one word per row`);
    return [rows.flat(), Uint32Array.from(rows.map((r) => r.length))];
  }
  throw new BadInputError(`${what} with is_split_into_words must be an array of words or an array of such arrays`);
}

/** A tokenizer call's output with `return_tensors`: int64 `[batch, seq]` tensors (transformers.js's shape). */
export type TensorBatchEncoding = Omit<BatchEncoding, "input_ids" | "attention_mask" | "special_tokens_mask"> & {
  input_ids: IdTensor;
  attention_mask: IdTensor;
  special_tokens_mask?: IdTensor;
};

type TensorCall = TokenizerCallOptions & ({ return_tensors: Exclude<ReturnTensors, false> } | { return_tensor: true });

/** The callable form: `tokenizer(texts, options)` / `tokenizer(texts, text_pair, options)` is `tokenizer._call(…)`. */
export interface T5Tokenizer {
  (texts: TextInput, options: TensorCall): TensorBatchEncoding;
  (texts: TextInput, textPair: TextInput, options: TensorCall): TensorBatchEncoding;
  (texts: TextInput, options?: TokenizerCallOptions): BatchEncoding;
  (texts: TextInput, textPair: TextInput, options?: TokenizerCallOptions): BatchEncoding;
}

/**
 * transformers 5.24's `T5Tokenizer(vocab=…, extra_ids=100, eos_token, unk_token, pad_token,
 * additional_special_tokens)`: a Unigram tokenizer over an in-memory vocabulary, built by the engine exactly as
 * transformers builds it (no normalizer, Metaspace, `</s>` appended; the Unigram unknown id is 2, as there).
 *
 * Sentinels: transformers 5.24 numbers the `<extra_id_N>` it adds ascending (`<extra_id_0>` = the first id after the
 * vocabulary), every pretrained T5 checkpoint descending (`<extra_id_0>` = the last id). t5-web follows the
 * checkpoints (what pretrained weights expect); every other id is transformers'.
 */
export interface T5TokenizerInit {
  /** `[piece, score]` pairs in id order, or piece → score (a `Map`, or an object: its key order, which JavaScript
   * puts integer-like keys first in). */
  vocab: readonly (readonly [string, number])[] | ReadonlyMap<string, number> | Readonly<Record<string, number>>;
  /** Number of sentinels `<extra_id_0>` … (default 100). */
  extra_ids?: number;
  eos_token?: string;
  unk_token?: string;
  pad_token?: string;
  additional_special_tokens?: string[];
  model_max_length?: number;
  padding_side?: "left" | "right";
  clean_up_tokenization_spaces?: boolean;
}

const INIT_KEYS = ["vocab", "extra_ids", "eos_token", "unk_token", "pad_token", "additional_special_tokens", "model_max_length", "padding_side", "clean_up_tokenization_spaces"];

/** The engine's JSON of a {@link T5TokenizerInit} (checked: unknown keys, non-finite scores and bad types are errors). */
function vocabSpecJson(init: T5TokenizerInit): string {
  if (typeof init !== "object" || init === null) throw new BadInputError("T5Tokenizer: expected { vocab, … }");
  for (const k of Object.keys(init)) if (!INIT_KEYS.includes(k)) throw new BadInputError(`T5Tokenizer: unknown option ${k} (known: ${INIT_KEYS.join(", ")})`);
  const v = init.vocab as unknown;
  const pairs: unknown[] = Array.isArray(v) ? v : v instanceof Map ? [...v.entries()] : typeof v === "object" && v !== null ? Object.entries(v) : [];
  if (!Array.isArray(v) && (typeof v !== "object" || v === null)) throw new BadInputError("T5Tokenizer: vocab must be a list of [piece, score], a Map or an object of piece → score");
  const vocab = pairs.map((p, i) => {
    if (!Array.isArray(p) || p.length !== 2 || typeof p[0] !== "string" || typeof p[1] !== "number" || !Number.isFinite(p[1])) {
      throw new BadInputError(`T5Tokenizer: vocab[${i}] must be [piece, finite score], got ${JSON.stringify(p)}`);
    }
    return p;
  });
  const { extra_ids, model_max_length } = init;
  for (const [k, n] of [["extra_ids", extra_ids], ["model_max_length", model_max_length]] as const) {
    if (n !== undefined && (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0)) throw new BadInputError(`T5Tokenizer: ${k} must be a non-negative integer, got ${String(n)}`);
  }
  return JSON.stringify({ ...init, vocab });
}

/** {@link T5Tokenizer.fromPretrained}'s options: where to load from, and transformers' `padding_side` init argument. */
export interface TokenizerLoadOptions extends LoadOptions {
  padding_side?: "left" | "right";
}

export class T5Tokenizer {
  private declare inner: WasmTokenizer | undefined;

  /**
   * `new T5Tokenizer({ vocab, extra_ids, … })`: transformers' `T5Tokenizer(vocab=…)` (see {@link T5TokenizerInit});
   * needs the engine initialised (`await initWasm()`, or any earlier load) — {@link T5Tokenizer.fromVocab} awaits it.
   * (Internally also built around an engine tokenizer: use {@link AutoTokenizer.from_pretrained} for files.)
   */
  constructor(init: T5TokenizerInit | WasmTokenizer) {
    let inner: WasmTokenizer;
    if (typeof init === "object" && init !== null && "vocab" in init) {
      const wasm = wasmIfReady();
      if (!wasm) throw new T5WebError("new T5Tokenizer({ vocab }) needs the engine: await initWasm() first, or use await T5Tokenizer.fromVocab({ vocab })");
      const json = vocabSpecJson(init);
      inner = wasmCall(() => wasm.WasmTokenizer.fromVocab(json), "vocab");
    } else {
      inner = init;
    }
    // An instance is a function (so that `tokenizer(texts)` works like Python's `__call__`) whose
    // prototype is this class; no `Function` constructor involved, so it is CSP-safe.
    const self = ((texts: TextInput, a?: TextInput | TokenizerCallOptions, b?: TokenizerCallOptions) => self._call(texts, a, b)) as T5Tokenizer;
    Object.setPrototypeOf(self, new.target.prototype);
    // engine-guard.ts: a trap poisons this tokenizer only; dispose() never throws
    Object.defineProperty(self, "inner", { value: guardEngine(inner, "this T5Tokenizer"), writable: true, enumerable: false });
    return self;
  }

  /** From `tokenizer.json` (required) and `tokenizer_config.json` (optional) bytes. */
  static async fromBytes(tokenizerJson: Uint8Array, tokenizerConfig?: Uint8Array): Promise<T5Tokenizer> {
    const wasm = await initWasm();
    return new T5Tokenizer(wasmCall(() => new wasm.WasmTokenizer(tokenizerJson, tokenizerConfig), "tokenizer.json"));
  }

  /** transformers' `T5Tokenizer(vocab=…)`, after initialising the engine (see {@link T5TokenizerInit}). */
  static async fromVocab(init: T5TokenizerInit): Promise<T5Tokenizer> {
    await initWasm();
    return new T5Tokenizer(init);
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
  static async fromPretrained(dirOrUrl: ModelSource, opts: TokenizerLoadOptions = {}): Promise<T5Tokenizer> {
    const side = opts.padding_side;
    if (side !== undefined && side !== "left" && side !== "right") throw new BadInputError(`padding_side must be "left" or "right", got ${String(side)}`);
    const src = await openSource(dirOrUrl, opts);
    const cfg = await src.read("tokenizer_config.json");
    const json = await src.read("tokenizer.json");
    const spiece = json ? undefined : await src.read("spiece.model");
    const tok = json
      ? await T5Tokenizer.fromBytes(json, cfg)
      : spiece
        ? await T5Tokenizer.fromSpiece(spiece, cfg)
        : await T5Tokenizer.fromBytes(await readRequired(src, "tokenizer.json"), cfg);
    if (side !== undefined) tok.padding_side = side;
    return tok;
  }

  /** transformers' name of {@link fromPretrained}: a directory, a URL, a Hub id (`owner/name`) or in-memory files. */
  static from_pretrained(dirOrUrl: ModelSource, opts: TokenizerLoadOptions = {}): Promise<T5Tokenizer> {
    return T5Tokenizer.fromPretrained(dirOrUrl, opts);
  }

  private get live(): WasmTokenizer {
    if (!this.inner) throw new DisposedError("this tokenizer");
    return this.inner;
  }

  /**
   * transformers' `tokenizer(text, text_pair, padding=…, padding_side=…, truncation=…, max_length=…, stride=…,
   * is_split_into_words=…, return_overflowing_tokens=…, return_offsets_mapping=…, return_special_tokens_mask=…)`.
   */
  _call(texts: TextInput, pairOrOptions?: TextInput | TokenizerCallOptions, maybeOptions?: TokenizerCallOptions): BatchEncoding | TensorBatchEncoding {
    const positionalPair = typeof pairOrOptions === "string" || Array.isArray(pairOrOptions);
    const options: TokenizerCallOptions = (positionalPair ? maybeOptions : ((pairOrOptions as TokenizerCallOptions | undefined) ?? maybeOptions)) ?? {};
    const rt = options.return_tensors ?? options.return_tensor ?? false;
    if (!["pt", "np", "tf", "jax", "mlx", "js", true, false].includes(rt)) throw new BadInputError(`return_tensors: unknown value ${JSON.stringify(rt)}`);
    const enc = this.encodeLists(texts, pairOrOptions, maybeOptions);
    if (rt === false) return enc;
    // int64 [batch, seq] tensors; the methods stay non-enumerable, as on the lists form
    const { input_ids, attention_mask, special_tokens_mask, ...rest } = enc;
    const t: Omit<TensorBatchEncoding, "word_ids" | "sequence_ids"> = {
      input_ids: IdTensor.fromRows(input_ids, "return_tensors"),
      attention_mask: IdTensor.fromRows(attention_mask, "return_tensors"),
      ...rest,
    };
    if (special_tokens_mask) t.special_tokens_mask = IdTensor.fromRows(special_tokens_mask, "return_tensors");
    return Object.defineProperties(t, { word_ids: { value: enc.word_ids }, sequence_ids: { value: enc.sequence_ids } }) as TensorBatchEncoding;
  }

  /** {@link _call} with lists (`return_tensors` ignored). */
  private encodeLists(texts: TextInput, pairOrOptions?: TextInput | TokenizerCallOptions, maybeOptions?: TokenizerCallOptions): BatchEncoding {
    const positionalPair = typeof pairOrOptions === "string" || Array.isArray(pairOrOptions);
    const options: TokenizerCallOptions = (positionalPair ? maybeOptions : ((pairOrOptions as TokenizerCallOptions | undefined) ?? maybeOptions)) ?? {};
    if (typeof options !== "object" || options === null) throw new BadInputError("tokenizer options must be an object");
    const pair = positionalPair ? (pairOrOptions as TextInput) : options.text_pair;
    const words = options.is_split_into_words ?? false;
    const [strings, counts] = rowsOf(texts, words, "texts");
    const [pairStrings, pairCounts] = pair === undefined || pair === null ? [undefined, undefined] : rowsOf(pair, words, "text_pair");
    const padding = options.padding === true ? "longest" : options.padding === false || options.padding === undefined ? "do_not_pad" : options.padding;
    const truncation =
      options.truncation === true ? "longest_first" : options.truncation === false || options.truncation === undefined ? "do_not_truncate" : options.truncation;
    const maxLength = options.max_length;
    if (maxLength !== undefined && (!Number.isInteger(maxLength) || maxLength <= 0 || maxLength > 0xffffffff)) {
      throw new BadInputError(`max_length must be a positive integer, got ${String(maxLength)}`);
    }
    const stride = options.stride ?? 0;
    if (!Number.isInteger(stride) || stride < 0 || stride > 0xffffffff) throw new BadInputError(`stride must be a non-negative integer, got ${String(stride)}`);
    const side = options.padding_side;
    if (side !== undefined && side !== "left" && side !== "right") throw new BadInputError(`padding_side must be "left" or "right", got ${String(side)}`);
    const tk = this.live;
    if (padding === "max_length" && maxLength === undefined && tk.modelMaxLength === undefined) {
      throw new BadInputError('padding="max_length" needs max_length (the tokenizer has no model_max_length)');
    }
    const json = JSON.stringify({
      padding,
      padding_side: side ?? null,
      truncation,
      max_length: maxLength ?? null,
      stride,
      add_special_tokens: options.add_special_tokens ?? true,
      return_overflowing_tokens: options.return_overflowing_tokens ?? false,
    });
    const r = take(wasmCall(() => tk.encodeDetailed(strings, counts, pairStrings, pairCounts, json)), DETAILED);
    const limit = truncation !== "do_not_truncate" || options.allow_long_inputs ? undefined : tk.modelMaxLength;
    const input_ids: number[][] = [];
    const attention_mask: number[][] = [];
    const starts: number[] = [];
    let at = 0;
    for (const len of r.lengths) {
      const mask = Array.from(r.mask.subarray(at, at + len));
      if (limit !== undefined) {
        const real = mask.reduce((a, b) => a + b, 0);
        if (real > limit) {
          throw new InputTooLongError(
            `input of ${real} tokens is longer than the maximum of ${limit} (model_max_length): pass truncation: true (optionally with max_length) or allow_long_inputs: true`,
          );
        }
      }
      input_ids.push(Array.from(r.ids.subarray(at, at + len)));
      attention_mask.push(mask);
      starts.push(at);
      at += len;
    }
    const rowOf = <T>(src: Uint32Array | Int32Array, i: number, f: (v: number, k: number) => T): T[] =>
      Array.from(src.subarray(starts[i]!, starts[i]! + r.lengths[i]!), f);
    const out = { input_ids, attention_mask } as BatchEncoding;
    if (options.return_offsets_mapping) out.offset_mapping = starts.map((_, i) => rowOf(r.starts, i, (v, k) => [v, r.ends[starts[i]! + k]!] as [number, number]));
    if (options.return_special_tokens_mask) out.special_tokens_mask = starts.map((_, i) => rowOf(r.special, i, (v) => v));
    if (options.return_overflowing_tokens) out.overflow_to_sample_mapping = Array.from(r.sample);
    const ids = (what: string, src: Int32Array) => (i = 0) => {
      if (!Number.isInteger(i) || i < 0 || i >= starts.length) throw new BadInputError(`${what}(${String(i)}): batch index out of range 0..${starts.length - 1}`);
      return rowOf(src, i, (v) => (v < 0 ? null : v));
    };
    // methods, as on transformers' BatchEncoding (not enumerable: the object stays {input_ids, attention_mask, …})
    Object.defineProperties(out, {
      word_ids: { value: ids("word_ids", r.words) },
      sequence_ids: { value: ids("sequence_ids", r.sequence) },
    });
    return out;
  }

  /** Ids of one text (`</s>` appended unless `add_special_tokens: false`). */
  encode(text: string, options: Omit<TokenizerCallOptions, "padding"> = {}): number[] {
    if (typeof text !== "string") throw new BadInputError("text must be a string");
    return this.encodeLists([text], { ...options, padding: false }).input_ids[0]!;
  }

  /** transformers' `decode(ids, skip_special_tokens)`: ids as a list, typed array (`BigInt64Array` too) or tensor. */
  decode(ids: IdsRow, options: DecodeOptions = {}): string {
    const u = idRow(ids, "decode");
    const tk = this.live;
    return wasmCall(() => tk.decode(u, options.skip_special_tokens ?? false, options.clean_up_tokenization_spaces));
  }

  /** transformers' `batch_decode(rows, skip_special_tokens)`: rows as lists / typed arrays, or a 2-D tensor. */
  batchDecode(rows: IdsRows, options: DecodeOptions = {}): string[] {
    const { flat, lengths } = idRows(rows, "batch_decode");
    const tk = this.live;
    return wasmCall(() => tk.decodeBatch(flat, lengths, options.skip_special_tokens ?? false, options.clean_up_tokenization_spaces));
  }

  /** Alias of {@link batchDecode} with transformers' name. */
  batch_decode(rows: IdsRows, options: DecodeOptions = {}): string[] {
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
    const r = take(wasmCall(() => tk.encodeWithOffsets(text, pair, options.add_special_tokens ?? true)), OFFSETS);
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

  convertIdsToTokens(ids: IdsRow): (string | undefined)[] {
    const tk = this.live;
    return Array.from(idRow(ids, "convertIdsToTokens"), (id) => tk.idToToken(id));
  }

  /** transformers' `tokenize(text, pair, add_special_tokens=False)`: the token strings. */
  tokenize(text: string, options: { pair?: string; add_special_tokens?: boolean } = {}): string[] {
    if (typeof text !== "string" || (options.pair !== undefined && typeof options.pair !== "string")) throw new BadInputError("tokenize: text (and pair) must be strings");
    const tk = this.live;
    return wasmCall(() => tk.tokenize(text, options.pair, options.add_special_tokens ?? false));
  }

  /** transformers' `convert_tokens_to_ids`: one token → its id, a list → a list; unknown tokens → `unk_token_id`. */
  convert_tokens_to_ids(tokens: string): number;
  convert_tokens_to_ids(tokens: string[]): number[];
  convert_tokens_to_ids(tokens: string | string[]): number | number[] {
    const tk = this.live;
    const one = (t: unknown) => {
      if (typeof t !== "string") throw new BadInputError(`convert_tokens_to_ids: ${String(t)} is not a token string`);
      const id = tk.tokenToIdOrUnk(t);
      if (id === undefined) throw new BadInputError(`convert_tokens_to_ids: ${JSON.stringify(t)} is not in the vocabulary and there is no unk token`);
      return id;
    };
    return Array.isArray(tokens) ? tokens.map(one) : one(tokens);
  }

  /** transformers' `convert_ids_to_tokens`: one id → its token, ids → a list (`undefined` for an id out of range). */
  convert_ids_to_tokens(ids: number | bigint): string | undefined;
  convert_ids_to_tokens(ids: IdsRow): (string | undefined)[];
  convert_ids_to_tokens(ids: number | bigint | IdsRow): string | undefined | (string | undefined)[] {
    if (typeof ids === "number" || typeof ids === "bigint") return this.convertIdsToTokens([ids])[0];
    return this.convertIdsToTokens(ids);
  }

  get_sentinel_tokens(): string[] {
    return this.getSentinelTokens();
  }

  get_sentinel_token_ids(): number[] {
    return this.getSentinelTokenIds();
  }

  /**
   * transformers' `get_special_tokens_mask(ids, ids1?, already_has_special_tokens?)`: with
   * `already_has_special_tokens`, 1 for each special token among the ids (a second sequence is then an error);
   * without, the mask once `</s>` is appended to each sequence (`[0…0, 1]`, with `ids1` `[0…0, 1, 0…0, 1]`).
   * The third argument may also be `{ already_has_special_tokens }`, and so may the second.
   */
  get_special_tokens_mask(ids: IdsRow, ids1?: IdsRow | null | { already_has_special_tokens?: boolean }, already_has_special_tokens?: boolean | { already_has_special_tokens?: boolean }): number[] {
    const isOpts = (x: unknown): x is { already_has_special_tokens?: boolean } =>
      typeof x === "object" && x !== null && !Array.isArray(x) && !ArrayBuffer.isView(x) && !("dims" in x);
    let second = ids1;
    let already = already_has_special_tokens;
    if (isOpts(second)) {
      already = second;
      second = undefined;
    }
    const flag = isOpts(already) ? already.already_has_special_tokens : already;
    if (flag !== undefined && typeof flag !== "boolean") throw new BadInputError("get_special_tokens_mask: already_has_special_tokens must be a boolean");
    const a = idRow(ids, "get_special_tokens_mask");
    const b = second === undefined || second === null ? undefined : idRow(second, "get_special_tokens_mask (ids1)");
    const tk = this.live;
    return Array.from(wasmCall(() => tk.specialTokensMaskOf(a, b, flag ?? false)));
  }

  /**
   * transformers' `save_pretrained(directory)`: `tokenizer.json` and `tokenizer_config.json`, written into the
   * directory when one is given (Node, Bun, Deno) and returned as a file map (name → bytes) in every runtime, as the
   * models' `save_pretrained`; {@link T5Tokenizer.from_pretrained} loads either back to identical ids.
   */
  async save_pretrained(directory?: SaveTarget): Promise<Map<string, Uint8Array>> {
    const tk = this.live;
    const saved = take(wasmCall(() => tk.savedFiles()), SAVED);
    const utf8 = new TextEncoder();
    const files = new Map([
      ["tokenizer_config.json", utf8.encode(saved.tokenizer_config_json)],
      ["tokenizer.json", utf8.encode(saved.tokenizer_json)],
    ]);
    return savePretrained(files, directory);
  }

  /** transformers' `save_vocabulary`: for this (tokenizer.json-backed) tokenizer, the files of {@link save_pretrained}. */
  save_vocabulary(directory?: SaveTarget): Promise<Map<string, Uint8Array>> {
    return this.save_pretrained(directory);
  }

  /** transformers' `unk_token_id`. */
  get unk_token_id(): number | undefined {
    return this.live.unkTokenId;
  }

  get pad_token_id(): number {
    return this.live.padTokenId;
  }

  get eos_token_id(): number | undefined {
    return this.live.eosTokenId;
  }

  /** transformers' `padding_side`: "right" unless tokenizer_config.json or a load option says "left"; settable. */
  get padding_side(): "left" | "right" {
    return this.live.paddingSide as "left" | "right";
  }

  set padding_side(side: "left" | "right") {
    if (side !== "left" && side !== "right") throw new BadInputError(`padding_side must be "left" or "right", got ${String(side)}`);
    const tk = this.live;
    wasmCall(() => tk.setPaddingSide(side));
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
  /** The tokenizer of a model directory, base URL, Hub id (`owner/name`) or in-memory files. */
  static fromPretrained(dirOrUrl: ModelSource, opts: TokenizerLoadOptions = {}): Promise<T5Tokenizer> {
    return T5Tokenizer.fromPretrained(dirOrUrl, opts);
  }

  /** transformers' name of {@link fromPretrained}. */
  static from_pretrained(dirOrUrl: ModelSource, opts: TokenizerLoadOptions = {}): Promise<T5Tokenizer> {
    return T5Tokenizer.fromPretrained(dirOrUrl, opts);
  }
}
