// Encoder prefill speed in WASM (Node): `node bench/encoder-wasm.mjs DIR [DTYPE...]` (dtypes default fp32 q8 q4;
// T5_BENCH_THREADS: the `num_threads` load option, default all cores; 1: the single-thread builds).
// One line per dtype: encoder 8×128 and 1×512 tokens, median of 5 runs.
import { T5EncoderModel, wasmFlavour } from "../dist/index.js";

const [dir, ...rest] = process.argv.slice(2);
const dtypes = rest.length ? rest : ["fp32", "q8", "q4"];
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const ids = (n, mul) => Array.from({ length: n }, (_, i) => 100 + ((i * mul) % 3000));
for (const dtype of dtypes) {
  const encoder = await T5EncoderModel.fromPretrained(dir, { dtype, num_threads: process.env.T5_BENCH_THREADS ? Number(process.env.T5_BENCH_THREADS) : undefined });
  let line = `wasm ${wasmFlavour()} node ${process.version} ${dtype}:`;
  for (const [b, s] of [[8, 128], [1, 512]]) {
    const input = { input_ids: Array.from({ length: b }, (_, r) => ids(s, 53 + r)) };
    encoder.forward(input);
    const times = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      encoder.forward(input);
      times.push(performance.now() - t);
    }
    const ms = median(times);
    line += ` encoder ${b}x${s} ${((b * s) / (ms / 1e3)).toFixed(0)} tok/s (${ms.toFixed(1)} ms)`;
  }
  console.log(line);
  encoder.dispose();
}
