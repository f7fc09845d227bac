//! The tokenizer: a thin wrapper over the `tokenizers` crate loaded from `tokenizer.json`
//! (Unigram + precompiled normalizer + Metaspace; the post-processor appends `</s>`), with the
//! few settings transformers reads from `tokenizer_config.json`.

use crate::error::{Result, T5Error};
use serde_json::Value;
use tokenizers::{PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer as HfTokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

pub struct Tokenizer {
    inner: HfTokenizer,
    pad_id: u32,
    pad_token: String,
    eos_id: Option<u32>,
    clean_up_tokenization_spaces: bool,
    model_max_length: Option<usize>,
    padding_left: bool,
}

/// Options of a batch encode, as transformers' `__call__` arguments.
#[derive(Debug, Clone, Default)]
pub struct EncodeOptions {
    /// pad to the longest row
    pub padding: bool,
    pub truncation: bool,
    /// truncation length (default: `model_max_length`)
    pub max_length: Option<usize>,
    pub add_special_tokens: bool,
}

/// A padded batch of encodings, `[batch, seq]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub input_ids: Vec<Vec<u32>>,
    pub attention_mask: Vec<Vec<u32>>,
}

fn terr(e: impl std::fmt::Display) -> T5Error {
    T5Error::Tokenizer(e.to_string())
}

/// transformers' `clean_up_tokenization`.
pub fn clean_up_tokenization(s: &str) -> String {
    s.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}

impl Tokenizer {
    /// From the bytes of `tokenizer.json` and, when present, `tokenizer_config.json`.
    pub fn from_bytes(tokenizer_json: &[u8], tokenizer_config: Option<&[u8]>) -> Result<Self> {
        let inner = HfTokenizer::from_bytes(tokenizer_json).map_err(|e| T5Error::Tokenizer(format!("tokenizer.json: {e}")))?;
        let cfg: Value = match tokenizer_config {
            Some(b) => serde_json::from_slice(b).map_err(|e| T5Error::Tokenizer(format!("tokenizer_config.json: {e}")))?,
            None => Value::Object(Default::default()),
        };
        let token_of = |key: &str, default: &str| -> String {
            match cfg.get(key) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Object(o)) => o.get("content").and_then(|c| c.as_str()).unwrap_or(default).to_string(),
                _ => default.to_string(),
            }
        };
        let pad_token = token_of("pad_token", "<pad>");
        let pad_id = inner.token_to_id(&pad_token).unwrap_or(0);
        let eos_id = inner.token_to_id(&token_of("eos_token", "</s>"));
        let clean_up_tokenization_spaces = cfg.get("clean_up_tokenization_spaces").and_then(|v| v.as_bool()).unwrap_or(false);
        // transformers stores "no limit" as a huge float
        let model_max_length = cfg.get("model_max_length").and_then(|v| v.as_f64()).filter(|&x| x < 1e9).map(|x| x as usize);
        let padding_left = cfg.get("padding_side").and_then(|v| v.as_str()) == Some("left");
        Ok(Tokenizer { inner, pad_id, pad_token, eos_id, clean_up_tokenization_spaces, model_max_length, padding_left })
    }

    pub fn pad_token_id(&self) -> u32 {
        self.pad_id
    }

    pub fn eos_token_id(&self) -> Option<u32> {
        self.eos_id
    }

    pub fn model_max_length(&self) -> Option<usize> {
        self.model_max_length
    }

    /// Whether `tokenizer_config.json` asks for left padding (`padding_side: "left"`).
    pub fn pads_left(&self) -> bool {
        self.padding_left
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Ids of one text (with `</s>` appended when `add_special_tokens`).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        Ok(self.inner.encode(text, add_special_tokens).map_err(terr)?.get_ids().to_vec())
    }

    /// Encode several texts, padded to the longest (right padding unless the config says left)
    /// and truncated like transformers' `tokenizer(texts, padding=True, truncation=True, max_length=N)`.
    pub fn encode_batch(&self, texts: &[String], opts: &EncodeOptions) -> Result<Encoded> {
        let mut tk = self.inner.clone();
        if opts.truncation {
            let max_length = opts.max_length.or(self.model_max_length).ok_or_else(|| T5Error::Tokenizer("truncation needs max_length".into()))?;
            tk.with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(terr)?;
        } else {
            tk.with_truncation(None).map_err(terr)?;
        }
        if opts.padding {
            tk.with_padding(Some(PaddingParams {
                strategy: PaddingStrategy::BatchLongest,
                direction: if self.padding_left { PaddingDirection::Left } else { PaddingDirection::Right },
                pad_to_multiple_of: None,
                pad_id: self.pad_id,
                pad_type_id: 0,
                pad_token: self.pad_token.clone(),
            }));
        } else {
            tk.with_padding(None);
        }
        let encs = tk.encode_batch(texts.to_vec(), opts.add_special_tokens).map_err(terr)?;
        Ok(Encoded {
            input_ids: encs.iter().map(|e| e.get_ids().to_vec()).collect(),
            attention_mask: encs.iter().map(|e| e.get_attention_mask().to_vec()).collect(),
        })
    }

    /// Text of `ids`, as transformers' `decode(ids, skip_special_tokens)` (with its
    /// `clean_up_tokenization_spaces` setting).
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        let s = self.inner.decode(ids, skip_special_tokens).map_err(terr)?;
        Ok(if self.clean_up_tokenization_spaces { clean_up_tokenization(&s) } else { s })
    }

    pub fn decode_batch(&self, rows: &[Vec<u32>], skip_special_tokens: bool) -> Result<Vec<String>> {
        rows.iter().map(|r| self.decode(r, skip_special_tokens)).collect()
    }

    /// The `<extra_id_N>` sentinel tokens with their ids, in transformers' order
    /// (`get_sentinel_tokens` / `get_sentinel_token_ids`).
    pub fn sentinels(&self) -> Vec<(String, u32)> {
        let mut out: Vec<(String, u32)> = self
            .inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.content.starts_with("<extra_id_") && t.content.ends_with('>') && t.content["<extra_id_".len()..t.content.len() - 1].chars().all(|c| c.is_ascii_digit()))
            .map(|(id, t)| (t.content.clone(), id))
            .collect();
        out.sort_by_key(|(_, id)| *id);
        out
    }
}
