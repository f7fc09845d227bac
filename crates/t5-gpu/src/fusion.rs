//! Fusion: the last matmul is held back one op ([`Pending`]) so that the element-wise op after it folds
//! into its epilogue ([`Epilogue`]: residual add, gated activation, activation, float16 rounding;
//! `shaders/epilogue.wgsl`), and a decode-step layer norm is held back ([`NormPending`]) and computed in
//! the prologue of the matvec that reads it first ([`Prologue::Norm`]).

use std::rc::Rc;

use t5_core::config::Activation;

use crate::kernels::{KernelKey, MatmulKind, Params, WeightForm};
use crate::ops::norm::NormParams;
use crate::{Gpu, GpuTensor};

/// The input stage of a matmul.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Prologue {
    None,
    /// the input is `norm(x)`, the T5 layer norm computed in the kernel (decode steps)
    Norm,
}

/// How the epilogue combines the product `v` with the value already in `out` (a fused neighbour).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) enum Combine {
    #[default]
    None,
    /// `out + v` (residual add)
    Add,
    /// `act(out) * v` (gated feed-forward)
    Gate(Activation),
    /// `act(v)`
    Act(Activation),
}

/// The output stage of a matmul: what happens to each product before it is stored.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct Epilogue {
    /// round the product to float16 (a float16 matmul's output)
    pub round_product: bool,
    pub combine: Combine,
    /// the activation in its float16 form (`act16`)
    pub half_act: bool,
    /// round the combined result to float16
    pub round_result: bool,
}

impl Epilogue {
    /// The `p.epi` word of `shaders/epilogue.wgsl`.
    pub fn word(&self) -> u32 {
        let (op, act) = match self.combine {
            Combine::None => (0, 0),
            Combine::Add => (1, 0),
            Combine::Gate(a) => (2, act_code(a)),
            Combine::Act(a) => (3, act_code(a)),
        };
        self.round_product as u32 | op << 1 | (self.round_result as u32) << 3 | act << 4 | (self.half_act as u32) << 8
    }
}

/// The activation's code in `shaders/act.wgsl`.
pub(crate) fn act_code(act: Activation) -> u32 {
    match act {
        Activation::Relu => 0,
        Activation::Gelu => 1,
        Activation::GeluNew => 2,
        Activation::Silu => 3,
    }
}

/// The parameters of every matmul kernel (`struct P` of the matmul prelude, kernels.rs).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MatmulParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    /// first output column of this weight chunk, and its columns
    pub n_off: u32,
    pub nc: u32,
    pub epi: Epilogue,
    /// the fused layer norm ([`Prologue::Norm`])
    pub eps: f32,
    pub half: bool,
}

impl Params for MatmulParams {
    fn words(&self) -> [u32; 8] {
        [self.m, self.n, self.k, self.n_off, self.nc, self.epi.word(), self.eps.to_bits(), self.half as u32]
    }
}

/// A layer norm held back until its consumer is known: the decode-step matmul that reads it first
/// computes it in its prologue (and writes it out for the others); anything else records it as is.
pub(crate) struct NormPending {
    /// x, norm weight, out
    pub bufs: [wgpu::Buffer; 3],
    pub params: NormParams,
}

/// A matmul dispatch held back by one op so that its neighbour can fuse into it: the residual add
/// (`x += linear(..)` writes `x + x@W^T` straight into `x`), the gated activation (`act(gate) *
/// linear(..)` into `gate`), the plain activation, and float16 rounding, all in the kernel's epilogue.
/// Only single-chunk weights are held back.
pub(crate) struct Pending {
    pub kind: MatmulKind,
    pub prologue: Prologue,
    pub form: WeightForm,
    pub params: MatmulParams,
    /// x, w, out (+ norm weight, normed x for [`Prologue::Norm`])
    pub bufs: Vec<wgpu::Buffer>,
    pub groups: (u32, u32, u32),
}

impl Pending {
    pub fn key(&self) -> KernelKey {
        KernelKey::Matmul { kind: self.kind, prologue: self.prologue, form: self.form }
    }
}

impl Gpu {
    /// Record the held-back layer norm and matmul, if any.
    pub(crate) fn record_pending(&self) {
        let norm = self.inner.rec.borrow_mut().pending_norm.take();
        if let Some(n) = norm {
            let g = self.grid(n.params.rows);
            let [x, w, out] = &n.bufs;
            self.record(KernelKey::RmsNorm, &n.params, &[x, w, out], (g.0, g.1, 1));
        }
        let Some(p) = self.inner.rec.borrow_mut().pending.take() else { return };
        self.count_f16(p.form);
        let bufs: Vec<&wgpu::Buffer> = p.bufs.iter().collect();
        self.record(p.key(), &p.params, &bufs, p.groups);
    }

    /// The pending matmul's epilogue when the matmul writes `out`.
    fn pending_epilogue(&self, out: &GpuTensor) -> Option<Epilogue> {
        if Rc::strong_count(&out.buf) > 1 {
            return None;
        }
        self.inner.rec.borrow().pending.as_ref().filter(|p| &p.bufs[2] == out.buf.raw()).map(|p| p.params.epi)
    }

    fn set_epilogue(&self, epi: Epilogue, target: Option<&wgpu::Buffer>) {
        let mut rec = self.inner.rec.borrow_mut();
        let p = rec.pending.as_mut().expect("pending matmul");
        p.params.epi = epi;
        if let Some(t) = target {
            p.bufs[2] = t.clone();
        }
        self.inner.stats.fused.set(self.inner.stats.fused.get() + 1);
    }

    /// Fold `x = f(x)` into the epilogue of the pending matmul that writes `x` (nothing fused into it
    /// yet): `f` edits the epilogue. False when there is no such matmul.
    pub(crate) fn try_fuse_in_place(&self, x: &GpuTensor, f: impl FnOnce(&mut Epilogue) -> bool) -> bool {
        let Some(mut epi) = self.pending_epilogue(x) else { return false };
        if !f(&mut epi) {
            return false;
        }
        self.set_epilogue(epi, None);
        true
    }

    /// Fuse `x op= y` where `y` is the pending matmul's output and `x` is a unique contiguous tensor of
    /// the same shape that the matmul does not read: the matmul writes `combine(x, product)` into `x`.
    pub(crate) fn try_fuse_into(&self, x: &GpuTensor, y: &GpuTensor, combine: Combine, half_act: bool, round_result: bool) -> bool {
        if x.shape != y.shape || !x.contiguous() || !y.contiguous() || Rc::strong_count(&x.buf) > 1 {
            return false;
        }
        let Some(epi) = self.pending_epilogue(y) else { return false };
        if epi.combine != Combine::None || self.inner.rec.borrow().pending.as_ref().is_some_and(|p| &p.bufs[0] == x.buf.raw()) {
            return false;
        }
        self.set_epilogue(Epilogue { combine, half_act, round_result, ..epi }, Some(x.buf.raw()));
        true
    }

    /// Hold a matmul back (recording the one held before).
    pub(crate) fn hold(&self, p: Pending) {
        self.record_pending();
        self.inner.rec.borrow_mut().pending = Some(p);
    }

    /// The held-back layer norm that writes `x`, taken for a matmul's prologue.
    pub(crate) fn take_norm_of(&self, x: &GpuTensor) -> Option<NormPending> {
        let mut rec = self.inner.rec.borrow_mut();
        match &rec.pending_norm {
            Some(n) if &n.bufs[2] == x.buf.raw() => rec.pending_norm.take(),
            _ => None,
        }
    }
}
