// WASM side of `t5-bench strategies`: greedy / beam 4 / sampling × growing / static KV cache through the
// TypeScript facade and the wasm build, in Node (t5-small-shaped model, batch 1, 32-token input, exactly 64 new
// tokens, median of 3 after one warm-up). Memory: the wasm linear memory size after the runs (it only grows).
// Usage: node bench/strategies-wasm.mjs <model-dir>   (after npm run build)
import { T5ForConditionalGeneration } from "../dist/index.js";

const dir = process.argv[2];
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const input = { input_ids: [Array.from({ length: 32 }, (_, i) => 100 + ((i * 37) % 3000))] };
const model = await T5ForConditionalGeneration.fromPretrained(dir);
const strategies = [
  ["greedy", {}],
  ["beam 4", { num_beams: 4 }],
  ["sampling", { do_sample: true, top_k: 50, top_p: 0.95, temperature: 0.8, seed: 1 }],
];
const n = 64;
console.log("| strategy | KV cache | generate 64 ms (wasm) | tok/s |");
console.log("|---|---|---|---|");
for (const [name, opts] of strategies) {
  for (const cache of ["dynamic", "static"]) {
    const o = { ...opts, max_new_tokens: n, min_new_tokens: n, cache_implementation: cache };
    model.generateSync(input, o);
    const t = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const out = model.generateSync(input, o);
      t.push(performance.now() - t0);
      if (out[0].length !== n + 1) throw new Error(`expected ${n + 1} ids`);
    }
    const ms = median(t);
    console.log(`| ${name} | ${cache} | ${ms.toFixed(1)} | ${((n * 1e3) / ms).toFixed(1)} |`);
  }
}
model.dispose();
