//! Wasm kernel micro-benchmarks (the arithmetic ceilings and the encoder GEMM: `peak.rs`, `peak.mjs`).
//! Matvec micro-benchmark: `setup(dtype, n, k)` builds a weight, `run(iters)` times
//! `qkernels::linear` with one input row, `check()` returns the largest deviation from an f64 dot
//! product with the dequantized weights. Built and driven by `build.sh` / `bench.mjs`.
mod attention;
mod peak;
use t5_core::backend::cpu::qkernels;
use t5_core::dtype::{QWeight, WeightDtype};
use t5_core::tensor::Tensor;

static mut W: Option<QWeight> = None;
static mut X: Vec<f32> = Vec::new();
static mut O: Vec<f32> = Vec::new();

/// dt: 0 f32, 1 f16, 2 bf16, 3 q8, 4 q4 (group 128), 5 q4 g32 (gguf)
#[no_mangle]
pub extern "C" fn setup(dt: u32, n: usize, k: usize) {
    let w: Vec<f32> = (0..n * k).map(|i| ((i.wrapping_mul(7919) % 1013) as f32 / 1013.0 - 0.45) * 0.3).collect();
    let q = match dt {
        5 => {
            let packed: Vec<u8> = (0..n * k / 2).map(|i| (i * 131 % 256) as u8).collect();
            let scales: Vec<f32> = (0..n * k / 32).map(|i| 0.001 + (i % 13) as f32 * 0.0007).collect();
            let zeros: Vec<f32> = (0..n * k / 32).map(|i| (i % 7) as f32 * 0.01 - 0.03).collect();
            QWeight::Q4 { n, k, group: 32, packed, scales, zeros }
        }
        _ => {
            let d = [WeightDtype::F32, WeightDtype::F16, WeightDtype::BF16, WeightDtype::Q8, WeightDtype::Q4][dt as usize];
            QWeight::from_tensor(Tensor::new(vec![n, k], w), d)
        }
    };
    unsafe {
        X = (0..k).map(|i| ((i * 31 % 97) as f32 - 48.0) / 40.0).collect();
        O = vec![0.0; n];
        W = Some(q);
    }
}

#[no_mangle]
pub extern "C" fn run(iters: u32) -> f32 {
    unsafe {
        let w = (*std::ptr::addr_of!(W)).as_ref().unwrap();
        let x = &*std::ptr::addr_of!(X);
        let o = &mut *std::ptr::addr_of_mut!(O);
        for _ in 0..iters {
            qkernels::linear(1, x, w, o);
        }
        o.iter().sum()
    }
}

/// max |kernel - f64 reference on dequantized weights|
#[no_mangle]
pub extern "C" fn check() -> f64 {
    unsafe {
        let w = (*std::ptr::addr_of!(W)).as_ref().unwrap();
        let x = &*std::ptr::addr_of!(X);
        let (n, k) = w.dims();
        let deq = w.to_tensor();
        let mut o = vec![0.0f32; n];
        qkernels::linear(1, x, w, &mut o);
        let mut m = 0.0f64;
        for j in 0..n {
            let r: f64 = (0..k).map(|t| x[t] as f64 * deq.data[j * k + t] as f64).sum();
            m = m.max((r - o[j] as f64).abs());
        }
        m
    }
}

static mut STEP: Vec<QWeight> = Vec::new();

/// A t5-small decode step's matrices, each its own allocation (so, as in a real decode step, they
/// stream from memory rather than sit in cache): per layer self-attention q, k, v, o and
/// cross-attention q, o (512 × 512), the feed-forward wi (2048 × 512) and wo (512 × 2048), times 6
/// layers, then the 32128 × 512 LM head. dt as in `setup`.
#[no_mangle]
pub extern "C" fn setup_step(dt: u32) {
    let d = [WeightDtype::F32, WeightDtype::F16, WeightDtype::BF16, WeightDtype::Q8, WeightDtype::Q4][dt as usize];
    let mut shapes: Vec<(usize, usize)> = vec![];
    for _ in 0..6 {
        shapes.extend([(512, 512); 6]);
        shapes.extend([(2048, 512), (512, 2048)]);
    }
    shapes.push((32128, 512));
    unsafe {
        STEP = shapes
            .into_iter()
            .map(|(n, k)| {
                let w: Vec<f32> = (0..n * k).map(|i| ((i.wrapping_mul(7919) % 1013) as f32 / 1013.0 - 0.45) * 0.3).collect();
                QWeight::from_tensor(Tensor::new(vec![n, k], w), d)
            })
            .collect();
        X = (0..2048).map(|i| ((i * 31 % 97) as f32 - 48.0) / 40.0).collect();
        O = vec![0.0; 32128];
    }
}

/// `iters` decode steps' matrix products (one input row each).
#[no_mangle]
pub extern "C" fn run_step(iters: u32) -> f32 {
    unsafe {
        let step = &*std::ptr::addr_of!(STEP);
        let x = &*std::ptr::addr_of!(X);
        let o = &mut *std::ptr::addr_of_mut!(O);
        for _ in 0..iters {
            for w in step {
                let (n, k) = w.dims();
                qkernels::linear(1, &x[..k], w, &mut o[..n]);
            }
        }
        o.iter().sum()
    }
}
