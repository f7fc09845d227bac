//! transformers' tokenizer methods beyond encode / decode: `tokenize`, `convert_tokens_to_ids` (unknown tokens →
//! the unk id), `get_special_tokens_mask(ids, ids1, already_has_special_tokens)` and `save_pretrained`'s two files.

use super::Tokenizer;
use crate::error::{Result, T5Error};
use serde::Serialize;
use tokenizers::PostProcessor;

/// What `save_pretrained` / `save_vocabulary` write: `tokenizer.json` and `tokenizer_config.json` (the keys
/// transformers 5.24 writes for a T5 tokenizer). Loading the two back gives identical ids.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SavedTokenizer {
    pub tokenizer_json: String,
    pub tokenizer_config_json: String,
}

/// `tokenizer_config.json` as transformers 5.24 writes it for `T5Tokenizer`, plus the settings t5-web reads.
#[derive(Serialize)]
struct TokenizerConfigFile<'a> {
    backend: &'static str,
    tokenizer_class: &'static str,
    eos_token: Option<String>,
    unk_token: &'a str,
    pad_token: &'a str,
    extra_ids: usize,
    extra_special_tokens: Vec<String>,
    /// transformers writes "no limit" as 1e30
    model_max_length: f64,
    padding_side: &'static str,
    clean_up_tokenization_spaces: bool,
}

impl Tokenizer {
    /// Id of the `unk_token` (tokenizer_config.json's, default `<unk>`), if the vocabulary has it.
    pub fn unk_token_id(&self) -> Option<u32> {
        self.inner.token_to_id(&self.unk_token)
    }

    /// transformers' `convert_tokens_to_ids(token)`: the token's id, the unk id for a token not in the
    /// vocabulary, `None` only when there is no unk token either.
    pub fn token_to_id_or_unk(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token).or_else(|| self.unk_token_id())
    }

    /// transformers' `tokenize(text, pair, add_special_tokens)`: the token strings of the encoding.
    pub fn tokenize(&self, text: &str, pair: Option<&str>, add_special_tokens: bool) -> Result<Vec<String>> {
        let input = match pair {
            None => tokenizers::EncodeInput::Single(text.into()),
            Some(p) => tokenizers::EncodeInput::Dual(text.into(), p.into()),
        };
        let enc = self.inner.encode(input, add_special_tokens).map_err(|e| T5Error::Tokenizer(e.to_string()))?;
        Ok(enc.get_tokens().to_vec())
    }

    /// transformers' `get_special_tokens_mask(ids0, ids1, already_has_special_tokens)`. With
    /// `already_has_special_tokens`: 1 for each id that is a special token (`all_special_ids`), and a second sequence
    /// is an error, as in transformers. Without it: the mask of the sequence(s) once the post-processor adds its
    /// tokens (`ids0 </s>` → `[0…0, 1]`, `ids0 </s> ids1 </s>` → `[0…0, 1, 0…0, 1]`), as transformers 4's T5
    /// tokenizer (5.24's raises NotImplementedError there).
    pub fn special_tokens_mask_of(&self, ids0: &[u32], ids1: Option<&[u32]>, already_has_special_tokens: bool) -> Result<Vec<u32>> {
        if already_has_special_tokens {
            if ids1.is_some() {
                return Err(T5Error::BadInput(
                    "get_special_tokens_mask: a second sequence cannot be given with already_has_special_tokens (the ids are already formatted)".into(),
                ));
            }
            return Ok(self.special_tokens_mask(ids0));
        }
        let added = self.inner.get_post_processor().map_or(0, |p| p.added_tokens(ids1.is_some()));
        let mut out = vec![0u32; ids0.len()];
        match (added, ids1) {
            (0, None) => {}
            (0, Some(b)) => out.extend(std::iter::repeat_n(0, b.len())),
            (1, None) => out.push(1),
            (2, Some(b)) => {
                out.push(1);
                out.extend(std::iter::repeat_n(0, b.len()));
                out.push(1);
            }
            (n, _) => {
                return Err(T5Error::Tokenizer(format!(
                    "get_special_tokens_mask: the post-processor adds {n} tokens, not T5's </s> per sequence; pass already_has_special_tokens: true with encoded ids"
                )))
            }
        }
        Ok(out)
    }

    /// `tokenizer.json` + `tokenizer_config.json` for `save_pretrained` (see [`SavedTokenizer`]).
    pub fn saved(&self) -> Result<SavedTokenizer> {
        let sentinels: Vec<String> = self.sentinels().into_iter().map(|(t, _)| t).collect();
        let cfg = TokenizerConfigFile {
            backend: "tokenizers",
            tokenizer_class: "T5Tokenizer",
            eos_token: self.eos_id.and_then(|id| self.inner.id_to_token(id)),
            unk_token: &self.unk_token,
            pad_token: &self.pad_token,
            extra_ids: sentinels.len(),
            extra_special_tokens: sentinels,
            model_max_length: self.model_max_length.map_or(1e30, |m| m as f64),
            padding_side: if self.padding_left { "left" } else { "right" },
            clean_up_tokenization_spaces: self.clean_up_tokenization_spaces,
        };
        Ok(SavedTokenizer {
            tokenizer_json: self.to_json(true)?,
            tokenizer_config_json: serde_json::to_string_pretty(&cfg).map_err(|e| T5Error::Tokenizer(format!("tokenizer_config.json: {e}")))?,
        })
    }
}
