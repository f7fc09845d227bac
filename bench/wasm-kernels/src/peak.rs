//! Ceilings of this engine's wasm arithmetic, for `peak.mjs`: how many f32 multiply-adds and exact
//! integer multiply-adds one core can issue at most through SIMD128 (and relaxed SIMD), and how close
//! t5-core's packed f32 GEMM (the encoder's product) comes to that.
//!
//! * `peak_f32(iters)`: 12 independent accumulators, each `acc += a_i · y` per turn (an `f32x4.mul`
//!   then an `f32x4.add`; one `f32x4.relaxed_madd` in the relaxed-SIMD build), `a_i` loaded from L1 and
//!   `y` changed every turn so that nothing is loop-invariant: 48 multiply-adds per turn.
//! * `peak_dot(iters)`: the same with `i32x4.dot_i16x8_s` then `i32x4.add` (8 i16 products per dot):
//!   96 products per turn. The exact fixed-point scheme of `cpu/fixed.rs` needs two 14-bit limbs per
//!   activation, so one weight × activation costs two of these products: 48 useful products per turn.
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

/// 24 multiplier vectors: the turn's 12 are loaded from memory (alternating halves, so the loads stay in
/// the loop), as a GEMM micro-kernel loads its panel: 12 accumulators + 12 multipliers would not fit x86-64's
/// 16 vector registers, and spilled registers would measure the spills.
static A: [[f32; 4]; 24] = {
    let mut a = [[0.0f32; 4]; 24];
    let mut i = 0;
    while i < 24 {
        let v = 1.0 + i as f32 * 1e-3;
        a[i] = [v, v, v, v];
        i += 1;
    }
    a
};

#[no_mangle]
pub extern "C" fn peak_f32(iters: u32) -> f32 {
    let mut acc = [f32x4_splat(0.0); 12];
    let mut y = f32x4_splat(1e-6);
    let d = f32x4_splat(1e-9);
    let a = A.as_ptr() as *const v128;
    for turn in 0..iters {
        let half = (turn as usize & 1) * 12;
        for (i, acc) in acc.iter_mut().enumerate() {
            // SAFETY: half + i < 24 vectors of A
            *acc = madd(unsafe { v128_load(a.add(half + i)) }, y, *acc);
        }
        y = f32x4_add(y, d);
    }
    let s = acc.iter().fold(f32x4_splat(0.0), |s, v| f32x4_add(s, *v));
    f32x4_extract_lane::<0>(s) + f32x4_extract_lane::<3>(s)
}

static B: [[i16; 8]; 24] = {
    let mut b = [[0i16; 8]; 24];
    let mut i = 0;
    while i < 24 {
        b[i] = [3 + i as i16; 8];
        i += 1;
    }
    b
};

#[no_mangle]
pub extern "C" fn peak_dot(iters: u32) -> i32 {
    let mut acc = [i32x4_splat(0); 12];
    let mut y = i16x8_splat(1);
    let d = i16x8_splat(1);
    let b = B.as_ptr() as *const v128;
    for turn in 0..iters {
        let half = (turn as usize & 1) * 12;
        for (i, acc) in acc.iter_mut().enumerate() {
            // SAFETY: half + i < 24 vectors of B
            *acc = i32x4_add(*acc, i32x4_dot_i16x8(unsafe { v128_load(b.add(half + i)) }, y));
        }
        y = i16x8_add(y, d);
    }
    let s = acc.iter().fold(i32x4_splat(0), |s, v| i32x4_add(s, *v));
    i32x4_extract_lane::<0>(s) ^ i32x4_extract_lane::<3>(s)
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
