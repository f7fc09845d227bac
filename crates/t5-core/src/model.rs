//! The T5 model, read top to bottom like transformers' `modeling_t5.py`:
//! weights → attention / feed-forward → blocks → encoder stack → decoder stack with cache → LM head.
//! Generic over the backend; nothing here knows which device runs it.
//! Files: `layers.rs` (attention, feed-forward, layer norm), `stack.rs` (encoder / decoder stacks), `cache.rs`
//! (the decoder cache), `load.rs` (from a checkpoint), `outputs.rs` (forward outputs, loss); this file: the
//! [`T5`] model, its inputs, the LM head and `forward`.

mod cache;
mod layers;
mod load;
mod outputs;
mod stack;

pub use cache::DecoderCache;
pub use load::base_model_prefix;
pub use outputs::{cross_entropy, ForwardOutput, OutputFlags, Seq2SeqOutput, StackOutputs};
pub(crate) use outputs::mean_cross_entropy;

use crate::backend::Backend;
use crate::config::T5Config;
use crate::dtype::WeightDtype;
use crate::error::{Result, T5Error};
use stack::Stack;

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
impl<B: Backend> T5<B> {
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
        let pass = crate::budget::DecoderPass {
            positions: dec_positions.div_ceil(input.batch.max(1)),
            past: 0,
            logits: if self.kind == ModelKind::Model { 0 } else { self.config.vocab_size },
        };
        crate::budget::check_forward(self, input.batch, input.seq, true, (self.kind != ModelKind::Encoder).then_some(pass), OutputFlags::default())?;
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
