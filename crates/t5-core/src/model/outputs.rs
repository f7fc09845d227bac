//! What a forward pass gives back: the host-side [`Seq2SeqOutput`], the device-side [`ForwardOutput`], the recorded
//! [`StackOutputs`] of `output_hidden_states` / `output_attentions`, and the loss.

use crate::error::{Result, T5Error};
use crate::tensor::Tensor;

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

/// Host-side outputs of a full forward pass.
#[derive(Debug, Clone)]
pub struct Seq2SeqOutput {
    pub encoder_last_hidden_state: Tensor,
    /// decoder output after the final layer norm (before the LM head rescale)
    pub decoder_last_hidden_state: Option<Tensor>,
    pub logits: Option<Tensor>,
    pub loss: Option<f32>,
}

/// The outputs of [`T5::forward_device`](super::T5::forward_device) where they were computed (`T` = a backend's tensor), or read back
/// (`T` = [`Tensor`], see [`ForwardOutput::with_host`]); [`ForwardOutput::finish`] makes the host-side
/// [`Seq2SeqOutput`] (the loss from the labels).
pub struct ForwardOutput<T> {
    pub encoder_last_hidden_state: T,
    pub decoder_last_hidden_state: Option<T>,
    pub logits: Option<T>,
    /// the labels the loss is computed from (`ConditionalGeneration` only)
    pub(super) labels: Option<Vec<i64>>,
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
    mean_cross_entropy(logits, labels, -100, &|label, v| format!("label {label} is outside the vocabulary of {v}"))
}

/// Mean cross-entropy over the rows of `logits` whose label is not `ignore`; NaN when every row is ignored, as
/// torch. `outside` words the error for a label out of range (vocabulary or classes).
pub(crate) fn mean_cross_entropy(logits: &Tensor, labels: &[i64], ignore: i64, outside: &dyn Fn(i64, usize) -> String) -> Result<f32> {
    let v = logits.cols();
    if labels.len() != logits.rows() {
        return Err(T5Error::BadInput("one label per logits row is required".into()));
    }
    let (mut total, mut count) = (0.0f64, 0usize);
    for (r, &label) in labels.iter().enumerate() {
        if label == ignore {
            continue;
        }
        if label < 0 || label as usize >= v {
            return Err(T5Error::BadInput(outside(label, v)));
        }
        let row = logits.row(r);
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = row.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln() + max;
        total += lse - row[label as usize] as f64;
        count += 1;
    }
    Ok(if count == 0 { f32::NAN } else { (total / count as f64) as f32 })
}
