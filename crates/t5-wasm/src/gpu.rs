//! The WebGPU path of the bindings (wasm32 only): [`WasmModelBuilder::build_gpu`] →
//! [`WasmGpuModel`], whose methods return Promises because reading GPU buffers back is
//! asynchronous on the web. Numerics: t5-core's model code on `t5_gpu::Gpu`.
//!
//! Errors are JS `Error`s named by code as elsewhere, plus `WebGPUUnavailable` (no
//! `navigator.gpu` / adapter / device), `WebGPULimits`, `DeviceLost` and `WebGPUError`.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Float32Array, Promise, Uint32Array};
use t5_core::config::GenerationConfig;
use t5_core::model::{Half, T5};
use t5_core::{ModelKind, T5Error, WeightDtype};
use t5_core::heads::{Head, Task};
use t5_core::model::OutputFlags;
use t5_gpu::generate::{encode_async, forward_async, generate_async, task_forward_async};
use t5_gpu::{Gpu, GpuError, GpuOptions};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::heads::{full_result, i64s, labels_of, parse_task, task_name, task_of_kind};
use crate::{bad_input, generation_input, js_err, kind_name, make_batch, named_err, parse_kind, ForwardArgs, ForwardResult, GenerateResult, GpuGenerateStats, JsResult, WasmModelBuilder};

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
#[wasm_bindgen(js_name = requestGpu, unchecked_return_type = "Promise<WasmGpu>")]
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

/// Whether a model of `cfg` fits `gpu`'s buffer limits, from the config alone: a linear weight
/// (and the embedding table) is uploaded in row chunks, so one row must fit one storage buffer
/// (at most 4 bytes per element: the f32 form); a norm or position-bias table is one buffer.
/// Over a limit → [`T5Error::ModelTooLarge`] naming the weight and the device's limit.
fn check_gpu_buffers(cfg: &t5_core::T5Config, has_decoder: bool, gpu: &Gpu) -> Result<(), T5Error> {
    use t5_core::names::{block_weights, Stack, Weight};
    let gated = cfg.feed_forward().map(|f| f.gated).unwrap_or(false);
    let mut weights = vec![Weight::Shared, Weight::FinalNorm(Stack::Encoder)];
    weights.extend(block_weights(Stack::Encoder, 0, gated));
    if has_decoder {
        weights.push(Weight::FinalNorm(Stack::Decoder));
        weights.extend(block_weights(Stack::Decoder, 0, gated));
    }
    for w in weights {
        let shape = w.shape(cfg);
        let elems: u64 = if w.is_linear() { shape.get(1).copied().unwrap_or(1) as u64 } else { shape.iter().map(|&d| d as u64).product() };
        let what = format!("{} ({}{:?})", w.hf_name(), if w.is_linear() { "one row of " } else { "" }, shape);
        gpu.check_fits(&what, elems.saturating_mul(4)).map_err(|e| T5Error::ModelTooLarge(format!("the model does not fit this WebGPU device: {e}")))?;
    }
    Ok(())
}

#[wasm_bindgen]
impl WasmModelBuilder {
    /// Check, from the config alone and before any weight is read, that the model `kind` fits the
    /// WebGPU device's buffer limits (maxStorageBufferBindingSize / maxBufferSize): one row of each
    /// linear weight, each norm and position-bias table in one buffer. `ModelTooLarge` otherwise.
    /// `buildGpu` checks it again, with the load-time memory budget (`checkFits` / `check_build_fits`).
    #[wasm_bindgen(js_name = checkGpuFits)]
    pub fn check_gpu_fits(&self, gpu: &WasmGpu, kind: &str) -> JsResult<()> {
        let kind = parse_task(kind, &self.config).or_else(|_| parse_kind(kind).map(task_of_kind))?.base_kind();
        check_gpu_buffers(&self.config, kind != ModelKind::Encoder, &gpu.gpu).map_err(js_err)
    }

    /// Build the model on an open WebGPU device: weights are uploaded once (split to fit the
    /// device's limits). `setDtype("fp16")` first: float16 weights and transformers' float16
    /// activation numerics (see `t5_core::model::Half`); `setDtype("q8" | "q4")`: packed quantized
    /// weights, dequantized in the kernels. The shard bytes are released whether or not it succeeds.
    #[wasm_bindgen(js_name = buildGpu)]
    pub fn build_gpu(&mut self, gpu: &WasmGpu, kind: &str) -> JsResult<WasmGpuModel> {
        // the head classes ("seq-cls" | "token-cls" | "qa" | "auto") as on the CPU (builder.rs)
        let task = parse_task(kind, &self.config).or_else(|_| parse_kind(kind).map(task_of_kind))?;
        let kind = task.base_kind();
        let store = std::mem::take(&mut self.store);
        if store.names().is_empty() {
            return Err(js_err(T5Error::BadWeights { file: None, msg: "no weight files given".into() }));
        }
        gpu.gpu.check().map_err(gpu_err)?;
        // the load-time budget, as on the CPU (the files held, the weights built from them, one weight's
        // conversion: the weights pass through the engine's memory on their way to the GPU), and the
        // device's buffer limits, before the first weight is converted or uploaded
        let lm_head = kind == ModelKind::ConditionalGeneration;
        t5_core::formats::check_build_fits(&store, &self.config, kind != ModelKind::Encoder, lm_head, self.dtype, self.memory_limit).map_err(js_err)?;
        check_gpu_buffers(&self.config, kind != ModelKind::Encoder, &gpu.gpu).map_err(js_err)?;
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
        let head = Head::load(task, &self.config, &store, &gpu.gpu).map_err(js_err)?;
        drop(store);
        Ok(WasmGpuModel { model: RefCell::new(Some(Rc::new(model))), head: RefCell::new(head.map(Rc::new)), task, gpu: gpu.gpu.clone(), generation: self.generation.clone() })
    }
}

/// A T5 resident on a WebGPU device. Methods return Promises.
#[wasm_bindgen]
pub struct WasmGpuModel {
    model: RefCell<Option<Rc<T5<Gpu>>>>,
    /// the class's head (sequence / token classification, question answering), dropped with the model
    head: RefCell<Option<Rc<Head<Gpu>>>>,
    task: Task,
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
        self.model.borrow().as_ref().map_or("disposed", |m| task_name(self.task).unwrap_or_else(|| kind_name(m.kind))).into()
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
        let h = self.head.borrow_mut().take();
        drop((m, h));
        self.gpu.dispose();
    }

    /// Destroy the device (testing device loss).
    #[wasm_bindgen(js_name = destroyDevice)]
    pub fn destroy_device(&self) {
        self.gpu.destroy_device();
    }

    /// Encoder `last_hidden_state`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Float32Array>")]
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

    /// As `WasmModel.forward`, resolving to a [`ForwardResult`].
    #[wasm_bindgen(unchecked_return_type = "Promise<ForwardResult>")]
    #[allow(clippy::too_many_arguments)]
    pub fn forward(&self, ids: Vec<u32>, mask: Option<Vec<u32>>, batch: usize, seq: usize, decoder_ids: Option<Vec<u32>>, labels: Option<Vec<i32>>, decoder_mask: Option<Vec<u32>>) -> Promise {
        let prep = || -> JsResult<_> {
            let model = self.live()?;
            let a = ForwardArgs::new(&model.config, model.kind, ids, mask, batch, seq, decoder_ids, labels, decoder_mask)?;
            Ok((model, a))
        };
        let (model, a) = match prep() {
            Ok(x) => x,
            Err(e) => return Promise::reject(&e),
        };
        future_to_promise(async move {
            let out = forward_async(&model, &a.input, a.decoder_ids.as_deref(), a.labels.as_deref(), a.decoder_mask.as_deref()).await.map_err(gpu_err)?;
            Ok(ForwardResult::new(out, batch, a.dec_len).into())
        })
    }

    /// Generation as `WasmModel.generate` (greedy, sampling, beam search, every processor; each
    /// step's logits reduced on the GPU: see `t5_gpu::generate::generate_async`); resolves to a
    /// [`GenerateResult`] with `stats`. `options`: the [`crate::GenerateOptions`], checked as on the CPU.
    /// `on_step(index, tokens: Uint32Array)` is called after every step; `false` (or a throw) stops.
    #[wasm_bindgen(unchecked_return_type = "Promise<GenerateResult>")]
    pub fn generate(&self, ids: Vec<u32>, mask: Option<Vec<u32>>, batch: usize, seq: usize, options: JsValue, on_step: Option<js_sys::Function>) -> Promise {
        let prep = || -> JsResult<_> {
            let model = self.live()?;
            let (input, gen) = generation_input(&model.config, model.kind, &self.generation, ids, mask, batch, seq, options)?;
            Ok((model, input, gen))
        };
        let (model, input, gen) = match prep() {
            Ok(x) => x,
            Err(e) => return Promise::reject(&e),
        };
        future_to_promise(async move {
            let mut thrown: Option<JsValue> = None;
            let step = |st: t5_core::generate::Step<'_>| match &on_step {
                Some(f) => match f.call2(&JsValue::NULL, &JsValue::from(st.index as u32), &Uint32Array::from(st.tokens)) {
                    Ok(v) => v != JsValue::FALSE,
                    Err(e) => {
                        thrown = Some(e);
                        false
                    }
                },
                None => true,
            };
            let (out, stats) = generate_async(&model, &input, &gen, step).await.map_err(gpu_err)?;
            if let Some(e) = thrown {
                return Err(e);
            }
            let stats = GpuGenerateStats {
                prefill_dispatches: stats.prefill_dispatches as f64,
                dispatches_per_step: stats.dispatches_per_step as f64,
                fused_per_step: stats.fused_per_step as f64,
                submits_per_step: stats.submits_per_step as f64,
                read_back_per_step: stats.read_back_per_step as f64,
                top_p_fallbacks: stats.top_p_fallbacks as f64,
                top_p_decided: stats.top_p_decided as f64,
                whole_row_steps: stats.whole_row_steps as f64,
                bind_groups_per_step: stats.bind_groups_per_step as f64,
                bind_groups_created: stats.bind_groups_created as f64,
                steps: stats.steps as f64,
            };
            Ok(GenerateResult::new(out, Some(stats)).into())
        })
    }

    /// transformers' `forward` of the model's class (the heads included) on the GPU, read back asynchronously:
    /// `WasmModel.forwardFull`'s inputs and result, without `encoder_outputs`, `past_key_values` and the
    /// per-layer outputs (those stay on the CPU engine).
    #[wasm_bindgen(js_name = forwardFull, unchecked_return_type = "Promise<FullForwardResult>")]
    #[allow(clippy::too_many_arguments)]
    pub fn forward_full(
        &self,
        ids: Vec<u32>,
        mask: Option<Vec<u32>>,
        batch: usize,
        seq: usize,
        decoder_ids: Option<Vec<u32>>,
        decoder_mask: Option<Vec<u32>>,
        label_ids: Option<Vec<i32>>,
        label_floats: Option<Vec<f32>>,
        start_positions: Option<Vec<i32>>,
        end_positions: Option<Vec<i32>>,
    ) -> Promise {
        let model = match self.live() {
            Ok(m) => m,
            Err(e) => return Promise::reject(&e),
        };
        if batch == 0 || seq == 0 {
            return Promise::reject(&bad_input(format!("empty input: batch {batch}, sequence length {seq}")));
        }
        let head = self.head.borrow().clone();
        let task = self.task;
        future_to_promise(async move {
            let (sp, ep) = (i64s(start_positions), i64s(end_positions));
            let args = t5_core::heads::ForwardArgs {
                input_ids: Some(&ids),
                attention_mask: mask.as_deref(),
                batch,
                seq,
                encoder_outputs: None,
                decoder_input_ids: decoder_ids.as_deref(),
                decoder_attention_mask: decoder_mask.as_deref(),
                labels: labels_of(label_ids, label_floats),
                start_positions: sp.as_deref(),
                end_positions: ep.as_deref(),
                flags: OutputFlags::default(),
                past: None,
                use_cache: false,
            };
            let out = task_forward_async(&model, task, head.as_deref(), args).await.map_err(gpu_err)?;
            Ok(full_result(out, task, batch, seq, false, false).into())
        })
    }
}
