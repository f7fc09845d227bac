//! Load-time checks of `config.json`: typed errors naming the file and the field, and the values
//! transformers would only fail on at forward time (relative-position settings that give negative
//! bucket indices, zero sizes, sizes whose products overflow) rejected before any weight is read.
//! Both loaders call these: the Hub files ([`super::T5Config::from_json`]) and GGUF, whose config is
//! built from its metadata as JSON and parsed through the same entry point.

use super::T5Config;
use crate::error::{Result, T5Error};
use serde_json::Value;

/// Largest element count of one weight accepted (2^40 f32 = 4 TiB): far beyond any T5, small enough
/// that every size sum over a whole model stays inside u64.
pub const MAX_TENSOR_ELEMENTS: u64 = 1 << 40;
/// Largest layer count of one stack accepted (T5-XXL has 24).
pub const MAX_LAYERS: usize = 1 << 16;

/// What a field of [`T5Config`] must hold, as said in an error.
fn expected(field: &str) -> &'static str {
    match field {
        "vocab_size" | "d_model" | "d_kv" | "d_ff" | "num_layers" | "num_heads" | "relative_attention_num_buckets"
        | "relative_attention_max_distance" => "a positive integer",
        "num_decoder_layers" | "num_labels" | "n_positions" => "a positive integer or null",
        "dropout_rate" | "layer_norm_epsilon" | "initializer_factor" => "a number",
        "classifier_dropout" => "a number or null",
        "feed_forward_proj" => "a string such as \"relu\" or \"gated-gelu\"",
        "model_type" | "problem_type" => "a string or null",
        "tie_word_embeddings" | "is_encoder_decoder" | "use_cache" => "true or false",
        "scale_decoder_outputs" => "true, false or null",
        "decoder_start_token_id" | "pad_token_id" => "a token id (an integer below 2^32) or null",
        "eos_token_id" => "a token id, a list of token ids or null",
        "architectures" => "a list of strings or null",
        _ => "another value",
    }
}

/// `"sixty-four"`, `-1`, `[1,2]`: the offending value, cut short.
pub(crate) fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 48 {
        format!("{}…", s.chars().take(48).collect::<String>())
    } else {
        s
    }
}

/// The JSON type of a value, for "expected an object, got an array".
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parse a config from JSON text read from `file`.
pub(super) fn parse(text: &str, file: &str) -> Result<T5Config> {
    let v: Value = serde_json::from_str(text).map_err(|e| T5Error::BadConfig(format!("{file}: not valid JSON: {e}")))?;
    from_value(&v, file)
}

/// A config from a parsed JSON value: field by field type errors, then [`validate`].
pub(super) fn from_value(v: &Value, file: &str) -> Result<T5Config> {
    let obj = v.as_object().ok_or_else(|| T5Error::BadConfig(format!("{file}: expected a JSON object, got {}", type_name(v))))?;
    let cfg = match serde_json::from_value::<T5Config>(v.clone()) {
        Ok(cfg) => cfg,
        Err(whole) => {
            // find the field: each key alone over the defaults
            for (k, val) in obj {
                let one = Value::Object([(k.clone(), val.clone())].into_iter().collect());
                if serde_json::from_value::<T5Config>(one).is_err() {
                    return Err(T5Error::BadConfig(format!("{file}: {k}: expected {}, got {}", expected(k), show(val))));
                }
            }
            return Err(T5Error::BadConfig(format!("{file}: {whole}")));
        }
    };
    validate(&cfg, file)?;
    Ok(cfg)
}

/// Token ids of `eos_token_id`: an id, a list of ids or null; anything else is an error.
pub(crate) fn eos_ids(v: Option<&Value>, file: &str) -> Result<Vec<u32>> {
    let id = |x: &Value| x.as_u64().filter(|&n| n <= u32::MAX as u64).map(|n| n as u32);
    let bad = || T5Error::BadConfig(format!("{file}: eos_token_id: expected {}, got {}", expected("eos_token_id"), show(v.unwrap_or(&Value::Null))));
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => a.iter().map(id).collect::<Option<Vec<u32>>>().ok_or_else(bad),
        Some(x) => id(x).map(|t| vec![t]).ok_or_else(bad),
    }
}

/// Every check of a parsed config, each error naming `file` and the field.
pub fn validate(cfg: &T5Config, file: &str) -> Result<()> {
    let bad = |field: &str, msg: String| Err(T5Error::BadConfig(format!("{file}: {field}: {msg}")));
    cfg.feed_forward()?;
    let mut sizes = vec![
        ("vocab_size", cfg.vocab_size),
        ("d_model", cfg.d_model),
        ("d_kv", cfg.d_kv),
        ("d_ff", cfg.d_ff),
        ("num_layers", cfg.num_layers),
        ("num_heads", cfg.num_heads),
        ("relative_attention_num_buckets", cfg.relative_attention_num_buckets),
        ("relative_attention_max_distance", cfg.relative_attention_max_distance),
    ];
    if let Some(n) = cfg.num_decoder_layers {
        sizes.push(("num_decoder_layers", n));
    }
    for (name, v) in sizes {
        if v == 0 {
            return bad(name, "must be positive, got 0".into());
        }
        if v as u64 > u32::MAX as u64 {
            return bad(name, format!("{v} is larger than any model this engine can hold"));
        }
    }
    for (name, v) in [("num_layers", cfg.num_layers), ("num_decoder_layers", cfg.decoder_layers())] {
        if v > MAX_LAYERS {
            return bad(name, format!("{v} layers is more than the {MAX_LAYERS} this engine accepts"));
        }
    }
    // transformers' _relative_position_bucket: the encoder halves the buckets per direction, and
    // both halves put the first num_buckets/2 (decoder) or num_buckets/4 (encoder) distances in
    // exact buckets and the rest on a log scale up to max_distance; log(max_distance / max_exact)
    // must be positive or the bucket index goes negative (an out-of-bounds read at forward time).
    let nb = cfg.relative_attention_num_buckets;
    if nb < 4 {
        return bad(
            "relative_attention_num_buckets",
            format!("{nb} is too few: the encoder's bidirectional buckets need at least 4 (2 per direction, 1 of them exact)"),
        );
    }
    let max_exact = nb / 2;
    if cfg.relative_attention_max_distance <= max_exact {
        return bad(
            "relative_attention_max_distance",
            format!(
                "{} must be larger than relative_attention_num_buckets / 2 = {max_exact} (the distances bucketed exactly); smaller values give negative bucket indices",
                cfg.relative_attention_max_distance
            ),
        );
    }
    if !(cfg.layer_norm_epsilon >= 0.0 && cfg.layer_norm_epsilon.is_finite()) {
        return bad("layer_norm_epsilon", format!("must be a finite number >= 0, got {}", cfg.layer_norm_epsilon));
    }
    // every weight's element count, checked: the size arithmetic of the memory budget relies on it
    let (d, vocab, ff) = (cfg.d_model as u64, cfg.vocab_size as u64, cfg.d_ff as u64);
    let inner = (cfg.num_heads as u64).checked_mul(cfg.d_kv as u64);
    let products = [
        ("vocab_size × d_model", vocab.checked_mul(d)),
        ("num_heads × d_kv", inner),
        ("num_heads × d_kv × d_model", inner.and_then(|i| i.checked_mul(d))),
        ("d_ff × d_model", ff.checked_mul(d)),
        ("relative_attention_num_buckets × num_heads", (nb as u64).checked_mul(cfg.num_heads as u64)),
    ];
    for (what, n) in products {
        match n {
            Some(n) if n <= MAX_TENSOR_ELEMENTS => {}
            _ => return bad(what, format!("a weight of this size would exceed {MAX_TENSOR_ELEMENTS} elements")),
        }
    }
    let eos = eos_ids(cfg.eos_token_id.as_ref(), file)?;
    let ids = [("decoder_start_token_id", cfg.decoder_start_token_id), ("pad_token_id", cfg.pad_token_id)];
    for (name, id) in ids.into_iter().chain(eos.iter().map(|&t| ("eos_token_id", Some(t)))) {
        if let Some(id) = id {
            if id as usize >= cfg.vocab_size {
                return bad(name, format!("token id {id} is outside the vocabulary of {}", cfg.vocab_size));
            }
        }
    }
    Ok(())
}
