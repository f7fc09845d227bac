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

pub(crate) mod scalar;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod simd128;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;

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
