//! The T5 tokenizer built from a SentencePiece model ([`crate::formats::spiece::SpModel`]) and
//! `tokenizer_config.json`, as transformers 5.24's `T5Tokenizer` converter builds it.

use crate::error::{Result, T5Error};
use crate::formats::spiece::{err, PieceType, SpModel};
use serde_json::{json, Value};
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::precompiled::Precompiled;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer as HfTokenizer};


/// Most `extra_ids` accepted (transformers has no limit; this only keeps a bad config from exhausting memory).
pub const MAX_EXTRA_IDS: u64 = 100_000;

/// A special-token setting of `tokenizer_config.json`: a string or an AddedToken object (`{"content": ...}`).
pub(crate) fn config_token(cfg: &Value, key: &str, default: &str) -> String {
    match cfg.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o.get("content").and_then(|c| c.as_str()).unwrap_or(default).to_string(),
        _ => default.to_string(),
    }
}

/// An `added_tokens_decoder` entry (a serialized AddedToken, or a bare string, which transformers makes special).
fn config_added_token(v: &Value) -> Option<AddedToken> {
    match v {
        Value::String(s) => Some(AddedToken::from(s.clone(), true)),
        Value::Object(o) => {
            let content = o.get("content")?.as_str()?;
            let flag = |k: &str, d: bool| o.get(k).and_then(|b| b.as_bool()).unwrap_or(d);
            let special = flag("special", false);
            Some(
                AddedToken::from(content, special)
                    .single_word(flag("single_word", false))
                    .lstrip(flag("lstrip", false))
                    .rstrip(flag("rstrip", false))
                    .normalized(flag("normalized", !special)),
            )
        }
        _ => None,
    }
}

/// Build the T5 tokenizer from a SentencePiece model and `tokenizer_config.json` (`Value::Null` or `{}` when absent),
/// as transformers 5.24 does for a checkpoint without `tokenizer.json` (`T5Tokenizer` built through
/// `TokenizersBackend._convert_from_sentencepiece` + `T5Converter.convert_from_spm`):
///
/// - model: `Unigram` over the pieces (piece, score) followed by `<extra_id_{N-1}>` … `<extra_id_0>` (score 0),
///   N = `extra_ids` (default 100), so `<extra_id_0>` is the last id; unk id from `trainer_spec.unk_id`;
///   no byte fallback (transformers' T5 converter never enables it, whatever `trainer_spec.byte_fallback` says);
/// - normalizer: `Precompiled(normalizer_spec.precompiled_charsmap)` (none when the model has no charsmap);
/// - pre-tokenizer: `Sequence[WhitespaceSplit, Metaspace("▁", prepend_scheme "always", split true)]`;
///   decoder: the same `Metaspace`. transformers 5.24's `T5Tokenizer` builds these whatever `legacy` and
///   `add_prefix_space` say (the converter's `legacy: false` → `prepend_scheme: "first"` is not on T5's path any
///   more), and so does this;
/// - added tokens, in transformers' order (which decides the ids of tokens not in the vocabulary):
///   `added_tokens_decoder` by id with its flags; the named special tokens (`bos/eos/unk/sep/pad/cls/mask_token`
///   when set; eos `</s>`, unk `<unk>`, pad `<pad>` by default); the model's CONTROL pieces (special) and
///   USER_DEFINED pieces (not special); the sentinels `<extra_id_0>` … (special). Special and non-normalized
///   unless the config says otherwise;
/// - post-processor: `TemplateProcessing` single `$A </s>`, pair `$A </s> $B </s>` (the eos token's id).
///
/// `additional_special_tokens` in the config is not read: transformers replaces it with the model's
/// control/user-defined pieces on this path (tokens a config lists there are normally in `added_tokens_decoder`).
pub fn t5_tokenizer(model: &SpModel, cfg: &Value) -> Result<HfTokenizer> {
    if model.trainer_spec.model_type != 1 {
        return Err(err(format!(
            "model_type {} is not UNIGRAM (1); only Unigram SentencePiece models are supported",
            model.trainer_spec.model_type
        )));
    }
    let extra_ids = match cfg.get("extra_ids") {
        None | Some(Value::Null) => 100,
        Some(v) => v
            .as_u64()
            .filter(|&n| n <= MAX_EXTRA_IDS)
            .ok_or_else(|| T5Error::Tokenizer(format!("tokenizer_config.json: extra_ids {v} is not an integer in 0..={MAX_EXTRA_IDS}")))?,
    };
    let mut vocab: Vec<(String, f64)> = model.pieces.iter().map(|p| (p.piece.clone(), f64::from(p.score))).collect();
    vocab.extend((0..extra_ids).rev().map(|i| (format!("<extra_id_{i}>"), 0.0)));
    let unigram = Unigram::from(vocab, Some(model.unk_id()), false).map_err(|e| err(format!("Unigram: {e}")))?;

    let mut tk = HfTokenizer::new(unigram);
    // the normalizer goes first: added tokens with `normalized: true` are matched on normalized text
    let charsmap = &model.normalizer_spec.precompiled_charsmap;
    if !charsmap.is_empty() {
        tk.with_normalizer(Some(Precompiled::from(charsmap).map_err(|e| err(format!("precompiled_charsmap: {e}")))?));
    }
    tk.with_pre_tokenizer(Some(PreSequence::new(vec![
        WhitespaceSplit.into(),
        Metaspace::new('▁', PrependScheme::Always, true).into(),
    ])));
    tk.with_decoder(Some(Metaspace::new('▁', PrependScheme::Always, true)));

    let mut added: Vec<AddedToken> = Vec::new();
    if let Some(Value::Object(dec)) = cfg.get("added_tokens_decoder") {
        let mut entries: Vec<(u64, &Value)> = Vec::new();
        for (k, v) in dec {
            let id = k.parse::<u64>().map_err(|_| T5Error::Tokenizer(format!("tokenizer_config.json: added_tokens_decoder key {k:?} is not an id")))?;
            entries.push((id, v));
        }
        entries.sort_by_key(|(id, _)| *id);
        for (id, v) in entries {
            added.push(config_added_token(v).ok_or_else(|| T5Error::Tokenizer(format!("tokenizer_config.json: added_tokens_decoder[{id}] is not a token")))?);
        }
    }
    let defaults = [("bos_token", None), ("eos_token", Some("</s>")), ("unk_token", Some("<unk>")), ("sep_token", None), ("pad_token", Some("<pad>")), ("cls_token", None), ("mask_token", None)];
    for (key, default) in defaults {
        if matches!(cfg.get(key), Some(Value::String(_) | Value::Object(_))) || default.is_some() {
            added.push(AddedToken::from(config_token(cfg, key, default.unwrap_or_default()), true));
        }
    }
    for p in &model.pieces {
        match p.kind {
            PieceType::Control => added.push(AddedToken::from(p.piece.clone(), true)),
            PieceType::UserDefined => added.push(AddedToken::from(p.piece.clone(), false).normalized(false)),
            _ => {}
        }
    }
    added.extend((0..extra_ids).map(|i| AddedToken::from(format!("<extra_id_{i}>"), true)));
    let mut seen = std::collections::HashSet::new();
    added.retain(|t| !t.content.is_empty() && seen.insert(t.content.clone()));
    tk.add_tokens(&added);

    let eos = config_token(cfg, "eos_token", "</s>");
    let eos_id = tk.token_to_id(&eos).ok_or_else(|| err(format!("no id for the eos token {eos:?}")))?;
    let a = json!({"Sequence": {"id": "A", "type_id": 0}});
    let b = json!({"Sequence": {"id": "B", "type_id": 0}});
    let e = json!({"SpecialToken": {"id": eos, "type_id": 0}});
    let template: TemplateProcessing = serde_json::from_value(json!({
        "type": "TemplateProcessing",
        "single": [a, e],
        "pair": [a, e, b, e],
        "special_tokens": {eos.as_str(): {"id": eos, "ids": [eos_id], "tokens": [eos]}},
    }))
    .map_err(|e| err(format!("post-processor: {e}")))?;
    tk.with_post_processor(Some(template));
    Ok(tk)
}

