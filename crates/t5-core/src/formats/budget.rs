//! Load-time memory budgets: the bytes a model will hold, from its config or a file's header alone,
//! checked against a limit before any large allocation ([`T5Error::ModelTooLarge`]).

use crate::config::T5Config;
use crate::dtype::quant::Q4_GROUP;
use crate::dtype::WeightDtype;
use crate::error::{Result, T5Error};
use crate::names::{self, Stack, Weight};
use super::store::WeightStore;

/// Bytes of an `[n, k]` weight in the storage form `dtype` gives it (see [`WeightDtype::storage_for`]).
pub fn stored_weight_bytes(name: &str, n: u64, k: u64, dtype: WeightDtype) -> u64 {
    match dtype.storage_for(name, k as usize) {
        WeightDtype::F32 => n.saturating_mul(k).saturating_mul(4),
        WeightDtype::F16 | WeightDtype::BF16 => n.saturating_mul(k).saturating_mul(2),
        WeightDtype::Q8 => n.saturating_mul(k).saturating_add(n.saturating_mul(4)),
        WeightDtype::Q4 => (n.saturating_mul(k) / 2).saturating_add(8 * (n.saturating_mul(k) / Q4_GROUP as u64)),
    }
}

/// The memory a process may use for one model, by default: one wasm32 linear memory (4 GiB) on
/// 32-bit targets, unlimited natively.
pub fn default_memory_limit() -> Option<u64> {
    if usize::BITS <= 32 {
        Some(1u64 << 32)
    } else {
        None
    }
}

/// Memory kept aside in a limit check for the engine's code, stack, tokenizer and activations.
pub const MEMORY_RESERVE: u64 = 64 << 20;

pub(super) fn gib(b: u64) -> String {
    format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
}

/// Resident bytes of a T5 with this config in storage form `dtype` (the linear weights and the
/// embedding table as `dtype` stores them, everything else f32), from the config alone: every
/// weight of the tensor-name table ([`names::model_weights`]), summed without overflow (a config
/// too large to count says `u64::MAX`).
pub fn estimate_model_bytes(cfg: &T5Config, has_decoder: bool, lm_head: bool, dtype: WeightDtype) -> u64 {
    let gated = cfg.feed_forward().map(|f| f.gated).unwrap_or(false);
    let bytes = |w: names::Weight| -> u64 {
        let shape = w.shape(cfg);
        match (w.is_linear(), shape.as_slice()) {
            (true, &[n, k]) => stored_weight_bytes(&w.hf_name(), n as u64, k as u64, dtype),
            _ => shape.iter().fold(4u64, |a, &d| a.saturating_mul(d as u64)),
        }
    };
    let sum = |ws: Vec<names::Weight>| ws.into_iter().fold(0u64, |a, w| a.saturating_add(bytes(w)));
    // block 0 holds the position bias; blocks 1.. are alike: count one and multiply (a corrupt
    // layer count costs nothing)
    let stack = |s: names::Stack, layers: usize| -> u64 {
        if layers == 0 {
            return bytes(names::Weight::FinalNorm(s));
        }
        let rest = sum(names::block_weights(s, 1, gated)).saturating_mul(layers as u64 - 1);
        sum(names::block_weights(s, 0, gated)).saturating_add(rest).saturating_add(bytes(names::Weight::FinalNorm(s)))
    };
    let mut total = bytes(names::Weight::Shared).saturating_add(stack(names::Stack::Encoder, cfg.num_layers));
    if has_decoder {
        total = total.saturating_add(stack(names::Stack::Decoder, cfg.decoder_layers()));
        if lm_head {
            total = total.saturating_add(bytes(names::Weight::LmHead));
        }
    }
    total
}

/// [`estimate_model_bytes`] against `limit`: a [`T5Error::ModelTooLarge`] naming the storage forms
/// that would fit when this one does not.
pub fn check_model_fits(cfg: &T5Config, has_decoder: bool, lm_head: bool, dtype: WeightDtype, limit: Option<u64>) -> Result<u64> {
    let need = estimate_model_bytes(cfg, has_decoder, lm_head, dtype);
    let Some(limit) = limit else { return Ok(need) };
    if need + MEMORY_RESERVE <= limit {
        return Ok(need);
    }
    let fits: Vec<String> = [WeightDtype::F16, WeightDtype::BF16, WeightDtype::Q8, WeightDtype::Q4]
        .into_iter()
        .filter(|&d| estimate_model_bytes(cfg, has_decoder, lm_head, d) + MEMORY_RESERVE <= limit)
        .map(|d| format!("{:?} ({})", d.name(), gib(estimate_model_bytes(cfg, has_decoder, lm_head, d))))
        .collect();
    let hint = if fits.is_empty() { "no storage form fits".to_string() } else { format!("load it with dtype {}", fits.join(" or ")) };
    Err(T5Error::ModelTooLarge(format!(
        "its weights take {} as {}, more than the memory limit of {} ({} kept for the engine); {hint}",
        gib(need),
        dtype.name(),
        gib(limit),
        gib(MEMORY_RESERVE)
    )))
}

/// Whether building the model from `store` fits `limit`: what the store holds (files, weights
/// converted while streaming) plus what the model built from it will hold (every weight the
/// config implies, in the requested `dtype`, GGUF blocks and pre-quantized tensors as stored) plus
/// the largest weight's f32 form while it converts, from the store's index alone. Checked before
/// the first conversion; a [`T5Error::ModelTooLarge`] otherwise. Returns the bytes needed.
/// `lm_head`: the model reads `lm_head.weight` when the store has it.
pub fn check_build_fits(store: &WeightStore, cfg: &T5Config, has_decoder: bool, lm_head: bool, dtype: WeightDtype, limit: Option<u64>) -> Result<u64> {
    let gated = cfg.feed_forward().map(|f| f.gated).unwrap_or(false);
    let find = |w: Weight| -> Option<(u64, u64)> {
        let (hf, shape) = (w.hf_name(), w.shape(cfg));
        let prefixed = format!("transformer.{hf}");
        let found = store.build_bytes(&hf, &shape, w.is_linear(), dtype).or_else(|| store.build_bytes(&prefixed, &shape, w.is_linear(), dtype));
        found
    };
    let (mut built, mut transient) = (0u64, 0u64);
    for w in names::model_weights(cfg, gated, has_decoder, lm_head) {
        let found = match w {
            Weight::Shared => find(w).or_else(|| find(Weight::EmbedTokens(Stack::Encoder))),
            _ => find(w),
        };
        // a missing weight: the load names it (and counting stops at it, whatever the layer count says)
        let Some((b, t)) = found else {
            if w == Weight::LmHead {
                continue;
            }
            break;
        };
        built = built.saturating_add(b);
        transient = transient.max(t);
    }
    let held = store.resident_bytes();
    let need = held.saturating_add(built).saturating_add(transient);
    match limit {
        Some(limit) if need.saturating_add(MEMORY_RESERVE) > limit => Err(T5Error::ModelTooLarge(format!(
            "the checkpoint's files hold {}, the model built from them takes {} more as {} (plus {} while one weight converts): more than the memory limit of {} ({} kept for the engine); {}",
            gib(held),
            gib(built),
            dtype.name(),
            gib(transient),
            gib(limit),
            gib(MEMORY_RESERVE),
            if dtype == WeightDtype::Q4 { "no storage form fits" } else { "stream the weights, or load them with a smaller dtype (\"q8\" or \"q4\")" }
        ))),
        _ => Ok(need),
    }
}
