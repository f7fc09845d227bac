//! The softmax steps of attention on one row of scores, written so that their loops vectorize
//! (SSE natively, SIMD128 in wasm) and give the same bits on every target: only IEEE adds,
//! multiplies, comparisons and bit operations, no libm call (in wasm `f32::exp` is one call per
//! score, and the scalar exponentials were about half of a long input's attention).
//!
//! A row goes through [`add_bias`], [`hide`] (keys a query must not see become `-inf`),
//! [`max`] and [`exp_sum`].

/// Partial sums [`exp_sum`] keeps (added in a fixed order at the end).
const LANES: usize = 8;

/// `e^x` within 1 ulp of the correctly rounded value for `-87 ≤ x ≤ 88` (softmax calls it with `x ≤ 0`: a score minus the
/// maximum); 0 below -87 (where `e^x < 1.7e-38`), also for `-inf`; NaN for NaN. `x = n ln 2 + r`
/// with `n` the nearest integer to `x / ln 2` and `|r| ≤ ln 2 / 2` (`ln 2` in two parts, so
/// `n · LN2_HI` and the first subtraction are exact), `e^r` by a degree-7 polynomial (the
/// classic single-precision minimax coefficients), times `2^n` built in the exponent bits.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // 1.5 · 2^23: adding it rounds to an integer (ties to even), held in the low mantissa bits
    const SHIFTER: f32 = 12_582_912.0;
    const LN2_HI: f32 = 355.0 / 512.0; // ln 2 to 9 bits: n · LN2_HI is exact for |n| < 2^15
    const LN2_LO: f32 = -2.121_944_4e-4;
    let t = x * std::f32::consts::LOG2_E + SHIFTER;
    let n = t - SHIFTER;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 0.166_666_65) * r + 0.5;
    let er = p * (r * r) + r + 1.0;
    let scale = f32::from_bits(((t.to_bits() as i32 - SHIFTER.to_bits() as i32 + 127) << 23) as u32);
    if x < -87.0 {
        0.0
    } else {
        er * scale
    }
}

/// `row[j] += bias[j]`.
#[inline]
pub fn add_bias(row: &mut [f32], bias: &[f32]) {
    row.iter_mut().zip(bias).for_each(|(s, b)| *s += b);
}

/// `-inf` for the keys not visible: `visible[j] == 0` (key padding) and every key from
/// `first_hidden` on (causal masking).
#[inline]
pub fn hide(row: &mut [f32], visible: Option<&[u32]>, first_hidden: Option<usize>) {
    if let Some(vis) = visible {
        row.iter_mut().zip(vis).for_each(|(s, &v)| {
            if v == 0 {
                *s = f32::NEG_INFINITY
            }
        });
    }
    if let Some(f) = first_hidden {
        let f = f.min(row.len());
        row[f..].iter_mut().for_each(|s| *s = f32::NEG_INFINITY);
    }
}

/// The largest value of `row`, NaN skipped (as `f32::max` does; comparisons, not `f32::max`,
/// which is a libm call in wasm); `-inf` for an empty or all-hidden row.
#[inline]
pub fn max(row: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in chunks.by_ref() {
        for l in 0..LANES {
            if c[l] > m[l] {
                m[l] = c[l];
            }
        }
    }
    let mut best = f32::NEG_INFINITY;
    for &v in m.iter().chain(chunks.remainder()) {
        if v > best {
            best = v;
        }
    }
    best
}

/// `row[j] = e^(row[j] - m)` (hidden keys, at `-inf`: 0) and their sum, as [`LANES`] partial
/// sums added in a fixed order. `m` must be finite or `+inf` (NaN from `inf - inf` propagates).
#[inline]
pub fn exp_sum(row: &mut [f32], m: f32) -> f32 {
    row.iter_mut().for_each(|s| *s = exp(*s - m));
    let mut part = [0.0f32; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in chunks.by_ref() {
        for l in 0..LANES {
            part[l] += c[l];
        }
    }
    let mut sum = 0.0f32;
    for &p in part.iter().chain(chunks.remainder()) {
        sum += p;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    /// Against the correctly rounded `e^x` (from f64) over the whole range softmax uses, every
    /// 16th float from -87 to 0 and a sweep up to 88; the edges and special values.
    #[test]
    fn exp_is_within_one_ulp() {
        let mut worst = (0u32, 0.0f32);
        let check = |x: f32, worst: &mut (u32, f32)| {
            let want = (x as f64).exp() as f32;
            let u = ulps(exp(x), want);
            if u > worst.0 {
                *worst = (u, x);
            }
        };
        // the negative floats down to -87 by their bits (magnitude bits 0 ..= those of 87)
        let mut b = 0u32;
        while b <= 87.0f32.to_bits() {
            check(-f32::from_bits(b), &mut worst);
            b += 16;
        }
        for i in 0..=880_000 {
            check(i as f32 * 1e-4, &mut worst);
        }
        assert!(worst.0 <= 1, "{} ulp at {}", worst.0, worst.1);
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-87.5), 0.0);
        assert_eq!(exp(-1000.0), 0.0);
        assert!(exp(f32::NAN).is_nan());
    }

    /// The row steps against the plain loops: padding and causal hiding, a NaN score skipped by
    /// the maximum, rows shorter than and not a multiple of [`LANES`].
    #[test]
    fn row_steps_match_plain_loops() {
        for len in [0usize, 1, 5, 8, 13, 40] {
            let mut row: Vec<f32> = (0..len).map(|j| ((j * 37 % 11) as f32 - 5.0) * 0.7).collect();
            let bias: Vec<f32> = (0..len).map(|j| (j % 3) as f32 * 0.25).collect();
            let vis: Vec<u32> = (0..len).map(|j| (j % 4 != 1) as u32).collect();
            let first_hidden = len.saturating_sub(2);
            let want: Vec<f32> = (0..len).map(|j| if vis[j] == 0 || j >= first_hidden { f32::NEG_INFINITY } else { row[j] + bias[j] }).collect();
            add_bias(&mut row, &bias);
            hide(&mut row, Some(&vis), Some(first_hidden));
            assert_eq!(row, want);
            let m = want.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            assert_eq!(max(&row), m);
            if m > f32::NEG_INFINITY {
                let s = exp_sum(&mut row, m);
                let e: Vec<f64> = want.iter().map(|&v| (v as f64 - m as f64).exp()).collect();
                assert!((s as f64 - e.iter().sum::<f64>()).abs() < 1e-5 * len as f64);
                assert!(row.iter().zip(&e).all(|(&g, &w)| (g as f64 - w).abs() <= 1e-6 * w.max(1e-30)), "{row:?} vs {e:?}");
            }
        }
        assert_eq!(max(&[1.0, f32::NAN, 3.0, f32::NAN, 2.0, 0.0, -1.0, 0.5, 2.5]), 3.0);
        assert_eq!(max(&[f32::NEG_INFINITY; 9]), f32::NEG_INFINITY);
    }
}
