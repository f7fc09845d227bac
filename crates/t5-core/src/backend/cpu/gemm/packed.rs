//! The packed-panel GEMM driver: `out[i, j] = Σ_t x[i, t] · B[t, j]` for a [`Block`] of outputs.
//!
//! `B` is never read in place: a *packer* writes `NR` of its columns at a time into a panel laid out
//! `panel[t · NR + c] = B[t, j0 + c]` (columns past the end of the block are zero), so the
//! micro-kernel reads `NR` consecutive floats per step of `t` and broadcasts one `x[i, t]` per row:
//! `MR × NR` outputs live in registers for the whole sum (`MR`, `NR` per ISA: [`Isa`]). The packer
//! is where the weight forms meet the kernel: f32 rows are transposed in, quantized rows are
//! dequantized then transposed ([`super::super::qkernels::linear`]), attention's `V` is copied
//! ([`pack_nn`]).
//!
//! Every output is one accumulator summed over `t = 0, 1, …, k - 1` in order (a fused multiply-add
//! per step where the ISA has one, else a multiply then an add), by whichever call owns it: its value
//! does not depend on the block it was computed in, so splitting a matrix into blocks (threads)
//! gives bit-identical results.

use std::ops::Range;

/// The outputs one call computes: `rows × cols` of the `m × n` result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub rows: Range<usize>,
    pub cols: Range<usize>,
}

impl Block {
    /// Every output of an `m × n` result.
    pub fn all(m: usize, n: usize) -> Block {
        Block { rows: 0..m, cols: 0..n }
    }
}

/// The left operand and the result: `x[i, t] = x[i · ldx + t]`, `out[i, j] = out[i · ldo + j]`.
pub struct Operands<'a> {
    pub k: usize,
    pub x: &'a [f32],
    pub ldx: usize,
    pub out: &'a mut [f32],
    pub ldo: usize,
}

/// One micro-kernel: `tile(mr, k, x, ldx, panel, out, ldo, nr)` computes `mr ≤ MR` rows × the first
/// `nr ≤ NR` columns of a panel and stores them.
pub(crate) type Tile = unsafe fn(usize, usize, *const f32, usize, *const f32, *mut f32, usize, usize);

/// A micro-kernel with its register block.
#[derive(Clone, Copy)]
pub(crate) struct Isa {
    #[allow(dead_code)] // named in test messages
    pub name: &'static str,
    pub mr: usize,
    pub nr: usize,
    pub tile: Tile,
}

/// The kernel of this machine: AVX-512F, else AVX2+FMA (runtime-detected) natively, SIMD128 in wasm
/// (relaxed fused multiply-add in the relaxed-SIMD build), portable otherwise.
pub(crate) fn isa() -> Isa {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        return super::simd128::ISA;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return super::avx512::ISA;
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return super::avx2::ISA;
        }
    }
    #[allow(unreachable_code)]
    super::scalar::ISA
}

/// Every kernel this machine can run (the tests check each against f64).
#[cfg(test)]
pub(crate) fn every_isa() -> Vec<Isa> {
    #[allow(unused_mut)]
    let mut v = vec![super::scalar::ISA];
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    v.push(super::simd128::ISA);
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            v.push(super::avx2::ISA);
        }
        if std::is_x86_feature_detected!("avx512f") {
            v.push(super::avx512::ISA);
        }
    }
    v
}

/// `pack(j0, nr, NR, panel)` writes columns `j0..j0 + nr` of `B` into `panel` (`k · NR` floats,
/// `panel[t · NR + c]`); the driver zeroes the panel's padding columns beforehand.
pub type Packer<'p> = dyn FnMut(usize, usize, usize, &mut [f32]) + 'p;

/// `out[i, j] = Σ_t x[i, t] · B[t, j]` for `(i, j)` in `block`, `B` given by `pack`.
pub fn gemm(o: Operands<'_>, block: Block, pack: &mut Packer<'_>) {
    gemm_with(isa(), o, block, pack)
}

pub(crate) fn gemm_with(isa: Isa, o: Operands<'_>, block: Block, pack: &mut Packer<'_>) {
    let Operands { k, x, ldx, out, ldo } = o;
    if block.rows.is_empty() || block.cols.is_empty() {
        return;
    }
    let (r1, c1) = (block.rows.end, block.cols.end);
    assert!(ldx >= k && x.len() >= (r1 - 1) * ldx + k, "gemm: x too short");
    assert!(ldo >= c1 && out.len() >= (r1 - 1) * ldo + c1, "gemm: out too short");
    let mut panel = vec![0.0f32; k * isa.nr];
    let mut j0 = block.cols.start;
    while j0 < c1 {
        let nr = isa.nr.min(c1 - j0);
        if nr < isa.nr {
            panel.iter_mut().for_each(|v| *v = 0.0);
        }
        pack(j0, nr, isa.nr, &mut panel);
        panel_rows(isa, k, x, ldx, out, ldo, block.rows.clone(), j0, nr, &panel);
        j0 += nr;
    }
}

/// Rows `rows` of `x` against one packed panel (`k · NR` floats) into columns `j0..j0 + nr` of `out`.
#[allow(clippy::too_many_arguments)]
fn panel_rows(isa: Isa, k: usize, x: &[f32], ldx: usize, out: &mut [f32], ldo: usize, rows: Range<usize>, j0: usize, nr: usize, panel: &[f32]) {
    assert!(panel.len() >= k * isa.nr && nr <= isa.nr);
    let mut i0 = rows.start;
    while i0 < rows.end {
        let mr = isa.mr.min(rows.end - i0);
        // SAFETY: rows i0..i0+mr of x hold k floats and columns j0..j0+nr of those rows of out
        // exist (checked by the callers), the panel holds k · NR floats (checked above).
        unsafe { (isa.tile)(mr, k, x.as_ptr().add(i0 * ldx), ldx, panel.as_ptr(), out.as_mut_ptr().add(i0 * ldo + j0), ldo, nr) };
        i0 += mr;
    }
}

/// A weight `W` `[n × k]` packed once into the panels the GEMM reads for `B = Wᵀ` (what
/// [`pack_nt`] writes on every call): panel `p` holds columns `p · nr..` (`k · nr` floats, the last
/// one padded with zeros), `nr` the register block of this machine's kernel ([`isa`]). Products
/// through [`gemm_panels`] are bit-identical to [`gemm`] with [`pack_nt`]: the same kernel reads the
/// same panel contents.
#[derive(Debug, Clone, PartialEq)]
pub struct Panels {
    n: usize,
    k: usize,
    nr: usize,
    data: Vec<f32>,
}

impl Panels {
    /// `w` (`n` rows of `k`, row-major) packed for this machine's kernel.
    pub fn pack(w: &[f32], n: usize, k: usize) -> Panels {
        Self::pack_for(isa(), w, n, k)
    }

    pub(crate) fn pack_for(isa: Isa, w: &[f32], n: usize, k: usize) -> Panels {
        assert!(w.len() >= n * k, "Panels::pack: weight shorter than {n} x {k}");
        let nr = isa.nr;
        let mut data = vec![0.0f32; n.div_ceil(nr) * k * nr];
        if k > 0 {
            for (p, panel) in data.chunks_exact_mut(k * nr).enumerate() {
                let j0 = p * nr;
                transpose_in(&w[j0 * k..], k, k, nr.min(n - j0), nr, panel);
            }
        }
        Panels { n, k, nr, data }
    }

    /// `(n, k)` of the packed weight.
    pub fn dims(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    /// Resident bytes.
    pub fn bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<f32>()
    }
}

/// [`gemm`] with `B = Wᵀ` from panels packed once ([`Panels`]); `o.k` must be the panels' `k`.
pub fn gemm_panels(o: Operands<'_>, block: Block, w: &Panels) {
    let isa = isa();
    if isa.nr != w.nr || !block.cols.start.is_multiple_of(w.nr) {
        // panels made for another kernel or a block not on a panel boundary: copy out of them
        let mut pack = |j0: usize, nr: usize, nrmax: usize, panel: &mut [f32]| {
            for t in 0..w.k {
                for c in 0..nr {
                    let j = j0 + c;
                    panel[t * nrmax + c] = w.data[(j / w.nr) * w.k * w.nr + t * w.nr + j % w.nr];
                }
            }
        };
        return gemm_with(isa, o, block, &mut pack);
    }
    let Operands { k, x, ldx, out, ldo } = o;
    assert_eq!(k, w.k, "gemm_panels: x has {k} columns, the panels {}", w.k);
    if block.rows.is_empty() || block.cols.is_empty() {
        return;
    }
    let (r1, c1) = (block.rows.end, block.cols.end);
    assert!(c1 <= w.n, "gemm_panels: columns {c1} past the weight's {}", w.n);
    assert!(ldx >= k && x.len() >= (r1 - 1) * ldx + k, "gemm: x too short");
    assert!(ldo >= c1 && out.len() >= (r1 - 1) * ldo + c1, "gemm: out too short");
    let mut j0 = block.cols.start;
    while j0 < c1 {
        let nr = isa.nr.min(c1 - j0);
        let p = j0 / isa.nr;
        panel_rows(isa, k, x, ldx, out, ldo, block.rows.clone(), j0, nr, &w.data[p * k * isa.nr..(p + 1) * k * isa.nr]);
        j0 += nr;
    }
}

/// Packer for `B = Wᵀ`, `W` `[n × k]` row-major with row stride `ldw` (a linear layer's weight as
/// stored: `ldw = k`; attention's `K` in place: the row of all heads).
pub fn pack_nt<'w>(w: &'w [f32], ldw: usize, k: usize) -> impl FnMut(usize, usize, usize, &mut [f32]) + 'w {
    move |j0, nr, nrmax, panel| transpose_in(&w[j0 * ldw..], ldw, k, nr, nrmax, panel)
}

/// Packer for `B` `[k × n]` row-major with row stride `ldb` (attention's `V`).
pub fn pack_nn<'b>(b: &'b [f32], ldb: usize) -> impl FnMut(usize, usize, usize, &mut [f32]) + 'b {
    move |j0, nr, nrmax, panel| {
        for (t, dst) in panel.chunks_exact_mut(nrmax).enumerate() {
            dst[..nr].copy_from_slice(&b[t * ldb + j0..t * ldb + j0 + nr]);
        }
    }
}

/// `rows` (`nr` rows of `k`, row stride `ld`) transposed into `panel[t · nrmax + c]`.
pub fn transpose_in(rows: &[f32], ld: usize, k: usize, nr: usize, nrmax: usize, panel: &mut [f32]) {
    for c in 0..nr {
        let r = &rows[c * ld..c * ld + k];
        for (t, &v) in r.iter().enumerate() {
            panel[t * nrmax + c] = v;
        }
    }
}

/// Stores the first `nr` columns of a `mr × NR` register block from `acc` (row-major, `NR` per row).
///
/// # Safety
/// `out` rows `0..mr` with stride `ldo` hold `nr` floats.
#[inline(always)]
pub(crate) unsafe fn store<const NR: usize>(acc: &[[f32; NR]], mr: usize, out: *mut f32, ldo: usize, nr: usize) {
    for (i, row) in acc.iter().enumerate().take(mr) {
        core::ptr::copy_nonoverlapping(row.as_ptr(), out.add(i * ldo), nr);
    }
}
