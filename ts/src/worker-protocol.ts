/** Messages between {@link createGenerationWorker} (worker.ts) and the worker (worker-entry.ts). */

import type { ModelSource } from "./files.js";
import type { Text2TextCallOptions, Text2TextGenerationOutput } from "./pipeline.js";

export type ToWorker =
  | { type: "load"; model: ModelSource; options: Record<string, unknown> }
  /** `flag`: an Int32Array over a SharedArrayBuffer; the main side sets [0] = 1 to abort. */
  | { type: "generate"; id: number; texts: string | string[]; options: Text2TextCallOptions; flag?: Int32Array; stream: boolean };

export type FromWorker =
  | { type: "loaded"; info: WorkerModelInfo }
  | { type: "progress"; info: unknown }
  | { type: "token"; id: number; index: number; tokens: number[]; text: string }
  | { type: "result"; id: number; output: Text2TextGenerationOutput[] }
  | { type: "error"; id?: number; name: string; message: string; aborted?: boolean };

export interface WorkerModelInfo {
  location: string;
  /** Bytes of the files loaded for the model and tokenizer. */
  bytes: number;
  backend: string;
}
