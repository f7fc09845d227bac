//! Call-time memory budgets: before a call allocates, the working memory it will need (attention
//! scores, position bias, feed-forward activations, the KV caches of every beam / returned sample
//! for the longest allowed length, the logits the search reads) is estimated from the shapes and the
//! config with checked 64-bit arithmetic and compared with what the model's memory limit leaves after
//! its weights ([`crate::T5::memory_limit`]: one wasm32 memory by default, the `max_memory` load
//! option when given). Over budget → [`T5Error::InputTooLong`] (the input length alone is the
//! culprit: the error says the longest that fits) or [`T5Error::MemoryBudget`] naming the options,
//! instead of an allocation failure (a trap in wasm) halfway through the call.
//!
//! The estimates are upper bounds of a call's peak in host memory, not exact counts; they only
//! decide whether a call may start. Attention scores count as `[batch, heads, q_len, kv_len]` only on a
//! backend that holds them at once ([`Backend::attention_holds_scores`]); the CPU's attention holds a
//! block of them per task, so there long inputs cost memory in proportion to their length. The host
//! copies that `output_hidden_states` / `output_attentions` return are counted when asked for.

use crate::backend::Backend;
use crate::config::{GenerationConfig, T5Config};
use crate::error::{Result, T5Error};
use crate::model::{OutputFlags, T5};
use crate::formats::MEMORY_RESERVE;

/// `a × b × ...` checked; `None` on overflow.
fn prod(xs: &[u64]) -> Option<u64> {
    xs.iter().try_fold(1u64, |acc, &x| acc.checked_mul(x))
}

fn sum(xs: &[Option<u64>]) -> Option<u64> {
    xs.iter().try_fold(0u64, |acc, &x| acc.checked_add(x?))
}

fn gib(b: u64) -> String {
    format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
}

/// Widest per-position activation of a block (f32 values): the fused QKV projection, the
/// feed-forward's inner layer (twice when gated), the model width.
fn widest(cfg: &T5Config) -> u64 {
    let gated = cfg.feed_forward().map(|f| f.gated).unwrap_or(true);
    let ff = cfg.d_ff as u64 * if gated { 2 } else { 1 };
    ff.max(3 * cfg.inner_dim() as u64).max(cfg.d_model as u64)
}

/// A forward's decoder pass, per batch row: `positions` new positions after `past` cached ones, and
/// the width of its logits (the vocabulary for the LM head, 0 for heads whose outputs are small).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderPass {
    pub positions: usize,
    pub past: usize,
    pub logits: usize,
}

/// The working-memory estimates of one model's calls: its config, and whether its backend's
/// attention holds every score of a call at once ([`Backend::attention_holds_scores`]: a GPU
/// kernel does; the CPU's blocked attention holds a block per task).
#[derive(Clone, Copy)]
pub struct Estimate<'a> {
    pub cfg: &'a T5Config,
    pub holds_scores: bool,
}

impl<'a> Estimate<'a> {
    pub fn of<B: Backend>(model: &'a T5<B>) -> Estimate<'a> {
        Estimate { cfg: &model.config, holds_scores: model.backend().attention_holds_scores() }
    }

    /// One attention call over `rows` rows of `q` queries and `kv` keys: the scores and
    /// probabilities `[rows, heads, q, kv]` where the backend holds them, else a row of scores and
    /// (several queries) a gathered head of values per (row, head) task, `[rows, heads, kv, d_kv +
    /// 1]` (every task at once: an upper bound at any number of threads).
    fn attention(&self, rows: u64, q: u64, kv: u64) -> Option<u64> {
        let h = self.cfg.num_heads as u64;
        if self.holds_scores {
            prod(&[2, rows, h, q, kv, 4])
        } else {
            // one query (a decode step) reads the values where they are
            prod(&[rows, h, kv, if q > 1 { self.cfg.d_kv as u64 + 1 } else { 1 }, 4])
        }
    }

    /// Peak working bytes of the encoder on `[batch, seq]`: its attention, the position bias
    /// `[heads, 2 seq - 1]`, three activations of the widest layer and two of the model width.
    pub fn encode(&self, batch: usize, seq: usize) -> Option<u64> {
        let (b, s, h) = (batch as u64, seq as u64, self.cfg.num_heads as u64);
        sum(&[self.attention(b, s, s), prod(&[h, 2, s, 4]), prod(&[3, b, s, widest(self.cfg), 4]), prod(&[2, b, s, self.cfg.d_model as u64, 4])])
    }

    /// Peak working bytes of a decoder pass over `t` positions for `rows` rows against `seq` encoder
    /// positions with `cached` positions in the self-attention cache (not counting the cache), its
    /// logits `logits` wide.
    fn decode_step(&self, rows: u64, t: u64, seq: u64, cached: u64, logits: u64) -> Option<u64> {
        let h = self.cfg.num_heads as u64;
        sum(&[
            self.attention(rows, t, cached.checked_add(t)?),
            self.attention(rows, t, seq),
            prod(&[h, t.checked_add(cached)?.checked_add(t)?, 4]),
            prod(&[3, rows, t, widest(self.cfg), 4]),
            // the logits, their host copy and the loss's / search's copies of them
            prod(&[4, rows, t, logits, 4]),
        ])
    }

    /// Bytes of the cross-attention K/V of every decoder layer for `rows` rows and `seq` encoder
    /// positions, plus the self-attention K/V for `len` positions (`len_factor`: 2 for the growing
    /// cache, whose growth copies it, 1 for the static one).
    fn cache(&self, rows: u64, seq: u64, len: u64, len_factor: u64) -> Option<u64> {
        let (layers, inner) = (self.cfg.decoder_layers() as u64, self.cfg.inner_dim() as u64);
        sum(&[prod(&[layers, 2, rows, inner, seq, 4]), prod(&[layers, 2, rows, inner, len, 4, len_factor])])
    }

    /// The host tensors that `output_hidden_states` / `output_attentions` record: per encoder block
    /// (when the encoder runs on `[batch, seq]`) `[batch, seq, d_model]` and `[batch, heads, seq,
    /// seq]`, per decoder block `[batch, t, d_model]`, `[batch, heads, t, past + t]` and `[batch,
    /// heads, t, seq]`; one more hidden state per stack (its output).
    fn recorded(&self, flags: OutputFlags, batch: usize, seq: usize, encoder: bool, decoder: Option<DecoderPass>) -> Option<u64> {
        let cfg = self.cfg;
        let (b, s, h, d) = (batch as u64, seq as u64, cfg.num_heads as u64, cfg.d_model as u64);
        let mut parts = Vec::new();
        if encoder {
            let l = cfg.num_layers as u64;
            parts.push(if flags.hidden_states { prod(&[l + 1, b, s, d, 4]) } else { Some(0) });
            parts.push(if flags.attentions { prod(&[l, b, h, s, s, 4]) } else { Some(0) });
        }
        if let Some(p) = decoder {
            let (l, t) = (cfg.decoder_layers() as u64, p.positions as u64);
            let keys = (p.past as u64).checked_add(t).and_then(|k| k.checked_add(s));
            parts.push(if flags.hidden_states { prod(&[l + 1, b, t, d, 4]) } else { Some(0) });
            parts.push(if flags.attentions { keys.and_then(|k| prod(&[l, b, h, t, k, 4])) } else { Some(0) });
        }
        sum(&parts)
    }

    /// Peak working bytes of a forward pass ([`crate::heads::forward_device`], [`T5::forward`]): the
    /// encoder on `[batch, seq]` when it runs, the decoder pass (its caches, its step, its logits)
    /// when there is one, and what `flags` record.
    pub fn forward(&self, batch: usize, seq: usize, encoder: bool, decoder: Option<DecoderPass>, flags: OutputFlags) -> Option<u64> {
        let (b, s) = (batch as u64, seq as u64);
        let enc = if encoder { self.encode(batch, seq) } else { Some(0) };
        let dec = match decoder {
            Some(p) => {
                let (t, past) = (p.positions as u64, p.past as u64);
                sum(&[self.cache(b, s, past.checked_add(t)?, 1), self.decode_step(b, t, s, past, p.logits as u64)])
            }
            None => Some(0),
        };
        sum(&[enc, dec, self.recorded(flags, batch, seq, encoder, decoder)])
    }

    /// Peak working bytes of a generate call on `[batch, seq]` with `gen`.
    pub fn generate(&self, batch: usize, seq: usize, gen: &GenerationConfig) -> Option<u64> {
        let cfg = self.cfg;
        let rows = (batch as u64).checked_mul(rows_per_input(gen) as u64)?;
        let len = (gen.max_new_tokens.map(|n| (n as u64).checked_add(1)).unwrap_or(Some(gen.total_max_length() as u64)))?;
        let static_cache = gen.static_cache().unwrap_or(false);
        let s = seq as u64;
        sum(&[
            self.encode(batch, seq),
            prod(&[rows, s, cfg.d_model as u64, 4]),
            self.cache(rows, s, len, if static_cache { 1 } else { 2 }),
            self.decode_step(rows, 1, s, len, cfg.vocab_size as u64),
            // the sequences, the beam hypotheses and their scores
            prod(&[3, rows, len, 4]),
        ])
    }
}

/// What the memory limit leaves for a call's working memory, or `None` when there is no limit.
fn available<B: Backend>(model: &T5<B>) -> Option<u64> {
    model.memory_limit().map(|limit| limit.saturating_sub(model.weight_bytes() as u64).saturating_sub(model.prefill_layout_bytes() as u64).saturating_sub(MEMORY_RESERVE))
}

fn over(what: &str, need: Option<u64>, avail: u64, model_limit: u64, hint: &str) -> T5Error {
    let need = need.map(gib).unwrap_or_else(|| "more than 2^64 bytes".into());
    T5Error::MemoryBudget(format!(
        "{what} needs {need} of working memory, more than the {} the memory limit of {} leaves after the weights and a {} reserve; {hint}",
        gib(avail),
        gib(model_limit),
        gib(MEMORY_RESERVE)
    ))
}

/// The longest input (batch kept) whose `need(seq)` fits in `avail`, 0 if none.
fn longest_fitting(avail: u64, seq: usize, need: impl Fn(usize) -> Option<u64>) -> usize {
    let (mut lo, mut hi) = (0usize, seq); // need(lo) fits (or lo == 0), need(hi) does not
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if need(mid).is_some_and(|n| n <= avail) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// An over-budget error for a call whose size grows with the input length `seq`: `InputTooLong`
/// naming the longest input that fits when a shorter one does, else a `MemoryBudget` error.
fn too_long(what: &str, seq: usize, need: Option<u64>, avail: u64, limit: u64, need_at: impl Fn(usize) -> Option<u64>, hint: &str) -> T5Error {
    match longest_fitting(avail, seq, need_at) {
        0 => over(what, need, avail, limit, hint),
        max => T5Error::InputTooLong { len: seq, max, why: format!(" that the memory budget allows for this call ({what}; {hint})") },
    }
}

/// Check an encoder pass on `[batch, seq]` against the model's budget.
pub fn check_encode<B: Backend>(model: &T5<B>, batch: usize, seq: usize) -> Result<()> {
    let est = Estimate::of(model);
    let need = est.encode(batch, seq);
    let Some(avail) = available(model) else {
        return need.map(|_| ()).ok_or_else(|| over("the encoder pass", None, u64::MAX, u64::MAX, "shorten the input"));
    };
    if need.is_some_and(|n| n <= avail) {
        return Ok(());
    }
    let limit = model.memory_limit().unwrap_or(u64::MAX);
    Err(too_long(&format!("the encoder pass on a [{batch}, {seq}] input"), seq, need, avail, limit, |s| est.encode(batch, s), "shorten the input or split the batch"))
}

/// Check a forward pass (the encoder on `[batch, seq]` when `encoder`, the `decoder` pass, the
/// outputs `flags` record) against the model's budget: over it, [`T5Error::InputTooLong`] when the
/// same call on a shorter input fits, else [`T5Error::MemoryBudget`] naming what to change.
pub fn check_forward<B: Backend>(model: &T5<B>, batch: usize, seq: usize, encoder: bool, decoder: Option<DecoderPass>, flags: OutputFlags) -> Result<()> {
    let est = Estimate::of(model);
    let need_at = |s: usize| est.forward(batch, s, encoder, decoder, flags);
    let need = need_at(seq);
    let dec = match decoder {
        Some(DecoderPass { positions, past: 0, .. }) => format!(" with {positions} decoder positions"),
        Some(DecoderPass { positions, past, .. }) => format!(" with {positions} decoder positions after {past} cached"),
        None => String::new(),
    };
    let recorded = [(flags.hidden_states, "output_hidden_states"), (flags.attentions, "output_attentions")].into_iter().filter(|f| f.0).map(|f| f.1).collect::<Vec<_>>().join(" and ");
    let what = format!("forward on a [{batch}, {seq}] input{dec}{}", if recorded.is_empty() { String::new() } else { format!(" recording {recorded}") });
    let hint = format!(
        "shorten the input{} or split the batch{}",
        if decoder.is_some() { " or decoder_input_ids / labels" } else { "" },
        if recorded.is_empty() { String::new() } else { format!(", or leave out {recorded}") }
    );
    match available(model) {
        None => need.map(|_| ()).ok_or_else(|| over(&what, None, u64::MAX, u64::MAX, &hint)),
        Some(avail) if need.is_some_and(|n| n <= avail) => Ok(()),
        Some(avail) => {
            let limit = model.memory_limit().unwrap_or(u64::MAX);
            // the input length is the culprit when the same call on a 1-token input fits
            if need_at(1).is_some_and(|n| n <= avail) {
                Err(too_long(&what, seq, need, avail, limit, need_at, &hint))
            } else {
                Err(over(&what, need, avail, limit, &hint))
            }
        }
    }
}

/// Rows the decoder runs for one input: beams, returned samples, or one.
pub fn rows_per_input(gen: &GenerationConfig) -> usize {
    if gen.num_beams > 1 {
        gen.num_beams
    } else if gen.do_sample {
        gen.num_return_sequences
    } else {
        1
    }
}

/// Check a generate call against the model's budget (called by `Generation::new`).
pub fn check_generate<B: Backend>(model: &T5<B>, input_batch: usize, seq: usize, gen: &GenerationConfig) -> Result<()> {
    let est = Estimate::of(model);
    let need = est.generate(input_batch, seq, gen);
    let rows = rows_per_input(gen);
    let what = format!(
        "generate on a [{input_batch}, {seq}] input with {rows} row{} per input and up to {} decoder positions{}",
        if rows == 1 { "" } else { "s" },
        gen.total_max_length(),
        if gen.static_cache().unwrap_or(false) { " (static cache)" } else { "" }
    );
    let hint = "lower num_beams / num_return_sequences / max_new_tokens, shorten the input or split the batch";
    match available(model) {
        None => need.map(|_| ()).ok_or_else(|| over(&what, None, u64::MAX, u64::MAX, hint)),
        Some(avail) if need.is_some_and(|n| n <= avail) => Ok(()),
        Some(avail) => {
            let limit = model.memory_limit().unwrap_or(u64::MAX);
            // the input length is the culprit when the same call on a 1-token input fits
            if est.generate(input_batch, 1, gen).is_some_and(|n| n <= avail) {
                Err(too_long(&what, seq, need, avail, limit, |s| est.generate(input_batch, s, gen), hint))
            } else {
                Err(over(&what, need, avail, limit, hint))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> T5Config {
        T5Config::from_json(r#"{"vocab_size": 32128, "d_model": 512, "d_kv": 64, "d_ff": 2048, "num_layers": 6, "num_heads": 8}"#).unwrap()
    }

    #[test]
    fn estimates_grow_with_the_call_and_overflow_to_none() {
        let cfg = small();
        let est = Estimate { cfg: &cfg, holds_scores: true };
        let mut gen = GenerationConfig::from_model_config(&cfg);
        let one = est.generate(1, 16, &gen).unwrap();
        gen.num_beams = 4;
        let four = est.generate(1, 16, &gen).unwrap();
        assert!(four > 3 * (one / 2), "{one} {four}");
        gen.num_beams = 100_000;
        assert!(est.generate(1, 16, &gen).unwrap() > 1 << 32);
        gen.max_new_tokens = Some(usize::MAX);
        assert_eq!(est.generate(1, 16, &gen), None);
        // 12,000 tokens: the encoder's scores alone exceed a wasm32 memory
        assert!(est.encode(1, 12_000).unwrap() > 1 << 32);
        assert!(est.encode(1, 512).unwrap() < 1 << 30);
    }

    #[test]
    fn scores_count_only_where_the_backend_holds_them() {
        let cfg = small();
        let (gpu, cpu) = (Estimate { cfg: &cfg, holds_scores: true }, Estimate { cfg: &cfg, holds_scores: false });
        // the scores grow with the square of the input where they are held, the rest linearly
        let (g1, g2) = (gpu.encode(1, 4096).unwrap(), gpu.encode(1, 8192).unwrap());
        let (c1, c2) = (cpu.encode(1, 4096).unwrap(), cpu.encode(1, 8192).unwrap());
        assert!(g2 > 3 * g1 && g1 > 1 << 30, "{g1} {g2}");
        assert_eq!(c2, 2 * c1);
        assert!(c2 < 1 << 30, "{c2}");
        // [8 heads, 4096 keys, d_kv + 1] floats of working rows, not [8, 4096, 4096] scores twice
        assert_eq!(g1 - c1, 2 * 8 * 4096 * 4096 * 4 - 8 * 4096 * 65 * 4);
        // a decode step against a long input: a row of scores per head (the GPU: scores and probabilities)
        let pass = Some(DecoderPass { positions: 1, past: 0, logits: 32128 });
        let (g, c) = (gpu.forward(1, 8192, false, pass, OutputFlags::default()).unwrap(), cpu.forward(1, 8192, false, pass, OutputFlags::default()).unwrap());
        assert_eq!(g - c, 8 * (1 + 8192) * 4);
    }

    #[test]
    fn recorded_outputs_and_decoder_positions_count() {
        let cfg = small();
        let est = Estimate { cfg: &cfg, holds_scores: false };
        let none = OutputFlags::default();
        let att = OutputFlags { attentions: true, ..none };
        let hid = OutputFlags { hidden_states: true, ..none };
        let pass = Some(DecoderPass { positions: 10, past: 5, logits: 32128 });
        let base = est.forward(2, 100, true, pass, none).unwrap();
        // every block's probabilities: 6 encoder [2, 8, 100, 100], 6 decoder [2, 8, 10, 5 + 10 + 100]
        assert_eq!(est.forward(2, 100, true, pass, att).unwrap() - base, (6 * 2 * 8 * 100 * 100 + 6 * 2 * 8 * 10 * 115) * 4);
        // 7 hidden states per stack: [2, 100, 512] and [2, 10, 512]
        assert_eq!(est.forward(2, 100, true, pass, hid).unwrap() - base, (7 * 2 * 100 * 512 + 7 * 2 * 10 * 512) * 4);
        // no encoder run (encoder_outputs given): nothing of it recorded or counted
        assert_eq!(est.forward(2, 100, false, pass, att).unwrap() - est.forward(2, 100, false, pass, none).unwrap(), 6 * 2 * 8 * 10 * 115 * 4);
        // the LM logits grow with the decoder positions: [2, 40,000, 32128] alone is over 10 GB
        let long = Some(DecoderPass { positions: 40_000, past: 0, logits: 32128 });
        assert!(est.forward(2, 4, true, long, none).unwrap() > 10 << 30);
        // a head without LM logits does not pay for them
        let (lm, head) = (DecoderPass { positions: 4000, past: 0, logits: 32128 }, DecoderPass { positions: 4000, past: 0, logits: 0 });
        assert_eq!(est.forward(2, 4, true, Some(lm), none).unwrap() - est.forward(2, 4, true, Some(head), none).unwrap(), 4 * 2 * 4000 * 32128 * 4);
        assert_eq!(est.forward(1, usize::MAX / 2, true, pass, att), None);
    }

    #[test]
    fn longest_fitting_is_the_boundary() {
        let need = |s: usize| Some(s as u64 * 10);
        assert_eq!(longest_fitting(1000, 500, need), 100);
        assert_eq!(longest_fitting(5, 500, need), 0);
    }
}
