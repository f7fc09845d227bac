//! The f32 matrix product of every linear layer and of attention: `out[m,n] = x[m,k] · w[n,k]^T`.
//!
//! * Several rows (encoder, prompt, cross-attention K/V): the packed-panel GEMM ([`packed`]), a
//!   register-blocked micro-kernel per ISA (AVX-512F or AVX2+FMA runtime-detected natively, SIMD128
//!   in wasm with fused multiply-adds in the relaxed-SIMD build, portable otherwise), each output
//!   one in-order sum whatever [`Block`] computes it.
//!   A weight multiplied by many rows on every call (the encoder's, cross-attention K/V's) can be
//!   packed once ([`Panels`], see `CpuWeight::pack_for_prefill`) instead of on every call.
//! * Fewer than [`PACKED_MIN_ROWS`] rows (a decode step, one query's attention scores): dot-product
//!   tiles of at most 4×4 (4 rows of x against 4 rows of w) with SIMD accumulators along `k`, where
//!   packing `w` would cost as much as the product.
//! One file per ISA: [`scalar`], `avx2`, `avx512`, `simd128`.

pub mod int;
pub mod packed;
pub use packed::{gemm, gemm_panels, pack_nn, pack_nt, Block, Operands, Panels};

/// Rows from which [`matmul_nt`] packs `w` into panels (the packing reads `w` once, as one row of
/// the product does).
pub const PACKED_MIN_ROWS: usize = 4;

/// The rows of a one-row product (a decode step) in passes of `R`: pass `p` takes rows `p, p + s,
/// …, p + (R - 1) s` with `s = n / R`, the last `n % R` rows one at a time. Every row is computed
/// alone (its own accumulators, the same operations whichever pass takes it), so the pass layout
/// changes no result. Why rows `s` apart rather than `R` adjacent ones: a pass reads its `R` rows
/// as concurrent streams, and adjacent rows of a matrix with k of 512 share a 4 KiB page, which
/// defeats the hardware prefetcher of some hosts. In `bench/wasm-kernels` (Node 20) on an AMD EPYC
/// (Zen 4) host, a t5-small decode step streamed from memory took, with adjacent rows, 14.3 ms at
/// f32 (8 rows a pass; 7.3 with one row a pass, at the wasm read bandwidth) and 8.5 ms at q8 (8
/// rows; 3.2 with one): rows `s` apart take 7.3 ms at f32 with 8 accumulators, and on matrices
/// in cache they are as fast as adjacent ones (or faster).
#[inline(always)]
pub fn strided<const R: usize>(n: usize, out: &mut [f32], mut pass: impl FnMut([usize; R], &mut [f32]), mut one: impl FnMut([usize; 1], &mut [f32])) {
    let s = n / R;
    for p in 0..s {
        pass(core::array::from_fn(|i| p + i * s), out);
    }
    for j in R * s..n {
        one([j], out);
    }
}

/// `out[i*n + j] = sum_k x[i*k + kk] * w[j*k + kk]`.
pub fn matmul_nt(m: usize, n: usize, k: usize, x: &[f32], w: &[f32], out: &mut [f32]) {
    matmul_nt_block(m, n, k, x, w, out, Block::all(m, n))
}

/// [`matmul_nt`] for the outputs in `block` only (the others are left as they are). The kernel is
/// chosen from the whole product's `m`, so every block of one product computes each of its outputs
/// exactly as [`matmul_nt`] does (threads split a product into blocks).
pub fn matmul_nt_block(m: usize, n: usize, k: usize, x: &[f32], w: &[f32], out: &mut [f32], block: Block) {
    assert!(x.len() >= m * k && w.len() >= n * k && out.len() >= m * n);
    assert!(block.rows.end <= m && block.cols.end <= n, "matmul_nt_block: block outside {m} x {n}");
    if m >= PACKED_MIN_ROWS {
        return gemm(Operands { k, x, ldx: k, out, ldo: n }, block, &mut pack_nt(w, k, k));
    }
    let (r0, c0) = (block.rows.start, block.cols.start);
    let (mb, nb) = (block.rows.len(), block.cols.len());
    if (mb, nb) == (m, n) {
        return tiles(m, n, k, x, w, out);
    }
    let mut tmp = vec![0.0f32; mb * nb];
    tiles(mb, nb, k, &x[r0 * k..], &w[c0 * k..], &mut tmp);
    for i in 0..mb {
        out[(r0 + i) * n + c0..(r0 + i) * n + c0 + nb].copy_from_slice(&tmp[i * nb..(i + 1) * nb]);
    }
}

/// The dot-product tiles (few rows).
fn tiles(m: usize, n: usize, k: usize, x: &[f32], w: &[f32], out: &mut [f32]) {
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

/// `out[j] = x · w[j * ldw .. j * ldw + k]` for `j < n`: one input row against `n` rows of `w`
/// that lie `ldw ≥ k` apart (one head's keys in a cache that holds every head), each summed
/// exactly as [`matmul_nt`] sums a row of a one-row product.
pub fn matvec_strided(n: usize, k: usize, x: &[f32], w: &[f32], ldw: usize, out: &mut [f32]) {
    assert!(ldw >= k && x.len() >= k && out.len() >= n && (n == 0 || w.len() >= (n - 1) * ldw + k));
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        return simd128::matvec(n, k, x, w, ldw, out);
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the features were detected at run time.
            return unsafe { avx2::matvec(n, k, x, w, ldw, out) };
        }
    }
    #[allow(unreachable_code)]
    scalar::matvec(n, k, x, w, ldw, out)
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
#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(test)]
mod tests;
