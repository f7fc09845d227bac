//! AVX2 + FMA f32 tiles (runtime-detected).

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
