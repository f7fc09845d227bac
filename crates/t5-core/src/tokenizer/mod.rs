//! The tokenizer: a thin wrapper over the `tokenizers` crate loaded from `tokenizer.json`
//! (Unigram + precompiled normalizer + Metaspace; the post-processor appends `</s>`), with the
//! few settings transformers reads from `tokenizer_config.json`.

pub mod spiece;
mod surface;
mod vocab;

use crate::error::{Result, T5Error};
use serde_json::Value;
mod check;

pub use surface::SavedTokenizer;
pub use vocab::{VocabSpec, MAX_VOCAB_EXTRA_IDS};

use tokenizers::{PaddingDirection, PostProcessor, PaddingParams, PaddingStrategy, Tokenizer as HfTokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

pub struct Tokenizer {
    inner: HfTokenizer,
    pad_id: u32,
    pad_token: String,
    /// `unk_token` of tokenizer_config.json (default `<unk>`), for `convert_tokens_to_ids` of unknown tokens
    unk_token: String,
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
    /// pad every row to this length (`padding="max_length"`) instead of the longest
    pad_fixed: Option<usize>,
    strategy: Truncation,
    stride: usize,
}

impl BatchSetting {
    fn plain(padding: bool, left: bool, truncate_to: Option<usize>) -> Self {
        BatchSetting { padding, left, truncate_to, pad_fixed: None, strategy: Truncation::LongestFirst, stride: 0 }
    }
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
        check::check_tokenizer_json(tokenizer_json)?;
        let inner = HfTokenizer::from_bytes(tokenizer_json).map_err(|e| T5Error::Tokenizer(format!("tokenizer.json: {e}")))?;
        let cfg: Value = match tokenizer_config {
            Some(b) => serde_json::from_slice(b).map_err(|e| T5Error::Tokenizer(format!("tokenizer_config.json: {e}")))?,
            None => Value::Object(Default::default()),
        };
        Ok(Self::from_hf(inner, &cfg))
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
        let setting = BatchSetting::plain(opts.padding, self.padding_left, truncate_to);
        let encs = if !setting.padding && setting.truncate_to.is_none() && self.inner.get_padding().is_none() && self.inner.get_truncation().is_none() {
            self.inner.encode_batch(texts.to_vec(), opts.add_special_tokens).map_err(terr)?
        } else {
            self.with_configured(setting, |tk| tk.encode_batch(texts.to_vec(), opts.add_special_tokens).map_err(terr))?
        };
        Ok(Encoded {
            input_ids: encs.iter().map(|e| e.get_ids().to_vec()).collect(),
            attention_mask: encs.iter().map(|e| e.get_attention_mask().to_vec()).collect(),
        })
    }

    /// `f` on the copy of the tokenizer configured for `setting` (made once, then reused).
    fn with_configured<R>(&self, setting: BatchSetting, f: impl FnOnce(&HfTokenizer) -> Result<R>) -> Result<R> {
        let mut cache = self.configured.lock().unwrap_or_else(|e| e.into_inner());
        if !cache.iter().any(|(s, _)| *s == setting) {
            cache.push((setting, self.configure(setting)?));
        }
        let tk = &cache.iter().find(|(s, _)| *s == setting).expect("just inserted").1;
        f(tk)
    }

    fn configure(&self, setting: BatchSetting) -> Result<HfTokenizer> {
        let mut tk = self.inner.clone();
        match setting.truncate_to {
            Some(max_length) => {
                tk.with_truncation(Some(TruncationParams {
                    max_length,
                    strategy: match setting.strategy {
                        Truncation::OnlyFirst => TruncationStrategy::OnlyFirst,
                        Truncation::OnlySecond => TruncationStrategy::OnlySecond,
                        _ => TruncationStrategy::LongestFirst,
                    },
                    stride: setting.stride,
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
                strategy: match setting.pad_fixed {
                    Some(n) => PaddingStrategy::Fixed(n),
                    None => PaddingStrategy::BatchLongest,
                },
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
    /// a checkpoint without `tokenizer.json`, built as transformers 5.24 builds it (see [`spiece::t5_tokenizer`]
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
        let model = crate::formats::spiece::SpModel::parse(spiece_model)?;
        let inner = spiece::t5_tokenizer(&model, &cfg)?;
        Ok(Self::from_hf(inner, &cfg))
    }

    /// The settings read from `tokenizer_config.json` ([`Tokenizer::from_bytes`] and the in-memory builders),
    /// around a built tokenizer.
    fn from_hf(inner: HfTokenizer, cfg: &Value) -> Self {
        let token_of = |key: &str, default: &str| spiece::config_token(cfg, key, default);
        let pad_token = token_of("pad_token", "<pad>");
        let pad_id = inner.token_to_id(&pad_token).unwrap_or(0);
        let eos_id = inner.token_to_id(&token_of("eos_token", "</s>"));
        let clean_up_tokenization_spaces = cfg.get("clean_up_tokenization_spaces").and_then(|v| v.as_bool()).unwrap_or(false);
        let model_max_length = cfg.get("model_max_length").and_then(|v| v.as_f64()).filter(|&x| x < 1e9).map(|x| x as usize);
        let padding_left = cfg.get("padding_side").and_then(|v| v.as_str()) == Some("left");
        let unk_token = token_of("unk_token", "<unk>");
        Tokenizer { inner, pad_id, pad_token, unk_token, eos_id, clean_up_tokenization_spaces, model_max_length, padding_left, configured: Default::default() }
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

// ---------------------------------------------------------------------------------------------------------------
// transformers' full `__call__`: pairs, pre-tokenized words, truncation strategies with a stride and overflowing
// windows, padding side per call, word / sequence ids

/// One sequence of a tokenizer input: a text, or words already split (`is_split_into_words=True`).
#[derive(Debug, Clone, PartialEq)]
pub enum Sequence {
    Text(String),
    Words(Vec<String>),
}

/// One row of a tokenizer call: a sequence, or a pair (`text`, `text_pair`: T5 joins them as `A </s> B </s>`).
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeInput {
    pub text: Sequence,
    pub pair: Option<Sequence>,
}

/// transformers' `truncation` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Truncation {
    /// `False` / "do_not_truncate"
    #[default]
    None,
    /// `True` / "longest_first"
    LongestFirst,
    OnlyFirst,
    OnlySecond,
}

/// transformers' `padding` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Padding {
    #[default]
    DoNotPad,
    Longest,
    /// to `max_length` (or `model_max_length`); longer rows stay as they are
    MaxLength,
}

/// Options of [`Tokenizer::encode_detailed`], as transformers' `__call__` arguments.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    pub padding: Padding,
    /// `padding_side` of this call (`None`: the tokenizer's, see [`Tokenizer::set_pads_left`])
    pub padding_left: Option<bool>,
    pub truncation: Truncation,
    /// truncation / `padding="max_length"` length (default: `model_max_length`)
    pub max_length: Option<usize>,
    /// overlap of consecutive overflowing windows, in tokens
    pub stride: usize,
    pub add_special_tokens: bool,
    /// keep the windows past the first one (`return_overflowing_tokens=True`)
    pub return_overflowing_tokens: bool,
}

/// One row of [`Tokenizer::encode_detailed`]'s output (a window, when overflowing tokens are returned).
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedRow {
    pub input_ids: Vec<u32>,
    pub attention_mask: Vec<u32>,
    /// `(start, end)` in chars (Python `str` indices) of the sequence the token comes from — of the word, for
    /// pre-tokenized input, as transformers; `(0, 0)` for added special tokens and padding
    pub offsets: Vec<(usize, usize)>,
    /// 1 for the tokens the post-processor or padding added (`return_special_tokens_mask=True`)
    pub special_tokens_mask: Vec<u32>,
    /// transformers' `sequence_ids(i)`: 0 / 1 for tokens of the text / the pair, `None` for special tokens
    pub sequence_ids: Vec<Option<usize>>,
    /// transformers' `word_ids(i)`
    pub word_ids: Vec<Option<u32>>,
    /// the input row this one comes from (`overflow_to_sample_mapping`)
    pub sample: usize,
}

fn hf_sequence(s: &Sequence) -> tokenizers::InputSequence<'_> {
    match s {
        Sequence::Text(t) => t.as_str().into(),
        Sequence::Words(w) => w.as_slice().into(),
    }
}

fn hf_input(i: &EncodeInput) -> tokenizers::EncodeInput<'_> {
    match &i.pair {
        None => tokenizers::EncodeInput::Single(hf_sequence(&i.text)),
        Some(p) => tokenizers::EncodeInput::Dual(hf_sequence(&i.text), hf_sequence(p)),
    }
}

impl Tokenizer {
    /// transformers' `tokenizer(text, text_pair, padding=…, padding_side=…, truncation=…, max_length=…, stride=…,
    /// is_split_into_words=…, return_overflowing_tokens=…)` with offsets, special-tokens mask, word and sequence
    /// ids: every row, and with `return_overflowing_tokens` every window of every row in transformers' order (a row,
    /// then its overflowing windows), each with its `sample`. Settings that the `tokenizers` crate would panic on
    /// (a stride not shorter than a window, `max_length` not above the special tokens) are [`T5Error::Tokenizer`]
    /// errors here.
    pub fn encode_detailed(&self, inputs: &[EncodeInput], opts: &CallOptions) -> Result<Vec<EncodedRow>> {
        let left = opts.padding_left.unwrap_or(self.padding_left);
        let limit = || opts.max_length.or(self.model_max_length);
        let truncate_to = if opts.truncation == Truncation::None {
            None
        } else {
            Some(limit().ok_or_else(|| T5Error::Tokenizer("truncation needs max_length".into()))?)
        };
        let pad_fixed = if opts.padding == Padding::MaxLength {
            Some(limit().ok_or_else(|| T5Error::Tokenizer("padding=\"max_length\" needs max_length".into()))?)
        } else {
            None
        };
        for i in inputs {
            let empty = |s: &Sequence| matches!(s, Sequence::Words(w) if w.is_empty());
            if empty(&i.text) || i.pair.as_ref().is_some_and(empty) {
                return Err(T5Error::Tokenizer("is_split_into_words: a row has no words".into()));
            }
        }
        if let Some(max) = truncate_to {
            self.check_truncation(inputs, opts, max)?;
        }
        let setting = BatchSetting {
            padding: opts.padding != Padding::DoNotPad,
            left,
            truncate_to,
            pad_fixed,
            strategy: opts.truncation,
            stride: if truncate_to.is_some() { opts.stride } else { 0 },
        };
        let hf: Vec<tokenizers::EncodeInput<'_>> = inputs.iter().map(hf_input).collect();
        let encs = if !setting.padding && setting.truncate_to.is_none() && self.inner.get_padding().is_none() && self.inner.get_truncation().is_none() {
            self.inner.encode_batch_char_offsets(hf, opts.add_special_tokens).map_err(terr)?
        } else {
            self.with_configured(setting, |tk| tk.encode_batch_char_offsets(hf, opts.add_special_tokens).map_err(terr))?
        };
        let mut rows = Vec::with_capacity(encs.len());
        for (sample, e) in encs.iter().enumerate() {
            rows.push(row_of(e, sample));
            if opts.return_overflowing_tokens {
                rows.extend(e.get_overflowing().iter().map(|o| row_of(o, sample)));
            }
        }
        Ok(rows)
    }

    /// The `tokenizers` crate asserts `stride < window` and subtracts the special tokens from `max_length`
    /// unchecked: refuse those settings with an error first (lengths of the parts as the crate computes them).
    fn check_truncation(&self, inputs: &[EncodeInput], opts: &CallOptions, max_length: usize) -> Result<()> {
        let added = |pair: bool| if opts.add_special_tokens { self.inner.get_post_processor().map_or(0, |p| p.added_tokens(pair)) } else { 0 };
        let any_pair = inputs.iter().any(|i| i.pair.is_some());
        let need = added(any_pair).max(added(false));
        if max_length <= need {
            return Err(T5Error::Tokenizer(format!("max_length {max_length} leaves no room for tokens after the {need} special tokens")));
        }
        if opts.stride == 0 {
            return Ok(());
        }
        if opts.stride >= max_length - added(false) {
            return Err(T5Error::Tokenizer(format!("stride {} must be less than max_length {max_length} minus the special tokens", opts.stride)));
        }
        let plain = BatchSetting::plain(false, false, None);
        let len = |s: &Sequence| -> Result<usize> {
            self.with_configured(plain, |tk| Ok(tk.encode_char_offsets(hf_sequence(s), false).map_err(terr)?.len()))
        };
        for i in inputs {
            let window = max_length - added(i.pair.is_some());
            let n1 = len(&i.text)?;
            let n2 = match &i.pair {
                Some(p) => len(p)?,
                None => 0,
            };
            if n1 + n2 <= window {
                continue;
            }
            // the lengths each part is truncated to (tokenizers' truncate_encodings)
            let cut: Vec<(usize, usize)> = match (opts.truncation, i.pair.is_some()) {
                (Truncation::OnlySecond, true) => {
                    let remove = n1 + n2 - window;
                    if n2 <= remove {
                        continue; // the crate's own "sequence too short" error
                    }
                    vec![(n2, n2 - remove)]
                }
                (Truncation::OnlySecond, false) => continue, // the crate's own "second sequence not provided"
                (Truncation::OnlyFirst, _) => {
                    let remove = n1 + n2 - window;
                    if n1 <= remove {
                        continue;
                    }
                    vec![(n1, n1 - remove)]
                }
                (_, false) => vec![(n1, window)],
                (_, true) => {
                    let mut a = n1.min(n2);
                    let mut b = if a > window { a } else { (window - a).max(a) };
                    if a + b > window {
                        a = window / 2;
                        b = a + window % 2;
                    }
                    let (t1, t2) = if n1 > n2 { (b, a) } else { (a, b) };
                    vec![(n1, t1), (n2, t2)]
                }
            };
            for (n, to) in cut {
                if to < n && to > 0 && opts.stride >= to {
                    return Err(T5Error::Tokenizer(format!(
                        "stride {} is not shorter than the {to} tokens left for the truncated sequence (max_length {max_length})",
                        opts.stride
                    )));
                }
            }
        }
        Ok(())
    }

    /// The padding side of the tokenizer: `true` for left (transformers' `tokenizer.padding_side`).
    pub fn padding_side_left(&self) -> bool {
        self.padding_left
    }
}

fn row_of(e: &tokenizers::Encoding, sample: usize) -> EncodedRow {
    EncodedRow {
        input_ids: e.get_ids().to_vec(),
        attention_mask: e.get_attention_mask().to_vec(),
        offsets: e.get_offsets().to_vec(),
        special_tokens_mask: e.get_special_tokens_mask().to_vec(),
        sequence_ids: e.get_sequence_ids(),
        word_ids: e.get_word_ids().to_vec(),
        sample,
    }
}
