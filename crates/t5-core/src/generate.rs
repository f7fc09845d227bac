//! Generation on top of the model: encode once, then one cached decoder step per token.
//!
//! One entry point, [`generate`], dispatches on the [`GenerationConfig`] as transformers'
//! `generate` does: greedy search (`num_beams = 1, do_sample = false`), multinomial sampling
//! (`do_sample`), beam search (`num_beams > 1`) and beam sampling (both). Logits processors
//! (repetition penalty, no-repeat n-grams, bad words, min length, forced EOS, temperature / top-k /
//! top-p) live in [`processors`], beam search in [`beam`], the sampling PRNG in [`sampling`].
//! `cache_implementation: "static"` preallocates the self-attention KV cache for the longest
//! allowed length and writes each step in place; the growing cache is the default.

pub mod beam;
pub mod nucleus;
pub mod processors;
pub mod sampling;

use crate::backend::{Backend, TopKRows};
use crate::config::GenerationConfig;
use crate::error::{Result, T5Error};
use crate::model::{Batch, DecoderCache, ModelKind, T5};
use nucleus::{NucleusCheck, NucleusStep};
use processors::LogitsProcessors;
use sampling::Rng;

/// What the step callback is told after each generated position.
pub struct Step<'a> {
    /// Index of the generated position (0 = first token after the decoder start).
    pub index: usize,
    /// Greedy / sampling: the new token of each output row (`pad_token_id` for finished rows).
    /// Beam search: the newest token of the best running beam of each input.
    pub tokens: &'a [u32],
}

/// What [`generate`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOutput {
    /// `batch * num_return_sequences` rows (the rows of one input together), each starting with
    /// the decoder start token, padded to a common length as transformers pads them (`pad_token_id`
    /// after EOS for greedy / sampling; beam search fills with `pad_token_id or eos_token_id[0]`).
    pub sequences: Vec<Vec<u32>>,
    /// Beam search: the length-penalised score of each returned sequence (transformers'
    /// `sequences_scores`).
    pub sequences_scores: Option<Vec<f32>>,
}

/// transformers' `model.generate(input_ids, attention_mask, **generation_config)` for an
/// encoder-decoder. `on_step` is called after every step; returning `false` stops generation
/// early (abort): the rows generated so far are returned (beam search: the best hypotheses so far).
pub fn generate<B: Backend>(
    model: &T5<B>,
    input: &Batch,
    gen: &GenerationConfig,
    mut on_step: impl FnMut(Step<'_>) -> bool,
) -> Result<GenerateOutput> {
    let mut g = Generation::new(model, input, gen)?;
    while let Some(step) = g.step(model)? {
        if !on_step(step) {
            break;
        }
    }
    Ok(g.finish())
}

/// Greedy decoding as transformers' `generate(do_sample=False, num_beams=1)` (see [`generate`]);
/// kept for callers that want plain id rows. Errors for beam / sampling configs.
pub fn greedy<B: Backend>(
    model: &T5<B>,
    input: &Batch,
    gen: &GenerationConfig,
    on_step: impl FnMut(Step<'_>) -> bool,
) -> Result<Vec<Vec<u32>>> {
    if gen.num_beams > 1 || gen.do_sample {
        return Err(T5Error::BadInput("greedy() is greedy search only (num_beams = 1, do_sample = false): use generate()".into()));
    }
    Ok(generate(model, input, gen, on_step)?.sequences)
}

/// A generation in progress, one decoder step per [`Generation::step`], so that a caller can
/// stream tokens and yield between steps (the wasm bindings' async iterator). [`generate`] is the
/// loop over it. Every call must pass the model the generation was started with.
///
/// A step is two halves, so that a device whose reads are asynchronous (WebGPU) can run the same
/// search: [`Generation::need`] runs the decoder and says which reduction of the step's logits the
/// search needs ([`Need`]: the argmax of each row, each row's top k, or whole rows); the caller
/// computes it where the logits live and hands it to [`Generation::advance`]. [`Generation::step`]
/// does both with the backend's blocking reads.
pub struct Generation<B: Backend> {
    inner: Inner<B>,
}

enum Inner<B: Backend> {
    Sample(SampleState<B>),
    Beam(beam::BeamState<B>),
}

/// The reduction of a step's logits `[rows, vocab]` a search asks for.
pub enum Need<T> {
    /// The argmax of each row, `suppress` excluded (greedy search; no processor but min-length).
    Argmax { logits: T, suppress: Vec<u32> },
    /// Each row's `k` largest values and log-sum-exp parts, `suppress` excluded, and the values at the ids
    /// `gather` names (`[rows, g]`, `u32::MAX` padding: the ids a logits processor may change) ([`TopKRows`]):
    /// every search whose processors leave a row's top few sufficient, on a device that reduces
    /// ([`Backend::reduces_on_device`]; see [`LogitsProcessors::sufficient_top`]).
    TopK { logits: T, k: usize, suppress: Vec<u32>, gather: Vec<u32> },
    /// Top-p sampling without top-k (after edits [`NucleusStep`] replays: min-length, repetition penalty, n-grams, bad
    /// words, forced EOS): each row's top [`NucleusStep::k`] (`suppress` excluded: min-length's EOS ids), its values at
    /// the ids `gather` names (`[rows, g]` as in [`Need::TopK`]: the ids the other edits touch) and its normalisers;
    /// when [`NucleusStep::decide`] declines them, the whole rows instead ([`Reduced::Full`], a fallback the caller
    /// may count).
    TopP { logits: T, check: NucleusStep, suppress: Vec<u32>, gather: Vec<u32> },
    /// Every logit (processors that need whole rows).
    Full(T),
}

/// A [`Need`], computed.
pub enum Reduced {
    Ids(Vec<u32>),
    TopK(TopKRows),
    Full(Vec<f32>),
}

/// Which [`Need`] a search asks for each step (fixed by the config and the backend at the start).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Plan {
    Argmax,
    /// each row's top `K + m` and its `m` touched ids ([`top_k_need`]); whole rows at a step where `K + m`
    /// exceeds [`MAX_DEVICE_TOP_K`]
    TopK(usize),
    /// top-p (after a temperature or alone, min-length before it or not) from each row's top candidates, whole rows
    /// when they do not decide
    TopP(NucleusCheck),
    Full,
}

/// The [`Need`] of a [`Plan::TopK`] step: each row's top `k + m` raw logits and the values at its touched ids
/// (`m` the most any row has), or whole rows when that is more than a device top-k is asked for.
pub(crate) fn top_k_need<T>(logits: T, k: usize, touched: Vec<Vec<u32>>, suppress: Vec<u32>) -> Need<T> {
    let g = touched.iter().map(Vec::len).max().unwrap_or(0);
    if k + g > MAX_DEVICE_TOP_K {
        return Need::Full(logits);
    }
    Need::TopK { logits, k: k + g, suppress, gather: gather_list(touched) }
}

/// The `[rows, g]` gather list of per-row touched ids (`g` the most any row has, `u32::MAX` padding).
pub(crate) fn gather_list(touched: Vec<Vec<u32>>) -> Vec<u32> {
    let g = touched.iter().map(Vec::len).max().unwrap_or(0);
    touched.into_iter().flat_map(|t| t.into_iter().chain(std::iter::repeat(u32::MAX)).take(g)).collect()
}

/// The [`Need`] of a [`Plan::TopP`] step: each row's candidates, touched ids and normalisers, decided by `check`
/// with the processors' edits replayed on them.
pub(crate) fn top_p_need<T>(logits: T, check: NucleusCheck, procs: &LogitsProcessors, seqs: &[Vec<u32>], suppress: Vec<u32>) -> Need<T> {
    let gather = gather_list(procs.touched(seqs, check.vocab()));
    Need::TopP { logits, check: NucleusStep::new(check, procs, seqs), suppress, gather }
}

/// Largest `k` a device top-k is asked for (beyond: whole rows).
pub(crate) const MAX_DEVICE_TOP_K: usize = 256;

impl<B: Backend> Generation<B> {
    /// Validate the config, encode the input and start the decoder cache (static when asked).
    pub fn new(model: &T5<B>, input: &Batch, gen: &GenerationConfig) -> Result<Self> {
        Self::with_reduction(model, input, gen, model.backend().reduces_on_device())
    }

    /// [`Generation::new`] choosing whether the logits are reduced to each row's top k before the
    /// search sees them (as on a GPU) or read whole; the search's results are the same either way
    /// (tests run both on the CPU).
    pub fn with_reduction(model: &T5<B>, input: &Batch, gen: &GenerationConfig, device_top_k: bool) -> Result<Self> {
        if model.kind != ModelKind::ConditionalGeneration {
            return Err(T5Error::BadInput("generate needs a model with an LM head (T5ForConditionalGeneration)".into()));
        }
        gen.validate(model.config.vocab_size)?;
        crate::budget::check_generate(model, input.batch, input.seq, gen)?;
        let inner = if gen.num_beams > 1 {
            Inner::Beam(beam::BeamState::new(model, input, gen, device_top_k)?)
        } else {
            Inner::Sample(SampleState::new(model, input, gen, device_top_k)?)
        };
        Ok(Generation { inner })
    }

    /// Run one decoder step; `None` once generation has finished.
    pub fn step(&mut self, model: &T5<B>) -> Result<Option<Step<'_>>> {
        let Some(need) = self.need(model)? else { return Ok(None) };
        let be = model.backend();
        let reduced = match need {
            Need::Argmax { logits, suppress } => Reduced::Ids(be.argmax_rows(&logits, &suppress)),
            Need::TopK { logits, k, suppress, gather } => Reduced::TopK(be.top_k_rows(&logits, k, &suppress, &gather)),
            Need::TopP { logits, check, suppress, gather } => {
                let t = be.top_k_rows(&logits, check.k(), &suppress, &gather);
                if check.decide(&t).is_some() { Reduced::TopK(t) } else { Reduced::Full(be.download(&logits).data) }
            }
            Need::Full(logits) => Reduced::Full(be.download(&logits).data),
        };
        self.advance(model, reduced).map(Some)
    }

    /// The first half of a step: the decoder step and what the search needs of its logits; `None`
    /// once generation has finished. Follow with [`Generation::advance`].
    pub fn need(&mut self, model: &T5<B>) -> Result<Option<Need<B::Tensor>>> {
        match &mut self.inner {
            Inner::Sample(s) => s.need(model),
            Inner::Beam(s) => s.need(model),
        }
    }

    /// The second half of a step: the search's choice from the reduced logits.
    pub fn advance(&mut self, model: &T5<B>, reduced: Reduced) -> Result<Step<'_>> {
        match &mut self.inner {
            Inner::Sample(s) => s.advance(model, reduced),
            Inner::Beam(s) => s.advance(model, reduced),
        }
    }

    /// The sequences (as far as generated when stopped early).
    pub fn finish(self) -> GenerateOutput {
        match self.inner {
            Inner::Sample(s) => GenerateOutput { sequences: s.seqs, sequences_scores: None },
            Inner::Beam(s) => s.finish(),
        }
    }
}

/// Rows `[rows, vocab]` holding the reduced values (top k and gathered) at their ids and -inf elsewhere:
/// what the processors leave of a whole row when the reduction was sufficient (see [`Need::TopK`]).
pub(crate) fn scatter_top_k(t: &TopKRows, vocab: usize, value: impl Fn(usize, f32) -> f32) -> Vec<f32> {
    let rows = t.max.len();
    let g = t.gather_width();
    let mut out = vec![f32::NEG_INFINITY; rows * vocab];
    for r in 0..rows {
        let picks = (r * t.k..(r + 1) * t.k).map(|i| (t.ids[i], t.values[i]));
        let gathered = (r * g..(r + 1) * g).map(|i| (t.gather[i], t.gathered[i]));
        for (id, v) in picks.chain(gathered) {
            if (id as usize) < vocab {
                out[r * vocab + id as usize] = value(r, v);
            }
        }
    }
    out
}

fn wrong_reduction() -> T5Error {
    T5Error::BadInput("Generation::advance was given another reduction than Generation::need asked for".into())
}

/// Encode, repeat each input row `expand` times (beams / returned samples, rows of one input
/// together) and start a decoder cache for them: static (preallocated for `capacity` positions)
/// when the config asks for it.
pub(crate) fn start<B: Backend>(model: &T5<B>, input: &Batch, expand: usize, gen: &GenerationConfig, capacity: usize) -> Result<DecoderCache<B>> {
    let be = model.backend();
    let enc = model.encode(input)?;
    let mut cache = if expand > 1 {
        let index: Vec<usize> = (0..input.batch).flat_map(|i| std::iter::repeat_n(i, expand)).collect();
        let enc = be.select_batch(&enc, &index);
        let mask: Vec<u32> = index.iter().flat_map(|&i| input.mask[i * input.seq..(i + 1) * input.seq].iter().copied()).collect();
        model.start_decoding(&enc, &mask)?
    } else {
        model.start_decoding(&enc, &input.mask)?
    };
    if gen.static_cache()? && capacity > 0 {
        cache.preallocate(be, capacity)?;
    }
    Ok(cache)
}

/// Greedy search and multinomial sampling (transformers' `_sample`): processors on the step's
/// logits, then argmax or a draw from the softmax; finished rows get `pad_token_id`; stops when
/// every row has finished or at `max_length`.
struct SampleState<B: Backend> {
    gen: GenerationConfig,
    cache: DecoderCache<B>,
    procs: LogitsProcessors,
    plan: Plan,
    rng: Rng,
    seqs: Vec<Vec<u32>>,
    finished: Vec<bool>,
    current: Vec<u32>,
    budget: usize,
    index: usize,
    done: bool,
}

impl<B: Backend> SampleState<B> {
    fn new(model: &T5<B>, input: &Batch, gen: &GenerationConfig, device_top_k: bool) -> Result<Self> {
        let nrs = if gen.do_sample { gen.num_return_sequences } else { 1 };
        let rows = input.batch * nrs;
        let budget = gen.new_tokens_budget();
        let procs = LogitsProcessors::new(gen, 1);
        let plan = if !gen.do_sample && procs.only_min_length() {
            Plan::Argmax
        } else {
            match (procs.sufficient_top(if gen.do_sample { None } else { Some(1) }), procs.top_p_from_candidates()) {
                (Some(k), _) if device_top_k && k <= MAX_DEVICE_TOP_K => Plan::TopK(k),
                (None, Some((t, p, keep))) if device_top_k && gen.do_sample => Plan::TopP(NucleusCheck::new(t, p, keep, model.config.vocab_size)),
                _ => Plan::Full,
            }
        };
        Ok(SampleState {
            cache: start(model, input, nrs, gen, budget)?,
            procs,
            plan,
            rng: Rng::new(gen.seed.unwrap_or(0)),
            seqs: vec![vec![gen.decoder_start_token_id]; rows],
            finished: vec![false; rows],
            current: vec![gen.decoder_start_token_id; rows],
            budget,
            index: 0,
            done: budget == 0,
            gen: gen.clone(),
        })
    }

    fn need(&mut self, model: &T5<B>) -> Result<Option<Need<B::Tensor>>> {
        if self.done {
            return Ok(None);
        }
        let hidden = model.decode(&mut self.cache, &self.current, 1, None)?;
        let logits = model.lm_logits(&hidden)?;
        let suppress = self.procs.suppressed(self.seqs[0].len());
        Ok(Some(match self.plan {
            Plan::Argmax => Need::Argmax { logits, suppress },
            Plan::TopK(k) => top_k_need(logits, k, self.procs.touched(&self.seqs, model.config.vocab_size), suppress),
            Plan::TopP(check) => top_p_need(logits, check, &self.procs, &self.seqs, suppress),
            Plan::Full => Need::Full(logits),
        }))
    }

    fn advance(&mut self, model: &T5<B>, reduced: Reduced) -> Result<Step<'_>> {
        let gen = &self.gen;
        let vocab = model.config.vocab_size;
        let next: Vec<u32> = match (self.plan, reduced) {
            (Plan::Argmax, Reduced::Ids(ids)) => ids,
            (Plan::TopP(check), Reduced::TopK(t)) => {
                // the cutoff decided from the candidates: the rows the processors leave, exactly
                let scores = NucleusStep::new(check, &self.procs, &self.seqs).decide(&t).ok_or_else(wrong_reduction)?;
                let rng = &mut self.rng;
                scores.chunks(vocab).map(|row| rng.sample(row) as u32).collect()
            }
            (Plan::TopK(_) | Plan::TopP(_) | Plan::Full, reduced @ (Reduced::TopK(_) | Reduced::Full(_))) => {
                let mut scores = match reduced {
                    Reduced::TopK(t) if self.plan != Plan::Full => scatter_top_k(&t, vocab, |_, v| v),
                    Reduced::Full(scores) => scores,
                    _ => return Err(wrong_reduction()),
                };
                self.procs.apply(&self.seqs, &mut scores, vocab);
                let rng = &mut self.rng;
                scores.chunks(vocab).map(|row| if gen.do_sample { rng.sample(row) as u32 } else { argmax(row) }).collect()
            }
            _ => return Err(wrong_reduction()),
        };
        for (r, &n) in next.iter().enumerate() {
            let tok = if self.finished[r] { gen.pad_token_id } else { n };
            self.seqs[r].push(tok);
            self.current[r] = tok;
            if gen.eos_token_id.contains(&tok) {
                self.finished[r] = true;
            }
        }
        let index = self.index;
        self.index += 1;
        self.done = self.index >= self.budget || self.finished.iter().all(|&f| f);
        Ok(Step { index, tokens: &self.current })
    }
}

/// Index of the first largest value (torch.argmax; NaN never wins over a number).
pub(crate) fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] || (row[best].is_nan() && !v.is_nan()) {
            best = j;
        }
    }
    best as u32
}
