/**
 * workerd / Cloudflare Workers: the `.wasm` imported as a module, which the runtime (or wrangler's
 * bundler) provides as a compiled `WebAssembly.Module`. The specifiers are rewritten to
 * `./t5_web_bg.wasm` / `./t5_web_relaxed_bg.wasm` by the rollup build.
 */
// @ts-ignore -- resolved by the rollup build (external), typed below
import wasmModule from "t5-web:wasm-module";
// @ts-ignore -- resolved by the rollup build (external), typed below
import relaxedModule from "t5-web:wasm-module-relaxed";
import { preferredFlavour, type WasmFlavour } from "./wasm-features.js";

export async function defaultWasmSource(): Promise<{ source: WebAssembly.Module; flavour: WasmFlavour }> {
  const flavour = preferredFlavour();
  return { source: (flavour === "relaxed-simd" ? relaxedModule : wasmModule) as WebAssembly.Module, flavour };
}
