//! WASM SIMD128 f32 tiles (fused multiply-adds in the relaxed-SIMD build).

use super::strided;
use core::arch::wasm32::*;

/// `a * b + c`: one fused multiply-add where the runtime has relaxed SIMD (the `+relaxed-simd`
/// build, picked at load where supported; the engines lower it to FMA on x86-64 with FMA3 and
/// on Arm), a multiply then an add in the baseline SIMD128 build.
#[inline(always)]
pub fn madd(a: v128, b: v128, c: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    {
        f32x4_relaxed_madd(a, b, c)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        f32x4_add(c, f32x4_mul(a, b))
    }
}

/// Sum of the 4 lanes (shared with the quantized kernels).
#[inline(always)]
pub fn hsum(v: v128) -> f32 {
    f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v) + f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v)
}

#[inline(always)]
fn tile<const MI: usize, const NJ: usize>(i0: usize, j0: usize, n: usize, k: usize, x: &[f32], w: &[f32], out: &mut [f32]) {
    let k4 = k / 4 * 4;
    let mut acc = [[f32x4_splat(0.0); NJ]; MI];
    let xp = x.as_ptr();
    let wp = w.as_ptr();
    let mut kk = 0;
    while kk < k4 {
        // SAFETY: rows i0..i0+MI of x and j0..j0+NJ of w exist (checked by the caller), kk + 4 <= k.
        unsafe {
            let mut wv = [f32x4_splat(0.0); NJ];
            for jj in 0..NJ {
                wv[jj] = v128_load(wp.add((j0 + jj) * k + kk) as *const v128);
            }
            for ii in 0..MI {
                let xv = v128_load(xp.add((i0 + ii) * k + kk) as *const v128);
                for jj in 0..NJ {
                    acc[ii][jj] = madd(xv, wv[jj], acc[ii][jj]);
                }
            }
        }
        kk += 4;
    }
    for ii in 0..MI {
        for jj in 0..NJ {
            let mut s = hsum(acc[ii][jj]);
            for t in k4..k {
                s += x[(i0 + ii) * k + t] * w[(j0 + jj) * k + t];
            }
            out[(i0 + ii) * n + j0 + jj] = s;
        }
    }
}

pub fn matmul_nt(m: usize, n: usize, k: usize, x: &[f32], w: &[f32], out: &mut [f32]) {
    if m == 1 {
        return matvec(n, k, x, w, k, out);
    }
    for_tiles!(m, n, tile, (n, k, x, w, out));
}

/// `out[j] = x · w[j * ldw .. j * ldw + k]` (matrix × vector, a decode step): 8 weight rows per
/// pass, 8 independent accumulators.
pub fn matvec(n: usize, k: usize, x: &[f32], w: &[f32], ldw: usize, out: &mut [f32]) {
    strided::<8>(n, out, |rows, out| row_tile(rows, k, x, w, ldw, out), |row, out| row_tile(row, k, x, w, ldw, out));
}

/// `out[j] = x · w[j]` for the rows `js` of a one-row product, each summed as [`tile`] sums it
/// (one `f32x4` accumulator along `k`, lanes summed, then the tail).
#[inline(always)]
fn row_tile<const R: usize>(js: [usize; R], k: usize, x: &[f32], w: &[f32], ldw: usize, out: &mut [f32]) {
    let k4 = k / 4 * 4;
    let mut acc = [f32x4_splat(0.0); R];
    let (xp, wp) = (x.as_ptr(), js.map(|j| w[j * ldw..j * ldw + k].as_ptr()));
    let mut kk = 0;
    while kk < k4 {
        // SAFETY: each row holds k values (sliced above), kk + 4 <= k.
        unsafe {
            let xv = v128_load(xp.add(kk) as *const v128);
            for r in 0..R {
                acc[r] = madd(xv, v128_load(wp[r].add(kk) as *const v128), acc[r]);
            }
        }
        kk += 4;
    }
    for r in 0..R {
        let mut s = hsum(acc[r]);
        for t in k4..k {
            s += x[t] * w[js[r] * ldw + t];
        }
        out[js[r]] = s;
    }
}

/// The packed-panel micro-kernel ([`super::packed`]): 4 rows × 8 columns (two `f32x4`), 8
/// accumulators, one [`madd`] per accumulator and step of `t` (fused in the relaxed-SIMD build).
pub(crate) const ISA: super::packed::Isa = super::packed::Isa { name: "simd128", mr: 4, nr: 8, tile: packed_tile };

unsafe fn packed_tile(mr: usize, k: usize, x: *const f32, ldx: usize, panel: *const f32, out: *mut f32, ldo: usize, nr: usize) {
    match mr {
        1 => micro::<1>(k, x, ldx, panel, out, ldo, nr),
        2 => micro::<2>(k, x, ldx, panel, out, ldo, nr),
        3 => micro::<3>(k, x, ldx, panel, out, ldo, nr),
        _ => micro::<4>(k, x, ldx, panel, out, ldo, nr),
    }
}

#[inline(always)]
unsafe fn micro<const MR: usize>(k: usize, x: *const f32, ldx: usize, panel: *const f32, out: *mut f32, ldo: usize, nr: usize) {
    let mut acc = [[f32x4_splat(0.0); 2]; MR];
    let mut p = panel;
    for t in 0..k {
        let (b0, b1) = (v128_load(p as *const v128), v128_load(p.add(4) as *const v128));
        for (i, a) in acc.iter_mut().enumerate() {
            let xv = f32x4_splat(*x.add(i * ldx + t));
            a[0] = madd(xv, b0, a[0]);
            a[1] = madd(xv, b1, a[1]);
        }
        p = p.add(8);
    }
    if nr == 8 {
        for (i, a) in acc.iter().enumerate() {
            v128_store(out.add(i * ldo) as *mut v128, a[0]);
            v128_store(out.add(i * ldo + 4) as *mut v128, a[1]);
        }
    } else {
        let mut tmp = [[0.0f32; 8]; MR];
        for (a, t) in acc.iter().zip(tmp.iter_mut()) {
            v128_store(t.as_mut_ptr() as *mut v128, a[0]);
            v128_store(t.as_mut_ptr().add(4) as *mut v128, a[1]);
        }
        super::packed::store(&tmp[..], MR, out, ldo, nr);
    }
}

/// The integer GEMM tile ([`super::int`]): 2 input rows × 2 weight rows, `i32x4.dot_i16x8_s`
/// against both limbs, 8 weights a step, the lanes combined as the integer matvec (and the reference) combines them:
/// q8 outputs equal the matvec's bit for bit; q4 ones too (the same fused or unfused [`madd`]).
#[cfg_attr(not(test), allow(dead_code))] // tested, not dispatched: super::int::int_isa
pub(crate) const INT: super::int::Int = super::int::Int { name: "simd128 int", mr: 2, nr: 2, tile: int_tile };

use super::int::{FixedRows, IntWeights};
use crate::backend::cpu::fixed::{FLUSH, LIMB};

unsafe fn int_tile(fx: &FixedRows, w: &IntWeights<'_>, k: usize, i0: usize, mr: usize, j0: usize, nr: usize, out: *mut f32, ldo: usize) {
    match (mr, nr) {
        (2, 2) => int_mn::<2, 2>(fx, w, k, i0, j0, out, ldo),
        (1, 2) => int_mn::<1, 2>(fx, w, k, i0, j0, out, ldo),
        (2, 1) => int_mn::<2, 1>(fx, w, k, i0, j0, out, ldo),
        _ => int_mn::<1, 1>(fx, w, k, i0, j0, out, ldo),
    }
}

#[inline(always)]
unsafe fn int_mn<const MR: usize, const NR: usize>(fx: &FixedRows, w: &IntWeights<'_>, k: usize, i0: usize, j0: usize, out: *mut f32, ldo: usize) {
    let hp: [*const i16; MR] = core::array::from_fn(|i| fx.rows[i0 + i].hi.as_ptr());
    let lp: [*const i16; MR] = core::array::from_fn(|i| fx.rows[i0 + i].lo.as_ptr());
    match *w {
        IntWeights::Q8 { codes, scales } => {
            let cp = codes.as_ptr().add(j0 * k);
            let mut s = [[0i64; NR]; MR];
            let mut c0 = 0;
            while c0 < k {
                let c1 = (c0 + FLUSH).min(k);
                let (mut ah, mut al) = ([[i32x4_splat(0); NR]; MR], [[i32x4_splat(0); NR]; MR]);
                // 8 weights a step, one limb vector live at a time: V8 has 16 vector registers
                for t in (c0..c1).step_by(8) {
                    let q: [v128; NR] = core::array::from_fn(|r| i16x8_load_extend_i8x8(cp.add(r * k + t)));
                    for i in 0..MR {
                        let h = v128_load(hp[i].add(t) as *const v128);
                        for r in 0..NR {
                            ah[i][r] = i32x4_add(ah[i][r], i32x4_dot_i16x8(q[r], h));
                        }
                        let l = v128_load(lp[i].add(t) as *const v128);
                        for r in 0..NR {
                            al[i][r] = i32x4_add(al[i][r], i32x4_dot_i16x8(q[r], l));
                        }
                    }
                }
                for i in 0..MR {
                    for r in 0..NR {
                        s[i][r] += (lanes_i64(ah[i][r]) << LIMB) + lanes_i64(al[i][r]);
                    }
                }
                c0 = c1;
            }
            for i in 0..MR {
                for r in 0..NR {
                    *out.add((i0 + i) * ldo + j0 + r) = fx.rows[i0 + i].out(s[i][r], scales[j0 + r]);
                }
            }
        }
        IntWeights::Q4 { packed, group, scales, zeros } => {
            let gpr = k / group;
            let pp = packed.as_ptr().add(j0 * k / 2);
            let nib = i16x8_splat(0x0f);
            let limb = f32x4_splat((1u32 << LIMB) as f32);
            let mut tot = [[f32x4_splat(0.0); NR]; MR];
            for g in 0..gpr {
                let (mut ah, mut al) = ([[i32x4_splat(0); NR]; MR], [[i32x4_splat(0); NR]; MR]);
                for c in g * group / 64..(g + 1) * group / 64 {
                    for h in 0..2 {
                        // byte b of these 16: weight 64c + 16h + b in its low nibble, 64c + 32 + 16h + b
                        // in its high one; 8 weights a step, as for q8
                        let v: [v128; NR] = core::array::from_fn(|r| v128_load(pp.add(r * k / 2 + c * 32 + h * 16) as *const v128));
                        for sub in 0..4 {
                            let t = c * 64 + h * 16 + (sub & 1) * 8 + (sub >> 1) * 32;
                            let q: [v128; NR] = core::array::from_fn(|r| {
                                let e = if sub & 1 == 0 { u16x8_extend_low_u8x16(v[r]) } else { u16x8_extend_high_u8x16(v[r]) };
                                if sub < 2 { v128_and(e, nib) } else { u16x8_shr(e, 4) }
                            });
                            for i in 0..MR {
                                let hv = v128_load(hp[i].add(t) as *const v128);
                                for r in 0..NR {
                                    ah[i][r] = i32x4_add(ah[i][r], i32x4_dot_i16x8(q[r], hv));
                                }
                                let lv = v128_load(lp[i].add(t) as *const v128);
                                for r in 0..NR {
                                    al[i][r] = i32x4_add(al[i][r], i32x4_dot_i16x8(q[r], lv));
                                }
                            }
                        }
                    }
                }
                for i in 0..MR {
                    for r in 0..NR {
                        // 2^14 hi is exact, so the sum is rounded once (with or without fused madd)
                        let v = madd(f32x4_convert_i32x4(ah[i][r]), limb, f32x4_convert_i32x4(al[i][r]));
                        tot[i][r] = madd(v, f32x4_splat(scales[(j0 + r) * gpr + g]), tot[i][r]);
                    }
                }
            }
            for i in 0..MR {
                for r in 0..NR {
                    let j = j0 + r;
                    let zs = super::int::zero_term(&scales[j * gpr..(j + 1) * gpr], &zeros[j * gpr..(j + 1) * gpr], &fx.xs[i0 + i]);
                    *out.add((i0 + i) * ldo + j) = (hsum(tot[i][r]) as f64 * fx.rows[i0 + i].unit) as f32 + zs;
                }
            }
        }
    }
}

/// The sum of the four i32 lanes, in i64.
#[inline(always)]
fn lanes_i64(v: v128) -> i64 {
    i32x4_extract_lane::<0>(v) as i64 + i32x4_extract_lane::<1>(v) as i64 + i32x4_extract_lane::<2>(v) as i64 + i32x4_extract_lane::<3>(v) as i64
}
