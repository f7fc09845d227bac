//! t5-core: the T5 engine of t5-web.
//!
//! The data path reads like the model: [`config`] → [`formats`] (safetensors, pytorch_model.bin,
//! GGUF → a [`WeightStore`]) → [`model`] (encoder, decoder with cache, head) → [`generate`]. Weight
//! forms and quantization in [`dtype`]; the names of every weight in [`names`]. Numerics run behind
//! the small [`backend::Backend`] interface ([`backend::cpu::Cpu`] today); [`tokenizer`] wraps the
//! `tokenizers` crate.
//!
//! Layers never reach up: [`formats`] knows [`dtype`], [`names`] and [`config`], never a backend or
//! the model; [`dtype`] knows neither formats nor backends. [`pool`] (the process-wide thread pool)
//! knows nothing of the others: the CPU backend's matmuls and the streamed load's conversion use it.
// the threaded wasm build (nightly, -Zbuild-std): memory.atomic.wait32 / notify for the CPU pool
#![cfg_attr(all(target_arch = "wasm32", target_feature = "atomics"), feature(stdarch_wasm_atomic_wait))]

pub mod act;
pub mod backend;
pub mod budget;
pub mod config;
pub mod dtype;
pub mod error;
pub mod formats;
pub mod generate;
pub mod heads;
#[cfg(not(target_arch = "wasm32"))]
pub mod hub;
pub mod model;
pub mod names;
pub mod pool;
pub mod position;
pub mod tensor;
pub mod tokenizer;

pub use backend::cpu::Cpu;
pub use config::{GenerationConfig, T5Config};
pub use error::{Result, T5Error};
pub use model::{Batch, ModelKind, Seq2SeqOutput, T5};
pub use dtype::{QWeight, WeightDtype};
pub use tensor::Tensor;
pub use formats::{ShardStream, WeightStore};
