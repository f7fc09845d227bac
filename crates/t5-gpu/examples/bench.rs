//! Native GPU benchmark: the same checkpoint through wgpu (Vulkan) and through the CPU backend, in
//! one run: load time, encoder latency / throughput and greedy decode tokens/s, with the GPU's
//! dispatches and command buffers per decode step. Reported, never asserted.
//!
//!   cargo run --release -p t5-gpu --example bench -- <model dir> [--runs 3] [--tokens 64] [--batch 1,8] [--no-cpu]
//!
//! On a machine without a GPU the adapter is a software Vulkan driver (lavapipe / SwiftShader):
//! those figures measure the emulation, not a GPU. `bench/gpu-device.sh` runs this on a lent GPU.

use std::time::Instant;

use t5_core::backend::{AttentionMask, AttentionShape, Backend};
use t5_core::config::Activation;
use t5_core::Tensor;
use t5_core::generate::greedy;
use t5_core::hub::load_dir;
use t5_core::{Batch, Cpu, GenerationConfig, ModelKind, T5};
use t5_gpu::generate::{encode_async, greedy_async};
use t5_gpu::{Gpu, GpuOptions};

struct Args {
    dir: String,
    runs: usize,
    tokens: usize,
    batches: Vec<usize>,
    cpu: bool,
    ops: bool,
}

fn args() -> Args {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str| a.iter().position(|x| x == k).and_then(|i| a.get(i + 1)).cloned();
    Args {
        dir: a.first().cloned().expect("usage: bench <model dir> [--runs N] [--tokens N] [--batch 1,8] [--no-cpu]"),
        runs: get("--runs").and_then(|v| v.parse().ok()).unwrap_or(3),
        tokens: get("--tokens").and_then(|v| v.parse().ok()).unwrap_or(64),
        batches: get("--batch").map(|v| v.split(',').map(|x| x.parse().expect("--batch")).collect()).unwrap_or(vec![1, 8]),
        cpu: !a.iter().any(|x| x == "--no-cpu"),
        ops: a.iter().any(|x| x == "--ops"),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// A batch of `rows` × `seq` ids spread over the vocabulary (no padding).
fn batch(rows: usize, seq: usize, vocab: usize) -> Batch {
    let ids: Vec<u32> = (0..rows * seq).map(|i| (3 + (i * 7919) % (vocab - 200)) as u32).collect();
    Batch::new(ids, None, rows, seq).unwrap()
}

/// Decode timing from the step callback: tokens/s over steps 2..n (the first step holds the
/// encoder and the cross-attention K/V projections).
struct Clock {
    marks: Vec<Instant>,
}

impl Clock {
    fn tok_s(&self, rows: usize) -> f64 {
        let n = self.marks.len();
        if n < 3 {
            return f64::NAN;
        }
        let secs = (self.marks[n - 1] - self.marks[0]).as_secs_f64();
        (n - 1) as f64 * rows as f64 / secs
    }
}

fn main() {
    let a = args();
    let (config, gen0, store) = load_dir(&a.dir).expect("load checkpoint");
    let vocab = config.vocab_size;
    let mut gen: GenerationConfig = gen0;
    gen.max_new_tokens = Some(a.tokens);
    gen.min_new_tokens = Some(a.tokens);
    gen.max_length = None;
    println!("model: {} (d_model {}, {} + {} layers, vocab {})", a.dir, config.d_model, config.num_layers, config.decoder_layers(), vocab);

    // ---- GPU ----
    let t = Instant::now();
    let g = pollster::block_on(Gpu::new(GpuOptions::default())).expect("WebGPU adapter");
    println!("adapter: {:?}", g.info());
    let device_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let gpu = T5::load(config.clone(), &store, ModelKind::ConditionalGeneration, g).expect("load on GPU");
    // first use flushes the uploads
    pollster::block_on(encode_async(&gpu, &batch(1, 8, vocab))).expect("warm-up");
    let load_gpu = t.elapsed().as_secs_f64();
    println!("gpu: device {device_s:.2} s, load + first encode {load_gpu:.2} s");

    if a.ops {
        ops(gpu.backend(), config.d_model, config.d_ff, config.num_heads, config.d_kv);
        breakdown(&gpu, vocab);
        chain(gpu.backend(), config.d_model, config.d_ff, config.num_heads, config.d_kv);
        // the same encoder calls on the barrier-free kernels (one thread per output)
        let soft = pollster::block_on(Gpu::new(GpuOptions { software_kernels: Some(true), ..Default::default() })).expect("adapter");
        let soft = T5::load(config.clone(), &store, ModelKind::ConditionalGeneration, soft).expect("load on GPU");
        println!("\nwith software_kernels (matmul_thread / matvec_thread):");
        breakdown(&soft, vocab);
    }
    let mut rows_out: Vec<(String, String, String)> = Vec::new();
    let enc_gpu = |rows: usize, seq: usize| {
        let b = batch(rows, seq, vocab);
        pollster::block_on(encode_async(&gpu, &b)).unwrap();
        median((0..a.runs).map(|_| {
            let t = Instant::now();
            pollster::block_on(encode_async(&gpu, &b)).unwrap();
            t.elapsed().as_secs_f64()
        }).collect())
    };
    let g_enc32 = enc_gpu(1, 32) * 1e3;
    let g_enc_big = 8.0 * 128.0 / enc_gpu(8, 128);
    let mut g_dec = Vec::new();
    let mut stats_line = String::new();
    for &rows in &a.batches {
        let b = batch(rows, 16, vocab);
        let mut best = Vec::new();
        for _ in 0..a.runs.max(1) {
            let mut clock = Clock { marks: Vec::new() };
            let (seqs, stats) = pollster::block_on(greedy_async(&gpu, &b, &gen, |_| {
                clock.marks.push(Instant::now());
                true
            }))
            .unwrap();
            assert_eq!(seqs[0].len(), a.tokens + 1);
            stats_line = format!("{} dispatches and {} command buffer(s) per decode step, prefill {} dispatches", stats.dispatches_per_step, stats.submits_per_step, stats.prefill_dispatches);
            best.push(clock.tok_s(rows));
        }
        g_dec.push(median(best));
    }
    println!("gpu: {stats_line}");

    // ---- CPU (same binary, one thread) ----
    let (mut c_enc32, mut c_enc_big, mut c_dec) = (f64::NAN, f64::NAN, vec![f64::NAN; a.batches.len()]);
    if a.cpu {
        let cpu = T5::load(config.clone(), &store, ModelKind::ConditionalGeneration, Cpu).expect("load on CPU");
        let enc_cpu = |rows: usize, seq: usize| {
            let b = batch(rows, seq, vocab);
            median((0..a.runs).map(|_| {
                let t = Instant::now();
                let h = cpu.encode(&b).unwrap();
                let _ = Cpu.download(&h);
                t.elapsed().as_secs_f64()
            }).collect())
        };
        c_enc32 = enc_cpu(1, 32) * 1e3;
        c_enc_big = 8.0 * 128.0 / enc_cpu(8, 128);
        for (i, &rows) in a.batches.iter().enumerate() {
            let b = batch(rows, 16, vocab);
            let mut clock = Clock { marks: Vec::new() };
            greedy(&cpu, &b, &gen, |_| {
                clock.marks.push(Instant::now());
                true
            })
            .unwrap();
            c_dec[i] = clock.tok_s(rows);
        }
    }
    rows_out.push(("encoder, 1×32 tokens (ms)".into(), format!("{c_enc32:.2}"), format!("{g_enc32:.2}")));
    rows_out.push(("encoder, 8×128 tokens (tok/s)".into(), format!("{c_enc_big:.0}"), format!("{g_enc_big:.0}")));
    for (i, &rows) in a.batches.iter().enumerate() {
        rows_out.push((format!("greedy decode, batch {rows} (tok/s)"), format!("{:.1}", c_dec[i]), format!("{:.1}", g_dec[i])));
    }
    println!("\n| measure | native CPU (1 thread) | native wgpu | GPU / CPU |\n|---|---|---|---|");
    for (m, c, g) in rows_out {
        let ratio = match (c.parse::<f64>(), g.parse::<f64>()) {
            (Ok(c), Ok(g)) if c.is_finite() && g.is_finite() => {
                if m.contains("(ms)") { format!("{:.2}× faster", c / g) } else { format!("{:.2}×", g / c) }
            }
            _ => "-".into(),
        };
        println!("| {m} | {c} | {g} | {ratio} |");
    }
}

/// Time of each backend op at encoder and decoder shapes: `n` calls recorded, then one small read
/// (the read alone is timed too and subtracted), so that a slow kernel shows against its peers.
fn ops(g: &Gpu, d: usize, dff: usize, heads: usize, dkv: usize) {
    let n = 50;
    let rnd = |len: usize, seed: usize| (0..len).map(|i| (((i * 7919 + seed * 104729) % 1000) as f32 / 1000.0 - 0.5) * 0.1).collect::<Vec<f32>>();
    let up = |shape: Vec<usize>, seed: usize| g.upload(Tensor::new(shape.clone(), rnd(shape.iter().product(), seed)));
    let probe = up(vec![1, 1, 4], 9);
    let sync = || {
        let _ = pollster::block_on(g.download_async(&probe)).unwrap();
    };
    sync();
    let t = Instant::now();
    for _ in 0..n {
        sync();
    }
    let read_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("\nper-op GPU time (µs, {n} calls then one read; a read alone: {read_us:.0} µs)");
    let time = |name: String, f: &dyn Fn()| {
        f();
        sync();
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        sync();
        let us = (t.elapsed().as_secs_f64() * 1e6 - read_us) / n as f64;
        println!("  {name:<44} {us:>9.1}");
    };
    let w_dd = g.upload_weight(Tensor::new(vec![d, d], rnd(d * d, 1)));
    let w_fd = g.upload_weight(Tensor::new(vec![dff, d], rnd(dff * d, 2)));
    let w_df = g.upload_weight(Tensor::new(vec![d, dff], rnd(dff * d, 3)));
    let norm = up(vec![d], 4);
    for (b, s) in [(1usize, 1usize), (1, 32), (8, 128)] {
        let x = up(vec![b, s, d], 5);
        let h = up(vec![b, s, dff], 6);
        time(format!("linear [{b}x{s}, {d}] x [{d}, {d}]"), &|| drop(g.linear(&x, &w_dd)));
        time(format!("linear [{b}x{s}, {d}] x [{dff}, {d}]"), &|| drop(g.linear(&x, &w_fd)));
        time(format!("linear [{b}x{s}, {dff}] x [{d}, {dff}]"), &|| drop(g.linear(&h, &w_df)));
        time(format!("rms_norm [{b}x{s}, {d}]"), &|| drop(g.rms_norm(&x, &norm, 1e-6)));
        time(format!("add_assign [{b}x{s}, {d}]"), &|| {
            let mut y = x.clone();
            g.add_assign(&mut y, &x);
        });
        time(format!("relu [{b}x{s}, {dff}]"), &|| {
            let mut y = h.clone();
            g.activate(&mut y, Activation::Relu);
        });
        let inner = heads * dkv;
        let q = up(vec![b, s, inner], 7);
        let bias = up(vec![heads, 2 * s - 1], 8);
        let mask: Vec<u32> = vec![1; b * s];
        let shape = AttentionShape { batch: b, heads, head_dim: dkv, q_len: s, kv_len: s, half: false };
        time(format!("attention self [{b}, {heads}h, {s}x{s}] bias+mask"), &|| {
            drop(g.attention(&q, &q, &q, Some(&bias), AttentionMask { key_mask: Some(&mask), causal_offset: None }, shape))
        });
    }
}

/// Where an encoder call's time goes: recording (CPU), submit + GPU execution, reading back.
fn breakdown(model: &T5<Gpu>, vocab: usize) {
    let be = model.backend();
    println!("\nencoder call breakdown (ms): record | submit+execute | read back | dispatches, submits");
    for (rows, seq) in [(1usize, 1usize), (1, 8), (1, 32), (1, 128), (8, 128)] {
        let b = batch(rows, seq, vocab);
        for rep in 0..3 {
            let (d0, s0) = (be.dispatches(), be.submits());
            let t0 = Instant::now();
            let enc = model.encode(&b).unwrap();
            let t1 = Instant::now();
            be.flush();
            // a 4-byte read waits for the GPU to finish everything submitted
            let probe = be.upload(Tensor::new(vec![1, 1, 1], vec![0.0]));
            pollster::block_on(be.download_async(&probe)).unwrap();
            let t2 = Instant::now();
            pollster::block_on(be.download_async(&enc)).unwrap();
            let t3 = Instant::now();
            if rep == 2 {
                let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
                println!("  {rows}x{seq:<4} {:8.2} | {:8.2} | {:8.2} | {}, {}", ms(t0, t1), ms(t1, t2), ms(t2, t3), be.dispatches() - d0, be.submits() - s0);
            }
        }
    }
}

/// One encoder layer's ops in sequence at 1x32, each followed by a flush and a 4-byte read, so that
/// each op's latency shows (a dependent chain, as the encoder runs it).
fn chain(g: &Gpu, d: usize, dff: usize, heads: usize, dkv: usize) {
    let rnd = |len: usize, seed: usize| (0..len).map(|i| (((i * 7919 + seed * 104729) % 1000) as f32 / 1000.0 - 0.5) * 0.1).collect::<Vec<f32>>();
    let probe = g.upload(Tensor::new(vec![1, 1, 1], vec![0.0]));
    let sync = || {
        g.flush();
        pollster::block_on(g.download_async(&probe)).unwrap();
    };
    let w_dd = g.upload_weight(Tensor::new(vec![d, d], rnd(d * d, 1)));
    let w_fd = g.upload_weight(Tensor::new(vec![dff, d], rnd(dff * d, 2)));
    let w_df = g.upload_weight(Tensor::new(vec![d, dff], rnd(dff * d, 3)));
    let norm = g.upload(Tensor::new(vec![d], vec![1.0; d]));
    for s in [8usize, 9, 32] {
        let x = g.upload(Tensor::new(vec![1, s, d], rnd(s * d, 5)));
        let bias = g.upload(Tensor::new(vec![heads, 2 * s - 1], rnd(heads * (2 * s - 1), 8)));
        let mask: Vec<u32> = vec![1; s];
        let shape = AttentionShape { batch: 1, heads, head_dim: dkv, q_len: s, kv_len: s, half: false };
        sync();
        let mut line = format!("  1x{s:<3}");
        let t = std::cell::Cell::new(Instant::now());
        let lap = |name: &str, line: &mut String| {
            sync();
            line.push_str(&format!(" {name} {:.2}", t.get().elapsed().as_secs_f64() * 1e3));
            t.set(Instant::now());
        };
        for _ in 0..2 {
            line.clear();
            line.push_str(&format!("  1x{s:<3}"));
            t.set(Instant::now());
            let h = g.rms_norm(&x, &norm, 1e-6);
            lap("norm", &mut line);
            let q = g.linear(&h, &w_dd);
            lap("q", &mut line);
            let k = g.linear(&h, &w_dd);
            let v = g.linear(&h, &w_dd);
            lap("kv", &mut line);
            let a = g.attention(&q, &k, &v, Some(&bias), AttentionMask { key_mask: Some(&mask), causal_offset: None }, shape);
            lap("attn", &mut line);
            let mut o = g.linear(&a, &w_dd);
            lap("o", &mut line);
            g.add_assign(&mut o, &x);
            lap("add", &mut line);
            let mut f = g.linear(&o, &w_fd);
            lap("wi", &mut line);
            g.activate(&mut f, Activation::Relu);
            lap("relu", &mut line);
            let _y = g.linear(&f, &w_df);
            lap("wo", &mut line);
        }
        println!("{line}  (ms, each op then a sync)");
    }
}
