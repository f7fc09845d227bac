/**
 * Which engine build a runtime can run. Two builds ship: baseline WebAssembly SIMD128
 * (`t5_web_bg.wasm`, every runtime t5-web supports) and relaxed SIMD (`t5_web_relaxed_bg.wasm`: fused
 * multiply-adds in the matrix kernels; V8 11.4+: Chromium 114+, Node 22+, Deno, workerd). The relaxed
 * one is picked where this probe validates; elsewhere (Node 20, Safari, Firefox without the flag) the baseline.
 */

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

/** Which engine build runs: the two packaged ones, or one the caller passed to `initWasm`. */
export type WasmFlavour = "relaxed-simd" | "simd128" | "custom";

/**
 * The packaged build to load: relaxed SIMD where supported, unless `T5_WEB_WASM=simd128` is set
 * (environment variable in Node / Deno, or `globalThis.T5_WEB_WASM`), which forces the baseline.
 */
export function preferredFlavour(): Exclude<WasmFlavour, "custom"> {
  const forced = (globalThis as { T5_WEB_WASM?: string }).T5_WEB_WASM ?? readEnv("T5_WEB_WASM");
  if (forced === "simd128") return "simd128";
  return hasRelaxedSimd() ? "relaxed-simd" : "simd128";
}

/** File name of a packaged build. */
export function wasmFileName(flavour: Exclude<WasmFlavour, "custom">): string {
  return flavour === "relaxed-simd" ? "t5_web_relaxed_bg.wasm" : "t5_web_bg.wasm";
}
