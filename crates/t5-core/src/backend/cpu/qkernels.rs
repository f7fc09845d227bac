//! `out = x · w^T` for every weight storage form ([`QWeight`]) without ever dequantizing a whole
//! matrix:
//! * one input row (a decode step): fused dequantize-and-dot per weight row, straight from the
//!   packed codes into SIMD registers (AVX-512 for q4, q8 and bf16, else AVX2+FMA(+F16C), runtime-detected
//!   natively; SIMD128 in wasm; scalar otherwise). q4 accumulates `Σ q x` per group and adds `scale · that + (zero - 8 scale) · Σx`;
//!   q8 accumulates `Σ q x` per row and multiplies by the row scale once (per 32-weight block for
//!   GGUF Q8_0: block sums scaled and accumulated in registers); in wasm, q8 with one scale per row
//!   and q4 with groups of 64-256 sum exact integer products against a fixed-point copy of `x`
//!   instead ([`fixed`]); GGUF Q4_0 / Q4_1 are q4 with groups
//!   of 32 (the low and the high nibbles of each 64-weight chunk are two groups).
//! * several input rows (encoder, prompt): a strip of [`STRIP`] weight rows is dequantized into a
//!   small f32 scratch buffer (exactly torchao's dequantization, so the products equal those of the
//!   dequantized model) and multiplied against all input rows with the f32 tile kernel.

use super::kernels;
use crate::dtype::QWeight;

/// Weight rows dequantized at a time for multi-row inputs.
const STRIP: usize = 32;

/// `out[i*n + j] = Σ_t x[i*k + t] · w[j, t]` for `m` input rows.
pub fn linear(m: usize, x: &[f32], w: &QWeight, out: &mut [f32]) {
    let (n, k) = w.dims();
    assert!(x.len() >= m * k && out.len() >= m * n);
    if let QWeight::F32 { data, .. } = w {
        return kernels::matmul_nt(m, n, k, x, data, out);
    }
    if m == 1 {
        return matvec(x, w, out);
    }
    let mut scratch = vec![0.0f32; STRIP.min(n) * k];
    let mut tmp = vec![0.0f32; m * STRIP.min(n)];
    let mut j0 = 0;
    while j0 < n {
        let nb = STRIP.min(n - j0);
        for jj in 0..nb {
            w.dequantize_row(j0 + jj, &mut scratch[jj * k..(jj + 1) * k]);
        }
        kernels::matmul_nt(m, nb, k, x, &scratch[..nb * k], &mut tmp[..m * nb]);
        for i in 0..m {
            out[i * n + j0..i * n + j0 + nb].copy_from_slice(&tmp[i * nb..(i + 1) * nb]);
        }
        j0 += nb;
    }
}

/// One input row against every weight row, fused.
pub fn matvec(x: &[f32], w: &QWeight, out: &mut [f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        return simd128::matvec(x, w, out);
    }
    #[cfg(target_arch = "x86_64")]
    {
        if let QWeight::Q4 { group, .. } = w {
            if *group % 128 == 0 && std::is_x86_feature_detected!("avx512f") {
                // SAFETY: the feature was detected at run time.
                return unsafe { avx512::q4_lut(x, w, out) };
            }
            if *group % 64 == 0 && std::is_x86_feature_detected!("avx512f") {
                // SAFETY: the feature was detected at run time.
                return unsafe { avx512::q4(x, w, out) };
            }
        }
        if let QWeight::BF16 { k, .. } = w {
            if k % 16 == 0 && std::is_x86_feature_detected!("avx512f") {
                // SAFETY: the feature was detected at run time.
                return unsafe { avx512::bf16(x, w, out) };
            }
        }
        if let QWeight::Q8 { n, k, scales, .. } = w {
            let per_row = scales.len() == *n && k % 16 == 0;
            let blocks = scales.len() != *n && scales.len() * 32 == n * k && k % 32 == 0;
            if (per_row || blocks) && std::is_x86_feature_detected!("avx512f") {
                // SAFETY: the feature was detected at run time.
                return unsafe { avx512::q8(x, w, out) };
            }
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") && std::is_x86_feature_detected!("f16c") {
            // SAFETY: the features were detected at run time.
            return unsafe { avx2::matvec(x, w, out) };
        }
    }
    #[allow(unreachable_code)]
    scalar::matvec(x, w, out)
}

/// Per-group sums of `x` (the q4 zero-point term).
fn group_sums(x: &[f32], group: usize) -> Vec<f32> {
    x.chunks_exact(group).map(|g| g.iter().sum()).collect()
}

/// A fixed-point copy of one activation row, for the integer q8 matvec (the wasm kernel; the scalar
/// [`fixed::dot`] is its portable reference, checked natively).
///
/// With `m = max |x|`, `X_t = round(x_t / m · 2^28)` (`|X_t| ≤ 2^28`) is split into two i16 limbs,
/// `hi_t = X_t >> 14` (arithmetic, `|hi_t| ≤ 2^14`) and `lo_t = X_t & 0x3fff` (`0..2^14`), so that
/// `X_t = hi_t · 2^14 + lo_t` exactly. A q8 row's `Σ q_t X_t = 2^14 Σ q hi + Σ q lo` is then exact
/// integer arithmetic (i16 × i16 products summed in i32 lanes, flushed to i64), and the output is
/// `scale · (m · 2^-28) · Σ q X`, formed in f64 and rounded once to f32.
///
/// Numerics: the only rounding before the final one is that of `x` itself, `|X_t · m 2^-28 − x_t|
/// ≤ 2^-29 m` (plus ~2^-53 relative from the f64 scaling), so `|out − scale Σ q x| ≤ scale · Σ|q| ·
/// 2^-29 m + |out| 2^-24`. Against f32 accumulation of exact products (the float kernels): the same
/// order for k of a few thousand, and the error here does not grow with the length of the sums.
/// Non-finite `x` has no fixed-point form ([`FixedX::new`] gives `None`: callers use a float kernel);
/// all-zero `x` gives `unit = 0`, so every output is 0.
pub mod fixed {
    /// Fractional bits of `X = x / m · 2^BITS`.
    pub const BITS: i32 = 28;
    /// Bits of the low limb: `X = hi · 2^LIMB + lo`.
    pub const LIMB: u32 = 14;
    /// Weights of a row summed in i32 lanes before they are flushed into an i64. The SIMD kernel
    /// keeps 4 i32 lanes per limb; each 16 weights add 4 products `q · limb` to every lane, each
    /// `|q · limb| ≤ 128 · 2^14 = 2^21`, so after `FLUSH` weights a lane holds at most
    /// `FLUSH / 16 · 4 · 2^21 = 2^30 < 2^31` (checked by [`dot`], which sums the same lanes with
    /// overflow checks, in the unit tests).
    pub const FLUSH: usize = 2048;

    pub struct FixedX {
        /// `X >> LIMB`, in the order of `x`.
        pub hi: Vec<i16>,
        /// `X & (2^LIMB - 1)`.
        pub lo: Vec<i16>,
        /// `m · 2^-BITS`: `x_t ≈ X_t · unit`.
        pub unit: f64,
    }

    impl FixedX {
        /// `None` when `x` holds a non-finite value.
        pub fn new(x: &[f32]) -> Option<FixedX> {
            let m = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            if !m.is_finite() || x.iter().any(|v| v.is_nan()) {
                return None;
            }
            let (mut hi, mut lo) = (Vec::with_capacity(x.len()), Vec::with_capacity(x.len()));
            let one = 1i64 << BITS;
            let f = if m > 0.0 { one as f64 / m as f64 } else { 0.0 };
            for &v in x {
                let q = ((v as f64 * f).round() as i64).clamp(-one, one);
                hi.push((q >> LIMB) as i16);
                lo.push((q & ((1 << LIMB) - 1)) as i16);
            }
            Some(FixedX { hi, lo, unit: m as f64 / one as f64 })
        }

        /// A row's output from its exact `Σ q X` and its scale.
        #[inline(always)]
        pub fn out(&self, s: i64, scale: f32) -> f32 {
            (s as f64 * self.unit * scale as f64) as f32
        }
    }

    /// `Σ_t codes_t · X_t`, exactly, summed as the SIMD kernel sums it: products in 4 i32 lanes per
    /// limb (weight `t` in lane `(t mod 8) / 2`), flushed into i64 every [`FLUSH`] weights; the i32
    /// additions are checked, so a test on extreme inputs checks the `FLUSH` bound.
    pub fn dot(codes: &[i8], fx: &FixedX) -> i64 {
        let mut s = 0i64;
        for (c, chunk) in codes.chunks(FLUSH).enumerate() {
            let (mut ah, mut al) = ([0i32; 4], [0i32; 4]);
            for (i, &q) in chunk.iter().enumerate() {
                let t = c * FLUSH + i;
                let l = (t % 8) / 2;
                ah[l] = ah[l].checked_add(q as i32 * fx.hi[t] as i32).expect("i32 lane overflow (hi)");
                al[l] = al[l].checked_add(q as i32 * fx.lo[t] as i32).expect("i32 lane overflow (lo)");
            }
            let (h, l): (i64, i64) = (ah.iter().map(|&v| v as i64).sum(), al.iter().map(|&v| v as i64).sum());
            s += (h << LIMB) + l;
        }
        s
    }

    /// Largest q4 group for [`q4_dot`]: per group, each i32 lane sums `group / 4` products `q · limb`,
    /// `|q · limb| ≤ 15 · 2^14`, so a lane stays below `64 · 15 · 2^14 < 2^24` for groups up to 256
    /// and converts to f32 exactly (checked by [`q4_dot`] in the unit tests).
    pub const Q4_GROUP_MAX: usize = 256;

    /// q4 (`row`: one row's packed nibbles, [`crate::dtype::quant::q4_code`] layout; groups of `group`, a
    /// multiple of 64 up to [`Q4_GROUP_MAX`]): `unit · Σ_g scale_g Σ_{t∈g} q_t X_t` (codes `q` in
    /// 0..16, the zero points left to the caller), summed as the SIMD kernel sums it: per group,
    /// exact products in 4 i32 lanes per limb (weight `t` in lane `(t mod 8) / 2`; the additions and
    /// the f32 exactness of the lanes checked), each lane's `2^14 hi + lo` formed in f32 (one
    /// rounding), times the group's scale, accumulated in 4 f32 lanes; the lanes summed, times `unit`
    /// in f64, rounded to f32.
    ///
    /// Numerics: the fixed-point `x` adds at most `2^-29 m Σ_g |scale_g| Σ q` (as for q8); the f32
    /// sums of the exact per-group lanes at most `(gpr + 4) 2^-24 Σ_g |scale_g| Σ q |X| unit` (one
    /// rounding per lane value, one per product and sum over the `gpr = k / group` groups, two in the
    /// final lane sum), plus the final rounding to f32, `|out| 2^-24`. The float kernel's error is of
    /// the same order, and grows with the group length too; this one does not.
    pub fn q4_dot(row: &[u8], group: usize, scales: &[f32], fx: &FixedX) -> f32 {
        assert!(group % 64 == 0 && group <= Q4_GROUP_MAX);
        let exact = |v: i32| {
            assert!(v.unsigned_abs() < 1 << 24, "i32 lane not exact in f32");
            v as f32
        };
        let mut tot = [0.0f32; 4];
        for (g, &scale) in scales.iter().enumerate().take(row.len() * 2 / group) {
            let (mut ah, mut al) = ([0i32; 4], [0i32; 4]);
            for t in g * group..(g + 1) * group {
                let (q, l) = (crate::dtype::quant::q4_code(row, t) as i32, (t % 8) / 2);
                ah[l] = ah[l].checked_add(q * fx.hi[t] as i32).expect("i32 lane overflow (hi)");
                al[l] = al[l].checked_add(q * fx.lo[t] as i32).expect("i32 lane overflow (lo)");
            }
            for l in 0..4 {
                tot[l] += (exact(ah[l]) * (1 << LIMB) as f32 + exact(al[l])) * scale;
            }
        }
        (tot.iter().sum::<f32>() as f64 * fx.unit) as f32
    }
}

pub mod scalar {
    use crate::dtype::quant::q4_code;
    use crate::dtype::QWeight;

    pub fn matvec(x: &[f32], w: &QWeight, out: &mut [f32]) {
        let (n, k) = w.dims();
        match w {
            QWeight::F32 { data, .. } => {
                for j in 0..n {
                    out[j] = dot(&x[..k], &data[j * k..(j + 1) * k], |v| v);
                }
            }
            QWeight::F16 { data, .. } => {
                for j in 0..n {
                    out[j] = dot(&x[..k], &data[j * k..(j + 1) * k], |h| half::f16::from_bits(h).to_f32());
                }
            }
            QWeight::BF16 { data, .. } => {
                for j in 0..n {
                    out[j] = dot(&x[..k], &data[j * k..(j + 1) * k], |h| f32::from_bits((h as u32) << 16));
                }
            }
            QWeight::Q8 { codes, scales, .. } if scales.len() == n => {
                for j in 0..n {
                    out[j] = dot(&x[..k], &codes[j * k..(j + 1) * k], |q| q as f32) * scales[j];
                }
            }
            QWeight::Q8 { codes, scales, .. } => {
                let group = crate::dtype::quant::q8_group(n, k, scales.len());
                let bpr = k / group;
                for j in 0..n {
                    let mut total = 0.0f32;
                    for b in 0..bpr {
                        let t = j * k + b * group;
                        total += dot(&x[b * group..(b + 1) * group], &codes[t..t + group], |q| q as f32) * scales[j * bpr + b];
                    }
                    out[j] = total;
                }
            }
            QWeight::Q4 { group, packed, scales, zeros, .. } => {
                let group = *group;
                let gpr = k / group;
                let xs = super::group_sums(&x[..k], group);
                for j in 0..n {
                    let row = &packed[j * k / 2..(j + 1) * k / 2];
                    let mut total = 0.0f32;
                    for g in 0..gpr {
                        let mut acc = [0.0f32; 8];
                        for t in (g * group..(g + 1) * group).step_by(8) {
                            for l in 0..8 {
                                acc[l] += (q4_code(row, t + l) as f32 - 8.0) * x[t + l];
                            }
                        }
                        let s: f32 = acc.iter().sum();
                        total += scales[j * gpr + g] * s + zeros[j * gpr + g] * xs[g];
                    }
                    out[j] = total;
                }
            }
        }
    }

    fn dot<T: Copy>(x: &[f32], w: &[T], f: impl Fn(T) -> f32) -> f32 {
        let mut acc = [0.0f32; 8];
        let chunks = x.len() / 8;
        for c in 0..chunks {
            for l in 0..8 {
                acc[l] += x[c * 8 + l] * f(w[c * 8 + l]);
            }
        }
        let mut s: f32 = acc.iter().sum();
        for t in chunks * 8..x.len() {
            s += x[t] * f(w[t]);
        }
        s
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::kernels::avx2::hsum;
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
}

/// AVX-512 for q4 (groups of a multiple of 64, torchao's 128): 16 weights per instruction, so
/// the nibble unpacking, convert and multiply-add cost half of AVX2's per weight: q4 decode is
/// compute-bound on AVX2 (about as many operations per weight as q8, at half the bytes). Same
/// products and per-group arithmetic as the AVX2 kernel; only the summation order differs.
/// Groups of a multiple of 128 (torchao's) take [`avx512::q4_lut`] (table lookups instead of
/// widen + convert, about 20% fewer cycles per weight); [`avx512::q4`] covers groups of 64.
/// q8 (one scale per row, or per 32-weight block) takes [`avx512::q8`]: 4 rows per pass with
/// software prefetch, as [`avx512::q4_lut`] (decode reads its ~39 MB of weights per step at
/// about 27 GB/s, where AVX2's one-row-at-a-time kernel reached about 16); bf16 takes
/// [`avx512::bf16`], the same pass structure.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use crate::dtype::QWeight;
    use core::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn q4(x: &[f32], w: &QWeight, out: &mut [f32]) {
        let QWeight::Q4 { n, k, group, packed, scales, zeros } = w else { unreachable!() };
        let (n, k, group) = (*n, *k, *group);
        let gpr = k / group;
        let xp = x.as_ptr();
        let xs = super::group_sums(&x[..k], group);
        let mask = _mm512_set1_epi32(15);
        for j in 0..n {
            let row = packed.as_ptr().add(j * k / 2);
            let mut tot = _mm512_setzero_ps();
            let mut zs = 0.0f32;
            for g in 0..gpr {
                let (mut a0, mut a1, mut a2, mut a3) = (_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps());
                let mut base = g * group;
                while base < (g + 1) * group {
                    // 32 bytes = 64 weights: byte i → weights base+i (low nibble) and base+32+i (high)
                    let p = row.add(base / 2);
                    let v0 = _mm512_cvtepu8_epi32(_mm_loadu_si128(p as *const __m128i));
                    let v1 = _mm512_cvtepu8_epi32(_mm_loadu_si128(p.add(16) as *const __m128i));
                    a0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(v0, mask)), _mm512_loadu_ps(xp.add(base)), a0);
                    a1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(v1, mask)), _mm512_loadu_ps(xp.add(base + 16)), a1);
                    a2 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32::<4>(v0)), _mm512_loadu_ps(xp.add(base + 32)), a2);
                    a3 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32::<4>(v1)), _mm512_loadu_ps(xp.add(base + 48)), a3);
                    base += 64;
                }
                let acc = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
                let sc = scales[j * gpr + g];
                tot = _mm512_fmadd_ps(acc, _mm512_set1_ps(sc), tot);
                zs += (zeros[j * gpr + g] - 8.0 * sc) * xs[g];
            }
            out[j] = _mm512_reduce_add_ps(tot) + zs;
        }
    }

    /// q4 with groups of a multiple of 128: 128 weights (one 64-byte load) per step, without
    /// widening or integer→float conversion. `vpermps` with the table `0.0..=15.0` turns the low 4
    /// bits of each 32-bit lane into that code as a float (the index's higher bits are ignored),
    /// so a code only has to reach the bottom of its lane: lane `i` of the load holds bytes
    /// `4i..4i + 4`, i.e. 8 codes, and the one at bit `4s` gets there by a shift right by `4s`
    /// (none for `s = 0`). Per 128 weights: 7 shifts, 8 table lookups, 8 multiply-adds against
    /// `x` laid out to match ([`spread128`]), where the widening kernel [`q4`] needs 4 widenings,
    /// 4 masks, 4 shifts and 8 conversions. (Loading at byte offsets 1..3 instead of shifting by
    /// 8, 16, 24 splits cache lines and is slower.) [`ROWS`] rows per pass share the `x` loads;
    /// the zero-point term goes into the same 16 lanes per group ([`q4_lut_rows`]), so a row ends
    /// in one horizontal sum; the weights are prefetched [`PREFETCH`] bytes ahead. Same products
    /// `q x` as [`q4`]; the per-group terms are the same up to summation order.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn q4_lut(x: &[f32], w: &QWeight, out: &mut [f32]) {
        let QWeight::Q4 { n, k, group, packed, scales, zeros } = w else { unreachable!() };
        let (n, k, group) = (*n, *k, *group);
        debug_assert!(group % 128 == 0 && packed.len() == n * k / 2);
        let gpr = k / group;
        let xt = spread128(&x[..k]);
        let xsum = lane_sums(&xt, group);
        let m = Matrix { packed: packed.as_ptr(), scales: scales.as_ptr(), zeros: zeros.as_ptr(), k, group, gpr, xt: xt.as_ptr() as *const f32, xsum: xsum.as_ptr() as *const f32 };
        let mut j = 0;
        while j + ROWS <= n {
            _mm_storeu_ps(out[j..j + ROWS].as_mut_ptr(), hsum4(q4_lut_rows::<ROWS>(&m, j)));
            j += ROWS;
        }
        while j < n {
            out[j] = _mm512_reduce_add_ps(q4_lut_rows::<1>(&m, j)[0]);
            j += 1;
        }
    }

    /// Weight rows [`q4_lut`] takes per pass (each `x` load serves them all; 2 and 8 measured
    /// slower); [`hsum4`] finishes them.
    const ROWS: usize = 4;

    /// Software prefetch distance in bytes ahead of each row's loads. The decode step's weights
    /// (about 22 MB at q4) come from L3 at best: without it the kernel reads about 10 GB/s there,
    /// with it about 14 (2–8 KB measured alike).
    const PREFETCH: usize = 4096;

    /// The lane sums of 4 vectors, with shared shuffles (about 14 instructions, where 4 separate
    /// horizontal sums take about 36).
    #[inline(always)]
    unsafe fn hsum4(t: [__m512; 4]) -> __m128 {
        // 128-bit quarters [a0 + a2, a1 + a3, b0 + b2, b1 + b3] for the pairs (t0, t1), (t2, t3)
        let s01 = _mm512_add_ps(_mm512_shuffle_f32x4::<0x44>(t[0], t[1]), _mm512_shuffle_f32x4::<0xee>(t[0], t[1]));
        let s23 = _mm512_add_ps(_mm512_shuffle_f32x4::<0x44>(t[2], t[3]), _mm512_shuffle_f32x4::<0xee>(t[2], t[3]));
        // quarter r: 4 partial sums of t[r]
        let u = _mm512_add_ps(_mm512_shuffle_f32x4::<0x88>(s01, s23), _mm512_shuffle_f32x4::<0xdd>(s01, s23));
        // within each quarter: every lane the quarter's total
        let u = _mm512_add_ps(u, _mm512_permute_ps::<0x4e>(u));
        let u = _mm512_add_ps(u, _mm512_permute_ps::<0xb1>(u));
        _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), u))
    }

    /// What [`q4_lut_rows`] reads: the q4 matrix (`k` inputs, groups of `group`, `gpr` per row),
    /// `x` laid out by [`spread128`] and its per-group lane sums ([`lane_sums`]).
    struct Matrix {
        packed: *const u8,
        scales: *const f32,
        zeros: *const f32,
        k: usize,
        group: usize,
        gpr: usize,
        xt: *const f32,
        xsum: *const f32,
    }

    /// Rows `j..j + R`, each in 16 lanes that sum to its output: per group `scale · Σ q x` plus
    /// the zero-point term `(zero - 8 scale) · Σ x`, the latter against the group's lane sums of `x`
    /// (so no scalar work per group).
    #[inline(always)]
    unsafe fn q4_lut_rows<const R: usize>(m: &Matrix, j: usize) -> [__m512; R] {
        let table = _mm512_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0);
        let rows: [*const u8; R] = core::array::from_fn(|r| m.packed.add((j + r) * m.k / 2));
        let mut tot = [_mm512_setzero_ps(); R];
        for g in 0..m.gpr {
            // Σ q x over the group in two accumulators per row (even / odd nibble positions)
            let mut a = [[_mm512_setzero_ps(); 2]; R];
            let mut b = g * m.group;
            while b < (g + 1) * m.group {
                let xb = m.xt.add(b);
                let v: [__m512i; R] = core::array::from_fn(|r| _mm512_loadu_si512(rows[r].add(b / 2) as *const _));
                for row in rows {
                    // a hint only (never faults), so it may point past the matrix
                    _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(b / 2 + PREFETCH) as *const i8);
                }
                macro_rules! nibble {
                    ($s:literal) => {
                        let xv = _mm512_loadu_ps(xb.add(16 * $s));
                        for r in 0..R {
                            let q = _mm512_permutexvar_ps(_mm512_srli_epi32::<{ 4 * $s }>(v[r]), table);
                            a[r][$s % 2] = _mm512_fmadd_ps(q, xv, a[r][$s % 2]);
                        }
                    };
                }
                nibble!(0);
                nibble!(1);
                nibble!(2);
                nibble!(3);
                nibble!(4);
                nibble!(5);
                nibble!(6);
                nibble!(7);
                b += 128;
            }
            let xs = _mm512_loadu_ps(m.xsum.add(16 * g));
            for r in 0..R {
                let i = (j + r) * m.gpr + g;
                let sc = _mm512_set1_ps(*m.scales.add(i));
                let zp = _mm512_fmadd_ps(sc, _mm512_set1_ps(-8.0), _mm512_set1_ps(*m.zeros.add(i)));
                tot[r] = _mm512_fmadd_ps(_mm512_add_ps(a[r][0], a[r][1]), sc, tot[r]);
                tot[r] = _mm512_fmadd_ps(xs, zp, tot[r]);
            }
        }
        tot
    }

    /// q8 with one scale per row (torchao int8) or per 32-weight block (GGUF Q8_0), `k % 16 == 0`
    /// (per row) or `k % 32 == 0` (blocks). Per 16 codes: one sign-extending load
    /// (`vpmovsxbd`), one exact conversion, one multiply-add against `x` as it is: three vector
    /// operations, against 4 + 2 per 16 for AVX2's two halves. [`Q8_ROWS`] rows per pass share
    /// the `x` loads and one horizontal-sum sequence ([`hsum4`]); each row's codes are
    /// prefetched a whole number of passes ahead ([`Q8Matrix::ahead`]). Products `q x` exact as
    /// in every kernel; per row `Σ q x` is scaled once (per block for Q8_0: block sums scaled and
    /// accumulated in the lanes), as the AVX2 kernel does, up to summation order.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn q8(x: &[f32], w: &QWeight, out: &mut [f32]) {
        let QWeight::Q8 { n, k, codes, scales } = w else { unreachable!() };
        let (n, k) = (*n, *k);
        let per_row = scales.len() == n;
        debug_assert!(codes.len() == n * k && if per_row { k % 16 == 0 } else { scales.len() * 32 == n * k && k % 32 == 0 });
        assert!(x.len() >= k && out.len() >= n);
        let pass = Q8_ROWS * k;
        let m = Q8Matrix { codes: codes.as_ptr(), scales: scales.as_ptr(), k, x: x.as_ptr(), ahead: PREFETCH.div_ceil(pass).max(1) * pass };
        let mut j = 0;
        while j + Q8_ROWS <= n {
            let s = if per_row {
                _mm_mul_ps(hsum4(q8_rows::<Q8_ROWS>(&m, j)), _mm_loadu_ps(scales.as_ptr().add(j)))
            } else {
                hsum4(q8_0_rows::<Q8_ROWS>(&m, j))
            };
            _mm_storeu_ps(out.as_mut_ptr().add(j), s);
            j += Q8_ROWS;
        }
        while j < n {
            out[j] = if per_row { _mm512_reduce_add_ps(q8_rows::<1>(&m, j)[0]) * scales[j] } else { _mm512_reduce_add_ps(q8_0_rows::<1>(&m, j)[0]) };
            j += 1;
        }
    }

    /// Weight rows [`q8`] takes per pass (each `x` load serves them all); [`hsum4`] finishes them.
    const Q8_ROWS: usize = 4;

    /// What the q8 row kernels read: the codes (`k` per row), the scales (one per row or per 32
    /// codes), `x`, and how far ahead of each row's loads to prefetch: [`PREFETCH`] rounded up to
    /// whole passes, so that every prefetch lands in a later pass (with rows shorter than
    /// `PREFETCH` a fixed distance would fetch some rows of the current pass and skip others).
    struct Q8Matrix {
        codes: *const i8,
        scales: *const f32,
        k: usize,
        x: *const f32,
        ahead: usize,
    }

    /// 16 codes at `p` as exact floats.
    #[inline(always)]
    unsafe fn q8x16(p: *const i8) -> __m512 {
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p as *const __m128i)))
    }

    /// Rows `j..j + R` with one scale per row: per row 16 lanes summing to `Σ q x` (unscaled).
    #[inline(always)]
    unsafe fn q8_rows<const R: usize>(m: &Q8Matrix, j: usize) -> [__m512; R] {
        let rows: [*const i8; R] = core::array::from_fn(|r| m.codes.add((j + r) * m.k));
        // two accumulators per row (even / odd 16-code runs)
        let mut a = [[_mm512_setzero_ps(); 2]; R];
        let mut t = 0;
        while t + 64 <= m.k {
            for row in rows {
                // a hint only (never faults), so it may point past the matrix
                _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(t + m.ahead));
            }
            for s in 0..4 {
                let xv = _mm512_loadu_ps(m.x.add(t + 16 * s));
                for r in 0..R {
                    a[r][s % 2] = _mm512_fmadd_ps(q8x16(rows[r].add(t + 16 * s)), xv, a[r][s % 2]);
                }
            }
            t += 64;
        }
        while t < m.k {
            let xv = _mm512_loadu_ps(m.x.add(t));
            for r in 0..R {
                a[r][0] = _mm512_fmadd_ps(q8x16(rows[r].add(t)), xv, a[r][0]);
            }
            t += 16;
        }
        core::array::from_fn(|r| _mm512_add_ps(a[r][0], a[r][1]))
    }

    /// Rows `j..j + R` with one scale per 32 codes (GGUF Q8_0): per block `Σ q x` in 16 lanes,
    /// scaled into the row's lanes (two running totals: even / odd blocks).
    #[inline(always)]
    unsafe fn q8_0_rows<const R: usize>(m: &Q8Matrix, j: usize) -> [__m512; R] {
        let bpr = m.k / 32;
        let rows: [*const i8; R] = core::array::from_fn(|r| m.codes.add((j + r) * m.k));
        let sc: [*const f32; R] = core::array::from_fn(|r| m.scales.add((j + r) * bpr));
        let mut tot = [[_mm512_setzero_ps(); 2]; R];
        let mut t = 0;
        while t < m.k {
            if t % 64 == 0 {
                for row in rows {
                    _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(t + m.ahead));
                }
            }
            let (x0, x1) = (_mm512_loadu_ps(m.x.add(t)), _mm512_loadu_ps(m.x.add(t + 16)));
            let b = t / 32;
            for r in 0..R {
                let p = _mm512_fmadd_ps(q8x16(rows[r].add(t + 16)), x1, _mm512_mul_ps(q8x16(rows[r].add(t)), x0));
                tot[r][b % 2] = _mm512_fmadd_ps(p, _mm512_set1_ps(*sc[r].add(b)), tot[r][b % 2]);
            }
            t += 32;
        }
        core::array::from_fn(|r| _mm512_add_ps(tot[r][0], tot[r][1]))
    }

    /// bf16 weights (`k % 16 == 0`), one input row: the q8 kernel's pass structure ([`Q8_ROWS`]
    /// rows per pass sharing the `x` loads and [`hsum4`], software prefetch whole passes ahead),
    /// 16 weights per load, widened and shifted into the top half of each lane (exact). (The same
    /// for fp32 weights measured no faster: a decode step's 154 MB fall out of the fast cache.)
    #[target_feature(enable = "avx512f")]
    pub unsafe fn bf16(x: &[f32], w: &QWeight, out: &mut [f32]) {
        let QWeight::BF16 { n, k, data } = w else { unreachable!() };
        let (n, k) = (*n, *k);
        assert!(k % 16 == 0 && data.len() == n * k && x.len() >= k && out.len() >= n);
        let pass = Q8_ROWS * k * 2;
        let ahead = PREFETCH.div_ceil(pass).max(1) * pass;
        let mut j = 0;
        while j + Q8_ROWS <= n {
            _mm_storeu_ps(out.as_mut_ptr().add(j), hsum4(bf16_rows::<Q8_ROWS>(x.as_ptr(), k, data.as_ptr().add(j * k), ahead)));
            j += Q8_ROWS;
        }
        while j < n {
            out[j] = _mm512_reduce_add_ps(bf16_rows::<1>(x.as_ptr(), k, data.as_ptr().add(j * k), ahead)[0]);
            j += 1;
        }
    }

    /// `R` bf16 rows (stride `k`) from `rows`: per row 16 lanes summing to `Σ w x`.
    #[inline(always)]
    unsafe fn bf16_rows<const R: usize>(x: *const f32, k: usize, rows: *const u16, ahead: usize) -> [__m512; R] {
        let load = |p: *const u16| _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm256_loadu_si256(p as *const __m256i))));
        let mut a = [[_mm512_setzero_ps(); 2]; R];
        let mut t = 0;
        while t < k {
            if t % 32 == 0 {
                // once per 64-byte line of each row; a hint only (never faults), so it may point past the matrix
                for r in 0..R {
                    _mm_prefetch::<_MM_HINT_T0>((rows.add(r * k + t) as *const i8).wrapping_add(ahead));
                }
            }
            let xv = _mm512_loadu_ps(x.add(t));
            for r in 0..R {
                a[r][(t / 16) % 2] = _mm512_fmadd_ps(load(rows.add(r * k + t)), xv, a[r][(t / 16) % 2]);
            }
            t += 16;
        }
        core::array::from_fn(|r| _mm512_add_ps(a[r][0], a[r][1]))
    }

    /// Per group of `group` inputs, 16 lanes summing to `Σ x` over the group: the lane-wise sum of
    /// the group's runs in `xt` ([`spread128`]).
    fn lane_sums(xt: &[Lanes], group: usize) -> Vec<Lanes> {
        xt.chunks_exact(group / 16)
            .map(|runs| {
                let mut s = [0.0f32; 16];
                for run in runs {
                    for (a, &v) in s.iter_mut().zip(&run.0) {
                        *a += v;
                    }
                }
                Lanes(s)
            })
            .collect()
    }

    /// `x` laid out for [`q4_lut`]: per 128 weights at `b`, 8 runs of 16, one per nibble position
    /// `s` of the 32-bit lanes: `xt[b + 16s + i] = x[b + 64(i / 8) + 32(s % 2) + 4(i % 8) + s / 2]`,
    /// the weight whose code lane `i` holds at bit `4s` (byte `4(i % 8) + s / 2` of 32-byte chunk
    /// `i / 8`, low nibble for even `s`, high for odd).
    pub(super) fn spread128(x: &[f32]) -> Vec<Lanes> {
        let mut xt = vec![Lanes([0.0; 16]); x.len() / 16];
        for (o, c) in xt.chunks_exact_mut(8).zip(x.chunks_exact(128)) {
            for s in 0..8 {
                for i in 0..16 {
                    o[s].0[i] = c[64 * (i / 8) + 32 * (s % 2) + 4 * (i % 8) + s / 2];
                }
            }
        }
        xt
    }

    /// 16 floats on a cache line of their own (aligned loads of `x` never split).
    #[derive(Clone, Copy)]
    #[repr(C, align(64))]
    pub(super) struct Lanes(pub [f32; 16]);
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    use super::kernels::simd128::{hsum, madd};
    use crate::dtype::QWeight;
    use core::arch::wasm32::*;

    /// f16 bits (in the low 16 bits of each u32 lane) → f32, exact for finite values (normal and
    /// subnormal): the exponent is rebased by multiplying by 2^112. Weights stored as f16 are finite.
    #[inline(always)]
    fn f16_to_f32(h: v128) -> v128 {
        let sign = i32x4_shl(v128_and(h, u32x4_splat(0x8000)), 16);
        let mag = f32x4_mul(i32x4_shl(v128_and(h, u32x4_splat(0x7fff)), 13), f32x4_splat(f32::from_bits(0x7780_0000))); // 2^112
        v128_or(mag, sign)
    }

    pub fn matvec(x: &[f32], w: &QWeight, out: &mut [f32]) {
        let (n, k) = w.dims();
        let xp = x.as_ptr();
        // SAFETY (all loads below): rows hold k elements, t + 8 <= k8 <= k.
        unsafe {
            match w {
                QWeight::F32 { .. } => super::scalar::matvec(x, w, out),
                QWeight::F16 { data, .. } => {
                    for j in 0..n {
                        let r = data.as_ptr().add(j * k);
                        out[j] = dot8(xp, k, |t| {
                            let v = v128_load(r.add(t) as *const v128);
                            (f16_to_f32(u32x4_extend_low_u16x8(v)), f16_to_f32(u32x4_extend_high_u16x8(v)))
                        }, |t| half::f16::from_bits(*r.add(t)).to_f32());
                    }
                }
                QWeight::BF16 { data, .. } => {
                    let xt = deinterleave8(&x[..k]);
                    let mut j = 0;
                    while j + R <= n {
                        bf16_rows::<R>(xp, xt.as_ptr(), k, data.as_ptr().add(j * k), &mut out[j..j + R]);
                        j += R;
                    }
                    for j in j..n {
                        bf16_rows::<1>(xp, xt.as_ptr(), k, data.as_ptr().add(j * k), &mut out[j..j + 1]);
                    }
                }
                QWeight::Q8 { codes, scales, .. } => {
                    // one scale per row (group = k) or per 32-weight block (GGUF Q8_0)
                    let group = crate::dtype::quant::q8_group(n, k, scales.len());
                    if group % 16 != 0 || k % group != 0 {
                        return super::scalar::matvec(x, w, out);
                    }
                    if group == k {
                        if let Some(fx) = super::fixed::FixedX::new(&x[..k]) {
                            let mut j = 0;
                            while j + RQ <= n {
                                q8_fixed_rows::<RQ>(&fx, k, codes.as_ptr().add(j * k), scales.as_ptr().add(j), &mut out[j..j + RQ]);
                                j += RQ;
                            }
                            for j in j..n {
                                q8_fixed_rows::<1>(&fx, k, codes.as_ptr().add(j * k), scales.as_ptr().add(j), &mut out[j..j + 1]);
                            }
                            return;
                        }
                    }
                    let xt = transpose16(&x[..k]);
                    let xp = xt.as_ptr();
                    let mut j = 0;
                    while j + R8 <= n {
                        q8_rows::<R8>(xp, k, group, codes.as_ptr().add(j * k), scales.as_ptr().add(j * (k / group)), &mut out[j..j + R8]);
                        j += R8;
                    }
                    for j in j..n {
                        q8_rows::<1>(xp, k, group, codes.as_ptr().add(j * k), scales.as_ptr().add(j * (k / group)), &mut out[j..j + 1]);
                    }
                }
                QWeight::Q4 { group, packed, scales, zeros, .. } => {
                    let group = *group;
                    let gpr = k / group;
                    let xs = super::group_sums(&x[..k], group);
                    let (p, s, z) = (packed.as_ptr(), scales.as_ptr(), zeros.as_ptr());
                    if group % 64 == 0 && group <= super::fixed::Q4_GROUP_MAX {
                        if let Some(fx) = super::fixed::FixedX::new(&x[..k]) {
                            let mut j = 0;
                            while j + RQ4 <= n {
                                q4_fixed_rows::<RQ4>(&fx, k, group, p.add(j * k / 2), s.add(j * gpr), z.add(j * gpr), &xs, &mut out[j..j + RQ4]);
                                j += RQ4;
                            }
                            for j in j..n {
                                q4_fixed_rows::<1>(&fx, k, group, p.add(j * k / 2), s.add(j * gpr), z.add(j * gpr), &xs, &mut out[j..j + 1]);
                            }
                            return;
                        }
                    }
                    let mut xt = transpose16(&x[..k]);
                    // the codes are masked in place (no shift back down): a nibble in byte s of a lane
                    // is q · 2^(8s), against x · 2^(-8s) (powers of two: exact for every activation
                    // above 2^-102), so every product is the f32 product q · x
                    for c in xt.chunks_exact_mut(16) {
                        for (s, v) in c.iter_mut().enumerate() {
                            *v *= [1.0, 1.0 / 256.0, 1.0 / 65536.0, 1.0 / 16_777_216.0][s / 4];
                        }
                    }
                    let xp = xt.as_ptr();
                    let mut j = 0;
                    // groups of 32 keep two accumulators per row: 2 rows per pass fit the registers
                    while group == 32 && j + 2 <= n {
                        q4_rows::<2>(xp, k, group, p.add(j * k / 2), s.add(j * gpr), z.add(j * gpr), &xs, &mut out[j..j + 2]);
                        j += 2;
                    }
                    while j + R <= n {
                        q4_rows::<R>(xp, k, group, p.add(j * k / 2), s.add(j * gpr), z.add(j * gpr), &xs, &mut out[j..j + R]);
                        j += R;
                    }
                    for j in j..n {
                        q4_rows::<1>(xp, k, group, p.add(j * k / 2), s.add(j * gpr), z.add(j * gpr), &xs, &mut out[j..j + 1]);
                    }
                }
            }
        }
    }

    /// Weight rows per pass of the q4 and bf16 kernels: each activation load serves `R` rows, and
    /// `R` row streams are in flight at once.
    const R: usize = 4;

    /// Weight rows per pass of the q8 kernel. 8, not 4, although 8 accumulators, 8 loaded vectors
    /// and the 4 activations are more than x86-64's 16 vector registers: in the wasm micro-benchmark
    /// (`bench/wasm-kernels`) both run at the same speed on a matrix that stays in cache, but on
    /// matrices streamed from memory, as every decode step streams them, 8 rows per pass take
    /// 30-40% less time than 4 (32128 × 512: about 2.7 against 4.0 ms; 8192 × 2048: 2.6 against
    /// 3.0 ms; 2, 6 and 16 rows also beat 4 there, 8 was the best overall).
    const R8: usize = 8;

    /// Weight rows per pass of the integer q8 kernel ([`q8_fixed_rows`]), for the same reason as
    /// [`R8`]: in `bench/wasm-kernels` (Node 20) 2, 4, 6 and 8 rows per pass are within noise of each
    /// other on a decode step's matrices, 8 was the fastest on the 32128 × 512 LM head streamed from
    /// memory (2.14 ms against 2.2-2.5) and 6 on a matrix in cache (0.066 ms against 0.069-0.075).
    const RQ: usize = 8;

    /// Weight rows per pass of the integer q4 kernel ([`q4_fixed_rows`]): in `bench/wasm-kernels`
    /// (Node 20) 2 and 4 rows per pass are within noise of each other (decode step 4.06 / 4.09 ms,
    /// 32128 × 512: 1.56 / 1.66 ms), 8 rows were slower (step 5.5 ms, 32128 × 512: 1.84 ms).
    const RQ4: usize = 4;

    /// `x` with every aligned block of 16 transposed as a 4 × 4 matrix: `xt[16c + 4s + j] =
    /// x[16c + 4j + s]`. The kernels below take the codes apart with 32-bit lane shifts (no shuffle
    /// constants, which V8 would rebuild on every use inside the loop): shifting 16 loaded bytes by
    /// `8s` puts bytes `s, 4 + s, 8 + s, 12 + s` in the lanes, whose activations are `xt[4s..4s+4]`.
    fn transpose16(x: &[f32]) -> Vec<f32> {
        let mut xt = vec![0.0f32; x.len() / 16 * 16];
        for (o, c) in xt.chunks_exact_mut(16).zip(x.chunks_exact(16)) {
            for s in 0..4 {
                for j in 0..4 {
                    o[4 * s + j] = c[4 * j + s];
                }
            }
        }
        xt
    }

    /// `x` with every aligned block of 8 split into its even and its odd elements:
    /// `xt[8c + i] = x[8c + 2i]`, `xt[8c + 4 + i] = x[8c + 2i + 1]` (`i < 4`).
    fn deinterleave8(x: &[f32]) -> Vec<f32> {
        let mut xt = vec![0.0f32; x.len() / 8 * 8];
        for (o, c) in xt.chunks_exact_mut(8).zip(x.chunks_exact(8)) {
            for i in 0..4 {
                o[i] = c[2 * i];
                o[4 + i] = c[2 * i + 1];
            }
        }
        xt
    }

    /// bf16, `R` rows from `data` (row stride `k`). 16 loaded bytes are 8 weights, two per 32-bit
    /// lane: the even one becomes its f32 by a shift left by 16, the odd one by masking off the low
    /// half (both exact), against `xt` ([`deinterleave8`]); the last `k % 8` weights one at a time.
    #[inline(always)]
    unsafe fn bf16_rows<const R: usize>(x: *const f32, xt: *const f32, k: usize, data: *const u16, out: &mut [f32]) {
        let hi = u32x4_splat(0xffff_0000);
        let k8 = k / 8 * 8;
        let mut acc = [f32x4_splat(0.0); R];
        let mut t = 0;
        while t < k8 {
            let xe = v128_load(xt.add(t) as *const v128);
            let xo = v128_load(xt.add(t + 4) as *const v128);
            for r in 0..R {
                let v = v128_load(data.add(r * k + t) as *const v128);
                acc[r] = madd(v128_and(v, hi), xo, madd(i32x4_shl(v, 16), xe, acc[r]));
            }
            t += 8;
        }
        for r in 0..R {
            let mut s = hsum(acc[r]);
            for t in k8..k {
                s += *x.add(t) * f32::from_bits((*data.add(r * k + t) as u32) << 16);
            }
            out[r] = s;
        }
    }

    /// q8, `R` rows from `codes` (row stride `k`, `k % 16 == 0`), one scale per `group` weights
    /// (`group == k`: per row; 32: GGUF Q8_0 blocks), against `xt` ([`transpose16`]). Byte `s` of
    /// each lane is shifted into the top byte and the rest masked off (`q · 2^24`), converted exactly.
    #[inline(always)]
    unsafe fn q8_rows<const R: usize>(xt: *const f32, k: usize, group: usize, codes: *const i8, scales: *const f32, out: &mut [f32]) {
        let bpr = k / group;
        let top = u32x4_splat(0xff00_0000);
        // the lanes hold q · 2^24 (exact), so every product and partial sum is exactly 2^24 times
        // that of q · x; multiplying by 2^-24 (exact) before the scale takes it back out
        let unit = f32x4_splat(1.0 / 16_777_216.0);
        let mut tot = [f32x4_splat(0.0); R];
        for b in 0..bpr {
            let mut acc = [f32x4_splat(0.0); R];
            let mut t = b * group;
            while t < (b + 1) * group {
                let mut v = [f32x4_splat(0.0); R];
                for r in 0..R {
                    v[r] = v128_load(codes.add(r * k + t) as *const v128);
                }
                let x0 = v128_load(xt.add(t) as *const v128);
                let x1 = v128_load(xt.add(t + 4) as *const v128);
                let x2 = v128_load(xt.add(t + 8) as *const v128);
                let x3 = v128_load(xt.add(t + 12) as *const v128);
                for r in 0..R {
                    // byte s moved to the top byte, the rest masked off: q · 2^24 as an i32
                    let w0 = f32x4_convert_i32x4(i32x4_shl(v[r], 24));
                    let w1 = f32x4_convert_i32x4(v128_and(i32x4_shl(v[r], 16), top));
                    let w2 = f32x4_convert_i32x4(v128_and(i32x4_shl(v[r], 8), top));
                    let w3 = f32x4_convert_i32x4(v128_and(v[r], top));
                    acc[r] = madd(w3, x3, madd(w2, x2, madd(w1, x1, madd(w0, x0, acc[r]))));
                }
                t += 16;
            }
            if bpr == 1 {
                // one scale per row: Σ q x summed, then scaled once (as the scalar path does)
                for r in 0..R {
                    out[r] = hsum(acc[r]) * (1.0 / 16_777_216.0) * *scales.add(r);
                }
                return;
            }
            for r in 0..R {
                tot[r] = madd(f32x4_mul(acc[r], unit), f32x4_splat(*scales.add(r * bpr + b)), tot[r]);
            }
        }
        for r in 0..R {
            out[r] = hsum(tot[r]);
        }
    }

    /// q8 with one scale per row, `R` rows from `codes` (row stride `k`, `k % 16 == 0`), as exact
    /// integer sums against the fixed-point `fx` ([`super::fixed`]: numerics there). Per 16 weights of
    /// a row: the codes sign-extended to i16 (two 8-byte extending loads), and four `i32x4.dot_i16x8_s`
    /// (pairs of i16 products summed into i32 lanes) against the two limbs of `X`, the limb vectors
    /// loaded once per pass and shared by the `R` rows. The i32 lanes are flushed into i64 every
    /// [`super::fixed::FLUSH`] weights (the overflow bound is there).
    #[inline(always)]
    unsafe fn q8_fixed_rows<const R: usize>(fx: &super::fixed::FixedX, k: usize, codes: *const i8, scales: *const f32, out: &mut [f32]) {
        use super::fixed::{FLUSH, LIMB};
        let (hp, lp) = (fx.hi.as_ptr(), fx.lo.as_ptr());
        let mut s = [0i64; R];
        let mut c0 = 0;
        while c0 < k {
            let c1 = (c0 + FLUSH).min(k);
            let (mut ah, mut al) = ([i32x4_splat(0); R], [i32x4_splat(0); R]);
            let mut t = c0;
            while t < c1 {
                let h0 = v128_load(hp.add(t) as *const v128);
                let h1 = v128_load(hp.add(t + 8) as *const v128);
                let l0 = v128_load(lp.add(t) as *const v128);
                let l1 = v128_load(lp.add(t + 8) as *const v128);
                for r in 0..R {
                    let p = codes.add(r * k + t);
                    let qa = i16x8_load_extend_i8x8(p);
                    let qb = i16x8_load_extend_i8x8(p.add(8));
                    ah[r] = i32x4_add(i32x4_add(ah[r], i32x4_dot_i16x8(qa, h0)), i32x4_dot_i16x8(qb, h1));
                    al[r] = i32x4_add(i32x4_add(al[r], i32x4_dot_i16x8(qa, l0)), i32x4_dot_i16x8(qb, l1));
                }
                t += 16;
            }
            for r in 0..R {
                s[r] += (lanes_i64(ah[r]) << LIMB) + lanes_i64(al[r]);
            }
            c0 = c1;
        }
        for r in 0..R {
            out[r] = fx.out(s[r], *scales.add(r));
        }
    }

    /// The sum of the four i32 lanes, in i64 (a flushed accumulator's lanes reach 2^30 each).
    #[inline(always)]
    fn lanes_i64(v: v128) -> i64 {
        i32x4_extract_lane::<0>(v) as i64 + i32x4_extract_lane::<1>(v) as i64 + i32x4_extract_lane::<2>(v) as i64 + i32x4_extract_lane::<3>(v) as i64
    }

    /// q4 with groups of a multiple of 64 up to [`super::fixed::Q4_GROUP_MAX`], `R` rows from `packed`
    /// (row stride `k / 2`), as exact integer sums against the fixed-point `fx` ([`super::fixed`];
    /// numerics and the portable reference: [`super::fixed::q4_dot`]). 16 loaded bytes hold the low
    /// nibbles of weights `t..t+16` and the high ones of `t+32..t+48`: zero-extended to u16 (low and
    /// high 8 bytes), the low nibbles masked and the high ones shifted down give four i16x8 vectors of
    /// codes in the order of `x`, each against both limbs with `i32x4.dot_i16x8_s` (limb vectors loaded
    /// once per pass, shared by the `R` rows). Per group, each row's i32 lanes (below 2^24: exact in
    /// f32) are converted, combined as `2^14 hi + lo` and scaled into f32 accumulators; the zero
    /// points through `xs` (group sums of x) as in [`q4_rows`].
    #[inline(always)]
    unsafe fn q4_fixed_rows<const R: usize>(
        fx: &super::fixed::FixedX,
        k: usize,
        group: usize,
        packed: *const u8,
        scales: *const f32,
        zeros: *const f32,
        xs: &[f32],
        out: &mut [f32],
    ) {
        let (hp, lp) = (fx.hi.as_ptr(), fx.lo.as_ptr());
        let gpr = k / group;
        let nib = i16x8_splat(0x0f);
        let limb = f32x4_splat((1u32 << super::fixed::LIMB) as f32);
        let mut tot = [f32x4_splat(0.0); R];
        let mut zs = [0.0f32; R];
        for g in 0..gpr {
            let (mut ah, mut al) = ([i32x4_splat(0); R], [i32x4_splat(0); R]);
            for c in g * group / 64..(g + 1) * group / 64 {
                for h in 0..2 {
                    // weights t..t+8, t+8..t+16 (low nibbles), t+32..t+40, t+40..t+48 (high nibbles)
                    let t = c * 64 + h * 16;
                    let hv = [v128_load(hp.add(t) as *const v128), v128_load(hp.add(t + 8) as *const v128), v128_load(hp.add(t + 32) as *const v128), v128_load(hp.add(t + 40) as *const v128)];
                    let lv = [v128_load(lp.add(t) as *const v128), v128_load(lp.add(t + 8) as *const v128), v128_load(lp.add(t + 32) as *const v128), v128_load(lp.add(t + 40) as *const v128)];
                    for r in 0..R {
                        let v = v128_load(packed.add(r * k / 2 + c * 32 + h * 16) as *const v128);
                        let (e0, e1) = (u16x8_extend_low_u8x16(v), u16x8_extend_high_u8x16(v));
                        let q = [v128_and(e0, nib), v128_and(e1, nib), u16x8_shr(e0, 4), u16x8_shr(e1, 4)];
                        let dh = i32x4_add(i32x4_add(i32x4_dot_i16x8(q[0], hv[0]), i32x4_dot_i16x8(q[1], hv[1])), i32x4_add(i32x4_dot_i16x8(q[2], hv[2]), i32x4_dot_i16x8(q[3], hv[3])));
                        let dl = i32x4_add(i32x4_add(i32x4_dot_i16x8(q[0], lv[0]), i32x4_dot_i16x8(q[1], lv[1])), i32x4_add(i32x4_dot_i16x8(q[2], lv[2]), i32x4_dot_i16x8(q[3], lv[3])));
                        ah[r] = i32x4_add(ah[r], dh);
                        al[r] = i32x4_add(al[r], dl);
                    }
                }
            }
            for r in 0..R {
                let (s0, z0) = (*scales.add(r * gpr + g), *zeros.add(r * gpr + g));
                // 2^14 hi is exact, so the sum is rounded once (with or without fused madd)
                let v = madd(f32x4_convert_i32x4(ah[r]), limb, f32x4_convert_i32x4(al[r]));
                tot[r] = madd(v, f32x4_splat(s0), tot[r]);
                zs[r] += (z0 - 8.0 * s0) * xs[g];
            }
        }
        for r in 0..R {
            out[r] = (hsum(tot[r]) as f64 * fx.unit) as f32 + zs[r];
        }
    }

    /// q4, `R` rows from `packed` (row stride `k / 2`), groups of `group` (a multiple of 64, or 32:
    /// low nibbles of each 64-weight chunk one group, high nibbles the next), against `xt`
    /// ([`transpose16`], row `s` of every 4 × 4 block times 2^(-8s)). 16 loaded bytes hold the low
    /// nibbles of weights `t..t+16` and the high ones of `t+32..t+48`; the low nibble of byte `s` of
    /// each lane is masked in place (`q · 2^(8s)`), the high ones the same after one shift by 4.
    /// `Σ q x` per group as before, scaled once; the zero points through `xs` (group sums of x).
    #[inline(always)]
    unsafe fn q4_rows<const R: usize>(
        xt: *const f32,
        k: usize,
        group: usize,
        packed: *const u8,
        scales: *const f32,
        zeros: *const f32,
        xs: &[f32],
        out: &mut [f32],
    ) {
        let gpr = k / group;
        let split = group == 32;
        let (m0, m1, m2, m3) = (u32x4_splat(0x0f), u32x4_splat(0x0f00), u32x4_splat(0x0f_0000), u32x4_splat(0x0f00_0000));
        let mut tot = [f32x4_splat(0.0); R];
        let mut zs = [0.0f32; R];
        let chunks = if split { 1 } else { group / 64 };
        for g in (0..gpr).step_by(if split { 2 } else { 1 }) {
            let (mut al, mut ah) = ([f32x4_splat(0.0); R], [f32x4_splat(0.0); R]);
            let c0 = if split { g / 2 } else { g * chunks };
            for c in c0..c0 + chunks {
                for h in 0..2 {
                    let off = c * 32 + h * 16;
                    let xl = xt.add(c * 64 + h * 16);
                    let xh = xl.add(32);
                    let mut v = [f32x4_splat(0.0); R];
                    for r in 0..R {
                        v[r] = v128_load(packed.add(r * k / 2 + off) as *const v128);
                    }
                    let (l0, l1, l2, l3) = (v128_load(xl as *const v128), v128_load(xl.add(4) as *const v128), v128_load(xl.add(8) as *const v128), v128_load(xl.add(12) as *const v128));
                    for r in 0..R {
                        let q0 = f32x4_convert_i32x4(v128_and(v[r], m0));
                        let q1 = f32x4_convert_i32x4(v128_and(v[r], m1));
                        let q2 = f32x4_convert_i32x4(v128_and(v[r], m2));
                        let q3 = f32x4_convert_i32x4(v128_and(v[r], m3));
                        al[r] = madd(q3, l3, madd(q2, l2, madd(q1, l1, madd(q0, l0, al[r]))));
                    }
                    let (h0, h1, h2, h3) = (v128_load(xh as *const v128), v128_load(xh.add(4) as *const v128), v128_load(xh.add(8) as *const v128), v128_load(xh.add(12) as *const v128));
                    for r in 0..R {
                        // 16 · q: masked where it lies (the shifted copies are shared with the low nibbles)
                        let u = u32x4_shr(v[r], 4);
                        let q0 = f32x4_convert_i32x4(v128_and(u, m0));
                        let q1 = f32x4_convert_i32x4(v128_and(u, m1));
                        let q2 = f32x4_convert_i32x4(v128_and(u, m2));
                        let q3 = f32x4_convert_i32x4(v128_and(u, m3));
                        // groups of 64+: both halves in one accumulator per row (fewer registers)
                        let a = if split { &mut ah[r] } else { &mut al[r] };
                        *a = madd(q3, h3, madd(q2, h2, madd(q1, h1, madd(q0, h0, *a))));
                    }
                }
            }
            for r in 0..R {
                let (s0, z0) = (*scales.add(r * gpr + g), *zeros.add(r * gpr + g));
                if split {
                    let (s1, z1) = (*scales.add(r * gpr + g + 1), *zeros.add(r * gpr + g + 1));
                    tot[r] = madd(al[r], f32x4_splat(s0), tot[r]);
                    tot[r] = madd(ah[r], f32x4_splat(s1), tot[r]);
                    zs[r] += (z0 - 8.0 * s0) * xs[g] + (z1 - 8.0 * s1) * xs[g + 1];
                } else {
                    tot[r] = madd(al[r], f32x4_splat(s0), tot[r]);
                    zs[r] += (z0 - 8.0 * s0) * xs[g];
                }
            }
        }
        for r in 0..R {
            out[r] = hsum(tot[r]) + zs[r];
        }
    }

    /// `Σ x[t] · w(t)`, `load(t)` giving weights t..t+4 and t+4..t+8 as f32x4.
    #[inline(always)]
    unsafe fn dot8(xp: *const f32, k: usize, load: impl Fn(usize) -> (v128, v128), one: impl Fn(usize) -> f32) -> f32 {
        let k8 = k / 8 * 8;
        let (mut a0, mut a1) = (f32x4_splat(0.0), f32x4_splat(0.0));
        let mut t = 0;
        while t < k8 {
            let (w0, w1) = load(t);
            a0 = madd(w0, v128_load(xp.add(t) as *const v128), a0);
            a1 = madd(w1, v128_load(xp.add(t + 4) as *const v128), a1);
            t += 8;
        }
        let mut s = hsum(f32x4_add(a0, a1));
        for t in k8..k {
            s += *xp.add(t) * one(t);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::{QWeight, WeightDtype};
    use crate::tensor::Tensor;

    fn naive(m: usize, x: &[f32], w: &Tensor) -> Vec<f64> {
        let (n, k) = (w.shape[0], w.shape[1]);
        let mut o = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                o[i * n + j] = (0..k).map(|t| x[i * k + t] as f64 * w.data[j * k + t] as f64).sum();
            }
        }
        o
    }

    /// Every one-row kernel that applies to `q` (the dispatch's preconditions), run directly: the
    /// scalar one, `matvec` (whatever it picks), and on x86 AVX2 and each AVX-512 kernel, so a kernel
    /// the dispatch does not pick on this machine is checked too.
    fn every_kernel(x: &[f32], q: &QWeight) -> Vec<(&'static str, Vec<f32>)> {
        let n = q.dims().0;
        let run = |f: &dyn Fn(&mut [f32])| {
            let mut o = vec![0.0; n];
            f(&mut o);
            o
        };
        let mut outs = vec![("scalar", run(&|o| scalar::matvec(x, q, o))), ("matvec", run(&|o| matvec(x, q, o)))];
        #[cfg(target_arch = "x86_64")]
        {
            let k = q.dims().1;
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") && std::is_x86_feature_detected!("f16c") {
                outs.push(("avx2", run(&|o| unsafe { avx2::matvec(x, q, o) })));
            }
            if std::is_x86_feature_detected!("avx512f") {
                match q {
                    QWeight::Q4 { group, .. } if group % 64 == 0 => {
                        outs.push(("avx512 q4", run(&|o| unsafe { avx512::q4(x, q, o) })));
                        if group % 128 == 0 {
                            outs.push(("avx512 q4 lut", run(&|o| unsafe { avx512::q4_lut(x, q, o) })));
                        }
                    }
                    // (its precondition: k % 16 == 0 per row, k % 32 == 0 with blocks)
                    QWeight::Q8 { n, scales, .. } if k % 32 == 0 || scales.len() == *n && k % 16 == 0 => {
                        outs.push(("avx512 q8", run(&|o| unsafe { avx512::q8(x, q, o) })));
                    }
                    QWeight::BF16 { .. } if k % 16 == 0 => outs.push(("avx512 bf16", run(&|o| unsafe { avx512::bf16(x, q, o) }))),
                    _ => {}
                }
            }
        }
        outs
    }

    /// Each output within 1e-4 of the f64 reference.
    fn assert_close(got: &[f32], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (&g, &r)) in got.iter().zip(want).enumerate() {
            assert!((g as f64 - r).abs() < 1e-4, "{what} [{i}]: {g} vs {r}");
        }
    }

    #[test]
    fn every_form_matches_its_dequantized_weights() {
        let (n, k) = (37, 256);
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.45) * 0.3).collect();
        let x: Vec<f32> = (0..3 * k).map(|i| ((i * 31 % 97) as f32 - 48.0) / 40.0).collect();
        for dt in [WeightDtype::F32, WeightDtype::F16, WeightDtype::BF16, WeightDtype::Q8, WeightDtype::Q4] {
            let q = QWeight::from_tensor(Tensor::new(vec![n, k], w.clone()), dt);
            let deq = q.to_tensor();
            for m in [1, 3] {
                let want = naive(m, &x, &deq);
                let mut got = vec![0.0; m * n];
                linear(m, &x, &q, &mut got);
                assert_close(&got, &want, &format!("{dt:?} m={m}"));
            }
            for (name, o) in every_kernel(&x[..k], &q) {
                assert_close(&o, &naive(1, &x, &deq), &format!("{dt:?} {name}"));
            }
        }
    }

    /// q4 with groups of 256 (two 128-weight steps per group in the AVX-512 kernels), every
    /// x86 kernel directly and the scalar one.
    #[test]
    fn q4_wide_groups_match_their_dequantized_weights() {
        let (n, k, group) = (13, 512, 256);
        let x: Vec<f32> = (0..k).map(|i| ((i * 31 % 97) as f32 - 48.0) / 40.0).collect();
        let scales: Vec<f32> = (0..n * k / group).map(|i| 0.001 + (i % 13) as f32 * 0.0007).collect();
        let zeros: Vec<f32> = (0..n * k / group).map(|i| (i % 7) as f32 * 0.01 - 0.03).collect();
        let packed: Vec<u8> = (0..n * k / 2).map(|i| (i * 131 % 256) as u8).collect();
        let q = QWeight::Q4 { n, k, group, packed, scales, zeros };
        let want = naive(1, &x, &q.to_tensor());
        let outs = every_kernel(&x, &q);
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") {
            assert!(outs.iter().any(|(name, _)| *name == "avx512 q4 lut"));
        }
        for (name, o) in outs {
            assert_close(&o, &want, name);
        }
    }

    /// The GGUF forms: q8 with one scale per 32-weight block, q4 with groups of 32 (low / high
    /// nibbles of a 64-weight chunk in two groups), through the SIMD, scalar and strip paths.
    #[test]
    fn block_scaled_forms_match_their_dequantized_weights() {
        let (n, k) = (19, 192);
        let x: Vec<f32> = (0..3 * k).map(|i| ((i * 31 % 97) as f32 - 48.0) / 40.0).collect();
        let codes: Vec<i8> = (0..n * k).map(|i| ((i * 7919 % 255) as i32 - 127) as i8).collect();
        let scales: Vec<f32> = (0..n * k / 32).map(|i| 0.001 + (i % 13) as f32 * 0.0007).collect();
        let zeros: Vec<f32> = (0..n * k / 32).map(|i| (i % 7) as f32 * 0.01 - 0.03).collect();
        let packed: Vec<u8> = (0..n * k / 2).map(|i| (i * 131 % 256) as u8).collect();
        let forms = [
            QWeight::Q8 { n, k, codes, scales: scales.clone() },
            QWeight::Q4 { n, k, group: 32, packed, scales, zeros },
        ];
        for q in &forms {
            let deq = q.to_tensor();
            for m in [1, 3] {
                let want = naive(m, &x, &deq);
                let mut got = vec![0.0; m * n];
                linear(m, &x, q, &mut got);
                assert_close(&got, &want, &format!("{:?} m={m}", q.dtype()));
            }
            for (name, o) in every_kernel(&x[..k], q) {
                assert_close(&o, &naive(1, &x, &deq), &format!("{:?} {name}", q.dtype()));
            }
        }
    }

    /// The integer q8 scheme of the wasm kernel, through its portable reference [`fixed::dot`]:
    /// the limbs rebuild `X` and stay within 2^-29 m of `x`; rows (longer than one flush) within the
    /// documented bound of the f64 dot with the dequantized weights; all-zero and non-finite rows;
    /// and the i32 lane bound of [`fixed::FLUSH`] on the extreme inputs (`dot` checks every add).
    #[test]
    fn fixed_point_q8_stays_within_its_bound() {
        let (n, k) = (23, 2 * fixed::FLUSH + 512);
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.45) * 0.3).collect();
        let q = QWeight::from_tensor(Tensor::new(vec![n, k], w), WeightDtype::Q8);
        let QWeight::Q8 { codes, scales, .. } = &q else { unreachable!() };
        // activations over several magnitudes (the small ones lose relative precision in X)
        let x: Vec<f32> = (0..k).map(|i| ((i * 31 % 97) as f32 - 48.0) / 40.0 * [1.0, 1e-3, 30.0][i % 3]).collect();
        let m = x.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
        let fx = fixed::FixedX::new(&x).unwrap();
        for t in 0..k {
            let xx = ((fx.hi[t] as i64) << fixed::LIMB) + fx.lo[t] as i64;
            assert!((0..1 << fixed::LIMB).contains(&fx.lo[t]) && xx.abs() <= 1 << fixed::BITS);
            assert!((xx as f64 * fx.unit - x[t] as f64).abs() <= m * 2f64.powi(-29) * (1.0 + 1e-9), "x[{t}]");
        }
        let want = naive(1, &x, &q.to_tensor());
        for j in 0..n {
            let row = &codes[j * k..(j + 1) * k];
            let got = fx.out(fixed::dot(row, &fx), scales[j]) as f64;
            let l1: f64 = row.iter().map(|&c| (c as f64).abs()).sum();
            let bound = scales[j] as f64 * l1 * m * 2f64.powi(-29) * (1.0 + 1e-6) + want[j].abs() * 2f64.powi(-23);
            assert!((got - want[j]).abs() <= bound, "row {j}: {got} vs {} (bound {bound})", want[j]);
            assert!((got - want[j]).abs() < 1e-4, "row {j}: {got} vs {}", want[j]);
        }
        let zero = fixed::FixedX::new(&[0.0; 64]).unwrap();
        assert_eq!(zero.out(fixed::dot(&codes[..64], &zero), scales[0]), 0.0);
        for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
            assert!(fixed::FixedX::new(&[1.0, bad, 2.0]).is_none());
        }
        // every lane at its largest: |q| = 128 against |X| = 2^28 (hi = ±2^14), over two flushes
        let len = 2 * fixed::FLUSH + 16;
        for v in [1.0f32, -1.0] {
            let fx = fixed::FixedX::new(&vec![v; len]).unwrap();
            assert_eq!(fixed::dot(&vec![-128i8; len], &fx), -128 * len as i64 * (v as i64) << fixed::BITS);
        }
    }

    /// q8 with one scale per row and per 32-weight block (GGUF Q8_0), with `k` not a multiple of
    /// 64 (the kernels' 8- / 16- / 32-code tails; `k = 100`: AVX2's one-row path) and row counts
    /// that leave rows after the last 4-row pass: every x86 kernel directly and the scalar one.
    #[test]
    fn q8_tails_match_their_dequantized_weights() {
        for (n, k, per_row) in [(13, 208, true), (11, 512, true), (7, 100, true), (9, 224, false), (6, 256, false)] {
            let x: Vec<f32> = (0..k).map(|i| ((i * 31 % 97) as f32 - 48.0) / 40.0).collect();
            let codes: Vec<i8> = (0..n * k).map(|i| ((i * 7919 % 255) as i32 - 127) as i8).collect();
            let ns = if per_row { n } else { n * k / 32 };
            let scales: Vec<f32> = (0..ns).map(|i| 0.001 + (i % 13) as f32 * 0.0007).collect();
            let q = QWeight::Q8 { n, k, codes, scales };
            let want = naive(1, &x, &q.to_tensor());
            for (name, o) in every_kernel(&x, &q) {
                assert_close(&o, &want, &format!("n={n} k={k} per_row={per_row} {name}"));
            }
        }
    }

    /// The q4 form of the fixed-point matvec ([`fixed::q4_dot`], the wasm kernel's reference): rows
    /// within the documented bound of the f64 sum `Σ_g scale_g Σ q x` for groups of 64, 128 and 256;
    /// and the f32 exactness of the i32 lanes (checked in `q4_dot`) at the extremes: every code 15
    /// against `X = ±2^28` in groups of [`fixed::Q4_GROUP_MAX`].
    #[test]
    fn fixed_point_q4_stays_within_its_bound() {
        use crate::dtype::quant::q4_code;
        let (n, k) = (11, 1024);
        let x: Vec<f32> = (0..k).map(|i| ((i * 31 % 97) as f32 - 48.0) / 40.0 * [1.0, 1e-3, 30.0][i % 3]).collect();
        let m = x.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
        let fx = fixed::FixedX::new(&x).unwrap();
        let packed: Vec<u8> = (0..n * k / 2).map(|i| (i * 131 % 256) as u8).collect();
        for group in [64, 128, 256] {
            let gpr = k / group;
            let scales: Vec<f32> = (0..n * gpr).map(|i| 0.001 + (i % 13) as f32 * 0.0007).collect();
            for j in 0..n {
                let row = &packed[j * k / 2..(j + 1) * k / 2];
                let sc = &scales[j * gpr..(j + 1) * gpr];
                let got = fixed::q4_dot(row, group, sc, &fx) as f64;
                let (mut want, mut l1, mut l1x) = (0.0f64, 0.0f64, 0.0f64);
                for t in 0..k {
                    let (q, s) = (q4_code(row, t) as f64, sc[t / group].abs() as f64);
                    want += sc[t / group] as f64 * q * x[t] as f64;
                    l1 += s * q;
                    l1x += s * q * (x[t].abs() as f64 + m * 2f64.powi(-29));
                }
                let bound = (l1 * m * 2f64.powi(-29) + (gpr + 4) as f64 * 2f64.powi(-24) * l1x) * (1.0 + 1e-6) + want.abs() * 2f64.powi(-23);
                assert!((got - want).abs() <= bound, "group {group} row {j}: {got} vs {want} (bound {bound})");
                assert!((got - want).abs() < 1e-4, "group {group} row {j}: {got} vs {want}");
            }
        }
        let g = fixed::Q4_GROUP_MAX;
        for v in [1.0f32, -1.0] {
            let fx = fixed::FixedX::new(&vec![v; 2 * g]).unwrap();
            let got = fixed::q4_dot(&vec![0xff; g], g, &[1.0, 0.5], &fx);
            assert_eq!(got, 15.0 * v * 1.5 * g as f32);
        }
    }
}
