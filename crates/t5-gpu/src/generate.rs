//! The async entry points of the GPU path. Numerics are t5-core's `T5<Gpu>` methods (`encode`,
//! `start_decoding`, `decode`, `lm_logits`), the same generic code the CPU runs; only the reads
//! await: each generation step reads a reduction of its logits made on the GPU ([`generate_async`]: t5-core's
//! `Generation` in two halves around the read), [`forward_async`] reads the device tensors of
//! `T5::forward_device`, [`task_forward_async`] those of `t5_core::heads::forward_device` (every class and head). No model code is repeated here: only the reads differ from the CPU's.

use t5_core::config::GenerationConfig;
use t5_core::generate::{GenerateOutput, Generation, Need, Reduced, Step};
use t5_core::heads::{ForwardArgs, Head, Labels, ModelOutput, Task};
use t5_core::model::{Batch, ModelKind, Seq2SeqOutput, T5};
use t5_core::T5Error;

use crate::{Gpu, GpuResult};

/// Per-step statistics of the last [`generate_async`] call.
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
    /// Bytes read back per decode step: 4 per row for greedy search (the argmax), `(2k + 3) · 4` per
    /// row for beam search / top-k sampling, `(2(k + m) + 3 + m) · 4` with `m` ids touched by a logits
    /// processor (repetition penalty, n-grams, bad words, forced EOS); top-p without top-k (sampling or beam
    /// sampling, after min-length and those processors or alone) `(2K + 3 + m) · 4` per row
    /// (`K` = [`t5_core::generate::nucleus::NUCLEUS_CANDIDATES`]), plus the whole rows at a fallback step.
    pub read_back_per_step: u64,
    /// Top-p steps whose candidates did not decide the cutoff, so the whole rows were read as well.
    pub top_p_fallbacks: u64,
    /// Top-p steps decided from each row's candidates alone.
    pub top_p_decided: u64,
    /// Steps that read the whole `[rows, vocab]` logits back: the top-p fallbacks, and every step of a search whose
    /// processors a device reduction does not serve (0 when every step read a reduction alone).
    pub whole_row_steps: u64,
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

/// transformers' `generate` on the GPU: `t5_core::generate::Generation`, the search the CPU runs
/// (greedy, sampling, beam search, beam sampling, every logits processor), with each step's logits
/// reduced on the GPU and read back asynchronously, one read per step: greedy search reads one id per row
/// (argmax on the GPU); beam search, top-k sampling, beam sampling and every search with repetition penalty,
/// n-gram, bad-words or forced-EOS processors each row's top k + m, its log-sum-exp and its values at the m ids
/// those processors touch (`shaders/topk.wgsl`); top-p without top-k (sampling, and beam sampling on the
/// log-softmax; after min-length and those processors or alone) each row's top
/// candidates, touched values and normalisers, and the `[rows, vocab]` logits only when those leave the cutoff
/// uncertain (counted in [`GenerateStats::top_p_fallbacks`]); every step that read whole rows is counted in
/// [`GenerateStats::whole_row_steps`].
pub async fn generate_async(model: &T5<Gpu>, input: &Batch, gen: &GenerationConfig, mut on_step: impl FnMut(Step<'_>) -> bool) -> GpuResult<(GenerateOutput, GenerateStats)> {
    let be = model.backend();
    be.check()?;
    let expand = if gen.num_beams > 1 { gen.num_beams } else if gen.do_sample { gen.num_return_sequences } else { 1 };
    check_activation_sizes(model, input.batch * expand, input.seq)?;
    // the self-attention cache holds every generated position: allocate it once
    be.set_kv_capacity(gen.new_tokens_budget().max(1));
    let d0 = be.dispatches();
    let bg0 = be.bind_groups_created();
    let mut g = Generation::new(model, input, gen)?;
    let mut stats = GenerateStats { prefill_dispatches: be.dispatches() - d0, ..Default::default() };
    loop {
        let (d, s, bg, f, rb) = (be.dispatches(), be.submits(), be.bind_groups_created(), be.fused_ops(), be.bytes_read_back());
        let Some(need) = g.need(model)? else { break };
        let reduced = match need {
            Need::Argmax { logits, suppress } => Reduced::Ids(be.argmax_rows_async(&logits, &suppress).await?),
            Need::TopK { logits, k, suppress, gather } => Reduced::TopK(be.top_k_rows_async(&logits, k, &suppress, &gather).await?),
            Need::TopP { logits, check, suppress, gather } => {
                let t = be.top_k_rows_async(&logits, check.k(), &suppress, &gather).await?;
                if check.decide(&t).is_some() {
                    stats.top_p_decided += 1;
                    Reduced::TopK(t)
                } else {
                    stats.top_p_fallbacks += 1;
                    stats.whole_row_steps += 1;
                    Reduced::Full(be.download_async(&logits).await?.data)
                }
            }
            Need::Full(logits) => {
                stats.whole_row_steps += 1;
                Reduced::Full(be.download_async(&logits).await?.data)
            }
        };
        let step = g.advance(model, reduced)?;
        let index = step.index;
        if index == 1 || index == 0 {
            stats.dispatches_per_step = be.dispatches() - d;
            stats.submits_per_step = be.submits() - s;
            stats.fused_per_step = be.fused_ops() - f;
            stats.read_back_per_step = be.bytes_read_back() - rb;
        }
        if index >= 2 {
            stats.bind_groups_per_step = stats.bind_groups_per_step.max(be.bind_groups_created() - bg);
        }
        stats.bind_groups_created = be.bind_groups_created() - bg0;
        stats.steps = index + 1;
        if !on_step(step) {
            break;
        }
    }
    Ok((g.finish(), stats))
}

/// Greedy search through [`generate_async`] (id rows only); errors for beam / sampling configs.
pub async fn greedy_async(model: &T5<Gpu>, input: &Batch, gen: &GenerationConfig, on_step: impl FnMut(Step<'_>) -> bool) -> GpuResult<(Vec<Vec<u32>>, GenerateStats)> {
    if gen.num_beams > 1 || gen.do_sample {
        return Err(T5Error::BadInput("greedy_async is greedy search only (num_beams = 1, do_sample = false): use generate_async".into()).into());
    }
    let (out, stats) = generate_async(model, input, gen, on_step).await?;
    Ok((out.sequences, stats))
}

/// The encoder output on the host.
pub async fn encode_async(model: &T5<Gpu>, input: &Batch) -> GpuResult<t5_core::Tensor> {
    let be = model.backend();
    be.check()?;
    check_activation_sizes(model, input.batch, input.seq)?;
    let enc = model.encode(input)?;
    be.download_async(&enc).await
}

/// `T5::forward` with async reads: [`T5::forward_device`] (the model code every backend runs), then
/// each output tensor read back asynchronously and the loss computed on the host
/// ([`t5_core::model::ForwardOutput::finish`]).
pub async fn forward_async(model: &T5<Gpu>, input: &Batch, decoder_input_ids: Option<&[u32]>, labels: Option<&[i64]>, decoder_mask: Option<&[u32]>) -> GpuResult<Seq2SeqOutput> {
    let be = model.backend();
    be.check()?;
    check_activation_sizes(model, input.batch, input.seq)?;
    if model.kind != ModelKind::Encoder {
        // the decoder's widest tensors, checked before anything is recorded
        let n = decoder_input_ids.map(<[u32]>::len).or(labels.map(<[i64]>::len)).unwrap_or(0);
        if n > 0 && input.batch > 0 && n % input.batch == 0 {
            check_activation_sizes(model, input.batch, n / input.batch)?;
            be.check_fits("the logits [batch·target_len, vocab]", (n * model.config.vocab_size) as u64 * 4)?;
        }
    }
    let out = model.forward_device(input, decoder_input_ids, labels, decoder_mask)?;
    let mut host = Vec::new();
    for t in out.tensors() {
        host.push(be.download_async(t).await?);
    }
    Ok(out.with_host(host).finish()?)
}

/// transformers' `model(**inputs)` of any class (the heads included) with async reads:
/// [`t5_core::heads::forward_device`] (the model and head code every backend runs), each output tensor read back
/// asynchronously, then [`ModelOutput::finish`] (losses, question-answering split) on the host.
/// `output_hidden_states` / `output_attentions` record with synchronous reads, so in wasm they are a typed
/// error here (natively they block on the device).
pub async fn task_forward_async(m: &T5<Gpu>, task: Task, head: Option<&Head<Gpu>>, args: ForwardArgs<'_, Gpu>) -> GpuResult<ModelOutput<Gpu>> {
    let be = m.backend();
    be.check()?;
    if cfg!(target_arch = "wasm32") && args.flags.any() {
        return Err(T5Error::BadInput("output_hidden_states / output_attentions are not available on WebGPU (they read every layer back synchronously): load the model with device: 'cpu' for them".into()).into());
    }
    if args.batch > 0 && args.seq > 0 {
        check_activation_sizes(m, args.batch, args.seq)?;
        // decoder positions: decoder_input_ids, else the LM labels, else input_ids shifted right
        let lm_labels = match (&args.labels, task) {
            (Some(Labels::Ids(l)), Task::ConditionalGeneration | Task::Model) => Some(l.len()),
            _ => None,
        };
        let n = args.decoder_input_ids.map(<[u32]>::len).or(lm_labels).unwrap_or(args.batch * args.seq);
        if n > 0 && n.is_multiple_of(args.batch) {
            check_activation_sizes(m, args.batch, n / args.batch)?;
        }
        if task == Task::ConditionalGeneration {
            be.check_fits("the logits [batch·target_len, vocab]", (n * m.config.vocab_size) as u64 * 4)?;
        }
    }
    let out = t5_core::heads::forward_device(m, task, head, args)?;
    let mut host = Vec::new();
    for t in out.tensors() {
        host.push(be.download_async(t).await?);
    }
    Ok(out.finish(host)?)
}
