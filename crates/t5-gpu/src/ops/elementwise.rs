//! Element-wise ops: residual add, bias add, scale, activations, tanh, the gated feed-forward, float16 rounding and
//! T5Block's float16 clamp. Each first tries to fold into the epilogue of the matmul that made its input
//! ([`crate::fusion`]), else records `shaders/unary.wgsl` / `binary.wgsl` / `clamp_half.wgsl`.

use t5_core::config::Activation;

use crate::fusion::{act_code, Combine};
use crate::kernels::{KernelKey, Params};
use crate::{Gpu, GpuTensor};

/// In place on x (`shaders/unary.wgsl`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum UnaryOp {
    Scale(f32),
    Act(Activation),
    Round16,
    /// the activation in float16 form (`act16`)
    Act16(Activation),
    Tanh,
}

struct UnaryParams {
    n: u32,
    op: UnaryOp,
}

impl Params for UnaryParams {
    fn words(&self) -> [u32; 8] {
        let (op, act, s) = match self.op {
            UnaryOp::Scale(s) => (0, 0, s),
            UnaryOp::Act(a) => (1, act_code(a), 0.0),
            UnaryOp::Round16 => (2, 0, 0.0),
            UnaryOp::Act16(a) => (3, act_code(a), 0.0),
            UnaryOp::Tanh => (4, 0, 0.0),
        };
        [self.n, op, act, s.to_bits(), 0, 0, 0, 0]
    }
}

/// In place on x with y (`shaders/binary.wgsl`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum BinaryOp {
    Add,
    /// `act(x) * y`
    Gate(Activation),
    /// `round16(act16(x) * y)`
    Gate16(Activation),
    /// `x[i] += y[i % cols]` (a bias `[cols]` on every row)
    AddBias { cols: u32 },
}

struct BinaryParams {
    n: u32,
    op: BinaryOp,
}

impl Params for BinaryParams {
    fn words(&self) -> [u32; 8] {
        let (op, act, cols) = match self.op {
            BinaryOp::Add => (0, 0, 0),
            BinaryOp::Gate(a) => (1, act_code(a), 0),
            BinaryOp::Gate16(a) => (2, act_code(a), 0),
            BinaryOp::AddBias { cols } => (3, 0, cols),
        };
        [self.n, op, act, cols, 0, 0, 0, 0]
    }
}

struct ClampParams {
    n: u32,
}

impl Params for ClampParams {
    fn words(&self) -> [u32; 8] {
        [self.n, 0, 0, 0, 0, 0, 0, 0]
    }
}

impl Gpu {
    fn unary(&self, x: &mut GpuTensor, op: UnaryOp) {
        self.make_unique(x);
        let n = x.numel() as u32;
        let g = self.grid(n.div_ceil(256));
        self.dispatch(KernelKey::Unary, &UnaryParams { n, op }, &[x.buf.raw()], (g.0, g.1, 1));
    }

    fn binary(&self, x: &mut GpuTensor, y: &GpuTensor, op: BinaryOp) {
        match op {
            BinaryOp::AddBias { cols } => assert!(cols > 0 && x.cols() == cols as usize && y.numel() == cols as usize, "bias of {} values on rows of {}", y.numel(), x.cols()),
            _ => assert_eq!(x.shape, y.shape, "element-wise op on different shapes"),
        }
        self.make_unique(x);
        let n = x.numel() as u32;
        let g = self.grid(n.div_ceil(256));
        self.dispatch(KernelKey::Binary, &BinaryParams { n, op }, &[x.buf.raw(), y.buf.raw()], (g.0, g.1, 1));
    }

    pub(crate) fn add_assign_op(&self, x: &mut GpuTensor, y: &GpuTensor) {
        if !self.try_fuse_into(x, y, Combine::Add, false, false) {
            self.binary(x, y, BinaryOp::Add);
        }
    }

    /// `x[r, :] += bias` on every row (the heads' projection biases).
    pub(crate) fn add_bias_op(&self, x: &mut GpuTensor, bias: &GpuTensor) {
        self.binary(x, bias, BinaryOp::AddBias { cols: bias.numel() as u32 });
    }

    /// `tanh(x)` in place (the sequence-classification head).
    pub(crate) fn tanh_op(&self, x: &mut GpuTensor) {
        self.unary(x, UnaryOp::Tanh);
    }

    pub(crate) fn scale_op(&self, x: &mut GpuTensor, s: f32) {
        // the model scales a clone of the decoder output
        self.unary(x, UnaryOp::Scale(s));
    }

    /// `act(x)` (`half`: its float16 form, which rounds its result).
    pub(crate) fn activate_op(&self, x: &mut GpuTensor, act: Activation, half: bool) {
        let fused = self.try_fuse_in_place(x, |e| {
            if e.combine != Combine::None {
                return false;
            }
            e.combine = Combine::Act(act);
            e.half_act = half;
            true
        });
        if !fused {
            self.unary(x, if half { UnaryOp::Act16(act) } else { UnaryOp::Act(act) });
        }
    }

    /// `act(gate) * up` into `gate` (`half`: `round16(act16(gate) * up)`).
    pub(crate) fn gated_op(&self, gate: &mut GpuTensor, up: &GpuTensor, act: Activation, half: bool) {
        if !self.try_fuse_into(gate, up, Combine::Gate(act), half, half) {
            self.binary(gate, up, if half { BinaryOp::Gate16(act) } else { BinaryOp::Gate(act) });
        }
    }

    pub(crate) fn round_half_op(&self, x: &mut GpuTensor) {
        // the product (nothing fused yet) or the fused result
        let fused = self.try_fuse_in_place(x, |e| {
            if e.combine == Combine::None {
                e.round_product = true;
            } else {
                e.round_result = true;
            }
            true
        });
        if !fused {
            self.unary(x, UnaryOp::Round16);
        }
    }

    pub(crate) fn clamp_half_op(&self, x: &mut GpuTensor) {
        self.make_unique(x);
        assert!(x.contiguous());
        self.dispatch(KernelKey::ClampHalf, &ClampParams { n: x.numel() as u32 }, &[x.buf.raw()], (1, 1, 1));
    }
}
