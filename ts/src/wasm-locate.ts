/**
 * Where the engine's `.wasm` is by default: the Node build (and the sources under vitest).
 * Node / Bun / Deno-with-`fs`: read the file with `fs` — next to the bundle (`dist/npm/`) or in
 * `pkg/` (sources). Without `fs`: the URL next to this module. A threaded build when more than one
 * thread is wanted (with relaxed SIMD where the runtime validates it: Node 22+), else the relaxed-SIMD
 * build where it validates, else the SIMD128 baseline (see `wasm-features.ts`); a threaded build that is
 * not there (an engine built without it) falls back to the other threaded one, then the single-thread ones.
 * Rollup swaps this module for `wasm-locate.browser.ts` / `wasm-locate.workerd.ts` in those builds.
 */

import { T5WebError } from "./errors.js";
import { isThreadedFlavour, preferredFlavour, wasmFileName, type PackagedFlavour } from "./wasm-features.js";

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === "string";
}

export async function defaultWasmSource(threads?: number): Promise<{ source: URL | Uint8Array; flavour: PackagedFlavour }> {
  const flavour = preferredFlavour(threads);
  if (!isThreadedFlavour(flavour)) return find(flavour);
  const order: PackagedFlavour[] = flavour === "threads-relaxed-simd" ? [flavour, "threads"] : [flavour];
  for (const f of order) {
    try {
      return await find(f);
    } catch (e) {
      if (!(e instanceof T5WebError)) throw e;
    }
  }
  return find(preferredFlavour(1));
}

async function find(flavour: PackagedFlavour): Promise<{ source: URL | Uint8Array; flavour: PackagedFlavour }> {
  const name = wasmFileName(flavour);
  const here = new URL(`./${name}`, import.meta.url);
  if (!isNode()) return { source: here, flavour };
  const fs = await import("node:fs/promises");
  const candidates = [here, new URL(`../../pkg/${name}`, import.meta.url), new URL(`../pkg/${name}`, import.meta.url)];
  const tried: string[] = [];
  for (const url of candidates) {
    try {
      return { source: await fs.readFile(url), flavour };
    } catch (e) {
      if ((e as { code?: string }).code !== "ENOENT") throw e;
      tried.push(url.pathname);
    }
  }
  throw new T5WebError(`t5-web: the WebAssembly engine is not built (looked for ${tried.join(", ")}); run \`npm run build:wasm\``);
}
