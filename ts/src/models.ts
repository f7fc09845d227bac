/**
 * The models: `T5ForConditionalGeneration`, `T5Model`, `T5EncoderModel` and
 * `AutoModelForSeq2SeqLM`, loaded from a directory or base URL in the Hub layout. All numerics run
 * in the WebAssembly engine; this layer only moves arrays in and out and names things.
 *
 * Input length: T5's relative position buckets impose no maximum sequence length, so the models
 * accept inputs of any length (`n_positions` in old configs is not a limit). Length policy lives in
 * the tokenizer (see `tokenizer.ts`).
 */

import { BadConfigError, BadInputError, DisposedError, wasmCall } from "./errors.js";
import { T5Config } from "./config.js";
import { addWeightFiles, ggufSource, openSource, readJsonText, readRequired, type FileSource, type LoadOptions, type ModelSource } from "./files.js";
import { initWasm } from "./wasm.js";
import { runFull, wantsFull, type ExtraOutputs, type FullForwardInputs } from "./outputs.js";
import { gpuAwait, gpuError, prepareWebGpu, type Device } from "./webgpu.js";
import type { WasmGpuModel, WasmModel } from "#t5-wasm";
import { engineFailed, guardEngine } from "./engine-guard.js";

/** A dense float tensor: row-major `data` with shape `dims` (transformers.js' `Tensor` shape). */
export class Tensor {
  constructor(
    readonly data: Float32Array,
    readonly dims: number[],
  ) {}

  get size(): number {
    return this.data.length;
  }

  /** Nested arrays, like `torch.Tensor.tolist()`. */
  tolist(): unknown[] {
    const build = (offset: number, d: number): unknown[] => {
      const n = this.dims[d]!;
      if (d === this.dims.length - 1) return Array.from(this.data.subarray(offset, offset + n));
      const stride = this.dims.slice(d + 1).reduce((a, b) => a * b, 1);
      return Array.from({ length: n }, (_, i) => build(offset + i * stride, d + 1));
    };
    return this.dims.length === 0 ? [] : build(0, 0);
  }
}

/** Token ids: rows of numbers, one row, or an integer tensor `{data, dims: [batch, seq]}`. */
export type IdsLike = number[][] | number[] | { data: ArrayLike<number | bigint>; dims: readonly number[] };

export interface ForwardInputs {
  input_ids: IdsLike;
  attention_mask?: IdsLike;
  decoder_input_ids?: IdsLike;
  /** Target ids, -100 where ignored. Without `decoder_input_ids` the decoder input is the labels shifted right. */
  labels?: IdsLike;
  decoder_attention_mask?: IdsLike;
}

export interface Seq2SeqLMOutput {
  logits: Tensor;
  /** Mean cross-entropy over the labels that are not -100 (when `labels` were given). */
  loss?: number;
  /** Decoder output after its final layer norm, `[batch, target_len, d_model]`. */
  decoder_last_hidden_state: Tensor;
  encoder_last_hidden_state: Tensor;
}

export interface Seq2SeqModelOutput {
  /** Decoder output, `[batch, target_len, d_model]`. */
  last_hidden_state: Tensor;
  encoder_last_hidden_state: Tensor;
}

export interface EncoderOutput {
  last_hidden_state: Tensor;
}

/** Options of {@link T5ForConditionalGeneration.generate} (over the model's generation_config.json), transformers' names. */
export interface GenerateOptions {
  max_new_tokens?: number;
  /** Maximum length of the output including the decoder start token (unset: 20 new tokens, as transformers 5). */
  max_length?: number;
  min_new_tokens?: number;
  min_length?: number;
  eos_token_id?: number | number[];
  pad_token_id?: number;
  decoder_start_token_id?: number;
  /** Beam search when > 1 (CPU). */
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
   * ids transformers samples for `torch.manual_seed(seed)`). Default 0.
   */
  seed?: number;
  /** With `true`, {@link T5ForConditionalGeneration.generate} returns `{sequences, sequences_scores?}`. */
  return_dict_in_generate?: boolean;
  /** Accepted for transformers compatibility; beam search always reports `sequences_scores`. */
  output_scores?: boolean;
  /** Told each step's new tokens as they are generated (transformers.js' streamer interface). Not with beam search. */
  streamer?: GenerationStreamer;
  /**
   * Called after each step with its index and the new token of each row (beam search: of each input's best running
   * beam); returning `false` stops generation there.
   */
  callback_function?: (step: { index: number; tokens: number[] }) => unknown;
  /** Stops generation after the current step; generate then throws the signal's reason. */
  signal?: AbortSignal;
}

/** `put([[token of row 0], [token of row 1], …])` after each step, `end()` once generation stops. */
export interface GenerationStreamer {
  put(value: number[][]): void;
  end(): void;
}

/** What `generate(…, {return_dict_in_generate: true})` returns. */
export interface GenerateOutput {
  sequences: number[][];
  /** Beam search: the length-penalised score of each returned sequence (transformers' `sequences_scores`). */
  sequences_scores?: number[];
}

/** The option names {@link T5ForConditionalGeneration.generate} accepts (pipelines filter task presets by it). */
export const GENERATE_KEYS: ReadonlySet<string> = new Set([
  "max_new_tokens",
  "max_length",
  "min_new_tokens",
  "min_length",
  "eos_token_id",
  "pad_token_id",
  "decoder_start_token_id",
  "num_beams",
  "do_sample",
  "num_return_sequences",
  "length_penalty",
  "early_stopping",
  "temperature",
  "top_k",
  "top_p",
  "repetition_penalty",
  "no_repeat_ngram_size",
  "bad_words_ids",
  "forced_eos_token_id",
  "cache_implementation",
  "seed",
]);

/** Options that shape what generate returns or who hears about it, not the engine's generation config. */
const CALL_KEYS = new Set(["return_dict_in_generate", "output_scores", "streamer", "callback_function", "signal"]);

interface RawGenerate {
  sequences: Uint32Array;
  batch: number;
  length: number;
  sequences_scores?: Float32Array;
}

function rowsOf(r: RawGenerate): number[][] {
  return Array.from({ length: r.batch }, (_, i) => Array.from(r.sequences.subarray(i * r.length, (i + 1) * r.length)));
}

/** Split generate options into the engine's JSON and the call-side options, rejecting unknown names. */
function splitGenerateOptions(options: GenerateOptions): { json: string; call: GenerateOptions } {
  const engine: Record<string, unknown> = {};
  const call: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) {
    if (CALL_KEYS.has(k)) call[k] = v;
    else if (GENERATE_KEYS.has(k)) engine[k] = v;
    else throw new BadConfigError(`unknown generation option ${JSON.stringify(k)} (supported: ${[...GENERATE_KEYS, ...CALL_KEYS].join(", ")})`);
  }
  if (call["streamer"] !== undefined && ((options.num_beams ?? 1) > 1)) {
    // as transformers: "`streamer` cannot be used with beam search (yet!)"
    throw new BadConfigError("streamer cannot be used with beam search (num_beams > 1)");
  }
  return { json: JSON.stringify(engine), call: call as GenerateOptions };
}

/** Encoder input for {@link T5ForConditionalGeneration.generate}: a tokenizer output or rows of ids. */
export type GenerateInputs = { input_ids: IdsLike; attention_mask?: IdsLike } | IdsLike;

interface Flat<T> {
  data: T;
  batch: number;
  seq: number;
}

/** Rows/tensor → flat row-major values, checking that it is rectangular and holds integers in range. */
function flatten<T extends Uint32Array | Int32Array>(x: IdsLike, name: string, make: (n: number) => T, min: number, max: number): Flat<T> {
  let batch: number, seq: number, get: (i: number) => number | bigint;
  if (Array.isArray(x)) {
    const rows: unknown[] = x.length > 0 && Array.isArray(x[0]) ? x : [x];
    batch = rows.length;
    seq = batch > 0 ? (rows[0] as unknown[]).length : 0;
    for (const r of rows) {
      if (!Array.isArray(r)) throw new BadInputError(`${name} must be an array of rows`);
      if (r.length !== seq) throw new BadInputError(`${name} rows have different lengths (${seq} and ${r.length}); pad them and pass an attention mask`);
    }
    get = (i) => (rows[Math.floor(i / seq)] as number[])[i % seq]!;
  } else if (x && typeof x === "object" && "dims" in x && "data" in x) {
    const dims = x.dims;
    if (dims.length === 1) [batch, seq] = [1, dims[0]!];
    else if (dims.length === 2) [batch, seq] = [dims[0]!, dims[1]!];
    else throw new BadInputError(`${name} must be 2-D [batch, seq], got dims [${dims.join(", ")}]`);
    if (x.data.length !== batch * seq) throw new BadInputError(`${name} has ${x.data.length} values for dims [${dims.join(", ")}]`);
    get = (i) => x.data[i]!;
  } else {
    throw new BadInputError(`${name} must be number[][], number[] or {data, dims}`);
  }
  if (batch === 0 || seq === 0) throw new BadInputError(`${name} is empty (batch ${batch}, length ${seq})`);
  const data = make(batch * seq);
  for (let i = 0; i < data.length; i++) {
    const v = Number(get(i));
    if (!Number.isInteger(v) || v < min || v > max) throw new BadInputError(`${name}: ${String(get(i))} is not a valid value`);
    data[i] = v;
  }
  return { data, batch, seq };
}

const ids = (x: IdsLike, name: string) => flatten(x, name, (n) => new Uint32Array(n), 0, 0xffffffff);
const mask = (x: IdsLike, name: string) => flatten(x, name, (n) => new Uint32Array(n), 0, 1);
const labelIds = (x: IdsLike, name: string) => flatten(x, name, (n) => new Int32Array(n), -100, 0x7fffffff);

function sameShape(a: Flat<unknown>, b: Flat<unknown>, an: string, bn: string): void {
  if (a.batch !== b.batch || a.seq !== b.seq) {
    throw new BadInputError(`${bn} is [${b.batch}, ${b.seq}] but ${an} is [${a.batch}, ${a.seq}]`);
  }
}

/** The engine's model kinds (the head classes are in heads.ts; "auto": from config.json's `architectures`). */
export type Kind = "seq2seq-lm" | "t5-model" | "encoder" | "seq-cls" | "token-cls" | "qa" | "auto";

interface RawForward {
  encoder_last_hidden_state: Float32Array;
  encoder_shape: number[];
  decoder_last_hidden_state?: Float32Array;
  decoder_shape?: number[];
  logits?: Float32Array;
  logits_shape?: number[];
  loss?: number;
}

/** Storage form of the linear weights: load-time conversion (pre-quantized checkpoints load as stored). */
export type WeightDtype = "fp32" | "fp16" | "bf16" | "q8" | "q4";

/** `fromPretrained` options: file access plus `dtype` (default "fp32"). */
export interface ModelLoadOptions extends LoadOptions {
  dtype?: WeightDtype;
  /**
   * A GGUF checkpoint (llama.cpp's T5 layout) in the directory / base URL / files, e.g.
   * `'model-q4_0.gguf'`: config from its metadata, its F32 / F16 / BF16 / Q8_0 / Q4_0 / Q4_1
   * weights as stored. A path, URL or `File` ending in `.gguf` needs no option.
   */
  model_file_name?: string;
  /**
   * `'cpu'` (default): the WebAssembly engine on the CPU. `'webgpu'`: the same model on the GPU
   * through `navigator.gpu` (`dtype` "fp32"; "fp16": float16 weights and transformers' float16
   * numerics, fp32 `wo` and the inf clamp; "q8" / "q4": the packed weights stay packed on the GPU, as the
   * CPU's q8 / q4; "bf16" runs on the CPU only; results come through `forwardAsync` / `generateAsync`);
   * fails with `WebGPUUnavailableError` when there is none. `'auto'`: WebGPU when available, else
   * the CPU, with the reason in `model.deviceNote`.
   */
  device?: Device;
  /** WebGPU: split weights into pieces of at most this many bytes (default: the device's limits). */
  maxChunkBytes?: number;
  /**
   * Stream safetensors weights into the engine piece by piece, each tensor converted to `dtype` as it arrives
   * (default true): the file is never whole in memory, so a checkpoint larger than one WebAssembly memory (4 GiB)
   * loads as "q8" / "q4". `false` reads each file whole first (the engine keeps it until the model is built).
   */
  stream_weights?: boolean;
}

/** What one WebGPU `generateAsync` recorded (dispatches / submits from the second decode step). */
export interface GpuGenerateStats {
  prefill_dispatches: number;
  dispatches_per_step: number;
  /** element-wise ops per step folded into a matmul (dispatches unfused = dispatches_per_step + this) */
  fused_per_step: number;
  submits_per_step: number;
  /** bytes read back per step: 4 per row greedy (the argmax), (2k + 2) · 4 per row for a top-k, whole logits rows otherwise */
  read_back_per_step: number;
  /** bind groups created per step from the third on (0: all cached) */
  bind_groups_per_step: number;
  /** bind groups created by the call (0 when the same shape ran before) */
  bind_groups_created: number;
  steps: number;
}

interface Loaded {
  inner: WasmModel | WasmGpuModel;
  config: T5Config;
  location: string;
  device: "cpu" | "webgpu";
  deviceNote?: string;
}

async function loadModel(dirOrUrl: ModelSource, kind: Kind, opts: ModelLoadOptions): Promise<Loaded> {
  const wasm = await initWasm();
  const device = opts.device ?? "cpu";
  if (device !== "cpu" && device !== "webgpu" && device !== "auto") {
    throw new BadConfigError(`unknown device ${JSON.stringify(device)}: expected "webgpu", "cpu" or "auto"`);
  }
  // open the GPU first: with 'auto' a failure falls back to the CPU before the weights are read
  let gpu: Awaited<ReturnType<typeof wasm.requestGpu>> | undefined;
  let deviceNote: string | undefined;
  if (device !== "cpu") {
    try {
      if (opts.dtype === "bf16") {
        throw new BadConfigError(`dtype ${JSON.stringify(opts.dtype)} runs on the CPU only; WebGPU runs "fp32", "fp16", "q8" and "q4"`);
      }
      const why = await prepareWebGpu();
      if (why !== undefined) throw gpuError(Object.assign(new Error(why), { name: "WebGPUUnavailable" }));
      gpu = (await gpuAwait(() => wasm.requestGpu(opts.maxChunkBytes))) as typeof gpu;
    } catch (e) {
      if (device === "webgpu") throw gpuError(e);
      deviceNote = `WebGPU unavailable, running on the CPU: ${(e as Error).message}`;
    }
  }
  const gguf = ggufSource(dirOrUrl, opts.model_file_name);
  const src: FileSource = await openSource(gguf ? gguf.source : dirOrUrl, opts);
  let builder: InstanceType<typeof wasm.WasmModelBuilder>;
  let config: T5Config;
  if (gguf) {
    // config and weights from the GGUF file (crates/t5-core/src/gguf.rs)
    const bytes = await readRequired(src, gguf.file);
    const genText = await readJsonText(src, "generation_config.json", false);
    builder = guardEngine(wasmCall(() => wasm.WasmModelBuilder.fromGguf(gguf.file, bytes, genText), gguf.file), "the model being loaded");
    const b = builder;
    try {
      config = new T5Config(JSON.parse(wasmCall(() => wasm.parseConfig(b.configJson()), gguf.file)) as Record<string, unknown>);
    } catch (e) {
      b.free();
      throw e;
    }
  } else {
    const configText = await readJsonText(src, "config.json", true);
    const genText = await readJsonText(src, "generation_config.json", false);
    config = new T5Config(JSON.parse(wasmCall(() => wasm.parseConfig(configText), "config.json")) as Record<string, unknown>);
    builder = guardEngine(wasmCall(() => new wasm.WasmModelBuilder(configText, genText)), "the model being loaded");
  }
  try {
    if (opts.dtype !== undefined) {
      const dtype = opts.dtype;
      wasmCall(() => builder.setDtype(dtype), "dtype");
    }
    wasmCall(() => builder.setKind(kind));
    // model.safetensors, sharded safetensors (streamed), pytorch_model.bin or its shards (files.ts); a model
    // larger than one WebAssembly memory in this dtype is a ModelTooLargeError from the first file's header
    // (the config's size, unless pre-quantized) and from each header (its tensors), before their data is read.
    // A GGUF file was read whole above.
    if (!gguf) await addWeightFiles(src, builder, (text) => wasm.shardFilesFromIndex(text), { stream: opts.stream_weights ?? true });
    if (gpu) {
      const g = gpu;
      const inner = wasmCall(() => builder.buildGpu(g, kind));
      return { inner, config, location: src.location, device: "webgpu" };
    }
    const inner = wasmCall(() => builder.build(kind));
    return { inner, config, location: src.location, device: "cpu", ...(deviceNote === undefined ? {} : { deviceNote }) };
  } finally {
    builder.free();
    gpu?.free();
  }
}

/** @internal Load a model and make it an instance of `pick(kind)`, `kind` being what the engine built ("seq2seq-lm",
 * "t5-model", "encoder", "seq-cls", "token-cls", "qa"): the head classes of heads.ts and `AutoModel`. */
export async function loadModelAs<T>(dirOrUrl: ModelSource, kind: Kind, opts: ModelLoadOptions, pick: (built: string) => unknown): Promise<T> {
  const loaded = await loadModel(dirOrUrl, kind, opts);
  try {
    const cls = pick((loaded.inner as { kind?: string }).kind ?? kind) as new (l: Loaded) => T;
    return new cls(loaded);
  } catch (e) {
    loaded.inner.free();
    throw e;
  }
}

/** `generate`'s first argument as `{input_ids, attention_mask?}`; anything but ids or an object of them is a BadInputError. */
function generateInputs(inputs: GenerateInputs): { input_ids: IdsLike; attention_mask?: IdsLike } {
  if (inputs === null || typeof inputs !== "object") {
    throw new BadInputError(`generate: expected input_ids (an array of id rows or a Tensor) or {input_ids, attention_mask}, got ${inputs === null ? "null" : typeof inputs}`);
  }
  return Array.isArray(inputs) || "dims" in inputs ? { input_ids: inputs as IdsLike } : (inputs as { input_ids: IdsLike; attention_mask?: IdsLike });
}

/** Shared by the three model classes. */
export abstract class T5PreTrainedModel {
  /** The parsed config.json. */
  readonly config: T5Config;
  /** Where the model was loaded from (directory or base URL). */
  readonly location: string;
  /** Where the model runs. */
  readonly device: "cpu" | "webgpu";
  /** With `device: 'auto'` on the CPU: why WebGPU was not used. */
  readonly deviceNote: string | undefined;
  private inner: WasmModel | WasmGpuModel | undefined;

  protected constructor(loaded: Loaded) {
    // engine-guard.ts: a trap poisons this model only (later calls: EngineFailureError); dispose() never throws
    this.inner = guardEngine(loaded.inner, `this ${new.target.name}`);
    this.config = loaded.config;
    this.location = loaded.location;
    this.device = loaded.device;
    this.deviceNote = loaded.deviceNote;
  }

  private get engine(): WasmModel | WasmGpuModel {
    if (!this.inner) throw new DisposedError(`this ${this.constructor.name}`);
    return this.inner;
  }

  /** The CPU engine; a WebGPU model answers asynchronously only. */
  protected get live(): WasmModel {
    const e = this.engine;
    if (this.device === "webgpu") {
      throw new BadInputError(`this ${this.constructor.name} runs on WebGPU, whose results arrive asynchronously: use forwardAsync() / generateAsync()`);
    }
    return e as WasmModel;
  }

  /** The WebGPU engine (undefined on the CPU). */
  protected get liveGpu(): WasmGpuModel | undefined {
    const e = this.engine;
    return this.device === "webgpu" ? (e as WasmGpuModel) : undefined;
  }

  /** WebGPU models: adapter, limits, dispatch / submit counters, live GPU buffers (undefined on the CPU). */
  get gpuInfo(): Record<string, unknown> | undefined {
    const g = this.liveGpu;
    return g ? (JSON.parse(g.deviceInfo()) as Record<string, unknown>) : undefined;
  }

  /** The generation config in use (generation_config.json over the model config). */
  get generation_config(): Record<string, unknown> {
    return JSON.parse(this.engine.generationConfig()) as Record<string, unknown>;
  }

  get disposed(): boolean {
    return this.inner === undefined;
  }

  /** Free the model's WebAssembly memory. Later use throws {@link DisposedError}. */
  dispose(): void {
    const inner = this.inner;
    if (!inner) return;
    this.inner = undefined;
    // WebGPU: destroys every GPU buffer of the model (and its device) before freeing the handle
    if (this.device === "webgpu" && !engineFailed(inner)) {
      try {
        (inner as WasmGpuModel).dispose();
      } catch {
        // the handle is freed below all the same
      }
    }
    inner.free(); // guarded: never throws
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  protected encoderInput(inputs: { input_ids: IdsLike; attention_mask?: IdsLike }) {
    const input = ids(inputs.input_ids, "input_ids");
    let m: Uint32Array | undefined;
    if (inputs.attention_mask !== undefined) {
      const fm = mask(inputs.attention_mask, "attention_mask");
      sameShape(input, fm, "input_ids", "attention_mask");
      m = fm.data;
    }
    return { input, mask: m };
  }

  protected runForward(inputs: ForwardInputs): RawForward {
    const a = this.forwardArgs(inputs);
    const model = this.live;
    return wasmCall(() => model.forward(...a) as RawForward);
  }

  /** {@link runForward} on either device. */
  protected async runForwardAsync(inputs: ForwardInputs): Promise<RawForward> {
    const g = this.liveGpu;
    if (!g) return this.runForward(inputs);
    const a = this.forwardArgs(inputs);
    return gpuAwait(() => g.forward(...a) as Promise<RawForward>);
  }

  private forwardArgs(inputs: ForwardInputs) {
    const { input, mask: m } = this.encoderInput(inputs);
    let dec: Flat<Uint32Array> | undefined;
    let lab: Flat<Int32Array> | undefined;
    let dmask: Flat<Uint32Array> | undefined;
    if (inputs.decoder_input_ids !== undefined) dec = ids(inputs.decoder_input_ids, "decoder_input_ids");
    if (inputs.labels !== undefined) lab = labelIds(inputs.labels, "labels");
    if (inputs.decoder_attention_mask !== undefined) dmask = mask(inputs.decoder_attention_mask, "decoder_attention_mask");
    const ref = dec ?? lab;
    for (const [f, n] of [[dec, "decoder_input_ids"], [lab, "labels"], [dmask, "decoder_attention_mask"]] as const) {
      if (f && f.batch !== input.batch) throw new BadInputError(`${n} has batch ${f.batch}, input_ids ${input.batch}`);
      if (f && ref) sameShape(ref, f, dec ? "decoder_input_ids" : "labels", n);
    }
    return [input.data, m, input.batch, input.seq, dec?.data, lab?.data, dmask?.data] as const;
  }
}

function needDecoderInput(inputs: ForwardInputs): void {
  if (inputs.decoder_input_ids === undefined && inputs.labels === undefined) {
    throw new BadInputError("decoder_input_ids or labels are required");
  }
}

/** transformers' `T5ForConditionalGeneration`: encoder, decoder, LM head. */
export class T5ForConditionalGeneration extends T5PreTrainedModel {
  static async fromPretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<T5ForConditionalGeneration> {
    return new T5ForConditionalGeneration(await loadModel(dirOrUrl, "seq2seq-lm", opts));
  }

  /** Dispatch statistics of the last WebGPU {@link generateAsync}. */
  lastGenerateStats: GpuGenerateStats | undefined;

  /** `model(input_ids, attention_mask, decoder_input_ids | labels, decoder_attention_mask)`, and transformers'
   * optional inputs / outputs (`output_hidden_states`, `output_attentions`, `encoder_outputs`, `past_key_values`,
   * `use_cache`: see outputs.ts). */
  forward(inputs: ForwardInputs | FullForwardInputs): Seq2SeqLMOutput & ExtraOutputs {
    if (wantsFull(inputs)) {
      needDecoderInput(inputs as ForwardInputs);
      return runFull(this.live, "seq2seq-lm", this.config, inputs as FullForwardInputs) as unknown as Seq2SeqLMOutput & ExtraOutputs;
    }
    needDecoderInput(inputs as ForwardInputs);
    return this.lmOutput(this.runForward(inputs as ForwardInputs));
  }

  /** {@link forward} on either device (WebGPU results arrive asynchronously). */
  async forwardAsync(inputs: ForwardInputs): Promise<Seq2SeqLMOutput> {
    needDecoderInput(inputs);
    return this.lmOutput(await this.runForwardAsync(inputs));
  }

  private lmOutput(r: RawForward): Seq2SeqLMOutput {
    const out: Seq2SeqLMOutput = {
      logits: new Tensor(r.logits!, r.logits_shape!),
      decoder_last_hidden_state: new Tensor(r.decoder_last_hidden_state!, r.decoder_shape!),
      encoder_last_hidden_state: new Tensor(r.encoder_last_hidden_state, r.encoder_shape),
    };
    if (r.loss !== undefined) out.loss = r.loss;
    return out;
  }

  /**
   * transformers' `generate(**inputs, …)`: greedy search, sampling (`do_sample`), beam search (`num_beams`) with the
   * logits processors of {@link GenerateOptions}. One row per input and returned sequence, each starting with the
   * decoder start token and padded as transformers pads them. With `return_dict_in_generate: true`:
   * `{sequences, sequences_scores}`. Synchronous: `streamer` / `callback_function` / `signal` are consulted between
   * steps (an `AbortSignal` aborted by a timer needs {@link generateStream}, which yields between steps).
   */
  generate(inputs: GenerateInputs, options: GenerateOptions & { return_dict_in_generate: true }): GenerateOutput;
  generate(inputs: GenerateInputs, options?: GenerateOptions): number[][];
  generate(inputs: GenerateInputs, options: GenerateOptions = {}): number[][] | GenerateOutput {
    const enc = generateInputs(inputs);
    const { input, mask: m } = this.encoderInput(enc);
    const { json, call } = splitGenerateOptions(options);
    const { streamer, signal, callback_function } = call;
    signal?.throwIfAborted();
    const model = this.live;
    // per-step callback of the engine (false stops generation): streaming and cancellation
    const onStep =
      streamer || signal || callback_function
        ? (index: number, tokens: Uint32Array) => {
            streamer?.put(Array.from(tokens, (t) => [t]));
            const go = callback_function ? callback_function({ index, tokens: Array.from(tokens) }) : true;
            return go !== false && !signal?.aborted;
          }
        : undefined;
    const r = wasmCall(() => model.generate(input.data, m, input.batch, input.seq, json, onStep) as RawGenerate);
    streamer?.end();
    signal?.throwIfAborted();
    const sequences = rowsOf(r);
    if (call.return_dict_in_generate) {
      const out: GenerateOutput = { sequences };
      if (r.sequences_scores) out.sequences_scores = Array.from(r.sequences_scores);
      return out;
    }
    return sequences;
  }

  /**
   * {@link generate} as an async iterator: yields the new token of each row after every step (beam search: of each
   * input's best running beam) and returns the final sequences (`{sequences, sequences_scores?}`) when done. It
   * yields to the event loop between steps, so an `AbortSignal` (`options.signal`, e.g. `AbortSignal.timeout`) stops
   * it between steps (the iterator then throws the signal's reason); leaving a `for await` loop early stops it too.
   * A `streamer` is told each step as with {@link generate}.
   */
  async *generateStream(inputs: GenerateInputs, options: GenerateOptions = {}): AsyncGenerator<number[], GenerateOutput, undefined> {
    const enc = generateInputs(inputs);
    const { input, mask: m } = this.encoderInput(enc);
    const { json, call } = splitGenerateOptions(options);
    const { streamer, signal, callback_function } = call;
    signal?.throwIfAborted();
    const model = this.live;
    const gen = wasmCall(() => model.startGeneration(input.data, m, input.batch, input.seq, json));
    try {
      for (let index = 0; ; index++) {
        const tokens = wasmCall(() => gen.step(this.live));
        if (tokens === undefined) break;
        const row = Array.from(tokens);
        streamer?.put(row.map((t) => [t]));
        if (callback_function && callback_function({ index, tokens: row }) === false) break;
        yield row;
        // a macrotask turn: timers (AbortSignal.timeout) and I/O get to run between steps
        await new Promise<void>((resolve) => setTimeout(resolve, 0));
        signal?.throwIfAborted();
      }
      streamer?.end();
      const r = wasmCall(() => gen.finish() as RawGenerate);
      const out: GenerateOutput = { sequences: rowsOf(r) };
      if (r.sequences_scores) out.sequences_scores = Array.from(r.sequences_scores);
      return out;
    } finally {
      gen.free();
    }
  }

  /**
   * {@link generate} on either device, with the same options and results. On WebGPU every search runs (greedy,
   * sampling, beam search, beam sampling, every logits processor) and each step's logits are reduced on the GPU:
   * greedy search reads back one id per row, beam search and top-k sampling each row's top k and log-sum-exp; only
   * processors that need whole rows (repetition penalty, n-grams, bad words, forced EOS, top-p without top-k, beam
   * sampling) read the logits. `lastGenerateStats` then holds dispatches and bytes read per step.
   */
  async generateAsync(inputs: GenerateInputs, options: GenerateOptions & { return_dict_in_generate: true }): Promise<GenerateOutput>;
  async generateAsync(inputs: GenerateInputs, options?: GenerateOptions): Promise<number[][]>;
  async generateAsync(inputs: GenerateInputs, options: GenerateOptions = {}): Promise<number[][] | GenerateOutput> {
    const g = this.liveGpu;
    if (!g) return this.generate(inputs, options);
    const enc = generateInputs(inputs);
    const { input, mask: m } = this.encoderInput(enc);
    const { json: genJson, call } = splitGenerateOptions(options);
    const { streamer, signal, callback_function } = call;
    signal?.throwIfAborted();
    const onStep =
      streamer || signal || callback_function
        ? (index: number, tokens: Uint32Array) => {
            streamer?.put(Array.from(tokens, (t) => [t]));
            const go = callback_function ? callback_function({ index, tokens: Array.from(tokens) }) : true;
            return go !== false && !signal?.aborted;
          }
        : undefined;
    const r = await gpuAwait(() => g.generate(input.data, m, input.batch, input.seq, genJson, onStep) as Promise<RawGenerate & { stats: GpuGenerateStats }>);
    this.lastGenerateStats = r.stats;
    streamer?.end();
    signal?.throwIfAborted();
    const sequences = rowsOf(r);
    if (call.return_dict_in_generate) {
      const out: GenerateOutput = { sequences };
      if (r.sequences_scores) out.sequences_scores = Array.from(r.sequences_scores);
      return out;
    }
    return sequences;
  }
}

/** transformers' `T5Model`: encoder and decoder, no LM head. */
export class T5Model extends T5PreTrainedModel {
  static async fromPretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<T5Model> {
    return new T5Model(await loadModel(dirOrUrl, "t5-model", opts));
  }

  /** {@link forward} on either device. */
  async forwardAsync(inputs: ForwardInputs): Promise<Seq2SeqModelOutput> {
    needDecoderInput(inputs);
    const r = await this.runForwardAsync(inputs);
    return {
      last_hidden_state: new Tensor(r.decoder_last_hidden_state!, r.decoder_shape!),
      encoder_last_hidden_state: new Tensor(r.encoder_last_hidden_state, r.encoder_shape),
    };
  }

  forward(inputs: ForwardInputs | FullForwardInputs): Seq2SeqModelOutput & ExtraOutputs {
    needDecoderInput(inputs as ForwardInputs);
    if (wantsFull(inputs)) return runFull(this.live, "t5-model", this.config, inputs as FullForwardInputs) as unknown as Seq2SeqModelOutput & ExtraOutputs;
    const r = this.runForward(inputs as ForwardInputs);
    return {
      last_hidden_state: new Tensor(r.decoder_last_hidden_state!, r.decoder_shape!),
      encoder_last_hidden_state: new Tensor(r.encoder_last_hidden_state, r.encoder_shape),
    };
  }
}

/** transformers' `T5EncoderModel`: the encoder alone. */
export class T5EncoderModel extends T5PreTrainedModel {
  static async fromPretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<T5EncoderModel> {
    return new T5EncoderModel(await loadModel(dirOrUrl, "encoder", opts));
  }

  /** {@link forward} on either device. */
  async forwardAsync(inputs: { input_ids: IdsLike; attention_mask?: IdsLike }): Promise<EncoderOutput> {
    const g = this.liveGpu;
    if (!g) return this.forward(inputs);
    const { input, mask: m } = this.encoderInput(inputs);
    const data = await gpuAwait(() => g.encode(input.data, m, input.batch, input.seq) as Promise<Float32Array>);
    return { last_hidden_state: new Tensor(data, [input.batch, input.seq, data.length / (input.batch * input.seq)]) };
  }

  forward(inputs: { input_ids: IdsLike; attention_mask?: IdsLike; output_hidden_states?: boolean; output_attentions?: boolean }): EncoderOutput & ExtraOutputs {
    if (wantsFull(inputs)) return runFull(this.live, "encoder", this.config, inputs) as unknown as EncoderOutput & ExtraOutputs;
    const { input, mask: m } = this.encoderInput(inputs);
    const model = this.live;
    const data = wasmCall(() => model.encode(input.data, m, input.batch, input.seq));
    return { last_hidden_state: new Tensor(data, [input.batch, input.seq, data.length / (input.batch * input.seq)]) };
  }
}

export class AutoModelForSeq2SeqLM {
  /** The seq2seq LM of a model directory or base URL (T5 only: `T5ForConditionalGeneration`). */
  static fromPretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<T5ForConditionalGeneration> {
    return T5ForConditionalGeneration.fromPretrained(dirOrUrl, opts);
  }
}
