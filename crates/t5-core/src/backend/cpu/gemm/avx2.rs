//! AVX2 + FMA f32 tiles (runtime-detected).

use super::strided;
use core::arch::x86_64::*;

/// Sum of the 8 lanes (shared with the quantized kernels).
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn hsum(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps::<1>(v);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<0x55>(s, s));
    _mm_cvtss_f32(s)
}

#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const MI: usize, const NJ: usize>(i0: usize, j0: usize, n: usize, k: usize, x: &[f32], w: &[f32], out: &mut [f32]) {
    let k8 = k / 8 * 8;
    let xp = x.as_ptr();
    let wp = w.as_ptr();
    let mut acc = [[_mm256_setzero_ps(); NJ]; MI];
    let mut kk = 0;
    while kk < k8 {
        let mut wv = [_mm256_setzero_ps(); NJ];
        for jj in 0..NJ {
            wv[jj] = _mm256_loadu_ps(wp.add((j0 + jj) * k + kk));
        }
        for ii in 0..MI {
            let xv = _mm256_loadu_ps(xp.add((i0 + ii) * k + kk));
            for jj in 0..NJ {
                acc[ii][jj] = _mm256_fmadd_ps(xv, wv[jj], acc[ii][jj]);
            }
        }
        kk += 8;
    }
    for ii in 0..MI {
        for jj in 0..NJ {
            let mut s = hsum(acc[ii][jj]);
            for t in k8..k {
                s += x[(i0 + ii) * k + t] * w[(j0 + jj) * k + t];
            }
            out[(i0 + ii) * n + j0 + jj] = s;
        }
    }
}

#[target_feature(enable = "avx2,fma")]
pub unsafe fn matmul_nt(m: usize, n: usize, k: usize, x: &[f32], w: &[f32], out: &mut [f32]) {
    if m == 1 {
        return matvec(n, k, x, w, k, out);
    }
    for_tiles!(m, n, tile, (n, k, x, w, out));
}

/// `out[j] = x · w[j * ldw .. j * ldw + k]` (matrix × vector, a decode step): 8 weight rows per
/// pass, `n / 8` apart, 8 accumulators.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn matvec(n: usize, k: usize, x: &[f32], w: &[f32], ldw: usize, out: &mut [f32]) {
    strided::<8>(n, out, |rows, out| row_tile(rows, k, x, w, ldw, out), |row, out| row_tile(row, k, x, w, ldw, out));
}

/// `out[j] = x · w[j]` for the rows `js` of a one-row product, each summed as [`tile`] sums it
/// (one 8-lane accumulator along `k`, lanes summed, then the tail).
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_tile<const R: usize>(js: [usize; R], k: usize, x: &[f32], w: &[f32], ldw: usize, out: &mut [f32]) {
    let k8 = k / 8 * 8;
    let (xp, wp) = (x.as_ptr(), js.map(|j| w[j * ldw..j * ldw + k].as_ptr()));
    let mut acc = [_mm256_setzero_ps(); R];
    let mut kk = 0;
    while kk < k8 {
        let xv = _mm256_loadu_ps(xp.add(kk));
        for r in 0..R {
            acc[r] = _mm256_fmadd_ps(xv, _mm256_loadu_ps(wp[r].add(kk)), acc[r]);
        }
        kk += 8;
    }
    for r in 0..R {
        let mut s = hsum(acc[r]);
        for t in k8..k {
            s += x[t] * w[js[r] * ldw + t];
        }
        out[js[r]] = s;
    }
}

/// The packed-panel micro-kernel ([`super::packed`]): 6 rows × 16 columns (two 8-lane vectors), 12
/// accumulators, one fused multiply-add per accumulator and step of `t`.
pub(crate) const ISA: super::packed::Isa = super::packed::Isa { name: "avx2", mr: 6, nr: 16, tile: packed_tile };

unsafe fn packed_tile(mr: usize, k: usize, x: *const f32, ldx: usize, panel: *const f32, out: *mut f32, ldo: usize, nr: usize) {
    match mr {
        1 => micro::<1>(k, x, ldx, panel, out, ldo, nr),
        2 => micro::<2>(k, x, ldx, panel, out, ldo, nr),
        3 => micro::<3>(k, x, ldx, panel, out, ldo, nr),
        4 => micro::<4>(k, x, ldx, panel, out, ldo, nr),
        5 => micro::<5>(k, x, ldx, panel, out, ldo, nr),
        _ => micro::<6>(k, x, ldx, panel, out, ldo, nr),
    }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn micro<const MR: usize>(k: usize, x: *const f32, ldx: usize, panel: *const f32, out: *mut f32, ldo: usize, nr: usize) {
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    let mut p = panel;
    for t in 0..k {
        let (b0, b1) = (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)));
        for (i, a) in acc.iter_mut().enumerate() {
            let xv = _mm256_set1_ps(*x.add(i * ldx + t));
            a[0] = _mm256_fmadd_ps(xv, b0, a[0]);
            a[1] = _mm256_fmadd_ps(xv, b1, a[1]);
        }
        p = p.add(16);
    }
    if nr == 16 {
        for (i, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.add(i * ldo), a[0]);
            _mm256_storeu_ps(out.add(i * ldo + 8), a[1]);
        }
    } else {
        let mut tmp = [[0.0f32; 16]; MR];
        for (a, t) in acc.iter().zip(tmp.iter_mut()) {
            _mm256_storeu_ps(t.as_mut_ptr(), a[0]);
            _mm256_storeu_ps(t.as_mut_ptr().add(8), a[1]);
        }
        super::packed::store(&tmp[..], MR, out, ldo, nr);
    }
}

/// The integer GEMM tile ([`super::int`]): 2 input rows × 2 weight rows, `vpmaddwd` (pairs of i16
/// products summed into 8 i32 lanes) against both limbs. The lanes are combined exactly as the
/// reference combines them (q8: summed in i64 per flush; q4: lanes `l` and `l + 4` added, then the
/// reference's 4 f32 lanes), so every output equals the reference's bit for bit.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const INT: super::int::Int = super::int::Int { name: "avx2 int", mr: 2, nr: 2, tile: int_tile };

#[cfg_attr(not(test), allow(dead_code))]
unsafe fn int_tile(fx: &FixedRows, w: &IntWeights<'_>, k: usize, i0: usize, mr: usize, j0: usize, nr: usize, out: *mut f32, ldo: usize) {
    match (mr, nr) {
        (2, 2) => int_mn::<2, 2>(fx, w, k, i0, j0, out, ldo),
        (1, 2) => int_mn::<1, 2>(fx, w, k, i0, j0, out, ldo),
        (2, 1) => int_mn::<2, 1>(fx, w, k, i0, j0, out, ldo),
        _ => int_mn::<1, 1>(fx, w, k, i0, j0, out, ldo),
    }
}

use super::int::{FixedRows, IntWeights};
use crate::backend::cpu::fixed::{FLUSH, LIMB};

#[cfg_attr(not(test), allow(dead_code))]
#[target_feature(enable = "avx2")]
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
                let (mut ah, mut al) = ([[_mm256_setzero_si256(); NR]; MR], [[_mm256_setzero_si256(); NR]; MR]);
                for t in (c0..c1).step_by(16) {
                    let mut q = [_mm256_setzero_si256(); NR];
                    for (r, q) in q.iter_mut().enumerate() {
                        *q = _mm256_cvtepi8_epi16(_mm_loadu_si128(cp.add(r * k + t) as *const __m128i));
                    }
                    for i in 0..MR {
                        let h = _mm256_loadu_si256(hp[i].add(t) as *const __m256i);
                        let l = _mm256_loadu_si256(lp[i].add(t) as *const __m256i);
                        for r in 0..NR {
                            ah[i][r] = _mm256_add_epi32(ah[i][r], _mm256_madd_epi16(q[r], h));
                            al[i][r] = _mm256_add_epi32(al[i][r], _mm256_madd_epi16(q[r], l));
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
            let nib = _mm256_set1_epi16(0x0f);
            let limb = _mm_set1_ps((1u32 << LIMB) as f32);
            let mut tot = [[_mm_setzero_ps(); NR]; MR];
            for g in 0..gpr {
                let (mut ah, mut al) = ([[_mm256_setzero_si256(); NR]; MR], [[_mm256_setzero_si256(); NR]; MR]);
                for c in g * group / 64..(g + 1) * group / 64 {
                    for h in 0..2 {
                        // low nibbles: weights t..t+16, high nibbles: t+32..t+48
                        let t = c * 64 + h * 16;
                        let mut ql = [_mm256_setzero_si256(); NR];
                        let mut qh = [_mm256_setzero_si256(); NR];
                        for r in 0..NR {
                            let e = _mm256_cvtepu8_epi16(_mm_loadu_si128(pp.add(r * k / 2 + c * 32 + h * 16) as *const __m128i));
                            ql[r] = _mm256_and_si256(e, nib);
                            qh[r] = _mm256_srli_epi16::<4>(e);
                        }
                        for i in 0..MR {
                            let (h0, h1) = (_mm256_loadu_si256(hp[i].add(t) as *const __m256i), _mm256_loadu_si256(hp[i].add(t + 32) as *const __m256i));
                            let (l0, l1) = (_mm256_loadu_si256(lp[i].add(t) as *const __m256i), _mm256_loadu_si256(lp[i].add(t + 32) as *const __m256i));
                            for r in 0..NR {
                                ah[i][r] = _mm256_add_epi32(ah[i][r], _mm256_add_epi32(_mm256_madd_epi16(ql[r], h0), _mm256_madd_epi16(qh[r], h1)));
                                al[i][r] = _mm256_add_epi32(al[i][r], _mm256_add_epi32(_mm256_madd_epi16(ql[r], l0), _mm256_madd_epi16(qh[r], l1)));
                            }
                        }
                    }
                }
                for i in 0..MR {
                    for r in 0..NR {
                        let v = _mm_add_ps(_mm_mul_ps(fold(ah[i][r]), limb), fold(al[i][r]));
                        tot[i][r] = _mm_add_ps(tot[i][r], _mm_mul_ps(v, _mm_set1_ps(scales[(j0 + r) * gpr + g])));
                    }
                }
            }
            for i in 0..MR {
                for r in 0..NR {
                    let mut l = [0.0f32; 4];
                    _mm_storeu_ps(l.as_mut_ptr(), tot[i][r]);
                    let j = j0 + r;
                    let zs = super::int::zero_term(&scales[j * gpr..(j + 1) * gpr], &zeros[j * gpr..(j + 1) * gpr], &fx.xs[i0 + i]);
                    *out.add((i0 + i) * ldo + j) = (l.iter().sum::<f32>() as f64 * fx.rows[i0 + i].unit) as f32 + zs;
                }
            }
        }
    }
}

/// Lanes `l` and `l + 4` (weights with `(t mod 8) / 2 = l`: the reference's lane `l`) added, as f32
/// (exact: below 2^24).
#[cfg_attr(not(test), allow(dead_code))]
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn fold(v: __m256i) -> __m128 {
    _mm_cvtepi32_ps(_mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v)))
}

/// The sum of the 8 i32 lanes, in i64.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn lanes_i64(v: __m256i) -> i64 {
    let mut l = [0i32; 8];
    _mm256_storeu_si256(l.as_mut_ptr() as *mut __m256i, v);
    l.iter().map(|&x| x as i64).sum()
}
