//! The transformers-named tokenizer methods of [`WasmTokenizer`] beyond encode / decode (its core is in lib.rs):
//! a tokenizer built from a vocabulary (`T5Tokenizer(vocab=…)`), `tokenize`, `convert_tokens_to_ids` with the unk
//! fallback, `get_special_tokens_mask`, and the files of `save_pretrained`. Structured results cross as JSON of
//! t5-core's serde structs.

use crate::{js_err, JsResult, WasmTokenizer};
use t5_core::tokenizer::{Tokenizer, VocabSpec};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
impl WasmTokenizer {
    /// transformers 5.24's `T5Tokenizer(vocab=…)`: `spec_json` is t5-core's `VocabSpec` (`{vocab: [[piece, score],
    /// …], extra_ids?, eos_token?, unk_token?, pad_token?, additional_special_tokens?, model_max_length?,
    /// padding_side?, clean_up_tokenization_spaces?}`); sentinels numbered descending as in the checkpoints.
    #[wasm_bindgen(js_name = fromVocab)]
    pub fn from_vocab(spec_json: &str) -> JsResult<WasmTokenizer> {
        let spec = VocabSpec::from_json(spec_json).map_err(js_err)?;
        Ok(WasmTokenizer { inner: Tokenizer::from_vocab(&spec).map_err(js_err)? })
    }

    /// transformers' `tokenize(text, pair, add_special_tokens)`.
    pub fn tokenize(&self, text: &str, pair: Option<String>, add_special_tokens: bool) -> JsResult<Vec<String>> {
        self.inner.tokenize(text, pair.as_deref(), add_special_tokens).map_err(js_err)
    }

    /// transformers' `convert_tokens_to_ids`: the unk id for unknown tokens (absent only without an unk token).
    #[wasm_bindgen(js_name = tokenToIdOrUnk)]
    pub fn token_to_id_or_unk(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id_or_unk(token)
    }

    #[wasm_bindgen(getter, js_name = unkTokenId)]
    pub fn unk_token_id(&self) -> Option<u32> {
        self.inner.unk_token_id()
    }

    /// transformers' `get_special_tokens_mask(ids0, ids1, already_has_special_tokens)`.
    #[wasm_bindgen(js_name = specialTokensMaskOf)]
    pub fn special_tokens_mask_of(&self, ids0: Vec<u32>, ids1: Option<Vec<u32>>, already_has_special_tokens: bool) -> JsResult<Vec<u32>> {
        self.inner.special_tokens_mask_of(&ids0, ids1.as_deref(), already_has_special_tokens).map_err(js_err)
    }

    /// `save_pretrained`'s files: JSON of t5-core's `SavedTokenizer` (`{tokenizer_json, tokenizer_config_json}`).
    #[wasm_bindgen(js_name = savedFiles)]
    pub fn saved_files(&self) -> JsResult<String> {
        let saved = self.inner.saved().map_err(js_err)?;
        serde_json::to_string(&saved).map_err(|e| js_err(t5_core::T5Error::Tokenizer(e.to_string())))
    }
}

/// `encodeDetailed`'s rows (windows, with overflowing tokens) concatenated: row `i` has `lengths[i]` tokens.
/// Offsets are UTF-16 indices (JavaScript string indices) into the text, pair or word a token comes from;
/// `sequence` / `words` are -1 where transformers has `None`; `sample` is `overflow_to_sample_mapping`.
#[wasm_bindgen(getter_with_clone)]
pub struct DetailedEncoding {
    pub ids: Vec<u32>,
    pub mask: Vec<u32>,
    pub lengths: Vec<u32>,
    pub starts: Vec<u32>,
    pub ends: Vec<u32>,
    pub special: Vec<u32>,
    pub sequence: Vec<i32>,
    pub words: Vec<i32>,
    pub sample: Vec<u32>,
}

/// `encodeWithOffsets`'s one row: ids, UTF-16 offsets, the special-tokens mask and per token its sequence
/// (0 = text, 1 = pair, -1 = added special token).
#[wasm_bindgen(getter_with_clone)]
pub struct OffsetsEncoding {
    pub ids: Vec<u32>,
    pub starts: Vec<u32>,
    pub ends: Vec<u32>,
    pub special: Vec<u32>,
    pub sequence: Vec<i32>,
}
