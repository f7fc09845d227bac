//! Top-p (nucleus) sampling without top-k from a row's top candidates: what a device reads back instead of the
//! whole row in the common case, with the ids the whole row gives.
//!
//! The CPU's top-p ([`super::processors::LogitsProcessors::apply`]) sorts the whole (tempered) row ascending,
//! sums `exp(s - max)` in f32 and removes every id whose cumulative probability is `<= 1 - p`. From the row's top
//! `K` raw logits (exact) and its normaliser `Σ exp(x - max)` ([`TopKRows`](crate::backend::TopKRows), computed on the device in another
//! order) the host bounds, for each candidate, the cumulative probability the CPU computes: the mass below the
//! candidates lies in an interval (the normaliser's error, and for a temperature ≠ 1 Jensen's bounds on
//! `Σ y^(1/t)` over the `vocab - K` ids each at most the smallest candidate's `y`), and the CPU's f32 sums are
//! within `(2 vocab + 16) · 2^-24` of the exact value. When every id's side of the cutoff is certain — the ids
//! below the candidates and those tied with the smallest candidate removed, each other candidate certainly kept
//! or removed — the row the sampler sees is built exactly (the CPU's temperature arithmetic on the candidates, -inf
//! elsewhere), so the draw is the CPU's. Otherwise [`NucleusStep::decide`] says so and the caller reads the
//! whole row (a counted fallback).
//!
//! With min-length before the warpers (`min_length` / `min_new_tokens`: the EOS ids at -inf while the row is short)
//! the reduction suppresses those ids: they are never candidates, they sit at the bottom of the CPU's ascending
//! sort with probability 0, and the tail is the mass of the ids the processors leave finite: the reduction's
//! [`TopKRows::kept_sum_exp`](crate::backend::TopKRows::kept_sum_exp) (`Σ exp(x - m)` over the ids not suppressed, `m` the first candidate) minus the
//! candidates', not the whole row's normaliser. Its error is the same `(vocab + 256)` ulp, relative to that sum
//! (a sum of positive terms), so the bounds above hold with it unchanged; the suppressed ids only lengthen the
//! count of ids below the candidates (`vocab - K`: the positions, and Jensen's `n`, which only loosens). Beam sampling's
//! `lse` is still the whole row's (transformers' log-softmax comes before the processors): [`TopKRows::max`](crate::backend::TopKRows::max) and
//! [`TopKRows::sum_exp`](crate::backend::TopKRows::sum_exp), suppressed ids included.
//!
//! The edits that change only a few ids (repetition penalty, no-repeat n-grams, bad words, forced EOS; see
//! [`super::processors::LogitsProcessors::touched`]) are replayed exactly on the known values ([`NucleusStep`], `nucleus/rows.rs`): the
//! candidates and the touched ids' gathered logits, edited by the CPU's own `apply`. The decision then takes known
//! values (`RowFacts`: any order, any of them -inf) and a tail of untouched ids, each logit at most the smallest
//! candidate's `x_t`: the tail's mass is the kept normaliser, which the reduction sums over the ids neither suppressed
//! nor gathered (a touched id's mass is moved out of the tail at the source, so a penalised largest logit leaves no
//! cancellation), less the untouched candidates', within the same `(vocab + 256)` ulp (plus `vocab · 2^-126` for terms a
//! device flushes). The bounds hold relative to `exp(s_m)`, `s_m` the value the largest untouched-or-not logit `m` would
//! have unedited; they are moved to the largest known value by `exp(s_m - s_max)` (its rounding: `8U |s_m|` in the
//! margin). The ids certainly removed together are the tail and every known value at or below the tail's largest value
//! `s(x_t)` (no longer just the ties with the smallest candidate: an edited value may sit among the tail's). Forced EOS
//! at the last position sets the whole row: the CPU's processors on the known values give its row exactly.
//!
//! Beam sampling ([`NucleusCheck::after_log_softmax`]) runs the same warpers on the row's log-softmax (transformers'
//! order: `log_softmax`, then temperature and top-p, then the beam scores added): each value the top-p sees is
//! `s = f32(f32(x - lse) / t)` with `lse = max + ln Σ exp(x - max)` (f64, as `log_softmax_rows`), here from the
//! device's normaliser. Top-p is shift-invariant, so in exact arithmetic `s_i - s_max = (x_i - max) / t` and the
//! tail bounds above hold unchanged; what changes is rounding. The device's `lse` differs from the CPU's by a
//! common shift (`≤ ln(1 + δ)`, `δ` the normaliser's relative error), which cancels in `s_i - s_max` up to the
//! roundings (`f32(x - lse)` and the division: `≤ 2U |s|` per value, `U = 2^-24`; the subtraction `s_i - s_max`:
//! `≤ U (|s_i| + |s_max|)`), here and on the CPU: each exponent argument differs by at most
//! `6U (|s_i| + |s_max|)`, so the cumulative probabilities (a ratio of two sums) by at most `12U (|s_min| + |s_max|)`
//! (`|s| ≤ |s_min|` over the finite candidates, every `s ≤ 0`); `16U (|s_min| + |s_max|)` is added to the margin.
//! For the ids below the candidates (either search) the rounding is relative to `|s_j| ≤ |s_min| + z_j` with
//! `exp(s_j - s_max) = e_min · exp(-z_j)`, and `z exp(-z) ≤ 1/e`: at most `3U · n_tail · e_min` more. Two values the CPU could order differently
//! than here are a pair whose raw logits differ but may round to one `s` under the CPU's `lse` (ties sort by id):
//! they matter only at the cut, so the largest removed logit `x'` and the smallest kept one `x''` must satisfy
//! `x'' - x' > 2.02 U (|x' - lse| + |x'' - lse| + 2ε)` (then every removed id, tail included, rounds strictly below
//! every kept one for any `lse` within `ε` of ours), or share an id order the CPU's tie-break keeps (the same logit);
//! a removed logit above the smallest kept one (a rounding tie here) is neither: else whole rows.
//! The kept values are written with the device's `lse`, the arithmetic the beam top-k path uses: bit for bit the
//! CPU's on the CPU backend (the same f64 normaliser), within an ulp of it on a GPU (a penalised one: `p` times
//! the lse's error more).
//!
//! Beam sampling after a repetition penalty: the penalty scales the seen tokens' log-softmax values
//! (`v < 0 ? v · p : v / p`; every `v = f32(x - lse) ≤ 0`, and at `v = 0` both give 0, so the value is `f32(v · p)`),
//! which the CPU computes with its `lse' = lse - η`, `|η| ≤ ε = 2 (vocab + 256) U` (`|ln(1 + δ)| ≤ 2δ`). In exact
//! arithmetic a value is `c (x - lse') / t` with `c = p` for a penalised id, 1 for the others: here and there it
//! differs by `c η / t`, no longer a common shift. Top-p is scale-invariant, so relative to the others every penalised
//! term `exp(s)` is multiplied by one common `λ = exp((p - 1) η / t)`, `λ ∈ [exp(-A), exp(A)]`, `A = |p - 1| ε / t`.
//! A cumulative probability is `N / D`, `D = P + Q` (`P` the penalised terms' mass, `Q` the others', the tail's
//! included), `N = N_p + N_q` a part of it: `N'/D' - N/D = (λ - 1)(N_p Q - N_q P) / (D D')` with
//! `|N_p Q - N_q P| ≤ P Q` and `D' ≥ min(λ, 1) D`, so it moves by at most `(exp(A) - 1) f (1 - f)`, `f = P / D` (its
//! interval from the tail's bounds, widened by the roundings). The penalty's product is one more rounding (`3U |s|`
//! per value): each exponent argument within `8U (|s_i| + |s_max|)` of the CPU's, the ratio within
//! `16U (|s_min| + |s_max|)` (`|s|` up to `p ε / t` larger there); the margin takes
//! `20U (|s_min| + |s_max| + 2 max(p, 1) ε / t) + 10^-6` and `1.25 (exp(A) - 1) max f (1 - f)` in place of `16U (…)`.
//! The tail is untouched (every seen token is gathered): it is part of `Q`. The kept values' order among themselves may
//! differ there; the CPU's smallest kept term is then within the same factors of ours, which the margin covers. The cut:
//! the removed ids (the tail included) must sort below the kept ones on the CPU, whose order within a class
//! (penalised or not) follows the logits (every step is monotone), so each class's smallest kept logit `x_k` is
//! checked against every removed logit `x_r`. With `a = x - lse` and `a' = a + η ≤ 0`, the CPU's values are
//! `c a' / t · (1 + θ)`, `|θ| ≤ 3.0001 U` (2 roundings without the penalty): `s'_r < s'_k` for every such `η` when
//! `c_k a_k - c_r a_r - |c_r - c_k| ε > n U (c_r (|a_r| + ε) + c_k (|a_k| + ε))`, `n` = 2.02, or 3.03 with a
//! penalised one (without the penalty this is the condition above). Within a class the same logit is the same value
//! here and there, sorted by id (`NucleusCheck::apart`); else the step falls back to whole rows.

mod rows;

pub use rows::NucleusStep;

/// A value the top-p sees whose id is known (a candidate or a touched id).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Known {
    pub id: u32,
    /// the value the top-p sees (edited, tempered)
    pub s: f32,
    /// its logit, or -inf where an edit set the value to -inf (whatever the logits)
    pub x: f32,
    /// the repetition penalty scaled it (`x` is then the logit before the penalty)
    pub scaled: bool,
}

/// One row as the top-p sees it from a reduction (`NucleusStep` builds it): the values known (each row's candidates and
/// the ids the processors touch, edited as the CPU edits them) and what bounds the rest, the tail (every id neither
/// known nor suppressed: untouched, each logit at most `tail_x`).
#[derive(Debug, Clone)]
pub(crate) struct RowFacts {
    pub known: Vec<Known>,
    /// the largest logit min-length leaves finite (the first candidate): the tail's mass is relative to it
    pub m: f32,
    /// how many ids are not known (the suppressed ones included: -inf, at the bottom of the CPU's sort)
    pub n_tail: usize,
    /// the tail's largest possible logit (the smallest candidate's)
    pub tail_x: f32,
    /// the tail's mass `Σ exp(x - m)` lies in `[raw_lo, raw_hi]`
    pub raw_lo: f64,
    pub raw_hi: f64,
    /// log_softmax_rows' lse from the device's normaliser (beam sampling)
    pub lse: f64,
}

/// How many of each row's largest logits a top-p step reads (at most the vocabulary).
pub const NUCLEUS_CANDIDATES: usize = 128;

const U: f64 = 1.0 / (1u64 << 24) as f64;

/// The top-p warper (after an optional temperature) of a sampling search, decided from each row's top candidates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NucleusCheck {
    temperature: f32,
    p: f32,
    keep: usize,
    vocab: usize,
    /// the warpers run on the row's log-softmax (beam sampling), not on the raw logits
    log_softmax: bool,
    /// the repetition penalty before the warpers (1 for none)
    penalty: f32,
}

impl NucleusCheck {
    /// Top-p (after a temperature or alone) on the raw logits: multinomial sampling.
    pub(crate) fn new(temperature: f32, p: f32, keep: usize, vocab: usize) -> Self {
        NucleusCheck { temperature, p, keep, vocab, log_softmax: false, penalty: 1.0 }
    }

    /// Top-p (after a temperature or alone) on each row's log-softmax: beam sampling. [`NucleusStep::decide`]'s rows
    /// are then the processed log-probabilities (the beam scores not yet added).
    pub(crate) fn after_log_softmax(temperature: f32, p: f32, keep: usize, vocab: usize) -> Self {
        NucleusCheck { temperature, p, keep, vocab, log_softmax: true, penalty: 1.0 }
    }

    /// The same check after a repetition penalty of `penalty` (`None`: none).
    pub(crate) fn with_penalty(self, penalty: Option<f32>) -> Self {
        NucleusCheck { penalty: penalty.unwrap_or(1.0), ..self }
    }

    /// How far the CPU's `lse` may lie from the one of the device's normaliser: `|ln(1 + δ)| ≤ 2δ`, `δ` its
    /// relative error (`(vocab + 256)` ulp).
    fn lse_error(&self) -> f64 {
        (self.vocab as f64 + 256.0) * U * 2.0
    }

    /// How many candidates per row to read (`TopKRows` with min-length's suppressed ids, and the ids the other
    /// processors touch gathered).
    pub fn k(&self) -> usize {
        NUCLEUS_CANDIDATES.min(self.vocab)
    }

    /// The value the CPU's processors start from for logit `x`: `x` (or its log-softmax `f32(x - lse)`).
    pub(crate) fn pre(&self, x: f32, lse: f64) -> f32 {
        if self.log_softmax { (x as f64 - lse) as f32 } else { x }
    }

    /// The value the CPU's top-p sees for an edited value `y`: after the temperature.
    pub(crate) fn tempered(&self, y: f32) -> f32 {
        if self.temperature != 1.0 { y / self.temperature } else { y }
    }

    pub(crate) fn vocab(&self) -> usize {
        self.vocab
    }

    pub(crate) fn log_softmax(&self) -> bool {
        self.log_softmax
    }

    /// The value the CPU's top-p sees for an unedited logit `x`.
    fn scaled(&self, x: f32, lse: f64) -> f32 {
        self.tempered(self.pre(x, lse))
    }

    /// Writes into `out` (`vocab` values at -inf) the row the sampler draws from (the kept ids at their tempered
    /// scores), exactly what the CPU's processors leave of the whole row; `None` when its cutoff is not certain.
    pub(crate) fn decide_row(&self, row: &RowFacts, out: &mut [f32]) -> Option<()> {
        let vocab = self.vocab;
        let lse = row.lse;
        // ascending by (tempered value, id): the CPU's stable ascending sort of the whole row
        let mut asc: Vec<Known> = row.known.clone();
        if asc.iter().any(|c| c.s.is_nan()) {
            return None;
        }
        asc.sort_by(|a, b| a.s.partial_cmp(&b.s).unwrap().then(a.id.cmp(&b.id)));
        let smax = asc.last()?.s;
        let smin = asc[0].s;
        if !smax.is_finite() {
            return None;
        }
        let e: Vec<f64> = asc.iter().map(|c| if c.s == f32::NEG_INFINITY { 0.0 } else { (c.s - smax).exp() as f64 }).collect();
        let p_all: f64 = e.iter().sum();

        // the mass of the tail (the ids neither known nor suppressed), relative to exp(smax): [t_lo, t_hi]
        let n_tail = row.n_tail;
        let s_tail = self.scaled(row.tail_x, lse);
        let (t_lo, t_hi) = if n_tail == 0 || row.tail_x == f32::NEG_INFINITY {
            (0.0, 0.0)
        } else {
            let (raw_lo, raw_hi) = (row.raw_lo.max(0.0), row.raw_hi.max(0.0));
            let c = ((row.tail_x - row.m) as f64).exp(); // every tail y = exp(x - m) is at most c
            let a = 1.0 / self.temperature as f64;
            let n = n_tail as f64;
            let (lo, hi) = if self.temperature == 1.0 {
                (raw_lo, raw_hi)
            } else if a > 1.0 {
                // convex y^a: most when the mass sits at c, least when spread evenly
                (n * (raw_lo / n).powf(a), c.powf(a - 1.0) * raw_hi)
            } else {
                // concave y^a
                (raw_lo * c.powf(a - 1.0), (n.powf(1.0 - a) * raw_hi.powf(a)).min(n * c.powf(a)))
            };
            // relative to exp(s_m) (the value of the largest logit left finite, unedited), then to exp(smax)
            let shift = ((self.scaled(row.m, lse) - smax) as f64).exp();
            (lo * shift, hi * shift)
        };
        if !(t_lo.is_finite() && t_hi.is_finite()) {
            return None;
        }
        // the CPU's f32 arithmetic: the sum and the cumulative sum of vocab terms, the divisions, exp and the
        // rounding of x / t (relative to |s|); the tail's shift from s_m to smax (the rounding of s_m)
        // (-inf values are 0 in every sum: the smallest finite value bounds the rest)
        let s_m = self.scaled(row.m, lse);
        let low = asc.iter().map(|c| c.s).find(|s| s.is_finite()).unwrap_or(smax);
        let mut mu = (2.0 * vocab as f64 + 16.0) * U * 1.25 + 8.0 * U * (smax.abs() as f64 + low.abs().min(1e6) as f64 + s_m.abs() as f64 + 8.0);
        // the tail: the rounding of its s (relative to |s_j| ≤ |s_tail| + z_j) weighted by its
        // exp(s_j - s_max) = e_tail · exp(-z_j), and z · exp(-z) ≤ 1/e (module docs)
        if n_tail > 0 && s_tail.is_finite() {
            mu += 3.0 * U * n_tail as f64 * ((s_tail - smax) as f64).exp();
        }
        if self.log_softmax {
            // the CPU's lse is another common shift: each value rounds differently here and there (module docs;
            // -inf values are -inf on both sides)
            let far = if s_tail.is_finite() { low.abs().max(s_tail.abs()) } else { low.abs() };
            let reach = smax.abs() as f64 + far as f64;
            if self.penalty != 1.0 && asc.iter().any(|c| c.scaled) {
                // a penalty adds a rounding to its values, and scales the penalised terms against the others by a
                // common λ within exp(±A), A = |p - 1| ε / t: a cumulative probability moves by at most
                // (exp(A) - 1) f (1 - f), f the penalised share of the mass (module docs)
                let shift = (self.penalty as f64 - 1.0).abs() * self.lse_error() / self.temperature as f64;
                let pen: f64 = asc.iter().zip(&e).filter(|(c, _)| c.scaled).map(|(_, e)| e).sum();
                let rest = p_all - pen;
                let slack = 20.0 * U * (reach + 2.0 * self.penalty.max(1.0) as f64 * self.lse_error() / self.temperature as f64) + 1e-6;
                let f_lo = (pen / (pen + rest + t_hi) - slack).max(0.0);
                let f_hi = (pen / (pen + rest + t_lo) + slack).min(1.0);
                let f = 0.5f64.clamp(f_lo, f_hi);
                mu += slack + 1.25 * shift.exp_m1() * f * (1.0 - f);
            } else {
                mu += 16.0 * U * reach;
            }
        }
        let threshold = (1.0 - self.p) as f64;
        let cum = |tail: f64, prefix: f64| (tail + prefix) / (tail + p_all);

        // the tail and the known values at or below its largest (their order against each other is unknown here;
        // without a tail: those tied with the smallest, in the CPU's index order): all certainly removed
        let g = if n_tail > 0 { asc.iter().take_while(|c| c.s <= s_tail).count() } else { asc.iter().take_while(|c| c.s == smin).count() };
        if g == asc.len() || asc.len() - g < self.keep {
            return None;
        }
        let mut prefix: f64 = e[..g].iter().sum();
        if cum(t_hi, prefix) + mu >= threshold {
            return None;
        }
        let forced = vocab.saturating_sub(self.keep); // whole-row positions from here on are always kept
        let mut first_kept = None;
        for (j, &Known { id, s, .. }) in asc.iter().enumerate().skip(g) {
            prefix += e[j];
            let pos = n_tail + j;
            let kept = if pos >= forced || cum(t_lo, prefix) - mu > threshold {
                true
            } else if cum(t_hi, prefix) + mu < threshold {
                false
            } else {
                return None;
            };
            if kept {
                first_kept.get_or_insert(j);
                out[id as usize] = s;
            }
        }
        if self.log_softmax {
            let j0 = first_kept?;
            let tail_x = if n_tail > 0 { row.tail_x } else { f32::NEG_INFINITY };
            self.cut_is_certain(&asc[..j0], tail_x, &asc[j0..], lse)?;
        }
        Some(())
    }

    /// Beam sampling: whether the CPU, whose `lse` may differ from ours by up to `ε`, also sorts every removed id
    /// (`removed`, and the tail: unscaled, logits at most `tail_x`) before every kept one (module docs). Within a
    /// class (scaled by the penalty or not) each value is monotone in its logit, so each class's smallest kept logit
    /// is checked against every removed one: a strict gap the lse and the roundings cannot close ([`Self::apart`]),
    /// or, within a class, the same logit (the same value here and there, sorted by id: below it here, so there).
    /// Values set to -inf are -inf whatever the lse.
    fn cut_is_certain(&self, removed: &[Known], tail_x: f32, kept: &[Known], lse: f64) -> Option<()> {
        for scaled_k in [false, true] {
            let Some(k) = kept.iter().filter(|k| k.scaled == scaled_k && k.x.is_finite()).min_by(|a, b| a.x.total_cmp(&b.x)) else { continue };
            let tail = (tail_x > f32::NEG_INFINITY).then_some((tail_x, false, false));
            for (x, scaled_r, tie_ok) in removed.iter().filter(|r| r.x.is_finite()).map(|r| (r.x, r.scaled, true)).chain(tail) {
                if scaled_r == scaled_k && tie_ok && x == k.x {
                    continue;
                }
                if !self.apart((x, scaled_r), (k.x, scaled_k), lse) {
                    return None;
                }
            }
        }
        Some(())
    }

    /// Whether the CPU's value of logit `xr` certainly lies below its value of logit `xk` (each with whether the
    /// penalty scales it) for every `lse` within `ε` of ours. With `a = x - lse`, the CPU's values are
    /// `c a' / t · (1 + θ)`, `a' = a - η` (`|η| ≤ ε`, `a' ≤ 0`), `c` the penalty or 1, `|θ| ≤ 3.0001 U` (the rounding
    /// of `x - lse`, of the penalty's product, of the temperature's division; 2 without the penalty): below when
    /// `c_k a_k - c_r a_r - |c_r - c_k| ε > n U (c_r (|a_r| + ε) + c_k (|a_k| + ε))`, `n` 2.02 or 3.03.
    fn apart(&self, (xr, scaled_r): (f32, bool), (xk, scaled_k): (f32, bool), lse: f64) -> bool {
        let eps = self.lse_error();
        let c = |scaled: bool| if scaled { self.penalty as f64 } else { 1.0 };
        let (cr, ck) = (c(scaled_r), c(scaled_k));
        let (ar, ak) = (xr as f64 - lse, xk as f64 - lse);
        let n = if scaled_r || scaled_k { 3.03 } else { 2.02 };
        ck * ak - cr * ar - (cr - ck).abs() * eps > n * U * (cr * (ar.abs() + eps) + ck * (ak.abs() + eps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::TopKRows;
    use crate::config::{GenerationConfig, T5Config};
    use crate::generate::processors::{log_softmax_rows, LogitsProcessors};
    use crate::tensor::Tensor;

    pub(super) fn lcg(seed: &mut u64) -> f64 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*seed >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(super) fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Rows from peaked to flat, for sampling (the warpers on the raw logits) and beam sampling (on the log-softmax,
    /// two ids kept at least): whenever the check decides, it gives exactly the CPU processors' row; it decides the
    /// peaked ones and declines the flat ones. Beam sampling with the normaliser off by a device's error (the lse
    /// shifted): whenever it still decides, the same ids kept, their values shifted by the lse's error alone.
    #[test]
    fn decides_exactly_what_the_whole_row_gives() {
        let vocab = 5000;
        for beam in [false, true] {
            let mut seed = 3u64;
            let (mut decided, mut declined, mut shifted, mut suppressed_decided, mut eos_max_decided) = (0, 0, 0, 0, 0);
            for case in 0..120 {
                let spread = [0.5f64, 2.0, 6.0, 12.0][case % 4];
                let temperature = [1.0f32, 0.7, 1.5][case % 3];
                let p = [0.9f32, 0.5, 0.95, 0.3][(case / 3) % 4];
                let mut row: Vec<f32> = (0..vocab).map(|_| (lcg(&mut seed) * spread * 2.0 - spread) as f32).collect();
                // a few strong candidates, some tied
                for j in 0..(case % 7) {
                    row[(j * 37 + case) % vocab] = (spread * 1.5 + (j / 2) as f64) as f32;
                }
                // min-length (EOS, id 1, at -inf at this step) in every other case: EOS the row's largest logit in
                // some, so that the whole row's normaliser is far from the mass left finite
                let min_new = case % 2 == 1;
                if min_new && case % 8 == 3 {
                    row[1] = (spread * 3.0 + (case % 3) as f64) as f32;
                }
                let mut gen = GenerationConfig::from_model_config(&T5Config::from_json("{}").unwrap());
                gen.apply_json(&serde_json::json!({"do_sample": true, "top_k": 0, "top_p": p, "temperature": temperature})).unwrap();
                if min_new {
                    gen.apply_json(&serde_json::json!({"min_new_tokens": 3})).unwrap();
                }
                let procs = LogitsProcessors::new(&gen, if beam { 2 } else { 1 });
                let (t_, p_, keep) = procs.top_p_from_candidates().expect("top-p, min-length before it or not");
                let check = if beam { NucleusCheck::after_log_softmax(t_, p_, keep, vocab) } else { NucleusCheck::new(t_, p_, keep, vocab) };
                let suppress = procs.suppressed(1);
                assert_eq!(suppress, if min_new { vec![1] } else { vec![] });
                let mut want = row.clone();
                if beam {
                    log_softmax_rows(&mut want, vocab);
                }
                procs.apply(&[vec![0]], &mut want, vocab);
                let mut top = TopKRows::from_host(&Tensor::new(vec![1, vocab], row.clone()), check.k(), &suppress, &[]);
                let check = NucleusStep::new(check, &procs, &[vec![0]]);
                match check.decide(&top) {
                    Some(got) => {
                        decided += 1;
                        suppressed_decided += min_new as usize;
                        eos_max_decided += (min_new && case % 8 == 3) as usize;
                        assert_eq!(bits(&got), bits(&want), "beam {beam} case {case}");
                    }
                    None => declined += 1,
                }
                // a GPU's normalisers: within (vocab + 256) ulp of the host's f64 sums; the kept one moves the tail
                // bound (whenever it still decides, exactly the CPU's row), the whole row's the lse (beam sampling: the
                // same ids kept, their values shifted by the lse's error alone)
                let (exact, exact_kept) = (top.sum_exp[0], top.kept_sum_exp[0]);
                for rel in [1.0 + 300.0 * U, 1.0 - 300.0 * U, 1.0 + 4000.0 * U] {
                    top.kept_sum_exp[0] = exact_kept * rel;
                    if let Some(got) = check.decide(&top) {
                        shifted += 1;
                        assert_eq!(bits(&got), bits(&want), "beam {beam} case {case}: kept sum off by {rel}");
                    }
                }
                top.kept_sum_exp[0] = exact_kept;
                if beam {
                    for rel in [1.0 + 300.0 * U, 1.0 - 300.0 * U, 1.0 + 4000.0 * U] {
                        top.sum_exp[0] = exact * rel;
                        if let Some(got) = check.decide(&top) {
                            shifted += 1;
                            for (id, (g, w)) in got.iter().zip(&want).enumerate() {
                                assert_eq!(g.is_finite(), w.is_finite(), "case {case} id {id}: kept here and there");
                                let tol = (rel.ln().abs() / t_ as f64) as f32 + 4.0 * f32::EPSILON * w.abs().max(1.0);
                                assert!(!g.is_finite() || (g - w).abs() <= tol, "case {case} id {id}: {g} vs {w}");
                            }
                        }
                    }
                }
            }
            assert!(decided > 20 && declined > 10, "beam {beam}: decided {decided}, declined {declined}");
            eprintln!("beam {beam}: decided {decided} ({suppressed_decided} with EOS suppressed, {eos_max_decided} of them EOS the largest), declined {declined}");
            assert!(suppressed_decided > 10 && eos_max_decided > 3, "beam {beam}: {suppressed_decided} decided with EOS suppressed, {eos_max_decided} EOS the largest");
            assert!(shifted > if beam { 80 } else { 40 }, "beam {beam}: {shifted} decided with a shifted normaliser");
        }
    }

    /// The cut of a beam-sampling row is certain only when every removed value rounds below the smallest kept one of
    /// each class for every lse the device's normaliser allows; a penalty moves its values by `p` times the lse's
    /// error, against the others' `1`.
    #[test]
    fn beam_cut_needs_a_gap_the_lse_cannot_close() {
        let check = NucleusCheck::after_log_softmax(1.0, 0.9, 2, 1000);
        let lse = 3.0;
        let none = f32::NEG_INFINITY;
        let up = |x: f32| f32::from_bits(x.to_bits() + 1);
        let kn = |id: u32, x: f32, scaled: bool| Known { id, s: 0.0, x, scaled };
        let removed = [kn(7, -20.0, false), kn(9, 1.0, false)];
        // one ulp apart: another lse may round both to one value
        assert_eq!(check.cut_is_certain(&removed, none, &[kn(10, up(1.0), false)], lse), None);
        // far apart, or tied logits (the id order is the same on both sides)
        assert_eq!(check.cut_is_certain(&removed, none, &[kn(10, 1.01, false)], lse), Some(()));
        assert_eq!(check.cut_is_certain(&removed, none, &[kn(10, 1.0, false)], lse), Some(()));
        assert_eq!(check.cut_is_certain(&[kn(9, none, false)], none, &[kn(10, 1.0, false)], lse), Some(()));
        // a removed logit above the smallest kept one (a rounding tie here) may sort above it there
        assert_eq!(check.cut_is_certain(&[kn(9, up(1.0), false)], none, &[kn(10, 1.0, false)], lse), None);
        // every kept one of the class counts, not only the first kept
        assert_eq!(check.cut_is_certain(&removed, none, &[kn(10, 1.5, false), kn(11, up(1.0), false)], lse), None);
        // the tail's largest logit counts as removed: one ulp below the kept one is no gap, nor the same logit
        assert_eq!(check.cut_is_certain(&[kn(9, none, false)], 1.0, &[kn(10, up(1.0), false)], lse), None);
        assert_eq!(check.cut_is_certain(&[kn(9, none, false)], 1.0, &[kn(10, 1.0, false)], lse), None);
        assert_eq!(check.cut_is_certain(&[kn(9, none, false)], 1.0, &[kn(10, 1.01, false)], lse), Some(()));

        // a penalty of 1.3: a scaled value's move against an unscaled one is 0.3 ε (ε = 2 (1000 + 256) U);
        // unscaled removed x = -1 (its log-softmax -4), scaled kept x with 1.3 (x - 3) = -4 + gap
        let check = check.with_penalty(Some(1.3));
        let eps = check.lse_error();
        let kept_at = |gap: f64| ((-4.0 + gap) / 1.3 + 3.0) as f32;
        let removed = [kn(7, -20.0, true), kn(9, -1.0, false)];
        assert_eq!(check.cut_is_certain(&removed, none, &[kn(10, kept_at(0.2 * eps), true)], lse), None);
        assert_eq!(check.cut_is_certain(&removed, none, &[kn(10, kept_at(0.25), true)], lse), Some(()));
        assert_eq!(check.cut_is_certain(&removed, none, &[kn(10, kept_at(1e-3), true)], lse), Some(()));
        // without the penalty's share (a penalty of 1: no lse term) the same pair would be apart
        let plain = NucleusCheck::after_log_softmax(1.0, 0.9, 2, 1000).with_penalty(Some(1.0));
        assert!(plain.apart((-1.0, false), (kept_at(0.2 * eps), true), lse));
        // the same logit in two classes is no tie: scaled (-3.9 · 1.3) below unscaled
        assert_eq!(check.cut_is_certain(&[kn(9, 0.0, false)], none, &[kn(10, 0.0, true)], lse), None);
        assert_eq!(check.cut_is_certain(&[kn(9, 0.0, true)], none, &[kn(10, 0.0, false)], lse), Some(()));
        // the tail is unscaled: a scaled kept value just above it is not apart
        assert_eq!(check.cut_is_certain(&[], -1.0, &[kn(10, kept_at(0.2 * eps), true)], lse), None);
        assert_eq!(check.cut_is_certain(&[], -1.0, &[kn(10, kept_at(1e-3), true)], lse), Some(()));
    }
}
