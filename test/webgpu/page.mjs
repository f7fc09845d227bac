// Runs in headless Chromium (see browser.test.ts): the wasm engine's raw bindings on the CPU and on
// the browser's WebGPU (SwiftShader there), on one fixture; reports max differences and ids.
import init, * as t5 from "/pkg/t5_web.js";

async function bytes(path) {
  const r = await fetch(path);
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

/** A ForwardResult's fields, its tensors moved out (takeLogits etc.), the struct freed. */
function take(r) {
  try {
    return { logits: r.takeLogits(), encoder_last_hidden_state: r.takeEncoderLastHiddenState(), decoder_last_hidden_state: r.takeDecoderLastHiddenState(), loss: r.loss };
  } finally {
    r.free();
  }
}

function maxDiff(a, b) {
  if (a.length !== b.length) return Infinity;
  let w = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= w)) w = d;
  }
  return w;
}

async function builder(dir) {
  const cfg = new TextDecoder().decode(await bytes(`/test/fixtures/${dir}/config.json`));
  const gen = new TextDecoder().decode(await bytes(`/test/fixtures/${dir}/generation_config.json`));
  const b = new t5.WasmModelBuilder(cfg, gen);
  b.addShard("model.safetensors", await bytes(`/test/fixtures/${dir}/model.safetensors`));
  return b;
}

// the engine's GpuGenerateStats (an exported struct with getters) as a plain object for the test runner
function plainStats(s) {
  const keys = ["prefill_dispatches", "dispatches_per_step", "fused_per_step", "submits_per_step", "read_back_per_step", "top_p_fallbacks", "top_p_decided", "bind_groups_per_step", "bind_groups_created", "steps"];
  return Object.fromEntries(keys.map((k) => [k, s[k]]));
}

export async function run(name) {
  await init();
  const o = JSON.parse(new TextDecoder().decode(await bytes(`/test/fixtures/oracle/${name}.json`)));
  const batch = o.input_ids.length, seq = o.input_ids[0].length;
  const ids = Uint32Array.from(o.input_ids.flat());
  const mask = Uint32Array.from(o.attention_mask.flat());
  const dec = Uint32Array.from(o.decoder_input_ids.flat());
  const labels = Int32Array.from(o.labels.flat());
  const cb = await builder(name);
  const cpu = cb.build("seq2seq-lm");
  cb.free();
  const gpuDev = await t5.requestGpu();
  const info = JSON.parse(gpuDev.info());
  const gb = await builder(name);
  const gpu = gb.buildGpu(gpuDev, "seq2seq-lm");
  gb.free();
  gpuDev.free();
  const c = take(cpu.forward(ids, mask, batch, seq, dec, labels, undefined));
  const g = take(await gpu.forward(ids, mask, batch, seq, dec, labels, undefined));
  const opts = { max_new_tokens: o.greedy.max_new_tokens };
  const cg = cpu.generate(ids, mask, batch, seq, opts);
  const gg = await gpu.generate(ids, mask, batch, seq, opts);
  const rows = (r) => Array.from({ length: r.batch }, (_, i) => Array.from(r.sequences.subarray(i * r.length, (i + 1) * r.length)));
  // beam search, top-k sampling and the processors that touch a few ids: each step's top k (and the touched ids'
  // values) comes back from the GPU, not the logits
  const searches = {};
  for (const [what, kw] of [
    ["beam", { num_beams: 3, num_return_sequences: 2, max_new_tokens: 8 }],
    ["sample", { do_sample: true, top_k: 20, seed: 3, max_new_tokens: 8 }],
    ["processors", { repetition_penalty: 1.3, no_repeat_ngram_size: 2, bad_words_ids: [[7555], [6636, 8242]], max_new_tokens: 8 }],
  ]) {
    const c2 = cpu.generate(ids, mask, batch, seq, kw);
    const g2 = await gpu.generate(ids, mask, batch, seq, kw);
    searches[what] = {
      cpu_ids: rows(c2),
      gpu_ids: rows(g2),
      scores: c2.sequences_scores ? maxDiff(g2.sequences_scores, c2.sequences_scores) : 0,
      read_back_per_step: g2.stats.read_back_per_step,
      logits_bytes: g2.batch * (kw.num_beams ?? 1) / (kw.num_return_sequences ?? 1) * c.logits.length / (batch * o.decoder_input_ids[0].length) * 4,
    };
  }
  const result = {
    searches,
    adapter: info.adapter,
    logits: maxDiff(g.logits, c.logits),
    encoder: maxDiff(g.encoder_last_hidden_state, c.encoder_last_hidden_state),
    decoder: maxDiff(g.decoder_last_hidden_state, c.decoder_last_hidden_state),
    loss: Math.abs(g.loss - c.loss),
    cpu_ids: rows(cg),
    gpu_ids: rows(gg),
    oracle_ids: o.greedy.sequences,
    stats: plainStats(gg.stats),
  };
  gpu.dispose();
  result.live_after_dispose = gpu.liveBuffers;
  gpu.free();
  cpu.free();
  return result;
}

// dtype fp16 on the browser's WebGPU: the overflow fixture (scripts/make_fp16_fixtures.py) against
// transformers' float16 logits with the fixture's stated tolerance, and its greedy ids
export async function runFp16() {
  await init();
  const name = "tiny-t5-fp16-overflow";
  const o = JSON.parse(new TextDecoder().decode(await bytes(`/test/fixtures/oracle/${name}.json`)));
  const st = await bytes(`/test/fixtures/oracle/${name}.safetensors`);
  const hlen = Number(new DataView(st.buffer, st.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(st.subarray(8, 8 + hlen)));
  const [b0, b1] = header.logits.data_offsets;
  const want = new Float32Array(st.slice(8 + hlen + b0, 8 + hlen + b1).buffer);
  const batch = o.input_ids.length, seq = o.input_ids[0].length;
  const ids = Uint32Array.from(o.input_ids.flat());
  const mask = Uint32Array.from(o.attention_mask.flat());
  const dec = Uint32Array.from(o.decoder_input_ids.flat());
  const gpuDev = await t5.requestGpu();
  const info = JSON.parse(gpuDev.info());
  const gb = await builder(name);
  gb.setDtype("fp16");
  const gpu = gb.buildGpu(gpuDev, "seq2seq-lm");
  gb.free();
  gpuDev.free();
  const g = take(await gpu.forward(ids, mask, batch, seq, dec, undefined, undefined));
  let worst = 0, over = 0, nonfinite = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(g.logits[i] - want[i]);
    if (!Number.isFinite(g.logits[i])) nonfinite++;
    if (!(d <= o.tolerance.atol + o.tolerance.rtol * Math.abs(want[i]))) over++;
    worst = Math.max(worst, d);
  }
  const gg = await gpu.generate(ids, mask, batch, seq, { max_new_tokens: o.greedy.max_new_tokens });
  const rows = (r) => Array.from({ length: r.batch }, (_, i) => Array.from(r.sequences.subarray(i * r.length, (i + 1) * r.length)));
  const result = { adapter: info.adapter, shader_f16: info.shader_f16, n: g.logits.length, want_n: want.length, worst, over, nonfinite, ids: rows(gg), oracle_ids: o.greedy.sequences };
  gpu.dispose();
  gpu.free();
  return result;
}

// dtype q8 / q4 on the browser's WebGPU (packed weights dequantized in the kernels) against the CPU
// engine with the same dtype, on tiny-t5-q128 (q4: torchao groups of 128)
export async function runQuant(dtype) {
  await init();
  const name = "tiny-t5-q128";
  const o = JSON.parse(new TextDecoder().decode(await bytes(`/test/fixtures/quant/${name}.json`)));
  const batch = o.input_ids.length, seq = o.input_ids[0].length;
  const ids = Uint32Array.from(o.input_ids.flat());
  const mask = Uint32Array.from(o.attention_mask.flat());
  const dec = Uint32Array.from(o.decoder_input_ids.flat());
  const cb = await builder(name);
  cb.setDtype(dtype);
  const cpu = cb.build("seq2seq-lm");
  cb.free();
  const gpuDev = await t5.requestGpu();
  const info = JSON.parse(gpuDev.info());
  const gb = await builder(name);
  gb.setDtype(dtype);
  const gpu = gb.buildGpu(gpuDev, "seq2seq-lm");
  gb.free();
  gpuDev.free();
  const c = take(cpu.forward(ids, mask, batch, seq, dec, undefined, undefined));
  const g = take(await gpu.forward(ids, mask, batch, seq, dec, undefined, undefined));
  const opts = { max_new_tokens: 8 };
  const cg = cpu.generate(ids, mask, batch, seq, opts);
  const gg = await gpu.generate(ids, mask, batch, seq, opts);
  const rows = (r) => Array.from({ length: r.batch }, (_, i) => Array.from(r.sequences.subarray(i * r.length, (i + 1) * r.length)));
  const result = {
    adapter: info.adapter,
    logits: maxDiff(g.logits, c.logits),
    encoder: maxDiff(g.encoder_last_hidden_state, c.encoder_last_hidden_state),
    cpu_ids: rows(cg),
    gpu_ids: rows(gg),
    stats: plainStats(gg.stats),
  };
  gpu.dispose();
  result.live_after_dispose = gpu.liveBuffers;
  gpu.free();
  cpu.free();
  return result;
}
