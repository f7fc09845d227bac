//! The async entry points of the GPU path. Numerics are t5-core's `T5<Gpu>` methods (`encode`,
//! `start_decoding`, `decode`, `lm_logits`), the same generic code the CPU runs; only the reads
//! await: greedy decoding reads one id per row per step (argmax on the GPU), `forward` reads the
//! tensors it returns. These mirror `t5_core::generate::greedy` and `T5::forward` line for line.

use t5_core::config::GenerationConfig;
use t5_core::generate::Step;
use t5_core::model::{cross_entropy, Batch, ModelKind, Seq2SeqOutput, T5};
use t5_core::T5Error;

use crate::{Gpu, GpuError, GpuResult};

/// Per-step statistics of the last [`greedy_async`] call.
#[derive(Debug, Clone, Default)]
pub struct GenerateStats {
    /// Dispatches recorded by the encoder (and the cross-attention K/V projections).
    pub prefill_dispatches: u64,
    /// Dispatches per decode step (embedding → LM head → argmax), from the second step on.
    pub dispatches_per_step: u64,
    /// Element-wise ops per decode step folded into a matmul epilogue (residual adds, gated
    /// activations, float16 rounding): `dispatches_per_step + fused_per_step` is the count unfused.
    pub fused_per_step: u64,
    /// Command buffers submitted per decode step.
    pub submits_per_step: u64,
    /// Bind groups created per decode step, the most of any step from the third on (0: every
    /// dispatch reused a cached bind group).
    pub bind_groups_per_step: u64,
    /// Bind groups created by the whole call (0 when a generation of the same shape ran before).
    pub bind_groups_created: u64,
    pub steps: usize,
}

fn check_activation_sizes(model: &T5<Gpu>, rows: usize, seq: usize) -> GpuResult<()> {
    let be = model.backend();
    let c = &model.config;
    let widest = c.d_ff.max(c.inner_dim()).max(c.d_model) as u64;
    be.check_fits("an activation [batch·seq, max(d_ff, inner_dim)]", (rows * seq) as u64 * widest * 4)?;
    be.check_fits("the attention scores [batch, heads, seq, seq]", (rows * c.num_heads * seq * seq) as u64 * 4)?;
    Ok(())
}

/// Logits processors the GPU path does not apply (checked by name so that this stays valid while
/// the generation config grows): anything but their neutral value is refused, never ignored.
fn check_greedy_only(gen: &GenerationConfig) -> GpuResult<()> {
    let v = serde_json::to_value(gen).unwrap_or_default();
    let neutral = |k: &str, ok: &dyn Fn(&serde_json::Value) -> bool| v.get(k).is_none_or(|x| x.is_null() || ok(x));
    let checks: [(&str, &dyn Fn(&serde_json::Value) -> bool); 5] = [
        ("repetition_penalty", &|x| x.as_f64() == Some(1.0)),
        ("no_repeat_ngram_size", &|x| x.as_u64() == Some(0)),
        ("bad_words_ids", &|x| x.as_array().is_some_and(|a| a.is_empty())),
        ("forced_eos_token_id", &|x| x.as_array().is_some_and(|a| a.is_empty())),
        ("num_return_sequences", &|x| x.as_u64() == Some(1)),
    ];
    for (k, ok) in checks {
        if !neutral(k, ok) {
            return Err(T5Error::BadInput(format!("{k} is not implemented on WebGPU yet (greedy search with min_new_tokens only); load the model on the CPU")).into());
        }
    }
    // cache_implementation: the GPU self-attention cache is preallocated in any case
    Ok(())
}

/// Greedy decoding as `t5_core::generate::greedy` (same stopping, padding and EOS suppression),
/// awaiting one `[batch]` id readback per step.
pub async fn greedy_async(model: &T5<Gpu>, input: &Batch, gen: &GenerationConfig, mut on_step: impl FnMut(Step<'_>) -> bool) -> GpuResult<(Vec<Vec<u32>>, GenerateStats)> {
    if gen.num_beams > 1 || gen.do_sample {
        return Err(T5Error::BadInput("on WebGPU only greedy search (num_beams = 1, do_sample = false) is implemented; load the model on the CPU for beam search / sampling".into()).into());
    }
    check_greedy_only(gen)?;
    let be = model.backend();
    be.check()?;
    check_activation_sizes(model, input.batch, input.seq)?;
    let b = input.batch;
    let budget = gen.new_tokens_budget();
    let min_new = gen.min_new_tokens.unwrap_or(0).max(gen.min_length.saturating_sub(1));
    // the self-attention cache holds every generated position: allocate it once
    be.set_kv_capacity(budget.max(1));
    let d0 = be.dispatches();
    let bg0 = be.bind_groups_created();
    let enc = model.encode(input)?;
    let mut cache = model.start_decoding(&enc, &input.mask)?;
    drop(enc);
    let mut stats = GenerateStats { prefill_dispatches: be.dispatches() - d0, ..Default::default() };
    let mut seqs: Vec<Vec<u32>> = vec![vec![gen.decoder_start_token_id]; b];
    let mut finished = vec![false; b];
    let mut current = vec![gen.decoder_start_token_id; b];
    for index in 0..budget {
        let (d, s, bg, f) = (be.dispatches(), be.submits(), be.bind_groups_created(), be.fused_ops());
        let hidden = model.decode(&mut cache, &current, 1, None)?;
        let logits = model.lm_logits(&hidden)?;
        let suppress: &[u32] = if index < min_new { &gen.eos_token_id } else { &[] };
        let next = be.argmax_rows_async(&logits, suppress).await?;
        if index == 1 || (index == 0 && budget == 1) {
            stats.dispatches_per_step = be.dispatches() - d;
            stats.submits_per_step = be.submits() - s;
            stats.fused_per_step = be.fused_ops() - f;
        }
        if index >= 2 {
            stats.bind_groups_per_step = stats.bind_groups_per_step.max(be.bind_groups_created() - bg);
        }
        stats.bind_groups_created = be.bind_groups_created() - bg0;
        stats.steps = index + 1;
        for r in 0..b {
            let tok = if finished[r] { gen.pad_token_id } else { next[r] };
            seqs[r].push(tok);
            current[r] = tok;
            if gen.eos_token_id.contains(&tok) {
                finished[r] = true;
            }
        }
        let go_on = on_step(Step { index, tokens: &current });
        if finished.iter().all(|&f| f) || !go_on {
            break;
        }
    }
    Ok((seqs, stats))
}

/// The encoder output on the host.
pub async fn encode_async(model: &T5<Gpu>, input: &Batch) -> GpuResult<t5_core::Tensor> {
    let be = model.backend();
    be.check()?;
    check_activation_sizes(model, input.batch, input.seq)?;
    let enc = model.encode(input)?;
    be.download_async(&enc).await
}

/// `T5::forward` with async reads (same decoder input rules, loss from the same cross-entropy).
pub async fn forward_async(model: &T5<Gpu>, input: &Batch, decoder_input_ids: Option<&[u32]>, labels: Option<&[i64]>, decoder_mask: Option<&[u32]>) -> GpuResult<Seq2SeqOutput> {
    let be = model.backend();
    be.check()?;
    check_activation_sizes(model, input.batch, input.seq)?;
    let enc = model.encode(input)?;
    let encoder_last_hidden_state = be.download_async(&enc).await?;
    if model.kind == ModelKind::Encoder {
        return Ok(Seq2SeqOutput { encoder_last_hidden_state, decoder_last_hidden_state: None, logits: None, loss: None });
    }
    let shifted;
    let dec_ids: &[u32] = match (decoder_input_ids, labels) {
        (Some(ids), _) => ids,
        (None, Some(l)) => {
            shifted = model.shift_right(l, input.batch)?;
            &shifted
        }
        (None, None) => return Err(T5Error::BadInput("decoder_input_ids or labels are required".into()).into()),
    };
    if dec_ids.is_empty() || dec_ids.len() % input.batch != 0 {
        return Err(T5Error::BadInput("decoder_input_ids do not split into the batch".into()).into());
    }
    let t = dec_ids.len() / input.batch;
    check_activation_sizes(model, input.batch, t)?;
    be.check_fits("the logits [batch·target_len, vocab]", (dec_ids.len() * model.config.vocab_size) as u64 * 4)?;
    let mut cache = model.start_decoding(&enc, &input.mask)?;
    let hidden = model.decode(&mut cache, dec_ids, t, decoder_mask)?;
    let decoder_last_hidden_state = Some(be.download_async(&hidden).await?);
    if model.kind == ModelKind::Model {
        return Ok(Seq2SeqOutput { encoder_last_hidden_state, decoder_last_hidden_state, logits: None, loss: None });
    }
    let logits = be.download_async(&model.lm_logits(&hidden)?).await?;
    let loss = match labels {
        Some(l) => {
            if l.len() != dec_ids.len() {
                return Err(GpuError::Core(T5Error::BadInput("labels and decoder_input_ids differ in length".into())));
            }
            Some(cross_entropy(&logits, l)?)
        }
        None => None,
    };
    Ok(Seq2SeqOutput { encoder_last_hidden_state, decoder_last_hidden_state, logits: Some(logits), loss })
}
