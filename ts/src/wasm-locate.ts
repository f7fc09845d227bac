/**
 * Where the engine's `.wasm` is by default: the Node build (and the sources under vitest).
 * Node / Bun / Deno-with-`fs`: read the file with `fs` — next to the bundle (`dist/npm/`) or in
 * `pkg/` (sources). Without `fs`: the URL next to this module.
 * Rollup swaps this module for `wasm-locate.browser.ts` / `wasm-locate.workerd.ts` in those builds.
 */

import { T5WebError } from "./errors.js";

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === "string";
}

export async function defaultWasmSource(): Promise<URL | Uint8Array> {
  const here = new URL("./t5_web_bg.wasm", import.meta.url);
  if (!isNode()) return here;
  const fs = await import("node:fs/promises");
  const candidates = [here, new URL("../../pkg/t5_web_bg.wasm", import.meta.url), new URL("../pkg/t5_web_bg.wasm", import.meta.url)];
  const tried: string[] = [];
  for (const url of candidates) {
    try {
      return await fs.readFile(url);
    } catch (e) {
      if ((e as { code?: string }).code !== "ENOENT") throw e;
      tried.push(url.pathname);
    }
  }
  throw new T5WebError(`t5-web: the WebAssembly engine is not built (looked for ${tried.join(", ")}); run \`npm run build:wasm\``);
}
