//! The task heads of transformers' T5 and the full forward pass with transformers' optional outputs.
//!
//! - `T5ForSequenceClassification`: the decoder (fed `input_ids` shifted right unless `decoder_input_ids` are given)
//!   read at the last EOS of each row → dense → tanh → out_proj (`T5ClassificationHead`); losses by `problem_type`
//!   (regression: MSE, single label: cross-entropy, multi label: BCE with logits), picked as transformers picks them.
//! - `T5ForTokenClassification`: encoder → classifier; cross-entropy (-100 ignored).
//! - `T5ForQuestionAnswering`: decoder (again `input_ids` shifted right by default) → qa_outputs → start / end
//!   logits; loss = mean of the start and end cross-entropies, positions clamped to `[0, len]` and `len` ignored.
//!
//! Weights: the sequence and token classifiers keep their base model under `transformer.` (transformers'
//! `base_model_prefix`), question answering keeps it at the top level; [`T5::load`] reads either layout. The head
//! tensors are `classification_head.{dense,out_proj}.{weight,bias}`, `classifier.{weight,bias}`,
//! `qa_outputs.{weight,bias}`. Dropout is the identity (inference).
//!
//! [`forward`] is transformers' `model(**inputs)` for every class: `encoder_outputs` given back in skip the
//! encoder, `past_key_values` (a [`DecoderCache`]) are continued and returned with `use_cache`, and
//! `output_hidden_states` / `output_attentions` record [`StackOutputs`] for the encoder and the decoder.

use crate::backend::Backend;
use crate::budget;
use crate::config::T5Config;
use crate::error::{Result, T5Error};
use crate::model::{Batch, DecoderCache, ModelKind, OutputFlags, StackOutputs, T5};

mod cache;
mod loss;

pub use cache::{from_heads_layout, past_key_values};
pub use loss::{cross_entropy_ignore, sequence_classification_loss};
use crate::tensor::Tensor;
use crate::formats::WeightStore;
use serde_json::Value;

/// The model classes of transformers' T5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    ConditionalGeneration,
    Model,
    Encoder,
    SequenceClassification,
    TokenClassification,
    QuestionAnswering,
}

impl Task {
    /// The parts of the base model the class uses.
    pub fn base_kind(self) -> ModelKind {
        match self {
            Task::ConditionalGeneration => ModelKind::ConditionalGeneration,
            Task::Model | Task::SequenceClassification | Task::QuestionAnswering => ModelKind::Model,
            Task::Encoder | Task::TokenClassification => ModelKind::Encoder,
        }
    }

    /// transformers' class name.
    pub fn class_name(self) -> &'static str {
        match self {
            Task::ConditionalGeneration => "T5ForConditionalGeneration",
            Task::Model => "T5Model",
            Task::Encoder => "T5EncoderModel",
            Task::SequenceClassification => "T5ForSequenceClassification",
            Task::TokenClassification => "T5ForTokenClassification",
            Task::QuestionAnswering => "T5ForQuestionAnswering",
        }
    }

    /// The class an `architectures` entry names.
    pub fn from_class_name(name: &str) -> Option<Task> {
        [
            Task::ConditionalGeneration,
            Task::Model,
            Task::Encoder,
            Task::SequenceClassification,
            Task::TokenClassification,
            Task::QuestionAnswering,
        ]
        .into_iter()
        .find(|t| t.class_name() == name)
    }

    /// The class config.json's `architectures` names first (`None` when absent or not a T5 class).
    pub fn from_config(cfg: &T5Config) -> Option<Task> {
        cfg.architectures.as_ref()?.iter().find_map(|a| Task::from_class_name(a))
    }
}

/// transformers' `num_labels`: the size of `id2label` when the config has one, else `num_labels`, else 2.
pub fn num_labels(cfg: &T5Config) -> usize {
    match &cfg.id2label {
        Some(Value::Object(m)) if !m.is_empty() => m.len(),
        _ => cfg.num_labels.unwrap_or(2),
    }
}

/// A head's weights (biases resident on the device too, added after the projection).
pub enum Head<B: Backend> {
    SequenceClassification { dense: B::Weight, dense_bias: B::Tensor, out_proj: B::Weight, out_bias: B::Tensor },
    TokenClassification { classifier: B::Weight, bias: B::Tensor },
    QuestionAnswering { qa_outputs: B::Weight, bias: B::Tensor },
}

impl<B: Backend> Head<B> {
    /// The head of `task` from the checkpoint (`None` for the classes without one of these heads).
    pub fn load(task: Task, cfg: &T5Config, store: &WeightStore, backend: &B) -> Result<Option<Self>> {
        let (d, n) = (cfg.d_model, num_labels(cfg));
        if n == 0 && matches!(task, Task::SequenceClassification | Task::TokenClassification | Task::QuestionAnswering) {
            return Err(T5Error::BadConfig("num_labels must be positive".into()));
        }
        let w = |name: &str, shape: &[usize]| -> Result<B::Weight> { Ok(backend.upload_weight(store.get(name, shape)?)) };
        let b = |name: &str, len: usize| -> Result<B::Tensor> { Ok(backend.upload(store.get(name, &[len])?)) };
        Ok(match task {
            Task::SequenceClassification => Some(Head::SequenceClassification {
                dense: w("classification_head.dense.weight", &[d, d])?,
                dense_bias: b("classification_head.dense.bias", d)?,
                out_proj: w("classification_head.out_proj.weight", &[n, d])?,
                out_bias: b("classification_head.out_proj.bias", n)?,
            }),
            Task::TokenClassification => Some(Head::TokenClassification { classifier: w("classifier.weight", &[n, d])?, bias: b("classifier.bias", n)? }),
            Task::QuestionAnswering => {
                if n != 2 {
                    return Err(T5Error::BadConfig(format!("T5ForQuestionAnswering needs num_labels = 2 (start and end logits), the config has {n}")));
                }
                Some(Head::QuestionAnswering { qa_outputs: w("qa_outputs.weight", &[n, d])?, bias: b("qa_outputs.bias", n)? })
            }
            _ => None,
        })
    }
}

/// A model of any T5 class: the base model and its head.
pub struct TaskModel<B: Backend> {
    pub task: Task,
    pub model: T5<B>,
    pub head: Option<Head<B>>,
}

impl<B: Backend> TaskModel<B> {
    /// Load `task` (or, with `None`, the class config.json's `architectures` names; T5ForConditionalGeneration
    /// when it names none).
    pub fn load(config: T5Config, store: &WeightStore, task: Option<Task>, backend: B) -> Result<Self> {
        let task = task.or_else(|| Task::from_config(&config)).unwrap_or(Task::ConditionalGeneration);
        let head = Head::load(task, &config, store, &backend)?;
        let model = T5::load(config, store, task.base_kind(), backend)?;
        Ok(TaskModel { task, model, head })
    }

    /// [`forward`]: the outputs read back synchronously (the CPU; a GPU natively).
    pub fn forward(&self, args: ForwardArgs<'_, B>) -> Result<ModelOutput<B>> {
        forward(&self.model, self.task, self.head.as_ref(), args)
    }

    /// [`forward_device`]: the outputs left on the device for the caller to read back.
    pub fn forward_device(&self, args: ForwardArgs<'_, B>) -> Result<ModelOutput<B, B::Tensor>> {
        forward_device(&self.model, self.task, self.head.as_ref(), args)
    }
}

/// Labels of a classification loss: integer class ids (-100 ignored) or float targets (regression, multi-label).
#[derive(Debug, Clone, PartialEq)]
pub enum Labels {
    Ids(Vec<i64>),
    Floats(Vec<f32>),
}

/// The arguments of transformers' `forward` (flat `[batch, seq]` arrays).
pub struct ForwardArgs<'a, B: Backend> {
    pub input_ids: Option<&'a [u32]>,
    pub attention_mask: Option<&'a [u32]>,
    /// Rows and length of the encoder input (of `input_ids`, or of `encoder_outputs`).
    pub batch: usize,
    pub seq: usize,
    /// `encoder_outputs[0]`, `[batch, seq, d_model]`: skips the encoder.
    pub encoder_outputs: Option<Tensor>,
    pub decoder_input_ids: Option<&'a [u32]>,
    /// `[batch, past_len + dec_len]`
    pub decoder_attention_mask: Option<&'a [u32]>,
    /// LM: target ids (`[batch, dec_len]`); sequence classification: `Ids` `[batch]` or `Floats` `[batch * num_labels]`
    /// (or `[batch]` with one label); token classification: `Ids` `[batch * seq]`.
    pub labels: Option<Labels>,
    pub start_positions: Option<&'a [i64]>,
    pub end_positions: Option<&'a [i64]>,
    pub flags: OutputFlags,
    /// `past_key_values`: continue this cache (its encoder keys / values are reused).
    pub past: Option<DecoderCache<B>>,
    /// Return the decoder cache.
    pub use_cache: bool,
}

impl<'a, B: Backend> ForwardArgs<'a, B> {
    /// `input_ids` and `attention_mask` alone.
    pub fn new(input_ids: &'a [u32], attention_mask: Option<&'a [u32]>, batch: usize, seq: usize) -> Self {
        ForwardArgs {
            input_ids: Some(input_ids),
            attention_mask,
            batch,
            seq,
            encoder_outputs: None,
            decoder_input_ids: None,
            decoder_attention_mask: None,
            labels: None,
            start_positions: None,
            end_positions: None,
            flags: OutputFlags::default(),
            past: None,
            use_cache: false,
        }
    }
}

/// Everything a forward pass can return: `T` = a backend's tensor ([`forward_device`]: computed, not read), or
/// [`Tensor`] ([`ModelOutput::finish`]: read back, the loss computed).
pub struct ModelOutput<B: Backend, T = Tensor> {
    pub loss: Option<f32>,
    /// LM: `[batch, dec_len, vocab]`; sequence classification `[batch, num_labels]`; token classification
    /// `[batch, seq, num_labels]`. On the device, question answering's projection `[batch, dec_len, 2]` (start and
    /// end interleaved), which [`ModelOutput::finish`] splits into `start_logits` / `end_logits`.
    pub logits: Option<T>,
    /// question answering, `[batch, dec_len]` (host only)
    pub start_logits: Option<Tensor>,
    pub end_logits: Option<Tensor>,
    /// The `problem_type` the sequence-classification loss used.
    pub problem_type: Option<String>,
    pub encoder_last_hidden_state: Option<T>,
    /// Decoder output after the final layer norm, `[batch, dec_len, d_model]`.
    pub decoder_last_hidden_state: Option<T>,
    pub encoder: StackOutputs,
    pub decoder: StackOutputs,
    /// With `use_cache`: the decoder cache after this pass (`past_key_values`).
    pub cache: Option<DecoderCache<B>>,
    /// What [`ModelOutput::finish`] computes on the host from the read-back logits.
    pending: Pending,
}

/// The host work left once the logits are read: the loss (from the labels given) and the QA split.
#[derive(Debug, Clone, Default)]
enum Pending {
    #[default]
    None,
    /// LM cross-entropy (-100 ignored)
    Lm(Vec<i64>),
    /// token classification cross-entropy (-100 ignored)
    Token(Vec<i64>),
    /// sequence classification: the config's `problem_type` and the labels
    Sequence(Option<String>, Labels),
    /// question answering: split the `[batch, t, 2]` logits; with positions (clamped, `t` ignored) the loss
    QuestionAnswering { batch: usize, t: usize, positions: Option<(Vec<i64>, Vec<i64>)> },
}

impl<B: Backend> ModelOutput<B, B::Tensor> {
    /// The device tensors to read back, in order: encoder hidden state, decoder hidden state, logits (those present).
    pub fn tensors(&self) -> Vec<&B::Tensor> {
        self.encoder_last_hidden_state.iter().chain(self.decoder_last_hidden_state.as_ref()).chain(self.logits.as_ref()).collect()
    }

    /// Read every tensor back synchronously and [`ModelOutput::finish`] (the CPU; a GPU natively).
    pub fn download(self, be: &B) -> Result<ModelOutput<B>> {
        let host = self.tensors().into_iter().map(|t| be.download(t)).collect();
        self.finish(host)
    }

    /// The host output from `host[i]`, the read-back `tensors()[i]`: the one place every backend computes the
    /// losses and splits the question-answering logits.
    pub fn finish(self, host: Vec<Tensor>) -> Result<ModelOutput<B>> {
        let expected = self.tensors().len();
        if host.len() != expected {
            return Err(bad(format!("{} host tensors for {expected} device tensors", host.len())));
        }
        let mut it = host.into_iter();
        let encoder_last_hidden_state = self.encoder_last_hidden_state.map(|_| it.next().unwrap());
        let decoder_last_hidden_state = self.decoder_last_hidden_state.map(|_| it.next().unwrap());
        let mut logits = self.logits.map(|_| it.next().unwrap());
        let mut out = ModelOutput {
            loss: None,
            logits: None,
            start_logits: None,
            end_logits: None,
            problem_type: None,
            encoder_last_hidden_state,
            decoder_last_hidden_state,
            encoder: self.encoder,
            decoder: self.decoder,
            cache: self.cache,
            pending: Pending::None,
        };
        let need = |l: &Option<Tensor>| -> Result<()> { l.as_ref().map(|_| ()).ok_or_else(|| bad("no logits to compute the loss from")) };
        match self.pending {
            Pending::None => {}
            Pending::Lm(l) => {
                need(&logits)?;
                out.loss = Some(crate::model::cross_entropy(logits.as_ref().unwrap(), &l)?);
            }
            Pending::Token(l) => {
                need(&logits)?;
                out.loss = Some(cross_entropy_ignore(logits.as_ref().unwrap(), &l, -100)?);
            }
            Pending::Sequence(problem_type, labels) => {
                need(&logits)?;
                let (loss, problem) = loss::sequence_loss(problem_type.as_deref(), logits.as_ref().unwrap(), &labels)?;
                out.loss = Some(loss);
                out.problem_type = Some(problem.into());
            }
            Pending::QuestionAnswering { batch, t, positions } => {
                let qa = logits.take().ok_or_else(|| bad("no question-answering logits"))?;
                let start = Tensor::new(vec![batch, t], qa.data.iter().step_by(2).copied().collect());
                let end = Tensor::new(vec![batch, t], qa.data.iter().skip(1).step_by(2).copied().collect());
                if let Some((sp, ep)) = positions {
                    // positions outside the input are clamped to `t` and ignored, as transformers does
                    let ignored = t as i64;
                    let clamp = |p: &[i64]| p.iter().map(|&x| x.clamp(0, ignored)).collect::<Vec<_>>();
                    let s = cross_entropy_ignore(&start, &clamp(&sp), ignored)?;
                    let e = cross_entropy_ignore(&end, &clamp(&ep), ignored)?;
                    out.loss = Some((s + e) / 2.0);
                }
                out.start_logits = Some(start);
                out.end_logits = Some(end);
            }
        }
        out.logits = logits;
        Ok(out)
    }
}

fn bad(msg: impl Into<String>) -> T5Error {
    T5Error::BadInput(msg.into())
}

/// `x @ w^T + bias` on the device.
fn linear_bias<B: Backend>(be: &B, x: &B::Tensor, w: &B::Weight, bias: &B::Tensor) -> B::Tensor {
    let mut y = be.linear(x, w);
    be.add_bias(&mut y, bias);
    y
}

/// transformers' `_shift_right` of `input_ids` (the default decoder input of the classification and QA heads).
fn shift_ids(model: &T5<impl Backend>, ids: &[u32], batch: usize) -> Result<Vec<u32>> {
    let l: Vec<i64> = ids.iter().map(|&x| x as i64).collect();
    model.shift_right(&l, batch)
}

/// The full forward pass of the class `task` (see the module docs), read back synchronously: [`forward_device`]
/// then [`ModelOutput::download`].
pub fn forward<B: Backend>(model: &T5<B>, task: Task, head: Option<&Head<B>>, args: ForwardArgs<'_, B>) -> Result<ModelOutput<B>> {
    forward_device(model, task, head, args)?.download(model.backend())
}

/// The full forward pass of the class `task` up to its device tensors: the one forward path of every backend.
/// The caller reads [`ModelOutput::tensors`] back (synchronously, [`ModelOutput::download`], or asynchronously
/// where a read cannot block: a GPU in wasm) and [`ModelOutput::finish`]es on the host (losses, QA split).
/// `output_hidden_states` / `output_attentions` are recorded on the host as the stacks run (synchronous reads).
pub fn forward_device<B: Backend>(model: &T5<B>, task: Task, head: Option<&Head<B>>, mut args: ForwardArgs<'_, B>) -> Result<ModelOutput<B, B::Tensor>> {
    let be = model.backend();
    let (batch, seq) = (args.batch, args.seq);
    if batch == 0 || seq == 0 {
        return Err(bad(format!("empty input: batch {batch}, sequence length {seq}")));
    }
    let n = batch * seq;
    if let Some(ids) = args.input_ids {
        if ids.len() != n {
            return Err(bad(format!("{} input ids for a [{batch}, {seq}] batch", ids.len())));
        }
    }
    if let Some(m) = args.attention_mask {
        if m.len() != n {
            return Err(bad(format!("attention_mask has {} values, input_ids {n}", m.len())));
        }
        if m.iter().any(|&x| x > 1) {
            return Err(bad("attention_mask values must be 0 or 1"));
        }
    }
    let mask: Vec<u32> = args.attention_mask.map(<[u32]>::to_vec).unwrap_or_else(|| vec![1; n]);
    let mut out = ModelOutput {
        loss: None,
        logits: None,
        start_logits: None,
        end_logits: None,
        problem_type: None,
        encoder_last_hidden_state: None,
        decoder_last_hidden_state: None,
        encoder: StackOutputs::default(),
        decoder: StackOutputs::default(),
        cache: None,
        pending: Pending::None,
    };
    let flags = args.flags;
    // the call's working memory, before anything large is allocated: the encoder when it runs, the
    // decoder pass (its positions as the decoder input below takes them: given, the shifted labels,
    // or the shifted input of the classification heads), what `flags` record
    let encoder_runs = args.encoder_outputs.is_none() && args.input_ids.is_some();
    let decoder = (!matches!(task, Task::Encoder | Task::TokenClassification)).then(|| budget::DecoderPass {
        positions: match (args.decoder_input_ids, &args.labels, task) {
            (Some(d), _, _) => d.len().div_ceil(batch),
            (None, Some(Labels::Ids(l)), Task::ConditionalGeneration | Task::Model) => l.len().div_ceil(batch),
            _ => seq,
        },
        past: args.past.as_ref().map_or(0, DecoderCache::past_len),
        logits: if task == Task::ConditionalGeneration { model.config.vocab_size } else { 0 },
    });
    budget::check_forward(model, batch, seq, encoder_runs, decoder, flags)?;
    fn rec(r: &mut StackOutputs, f: OutputFlags) -> Option<(&mut StackOutputs, OutputFlags)> {
        if f.any() { Some((r, f)) } else { None }
    }

    // encoder (skipped with encoder_outputs; not needed when a cache is continued without input)
    let enc: Option<B::Tensor> = match (args.encoder_outputs.take(), args.input_ids) {
        (Some(h), _) => {
            if h.shape != [batch, seq, model.config.d_model] {
                return Err(bad(format!("encoder_outputs has shape {:?}, expected {:?}", h.shape, [batch, seq, model.config.d_model])));
            }
            Some(be.upload(h))
        }
        (None, Some(ids)) => {
            let input = Batch::new(ids.to_vec(), Some(mask.clone()), batch, seq)?;
            Some(model.encode_with(&input, rec(&mut out.encoder, flags))?)
        }
        (None, None) if args.past.is_some() => None,
        (None, None) => return Err(bad("input_ids or encoder_outputs are required")),
    };

    if matches!(task, Task::Encoder | Task::TokenClassification) {
        if let (Some(Head::TokenClassification { classifier, bias }), Some(e)) = (head, &enc) {
            if let Some(labels) = args.labels.take() {
                let Labels::Ids(l) = labels else { return Err(bad("token classification labels must be class ids")) };
                if l.len() != n {
                    return Err(bad(format!("labels have {} values, input_ids {n}", l.len())));
                }
                out.pending = Pending::Token(l);
            }
            out.logits = Some(linear_bias(be, e, classifier, bias));
        }
        out.encoder_last_hidden_state = enc;
        return Ok(out);
    }

    // decoder input
    let shifted;
    let dec_ids: &[u32] = match (args.decoder_input_ids, &args.labels, task) {
        (Some(d), _, _) => d,
        (None, Some(Labels::Ids(l)), Task::ConditionalGeneration | Task::Model) => {
            shifted = model.shift_right(l, batch)?;
            &shifted
        }
        (None, _, Task::SequenceClassification | Task::QuestionAnswering) => {
            let ids = args.input_ids.ok_or_else(|| {
                bad("If no `decoder_input_ids` or `decoder_inputs_embeds` are passed, `input_ids` cannot be `None`. Please pass either `input_ids` or `decoder_input_ids` or `decoder_inputs_embeds`.")
            })?;
            shifted = shift_ids(model, ids, batch)?;
            &shifted
        }
        _ => return Err(bad("decoder_input_ids or labels are required")),
    };
    if dec_ids.is_empty() || dec_ids.len() % batch != 0 {
        return Err(bad(format!("{} decoder positions do not split into a batch of {batch}", dec_ids.len())));
    }
    let t = dec_ids.len() / batch;
    let mut cache = match args.past.take() {
        Some(c) => {
            if c.batch() != batch {
                return Err(bad(format!("past_key_values have batch {}, the input {batch}", c.batch())));
            }
            c
        }
        None => model.start_decoding(enc.as_ref().expect("encoder output"), &mask)?,
    };
    let hidden = model.decode_with(&mut cache, dec_ids, t, args.decoder_attention_mask, rec(&mut out.decoder, flags))?;

    match (task, head) {
        (Task::ConditionalGeneration, _) => {
            if let Some(labels) = args.labels.take() {
                let Labels::Ids(l) = labels else { return Err(bad("LM labels must be token ids")) };
                if l.len() != dec_ids.len() {
                    return Err(bad("labels and decoder_input_ids differ in length"));
                }
                out.pending = Pending::Lm(l);
            }
            out.logits = Some(model.lm_logits(&hidden)?);
        }
        (Task::SequenceClassification, Some(Head::SequenceClassification { dense, dense_bias, out_proj, out_bias })) => {
            let ids = args.input_ids.ok_or_else(|| bad("T5ForSequenceClassification needs input_ids (it reads the decoder at their EOS)"))?;
            if t != seq {
                return Err(bad(format!("decoder_input_ids have {t} positions per row, input_ids {seq}: the head reads the decoder output at the EOS positions of input_ids")));
            }
            let eos = model.config.eos_token_ids().first().copied().ok_or_else(|| T5Error::BadConfig("eos_token_id is not set".into()))?;
            let counts: Vec<usize> = (0..batch).map(|r| ids[r * seq..(r + 1) * seq].iter().filter(|&&x| x == eos).count()).collect();
            if counts.windows(2).any(|w| w[0] != w[1]) {
                return Err(bad("All examples must have the same number of <eos> tokens."));
            }
            if counts[0] == 0 {
                return Err(bad("Each example must contain at least one <eos> token."));
            }
            let last: Vec<usize> = (0..batch).map(|r| (0..seq).rev().find(|&j| ids[r * seq + j] == eos).expect("row has an EOS")).collect();
            let rep = be.gather_positions(&hidden, &last);
            let mut h = linear_bias(be, &rep, dense, dense_bias);
            be.tanh(&mut h);
            out.logits = Some(linear_bias(be, &h, out_proj, out_bias));
            if let Some(labels) = args.labels.take() {
                out.pending = Pending::Sequence(model.config.problem_type.clone(), labels);
            }
        }
        (Task::QuestionAnswering, Some(Head::QuestionAnswering { qa_outputs, bias })) => {
            let positions = match (args.start_positions, args.end_positions) {
                (Some(sp), Some(ep)) => {
                    if sp.len() != batch || ep.len() != batch {
                        return Err(bad(format!("start_positions / end_positions need one value per row ({batch})")));
                    }
                    Some((sp.to_vec(), ep.to_vec()))
                }
                _ => None,
            };
            out.logits = Some(linear_bias(be, &hidden, qa_outputs, bias));
            out.pending = Pending::QuestionAnswering { batch, t, positions };
        }
        (Task::Model, _) => {}
        (task, _) => return Err(T5Error::BadConfig(format!("{} has no head loaded", task.class_name()))),
    }
    out.encoder_last_hidden_state = enc;
    out.decoder_last_hidden_state = Some(hidden);
    if args.use_cache {
        out.cache = Some(cache);
    }
    Ok(out)
}
