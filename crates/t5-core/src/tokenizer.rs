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
    /// Copies of `inner` configured for padding / truncation, made once per setting: cloning a
    /// tokenizer rebuilds its vocabulary structures (tens of ms for T5's), far too slow per call.
    configured: std::sync::Mutex<Vec<(BatchSetting, HfTokenizer)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchSetting {
    padding: bool,
    left: bool,
    truncate_to: Option<usize>,
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
        Ok(Tokenizer { inner, pad_id, pad_token, eos_id, clean_up_tokenization_spaces, model_max_length, padding_left, configured: Default::default() })
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
        let truncate_to = if opts.truncation {
            Some(opts.max_length.or(self.model_max_length).ok_or_else(|| T5Error::Tokenizer("truncation needs max_length".into()))?)
        } else {
            None
        };
        let setting = BatchSetting { padding: opts.padding, left: self.padding_left, truncate_to };
        let encs = if !setting.padding && setting.truncate_to.is_none() && self.inner.get_padding().is_none() && self.inner.get_truncation().is_none() {
            self.inner.encode_batch(texts.to_vec(), opts.add_special_tokens).map_err(terr)?
        } else {
            let mut cache = self.configured.lock().unwrap_or_else(|e| e.into_inner());
            if !cache.iter().any(|(s, _)| *s == setting) {
                cache.push((setting, self.configure(setting)?));
            }
            let tk = &cache.iter().find(|(s, _)| *s == setting).expect("just inserted").1;
            tk.encode_batch(texts.to_vec(), opts.add_special_tokens).map_err(terr)?
        };
        Ok(Encoded {
            input_ids: encs.iter().map(|e| e.get_ids().to_vec()).collect(),
            attention_mask: encs.iter().map(|e| e.get_attention_mask().to_vec()).collect(),
        })
    }

    fn configure(&self, setting: BatchSetting) -> Result<HfTokenizer> {
        let mut tk = self.inner.clone();
        match setting.truncate_to {
            Some(max_length) => {
                tk.with_truncation(Some(TruncationParams {
                    max_length,
                    strategy: TruncationStrategy::LongestFirst,
                    stride: 0,
                    direction: TruncationDirection::Right,
                }))
                .map_err(terr)?;
            }
            None => {
                tk.with_truncation(None).map_err(terr)?;
            }
        }
        if setting.padding {
            tk.with_padding(Some(PaddingParams {
                strategy: PaddingStrategy::BatchLongest,
                direction: if setting.left { PaddingDirection::Left } else { PaddingDirection::Right },
                pad_to_multiple_of: None,
                pad_id: self.pad_id,
                pad_type_id: 0,
                pad_token: self.pad_token.clone(),
            }));
        } else {
            tk.with_padding(None);
        }
        Ok(tk)
    }

    /// Text of `ids`, as transformers' `decode(ids, skip_special_tokens)` (with its
    /// `clean_up_tokenization_spaces` setting).
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        let s = self.inner.decode(ids, skip_special_tokens).map_err(terr)?;
        Ok(if self.clean_up_tokenization_spaces { clean_up_tokenization(&s) } else { s })
    }

    /// [`Self::decode`] with an explicit `clean_up_tokenization_spaces` instead of the config's
    /// (transformers' `decode(ids, skip_special_tokens, clean_up_tokenization_spaces=…)`; pipelines pass `False`).
    pub fn decode_with_cleanup(&self, ids: &[u32], skip_special_tokens: bool, clean_up_tokenization_spaces: bool) -> Result<String> {
        let s = self.inner.decode(ids, skip_special_tokens).map_err(terr)?;
        Ok(if clean_up_tokenization_spaces { clean_up_tokenization(&s) } else { s })
    }

    /// `clean_up_tokenization_spaces` of tokenizer_config.json (default false).
    pub fn cleans_up_tokenization_spaces(&self) -> bool {
        self.clean_up_tokenization_spaces
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
        // transformers' order: <extra_id_0>, <extra_id_1>, …
        out.sort_by_key(|(t, _)| t["<extra_id_".len()..t.len() - 1].parse::<u32>().unwrap_or(u32::MAX));
        out
    }
}

// ---------------------------------------------------------------------------------------------------------------
// spiece.model (checkpoints without tokenizer.json), offsets, special-tokens mask

/// One text's ids with their char offsets (as transformers' `return_offsets_mapping=True`) and special-tokens mask.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSpans {
    pub ids: Vec<u32>,
    /// `(start, end)` in chars (Unicode scalar values, Python `str` indices) of the input text; `(0, 0)` for the
    /// `</s>` the post-processor appends. JavaScript strings index UTF-16 units: convert before slicing there.
    pub offsets: Vec<(usize, usize)>,
    /// 1 for the tokens the post-processor added (transformers' `return_special_tokens_mask=True`), 0 otherwise —
    /// special tokens written in the text are 0 here; see [`Tokenizer::special_tokens_mask`].
    pub special_tokens_mask: Vec<u32>,
}

impl Tokenizer {
    /// From the bytes of a SentencePiece `spiece.model` and, when present, `tokenizer_config.json`: the tokenizer of
    /// a checkpoint without `tokenizer.json`, built as transformers 5.24 builds it (see [`crate::spiece::t5_tokenizer`]
    /// for the pipeline; `extra_ids` and `added_tokens_decoder` are read from the config, `legacy` and
    /// `add_prefix_space` change nothing, as in transformers 5.24's `T5Tokenizer`). The other settings
    /// (pad/eos tokens, `clean_up_tokenization_spaces`, `model_max_length`, `padding_side`) are read as
    /// [`Tokenizer::from_bytes`] reads them. A corrupt or truncated `spiece.model` or a bad config is a
    /// [`T5Error::Tokenizer`].
    pub fn from_spiece(spiece_model: &[u8], tokenizer_config: Option<&[u8]>) -> Result<Self> {
        let cfg: Value = match tokenizer_config {
            Some(b) => serde_json::from_slice(b).map_err(|e| T5Error::Tokenizer(format!("tokenizer_config.json: {e}")))?,
            None => Value::Object(Default::default()),
        };
        let model = crate::spiece::SpModel::parse(spiece_model)?;
        let inner = crate::spiece::t5_tokenizer(&model, &cfg)?;
        Ok(Self::from_hf(inner, &cfg))
    }

    /// The settings [`Tokenizer::from_bytes`] reads from `tokenizer_config.json`, around a built tokenizer
    /// (the same reading as `from_bytes`; keep the two in step).
    fn from_hf(inner: HfTokenizer, cfg: &Value) -> Self {
        let token_of = |key: &str, default: &str| crate::spiece::config_token(cfg, key, default);
        let pad_token = token_of("pad_token", "<pad>");
        let pad_id = inner.token_to_id(&pad_token).unwrap_or(0);
        let eos_id = inner.token_to_id(&token_of("eos_token", "</s>"));
        let clean_up_tokenization_spaces = cfg.get("clean_up_tokenization_spaces").and_then(|v| v.as_bool()).unwrap_or(false);
        let model_max_length = cfg.get("model_max_length").and_then(|v| v.as_f64()).filter(|&x| x < 1e9).map(|x| x as usize);
        let padding_left = cfg.get("padding_side").and_then(|v| v.as_str()) == Some("left");
        Tokenizer { inner, pad_id, pad_token, eos_id, clean_up_tokenization_spaces, model_max_length, padding_left, configured: Default::default() }
    }

    /// Pad batches on the left (`true`) or the right, as transformers' `padding_side` (overrides the config's).
    pub fn set_pads_left(&mut self, left: bool) {
        self.padding_left = left;
    }

    /// Ids of one text with char offsets and the post-processor's special-tokens mask
    /// (transformers' `tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)`).
    pub fn encode_with_offsets(&self, text: &str, add_special_tokens: bool) -> Result<TokenSpans> {
        let enc = self.inner.encode_char_offsets(text, add_special_tokens).map_err(terr)?;
        Ok(TokenSpans {
            ids: enc.get_ids().to_vec(),
            offsets: enc.get_offsets().to_vec(),
            special_tokens_mask: enc.get_special_tokens_mask().to_vec(),
        })
    }

    /// 1 for each id that is a special token (pad, eos, unk, sentinels, ...), 0 otherwise: transformers'
    /// `get_special_tokens_mask(ids, already_has_special_tokens=True)`.
    pub fn special_tokens_mask(&self, ids: &[u32]) -> Vec<u32> {
        let special: std::collections::HashSet<u32> =
            self.inner.get_added_tokens_decoder().into_iter().filter(|(_, t)| t.special).map(|(id, _)| id).collect();
        ids.iter().map(|id| u32::from(special.contains(id))).collect()
    }

    /// The tokenizer as `tokenizer.json` (e.g. to cache what [`Tokenizer::from_spiece`] built).
    pub fn to_json(&self, pretty: bool) -> Result<String> {
        self.inner.to_string(pretty).map_err(terr)
    }
}
