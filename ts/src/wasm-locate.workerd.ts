/**
 * workerd / Cloudflare Workers: the `.wasm` imported as a module, which the runtime (or wrangler's
 * bundler) provides as a compiled `WebAssembly.Module`. The specifier is rewritten to
 * `./t5_web_bg.wasm` by the rollup build.
 */
// @ts-ignore -- resolved by the rollup build (external), typed below
import wasmModule from "t5-web:wasm-module";

export async function defaultWasmSource(): Promise<WebAssembly.Module> {
  return wasmModule as WebAssembly.Module;
}
