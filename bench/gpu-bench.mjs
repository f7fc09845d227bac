// GPU vs CPU in Node through the TypeScript facade: the same measurements as bench-wasm.mjs
// (encoder, greedy decode) with device 'cpu' and device 'webgpu' (Dawn, the `webgpu` package), plus
// dispatches per decode step. Prints one JSON line. Usage: node bench/gpu-bench.mjs MODEL_DIR [runs]
//
// On a machine without a GPU, Dawn runs on SwiftShader (software Vulkan on the CPU): those
// figures measure the WebGPU path's overheads, NOT a GPU. bench/gpu-real.sh runs the same on a GPU.
import { T5ForConditionalGeneration, T5EncoderModel } from "../dist/index.js";
import { installNodeWebGpu } from "../dist/webgpu.js";

const dir = process.argv[2];
const runs = Number(process.argv[3] ?? 3);
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const ids = (n, mul) => Array.from({ length: n }, (_, i) => 100 + ((i * mul) % 3000));
if (!(await installNodeWebGpu())) throw new Error("the `webgpu` package is not installed");

// 8×128-token encoder batches: skipped on software adapters unless FULL=1 (attention on SwiftShader
// costs minutes there: workgroup barriers are emulated with fibers).
const log = (...a) => console.error(`[gpu-bench ${new Date().toISOString().slice(11, 19)}]`, ...a);

async function measure(device) {
  let t = performance.now();
  const model = await T5ForConditionalGeneration.fromPretrained(dir, { device });
  const loadS = (performance.now() - t) / 1e3;
  const encoder = await T5EncoderModel.fromPretrained(dir, { device });
  const software = /swiftshader|llvmpipe|lavapipe|^$/i.test(String(model.gpuInfo?.adapter ?? "x")) || model.gpuInfo?.device_type === "Cpu";
  const big = device === "cpu" || !software || process.env.FULL === "1";
  log(device, "loaded", model.gpuInfo ? JSON.stringify(model.gpuInfo) : "");
  const in32 = { input_ids: [ids(32, 37)] };
  const rows8 = Array.from({ length: 8 }, (_, r) => ids(128, 53 + r));
  const enc32 = [], enc8 = [], gen = [];
  await encoder.forward(in32); // warm-up (pipelines, pool)
  for (let i = 0; i < runs; i++) {
    t = performance.now();
    await encoder.forward(in32);
    enc32.push(performance.now() - t);
    if (big) {
      t = performance.now();
      await encoder.forward({ input_ids: rows8 });
      enc8.push(performance.now() - t);
    }
  }
  log(device, "encoder done");
  const newTokens = 32;
  await model.generate(in32, { max_new_tokens: 2, min_new_tokens: 2 });
  for (let i = 0; i < runs; i++) {
    t = performance.now();
    await model.generate(in32, { max_new_tokens: newTokens, min_new_tokens: newTokens });
    gen.push(performance.now() - t);
  }
  log(device, "generate done");
  // decode rate: (generate N) - (generate 1) over N - 1 steps
  const one = [];
  for (let i = 0; i < runs; i++) {
    t = performance.now();
    await model.generate(in32, { max_new_tokens: 1 });
    one.push(performance.now() - t);
  }
  const out = {
    device: model.device,
    adapter: model.gpuInfo?.adapter ?? "wasm (CPU)",
    load_s: loadS,
    encoder_32_ms: median(enc32),
    encoder_8x128_tok_s: big ? (8 * 128) / (median(enc8) / 1e3) : undefined,
    generate_32_ms: median(gen),
    decode_tok_s: (newTokens - 1) / ((median(gen) - median(one)) / 1e3),
    stats: model.lastGenerateStats,
  };
  model.dispose();
  encoder.dispose();
  return out;
}

const cpu = await measure("cpu");
const gpu = await measure("webgpu");
console.log(JSON.stringify({ cpu, gpu }));
