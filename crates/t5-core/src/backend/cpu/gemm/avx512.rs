//! AVX-512F packed-panel micro-kernel ([`super::packed`]), runtime-detected: 12 rows × 32 columns
//! (two 16-lane vectors), 24 of the 32 vector registers as accumulators, one fused multiply-add per
//! accumulator and step of `t` (the broadcast of `x` folds into it).

use core::arch::x86_64::*;

pub(crate) const ISA: super::packed::Isa = super::packed::Isa { name: "avx512", mr: 12, nr: 32, tile: packed_tile };

unsafe fn packed_tile(mr: usize, k: usize, x: *const f32, ldx: usize, panel: *const f32, out: *mut f32, ldo: usize, nr: usize) {
    match mr {
        1 => micro::<1>(k, x, ldx, panel, out, ldo, nr),
        2 => micro::<2>(k, x, ldx, panel, out, ldo, nr),
        3 => micro::<3>(k, x, ldx, panel, out, ldo, nr),
        4 => micro::<4>(k, x, ldx, panel, out, ldo, nr),
        5 => micro::<5>(k, x, ldx, panel, out, ldo, nr),
        6 => micro::<6>(k, x, ldx, panel, out, ldo, nr),
        7 => micro::<7>(k, x, ldx, panel, out, ldo, nr),
        8 => micro::<8>(k, x, ldx, panel, out, ldo, nr),
        9 => micro::<9>(k, x, ldx, panel, out, ldo, nr),
        10 => micro::<10>(k, x, ldx, panel, out, ldo, nr),
        11 => micro::<11>(k, x, ldx, panel, out, ldo, nr),
        _ => micro::<12>(k, x, ldx, panel, out, ldo, nr),
    }
}

#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn micro<const MR: usize>(k: usize, x: *const f32, ldx: usize, panel: *const f32, out: *mut f32, ldo: usize, nr: usize) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    let mut p = panel;
    for t in 0..k {
        let (b0, b1) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)));
        for (i, a) in acc.iter_mut().enumerate() {
            let xv = _mm512_set1_ps(*x.add(i * ldx + t));
            a[0] = _mm512_fmadd_ps(xv, b0, a[0]);
            a[1] = _mm512_fmadd_ps(xv, b1, a[1]);
        }
        p = p.add(32);
    }
    if nr == 32 {
        for (i, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(out.add(i * ldo), a[0]);
            _mm512_storeu_ps(out.add(i * ldo + 16), a[1]);
        }
    } else {
        let mut tmp = [[0.0f32; 32]; MR];
        for (a, t) in acc.iter().zip(tmp.iter_mut()) {
            _mm512_storeu_ps(t.as_mut_ptr(), a[0]);
            _mm512_storeu_ps(t.as_mut_ptr().add(16), a[1]);
        }
        super::packed::store(&tmp[..], MR, out, ldo, nr);
    }
}

/// The integer GEMM ([`super::int`]) with AVX-512 VNNI, runtime-detected: 4 input rows × 3 weight
/// rows, two accumulators (the `hi` and `lo` limbs) per output, one `vpdpwssd` per accumulator
/// and 32 weights. A 16-lane accumulator holds, in lane `L`, the products of the weights `t` with
/// `t mod 32 ∈ {2L, 2L + 1}`: for q8 every lane is summed in i64 per [`FLUSH`] weights (the exact
/// `Σ q X` whatever the order); for q4 lanes `L ≡ l (mod 4)` are the reference's lane `l`
/// (`(t mod 8) / 2 = L mod 4`), summed exactly in i32 and then combined in the reference's f32
/// order, so every output equals [`super::int::reference`]'s bit for bit.
pub(crate) const INT: super::int::Int = super::int::Int { name: "avx512 vnni int", mr: 4, nr: 3, tile: int_tile };

/// Whether this machine runs [`INT`].
pub(crate) fn has_int() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") && std::is_x86_feature_detected!("avx512vnni")
}

unsafe fn int_tile(fx: &FixedRows, w: &IntWeights<'_>, k: usize, i0: usize, mr: usize, j0: usize, nr: usize, out: *mut f32, ldo: usize) {
    macro_rules! go {
        ($($m:literal $n:literal),*) => {
            match (mr, nr) {
                $(($m, $n) => int_mn::<$m, $n>(fx, w, k, i0, j0, out, ldo),)*
                _ => unreachable!("int tile {mr}x{nr}"),
            }
        };
    }
    go!(4 3, 4 2, 4 1, 3 3, 3 2, 3 1, 2 3, 2 2, 2 1, 1 3, 1 2, 1 1)
}

use super::int::{FixedRows, IntWeights};
use crate::backend::cpu::fixed::{FLUSH, LIMB};

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn int_mn<const MR: usize, const NR: usize>(fx: &FixedRows, w: &IntWeights<'_>, k: usize, i0: usize, j0: usize, out: *mut f32, ldo: usize) {
    let hp: [*const i16; MR] = core::array::from_fn(|i| fx.rows[i0 + i].hi.as_ptr());
    let lp: [*const i16; MR] = core::array::from_fn(|i| fx.rows[i0 + i].lo.as_ptr());
    let ld = |p: *const i16| _mm512_loadu_si512(p as *const __m512i);
    match *w {
        IntWeights::Q8 { codes, scales } => {
            let cp = codes.as_ptr().add(j0 * k);
            let mut s = [[0i64; NR]; MR];
            let mut c0 = 0;
            while c0 < k {
                let c1 = (c0 + FLUSH).min(k);
                let (mut ah, mut al) = ([[_mm512_setzero_si512(); NR]; MR], [[_mm512_setzero_si512(); NR]; MR]);
                let mut t = c0;
                while t + 32 <= c1 {
                    let q: [__m512i; NR] = core::array::from_fn(|r| _mm512_cvtepi8_epi16(_mm256_loadu_si256(cp.add(r * k + t) as *const __m256i)));
                    for i in 0..MR {
                        let (h, l) = (ld(hp[i].add(t)), ld(lp[i].add(t)));
                        for r in 0..NR {
                            ah[i][r] = _mm512_dpwssd_epi32(ah[i][r], q[r], h);
                            al[i][r] = _mm512_dpwssd_epi32(al[i][r], q[r], l);
                        }
                    }
                    t += 32;
                }
                if t < c1 {
                    // k is a multiple of 16: one half vector left
                    let q: [__m512i; NR] = core::array::from_fn(|r| _mm512_cvtepi8_epi16(_mm256_zextsi128_si256(_mm_loadu_si128(cp.add(r * k + t) as *const __m128i))));
                    for i in 0..MR {
                        let h = _mm512_zextsi256_si512(_mm256_loadu_si256(hp[i].add(t) as *const __m256i));
                        let l = _mm512_zextsi256_si512(_mm256_loadu_si256(lp[i].add(t) as *const __m256i));
                        for r in 0..NR {
                            ah[i][r] = _mm512_dpwssd_epi32(ah[i][r], q[r], h);
                            al[i][r] = _mm512_dpwssd_epi32(al[i][r], q[r], l);
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
            let nib = _mm512_set1_epi16(0x0f);
            let limb = _mm_set1_ps((1u32 << LIMB) as f32);
            let mut tot = [[_mm_setzero_ps(); NR]; MR];
            for g in 0..gpr {
                let (mut ah, mut al) = ([[_mm512_setzero_si512(); NR]; MR], [[_mm512_setzero_si512(); NR]; MR]);
                for c in g * group / 64..(g + 1) * group / 64 {
                    // byte b of the chunk: weight 64c + b in its low nibble, 64c + 32 + b in its high one
                    let e: [__m512i; NR] = core::array::from_fn(|r| _mm512_cvtepu8_epi16(_mm256_loadu_si256(pp.add(r * k / 2 + c * 32) as *const __m256i)));
                    for half in 0..2 {
                        let t = c * 64 + half * 32;
                        let q: [__m512i; NR] = core::array::from_fn(|r| if half == 0 { _mm512_and_si512(e[r], nib) } else { _mm512_srli_epi16::<4>(e[r]) });
                        for i in 0..MR {
                            let (h, l) = (ld(hp[i].add(t)), ld(lp[i].add(t)));
                            for r in 0..NR {
                                ah[i][r] = _mm512_dpwssd_epi32(ah[i][r], q[r], h);
                                al[i][r] = _mm512_dpwssd_epi32(al[i][r], q[r], l);
                            }
                        }
                    }
                }
                for i in 0..MR {
                    for r in 0..NR {
                        let v = _mm_add_ps(_mm_mul_ps(fold4(ah[i][r]), limb), fold4(al[i][r]));
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

/// Lanes `L ≡ l (mod 4)` added (the reference's lane `l`), as f32 (exact: below 2^24).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn fold4(v: __m512i) -> __m128 {
    let a = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v));
    _mm_cvtepi32_ps(_mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256::<1>(a)))
}

/// The sum of the 16 i32 lanes, in i64.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn lanes_i64(v: __m512i) -> i64 {
    let mut l = [0i32; 16];
    _mm512_storeu_si512(l.as_mut_ptr() as *mut __m512i, v);
    l.iter().map(|&x| x as i64).sum()
}
