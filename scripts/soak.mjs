#!/usr/bin/env node
// The long soak (issue 15): 10,000 generate calls and 1,000 load / dispose cycles of the tiny fixture model in the
// WebAssembly engine, printing the engine's memory (its high-water mark: wasm memory never shrinks) as it goes; the
// run passes when the memory is flat after warm-up. Needs `npm run build` (uses dist/). Figures: docs/hardening.md.
// Usage: node scripts/soak.mjs [generate calls] [load cycles]
import { AutoModelForSeq2SeqLM, wasmMemory } from "../dist/index.js";

const calls = Number(process.argv[2] ?? 10_000);
const cycles = Number(process.argv[3] ?? 1_000);
const dir = new URL("../test/fixtures/tiny-t5", import.meta.url).pathname;
const mib = () => (wasmMemory().buffer.byteLength / 2 ** 20).toFixed(1);
const opts = [{ max_new_tokens: 8 }, { max_new_tokens: 8, num_beams: 4 }, { max_new_tokens: 8, do_sample: true, seed: 1 }, { max_new_tokens: 8, cache_implementation: "static" }];

let t = performance.now();
const model = await AutoModelForSeq2SeqLM.fromPretrained(dir);
for (let i = 0; i < 40; i++) model.generateSync([[37, 9, 5, 1]], opts[i % opts.length]);
const warmGen = wasmMemory().buffer.byteLength;
console.log(`generate: warm-up done, memory ${mib()} MiB`);
for (let i = 1; i <= calls; i++) {
  model.generateSync([[37, 9, 5, 1, 8, 22]], opts[i % opts.length]);
  if (i % 1000 === 0) console.log(`generate: ${i} calls, memory ${mib()} MiB, ${((performance.now() - t) / 1000).toFixed(0)} s`);
}
model.dispose();
const genFlat = wasmMemory().buffer.byteLength === warmGen;

t = performance.now();
for (let i = 0; i < 5; i++) (await AutoModelForSeq2SeqLM.fromPretrained(dir)).dispose();
const warmLoad = wasmMemory().buffer.byteLength;
for (let i = 1; i <= cycles; i++) {
  (await AutoModelForSeq2SeqLM.fromPretrained(dir)).dispose();
  if (i % 100 === 0) console.log(`load/dispose: ${i} cycles, memory ${mib()} MiB, ${((performance.now() - t) / 1000).toFixed(0)} s`);
}
const loadFlat = wasmMemory().buffer.byteLength === warmLoad;
console.log(`soak: ${calls} generate calls ${genFlat ? "flat" : "GREW"}, ${cycles} load/dispose cycles ${loadFlat ? "flat" : "GREW"} (memory ${mib()} MiB)`);
process.exitCode = genFlat && loadFlat ? 0 : 1;
