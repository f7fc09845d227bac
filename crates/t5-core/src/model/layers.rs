//! The layers of a T5 block, as transformers' `T5Attention` / `T5DenseActDense` / `T5DenseGatedActDense` /
//! `T5LayerNorm`: the weights of each, and the model's per-layer math (linear, layer norm, attention, feed-forward,
//! the residual adds) with the float16-activation rounding of [`Half`].

use super::{Half, T5};
use crate::backend::{AttentionMask, AttentionShape, Backend};
use crate::config::FeedForwardKind;
use crate::tensor::Tensor;

pub(super) struct Attention<B: Backend> {
    pub(super) q: B::Weight,
    pub(super) k: B::Weight,
    pub(super) v: B::Weight,
    pub(super) o: B::Weight,
}

pub(super) struct FeedForward<B: Backend> {
    pub(super) kind: FeedForwardKind,
    /// `wi` (plain) or `wi_0` (gated: goes through the activation)
    pub(super) wi: B::Weight,
    /// `wi_1` of the gated form
    pub(super) wi_1: Option<B::Weight>,
    pub(super) wo: B::Weight,
}

pub(super) struct Block<B: Backend> {
    pub(super) self_norm: B::Tensor,
    pub(super) self_attn: Attention<B>,
    /// decoder blocks only: `layer.1` EncDecAttention
    pub(super) cross: Option<(B::Tensor, Attention<B>)>,
    pub(super) ff_norm: B::Tensor,
    pub(super) ff: FeedForward<B>,
}

impl<B: Backend> T5<B> {
    /// Round to float16 in float16-activation mode (a tensor transformers holds in float16).
    pub(super) fn rh(&self, x: &mut B::Tensor) {
        if self.half != Half::Off {
            self.backend.round_half(x);
        }
    }

    /// A linear layer whose output transformers holds in float16 (every one but a guarded `wo`).
    pub(super) fn lin(&self, x: &B::Tensor, w: &B::Weight) -> B::Tensor {
        let mut y = self.backend.linear(x, w);
        self.rh(&mut y);
        y
    }

    /// T5LayerNorm (its output is float16 in float16 mode).
    pub(super) fn norm(&self, x: &B::Tensor, w: &B::Tensor) -> B::Tensor {
        if self.half != Half::Off {
            self.backend.rms_norm_half(x, w, self.eps())
        } else {
            self.backend.rms_norm(x, w, self.eps())
        }
    }

    /// Residual add of an attention output (float16 in float16 mode). `stream_half`: the residual
    /// stream is still float16 (no float32 `wo` output added yet), so the sum is float16 and, guarded,
    /// T5Block clamps it.
    pub(super) fn attn_residual(&self, x: &mut B::Tensor, y: &B::Tensor, stream_half: bool) {
        self.backend.add_assign(x, y);
        if self.half != Half::Off && stream_half {
            self.backend.round_half(x);
            if self.half == Half::Guarded {
                self.backend.clamp_half(x);
            }
        }
    }

    /// Residual add of a feed-forward output; returns whether the stream is still float16 (only
    /// unguarded: a guarded `wo` output is float32, and float16 + float32 is float32).
    pub(super) fn ff_residual(&self, x: &mut B::Tensor, y: &B::Tensor, stream_half: bool) -> bool {
        self.backend.add_assign(x, y);
        let still = stream_half && self.half == Half::Unguarded;
        if still {
            self.backend.round_half(x);
        }
        still
    }

    pub(super) fn eps(&self) -> f32 {
        self.config.layer_norm_epsilon as f32
    }

    pub(super) fn attention_shape(&self, batch: usize, q_len: usize, kv_len: usize) -> AttentionShape {
        AttentionShape { batch, heads: self.config.num_heads, head_dim: self.config.d_kv, q_len, kv_len, half: self.half != Half::Off }
    }

    pub(super) fn feed_forward(&self, ff: &FeedForward<B>, x: &B::Tensor) -> B::Tensor {
        let be = &self.backend;
        let mut h = self.lin(x, &ff.wi);
        let half = self.half != Half::Off;
        match &ff.wi_1 {
            Some(wi_1) if half => be.gated_activate_half(&mut h, &self.lin(x, wi_1), ff.kind.act),
            Some(wi_1) => be.gated_activate(&mut h, &be.linear(x, wi_1), ff.kind.act),
            None if half => be.activate_half(&mut h, ff.kind.act),
            None => be.activate(&mut h, ff.kind.act),
        }
        // a guarded `wo` is float32: its float16 input is cast up, its output stays float32
        if self.half == Half::Unguarded {
            self.lin(&h, &ff.wo)
        } else {
            be.linear(&h, &ff.wo)
        }
    }
    /// Self-attention, with its probabilities pushed to `probs` when they are asked for.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn attend(
        &self,
        q: &B::Tensor,
        k: &B::Tensor,
        v: &B::Tensor,
        bias: Option<&B::Tensor>,
        mask: AttentionMask<'_>,
        shape: AttentionShape,
        probs: Option<&mut Vec<Tensor>>,
    ) -> B::Tensor {
        match probs {
            None => self.backend.attention(q, k, v, bias, mask, shape),
            Some(list) => {
                let (out, p) = self.backend.attention_with_probs(q, k, v, bias, mask, shape);
                list.push(p);
                out
            }
        }
    }
}
