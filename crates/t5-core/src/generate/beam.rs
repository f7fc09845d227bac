//! Beam search as transformers 5's vectorised `_beam_search`, step for step: log-softmax of the
//! step's logits → logits processors → plus the running beam scores → the top
//! `max(2, 1 + len(eos)) * num_beams` continuations over all beams of an input (or, with
//! `do_sample`, as many drawn without replacement) → the best `num_beams` that did not stop keep
//! running (KV cache rows reordered by beam origin) → the top `num_beams` of those that stopped
//! (EOS or `max_length`) enter the finished set with score `sum_logprobs / generated_len **
//! length_penalty` → the early-stop heuristic of `early_stopping` (true / false / "never").
//! Scores are f32 as in transformers, including its `-1e9` masking arithmetic.

use super::nucleus::{NucleusCheck, NucleusStep};
use super::processors::{log_softmax_rows, LogitsProcessors};
use super::sampling::Rng;
use super::{scatter_top_k, start, top_k_need, top_p_need, wrong_reduction, GenerateOutput, Need, Plan, Reduced, Step, MAX_DEVICE_TOP_K};
use crate::model::DecoderCache;
use crate::backend::Backend;
use crate::config::{EarlyStopping, GenerationConfig};
use crate::error::Result;
use crate::model::{Batch, T5};

const NEG: f32 = -1.0e9;

/// Indices of the `k` largest of `v`, largest first (stable: lower index first on ties).
fn top_k_indices(v: &[f32], k: usize) -> Vec<usize> {
    let k = k.min(v.len());
    let cmp = |a: &usize, b: &usize| v[*b].partial_cmp(&v[*a]).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(b));
    let mut idx: Vec<usize> = (0..v.len()).collect();
    if k < idx.len() && k > 0 {
        idx.select_nth_unstable_by(k - 1, cmp);
        idx.truncate(k);
    }
    idx.sort_by(cmp);
    idx.truncate(k);
    idx
}

pub(crate) struct BeamState<B: Backend> {
    gen: GenerationConfig,
    cache: Option<DecoderCache<B>>,
    procs: LogitsProcessors,
    plan: Plan,
    rng: Rng,
    bsz: usize,
    nb: usize,
    max_length: usize,
    keep: usize,
    fill: u32,
    running: Vec<Vec<u32>>,
    running_scores: Vec<f32>,
    fin_seqs: Vec<Vec<u32>>,
    fin_scores: Vec<f32>,
    fin_done: Vec<bool>,
    unsatisfied: Vec<bool>,
    cur_len: usize,
    current: Vec<u32>,
    best_tokens: Vec<u32>,
    index: usize,
    done: bool,
}

impl<B: Backend> BeamState<B> {
    pub(crate) fn new(model: &T5<B>, input: &Batch, gen: &GenerationConfig, device_top_k: bool) -> Result<Self> {
        let (bsz, nb) = (input.batch, gen.num_beams);
        let max_length = gen.total_max_length();
        let eos = &gen.eos_token_id;
        let start_tok = gen.decoder_start_token_id;
        let rows = bsz * nb;
        let cache = if max_length > 1 { Some(start(model, input, nb, gen, max_length - 1)?) } else { None };
        let procs = LogitsProcessors::new(gen, if gen.do_sample { 1 + eos.len().max(1) } else { 1 });
        let keep = 2usize.max(1 + eos.len()) * nb;
        // the top `keep` continuations of an input lie among each beam's own top `keep` (processed); beam
        // sampling draws among the finite scores, which top-k bounds, or top-p alone decided from each row's top
        // candidates and normaliser (`nucleus`, on the log-softmax)
        let plan = match (procs.sufficient_top(if gen.do_sample { None } else { Some(keep) }), procs.top_p_from_candidates()) {
            (Some(k), _) if device_top_k && k <= MAX_DEVICE_TOP_K => Plan::TopK(k),
            (None, Some((t, p, min_keep))) if device_top_k && gen.do_sample => Plan::TopP(NucleusCheck::after_log_softmax(t, p, min_keep, model.config.vocab_size)),
            _ => Plan::Full,
        };
        Ok(BeamState {
            cache,
            procs,
            plan,
            rng: Rng::new(gen.seed.unwrap_or(0)),
            bsz,
            nb,
            max_length,
            keep,
            // transformers: `output_fill_value = pad_token_id or eos_token_id[0]` (a pad id of 0 is falsy)
            fill: if gen.pad_token_id != 0 { gen.pad_token_id } else { eos.first().copied().unwrap_or(0) },
            running: vec![vec![start_tok]; rows],
            running_scores: (0..rows).map(|i| if i % nb == 0 { 0.0 } else { NEG }).collect(),
            fin_seqs: vec![vec![start_tok]; rows],
            fin_scores: vec![NEG; rows],
            fin_done: vec![false; rows],
            unsatisfied: vec![true; bsz],
            cur_len: 1,
            current: vec![start_tok; rows],
            best_tokens: vec![start_tok; bsz],
            index: 0,
            done: max_length <= 1,
            gen: gen.clone(),
        })
    }

    pub(crate) fn need(&mut self, model: &T5<B>) -> Result<Option<Need<B::Tensor>>> {
        if self.done {
            return Ok(None);
        }
        let cache = self.cache.as_mut().expect("a running beam search has a cache");
        let hidden = model.decode(cache, &self.current, 1, None)?;
        let logits = model.lm_logits(&hidden)?;
        Ok(Some(match self.plan {
            Plan::TopK(k) => top_k_need(logits, k, self.procs.touched(&self.running, model.config.vocab_size), self.procs.suppressed(self.cur_len)),
            Plan::TopP(check) => top_p_need(logits, check, &self.procs, &self.running, self.procs.suppressed(self.cur_len)),
            _ => Need::Full(logits),
        }))
    }

    pub(crate) fn advance(&mut self, model: &T5<B>, reduced: Reduced) -> Result<Step<'_>> {
        let be = model.backend();
        let (bsz, nb, vocab, max_length, cur_len) = (self.bsz, self.nb, model.config.vocab_size, self.max_length, self.cur_len);
        let gen = &self.gen;
        let eos = &gen.eos_token_id;
        let (lp, es) = (gen.length_penalty, gen.early_stopping);
        let logp = match (self.plan, reduced) {
            (Plan::Full | Plan::TopK(_) | Plan::TopP(_), Reduced::Full(mut logp)) => {
                log_softmax_rows(&mut logp, vocab);
                self.procs.apply(&self.running, &mut logp, vocab);
                logp
            }
            // the cutoff decided from the candidates: the processed log-softmax rows, exactly
            (Plan::TopP(check), Reduced::TopK(t)) => {
                NucleusStep::new(check, &self.procs, &self.running).decide(&t).ok_or_else(wrong_reduction)?
            }
            // log_softmax_rows' arithmetic on the values kept (the top k and the ids processors touch); the
            // rest is -inf, which the processors leave as it is or set for every id alike (forced EOS)
            (Plan::TopK(_), Reduced::TopK(t)) => {
                let mut logp = scatter_top_k(&t, vocab, |r, v| {
                    if t.max[r] == f32::NEG_INFINITY {
                        return f32::NEG_INFINITY;
                    }
                    let lse = t.max[r] as f64 + t.sum_exp[r].ln();
                    (v as f64 - lse) as f32
                });
                self.procs.apply(&self.running, &mut logp, vocab);
                logp
            }
            _ => return Err(wrong_reduction()),
        };
        let cache = self.cache.as_mut().expect("a running beam search has a cache");

        let rows = bsz * nb;
        let mut next_running = Vec::with_capacity(rows);
        let mut next_scores = Vec::with_capacity(rows);
        let mut origin = Vec::with_capacity(rows);
        let mut all_hit = true;
        for b in 0..bsz {
            // accumulated scores of every continuation of the input's beams, [nb * vocab]
            let mut acc = Vec::with_capacity(nb * vocab);
            for k in 0..nb {
                let r = b * nb + k;
                let s = self.running_scores[r];
                acc.extend(logp[r * vocab..(r + 1) * vocab].iter().map(|&x| x + s));
            }
            let top: Vec<usize> = if gen.do_sample {
                let mut drawn = self.rng.sample_without_replacement(&acc, self.keep);
                drawn.sort_by(|&a, &b| acc[b].partial_cmp(&acc[a]).unwrap_or(std::cmp::Ordering::Equal));
                drawn
            } else {
                top_k_indices(&acc, self.keep)
            };
            let cand_scores: Vec<f32> = top.iter().map(|&i| acc[i]).collect();
            let cand_beam: Vec<usize> = top.iter().map(|&i| i / vocab).collect();
            let cand_tok: Vec<u32> = top.iter().map(|&i| (i % vocab) as u32).collect();
            let hits: Vec<bool> = cand_tok.iter().map(|t| eos.contains(t) || cur_len + 1 >= max_length).collect();
            all_hit &= hits.iter().all(|&h| h);
            let running = &self.running;
            let cand_seq = |j: usize| {
                let mut s = running[b * nb + cand_beam[j]].clone();
                s.push(cand_tok[j]);
                s
            };
            // running beams for the next step: the best that did not stop
            let masked: Vec<f32> = cand_scores.iter().zip(&hits).map(|(&s, &h)| if h { s + NEG } else { s }).collect();
            for j in top_k_indices(&masked, nb) {
                next_running.push(cand_seq(j));
                next_scores.push(masked[j]);
                origin.push(b * nb + cand_beam[j]);
            }
            // finished hypotheses: the top num_beams candidates that stopped join the finished set, the best nb stay
            let denom = (cur_len as f64).powf(lp) as f32;
            let full = es == EarlyStopping::True && self.fin_done[b * nb..(b + 1) * nb].iter().all(|&d| d);
            let mut merged_scores: Vec<f32> = self.fin_scores[b * nb..(b + 1) * nb].to_vec();
            let mut just_done = Vec::with_capacity(cand_scores.len());
            for (j, &s) in cand_scores.iter().enumerate() {
                let done = hits[j] && j < nb;
                let mut f = s / denom;
                if full {
                    f += NEG;
                }
                if !self.unsatisfied[b] {
                    f += NEG;
                }
                if !done {
                    f += NEG;
                }
                merged_scores.push(f);
                just_done.push(done);
            }
            let sel = top_k_indices(&merged_scores, nb);
            let mut new: Vec<(Vec<u32>, f32, bool)> = Vec::with_capacity(nb);
            for &m in &sel {
                if m < nb {
                    new.push((self.fin_seqs[b * nb + m].clone(), merged_scores[m], self.fin_done[b * nb + m]));
                } else {
                    new.push((cand_seq(m - nb), merged_scores[m], just_done[m - nb]));
                }
            }
            for (k, (seq, score, d)) in new.into_iter().enumerate() {
                self.fin_seqs[b * nb + k] = seq;
                self.fin_scores[b * nb + k] = score;
                self.fin_done[b * nb + k] = d;
            }
        }
        self.running = next_running;
        self.running_scores = next_scores;
        cache.reorder(be, &origin);
        self.cur_len += 1;
        let cur_len = self.cur_len;
        // early-stop heuristic: can a running beam still beat the worst finished one?
        for b in 0..bsz {
            let best_len = if es == EarlyStopping::Never && lp > 0.0 { max_length - 1 } else { cur_len - 1 };
            let best_possible = self.running_scores[b * nb] / ((best_len as f64).powf(lp) as f32);
            let worst = self.fin_scores[b * nb..(b + 1) * nb].iter().cloned().fold(f32::INFINITY, f32::min);
            let improvable = (0..nb).any(|k| best_possible > if self.fin_done[b * nb + k] { worst } else { NEG });
            self.unsatisfied[b] &= improvable;
        }
        let open_beam = !(es == EarlyStopping::True && self.fin_done.iter().all(|&d| d));
        let go = self.unsatisfied.iter().any(|&u| u) && open_beam && !all_hit;
        for b in 0..bsz {
            self.best_tokens[b] = *self.running[b * nb].last().unwrap();
        }
        for (c, r) in self.current.iter_mut().zip(&self.running) {
            *c = *r.last().unwrap();
        }
        self.done = !go || cur_len >= max_length;
        let index = self.index;
        self.index += 1;
        Ok(Step { index, tokens: &self.best_tokens })
    }

    pub(crate) fn finish(self) -> GenerateOutput {
        finish(&self.fin_seqs, &self.fin_scores, self.bsz, self.nb, self.gen.num_return_sequences, self.fill)
    }
}

/// The best `nrs` finished hypotheses of each input, padded with `fill` to the longest.
fn finish(fin_seqs: &[Vec<u32>], fin_scores: &[f32], bsz: usize, nb: usize, nrs: usize, fill: u32) -> GenerateOutput {
    let mut sequences = Vec::with_capacity(bsz * nrs);
    let mut scores = Vec::with_capacity(bsz * nrs);
    for b in 0..bsz {
        for k in 0..nrs {
            sequences.push(fin_seqs[b * nb + k].clone());
            scores.push(fin_scores[b * nb + k]);
        }
    }
    let len = sequences.iter().map(Vec::len).max().unwrap_or(1);
    for s in &mut sequences {
        s.resize(len, fill);
    }
    GenerateOutput { sequences, sequences_scores: Some(scores) }
}
