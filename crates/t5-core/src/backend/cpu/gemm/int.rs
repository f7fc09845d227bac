//! The integer GEMM for q8 / q4 prefill: every input row in the fixed-point form of the integer
//! matvec ([`crate::backend::cpu::fixed`]: `X = hi · 2^14 + lo`, two i16 limbs), every output the
//! same exact integer sum `Σ q X` as that matvec computes (q4: the same exact per-group lanes,
//! scaled in the same order), so an output does not depend on the tile or [`Block`] computing it,
//! nor on the number of rows: the q8 outputs equal [`fixed::dot`]'s bit for bit on every ISA, the
//! q4 ones [`fixed::q4_dot`]'s where the multiply-adds are not fused.
//!
//! The tiles share each weight load and decode between [`Int::mr`] input rows and each limb load
//! between [`Int::nr`] weight rows (`i32x4.dot_i16x8_s` in wasm, `vpmaddwd` with AVX2 natively).

use super::packed::Block;
use crate::backend::cpu::fixed::{self, FixedX};

/// Integer weights the kernels take: q8 with one scale per row, q4 with groups of a multiple of 64
/// up to [`fixed::Q4_GROUP_MAX`] ([`crate::dtype::quant::q4_code`] layout).
#[derive(Clone, Copy)]
pub enum IntWeights<'a> {
    Q8 { codes: &'a [i8], scales: &'a [f32] },
    Q4 { packed: &'a [u8], group: usize, scales: &'a [f32], zeros: &'a [f32] },
}

impl IntWeights<'_> {
    /// Whether the kernels take a matrix of `k` columns in this form.
    pub fn fits(&self, k: usize) -> bool {
        match *self {
            IntWeights::Q8 { .. } => k % 16 == 0,
            IntWeights::Q4 { group, .. } => group % 64 == 0 && group <= fixed::Q4_GROUP_MAX && k % group == 0,
        }
    }
}

/// The input rows in fixed point, with the per-group sums of `x` the q4 zero points need.
pub struct FixedRows {
    pub rows: Vec<FixedX>,
    /// `xs[i][g] = Σ_{t ∈ g} x[i, t]` (q4 only; empty for q8).
    pub xs: Vec<Vec<f32>>,
}

impl FixedRows {
    /// `None` if a row has a non-finite value (it has no fixed-point form: callers use the float GEMM).
    pub fn new(m: usize, k: usize, x: &[f32], group: Option<usize>) -> Option<FixedRows> {
        let rows = (0..m).map(|i| FixedX::new(&x[i * k..(i + 1) * k])).collect::<Option<Vec<_>>>()?;
        let xs = match group {
            Some(g) => (0..m).map(|i| x[i * k..(i + 1) * k].chunks_exact(g).map(|c| c.iter().sum()).collect()).collect(),
            None => Vec::new(),
        };
        Some(FixedRows { rows, xs })
    }
}

/// One integer tile: `mr ≤ MR` input rows (from `i0`) × `nr ≤ NR` weight rows (from `j0`), stored at
/// `out[(i0 + i) · ldo + j0 + j]`.
pub(crate) type IntTile = unsafe fn(&FixedRows, &IntWeights<'_>, usize, usize, usize, usize, usize, *mut f32, usize);

#[derive(Clone, Copy)]
pub(crate) struct Int {
    #[cfg_attr(not(test), allow(dead_code))] // named in test failures
    pub name: &'static str,
    pub mr: usize,
    pub nr: usize,
    pub tile: IntTile,
}

/// The integer kernel that q8 / q4 products of several rows take (`qkernels::linear`), if any.
///
/// * wasm: none, the packed f32 GEMM is faster. Measured (Node 20, single-thread SIMD128 build,
///   t5-small encoder, docs/benchmarks.md "integer GEMM"): [`super::simd128::INT`] at 0.77× (q8)
///   and 0.46× (q4) of it on 8×128 — SIMD128 `i32x4.dot_i16x8_s` + add on two limbs do 4
///   products in 2 instructions, as `f32x4` mul + add do, plus the weight widening and the
///   reductions; the relaxed-SIMD build's fused multiply-add halves the f32 side again.
/// * natively: none by default either, the packed f32 GEMM with dequantized panels is faster. Measured
///   (t5-bench, t5-small encoder 8×128, loaded 2-core Sapphire Rapids VM, docs/benchmarks.md
///   "integer GEMM"): q8 641 → 309 tok/s and q4 683 → 250 tok/s at 1 thread with [`super::avx512::INT`].
///   With two 14-bit limbs per activation a `vpdpwssd` does 16 useful products where an
///   AVX-512 FMA does 16, and the integer one issues on one port where FMAs issue on two. Only
///   an i8 × i8 form with far more products per instruction (AMX-INT8 `tdpbssd` on 4 byte limbs;
///   VNNI `vpdpbusd` with 4 limbs is no better than `vpdpwssd`) changes that. `T5_INT_GEMM=1` selects the VNNI kernel, for
///   measuring it.
pub(crate) fn int_isa() -> Option<Int> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::env::var_os("T5_INT_GEMM").is_some_and(|v| v == "1") && super::avx512::has_int() {
            return Some(super::avx512::INT);
        }
    }
    #[allow(unreachable_code)]
    None
}

/// Every integer kernel this machine can run (the tests check each).
#[cfg(test)]
pub(crate) fn every_int() -> Vec<Int> {
    #[allow(unused_mut)]
    let mut v = vec![SCALAR];
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    v.push(super::simd128::INT);
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        v.push(super::avx2::INT);
    }
    #[cfg(target_arch = "x86_64")]
    if super::avx512::has_int() {
        v.push(super::avx512::INT);
    }
    v
}

/// `out[i · ldo + j]` for `(i, j)` in `block` of the `m × n` product of the rows of `fx` and the
/// weights `w` (`n × k`).
pub(crate) fn int_gemm_with(isa: Int, fx: &FixedRows, w: &IntWeights<'_>, k: usize, out: &mut [f32], ldo: usize, block: Block) {
    assert!(w.fits(k), "int_gemm: weights of this form do not fit k = {k}");
    if block.rows.is_empty() || block.cols.is_empty() {
        return;
    }
    let (r1, c1) = (block.rows.end, block.cols.end);
    assert!(fx.rows.len() >= r1 && out.len() >= (r1 - 1) * ldo + c1 && ldo >= c1);
    if let IntWeights::Q4 { .. } = w {
        assert!(fx.xs.len() >= r1, "int_gemm: q4 needs the group sums of x");
    }
    match *w {
        IntWeights::Q8 { codes, scales } => assert!(codes.len() >= c1 * k && scales.len() >= c1),
        IntWeights::Q4 { packed, group, scales, zeros } => {
            assert!(packed.len() >= c1 * k / 2 && scales.len() >= c1 * k / group && zeros.len() >= c1 * k / group)
        }
    }
    // Rows in strips whose fixed-point limbs (4 bytes per value) stay in L2 while every weight row
    // of the block passes over them once; the tiles are independent, so the order changes nothing.
    let strip = (STRIP_BYTES / (4 * k)).max(1).div_ceil(isa.mr) * isa.mr;
    let mut s0 = block.rows.start;
    while s0 < r1 {
        let s1 = (s0 + strip).min(r1);
        let mut j0 = block.cols.start;
        while j0 < c1 {
            let nr = isa.nr.min(c1 - j0);
            let mut i0 = s0;
            while i0 < s1 {
                let mr = isa.mr.min(s1 - i0);
                // SAFETY: rows and weight rows in range (checked above).
                unsafe { (isa.tile)(fx, w, k, i0, mr, j0, nr, out.as_mut_ptr(), ldo) };
                i0 += mr;
            }
            j0 += nr;
        }
        s0 = s1;
    }
}

/// Bytes of input-row limbs a strip of rows takes (see [`int_gemm_with`]).
const STRIP_BYTES: usize = 192 * 1024;

/// The portable kernel: each output from [`fixed::dot`] / [`fixed::q4_dot`] (the reference).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const SCALAR: Int = Int { name: "scalar", mr: 1, nr: 1, tile: scalar_tile };

#[cfg_attr(not(test), allow(dead_code))]
unsafe fn scalar_tile(fx: &FixedRows, w: &IntWeights<'_>, k: usize, i0: usize, mr: usize, j0: usize, nr: usize, out: *mut f32, ldo: usize) {
    for i in i0..i0 + mr {
        for j in j0..j0 + nr {
            *out.add(i * ldo + j) = reference(fx, w, k, i, j);
        }
    }
}

/// Output `(i, j)` as the integer matvec computes it.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn reference(fx: &FixedRows, w: &IntWeights<'_>, k: usize, i: usize, j: usize) -> f32 {
    match *w {
        IntWeights::Q8 { codes, scales } => fx.rows[i].out(fixed::dot(&codes[j * k..(j + 1) * k], &fx.rows[i]), scales[j]),
        IntWeights::Q4 { packed, group, scales, zeros } => {
            let gpr = k / group;
            let (s, z) = (&scales[j * gpr..(j + 1) * gpr], &zeros[j * gpr..(j + 1) * gpr]);
            fixed::q4_dot(&packed[j * k / 2..(j + 1) * k / 2], group, s, &fx.rows[i]) + zero_term(s, z, &fx.xs[i])
        }
    }
}

/// `Σ_g (zero_g − 8 scale_g) · Σ_{t∈g} x_t`, in the order of the kernels.
#[inline(always)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn zero_term(scales: &[f32], zeros: &[f32], xs: &[f32]) -> f32 {
    let mut zs = 0.0f32;
    for ((&s, &z), &x) in scales.iter().zip(zeros).zip(xs) {
        zs += (z - 8.0 * s) * x;
    }
    zs
}
