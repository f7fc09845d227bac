/** Browsers and Deno: the `.wasm` next to the bundle, fetched by URL (see `wasm.ts`). */
export async function defaultWasmSource(): Promise<URL> {
  return new URL("./t5_web_bg.wasm", import.meta.url);
}
