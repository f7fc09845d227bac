/** `T5PreTrainedModel`, the base of every model class (models.ts, heads.ts), with the inputs and outputs of the base models. */

import { BadInputError, DisposedError } from "./errors.js";
import { T5Config } from "./config.js";
import type { ModelSource } from "./files.js";
import { CpuEngine, GpuEngine, type Engine, type EngineForwardInput } from "./engine.js";
import { encoderInput, ids, labelIds, mask, sameShape, type Flat, type IdsLike } from "./inputs.js";
import { Callable } from "./callable.js";
import { savePretrained, type SaveTarget } from "./save.js";
import type { Tensor } from "./tensor.js";
import type { Loaded, ModelLoadOptions, Reopen } from "./model-load.js";

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
