//! Logits processors, as transformers' `LogitsProcessorList` that `generate` builds
//! (`_get_logits_processor`), in the same order and with the same arithmetic (f32):
//! repetition penalty → no-repeat n-gram → bad words → min length (min_new_tokens folded in) →
//! forced EOS, then, when sampling, the warpers temperature → top-k → top-p.
//!
//! Greedy and sampling apply them to the raw logits of the step; beam search to the log-softmax of
//! the logits, exactly as transformers does. Scores are host rows `[rows, vocab]`; `seqs[r]` is the
//! decoder sequence of row `r` so far (decoder start token included).

use crate::config::GenerationConfig;

#[derive(Debug, Clone)]
enum Processor {
    /// `RepetitionPenaltyLogitsProcessor`: each token already in the row: `s < 0 ? s * p : s / p`.
    Repetition(f32),
    /// `NoRepeatNGramLogitsProcessor`
    NoRepeatNgram(usize),
    /// `NoBadWordsLogitsProcessor` (`[eos]` entries dropped): single tokens always banned,
    /// longer sequences banned as the completion of their prefix.
    BadWords { single: Vec<u32>, multi: Vec<Vec<u32>> },
    /// `MinLengthLogitsProcessor` / `MinNewTokensLengthLogitsProcessor`: EOS at -inf while the row is
    /// shorter than `min_length` (total, start token included).
    MinLength { min_length: usize, eos: Vec<u32> },
    /// `ForcedEOSTokenLogitsProcessor`: at length `max_length - 1` only EOS (score 0) is left.
    ForcedEos { max_length: usize, eos: Vec<u32> },
    /// `TemperatureLogitsWarper`
    Temperature(f32),
    /// `TopKLogitsWarper` (k already raised to `min_tokens_to_keep`)
    TopK(usize),
    /// `TopPLogitsWarper`
    TopP { p: f32, keep: usize },
}

/// The processors a generation config asks for.
#[derive(Debug, Clone, Default)]
pub struct LogitsProcessors {
    list: Vec<Processor>,
}

impl LogitsProcessors {
    /// As transformers builds them for `gen`; the warpers only when `gen.do_sample`.
    /// `min_tokens_to_keep`: 1 for sampling, `len(eos) + 1` for beam sampling.
    pub fn new(gen: &GenerationConfig, min_tokens_to_keep: usize) -> Self {
        let mut list = vec![];
        if gen.repetition_penalty != 1.0 {
            list.push(Processor::Repetition(gen.repetition_penalty as f32));
        }
        if gen.no_repeat_ngram_size > 0 {
            list.push(Processor::NoRepeatNgram(gen.no_repeat_ngram_size));
        }
        if let Some(bad) = &gen.bad_words_ids {
            let kept: Vec<&Vec<u32>> = bad.iter().filter(|w| !gen.eos_token_id.iter().any(|&e| w.as_slice() == [e])).collect();
            let single = kept.iter().filter(|w| w.len() == 1).map(|w| w[0]).collect();
            let multi = kept.iter().filter(|w| w.len() > 1).map(|w| (*w).clone()).collect();
            list.push(Processor::BadWords { single, multi });
        }
        let min_length = gen.total_min_length();
        if min_length > 0 && !gen.eos_token_id.is_empty() {
            list.push(Processor::MinLength { min_length, eos: gen.eos_token_id.clone() });
        }
        if let Some(f) = &gen.forced_eos_token_id {
            list.push(Processor::ForcedEos { max_length: gen.total_max_length(), eos: f.clone() });
        }
        if gen.do_sample {
            if gen.temperature != 1.0 {
                list.push(Processor::Temperature(gen.temperature as f32));
            }
            if gen.top_k != 0 {
                list.push(Processor::TopK(gen.top_k.max(min_tokens_to_keep)));
            }
            if gen.top_p < 1.0 {
                list.push(Processor::TopP { p: gen.top_p as f32, keep: min_tokens_to_keep });
            }
        }
        LogitsProcessors { list }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether the only processor is min-length: then the step's scores differ from the logits by the
    /// EOS ids [`LogitsProcessors::suppressed`] at -inf only, and an argmax / top-k that skips those ids
    /// sees exactly what [`LogitsProcessors::apply`] would leave.
    pub fn only_min_length(&self) -> bool {
        self.list.iter().all(|p| matches!(p, Processor::MinLength { .. }))
    }

    /// How many of a row's largest raw logits, beside the ids [`LogitsProcessors::touched`] names, determine what
    /// a search reads of the processed row: `Some(K)` when the row with every other id at -inf, processed, gives
    /// the search exactly what the whole row processed gives it; `None` when only whole rows do (top-p without
    /// top-k). `search`: how many of the processed row's largest the search itself reads (1 for greedy search, the
    /// candidates of beam search; `None` for sampling, which draws from every finite score).
    ///
    /// Why `K + m` raw logits and the `m` touched ids suffice: the edits (repetition penalty, no-repeat n-grams, bad
    /// words, min length, forced EOS) change only touched ids, whose values come back whatever their rank;
    /// temperature keeps the order of the rest, so the untouched ids among the processed row's top `K` are among
    /// the raw top `K + m` (at most `m` touched ids rank above them); top-k leaves -inf outside its `k`, and top-p
    /// then needs only those.
    pub fn sufficient_top(&self, search: Option<usize>) -> Option<usize> {
        let mut k = search;
        for p in &self.list {
            match p {
                Processor::TopK(n) => k = Some(k.map_or(*n, |s| s.min(*n))),
                Processor::TopP { .. } if k.is_none() => return None,
                _ => {}
            }
        }
        k
    }

    /// `Some((temperature, top_p, min_tokens_to_keep))` when the warpers are top-p, after a temperature or alone,
    /// and the processors before them are edits [`super::nucleus::NucleusStep`] replays on a row's candidates and
    /// touched ids: min-length (its EOS ids a device reduction suppresses), no-repeat n-grams, bad words, forced EOS
    /// (they set ids to -inf, or the whole row at once), and the repetition penalty (beam sampling:
    /// on the log-softmax, where it scales the device normaliser's error too, bounded in [`super::nucleus`]): the searches whose top-p cutoff may be decided from a row's top candidates, touched ids
    /// and normalisers.
    pub(crate) fn top_p_from_candidates(&self) -> Option<(f32, f32, usize)> {
        let n = self.list.len();
        let (edits, warpers) = match self.list.as_slice() {
            [.., Processor::Temperature(_), Processor::TopP { .. }] => self.list.split_at(n - 2),
            [.., Processor::TopP { .. }] => self.list.split_at(n - 1),
            _ => return None,
        };
        let replayable = edits
            .iter()
            .all(|p| matches!(p, Processor::MinLength { .. } | Processor::NoRepeatNgram(_) | Processor::BadWords { .. } | Processor::ForcedEos { .. } | Processor::Repetition(_)));
        match warpers {
            _ if !replayable => None,
            [Processor::TopP { p, keep }] => Some((1.0, *p, *keep)),
            [Processor::Temperature(t), Processor::TopP { p, keep }] => Some((*t, *p, *keep)),
            _ => None,
        }
    }

    /// The repetition penalty, if any (it scales the scores of a row's seen tokens).
    pub(crate) fn repetition_penalty(&self) -> Option<f32> {
        self.list.iter().find_map(|p| if let Processor::Repetition(x) = p { Some(*x) } else { None })
    }

    /// The processors before the warpers (temperature, top-k, top-p): those that edit some ids.
    pub(crate) fn edits_only(&self) -> LogitsProcessors {
        LogitsProcessors { list: self.list.iter().filter(|p| !matches!(p, Processor::Temperature(_) | Processor::TopK(_) | Processor::TopP { .. })).cloned().collect() }
    }

    /// Whether an edit sets every id of a row of `len` tokens at once (forced EOS at its last position): the
    /// processed row then does not depend on the logits.
    pub(crate) fn sets_whole_row(&self, len: usize) -> bool {
        self.list.iter().any(|p| matches!(p, Processor::ForcedEos { max_length, .. } if len + 1 == *max_length))
    }

    /// Per row, the ids whose score a processor may change at this step (beside min-length's, which a device
    /// reduction suppresses, and temperature / top-k / top-p, which act on every id alike): the seen tokens
    /// (repetition penalty), the banned n-gram completions, the bad words, forced EOS's ids at the last position.
    /// Sorted, distinct, each below `vocab`.
    pub fn touched(&self, seqs: &[Vec<u32>], vocab: usize) -> Vec<Vec<u32>> {
        seqs.iter()
            .map(|seq| {
                let mut ids = vec![];
                let cur_len = seq.len();
                for p in &self.list {
                    match p {
                        Processor::Repetition(_) => ids.extend_from_slice(seq),
                        Processor::NoRepeatNgram(n) if cur_len >= *n => {
                            let prefix = &seq[cur_len + 1 - n..];
                            ids.extend(seq.windows(*n).filter(|w| &w[..n - 1] == prefix).map(|w| w[n - 1]));
                        }
                        Processor::BadWords { single, multi } => {
                            ids.extend_from_slice(single);
                            ids.extend(multi.iter().filter(|w| w.len() - 1 <= cur_len && seq[cur_len + 1 - w.len()..] == w[..w.len() - 1]).map(|w| w[w.len() - 1]));
                        }
                        Processor::ForcedEos { max_length, eos } if cur_len + 1 == *max_length => ids.extend_from_slice(eos),
                        _ => {}
                    }
                }
                ids.retain(|&t| (t as usize) < vocab);
                ids.sort_unstable();
                ids.dedup();
                ids
            })
            .collect()
    }

    /// The ids the min-length processor sets to -inf for rows of `len` tokens (decoder start included).
    pub fn suppressed(&self, len: usize) -> Vec<u32> {
        let mut out = vec![];
        for p in &self.list {
            if let Processor::MinLength { min_length, eos } = p {
                if len < *min_length {
                    out.extend_from_slice(eos);
                }
            }
        }
        out
    }

    /// Apply every processor in order to `scores` (`seqs.len()` rows of `vocab`).
    pub fn apply(&self, seqs: &[Vec<u32>], scores: &mut [f32], vocab: usize) {
        assert_eq!(scores.len(), seqs.len() * vocab, "one score row per sequence");
        for p in &self.list {
            for (r, seq) in seqs.iter().enumerate() {
                apply_one(p, seq, &mut scores[r * vocab..(r + 1) * vocab]);
            }
        }
    }
}

fn apply_one(p: &Processor, seq: &[u32], row: &mut [f32]) {
    let vocab = row.len();
    let cur_len = seq.len();
    match p {
        Processor::Repetition(penalty) => {
            let mut seen: Vec<u32> = seq.iter().copied().filter(|&t| (t as usize) < vocab).collect();
            seen.sort_unstable();
            seen.dedup();
            for t in seen {
                let s = &mut row[t as usize];
                *s = if *s < 0.0 { *s * penalty } else { *s / penalty };
            }
        }
        Processor::NoRepeatNgram(n) => {
            let n = *n;
            if cur_len < n {
                return;
            }
            let prefix = &seq[cur_len + 1 - n..];
            for start in 0..=cur_len - n {
                let w = &seq[start..start + n];
                if &w[..n - 1] == prefix {
                    let t = w[n - 1] as usize;
                    if t < vocab {
                        row[t] = f32::NEG_INFINITY;
                    }
                }
            }
        }
        Processor::BadWords { single, multi } => {
            for &t in single {
                if (t as usize) < vocab {
                    row[t as usize] += f32::NEG_INFINITY;
                }
            }
            for w in multi {
                let pre = &w[..w.len() - 1];
                if pre.len() <= cur_len && &seq[cur_len - pre.len()..] == pre {
                    let t = *w.last().unwrap() as usize;
                    if t < vocab {
                        row[t] += f32::NEG_INFINITY;
                    }
                }
            }
        }
        Processor::MinLength { min_length, eos } => {
            if cur_len < *min_length {
                for &e in eos {
                    if (e as usize) < vocab {
                        row[e as usize] = f32::NEG_INFINITY;
                    }
                }
            }
        }
        Processor::ForcedEos { max_length, eos } => {
            if cur_len + 1 == *max_length {
                row.iter_mut().for_each(|s| *s = f32::NEG_INFINITY);
                for &e in eos {
                    if (e as usize) < vocab {
                        row[e as usize] = 0.0;
                    }
                }
            }
        }
        Processor::Temperature(t) => row.iter_mut().for_each(|s| *s /= t),
        Processor::TopK(k) => {
            let k = (*k).min(vocab);
            if k == 0 {
                return;
            }
            let mut sorted: Vec<f32> = row.to_vec();
            // the k-th largest value (NaN sorts last)
            let (_, kth, _) = sorted.select_nth_unstable_by(k - 1, |a, b| b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Less));
            let kth = *kth;
            row.iter_mut().for_each(|s| {
                if *s < kth {
                    *s = f32::NEG_INFINITY;
                }
            });
        }
        Processor::TopP { p, keep } => {
            // ascending sort, softmax, cumulative sum; drop where cum <= 1 - p, keep the top `keep`
            let mut idx: Vec<usize> = (0..vocab).collect();
            idx.sort_by(|&a, &b| row[a].partial_cmp(&row[b]).unwrap_or(std::cmp::Ordering::Equal));
            let max = row[idx[vocab - 1]];
            let exps: Vec<f32> = idx.iter().map(|&i| if row[i] == f32::NEG_INFINITY { 0.0 } else { (row[i] - max).exp() }).collect();
            let sum: f32 = exps.iter().sum();
            let mut cum = 0.0f32;
            let threshold = 1.0 - p;
            let mut remove = vec![false; vocab];
            for (j, e) in exps.iter().enumerate() {
                cum += e / sum;
                remove[j] = cum <= threshold;
            }
            for r in remove.iter_mut().skip(vocab.saturating_sub(*keep)) {
                *r = false;
            }
            for (j, &i) in idx.iter().enumerate() {
                if remove[j] {
                    row[i] = f32::NEG_INFINITY;
                }
            }
        }
    }
}

/// `log_softmax` of each `vocab`-long row, in place (max-subtracted; the sum in f64).
pub fn log_softmax_rows(scores: &mut [f32], vocab: usize) {
    for row in scores.chunks_mut(vocab) {
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        if max == f32::NEG_INFINITY {
            continue;
        }
        // accumulated in f64: a plain f32 sum over a 32k vocabulary loses more than torch's vectorised one
        let sum: f64 = row.iter().map(|&x| ((x - max) as f64).exp()).sum();
        let lse = max as f64 + sum.ln();
        row.iter_mut().for_each(|x| *x = (*x as f64 - lse) as f32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::T5Config;

    fn gen(json: &str) -> GenerationConfig {
        let cfg = T5Config::from_json("{}").unwrap();
        let mut g = GenerationConfig::from_model_config(&cfg);
        g.apply_json(&serde_json::from_str(json).unwrap()).unwrap();
        g
    }

    #[test]
    fn repetition_penalty_once_per_token() {
        let p = LogitsProcessors::new(&gen(r#"{"repetition_penalty": 2.0}"#), 1);
        let mut s = vec![1.0, -1.0, 4.0, 3.0];
        p.apply(&[vec![0, 1, 1, 2]], &mut s, 4);
        assert_eq!(s, vec![0.5, -2.0, 2.0, 3.0]);
    }

    #[test]
    fn no_repeat_ngram_bans_completions() {
        let p = LogitsProcessors::new(&gen(r#"{"no_repeat_ngram_size": 2}"#), 1);
        let mut s = vec![0.0; 5];
        // bigrams (0,3) (3,4) (4,3): the prefix is [3] -> 4 banned
        p.apply(&[vec![0, 3, 4, 3]], &mut s, 5);
        assert_eq!(s, vec![0.0, 0.0, 0.0, 0.0, f32::NEG_INFINITY]);
    }

    #[test]
    fn bad_words_single_and_prefix_eos_kept() {
        let p = LogitsProcessors::new(&gen(r#"{"bad_words_ids": [[2], [3, 4], [1]], "eos_token_id": 1}"#), 1);
        let mut s = vec![0.0; 5];
        p.apply(&[vec![0, 3]], &mut s, 5);
        assert_eq!(s, vec![0.0, 0.0, f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY]);
        let mut s = vec![0.0; 5];
        p.apply(&[vec![0, 4]], &mut s, 5);
        assert_eq!(s, vec![0.0, 0.0, f32::NEG_INFINITY, 0.0, 0.0]);
    }

    #[test]
    fn top_k_and_top_p() {
        let p = LogitsProcessors::new(&gen(r#"{"do_sample": true, "top_k": 2}"#), 1);
        let mut s = vec![1.0, 3.0, 2.0, 0.0];
        p.apply(&[vec![0]], &mut s, 4);
        assert_eq!(s, vec![f32::NEG_INFINITY, 3.0, 2.0, f32::NEG_INFINITY]);
        let p = LogitsProcessors::new(&gen(r#"{"do_sample": true, "top_k": 0, "top_p": 0.5}"#), 1);
        let mut s = vec![(0.1f32).ln(), (0.6f32).ln(), (0.3f32).ln()];
        p.apply(&[vec![0]], &mut s, 3);
        assert!(s[0] == f32::NEG_INFINITY && s[2] == f32::NEG_INFINITY && s[1].is_finite());
    }

    /// Rows with every id outside the raw top `K + m` and the touched ids at -inf give the same processed
    /// argmax / finite set as whole rows.
    #[test]
    fn touched_ids_and_top_k_suffice() {
        let cases = [
            (r#"{"repetition_penalty": 1.7}"#, Some(1)),
            (r#"{"repetition_penalty": 0.5}"#, Some(1)),
            (r#"{"no_repeat_ngram_size": 2, "bad_words_ids": [[4], [3, 6]]}"#, Some(1)),
            (r#"{"do_sample": true, "top_k": 3, "top_p": 0.7, "temperature": 0.5, "repetition_penalty": 1.3}"#, None),
            (r#"{"forced_eos_token_id": 1, "max_new_tokens": 4}"#, Some(2)),
        ];
        let seqs = vec![vec![0, 3, 5, 3], vec![0, 6, 6, 2]];
        let vocab = 10;
        let raw: Vec<f32> = (0..2 * vocab).map(|i| ((i * 7919) % 23) as f32 * 0.37 - 3.0).collect();
        for (json, search) in cases {
            let p = LogitsProcessors::new(&gen(json), 1);
            let k = p.sufficient_top(search).expect(json);
            let touched = p.touched(&seqs, vocab);
            let mut full = raw.clone();
            p.apply(&seqs, &mut full, vocab);
            let mut sparse = vec![f32::NEG_INFINITY; raw.len()];
            for (r, t) in touched.iter().enumerate() {
                let row = &raw[r * vocab..(r + 1) * vocab];
                let mut idx: Vec<usize> = (0..vocab).collect();
                idx.sort_by(|&a, &b| row[b].partial_cmp(&row[a]).unwrap().then(a.cmp(&b)));
                for &i in idx.iter().take(k + t.len()).chain(t.iter().map(|&i| i as usize).collect::<Vec<_>>().iter()) {
                    sparse[r * vocab + i] = row[i];
                }
            }
            p.apply(&seqs, &mut sparse, vocab);
            for r in 0..2 {
                let (f, s) = (&full[r * vocab..(r + 1) * vocab], &sparse[r * vocab..(r + 1) * vocab]);
                assert_eq!(crate::generate::argmax(f), crate::generate::argmax(s), "{json} row {r}");
                if search.is_none() {
                    assert_eq!(f, s, "{json} row {r}: the finite scores a draw sees");
                }
            }
        }
        // top-p alone needs whole rows
        assert_eq!(LogitsProcessors::new(&gen(r#"{"do_sample": true, "top_k": 0, "top_p": 0.9}"#), 1).sufficient_top(None), None);
    }

    #[test]
    fn forced_eos_at_the_last_position() {
        let p = LogitsProcessors::new(&gen(r#"{"forced_eos_token_id": 1, "max_new_tokens": 2}"#), 1);
        let mut s = vec![5.0; 3];
        p.apply(&[vec![0, 2]], &mut s, 3);
        assert_eq!(s, vec![f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY]);
        let mut s = vec![5.0; 3];
        p.apply(&[vec![0]], &mut s, 3);
        assert_eq!(s, vec![5.0; 3]);
    }
}
