// Shared by bench.mjs and peak.mjs: instantiate a kernel-benchmark module (no bindings); its few imports (from std's
// panic and allocation paths) are stubs that throw if a benchmark ever reaches them.
import fs from "node:fs";
export async function instantiate(file) {
  const buf = fs.readFileSync(file);
  const imp = {};
  for (const d of WebAssembly.Module.imports(new WebAssembly.Module(buf))) {
    imp[d.module] ??= {};
    imp[d.module][d.name] = d.kind === "function" ? () => { throw new Error("stub " + d.name); } : undefined;
  }
  return (await WebAssembly.instantiate(buf, imp)).instance.exports;
}
