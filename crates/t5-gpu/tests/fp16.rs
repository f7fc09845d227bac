//! Float16 numerics on the GPU (float16 weights packed two per u32, activations rounded to float16 where
//! transformers' float16 forward rounds them, T5Block's clamp, float32 `wo`) against transformers'
//! float16 run on the overflow fixture of scripts/make_fp16_fixtures.py: logits within the stated fp16
//! tolerance and finite, greedy ids identical, equal to the CPU's float16 path; without the guards the
//! GPU overflows as transformers does. Both kernel families (software / hardware) run on lavapipe, each
//! through `shader-f16` (f16 weight loads and tiles, exact products, f32 sums; lavapipe has the feature)
//! and without it (`shader_f16: Some(false)`: weights packed two per u32, the path of adapters without the
//! feature, SwiftShader in the wasm tests).

use serde_json::Value;
use t5_core::backend::Backend;
use t5_core::generate::greedy;
use t5_core::hub::load_dir;
use t5_core::model::Half;
use t5_core::{Batch, Cpu, ModelKind, Tensor, WeightDtype, WeightStore, T5};
use t5_gpu::generate::{forward_async, greedy_async};
use t5_gpu::{Gpu, GpuOptions};

mod common;
use common::*;

const NAME: &str = "tiny-t5-fp16-overflow";

struct Oracle {
    json: Value,
    logits: Tensor,
}

impl Oracle {
    fn load() -> Oracle {
        let dir = fixtures().join("oracle");
        let json = read_json(dir.join(format!("{NAME}.json")));
        let store = WeightStore::from_shards(vec![("oracle.safetensors".into(), std::fs::read(dir.join(format!("{NAME}.safetensors"))).unwrap())]).unwrap();
        let dec = rows(&json["decoder_input_ids"]);
        let logits = store.get("logits", &[dec.len(), dec[0].len(), 512]).unwrap();
        Oracle { json, logits }
    }
    fn input(&self) -> Batch {
        batch(&self.json)
    }
    fn dec(&self) -> Vec<u32> {
        rows(&self.json["decoder_input_ids"]).concat()
    }
    /// `|ours - oracle| <= atol + rtol * |oracle|` (the fixture's stated fp16 tolerance), all finite.
    fn check(&self, what: &str, ours: &Tensor) {
        let tol = &self.json["tolerance"];
        let (atol, rtol) = (tol["atol"].as_f64().unwrap() as f32, tol["rtol"].as_f64().unwrap() as f32);
        assert_eq!(ours.shape, self.logits.shape);
        let (mut worst, mut ratio) = (0.0f32, 0.0f32);
        for (i, (a, b)) in ours.data.iter().zip(&self.logits.data).enumerate() {
            assert!(a.is_finite(), "{what}: logit {i} is {a}");
            let d = (a - b).abs();
            worst = worst.max(d);
            ratio = ratio.max(d / (atol + rtol * b.abs()));
            assert!(d <= atol + rtol * b.abs(), "{what}: logit {i}: ours {a}, transformers {b} (|diff| {d} > {atol} + {rtol} * |oracle|)");
        }
        eprintln!("{what}: max |ours - transformers fp16| = {worst:.3e}, largest |diff| / tolerance {ratio:.2}");
    }
}

fn load<B: Backend>(be: B, half: Half) -> T5<B> {
    let (config, _, store) = load_dir(fixtures().join(NAME)).unwrap();
    T5::load_half(config, &store, ModelKind::ConditionalGeneration, be, half).unwrap()
}

fn guarded(opts: GpuOptions) {
    let Some(g) = gpu(opts) else { return };
    eprintln!("adapter: {:?}", g.info());
    let o = Oracle::load();
    let m = load(g.clone(), Half::Guarded);
    // float16 weights resident as float16 (half the bytes), the feed-forward wo in float32
    let f32_wo: Vec<_> = m.weight_fallbacks().iter().map(|(n, d)| (n.clone(), *d)).collect();
    assert!(!f32_wo.is_empty() && f32_wo.iter().all(|(n, d)| n.ends_with(".wo.weight") && *d == WeightDtype::F32), "{f32_wo:?}");
    let out = pollster::block_on(forward_async(&m, &o.input(), Some(&o.dec()), None, None)).unwrap();
    let logits = out.logits.unwrap();
    // the shader-f16 kernels exactly when the device has the feature in use
    let used = g.info().shader_f16_used;
    assert_eq!(g.f16_matmuls() > 0, used, "f16 matmul dispatches {} with shader_f16_used {used}", g.f16_matmuls());
    o.check(if used { "gpu fp16 guarded logits (shader-f16)" } else { "gpu fp16 guarded logits (packed f16)" }, &logits);
    // the CPU's float16 path on the same inputs
    let cpu = load(Cpu, Half::Guarded);
    let c = cpu.forward(&o.input(), Some(&o.dec()), None, None).unwrap().logits.unwrap();
    let d = logits.data.iter().zip(&c.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    eprintln!("gpu vs cpu fp16: max |diff| = {d:.3e}");
    // greedy, stepwise with the KV cache: transformers' ids
    let (_, mut gen, _) = load_dir(fixtures().join(NAME)).unwrap();
    gen.max_new_tokens = Some(o.json["greedy"]["max_new_tokens"].as_u64().unwrap() as usize);
    let (ids, stats) = pollster::block_on(greedy_async(&m, &o.input(), &gen, |_| true)).unwrap();
    assert_eq!(ids, rows(&o.json["greedy"]["sequences"]), "gpu fp16 greedy ids vs transformers fp16");
    assert_eq!(ids, greedy(&cpu, &o.input(), &gen, |_| true).unwrap(), "gpu vs cpu fp16 greedy ids");
    eprintln!("fp16 decode: {stats:?}");
}

#[test]
fn guarded_fp16_matches_transformers_fp16() {
    guarded(GpuOptions::default());
}

#[test]
fn guarded_fp16_hardware_kernels() {
    guarded(GpuOptions { software_kernels: Some(false), ..Default::default() });
}

/// Weights split into row chunks (the multi-dispatch path of `linear`, chunk offsets into `out`).
#[test]
fn guarded_fp16_split_weights() {
    guarded(GpuOptions { max_chunk_bytes: Some(1024), ..Default::default() });
    guarded(GpuOptions { max_chunk_bytes: Some(1024), software_kernels: Some(false), ..Default::default() });
}

#[test]
fn guarded_fp16_without_shader_f16() {
    guarded(GpuOptions { shader_f16: Some(false), ..Default::default() });
}

#[test]
fn guarded_fp16_without_shader_f16_hardware_kernels() {
    guarded(GpuOptions { shader_f16: Some(false), software_kernels: Some(false), ..Default::default() });
}

/// `shader-f16` is requested and used when the adapter has it (lavapipe does: this suite then checks the
/// `_h` kernels), and left off with `shader_f16: Some(false)`; a float32 model never uses those kernels.
#[test]
fn shader_f16_used_when_available() {
    let Some(g) = gpu(GpuOptions::default()) else { return };
    let info = g.info().clone();
    eprintln!("adapter: {info:?}");
    if info.adapter.contains("llvmpipe") {
        assert!(info.shader_f16, "lavapipe reports shaderFloat16 + 16-bit storage: shader-f16 expected");
    }
    assert_eq!(info.shader_f16_used, info.shader_f16);
    let o = Oracle::load();
    let m32 = load(g.clone(), Half::Off);
    pollster::block_on(forward_async(&m32, &o.input(), Some(&o.dec()), None, None)).unwrap();
    assert_eq!(g.f16_matmuls(), 0, "float32 weights never take the shader-f16 kernels");
    let m = load(g.clone(), Half::Guarded);
    let before = g.dispatches();
    pollster::block_on(forward_async(&m, &o.input(), Some(&o.dec()), None, None)).unwrap();
    let n = g.f16_matmuls();
    eprintln!("shader-f16 matmuls: {n} of {} dispatches", g.dispatches() - before);
    assert_eq!(n > 0, info.shader_f16);
    let Some(off) = gpu(GpuOptions { shader_f16: Some(false), ..Default::default() }) else { return };
    assert!(!off.info().shader_f16_used);
    let m_off = load(off.clone(), Half::Guarded);
    pollster::block_on(forward_async(&m_off, &o.input(), Some(&o.dec()), None, None)).unwrap();
    assert_eq!(off.f16_matmuls(), 0);
    // the same fusion either way: as many dispatches per decode step (and as many ops fused) as packed
    let (_, mut gen, _) = load_dir(fixtures().join(NAME)).unwrap();
    gen.max_new_tokens = Some(4);
    let (ids, s) = pollster::block_on(greedy_async(&m, &o.input(), &gen, |_| true)).unwrap();
    let (ids_off, s_off) = pollster::block_on(greedy_async(&m_off, &o.input(), &gen, |_| true)).unwrap();
    eprintln!("decode step: shader-f16 {s:?}, packed {s_off:?}");
    assert_eq!(ids, ids_off);
    assert_eq!((s.dispatches_per_step, s.fused_per_step, s.submits_per_step), (s_off.dispatches_per_step, s_off.fused_per_step, s_off.submits_per_step));
    // required: used where the adapter has it, a typed error where it is missing
    if info.shader_f16 {
        let on = gpu(GpuOptions { shader_f16: Some(true), ..Default::default() }).unwrap();
        assert!(on.info().shader_f16_used);
    } else {
        let e = pollster::block_on(Gpu::new(GpuOptions { shader_f16: Some(true), ..Default::default() })).err().expect("shader_f16: Some(true) without the feature");
        assert_eq!(e.code(), "WebGPUUnavailable");
    }
}

/// Without transformers' guards (float16 wo, no clamp) the GPU's float16 path overflows on this
/// fixture, as transformers' unguarded run does: the encoder's hidden states hold ±inf (block 0's
/// attention output, rounded to float16) and the logits are non-finite or far from the guarded oracle
/// (WGSL may assume no inf / NaN in float arithmetic, so what inf turns into downstream is the driver's
/// choice). The guarded path's hidden states are all finite.
/// A shader compiler that refuses the `enable f16` kernels (simulated) leaves the packed float16
/// kernels, with the reason in the device info; the model still matches transformers' fp16 logits.
/// With `shader_f16: Some(true)` the same refusal is a typed error.
#[test]
fn shader_f16_compile_failure_falls_back_to_packed() {
    let Some(g) = gpu(GpuOptions::default()) else { return };
    if !g.info().shader_f16 {
        return; // nothing to fall back from
    }
    let g = gpu(GpuOptions { break_shader_f16_kernels: true, ..Default::default() }).unwrap();
    let info = g.info().clone();
    assert!(!info.shader_f16_used);
    assert!(info.shader_f16_error.as_deref().is_some_and(|e| e.contains("broken_h")), "{info:?}");
    let o = Oracle::load();
    let m = load(g.clone(), Half::Guarded);
    let out = pollster::block_on(forward_async(&m, &o.input(), Some(&o.dec()), None, None)).unwrap();
    o.check("fp16 after a refused shader-f16 compile", &out.logits.unwrap());
    assert_eq!(g.f16_matmuls(), 0);
    let e = pollster::block_on(Gpu::new(GpuOptions { shader_f16: Some(true), break_shader_f16_kernels: true, ..Default::default() })).err().expect("required shader-f16 that does not compile");
    assert_eq!(e.code(), "WebGPUUnavailable");
}

#[test]
fn unguarded_fp16_overflows_on_gpu() {
    unguarded(GpuOptions::default());
}

#[test]
fn unguarded_fp16_overflows_on_gpu_without_shader_f16() {
    unguarded(GpuOptions { shader_f16: Some(false), ..Default::default() });
}

fn unguarded(opts: GpuOptions) {
    use t5_core::model::{OutputFlags, StackOutputs};
    let Some(g) = gpu(opts) else { return };
    let o = Oracle::load();
    assert!(o.json["nonfinite_logits"]["unguarded"].as_u64().unwrap() > 0);
    let flags = OutputFlags { hidden_states: true, attentions: false };
    let nonfinite = |t: &Tensor| t.data.iter().filter(|v| !v.is_finite()).count();
    for (half, overflows) in [(Half::Guarded, false), (Half::Unguarded, true)] {
        let m = load(g.clone(), half);
        let mut rec = StackOutputs::default();
        m.encode_with(&o.input(), Some((&mut rec, flags))).unwrap();
        let bad: Vec<usize> = rec.hidden_states.iter().map(nonfinite).collect();
        let out = pollster::block_on(forward_async(&m, &o.input(), Some(&o.dec()), None, None)).unwrap();
        let l = out.logits.unwrap();
        let worst = l.data.iter().zip(&o.logits.data).map(|(a, b)| if a.is_finite() { (a - b).abs() } else { f32::INFINITY }).fold(0.0f32, f32::max);
        eprintln!("{half:?} (shader-f16 {}): non-finite encoder hidden states per layer {bad:?}, non-finite logits {}, max |logits - oracle| {worst}", g.info().shader_f16_used, nonfinite(&l));
        if overflows {
            assert!(bad[1] > 0, "block 0's float16 attention output should overflow without the clamp");
            assert!(nonfinite(&l) > 0 || worst > 1.0, "unguarded logits should be non-finite or far from the guarded oracle");
        } else {
            assert!(bad.iter().all(|&n| n == 0));
        }
    }
}

/// The `shader-f16` kernels one by one against the CPU on shapes the tiny fixture does not reach: every
/// matmul kind (matvec / matvec_norm for m <= 8, tiled / thread above; hardware and software), columns not
/// a multiple of the 4- / 64-wide tiles, split weights, and k % 4 != 0 (the packed kernels instead).
/// Float16-valued inputs; the GPU's sums run in another order than the CPU's, hence a relative bound.
#[test]
fn shader_f16_kernels_match_cpu() {
    use t5_core::dtype::float16::round_f16;
    use t5_core::QWeight;
    let cases = [(1, 37, 40), (3, 70, 8), (8, 5, 12), (9, 67, 20), (33, 130, 36), (70, 65, 64), (2, 9, 6), (17, 9, 6)];
    let val = |i: usize, s: u32| round_f16(((i as u32).wrapping_mul(2654435761).wrapping_add(s) >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0);
    for (software, chunk) in [(true, None), (false, None), (true, Some(256u64)), (false, Some(256u64))] {
        let Some(g) = gpu(GpuOptions { software_kernels: Some(software), max_chunk_bytes: chunk, ..Default::default() }) else { return };
        if !g.info().shader_f16_used {
            eprintln!("no shader-f16 on {}: nothing to check", g.info().adapter);
            return;
        }
        for &(m, n, k) in &cases {
            let w: Vec<f32> = (0..n * k).map(|i| val(i, 7)).collect();
            let x = Tensor::new(vec![m, k], (0..m * k).map(|i| val(i, 99)).collect());
            let nw = Tensor::new(vec![k], (0..k).map(|i| round_f16(0.5 + (i % 5) as f32 * 0.25)).collect());
            let packed = |w: &[f32]| QWeight::from_tensor(Tensor::new(vec![n, k], w.to_vec()), WeightDtype::F16);
            let gw = g.upload_packed(packed(&w));
            let cw = Cpu.upload_packed(packed(&w));
            let scale: Vec<f32> = (0..m * n).map(|i| (0..k).map(|j| (x.data[i / n * k + j] * w[i % n * k + j]).abs()).sum::<f32>().max(1.0)).collect();
            let before = g.f16_matmuls();
            let gx = g.upload(x.clone());
            let plain = g.download(&g.linear(&gx, &gw));
            let normed = g.download(&g.linear(&g.rms_norm_half(&gx, &g.upload(nw.clone()), 1e-6), &gw));
            assert_eq!(g.f16_matmuls() > before, k % 4 == 0, "({m}, {n}, {k}): shader-f16 kernels iff k % 4 == 0");
            let cplain = Cpu.linear(&x, &cw);
            let cnormed = Cpu.linear(&Cpu.rms_norm_half(&x, &nw, 1e-6), &cw);
            for (what, a, b) in [("linear", &plain, &cplain), ("norm + linear", &normed, &cnormed)] {
                for (i, (u, v)) in a.data.iter().zip(&b.data).enumerate() {
                    assert!((u - v).abs() <= 1e-5 * scale[i], "software {software}, chunk {chunk:?}, {what} ({m}, {n}, {k}) at {i}: gpu {u}, cpu {v}");
                }
            }
        }
    }
}
