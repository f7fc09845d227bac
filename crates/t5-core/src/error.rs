//! One error type for the whole engine. Every variant has a stable `code()` that the
//! TypeScript facade turns into a typed error class.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum T5Error {
    /// config.json / generation_config.json is not valid JSON or misses a required field.
    #[error("invalid config: {0}")]
    BadConfig(String),
    /// `feed_forward_proj` names an activation transformers' T5 does not accept.
    #[error("unsupported feed_forward_proj {0:?}: expected \"relu\", \"gelu\", \"gated-gelu\", \"gated-silu\" or another `[gated-]ACT` with a known ACT")]
    UnsupportedActivation(String),
    /// The weights file is not a valid safetensors file (truncated, corrupt header, bad offsets) or
    /// PyTorch checkpoint (corrupt, or a pickle that does more than rebuild tensors).
    #[error("invalid weights file{file}: {msg}", file = .file.as_ref().map(|f| format!(" {f}")).unwrap_or_default())]
    BadWeights { file: Option<String>, msg: String },
    /// A tensor the config requires is absent from the checkpoint.
    #[error("missing tensor {0:?} in checkpoint")]
    MissingTensor(String),
    /// A tensor is present but its shape does not match what the config implies.
    #[error("tensor {name:?} has shape {found:?}, config implies {expected:?}")]
    ShapeMismatch { name: String, expected: Vec<usize>, found: Vec<usize> },
    /// A tensor has a dtype the engine cannot read.
    #[error("tensor {name:?} has unsupported dtype {dtype}")]
    UnsupportedDtype { name: String, dtype: String },
    /// Input ids / masks / shapes that cannot be run (empty batch, ids out of vocab, mismatched lengths).
    #[error("invalid input: {0}")]
    BadInput(String),
    /// Input longer than the configured maximum; `why` says which maximum (empty, or a parenthesised clause).
    #[error("input of {len} tokens is longer than the maximum of {max}{why}")]
    InputTooLong { len: usize, max: usize, why: String },
    /// A file the checkpoint needs is absent or unreadable.
    #[error("missing file {0}")]
    MissingFile(String),
    /// Tokenizer file could not be read or used.
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    /// The model would not fit in the memory it must live in (one wasm32 memory: 4 GiB), said
    /// from the config / the safetensors header before the weights are read.
    #[error("model too large: {0}")]
    ModelTooLarge(String),
    /// A call would need more working memory (activations, KV caches of every beam, logits) than
    /// the model's memory limit leaves after its weights; said before the call allocates.
    #[error("over the memory budget: {0}")]
    MemoryBudget(String),
}

impl T5Error {
    /// Stable machine-readable code (the TypeScript error class name is derived from it).
    pub fn code(&self) -> &'static str {
        match self {
            T5Error::BadConfig(_) => "BadConfig",
            T5Error::UnsupportedActivation(_) => "UnsupportedActivation",
            T5Error::BadWeights { .. } => "BadWeights",
            T5Error::MissingTensor(_) => "MissingTensor",
            T5Error::ShapeMismatch { .. } => "ShapeMismatch",
            T5Error::UnsupportedDtype { .. } => "UnsupportedDtype",
            T5Error::BadInput(_) => "BadInput",
            T5Error::InputTooLong { .. } => "InputTooLong",
            T5Error::MissingFile(_) => "MissingFile",
            T5Error::Tokenizer(_) => "Tokenizer",
            T5Error::ModelTooLarge(_) => "ModelTooLarge",
            T5Error::MemoryBudget(_) => "MemoryBudget",
        }
    }
}

pub type Result<T> = std::result::Result<T, T5Error>;
