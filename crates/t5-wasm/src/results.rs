//! What `generate`, `forward` and `forwardFull` return across the boundary, as exported structs: wasm-bindgen writes their
//! TypeScript types into `pkg/t5_web.d.ts`, so the facade reads typed fields (no hand-set object keys, no casts).
//! The facade copies the fields out and frees the struct.

use t5_core::generate::GenerateOutput;
use crate::heads::WasmCache;
use t5_core::model::Seq2SeqOutput;
use t5_core::Tensor;
use wasm_bindgen::prelude::*;

/// A generation's sequences: `batch` rows (inputs × num_return_sequences) of `length` ids, concatenated, each row
/// starting with the decoder start token and padded as transformers pads them; `sequences_scores` for beam search;
/// `stats` for WebGPU.
#[wasm_bindgen(getter_with_clone)]
pub struct GenerateResult {
    pub sequences: Vec<u32>,
    pub batch: u32,
    pub length: u32,
    pub sequences_scores: Option<Vec<f32>>,
    pub stats: Option<GpuGenerateStats>,
}

impl GenerateResult {
    pub(crate) fn new(out: GenerateOutput, stats: Option<GpuGenerateStats>) -> Self {
        let rows = out.sequences;
        let length = rows.iter().map(Vec::len).max().unwrap_or(0);
        GenerateResult { sequences: rows.concat(), batch: rows.len() as u32, length: length as u32, sequences_scores: out.sequences_scores, stats }
    }
}

/// What one WebGPU generation recorded (dispatches / submits from the second decode step).
#[wasm_bindgen]
#[derive(Clone, Copy, Debug)]
pub struct GpuGenerateStats {
    pub prefill_dispatches: f64,
    pub dispatches_per_step: f64,
    pub fused_per_step: f64,
    pub submits_per_step: f64,
    pub read_back_per_step: f64,
    /// top-p without top-k: steps whose 128 candidates per row left the cutoff uncertain, so the whole rows were
    /// read back as well
    pub top_p_fallbacks: f64,
    /// top-p without top-k: steps decided from each row's candidates and normaliser alone
    pub top_p_decided: f64,
    /// steps that read the whole logits rows back (the top-p fallbacks, and every step of a search whose
    /// processors the device reduction does not serve)
    pub whole_row_steps: f64,
    pub bind_groups_per_step: f64,
    pub bind_groups_created: f64,
    pub steps: f64,
}

/// transformers' `forward` outputs of the base classes, flat row-major with their dims (logits `[batch, t, vocab]`).
#[wasm_bindgen(getter_with_clone)]
pub struct ForwardResult {
    pub encoder_last_hidden_state: Vec<f32>,
    pub encoder_shape: Vec<u32>,
    pub decoder_last_hidden_state: Option<Vec<f32>>,
    pub decoder_shape: Option<Vec<u32>>,
    pub logits: Option<Vec<f32>>,
    pub logits_shape: Option<Vec<u32>>,
    pub loss: Option<f64>,
}

fn dims(shape: &[usize]) -> Vec<u32> {
    shape.iter().map(|&d| d as u32).collect()
}

impl ForwardResult {
    /// `dec_len`: decoder positions per row (the engine's logits are `[batch * t, vocab]`).
    pub(crate) fn new(out: Seq2SeqOutput, batch: usize, dec_len: Option<usize>) -> Self {
        let (decoder_shape, decoder_last_hidden_state) = match out.decoder_last_hidden_state {
            Some(h) => (Some(dims(&h.shape)), Some(h.data)),
            None => (None, None),
        };
        let (logits_shape, logits) = match out.logits {
            Some(l) => (Some(dims(&[batch, dec_len.unwrap_or(1), l.cols()])), Some(l.data)),
            None => (None, None),
        };
        ForwardResult {
            encoder_shape: dims(&out.encoder_last_hidden_state.shape),
            encoder_last_hidden_state: out.encoder_last_hidden_state.data,
            decoder_last_hidden_state,
            decoder_shape,
            logits,
            logits_shape,
            loss: out.loss.map(f64::from),
        }
    }
}

/// One tensor of `forwardFull` / `pastKeyValues`: flat row-major `data` with its `dims`.
#[wasm_bindgen(getter_with_clone)]
#[derive(Clone)]
pub struct TensorData {
    pub data: Vec<f32>,
    pub dims: Vec<u32>,
}

impl From<&Tensor> for TensorData {
    fn from(t: &Tensor) -> Self {
        TensorData { data: t.data.clone(), dims: dims(&t.shape) }
    }
}

impl From<Tensor> for TensorData {
    fn from(t: Tensor) -> Self {
        TensorData { dims: dims(&t.shape), data: t.data }
    }
}

/// transformers' `forward` outputs of every class (`WasmModel.forwardFull`); absent fields are `undefined`.
/// The decoder cache is not a field: [`FullForwardResult::take_cache`] moves it out (once).
#[wasm_bindgen(getter_with_clone)]
pub struct FullForwardResult {
    pub loss: Option<f64>,
    pub problem_type: Option<String>,
    pub logits: Option<TensorData>,
    pub start_logits: Option<TensorData>,
    pub end_logits: Option<TensorData>,
    pub encoder_last_hidden_state: Option<TensorData>,
    pub decoder_last_hidden_state: Option<TensorData>,
    pub encoder_hidden_states: Option<Vec<TensorData>>,
    pub encoder_attentions: Option<Vec<TensorData>>,
    pub decoder_hidden_states: Option<Vec<TensorData>>,
    pub decoder_attentions: Option<Vec<TensorData>>,
    pub cross_attentions: Option<Vec<TensorData>>,
    pub(crate) cache: Option<WasmCache>,
}

#[wasm_bindgen]
impl FullForwardResult {
    /// The updated decoder cache (`use_cache` / `past_key_values`), moved out: a second call gives `undefined`.
    #[wasm_bindgen(js_name = takeCache)]
    pub fn take_cache(&mut self) -> Option<WasmCache> {
        self.cache.take()
    }
}

/// One decoder layer of transformers' legacy cache tuple, each `[batch, heads, length, d_kv]`.
#[wasm_bindgen(getter_with_clone)]
pub struct CacheLayer {
    pub self_key: TensorData,
    pub self_value: TensorData,
    pub cross_key: TensorData,
    pub cross_value: TensorData,
}
