/**
 * Browsers and Deno: the `.wasm` next to the bundle, fetched by URL (see `wasm.ts`); the threaded build
 * where threads are possible and wanted, else the relaxed-SIMD build where it validates.
 */
import { preferredFlavour, wasmFileName, type PackagedFlavour } from "./wasm-features.js";

export async function defaultWasmSource(threads?: number): Promise<{ source: URL; flavour: PackagedFlavour }> {
  const flavour = preferredFlavour(threads);
  return { source: new URL(`./${wasmFileName(flavour)}`, import.meta.url), flavour };
}
