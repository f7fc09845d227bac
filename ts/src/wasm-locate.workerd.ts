/**
 * workerd / Cloudflare Workers: the `.wasm` imported as a module, which the runtime (or wrangler's
 * bundler) provides as a compiled `WebAssembly.Module`. The specifiers are rewritten to
 * `./t5_web_bg.wasm` / `./t5_web_relaxed_bg.wasm` by the rollup build.
 */
// @ts-ignore -- resolved by the rollup build (external), typed below
import wasmModule from "t5-web:wasm-module";
// @ts-ignore -- resolved by the rollup build (external), typed below
import relaxedModule from "t5-web:wasm-module-relaxed";
import { preferredFlavour, type PackagedFlavour } from "./wasm-features.js";

/** workerd has no workers: never the threaded build. */
export async function defaultWasmSource(_threads?: number): Promise<{ source: WebAssembly.Module; flavour: PackagedFlavour }> {
  const flavour = preferredFlavour(1);
  return { source: (flavour === "relaxed-simd" ? relaxedModule : wasmModule) as WebAssembly.Module, flavour };
}
