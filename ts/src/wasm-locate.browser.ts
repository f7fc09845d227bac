/** Browsers and Deno: the `.wasm` next to the bundle, fetched by URL (see `wasm.ts`); the relaxed-SIMD build where it validates. */
import { preferredFlavour, wasmFileName, type WasmFlavour } from "./wasm-features.js";

export async function defaultWasmSource(): Promise<{ source: URL; flavour: WasmFlavour }> {
  const flavour = preferredFlavour();
  return { source: new URL(`./${wasmFileName(flavour)}`, import.meta.url), flavour };
}
