//! [`WasmModel`]: a loaded T5 on the CPU (`forward`, `encode`, `generate`), its step-wise generation
//! [`WasmGeneration`], and the checks of `forward` / `generate` inputs shared with the WebGPU model (gpu.rs).

use crate::{bad_input, check_mask_values, debug_trap_if_armed, heads, js_err, make_batch, options, ForwardResult, GenerateOptions, GenerateResult, JsResult};
use t5_core::config::{GenerationConfig, T5Config};
use t5_core::generate::{generate, Generation};
use t5_core::model::{Batch, ModelKind, T5};
use t5_core::{Cpu, T5Error};
use wasm_bindgen::prelude::*;

pub(crate) fn parse_kind(kind: &str) -> JsResult<ModelKind> {
    match kind {
        "seq2seq-lm" => Ok(ModelKind::ConditionalGeneration),
        "t5-model" => Ok(ModelKind::Model),
        "encoder" => Ok(ModelKind::Encoder),
        other => Err(bad_input(format!("unknown model kind {other:?}: expected \"seq2seq-lm\", \"t5-model\" or \"encoder\""))),
    }
}

pub(crate) fn kind_name(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::ConditionalGeneration => "seq2seq-lm",
        ModelKind::Model => "t5-model",
        ModelKind::Encoder => "encoder",
    }
}

/// A loaded T5 (encoder-decoder with LM head, encoder-decoder without head, or encoder only).
#[wasm_bindgen]
pub struct WasmModel {
    pub(crate) model: T5<Cpu>,
    pub(crate) generation: GenerationConfig,
    /// the transformers class (heads.rs)
    pub(crate) task: t5_core::heads::Task,
    pub(crate) head: Option<t5_core::heads::Head<Cpu>>,
}

#[wasm_bindgen]
impl WasmModel {
    /// "seq2seq-lm" | "t5-model" | "encoder" | "seq-cls" | "token-cls" | "qa"
    #[wasm_bindgen(getter)]
    pub fn kind(&self) -> String {
        heads::task_name(self.task).unwrap_or_else(|| kind_name(self.model.kind)).into()
    }

    /// CPU threads this model's work is split across (1: the calling thread only).
    #[wasm_bindgen(getter, js_name = numThreads)]
    pub fn num_threads(&self) -> u32 {
        self.model.backend().threads() as u32
    }

    /// Weights stored in another form than the requested dtype, as JSON `[[name, dtype], ...]`.
    #[wasm_bindgen(js_name = weightFallbacks)]
    pub fn weight_fallbacks(&self) -> String {
        let v: Vec<(&str, &str)> = self.model.weight_fallbacks().iter().map(|(n, d)| (n.as_str(), d.name())).collect();
        serde_json::to_string(&v).unwrap_or_else(|_| "[]".into())
    }

    /// Resident bytes of the weights.
    #[wasm_bindgen(getter, js_name = weightBytes)]
    pub fn weight_bytes(&self) -> f64 {
        self.model.weight_bytes() as f64
    }

    /// The model config as JSON (transformers field names).
    pub fn config(&self) -> String {
        self.model.config.to_json()
    }

    /// The generation config the model was loaded with, as JSON.
    #[wasm_bindgen(js_name = generationConfig)]
    pub fn generation_config(&self) -> String {
        serde_json::to_string(&self.generation).unwrap_or_else(|_| "{}".into())
    }

    /// Encoder `last_hidden_state`, `[batch, seq, d_model]` flat.
    pub fn encode(&self, ids: Vec<u32>, mask: Option<Vec<u32>>, batch: usize, seq: usize) -> JsResult<Vec<f32>> {
        let input = make_batch(ids, mask, batch, seq)?;
        let hidden = self.model.encode(&input).map_err(js_err)?;
        Ok(hidden.data)
    }

    /// transformers' `forward(input_ids, attention_mask, decoder_input_ids | labels, decoder_attention_mask)`.
    /// `labels` use -100 for ignored positions.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        ids: Vec<u32>,
        mask: Option<Vec<u32>>,
        batch: usize,
        seq: usize,
        decoder_ids: Option<Vec<u32>>,
        labels: Option<Vec<i32>>,
        decoder_mask: Option<Vec<u32>>,
    ) -> JsResult<ForwardResult> {
        let a = ForwardArgs::new(&self.model.config, self.model.kind, ids, mask, batch, seq, decoder_ids, labels, decoder_mask)?;
        let out = self.model.forward(&a.input, a.decoder_ids.as_deref(), a.labels.as_deref(), a.decoder_mask.as_deref()).map_err(js_err)?;
        Ok(ForwardResult::new(out, batch, a.dec_len))
    }

    /// Generation as transformers' `generate` (greedy, sampling, beam search, beam sampling; logits
    /// processors; static or growing KV cache), all of it at once; `options`: see [`GenerateOptions`] (over the
    /// model's generation config). The facade drives [`Self::start_generation`] instead, yielding between steps.
    pub fn generate(&self, ids: Vec<u32>, mask: Option<Vec<u32>>, batch: usize, seq: usize, options: JsValue) -> JsResult<GenerateResult> {
        let (input, gen) = self.generation_input(ids, mask, batch, seq, options)?;
        let out = generate(&self.model, &input, &gen, |_| true).map_err(js_err)?;
        Ok(GenerateResult::new(out, None))
    }

    /// Generation one step at a time: the returned [`WasmGeneration`] runs a decoder step per
    /// `step(model)` call, so that the caller can yield to its event loop between steps (async
    /// iteration, cancellation by an `AbortSignal`).
    #[wasm_bindgen(js_name = startGeneration)]
    pub fn start_generation(&self, ids: Vec<u32>, mask: Option<Vec<u32>>, batch: usize, seq: usize, options: JsValue) -> JsResult<WasmGeneration> {
        debug_trap_if_armed();
        let (input, gen) = self.generation_input(ids, mask, batch, seq, options)?;
        let inner = Generation::new(&self.model, &input, &gen).map_err(js_err)?;
        Ok(WasmGeneration { inner: Some(inner) })
    }

    fn generation_input(&self, ids: Vec<u32>, mask: Option<Vec<u32>>, batch: usize, seq: usize, options: JsValue) -> JsResult<(Batch, GenerationConfig)> {
        generation_input(&self.model.config, self.model.kind, &self.generation, ids, mask, batch, seq, options)
    }
}

/// Encoder input and generation config of a `generate` call, on either device: options checked once, here.
#[allow(clippy::too_many_arguments)]
pub(crate) fn generation_input(config: &T5Config, kind: ModelKind, base: &GenerationConfig, ids: Vec<u32>, mask: Option<Vec<u32>>, batch: usize, seq: usize, options: JsValue) -> JsResult<(Batch, GenerationConfig)> {
    if kind != ModelKind::ConditionalGeneration {
        return Err(bad_input("generate needs a model with an LM head (T5ForConditionalGeneration)"));
    }
    let options = GenerateOptions::from_js(options)?;
    let input = make_batch(ids, mask, batch, seq)?;
    let gen = options::generation_config(base, &options, config.vocab_size).map_err(js_err)?;
    Ok((input, gen))
}

/// The checked inputs of the base classes' `forward`, on either device.
pub(crate) struct ForwardArgs {
    pub input: Batch,
    pub decoder_ids: Option<Vec<u32>>,
    /// as the engine takes them (T5Model computes no loss: none when decoder ids are given)
    pub labels: Option<Vec<i64>>,
    pub decoder_mask: Option<Vec<u32>>,
    /// decoder positions per row
    pub dec_len: Option<usize>,
}

impl ForwardArgs {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(config: &T5Config, kind: ModelKind, ids: Vec<u32>, mask: Option<Vec<u32>>, batch: usize, seq: usize, decoder_ids: Option<Vec<u32>>, labels: Option<Vec<i32>>, decoder_mask: Option<Vec<u32>>) -> JsResult<Self> {
        let input = make_batch(ids, mask, batch, seq)?;
        let mut dec_len = None;
        if kind != ModelKind::Encoder {
            // decoder rows: from decoder_input_ids, else from labels (shifted right)
            let n = match (&decoder_ids, &labels) {
                (Some(d), _) => d.len(),
                (None, Some(l)) => l.len(),
                (None, None) => return Err(bad_input("decoder_input_ids or labels are required")),
            };
            if n == 0 || n % batch != 0 {
                return Err(bad_input(format!("{n} decoder positions do not split into a batch of {batch}")));
            }
            if let Some(l) = &labels {
                if l.len() != n {
                    return Err(bad_input(format!("labels have {} values, decoder_input_ids {n}", l.len())));
                }
                if kind == ModelKind::ConditionalGeneration {
                    let vocab = config.vocab_size as i64;
                    if let Some(&bad) = l.iter().find(|&&x| x != -100 && (x < 0 || x as i64 >= vocab)) {
                        return Err(bad_input(format!("label {bad} is neither -100 nor a token id below the vocabulary size {vocab}")));
                    }
                }
                if decoder_ids.is_none() {
                    if config.decoder_start_token_id.is_none() || config.pad_token_id.is_none() {
                        return Err(js_err(T5Error::BadConfig("shifting labels right needs decoder_start_token_id and pad_token_id in the config".into())));
                    }
                    if let Some(&bad) = l.iter().find(|&&x| x < 0 && x != -100) {
                        return Err(bad_input(format!("label {bad} is not a token id or -100")));
                    }
                }
            }
            if let Some(m) = &decoder_mask {
                if m.len() != n {
                    return Err(bad_input(format!("decoder_attention_mask has {} values, decoder_input_ids {n}", m.len())));
                }
                check_mask_values("decoder_attention_mask", m)?;
            }
            dec_len = Some(n / batch);
        }
        let labels = if kind == ModelKind::Model && decoder_ids.is_some() { None } else { labels.map(|l| l.into_iter().map(i64::from).collect()) };
        Ok(ForwardArgs { input, decoder_ids, labels, decoder_mask, dec_len })
    }
}

/// A generation in progress (see [`WasmModel::start_generation`]).
#[wasm_bindgen]
pub struct WasmGeneration {
    pub(crate) inner: Option<Generation<Cpu>>,
}

#[wasm_bindgen]
impl WasmGeneration {
    /// Run one decoder step with the model the generation was started from: the step's tokens (one per
    /// row; beam search: per input), or `undefined` once generation has finished.
    pub fn step(&mut self, model: &WasmModel) -> JsResult<Option<Vec<u32>>> {
        let g = self.inner.as_mut().ok_or_else(|| bad_input("this generation has already finished"))?;
        Ok(g.step(&model.model).map_err(js_err)?.map(|s| s.tokens.to_vec()))
    }

    /// The sequences so far (all of them once `step` returned `undefined`), as [`WasmModel::generate`]
    /// returns them. The generation is then over.
    pub fn finish(&mut self) -> JsResult<GenerateResult> {
        let g = self.inner.take().ok_or_else(|| bad_input("this generation has already finished"))?;
        Ok(GenerateResult::new(g.finish(), None))
    }
}
