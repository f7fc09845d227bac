//! CPU kernels. `matmul_nt` is the hot path (every linear layer): `out[m,n] = x[m,k] · w[n,k]^T`,
//! both operands contiguous along `k`, so each output is a dot product of two contiguous rows.
//! Register-blocked 4×4 (4 rows of x against 4 rows of w) with SIMD accumulators:
//! WASM SIMD128 (`f32x4`; fused multiply-adds in the relaxed-SIMD build) in the wasm build, AVX2+FMA (runtime-detected) natively, scalar otherwise.

/// `out[i*n + j] = sum_k x[i*k + kk] * w[j*k + kk]`.
pub fn matmul_nt(m: usize, n: usize, k: usize, x: &[f32], w: &[f32], out: &mut [f32]) {
    assert!(x.len() >= m * k && w.len() >= n * k && out.len() >= m * n);
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        return simd128::matmul_nt(m, n, k, x, w, out);
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the features were detected at run time.
            return unsafe { avx2::matmul_nt(m, n, k, x, w, out) };
        }
    }
    #[allow(unreachable_code)]
    scalar::matmul_nt(m, n, k, x, w, out)
}

/// Dot product of two equal-length slices with the same kernel family.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut out = [0.0f32];
    matmul_nt(1, 1, a.len(), a, b, &mut out);
    out[0]
}

mod scalar {
    pub fn matmul_nt(m: usize, n: usize, k: usize, x: &[f32], w: &[f32], out: &mut [f32]) {
        for i in 0..m {
            let xr = &x[i * k..(i + 1) * k];
            for j in 0..n {
                let wr = &w[j * k..(j + 1) * k];
                let mut acc = [0.0f32; 8];
                let chunks = k / 8;
                for c in 0..chunks {
                    for l in 0..8 {
                        acc[l] += xr[c * 8 + l] * wr[c * 8 + l];
                    }
                }
                let mut s: f32 = acc.iter().sum();
                for kk in chunks * 8..k {
                    s += xr[kk] * wr[kk];
                }
                out[i * n + j] = s;
            }
        }
    }
}

/// Shared blocking driver: calls `tile::<MI, NJ>(i0, j0)` for tiles of at most 4×4 outputs with
/// compile-time sizes (so accumulators live in registers), iterating weight rows in the outer loop
/// so a 4-row strip of `w` stays in cache while all rows of `x` pass over it.
macro_rules! for_tiles {
    ($m:expr, $n:expr, $tile:ident, ($($arg:expr),*)) => {{
        let (m, n) = ($m, $n);
        let mut j0 = 0;
        if m == 1 {
            // matrix × vector (a decode step): 8 weight rows per tile, 8 independent accumulators
            while j0 + 8 <= n {
                $tile::<1, 8>(0, j0, $($arg),*);
                j0 += 8;
            }
        }
        while j0 < n {
            let nj = (n - j0).min(4);
            let mut i0 = 0;
            while i0 < m {
                let mi = (m - i0).min(4);
                match (mi, nj) {
                    (4, 4) => $tile::<4, 4>(i0, j0, $($arg),*),
                    (1, 4) => $tile::<1, 4>(i0, j0, $($arg),*),
                    (2, 4) => $tile::<2, 4>(i0, j0, $($arg),*),
                    (3, 4) => $tile::<3, 4>(i0, j0, $($arg),*),
                    (4, 1) => $tile::<4, 1>(i0, j0, $($arg),*),
                    (4, 2) => $tile::<4, 2>(i0, j0, $($arg),*),
                    (4, 3) => $tile::<4, 3>(i0, j0, $($arg),*),
                    (1, 1) => $tile::<1, 1>(i0, j0, $($arg),*),
                    (1, 2) => $tile::<1, 2>(i0, j0, $($arg),*),
                    (1, 3) => $tile::<1, 3>(i0, j0, $($arg),*),
                    (2, 1) => $tile::<2, 1>(i0, j0, $($arg),*),
                    (2, 2) => $tile::<2, 2>(i0, j0, $($arg),*),
                    (2, 3) => $tile::<2, 3>(i0, j0, $($arg),*),
                    (3, 1) => $tile::<3, 1>(i0, j0, $($arg),*),
                    (3, 2) => $tile::<3, 2>(i0, j0, $($arg),*),
                    _ => $tile::<3, 3>(i0, j0, $($arg),*),
                }
                i0 += mi;
            }
            j0 += nj;
        }
    }};
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod simd128 {
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
        for_tiles!(m, n, tile, (n, k, x, w, out));
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
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
        for_tiles!(m, n, tile, (n, k, x, w, out));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_matches_naive_f64() {
        let (m, n, k) = (7, 11, 37);
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 53 % 97) as f32 - 48.0) / 30.0).collect();
        let mut out = vec![0.0; m * n];
        matmul_nt(m, n, k, &x, &w, &mut out);
        let mut sc = vec![0.0; m * n];
        scalar::matmul_nt(m, n, k, &x, &w, &mut sc);
        for i in 0..m {
            for j in 0..n {
                let r: f64 = (0..k).map(|t| x[i * k + t] as f64 * w[j * k + t] as f64).sum();
                assert!((out[i * n + j] as f64 - r).abs() < 1e-4, "simd ({i},{j}) {} vs {r}", out[i * n + j]);
                assert!((sc[i * n + j] as f64 - r).abs() < 1e-4, "scalar ({i},{j})");
            }
        }
    }
}
