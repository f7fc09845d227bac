//! Loading a [`T5`] from a checkpoint: every tensor the config implies, read through the [`WeightStore`] by its
//! transformers name, converted to the requested storage form.

use super::layers::{Attention, Block, FeedForward};
use super::stack::Stack;
use super::{Half, ModelKind, T5};
use crate::backend::Backend;
use crate::config::T5Config;
use crate::dtype::WeightDtype;
use crate::error::{Result, T5Error};
use crate::formats::WeightStore;
use crate::names::{Part, Proj, Stack as StackName, Weight};
use crate::tensor::Tensor;

/// `"transformer."` when the checkpoint keeps its base model under transformers' `base_model_prefix`
/// (T5ForSequenceClassification, T5ForTokenClassification), `""` otherwise.
pub fn base_model_prefix(store: &WeightStore) -> &'static str {
    if [Weight::Shared, Weight::EmbedTokens(StackName::Encoder)].iter().any(|w| store.has_weight(&format!("transformer.{}", w.hf_name()))) {
        "transformer."
    } else {
        ""
    }
}

struct Loader<'a, B: Backend> {
    store: &'a WeightStore,
    backend: &'a B,
    cfg: &'a T5Config,
    /// requested storage form of the linear weights (and the embedding table)
    dtype: WeightDtype,
    /// weights stored in another form than requested, and which
    fallbacks: std::cell::RefCell<Vec<(String, WeightDtype)>>,
    bytes: std::cell::Cell<usize>,
    half: Half,
    /// `transformer.` for a checkpoint that keeps the base model under it, else empty
    prefix: String,
    /// Whether the weights that multiply many rows on every call (the encoder's, cross-attention
    /// K/V's) are also kept in the backend's GEMM layout ([`Backend::pack_for_prefill`]).
    pack_prefill: bool,
    prefill_bytes: std::cell::Cell<usize>,
}

impl<'a, B: Backend> Loader<'a, B> {
    fn weight(&self, name: &str, shape: &[usize]) -> Result<B::Weight> {
        // pre-quantized tensors are taken as they are; others are converted to the requested form
        let w = match self.store.get_packed(name, shape)? {
            Some(q) => {
                let w = self.backend.upload_packed(q);
                // converted while streaming (weights.rs ShardStream): report fallbacks as below
                let got = self.backend.weight_dtype(&w);
                if self.store.is_converted(name) && got != self.dtype {
                    self.fallbacks.borrow_mut().push((name.to_string(), got));
                }
                w
            }
            None => {
                let t = self.store.get(name, shape)?;
                let dtype = match self.half {
                    Half::Unguarded => WeightDtype::F16,
                    _ => self.dtype.storage_for(name, shape[1]),
                };
                let w = self.backend.upload_weight_as(t, dtype);
                let got = self.backend.weight_dtype(&w);
                if got != self.dtype {
                    self.fallbacks.borrow_mut().push((name.to_string(), got));
                }
                w
            }
        };
        self.bytes.set(self.bytes.get() + self.backend.weight_bytes(&w));
        Ok(w)
    }
    /// A host tensor, float16-rounded with float16 activations (layer norm weights, position bias table).
    fn host(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let mut t = self.store.get(name, shape)?;
        if self.half != Half::Off {
            t.data.iter_mut().for_each(|v| *v = crate::dtype::float16::round_f16(*v));
        }
        Ok(t)
    }
    fn vector(&self, name: &str, len: usize) -> Result<B::Tensor> {
        Ok(self.backend.upload(self.host(name, &[len])?))
    }
    /// A weight of the tensor-name table ([`crate::names`]), under the checkpoint's base-model prefix.
    fn name(&self, w: Weight) -> String {
        format!("{}{}", self.prefix, w.hf_name())
    }
    fn linear(&self, w: Weight) -> Result<B::Weight> {
        self.weight(&self.name(w), &w.shape(self.cfg))
    }
    /// [`Self::linear`] for a weight that multiplies a whole encoder input at a time: also in the
    /// backend's GEMM layout when `pack_prefill`, its bytes counted in the model's.
    fn prefill_linear(&self, w: Weight) -> Result<B::Weight> {
        let mut x = self.linear(w)?;
        if self.pack_prefill {
            self.prefill_bytes.set(self.prefill_bytes.get() + self.backend.pack_for_prefill(&mut x));
        }
        Ok(x)
    }
    fn norm(&self, w: Weight) -> Result<B::Tensor> {
        self.vector(&self.name(w), self.cfg.d_model)
    }
    fn attention(&self, stack: StackName, i: usize, cross: bool) -> Result<Attention<B>> {
        let w = |p| Weight::Block(stack, i, if cross { Part::Cross(p) } else { Part::SelfAttn(p) });
        // the encoder's projections and the cross-attention K/V multiply every encoder position
        let enc = stack == StackName::Encoder;
        let lin = |p, prefill: bool| if prefill { self.prefill_linear(w(p)) } else { self.linear(w(p)) };
        Ok(Attention { q: lin(Proj::Q, enc)?, k: lin(Proj::K, enc || cross)?, v: lin(Proj::V, enc || cross)?, o: lin(Proj::O, enc)? })
    }
    fn feed_forward(&self, stack: StackName, i: usize) -> Result<FeedForward<B>> {
        let kind = self.cfg.feed_forward()?;
        let w = |part| Weight::Block(stack, i, part);
        let lin = |part| if stack == StackName::Encoder { self.prefill_linear(w(part)) } else { self.linear(w(part)) };
        let (wi, wi_1) = if kind.gated { (lin(Part::Wi0)?, Some(lin(Part::Wi1)?)) } else { (lin(Part::Wi)?, None) };
        Ok(FeedForward { kind, wi, wi_1, wo: lin(Part::Wo)? })
    }
    fn stack(&self, stack: StackName, layers: usize) -> Result<Stack<B>> {
        let is_decoder = stack == StackName::Decoder;
        let mut blocks = Vec::with_capacity(layers);
        for i in 0..layers {
            let b = |part| Weight::Block(stack, i, part);
            blocks.push(Block {
                self_norm: self.norm(b(Part::SelfNorm))?,
                self_attn: self.attention(stack, i, false)?,
                cross: if is_decoder { Some((self.norm(b(Part::CrossNorm))?, self.attention(stack, i, true)?)) } else { None },
                ff_norm: self.norm(b(Part::FfNorm))?,
                ff: self.feed_forward(stack, i)?,
            });
        }
        let bias = Weight::Block(stack, 0, Part::RelBias);
        Ok(Stack { blocks, final_norm: self.norm(Weight::FinalNorm(stack))?, relative_bias: self.host(&self.name(bias), &bias.shape(self.cfg))? })
    }
}

impl<B: Backend> T5<B> {
    /// Build the model from a checkpoint, checking every tensor the config implies.
    pub fn load(config: T5Config, store: &WeightStore, kind: ModelKind, backend: B) -> Result<Self> {
        Self::load_with_dtype(config, store, kind, backend, WeightDtype::F32)
    }

    /// [`T5::load`] with the linear weights (and the embedding table) stored as `dtype`; tensors
    /// already quantized in the checkpoint are kept as they are.
    pub fn load_with_dtype(config: T5Config, store: &WeightStore, kind: ModelKind, backend: B, dtype: WeightDtype) -> Result<Self> {
        Self::load_inner(config, store, kind, backend, dtype, Half::Off)
    }

    /// [`T5::load`] with float16 weights and float16 activations ([`Half`]); `Half::Off` is
    /// `load_with_dtype(.., WeightDtype::F32)`.
    pub fn load_half(config: T5Config, store: &WeightStore, kind: ModelKind, backend: B, half: Half) -> Result<Self> {
        let dtype = if half == Half::Off { WeightDtype::F32 } else { WeightDtype::F16 };
        Self::load_inner(config, store, kind, backend, dtype, half)
    }

    fn load_inner(config: T5Config, store: &WeightStore, kind: ModelKind, backend: B, dtype: WeightDtype, half: Half) -> Result<Self> {
        config.validate()?;
        if config.num_layers == 0 {
            return Err(T5Error::BadConfig("num_layers must be positive".into()));
        }
        if kind.has_decoder() && config.decoder_layers() == 0 {
            return Err(T5Error::BadConfig("num_decoder_layers must be positive".into()));
        }
        // T5ForSequenceClassification / T5ForTokenClassification keep the base model under `transformer.`
        // (base_model_prefix); every class loads from either layout, as transformers does.
        let prefix = base_model_prefix(store).to_string();
        // The prefill weights' second layout takes at most as much again as the weights: only where
        // the default memory limit (one wasm32 memory) leaves room for twice the model.
        let pack_prefill = crate::formats::default_memory_limit().is_none_or(|limit| {
            let lm_head = kind == ModelKind::ConditionalGeneration && !config.tie_word_embeddings;
            let model = crate::formats::estimate_model_bytes(&config, kind.has_decoder(), lm_head, dtype);
            model.saturating_mul(2).saturating_add(crate::formats::MEMORY_RESERVE) <= limit
        });
        let l = Loader { store, backend: &backend, cfg: &config, dtype, fallbacks: Default::default(), bytes: Default::default(), half, prefix, pack_prefill, prefill_bytes: Default::default() };
        let shared_w = [Weight::Shared, Weight::EmbedTokens(StackName::Encoder)].into_iter().find(|&w| store.has_weight(&l.name(w))).unwrap_or(Weight::Shared);
        let shared = l.linear(shared_w)?;
        let encoder = l.stack(StackName::Encoder, config.num_layers)?;
        let decoder = if kind.has_decoder() { Some(l.stack(StackName::Decoder, config.decoder_layers())?) } else { None };
        // The head: `lm_head.weight` whenever the file has it (never under the base-model prefix);
        // tied to `shared` otherwise.
        let lm_head = if kind == ModelKind::ConditionalGeneration {
            let head = Weight::LmHead.hf_name();
            if store.has_weight(&head) {
                Some(l.weight(&head, &Weight::LmHead.shape(&config))?)
            } else if !config.tie_word_embeddings {
                return Err(T5Error::MissingTensor(head));
            } else {
                None
            }
        } else {
            None
        };
        let (weight_fallbacks, weight_bytes, prefill_bytes) = (l.fallbacks.into_inner(), l.bytes.get(), l.prefill_bytes.get());
        Ok(T5 { config, kind, backend, shared, encoder, decoder, lm_head, weight_fallbacks, weight_bytes, prefill_bytes, half, memory_limit: crate::formats::default_memory_limit() })
    }
}
