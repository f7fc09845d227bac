//! AVX2 + FMA + F16C one-row kernels (runtime-detected).

use crate::backend::cpu::gemm::avx2::hsum;
use crate::dtype::QWeight;
use core::arch::x86_64::*;

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn matvec(x: &[f32], w: &QWeight, out: &mut [f32]) {
    let (n, k) = w.dims();
    let xp = x.as_ptr();
    match w {
        QWeight::F32 { .. } => super::scalar::matvec(x, w, out),
        QWeight::F16 { data, .. } => {
            for j in 0..n {
                let r = data.as_ptr().add(j * k);
                out[j] = dot16(xp, k, |t| f16x8(r.add(t)), |t| half::f16::from_bits(*r.add(t)).to_f32());
            }
        }
        QWeight::BF16 { data, .. } => {
            for j in 0..n {
                let r = data.as_ptr().add(j * k);
                out[j] = dot16(
                    xp,
                    k,
                    |t| _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(_mm_loadu_si128(r.add(t) as *const __m128i)))),
                    |t| f32::from_bits((*r.add(t) as u32) << 16),
                );
            }
        }
        QWeight::Q8 { scales, .. } if scales.len() == n && k % 8 == 0 => q8_per_row(x, w, out),
        QWeight::Q8 { codes, scales, .. } if scales.len() == n => {
            for j in 0..n {
                let r = codes.as_ptr().add(j * k);
                let s = dot16(
                    xp,
                    k,
                    |t| _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(r.add(t) as *const __m128i))),
                    |t| *r.add(t) as f32,
                );
                out[j] = s * scales[j];
            }
        }
        QWeight::Q8 { codes, scales, .. } => {
            let group = crate::dtype::quant::q8_group(n, k, scales.len());
            if group % 16 != 0 {
                return super::scalar::matvec(x, w, out);
            }
            let bpr = k / group;
            for j in 0..n {
                let r = codes.as_ptr().add(j * k);
                let sc = scales.as_ptr().add(j * bpr);
                // two row totals (even / odd blocks) so the scaled adds do not wait on each other
                let mut tots = [_mm256_setzero_ps(); 2];
                for b in 0..bpr {
                    if group == 32 {
                        // GGUF Q8_0: the block's 32 codes in two loads, four products, one scale
                        let t = b * 32;
                        let v = _mm_loadu_si128(r.add(t) as *const __m128i);
                        let u = _mm_loadu_si128(r.add(t + 16) as *const __m128i);
                        let w0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
                        let w1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128::<8>(v)));
                        let w2 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(u));
                        let w3 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128::<8>(u)));
                        let p0 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xp.add(t + 8)), _mm256_mul_ps(w0, _mm256_loadu_ps(xp.add(t))));
                        let p1 = _mm256_fmadd_ps(w3, _mm256_loadu_ps(xp.add(t + 24)), _mm256_mul_ps(w2, _mm256_loadu_ps(xp.add(t + 16))));
                        tots[b & 1] = _mm256_fmadd_ps(_mm256_add_ps(p0, p1), _mm256_set1_ps(*sc.add(b)), tots[b & 1]);
                        continue;
                    }
                    // one block: Σ q x in two accumulators, scaled once into a row total
                    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
                    let mut t = b * group;
                    while t < (b + 1) * group {
                        // 16 codes: one 128-bit load, sign-extended in two halves
                        let v = _mm_loadu_si128(r.add(t) as *const __m128i);
                        let w0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
                        let w1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128::<8>(v)));
                        a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xp.add(t)), a0);
                        a1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xp.add(t + 8)), a1);
                        t += 16;
                    }
                    tots[b & 1] = _mm256_fmadd_ps(_mm256_add_ps(a0, a1), _mm256_set1_ps(*sc.add(b)), tots[b & 1]);
                }
                out[j] = hsum(_mm256_add_ps(tots[0], tots[1]));
            }
        }
        QWeight::Q4 { group, .. } if *group == 32 => q4_g32(x, w, out),
        QWeight::Q4 { group, packed, scales, zeros, .. } => {
            let group = *group;
            let gpr = k / group;
            let xs = super::group_sums(&x[..k], group);
            let mask = _mm256_set1_epi32(15);
            for j in 0..n {
                let row = packed.as_ptr().add(j * k / 2);
                let mut tot = _mm256_setzero_ps();
                let mut zs = 0.0f32;
                for g in 0..gpr {
                    let (mut a0, mut a1, mut a2, mut a3) = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
                    let mut base = g * group;
                    while base < (g + 1) * group {
                        let p = row.add(base / 2);
                        // 32 bytes = 64 weights: byte i → weights base+i (low) and base+32+i (high)
                        for s in 0..2 {
                            let v0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.add(s * 16) as *const __m128i));
                            let v1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.add(s * 16 + 8) as *const __m128i));
                            let l0 = _mm256_cvtepi32_ps(_mm256_and_si256(v0, mask));
                            let l1 = _mm256_cvtepi32_ps(_mm256_and_si256(v1, mask));
                            let h0 = _mm256_cvtepi32_ps(_mm256_srli_epi32::<4>(v0));
                            let h1 = _mm256_cvtepi32_ps(_mm256_srli_epi32::<4>(v1));
                            let xo = base + s * 16;
                            a0 = _mm256_fmadd_ps(l0, _mm256_loadu_ps(xp.add(xo)), a0);
                            a1 = _mm256_fmadd_ps(l1, _mm256_loadu_ps(xp.add(xo + 8)), a1);
                            a2 = _mm256_fmadd_ps(h0, _mm256_loadu_ps(xp.add(xo + 32)), a2);
                            a3 = _mm256_fmadd_ps(h1, _mm256_loadu_ps(xp.add(xo + 40)), a3);
                        }
                        base += 64;
                    }
                    let acc = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
                    let sc = scales[j * gpr + g];
                    tot = _mm256_fmadd_ps(acc, _mm256_set1_ps(sc), tot);
                    zs += (zeros[j * gpr + g] - 8.0 * sc) * xs[g];
                }
                out[j] = hsum(tot) + zs;
            }
        }
    }
}

/// q8 with one scale per row, `k % 8 == 0`: [`Q8_ROWS`] rows per pass (each `x` load serves
/// them all), 8 codes per sign-extending load (`vpmovsxbd`), prefetched a whole number of
/// passes ahead as in the AVX-512 kernel. `Σ q x` per row, scaled once.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_per_row(x: &[f32], w: &QWeight, out: &mut [f32]) {
    let QWeight::Q8 { n, k, codes, scales } = w else { unreachable!() };
    let (n, k) = (*n, *k);
    debug_assert!(k % 8 == 0 && scales.len() == n && codes.len() == n * k);
    let pass = Q8_ROWS * k;
    let ahead = PREFETCH.div_ceil(pass).max(1) * pass;
    let mut j = 0;
    while j + Q8_ROWS <= n {
        let a = q8_rows::<Q8_ROWS>(x.as_ptr(), k, codes.as_ptr().add(j * k), ahead);
        for r in 0..Q8_ROWS {
            out[j + r] = hsum(a[r]) * scales[j + r];
        }
        j += Q8_ROWS;
    }
    while j < n {
        out[j] = hsum(q8_rows::<1>(x.as_ptr(), k, codes.as_ptr().add(j * k), ahead)[0]) * scales[j];
        j += 1;
    }
}

/// Weight rows [`q8_per_row`] takes per pass.
const Q8_ROWS: usize = 4;

/// Software prefetch distance (bytes, rounded up to whole passes) for [`q8_per_row`].
const PREFETCH: usize = 4096;

/// `R` rows of `k` codes from `rows` (row stride `k`): per row 8 lanes summing to `Σ q x`.
#[inline(always)]
unsafe fn q8_rows<const R: usize>(xp: *const f32, k: usize, rows: *const i8, ahead: usize) -> [__m256; R] {
    let q = |p: *const i8| _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i)));
    let mut a = [[_mm256_setzero_ps(); 2]; R];
    let mut t = 0;
    while t + 64 <= k {
        for r in 0..R {
            // a hint only (never faults), so it may point past the matrix
            _mm_prefetch::<_MM_HINT_T0>(rows.wrapping_add(r * k + t + ahead));
        }
        for s in 0..8 {
            let xv = _mm256_loadu_ps(xp.add(t + 8 * s));
            for r in 0..R {
                a[r][s % 2] = _mm256_fmadd_ps(q(rows.add(r * k + t + 8 * s)), xv, a[r][s % 2]);
            }
        }
        t += 64;
    }
    while t < k {
        let xv = _mm256_loadu_ps(xp.add(t));
        for r in 0..R {
            a[r][0] = _mm256_fmadd_ps(q(rows.add(r * k + t)), xv, a[r][0]);
        }
        t += 8;
    }
    core::array::from_fn(|r| _mm256_add_ps(a[r][0], a[r][1]))
}

/// q4 with groups of 32 (GGUF Q4_0 / Q4_1): per 64-weight chunk the low nibbles are group 2c
/// and the high nibbles group 2c + 1, each scaled once into the row total.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_g32(x: &[f32], w: &QWeight, out: &mut [f32]) {
    let QWeight::Q4 { n, k, packed, scales, zeros, .. } = w else { unreachable!() };
    let (n, k) = (*n, *k);
    let gpr = k / 32;
    let xp = x.as_ptr();
    let xs = super::group_sums(&x[..k], 32);
    let mask = _mm256_set1_epi32(15);
    for j in 0..n {
        let row = packed.as_ptr().add(j * k / 2);
        let (sc, zr) = (&scales[j * gpr..(j + 1) * gpr], &zeros[j * gpr..(j + 1) * gpr]);
        let (mut tot, mut tot_hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut zs = 0.0f32;
        for c in 0..k / 64 {
            let p = row.add(c * 32);
            let base = c * 64;
            let (mut a0, mut a1, mut a2, mut a3) = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
            for s in 0..2 {
                let v0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.add(s * 16) as *const __m128i));
                let v1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.add(s * 16 + 8) as *const __m128i));
                let xo = base + s * 16;
                a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v0, mask)), _mm256_loadu_ps(xp.add(xo)), a0);
                a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v1, mask)), _mm256_loadu_ps(xp.add(xo + 8)), a1);
                a2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32::<4>(v0)), _mm256_loadu_ps(xp.add(xo + 32)), a2);
                a3 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32::<4>(v1)), _mm256_loadu_ps(xp.add(xo + 40)), a3);
            }
            let (g0, g1) = (2 * c, 2 * c + 1);
            tot = _mm256_fmadd_ps(_mm256_add_ps(a0, a1), _mm256_set1_ps(sc[g0]), tot);
            tot_hi = _mm256_fmadd_ps(_mm256_add_ps(a2, a3), _mm256_set1_ps(sc[g1]), tot_hi);
            zs += (zr[g0] - 8.0 * sc[g0]) * xs[g0] + (zr[g1] - 8.0 * sc[g1]) * xs[g1];
        }
        out[j] = hsum(_mm256_add_ps(tot, tot_hi)) + zs;
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16x8(p: *const u16) -> __m256 {
    _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
}

/// `Σ x[t] · w(t)` with `load(t)` giving 8 converted weights at `t` and `one(t)` a single one.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot16(xp: *const f32, k: usize, load: impl Fn(usize) -> __m256, one: impl Fn(usize) -> f32) -> f32 {
    let k16 = k / 16 * 16;
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut t = 0;
    while t < k16 {
        a0 = _mm256_fmadd_ps(load(t), _mm256_loadu_ps(xp.add(t)), a0);
        a1 = _mm256_fmadd_ps(load(t + 8), _mm256_loadu_ps(xp.add(t + 8)), a1);
        t += 16;
    }
    let mut s = hsum(_mm256_add_ps(a0, a1));
    for t in k16..k {
        s += *xp.add(t) * one(t);
    }
    s
}
