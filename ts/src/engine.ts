/**
 * One engine interface over the devices: the model classes (models.ts, heads.ts) normalise their inputs once and
 * hand flat arrays to an {@link Engine}; the CPU engine (the WebAssembly `WasmModel`) and the WebGPU engine
 * (`WasmGpuModel`) answer with the same typed results. Generation options go to the engine as a JS object and are
 * checked there, in Rust (crates/t5-wasm/src/options.rs).
 *
 * CPU generation runs one decoder step per engine call and yields to the event loop between steps (a macrotask:
 * timers such as `AbortSignal.timeout()` and I/O run), unless driven synchronously ({@link CpuEngine.generateSync}).
 * WebGPU generation yields on its own (every step awaits a GPU read-back).
 */

import { DisposedError, wasmCall } from "./errors.js";
import { gpuAwait } from "./webgpu.js";
import type { ForwardResult, GenerateResult, WasmGpuModel, WasmModel } from "#t5-wasm";

/** Encoder input, flat row-major. */
export interface EngineInput {
  ids: Uint32Array;
  mask: Uint32Array | undefined;
  batch: number;
  seq: number;
}

/** Decoder-side inputs of the base classes' `forward`. */
export interface EngineForwardInput extends EngineInput {
  decoder_ids: Uint32Array | undefined;
  labels: Int32Array | undefined;
  decoder_mask: Uint32Array | undefined;
}

/** What one WebGPU generation recorded (dispatches / submits from the second decode step). */
export interface GpuGenerateStats {
  prefill_dispatches: number;
  dispatches_per_step: number;
  /** element-wise ops per step folded into a matmul (dispatches unfused = dispatches_per_step + this) */
  fused_per_step: number;
  submits_per_step: number;
  /** bytes read back per step: 4 per row greedy (the argmax), (2k + 3) · 4 per row for a top-k, whole logits rows otherwise */
  read_back_per_step: number;
  /** top-p without top-k (sampling or beam sampling): steps whose 128 candidates per row left the cutoff uncertain,
   * so the whole logits rows were read back as well (0 when every step was decided from the candidates) */
  top_p_fallbacks: number;
  /** top-p without top-k: steps decided from each row's 128 candidates and normaliser alone */
  top_p_decided: number;
  /** steps that read the whole logits rows back: the top-p fallbacks, and every step of a search whose logits
   * processors the device reduction does not serve (0 when each step read only a reduction) */
  whole_row_steps: number;
  /** bind groups created per step from the third on (0: all cached) */
  bind_groups_per_step: number;
  /** bind groups created by the call (0 when the same shape ran before) */
  bind_groups_created: number;
  steps: number;
}

/** A generation's rows, as the engine returns them. */
export interface RawGenerate {
  sequences: Uint32Array;
  batch: number;
  length: number;
  sequences_scores: Float32Array | undefined;
  stats: GpuGenerateStats | undefined;
}

/** The base classes' forward outputs, flat with dims. */
export interface RawForward {
  encoder_last_hidden_state: Float32Array;
  encoder_shape: number[];
  decoder_last_hidden_state: Float32Array | undefined;
  decoder_shape: number[] | undefined;
  logits: Float32Array | undefined;
  logits_shape: number[] | undefined;
  loss: number | undefined;
}

/** Told each step's index and new tokens (one per row; beam search: per input); `false` stops generation there. */
export type StepCallback = (index: number, tokens: Uint32Array) => boolean;

/** The engine's generation options: transformers' names, checked in Rust (unknown keys are errors). */
export type EngineOptions = Record<string, unknown>;

export interface Engine {
  readonly device: "cpu" | "webgpu";
  /** What the engine built: "seq2seq-lm" | "t5-model" | "encoder" | "seq-cls" | "token-cls" | "qa". */
  readonly kind: string;
  forward(input: EngineForwardInput): Promise<RawForward>;
  /** Encoder `last_hidden_state`, `[batch, seq, d_model]` flat. */
  encode(input: EngineInput): Promise<Float32Array>;
  generate(input: EngineInput, options: EngineOptions, onStep: StepCallback | undefined): Promise<RawGenerate>;
  /** The generation config the model was loaded with, as JSON text. */
  generationConfig(): string;
  dispose(): void;
}

function takeGenerate(r: GenerateResult): RawGenerate {
  try {
    const s = r.stats;
    let stats: GpuGenerateStats | undefined;
    if (s) {
      stats = {
        prefill_dispatches: s.prefill_dispatches,
        dispatches_per_step: s.dispatches_per_step,
        fused_per_step: s.fused_per_step,
        submits_per_step: s.submits_per_step,
        read_back_per_step: s.read_back_per_step,
        top_p_fallbacks: s.top_p_fallbacks,
        top_p_decided: s.top_p_decided,
        whole_row_steps: s.whole_row_steps,
        bind_groups_per_step: s.bind_groups_per_step,
        bind_groups_created: s.bind_groups_created,
        steps: s.steps,
      };
      s.free();
    }
    return { sequences: r.sequences, batch: r.batch, length: r.length, sequences_scores: r.sequences_scores, stats };
  } finally {
    r.free();
  }
}

function takeForward(r: ForwardResult): RawForward {
  try {
    const dims = (d: Uint32Array | undefined) => (d === undefined ? undefined : Array.from(d));
    // the tensors are moved out, not copied in wasm memory first (see ForwardResult)
    return {
      encoder_last_hidden_state: r.takeEncoderLastHiddenState(),
      encoder_shape: Array.from(r.encoder_shape),
      decoder_last_hidden_state: r.takeDecoderLastHiddenState(),
      decoder_shape: dims(r.decoder_shape),
      logits: r.takeLogits(),
      logits_shape: dims(r.logits_shape),
      loss: r.loss,
    };
  } finally {
    r.free();
  }
}

/** One macrotask turn (not a microtask: timers and I/O get to run). */
export function yieldToEventLoop(): Promise<void> {
  const g = globalThis as { setImmediate?: (f: () => void) => unknown; MessageChannel?: typeof MessageChannel };
  if (typeof g.setImmediate === "function") return new Promise((resolve) => g.setImmediate!(resolve));
  if (typeof g.MessageChannel === "function") {
    return new Promise((resolve) => {
      const ch = new g.MessageChannel!();
      ch.port1.onmessage = () => {
        ch.port1.close();
        resolve();
      };
      ch.port2.postMessage(undefined);
    });
  }
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** The WebAssembly engine on the CPU. Its sync methods serve `generateSync` / `forwardSync`. */
export class CpuEngine implements Engine {
  readonly device = "cpu" as const;
  private inner: WasmModel | undefined;

  constructor(inner: WasmModel) {
    this.inner = inner;
  }

  get kind(): string {
    return this.model.kind;
  }

  /** The wasm model (for the full forward of outputs.ts, CPU only). */
  get model(): WasmModel {
    if (!this.inner) throw new DisposedError("this model");
    return this.inner;
  }

  forwardSync(a: EngineForwardInput): RawForward {
    const m = this.model;
    return wasmCall(() => takeForward(m.forward(a.ids, a.mask, a.batch, a.seq, a.decoder_ids, a.labels, a.decoder_mask)));
  }

  async forward(a: EngineForwardInput): Promise<RawForward> {
    return this.forwardSync(a);
  }

  encodeSync(a: EngineInput): Float32Array {
    const m = this.model;
    return wasmCall(() => m.encode(a.ids, a.mask, a.batch, a.seq));
  }

  async encode(a: EngineInput): Promise<Float32Array> {
    return this.encodeSync(a);
  }

  /**
   * The step loop shared by {@link generate} and {@link generateSync}: yields after each step that did not stop
   * generation, so that the async driver can give the event loop a turn there.
   */
  private *steps(a: EngineInput, options: EngineOptions, onStep: StepCallback | undefined): Generator<void, RawGenerate, undefined> {
    const m = this.model;
    const gen = wasmCall(() => m.startGeneration(a.ids, a.mask, a.batch, a.seq, options));
    try {
      for (let index = 0; ; index++) {
        const tokens = wasmCall(() => gen.step(this.model));
        if (tokens === undefined) break;
        if (onStep && !onStep(index, tokens)) break;
        yield;
      }
      return wasmCall(() => takeGenerate(gen.finish()));
    } finally {
      gen.free();
    }
  }

  generateSync(a: EngineInput, options: EngineOptions, onStep: StepCallback | undefined): RawGenerate {
    const it = this.steps(a, options, onStep);
    for (;;) {
      const r = it.next();
      if (r.done) return r.value;
    }
  }

  async generate(a: EngineInput, options: EngineOptions, onStep: StepCallback | undefined): Promise<RawGenerate> {
    const it = this.steps(a, options, onStep);
    for (;;) {
      const r = it.next();
      if (r.done) return r.value;
      await yieldToEventLoop();
    }
  }

  generationConfig(): string {
    return this.model.generationConfig();
  }

  dispose(): void {
    this.inner?.free();
    this.inner = undefined;
  }
}

/** The same model resident on a WebGPU device; results arrive asynchronously. */
export class GpuEngine implements Engine {
  readonly device = "webgpu" as const;
  private inner: WasmGpuModel | undefined;

  constructor(inner: WasmGpuModel) {
    this.inner = inner;
  }

  get kind(): string {
    return this.model.kind;
  }

  get model(): WasmGpuModel {
    if (!this.inner) throw new DisposedError("this model");
    return this.inner;
  }

  async forward(a: EngineForwardInput): Promise<RawForward> {
    const m = this.model;
    const r = await gpuAwait(() => m.forward(a.ids, a.mask, a.batch, a.seq, a.decoder_ids, a.labels, a.decoder_mask));
    return wasmCall(() => takeForward(r));
  }

  async encode(a: EngineInput): Promise<Float32Array> {
    const m = this.model;
    return gpuAwait(() => m.encode(a.ids, a.mask, a.batch, a.seq));
  }

  async generate(a: EngineInput, options: EngineOptions, onStep: StepCallback | undefined): Promise<RawGenerate> {
    const m = this.model;
    const r = await gpuAwait(() => m.generate(a.ids, a.mask, a.batch, a.seq, options, onStep));
    return wasmCall(() => takeGenerate(r));
  }

  generationConfig(): string {
    return this.model.generationConfig();
  }

  dispose(): void {
    const inner = this.inner;
    if (!inner) return;
    this.inner = undefined;
    try {
      // destroys every GPU buffer of the model (and its device) before freeing the handle
      inner.dispose();
    } catch {
      // a poisoned model (engine-guard.ts) or a lost device: the handle is freed below all the same
    }
    inner.free(); // guarded (engine-guard.ts): never throws
  }
}
