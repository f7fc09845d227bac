//! The CPU backend across threads: weights held as row blocks ([`CpuWeight`]) and the matmuls split
//! over them, so that every output element is computed by one thread exactly as one thread would
//! compute it (bit-identical results at any thread count).
//!
//! Why blocks of [`ALIGN`] rows: the kernels (`qkernels`) take whole weights and handle rows in
//! passes of 1, 2, 4 or 8 from row 0; a block that starts at a multiple of 16 gives every row the
//! same pass, hence the same arithmetic, as the unsplit weight.

use super::gemm;
use crate::pool::{self, SharedMut};
use super::qkernels;
use crate::dtype::{QWeight, WeightDtype};

/// Row blocks start at multiples of this.
pub const ALIGN: usize = 16;

/// A linear weight (or embedding table) as contiguous row blocks of one storage form: block `p`
/// holds rows `p * block_rows..` (the last one may be shorter). One block when the weight was
/// uploaded for one thread.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuWeight {
    n: usize,
    k: usize,
    block_rows: usize,
    blocks: Vec<QWeight>,
    /// Empty, or one per block: the f32 blocks packed once for the GEMM ([`Self::pack_for_prefill`]).
    panels: Vec<gemm::Panels>,
}

impl CpuWeight {
    /// `w` in (at most) `parts` blocks of whole multiples of [`ALIGN`] rows, cut off its end one at
    /// a time (the weight never takes much more than its own size while it is split).
    pub fn split(mut w: QWeight, parts: usize) -> CpuWeight {
        let (n, k) = w.dims();
        let block_rows = n.div_ceil(parts.max(1)).div_ceil(ALIGN) * ALIGN;
        if parts <= 1 || block_rows >= n {
            return CpuWeight { n, k, block_rows: n.max(1), blocks: vec![w], panels: Vec::new() };
        }
        let mut blocks: Vec<QWeight> = (1..n.div_ceil(block_rows)).rev().map(|p| w.split_rows_off(p * block_rows)).collect();
        blocks.push(w);
        blocks.reverse();
        CpuWeight { n, k, block_rows, blocks, panels: Vec::new() }
    }

    /// `(n, k)` = `(out_features, in_features)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    pub fn blocks(&self) -> usize {
        self.blocks.len()
    }

    pub fn dtype(&self) -> WeightDtype {
        self.blocks[0].dtype()
    }

    /// Resident bytes of the storage form (the packed panels not included: [`Self::panel_bytes`]).
    pub fn bytes(&self) -> usize {
        self.blocks.iter().map(QWeight::bytes).sum()
    }

    /// Resident bytes of the panels [`Self::pack_for_prefill`] made (0 before).
    pub fn panel_bytes(&self) -> usize {
        self.panels.iter().map(gemm::Panels::bytes).sum()
    }

    /// Bytes [`Self::pack_for_prefill`] adds (0 unless the weight is f32 and not packed yet).
    pub fn prefill_pack_bytes(&self) -> usize {
        if !self.panels.is_empty() || self.dtype() != WeightDtype::F32 {
            return 0;
        }
        let nr = gemm::packed::isa().nr;
        self.blocks.iter().map(|b| b.dims().0.div_ceil(nr) * nr * self.k * 4).sum()
    }

    /// For a weight that multiplies many rows on every call (the encoder's, cross-attention K/V's):
    /// keep its f32 blocks also packed into the GEMM's panels, so products of
    /// [`gemm::PACKED_MIN_ROWS`] rows or more read them instead of packing the weight again on
    /// every call (bit-identical: the same kernel reads the same panel contents). The row-major
    /// blocks stay for fewer rows; other storage forms are left as they are (q8 / q4 take the
    /// integer GEMM, which packs nothing).
    pub fn pack_for_prefill(&mut self) {
        if !self.panels.is_empty() || self.dtype() != WeightDtype::F32 {
            return;
        }
        self.panels = self
            .blocks
            .iter()
            .map(|b| match b {
                QWeight::F32 { data, .. } => {
                    let (nb, k) = b.dims();
                    gemm::Panels::pack(data, nb, k)
                }
                _ => unreachable!("f32 weight with a block of another form"),
            })
            .collect();
    }

    /// Whether [`Self::pack_for_prefill`] packed it.
    pub fn is_packed(&self) -> bool {
        !self.panels.is_empty()
    }

    /// Row `r` dequantized into `out` (`k` values).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let p = r / self.block_rows;
        self.blocks[p].dequantize_row(r - p * self.block_rows, out)
    }

    /// Rows `r0..` of block `p`.
    fn block(&self, p: usize) -> (usize, &QWeight) {
        (p * self.block_rows, &self.blocks[p])
    }
}

/// `out[i*n + j] = Σ_t x[i*k + t] · w[j, t]` for `m` input rows, on up to `threads` threads when
/// the job has at least `grain` multiply-adds.
///
/// Tasks: (weight block, chunk of input rows). Each computes its outputs with `qkernels::linear` on
/// its block (the packed GEMM for several rows: each output one in-order sum whatever block of
/// rows and columns computes it). Rows are split into chunks only when `m ≥`
/// [`gemm::PACKED_MIN_ROWS`], each of at least that many rows, so that every chunk takes the same
/// kernel as the whole product (fewer rows take the dot-product tiles or, for one row, the
/// matrix-vector kernels: other summation orders).
pub fn linear(threads: usize, grain: usize, m: usize, x: &[f32], w: &CpuWeight, out: &mut [f32]) {
    let (n, k) = w.dims();
    assert!(x.len() >= m * k && out.len() >= m * n);
    let threads = if m * n * k < grain { 1 } else { threads };
    let parts = w.blocks();
    let min_rows = gemm::PACKED_MIN_ROWS;
    let chunks = if m >= min_rows && parts < threads { threads.div_ceil(parts).min(m / min_rows).max(1) } else { 1 };
    if parts == 1 && chunks == 1 {
        return block_linear(m, x, w, 0, out);
    }
    let shared = SharedMut::new(&mut out[..m * n]);
    if m == 1 {
        // a decode step: the row is prepared once for every block's task
        let input = qkernels::RowInput::new(&x[..k], &w.blocks[0]);
        return pool::run(threads, parts, &|p| {
            let (r0, block) = w.block(p);
            // SAFETY: tasks write disjoint blocks of `out`.
            qkernels::linear_row(&input, block, unsafe { shared.slice(r0, block.dims().0) });
        });
    }
    pool::run(threads, parts * chunks, &|t| {
        let (p, c) = (t / chunks, t % chunks);
        let (r0, block) = w.block(p);
        let nb = block.dims().0;
        let (i0, i1) = (c * m / chunks, (c + 1) * m / chunks);
        let rows = i1 - i0;
        if rows == 1 || nb == n {
            // one output row, or whole rows: contiguous in `out`
            // SAFETY: tasks write disjoint (row chunk, block) rectangles of `out`.
            let o = unsafe { shared.slice(i0 * n + r0, (rows - 1) * n + nb) };
            return block_linear(rows, &x[i0 * k..i1 * k], w, p, o);
        }
        let mut tmp = vec![0.0f32; rows * nb];
        block_linear(rows, &x[i0 * k..i1 * k], w, p, &mut tmp);
        for (i, row) in tmp.chunks_exact(nb).enumerate() {
            // SAFETY: as above.
            unsafe { shared.slice((i0 + i) * n + r0, nb) }.copy_from_slice(row);
        }
    });
}

/// `m` rows of `x` against block `p` of `w` into `out` (`m × nb`, row stride `nb`), through its
/// packed panels when it has them and `m` takes the packed GEMM, else [`qkernels::linear`].
fn block_linear(m: usize, x: &[f32], w: &CpuWeight, p: usize, out: &mut [f32]) {
    match w.panels.get(p) {
        Some(panels) if m >= gemm::PACKED_MIN_ROWS => {
            let (nb, k) = panels.dims();
            gemm::gemm_panels(gemm::Operands { k, x, ldx: k, out, ldo: nb }, gemm::Block::all(m, nb), panels)
        }
        _ => qkernels::linear(m, x, &w.blocks[p], out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Tensor;

    fn weight(n: usize, k: usize) -> Tensor {
        Tensor::new(vec![n, k], (0..n * k).map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.45) * 0.3).collect())
    }

    /// Every storage form, split or not, with 1 to 5 threads and 1 to 7 input rows: the same bits
    /// as the unsplit weight on one thread.
    #[test]
    fn split_linear_is_bit_identical() {
        let (n, k) = (83, 128);
        let w = weight(n, k);
        for dtype in [WeightDtype::F32, WeightDtype::F16, WeightDtype::BF16, WeightDtype::Q8, WeightDtype::Q4] {
            let q = QWeight::from_tensor(w.clone(), dtype);
            for m in 1..=13 {
                let x: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
                let mut want = vec![0.0; m * n];
                qkernels::linear(m, &x, &q, &mut want);
                for parts in 1..=5 {
                    let cw = CpuWeight::split(q.clone(), parts);
                    assert!(cw.blocks() <= parts);
                    // packed once for prefill (f32 only): the same bits again
                    let mut packed = cw.clone();
                    let extra = packed.prefill_pack_bytes();
                    packed.pack_for_prefill();
                    assert_eq!(packed.is_packed(), dtype == WeightDtype::F32, "{dtype:?}");
                    assert_eq!((packed.bytes(), packed.panel_bytes()), (cw.bytes(), extra), "{dtype:?}: packed bytes accounted");
                    assert_eq!(extra > 0, dtype == WeightDtype::F32);
                    for threads in 1..=5 {
                        for (form, cw) in [("blocks", &cw), ("packed", &packed)] {
                            let mut got = vec![f32::NAN; m * n];
                            linear(threads, 0, m, &x, cw, &mut got);
                            let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                            assert!(same, "{dtype:?} {form} m {m} parts {parts} threads {threads}");
                        }
                    }
                    let mut row = vec![0.0; k];
                    let mut want_row = vec![0.0; k];
                    for r in [0, 16, 17, 47, n - 1] {
                        cw.dequantize_row(r, &mut row);
                        q.dequantize_row(r, &mut want_row);
                        assert_eq!(row, want_row, "{dtype:?} row {r}");
                    }
                    assert_eq!((cw.dims(), cw.dtype()), ((n, k), dtype));
                }
            }
        }
    }
}
