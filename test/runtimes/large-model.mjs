#!/usr/bin/env node
// Manual check (not part of `npm test`: it needs a checkpoint of several GB): a T5 checkpoint larger
// than one WebAssembly memory (4 GiB) loads through the packed Node build by streaming, as q8 and q4;
// fp32 is refused with ModelTooLargeError before the weights are read. See docs/development.md "Models larger than 4 GiB".
//
//   npm run build   # or build:wasm + build:ts + build:npm
//   target/release/t5-bench make-random big-config.json /tmp/t5-big   # a >4 GiB fp32 checkpoint
//   node test/runtimes/large-model.mjs /tmp/t5-big [q8 q4 fp32]
//
// Prints one JSON line per dtype: load seconds, wasm memory (bytes), process peak RSS, greedy ids; with
// <model-dir>/native-q8-logits.json (written by `T5_BIG_DIR=<model-dir> cargo test --release -p t5-core
// --test streaming -- --ignored`: the native engine, whole file in memory), the q8 logits' largest
// difference from the native ones.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { ModelTooLargeError, T5ForConditionalGeneration, initWasm, wasmMemory } from "../../dist/npm/node.js";

const [dir, ...dtypes] = process.argv.slice(2);
if (!dir) {
  console.error("usage: node test/runtimes/large-model.mjs <model-dir> [q8 q4 fp32 ...]");
  process.exit(2);
}
const size = statSync(join(dir, "model.safetensors")).size;
console.log(JSON.stringify({ file: join(dir, "model.safetensors"), bytes: size, gib: +(size / 2 ** 30).toFixed(2) }));
await initWasm();
const mem = wasmMemory();
for (const dtype of dtypes.length ? dtypes : ["fp32", "q8", "q4"]) {
  const t0 = performance.now();
  let read = 0;
  const progress_callback = (e) => {
    if (e.status === "progress" && e.file === "model.safetensors") read = e.loaded;
  };
  try {
    const lm = await T5ForConditionalGeneration.fromPretrained(dir, { dtype, progress_callback });
    const load_s = (performance.now() - t0) / 1000;
    const t1 = performance.now();
    const ids = lm.generateSync([[37, 1000, 5, 8, 1]], { max_new_tokens: 8 });
    const generate_s = (performance.now() - t1) / 1000;
    const out = { dtype, load_s: +load_s.toFixed(1), read_bytes: read, wasm_memory_bytes: mem.buffer.byteLength, peak_rss_bytes: process.resourceUsage().maxRSS * 1024, generate_s: +generate_s.toFixed(2), ids: ids[0] };
    const native = join(dir, "native-q8-logits.json");
    if (dtype === "q8" && existsSync(native)) {
      const want = JSON.parse(readFileSync(native, "utf8"));
      const got = lm.forwardSync({ input_ids: [[37, 1000, 5, 8, 1]], decoder_input_ids: [[0, 5, 9]] }).logits;
      let worst = 0;
      let scale = 0;
      for (let i = 0; i < want.data.length; i++) {
        worst = Math.max(worst, Math.abs(got.data[i] - want.data[i]));
        scale = Math.max(scale, Math.abs(want.data[i]));
      }
      Object.assign(out, { native_logits_max_abs_diff: worst, native_logits_max_abs: scale, same_shape: JSON.stringify(got.dims) === JSON.stringify(want.shape) });
    }
    console.log(JSON.stringify(out));
    lm.dispose();
  } catch (e) {
    const s = (performance.now() - t0) / 1000;
    console.log(JSON.stringify({ dtype, error: e?.name, typed: e instanceof ModelTooLargeError, after_s: +s.toFixed(3), read_bytes: read, message: e?.message }));
  }
}
