// One-row matvec (a decode step's linear) through t5-core's qkernels::linear in wasm, no bindings:
//   node --no-liftoff bench/wasm-kernels/bench.mjs a.wasm[,b.wasm...] [reps]   (build: bench/wasm-kernels/build.sh)
// --no-liftoff: time the optimizing tier from the first call. Several files are timed interleaved.
// Prints the best / median time per shape and Gw/s (10^9 weights per second, best run), and `err`: the
// largest |kernel - f64 dot with the dequantized weights| (the oracle's view of the kernel).
// DT: 0 f32, 1 f16, 2 bf16, 3 q8 (per row), 4 q4 (groups of 128), 5 q4 groups of 32 (GGUF); SH: n x k shapes,
// or `step`: the matrices of one t5-small decode step, each its own allocation (`setup_step`), so that they stream
// from memory as in a real decode; a shape that fits in cache (2048x512 q8 is 1 MB) shows compute speed only.
import { instantiate } from "./load.mjs";
const files = process.argv[2].split(",");
const reps = Number(process.argv[3] ?? 7);
const shapes = (process.env.SH ?? "2048x512,512x2048,32128x512").split(",").map(s => s.split("x").map(Number));
const names = ["f32", "f16", "bf16", "q8", "q4", "q4g32"];
const dts = (process.env.DT ?? "0,2,3,4,5").split(",").map(Number);
const inst = [];
for (const f of files) inst.push(await instantiate(f));
const res = {};
const stepWeights = 6 * (6 * 512 * 512 + 2 * 2048 * 512) + 32128 * 512;
for (const dt of dts) for (const [n, k] of shapes) {
  const step = Number.isNaN(n);
  if (step && dt > 4) continue;
  for (let r = 0; r < reps; r++) for (let fi = 0; fi < inst.length; fi++) {
    const e = inst[fi];
    if (step) {
      if (r === 0) e.setup_step(dt);
      e.run_step(1);
      const t = performance.now(); e.run_step(3); const ms = (performance.now() - t) / 3;
      (res[`${names[dt]} step f${fi}`] ??= { err: NaN, t: [], w: stepWeights }).t.push(ms);
      continue;
    }
    e.setup(dt, n, k);
    const it = Math.max(1, Math.round(4e7 / (n * k)));
    e.run(1);
    const t = performance.now(); e.run(it); const ms = (performance.now() - t) / it;
    const key = `${names[dt]} ${n}x${k} f${fi}`;
    (res[key] ??= { err: e.check(), t: [], w: n * k }).t.push(ms);
  }
}
for (const [key, v] of Object.entries(res)) {
  const s = v.t.sort((a, b) => a - b);
  console.log(`${key.padEnd(22)} best ${s[0].toFixed(3)} ms  med ${s[s.length >> 1].toFixed(3)} ms  Gw/s(best) ${(v.w / s[0] / 1e6).toFixed(2)}  err ${v.err.toExponential(2)}`);
}
