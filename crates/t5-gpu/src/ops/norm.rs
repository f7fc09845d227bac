//! The T5 layer norm (`rms_norm`, float16 form `rms_norm_half`). On decode steps it is held back
//! ([`crate::fusion::NormPending`]): the matvec that reads it first computes it in its prologue.

use crate::fusion::NormPending;
use crate::kernels::{KernelKey, Params};
use crate::ops::matmul::MATVEC_MAX_ROWS;
use crate::{Gpu, GpuTensor};

/// Parameters of `shaders/rms_norm.wgsl`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NormParams {
    pub rows: u32,
    pub d: u32,
    pub eps: f32,
    /// float16 form: `round16(w * round16(x * rsqrt(..)))`
    pub half: bool,
}

impl Params for NormParams {
    fn words(&self) -> [u32; 8] {
        [self.rows, self.d, self.eps.to_bits(), self.half as u32, 0, 0, 0, 0]
    }
}

impl Gpu {
    pub(crate) fn norm_op(&self, x: &GpuTensor, weight: &GpuTensor, eps: f32, half: bool) -> GpuTensor {
        assert!(x.contiguous());
        let (rows, d) = (x.rows(), x.cols());
        let out = self.tensor(x.shape.clone());
        let params = NormParams { rows: rows as u32, d: d as u32, eps, half };
        if rows <= MATVEC_MAX_ROWS {
            // decode step: held back; the matvec that reads it first computes it (see NormPending)
            self.record_pending();
            self.inner.rec.borrow_mut().pending_norm = Some(NormPending { bufs: [x.buf.raw().clone(), weight.buf.raw().clone(), out.buf.raw().clone()], params });
            return out;
        }
        let g = self.grid(rows as u32);
        self.dispatch(KernelKey::RmsNorm, &params, &[x.buf.raw(), weight.buf.raw(), out.buf.raw()], (g.0, g.1, 1));
        out
    }
}
