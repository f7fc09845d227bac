//! Call-time memory budgets: before a call allocates, the working memory it will need (attention
//! scores, position bias, feed-forward activations, the KV caches of every beam / returned sample
//! for the longest allowed length, the logits the search reads) is estimated from the shapes and the
//! config with checked 64-bit arithmetic and compared with what the model's memory limit leaves after
//! its weights ([`crate::T5::memory_limit`]: one wasm32 memory by default, the `max_memory` load
//! option when given). Over budget → [`T5Error::InputTooLong`] (the input length alone is the
//! culprit: the error says the longest that fits) or [`T5Error::MemoryBudget`] naming the options,
//! instead of an allocation failure (a trap in wasm) halfway through the call.
//!
//! The estimates are upper bounds of the CPU backend's peak, not exact counts; they only decide
//! whether a call may start.

use crate::backend::Backend;
use crate::config::{GenerationConfig, T5Config};
use crate::error::{Result, T5Error};
use crate::model::T5;
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

/// Peak working bytes of the encoder on `[batch, seq]`: scores and probabilities `[batch, heads,
/// seq, seq]`, the position bias `[heads, 2 seq - 1]`, three activations of the widest layer.
pub fn encode_bytes(cfg: &T5Config, batch: usize, seq: usize) -> Option<u64> {
    let (b, s, h) = (batch as u64, seq as u64, cfg.num_heads as u64);
    sum(&[prod(&[2, b, h, s, s, 4]), prod(&[h, 2, s, 4]), prod(&[3, b, s, widest(cfg), 4]), prod(&[2, b, s, cfg.d_model as u64, 4])])
}

/// Peak working bytes of a decoder pass over `t` positions for `rows` rows against `seq` encoder
/// positions with `cached` positions in the self-attention cache (not counting the cache).
fn decode_step_bytes(cfg: &T5Config, rows: u64, t: u64, seq: u64, cached: u64) -> Option<u64> {
    let h = cfg.num_heads as u64;
    sum(&[
        prod(&[2, rows, h, t, cached.checked_add(t)?, 4]),
        prod(&[2, rows, h, t, seq, 4]),
        prod(&[h, t.checked_add(cached)?.checked_add(t)?, 4]),
        prod(&[3, rows, t, widest(cfg), 4]),
        // logits of the step and the search's copies of them
        prod(&[4, rows, t, cfg.vocab_size as u64, 4]),
    ])
}

/// Bytes of the cross-attention K/V of every decoder layer for `rows` rows and `seq` encoder
/// positions, plus the self-attention K/V for `len` positions (`len_factor`: 2 for the growing
/// cache, whose growth copies it, 1 for the static one).
fn cache_bytes(cfg: &T5Config, rows: u64, seq: u64, len: u64, len_factor: u64) -> Option<u64> {
    let (layers, inner) = (cfg.decoder_layers() as u64, cfg.inner_dim() as u64);
    sum(&[prod(&[layers, 2, rows, inner, seq, 4]), prod(&[layers, 2, rows, inner, len, 4, len_factor])])
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
        max => T5Error::InputTooLong { len: seq, max },
    }
}

/// Check an encoder pass on `[batch, seq]` against the model's budget.
pub fn check_encode<B: Backend>(model: &T5<B>, batch: usize, seq: usize) -> Result<()> {
    let cfg = &model.config;
    let need = encode_bytes(cfg, batch, seq);
    let Some(avail) = available(model) else {
        return need.map(|_| ()).ok_or_else(|| over("the encoder pass", None, u64::MAX, u64::MAX, "shorten the input"));
    };
    if need.is_some_and(|n| n <= avail) {
        return Ok(());
    }
    let limit = model.memory_limit().unwrap_or(u64::MAX);
    Err(too_long(&format!("the encoder pass on a [{batch}, {seq}] input"), seq, need, avail, limit, |s| encode_bytes(cfg, batch, s), "shorten the input or split the batch"))
}

/// Check a full forward (encoder on `[batch, seq]`, decoder over `dec_len` positions).
pub fn check_forward<B: Backend>(model: &T5<B>, batch: usize, seq: usize, dec_len: usize) -> Result<()> {
    let cfg = &model.config;
    let (rows, t) = (batch as u64, dec_len as u64);
    let need_at = |s: usize| sum(&[encode_bytes(cfg, batch, s), cache_bytes(cfg, rows, s as u64, t, 1), decode_step_bytes(cfg, rows, t, s as u64, 0)]);
    let need = need_at(seq);
    let what = format!("forward on a [{batch}, {seq}] input with {dec_len} decoder positions");
    match available(model) {
        None => need.map(|_| ()).ok_or_else(|| over(&what, None, u64::MAX, u64::MAX, "shorten the inputs")),
        Some(avail) if need.is_some_and(|n| n <= avail) => Ok(()),
        Some(avail) => {
            let limit = model.memory_limit().unwrap_or(u64::MAX);
            // the decoder length is the culprit when the encoder part alone fits easily
            if encode_bytes(cfg, batch, seq).is_some_and(|n| n <= avail / 2) {
                Err(over(&what, need, avail, limit, "shorten decoder_input_ids / labels or split the batch"))
            } else {
                Err(too_long(&what, seq, need, avail, limit, need_at, "shorten the inputs or split the batch"))
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

/// Peak working bytes of a generate call on `[batch, seq]` with `gen`.
pub fn generate_bytes(cfg: &T5Config, batch: usize, seq: usize, gen: &GenerationConfig) -> Option<u64> {
    let rows = (batch as u64).checked_mul(rows_per_input(gen) as u64)?;
    let len = (gen.max_new_tokens.map(|n| (n as u64).checked_add(1)).unwrap_or(Some(gen.total_max_length() as u64)))?;
    let static_cache = gen.static_cache().unwrap_or(false);
    let s = seq as u64;
    sum(&[
        encode_bytes(cfg, batch, seq),
        prod(&[rows, s, cfg.d_model as u64, 4]),
        cache_bytes(cfg, rows, s, len, if static_cache { 1 } else { 2 }),
        decode_step_bytes(cfg, rows, 1, s, len),
        // the sequences, the beam hypotheses and their scores
        prod(&[3, rows, len, 4]),
    ])
}

/// Check a generate call against the model's budget (called by `Generation::new`).
pub fn check_generate<B: Backend>(model: &T5<B>, input_batch: usize, seq: usize, gen: &GenerationConfig) -> Result<()> {
    let cfg = &model.config;
    let need = generate_bytes(cfg, input_batch, seq, gen);
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
            if generate_bytes(cfg, input_batch, 1, gen).is_some_and(|n| n <= avail) {
                Err(too_long(&what, seq, need, avail, limit, |s| generate_bytes(cfg, input_batch, s, gen), hint))
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
        let mut gen = GenerationConfig::from_model_config(&cfg);
        let one = generate_bytes(&cfg, 1, 16, &gen).unwrap();
        gen.num_beams = 4;
        let four = generate_bytes(&cfg, 1, 16, &gen).unwrap();
        assert!(four > 3 * (one / 2), "{one} {four}");
        gen.num_beams = 100_000;
        assert!(generate_bytes(&cfg, 1, 16, &gen).unwrap() > 1 << 32);
        gen.max_new_tokens = Some(usize::MAX);
        assert_eq!(generate_bytes(&cfg, 1, 16, &gen), None);
        // 12,000 tokens: the encoder's scores alone exceed a wasm32 memory
        assert!(encode_bytes(&cfg, 1, 12_000).unwrap() > 1 << 32);
        assert!(encode_bytes(&cfg, 1, 512).unwrap() < 1 << 30);
    }

    #[test]
    fn longest_fitting_is_the_boundary() {
        let need = |s: usize| Some(s as u64 * 10);
        assert_eq!(longest_fitting(1000, 500, need), 100);
        assert_eq!(longest_fitting(5, 500, need), 0);
    }
}
