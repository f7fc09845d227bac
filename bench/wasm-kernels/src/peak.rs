//! Ceilings of this engine's wasm arithmetic, for `peak.mjs`: how many f32 multiply-adds and exact
//! integer multiply-adds one core can issue at most through SIMD128 (and relaxed SIMD), and how close
//! t5-core's packed f32 GEMM (the encoder's product) comes to that.
//!
//! * `peak_f32(iters)`: 8 independent accumulators, each `acc += a · y` per turn (an `f32x4.mul`
//!   then an `f32x4.add`; one `f32x4.relaxed_madd` in the relaxed-SIMD build), every operand in a
//!   register and `y` changed every turn so that nothing is loop-invariant: 32 multiply-adds per turn.
//! * `peak_dot(iters)`: the same with `i32x4.dot_i16x8_s` then `i32x4.add` (8 i16 products per dot):
//!   64 products per turn. The exact fixed-point scheme of `cpu/fixed.rs` needs two 14-bit limbs per
//!   activation, so one weight × activation costs two of these products: 48 useful products per turn.
//! * `clock(iters)`: the core's clock, from a chain of dependent single-cycle integer operations.
//! * `read_setup(mb)` / `read_pass()`: the read bandwidth of wasm code over an array of that size.
//! * `gemm_setup(m, n, k)` / `gemm_run(iters)`: `out[m, n] = x[m, k] · w[n, k]ᵀ` through the packed GEMM
//!   with panels packed once (`gemm_panels`, as the encoder's weights are), one thread.
use core::arch::wasm32::*;
use t5_core::backend::cpu::gemm::{gemm_panels, Block, Operands, Panels};

#[inline(always)]
fn madd(a: v128, b: v128, c: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        f32x4_relaxed_madd(a, b, c)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        f32x4_add(c, f32x4_mul(a, b))
    }
}

/// 8 accumulators, each `acc[i] += a[i % 4] · y[i / 4]` per turn: 8 distinct products from 4 multipliers and
/// 2 changing `y`, all in registers (8 + 4 + 2 + 1 of x86-64's 16 vector registers), so the loop body is
/// the arithmetic alone.
#[no_mangle]
pub extern "C" fn peak_f32(iters: u32) -> f32 {
    let mut acc = [f32x4_splat(0.0); 8];
    let a: [v128; 4] = core::array::from_fn(|i| f32x4_splat(1.5 + i as f32 * 1e-3));
    let mut y = [f32x4_splat(1e-6), f32x4_splat(2e-6)];
    let d = f32x4_splat(1e-9);
    for _ in 0..iters {
        for (i, acc) in acc.iter_mut().enumerate() {
            *acc = madd(a[i % 4], y[i / 4], *acc);
        }
        y = [f32x4_add(y[0], d), f32x4_add(y[1], d)];
    }
    let s = acc.iter().fold(f32x4_splat(0.0), |s, v| f32x4_add(s, *v));
    f32x4_extract_lane::<0>(s) + f32x4_extract_lane::<3>(s)
}

/// As [`peak_f32`] with `i32x4.dot_i16x8_s` then `i32x4.add`.
#[no_mangle]
pub extern "C" fn peak_dot(iters: u32) -> i32 {
    let mut acc = [i32x4_splat(0); 8];
    let a: [v128; 4] = core::array::from_fn(|i| i16x8_splat(3 + i as i16));
    let mut y = [i16x8_splat(1), i16x8_splat(2)];
    let d = i16x8_splat(1);
    for _ in 0..iters {
        for (i, acc) in acc.iter_mut().enumerate() {
            *acc = i32x4_add(*acc, i32x4_dot_i16x8(a[i % 4], y[i / 4]));
        }
        y = [i16x8_add(y[0], d), i16x8_add(y[1], d)];
    }
    let s = acc.iter().fold(i32x4_splat(0), |s, v| i32x4_add(s, *v));
    i32x4_extract_lane::<0>(s) ^ i32x4_extract_lane::<3>(s)
}

/// A chain of `iters` dependent (rotate, xor) pairs on one i64: two single-cycle operations per turn
/// (the loop's counter and branch run beside it), so the core's clock is about `2 · iters / time`.
#[no_mangle]
pub extern "C" fn clock(iters: u32) -> i64 {
    let mut x = 0x1234_5678_9abc_def0u64;
    for turn in 0..iters as u64 {
        x = x.rotate_left(7) ^ turn;
    }
    x as i64
}

static mut STREAM: Vec<f32> = Vec::new();

/// Sets up [`read_pass`] over `mb` MB (10^6 bytes) of f32.
#[no_mangle]
pub extern "C" fn read_setup(mb: u32) {
    let n = mb as usize * 250_000;
    unsafe { STREAM = (0..n).map(|i| (i % 1000) as f32 * 1e-3).collect() }
}

/// One pass over the [`read_setup`] array with 8 SIMD128 accumulators: the read bandwidth that wasm code
/// gets (wasm has no prefetch instruction), to set beside the decode steps that stream their weights.
#[no_mangle]
pub extern "C" fn read_pass() -> f32 {
    let v = unsafe { &*core::ptr::addr_of!(STREAM) };
    let p = v.as_ptr() as *const v128;
    let mut acc = [f32x4_splat(0.0); 8];
    for c in 0..v.len() / 32 {
        for (i, acc) in acc.iter_mut().enumerate() {
            // SAFETY: 32 floats per turn, c < len / 32
            *acc = f32x4_add(*acc, unsafe { v128_load(p.add(c * 8 + i)) });
        }
    }
    let s = acc.iter().fold(f32x4_splat(0.0), |s, v| f32x4_add(s, *v));
    f32x4_extract_lane::<0>(s)
}

struct Gemm {
    m: usize,
    n: usize,
    k: usize,
    x: Vec<f32>,
    w: Panels,
    out: Vec<f32>,
}

static mut GEMM: Option<Gemm> = None;

#[no_mangle]
pub extern "C" fn gemm_setup(m: usize, n: usize, k: usize) {
    let x: Vec<f32> = (0..m * k).map(|i| ((i * 31 % 97) as f32 - 48.0) / 40.0).collect();
    let w: Vec<f32> = (0..n * k).map(|i| ((i.wrapping_mul(7919) % 1013) as f32 / 1013.0 - 0.45) * 0.3).collect();
    let w = Panels::pack(&w, n, k);
    unsafe { GEMM = Some(Gemm { m, n, k, x, w, out: vec![0.0; m * n] }) }
}

#[no_mangle]
pub extern "C" fn gemm_run(iters: u32) -> f32 {
    // SAFETY: single-threaded module; `GEMM` is only touched by these exports.
    let g = unsafe { (*core::ptr::addr_of_mut!(GEMM)).as_mut().unwrap() };
    for _ in 0..iters {
        gemm_panels(Operands { k: g.k, x: &g.x, ldx: g.k, out: &mut g.out, ldo: g.n }, Block::all(g.m, g.n), &g.w);
    }
    g.out.iter().step_by(97).sum()
}

/// `N` accumulators, each `acc[i] = relaxed_dot(a[i % 2], y[i % 2 ^ 1], acc[i])` per turn (16 byte
/// products into 4 lanes a call, `vpdpbusd` on x86 with AVX-VNNI): how many of those the core issues
/// per second once `N` chains hide their latency (`N` + 4 of x86-64's 16 vector registers).
#[cfg(target_feature = "relaxed-simd")]
fn peak_rdot<const N: usize>(iters: u32) -> i32 {
    let mut acc = [i32x4_splat(0); N];
    let a = [i8x16_splat(3), i8x16_splat(-5)];
    let mut y = [u8x16_splat(1), u8x16_splat(2)];
    let d = u8x16_splat(1);
    for _ in 0..iters {
        for (i, acc) in acc.iter_mut().enumerate() {
            *acc = i32x4_relaxed_dot_i8x16_i7x16_add(a[i % 2], y[(i / 2) % 2], *acc);
        }
        y = [v128_and(u8x16_add(y[0], d), u8x16_splat(0x7f)), v128_and(u8x16_add(y[1], d), u8x16_splat(0x7f))];
    }
    let s = acc.iter().fold(i32x4_splat(0), |s, v| i32x4_add(s, *v));
    i32x4_extract_lane::<0>(s) ^ i32x4_extract_lane::<3>(s)
}

/// [`peak_rdot`] with 8 chains.
#[cfg(target_feature = "relaxed-simd")]
#[no_mangle]
pub extern "C" fn peak_rdot8(iters: u32) -> i32 {
    peak_rdot::<8>(iters)
}

/// [`peak_rdot`] with 10 chains.
#[cfg(target_feature = "relaxed-simd")]
#[no_mangle]
pub extern "C" fn peak_rdot10(iters: u32) -> i32 {
    peak_rdot::<10>(iters)
}

/// [`peak_rdot`] with 12 chains.
#[cfg(target_feature = "relaxed-simd")]
#[no_mangle]
pub extern "C" fn peak_rdot12(iters: u32) -> i32 {
    peak_rdot::<12>(iters)
}
