//! The relaxed-SIMD build's q4 one-row kernel: exact integer sums of 4-bit codes against the 7-bit
//! digits of the fixed-point activations ([`super::fixed::FixedX::digits`]) with
//! `i32x4.relaxed_dot_i8x16_i7x16_add_s`, which multiplies 16 signed bytes by 16 bytes of 7 bits
//! and adds each 4 products into an i32 lane in one instruction (`vpdpbusd` where the CPU has
//! AVX-VNNI; `pmaddubsw` + `pmaddwd` + `paddd` elsewhere). Its result is the same on every
//! platform here: the codes (`0..16`) never set the top bit of the 7-bit operand, and the pairs of
//! products that `pmaddubsw` adds in 16 bits stay below `2 · 15 · 128 < 2^15`, so nothing
//! saturates. The SIMD128 kernel ([`super::simd128`]) needs two `i32x4.dot_i16x8_s` and two adds
//! per 8 codes and limb pair; this one a quarter of the arithmetic per code.

use super::simd128::q4_group_end;
use crate::backend::cpu::gemm::simd128::hsum;
use core::arch::wasm32::*;

/// Whether the digit kernel serves on this engine and CPU, from what its
/// `i32x4.relaxed_dot_i8x16_i7x16_add_s` computes (checked once; otherwise the row gets no digits
/// and the SIMD128 kernel serves):
/// * the first operand must be taken as signed bytes, as the standard says (Node 20's V8 11.3, with
///   relaxed SIMD behind `--experimental-wasm-relaxed-simd`, gives other sums);
/// * the instruction must be one instruction. `127 · 255`, the 7-bit operand with its top bit set
///   (which the standard leaves to the platform), tells V8's lowerings apart: `vpdpbusd` (x86
///   AVX-VNNI) sums `4 · 127 · 255 = 129540` in a lane, `vpdpbssd` (AVX-VNNI-INT8) and arm64's
///   `sdot` `4 · 127 · -1 = -508`; on x86 without AVX-VNNI V8 emits five instructions (`pmaddubsw`,
///   `pmaddwd`, `paddd` and the constant they need), whose 16-bit pair sums saturate: `2 · 32767`.
///   With those five the digit kernel ran at half the speed of the SIMD128 one (`node
///   --no-enable-avx-vnni`, docs/benchmarks.md).
///
/// Kept in an atomic, not a `OnceLock`: threads that ask at once each work it out (the same answer) instead of
/// one waiting for another, which a browser's main thread may not do (see `pool.rs`).
pub(super) fn digits_pay() -> bool {
    use std::sync::atomic::{AtomicU8, Ordering};
    // 0: not known yet, 1: no, 2: yes
    static PAY: AtomicU8 = AtomicU8::new(0);
    match PAY.load(Ordering::Relaxed) {
        0 => {
            let dot = |a: i8, b: u8| {
                let (a, b, c) = core::hint::black_box((i8x16_splat(a), u8x16_splat(b), i32x4_splat(7)));
                let r = i32x4_relaxed_dot_i8x16_i7x16_add(a, b, c);
                i32x4_all_true(i32x4_eq(r, i32x4_splat(i32x4_extract_lane::<0>(r)))).then(|| i32x4_extract_lane::<0>(r) - 7)
            };
            let pay = dot(-100, 15) == Some(-6000) && dot(127, 255) != Some(2 * 32767);
            PAY.store(1 + pay as u8, Ordering::Relaxed);
            pay
        }
        v => v == 2,
    }
}

/// q4 with groups of a multiple of 64 up to [`super::fixed::Q4_GROUP_MAX`], `R` rows from `packed`
/// (row stride `k / 2`), against `fx` with its digits. 16 loaded bytes hold the low nibbles of
/// weights `t..t+16` and the high ones of `t+32..t+48`: masked, and shifted down by 4 (`u16x8.shr`
/// and the mask; V8 makes a `u8x16.shr` five x86 instructions), they are two vectors of codes in
/// the order of `x`, each multiplied with the four digit planes
/// (loaded once per half-pass, shared by the `R` rows) into four i32 accumulators per row. Weight `t`
/// lands in lane `(t mod 16) / 4` ([`super::fixed::q4_lane`]). Per group and lane, `hi = 2^7 d3 +
/// d2` and `lo = 2^7 d1 + d0` sums are formed exactly in i32 (each digit sum is at most
/// `group / 4 · 15 · 128 < 2^17`), converted (below 2^24: exact), combined as `2^14 hi + lo` and
/// scaled into f32 accumulators, as the reference [`super::fixed::q4_dot`] does; the zero points
/// through `xs` (group sums of x).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn q4_fixed_rows<const R: usize>(
    fx: &super::fixed::FixedX,
    k: usize,
    group: usize,
    packed: *const u8,
    scales: *const f32,
    zeros: *const f32,
    xs: &[f32],
    rows: [usize; R],
    out: &mut [f32],
) {
    debug_assert_eq!(fx.digits.len(), 4 * k);
    let d = fx.digits.as_ptr();
    let planes = [d, d.add(k), d.add(2 * k), d.add(3 * k)];
    let gpr = k / group;
    let (packed, scales, zeros) = (rows.map(|j| packed.add(j * k / 2)), rows.map(|j| scales.add(j * gpr)), rows.map(|j| zeros.add(j * gpr)));
    let nib = u8x16_splat(0x0f);
    let mut tot = [f32x4_splat(0.0); R];
    let mut zs = [0.0f32; R];
    for g in 0..gpr {
        // acc[r][p]: row r's products with digit plane p (d3, d2, d1, d0)
        let mut acc = [[i32x4_splat(0); 4]; R];
        for c in g * group / 64..(g + 1) * group / 64 {
            for h in 0..2 {
                let t = c * 64 + h * 16;
                let mut v = [i32x4_splat(0); R];
                for r in 0..R {
                    v[r] = v128_load(packed[r].add(c * 32 + h * 16) as *const v128);
                }
                // the low nibbles (weights t..t+16), then the high ones (t+32..t+48)
                for (half, at) in [(0, t), (1, t + 32)] {
                    let dv = planes.map(|p| v128_load(p.add(at) as *const v128));
                    for r in 0..R {
                        let q = if half == 0 { v128_and(v[r], nib) } else { v128_and(u16x8_shr(v[r], 4), nib) };
                        for p in 0..4 {
                            acc[r][p] = i32x4_relaxed_dot_i8x16_i7x16_add(dv[p], q, acc[r][p]);
                        }
                    }
                }
            }
        }
        for r in 0..R {
            let hi = i32x4_add(i32x4_shl(acc[r][0], 7), acc[r][1]);
            let lo = i32x4_add(i32x4_shl(acc[r][2], 7), acc[r][3]);
            q4_group_end(hi, lo, *scales[r].add(g), *zeros[r].add(g), xs[g], &mut tot[r], &mut zs[r]);
        }
    }
    for r in 0..R {
        out[rows[r]] = (hsum(tot[r]) as f64 * fx.unit) as f32 + zs[r];
    }
}
