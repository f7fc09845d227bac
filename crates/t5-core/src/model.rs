//! The T5 model, read top to bottom like transformers' `modeling_t5.py`:
//! weights → attention / feed-forward → blocks → encoder stack → decoder stack with cache → LM head.
//! Generic over the backend; nothing here knows which device runs it.

use crate::backend::{AttentionMask, AttentionShape, Backend};
use crate::config::{FeedForwardKind, T5Config};
use crate::error::{Result, T5Error};
use crate::position::compute_bias;
use crate::dtype::WeightDtype;
use crate::tensor::Tensor;
use crate::formats::WeightStore;
use crate::names::{Part, Proj, Stack as StackName, Weight};

/// Which parts of the checkpoint a head needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// `T5ForConditionalGeneration`: encoder, decoder, LM head.
    ConditionalGeneration,
    /// `T5Model`: encoder and decoder, no head.
    Model,
    /// `T5EncoderModel`: encoder only.
    Encoder,
}

impl ModelKind {
    fn has_decoder(self) -> bool {
        self != ModelKind::Encoder
    }
}

/// A batch of token ids with its attention mask, `[batch, seq]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub ids: Vec<u32>,
    /// 1 = real token, 0 = padding.
    pub mask: Vec<u32>,
    pub batch: usize,
    pub seq: usize,
}

impl Batch {
    pub fn new(ids: Vec<u32>, mask: Option<Vec<u32>>, batch: usize, seq: usize) -> Result<Self> {
        if batch == 0 || seq == 0 {
            return Err(T5Error::BadInput(format!("empty input: batch {batch}, sequence length {seq}")));
        }
        if ids.len() != batch * seq {
            return Err(T5Error::BadInput(format!("{} ids for a [{batch}, {seq}] batch", ids.len())));
        }
        let mask = mask.unwrap_or_else(|| vec![1; ids.len()]);
        if mask.len() != ids.len() {
            return Err(T5Error::BadInput(format!("attention_mask has {} values, input_ids {}", mask.len(), ids.len())));
        }
        if mask.iter().any(|&m| m > 1) {
            return Err(T5Error::BadInput("attention_mask values must be 0 or 1".into()));
        }
        Ok(Batch { ids, mask, batch, seq })
    }

    /// An unpadded batch from equal-length rows.
    pub fn from_rows(rows: &[Vec<u32>]) -> Result<Self> {
        let seq = rows.first().map_or(0, |r| r.len());
        if rows.iter().any(|r| r.len() != seq) {
            return Err(T5Error::BadInput("rows of different lengths need padding and a mask".into()));
        }
        Batch::new(rows.concat(), None, rows.len(), seq)
    }
}

struct Attention<B: Backend> {
    q: B::Weight,
    k: B::Weight,
    v: B::Weight,
    o: B::Weight,
}

struct FeedForward<B: Backend> {
    kind: FeedForwardKind,
    /// `wi` (plain) or `wi_0` (gated: goes through the activation)
    wi: B::Weight,
    /// `wi_1` of the gated form
    wi_1: Option<B::Weight>,
    wo: B::Weight,
}

struct Block<B: Backend> {
    self_norm: B::Tensor,
    self_attn: Attention<B>,
    /// decoder blocks only: `layer.1` EncDecAttention
    cross: Option<(B::Tensor, Attention<B>)>,
    ff_norm: B::Tensor,
    ff: FeedForward<B>,
}

struct Stack<B: Backend> {
    blocks: Vec<Block<B>>,
    final_norm: B::Tensor,
    /// `block.0.layer.0.SelfAttention.relative_attention_bias.weight`, `[num_buckets, heads]`, shared by all layers.
    relative_bias: Tensor,
}

/// Per-layer keys/values for incremental decoding. Cross-attention K/V are projected once from
/// the encoder output; self-attention K/V grow by one position per step.
pub struct DecoderCache<B: Backend> {
    self_kv: Vec<Option<(B::Tensor, B::Tensor)>>,
    cross_kv: Vec<(B::Tensor, B::Tensor)>,
    encoder_mask: Vec<u32>,
    encoder_len: usize,
    batch: usize,
    past_len: usize,
}

impl<B: Backend> DecoderCache<B> {
    pub fn past_len(&self) -> usize {
        self.past_len
    }
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// Number of decoder layers the cache holds.
    pub fn num_layers(&self) -> usize {
        self.cross_kv.len()
    }
    /// Layer `i`'s self-attention keys and values (`None` before the first step) and cross-attention keys and
    /// values, `[batch, len, heads * d_kv]` as the backend holds them.
    #[allow(clippy::type_complexity)]
    pub fn layer(&self, i: usize) -> (Option<(&B::Tensor, &B::Tensor)>, (&B::Tensor, &B::Tensor)) {
        (self.self_kv[i].as_ref().map(|(k, v)| (k, v)), (&self.cross_kv[i].0, &self.cross_kv[i].1))
    }
    /// The encoder padding mask the cross-attention uses, `[batch, encoder_len]`.
    pub fn encoder_mask(&self) -> &[u32] {
        &self.encoder_mask
    }
    /// Preallocate every layer's self-attention keys/values for `capacity` decoder positions (the static
    /// cache, `cache_implementation: "static"`): each step then writes its rows in place
    /// ([`Backend::write_seq`]) instead of growing the tensors. Only before the first step. A static cache is
    /// recognised by its tensors being longer than `past_len`; [`DecoderCache::layer`] returns them whole.
    pub fn preallocate(&mut self, backend: &B, capacity: usize) -> Result<()> {
        if !backend.static_kv() {
            return Err(T5Error::BadConfig(format!("cache_implementation \"static\" is not supported by the {} backend", backend.name())));
        }
        if self.past_len != 0 || capacity == 0 {
            return Err(T5Error::BadInput("a static cache is allocated before the first decoder step, for at least one position".into()));
        }
        let inner = backend.shape(&self.cross_kv[0].0)[2];
        for kv in &mut self.self_kv {
            let z = || backend.upload(Tensor::zeros(vec![self.batch, capacity, inner]));
            *kv = Some((z(), z()));
        }
        Ok(())
    }
    /// Positions a preallocated (static) cache holds; `None` for the growing cache.
    pub fn capacity(&self, backend: &B) -> Option<usize> {
        match self.self_kv.first() {
            Some(Some((k, _))) if backend.shape(k)[1] > self.past_len => Some(backend.shape(k)[1]),
            _ => None,
        }
    }
    /// Beam search: batch row `i` of the self-attention cache takes row `index[i]`, in place. (Cross-attention
    /// rows are not touched: beams of one input share the encoder output.)
    pub fn reorder(&mut self, backend: &B, index: &[usize]) {
        let used = self.past_len;
        for (k, v) in self.self_kv.iter_mut().flatten() {
            backend.reorder_batch(k, index, used);
            backend.reorder_batch(v, index, used);
        }
    }
}

/// What a stack records when transformers' `output_hidden_states` / `output_attentions` ask for it (host tensors).
#[derive(Debug, Clone, Default)]
pub struct StackOutputs {
    /// `hidden_states`: the embeddings, the output of each block but the last, then the stack output after the
    /// final layer norm (`num_layers + 1` tensors `[batch, len, d_model]`), as transformers returns them.
    pub hidden_states: Vec<Tensor>,
    /// self-attention probabilities of each block, `[batch, heads, q_len, kv_len]`
    pub attentions: Vec<Tensor>,
    /// decoder only: cross-attention probabilities of each block, `[batch, heads, q_len, encoder_len]`
    pub cross_attentions: Vec<Tensor>,
}

/// Which of [`StackOutputs`] to record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputFlags {
    pub hidden_states: bool,
    pub attentions: bool,
}

impl OutputFlags {
    pub fn any(self) -> bool {
        self.hidden_states || self.attentions
    }
}

/// `"transformer."` when the checkpoint keeps its base model under transformers' `base_model_prefix`
/// (T5ForSequenceClassification, T5ForTokenClassification), `""` otherwise.
pub fn base_model_prefix(store: &WeightStore) -> &'static str {
    if [Weight::Shared, Weight::EmbedTokens(StackName::Encoder)].iter().any(|w| store.has_weight(&format!("transformer.{}", w.hf_name()))) {
        "transformer."
    } else {
        ""
    }
}

/// Float16 activations: transformers' `from_pretrained(dtype=torch.float16)` numerics. Weights are float16
/// (the feed-forward `wo` float32 when guarded); activations are rounded to float16 wherever transformers
/// holds them in float16 (linear outputs, layer norm outputs, attention outputs, the residual stream
/// until a float32 `wo` output turns it float32, logits), so they overflow to ±inf where transformers'
/// do. Arithmetic inside an op stays f32 (as torch's float16 matmuls accumulate in float32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Half {
    /// f32 activations (weight-only float16 with `dtype` fp16).
    #[default]
    Off,
    /// transformers' guards: `_keep_in_fp32_modules = ["wo"]` (its input cast up, its output float32)
    /// and T5Block's clamp of float16 hidden states when any is inf.
    Guarded,
    /// Neither guard (every `wo` float16, no clamp): what overflows without them. For tests.
    Unguarded,
}

/// Host-side outputs of a full forward pass.
#[derive(Debug, Clone)]
pub struct Seq2SeqOutput {
    pub encoder_last_hidden_state: Tensor,
    /// decoder output after the final layer norm (before the LM head rescale)
    pub decoder_last_hidden_state: Option<Tensor>,
    pub logits: Option<Tensor>,
    pub loss: Option<f32>,
}

pub struct T5<B: Backend> {
    pub config: T5Config,
    pub kind: ModelKind,
    backend: B,
    shared: B::Weight,
    encoder: Stack<B>,
    decoder: Option<Stack<B>>,
    /// `None` with a decoder: the head is tied to `shared`.
    lm_head: Option<B::Weight>,
    /// weights stored in another form than the requested `dtype` (input dim not a multiple of the
    /// q4 group, fp16 `wo`), with the form they got
    weight_fallbacks: Vec<(String, WeightDtype)>,
    weight_bytes: usize,
    /// bytes of the prefill weights' second layout ([`Backend::pack_for_prefill`])
    prefill_bytes: usize,
    half: Half,
    /// memory the model and its calls may use ([`crate::budget`]); default one wasm32 memory on 32-bit targets
    memory_limit: Option<u64>,
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

    /// Weights stored in another form than requested at load, with the form they got.
    pub fn weight_fallbacks(&self) -> &[(String, WeightDtype)] {
        &self.weight_fallbacks
    }

    /// Resident bytes of the linear weights and the embedding table (0 if the backend does not say).
    pub fn weight_bytes(&self) -> usize {
        self.weight_bytes
    }

    /// Resident bytes of the encoder's and the cross-attention K/V's weights packed once more for
    /// the backend's GEMM ([`Backend::pack_for_prefill`]; the CPU backend packs the f32 ones, and
    /// only where the default memory limit leaves room for twice the model); the call-time memory
    /// budget counts them beside [`Self::weight_bytes`].
    pub fn prefill_layout_bytes(&self) -> usize {
        self.prefill_bytes
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The memory the weights and a call's working memory may take together (`None`: unlimited);
    /// calls over it fail before they allocate ([`crate::budget`]).
    pub fn memory_limit(&self) -> Option<u64> {
        self.memory_limit
    }

    /// Set [`Self::memory_limit`] (a load's `max_memory`).
    pub fn set_memory_limit(&mut self, limit: Option<u64>) {
        self.memory_limit = limit;
    }

    /// The activation numerics ([`Half`]).
    pub fn half(&self) -> Half {
        self.half
    }

    /// Round to float16 in float16-activation mode (a tensor transformers holds in float16).
    fn rh(&self, x: &mut B::Tensor) {
        if self.half != Half::Off {
            self.backend.round_half(x);
        }
    }

    /// A linear layer whose output transformers holds in float16 (every one but a guarded `wo`).
    fn lin(&self, x: &B::Tensor, w: &B::Weight) -> B::Tensor {
        let mut y = self.backend.linear(x, w);
        self.rh(&mut y);
        y
    }

    /// T5LayerNorm (its output is float16 in float16 mode).
    fn norm(&self, x: &B::Tensor, w: &B::Tensor) -> B::Tensor {
        if self.half != Half::Off {
            self.backend.rms_norm_half(x, w, self.eps())
        } else {
            self.backend.rms_norm(x, w, self.eps())
        }
    }

    /// Residual add of an attention output (float16 in float16 mode). `stream_half`: the residual
    /// stream is still float16 (no float32 `wo` output added yet), so the sum is float16 and, guarded,
    /// T5Block clamps it.
    fn attn_residual(&self, x: &mut B::Tensor, y: &B::Tensor, stream_half: bool) {
        self.backend.add_assign(x, y);
        if self.half != Half::Off && stream_half {
            self.backend.round_half(x);
            if self.half == Half::Guarded {
                self.backend.clamp_half(x);
            }
        }
    }

    /// Residual add of a feed-forward output; returns whether the stream is still float16 (only
    /// unguarded: a guarded `wo` output is float32, and float16 + float32 is float32).
    fn ff_residual(&self, x: &mut B::Tensor, y: &B::Tensor, stream_half: bool) -> bool {
        self.backend.add_assign(x, y);
        let still = stream_half && self.half == Half::Unguarded;
        if still {
            self.backend.round_half(x);
        }
        still
    }

    fn eps(&self) -> f32 {
        self.config.layer_norm_epsilon as f32
    }

    fn check_ids(&self, ids: &[u32]) -> Result<()> {
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= self.config.vocab_size) {
            return Err(T5Error::BadInput(format!("token id {bad} is outside the vocabulary of {}", self.config.vocab_size)));
        }
        Ok(())
    }

    fn attention_shape(&self, batch: usize, q_len: usize, kv_len: usize) -> AttentionShape {
        AttentionShape { batch, heads: self.config.num_heads, head_dim: self.config.d_kv, q_len, kv_len, half: self.half != Half::Off }
    }

    fn feed_forward(&self, ff: &FeedForward<B>, x: &B::Tensor) -> B::Tensor {
        let be = &self.backend;
        let mut h = self.lin(x, &ff.wi);
        let half = self.half != Half::Off;
        match &ff.wi_1 {
            Some(wi_1) if half => be.gated_activate_half(&mut h, &self.lin(x, wi_1), ff.kind.act),
            Some(wi_1) => be.gated_activate(&mut h, &be.linear(x, wi_1), ff.kind.act),
            None if half => be.activate_half(&mut h, ff.kind.act),
            None => be.activate(&mut h, ff.kind.act),
        }
        // a guarded `wo` is float32: its float16 input is cast up, its output stays float32
        if self.half == Half::Unguarded {
            self.lin(&h, &ff.wo)
        } else {
            be.linear(&h, &ff.wo)
        }
    }

    /// Encoder stack: embeddings → blocks (self-attention with bidirectional relative bias and the
    /// padding mask, feed-forward; pre-norm residuals) → final layer norm. `[batch, seq, d_model]`.
    pub fn encode(&self, input: &Batch) -> Result<B::Tensor> {
        self.encode_with(input, None)
    }

    /// Self-attention, with its probabilities pushed to `probs` when they are asked for.
    #[allow(clippy::too_many_arguments)]
    fn attend(
        &self,
        q: &B::Tensor,
        k: &B::Tensor,
        v: &B::Tensor,
        bias: Option<&B::Tensor>,
        mask: AttentionMask<'_>,
        shape: AttentionShape,
        probs: Option<&mut Vec<Tensor>>,
    ) -> B::Tensor {
        match probs {
            None => self.backend.attention(q, k, v, bias, mask, shape),
            Some(list) => {
                let (out, p) = self.backend.attention_with_probs(q, k, v, bias, mask, shape);
                list.push(p);
                out
            }
        }
    }

    /// [`Self::encode`], recording hidden states / attentions into `rec` as `flags` ask.
    pub fn encode_with(&self, input: &Batch, mut rec: Option<(&mut StackOutputs, OutputFlags)>) -> Result<B::Tensor> {
        self.check_ids(&input.ids)?;
        crate::budget::check_encode(self, input.batch, input.seq)?;
        let be = &self.backend;
        let enc = &self.encoder;
        let (b, s) = (input.batch, input.seq);
        let mut x = be.embedding(&self.shared, &input.ids, &[b, s]);
        let bias = be.upload(compute_bias(&enc.relative_bias, s, s, 0, true, self.config.relative_attention_max_distance));
        let mask = AttentionMask { key_mask: Some(&input.mask), causal_offset: None };
        let mut stream_half = true;
        for block in &enc.blocks {
            if let Some((r, f)) = rec.as_mut() {
                if f.hidden_states {
                    r.hidden_states.push(be.download(&x));
                }
            }
            let h = self.norm(&x, &block.self_norm);
            let a = &block.self_attn;
            let (q, k, v) = (self.lin(&h, &a.q), self.lin(&h, &a.k), self.lin(&h, &a.v));
            let probs = rec.as_mut().filter(|(_, f)| f.attentions).map(|(r, _)| &mut r.attentions);
            let mut ctx = self.attend(&q, &k, &v, Some(&bias), mask, self.attention_shape(b, s, s), probs);
            self.rh(&mut ctx);
            self.attn_residual(&mut x, &self.lin(&ctx, &a.o), stream_half);
            let h = self.norm(&x, &block.ff_norm);
            stream_half = self.ff_residual(&mut x, &self.feed_forward(&block.ff, &h), stream_half);
        }
        let out = self.norm(&x, &enc.final_norm);
        if let Some((r, f)) = rec {
            if f.hidden_states {
                r.hidden_states.push(be.download(&out));
            }
        }
        Ok(out)
    }

    fn decoder_stack(&self) -> Result<&Stack<B>> {
        self.decoder.as_ref().ok_or_else(|| T5Error::BadInput("this model has no decoder (T5EncoderModel)".into()))
    }

    /// Start decoding against an encoder output: project each layer's cross-attention keys and
    /// values once.
    pub fn start_decoding(&self, encoder_hidden: &B::Tensor, encoder_mask: &[u32]) -> Result<DecoderCache<B>> {
        let dec = self.decoder_stack()?;
        let shape = self.backend.shape(encoder_hidden);
        let (batch, encoder_len) = (shape[0], shape[1]);
        if encoder_mask.len() != batch * encoder_len {
            return Err(T5Error::BadInput("encoder mask does not match the encoder output".into()));
        }
        let cross_kv = dec
            .blocks
            .iter()
            .map(|bl| {
                let a = &bl.cross.as_ref().expect("decoder block has cross-attention").1;
                (self.lin(encoder_hidden, &a.k), self.lin(encoder_hidden, &a.v))
            })
            .collect();
        Ok(DecoderCache {
            self_kv: (0..dec.blocks.len()).map(|_| None).collect(),
            cross_kv,
            encoder_mask: encoder_mask.to_vec(),
            encoder_len,
            batch,
            past_len: 0,
        })
    }

    /// A decoder cache rebuilt from host tensors (transformers' `past_key_values` given back in): per layer
    /// `[self K, self V, cross K, cross V]`, self `[batch, past_len, heads * d_kv]`, cross `[batch, encoder_len,
    /// heads * d_kv]`; `encoder_mask` `[batch, encoder_len]` (all ones when `None`).
    pub fn cache_from_host(&self, layers: Vec<[Tensor; 4]>, encoder_mask: Option<Vec<u32>>) -> Result<DecoderCache<B>> {
        let dec = self.decoder_stack()?;
        if layers.len() != dec.blocks.len() {
            return Err(T5Error::BadInput(format!("past_key_values has {} layers, the decoder {}", layers.len(), dec.blocks.len())));
        }
        let inner = self.config.inner_dim();
        let (batch, past_len, encoder_len) = match layers.first() {
            Some([sk, _, ck, _]) if sk.shape.len() == 3 && ck.shape.len() == 3 => (sk.shape[0], sk.shape[1], ck.shape[1]),
            _ => return Err(T5Error::BadInput("past_key_values tensors must be [batch, len, heads * d_kv]".into())),
        };
        let mut self_kv = Vec::with_capacity(layers.len());
        let mut cross_kv = Vec::with_capacity(layers.len());
        for [sk, sv, ck, cv] in layers {
            for (t, len) in [(&sk, past_len), (&sv, past_len), (&ck, encoder_len), (&cv, encoder_len)] {
                if t.shape != [batch, len, inner] {
                    return Err(T5Error::BadInput(format!("past_key_values tensor of shape {:?}, expected {:?}", t.shape, [batch, len, inner])));
                }
            }
            let be = &self.backend;
            self_kv.push(if past_len == 0 { None } else { Some((be.upload(sk), be.upload(sv))) });
            cross_kv.push((be.upload(ck), be.upload(cv)));
        }
        let encoder_mask = encoder_mask.unwrap_or_else(|| vec![1; batch * encoder_len]);
        if encoder_mask.len() != batch * encoder_len {
            return Err(T5Error::BadInput("attention_mask does not match the cached encoder length".into()));
        }
        Ok(DecoderCache { self_kv, cross_kv, encoder_mask, encoder_len, batch, past_len })
    }

    /// Run the decoder stack on `ids` (`[batch, q_len]`, positions continuing the cache) and
    /// return its output after the final layer norm, `[batch, q_len, d_model]`. Appends to the cache.
    /// `decoder_mask`: optional `[batch, past_len + q_len]` padding mask of decoder positions.
    pub fn decode(&self, cache: &mut DecoderCache<B>, ids: &[u32], q_len: usize, decoder_mask: Option<&[u32]>) -> Result<B::Tensor> {
        self.decode_with(cache, ids, q_len, decoder_mask, None)
    }

    /// [`Self::decode`], recording hidden states / self- and cross-attentions of the new positions into `rec`.
    pub fn decode_with(
        &self,
        cache: &mut DecoderCache<B>,
        ids: &[u32],
        q_len: usize,
        decoder_mask: Option<&[u32]>,
        mut rec: Option<(&mut StackOutputs, OutputFlags)>,
    ) -> Result<B::Tensor> {
        let dec = self.decoder_stack()?;
        let b = cache.batch;
        if q_len == 0 || ids.len() != b * q_len {
            return Err(T5Error::BadInput(format!("{} decoder ids for batch {b} × {q_len} positions", ids.len())));
        }
        self.check_ids(ids)?;
        let kv_len = cache.past_len + q_len;
        if let Some(m) = decoder_mask {
            if m.len() != b * kv_len {
                return Err(T5Error::BadInput(format!("decoder_attention_mask has {} values, expected {}", m.len(), b * kv_len)));
            }
        }
        let be = &self.backend;
        let static_cap = cache.capacity(be);
        if let Some(cap) = static_cap {
            if kv_len > cap {
                return Err(T5Error::BadInput(format!("the static cache holds {cap} positions, {kv_len} needed")));
            }
        }
        let mut x = be.embedding(&self.shared, ids, &[b, q_len]);
        let bias = be.upload(compute_bias(&dec.relative_bias, q_len, kv_len, cache.past_len, false, self.config.relative_attention_max_distance));
        let self_mask = AttentionMask { key_mask: decoder_mask, causal_offset: Some(cache.past_len) };
        let cross_mask = AttentionMask { key_mask: Some(&cache.encoder_mask), causal_offset: None };
        let mut stream_half = true;
        for (li, block) in dec.blocks.iter().enumerate() {
            if let Some((r, f)) = rec.as_mut() {
                if f.hidden_states {
                    r.hidden_states.push(be.download(&x));
                }
            }
            // self-attention over the cache plus the new positions
            let h = self.norm(&x, &block.self_norm);
            let a = &block.self_attn;
            let (q, k_new, v_new) = (self.lin(&h, &a.q), self.lin(&h, &a.k), self.lin(&h, &a.v));
            let (k, v) = match cache.self_kv[li].take() {
                // preallocated static cache: write the new rows in place
                Some((mut k, mut v)) if static_cap.is_some() => {
                    be.write_seq(&mut k, &k_new, cache.past_len);
                    be.write_seq(&mut v, &v_new, cache.past_len);
                    (k, v)
                }
                Some((k, v)) => (be.append_seq(k, &k_new), be.append_seq(v, &v_new)),
                None => (k_new, v_new),
            };
            let probs = rec.as_mut().filter(|(_, f)| f.attentions).map(|(r, _)| &mut r.attentions);
            let mut ctx = self.attend(&q, &k, &v, Some(&bias), self_mask, self.attention_shape(b, q_len, kv_len), probs);
            cache.self_kv[li] = Some((k, v));
            self.rh(&mut ctx);
            self.attn_residual(&mut x, &self.lin(&ctx, &a.o), stream_half);
            // cross-attention to the encoder output (no position bias, encoder padding mask)
            let (norm, ca) = block.cross.as_ref().expect("decoder block has cross-attention");
            let h = self.norm(&x, norm);
            let q = self.lin(&h, &ca.q);
            let (ck, cv) = &cache.cross_kv[li];
            let probs = rec.as_mut().filter(|(_, f)| f.attentions).map(|(r, _)| &mut r.cross_attentions);
            let mut ctx = self.attend(&q, ck, cv, None, cross_mask, self.attention_shape(b, q_len, cache.encoder_len), probs);
            self.rh(&mut ctx);
            self.attn_residual(&mut x, &self.lin(&ctx, &ca.o), stream_half);
            // feed-forward
            let h = self.norm(&x, &block.ff_norm);
            stream_half = self.ff_residual(&mut x, &self.feed_forward(&block.ff, &h), stream_half);
        }
        cache.past_len = kv_len;
        let out = self.norm(&x, &dec.final_norm);
        if let Some((r, f)) = rec {
            if f.hidden_states {
                r.hidden_states.push(be.download(&out));
            }
        }
        Ok(out)
    }

    /// LM head on decoder output: rescale by `d_model**-0.5` when the config says so
    /// (tied embeddings in v4-era configs), then project onto the vocabulary.
    pub fn lm_logits(&self, decoder_hidden: &B::Tensor) -> Result<B::Tensor> {
        if self.kind != ModelKind::ConditionalGeneration {
            return Err(T5Error::BadInput("this model has no LM head".into()));
        }
        let be = &self.backend;
        let head = self.lm_head.as_ref().unwrap_or(&self.shared);
        if self.config.scales_decoder_output() {
            let mut h = decoder_hidden.clone();
            be.scale(&mut h, (self.config.d_model as f32).powf(-0.5));
            self.rh(&mut h);
            Ok(self.lin(&h, head))
        } else {
            Ok(self.lin(decoder_hidden, head))
        }
    }

    /// transformers' `_shift_right`: prepend `decoder_start_token_id`, drop the last label,
    /// replace -100 by `pad_token_id`.
    pub fn shift_right(&self, labels: &[i64], batch: usize) -> Result<Vec<u32>> {
        let start = self.config.decoder_start_token_id.ok_or_else(|| T5Error::BadConfig("decoder_start_token_id is not set".into()))?;
        let pad = self.config.pad_token_id.ok_or_else(|| T5Error::BadConfig("pad_token_id is not set".into()))?;
        if batch == 0 || labels.len() % batch != 0 {
            return Err(T5Error::BadInput("labels do not split into the batch".into()));
        }
        let t = labels.len() / batch;
        let mut out = Vec::with_capacity(labels.len());
        for r in 0..batch {
            out.push(start);
            for &l in &labels[r * t..(r + 1) * t - 1] {
                out.push(if l == -100 { pad } else { u32::try_from(l).map_err(|_| T5Error::BadInput(format!("label {l} is not a token id or -100")))? });
            }
        }
        Ok(out)
    }

    /// Full forward pass as transformers' `forward(input_ids, attention_mask, decoder_input_ids | labels,
    /// decoder_attention_mask)`. With `labels` (`-100` ignored) and no decoder ids, the decoder input
    /// is the labels shifted right, and the mean cross-entropy loss is returned.
    pub fn forward(&self, input: &Batch, decoder_input_ids: Option<&[u32]>, labels: Option<&[i64]>, decoder_mask: Option<&[u32]>) -> Result<Seq2SeqOutput> {
        let out = self.forward_device(input, decoder_input_ids, labels, decoder_mask)?;
        let host = out.tensors().into_iter().map(|t| self.backend.download(t)).collect();
        out.with_host(host).finish()
    }

    /// [`T5::forward`] up to its device tensors: the one forward path of every backend. The caller reads
    /// [`ForwardOutput::tensors`] back (synchronously as [`T5::forward`] does, or asynchronously where a read
    /// cannot block: a GPU) and [`ForwardOutput::finish`]es on the host (the loss).
    pub fn forward_device(&self, input: &Batch, decoder_input_ids: Option<&[u32]>, labels: Option<&[i64]>, decoder_mask: Option<&[u32]>) -> Result<ForwardOutput<B::Tensor>> {
        let dec_positions = decoder_input_ids.map(<[u32]>::len).or(labels.map(<[i64]>::len)).unwrap_or(0);
        crate::budget::check_forward(self, input.batch, input.seq, dec_positions / input.batch.max(1))?;
        let enc = self.encode(input)?;
        let mut out = ForwardOutput { encoder_last_hidden_state: enc, decoder_last_hidden_state: None, logits: None, labels: None };
        if self.kind == ModelKind::Encoder {
            return Ok(out);
        }
        let shifted;
        let dec_ids: &[u32] = match (decoder_input_ids, labels) {
            (Some(ids), _) => ids,
            (None, Some(l)) => {
                shifted = self.shift_right(l, input.batch)?;
                &shifted
            }
            (None, None) => return Err(T5Error::BadInput("decoder_input_ids or labels are required".into())),
        };
        if dec_ids.is_empty() || dec_ids.len() % input.batch != 0 {
            return Err(T5Error::BadInput("decoder_input_ids do not split into the batch".into()));
        }
        let with_logits = self.kind != ModelKind::Model;
        if let Some(l) = labels.filter(|_| with_logits) {
            if l.len() != dec_ids.len() {
                return Err(T5Error::BadInput("labels and decoder_input_ids differ in length".into()));
            }
        }
        let t = dec_ids.len() / input.batch;
        let mut cache = self.start_decoding(&out.encoder_last_hidden_state, &input.mask)?;
        let hidden = self.decode(&mut cache, dec_ids, t, decoder_mask)?;
        if with_logits {
            out.logits = Some(self.lm_logits(&hidden)?);
            out.labels = labels.map(<[i64]>::to_vec);
        }
        out.decoder_last_hidden_state = Some(hidden);
        Ok(out)
    }
}

/// The outputs of [`T5::forward_device`] where they were computed (`T` = a backend's tensor), or read back
/// (`T` = [`Tensor`], see [`ForwardOutput::with_host`]); [`ForwardOutput::finish`] makes the host-side
/// [`Seq2SeqOutput`] (the loss from the labels).
pub struct ForwardOutput<T> {
    pub encoder_last_hidden_state: T,
    pub decoder_last_hidden_state: Option<T>,
    pub logits: Option<T>,
    /// the labels the loss is computed from (`ConditionalGeneration` only)
    labels: Option<Vec<i64>>,
}

impl<T> ForwardOutput<T> {
    /// The tensors to read back, in order: encoder hidden state, decoder hidden state, logits (those present).
    pub fn tensors(&self) -> Vec<&T> {
        std::iter::once(&self.encoder_last_hidden_state).chain(self.decoder_last_hidden_state.as_ref()).chain(self.logits.as_ref()).collect()
    }

    /// The same outputs with `host[i]` in place of `tensors()[i]`.
    pub fn with_host(self, host: Vec<Tensor>) -> ForwardOutput<Tensor> {
        assert_eq!(host.len(), 1 + self.decoder_last_hidden_state.is_some() as usize + self.logits.is_some() as usize, "one host tensor per device tensor");
        let mut it = host.into_iter();
        let encoder_last_hidden_state = it.next().unwrap();
        let decoder_last_hidden_state = self.decoder_last_hidden_state.map(|_| it.next().unwrap());
        let logits = self.logits.map(|_| it.next().unwrap());
        ForwardOutput { encoder_last_hidden_state, decoder_last_hidden_state, logits, labels: self.labels }
    }
}

impl ForwardOutput<Tensor> {
    /// The host-side output, with the loss when labels were given.
    pub fn finish(self) -> Result<Seq2SeqOutput> {
        let loss = match (&self.logits, &self.labels) {
            (Some(logits), Some(l)) => Some(cross_entropy(logits, l)?),
            _ => None,
        };
        Ok(Seq2SeqOutput { encoder_last_hidden_state: self.encoder_last_hidden_state, decoder_last_hidden_state: self.decoder_last_hidden_state, logits: self.logits, loss })
    }
}

/// Mean cross-entropy over the positions whose label is not -100 (torch's `CrossEntropyLoss(ignore_index=-100)`).
pub fn cross_entropy(logits: &Tensor, labels: &[i64]) -> Result<f32> {
    let v = logits.cols();
    if labels.len() != logits.rows() {
        return Err(T5Error::BadInput("one label per logits row is required".into()));
    }
    let (mut total, mut count) = (0.0f64, 0usize);
    for (r, &label) in labels.iter().enumerate() {
        if label == -100 {
            continue;
        }
        if label < 0 || label as usize >= v {
            return Err(T5Error::BadInput(format!("label {label} is outside the vocabulary of {v}")));
        }
        let row = logits.row(r);
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = row.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln() + max;
        total += lse - row[label as usize] as f64;
        count += 1;
    }
    Ok(if count == 0 { f32::NAN } else { (total / count as f64) as f32 })
}
