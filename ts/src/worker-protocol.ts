/** Messages between {@link createGenerationWorker} (worker.ts) and the worker (worker-entry.ts). */

import type { ModelSource } from "./files.js";
import type { Env } from "./hub.js";
import type { Text2TextCallOptions, Text2TextGenerationOutput } from "./pipeline.js";
import type { EngineForwardInput, EngineInput, RawForward, RawGenerate } from "./engine.js";

/** A call of the engine interface (engine.ts) run by the worker's model. */
export type EngineRequest =
  | { op: "generate"; input: EngineInput; options: Record<string, unknown>; stream: boolean }
  | { op: "forward"; input: EngineForwardInput }
  | { op: "encode"; input: EngineInput };

/** The answer to an {@link EngineRequest}, tagged with its `op` (the main side checks it instead of casting). */
export type EngineReply = { op: "generate"; value: RawGenerate } | { op: "forward"; value: RawForward } | { op: "encode"; value: Float32Array };

export type ToWorker =
  /** `env`: the main thread's `env` when the worker was created, applied in the worker before loading. */
  | { type: "load"; model: ModelSource; options: Record<string, unknown>; env: Env }
  /** `flag`: an Int32Array over a SharedArrayBuffer; the main side sets [0] = 1 to abort. */
  | { type: "generate"; id: number; texts: string | string[]; options: Text2TextCallOptions; flag?: Int32Array; stream: boolean }
  | { type: "engine"; id: number; request: EngineRequest }
  /** Stop the engine generation `id` after its current step (the worker's CPU generation yields between steps). */
  | { type: "stop"; id: number };

export type FromWorker =
  | { type: "loaded"; info: WorkerModelInfo }
  | { type: "progress"; info: unknown }
  | { type: "token"; id: number; index: number; tokens: number[]; text: string }
  | { type: "step"; id: number; index: number; tokens: Uint32Array }
  | { type: "result"; id: number; output: Text2TextGenerationOutput[] }
  | { type: "engine-result"; id: number; result: EngineReply }
  /** `code`: the T5WebError code (`BadConfig`, …) where there is one. */
  | { type: "error"; id?: number; name: string; code?: string; message: string; aborted?: boolean };

export interface WorkerModelInfo {
  location: string;
  /** Bytes of the files loaded for the model and tokenizer. */
  bytes: number;
  /** What computes: `cpu (wasm <the engine build: wasmFlavour()>, <N> thread(s))`, or `webgpu`. */
  backend: string;
  /** Where the worker's model runs. */
  device: "cpu" | "webgpu";
  /** The model's config.json fields and generation config (JSON), for the main side's `model`. */
  config: Record<string, unknown>;
  generation_config: string;
}
