/**
 * transformers' optional inputs and outputs of `forward`, for every T5 class: `output_hidden_states`,
 * `output_attentions` (encoder self-attention, decoder self-attention, cross-attention), `encoder_outputs` given
 * back in to skip the encoder, `past_key_values` returned (`use_cache: true`) and accepted, `decoder_input_ids` /
 * `decoder_attention_mask`, and the labels of the heads. One engine call (`WasmModel.forwardFull`, or on WebGPU the
 * async `WasmGpuModel.forwardFull`: {@link runFullGpu}); nothing extra is
 * computed when an output is not asked for.
 */

import { BadInputError, wasmCall } from "./errors.js";
import type { T5Config } from "./config.js";
import { Tensor } from "./tensor.js";
import type { IdsLike } from "./inputs.js";
import { gpuAwait } from "./webgpu.js";
import type { FullForwardResult, FullList, FullTensor, TensorData, WasmCache, WasmGpuModel, WasmModel } from "#t5-wasm";

/** Float values: nested arrays, a typed array, or a tensor `{data, dims}`. */
export type FloatsLike = number[] | number[][] | Float32Array | Float64Array | { data: ArrayLike<number>; dims: readonly number[] };

/** `encoder_outputs` as transformers takes them: an output object, a tuple whose first item is the last hidden
 * state, or that tensor alone. */
export type EncoderOutputsLike = { last_hidden_state: Tensor } | Tensor | readonly Tensor[];

export interface FullForwardInputs {
  /** Optional when `encoder_outputs` (or a `past_key_values` to continue) are given. */
  input_ids?: IdsLike;
  attention_mask?: IdsLike;
  decoder_input_ids?: IdsLike;
  /** `[batch, past_length + decoder length]` when continuing `past_key_values`. */
  decoder_attention_mask?: IdsLike;
  /** LM: target ids (-100 ignored); sequence classification: class ids `[batch]` or float targets
   * (`[batch, num_labels]`, regression `[batch]`); token classification: class ids `[batch, seq]`. */
  labels?: IdsLike | FloatsLike;
  /** Question answering: answer span per row (positions outside the input are ignored, as transformers). */
  start_positions?: number[];
  end_positions?: number[];
  /** Skip the encoder. */
  encoder_outputs?: EncoderOutputsLike;
  /** Continue this cache; it is updated in place and returned again. The legacy layout (per layer
   * `[self_k, self_v, cross_k, cross_v]`, `[batch, heads, length, d_kv]`) gives a new cache. */
  past_key_values?: PastKeyValues | readonly (readonly Tensor[])[];
  /** Return the decoder cache as `past_key_values`. */
  use_cache?: boolean;
  output_hidden_states?: boolean;
  output_attentions?: boolean;
}

/** The optional outputs, as transformers names them (present when asked for). */
export interface ExtraOutputs {
  /** encoder-only classes */
  hidden_states?: Tensor[];
  attentions?: Tensor[];
  encoder_hidden_states?: Tensor[];
  encoder_attentions?: Tensor[];
  decoder_hidden_states?: Tensor[];
  decoder_attentions?: Tensor[];
  cross_attentions?: Tensor[];
  past_key_values?: PastKeyValues;
}

const FULL_KEYS = ["encoder_outputs", "past_key_values", "use_cache", "output_hidden_states", "output_attentions", "start_positions", "end_positions"];

/** Whether `inputs` use anything beyond the basic forward (then {@link runFull} serves them). */
export function wantsFull(inputs: object): boolean {
  return FULL_KEYS.some((k) => (inputs as Record<string, unknown>)[k] !== undefined) || (inputs as { input_ids?: unknown }).input_ids === undefined;
}

type NumberArray = Float32Array | Float64Array | Int32Array | Uint32Array | Int16Array | Uint16Array | Int8Array | Uint8Array | BigInt64Array | BigUint64Array;

function isNumberArray(x: unknown): x is NumberArray {
  return ArrayBuffer.isView(x) && !(x instanceof DataView);
}

interface Flat<T> {
  data: T;
  batch: number;
  seq: number;
  /** number of dims of the input (1 or 2) */
  rank: number;
}

function flat<T extends Uint32Array | Int32Array | Float32Array>(x: unknown, name: string, make: (n: number) => T, check: (v: number) => boolean): Flat<T> {
  let batch: number, seq: number, rank: number, get: (i: number) => number | bigint;
  if (Array.isArray(x)) {
    const nested = x.length > 0 && Array.isArray(x[0]);
    const rows: unknown[] = nested ? x : [x];
    rank = nested ? 2 : 1;
    batch = rows.length;
    seq = batch > 0 ? (rows[0] as unknown[]).length : 0;
    for (const r of rows) {
      if (!Array.isArray(r) || r.length !== seq) throw new BadInputError(`${name} rows must be arrays of one length`);
    }
    get = (i) => (rows[Math.floor(i / seq)] as number[])[i % seq]!;
  } else if (isNumberArray(x)) {
    const a = x;
    [batch, seq, rank] = [1, a.length, 1];
    get = (i) => a[i]!;
  } else if (x && typeof x === "object" && "dims" in x && "data" in x) {
    const t = x as { data: ArrayLike<number | bigint>; dims: readonly number[] };
    rank = t.dims.length;
    if (rank === 1) [batch, seq] = [1, t.dims[0]!];
    else if (rank === 2) [batch, seq] = [t.dims[0]!, t.dims[1]!];
    else throw new BadInputError(`${name} must be 1-D or 2-D, got dims [${t.dims.join(", ")}]`);
    if (t.data.length !== batch * seq) throw new BadInputError(`${name} has ${t.data.length} values for dims [${t.dims.join(", ")}]`);
    get = (i) => t.data[i]!;
  } else {
    throw new BadInputError(`${name} must be an array, a typed array or {data, dims}`);
  }
  if (batch === 0 || seq === 0) throw new BadInputError(`${name} is empty`);
  const data = make(batch * seq);
  for (let i = 0; i < data.length; i++) {
    const v = Number(get(i));
    if (!check(v)) throw new BadInputError(`${name}: ${String(get(i))} is not a valid value`);
    data[i] = v;
  }
  return { data, batch, seq, rank };
}

const isId = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
const ids = (x: unknown, n: string) => flat(x, n, (k) => new Uint32Array(k), isId);
const mask01 = (x: unknown, n: string) => flat(x, n, (k) => new Uint32Array(k), (v) => v === 0 || v === 1);
const ints = (x: unknown, n: string) => flat(x, n, (k) => new Int32Array(k), (v) => Number.isInteger(v) && v >= -0x80000000 && v <= 0x7fffffff);
const floats = (x: unknown, n: string) => flat(x, n, (k) => new Float32Array(k), (v) => typeof v === "number" && !Number.isNaN(v));

/** The engine's kinds of model. */
export type EngineKind = "seq2seq-lm" | "t5-model" | "encoder" | "seq-cls" | "token-cls" | "qa";

/** Whether sequence-classification labels are float targets, as transformers decides from the config and the
 * labels' dtype (JS has no integer dtype: typed float arrays, 2-D labels and non-integers count as floats). */
function floatLabels(labels: unknown, config: T5Config): boolean {
  const p = config.problem_type;
  if (p === "regression" || p === "multi_label_classification") return true;
  if (p === "single_label_classification") return false;
  if ((config.num_labels ?? 2) === 1) return true;
  const data = labels && typeof labels === "object" && "data" in labels ? (labels as { data: unknown }).data : labels;
  if (data instanceof Float32Array || data instanceof Float64Array) return true;
  const f = floats(labels, "labels");
  return f.rank === 2 || !f.data.every((v) => Number.isInteger(v));
}

/** Tensors out of the engine (see {@link T}), each moved out and freed in turn; if one fails, the rest are freed. */
function takeAll(ts: TensorData[]): Tensor[] {
  const out: Tensor[] = [];
  let j = 0;
  try {
    for (; j < ts.length; j++) out.push(T(ts[j]!));
  } finally {
    for (const t of ts.slice(j + 1)) t.free();
  }
  return out;
}

/** The engine's cache tensors (four per layer: self key, self value, cross key, cross value) as transformers' legacy
 * tuples. */
function takeLayers(ts: TensorData[]): [Tensor, Tensor, Tensor, Tensor][] {
  const out = takeAll(ts);
  const layers: [Tensor, Tensor, Tensor, Tensor][] = [];
  for (let i = 0; i + 4 <= out.length; i += 4) layers.push([out[i]!, out[i + 1]!, out[i + 2]!, out[i + 3]!]);
  return layers;
}

/** A tensor out of the engine (a copy in JS memory), its wasm handle freed. */
function T(r: TensorData): Tensor {
  try {
    return new Tensor(r.takeData(), Array.from(r.dims));
  } finally {
    r.free();
  }
}

/** The tensors of a wasm result are moved out (a getter would copy them in wasm memory first), each once. */
const T1 = (r: FullForwardResult, which: FullTensor) => {
  const t = r.takeTensor(which);
  return t === undefined ? undefined : T(t);
};
/** A list of them: each tensor is moved out as it is copied, so wasm memory frees them one by one. */
const TL = (r: FullForwardResult, which: FullList) => {
  const ts = r.takeList(which);
  return ts === undefined ? undefined : takeAll(ts);
};

/** The fields of a {@link FullForwardResult}, moved out; the struct is freed. */
function takeFull(r: FullForwardResult) {
  try {
    return {
      loss: r.loss,
      logits: T1(r, "logits"),
      start_logits: T1(r, "start_logits"),
      end_logits: T1(r, "end_logits"),
      encoder_last_hidden_state: T1(r, "encoder_last_hidden_state"),
      decoder_last_hidden_state: T1(r, "decoder_last_hidden_state"),
      encoder_hidden_states: TL(r, "encoder_hidden_states"),
      encoder_attentions: TL(r, "encoder_attentions"),
      decoder_hidden_states: TL(r, "decoder_hidden_states"),
      decoder_attentions: TL(r, "decoder_attentions"),
      cross_attentions: TL(r, "cross_attentions"),
      cache: r.takeCache(),
    };
  } finally {
    r.free();
  }
}

/**
 * transformers' decoder cache (`EncoderDecoderCache`): per layer the self-attention keys / values of the decoder
 * positions so far and the cross-attention keys / values of the encoder output. Give it back as
 * `past_key_values` with the next decoder positions only; it is updated in place. The legacy layout (see
 * {@link to_legacy_cache}) is accepted as `past_key_values` too. Lives in WebAssembly memory: call {@link dispose}
 * when done with it.
 */
export class PastKeyValues {
  /** @internal */
  inner: WasmCache | undefined;
  /** @internal */
  readonly model: WasmModel;

  /** @internal */
  constructor(inner: WasmCache, model: WasmModel) {
    this.inner = inner;
    this.model = model;
  }

  private get live(): WasmCache {
    if (!this.inner) throw new BadInputError("this past_key_values was disposed or consumed by a failed forward");
    return this.inner;
  }

  /** Decoder positions cached (transformers' `get_seq_length()`). */
  get_seq_length(): number {
    return this.live.pastLength;
  }

  /** Per layer `[self_key, self_value, cross_key, cross_value]`, each `[batch, heads, length, d_kv]` (the legacy
   * tuple layout of transformers). */
  to_legacy_cache(): [Tensor, Tensor, Tensor, Tensor][] {
    const c = this.live;
    return wasmCall(() => takeLayers(this.model.pastKeyValues(c)));
  }

  /** @internal A cache from the legacy layout (see {@link to_legacy_cache}); `attention_mask` is the encoder's. */
  static fromLegacy(model: WasmModel, layers: readonly (readonly Tensor[])[], attention_mask?: IdsLike): PastKeyValues {
    if (layers.length === 0 || layers.some((l) => l.length !== 4)) throw new BadInputError("past_key_values: one [self_k, self_v, cross_k, cross_v] per layer");
    const [sk, , ck] = layers[0]!;
    if (sk!.dims.length !== 4 || ck!.dims.length !== 4) throw new BadInputError("past_key_values tensors must be [batch, heads, length, d_kv]");
    const [batch, , past, ] = sk!.dims as [number, number, number, number];
    const enc = ck!.dims[2]!;
    const total = layers.reduce((a, l) => a + l.reduce((b, t) => b + t.data.length, 0), 0);
    const data = new Float32Array(total);
    let at = 0;
    for (const l of layers) for (const t of l) (data.set(t.data, at), (at += t.data.length));
    const m = attention_mask === undefined ? undefined : mask01(attention_mask, "attention_mask").data;
    const inner = wasmCall(() => model.cacheFromTensors(data, batch, past, enc, m));
    return new PastKeyValues(inner, model);
  }

  dispose(): void {
    const inner = this.inner;
    this.inner = undefined;
    try {
      inner?.free();
    } catch {
      // left borrowed by a call that trapped (engine-guard.ts): its memory stays with the failed instance
    }
  }
}

/** Every output {@link runFull} can give; each class's output type picks those of its class. */
export interface FullOutput extends ExtraOutputs {
  loss?: number;
  logits?: Tensor;
  start_logits?: Tensor;
  end_logits?: Tensor;
  last_hidden_state?: Tensor;
  encoder_last_hidden_state?: Tensor;
  decoder_last_hidden_state?: Tensor;
}

/** The full forward of the model's class; the output object uses transformers' field names. */
export function runFull(model: WasmModel, kind: EngineKind, config: T5Config, inputs: FullForwardInputs): FullOutput {
  const input = inputs.input_ids === undefined ? undefined : ids(inputs.input_ids, "input_ids");
  let enc: Float32Array | undefined;
  let batch = input?.batch;
  let seq = input?.seq;
  if (inputs.encoder_outputs !== undefined) {
    const e = inputs.encoder_outputs;
    const t = e instanceof Tensor ? e : Array.isArray(e) ? (e as readonly Tensor[])[0] : (e as { last_hidden_state: Tensor }).last_hidden_state;
    if (!(t instanceof Tensor) || t.dims.length !== 3) throw new BadInputError("encoder_outputs must hold a [batch, seq, d_model] Tensor");
    if (input && (t.dims[0] !== input.batch || t.dims[1] !== input.seq)) throw new BadInputError("encoder_outputs do not match input_ids");
    [batch, seq] = [t.dims[0]!, t.dims[1]!];
    enc = t.data;
  }
  const m = inputs.attention_mask === undefined ? undefined : mask01(inputs.attention_mask, "attention_mask");
  if (m && batch !== undefined && (m.batch !== batch || m.seq !== seq)) throw new BadInputError(`attention_mask is [${m.batch}, ${m.seq}], input_ids [${batch}, ${seq}]`);
  const past =
    inputs.past_key_values === undefined || inputs.past_key_values instanceof PastKeyValues
      ? inputs.past_key_values
      : PastKeyValues.fromLegacy(model, inputs.past_key_values, inputs.attention_mask);
  if (batch === undefined) {
    if (!past) throw new BadInputError("input_ids or encoder_outputs are required");
    if (!m) throw new BadInputError("continuing past_key_values without input_ids or encoder_outputs needs the encoder attention_mask");
    [batch, seq] = [m.batch, m.seq];
  }
  const { dec, dmask, labelIds, labelFloats, sp, ep } = decoderInputs(inputs, kind, config, batch);
  if (past && past.model !== model) throw new BadInputError("past_key_values come from another model");
  // the cache moves into the engine and comes back updated (transformers updates it in place)
  const cache = past?.inner;
  if (past && !cache) throw new BadInputError("this past_key_values was disposed");
  if (past) past.inner = undefined;
  const useCache = inputs.use_cache === true || past !== undefined;
  const hs = inputs.output_hidden_states === true;
  const at = inputs.output_attentions === true;
  // moved out inside wasmCall too: a trap there is an EngineFailureError and marks the instance (errors.ts)
  const r = wasmCall(() => takeFull(model.forwardFull(input?.data, m?.data, batch!, seq!, enc, dec?.data, dmask?.data, labelIds, labelFloats, sp, ep, hs, at, cache, useCache)));
  const out = classOutput(r, kind);
  if (r.cache) {
    if (past) {
      past.inner = r.cache;
      out.past_key_values = past;
    } else {
      out.past_key_values = new PastKeyValues(r.cache, model);
    }
  }
  return out;
}

/** The decoder inputs, labels and QA positions of a full forward, checked against the encoder batch. */
function decoderInputs(inputs: FullForwardInputs, kind: EngineKind, config: T5Config, batch: number | undefined) {
  const dec = inputs.decoder_input_ids === undefined ? undefined : ids(inputs.decoder_input_ids, "decoder_input_ids");
  const dmask = inputs.decoder_attention_mask === undefined ? undefined : mask01(inputs.decoder_attention_mask, "decoder_attention_mask");
  for (const [f, n] of [[dec, "decoder_input_ids"], [dmask, "decoder_attention_mask"]] as const) {
    if (f && f.batch !== batch) throw new BadInputError(`${n} has batch ${f.batch}, the input ${batch}`);
  }
  let labelIds: Int32Array | undefined;
  let labelFloats: Float32Array | undefined;
  if (inputs.labels !== undefined) {
    if (kind === "seq-cls" && floatLabels(inputs.labels, config)) labelFloats = floats(inputs.labels, "labels").data;
    else labelIds = ints(inputs.labels, "labels").data;
  }
  const pos = (x: number[] | undefined, n: string) => (x === undefined ? undefined : ints(x, n).data);
  const sp = pos(inputs.start_positions, "start_positions");
  const ep = pos(inputs.end_positions, "end_positions");
  return { dec, dmask, labelIds, labelFloats, sp, ep };
}

/** The full forward of the model's class on WebGPU (`WasmGpuModel.forwardFull`, async): the inputs of
 * {@link runFull} but `encoder_outputs`, `past_key_values` / `use_cache` and the per-layer outputs
 * (`output_hidden_states`, `output_attentions`), which run on the CPU engine only. */
export async function runFullGpu(model: WasmGpuModel, kind: EngineKind, config: T5Config, inputs: FullForwardInputs): Promise<FullOutput> {
  const cpuOnly = (["encoder_outputs", "past_key_values"] as const).filter((k) => inputs[k] !== undefined);
  for (const k of ["use_cache", "output_hidden_states", "output_attentions"] as const) if (inputs[k] === true) cpuOnly.push(k as never);
  if (cpuOnly.length > 0) throw new BadInputError(`${cpuOnly.join(", ")}: on the CPU engine only; load the model with device: 'cpu' for them`);
  if (inputs.input_ids === undefined) throw new BadInputError("input_ids are required");
  const input = ids(inputs.input_ids, "input_ids");
  const m = inputs.attention_mask === undefined ? undefined : mask01(inputs.attention_mask, "attention_mask");
  if (m && (m.batch !== input.batch || m.seq !== input.seq)) throw new BadInputError(`attention_mask is [${m.batch}, ${m.seq}], input_ids [${input.batch}, ${input.seq}]`);
  const { dec, dmask, labelIds, labelFloats, sp, ep } = decoderInputs(inputs, kind, config, input.batch);
  const raw = await gpuAwait(() => model.forwardFull(input.data, m?.data, input.batch, input.seq, dec?.data, dmask?.data, labelIds, labelFloats, sp, ep));
  const r = wasmCall(() => takeFull(raw));
  return classOutput(r, kind);
}

/** The outputs of the class `kind` under transformers' field names (the cache aside). */
function classOutput(r: ReturnType<typeof takeFull>, kind: EngineKind): FullOutput {
  const out: FullOutput = {};
  if (r.loss !== undefined) out.loss = r.loss;
  if (r.logits) out.logits = r.logits;
  if (r.start_logits) out.start_logits = r.start_logits;
  if (r.end_logits) out.end_logits = r.end_logits;
  const encoderOnly = kind === "encoder" || kind === "token-cls";
  if (encoderOnly) {
    if (r.encoder_last_hidden_state && kind === "encoder") out.last_hidden_state = r.encoder_last_hidden_state;
    if (r.encoder_hidden_states) out.hidden_states = r.encoder_hidden_states;
    if (r.encoder_attentions) out.attentions = r.encoder_attentions;
    return out;
  }
  if (r.decoder_last_hidden_state) {
    if (kind === "t5-model") out.last_hidden_state = r.decoder_last_hidden_state;
    if (kind === "seq2seq-lm") out.decoder_last_hidden_state = r.decoder_last_hidden_state;
  }
  if (r.encoder_last_hidden_state) out.encoder_last_hidden_state = r.encoder_last_hidden_state;
  if (r.encoder_hidden_states) out.encoder_hidden_states = r.encoder_hidden_states;
  if (r.encoder_attentions) out.encoder_attentions = r.encoder_attentions;
  if (r.decoder_hidden_states) out.decoder_hidden_states = r.decoder_hidden_states;
  if (r.decoder_attentions) out.decoder_attentions = r.decoder_attentions;
  if (r.cross_attentions) out.cross_attentions = r.cross_attentions;
  return out;
}
