// Ceilings of the wasm arithmetic on one core (src/peak.rs): the most f32 multiply-adds and i16 dot
// products SIMD128 (and relaxed SIMD) issue per second, and the packed f32 GEMM on a t5-small encoder's
// shapes (8 × 128 = 1,024 rows) against them.
//   node --no-liftoff bench/wasm-kernels/peak.mjs bench/wasm-kernels/simd128.wasm[,bench/wasm-kernels/relaxed.wasm] [reps]
// (build: bench/wasm-kernels/build.sh). Best of `reps` (default 7) timed calls after one warm-up each.
import { instantiate } from "./load.mjs";
const files = process.argv[2].split(",");
const reps = Number(process.argv[3] ?? 7);
const best = (f) => {
  f();
  let b = Infinity;
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    f();
    b = Math.min(b, performance.now() - t);
  }
  return b / 1e3;
};
for (const file of files) {
  const e = await instantiate(file);
  const it = 20_000_000;
  const ghz = (2 * 200_000_000) / best(() => e.clock(200_000_000)) / 1e9; // two dependent 1-cycle operations a turn
  const fma = (32 * it) / best(() => e.peak_f32(it)) / 1e9; // 10^9 f32 multiply-adds per second
  const dot = (64 * it) / best(() => e.peak_dot(it)) / 1e9; // 10^9 i16 products per second
  console.log(`${file}: clock ${ghz.toFixed(2)} GHz (a dependent integer chain); f32 multiply-adds ${fma.toFixed(2)} G/s (${(2 * fma).toFixed(1)} GFLOP/s); i16 dot products ${dot.toFixed(2)} G/s ` +
    `(exact two-limb weight × activation products: ${(dot / 2).toFixed(2)} G/s)`);
  if (e.peak_rdot8) { // the relaxed build: i32x4.relaxed_dot_i8x16_i7x16_add_s, the q4 digit kernel's instruction
    const r = [8, 10, 12].map((n) => { const g = (n * it) / best(() => e[`peak_rdot${n}`](it)) / 1e9; return `${n} chains ${g.toFixed(2)} G/s (${(g / ghz).toFixed(2)} a cycle)`; });
    console.log(`  relaxed i8 dots (16 byte products each; a q4 weight takes 4, one per digit): ${r.join(", ")}`);
  }
  const bw = [];
  for (const mb of [22, 39, 154, 256]) { // a q4 / q8 / fp32 t5-small decode step's weight bytes, and 256 MB
    e.read_setup(mb);
    bw.push(`${mb} MB ${((mb * 1e6) / best(() => e.read_pass()) / 1e9).toFixed(1)}`);
  }
  e.read_setup(0);
  console.log(`  read bandwidth (GB/s): ${bw.join(", ")}`);
  for (const [m, n, k] of [[1024, 512, 512], [1024, 2048, 512], [1024, 512, 2048]]) {
    e.gemm_setup(m, n, k);
    const s = best(() => e.gemm_run(1));
    const g = (m * n * k) / s / 1e9;
    console.log(`  gemm ${m}x${n}x${k}: ${(s * 1e3).toFixed(2)} ms, ${g.toFixed(2)} G multiply-adds/s = ${(100 * g / fma).toFixed(0)}% of the f32 peak, ${(g / ghz).toFixed(2)} per cycle`);
  }
}
