//! [`WasmModelBuilder`]: the config and the weight files of a checkpoint (safetensors shards, whole or streamed;
//! PyTorch `pytorch_model.bin`; a GGUF file), checked against the memory budget, then built into a [`WasmModel`].

use crate::model::{parse_kind, WasmModel};
use crate::{bad_input, heads, js_err, JsResult};
use t5_core::config::{GenerationConfig, T5Config};
use t5_core::formats::WeightStore;
use t5_core::model::{ModelKind, T5};
use t5_core::{Cpu, T5Error};
use wasm_bindgen::prelude::*;

/// Collects the config and the safetensors shards of a checkpoint, then builds a [`WasmModel`].
#[wasm_bindgen]
pub struct WasmModelBuilder {
    pub(crate) config: T5Config,
    pub(crate) generation: GenerationConfig,
    pub(crate) store: WeightStore,
    /// storage form of the linear weights ("fp32" unless `setDtype` says otherwise)
    pub(crate) dtype: t5_core::WeightDtype,
    /// the safetensors file being streamed (`beginShard` … `pushShard` … `endShard`)
    pub(crate) stream: Option<t5_core::formats::ShardStream>,
    /// memory the weights may take (default: one wasm32 memory, 4 GiB)
    pub(crate) memory_limit: Option<u64>,
    /// whether the model to be built has a decoder (`setKind`; default true), for the size check
    pub(crate) has_decoder: bool,
    /// CPU threads of the model (`setNumThreads`; 0 = every pool thread, at most 8)
    pub(crate) threads: usize,
    /// smallest job split across threads (`setGrain`; `None`: the default)
    pub(crate) grain: Option<usize>,
}

#[wasm_bindgen]
impl WasmModelBuilder {
    /// `config.json` text and, when the checkpoint has one, `generation_config.json` text.
    #[wasm_bindgen(constructor)]
    pub fn new(config_json: &str, generation_config_json: Option<String>) -> JsResult<WasmModelBuilder> {
        let config = T5Config::from_json(config_json).map_err(js_err)?;
        let generation = match generation_config_json {
            Some(text) => GenerationConfig::from_json(&text, &config).map_err(js_err)?,
            None => GenerationConfig::from_model_config(&config),
        };
        let mut store = WeightStore::new();
        store.set_memory_limit(t5_core::formats::default_memory_limit());
        Ok(WasmModelBuilder {
            config,
            generation,
            store,
            dtype: t5_core::WeightDtype::F32,
            stream: None,
            memory_limit: t5_core::formats::default_memory_limit(),
            has_decoder: true,
            threads: 0,
            grain: None,
        })
    }

    /// Storage form of the linear weights: "fp32" | "fp16" | "bf16" | "q8" | "q4" (load-time
    /// conversion; tensors pre-quantized in the checkpoint are kept as they are).
    #[wasm_bindgen(js_name = setDtype)]
    pub fn set_dtype(&mut self, dtype: &str) -> JsResult<()> {
        self.dtype = t5_core::WeightDtype::parse(dtype).map_err(js_err)?;
        Ok(())
    }

    /// CPU threads the model uses (the calling thread included): 1 = the calling thread only, 0 =
    /// automatic (every pool thread, at most 8). More than the pool has (see `threadCapacity`) are
    /// not used. Results are bit-identical at any count.
    #[wasm_bindgen(js_name = setNumThreads)]
    pub fn set_num_threads(&mut self, threads: u32) {
        self.threads = threads as usize;
    }

    /// Smallest job (multiply-adds) split across threads; 0 splits every job (tests of the threaded
    /// paths on tiny models). Results do not depend on it.
    #[wasm_bindgen(js_name = setGrain)]
    pub fn set_grain(&mut self, grain: u32) {
        self.grain = Some(grain as usize);
    }

    /// Add one safetensors file of the checkpoint (its name is used in error messages).
    #[wasm_bindgen(js_name = addShard)]
    pub fn add_shard(&mut self, name: &str, bytes: Vec<u8>) -> JsResult<()> {
        self.store.add_shard(name, bytes).map_err(js_err)
    }

    /// Memory (bytes) the weights may take, checked by `checkFits` and from each streamed file's
    /// header; default one wasm32 memory (4 GiB). `undefined`: no check.
    #[wasm_bindgen(js_name = setMemoryLimit)]
    pub fn set_memory_limit(&mut self, bytes: Option<f64>) -> JsResult<()> {
        self.memory_limit = match bytes {
            None => None,
            Some(b) if b.is_finite() && b >= 0.0 => Some(b as u64),
            Some(b) => return Err(bad_input(format!("memory limit {b} is not a byte count"))),
        };
        self.store.set_memory_limit(self.memory_limit);
        Ok(())
    }

    /// The kind of model `build` will be asked for (as `build`'s argument), before the weights: an
    /// encoder-only model's size check leaves the decoder out.
    #[wasm_bindgen(js_name = setKind)]
    pub fn set_kind(&mut self, kind: &str) -> JsResult<()> {
        let task = heads::parse_task(kind, &self.config).or_else(|_| parse_kind(kind).map(heads::task_of_kind))?;
        self.has_decoder = task.base_kind() != ModelKind::Encoder;
        Ok(())
    }

    /// The bytes the model's weights will take in the requested dtype, from the config alone; a
    /// `ModelTooLarge` error (naming the dtypes that would fit) when that exceeds the memory limit.
    /// (Streaming runs the same check on the first file's header, unless the checkpoint is pre-quantized.)
    #[wasm_bindgen(js_name = checkFits)]
    pub fn check_fits(&self, kind: &str) -> JsResult<f64> {
        let task = heads::parse_task(kind, &self.config).or_else(|_| parse_kind(kind).map(heads::task_of_kind))?;
        let base = task.base_kind();
        let lm_head = base == ModelKind::ConditionalGeneration && !self.config.tie_word_embeddings;
        t5_core::formats::check_model_fits(&self.config, base != ModelKind::Encoder, lm_head, self.dtype, self.memory_limit).map(|b| b as f64).map_err(js_err)
    }

    /// Start streaming the safetensors file `name` (`size`: its length in bytes when known). Its
    /// pieces follow through `pushShard`, then `endShard`. The header is checked against the memory
    /// limit as soon as it has arrived; each tensor is converted to the requested dtype as its bytes
    /// arrive, so the file is never whole in memory.
    #[wasm_bindgen(js_name = beginShard)]
    pub fn begin_shard(&mut self, name: &str, size: Option<f64>) -> JsResult<()> {
        if self.stream.is_some() {
            return Err(bad_input("beginShard: the previous file was not ended (endShard)"));
        }
        let size = match size {
            Some(s) if s.is_finite() && s >= 0.0 && s.fract() == 0.0 => Some(s as u64),
            Some(s) => return Err(bad_input(format!("file size {s} is not a byte count"))),
            None => None,
        };
        // converted on the model's threads (those the pool has: its workers start before any load)
        let stream = t5_core::formats::ShardStream::new(name, size, self.dtype, self.memory_limit).with_threads(Cpu::with_threads(self.threads).threads());
        // the first file: the whole model's size from the config, once its header shows it is not pre-quantized
        self.stream = Some(if self.store.names().is_empty() { stream.with_config_check(&self.config, self.has_decoder) } else { stream });
        Ok(())
    }

    /// The next piece of the file begun by `beginShard`. After an error the file is abandoned.
    #[wasm_bindgen(js_name = pushShard)]
    pub fn push_shard(&mut self, chunk: &[u8]) -> JsResult<()> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(bad_input("pushShard without beginShard"));
        };
        let r = stream.push(&mut self.store, chunk);
        if r.is_err() {
            self.stream = None;
        }
        r.map_err(js_err)
    }

    /// The file begun by `beginShard` has ended: every tensor must be complete.
    #[wasm_bindgen(js_name = endShard)]
    pub fn end_shard(&mut self) -> JsResult<()> {
        let Some(stream) = self.stream.take() else {
            return Err(bad_input("endShard without beginShard"));
        };
        stream.finish(&mut self.store).map_err(js_err)
    }

    /// Bytes the builder holds (raw tensors and converted weights).
    #[wasm_bindgen(getter, js_name = heldBytes)]
    pub fn held_bytes(&self) -> f64 {
        self.store.resident_bytes() as f64
    }

    /// Number of tensors added so far.
    #[wasm_bindgen(getter, js_name = tensorCount)]
    pub fn tensor_count(&self) -> u32 {
        self.store.names().len() as u32
    }

    /// Build the model (`kind`: "seq2seq-lm" | "t5-model" | "encoder"), checking every tensor
    /// the config implies. The shard bytes are released whether or not it succeeds; the builder
    /// is then empty and only good for `free()`.
    pub fn build(&mut self, kind: &str) -> JsResult<WasmModel> {
        // the head classes ("seq-cls" | "token-cls" | "qa" | "auto": from `architectures`) are in heads.rs
        let task = heads::parse_task(kind, &self.config).or_else(|_| parse_kind(kind).map(heads::task_of_kind))?;
        let kind = task.base_kind();
        if self.stream.is_some() {
            return Err(bad_input("build: a streamed file was not ended (endShard)"));
        }
        let store = std::mem::take(&mut self.store);
        if store.names().is_empty() {
            return Err(js_err(T5Error::BadWeights { file: None, msg: "no weight files given".into() }));
        }
        // what the model will hold, from the store's index, before the first conversion
        let lm_head = kind == ModelKind::ConditionalGeneration;
        t5_core::formats::check_build_fits(&store, &self.config, kind != ModelKind::Encoder, lm_head, self.dtype, self.memory_limit).map_err(js_err)?;
        let cpu = Cpu::with_threads(self.threads);
        let cpu = self.grain.map_or(cpu, |g| cpu.with_grain(g));
        let head = t5_core::heads::Head::load(task, &self.config, &store, &cpu).map_err(js_err)?;
        let mut model = T5::load_with_dtype(self.config.clone(), &store, kind, cpu, self.dtype).map_err(js_err)?;
        drop(store);
        // calls are checked against the same budget as the load (crates/t5-core/src/budget.rs)
        model.set_memory_limit(self.memory_limit.or(t5_core::formats::default_memory_limit()));
        Ok(WasmModel { model, generation: self.generation.clone(), task, head })
    }
}

// ---------------------------------------------------------------------------------------------
// GGUF checkpoints (llama.cpp's T5 layout)

#[wasm_bindgen]
impl WasmModelBuilder {
    /// A builder over a T5 GGUF file (`name` for messages): config from its metadata, weights
    /// from its tensors (quantized blocks kept in the fused-kernel forms). `generation_config_json`:
    /// a `generation_config.json` next to the file, when there is one.
    #[wasm_bindgen(js_name = fromGguf)]
    pub fn from_gguf(name: &str, bytes: Vec<u8>, generation_config_json: Option<String>) -> JsResult<WasmModelBuilder> {
        let (config, mut generation, mut store) = t5_core::formats::gguf::load(name, bytes).map_err(js_err)?;
        store.set_memory_limit(t5_core::formats::default_memory_limit());
        if let Some(text) = generation_config_json {
            generation = GenerationConfig::from_json(&text, &config).map_err(js_err)?;
        }
        Ok(WasmModelBuilder { config, generation, store, dtype: t5_core::WeightDtype::F32, stream: None, memory_limit: t5_core::formats::default_memory_limit(), has_decoder: true, threads: 0, grain: None })
    }

    /// The builder's config as config.json text (for `parseConfig`).
    #[wasm_bindgen(js_name = configJson)]
    pub fn config_json(&self) -> String {
        self.config.to_json()
    }
}

// ---------------------------------------------------------------------------------------------
// PyTorch checkpoints (pytorch_model.bin) and conversion to safetensors

#[wasm_bindgen]
impl WasmModelBuilder {
    /// Add a PyTorch checkpoint file (`pytorch_model.bin` or a shard of a
    /// `pytorch_model.bin.index.json`): torch.save's zip or legacy format, read by the engine's
    /// restricted unpickler (nothing in the file runs; any other pickle content is `BadWeights`).
    #[wasm_bindgen(js_name = addPytorchBin)]
    pub fn add_pytorch_bin(&mut self, name: &str, bytes: Vec<u8>) -> JsResult<()> {
        self.store.add_pytorch(name, bytes).map_err(js_err)
    }

    /// The weights added so far as one safetensors file (dtypes kept; tied aliases of a PyTorch
    /// state dict written once; `lm_head.weight` kept when the config unties it). The builder
    /// keeps its weights.
    #[wasm_bindgen(js_name = toSafetensors)]
    pub fn to_safetensors(&self) -> JsResult<Vec<u8>> {
        if self.store.names().is_empty() {
            return Err(js_err(T5Error::BadWeights { file: None, msg: "no weight files given".into() }));
        }
        self.store.to_safetensors(!self.config.tie_word_embeddings).map_err(js_err)
    }
}
