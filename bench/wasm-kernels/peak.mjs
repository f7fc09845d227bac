// Ceilings of the wasm arithmetic on one core (src/peak.rs): the most f32 multiply-adds and i16 dot
// products SIMD128 (and relaxed SIMD) issue per second, and the packed f32 GEMM on a t5-small encoder's
// shapes (8 × 128 = 1,024 rows) against them.
//   node --no-liftoff bench/wasm-kernels/peak.mjs bench/wasm-kernels/simd128.wasm[,bench/wasm-kernels/relaxed.wasm] [reps]
// (build: bench/wasm-kernels/build.sh). Best of `reps` (default 7) timed calls after one warm-up each.
import fs from "node:fs";
const files = process.argv[2].split(",");
const reps = Number(process.argv[3] ?? 7);
function stubs(buf) {
  const imp = {};
  for (const d of WebAssembly.Module.imports(new WebAssembly.Module(buf))) {
    imp[d.module] ??= {};
    imp[d.module][d.name] = d.kind === "function" ? () => { throw new Error("stub " + d.name); } : undefined;
  }
  return imp;
}
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
  const buf = fs.readFileSync(file);
  const e = (await WebAssembly.instantiate(buf, stubs(buf))).instance.exports;
  const it = 20_000_000;
  const fma = (48 * it) / best(() => e.peak_f32(it)) / 1e9; // 10^9 f32 multiply-adds per second
  const dot = (96 * it) / best(() => e.peak_dot(it)) / 1e9; // 10^9 i16 products per second
  console.log(`${file}: f32 multiply-adds ${fma.toFixed(2)} G/s (${(2 * fma).toFixed(1)} GFLOP/s); i16 dot products ${dot.toFixed(2)} G/s ` +
    `(exact two-limb weight × activation products: ${(dot / 2).toFixed(2)} G/s)`);
  for (const [m, n, k] of [[1024, 512, 512], [1024, 2048, 512], [1024, 512, 2048]]) {
    e.gemm_setup(m, n, k);
    const s = best(() => e.gemm_run(1));
    const g = (m * n * k) / s / 1e9;
    console.log(`  gemm ${m}x${n}x${k}: ${(s * 1e3).toFixed(2)} ms, ${g.toFixed(2)} G multiply-adds/s = ${(100 * g / fma).toFixed(0)}% of the f32 peak`);
  }
}
