//! T5 multi-head attention on host tensors, one task per (batch row, head) on the CPU pool; each
//! task computes its (batch row, head) exactly as one thread does, so results are bit-identical at
//! any thread count.
//!
//! Two per-head paths: the one-pass softmax ([`head`], one query at a time; decode steps, float16
//! emulation, returned probabilities) and, for several queries, a blocked path ([`head_blocked`])
//! without materialising more than [`QB`] × [`KB`] scores: per block of queries, the keys are
//! visited in blocks with an online softmax (running maximum `m` and denominator `l` per query; the
//! partial output rescaled by `exp(m_old − m_new)` when the maximum grows), `Q Kᵀ` and `P V` as
//! packed-panel GEMMs ([`super::gemm::packed`]) reading `Q`, `K` and `V` where they are (row
//! stride: all heads).
//!
//! Numerics of the blocked path against the one-pass softmax: the same scores; the exponentials are
//! of `s − m_block` instead of `s − m_row`, rescaled when a later block raises the maximum (one more
//! rounding per block each), and the output is divided by the sum once at the end instead of
//! scaling each probability. Both take the row steps of [`super::softmax`] (bias, hiding, maximum,
//! `e^x` within 1 ulp and the sum in a fixed order), which vectorize and give the same bits natively
//! and in wasm.

use super::gemm::{self, Block, Operands};
use super::softmax;
use crate::pool::{self, SharedMut};
use crate::backend::{AttentionMask, AttentionShape};
use crate::tensor::Tensor;

/// Queries per block.
pub const QB: usize = 64;
/// Keys per block.
pub const KB: usize = 128;

/// The blocked path on one thread: `softmax(q kᵀ + bias, masked) v` for all heads, `q` `[batch, q_len, heads · head_dim]`, `k`, `v`
/// `[batch, kv_stride, heads · head_dim]` (`kv_stride ≥ kv_len`), `bias` `[heads, q_len + kv_len - 1]` (diagonal
/// form: [`AttentionShape::bias_row`]).
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>, mask: AttentionMask<'_>, s: AttentionShape) -> Tensor {
    if let Some(bias) = bias {
        s.check_bias_len(bias.numel());
    }
    let inner = s.heads * s.head_dim;
    let mut out = vec![0.0f32; s.batch * s.q_len * inner];
    let shared_out = SharedMut::new(&mut out);
    for b in 0..s.batch {
        for h in 0..s.heads {
            head_blocked(q, k, v, bias, mask, s, b, h, shared_out);
        }
    }
    Tensor::new(vec![s.batch, s.q_len, inner], out)
}

/// One (batch row, head): writes columns `h · head_dim ..` of rows `b · q_len ..` of `out`
/// (`[batch · q_len, heads · head_dim]`) and nothing else; every output is computed by this call
/// alone, in a fixed order.
#[allow(clippy::too_many_arguments)]
pub fn head_blocked(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: Option<&Tensor>,
    mask: AttentionMask<'_>,
    s: AttentionShape,
    b: usize,
    h: usize,
    out: SharedMut<f32>,
) {
    let (d, inner) = (s.head_dim, s.heads * s.head_dim);
    let kv_stride = if k.shape.len() == 3 { k.shape[1] } else { s.kv_len };
    let key_mask = mask.key_mask.map(|m| &m[b * s.kv_len..(b + 1) * s.kv_len]);
    let kbase = &k.data[b * kv_stride * inner + h * d..];
    let vbase = &v.data[b * kv_stride * inner + h * d..];
    let mut scores = vec![0.0f32; QB * KB];
    let mut pv = vec![0.0f32; QB * d];
    let mut acc = vec![0.0f32; QB * d];
    let (mut mx, mut sum) = ([0.0f32; QB], [0.0f32; QB]);
    for i0 in (0..s.q_len).step_by(QB) {
        let qb = QB.min(s.q_len - i0);
        let qrows = &q.data[(b * s.q_len + i0) * inner + h * d..];
        acc[..qb * d].iter_mut().for_each(|a| *a = 0.0);
        mx[..qb].iter_mut().for_each(|m| *m = f32::NEG_INFINITY);
        sum[..qb].iter_mut().for_each(|l| *l = 0.0);
        for j0 in (0..s.kv_len).step_by(KB) {
            let kb = KB.min(s.kv_len - j0);
            let sc = &mut scores[..qb * kb];
            gemm::gemm(
                Operands { k: d, x: qrows, ldx: inner, out: sc, ldo: kb },
                Block::all(qb, kb),
                &mut gemm::pack_nt(&kbase[j0 * inner..], inner, d),
            );
            for ii in 0..qb {
                let i = i0 + ii;
                let row = &mut sc[ii * kb..(ii + 1) * kb];
                if let Some(bias) = bias {
                    let at = s.bias_row(h, i) + j0;
                    softmax::add_bias(row, &bias.data[at..at + kb]);
                }
                softmax::hide(row, key_mask.map(|km| &km[j0..j0 + kb]), mask.causal_offset.map(|off| (off + i + 1).saturating_sub(j0)));
                let m = match softmax::max(row) {
                    rm if rm > mx[ii] => rm,
                    _ => mx[ii],
                };
                if m == f32::NEG_INFINITY {
                    // nothing visible yet: this block adds nothing
                    row.iter_mut().for_each(|p| *p = 0.0);
                    continue;
                }
                let alpha = softmax::exp(mx[ii] - m);
                mx[ii] = m;
                let l = softmax::exp_sum(row, m);
                sum[ii] = sum[ii] * alpha + l;
                if alpha != 1.0 {
                    acc[ii * d..(ii + 1) * d].iter_mut().for_each(|a| *a *= alpha);
                }
            }
            gemm::gemm(
                Operands { k: kb, x: sc, ldx: kb, out: &mut pv[..qb * d], ldo: d },
                Block::all(qb, d),
                &mut gemm::pack_nn(&vbase[j0 * inner..], inner),
            );
            acc[..qb * d].iter_mut().zip(&pv[..qb * d]).for_each(|(a, p)| *a += p);
        }
        for ii in 0..qb {
            let inv = if sum[ii] > 0.0 { 1.0 / sum[ii] } else { 0.0 };
            let o = (b * s.q_len + i0 + ii) * inner + h * d;
            // SAFETY: this (b, i, h) output row belongs to this call only.
            let orow = unsafe { out.slice(o, d) };
            orow.iter_mut().zip(&acc[ii * d..(ii + 1) * d]).for_each(|(o, a)| *o = a * inv);
        }
    }
}

/// T5 attention on host tensors (see [`crate::backend::Backend::attention`]) on one thread; with
/// `probs` (`[batch, heads, q_len, kv_len]`) it also writes the attention probabilities there.
/// Several queries without probabilities (and without float16 emulation) take the blocked path.
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
    if let Some(bias) = bias {
        s.check_bias_len(bias.numel());
    }
    let inner = s.heads * s.head_dim;
    let mut out = vec![0.0f32; s.batch * s.q_len * inner];
    let shared_out = SharedMut::new(&mut out);
    let shared_probs = probs.map(SharedMut::new);
    // several queries without float16 emulation or probabilities: the blocked path (per task too)
    let blocked = s.q_len > 1 && !s.half && shared_probs.is_none();
    pool::run(threads, s.batch * s.heads, &|t| {
        let (b, h) = (t / s.heads, t % s.heads);
        if blocked {
            head_blocked(q, k, v, bias, mask, s, b, h, shared_out);
        } else {
            head(b, h, q, k, v, bias, mask, s, shared_out, shared_probs);
        }
    });
    Tensor::new(vec![s.batch, s.q_len, inner], out)
}

/// One (batch row, head), one-pass softmax (one query at a time): its output columns `h * head_dim..` of rows `b * q_len..`, and its
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
    let d = s.head_dim;
    let mut scores = vec![0.0f32; s.kv_len];
    // keys/values may hold more positions per batch row than kv_len (a preallocated static cache)
    let kv_stride = if k.shape.len() == 3 { k.shape[1] } else { s.kv_len };
    debug_assert!(kv_stride >= s.kv_len);
    let key_mask = mask.key_mask.map(|m| &m[b * s.kv_len..(b + 1) * s.kv_len]);
    let src = |j: usize| (b * kv_stride + j) * inner + h * d;
    // this head's keys are read where they are (rows `inner` apart: one strided matrix × vector
    // per query); V is gathered contiguously for several queries, while a single query (a decode
    // step) reads it where it is (each row is read once, so gathering it would only add a copy)
    let gather_v = s.q_len > 1;
    let mut vh = vec![0.0f32; if gather_v { s.kv_len * d } else { 0 }];
    if gather_v {
        for j in 0..s.kv_len {
            vh[j * d..(j + 1) * d].copy_from_slice(&v.data[src(j)..src(j) + d]);
        }
    }
    // this head's `kv_len` rows of `d` in K or V (`inner` apart)
    let span = if s.kv_len == 0 { 0..0 } else { src(0)..src(s.kv_len - 1) + d };
    let keys = &k.data[span.clone()];
    let (values, ldv) = if gather_v { (&vh[..], d) } else { (&v.data[span], inner) };
    for i in 0..s.q_len {
        let qo = (b * s.q_len + i) * inner + h * d;
        let qrow = &q.data[qo..qo + d];
        gemm::matvec_strided(s.kv_len, d, qrow, keys, inner, &mut scores);
        if s.half {
            scores.iter_mut().for_each(|v| *v = crate::dtype::float16::round_f16(*v));
        }
        if let Some(bias) = bias {
            let at = s.bias_row(h, i);
            softmax::add_bias(&mut scores, &bias.data[at..at + s.kv_len]);
            if s.half {
                scores.iter_mut().for_each(|v| *v = crate::dtype::float16::round_f16(*v));
            }
        }
        let first_hidden = mask.causal_offset.map(|off| off + i + 1);
        softmax::hide(&mut scores, key_mask, first_hidden);
        let max = softmax::max(&scores);
        let sum = if max == f32::NEG_INFINITY {
            // no visible score above -inf (float16 overflow can leave -inf and NaN): as in the plain
            // softmax, e^(s - max) is NaN for a visible key and 0 for a hidden one, so a row with
            // any visible key is NaN and one with none is zeros
            scores.iter_mut().for_each(|e| *e = f32::NAN);
            softmax::hide(&mut scores, key_mask, first_hidden);
            scores.iter_mut().filter(|e| **e == f32::NEG_INFINITY).for_each(|e| *e = 0.0);
            scores.iter().sum()
        } else {
            softmax::exp_sum(&mut scores, max)
        };
        let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
        if let Some(pr) = probs {
            let row = ((b * s.heads + h) * s.q_len + i) * s.kv_len;
            // SAFETY: this (b, h, i) probability row belongs to this task only.
            let pr = unsafe { pr.slice(row, s.kv_len) };
            pr.iter_mut().zip(&scores).for_each(|(p, &e)| *p = e * inv);
        }
        // the probabilities as P · V weighs them
        for e in scores.iter_mut() {
            *e = if s.half { crate::dtype::float16::round_f16(*e * inv) } else { *e * inv };
        }
        // SAFETY: this (b, i, h) output row belongs to this task only.
        let o = unsafe { out.slice(qo, d) };
        weighted_rows(&scores, values, ldv, o);
    }
}

/// `o = Σ_j p[j] · v[j * ldv ..][..o.len()]`, each output summed over `j` in order from 0.0, rows
/// with `p[j] = 0` skipped; [`PV_LANES`] outputs at a time stay in registers while the rows pass
/// (instead of `o` being loaded and stored once per row).
fn weighted_rows(p: &[f32], v: &[f32], ldv: usize, o: &mut [f32]) {
    let d = o.len();
    let mut chunks = o.chunks_exact_mut(PV_LANES);
    for (c, oc) in chunks.by_ref().enumerate() {
        let mut acc = [0.0f32; PV_LANES];
        for (j, &pj) in p.iter().enumerate() {
            if pj != 0.0 {
                let at = j * ldv + c * PV_LANES;
                let r: &[f32; PV_LANES] = v[at..at + PV_LANES].try_into().expect("PV_LANES values");
                for l in 0..PV_LANES {
                    acc[l] += pj * r[l];
                }
            }
        }
        oc.copy_from_slice(&acc);
    }
    let tail = chunks.into_remainder();
    let c0 = d - tail.len();
    tail.iter_mut().for_each(|a| *a = 0.0);
    for (j, &pj) in p.iter().enumerate() {
        if pj != 0.0 {
            tail.iter_mut().zip(&v[j * ldv + c0..]).for_each(|(a, x)| *a += pj * x);
        }
    }
}

/// Outputs of [`weighted_rows`] accumulated at once (4 AVX2 / 8 SIMD128 registers).
const PV_LANES: usize = 32;

#[cfg(test)]
#[path = "attention_tests.rs"]
mod tests;
