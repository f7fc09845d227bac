//! The heads' losses, computed on the host from the downloaded logits ([`super::ModelOutput::finish`] is the
//! one place every backend computes them).

use super::{bad, Labels};
use crate::config::T5Config;
use crate::error::{Result, T5Error};
use crate::tensor::Tensor;

/// The sequence-classification loss and the `problem_type` it used: the config's, else transformers' choice
/// (`num_labels == 1` → regression, integer labels → single label, float labels → multi label).
pub fn sequence_classification_loss(cfg: &T5Config, logits: &Tensor, labels: &Labels) -> Result<(f32, &'static str)> {
    sequence_loss(cfg.problem_type.as_deref(), logits, labels)
}

/// [`sequence_classification_loss`] with the config's `problem_type`.
pub(super) fn sequence_loss(problem_type: Option<&str>, logits: &Tensor, labels: &Labels) -> Result<(f32, &'static str)> {
    let n = logits.cols();
    let batch = logits.rows();
    let problem = match problem_type {
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
    crate::model::mean_cross_entropy(logits, labels, ignore, &|label, v| format!("label {label} is outside the {v} classes"))
}

