//! Native GPU benchmark (wgpu over Vulkan, no Node): encoder and greedy-decode speed of one checkpoint
//! on the GPU (fp32; fp16 = transformers' float16 numerics, with the weights packed two per u32 and, where the
//! adapter has `shader-f16`, through the `shader-f16` kernels; q8 / q4 = packed weights dequantized in the kernels)
//! against the native CPU backend (fp32, q8, q4), with resident weight bytes,
//! dispatches (and element-wise ops fused) per decode step and bind groups created. Reported, not asserted.
//!
//!   cargo run --release -p t5-bench -- make-random ../shared/models/t5-small/config.json bench/.cache/t5-small-random
//!   cargo run --release -p t5-gpu --example bench_dtypes -- bench/.cache/t5-small-random [runs] [--no-cpu] [--md LABEL]
//!
//! `--only fp32,fp16,q8,q4`: those GPU cases alone. `--stream`: read model.safetensors in 64 MiB pieces through
//! t5-core's `ShardStream`, each linear weight converted to the one quantized form `--only` names as it arrives
//! (how a checkpoint larger than memory loads: bench/gpu-device.sh's t5-v1_1-xl in q4, 11.4 GB in f32).
//!
//! Greedy decode is timed at batch 1 and batch 8 (8 rows of 32 tokens). `--md LABEL` prints only the rows of
//! bench/gpu-results.md's table: `| LABEL | backend | encoder 8×128 (tok/s) | decode b1 | decode b8 (tok/s) | weights (MiB) |`.
//!
//! On a machine without a GPU wgpu picks a software Vulkan driver (lavapipe / SwiftShader): those
//! figures are not GPU figures (the adapter line says which it is).

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use t5_core::backend::Backend;
use t5_core::generate::greedy;
use t5_core::hub::load_dir;
use t5_core::model::Half;
use t5_core::formats::stream::ShardStream;
use t5_core::formats::WeightStore;
use t5_core::{Batch, Cpu, GenerationConfig, ModelKind, T5Config, WeightDtype, T5};
use t5_gpu::generate::{encode_async, greedy_async, GenerateStats};
use t5_gpu::{Gpu, GpuOptions};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn ids(n: usize, mul: usize) -> Vec<u32> {
    (0..n).map(|i| 100 + ((i * mul) % 3000) as u32).collect()
}

struct Row {
    name: String,
    weight_bytes: usize,
    load_s: f64,
    enc32_ms: f64,
    enc8x128_tok_s: f64,
    gen32_ms: f64,
    decode_tok_s: f64,
    decode8_tok_s: f64,
    stats: Option<GenerateStats>,
}

fn gen_config(base: &GenerationConfig, n: usize) -> GenerationConfig {
    let mut g = base.clone();
    g.max_new_tokens = Some(n);
    g.min_new_tokens = Some(n);
    g
}

fn time<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let t = Instant::now();
    let r = f();
    (t.elapsed().as_secs_f64() * 1e3, r)
}

fn bench_gpu(name: &str, m: &T5<Gpu>, load_s: f64, base: &GenerationConfig, runs: usize) -> Row {
    let in32 = Batch::from_rows(&[ids(32, 37)]).unwrap();
    let in8: Vec<Vec<u32>> = (0..8).map(|r| ids(128, 53 + r)).collect();
    let in8 = Batch::from_rows(&in8).unwrap();
    pollster::block_on(encode_async(m, &in32)).unwrap();
    pollster::block_on(encode_async(m, &in8)).unwrap();
    let enc32 = median((0..runs).map(|_| time(|| pollster::block_on(encode_async(m, &in32)).unwrap()).0).collect());
    let enc8 = median((0..runs).map(|_| time(|| pollster::block_on(encode_async(m, &in8)).unwrap()).0).collect());
    let (g32, g1) = (gen_config(base, 32), gen_config(base, 1));
    pollster::block_on(greedy_async(m, &in32, &g32, |_| true)).unwrap();
    let mut stats = None;
    let gen = median((0..runs).map(|_| {
        let (t, (_, s)) = time(|| pollster::block_on(greedy_async(m, &in32, &g32, |_| true)).unwrap());
        stats = Some(s);
        t
    }).collect());
    let one = median((0..runs).map(|_| time(|| pollster::block_on(greedy_async(m, &in32, &g1, |_| true)).unwrap()).0).collect());
    let b8 = batch8();
    pollster::block_on(greedy_async(m, &b8, &g32, |_| true)).unwrap();
    let gen8 = median((0..runs).map(|_| time(|| pollster::block_on(greedy_async(m, &b8, &g32, |_| true)).unwrap()).0).collect());
    let one8 = median((0..runs).map(|_| time(|| pollster::block_on(greedy_async(m, &b8, &g1, |_| true)).unwrap()).0).collect());
    Row {
        name: name.into(),
        weight_bytes: m.weight_bytes(),
        load_s,
        enc32_ms: enc32,
        enc8x128_tok_s: 8.0 * 128.0 / (enc8 / 1e3),
        gen32_ms: gen,
        decode_tok_s: 31.0 / ((gen - one) / 1e3),
        decode8_tok_s: 8.0 * 31.0 / ((gen8 - one8) / 1e3),
        stats,
    }
}

/// 8 rows of 32 tokens (the batch-8 decode input).
fn batch8() -> Batch {
    let rows: Vec<Vec<u32>> = (0..8).map(|r| ids(32, 41 + r)).collect();
    Batch::from_rows(&rows).unwrap()
}

fn bench_cpu(name: &str, m: &T5<Cpu>, load_s: f64, base: &GenerationConfig, runs: usize) -> Row {
    let in32 = Batch::from_rows(&[ids(32, 37)]).unwrap();
    let in8: Vec<Vec<u32>> = (0..8).map(|r| ids(128, 53 + r)).collect();
    let in8 = Batch::from_rows(&in8).unwrap();
    let enc = |b: &Batch| m.backend().download(&m.encode(b).unwrap());
    let enc32 = median((0..runs).map(|_| time(|| enc(&in32)).0).collect());
    let enc8 = median((0..runs.min(3)).map(|_| time(|| enc(&in8)).0).collect());
    let (g32, g1) = (gen_config(base, 32), gen_config(base, 1));
    let gen = median((0..runs).map(|_| time(|| greedy(m, &in32, &g32, |_| true).unwrap()).0).collect());
    let one = median((0..runs).map(|_| time(|| greedy(m, &in32, &g1, |_| true).unwrap()).0).collect());
    let b8 = batch8();
    let gen8 = median((0..runs.min(3)).map(|_| time(|| greedy(m, &b8, &g32, |_| true).unwrap()).0).collect());
    let one8 = median((0..runs.min(3)).map(|_| time(|| greedy(m, &b8, &g1, |_| true).unwrap()).0).collect());
    Row {
        name: name.into(),
        weight_bytes: m.weight_bytes(),
        load_s,
        enc32_ms: enc32,
        enc8x128_tok_s: 8.0 * 128.0 / (enc8 / 1e3),
        gen32_ms: gen,
        decode_tok_s: 31.0 / ((gen - one) / 1e3),
        decode8_tok_s: 8.0 * 31.0 / ((gen8 - one8) / 1e3),
        stats: None,
    }
}

/// `dir`'s config and model.safetensors read in pieces through `ShardStream`, the linear weights converted to
/// `dtype` as they arrive: one tensor in f32 at a time beside the store.
fn load_streamed(dir: &Path, dtype: WeightDtype) -> (T5Config, GenerationConfig, WeightStore) {
    let t = Instant::now();
    let config = T5Config::from_json(&std::fs::read_to_string(dir.join("config.json")).expect("config.json")).expect("config.json");
    let gen = GenerationConfig::from_model_config(&config);
    let path = dir.join("model.safetensors");
    let mut f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let size = f.metadata().unwrap().len();
    let mut store = WeightStore::new();
    let mut s = ShardStream::new("model.safetensors", Some(size), dtype, None).with_config_check(&config, true);
    let mut buf = vec![0u8; 64 << 20];
    loop {
        let n = f.read(&mut buf).expect("read model.safetensors");
        if n == 0 {
            break;
        }
        s.push(&mut store, &buf[..n]).expect("stream model.safetensors");
    }
    s.finish(&mut store).expect("stream model.safetensors");
    eprintln!("[bench] streamed {:.2} GB as {dtype:?} in {:.1} s", size as f64 / 1e9, t.elapsed().as_secs_f64());
    (config, gen, store)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1) else {
        eprintln!("usage: cargo run --release -p t5-gpu --example bench -- MODEL_DIR [runs] [--no-cpu]");
        std::process::exit(2);
    };
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let with_cpu = !args.iter().any(|a| a == "--no-cpu");
    let md = args.iter().position(|a| a == "--md").and_then(|i| args.get(i + 1)).cloned();
    let only: Option<Vec<String>> = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).map(|l| l.split(',').map(str::to_string).collect());
    let wanted = |d: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == d));
    let stream = args.iter().any(|a| a == "--stream");
    let with_cpu = with_cpu && !stream; // the streamed store holds the quantized form only
    let (config, base, store) = if stream {
        let dtype = match only.as_deref() {
            Some([d]) if d == "q8" || d == "q4" => WeightDtype::parse(d).unwrap(),
            _ => {
                eprintln!("--stream needs --only q8 or --only q4 (the form the weights are converted to as they arrive)");
                std::process::exit(2);
            }
        };
        load_streamed(Path::new(dir), dtype)
    } else {
        load_dir(dir).unwrap_or_else(|e| panic!("{dir}: {e}"))
    };
    let gpu = match pollster::block_on(Gpu::new(GpuOptions::default())) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let info = gpu.info().clone();
    // the same adapter without shader-f16: the float16 model's weights packed two per u32, unpacked to f32
    let packed = if info.shader_f16_used { pollster::block_on(Gpu::new(GpuOptions { shader_f16: Some(false), ..Default::default() })).unwrap() } else { gpu.clone() };
    println!(
        "adapter: {} ({}, {}), shader-f16 {} (used: {}), maxStorageBufferBindingSize {} B",
        info.adapter, info.backend, info.device_type, info.shader_f16, info.shader_f16_used, info.max_storage_buffer_binding_size
    );
    println!("model: {dir} (d_model {}, {}+{} layers, vocab {}), batch 1, median of {runs}\n", config.d_model, config.num_layers, config.decoder_layers(), config.vocab_size);
    let mut rows = Vec::new();
    let kind = ModelKind::ConditionalGeneration;
    let mut cases = vec![];
    if wanted("fp32") {
        cases.push(("WebGPU (wgpu) fp32", Half::Off, WeightDtype::F32, gpu.clone()));
    }
    if wanted("fp16") {
        cases.push(("WebGPU (wgpu) fp16, packed (f32 unpack)", Half::Guarded, WeightDtype::F16, packed));
        if info.shader_f16_used {
            cases.push(("WebGPU (wgpu) fp16, shader-f16", Half::Guarded, WeightDtype::F16, gpu.clone()));
        }
    }
    if wanted("q8") {
        cases.push(("WebGPU (wgpu) q8", Half::Off, WeightDtype::Q8, gpu.clone()));
    }
    if wanted("q4") {
        cases.push(("WebGPU (wgpu) q4", Half::Off, WeightDtype::Q4, gpu.clone()));
    }
    for (name, half, dtype, g) in cases {
        let t = Instant::now();
        let m = match dtype {
            WeightDtype::Q8 | WeightDtype::Q4 => T5::load_with_dtype(config.clone(), &store, kind, g.clone(), dtype),
            _ => T5::load_half(config.clone(), &store, kind, g.clone(), half),
        }
        .unwrap();
        let load_s = t.elapsed().as_secs_f64();
        eprintln!("[bench] {name} loaded in {load_s:.2} s");
        let before = g.f16_matmuls();
        rows.push(bench_gpu(name, &m, load_s, &base, runs));
        eprintln!("[bench] {name}: {} shader-f16 matmul dispatches", g.f16_matmuls() - before);
    }
    if with_cpu {
        for (name, dtype) in [("native CPU fp32", WeightDtype::F32), ("native CPU q8", WeightDtype::Q8), ("native CPU q4", WeightDtype::Q4)] {
            let t = Instant::now();
            let m = T5::load_with_dtype(config.clone(), &store, kind, Cpu, dtype).unwrap();
            let load_s = t.elapsed().as_secs_f64();
            rows.push(bench_cpu(name, &m, load_s, &base, runs));
        }
    }
    if let Some(label) = md {
        for r in &rows {
            println!("| {label} | {} | {:.0} | {:.1} | {:.1} | {:.1} |", r.name, r.enc8x128_tok_s, r.decode_tok_s, r.decode8_tok_s, r.weight_bytes as f64 / 1048576.0);
        }
        return;
    }
    println!("| backend | weights (MiB) | load (s) | encoder 32 tok (ms) | encoder 8×128 (tok/s) | generate 32 (ms) | greedy decode (tok/s) | decode batch 8 (tok/s) | dispatches / step (unfused) | bind groups created / step |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let (d, bg) = match &r.stats {
            Some(s) => (format!("{} ({})", s.dispatches_per_step, s.dispatches_per_step + s.fused_per_step), format!("{}", s.bind_groups_per_step)),
            None => ("-".into(), "-".into()),
        };
        println!("| {} | {:.1} | {:.2} | {:.1} | {:.0} | {:.0} | {:.1} | {:.1} | {} | {} |", r.name, r.weight_bytes as f64 / 1048576.0, r.load_s, r.enc32_ms, r.enc8x128_tok_s, r.gen32_ms, r.decode_tok_s, r.decode8_tok_s, d, bg);
    }
    if info.device_type == "Cpu" {
        println!("\nNOTE: the adapter is a software Vulkan driver (CPU emulation): these are not GPU figures.");
    }
}
