//! A top-p step's rows as [`NucleusCheck::decide_row`] sees them, from a device reduction ([`TopKRows`]): each
//! row's candidates (its largest logits, min-length's suppressed ids excluded) and its values at the ids the other
//! processors touch (gathered whatever their rank), edited exactly as the CPU's processors edit them (the same
//! `apply`, on a row holding only those values), then tempered. Every other id (the tail) is untouched: its logit
//! is at most the smallest candidate's, and its mass is the reduction's kept normaliser (the ids neither suppressed
//! nor gathered: the touched ids' mass, which the edits move, is never in it, so that a penalised largest logit
//! leaves no cancellation) minus the raw mass of the untouched candidates. An edit that sets the
//! whole row (forced EOS at the last position) leaves nothing to bound: the row is the CPU's whatever the logits.

use super::{Known, NucleusCheck, RowFacts, NUCLEUS_CANDIDATES, U};
use crate::backend::TopKRows;
use crate::generate::processors::LogitsProcessors;

/// One top-p step: the check, the processors before the warpers and each row's sequence so far.
#[derive(Debug, Clone)]
pub struct NucleusStep {
    check: NucleusCheck,
    procs: LogitsProcessors,
    seqs: Vec<Vec<u32>>,
}

impl NucleusStep {
    pub(crate) fn new(check: NucleusCheck, procs: &LogitsProcessors, seqs: &[Vec<u32>]) -> Self {
        NucleusStep { check: check.with_penalty(procs.repetition_penalty()), procs: procs.clone(), seqs: seqs.to_vec() }
    }

    /// How many candidates per row to read.
    pub fn k(&self) -> usize {
        NUCLEUS_CANDIDATES.min(self.check.vocab())
    }

    /// The rows `[rows, vocab]` the sampler draws from (the kept ids at their tempered scores, -inf elsewhere),
    /// exactly what the CPU's processors leave of the whole rows (beam sampling: of their log-softmax); `None` when
    /// a row's cutoff is not certain from its reduction (read the whole rows).
    pub fn decide(&self, t: &TopKRows) -> Option<Vec<f32>> {
        let vocab = self.check.vocab();
        let rows = t.max.len();
        if rows != self.seqs.len() {
            return None;
        }
        let edits = self.procs.edits_only();
        let mut out = vec![f32::NEG_INFINITY; rows * vocab];
        for (r, row) in out.chunks_mut(vocab).enumerate() {
            self.decide_row(t, r, &edits, row)?;
        }
        Some(out)
    }

    fn decide_row(&self, t: &TopKRows, r: usize, edits: &LogitsProcessors, out: &mut [f32]) -> Option<()> {
        let check = &self.check;
        let vocab = check.vocab();
        let seq = std::slice::from_ref(&self.seqs[r]);
        let cands: Vec<(u32, f32)> = (r * t.k..(r + 1) * t.k).map(|i| (t.ids[i], t.values[i])).filter(|&(id, _)| (id as usize) < vocab).collect();
        let g = t.gather_width();
        let gathered: Vec<(u32, f32)> = (r * g..(r + 1) * g).map(|i| (t.gather[i], t.gathered[i])).filter(|&(id, _)| (id as usize) < vocab).collect();
        // a row without a finite largest candidate (all -inf, NaN, +inf): whole rows. `m`: the largest logit
        // min-length leaves finite (the suppressed ids are never candidates)
        let m = cands.first()?.1;
        if !m.is_finite() || !t.max[r].is_finite() || t.max[r] < m || cands.iter().chain(&gathered).any(|c| c.1.is_nan()) {
            return None;
        }
        // log_softmax_rows' lse from the device's normaliser over the whole row, suppressed ids included (beam
        // sampling: transformers' log-softmax comes before the processors)
        let lse = t.max[r] as f64 + t.sum_exp[r].ln();
        if check.log_softmax() && !(lse.is_finite() && t.sum_exp[r] >= 1.0) {
            return None;
        }
        // the known ids (candidates, then the touched ones not among them) at the values the processors start from
        let mut sparse = vec![f32::NEG_INFINITY; vocab];
        let mut is_known = vec![false; vocab];
        let mut known: Vec<(u32, f32)> = Vec::with_capacity(cands.len() + gathered.len());
        for &(id, x) in cands.iter().chain(&gathered) {
            if !std::mem::replace(&mut is_known[id as usize], true) {
                known.push((id, x));
            }
            sparse[id as usize] = check.pre(x, lse);
        }
        if self.procs.sets_whole_row(self.seqs[r].len()) {
            // forced EOS: every id but EOS at -inf whatever the logits; the warpers on that row are the CPU's
            self.procs.apply(seq, &mut sparse, vocab);
            out.copy_from_slice(&sparse);
            return Some(());
        }
        let before = sparse.clone();
        edits.apply(seq, &mut sparse, vocab);
        // the ids the repetition penalty scales (the seen tokens), whether or not that changed their value here
        let mut seen = vec![false; vocab];
        if self.procs.repetition_penalty().is_some() {
            self.seqs[r].iter().filter(|&&t| (t as usize) < vocab).for_each(|&t| seen[t as usize] = true);
        }
        let facts_known = known
            .iter()
            .map(|&(id, x)| {
                let (y0, y) = (before[id as usize], sparse[id as usize]);
                // an edit other than the penalty sets the value to -inf, whatever the logits
                let set = y.to_bits() != y0.to_bits() && y == f32::NEG_INFINITY;
                Known { id, s: check.tempered(y), x: if set { f32::NEG_INFINITY } else { x }, scaled: seen[id as usize] && !set }
            })
            .collect();
        // the tail's raw mass: the kept normaliser (the device's f32 sum of positive terms, within (vocab + 256) ulp
        // of it, each term flushed below 2^-126 at worst) less the untouched candidates' (the suppressed and the
        // gathered ids are not in it)
        let s = t.kept_sum_exp[r];
        if !(s >= 0.0 && s.is_finite()) {
            return None;
        }
        let mut is_touched = vec![false; vocab];
        gathered.iter().for_each(|g| is_touched[g.0 as usize] = true);
        let known_mass: f64 = cands.iter().filter(|c| !is_touched[c.0 as usize]).map(|&(_, x)| ((x - m) as f64).exp()).sum();
        let delta = (vocab as f64 + 256.0) * U;
        let flushed = vocab as f64 * f32::MIN_POSITIVE as f64;
        let facts = RowFacts {
            known: facts_known,
            m,
            n_tail: vocab - known.len(),
            tail_x: cands.last()?.1,
            raw_lo: s * (1.0 - delta) - known_mass,
            raw_hi: s * (1.0 + delta) + flushed - known_mass,
            lse,
        };
        check.decide_row(&facts, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GenerationConfig, T5Config};
    use crate::generate::processors::log_softmax_rows;
    use crate::tensor::Tensor;

    use super::super::tests::{bits, lcg};

    /// The first id whose values differ in bits, with both values.
    fn first_diff(a: &[f32], b: &[f32]) -> Option<(usize, f32, f32)> {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).enumerate().find(|(_, (x, y))| x.to_bits() != y.to_bits()).map(|(i, (x, y))| (i, *x, *y))
    }

    /// Top-p after the edits (repetition penalty, n-grams, bad words, min-length, forced EOS) on rows whose largest
    /// logits are touched ids: whenever the step decides from the candidates and the gathered values, it gives
    /// exactly the CPU processors' rows (sampling on the logits, beam sampling on their log-softmax); it decides
    /// rows of every kind, and the forced-EOS step always.
    #[test]
    fn edits_replayed_on_candidates_and_touched_ids() {
        let vocab = 3000;
        let cases = [
            r#"{"repetition_penalty": 1.6}"#,
            r#"{"repetition_penalty": 0.6, "min_new_tokens": 9}"#,
            r#"{"no_repeat_ngram_size": 2, "bad_words_ids": [[5], [7, 11]]}"#,
            r#"{"repetition_penalty": 1.3, "no_repeat_ngram_size": 2, "bad_words_ids": [[7, 11]], "min_length": 9}"#,
            r#"{"no_repeat_ngram_size": 3, "min_new_tokens": 9}"#,
            r#"{"forced_eos_token_id": 1, "max_new_tokens": 6, "repetition_penalty": 1.2}"#,
            // the last position: forced EOS sets the whole row
            r#"{"forced_eos_token_id": 1, "max_new_tokens": 5, "repetition_penalty": 1.2}"#,
            r#"{"forced_eos_token_id": [1, 2], "max_new_tokens": 5, "bad_words_ids": [[5]], "temperature": 0.7}"#,
        ];
        // the sequences so far: the touched ids (seen tokens, n-gram completions 11 and 5 after a trailing 7, the
        // bad word 11 after 7) are among each row's largest logits
        let seqs = vec![vec![0, 7, 11, 42, 7], vec![0, 9, 7, 5, 7]];
        for json in cases {
            for beam in [false, true] {
                let (mut decided, mut declined, mut shifted) = (0, 0, 0);
                let mut seed = 5u64;
                for case in 0..40 {
                    let spread = [2.0f64, 8.0, 14.0, 20.0][case % 4];
                    let temperature = [1.0f32, 0.6, 1.4][case % 3];
                    let p = [0.9f32, 0.6, 0.97][(case / 4) % 3];
                    let mut logits: Vec<f32> = (0..2 * vocab).map(|_| (lcg(&mut seed) * spread * 2.0 - spread) as f32).collect();
                    for (r, seq) in seqs.iter().enumerate() {
                        // the touched ids strong (one negative: the penalty multiplies it), and a few untouched ones
                        for (j, &id) in seq.iter().chain(&[11, 5, 1, 2, 100, 200, 300]).enumerate() {
                            logits[r * vocab + id as usize] = (spread * (2.5 - 0.1 * j as f64)) as f32 * if j % 5 == 4 { -1.0 } else { 1.0 };
                        }
                    }
                    let mut gen = GenerationConfig::from_model_config(&T5Config::from_json("{}").unwrap());
                    gen.apply_json(&serde_json::json!({"do_sample": true, "top_k": 0, "top_p": p, "temperature": temperature})).unwrap();
                    gen.apply_json(&serde_json::from_str(json).unwrap()).unwrap();
                    let procs = LogitsProcessors::new(&gen, if beam { 2 } else { 1 });
                    let (t_, p_, keep) = procs.top_p_from_candidates().expect(json);
                    let check = if beam { NucleusCheck::after_log_softmax(t_, p_, keep, vocab) } else { NucleusCheck::new(t_, p_, keep, vocab) };
                    let suppress = procs.suppressed(seqs[0].len());
                    let mut want = logits.clone();
                    if beam {
                        log_softmax_rows(&mut want, vocab);
                    }
                    procs.apply(&seqs, &mut want, vocab);
                    let gather = crate::generate::gather_list(procs.touched(&seqs, vocab));
                    let top = TopKRows::from_host(&Tensor::new(vec![2, vocab], logits.clone()), NUCLEUS_CANDIDATES, &suppress, &gather);
                    let step = NucleusStep::new(check, &procs, &seqs);
                    let forced = procs.sets_whole_row(seqs[0].len());
                    match step.decide(&top) {
                        Some(got) => {
                            decided += 1;
                            assert_eq!(bits(&got), bits(&want), "{json} beam {beam} case {case}");
                        }
                        None => {
                            assert!(!forced, "{json}: a forced-EOS step is always decided");
                            declined += 1;
                        }
                    }
                    // a device's kept normaliser (within (vocab + 256) = 3256 ulp): whenever it still decides, the same rows
                    let mut off = top.clone();
                    for rel in [1.0 + 300.0 * U, 1.0 - 300.0 * U, 1.0 + 3000.0 * U] {
                        off.kept_sum_exp.iter_mut().zip(&top.kept_sum_exp).for_each(|(o, &k)| *o = k * rel);
                        if let Some(got) = step.decide(&off) {
                            shifted += 1;
                            assert_eq!(first_diff(&got, &want), None, "{json} beam {beam} case {case}: kept sum off by {rel}");
                        }
                    }
                    // beam sampling, the whole row's normaliser off as well (the lse the log-softmax subtracts, which a
                    // penalty scales): whenever it still decides, the CPU processors' rows written with that lse, bit
                    // for bit, and the same ids kept as with the exact lse
                    if beam {
                        for rel in [1.0 + 300.0 * U, 1.0 - 300.0 * U, 1.0 + 3000.0 * U] {
                            off.sum_exp.iter_mut().zip(&top.sum_exp).for_each(|(o, &k)| *o = k * rel);
                            let Some(got) = step.decide(&off) else { continue };
                            shifted += 1;
                            let mut at_lse = logits.clone();
                            for (r, row) in at_lse.chunks_mut(vocab).enumerate() {
                                let lse = off.max[r] as f64 + off.sum_exp[r].ln();
                                row.iter_mut().for_each(|x| *x = (*x as f64 - lse) as f32);
                            }
                            procs.apply(&seqs, &mut at_lse, vocab);
                            assert_eq!(first_diff(&got, &at_lse), None, "{json} case {case}: normalisers off by {rel}");
                            let kept = |v: &[f32]| v.iter().map(|x| x.is_finite()).collect::<Vec<_>>();
                            assert!(kept(&got) == kept(&want), "{json} case {case}: normalisers off by {rel}, other ids kept");
                        }
                    }
                }
                eprintln!("{json} beam {beam}: decided {decided}, declined {declined}, {shifted} decided with a normaliser off");
                assert!(shifted >= decided, "{json} beam {beam}: {shifted} decided with a normaliser off");
                assert!(!json.contains(r#""max_new_tokens": 5"#) || decided == 40, "{json}: the forced step");
                assert!(decided >= 8, "{json} beam {beam}: decided {decided}, declined {declined}");
            }
        }
    }

    /// Beam sampling after a penalty, top-p swept across the cut of a row whose third value is a penalised one: with
    /// the whole row's normaliser off by a device's error (the penalised value moves against the others by
    /// `(p - 1)` times the lse's error, at a low temperature a visible share of its mass), whenever the step
    /// decides, the ids kept are those of the exact CPU row.
    #[test]
    fn penalised_mass_near_the_cut() {
        let vocab = 1000;
        let mut logits = vec![-3.0f32; vocab];
        (logits[20], logits[30], logits[10]) = (2.0, 1.99, 4.5584);
        // 10 seen: 6 (4.5584 - lse) lands third, near 20 and 30 (probabilities 0.50, 0.30, 0.20 after the
        // temperature): top-p keeps it above about 0.8. The lse off by 1200 ulp moves its probability by 0.003, more
        // than the roundings' share of the margin (0.001): without the penalty's term, some step decides wrongly
        let seqs = vec![vec![10]];
        let (mut decided, mut declined) = (0, 0);
        for i in 0..1000 {
            let p = 0.75 + 0.0001 * i as f64;
            let mut gen = GenerationConfig::from_model_config(&T5Config::from_json("{}").unwrap());
            gen.apply_json(&serde_json::json!({"do_sample": true, "top_k": 0, "top_p": p, "temperature": 0.02, "repetition_penalty": 6.0})).unwrap();
            let procs = LogitsProcessors::new(&gen, 2);
            let (t_, p_, keep) = procs.top_p_from_candidates().unwrap();
            let step = NucleusStep::new(NucleusCheck::after_log_softmax(t_, p_, keep, vocab), &procs, &seqs);
            let mut want = logits.clone();
            log_softmax_rows(&mut want, vocab);
            procs.apply(&seqs, &mut want, vocab);
            let gather = crate::generate::gather_list(procs.touched(&seqs, vocab));
            let top = TopKRows::from_host(&Tensor::new(vec![1, vocab], logits.clone()), NUCLEUS_CANDIDATES, &[], &gather);
            for rel in [1.0 + 1200.0 * U, 1.0 - 1200.0 * U] {
                let mut off = top.clone();
                off.sum_exp[0] *= rel;
                match step.decide(&off) {
                    Some(got) => {
                        decided += 1;
                        let kept = |v: &[f32]| v.iter().map(|x| x.is_finite()).collect::<Vec<_>>();
                        assert!(kept(&got) == kept(&want), "top_p {p}, normaliser off by {rel}: other ids kept");
                    }
                    None => declined += 1,
                }
            }
        }
        eprintln!("penalised mass near the cut: decided {decided}, declined {declined}");
        assert!(decided > 1200 && declined > 0, "decided {decided}, declined {declined}");
    }
}
