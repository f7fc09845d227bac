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
import { ensureThreads, initWasm, wasmFlavour, wasmMemory } from "./wasm.js";
import { defaultMemoryBudget } from "./memory-budget.js";
import { runFull, wantsFull, type ExtraOutputs, type FullForwardInputs } from "./outputs.js";
import { gpuAwait, gpuError, prepareWebGpu, type Device } from "./webgpu.js";
import { CpuEngine, GpuEngine, type Engine, type EngineForwardInput, type EngineInput, type GpuGenerateStats, type RawForward, type RawGenerate, type StepCallback } from "./engine.js";
import { encoderInput, generateArgs, ids, labelIds, mask, sameShape, type Flat, type IdsLike } from "./inputs.js";
import { Callable } from "./callable.js";
import { guardEngine } from "./engine-guard.js";
import { GenerationCall, type GenerateInputs, type GenerateOptions, type GenerateOutput } from "./generation.js";
import type { GeneratedIds } from "./ids.js";

export { GENERATE_KEYS, type EngineGenerateOptions, type GenerateInputs, type GenerateOptions, type GenerateOutput, type GenerationStreamer } from "./generation.js";
import { savePretrained, type SaveTarget } from "./save.js";

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

export type { IdsLike } from "./inputs.js";

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

/** The engine's model kinds (the head classes are in heads.ts; "auto": from config.json's `architectures`). */
export type Kind = "seq2seq-lm" | "t5-model" | "encoder" | "seq-cls" | "token-cls" | "qa" | "auto";

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
   * CPU's q8 / q4; "bf16" runs on the CPU only; `forward` / `generate` / `model(inputs)` are async on every device,
   * `forwardSync` / `generateSync` run on the CPU only);
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
  /**
   * The memory (bytes) the model may take while it loads: files, copies and the built weights, summed
   * from headers and the config before each large allocation; its calls' working memory is checked against
   * it too. Default: what the runtime can give, the smaller of the WebAssembly address space left (4 GiB
   * less the engine's memory now) and the host's available memory where the runtime tells it (Node / Bun
   * `os.freemem()` or a cgroup limit, Deno `systemMemoryInfo` with `--allow-sys`, browsers
   * `navigator.deviceMemory`). Beyond it the load fails with `ModelTooLargeError`.
   */
  max_memory?: number;
  /**
   * CPU threads (`device: 'cpu'`): the matmuls and attention are split across this many threads,
   * the calling one included, with results bit-identical to one thread. Default: every hardware
   * thread, at most 8. `1`: the calling thread only (the single-thread engine builds). More than one
   * runs the threaded engine build, where the runtime allows it (Node, Deno, browser pages that are
   * cross-origin isolated: COOP `same-origin` + COEP `require-corp`); elsewhere (workerd, pages that
   * are not isolated) one thread, as `model.threads` says. The engine build is chosen when the engine
   * is first initialised (the first `fromPretrained`), see `wasmFlavour()`.
   */
  num_threads?: number;
}

/** @internal What a model class is made from (models.ts, worker.ts). */
export interface Loaded {
  engine: Engine;
  /** Re-reads the checkpoint for `save_pretrained`: config.json and the weights as one safetensors file. */
  reopen?: Reopen;
  config: T5Config;
  location: string;
  device: "cpu" | "webgpu";
  deviceNote?: string;
  /** CPU threads the model's work is split across (1 on WebGPU). */
  threads?: number;
}

/** `num_threads`, checked: a positive integer, or `undefined` (automatic). */
function numThreads(opts: ModelLoadOptions): number | undefined {
  const n = opts.num_threads;
  if (n !== undefined && !(Number.isInteger(n) && n >= 1 && n <= 64)) {
    throw new BadConfigError(`num_threads ${JSON.stringify(n)}: expected an integer from 1 to 64`);
  }
  return n;
}

/** `T5_WEB_CPU_GRAIN` (environment variable or `globalThis`): the smallest job split across threads (tests: 0). */
function cpuGrain(): number | undefined {
  const g = globalThis as { T5_WEB_CPU_GRAIN?: string; process?: { env?: Record<string, string | undefined> } };
  let v = g.T5_WEB_CPU_GRAIN;
  try {
    v ??= g.process?.env?.T5_WEB_CPU_GRAIN;
  } catch {
    // Deno without --allow-env
  }
  const n = v === undefined ? NaN : Number(v);
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

/** The class a kind of model is loaded as (for error messages). */
const MODEL_CLASS: Record<Kind, string> = {
  "seq2seq-lm": "T5ForConditionalGeneration",
  "t5-model": "T5Model",
  encoder: "T5EncoderModel",
  "seq-cls": "T5ForSequenceClassification",
  "token-cls": "T5ForTokenClassification",
  qa: "T5ForQuestionAnswering",
  auto: "model",
};

async function loadModel(dirOrUrl: ModelSource, kind: Kind, opts: ModelLoadOptions): Promise<Loaded> {
  const threads = numThreads(opts);
  const device = opts.device ?? "cpu";
  if (device !== "cpu" && device !== "webgpu" && device !== "auto") {
    throw new BadConfigError(`unknown device ${JSON.stringify(device)}: expected "webgpu", "cpu" or "auto"`);
  }
  // WebGPU models run on a single-thread engine build (the GPU computes; WebGPU objects do not run in the threaded
  // build): a first load that may use the GPU starts that build unless num_threads asks otherwise
  const wasm = await initWasm(undefined, { numThreads: device !== "cpu" && threads === undefined ? 1 : threads });
  // open the GPU first: with 'auto' a failure falls back to the CPU before the weights are read
  let gpu: Awaited<ReturnType<typeof wasm.requestGpu>> | undefined;
  let deviceNote: string | undefined;
  if (device !== "cpu") {
    try {
      if (wasmFlavour() === "threads") {
        throw new BadConfigError(
          `device ${JSON.stringify(device)}: WebGPU does not run in the threaded engine build, which an earlier load started ` +
            `(num_threads > 1 is the default in Node and Deno): load WebGPU models first, or every model with num_threads: 1`,
        );
      }
      if (opts.dtype === "bf16") {
        throw new BadConfigError(`dtype ${JSON.stringify(opts.dtype)} runs on the CPU only; WebGPU runs "fp32", "fp16", "q8" and "q4"`);
      }
      const why = await prepareWebGpu();
      if (why !== undefined) throw gpuError(Object.assign(new Error(why), { name: "WebGPUUnavailable" }));
      gpu = await gpuAwait(() => wasm.requestGpu(opts.maxChunkBytes));
    } catch (e) {
      if (device === "webgpu") throw gpuError(e);
      deviceNote = `WebGPU unavailable, running on the CPU: ${(e as Error).message}`;
    }
  }
  const gguf = ggufSource(dirOrUrl, opts.model_file_name);
  const src: FileSource = await openSource(gguf ? gguf.source : dirOrUrl, opts);
  const { progress_callback: _progress, ...quiet } = opts;
  const reopen: Reopen = async () => {
    const again = await openSource(gguf ? gguf.source : dirOrUrl, quiet);
    const files = new Map<string, Uint8Array>();
    let b: InstanceType<typeof wasm.WasmModelBuilder>;
    if (gguf) {
      const bytes = await readRequired(again, gguf.file);
      b = wasmCall(() => wasm.WasmModelBuilder.fromGguf(gguf.file, bytes, undefined), gguf.file);
      files.set("config.json", new TextEncoder().encode(b.configJson()));
    } else {
      const configText = await readJsonText(again, "config.json", true);
      files.set("config.json", new TextEncoder().encode(configText));
      b = wasmCall(() => new wasm.WasmModelBuilder(configText, undefined));
    }
    try {
      if (!gguf) await addWeightFiles(again, b, (text) => wasm.shardFilesFromIndex(text));
      files.set("model.safetensors", wasmCall(() => b.toSafetensors()));
    } finally {
      b.free();
    }
    return files;
  };
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
    // max_memory, else what the runtime can give (memory-budget.ts): the engine instance's address space left and
    // the host's available memory
    const limit = opts.max_memory ?? (await defaultMemoryBudget(wasmMemory()?.buffer.byteLength ?? 0));
    wasmCall(() => builder.setMemoryLimit(limit), opts.max_memory !== undefined ? "max_memory" : undefined);
    // WebGPU: the device's buffer limits, from the config, before any weight is read (buildGpu checks them again
    // with the load-time memory budget)
    if (gpu) {
      const g = gpu;
      wasmCall(() => builder.checkGpuFits(g, kind));
    }
    // 0: every thread of the engine's pool, at most 8; more than the pool has start more workers
    if (threads !== undefined) await ensureThreads(threads);
    builder.setNumThreads(threads ?? 0);
    const grain = cpuGrain();
    if (grain !== undefined) builder.setGrain(grain);
    // model.safetensors, sharded safetensors (streamed), pytorch_model.bin or its shards (files.ts); a model
    // larger than one WebAssembly memory in this dtype is a ModelTooLargeError from the first file's header
    // (the config's size, unless pre-quantized) and from each header (its tensors), before their data is read.
    // A GGUF file was read whole above.
    if (!gguf) await addWeightFiles(src, builder, (text) => wasm.shardFilesFromIndex(text), { stream: opts.stream_weights ?? true });
    if (gpu) {
      const g = gpu;
      // engine-guard.ts: a trap poisons this model only (later calls: EngineFailureError); dispose() never throws
      const engine = new GpuEngine(guardEngine(wasmCall(() => builder.buildGpu(g, kind)), `this ${MODEL_CLASS[kind]}`));
      return { engine, config, location: src.location, device: "webgpu", reopen };
    }
    const inner = guardEngine(wasmCall(() => builder.build(kind)), `this ${MODEL_CLASS[kind]}`);
    return { engine: new CpuEngine(inner), config, location: src.location, device: "cpu", reopen, threads: inner.numThreads, ...(deviceNote === undefined ? {} : { deviceNote }) };
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
    const cls = pick(loaded.engine.kind) as new (l: Loaded) => T;
    return new cls(loaded);
  } catch (e) {
    loaded.engine.dispose();
    throw e;
  }
}


/** What `save_pretrained` re-reads: the checkpoint the model was loaded from. */
type Reopen = () => Promise<Map<string, Uint8Array>>;

/** Shared by the model classes: the engine, the config, calling conventions, `save_pretrained`, `dispose`. */
export abstract class T5PreTrainedModel extends Callable {
  /** The parsed config.json. */
  readonly config: T5Config;
  /** Where the model was loaded from (directory or base URL). */
  readonly location: string;
  /** Where the model runs. */
  readonly device: "cpu" | "webgpu";
  /** With `device: 'auto'` on the CPU: why WebGPU was not used. */
  readonly deviceNote: string | undefined;
  /** CPU threads the model's work is split across (1 on WebGPU, and where the runtime has no threads). */
  readonly threads: number;
  private inner: Engine | undefined;
  private readonly reopen: Reopen | undefined;

  /** @internal */
  constructor(loaded: Loaded) {
    super();
    this.inner = loaded.engine;
    this.threads = loaded.threads ?? 1;
    this.config = loaded.config;
    this.location = loaded.location;
    this.device = loaded.device;
    this.deviceNote = loaded.deviceNote;
    this.reopen = loaded.reopen;
  }

  /** The engine, on either device. */
  protected get engine(): Engine {
    if (!this.inner) throw new DisposedError(`this ${this.constructor.name}`);
    return this.inner;
  }

  /** The CPU engine, for the synchronous methods and the optional outputs of `forward` (CPU only). */
  protected cpu(what: string): CpuEngine {
    const e = this.engine;
    if (!(e instanceof CpuEngine)) {
      throw new BadInputError(`${what} runs on the CPU only; this ${this.constructor.name} runs on WebGPU: use await forward() / generate()`);
    }
    return e;
  }

  /** WebGPU models: adapter, limits, dispatch / submit counters, live GPU buffers (undefined on the CPU). */
  get gpuInfo(): Record<string, unknown> | undefined {
    const e = this.engine;
    return e instanceof GpuEngine ? (JSON.parse(e.model.deviceInfo()) as Record<string, unknown>) : undefined;
  }

  /** The generation config in use (generation_config.json over the model config). */
  get generation_config(): Record<string, unknown> {
    return JSON.parse(this.engine.generationConfig()) as Record<string, unknown>;
  }

  get disposed(): boolean {
    return this.inner === undefined;
  }

  /** Free the model's WebAssembly (and GPU) memory. Later use throws {@link DisposedError}. Never throws. */
  dispose(): void {
    const e = this.inner;
    this.inner = undefined;
    try {
      e?.dispose();
    } catch {
      // a lost device or a trapped instance: nothing left to free (the engines free their guarded handles, engine-guard.ts)
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** `model(inputs)`, as transformers.js: `forward`. */
  protected _call(inputs: unknown): unknown {
    return this.forward(inputs as never);
  }

  abstract forward(inputs: never): Promise<unknown>;

  /** transformers' name of `fromPretrained`. */
  static from_pretrained<T>(this: { fromPretrained(src: ModelSource, opts?: ModelLoadOptions): Promise<T> }, src: ModelSource, opts: ModelLoadOptions = {}): Promise<T> {
    return this.fromPretrained(src, opts);
  }

  /**
   * transformers' `save_pretrained`: `config.json`, `generation_config.json` (the generation config in use) and
   * `model.safetensors` (the weights of the checkpoint the model was loaded from, as stored there — a `dtype`
   * conversion at load time is not written back). Writes them into `dir` where there is a file system (Node, Bun,
   * Deno); returns them as a file map everywhere (which `fromPretrained` loads back).
   */
  async save_pretrained(dir?: SaveTarget): Promise<Map<string, Uint8Array>> {
    const gen = this.engine.generationConfig();
    if (!this.reopen) throw new BadInputError("this model was not loaded from files: nothing to save");
    const files = await this.reopen();
    files.set("generation_config.json", new TextEncoder().encode(JSON.stringify(JSON.parse(gen), null, 2) + "\n"));
    return savePretrained(files, dir);
  }

  /** {@link save_pretrained} in camelCase. */
  savePretrained(dir?: SaveTarget): Promise<Map<string, Uint8Array>> {
    return this.save_pretrained(dir);
  }

  /** The base classes' forward inputs, checked once for every device. */
  protected forwardInput(inputs: ForwardInputs): EngineForwardInput {
    const enc = encoderInput(inputs);
    const input: Flat<Uint32Array> = { data: enc.ids, batch: enc.batch, seq: enc.seq };
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
    return { ...enc, decoder_ids: dec?.data, labels: lab?.data, decoder_mask: dmask?.data };
  }
}

function needDecoderInput(inputs: ForwardInputs): void {
  if (inputs.decoder_input_ids === undefined && inputs.labels === undefined) {
    throw new BadInputError("decoder_input_ids or labels are required");
  }
}

function tensor(data: Float32Array | undefined, dims: number[] | undefined, what: string): Tensor {
  if (data === undefined || dims === undefined) throw new BadInputError(`the engine returned no ${what}`);
  return new Tensor(data, dims);
}

function lmOutput(r: RawForward): Seq2SeqLMOutput {
  const out: Seq2SeqLMOutput = {
    logits: tensor(r.logits, r.logits_shape, "logits"),
    decoder_last_hidden_state: tensor(r.decoder_last_hidden_state, r.decoder_shape, "decoder_last_hidden_state"),
    encoder_last_hidden_state: new Tensor(r.encoder_last_hidden_state, r.encoder_shape),
  };
  if (r.loss !== undefined) out.loss = r.loss;
  return out;
}

function modelOutput(r: RawForward): Seq2SeqModelOutput {
  return {
    last_hidden_state: tensor(r.decoder_last_hidden_state, r.decoder_shape, "decoder_last_hidden_state"),
    encoder_last_hidden_state: new Tensor(r.encoder_last_hidden_state, r.encoder_shape),
  };
}

/** transformers' `T5ForConditionalGeneration`: encoder, decoder, LM head. Callable: `await model(inputs)` is
 * `await model.forward(inputs)`. */
export class T5ForConditionalGeneration extends T5PreTrainedModel {
  static async fromPretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<T5ForConditionalGeneration> {
    return new T5ForConditionalGeneration(await loadModel(dirOrUrl, "seq2seq-lm", opts));
  }

  /** Dispatch statistics of the last WebGPU {@link generate}. */
  lastGenerateStats: GpuGenerateStats | undefined;

  /** `model(input_ids, attention_mask, decoder_input_ids | labels, decoder_attention_mask)` on either device, and
   * transformers' optional inputs / outputs (`output_hidden_states`, `output_attentions`, `encoder_outputs`,
   * `past_key_values`, `use_cache`: see outputs.ts; CPU only). */
  async forward(inputs: ForwardInputs | FullForwardInputs): Promise<Seq2SeqLMOutput & ExtraOutputs> {
    needDecoderInput(inputs as ForwardInputs);
    if (wantsFull(inputs)) return this.forwardSync(inputs);
    return lmOutput(await this.engine.forward(this.forwardInput(inputs as ForwardInputs)));
  }

  /** {@link forward}, synchronously (CPU only). */
  forwardSync(inputs: ForwardInputs | FullForwardInputs): Seq2SeqLMOutput & ExtraOutputs {
    needDecoderInput(inputs as ForwardInputs);
    const cpu = this.cpu("forwardSync");
    if (wantsFull(inputs)) return runFull(cpu.model, "seq2seq-lm", this.config, inputs as FullForwardInputs) as Seq2SeqLMOutput & ExtraOutputs;
    return lmOutput(cpu.forwardSync(this.forwardInput(inputs as ForwardInputs)));
  }

  /** @deprecated {@link forward} is async on every device. */
  forwardAsync(inputs: ForwardInputs): Promise<Seq2SeqLMOutput & ExtraOutputs> {
    return this.forward(inputs);
  }

  private prepare(inputs: GenerateInputs, options: GenerateOptions | undefined): { input: EngineInput; call: GenerationCall } {
    const { input, options: all } = generateArgs<GenerateOptions>(inputs, options);
    const given = all.decoder_start_token_id;
    // the prompt the streamer is told first; a bad value is the engine's error to report
    const start = Number.isInteger(given) && given! >= 0 ? given! : Number(this.generation_config["decoder_start_token_id"] ?? 0);
    // the rows generated: inputs × num_return_sequences (beam search, which cannot stream, steps per input)
    const nrs = all.num_return_sequences ?? this.generation_config["num_return_sequences"];
    const beams = all.num_beams ?? this.generation_config["num_beams"];
    const rows = input.batch * (Number.isInteger(nrs) && Number(beams ?? 1) <= 1 ? Number(nrs) : 1);
    return { input, call: new GenerationCall(all, rows, start) };
  }

  /**
   * transformers' `generate(**inputs, …)` on either device: greedy search, sampling (`do_sample`), beam search
   * (`num_beams`) with the logits processors of {@link GenerateOptions}. One row per input and returned sequence,
   * each starting with the decoder start token and padded as transformers pads them. With
   * `return_dict_in_generate: true`: `{sequences, sequences_scores}`. Both `generate(inputs, options)` and
   * transformers.js' `generate({...inputs, ...options})`. On the CPU it yields to the event loop between decode
   * steps, so timers and an `AbortSignal` (`signal`, e.g. `AbortSignal.timeout(ms)`) fire during it. On WebGPU every
   * step's logits are reduced on the GPU; `lastGenerateStats` then holds dispatches and bytes read per step.
   */
  generate(inputs: GenerateInputs, options: GenerateOptions & { return_dict_in_generate: true }): Promise<GenerateOutput>;
  generate(inputs: GenerateInputs & { return_dict_in_generate: true }, options?: GenerateOptions): Promise<GenerateOutput>;
  generate(inputs: GenerateInputs, options?: GenerateOptions): Promise<GeneratedIds>;
  async generate(inputs: GenerateInputs, options?: GenerateOptions): Promise<GeneratedIds | GenerateOutput> {
    const { input, call } = this.prepare(inputs, options);
    const engine = this.engine;
    const r = await engine.generate(input, call.engineOptions, call.onStep);
    if (engine.device === "webgpu") this.lastGenerateStats = r.stats;
    return call.finish(r);
  }

  /** {@link generate}, synchronously (CPU only; blocks the event loop until done: for workers and scripts). */
  generateSync(inputs: GenerateInputs, options: GenerateOptions & { return_dict_in_generate: true }): GenerateOutput;
  generateSync(inputs: GenerateInputs, options?: GenerateOptions): GeneratedIds;
  generateSync(inputs: GenerateInputs, options?: GenerateOptions): GeneratedIds | GenerateOutput {
    const cpu = this.cpu("generateSync");
    const { input, call } = this.prepare(inputs, options);
    return call.finish(cpu.generateSync(input, call.engineOptions, call.onStep));
  }

  /** @deprecated {@link generate} is async on every device. */
  generateAsync(inputs: GenerateInputs, options: GenerateOptions & { return_dict_in_generate: true }): Promise<GenerateOutput>;
  generateAsync(inputs: GenerateInputs, options?: GenerateOptions): Promise<GeneratedIds>;
  generateAsync(inputs: GenerateInputs, options?: GenerateOptions): Promise<GeneratedIds | GenerateOutput> {
    return this.generate(inputs, options);
  }

  /**
   * {@link generate} as an async iterator, on every device: yields the new token of each row after every step (beam
   * search: of each input's best running beam) and returns the final sequences (`{sequences, sequences_scores?}`).
   * An `AbortSignal` (`options.signal`) stops it between steps (the iterator then throws a
   * {@link GenerationAbortedError}); leaving a `for await` loop early stops it too. A `streamer` is told each step as
   * with {@link generate}.
   */
  async *generateStream(inputs: GenerateInputs, options?: GenerateOptions): AsyncGenerator<number[], GenerateOutput, undefined> {
    const { input, call } = this.prepare(inputs, options);
    // the engine pushes each step's tokens; this generator hands them out as they come
    const queue: number[][] = [];
    let wake: (() => void) | undefined;
    let stop = false;
    let done = false;
    let failure: { e: unknown } | undefined;
    let result: RawGenerate | undefined;
    const notify = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const onStep: StepCallback = (index, tokens) => {
      const go = call.onStep ? call.onStep(index, tokens) : true;
      queue.push(Array.from(tokens));
      notify();
      return go && !stop;
    };
    const engine = this.engine;
    const running = engine.generate(input, call.engineOptions, onStep).then(
      (r) => {
        result = r;
      },
      (e: unknown) => {
        failure = { e };
      },
    ).finally(() => {
      done = true;
      notify();
    });
    try {
      for (;;) {
        while (queue.length > 0) yield queue.shift()!;
        if (done) break;
        await new Promise<void>((resolve) => (wake = resolve));
      }
      if (failure) throw failure.e;
      if (engine.device === "webgpu") this.lastGenerateStats = result!.stats;
      return call.finishDict(result!);
    } finally {
      // a consumer that left early: stop the engine after its current step and let it finish
      stop = true;
      await running;
    }
  }
}

export interface T5ForConditionalGeneration {
  /** `await model(inputs)`: {@link T5ForConditionalGeneration.forward}. */
  (inputs: ForwardInputs | FullForwardInputs): Promise<Seq2SeqLMOutput & ExtraOutputs>;
}

/** transformers' `T5Model`: encoder and decoder, no LM head. Callable like the LM. */
export class T5Model extends T5PreTrainedModel {
  static async fromPretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<T5Model> {
    return new T5Model(await loadModel(dirOrUrl, "t5-model", opts));
  }

  async forward(inputs: ForwardInputs | FullForwardInputs): Promise<Seq2SeqModelOutput & ExtraOutputs> {
    needDecoderInput(inputs as ForwardInputs);
    if (wantsFull(inputs)) return this.forwardSync(inputs);
    return modelOutput(await this.engine.forward(this.forwardInput(inputs as ForwardInputs)));
  }

  forwardSync(inputs: ForwardInputs | FullForwardInputs): Seq2SeqModelOutput & ExtraOutputs {
    needDecoderInput(inputs as ForwardInputs);
    const cpu = this.cpu("forwardSync");
    if (wantsFull(inputs)) return runFull(cpu.model, "t5-model", this.config, inputs as FullForwardInputs) as Seq2SeqModelOutput & ExtraOutputs;
    return modelOutput(cpu.forwardSync(this.forwardInput(inputs as ForwardInputs)));
  }

  /** @deprecated {@link forward} is async on every device. */
  forwardAsync(inputs: ForwardInputs): Promise<Seq2SeqModelOutput & ExtraOutputs> {
    return this.forward(inputs);
  }
}

export interface T5Model {
  (inputs: ForwardInputs | FullForwardInputs): Promise<Seq2SeqModelOutput & ExtraOutputs>;
}

/** The inputs of the encoder-only classes. */
export interface EncoderInputs {
  input_ids: IdsLike;
  attention_mask?: IdsLike;
  output_hidden_states?: boolean;
  output_attentions?: boolean;
}

/** transformers' `T5EncoderModel`: the encoder alone. Callable like the LM. */
export class T5EncoderModel extends T5PreTrainedModel {
  static async fromPretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<T5EncoderModel> {
    return new T5EncoderModel(await loadModel(dirOrUrl, "encoder", opts));
  }

  async forward(inputs: EncoderInputs): Promise<EncoderOutput & ExtraOutputs> {
    if (wantsFull(inputs)) return this.forwardSync(inputs);
    const input = encoderInput(inputs);
    const data = await this.engine.encode(input);
    return { last_hidden_state: new Tensor(data, [input.batch, input.seq, data.length / (input.batch * input.seq)]) };
  }

  forwardSync(inputs: EncoderInputs): EncoderOutput & ExtraOutputs {
    const cpu = this.cpu("forwardSync");
    if (wantsFull(inputs)) return runFull(cpu.model, "encoder", this.config, inputs) as EncoderOutput & ExtraOutputs;
    const input = encoderInput(inputs);
    const data = cpu.encodeSync(input);
    return { last_hidden_state: new Tensor(data, [input.batch, input.seq, data.length / (input.batch * input.seq)]) };
  }

  /** @deprecated {@link forward} is async on every device. */
  forwardAsync(inputs: EncoderInputs): Promise<EncoderOutput & ExtraOutputs> {
    return this.forward(inputs);
  }
}

export interface T5EncoderModel {
  (inputs: EncoderInputs): Promise<EncoderOutput & ExtraOutputs>;
}

export class AutoModelForSeq2SeqLM {
  /** The seq2seq LM of a model directory or base URL (T5 only: `T5ForConditionalGeneration`). */
  static fromPretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<T5ForConditionalGeneration> {
    return T5ForConditionalGeneration.fromPretrained(dirOrUrl, opts);
  }

  static from_pretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<T5ForConditionalGeneration> {
    return T5ForConditionalGeneration.fromPretrained(dirOrUrl, opts);
  }
}
