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
//!
//! Modules: `tokenizer` ([`WasmTokenizer`]), `builder` ([`WasmModelBuilder`]), `model` ([`WasmModel`],
//! [`WasmGeneration`], the input checks shared with `gpu`), `heads` (the head classes' calls), `options`
//! ([`GenerateOptions`]), `results` (the exported result structs); this file: errors, threads, config parsing.

use serde_json::Value;
use t5_core::config::T5Config;
use t5_core::model::Batch;
use t5_core::formats::shard_files_from_index as core_shard_files;
use t5_core::T5Error;
use wasm_bindgen::prelude::*;

mod builder;
mod heads;
mod model;
pub mod options;
pub mod results;
mod tokenizer;
// WebGPU (wasm32 only): requestGpu, WasmModelBuilder.buildGpu, WasmGpuModel
#[cfg(target_arch = "wasm32")]
mod gpu;

pub use builder::WasmModelBuilder;
pub use model::{WasmGeneration, WasmModel};
pub use options::GenerateOptions;
pub use results::{ForwardResult, FullForwardResult, GenerateResult, GpuGenerateStats, TensorData};
pub use tokenizer::{DetailedEncoding, OffsetsEncoding, SavedFiles, WasmTokenizer};
// the WebGPU model (gpu.rs) checks its inputs as the CPU model does
#[cfg(target_arch = "wasm32")]
pub(crate) use model::{generation_input, kind_name, parse_kind, ForwardArgs};

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
    t5_core::pool::capacity() as u32
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
    t5_core::pool::worker_failed()
}

/// The threaded build's pool worker: called once in each worker (a Web Worker / worker thread
/// that instantiated this module on the main instance's shared memory); registers the thread with
/// the CPU pool and serves its jobs. Never returns.
#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
#[wasm_bindgen(js_name = workerMain)]
pub fn worker_main() {
    t5_core::pool::worker_main()
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

pub(crate) fn debug_trap_if_armed() {
    if DEBUG_TRAP.swap(false, std::sync::atomic::Ordering::Relaxed) {
        #[cfg(target_arch = "wasm32")]
        core::arch::wasm32::unreachable();
        #[cfg(not(target_arch = "wasm32"))]
        panic!("__t5_debug_arm_trap");
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
