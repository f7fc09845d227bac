/**
 * Which engine build a runtime can run. Four builds ship: baseline WebAssembly SIMD128
 * (`t5_web_bg.wasm`, every runtime t5-web supports), relaxed SIMD (`t5_web_relaxed_bg.wasm`: fused
 * multiply-adds in the matrix kernels; V8 11.4+: Chromium 114+, Node 22+, Deno, workerd), threads
 * (`t5_web_threads_bg.wasm`: SIMD128 on a shared memory, its matmuls and attention split across a pool of
 * workers; own glue `t5_web_threads.js`) and threads with relaxed SIMD (`t5_web_threads_relaxed_bg.wasm`,
 * the same glue). A threaded one is picked where workers can share a memory ({@link threadsSupported}:
 * Node, Deno, cross-origin isolated pages) and more than one thread is wanted, with relaxed SIMD where this
 * probe validates; else the single-thread relaxed one where the probe validates; elsewhere (Node 20,
 * Safari, Firefox without the flag) the baseline.
 */

import { BadConfigError } from "./errors.js";
import { readEnv } from "./runtime-env.js";

/** The smallest module that uses a relaxed-SIMD instruction (`i8x16.relaxed_swizzle` on two constants). */
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // type section: () -> v128
  0x03, 0x02, 0x01, 0x00, // function section: one function of type 0
  0x0a, 0x2b, 0x01, 0x29, 0x00, // code section: one body of 41 bytes, no locals
  0xfd, 0x0c, ...new Array<number>(16).fill(0), // v128.const 0
  0xfd, 0x0c, ...new Array<number>(16).fill(0), // v128.const 0
  0xfd, 0x80, 0x02, // i8x16.relaxed_swizzle
  0x0b, // end
]);

/** Whether this runtime validates relaxed-SIMD instructions. */
export function hasRelaxedSimd(): boolean {
  try {
    return WebAssembly.validate(RELAXED_PROBE);
  } catch {
    return false;
  }
}

/** Which engine build runs: the four packaged ones, or one the caller passed to `initWasm`. */
export type WasmFlavour = "threads-relaxed-simd" | "threads" | "relaxed-simd" | "simd128" | "custom";

/** A packaged build. */
export type PackagedFlavour = Exclude<WasmFlavour, "custom">;

/** Whether a build is one of the threaded ones (shared memory, a pool of workers, its own glue). */
export function isThreadedFlavour(flavour: WasmFlavour | undefined): flavour is "threads" | "threads-relaxed-simd" {
  return flavour === "threads" || flavour === "threads-relaxed-simd";
}

function isNode(): boolean {
  const g = globalThis as { process?: { versions?: { node?: string } }; Deno?: unknown };
  return typeof g.process?.versions?.node === "string" && typeof g.Deno === "undefined";
}

/**
 * Whether this runtime can run the threaded build: `SharedArrayBuffer` (in browsers only on
 * cross-origin isolated pages: COOP `same-origin` + COEP `require-corp`) and workers that share a
 * `WebAssembly.Memory` (Node's `worker_threads`, Deno's and browsers' module workers). workerd has no
 * workers: never.
 */
export function threadsSupported(): boolean {
  const g = globalThis as { Worker?: unknown; Deno?: unknown; crossOriginIsolated?: boolean; WorkerGlobalScope?: unknown };
  if (typeof SharedArrayBuffer !== "function") return false;
  if (isNode()) return true;
  if (typeof g.Worker !== "function") return false;
  if (typeof g.Deno !== "undefined") return true;
  return g.crossOriginIsolated === true;
}

/** Hardware threads of this machine (`navigator.hardwareConcurrency`, Node: `os.availableParallelism()`). */
export async function hardwareThreads(): Promise<number> {
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  if (typeof nav?.hardwareConcurrency === "number" && nav.hardwareConcurrency > 0) return nav.hardwareConcurrency;
  if (isNode()) {
    const os = await import("node:os");
    return typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
  }
  return 1;
}

/** Most threads the automatic setting uses (as natively: `t5_core`'s `DEFAULT_MAX_THREADS`). */
export const DEFAULT_MAX_THREADS = 8;

/** Each packaged build's file (the one table of the builds: `T5_WEB_WASM` takes its keys). */
const WASM_FILES: Readonly<Record<PackagedFlavour, string>> = {
  "threads-relaxed-simd": "t5_web_threads_relaxed_bg.wasm",
  threads: "t5_web_threads_bg.wasm",
  "relaxed-simd": "t5_web_relaxed_bg.wasm",
  simd128: "t5_web_bg.wasm",
};
function isPackaged(v: string): v is PackagedFlavour {
  return Object.prototype.hasOwnProperty.call(WASM_FILES, v);
}

/**
 * The `T5_WEB_WASM` setting (environment variable in Node / Deno, or `globalThis.T5_WEB_WASM`); empty is unset, a
 * value that names no packaged build is a {@link BadConfigError} (not silently the default build).
 */
function forcedFlavour(): PackagedFlavour | undefined {
  const v = (globalThis as { T5_WEB_WASM?: string }).T5_WEB_WASM ?? readEnv("T5_WEB_WASM");
  if (v === undefined || v === "") return undefined;
  if (!isPackaged(v)) {
    throw new BadConfigError(`T5_WEB_WASM=${JSON.stringify(v)}: expected one of ${Object.keys(WASM_FILES).map((p) => JSON.stringify(p)).join(", ")} (or unset)`);
  }
  return v;
}

/**
 * The packaged build to load for `threads` wanted threads (1: one thread): a threaded build where
 * {@link threadsSupported} and `threads > 1` (with relaxed SIMD where supported), else relaxed SIMD where
 * supported, else the baseline. `T5_WEB_WASM=simd128` / `relaxed-simd` / `threads` /
 * `threads-relaxed-simd` forces one (each only where the runtime supports it; another value is a
 * {@link BadConfigError}).
 */
export function preferredFlavour(threads = DEFAULT_MAX_THREADS): PackagedFlavour {
  const forced = forcedFlavour();
  const relaxed = hasRelaxedSimd();
  if (forced === "simd128") return "simd128";
  if (forced === "relaxed-simd" && relaxed) return "relaxed-simd";
  if (forced === "threads" && threadsSupported()) return "threads";
  if (forced === "threads-relaxed-simd" && relaxed && threadsSupported()) return "threads-relaxed-simd";
  if (forced === undefined && threads > 1 && threadsSupported()) return relaxed ? "threads-relaxed-simd" : "threads";
  return relaxed ? "relaxed-simd" : "simd128";
}

/** File name of a packaged build. */
export function wasmFileName(flavour: PackagedFlavour): string {
  return WASM_FILES[flavour];
}
