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
pub mod processors;
pub mod sampling;

use crate::backend::Backend;
use crate::config::GenerationConfig;
use crate::error::{Result, T5Error};
use crate::model::{Batch, DecoderCache, ModelKind, T5};
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
pub struct Generation<B: Backend> {
    inner: Inner<B>,
}

enum Inner<B: Backend> {
    Sample(SampleState<B>),
    Beam(beam::BeamState<B>),
}

impl<B: Backend> Generation<B> {
    /// Validate the config, encode the input and start the decoder cache (static when asked).
    pub fn new(model: &T5<B>, input: &Batch, gen: &GenerationConfig) -> Result<Self> {
        if model.kind != ModelKind::ConditionalGeneration {
            return Err(T5Error::BadInput("generate needs a model with an LM head (T5ForConditionalGeneration)".into()));
        }
        gen.validate(model.config.vocab_size)?;
        let inner = if gen.num_beams > 1 { Inner::Beam(beam::BeamState::new(model, input, gen)?) } else { Inner::Sample(SampleState::new(model, input, gen)?) };
        Ok(Generation { inner })
    }

    /// Run one decoder step; `None` once generation has finished.
    pub fn step(&mut self, model: &T5<B>) -> Result<Option<Step<'_>>> {
        match &mut self.inner {
            Inner::Sample(s) => s.step(model),
            Inner::Beam(s) => s.step(model),
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
    rng: Rng,
    seqs: Vec<Vec<u32>>,
    finished: Vec<bool>,
    current: Vec<u32>,
    budget: usize,
    index: usize,
    done: bool,
}

impl<B: Backend> SampleState<B> {
    fn new(model: &T5<B>, input: &Batch, gen: &GenerationConfig) -> Result<Self> {
        let nrs = if gen.do_sample { gen.num_return_sequences } else { 1 };
        let rows = input.batch * nrs;
        let budget = gen.new_tokens_budget();
        Ok(SampleState {
            cache: start(model, input, nrs, gen, budget)?,
            procs: LogitsProcessors::new(gen, 1),
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

    fn step(&mut self, model: &T5<B>) -> Result<Option<Step<'_>>> {
        if self.done {
            return Ok(None);
        }
        let (be, gen) = (model.backend(), &self.gen);
        let vocab = model.config.vocab_size;
        let hidden = model.decode(&mut self.cache, &self.current, 1, None)?;
        let logits = model.lm_logits(&hidden)?;
        let next: Vec<u32> = if self.procs.is_empty() && !gen.do_sample {
            be.argmax_rows(&logits)
        } else {
            let mut scores = be.download(&logits).data;
            self.procs.apply(&self.seqs, &mut scores, vocab);
            let rng = &mut self.rng;
            scores.chunks(vocab).map(|row| if gen.do_sample { rng.sample(row) as u32 } else { argmax(row) }).collect()
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
        Ok(Some(Step { index, tokens: &self.current }))
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
