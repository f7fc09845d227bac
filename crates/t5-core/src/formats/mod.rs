//! The checkpoint file formats. Each reads its files into one [`WeightStore`] (tensors by
//! transformers' names) and knows nothing of kernels or the model:
//!
//! - [`safetensors`]: whole safetensors files and shard indexes, writing stores back;
//!   [`stream`]: safetensors files pushed piece by piece ([`ShardStream`]), linear weights converted
//!   to their storage form as they arrive;
//! - [`pickle`]: `pytorch_model.bin` through a restricted unpickler (no code runs);
//! - [`gguf`]: llama.cpp's T5 GGUF files (config from the metadata, names mapped by [`crate::names`]);
//! - [`spiece`]: SentencePiece `spiece.model` files (for the tokenizer);
//! - [`budget`]: the memory a load will take, from headers and config alone, against a limit.
//!
//! [`store`] holds the [`WeightStore`] they fill.

pub mod budget;
pub mod gguf;
pub mod pickle;
pub mod safetensors;
pub mod spiece;
pub mod store;
pub mod stream;

pub use self::budget::{check_build_fits, check_model_fits, default_memory_limit, estimate_model_bytes, MEMORY_RESERVE};
pub use self::safetensors::shard_files_from_index;
pub use self::store::WeightStore;
pub use self::stream::ShardStream;
