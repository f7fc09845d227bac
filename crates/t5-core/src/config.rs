//! `T5Config` and `GenerationConfig`, parsed from the Hub's `config.json` and
//! `generation_config.json` with transformers' field names and defaults.

use crate::error::{Result, T5Error};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    pub fn from_json(text: &str) -> Result<Self> {
        let cfg: T5Config = serde_json::from_str(text).map_err(|e| T5Error::BadConfig(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        self.feed_forward()?;
        let checks = [
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("d_kv", self.d_kv),
            ("d_ff", self.d_ff),
            ("num_heads", self.num_heads),
            ("relative_attention_num_buckets", self.relative_attention_num_buckets),
            ("relative_attention_max_distance", self.relative_attention_max_distance),
        ];
        for (name, v) in checks {
            if v == 0 {
                return Err(T5Error::BadConfig(format!("{name} must be positive")));
            }
        }
        if !(self.layer_norm_epsilon >= 0.0) {
            return Err(T5Error::BadConfig("layer_norm_epsilon must be >= 0".into()));
        }
        Ok(())
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

    pub fn eos_token_ids(&self) -> Vec<u32> {
        value_to_ids(self.eos_token_id.as_ref())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("config serializes")
    }
}

pub(crate) fn value_to_ids(v: Option<&Value>) -> Vec<u32> {
    match v {
        Some(Value::Number(n)) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
        Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_u64().map(|x| x as u32)).collect(),
        _ => vec![],
    }
}

/// The subset of transformers' `GenerationConfig` that generation honours, from
/// `generation_config.json` (falling back to the model config for token ids).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationConfig {
    pub decoder_start_token_id: u32,
    pub pad_token_id: u32,
    pub eos_token_id: Vec<u32>,
    /// transformers' default is 20 (prompt excluded for encoder-decoders: counts decoder tokens incl. start).
    pub max_length: usize,
    pub max_new_tokens: Option<usize>,
    pub min_length: usize,
    pub min_new_tokens: Option<usize>,
    pub num_beams: usize,
    pub do_sample: bool,
}

impl GenerationConfig {
    /// Defaults taken from the model config, as transformers' `GenerationConfig.from_model_config`.
    pub fn from_model_config(cfg: &T5Config) -> Self {
        GenerationConfig {
            decoder_start_token_id: cfg.decoder_start_token_id.or(cfg.pad_token_id).unwrap_or(0),
            pad_token_id: cfg.pad_token_id.unwrap_or(0),
            eos_token_id: cfg.eos_token_ids(),
            max_length: 20,
            max_new_tokens: None,
            min_length: 0,
            min_new_tokens: None,
            num_beams: 1,
            do_sample: false,
        }
    }

    /// `generation_config.json` over the model config's defaults.
    pub fn from_json(text: &str, cfg: &T5Config) -> Result<Self> {
        let v: Value = serde_json::from_str(text).map_err(|e| T5Error::BadConfig(format!("generation_config.json: {e}")))?;
        let mut g = Self::from_model_config(cfg);
        g.apply_json(&v)?;
        Ok(g)
    }

    /// Overlay the keys present in a JSON object (generation_config.json or user options).
    pub fn apply_json(&mut self, v: &Value) -> Result<()> {
        let obj = v.as_object().ok_or_else(|| T5Error::BadConfig("generation config must be a JSON object".into()))?;
        let uint = |k: &str| -> Result<Option<usize>> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x.as_u64().map(|x| Some(x as usize)).ok_or_else(|| T5Error::BadConfig(format!("{k} must be a non-negative integer"))),
            }
        };
        if let Some(x) = uint("decoder_start_token_id")? { self.decoder_start_token_id = x as u32; }
        if let Some(x) = uint("pad_token_id")? { self.pad_token_id = x as u32; }
        if obj.contains_key("eos_token_id") { self.eos_token_id = value_to_ids(obj.get("eos_token_id")); }
        if let Some(x) = uint("max_length")? { self.max_length = x; }
        if obj.contains_key("max_new_tokens") { self.max_new_tokens = uint("max_new_tokens")?; }
        if let Some(x) = uint("min_length")? { self.min_length = x; }
        if obj.contains_key("min_new_tokens") { self.min_new_tokens = uint("min_new_tokens")?; }
        if let Some(x) = uint("num_beams")? { self.num_beams = x; }
        if let Some(Value::Bool(b)) = obj.get("do_sample") { self.do_sample = *b; }
        Ok(())
    }

    /// Number of tokens to generate after the decoder start token.
    pub fn new_tokens_budget(&self) -> usize {
        match self.max_new_tokens {
            Some(n) => n,
            None => self.max_length.saturating_sub(1),
        }
    }
}
