//! `linear` (x @ W^T) and `embedding`: one kernel-selection function ([`Gpu::select_matmul`]), the
//! single-chunk matmul held back for fusion, the layer norm that made its input fused into its prologue.

use t5_core::WeightDtype;

use crate::fusion::{MatmulParams, Pending, Prologue};
use crate::kernels::{KernelKey, MatmulKind, Params, WeightForm};
use crate::weights::GpuWeight;
use crate::{Gpu, GpuTensor};

/// Matrix-vector kernels up to this many rows (decode steps), the many-row kernel above.
pub(crate) const MATVEC_MAX_ROWS: usize = 8;

/// Parameters of `shaders/matmul/embedding.wgsl`.
struct EmbeddingParams {
    rows: u32,
    d: u32,
    row0: u32,
    nrows: u32,
}

impl Params for EmbeddingParams {
    fn words(&self) -> [u32; 8] {
        [self.rows, self.d, self.row0, self.nrows, 0, 0, 0, 0]
    }
}

impl Gpu {
    /// The matmul kernel for `m` input rows and a weight chunk of `nc` rows, and its grid: matrix-vector
    /// kernels for decode steps, the tiled kernel above; barrier-free ones on software adapters.
    pub(crate) fn select_matmul(&self, m: usize, nc: usize) -> (MatmulKind, (u32, u32, u32)) {
        let nc = nc as u32;
        match (m <= MATVEC_MAX_ROWS, self.inner.software) {
            (true, true) => {
                let g = self.grid(nc.div_ceil(64));
                (MatmulKind::MatvecThread, (g.0, g.1, 1))
            }
            (true, false) => {
                let g = self.grid(nc.div_ceil(4));
                (MatmulKind::Matvec, (g.0, g.1, 1))
            }
            (false, true) => (MatmulKind::Thread, (nc.div_ceil(256), m as u32, 1)),
            (false, false) => (MatmulKind::Tiled, (nc.div_ceil(64), (m as u32).div_ceil(64), 1)),
        }
    }

    pub(crate) fn count_f16(&self, form: WeightForm) {
        if form.shader_f16 {
            let c = &self.inner.stats.f16_matmuls;
            c.set(c.get() + 1);
        }
    }

    pub(crate) fn linear_op(&self, x: &GpuTensor, w: &GpuWeight) -> GpuTensor {
        let (m, k) = (x.rows(), x.cols());
        assert_eq!(w.cols, k, "linear: input has {k} features, weight expects {}", w.cols);
        assert!(x.contiguous());
        let n = w.rows;
        let mut shape = x.shape.clone();
        *shape.last_mut().unwrap() = n;
        let out = self.tensor(shape);
        let form = self.weight_form(w);
        let base = MatmulParams { m: m as u32, n: n as u32, k: k as u32, ..Default::default() };
        if let [(_, nc, buf)] = w.chunks.as_slice() {
            // held back one op: the element-wise op that follows may fuse into its epilogue; the layer norm
            // that made x, still held back, is computed in this matvec's prologue
            let (kind, groups) = self.select_matmul(m, *nc);
            let params = MatmulParams { nc: *nc as u32, ..base };
            let norm = if m <= MATVEC_MAX_ROWS { self.take_norm_of(x) } else { None };
            let pending = match norm {
                Some(nrm) => {
                    let [nx, nw, nout] = nrm.bufs;
                    let params = MatmulParams { eps: nrm.params.eps, half: nrm.params.half, ..params };
                    let f = &self.inner.stats.fused;
                    f.set(f.get() + 1);
                    Pending { kind, prologue: Prologue::Norm, form, params, bufs: vec![nx, buf.raw().clone(), out.buf.raw().clone(), nw, nout], groups }
                }
                None => Pending { kind, prologue: Prologue::None, form, params, bufs: vec![x.buf.raw().clone(), buf.raw().clone(), out.buf.raw().clone()], groups },
            };
            self.hold(pending);
            return out;
        }
        for (r0, nc, buf) in &w.chunks {
            let (kind, groups) = self.select_matmul(m, *nc);
            let params = MatmulParams { n_off: *r0 as u32, nc: *nc as u32, ..base };
            self.count_f16(form);
            self.dispatch(KernelKey::Matmul { kind, prologue: Prologue::None, form }, &params, &[x.buf.raw(), buf.raw(), out.buf.raw()], groups);
        }
        out
    }

    pub(crate) fn embedding_op(&self, table: &GpuWeight, ids: &[u32], shape: &[usize]) -> GpuTensor {
        let d = table.cols;
        let mut s = shape.to_vec();
        s.push(d);
        let out = self.tensor(s);
        let idb = self.upload_u32(ids);
        let gx = (d as u32).div_ceil(64).min(64);
        let dtype = if table.dtype == WeightDtype::BF16 { WeightDtype::F32 } else { table.dtype };
        for (r0, n, buf) in &table.chunks {
            let params = EmbeddingParams { rows: ids.len() as u32, d: d as u32, row0: *r0 as u32, nrows: *n as u32 };
            self.dispatch(KernelKey::Embedding(dtype), &params, &[buf.raw(), idb.raw(), out.buf.raw()], (gx, ids.len() as u32, 1));
        }
        out
    }
}
