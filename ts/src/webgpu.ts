/**
 * WebGPU device selection for the models (`device: 'webgpu' | 'cpu' | 'auto'`).
 *
 * The engine drives `navigator.gpu` from WebAssembly (wgpu). Browsers and Deno have it; in Node it
 * comes from the optional `webgpu` package (Dawn): {@link installNodeWebGpu} puts its `create([])`
 * on `globalThis.navigator.gpu`, and `fromPretrained` calls it by itself when `navigator.gpu` is
 * missing in Node. wgpu finds `navigator` through `window` or `WorkerGlobalScope`; outside both
 * (Node, Deno) an empty `WorkerGlobalScope` class is defined on `globalThis`.
 *
 * GPU results arrive asynchronously (buffer reads are `mapAsync` on the web), so a model loaded on
 * WebGPU answers through `forwardAsync` / `generateAsync` (which work on the CPU too).
 */

import { T5WebError, fromWasmError } from "./errors.js";

export type Device = "webgpu" | "cpu" | "auto";

/** No WebGPU here: no `navigator.gpu`, no adapter, or no device. */
export class WebGPUUnavailableError extends T5WebError {
  static override readonly code: string = "WebGPUUnavailable";
}

/** The model or input does not fit the device's limits (maxStorageBufferBindingSize / maxBufferSize). */
export class WebGPULimitsError extends T5WebError {
  static override readonly code: string = "WebGPULimits";
}

/** The GPU device was lost; load the model again (`device: 'cpu'` works everywhere). */
export class DeviceLostError extends T5WebError {
  static override readonly code: string = "DeviceLost";
}

/** A WebGPU validation or out-of-memory error. */
export class WebGPUError extends T5WebError {
  static override readonly code: string = "WebGPUError";
}

const GPU_ERRORS: Record<string, new (message: string, opts?: { cause?: unknown }) => T5WebError> = {
  WebGPUUnavailable: WebGPUUnavailableError,
  WebGPULimits: WebGPULimitsError,
  DeviceLost: DeviceLostError,
  WebGPUError: WebGPUError,
};

/** An engine error (sync throw or rejected Promise) → typed error, GPU codes included. */
export function gpuError(e: unknown): T5WebError {
  if (e instanceof T5WebError) return e;
  if (e instanceof Error && GPU_ERRORS[e.name]) return new GPU_ERRORS[e.name]!(e.message, { cause: e });
  return fromWasmError(e);
}

/** Await an engine Promise, mapping its rejection onto the typed errors. */
export async function gpuAwait<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw gpuError(e);
  }
}

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === "string";
}

type Global = { navigator?: { gpu?: unknown }; window?: unknown; WorkerGlobalScope?: unknown };

/** Let wgpu find `navigator` outside windows and workers (Node, Deno). */
function ensureScope(): void {
  const g = globalThis as Global;
  if (g.window === undefined && g.WorkerGlobalScope === undefined) {
    g.WorkerGlobalScope = class WorkerGlobalScope {};
  }
}

/**
 * Node: provide `navigator.gpu` from the `webgpu` package (Dawn). `gpu`: an object to use instead
 * (e.g. `create([...flags])` of your own). Returns false when the package is not installed.
 * On a machine without a GPU, Dawn can use SwiftShader (`VK_ICD_FILENAMES` pointing at its
 * Vulkan ICD, e.g. Debian's `/usr/lib/chromium/vk_swiftshader_icd.json`).
 */
export async function installNodeWebGpu(gpu?: unknown): Promise<boolean> {
  const g = globalThis as Global;
  if (gpu === undefined) {
    if (g.navigator?.gpu) {
      ensureScope();
      return true;
    }
    try {
      const name = "webgpu"; // not a static import: optional, Node only
      const mod = (await import(/* @vite-ignore */ name)) as { create: (flags: string[]) => unknown; globals: Record<string, unknown> };
      Object.assign(globalThis, mod.globals);
      gpu = mod.create([]);
    } catch {
      return false;
    }
  }
  if (g.navigator === undefined) {
    g.navigator = { gpu };
  } else {
    Object.defineProperty(g.navigator, "gpu", { value: gpu, configurable: true, writable: true });
  }
  ensureScope();
  return true;
}

/** Make `navigator.gpu` reachable for the engine; the reason when it is not. */
export async function prepareWebGpu(): Promise<string | undefined> {
  const g = globalThis as Global;
  if (!g.navigator?.gpu) {
    if (isNode()) {
      if (!(await installNodeWebGpu())) return "navigator.gpu is missing and the `webgpu` package (Dawn for Node) is not installed";
    } else {
      return "navigator.gpu is missing (this browser / runtime has no WebGPU)";
    }
  }
  ensureScope();
  return undefined;
}
