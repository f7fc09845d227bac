//! The WebGPU path of the bindings (wasm32 only): [`WasmModelBuilder::build_gpu`] →
//! [`WasmGpuModel`], whose methods return Promises because reading GPU buffers back is
//! asynchronous on the web. Numerics: t5-core's model code on `t5_gpu::Gpu`.
//!
//! Errors are JS `Error`s named by code as elsewhere, plus `WebGPUUnavailable` (no
//! `navigator.gpu` / adapter / device), `WebGPULimits`, `DeviceLost` and `WebGPUError`.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Float32Array, Object, Promise, Uint32Array};
use serde_json::Value;
use t5_core::config::GenerationConfig;
use t5_core::model::{Half, ModelKind, T5};
use t5_core::{T5Error, WeightDtype};
use t5_gpu::generate::{encode_async, forward_async, generate_async};
use t5_gpu::{Gpu, GpuError, GpuOptions};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::{bad_input, check_mask_values, generate_output, js_err, kind_name, make_batch, named_err, parse_kind, set, shape_array, JsResult, WasmModelBuilder};

fn gpu_err(e: GpuError) -> JsValue {
    match e {
        GpuError::Core(c) => js_err(c),
        other => named_err(other.code(), &other.to_string()),
    }
}

/// An open WebGPU device (`navigator.gpu` adapter + device with the adapter's limits).
#[wasm_bindgen]
pub struct WasmGpu {
    gpu: Gpu,
}

/// Open the WebGPU device. Rejects with `WebGPUUnavailable` (and the reason) when there is no
/// `navigator.gpu`, no adapter or no device. `max_chunk_bytes`: split weights into pieces of at
/// most this many bytes (default: the device's maxStorageBufferBindingSize / maxBufferSize).
#[wasm_bindgen(js_name = requestGpu)]
pub fn request_gpu(max_chunk_bytes: Option<f64>) -> Promise {
    future_to_promise(async move {
        let gpu = Gpu::new(GpuOptions { max_chunk_bytes: max_chunk_bytes.map(|m| m as u64), software_kernels: None, max_buffer_bytes: None, shader_f16: None, break_shader_f16_kernels: false }).await.map_err(gpu_err)?;
        Ok(WasmGpu { gpu }.into())
    })
}

#[wasm_bindgen]
impl WasmGpu {
    /// Adapter name, backend, limits as JSON.
    pub fn info(&self) -> String {
        info_json(&self.gpu)
    }
}

fn info_json(gpu: &Gpu) -> String {
    let i = gpu.info();
    serde_json::json!({
        "adapter": i.adapter, "backend": i.backend, "device_type": i.device_type,
        "max_storage_buffer_binding_size": i.max_storage_buffer_binding_size,
        "max_buffer_size": i.max_buffer_size, "shader_f16": i.shader_f16,
        "shader_f16_used": i.shader_f16_used, "shader_f16_error": i.shader_f16_error,
        "max_chunk_bytes": gpu.max_chunk_bytes(),
        "dispatches": gpu.dispatches(), "submits": gpu.submits(),
        "live_buffers": gpu.buffer_counter().live(),
    })
    .to_string()
}

#[wasm_bindgen]
impl WasmModelBuilder {
    /// Build the model on an open WebGPU device: weights are uploaded once (split to fit the
    /// device's limits). `setDtype("fp16")` first: float16 weights and transformers' float16
    /// activation numerics (see `t5_core::model::Half`); `setDtype("q8" | "q4")`: packed quantized
    /// weights, dequantized in the kernels. The shard bytes are released whether or not it succeeds.
    #[wasm_bindgen(js_name = buildGpu)]
    pub fn build_gpu(&mut self, gpu: &WasmGpu, kind: &str) -> JsResult<WasmGpuModel> {
        let kind = parse_kind(kind)?;
        let store = std::mem::take(&mut self.store);
        if store.names().is_empty() {
            return Err(js_err(T5Error::BadWeights { file: None, msg: "no weight files given".into() }));
        }
        gpu.gpu.check().map_err(gpu_err)?;
        // dtype fp16: transformers' float16 numerics (float16 weights and activations, fp32 `wo`, T5Block's
        // inf clamp); q8 / q4: the packed weights stay packed on the GPU (dequantized in the kernels), f32
        // activations, as on the CPU; bf16 runs on the CPU only
        let model = match self.dtype {
            WeightDtype::F32 => T5::load_half(self.config.clone(), &store, kind, gpu.gpu.clone(), Half::Off),
            WeightDtype::F16 => T5::load_half(self.config.clone(), &store, kind, gpu.gpu.clone(), Half::Guarded),
            d @ (WeightDtype::Q8 | WeightDtype::Q4) => T5::load_with_dtype(self.config.clone(), &store, kind, gpu.gpu.clone(), d),
            d => return Err(js_err(T5Error::BadConfig(format!("dtype {:?} runs on the CPU only; WebGPU runs \"fp32\", \"fp16\", \"q8\" and \"q4\"", d.name())))),
        }
        .map_err(js_err)?;
        drop(store);
        Ok(WasmGpuModel { model: RefCell::new(Some(Rc::new(model))), gpu: gpu.gpu.clone(), generation: self.generation.clone() })
    }
}

/// A T5 resident on a WebGPU device. Methods return Promises.
#[wasm_bindgen]
pub struct WasmGpuModel {
    model: RefCell<Option<Rc<T5<Gpu>>>>,
    gpu: Gpu,
    generation: GenerationConfig,
}

impl WasmGpuModel {
    fn live(&self) -> JsResult<Rc<T5<Gpu>>> {
        self.model.borrow().clone().ok_or_else(|| gpu_err(GpuError::Disposed))
    }
}

#[wasm_bindgen]
impl WasmGpuModel {
    #[wasm_bindgen(getter)]
    pub fn kind(&self) -> String {
        self.model.borrow().as_ref().map_or("disposed", |m| kind_name(m.kind)).into()
    }

    pub fn config(&self) -> JsResult<String> {
        Ok(self.live()?.config.to_json())
    }

    #[wasm_bindgen(js_name = generationConfig)]
    pub fn generation_config(&self) -> String {
        serde_json::to_string(&self.generation).unwrap_or_else(|_| "{}".into())
    }

    /// `{adapter, backend, device_type, max_storage_buffer_binding_size, max_buffer_size,
    /// shader_f16 (the adapter has it), shader_f16_used (the float16 model's matmuls use it),
    /// max_chunk_bytes, dispatches, submits, live_buffers}` as JSON.
    #[wasm_bindgen(js_name = deviceInfo)]
    pub fn device_info(&self) -> String {
        info_json(&self.gpu)
    }

    /// GPU buffers alive (0 after `dispose()` once nothing is in flight).
    #[wasm_bindgen(getter, js_name = liveBuffers)]
    pub fn live_buffers(&self) -> f64 {
        self.gpu.buffer_counter().live() as f64
    }

    /// Free every GPU buffer of the model. Later calls reject with `Disposed`.
    pub fn dispose(&self) {
        let m = self.model.borrow_mut().take();
        drop(m);
        self.gpu.dispose();
    }

    /// Destroy the device (testing device loss).
    #[wasm_bindgen(js_name = destroyDevice)]
    pub fn destroy_device(&self) {
        self.gpu.destroy_device();
    }

    /// Encoder `last_hidden_state` (Promise<Float32Array>).
    pub fn encode(&self, ids: Vec<u32>, mask: Option<Vec<u32>>, batch: usize, seq: usize) -> Promise {
        let run = || -> JsResult<_> { Ok((self.live()?, make_batch(ids, mask, batch, seq)?)) };
        let (model, input) = match run() {
            Ok(x) => x,
            Err(e) => return Promise::reject(&e),
        };
        future_to_promise(async move {
            let h = encode_async(&model, &input).await.map_err(gpu_err)?;
            Ok(Float32Array::from(h.data.as_slice()).into())
        })
    }

    /// As `WasmModel.forward`, resolving to the same object.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(&self, ids: Vec<u32>, mask: Option<Vec<u32>>, batch: usize, seq: usize, decoder_ids: Option<Vec<u32>>, labels: Option<Vec<i32>>, decoder_mask: Option<Vec<u32>>) -> Promise {
        let prep = || -> JsResult<_> {
            let model = self.live()?;
            let input = make_batch(ids, mask, batch, seq)?;
            let mut dec_len = None;
            if model.kind != ModelKind::Encoder {
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
                    let vocab = model.config.vocab_size as i64;
                    if model.kind == ModelKind::ConditionalGeneration {
                        if let Some(&bad) = l.iter().find(|&&x| x != -100 && (x < 0 || x as i64 >= vocab)) {
                            return Err(bad_input(format!("label {bad} is neither -100 nor a token id below the vocabulary size {vocab}")));
                        }
                    }
                    if decoder_ids.is_none() {
                        if model.config.decoder_start_token_id.is_none() || model.config.pad_token_id.is_none() {
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
            Ok((model, input, dec_len))
        };
        let (model, input, dec_len) = match prep() {
            Ok(x) => x,
            Err(e) => return Promise::reject(&e),
        };
        future_to_promise(async move {
            let labels64: Option<Vec<i64>> = labels.map(|l| l.into_iter().map(i64::from).collect());
            let labels_for_engine = if model.kind == ModelKind::Model && decoder_ids.is_some() { None } else { labels64.as_deref() };
            let out = forward_async(&model, &input, decoder_ids.as_deref(), labels_for_engine, decoder_mask.as_deref()).await.map_err(gpu_err)?;
            let obj = Object::new();
            set(&obj, "encoder_shape", shape_array(&out.encoder_last_hidden_state.shape));
            set(&obj, "encoder_last_hidden_state", Float32Array::from(out.encoder_last_hidden_state.data.as_slice()));
            if let Some(h) = out.decoder_last_hidden_state {
                set(&obj, "decoder_shape", shape_array(&h.shape));
                set(&obj, "decoder_last_hidden_state", Float32Array::from(h.data.as_slice()));
            }
            if let Some(l) = out.logits {
                let vocab = l.cols();
                set(&obj, "logits_shape", shape_array(&[batch, dec_len.unwrap_or(1), vocab]));
                set(&obj, "logits", Float32Array::from(l.data.as_slice()));
            }
            if let Some(loss) = out.loss {
                set(&obj, "loss", loss as f64);
            }
            Ok(obj.into())
        })
    }

    /// Generation as `WasmModel.generate` (greedy, sampling, beam search, every processor; each
    /// step's logits reduced on the GPU: see `t5_gpu::generate::generate_async`); resolves to
    /// `{sequences, batch, length, sequences_scores?, stats}` where `stats` = `{prefill_dispatches,
    /// dispatches_per_step, fused_per_step, submits_per_step, read_back_per_step,
    /// bind_groups_per_step, bind_groups_created, steps}`.
    /// `on_step(index, tokens: Uint32Array)` is called after every step; a falsy return stops.
    pub fn generate(&self, ids: Vec<u32>, mask: Option<Vec<u32>>, batch: usize, seq: usize, options_json: Option<String>, on_step: Option<js_sys::Function>) -> Promise {
        let prep = || -> JsResult<_> {
            let model = self.live()?;
            if model.kind != ModelKind::ConditionalGeneration {
                return Err(bad_input("generate needs a model with an LM head (T5ForConditionalGeneration)"));
            }
            let input = make_batch(ids, mask, batch, seq)?;
            let mut gen = self.generation.clone();
            if let Some(text) = options_json {
                let v: Value = serde_json::from_str(&text).map_err(|e| js_err(T5Error::BadConfig(format!("generation options: {e}"))))?;
                gen.apply_json(&v).map_err(js_err)?;
            }
            let vocab = model.config.vocab_size;
            for (what, id) in [("decoder_start_token_id", gen.decoder_start_token_id), ("pad_token_id", gen.pad_token_id)] {
                if id as usize >= vocab {
                    return Err(bad_input(format!("{what} {id} is outside the vocabulary of {vocab}")));
                }
            }
            Ok((model, input, gen))
        };
        let (model, input, gen) = match prep() {
            Ok(x) => x,
            Err(e) => return Promise::reject(&e),
        };
        future_to_promise(async move {
            let step = |st: t5_core::generate::Step<'_>| match &on_step {
                Some(f) => f.call2(&JsValue::NULL, &JsValue::from(st.index as u32), &Uint32Array::from(st.tokens)).map(|v| v.is_truthy()).unwrap_or(false),
                None => true,
            };
            let (out, stats) = generate_async(&model, &input, &gen, step).await.map_err(gpu_err)?;
            let obj = generate_output(out);
            let s = Object::new();
            set(&s, "prefill_dispatches", stats.prefill_dispatches as f64);
            set(&s, "dispatches_per_step", stats.dispatches_per_step as f64);
            set(&s, "fused_per_step", stats.fused_per_step as f64);
            set(&s, "submits_per_step", stats.submits_per_step as f64);
            set(&s, "read_back_per_step", stats.read_back_per_step as f64);
            set(&s, "bind_groups_per_step", stats.bind_groups_per_step as f64);
            set(&s, "bind_groups_created", stats.bind_groups_created as f64);
            set(&s, "steps", stats.steps as u32);
            set(&obj, "stats", s);
            Ok(obj.into())
        })
    }
}
