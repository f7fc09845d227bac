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
/// The tensors are moved out by the `take*` methods (copied once into JS memory and freed here; a getter would first
/// copy them in wasm memory, which a large batch's logits may not have room for).
#[wasm_bindgen(getter_with_clone)]
pub struct ForwardResult {
    encoder_last_hidden_state: Vec<f32>,
    pub encoder_shape: Vec<u32>,
    decoder_last_hidden_state: Option<Vec<f32>>,
    pub decoder_shape: Option<Vec<u32>>,
    logits: Option<Vec<f32>>,
    pub logits_shape: Option<Vec<u32>>,
    pub loss: Option<f64>,
}

#[wasm_bindgen]
impl ForwardResult {
    /// The encoder's last hidden state, moved out (a second call gives an empty array).
    #[wasm_bindgen(js_name = takeEncoderLastHiddenState)]
    pub fn take_encoder_last_hidden_state(&mut self) -> Vec<f32> {
        std::mem::take(&mut self.encoder_last_hidden_state)
    }

    /// The decoder's last hidden state (classes with a decoder), moved out.
    #[wasm_bindgen(js_name = takeDecoderLastHiddenState)]
    pub fn take_decoder_last_hidden_state(&mut self) -> Option<Vec<f32>> {
        self.decoder_last_hidden_state.take()
    }

    /// The LM head's logits, moved out.
    #[wasm_bindgen(js_name = takeLogits)]
    pub fn take_logits(&mut self) -> Option<Vec<f32>> {
        self.logits.take()
    }
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

/// One tensor of `forwardFull` / `pastKeyValues`: flat row-major data ([`TensorData::take_data`]) with its `dims`.
#[wasm_bindgen(getter_with_clone)]
#[derive(Clone)]
pub struct TensorData {
    pub(crate) data: Vec<f32>,
    pub dims: Vec<u32>,
}

#[wasm_bindgen]
impl TensorData {
    /// The values, moved out: copied once into JS memory and freed here (a getter would first copy them in wasm
    /// memory); a second call gives an empty array.
    #[wasm_bindgen(js_name = takeData)]
    pub fn take_data(&mut self) -> Vec<f32> {
        std::mem::take(&mut self.data)
    }
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

/// transformers' `forward` outputs of every class (`WasmModel.forwardFull`); absent outputs are `undefined`.
/// The tensors are not fields (a getter would copy them in wasm memory, doubling what `output_attentions` of a
/// long input takes there): [`FullForwardResult::take_tensor`], [`FullForwardResult::take_list`] and
/// [`FullForwardResult::take_cache`] move them out, once.
#[wasm_bindgen(getter_with_clone)]
pub struct FullForwardResult {
    pub loss: Option<f64>,
    pub problem_type: Option<String>,
    pub(crate) logits: Option<TensorData>,
    pub(crate) start_logits: Option<TensorData>,
    pub(crate) end_logits: Option<TensorData>,
    pub(crate) encoder_last_hidden_state: Option<TensorData>,
    pub(crate) decoder_last_hidden_state: Option<TensorData>,
    pub(crate) encoder_hidden_states: Option<Vec<TensorData>>,
    pub(crate) encoder_attentions: Option<Vec<TensorData>>,
    pub(crate) decoder_hidden_states: Option<Vec<TensorData>>,
    pub(crate) decoder_attentions: Option<Vec<TensorData>>,
    pub(crate) cross_attentions: Option<Vec<TensorData>>,
    pub(crate) cache: Option<WasmCache>,
}

/// The one-tensor outputs of a [`FullForwardResult`].
#[wasm_bindgen]
#[derive(Clone, Copy, Debug)]
pub enum FullTensor {
    Logits = "logits",
    StartLogits = "start_logits",
    EndLogits = "end_logits",
    EncoderLastHiddenState = "encoder_last_hidden_state",
    DecoderLastHiddenState = "decoder_last_hidden_state",
}

/// The per-block outputs of a [`FullForwardResult`] (`output_hidden_states` / `output_attentions`).
#[wasm_bindgen]
#[derive(Clone, Copy, Debug)]
pub enum FullList {
    EncoderHiddenStates = "encoder_hidden_states",
    EncoderAttentions = "encoder_attentions",
    DecoderHiddenStates = "decoder_hidden_states",
    DecoderAttentions = "decoder_attentions",
    CrossAttentions = "cross_attentions",
}

#[wasm_bindgen]
impl FullForwardResult {
    /// The updated decoder cache (`use_cache` / `past_key_values`), moved out: a second call gives `undefined`.
    #[wasm_bindgen(js_name = takeCache)]
    pub fn take_cache(&mut self) -> Option<WasmCache> {
        self.cache.take()
    }

    /// Output `which`, moved out: a second call gives `undefined`.
    #[wasm_bindgen(js_name = takeTensor)]
    pub fn take_tensor(&mut self, which: FullTensor) -> Option<TensorData> {
        match which {
            FullTensor::Logits => self.logits.take(),
            FullTensor::StartLogits => self.start_logits.take(),
            FullTensor::EndLogits => self.end_logits.take(),
            FullTensor::EncoderLastHiddenState => self.encoder_last_hidden_state.take(),
            FullTensor::DecoderLastHiddenState => self.decoder_last_hidden_state.take(),
            FullTensor::__Invalid => None,
        }
    }

    /// The tensors of output `which` (one per block, or per block and the stack output), moved out: a second call
    /// gives `undefined`.
    #[wasm_bindgen(js_name = takeList)]
    pub fn take_list(&mut self, which: FullList) -> Option<Vec<TensorData>> {
        match which {
            FullList::EncoderHiddenStates => self.encoder_hidden_states.take(),
            FullList::EncoderAttentions => self.encoder_attentions.take(),
            FullList::DecoderHiddenStates => self.decoder_hidden_states.take(),
            FullList::DecoderAttentions => self.decoder_attentions.take(),
            FullList::CrossAttentions => self.cross_attentions.take(),
            FullList::__Invalid => None,
        }
    }
}

