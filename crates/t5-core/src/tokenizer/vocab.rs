//! A T5 tokenizer built in memory from a vocabulary, as transformers 5.24's `T5Tokenizer(vocab=..., extra_ids=100,
//! eos_token="</s>", unk_token="<unk>", pad_token="<pad>", additional_special_tokens=None)` builds it: a Unigram
//! model over the `(piece, score)` list whose unknown id is 2 (transformers hard-codes `unk_id=2`, whatever piece
//! sits there), no normalizer (transformers adds the `Precompiled` one only for a SentencePiece charsmap), the
//! `WhitespaceSplit` + `Metaspace("▁", prepend always, split)` pre-tokenizer, the Metaspace decoder, and `</s>`
//! appended by the post-processor (`A </s>`, `A </s> B </s>`).
//!
//! The special tokens (`eos_token`, `unk_token`, `pad_token`, then `additional_special_tokens`, then the sentinels
//! `<extra_id_N>`) keep their vocabulary id when the vocabulary has them and are added after it otherwise, as in
//! transformers — with one deliberate difference, the **sentinel numbering**: transformers 5.24 adds missing
//! sentinels in ascending order (`<extra_id_0>` = the first id after the vocabulary and the other added tokens),
//! while every pretrained T5 checkpoint, and transformers' own `T5Tokenizer()` without a vocabulary, numbers them
//! descending (`<extra_id_0>` = the last id, 32099 in t5-small). Pretrained weights expect the descending order, so
//! here the added sentinels are numbered descending: within their block, `<extra_id_N>` gets the id transformers
//! gives to `<extra_id_{M-1-N}>` (M added sentinels). Every other id equals transformers' (oracle:
//! `scripts/make_vocab_tokenizer_fixtures.py`). Non-sentinel `additional_special_tokens` are added before the
//! sentinels (transformers keeps the order of the list when sentinels are listed among them).

use super::Tokenizer;
use crate::error::{Result, T5Error};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokenizers::models::unigram::Unigram;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer as HfTokenizer};

/// Most `extra_ids` accepted (transformers has no limit; this keeps a typo from exhausting memory).
pub const MAX_VOCAB_EXTRA_IDS: u64 = 100_000;

/// The constructor arguments of `T5Tokenizer(vocab=...)` (snake_case, as transformers), as JSON from the facade.
/// Scores are `null` in JSON where JavaScript had NaN / Infinity (`JSON.stringify`): that is an error.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VocabSpec {
    /// `[piece, score]` in id order.
    pub vocab: Vec<(String, Option<f64>)>,
    /// Number of sentinels `<extra_id_0>` … (default 100). A JSON number, checked to be a non-negative integer.
    #[serde(default)]
    pub extra_ids: Option<Value>,
    #[serde(default)]
    pub eos_token: Option<String>,
    #[serde(default)]
    pub unk_token: Option<String>,
    #[serde(default)]
    pub pad_token: Option<String>,
    #[serde(default)]
    pub additional_special_tokens: Option<Vec<String>>,
    /// tokenizer_config.json's settings, for a tokenizer that is saved and loaded back.
    #[serde(default)]
    pub model_max_length: Option<Value>,
    #[serde(default)]
    pub padding_side: Option<String>,
    #[serde(default)]
    pub clean_up_tokenization_spaces: Option<bool>,
}

fn bad(msg: impl Into<String>) -> T5Error {
    T5Error::BadConfig(format!("T5Tokenizer: {}", msg.into()))
}

fn sentinel_index(t: &str) -> Option<u64> {
    let n = t.strip_prefix("<extra_id_")?.strip_suffix('>')?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then(|| n.parse().ok()).flatten()
}

/// The `A </s>` / `A </s> B </s>` post-processor of T5 tokenizers.
pub(crate) fn eos_template(eos: &str, eos_id: u32) -> Result<TemplateProcessing> {
    let a = json!({"Sequence": {"id": "A", "type_id": 0}});
    let b = json!({"Sequence": {"id": "B", "type_id": 0}});
    let e = json!({"SpecialToken": {"id": eos, "type_id": 0}});
    serde_json::from_value(json!({
        "type": "TemplateProcessing",
        "single": [a, e],
        "pair": [a, e, b, e],
        "special_tokens": {eos: {"id": eos, "ids": [eos_id], "tokens": [eos]}},
    }))
    .map_err(|e| T5Error::Tokenizer(format!("post-processor: {e}")))
}

impl VocabSpec {
    /// Parse the facade's JSON (a [`T5Error::BadConfig`] naming the option for anything malformed).
    pub fn from_json(text: &str) -> Result<VocabSpec> {
        serde_json::from_str(text).map_err(|e| bad(format!("bad options: {e}")))
    }

    fn extra_ids(&self) -> Result<u64> {
        match &self.extra_ids {
            None | Some(Value::Null) => Ok(100),
            Some(v) => v
                .as_u64()
                .filter(|&n| n <= MAX_VOCAB_EXTRA_IDS)
                .ok_or_else(|| bad(format!("extra_ids must be an integer in 0..={MAX_VOCAB_EXTRA_IDS}, got {v}"))),
        }
    }

    /// `additional_special_tokens` as transformers completes them: the non-sentinel tokens in order, and the
    /// sentinels (given, or `<extra_id_0>` … `<extra_id_{extra_ids-1}>`).
    fn special_lists(&self) -> Result<(Vec<String>, Vec<String>)> {
        let extra_ids = self.extra_ids()?;
        let given = self.additional_special_tokens.clone().unwrap_or_default();
        if let Some(t) = given.iter().find(|t| t.is_empty()) {
            return Err(bad(format!("additional_special_tokens holds an empty token {t:?}")));
        }
        let (sentinels, others): (Vec<String>, Vec<String>) = given.into_iter().partition(|t| t.contains("<extra_id_"));
        let sentinels = if self.additional_special_tokens.is_none() || sentinels.is_empty() {
            (0..extra_ids).map(|i| format!("<extra_id_{i}>")).collect()
        } else if extra_ids > 0 && extra_ids != sentinels.len() as u64 {
            return Err(bad(format!(
                "extra_ids ({extra_ids}) and additional_special_tokens (with {} <extra_id_N> tokens) are both given: the \
                 additional_special_tokens must then include all extra_ids sentinels",
                sentinels.len()
            )));
        } else {
            sentinels
        };
        Ok((others, sentinels))
    }
}

impl Tokenizer {
    /// transformers 5.24's `T5Tokenizer(vocab=…)` (see the module documentation, including the sentinel numbering).
    /// A bad vocabulary or option is a [`T5Error::BadConfig`] naming it.
    pub fn from_vocab(spec: &VocabSpec) -> Result<Tokenizer> {
        if spec.vocab.len() < 3 {
            return Err(bad(format!(
                "vocab has {} pieces; at least 3 are needed (the Unigram model's unknown token is id 2, as in transformers)",
                spec.vocab.len()
            )));
        }
        let mut seen = std::collections::HashSet::with_capacity(spec.vocab.len());
        let mut vocab = Vec::with_capacity(spec.vocab.len());
        for (i, (piece, score)) in spec.vocab.iter().enumerate() {
            if piece.is_empty() {
                return Err(bad(format!("vocab[{i}] is an empty piece")));
            }
            let score = score.filter(|s| s.is_finite()).ok_or_else(|| bad(format!("vocab[{i}] ({piece:?}): the score is not a finite number")))?;
            if !seen.insert(piece.as_str()) {
                return Err(bad(format!("vocab[{i}]: the piece {piece:?} occurs twice")));
            }
            vocab.push((piece.clone(), score));
        }
        let (others, mut sentinels) = spec.special_lists()?;
        let unigram = Unigram::from(vocab, Some(2), false).map_err(|e| bad(format!("vocab: {e}")))?;
        let mut tk = HfTokenizer::new(unigram);
        tk.with_pre_tokenizer(Some(PreSequence::new(vec![WhitespaceSplit.into(), Metaspace::new('▁', PrependScheme::Always, true).into()])));
        tk.with_decoder(Some(Metaspace::new('▁', PrependScheme::Always, true)));

        let eos = spec.eos_token.clone().unwrap_or_else(|| "</s>".into());
        let unk = spec.unk_token.clone().unwrap_or_else(|| "<unk>".into());
        let pad = spec.pad_token.clone().unwrap_or_else(|| "<pad>".into());
        for (k, v) in [("eos_token", &eos), ("unk_token", &unk), ("pad_token", &pad)] {
            if v.is_empty() {
                return Err(bad(format!("{k} is empty")));
            }
        }
        // the checkpoints' numbering: the sentinels added after the vocabulary count down to <extra_id_0>
        sentinels.sort_by_key(|t| std::cmp::Reverse(sentinel_index(t).unwrap_or(0)));
        let added: Vec<AddedToken> = [eos.clone(), unk.clone(), pad.clone()]
            .into_iter()
            .chain(others)
            .chain(sentinels)
            .map(|t| AddedToken::from(t, true))
            .collect();
        tk.add_special_tokens(&added);
        let eos_id = tk.token_to_id(&eos).ok_or_else(|| bad(format!("no id for eos_token {eos:?}")))?;
        tk.with_post_processor(Some(eos_template(&eos, eos_id)?));

        let mut cfg = Map::new();
        cfg.insert("eos_token".into(), json!(eos));
        cfg.insert("unk_token".into(), json!(unk));
        cfg.insert("pad_token".into(), json!(pad));
        if let Some(m) = &spec.model_max_length {
            if !m.is_null() && m.as_u64().filter(|&n| n > 0).is_none() {
                return Err(bad(format!("model_max_length must be a positive integer, got {m}")));
            }
            cfg.insert("model_max_length".into(), m.clone());
        }
        if let Some(side) = &spec.padding_side {
            if side != "left" && side != "right" {
                return Err(bad(format!("padding_side must be \"left\" or \"right\", got {side:?}")));
            }
            cfg.insert("padding_side".into(), json!(side));
        }
        if let Some(c) = spec.clean_up_tokenization_spaces {
            cfg.insert("clean_up_tokenization_spaces".into(), json!(c));
        }
        Ok(Tokenizer::from_hf(tk, &Value::Object(cfg)))
    }
}
