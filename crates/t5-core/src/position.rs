//! T5's relative position buckets and bias, exactly as transformers'
//! `T5Attention._relative_position_bucket` / `compute_bias` (fp32 logarithm, truncation toward zero).

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

/// Position bias `[heads, q_len, k_len]` for queries at absolute positions `offset..offset+q_len`
/// against keys `0..k_len`, from the `relative_attention_bias` table `[num_buckets, heads]`.
pub fn compute_bias(table: &Tensor, q_len: usize, k_len: usize, offset: usize, bidirectional: bool, max_distance: usize) -> Tensor {
    let (num_buckets, heads) = (table.shape[0], table.shape[1]);
    let mut out = vec![0.0f32; heads * q_len * k_len];
    for i in 0..q_len {
        for j in 0..k_len {
            let rel = j as i64 - (offset + i) as i64;
            let b = relative_position_bucket(rel, bidirectional, num_buckets, max_distance);
            for h in 0..heads {
                out[(h * q_len + i) * k_len + j] = table.data[b * heads + h];
            }
        }
    }
    Tensor::new(vec![heads, q_len, k_len], out)
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
}
