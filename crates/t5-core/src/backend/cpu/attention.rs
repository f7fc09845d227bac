//! T5 multi-head attention on host tensors, one task per (batch row, head) on the CPU pool.

use super::kernels;
use super::pool::{self, SharedMut};
use crate::backend::{AttentionMask, AttentionShape};
use crate::tensor::Tensor;

/// T5 attention on host tensors (see [`crate::backend::Backend::attention`]) on one thread; with
/// `probs` (`[batch, heads, q_len, kv_len]`) it also writes the attention probabilities there.
pub fn attention_host(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: Option<&Tensor>,
    mask: AttentionMask<'_>,
    s: AttentionShape,
    probs: Option<&mut [f32]>,
) -> Tensor {
    attention_threads(1, q, k, v, bias, mask, s, probs)
}

/// [`attention_host`] on up to `threads` threads: each (batch row, head) is one task, computed
/// exactly as on one thread.
#[allow(clippy::too_many_arguments)]
pub fn attention_threads(
    threads: usize,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: Option<&Tensor>,
    mask: AttentionMask<'_>,
    s: AttentionShape,
    probs: Option<&mut [f32]>,
) -> Tensor {
    let inner = s.heads * s.head_dim;
    let mut out = vec![0.0f32; s.batch * s.q_len * inner];
    let shared_out = SharedMut::new(&mut out);
    let shared_probs = probs.map(SharedMut::new);
    pool::run(threads, s.batch * s.heads, &|t| {
        let (b, h) = (t / s.heads, t % s.heads);
        head(b, h, q, k, v, bias, mask, s, shared_out, shared_probs);
    });
    Tensor::new(vec![s.batch, s.q_len, inner], out)
}

/// One (batch row, head): its output columns `h * head_dim..` of rows `b * q_len..`, and its
/// probabilities.
#[allow(clippy::too_many_arguments)]
fn head(
    b: usize,
    h: usize,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: Option<&Tensor>,
    mask: AttentionMask<'_>,
    s: AttentionShape,
    out: SharedMut<f32>,
    probs: Option<SharedMut<f32>>,
) {
    let inner = s.heads * s.head_dim;
    let mut scores = vec![0.0f32; s.kv_len];
    // gather K of this head contiguously once (the scores are one matrix product), and V for
    // several queries; a single query (a decode step) reads V where it is (each row is scaled and
    // added once, so gathering it would only add a copy)
    let gather_v = s.q_len > 1;
    let mut kh = vec![0.0f32; s.kv_len * s.head_dim];
    let mut vh = vec![0.0f32; if gather_v { s.kv_len * s.head_dim } else { 0 }];
    // keys/values may hold more positions per batch row than kv_len (a preallocated static cache)
    let kv_stride = if k.shape.len() == 3 { k.shape[1] } else { s.kv_len };
    debug_assert!(kv_stride >= s.kv_len);
    let key_mask = mask.key_mask.map(|m| &m[b * s.kv_len..(b + 1) * s.kv_len]);
    let src = |j: usize| (b * kv_stride + j) * inner + h * s.head_dim;
    for j in 0..s.kv_len {
        kh[j * s.head_dim..(j + 1) * s.head_dim].copy_from_slice(&k.data[src(j)..src(j) + s.head_dim]);
        if gather_v {
            vh[j * s.head_dim..(j + 1) * s.head_dim].copy_from_slice(&v.data[src(j)..src(j) + s.head_dim]);
        }
    }
    let vrow = |j: usize| if gather_v { &vh[j * s.head_dim..(j + 1) * s.head_dim] } else { &v.data[src(j)..src(j) + s.head_dim] };
    for i in 0..s.q_len {
        let qo = (b * s.q_len + i) * inner + h * s.head_dim;
        let qrow = &q.data[qo..qo + s.head_dim];
        kernels::matmul_nt(1, s.kv_len, s.head_dim, qrow, &kh, &mut scores);
        if s.half {
            scores.iter_mut().for_each(|v| *v = crate::dtype::float16::round_f16(*v));
        }
        let visible =
            |j: usize| key_mask.map_or(true, |m| m[j] != 0) && mask.causal_offset.map_or(true, |off| j <= off + i);
        let mut max = f32::NEG_INFINITY;
        for j in 0..s.kv_len {
            if let Some(bias) = bias {
                scores[j] += bias.data[(h * s.q_len + i) * s.kv_len + j];
                if s.half {
                    scores[j] = crate::dtype::float16::round_f16(scores[j]);
                }
            }
            if visible(j) {
                max = max.max(scores[j]);
            }
        }
        let mut sum = 0.0f32;
        for j in 0..s.kv_len {
            let e = if visible(j) { (scores[j] - max).exp() } else { 0.0 };
            scores[j] = e;
            sum += e;
        }
        let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
        if let Some(pr) = probs {
            let row = ((b * s.heads + h) * s.q_len + i) * s.kv_len;
            // SAFETY: this (b, h, i) probability row belongs to this task only.
            let pr = unsafe { pr.slice(row, s.kv_len) };
            pr.iter_mut().zip(&scores).for_each(|(p, &e)| *p = e * inv);
        }
        // SAFETY: this (b, i, h) output row belongs to this task only.
        let o = unsafe { out.slice(qo, s.head_dim) };
        for j in 0..s.kv_len {
            let p = if s.half { crate::dtype::float16::round_f16(scores[j] * inv) } else { scores[j] * inv };
            if p != 0.0 {
                o.iter_mut().zip(vrow(j)).for_each(|(a, v)| *a += p * v);
            }
        }
    }
}
