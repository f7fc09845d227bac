//! t5-core: the T5 engine of t5-web.
//!
//! The data path reads like the model: [`config`] → [`weights`] → [`model`] (encoder, decoder with
//! cache, head) → [`generate`]. Numerics run behind the small [`backend::Backend`] interface
//! ([`backend::cpu::Cpu`] today); [`tokenizer`] wraps the `tokenizers` crate.

pub mod backend;
pub mod budget;
pub mod config;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod heads;
#[cfg(not(target_arch = "wasm32"))]
pub mod hub;
pub mod model;
pub mod pickle;
pub mod position;
pub mod quant;
pub mod spiece;
pub mod tensor;
pub mod tokenizer;
pub mod weights;

pub use backend::cpu::Cpu;
pub use config::{GenerationConfig, T5Config};
pub use error::{Result, T5Error};
pub use model::{Batch, ModelKind, Seq2SeqOutput, T5};
pub use quant::{QWeight, WeightDtype};
pub use tensor::Tensor;
pub use weights::WeightStore;
