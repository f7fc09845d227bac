//! The generation options of `generate` / `startGeneration`, one typed struct shared by the CPU ([`crate::WasmModel`])
//! and WebGPU (`WasmGpuModel`) bindings. The facade hands the options over as a JS object (serde-wasm-bindgen, so NaN
//! and Infinity arrive as themselves, not as JSON's `null`); unknown keys, wrong types, NaN / Infinity, negative or
//! non-integer counts are `BadConfig` errors naming the option. The facade's `GenerateOptions` type is checked against
//! [`generate_option_names`] in a test, so the two lists cannot drift.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use t5_core::config::{EarlyStopping, GenerationConfig};
use t5_core::T5Error;
use wasm_bindgen::prelude::*;

use crate::{js_err, JsResult};

/// transformers' generation options (over the model's generation config), as the facade passes them. Every field is
/// optional; absent (or `undefined` / `null`) leaves the model's generation config as it is.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateOptions {
    pub max_new_tokens: Option<f64>,
    pub max_length: Option<f64>,
    pub min_new_tokens: Option<f64>,
    pub min_length: Option<f64>,
    pub eos_token_id: Option<OneOrMany>,
    pub pad_token_id: Option<f64>,
    pub decoder_start_token_id: Option<f64>,
    pub num_beams: Option<f64>,
    pub do_sample: Option<bool>,
    pub num_return_sequences: Option<f64>,
    pub length_penalty: Option<f64>,
    pub early_stopping: Option<EarlyStoppingOpt>,
    pub temperature: Option<f64>,
    pub top_k: Option<f64>,
    pub top_p: Option<f64>,
    pub repetition_penalty: Option<f64>,
    pub no_repeat_ngram_size: Option<f64>,
    /// A list of lists of token ids; an id where a list belongs is a typed error that says so.
    pub bad_words_ids: Option<IdLists>,
    pub forced_eos_token_id: Option<OneOrMany>,
    pub cache_implementation: Option<String>,
    pub seed: Option<f64>,
}

/// A token id or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "must be a token id or a list of token ids")]
pub enum OneOrMany {
    One(f64),
    Many(Vec<f64>),
}

/// `bad_words_ids`: a list whose rows are lists of token ids. Read as any value first (untagged), so a number or a
/// string here is this type's error, not serde-wasm-bindgen's iteration of a value that is not a list (whose JS
/// `TypeError` would be the message); a row that is one id is kept to be named in [`GenerateOptions::apply`].
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "must be a list of lists of token ids")]
pub enum IdLists {
    Rows(Vec<OneOrMany>),
}

/// `early_stopping`: `true`, `false` or `"never"`.
#[derive(Debug)]
pub struct EarlyStoppingOpt(EarlyStopping);

impl<'de> Deserialize<'de> for EarlyStoppingOpt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = EarlyStoppingOpt;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false or \"never\"")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
                Ok(EarlyStoppingOpt(if b { EarlyStopping::True } else { EarlyStopping::False }))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                match s {
                    "never" => Ok(EarlyStoppingOpt(EarlyStopping::Never)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(s), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

fn bad(msg: String) -> T5Error {
    T5Error::BadConfig(msg)
}

/// A count: a finite, non-negative integer (JS numbers are f64).
fn count(name: &str, v: f64) -> Result<usize, T5Error> {
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= u32::MAX as f64 {
        Ok(v as usize)
    } else {
        Err(bad(format!("generation option {name} must be a non-negative integer, got {}", show(v))))
    }
}

fn token_id(name: &str, v: f64) -> Result<u32, T5Error> {
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= u32::MAX as f64 {
        Ok(v as u32)
    } else {
        Err(bad(format!("generation option {name} must be a token id (a non-negative integer), got {}", show(v))))
    }
}

fn finite(name: &str, v: f64) -> Result<f64, T5Error> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(bad(format!("generation option {name} must be a finite number, got {}", show(v))))
    }
}

/// JavaScript's spelling of a number (NaN, Infinity, 1.5).
fn show(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        v.to_string()
    }
}

fn ids(name: &str, v: &OneOrMany) -> Result<Vec<u32>, T5Error> {
    match v {
        OneOrMany::One(x) => Ok(vec![token_id(name, *x)?]),
        OneOrMany::Many(xs) => xs.iter().map(|&x| token_id(name, x)).collect(),
    }
}

impl GenerateOptions {
    /// Options from a JS value (`undefined` / `null`: none). Type errors and unknown keys name the option.
    pub fn from_js(v: JsValue) -> JsResult<Self> {
        if v.is_undefined() || v.is_null() {
            return Ok(Self::default());
        }
        if !v.is_object() || js_sys::Array::is_array(&v) {
            return Err(js_err(bad("generation options must be an object".into())));
        }
        // serde-wasm-bindgen looks up the struct's own fields only, so unknown keys are checked here (an
        // `undefined` value counts as absent, as for the known ones)
        let names = field_names::<GenerateOptions>();
        let obj: &js_sys::Object = v.unchecked_ref();
        for key in js_sys::Object::keys(obj) {
            let k = key.as_string().unwrap_or_default();
            if !names.contains(&k.as_str()) && !js_sys::Reflect::get(obj, &key).map(|x| x.is_undefined()).unwrap_or(false) {
                return Err(js_err(bad(format!("unknown generation option {k:?} (supported: {})", names.join(", ")))));
            }
        }
        let d = serde_wasm_bindgen::Deserializer::from(v);
        serde_path_to_error::deserialize(d).map_err(|e| {
            let path = e.path().to_string();
            // serde-wasm-bindgen's error is a JS Error, shown as `Error: <message>`
            let inner = e.into_inner().to_string();
            let inner = inner.strip_prefix("Error: ").unwrap_or(&inner);
            let msg = if path == "." || path.is_empty() { format!("generation options: {inner}") } else { format!("generation option {path}: {inner}") };
            js_err(bad(msg))
        })
    }

    /// Overlay the options on `gen` (the model's generation config), checking each value.
    pub fn apply(&self, gen: &mut GenerationConfig) -> Result<(), T5Error> {
        if let Some(v) = self.max_new_tokens {
            gen.max_new_tokens = Some(count("max_new_tokens", v)?);
        }
        if let Some(v) = self.max_length {
            gen.max_length = Some(count("max_length", v)?);
        }
        if let Some(v) = self.min_new_tokens {
            gen.min_new_tokens = Some(count("min_new_tokens", v)?);
        }
        if let Some(v) = self.min_length {
            gen.min_length = count("min_length", v)?;
        }
        if let Some(v) = &self.eos_token_id {
            gen.eos_token_id = ids("eos_token_id", v)?;
        }
        if let Some(v) = self.pad_token_id {
            gen.pad_token_id = token_id("pad_token_id", v)?;
        }
        if let Some(v) = self.decoder_start_token_id {
            gen.decoder_start_token_id = token_id("decoder_start_token_id", v)?;
        }
        if let Some(v) = self.num_beams {
            gen.num_beams = count("num_beams", v)?;
        }
        if let Some(v) = self.do_sample {
            gen.do_sample = v;
        }
        if let Some(v) = self.num_return_sequences {
            gen.num_return_sequences = count("num_return_sequences", v)?;
        }
        if let Some(v) = self.length_penalty {
            gen.length_penalty = finite("length_penalty", v)?;
        }
        if let Some(v) = &self.early_stopping {
            gen.early_stopping = v.0;
        }
        if let Some(v) = self.temperature {
            gen.temperature = finite("temperature", v)?;
        }
        if let Some(v) = self.top_k {
            gen.top_k = count("top_k", v)?;
        }
        if let Some(v) = self.top_p {
            gen.top_p = finite("top_p", v)?;
        }
        if let Some(v) = self.repetition_penalty {
            gen.repetition_penalty = finite("repetition_penalty", v)?;
        }
        if let Some(v) = self.no_repeat_ngram_size {
            gen.no_repeat_ngram_size = count("no_repeat_ngram_size", v)?;
        }
        if let Some(IdLists::Rows(rows)) = &self.bad_words_ids {
            let row = |(i, r): (usize, &OneOrMany)| match r {
                OneOrMany::Many(xs) => xs.iter().map(|&x| token_id("bad_words_ids", x)).collect(),
                OneOrMany::One(x) => Err(bad(format!("generation option bad_words_ids[{i}] must be a list of token ids (bad_words_ids is a list of lists, as in transformers), got {}", show(*x)))),
            };
            gen.bad_words_ids = Some(rows.iter().enumerate().map(row).collect::<Result<_, _>>()?);
        }
        if let Some(v) = &self.forced_eos_token_id {
            gen.forced_eos_token_id = Some(ids("forced_eos_token_id", v)?);
        }
        if let Some(v) = &self.cache_implementation {
            gen.cache_implementation = Some(v.clone());
        }
        if let Some(v) = self.seed {
            if !(v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= 9_007_199_254_740_991.0) {
                return Err(bad(format!("generation option seed must be a non-negative integer (at most Number.MAX_SAFE_INTEGER), got {}", show(v))));
            }
            gen.seed = Some(v as u64);
        }
        Ok(())
    }
}

/// The generation config of one call: the model's, the options over it, checked against the model's vocabulary.
/// Sampling without a seed draws a fresh one (a given seed stays reproducible).
pub fn generation_config(base: &GenerationConfig, options: &GenerateOptions, vocab_size: usize) -> Result<GenerationConfig, T5Error> {
    let mut gen = base.clone();
    options.apply(&mut gen)?;
    gen.validate(vocab_size)?;
    if gen.do_sample && gen.seed.is_none() {
        gen.seed = Some(fresh_seed());
    }
    Ok(gen)
}

/// A seed for a sampling call that named none: from the JS runtime's `Math.random` in wasm (53 random bits).
#[cfg(target_arch = "wasm32")]
fn fresh_seed() -> u64 {
    let hi = (js_sys::Math::random() * (1u64 << 26) as f64) as u64;
    let lo = (js_sys::Math::random() * (1u64 << 27) as f64) as u64;
    (hi << 27) | lo
}

/// Native builds (tests): the clock and a counter.
#[cfg(not(target_arch = "wasm32"))]
fn fresh_seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    t ^ N.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
}

/// The option names [`GenerateOptions`] accepts, read from its `Deserialize` impl (so they cannot drift from the
/// struct). The facade's tests check its `GenerateOptions` type against them.
#[wasm_bindgen(js_name = generateOptionNames)]
pub fn generate_option_names() -> Vec<String> {
    field_names::<GenerateOptions>().iter().map(|s| s.to_string()).collect()
}

/// The field names a `#[derive(Deserialize)]` struct asks its deserializer for.
fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("stop")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(self, _: &'static str, fields: &'static [&'static str], _: V) -> Result<V::Value, Stop> {
            *self.0 = fields;
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut names));
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use t5_core::config::T5Config;

    fn base() -> GenerationConfig {
        GenerationConfig::from_model_config(&T5Config::from_json("{}").unwrap())
    }

    #[test]
    fn names_come_from_the_struct() {
        let names = generate_option_names();
        assert_eq!(names.len(), 21);
        assert!(names.iter().any(|n| n == "max_new_tokens") && names.iter().any(|n| n == "seed"));
    }

    #[test]
    fn counts_are_checked_by_name() {
        for (v, what) in [(f64::NAN, "NaN"), (f64::INFINITY, "Infinity"), (-1.0, "-1"), (1.5, "1.5")] {
            let o = GenerateOptions { max_new_tokens: Some(v), ..Default::default() };
            let e = generation_config(&base(), &o, 100).unwrap_err();
            assert_eq!(e.code(), "BadConfig");
            assert!(e.to_string().contains("max_new_tokens") && e.to_string().contains(what), "{e}");
        }
        let o = GenerateOptions { temperature: Some(f64::NAN), ..Default::default() };
        assert!(generation_config(&base(), &o, 100).unwrap_err().to_string().contains("temperature"));
    }

    #[test]
    fn sampling_without_seed_draws_one() {
        let o = GenerateOptions { do_sample: Some(true), ..Default::default() };
        let a = generation_config(&base(), &o, 100).unwrap().seed.unwrap();
        let b = generation_config(&base(), &o, 100).unwrap().seed.unwrap();
        assert_ne!(a, b);
        let o = GenerateOptions { do_sample: Some(true), seed: Some(7.0), ..Default::default() };
        assert_eq!(generation_config(&base(), &o, 100).unwrap().seed, Some(7));
        // greedy needs none
        assert_eq!(generation_config(&base(), &GenerateOptions::default(), 100).unwrap().seed, None);
    }
}
