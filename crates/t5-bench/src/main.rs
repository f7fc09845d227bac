//! `t5-bench make-random <config.json> <out-dir> [--dtype fp32|bf16] [--shard-mb N]`: a random-weight checkpoint of
//! that shape (t5-small's real config gives t5-small's real cost), written one tensor at a time, in shards of at
//! most N MB (with `model.safetensors.index.json`) when given.
//! `t5-bench run <model-dir> [--json] [--dtype fp32|fp16|bf16|q8|q4] [--runs N] [--warmup N] [--input ids.json] [--threads N (0: all cores, at most 8)] [--light] [--stream]`:
//! resident memory, load time, encoder tokens/s, greedy decode tokens/s and the memory-bandwidth bound, native.
//! `--stream`: the weight files read in pieces through `ShardStream`, converted to the dtype as they arrive.
//! `--light` (for t5-v1_1-xl sizes): encoder 1×128 only (no 8×128, 1×512, summarization), one JSON line.
//! `--input` replaces the synthetic 32-token input with the ids in that JSON array (the JSON then also
//! holds the greedy ids); `--json` also lists every timed run (`*_all`), for medians across processes.
//! `t5-bench quantize <model-dir> <dtype> <out-dir>`: a pre-quantized checkpoint (safetensors).
//! `t5-bench bandwidth [MB]`: single-core read bandwidth (GB/s) over a working set of that size (default 256).
//! `t5-bench attention`: one thread's attention alone (an encoder layer's self-attention over 512 / 128 tokens, a
//! decode step's cross-attention over 512 / 32 positions), best and median ms per call.
//! `t5-bench strategies <model-dir> [--json]`: greedy / beam 4 / sampling × growing / static KV cache (speed, heap).

mod random;
mod strategies;

use std::path::Path;
use random::{make_random, Rng};
use std::time::Instant;
use t5_core::generate::greedy;
use t5_core::hub::load_dir;
use t5_core::dtype::quant::Q4_GROUP;
use t5_core::formats::safetensors::quantize_checkpoint;
use t5_core::WeightDtype;
use t5_core::{Batch, Cpu, ModelKind, T5Config, WeightStore, T5};

/// `VmRSS` and `VmHWM` (peak) of this process in bytes (Linux; 0 elsewhere).
fn rss() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |k: &str| s.lines().find(|l| l.starts_with(k)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 1024;
    (get("VmRSS:"), get("VmHWM:"))
}

/// CPU seconds this process has used (user + system, every thread; /proc/self/stat at 100 ticks a second;
/// 0 elsewhere): beside wall time it shows how much of a core a run got on a shared machine.
fn cpu_s() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // fields after the ")" that ends the command name: utime and stime are the 12th and 13th
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse().ok()).collect();
    f.iter().sum::<f64>() / 100.0
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    extern "C" {
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: glibc's malloc_trim only returns free heap pages to the OS.
    unsafe {
        malloc_trim(0);
    }
}
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

/// Single-core read bandwidth (GB/s) over a working set of `bytes`: the best pass over an f32 array of that
/// size, read as a decode step reads its weights (sequentially, once per pass), by two loops: plain SIMD loads
/// (the hardware prefetcher alone) and the same with software prefetch 2 KiB ahead, as the native matvec
/// kernels do. The size matters: on a machine with a large last-level cache a decode step's 20–40 MB of
/// quantized weights stream at about twice the rate of an fp32 step's 154 MB, so the bound of each
/// configuration is taken at its own step size. Passes repeat until about 2 GB have been read (at least 5).
fn bandwidth(bytes: usize) -> f64 {
    let n = (bytes / 4).max(1 << 16) / 64 * 64;
    let a = vec![1.0f32; n];
    let passes = (2e9 / (n * 4) as f64).ceil().max(5.0) as usize;
    let mut best = f64::MAX;
    let mut sink = 0.0f32;
    for prefetch in [false, true] {
        for i in 0..=passes {
            let t = Instant::now();
            sink += sum(std::hint::black_box(&a), prefetch);
            if i > 0 {
                best = best.min(t.elapsed().as_secs_f64());
            }
        }
    }
    std::hint::black_box(sink);
    (n * 4) as f64 / best / 1e9
}

/// Sum of `a` (a multiple of 64 long) with 16 independent lanes, optionally prefetching 2 KiB ahead.
fn sum(a: &[f32], prefetch: bool) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the feature was detected at run time.
        return unsafe { sum_avx2(a, prefetch) };
    }
    let _ = prefetch;
    let mut acc = [0.0f32; 16];
    for c in a.chunks_exact(16) {
        for l in 0..16 {
            acc[l] += c[l];
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sum_avx2(a: &[f32], prefetch: bool) -> f32 {
    use std::arch::x86_64::*;
    let p = a.as_ptr();
    let (mut s0, mut s1, mut s2, mut s3) = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i < a.len() {
        // one 64-byte line per 16 floats, four lines per iteration
        if prefetch {
            for l in 0..4 {
                _mm_prefetch::<_MM_HINT_T0>((p.add(i + 16 * l) as *const i8).wrapping_add(2048));
            }
        }
        for l in 0..4 {
            let q = p.add(i + 16 * l);
            let (x, y) = (_mm256_loadu_ps(q), _mm256_loadu_ps(q.add(8)));
            match l {
                0 => s0 = _mm256_add_ps(s0, _mm256_add_ps(x, y)),
                1 => s1 = _mm256_add_ps(s1, _mm256_add_ps(x, y)),
                2 => s2 = _mm256_add_ps(s2, _mm256_add_ps(x, y)),
                _ => s3 = _mm256_add_ps(s3, _mm256_add_ps(x, y)),
            }
        }
        i += 64;
    }
    let s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    let mut v = [0.0f32; 8];
    _mm256_storeu_ps(v.as_mut_ptr(), s);
    v.iter().sum()
}

/// Bytes of the weights one greedy decode step reads: per decoder layer self-attention q,k,v,o,
/// cross-attention q,o (cross K/V are computed once per sequence) and the feed-forward; then the
/// LM head (the embedding lookup reads one row). Storage forms as the loader picks them.
fn decode_step_bytes(cfg: &T5Config, dtype: WeightDtype) -> f64 {
    let (d, inner, ff) = (cfg.d_model, cfg.inner_dim(), cfg.d_ff);
    let gated = cfg.feed_forward().map(|f| f.gated).unwrap_or(false);
    let bytes = |name: &str, n: usize, k: usize| -> f64 {
        let per = match dtype.storage_for(name, k) {
            WeightDtype::F32 => 4.0,
            WeightDtype::F16 | WeightDtype::BF16 => 2.0,
            WeightDtype::Q8 => 1.0 + 4.0 / k as f64,
            WeightDtype::Q4 => 0.5 + 8.0 / Q4_GROUP as f64,
        };
        per * (n * k) as f64
    };
    let layer = 4.0 * bytes("q.weight", inner, d) // self-attention q, k, v; cross-attention q
        + 2.0 * bytes("o.weight", d, inner) // self- and cross-attention o
        + bytes("wi.weight", ff, d) * if gated { 2.0 } else { 1.0 }
        + bytes("DenseReluDense.wo.weight", d, ff);
    layer * cfg.decoder_layers() as f64 + bytes("lm_head.weight", cfg.vocab_size, d)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// `t5-bench run` options beyond the dtype: timed runs, untimed warm-up generates, input ids.
struct RunOpts {
    runs: usize,
    warmup: usize,
    input: Option<Vec<u32>>,
    /// CPU threads (0: every core, at most 8)
    threads: usize,
    /// `--light` (a model the size of t5-v1_1-xl): encoder 1×128 instead of 8×128 / 1×512 and no summarization run
    light: bool,
    /// `--stream`: read the weight files in 64 MiB pieces through `ShardStream`, each linear weight converted to
    /// the dtype as it arrives (what the WASM loader does), instead of reading every file whole first
    stream: bool,
}

/// Seconds spent reading the files, pushing them through `ShardStream` (converting / quantizing) and building
/// the model, for `--stream`.
#[derive(Default)]
struct LoadSplit {
    read_s: f64,
    convert_s: f64,
}

/// `dir`'s config and weight files (`model.safetensors` or the shards of its index) read in 64 MiB pieces
/// through `ShardStream`, the linear weights converted to `dtype` as they arrive: one tensor in f32 at a time
/// beside the store.
fn load_streamed(dir: &Path, dtype: WeightDtype, threads: usize, split: &mut LoadSplit) -> (T5Config, t5_core::GenerationConfig, WeightStore) {
    use std::io::Read;
    use t5_core::formats::ShardStream;
    let config = T5Config::from_json(&std::fs::read_to_string(dir.join("config.json")).expect("config.json")).expect("config.json");
    let gen = match std::fs::read_to_string(dir.join("generation_config.json")) {
        Ok(text) => t5_core::GenerationConfig::from_json(&text, &config).expect("generation_config.json"),
        Err(_) => t5_core::GenerationConfig::from_model_config(&config),
    };
    let mut store = WeightStore::new();
    let mut buf = vec![0u8; 64 << 20];
    for (i, file) in t5_core::hub::weight_files(dir).expect("weight files").iter().enumerate() {
        let path = dir.join(file);
        let mut f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let size = f.metadata().unwrap().len();
        let mut s = ShardStream::new(file, Some(size), dtype, None).with_threads(threads);
        if i == 0 {
            s = s.with_config_check(&config, true);
        }
        loop {
            let t = Instant::now();
            let n = f.read(&mut buf).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            split.read_s += t.elapsed().as_secs_f64();
            if n == 0 {
                break;
            }
            let t = Instant::now();
            s.push(&mut store, &buf[..n]).expect("stream");
            split.convert_s += t.elapsed().as_secs_f64();
        }
        s.finish(&mut store).expect("stream");
    }
    (config, gen, store)
}

fn run(dir: &Path, json: bool, dtype: WeightDtype, opts: &RunOpts) {
    let t0 = Instant::now();
    let c0 = cpu_s();
    let mut split = LoadSplit::default();
    let (cfg, mut gen, store) = if opts.stream { load_streamed(dir, dtype, Cpu::with_threads(opts.threads).threads(), &mut split) } else { load_dir(dir).expect("load") };
    let files_s = t0.elapsed().as_secs_f64();
    // a pre-quantized checkpoint (t5-bench quantize) loads as stored: report its dtype
    let note = store.metadata(t5_core::dtype::quant::METADATA_KEY);
    let prequantized = note.is_some();
    let dtype = note
        .and_then(|n| serde_json::from_str::<serde_json::Value>(&n).ok())
        .and_then(|v| v["dtype"].as_str().and_then(|d| WeightDtype::parse(d).ok()))
        .unwrap_or(dtype);
    let cpu = Cpu::with_threads(opts.threads);
    let model = T5::load_with_dtype(cfg.clone(), &store, ModelKind::ConditionalGeneration, cpu, dtype).expect("model");
    drop(store);
    let load_s = t0.elapsed().as_secs_f64();
    let load_cpu_s = cpu_s() - c0;
    trim();
    let (rss_b, peak_b) = rss();
    let fallbacks = model.weight_fallbacks().len();
    let runs = opts.runs;
    // encoder: 32-token input, batch 1; and 8 × 128 tokens
    let ids32: Vec<u32> = opts.input.clone().unwrap_or_else(|| (0..32).map(|i| 100 + (i * 37) % 3000).collect());
    let n_in = ids32.len();
    let in32 = Batch::new(ids32, None, 1, n_in).unwrap();
    let ids8x128: Vec<u32> = (0..8 * 128).map(|i| 100 + (i * 53) % 3000).collect();
    let in8x128 = Batch::new(ids8x128, None, 8, 128).unwrap();
    // the summarization shape: one 512-token input (encoder alone, and 64 forced new tokens)
    let in512 = Batch::new((0..512).map(|i| 100 + (i * 53) % 3000).collect(), None, 1, 512).unwrap();
    let mut enc32 = vec![];
    let mut enc8 = vec![];
    let mut enc512 = vec![];
    for _ in 0..opts.warmup {
        model.encode(&in32).unwrap();
    }
    let in128 = Batch::new((0..128).map(|i| 100 + (i * 53) % 3000).collect(), None, 1, 128).unwrap();
    let mut enc128 = vec![];
    let mut enc128_cpu = 0.0;
    for _ in 0..runs {
        let t = Instant::now();
        model.encode(&in32).unwrap();
        enc32.push(t.elapsed().as_secs_f64());
        if opts.light {
            let (t, c) = (Instant::now(), cpu_s());
            model.encode(&in128).unwrap();
            enc128.push(t.elapsed().as_secs_f64());
            enc128_cpu += cpu_s() - c;
            continue;
        }
        let t = Instant::now();
        model.encode(&in8x128).unwrap();
        enc8.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        model.encode(&in512).unwrap();
        enc512.push(t.elapsed().as_secs_f64());
    }
    // greedy: 32-token input, exactly 64 new tokens (EOS suppressed), as the anchors measure
    let new_tokens = 64;
    gen.max_new_tokens = Some(new_tokens);
    gen.min_new_tokens = Some(new_tokens);
    for _ in 0..opts.warmup {
        greedy(&model, &in32, &gen, |_| true).unwrap();
    }
    let mut gen_t = vec![];
    let mut ids = vec![];
    let gen_c0 = cpu_s();
    for _ in 0..runs {
        let t = Instant::now();
        let out = greedy(&model, &in32, &gen, |_| true).unwrap();
        gen_t.push(t.elapsed().as_secs_f64());
        assert_eq!(out[0].len(), new_tokens + 1);
        ids = out[0].clone();
    }
    let gen_cpu_s = (cpu_s() - gen_c0) / runs as f64;
    let mut summarize = vec![];
    for _ in 0..if opts.light { 0 } else { runs } {
        let t = Instant::now();
        let out = greedy(&model, &in512, &gen, |_| true).unwrap();
        summarize.push(t.elapsed().as_secs_f64());
        assert_eq!(out[0].len(), new_tokens + 1);
    }
    let ms = |v: &[f64]| v.iter().map(|x| x * 1e3).collect::<Vec<f64>>();
    let (enc32_all, gen_all, enc8_all, enc512_all, summarize_all) = (ms(&enc32), ms(&gen_t), ms(&enc8), ms(&enc512), ms(&summarize));
    if opts.light {
        // one JSON line: load, memory, encoder 1×128, decode
        let (e32, e128, g) = (median(enc32), median(enc128.clone()), median(gen_t));
        let step_bytes = decode_step_bytes(&cfg, dtype);
        println!(
            "{}",
            serde_json::json!({"runtime": "native", "light": true, "threads": model.backend().threads(), "dtype": dtype.name(), "load_s": load_s, "stream": opts.stream,
                "load_read_s": split.read_s, "load_convert_s": split.convert_s, "load_files_s": files_s, "load_build_s": load_s - files_s,
                "rss_mb": rss_b as f64 / 1e6, "peak_rss_mb": peak_b as f64 / 1e6, "weights_mb": model.weight_bytes() as f64 / 1e6,
                "prefill_layout_mb": model.prefill_layout_bytes() as f64 / 1e6, "fallbacks": fallbacks, "step_mb": step_bytes / 1e6,
                "encoder_32_ms": e32 * 1e3, "encoder_1x128_ms": e128 * 1e3, "encoder_1x128_tok_s": 128.0 / e128, "generate_64_ms": g * 1e3,
                "decode_tok_s": new_tokens as f64 / (g - e32), "runs": runs,
                "load_cpu_s": load_cpu_s, "encoder_1x128_cpu_s": enc128_cpu / runs as f64, "generate_64_cpu_s": gen_cpu_s, "encoder_1x128_ms_all": ms(&enc128), "generate_64_ms_all": gen_all})
        );
        return;
    }
    let (e32, e8, g, e512, sm) = (median(enc32), median(enc8), median(gen_t), median(enc512), median(summarize));
    let decode_tps = new_tokens as f64 / (g - e32);
    let step_bytes = decode_step_bytes(&cfg, dtype);
    let bw = bandwidth(step_bytes as usize);
    let bound = bw * 1e9 / step_bytes;
    if json {
        println!(
            "{}",
            serde_json::json!({"runtime": "native", "threads": model.backend().threads(), "dtype": dtype.name(), "prequantized": prequantized, "load_s": load_s, "encoder_32_ms": e32 * 1e3, "encoder_8x128_tok_s": 1024.0 / e8,
                "generate_64_ms": g * 1e3, "decode_tok_s": decode_tps, "rss_mb": rss_b as f64 / 1e6, "peak_rss_mb": peak_b as f64 / 1e6,
                "weights_mb": model.weight_bytes() as f64 / 1e6, "fallbacks": fallbacks, "step_mb": step_bytes / 1e6,
                "bandwidth_gbs": bw, "bw_at_step": true, "bound_tok_s": bound, "runs": runs, "warmup": opts.warmup, "input_tokens": n_in,
                "encoder_32_ms_all": enc32_all, "generate_64_ms_all": gen_all,
                "encoder_1x512_ms": e512 * 1e3, "summarize_ms": sm * 1e3, "encoder_8x128_ms_all": enc8_all, "encoder_1x512_ms_all": enc512_all, "summarize_ms_all": summarize_all, "ids": if opts.input.is_some() { serde_json::json!(ids) } else { serde_json::Value::Null }})
        );
    } else {
        println!("native {}: load {load_s:.2} s, RSS {:.1} MB (peak {:.1}), weights {:.1} MB, encoder 32 tok {:.2} ms, encoder 8x128 {:.0} tok/s, encoder 1x512 {:.1} ms, summarize (512 in, 64 new) {:.0} ms, generate 64 {:.1} ms, decode {decode_tps:.1} tok/s; {:.1} MB/step at {bw:.1} GB/s -> bound {bound:.0} tok/s",
            dtype.name(), rss_b as f64 / 1e6, peak_b as f64 / 1e6, model.weight_bytes() as f64 / 1e6, e32 * 1e3, 1024.0 / e8, e512 * 1e3, sm * 1e3, g * 1e3, step_bytes / 1e6);
    }
}

/// Quantized vs unquantized on a trained checkpoint with `heldout.json` (models/t5-numbers): top-1
/// agreement and mean KL(fp32 ‖ dtype) of the next-token distributions, teacher-forced on
/// transformers' greedy outputs stored there (`output_ids`), and greedy exact match with those outputs.
fn agreement(dir: &Path, count: usize) {
    let text = std::fs::read_to_string(dir.join("heldout.json")).expect("heldout.json");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ids = |x: &serde_json::Value| x.as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect::<Vec<u32>>();
    let ex: Vec<(Vec<u32>, Vec<u32>)> = v["examples"].as_array().unwrap().iter().take(count).map(|e| (ids(&e["input_ids"]), ids(&e["output_ids"]))).collect();
    let (cfg, mut gen, store) = load_dir(dir).expect("load");
    gen.max_new_tokens = Some(32);
    let base = T5::load(cfg.clone(), &store, ModelKind::ConditionalGeneration, Cpu).unwrap();
    let softmax = |row: &[f32]| -> Vec<f64> {
        let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let e: Vec<f64> = row.iter().map(|&x| (x as f64 - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.into_iter().map(|x| x / s).collect()
    };
    println!("{} examples of {}: teacher-forced on transformers' greedy output_ids; exact match = same greedy ids", ex.len(), dir.display());
    println!("| dtype | weights MB | fallbacks | top-1 agreement | mean KL(fp32 ‖ dtype) | greedy exact match | fp32 exact match |");
    println!("|---|---|---|---|---|---|---|");
    for dt in [WeightDtype::F32, WeightDtype::BF16, WeightDtype::F16, WeightDtype::Q8, WeightDtype::Q4] {
        let m = T5::load_with_dtype(cfg.clone(), &store, ModelKind::ConditionalGeneration, Cpu, dt).unwrap();
        let (mut agree, mut kl, mut pos, mut exact, mut exact_base) = (0usize, 0.0f64, 0usize, 0usize, 0usize);
        for (inp, out) in &ex {
            let b = Batch::new(inp.clone(), None, 1, inp.len()).unwrap();
            let mut dec = vec![0u32];
            dec.extend_from_slice(&out[..out.len() - 1]);
            let a = base.forward(&b, Some(&dec), None, None).unwrap().logits.unwrap();
            let q = m.forward(&b, Some(&dec), None, None).unwrap().logits.unwrap();
            for r in 0..a.rows() {
                let (pa, pq) = (softmax(a.row(r)), softmax(q.row(r)));
                let am = |p: &[f64]| p.iter().enumerate().fold(0, |bi, (i, &x)| if x > p[bi] { i } else { bi });
                agree += (am(&pa) == am(&pq)) as usize;
                kl += pa.iter().zip(&pq).map(|(&x, &y)| if x > 0.0 { x * (x.ln() - y.max(1e-300).ln()) } else { 0.0 }).sum::<f64>();
                pos += 1;
            }
            let want: Vec<u32> = std::iter::once(0).chain(out.iter().cloned()).collect();
            exact += (greedy(&m, &b, &gen, |_| true).unwrap()[0] == want) as usize;
            exact_base += (greedy(&base, &b, &gen, |_| true).unwrap()[0] == want) as usize;
        }
        println!("| {} | {:.2} | {} | {:.4} | {:.2e} | {:.3} | {:.3} |", dt.name(), m.weight_bytes() as f64 / 1e6, m.weight_fallbacks().len(), agree as f64 / pos as f64, kl / pos as f64, exact as f64 / ex.len() as f64, exact_base as f64 / ex.len() as f64);
    }
}

/// Fused matrix × vector kernels alone, per storage form: time per call and weight bytes streamed per second.
fn kernels() {
    use t5_core::backend::cpu::qkernels;
    use t5_core::{QWeight, Tensor};
    let mut rng = Rng(7);
    for (n, k) in [(512, 512), (2048, 512), (512, 2048), (32128, 512)] {
        let w: Vec<f32> = (0..n * k).map(|_| rng.normal() * 0.05).collect();
        let x: Vec<f32> = (0..k).map(|_| rng.normal()).collect();
        let mut out = vec![0.0f32; n];
        for dt in [WeightDtype::F32, WeightDtype::F16, WeightDtype::BF16, WeightDtype::Q8, WeightDtype::Q4] {
            let q = QWeight::from_tensor(Tensor::new(vec![n, k], w.clone()), dt);
            let reps = (200_000_000 / (n * k)).max(3);
            let mut best = f64::MAX;
            for _ in 0..3 {
                let t = Instant::now();
                for _ in 0..reps {
                    qkernels::linear(1, &x, &q, &mut out);
                    std::hint::black_box(&out);
                }
                best = best.min(t.elapsed().as_secs_f64() / reps as f64);
            }
            println!("{n:>6}x{k:<5} {:>5}: {:8.1} us  {:6.1} GB/s of weights  {:6.1} GMAC/s", dt.name(), best * 1e6, q.bytes() as f64 / best / 1e9, (n * k) as f64 / best / 1e9);
        }
    }
}

/// Attention alone, one thread, t5-small's heads (8 × 64): an encoder layer's self-attention (position bias, key
/// padding) and a decode step's cross-attention (one query, no bias); `bench/wasm-kernels/attention.mjs` runs the
/// same cases in wasm.
fn attention() {
    use t5_core::backend::cpu::attention::attention_host;
    use t5_core::backend::{AttentionMask, AttentionShape};
    use t5_core::Tensor;
    let mut rng = Rng(11);
    let (heads, d) = (8, 64);
    let inner = heads * d;
    for (name, q_len, kv_len, with_bias) in [("self 512x512", 512, 512, true), ("self 128x128", 128, 128, true), ("cross 1x512", 1, 512, false), ("cross 1x32", 1, 32, false)] {
        let mut t = |len: usize| Tensor::new(vec![1, len / inner, inner], (0..len).map(|_| rng.normal()).collect());
        let (q, k, v) = (t(q_len * inner), t(kv_len * inner), t(kv_len * inner));
        let bias = with_bias.then(|| Tensor::new(vec![heads, q_len + kv_len - 1], (0..heads * (q_len + kv_len - 1)).map(|_| rng.normal()).collect()));
        let key_mask = vec![1u32; kv_len];
        let mask = AttentionMask { key_mask: Some(&key_mask), causal_offset: None };
        let shape = AttentionShape { batch: 1, heads, head_dim: d, q_len, kv_len, half: false };
        let reps = (20_000_000 / (q_len * kv_len)).max(3);
        let mut times = vec![];
        for _ in 0..7 {
            let start = Instant::now();
            for _ in 0..reps {
                std::hint::black_box(attention_host(&q, &k, &v, bias.as_ref(), mask, shape, None));
            }
            times.push(start.elapsed().as_secs_f64() / reps as f64);
        }
        times.sort_by(f64::total_cmp);
        println!("{name:<14} best {:8.3} ms  med {:8.3} ms", times[0] * 1e3, times[3] * 1e3);
    }
}

/// Write `<out>/model.safetensors` quantized to `dtype` (plus config.json / generation_config.json).
fn quantize(dir: &Path, dtype: WeightDtype, out: &Path) {
    let (_, _, store): (_, _, WeightStore) = load_dir(dir).expect("load");
    let (bytes, fallbacks) = quantize_checkpoint(&store, dtype).expect("quantize");
    std::fs::create_dir_all(out).unwrap();
    std::fs::write(out.join("model.safetensors"), &bytes).unwrap();
    for f in ["config.json", "generation_config.json"] {
        if dir.join(f).exists() {
            std::fs::copy(dir.join(f), out.join(f)).unwrap();
        }
    }
    for (n, d) in &fallbacks {
        eprintln!("fallback: {n} stored as {}", d.name());
    }
    eprintln!("wrote {} ({:.1} MB)", out.join("model.safetensors").display(), bytes.len() as f64 / 1e6);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(|s| s.as_str()) {
        Some("make-random") if args.len() >= 4 => {
            let flag = |f: &str| args.iter().position(|a| a == f).and_then(|i| args.get(i + 1));
            let bf16 = flag("--dtype").map(|d| d == "bf16").unwrap_or(false);
            let shard_mb = flag("--shard-mb").map(|v| v.parse().expect("--shard-mb")).unwrap_or(u64::MAX / 1_000_000);
            make_random(Path::new(&args[2]), Path::new(&args[3]), bf16, shard_mb)
        }
        Some("run") if args.len() >= 3 => {
            let dtype = args.iter().position(|a| a == "--dtype").and_then(|i| args.get(i + 1)).map(|d| WeightDtype::parse(d).expect("dtype")).unwrap_or_default();
            let flag = |f: &str| args.iter().position(|a| a == f).and_then(|i| args.get(i + 1));
            let count = |f: &str, default: usize| flag(f).map(|n| n.parse::<usize>().expect(f)).unwrap_or(default);
            let input = flag("--input").map(|p| {
                let text = std::fs::read_to_string(p).expect("read --input");
                serde_json::from_str::<Vec<u32>>(&text).expect("--input: a JSON array of token ids")
            });
            let opts = RunOpts { runs: count("--runs", 5).max(1), warmup: count("--warmup", 0), input, threads: count("--threads", 0), light: args.iter().any(|a| a == "--light"), stream: args.iter().any(|a| a == "--stream") };
            run(Path::new(&args[2]), args.iter().any(|a| a == "--json"), dtype, &opts)
        }
        Some("quantize") if args.len() == 5 => quantize(Path::new(&args[2]), WeightDtype::parse(&args[3]).expect("dtype"), Path::new(&args[4])),
        Some("bandwidth") => {
            let mb = args.get(2).and_then(|m| m.parse::<f64>().ok()).unwrap_or(256.0);
            println!("{:.1}", bandwidth((mb * 1e6) as usize))
        }
        Some("kernels") => kernels(),
        Some("attention") => attention(),
        Some("agreement") if args.len() >= 3 => agreement(Path::new(&args[2]), args.get(3).and_then(|n| n.parse().ok()).unwrap_or(100)),
        Some("strategies") if args.len() >= 3 => strategies::run(Path::new(&args[2]), args.iter().any(|a| a == "--json")),
        _ => {
            eprintln!("usage: t5-bench make-random <config.json> <out-dir> [--dtype fp32|bf16] [--shard-mb N] | t5-bench run <model-dir> [--json] [--dtype D] [--runs N] [--warmup N] [--input ids.json] [--threads N (0: all cores, at most 8)] | t5-bench quantize <model-dir> <dtype> <out-dir> | t5-bench bandwidth [MB] | t5-bench kernels | t5-bench attention");
            std::process::exit(2);
        }
    }
}
