//! `T5Config` and `GenerationConfig`, parsed from the Hub's `config.json` and
//! `generation_config.json` with transformers' field names and defaults.

use crate::error::{Result, T5Error};
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod check;
pub use check::{MAX_LAYERS, MAX_TENSOR_ELEMENTS};
/// A JSON value as error messages quote it (cut short).
pub(crate) use check::show as show_value;

/// Activation of the feed-forward block, as transformers' `ACT2FN` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    Relu,
    /// exact erf GELU (`gelu`)
    Gelu,
    /// tanh approximation (`gelu_new`, `gelu_pytorch_tanh`); what `gated-gelu` uses
    GeluNew,
    /// `silu` / `swish`
    Silu,
}

impl Activation {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "relu" => Activation::Relu,
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluNew,
            "silu" | "swish" => Activation::Silu,
            _ => return None,
        })
    }
}

fn default_vocab_size() -> usize { 32128 }
fn default_d_model() -> usize { 512 }
fn default_d_kv() -> usize { 64 }
fn default_d_ff() -> usize { 2048 }
fn default_num_layers() -> usize { 6 }
fn default_num_heads() -> usize { 8 }
fn default_num_buckets() -> usize { 32 }
fn default_max_distance() -> usize { 128 }
fn default_dropout() -> f64 { 0.1 }
fn default_eps() -> f64 { 1e-6 }
fn default_factor() -> f64 { 1.0 }
fn default_ffp() -> String { "relu".into() }
fn default_true() -> bool { true }
fn default_eos() -> u32 { 1 }

/// transformers' `T5Config`, every field, same names and defaults.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct T5Config {
    #[serde(default = "default_vocab_size")]
    pub vocab_size: usize,
    #[serde(default = "default_d_model")]
    pub d_model: usize,
    #[serde(default = "default_d_kv")]
    pub d_kv: usize,
    #[serde(default = "default_d_ff")]
    pub d_ff: usize,
    #[serde(default = "default_num_layers")]
    pub num_layers: usize,
    /// Defaults to `num_layers` when absent or null.
    #[serde(default)]
    pub num_decoder_layers: Option<usize>,
    #[serde(default = "default_num_heads")]
    pub num_heads: usize,
    #[serde(default = "default_num_buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "default_max_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default = "default_dropout")]
    pub dropout_rate: f64,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_factor")]
    pub initializer_factor: f64,
    #[serde(default = "default_ffp")]
    pub feed_forward_proj: String,
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    /// transformers 5 writes this; v4-era checkpoints do not. When absent the decoder output is
    /// rescaled by `d_model**-0.5` iff `tie_word_embeddings`.
    #[serde(default)]
    pub scale_decoder_outputs: Option<bool>,
    #[serde(default)]
    pub decoder_start_token_id: Option<u32>,
    /// transformers' T5Config default: 0
    #[serde(default = "default_pad")]
    pub pad_token_id: Option<u32>,
    #[serde(default = "default_eos_opt")]
    pub eos_token_id: Option<Value>,
    #[serde(default = "default_true")]
    pub is_encoder_decoder: bool,
    #[serde(default = "default_true")]
    pub use_cache: bool,
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default)]
    pub num_labels: Option<usize>,
    #[serde(default)]
    pub id2label: Option<Value>,
    #[serde(default)]
    pub label2id: Option<Value>,
    #[serde(default)]
    pub problem_type: Option<String>,
    /// transformers' T5Config default: 0.0
    #[serde(default = "default_classifier_dropout")]
    pub classifier_dropout: Option<f64>,
    #[serde(default)]
    pub n_positions: Option<usize>,
    #[serde(default)]
    pub task_specific_params: Option<Value>,
    /// Everything else the file holds, kept so that it round-trips.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

fn default_pad() -> Option<u32> { Some(0) }
fn default_classifier_dropout() -> Option<f64> { Some(0.0) }
fn default_eos_opt() -> Option<Value> { Some(Value::from(default_eos())) }

/// Parsed form of `feed_forward_proj`, validated like transformers' `T5Config.__init__`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedForwardKind {
    pub act: Activation,
    pub gated: bool,
}

impl T5Config {
    /// `config.json`: JSON errors, type errors naming the field, then [`Self::validate`].
    pub fn from_json(text: &str) -> Result<Self> {
        check::parse(text, "config.json")
    }

    /// [`Self::from_json`] for a config read from (or built from the metadata of) `file`, which
    /// the errors name.
    pub fn from_json_in(text: &str, file: &str) -> Result<Self> {
        check::parse(text, file)
    }

    /// A config from a parsed JSON value (`file`: what the errors name).
    pub fn from_value_in(v: &Value, file: &str) -> Result<Self> {
        check::from_value(v, file)
    }

    /// Every load-time check (see `config/check.rs`): errors name `config.json` and the field.
    pub fn validate(&self) -> Result<()> {
        check::validate(self, "config.json")
    }

    /// [`Self::validate`] naming `file` in the errors.
    pub fn validate_in(&self, file: &str) -> Result<()> {
        check::validate(self, file)
    }

    /// transformers: `act_info = feed_forward_proj.split("-")`, gated iff the first part is
    /// "gated", and `gated-gelu` means `gelu_new`.
    pub fn feed_forward(&self) -> Result<FeedForwardKind> {
        let bad = || T5Error::UnsupportedActivation(self.feed_forward_proj.clone());
        let parts: Vec<&str> = self.feed_forward_proj.split('-').collect();
        if parts.len() > 2 || (parts.len() == 2 && parts[0] != "gated") {
            return Err(bad());
        }
        let gated = parts[0] == "gated" && parts.len() == 2;
        let mut name = *parts.last().unwrap();
        if self.feed_forward_proj == "gated-gelu" {
            name = "gelu_new";
        }
        let act = Activation::from_name(name).ok_or_else(bad)?;
        Ok(FeedForwardKind { act, gated })
    }

    pub fn decoder_layers(&self) -> usize {
        self.num_decoder_layers.unwrap_or(self.num_layers)
    }

    pub fn inner_dim(&self) -> usize {
        self.num_heads * self.d_kv
    }

    /// Whether the decoder output is multiplied by `d_model**-0.5` before the LM head.
    pub fn scales_decoder_output(&self) -> bool {
        self.scale_decoder_outputs.unwrap_or(self.tie_word_embeddings)
    }

    /// `eos_token_id` as a list (validated at load; a config built by hand with a value that is
    /// not an id or a list of ids gives none).
    pub fn eos_token_ids(&self) -> Vec<u32> {
        check::eos_ids(self.eos_token_id.as_ref(), "config.json").unwrap_or_default()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("config serializes")
    }
}

/// transformers' `early_stopping` of beam search: `true`, `false` or `"never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EarlyStopping {
    /// stop a batch item as soon as `num_beams` finished hypotheses exist
    True,
    /// stop when the heuristic says no running beam can beat the finished ones (transformers' default)
    #[default]
    False,
    /// the canonical beam search: stop only when no better candidate is possible
    Never,
}

impl Serialize for EarlyStopping {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            EarlyStopping::True => s.serialize_bool(true),
            EarlyStopping::False => s.serialize_bool(false),
            EarlyStopping::Never => s.serialize_str("never"),
        }
    }
}

impl<'de> Deserialize<'de> for EarlyStopping {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        EarlyStopping::from_value(&v).ok_or_else(|| serde::de::Error::custom("early_stopping must be true, false or \"never\""))
    }
}

impl EarlyStopping {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Bool(true) => Some(EarlyStopping::True),
            Value::Bool(false) | Value::Null => Some(EarlyStopping::False),
            Value::String(s) if s == "never" => Some(EarlyStopping::Never),
            _ => None,
        }
    }
}

/// What generation honours of transformers' `GenerationConfig` (same names and defaults), from
/// `generation_config.json` (falling back to the model config for token ids) and user options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationConfig {
    pub decoder_start_token_id: u32,
    pub pad_token_id: u32,
    pub eos_token_id: Vec<u32>,
    /// Total decoder length including the start token. `None` (transformers 5 default): 20 new tokens.
    pub max_length: Option<usize>,
    /// Takes precedence over `max_length`.
    pub max_new_tokens: Option<usize>,
    pub min_length: usize,
    /// Takes precedence over `min_length`.
    pub min_new_tokens: Option<usize>,
    pub num_beams: usize,
    pub do_sample: bool,
    /// Sequences returned per input (beam search: the best `num_return_sequences` of the `num_beams`).
    #[serde(default = "one")]
    pub num_return_sequences: usize,
    /// Beam scores are divided by `generated_length ** length_penalty`.
    #[serde(default = "one_f")]
    pub length_penalty: f64,
    #[serde(default)]
    pub early_stopping: EarlyStopping,
    #[serde(default = "one_f")]
    pub temperature: f64,
    /// transformers' default is 50 (only used when sampling); 0 disables.
    #[serde(default = "fifty")]
    pub top_k: usize,
    #[serde(default = "one_f")]
    pub top_p: f64,
    #[serde(default = "one_f")]
    pub repetition_penalty: f64,
    #[serde(default)]
    pub no_repeat_ngram_size: usize,
    #[serde(default)]
    pub bad_words_ids: Option<Vec<Vec<u32>>>,
    /// Forced as the last token when `max_length` is reached (one id or several).
    #[serde(default)]
    pub forced_eos_token_id: Option<Vec<u32>>,
    /// `"static"`: one KV cache allocated for the longest allowed length, written in place;
    /// `None` / `"dynamic"`: the growing cache.
    #[serde(default)]
    pub cache_implementation: Option<String>,
    /// Seed of t5-web's own sampling PRNG (reproducible by seed; not torch's RNG stream). Default 0.
    #[serde(default)]
    pub seed: Option<u64>,
}

fn one() -> usize { 1 }
fn one_f() -> f64 { 1.0 }
fn fifty() -> usize { 50 }

/// Default `max_length` of transformers 5 when neither it nor `max_new_tokens` is set: 20 new tokens.
pub const DEFAULT_MAX_NEW_TOKENS: usize = 20;

impl GenerationConfig {
    /// Defaults taken from the model config, as transformers' `GenerationConfig.from_model_config`.
    pub fn from_model_config(cfg: &T5Config) -> Self {
        GenerationConfig {
            decoder_start_token_id: cfg.decoder_start_token_id.or(cfg.pad_token_id).unwrap_or(0),
            pad_token_id: cfg.pad_token_id.unwrap_or(0),
            eos_token_id: cfg.eos_token_ids(),
            max_length: None,
            max_new_tokens: None,
            min_length: 0,
            min_new_tokens: None,
            num_beams: 1,
            do_sample: false,
            num_return_sequences: 1,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::False,
            temperature: 1.0,
            top_k: 50,
            top_p: 1.0,
            repetition_penalty: 1.0,
            no_repeat_ngram_size: 0,
            bad_words_ids: None,
            forced_eos_token_id: None,
            cache_implementation: None,
            seed: None,
        }
    }

    /// `generation_config.json` over the model config's defaults.
    pub fn from_json(text: &str, cfg: &T5Config) -> Result<Self> {
        let v: Value = serde_json::from_str(text).map_err(|e| T5Error::BadConfig(format!("generation_config.json: not valid JSON: {e}")))?;
        let mut g = Self::from_model_config(cfg);
        g.apply_json_in(&v, "generation_config.json")?;
        Ok(g)
    }

    /// [`Self::apply_json_in`] for call options (errors say "generation options: <key>: ...").
    pub fn apply_json(&mut self, v: &Value) -> Result<()> {
        self.apply_json_in(v, "generation options")
    }

    /// Overlay the keys present in a JSON object (generation_config.json or user options), with
    /// transformers' names. Unknown keys are ignored (generation_config.json holds many). Errors
    /// name `source` and the key: `generation_config.json: num_beams: expected a non-negative
    /// integer, got "four"`.
    pub fn apply_json_in(&mut self, v: &Value, source: &str) -> Result<()> {
        use check::show;
        let obj = v.as_object().ok_or_else(|| T5Error::BadConfig(format!("{source}: expected a JSON object, got {}", check::type_name(v))))?;
        let err = |k: &str, what: &str, x: &Value| T5Error::BadConfig(format!("{source}: {k}: expected {what}, got {}", show(x)));
        let uint = |k: &str| -> Result<Option<usize>> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .map(Some)
                    .ok_or_else(|| err(k, "a non-negative integer", x)),
            }
        };
        let float = |k: &str| -> Result<Option<f64>> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x.as_f64().map(Some).ok_or_else(|| err(k, "a number", x)),
            }
        };
        let id = |x: &Value| x.as_u64().filter(|&n| n <= u32::MAX as u64).map(|n| n as u32);
        let one_id = |k: &str| -> Result<Option<u32>> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => id(x).map(Some).ok_or_else(|| err(k, "a token id (an integer below 2^32)", x)),
            }
        };
        let ids = |k: &str| -> Result<Option<Vec<u32>>> {
            let what = "a token id or a list of token ids";
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Array(a)) => a.iter().map(id).collect::<Option<Vec<u32>>>().map(Some).ok_or_else(|| err(k, what, &obj[k])),
                Some(x) => id(x).map(|t| Some(vec![t])).ok_or_else(|| err(k, what, x)),
            }
        };
        if let Some(x) = one_id("decoder_start_token_id")? { self.decoder_start_token_id = x; }
        if let Some(x) = one_id("pad_token_id")? { self.pad_token_id = x; }
        if obj.contains_key("eos_token_id") { self.eos_token_id = ids("eos_token_id")?.unwrap_or_default(); }
        if obj.contains_key("max_length") { self.max_length = uint("max_length")?; }
        if obj.contains_key("max_new_tokens") { self.max_new_tokens = uint("max_new_tokens")?; }
        if let Some(x) = uint("min_length")? { self.min_length = x; }
        if obj.contains_key("min_new_tokens") { self.min_new_tokens = uint("min_new_tokens")?; }
        if let Some(x) = uint("num_beams")? { self.num_beams = x; }
        match obj.get("do_sample") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => self.do_sample = *b,
            Some(x) => return Err(err("do_sample", "true or false", x)),
        }
        if let Some(x) = uint("num_return_sequences")? { self.num_return_sequences = x; }
        if let Some(x) = float("length_penalty")? { self.length_penalty = x; }
        if let Some(v) = obj.get("early_stopping") {
            self.early_stopping = EarlyStopping::from_value(v).ok_or_else(|| err("early_stopping", "true, false or \"never\"", v))?;
        }
        if let Some(x) = float("temperature")? { self.temperature = x; }
        if let Some(x) = uint("top_k")? { self.top_k = x; }
        if let Some(x) = float("top_p")? { self.top_p = x; }
        if let Some(x) = float("repetition_penalty")? { self.repetition_penalty = x; }
        if let Some(x) = uint("no_repeat_ngram_size")? { self.no_repeat_ngram_size = x; }
        if let Some(v) = obj.get("bad_words_ids") {
            self.bad_words_ids = match v {
                Value::Null => None,
                Value::Array(rows) => Some(
                    rows.iter()
                        .map(|r| r.as_array().and_then(|r| r.iter().map(id).collect::<Option<Vec<u32>>>()))
                        .collect::<Option<Vec<Vec<u32>>>>()
                        .ok_or_else(|| err("bad_words_ids", "a list of lists of token ids", v))?,
                ),
                _ => return Err(err("bad_words_ids", "a list of lists of token ids", v)),
            };
        }
        if obj.contains_key("forced_eos_token_id") { self.forced_eos_token_id = ids("forced_eos_token_id")?; }
        match obj.get("cache_implementation") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => self.cache_implementation = Some(s.clone()),
            Some(x) => return Err(err("cache_implementation", "\"static\" or \"dynamic\"", x)),
        }
        if let Some(x) = obj.get("seed") {
            self.seed = match x {
                Value::Null => None,
                x => Some(x.as_u64().ok_or_else(|| err("seed", "a non-negative integer", x))?),
            };
        }
        Ok(())
    }

    /// Overlay `config.task_specific_params[task]` (e.g. t5-small's `summarization`: beam 4,
    /// length_penalty 2, no_repeat_ngram 3, min_length 30, max_length 200, early_stopping) the way
    /// transformers' pipelines merged them: model generation config < task params < call options
    /// (apply the call options after this). Keys that are not generation options (`prefix`) are
    /// ignored here. Returns whether the config had params for `task`.
    pub fn apply_task_params(&mut self, cfg: &T5Config, task: &str) -> Result<bool> {
        match cfg.task_specific_params.as_ref().and_then(|t| t.get(task)) {
            Some(p) if p.is_object() => {
                self.apply_json_in(p, &format!("config.json: task_specific_params.{task}"))?;
                Ok(true)
            }
            Some(_) => Err(T5Error::BadConfig(format!("task_specific_params.{task} must be an object"))),
            None => Ok(false),
        }
    }

    /// Total decoder length allowed, start token included (transformers' `max_length` after
    /// `_prepare_generated_length`).
    pub fn total_max_length(&self) -> usize {
        match (self.max_new_tokens, self.max_length) {
            (Some(n), _) => n.saturating_add(1),
            (None, Some(m)) => m,
            (None, None) => DEFAULT_MAX_NEW_TOKENS + 1,
        }
    }

    /// Total decoder length below which EOS is suppressed (`min_new_tokens` takes precedence).
    pub fn total_min_length(&self) -> usize {
        match self.min_new_tokens {
            Some(n) => n.saturating_add(1),
            None => self.min_length,
        }
    }

    /// Number of tokens to generate after the decoder start token.
    pub fn new_tokens_budget(&self) -> usize {
        self.total_max_length().saturating_sub(1)
    }

    /// Whether `cache_implementation` asks for the preallocated static cache.
    pub fn static_cache(&self) -> Result<bool> {
        match self.cache_implementation.as_deref() {
            None | Some("dynamic") => Ok(false),
            Some("static") => Ok(true),
            Some(other) => Err(T5Error::BadConfig(format!("cache_implementation {other:?} is not supported: expected \"static\" or \"dynamic\""))),
        }
    }

    /// transformers' `GenerationConfig.validate` checks that generation relies on, as typed errors.
    pub fn validate(&self, vocab_size: usize) -> Result<()> {
        let bad = |m: String| Err(T5Error::BadConfig(m));
        if self.num_beams == 0 {
            return bad("num_beams must be a positive integer".into());
        }
        if self.num_return_sequences == 0 {
            return bad("num_return_sequences must be a positive integer".into());
        }
        if self.num_beams > 1 && self.num_return_sequences > self.num_beams {
            return bad(format!("num_return_sequences ({}) has to be smaller or equal to num_beams ({})", self.num_return_sequences, self.num_beams));
        }
        if self.num_beams == 1 && !self.do_sample && self.num_return_sequences > 1 {
            return bad("greedy search (num_beams = 1, do_sample = false) does not support num_return_sequences > 1".into());
        }
        if self.do_sample && !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return bad(format!("temperature has to be a strictly positive float, got {}", self.temperature));
        }
        if self.do_sample && !(0.0..=1.0).contains(&self.top_p) {
            return bad(format!("top_p has to be a float between 0 and 1, got {}", self.top_p));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad(format!("repetition_penalty has to be a strictly positive float, got {}", self.repetition_penalty));
        }
        if !self.length_penalty.is_finite() {
            return bad("length_penalty must be finite".into());
        }
        if let Some(b) = &self.bad_words_ids {
            if b.is_empty() || b.iter().any(|w| w.is_empty()) {
                return bad("bad_words_ids has to be a non-empty list of non-empty lists of token ids".into());
            }
            if let Some(&t) = b.iter().flatten().find(|&&t| t as usize >= vocab_size) {
                return Err(T5Error::BadInput(format!("bad_words_ids: token id {t} is outside the vocabulary of {vocab_size}")));
            }
        }
        let check_ids = |what: &str, ids: &[u32]| -> Result<()> {
            match ids.iter().find(|&&t| t as usize >= vocab_size) {
                Some(t) => Err(T5Error::BadInput(format!("{what} {t} is outside the vocabulary of {vocab_size}"))),
                None => Ok(()),
            }
        };
        check_ids("decoder_start_token_id", &[self.decoder_start_token_id])?;
        check_ids("pad_token_id", &[self.pad_token_id])?;
        check_ids("eos_token_id", &self.eos_token_id)?;
        if let Some(f) = &self.forced_eos_token_id {
            check_ids("forced_eos_token_id", f)?;
        }
        if self.total_max_length() == 0 {
            return bad("max_length must be positive".into());
        }
        self.static_cache()?;
        Ok(())
    }
}
