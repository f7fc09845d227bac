//! Attention for several queries (encoder self-attention, cross-attention and a prompt's decoder
//! self-attention in one pass) without materialising more than [`QB`] × [`KB`] scores: per (batch
//! row, head) and block of queries, the keys are visited in blocks with an online softmax (running
//! maximum `m` and denominator `l` per query; the partial output rescaled by `exp(m_old − m_new)`
//! when the maximum grows), `Q Kᵀ` and `P V` as packed-panel GEMMs ([`super::gemm::packed`]) reading
//! `Q`, `K` and `V` where they are (row stride: all heads).
//!
//! Numerics against the one-pass softmax ([`super::attention_host`]): the same scores; the
//! exponentials are of `s − m_block` instead of `s − m_row`, rescaled when a later block raises
//! the maximum (one more rounding per block each), and the output is divided by the sum once at the
//! end instead of scaling each probability. float16 emulation and returned probabilities take the
//! one-pass path (they round or return the normalised probabilities themselves).

use super::gemm::{self, Block, Operands};
use crate::backend::{AttentionMask, AttentionShape};
use crate::tensor::Tensor;

/// Queries per block.
pub const QB: usize = 64;
/// Keys per block.
pub const KB: usize = 128;

/// `softmax(q kᵀ + bias, masked) v` for all heads, `q` `[batch, q_len, heads · head_dim]`, `k`, `v`
/// `[batch, kv_stride, heads · head_dim]` (`kv_stride ≥ kv_len`), `bias` `[heads, q_len, kv_len]`.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>, mask: AttentionMask<'_>, s: AttentionShape) -> Tensor {
    let inner = s.heads * s.head_dim;
    let mut out = vec![0.0f32; s.batch * s.q_len * inner];
    for b in 0..s.batch {
        for h in 0..s.heads {
            head(q, k, v, bias, mask, s, b, h, &mut out);
        }
    }
    Tensor::new(vec![s.batch, s.q_len, inner], out)
}

/// One (batch row, head): writes columns `h · head_dim ..` of rows `b · q_len ..` of `out`
/// (`[batch · q_len, heads · head_dim]`) and nothing else; every output is computed by this call
/// alone, in a fixed order.
#[allow(clippy::too_many_arguments)]
pub fn head(q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>, mask: AttentionMask<'_>, s: AttentionShape, b: usize, h: usize, out: &mut [f32]) {
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
                let mut m = mx[ii];
                for (jj, sv) in row.iter_mut().enumerate() {
                    let j = j0 + jj;
                    let visible = key_mask.map_or(true, |km| km[j] != 0) && mask.causal_offset.map_or(true, |off| j <= off + i);
                    if !visible {
                        *sv = f32::NEG_INFINITY;
                        continue;
                    }
                    if let Some(bias) = bias {
                        *sv += bias.data[(h * s.q_len + i) * s.kv_len + j];
                    }
                    m = m.max(*sv);
                }
                if m == f32::NEG_INFINITY {
                    // nothing visible yet: this block adds nothing
                    row.iter_mut().for_each(|p| *p = 0.0);
                    continue;
                }
                let alpha = (mx[ii] - m).exp();
                mx[ii] = m;
                let mut l = 0.0f32;
                for p in row.iter_mut() {
                    // masked: exp(-inf) = 0
                    *p = (*p - m).exp();
                    l += *p;
                }
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
            out[o..o + d].iter_mut().zip(&acc[ii * d..(ii + 1) * d]).for_each(|(o, a)| *o = a * inv);
        }
    }
}

#[cfg(test)]
#[path = "attention_tests.rs"]
mod tests;
