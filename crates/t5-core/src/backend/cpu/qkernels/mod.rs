//! `out = x · w^T` for every weight storage form ([`QWeight`]) without ever dequantizing a whole
//! matrix:
//! * one input row (a decode step): fused dequantize-and-dot per weight row, straight from the
//!   packed codes into SIMD registers (AVX-512 for q4, q8 and bf16, else AVX2+FMA(+F16C), runtime-detected
//!   natively; SIMD128 in wasm; scalar otherwise). q4 accumulates `Σ q x` per group and adds `scale · that + (zero - 8 scale) · Σx`;
//!   q8 accumulates `Σ q x` per row and multiplies by the row scale once (per 32-weight block for
//!   GGUF Q8_0: block sums scaled and accumulated in registers); in wasm, q8 with one scale per row
//!   and q4 with groups of 64-256 sum exact integer products against a fixed-point copy of `x`
//!   instead ([`fixed`]), the relaxed-SIMD build's q4 on 7-bit digits of it (`relaxed`, where
//!   its dot instruction is signed and one instruction); GGUF Q4_0 / Q4_1 are q4 with groups
//!   of 32 (the low and the high nibbles of each 64-weight chunk are two groups).
//! * several input rows (encoder, prompt): the integer GEMM where [`gemm::int::int_isa`] names one
//!   (none at present: measured slower), else the packed-panel f32 GEMM ([`gemm::packed`]), whose
//!   packer dequantizes the weight rows of each panel (exactly torchao's dequantization, so the
//!   products equal those of the dequantized model) before transposing them in.

use super::gemm::int::{FixedRows, IntWeights};
use super::gemm::{self, Block, Operands};
use crate::dtype::QWeight;

/// `out[i*n + j] = Σ_t x[i*k + t] · w[j, t]` for `m` input rows.
pub fn linear(m: usize, x: &[f32], w: &QWeight, out: &mut [f32]) {
    let n = w.dims().0;
    linear_block(m, x, w, out, Block::all(m, n))
}

/// [`linear`] for the outputs in `block` only; each computed as [`linear`] computes it (the kernel
/// is chosen from the whole product's `m`). One input row takes the fused matvec, which computes
/// every column: a block of it must span all of them.
pub fn linear_block(m: usize, x: &[f32], w: &QWeight, out: &mut [f32], block: Block) {
    let (n, k) = w.dims();
    assert!(x.len() >= m * k && out.len() >= m * n);
    if let QWeight::F32 { data, .. } = w {
        return gemm::matmul_nt_block(m, n, k, x, data, out, block);
    }
    if m == 1 {
        assert_eq!(block.cols, 0..n, "linear_block: one row takes every column");
        if block.rows.is_empty() {
            return;
        }
        return matvec(x, w, out);
    }
    if let Some(isa) = gemm::int::int_isa() {
        let form = match w {
            QWeight::Q8 { codes, scales, .. } if scales.len() == n => Some((IntWeights::Q8 { codes, scales }, None)),
            QWeight::Q4 { group, packed, scales, zeros, .. } => Some((IntWeights::Q4 { packed, group: *group, scales, zeros }, Some(*group))),
            _ => None,
        };
        if let Some((iw, group)) = form.filter(|(iw, _)| iw.fits(k)) {
            if let Some(fx) = FixedRows::new(m, k, x, group) {
                return gemm::int::int_gemm_with(isa, &fx, &iw, k, out, n, block);
            }
        }
    }
    let mut rows = Vec::new();
    let mut pack = |j0: usize, nr: usize, nrmax: usize, panel: &mut [f32]| {
        rows.resize(nr * k, 0.0);
        for (c, r) in rows.chunks_exact_mut(k).enumerate() {
            w.dequantize_row(j0 + c, r);
        }
        gemm::packed::transpose_in(&rows, k, k, nr, nrmax, panel);
    };
    gemm::gemm(Operands { k, x, ldx: k, out, ldo: n }, block, &mut pack);
}

/// One input row of a one-row product, with what the wasm kernels derive from it: its fixed-point
/// form ([`fixed::FixedX`]) where the weight is q8 with a scale per row or q4 with groups of 64 to
/// [`fixed::Q4_GROUP_MAX`]. Made once per product and shared by the tasks of a weight split across
/// threads, each of which would otherwise convert the same row (a scalar pass over `x`).
pub struct RowInput<'a> {
    pub x: &'a [f32],
    fixed: Option<fixed::FixedX>,
}

impl<'a> RowInput<'a> {
    /// `x` (at least `k` values) for products with `w` or any weight of the same form and `k`
    /// (the row blocks of one weight).
    pub fn new(x: &'a [f32], w: &QWeight) -> RowInput<'a> {
        let k = w.dims().1;
        #[allow(unused_mut)]
        let mut fixed = if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) && takes_fixed(w) { fixed::FixedX::new(&x[..k]) } else { None };
        // the relaxed-SIMD q4 kernel reads `X` as four 7-bit digits
        #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
        if matches!(w, QWeight::Q4 { .. }) && relaxed::digits_pay() {
            fixed = fixed.map(fixed::FixedX::with_digits);
        }
        RowInput { x, fixed }
    }

    /// The fixed-point form of `x` (`None`: the weight's kernel takes floats, or `x` is not finite).
    pub fn fixed(&self) -> Option<&fixed::FixedX> {
        self.fixed.as_ref()
    }
}

/// Whether the wasm kernel of `w`'s form sums integer products against [`fixed::FixedX`].
fn takes_fixed(w: &QWeight) -> bool {
    let (n, k) = w.dims();
    match w {
        QWeight::Q8 { scales, .. } => k % 16 == 0 && crate::dtype::quant::q8_group(n, k, scales.len()) == k,
        QWeight::Q4 { group, .. } => group % 64 == 0 && *group <= fixed::Q4_GROUP_MAX,
        _ => false,
    }
}

/// `out = x · w^T` for one input row, as [`linear`] computes it for `m = 1`, from a prepared row.
pub fn linear_row(input: &RowInput, w: &QWeight, out: &mut [f32]) {
    let (n, k) = w.dims();
    if let QWeight::F32 { data, .. } = w {
        return gemm::matmul_nt_block(1, n, k, input.x, data, out, Block::all(1, n));
    }
    matvec_input(input, w, out)
}

/// One input row against every weight row, fused.
pub fn matvec(x: &[f32], w: &QWeight, out: &mut [f32]) {
    matvec_input(&RowInput::new(x, w), w, out)
}

/// [`matvec`] from a prepared row.
pub fn matvec_input(input: &RowInput, w: &QWeight, out: &mut [f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        return simd128::matvec(input, w, out);
    }
    #[allow(unreachable_code)]
    let x = input.x;
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

pub use super::fixed;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128;
#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
mod relaxed;
#[cfg(test)]
mod tests;
