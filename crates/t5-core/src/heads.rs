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
use crate::config::T5Config;
use crate::error::{Result, T5Error};
use crate::model::{Batch, DecoderCache, ModelKind, OutputFlags, StackOutputs, T5};
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

/// A head's weights. Biases stay on the host (added after the projection).
pub enum Head<B: Backend> {
    SequenceClassification { dense: B::Weight, dense_bias: Vec<f32>, out_proj: B::Weight, out_bias: Vec<f32> },
    TokenClassification { classifier: B::Weight, bias: Vec<f32> },
    QuestionAnswering { qa_outputs: B::Weight, bias: Vec<f32> },
}

impl<B: Backend> Head<B> {
    /// The head of `task` from the checkpoint (`None` for the classes without one of these heads).
    pub fn load(task: Task, cfg: &T5Config, store: &WeightStore, backend: &B) -> Result<Option<Self>> {
        let (d, n) = (cfg.d_model, num_labels(cfg));
        if n == 0 && matches!(task, Task::SequenceClassification | Task::TokenClassification | Task::QuestionAnswering) {
            return Err(T5Error::BadConfig("num_labels must be positive".into()));
        }
        let w = |name: &str, shape: &[usize]| -> Result<B::Weight> { Ok(backend.upload_weight(store.get(name, shape)?)) };
        let b = |name: &str, len: usize| -> Result<Vec<f32>> { Ok(store.get(name, &[len])?.data) };
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

    pub fn forward(&self, args: ForwardArgs<'_, B>) -> Result<ModelOutput<B>> {
        forward(&self.model, self.task, self.head.as_ref(), args)
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

/// Everything a forward pass can return (host tensors).
pub struct ModelOutput<B: Backend> {
    pub loss: Option<f32>,
    /// LM: `[batch, dec_len, vocab]`; sequence classification `[batch, num_labels]`; token classification
    /// `[batch, seq, num_labels]`.
    pub logits: Option<Tensor>,
    /// question answering, `[batch, dec_len]`
    pub start_logits: Option<Tensor>,
    pub end_logits: Option<Tensor>,
    /// The `problem_type` the sequence-classification loss used.
    pub problem_type: Option<String>,
    pub encoder_last_hidden_state: Option<Tensor>,
    /// Decoder output after the final layer norm, `[batch, dec_len, d_model]`.
    pub decoder_last_hidden_state: Option<Tensor>,
    pub encoder: StackOutputs,
    pub decoder: StackOutputs,
    /// With `use_cache`: the decoder cache after this pass (`past_key_values`).
    pub cache: Option<DecoderCache<B>>,
}

fn bad(msg: impl Into<String>) -> T5Error {
    T5Error::BadInput(msg.into())
}

/// `x @ w^T + bias` on host rows.
fn linear_bias<B: Backend>(be: &B, x: &B::Tensor, w: &B::Weight, bias: &[f32]) -> Tensor {
    let mut y = be.download(&be.linear(x, w));
    let n = bias.len();
    y.data.chunks_exact_mut(n).for_each(|row| row.iter_mut().zip(bias).for_each(|(a, b)| *a += b));
    y
}

/// transformers' `_shift_right` of `input_ids` (the default decoder input of the classification and QA heads).
fn shift_ids(model: &T5<impl Backend>, ids: &[u32], batch: usize) -> Result<Vec<u32>> {
    let l: Vec<i64> = ids.iter().map(|&x| x as i64).collect();
    model.shift_right(&l, batch)
}

/// The full forward pass of the class `task` (see the module docs).
pub fn forward<B: Backend>(model: &T5<B>, task: Task, head: Option<&Head<B>>, mut args: ForwardArgs<'_, B>) -> Result<ModelOutput<B>> {
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
    };
    let flags = args.flags;
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
    out.encoder_last_hidden_state = enc.as_ref().map(|e| be.download(e));

    if matches!(task, Task::Encoder | Task::TokenClassification) {
        if let (Some(Head::TokenClassification { classifier, bias }), Some(e)) = (head, &enc) {
            let logits = linear_bias(be, e, classifier, bias);
            if let Some(labels) = &args.labels {
                let Labels::Ids(l) = labels else { return Err(bad("token classification labels must be class ids")) };
                if l.len() != n {
                    return Err(bad(format!("labels have {} values, input_ids {n}", l.len())));
                }
                out.loss = Some(cross_entropy_ignore(&logits, l, -100)?);
            }
            out.logits = Some(logits);
        }
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
    let hidden_host = be.download(&hidden);

    match (task, head) {
        (Task::ConditionalGeneration, _) => {
            let logits = be.download(&model.lm_logits(&hidden)?);
            if let Some(labels) = &args.labels {
                let Labels::Ids(l) = labels else { return Err(bad("LM labels must be token ids")) };
                if l.len() != dec_ids.len() {
                    return Err(bad("labels and decoder_input_ids differ in length"));
                }
                out.loss = Some(crate::model::cross_entropy(&logits, l)?);
            }
            out.logits = Some(logits);
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
            let d = model.config.d_model;
            let mut rep = Vec::with_capacity(batch * d);
            for r in 0..batch {
                let last = (0..seq).rev().find(|&j| ids[r * seq + j] == eos).expect("row has an EOS");
                rep.extend_from_slice(&hidden_host.data[(r * seq + last) * d..(r * seq + last + 1) * d]);
            }
            let mut h = linear_bias(be, &be.upload(Tensor::new(vec![batch, d], rep)), dense, dense_bias);
            h.data.iter_mut().for_each(|x| *x = x.tanh());
            let logits = linear_bias(be, &be.upload(h), out_proj, out_bias);
            if let Some(labels) = &args.labels {
                let (loss, problem) = sequence_classification_loss(&model.config, &logits, labels)?;
                out.loss = Some(loss);
                out.problem_type = Some(problem.into());
            }
            out.logits = Some(logits);
        }
        (Task::QuestionAnswering, Some(Head::QuestionAnswering { qa_outputs, bias })) => {
            let logits = linear_bias(be, &hidden, qa_outputs, bias);
            let start = Tensor::new(vec![batch, t], logits.data.iter().step_by(2).copied().collect());
            let end = Tensor::new(vec![batch, t], logits.data.iter().skip(1).step_by(2).copied().collect());
            if let (Some(sp), Some(ep)) = (args.start_positions, args.end_positions) {
                if sp.len() != batch || ep.len() != batch {
                    return Err(bad(format!("start_positions / end_positions need one value per row ({batch})")));
                }
                // positions outside the input are clamped to `t` and ignored, as transformers does
                let ignored = t as i64;
                let clamp = |p: &[i64]| p.iter().map(|&x| x.clamp(0, ignored)).collect::<Vec<_>>();
                let s = cross_entropy_ignore(&start, &clamp(sp), ignored)?;
                let e = cross_entropy_ignore(&end, &clamp(ep), ignored)?;
                out.loss = Some((s + e) / 2.0);
            }
            out.start_logits = Some(start);
            out.end_logits = Some(end);
        }
        (Task::Model, _) => {}
        (task, _) => return Err(T5Error::BadConfig(format!("{} has no head loaded", task.class_name()))),
    }
    out.decoder_last_hidden_state = Some(hidden_host);
    if args.use_cache {
        out.cache = Some(cache);
    }
    Ok(out)
}

/// The sequence-classification loss and the `problem_type` it used: the config's, else transformers' choice
/// (`num_labels == 1` → regression, integer labels → single label, float labels → multi label).
pub fn sequence_classification_loss(cfg: &T5Config, logits: &Tensor, labels: &Labels) -> Result<(f32, &'static str)> {
    let n = logits.cols();
    let batch = logits.rows();
    let problem = match cfg.problem_type.as_deref() {
        Some("regression") => "regression",
        Some("single_label_classification") => "single_label_classification",
        Some("multi_label_classification") => "multi_label_classification",
        Some(other) => return Err(T5Error::BadConfig(format!("unknown problem_type {other:?}"))),
        None if n == 1 => "regression",
        None => match labels {
            Labels::Ids(_) => "single_label_classification",
            Labels::Floats(_) => "multi_label_classification",
        },
    };
    let floats = || -> Vec<f32> {
        match labels {
            Labels::Ids(l) => l.iter().map(|&x| x as f32).collect(),
            Labels::Floats(f) => f.clone(),
        }
    };
    let loss = match problem {
        "regression" => {
            let y = floats();
            if y.len() != logits.numel() {
                return Err(bad(format!("regression labels have {} values, logits {}", y.len(), logits.numel())));
            }
            let s: f64 = logits.data.iter().zip(&y).map(|(&x, &y)| ((x - y) as f64).powi(2)).sum();
            (s / y.len() as f64) as f32
        }
        "single_label_classification" => {
            let Labels::Ids(l) = labels else { return Err(bad("single-label classification needs integer class ids")) };
            if l.len() != batch {
                return Err(bad(format!("labels have {} values, expected one per row ({batch})", l.len())));
            }
            cross_entropy_ignore(logits, l, -100)?
        }
        _ => {
            let y = floats();
            if y.len() != logits.numel() {
                return Err(bad(format!("multi-label targets have {} values, logits {} ([batch, num_labels])", y.len(), logits.numel())));
            }
            // BCEWithLogitsLoss: max(x, 0) - x y + log(1 + exp(-|x|)), mean
            let s: f64 = logits
                .data
                .iter()
                .zip(&y)
                .map(|(&x, &y)| {
                    let (x, y) = (x as f64, y as f64);
                    x.max(0.0) - x * y + (-x.abs()).exp().ln_1p()
                })
                .sum();
            (s / y.len() as f64) as f32
        }
    };
    Ok((loss, problem))
}

/// Mean cross-entropy over the rows of `logits` whose label is not `ignore` (torch's `CrossEntropyLoss(ignore_index)`);
/// NaN when every row is ignored, as torch.
pub fn cross_entropy_ignore(logits: &Tensor, labels: &[i64], ignore: i64) -> Result<f32> {
    let v = logits.cols();
    if labels.len() != logits.rows() {
        return Err(bad("one label per logits row is required"));
    }
    let (mut total, mut count) = (0.0f64, 0usize);
    for (r, &label) in labels.iter().enumerate() {
        if label == ignore {
            continue;
        }
        if label < 0 || label as usize >= v {
            return Err(bad(format!("label {label} is outside the {v} classes")));
        }
        let row = logits.row(r);
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = row.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln() + max;
        total += lse - row[label as usize] as f64;
        count += 1;
    }
    Ok(if count == 0 { f32::NAN } else { (total / count as f64) as f32 })
}

/// Layer `i` of a cache as transformers' `past_key_values` hold it: `[self K, self V, cross K, cross V]`, each
/// `[batch, heads, len, d_kv]` (self K / V have `len` 0 before the first step).
pub fn past_key_values<B: Backend>(model: &T5<B>, cache: &DecoderCache<B>) -> Vec<[Tensor; 4]> {
    let be = model.backend();
    let (heads, dk) = (model.config.num_heads, model.config.d_kv);
    let to_heads = |t: Option<&B::Tensor>, len_if_none: usize| -> Tensor {
        match t {
            None => Tensor::new(vec![cache.batch(), heads, len_if_none, dk], vec![]),
            Some(t) => {
                let t = be.download(t);
                let (b, len) = (t.shape[0], t.shape[1]);
                let mut data = vec![0.0; t.numel()];
                for bi in 0..b {
                    for j in 0..len {
                        for h in 0..heads {
                            let src = ((bi * len + j) * heads + h) * dk;
                            let dst = ((bi * heads + h) * len + j) * dk;
                            data[dst..dst + dk].copy_from_slice(&t.data[src..src + dk]);
                        }
                    }
                }
                Tensor::new(vec![b, heads, len, dk], data)
            }
        }
    };
    (0..cache.num_layers())
        .map(|i| {
            let (s, (ck, cv)) = cache.layer(i);
            [to_heads(s.map(|x| x.0), 0), to_heads(s.map(|x| x.1), 0), to_heads(Some(ck), 0), to_heads(Some(cv), 0)]
        })
        .collect()
}

/// The inverse of [`past_key_values`]: `[batch, heads, len, d_kv]` tensors → the `[batch, len, heads * d_kv]` layout
/// [`T5::cache_from_host`] takes.
pub fn from_heads_layout(t: &Tensor) -> Result<Tensor> {
    if t.shape.len() != 4 {
        return Err(bad(format!("past_key_values tensors must be [batch, heads, len, d_kv], got {:?}", t.shape)));
    }
    let (b, heads, len, dk) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3]);
    let mut data = vec![0.0; t.numel()];
    for bi in 0..b {
        for h in 0..heads {
            for j in 0..len {
                let src = ((bi * heads + h) * len + j) * dk;
                let dst = ((bi * len + j) * heads + h) * dk;
                data[dst..dst + dk].copy_from_slice(&t.data[src..src + dk]);
            }
        }
    }
    Ok(Tensor::new(vec![b, len, heads * dk], data))
}
