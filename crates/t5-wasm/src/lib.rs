//! wasm-bindgen bindings of t5-core for the t5-web TypeScript facade.
//!
//! Exports:
//! - [`WasmTokenizer`]: `tokenizer.json` (+ optional `tokenizer_config.json`) → encode / decode.
//! - [`WasmModelBuilder`] → [`WasmModel`]: config text, optional generation config text, safetensors
//!   shards added one at a time, then `build(kind)`; the raw shard bytes are dropped once built.
//! - [`parse_config`] and [`shard_files_from_index`]: the engine's own parsing, for the facade.
//!
//! Errors: every `T5Error` becomes a JS `Error` whose `name` is `T5Error::code()` and whose message is
//! its Display; the facade maps the name onto its typed error classes. Inputs are validated here
//! before they reach the engine: the release profile aborts on panic, and an abort kills the wasm
//! instance for every model living in it.

use serde_json::Value;
use t5_core::config::{GenerationConfig, T5Config};
use t5_core::generate::{generate, Generation};
use t5_core::model::{Batch, ModelKind, T5};
use t5_core::tokenizer::{CallOptions, EncodeInput, Padding, Sequence, Tokenizer, Truncation};
use t5_core::formats::{shard_files_from_index as core_shard_files, WeightStore};
use t5_core::{Cpu, T5Error};
use wasm_bindgen::prelude::*;

mod heads;
pub mod options;
pub mod results;
mod tokenizer;

pub use options::GenerateOptions;
pub use results::{CacheLayer, ForwardResult, FullForwardResult, GenerateResult, GpuGenerateStats, TensorData};
pub use tokenizer::{DetailedEncoding, OffsetsEncoding, SavedFiles};
// WebGPU (wasm32 only): requestGpu, WasmModelBuilder.buildGpu, WasmGpuModel
#[cfg(target_arch = "wasm32")]
mod gpu;

type JsResult<T> = std::result::Result<T, JsValue>;

/// A `T5Error` as a JS `Error` named by its code.
fn js_err(e: T5Error) -> JsValue {
    named_err(e.code(), &e.to_string())
}

fn named_err(name: &str, msg: &str) -> JsValue {
    let err = js_sys::Error::new(msg);
    err.set_name(name);
    err.into()
}

fn bad_input(msg: impl Into<String>) -> JsValue {
    js_err(T5Error::BadInput(msg.into()))
}

/// `batch * seq`, rejecting empty or overflowing shapes (usize is 32-bit here).
fn checked_numel(batch: usize, seq: usize) -> JsResult<usize> {
    if batch == 0 || seq == 0 {
        return Err(bad_input(format!("empty input: batch {batch}, sequence length {seq}")));
    }
    batch.checked_mul(seq).ok_or_else(|| bad_input(format!("input shape [{batch}, {seq}] is too large")))
}

fn check_mask_values(name: &str, mask: &[u32]) -> JsResult<()> {
    if mask.iter().any(|&m| m > 1) {
        return Err(bad_input(format!("{name} values must be 0 or 1")));
    }
    Ok(())
}

/// Validated `[batch, seq]` encoder input.
fn make_batch(ids: Vec<u32>, mask: Option<Vec<u32>>, batch: usize, seq: usize) -> JsResult<Batch> {
    let n = checked_numel(batch, seq)?;
    if ids.len() != n {
        return Err(bad_input(format!("{} input ids for a [{batch}, {seq}] batch", ids.len())));
    }
    Batch::new(ids, mask, batch, seq).map_err(js_err)
}

// ---------------------------------------------------------------------------------------------
// threads

/// Threads a model can use now: 1 + the pool workers started (the threaded build; 1 elsewhere).
#[wasm_bindgen(js_name = threadCapacity)]
pub fn thread_capacity() -> u32 {
    t5_core::backend::cpu::pool::capacity() as u32
}

/// Whether this module was built with threads (shared memory and atomics).
#[wasm_bindgen(js_name = threadsBuilt)]
pub fn threads_built() -> bool {
    cfg!(target_feature = "atomics")
}

/// The threaded build's shared memory, for the pool's workers to instantiate the module on.
#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
#[wasm_bindgen(js_name = sharedMemory)]
pub fn shared_memory() -> JsValue {
    wasm_bindgen::memory()
}

/// The threaded build: a worker's `workerMain` trapped. Work waiting for it then fails instead of
/// hanging.
#[wasm_bindgen(js_name = workerFailed)]
pub fn worker_failed() {
    t5_core::backend::cpu::pool::worker_failed()
}

/// The threaded build's pool worker: called once in each worker (a Web Worker / worker thread
/// that instantiated this module on the main instance's shared memory); registers the thread with
/// the CPU pool and serves its jobs. Never returns.
#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
#[wasm_bindgen(js_name = workerMain)]
pub fn worker_main() {
    t5_core::backend::cpu::pool::worker_main()
}

// ---------------------------------------------------------------------------------------------
// tokenizer

#[wasm_bindgen]
pub struct WasmTokenizer {
    pub(crate) inner: Tokenizer,
}

#[wasm_bindgen]
impl WasmTokenizer {
    /// From the bytes of `tokenizer.json` and, when present, `tokenizer_config.json`.
    #[wasm_bindgen(constructor)]
    pub fn new(tokenizer_json: &[u8], tokenizer_config: Option<Vec<u8>>) -> JsResult<WasmTokenizer> {
        let inner = Tokenizer::from_bytes(tokenizer_json, tokenizer_config.as_deref()).map_err(js_err)?;
        Ok(WasmTokenizer { inner })
    }

    /// From `spiece.model` (older checkpoints without `tokenizer.json`), built the way transformers'
    /// converter does, and `tokenizer_config.json` when present.
    #[wasm_bindgen(js_name = fromSpiece)]
    pub fn from_spiece(spiece_model: &[u8], tokenizer_config: Option<Vec<u8>>) -> JsResult<WasmTokenizer> {
        let inner = Tokenizer::from_spiece(spiece_model, tokenizer_config.as_deref()).map_err(js_err)?;
        Ok(WasmTokenizer { inner })
    }

    /// Ids of one text (`</s>` appended when `add_special_tokens`). With `max_length` set, a
    /// longer result is an `InputTooLong` error (the facade's length check).
    pub fn encode(&self, text: &str, add_special_tokens: bool, max_length: Option<u32>) -> JsResult<Vec<u32>> {
        let ids = self.inner.encode(text, add_special_tokens).map_err(js_err)?;
        if let Some(max) = max_length {
            if ids.len() > max as usize {
                return Err(js_err(T5Error::InputTooLong { len: ids.len(), max: max as usize }));
            }
        }
        Ok(ids)
    }

    /// Text of `ids`, as transformers' `decode(ids, skip_special_tokens, clean_up_tokenization_spaces)`;
    /// `clean_up` undefined: tokenizer_config.json's `clean_up_tokenization_spaces`.
    pub fn decode(&self, ids: Vec<u32>, skip_special_tokens: bool, clean_up: Option<bool>) -> JsResult<String> {
        self.decode_one(&ids, skip_special_tokens, clean_up)
    }

    fn decode_one(&self, ids: &[u32], skip_special_tokens: bool, clean_up: Option<bool>) -> JsResult<String> {
        let clean_up = clean_up.unwrap_or_else(|| self.inner.cleans_up_tokenization_spaces());
        self.inner.decode_with_cleanup(ids, skip_special_tokens, clean_up).map_err(js_err)
    }

    /// Decode rows given concatenated with their lengths.
    #[wasm_bindgen(js_name = decodeBatch)]
    pub fn decode_batch(&self, ids: Vec<u32>, lengths: Vec<u32>, skip_special_tokens: bool, clean_up: Option<bool>) -> JsResult<Vec<String>> {
        let total: u64 = lengths.iter().map(|&l| l as u64).sum();
        if total != ids.len() as u64 {
            return Err(bad_input(format!("row lengths add up to {total}, {} ids given", ids.len())));
        }
        let mut out = Vec::with_capacity(lengths.len());
        let mut at = 0usize;
        for &l in &lengths {
            let l = l as usize;
            out.push(self.decode_one(&ids[at..at + l], skip_special_tokens, clean_up)?);
            at += l;
        }
        Ok(out)
    }

    /// `<extra_id_N>` tokens in transformers' order (N = 0, 1, 2, ...).
    #[wasm_bindgen(js_name = sentinelTokens)]
    pub fn sentinel_tokens(&self) -> Vec<String> {
        self.sorted_sentinels().into_iter().map(|(t, _)| t).collect()
    }

    /// Ids of [`Self::sentinel_tokens`], same order.
    #[wasm_bindgen(js_name = sentinelTokenIds)]
    pub fn sentinel_token_ids(&self) -> Vec<u32> {
        self.sorted_sentinels().into_iter().map(|(_, id)| id).collect()
    }

    fn sorted_sentinels(&self) -> Vec<(String, u32)> {
        self.inner.sentinels()
    }

    #[wasm_bindgen(getter, js_name = padTokenId)]
    pub fn pad_token_id(&self) -> u32 {
        self.inner.pad_token_id()
    }

    #[wasm_bindgen(getter, js_name = eosTokenId)]
    pub fn eos_token_id(&self) -> Option<u32> {
        self.inner.eos_token_id()
    }

    /// `model_max_length` of tokenizer_config.json (absent when unlimited).
    #[wasm_bindgen(getter, js_name = modelMaxLength)]
    pub fn model_max_length(&self) -> Option<u32> {
        self.inner.model_max_length().map(|m| m.min(u32::MAX as usize) as u32)
    }

    #[wasm_bindgen(getter, js_name = vocabSize)]
    pub fn vocab_size(&self) -> u32 {
        self.inner.vocab_size() as u32
    }

    #[wasm_bindgen(js_name = tokenToId)]
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    #[wasm_bindgen(js_name = idToToken)]
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// transformers' `tokenizer.padding_side`: "left" or "right".
    #[wasm_bindgen(getter, js_name = paddingSide)]
    pub fn padding_side(&self) -> String {
        if self.inner.padding_side_left() { "left" } else { "right" }.to_string()
    }

    /// Set the padding side ("left" | "right") of later calls.
    #[wasm_bindgen(js_name = setPaddingSide)]
    pub fn set_padding_side(&mut self, side: &str) -> JsResult<()> {
        self.inner.set_pads_left(padding_side(side)?);
        Ok(())
    }

    /// transformers' full `tokenizer(text, text_pair, …)`. `texts`: one text per row, or with `text_counts` the
    /// pre-split words of all rows concatenated (row `i` has `text_counts[i]` words: `is_split_into_words`); `pairs`
    /// / `pair_counts` the same for `text_pair`. `options_json`: `{padding: "longest" | "max_length" | "do_not_pad",
    /// padding_side: "left" | "right" | null, truncation: "longest_first" | "only_first" | "only_second" |
    /// "do_not_truncate", max_length, stride, add_special_tokens, return_overflowing_tokens}`.
    #[wasm_bindgen(js_name = encodeDetailed)]
    pub fn encode_detailed(&self, texts: Vec<String>, text_counts: Option<Vec<u32>>, pairs: Option<Vec<String>>, pair_counts: Option<Vec<u32>>, options_json: &str) -> JsResult<DetailedEncoding> {
        let o: Value = serde_json::from_str(options_json).map_err(|e| bad_input(format!("tokenizer options: {e}")))?;
        let str_opt = |k: &str| -> JsResult<Option<String>> {
            match o.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(v) => Err(bad_input(format!("{k} must be a string, got {v}"))),
            }
        };
        let bool_opt = |k: &str, default: bool| -> JsResult<bool> {
            match o.get(k) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Bool(b)) => Ok(*b),
                Some(v) => Err(bad_input(format!("{k} must be a boolean, got {v}"))),
            }
        };
        let uint_opt = |k: &str| -> JsResult<Option<usize>> {
            match o.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => match v.as_u64() {
                    Some(n) if n <= u32::MAX as u64 => Ok(Some(n as usize)),
                    _ => Err(bad_input(format!("{k} must be a non-negative integer, got {v}"))),
                },
            }
        };
        let padding = match str_opt("padding")?.as_deref() {
            None | Some("do_not_pad") => Padding::DoNotPad,
            Some("longest") => Padding::Longest,
            Some("max_length") => Padding::MaxLength,
            Some(other) => return Err(bad_input(format!("unknown padding strategy {other:?}: expected \"longest\", \"max_length\" or \"do_not_pad\""))),
        };
        let truncation = match str_opt("truncation")?.as_deref() {
            None | Some("do_not_truncate") => Truncation::None,
            Some("longest_first") => Truncation::LongestFirst,
            Some("only_first") => Truncation::OnlyFirst,
            Some("only_second") => Truncation::OnlySecond,
            Some(other) => return Err(bad_input(format!("unknown truncation strategy {other:?}: expected true, false, \"longest_first\", \"only_first\", \"only_second\" or \"do_not_truncate\""))),
        };
        let max_length = uint_opt("max_length")?;
        if max_length == Some(0) {
            return Err(bad_input("max_length must be positive"));
        }
        let opts = CallOptions {
            padding,
            padding_left: str_opt("padding_side")?.map(|s| padding_side(&s)).transpose()?,
            truncation,
            max_length,
            stride: uint_opt("stride")?.unwrap_or(0),
            add_special_tokens: bool_opt("add_special_tokens", true)?,
            return_overflowing_tokens: bool_opt("return_overflowing_tokens", false)?,
        };
        let firsts = sequences(texts, text_counts, "texts")?;
        let seconds = match pairs {
            Some(p) => {
                let p = sequences(p, pair_counts, "text_pair")?;
                if p.len() != firsts.len() {
                    return Err(bad_input(format!("{} texts but {} text pairs", firsts.len(), p.len())));
                }
                p.into_iter().map(Some).collect()
            }
            None => vec![None; firsts.len()],
        };
        let inputs: Vec<EncodeInput> = firsts.into_iter().zip(seconds).map(|(text, pair)| EncodeInput { text, pair }).collect();
        let rows = self.inner.encode_detailed(&inputs, &opts).map_err(js_err)?;
        // char offsets -> UTF-16 offsets of the string each token comes from
        let tables: Vec<[Vec<Vec<u32>>; 2]> = inputs.iter().map(|i| [utf16_tables(&i.text), i.pair.as_ref().map(utf16_tables).unwrap_or_default()]).collect();
        let n: usize = rows.iter().map(|r| r.input_ids.len()).sum();
        let (mut ids, mut mask, mut starts, mut ends, mut special) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut sequence, mut words) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for r in &rows {
            ids.extend_from_slice(&r.input_ids);
            mask.extend_from_slice(&r.attention_mask);
            special.extend_from_slice(&r.special_tokens_mask);
            for k in 0..r.input_ids.len() {
                let (seq, word) = (r.sequence_ids[k], r.word_ids[k]);
                let (a, b) = r.offsets[k];
                let table = seq.and_then(|s| {
                    let t = &tables[r.sample][s.min(1)];
                    if t.len() == 1 { t.first() } else { word.and_then(|w| t.get(w as usize)) }
                });
                let at = |c: usize| table.map_or(0, |t| t.get(c).or(t.last()).copied().unwrap_or(0));
                starts.push(if (a, b) == (0, 0) { 0 } else { at(a) });
                ends.push(if (a, b) == (0, 0) { 0 } else { at(b) });
                sequence.push(seq.map_or(-1, |s| s as i32));
                words.push(word.map_or(-1, |w| w as i32));
            }
        }
        Ok(DetailedEncoding {
            ids,
            mask,
            lengths: rows.iter().map(|r| r.input_ids.len() as u32).collect(),
            starts,
            ends,
            special,
            sequence,
            words,
            sample: rows.iter().map(|r| r.sample as u32).collect(),
        })
    }
}

fn padding_side(side: &str) -> JsResult<bool> {
    match side {
        "left" => Ok(true),
        "right" => Ok(false),
        other => Err(bad_input(format!("padding_side must be \"left\" or \"right\", got {other:?}"))),
    }
}

/// Rows of a tokenizer call: one text each, or (`counts` given) that many pre-split words each.
fn sequences(strings: Vec<String>, counts: Option<Vec<u32>>, what: &str) -> JsResult<Vec<Sequence>> {
    match counts {
        None => Ok(strings.into_iter().map(Sequence::Text).collect()),
        Some(counts) => {
            let total: u64 = counts.iter().map(|&c| c as u64).sum();
            if total != strings.len() as u64 {
                return Err(bad_input(format!("{what}: word counts add up to {total}, {} words given", strings.len())));
            }
            let mut it = strings.into_iter();
            Ok(counts.iter().map(|&c| Sequence::Words(it.by_ref().take(c as usize).collect())).collect())
        }
    }
}

/// Per string of a sequence (the text, or each word), its char index -> UTF-16 index table.
fn utf16_tables(s: &Sequence) -> Vec<Vec<u32>> {
    let table = |t: &str| {
        let mut v = Vec::with_capacity(t.len() + 1);
        let mut at = 0u32;
        v.push(0);
        for c in t.chars() {
            at += c.len_utf16() as u32;
            v.push(at);
        }
        v
    };
    match s {
        Sequence::Text(t) => vec![table(t)],
        Sequence::Words(w) => w.iter().map(|x| table(x)).collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// config helpers

/// transformers' derived `dense_act_fn` of a `feed_forward_proj`.
fn dense_act_fn(ffp: &str) -> String {
    if ffp == "gated-gelu" {
        "gelu_new".into()
    } else {
        ffp.rsplit('-').next().unwrap_or(ffp).to_string()
    }
}

/// config.json text → the engine's view of it as JSON: every transformers `T5Config` field with
/// its default filled in, `num_decoder_layers` resolved, and the derived `dense_act_fn` /
/// `is_gated_act`. Throws `BadConfig` / `UnsupportedActivation` as model loading would.
#[wasm_bindgen(js_name = parseConfig)]
pub fn parse_config(config_json: &str) -> JsResult<String> {
    let cfg = T5Config::from_json(config_json).map_err(js_err)?;
    let ff = cfg.feed_forward().map_err(js_err)?;
    let mut v: Value = serde_json::from_str(&cfg.to_json()).map_err(|e| js_err(T5Error::BadConfig(e.to_string())))?;
    if let Some(obj) = v.as_object_mut() {
        obj.insert("num_decoder_layers".into(), Value::from(cfg.decoder_layers()));
        obj.insert("dense_act_fn".into(), Value::from(dense_act_fn(&cfg.feed_forward_proj)));
        obj.insert("is_gated_act".into(), Value::from(ff.gated));
        heads::fill_label_fields(&cfg, obj);
    }
    Ok(v.to_string())
}

/// Shard file names of a `model.safetensors.index.json` (sorted, each once).
#[wasm_bindgen(js_name = shardFilesFromIndex)]
pub fn shard_files_from_index(index_json: &str) -> JsResult<Vec<String>> {
    core_shard_files(index_json).map_err(js_err)
}

// ---------------------------------------------------------------------------------------------
// model

fn parse_kind(kind: &str) -> JsResult<ModelKind> {
    match kind {
        "seq2seq-lm" => Ok(ModelKind::ConditionalGeneration),
        "t5-model" => Ok(ModelKind::Model),
        "encoder" => Ok(ModelKind::Encoder),
        other => Err(bad_input(format!("unknown model kind {other:?}: expected \"seq2seq-lm\", \"t5-model\" or \"encoder\""))),
    }
}

fn kind_name(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::ConditionalGeneration => "seq2seq-lm",
        ModelKind::Model => "t5-model",
        ModelKind::Encoder => "encoder",
    }
}

/// Set by [`debug_arm_trap`]: the next `startGeneration` of this instance traps.
static DEBUG_TRAP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Test-only, not part of the TypeScript API (`ts/src/debug.ts`, the CLI's `T5_WEB_DEBUG_TRAP=1`): the next
/// `startGeneration` on this engine instance traps (`unreachable`), inside the call and with its model
/// borrowed, exactly as a Rust panic (`panic = "abort"`) or an allocation failure does, so that tests can
/// check what a trapped call leaves behind (docs/hardening.md).
#[doc(hidden)]
#[wasm_bindgen(js_name = __t5_debug_arm_trap)]
pub fn debug_arm_trap() {
    DEBUG_TRAP.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn debug_trap_if_armed() {
    if DEBUG_TRAP.swap(false, std::sync::atomic::Ordering::Relaxed) {
        #[cfg(target_arch = "wasm32")]
        core::arch::wasm32::unreachable();
        #[cfg(not(target_arch = "wasm32"))]
        panic!("__t5_debug_arm_trap");
    }
}

/// Collects the config and the safetensors shards of a checkpoint, then builds a [`WasmModel`].
#[wasm_bindgen]
pub struct WasmModelBuilder {
    config: T5Config,
    generation: GenerationConfig,
    store: WeightStore,
    /// storage form of the linear weights ("fp32" unless `setDtype` says otherwise)
    dtype: t5_core::WeightDtype,
    /// the safetensors file being streamed (`beginShard` … `pushShard` … `endShard`)
    stream: Option<t5_core::formats::ShardStream>,
    /// memory the weights may take (default: one wasm32 memory, 4 GiB)
    memory_limit: Option<u64>,
    /// whether the model to be built has a decoder (`setKind`; default true), for the size check
    has_decoder: bool,
    /// CPU threads of the model (`setNumThreads`; 0 = every pool thread, at most 8)
    threads: usize,
    /// smallest job split across threads (`setGrain`; `None`: the default)
    grain: Option<usize>,
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
        let stream = t5_core::formats::ShardStream::new(name, size, self.dtype, self.memory_limit);
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

/// A loaded T5 (encoder-decoder with LM head, encoder-decoder without head, or encoder only).
#[wasm_bindgen]
pub struct WasmModel {
    model: T5<Cpu>,
    generation: GenerationConfig,
    /// the transformers class (heads.rs)
    task: t5_core::heads::Task,
    head: Option<t5_core::heads::Head<Cpu>>,
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
    inner: Option<Generation<Cpu>>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn act_names() {
        assert_eq!(dense_act_fn("gated-gelu"), "gelu_new");
        assert_eq!(dense_act_fn("gated-silu"), "silu");
        assert_eq!(dense_act_fn("relu"), "relu");
    }
}
