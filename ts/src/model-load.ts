/** Loading a model: the load options, the checks, and the engine built on the CPU or on WebGPU. */

import { BadConfigError, wasmCall } from "./errors.js";
import { T5Config } from "./config.js";
import { addWeightFiles, ggufSource, openSource, readJsonText, readRequired, type FileSource, type LoadOptions, type ModelSource } from "./files.js";
import { ensureThreads, initWasm, wasmFlavour, wasmMemory } from "./wasm.js";
import { isThreadedFlavour } from "./wasm-features.js";
import { defaultMemoryBudget } from "./memory-budget.js";
import { gpuAwait, gpuError, prepareWebGpu, type Device } from "./webgpu.js";
import { CpuEngine, GpuEngine, type Engine } from "./engine.js";
import { guardEngine } from "./engine-guard.js";

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

/** @internal Load a model of `kind` (models.ts, heads.ts). */
export async function loadModel(dirOrUrl: ModelSource, kind: Kind, opts: ModelLoadOptions): Promise<Loaded> {
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
      if (isThreadedFlavour(wasmFlavour())) {
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
export type Reopen = () => Promise<Map<string, Uint8Array>>;
