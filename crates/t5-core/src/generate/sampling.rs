//! t5-web's own PRNG for sampling: xoshiro256** seeded through SplitMix64. Sampling is
//! reproducible by seed (same seed, same config, same ids, native and wasm alike); it does not
//! reproduce torch's RNG stream, so sampled ids differ from transformers' for the same seed.

#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng { s: [next(), next(), next(), next()] }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// One draw from `softmax(scores)` (torch's `multinomial(softmax(scores), 1)`); `-inf` scores are
    /// never drawn. All `-inf` (or NaN): index 0.
    pub fn sample(&mut self, scores: &[f32]) -> usize {
        let max = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        if !max.is_finite() {
            return 0;
        }
        let weights: Vec<f64> = scores.iter().map(|&s| if s == f32::NEG_INFINITY { 0.0 } else { ((s - max) as f64).exp() }).collect();
        let total: f64 = weights.iter().sum();
        let mut u = self.next_f64() * total;
        let mut last = 0;
        for (i, &w) in weights.iter().enumerate() {
            if w > 0.0 {
                last = i;
                if u < w {
                    return i;
                }
                u -= w;
            }
        }
        last
    }

    /// `k` distinct indices drawn without replacement with probabilities `softmax(scores)`
    /// (Gumbel-top-k, the same distribution as torch's `multinomial(..., replacement=False)`), in
    /// draw order.
    pub fn sample_without_replacement(&mut self, scores: &[f32], k: usize) -> Vec<usize> {
        let mut keyed: Vec<(f64, usize)> = scores
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let u = self.next_f64().max(f64::MIN_POSITIVE);
                let g = -(-u.ln()).ln();
                (if s == f32::NEG_INFINITY { f64::NEG_INFINITY } else { s as f64 + g }, i)
            })
            .collect();
        let k = k.min(keyed.len());
        if k == 0 {
            return vec![];
        }
        keyed.select_nth_unstable_by(k - 1, |a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Less));
        keyed.truncate(k);
        keyed.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
        keyed.into_iter().map(|(_, i)| i).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproducible_and_seed_dependent() {
        let a: Vec<u64> = { let mut r = Rng::new(7); (0..4).map(|_| r.next_u64()).collect() };
        let b: Vec<u64> = { let mut r = Rng::new(7); (0..4).map(|_| r.next_u64()).collect() };
        let c: Vec<u64> = { let mut r = Rng::new(8); (0..4).map(|_| r.next_u64()).collect() };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn sample_frequencies_follow_softmax() {
        let probs = [0.5f64, 0.3, 0.2, 0.0];
        let scores: Vec<f32> = probs.iter().map(|&p| if p == 0.0 { f32::NEG_INFINITY } else { (p as f32).ln() }).collect();
        let mut r = Rng::new(1);
        let n = 20000;
        let mut counts = [0usize; 4];
        for _ in 0..n {
            counts[r.sample(&scores)] += 1;
        }
        assert_eq!(counts[3], 0);
        for i in 0..3 {
            let f = counts[i] as f64 / n as f64;
            assert!((f - probs[i]).abs() < 0.02, "token {i}: {f} vs {}", probs[i]);
        }
    }
}
