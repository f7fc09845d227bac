// Attention in wasm (t5-small's 8 heads x 64; src/attention.rs), no bindings, several builds timed interleaved:
//   node --no-liftoff bench/wasm-kernels/attention.mjs a.wasm[,b.wasm...] [reps]   (build: bench/wasm-kernels/build.sh)
// Cases: one encoder layer's self-attention over 512 and 128 tokens (position bias, key padding) and one decode
// step's cross-attention over 512 and 32 encoder positions (no bias). Prints best / median ms per call.
import { instantiate } from "./load.mjs";
const files = process.argv[2].split(",");
const reps = Number(process.argv[3] ?? 7);
const cases = [["self 512x512", 512, 512, 1], ["self 128x128", 128, 128, 1], ["cross 1x512", 1, 512, 0], ["cross 1x32", 1, 32, 0]];
const inst = [];
for (const f of files) inst.push(await instantiate(f));
const res = {};
for (const [name, q, kv, bias] of cases) {
  const iters = Math.max(1, Math.round(2e6 / (q * kv)));
  for (let r = 0; r < reps; r++) for (let fi = 0; fi < inst.length; fi++) {
    const e = inst[fi];
    e.setup_attention(q, kv, bias);
    e.run_attention(1);
    const t = performance.now(); e.run_attention(iters); const ms = (performance.now() - t) / iters;
    (res[`${name} f${fi}`] ??= []).push(ms);
  }
}
for (const [key, t] of Object.entries(res)) {
  t.sort((a, b) => a - b);
  console.log(`${key.padEnd(18)} best ${t[0].toFixed(3)} ms  med ${t[t.length >> 1].toFixed(3)} ms`);
}
