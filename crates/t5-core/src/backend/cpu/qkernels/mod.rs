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

use super::gemm;
use crate::quant::QWeight;

/// Weight rows dequantized at a time for multi-row inputs.
const STRIP: usize = 32;

/// `out[i*n + j] = Σ_t x[i*k + t] · w[j, t]` for `m` input rows.
pub fn linear(m: usize, x: &[f32], w: &QWeight, out: &mut [f32]) {
    let (n, k) = w.dims();
    assert!(x.len() >= m * k && out.len() >= m * n);
    if let QWeight::F32 { data, .. } = w {
        return gemm::matmul_nt(m, n, k, x, data, out);
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
        gemm::matmul_nt(m, nb, k, x, &scratch[..nb * k], &mut tmp[..m * nb]);
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

pub mod fixed;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128;
#[cfg(test)]
mod tests;
