//! The blocked attention against an f64 softmax and against the one-pass path.
use super::super::attention_host;
use super::{attention, KB, QB};
use crate::backend::{AttentionMask, AttentionShape};
use crate::tensor::Tensor;

fn data(len: usize, a: usize, b: usize, s: f32) -> Vec<f32> {
    (0..len).map(|i| ((i * a % b) as f32 / b as f32 - 0.5) * s).collect()
}

/// `softmax(q kᵀ + bias) v` per (batch, head, query) in f64, masked keys excluded (all masked: 0);
/// `bias` in its diagonal form `[heads, q_len + kv_len - 1]` (query `i`, key `j` at `j - i + q_len - 1`).
#[allow(clippy::too_many_arguments)]
fn naive(q: &Tensor, k: &Tensor, v: &Tensor, bias: &Tensor, mask: AttentionMask<'_>, s: AttentionShape, stride: usize) -> Vec<f64> {
    let (d, inner) = (s.head_dim, s.heads * s.head_dim);
    let mut out = vec![0.0f64; s.batch * s.q_len * inner];
    for b in 0..s.batch {
        for h in 0..s.heads {
            for i in 0..s.q_len {
                let vis = |j: usize| mask.key_mask.map_or(true, |m| m[b * s.kv_len + j] != 0) && mask.causal_offset.map_or(true, |o| j <= o + i);
                let sc: Vec<f64> = (0..s.kv_len)
                    .map(|j| {
                        let dot: f64 = (0..d).map(|c| q.data[(b * s.q_len + i) * inner + h * d + c] as f64 * k.data[(b * stride + j) * inner + h * d + c] as f64).sum();
                        dot + bias.data[h * (s.q_len + s.kv_len - 1) + j + s.q_len - 1 - i] as f64
                    })
                    .collect();
                let mx = (0..s.kv_len).filter(|&j| vis(j)).map(|j| sc[j]).fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = (0..s.kv_len).map(|j| if vis(j) { (sc[j] - mx).exp() } else { 0.0 }).collect();
                let sum: f64 = e.iter().sum();
                for c in 0..d {
                    let o: f64 = (0..s.kv_len).map(|j| e[j] * v.data[(b * stride + j) * inner + h * d + c] as f64).sum();
                    out[(b * s.q_len + i) * inner + h * d + c] = if sum > 0.0 { o / sum } else { 0.0 };
                }
            }
        }
    }
    out
}

/// Several query and key blocks (partial last ones), a bias, key padding (one batch row with every
/// key masked: zeros), a causal offset, a key cache longer than `kv_len`; and the dispatch from
/// `attention_host` (several queries, no probabilities) to the blocked path.
#[test]
fn blocked_attention_matches_f64_softmax() {
    let (batch, heads, d, q_len, kv_len, stride) = (3, 2, 8, QB + 7, 2 * KB + 9, 2 * KB + 20);
    let s = AttentionShape { batch, heads, head_dim: d, q_len, kv_len, half: false };
    let inner = heads * d;
    let q = Tensor::new(vec![batch, q_len, inner], data(batch * q_len * inner, 37, 101, 4.0));
    let k = Tensor::new(vec![batch, stride, inner], data(batch * stride * inner, 53, 97, 4.0));
    let v = Tensor::new(vec![batch, stride, inner], data(batch * stride * inner, 29, 89, 2.0));
    let bias = Tensor::new(vec![heads, q_len + kv_len - 1], data(heads * (q_len + kv_len - 1), 17, 83, 6.0));
    let mut key_mask = vec![1u32; batch * kv_len];
    (0..kv_len).for_each(|j| key_mask[2 * kv_len + j] = 0);
    (0..KB + 3).for_each(|j| key_mask[kv_len + j] = (j % 5 != 0) as u32);
    for mask in [
        AttentionMask { key_mask: None, causal_offset: None },
        AttentionMask { key_mask: Some(&key_mask), causal_offset: None },
        AttentionMask { key_mask: Some(&key_mask), causal_offset: Some(KB + 20) },
    ] {
        let want = naive(&q, &k, &v, &bias, mask, s, stride);
        let got = attention(&q, &k, &v, Some(&bias), mask, s);
        let host = attention_host(&q, &k, &v, Some(&bias), mask, s, None);
        assert_eq!(host.data, got.data, "attention_host takes the blocked path");
        let mut probs = vec![0.0f32; batch * heads * q_len * kv_len];
        let one_pass = attention_host(&q, &k, &v, Some(&bias), mask, s, Some(&mut probs));
        for (i, ((&g, &o), &w)) in got.data.iter().zip(&one_pass.data).zip(&want).enumerate() {
            assert!((g as f64 - w).abs() < 1e-5, "[{i}] blocked {g} vs f64 {w}");
            assert!((o as f64 - w).abs() < 1e-5, "[{i}] one-pass {o} vs f64 {w}");
        }
        // the fully masked batch row: zeros
        if mask.key_mask.is_some() {
            assert!(got.data[2 * q_len * inner..].iter().all(|&x| x == 0.0));
        }
    }
}

/// One query (a decode step) against a key cache longer than `kv_len` (its keys and values read
/// where they are, rows of all heads apart), with head sizes that fill whole runs of the P · V
/// accumulators and leave a tail (40, 64, 72): the f64 softmax, with and without a bias, key
/// padding and a causal offset, and the probabilities it returns summing to 1.
#[test]
fn one_query_reads_the_cache_in_place() {
    for d in [40, 64, 72] {
        let (batch, heads, kv_len, stride) = (2, 3, 77, 90);
        let s = AttentionShape { batch, heads, head_dim: d, q_len: 1, kv_len, half: false };
        let inner = heads * d;
        let q = Tensor::new(vec![batch, 1, inner], data(batch * inner, 37, 101, 4.0));
        let k = Tensor::new(vec![batch, stride, inner], data(batch * stride * inner, 53, 97, 4.0));
        let v = Tensor::new(vec![batch, stride, inner], data(batch * stride * inner, 29, 89, 2.0));
        let bias = Tensor::new(vec![heads, kv_len], data(heads * kv_len, 17, 83, 6.0));
        let zero = Tensor::new(vec![heads, kv_len], vec![0.0; heads * kv_len]);
        let key_mask: Vec<u32> = (0..batch * kv_len).map(|j| (j % 7 != 3) as u32).collect();
        for (mask, with_bias) in [
            (AttentionMask { key_mask: None, causal_offset: None }, false),
            (AttentionMask { key_mask: Some(&key_mask), causal_offset: None }, true),
            (AttentionMask { key_mask: None, causal_offset: Some(kv_len - 1) }, true),
        ] {
            let want = naive(&q, &k, &v, if with_bias { &bias } else { &zero }, mask, s, stride);
            let mut probs = vec![0.0f32; batch * heads * kv_len];
            let got = attention_host(&q, &k, &v, with_bias.then_some(&bias), mask, s, Some(&mut probs));
            for (i, (&g, &w)) in got.data.iter().zip(&want).enumerate() {
                assert!((g as f64 - w).abs() < 1e-5, "d {d} [{i}] {g} vs f64 {w}");
            }
            let plain = attention_host(&q, &k, &v, with_bias.then_some(&bias), mask, s, None);
            assert_eq!(plain.data, got.data, "d {d}: returning the probabilities changes no output");
            for row in probs.chunks_exact(kv_len) {
                assert!((row.iter().map(|&p| p as f64).sum::<f64>() - 1.0).abs() < 1e-5);
            }
        }
    }
}

/// A query whose scores are all NaN (float16 overflow) gives NaN, as the plain softmax does (not
/// zeros: nothing is silently replaced), on both paths; a query that sees no key gives zeros.
#[test]
fn nan_scores_stay_nan_and_hidden_rows_are_zero() {
    let (heads, d, kv_len) = (2, 8, 9);
    let inner = heads * d;
    let mut qd = data(2 * inner, 37, 101, 4.0);
    qd[..d].iter_mut().for_each(|x| *x = f32::NAN); // query 0, head 0
    let q = Tensor::new(vec![1, 2, inner], qd);
    let k = Tensor::new(vec![1, kv_len, inner], data(kv_len * inner, 53, 97, 4.0));
    let v = Tensor::new(vec![1, kv_len, inner], data(kv_len * inner, 29, 89, 2.0));
    let s = AttentionShape { batch: 1, heads, head_dim: d, q_len: 2, kv_len, half: false };
    let none = AttentionMask { key_mask: None, causal_offset: None };
    let mut probs = vec![0.0f32; heads * 2 * kv_len];
    let one_pass = attention_host(&q, &k, &v, None, none, s, Some(&mut probs));
    assert!(one_pass.data[..d].iter().all(|x| x.is_nan()), "{:?}", &one_pass.data[..d]);
    assert!(one_pass.data[d..].iter().all(|x| x.is_finite()));
    let hidden = vec![0u32; kv_len];
    let masked = attention_host(&q, &k, &v, None, AttentionMask { key_mask: Some(&hidden), causal_offset: None }, s, Some(&mut probs));
    assert!(masked.data.iter().all(|&x| x == 0.0));
}

/// A bias in the `[heads, q_len, kv_len]` layout (one value per score) is refused, not read as
/// wrong values.
#[test]
#[should_panic(expected = "the position bias is [heads, q_len + kv_len - 1]")]
fn a_bias_per_score_is_refused() {
    let (heads, d, len) = (2, 4, 5);
    let s = AttentionShape { batch: 1, heads, head_dim: d, q_len: len, kv_len: len, half: false };
    let x = Tensor::new(vec![1, len, heads * d], data(len * heads * d, 37, 101, 1.0));
    let bias = Tensor::new(vec![heads, len, len], data(heads * len * len, 17, 83, 1.0));
    attention_host(&x, &x, &x, Some(&bias), AttentionMask { key_mask: None, causal_offset: None }, s, None);
}
