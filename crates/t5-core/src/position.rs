//! T5's relative position buckets and bias, exactly as transformers'
//! `T5Attention._relative_position_bucket` / `compute_bias` (fp32 logarithm, truncation toward zero).

use crate::backend::bias_diagonals;
use crate::tensor::Tensor;

/// Bucket of `relative_position = memory_position - query_position`.
pub fn relative_position_bucket(relative_position: i64, bidirectional: bool, num_buckets: usize, max_distance: usize) -> usize {
    let mut num_buckets = num_buckets as i64;
    let mut bucket = 0i64;
    let mut rp = relative_position;
    if bidirectional {
        num_buckets /= 2;
        if rp > 0 {
            bucket += num_buckets;
        }
        rp = rp.abs();
    } else {
        rp = -rp.min(0);
    }
    let max_exact = num_buckets / 2;
    if rp < max_exact {
        bucket += rp;
    } else {
        // torch: max_exact + (log(rp.float() / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)).to(long)
        let ratio = (rp as f32) / (max_exact as f32);
        let denom = ((max_distance as f64) / (max_exact as f64)).ln() as f32;
        let large = max_exact + ((ratio.ln() / denom) * ((num_buckets - max_exact) as f32)) as i64;
        bucket += large.min(num_buckets - 1);
    }
    bucket as usize
}

/// Position bias for queries at absolute positions `offset..offset+q_len` against keys `0..k_len`, from
/// the `relative_attention_bias` table `[num_buckets, heads]`, in its diagonal form `[heads, q_len +
/// k_len - 1]`: the bias of query `i` and key `j` depends on `j - i` only and is `out[h, j - i +
/// q_len - 1]` ([`crate::backend::AttentionShape::bias_row`]), so each head's row `i` is the slice starting at `q_len - 1 - i`.
/// One bucket (with its logarithms) per distance, and `O(q_len + k_len)` memory where the
/// `[heads, q_len, k_len]` matrix would take `O(q_len · k_len)` (128 MB for 8 heads over 2,048 tokens).
pub fn compute_bias(table: &Tensor, q_len: usize, k_len: usize, offset: usize, bidirectional: bool, max_distance: usize) -> Tensor {
    let (num_buckets, heads) = (table.shape[0], table.shape[1]);
    let diagonals = bias_diagonals(q_len, k_len);
    let mut out = vec![0.0f32; heads * diagonals];
    for d in 0..diagonals {
        // d = j - i + q_len - 1; the relative position is j - (offset + i)
        let rel = d as i64 - (q_len as i64 - 1) - offset as i64;
        let b = relative_position_bucket(rel, bidirectional, num_buckets, max_distance);
        for h in 0..heads {
            out[h * diagonals + d] = table.data[b * heads + h];
        }
    }
    Tensor::new(vec![heads, diagonals], out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_distances_are_exact() {
        assert_eq!(relative_position_bucket(0, true, 32, 128), 0);
        assert_eq!(relative_position_bucket(3, true, 32, 128), 19);
        assert_eq!(relative_position_bucket(-3, true, 32, 128), 3);
        assert_eq!(relative_position_bucket(-3, false, 32, 128), 3);
        assert_eq!(relative_position_bucket(3, false, 32, 128), 0);
        assert_eq!(relative_position_bucket(-1000, false, 32, 128), 31);
    }

    /// Every (head, query, key) reads the table's value at the bucket of its own relative position
    /// (the definition, per score), for encoder and decoder shapes, with and without an offset.
    #[test]
    fn each_score_finds_the_bias_of_its_own_distance() {
        let (buckets, heads) = (32, 3);
        let table = Tensor::new(vec![buckets, heads], (0..buckets * heads).map(|v| v as f32 * 0.5 - 7.0).collect());
        for (q_len, k_len, offset, bidirectional) in [(5, 5, 0, true), (1, 9, 8, false), (3, 40, 37, false), (200, 200, 0, true), (4, 1, 0, true), (0, 6, 0, true), (2, 0, 0, false)] {
            let bias = compute_bias(&table, q_len, k_len, offset, bidirectional, 128);
            assert_eq!(bias.shape, vec![heads, bias_diagonals(q_len, k_len)]);
            let shape = crate::backend::AttentionShape { batch: 1, heads, head_dim: 1, q_len, kv_len: k_len, half: false };
            for h in 0..heads {
                for i in 0..q_len {
                    for j in 0..k_len {
                        let b = relative_position_bucket(j as i64 - (offset + i) as i64, bidirectional, buckets, 128);
                        assert_eq!(bias.data[shape.bias_row(h, i) + j], table.data[b * heads + h], "h {h} i {i} j {j} ({q_len}x{k_len}+{offset})");
                    }
                }
            }
        }
    }
}
