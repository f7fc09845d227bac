//! Bindings of the task heads and of transformers' optional outputs: `WasmModel.forwardFull` (every class, with
//! `output_hidden_states`, `output_attentions`, `encoder_outputs`, `past_key_values`), the decoder cache handle
//! [`WasmCache`], and `WasmTokenizer.encodeWithOffsets` for the token-classification and question-answering pipelines.

use crate::results::{FullForwardResult, TensorData};
use crate::tokenizer::OffsetsEncoding;
use crate::{bad_input, js_err, JsResult, WasmModel, WasmTokenizer};
use serde_json::Value;
use t5_core::config::T5Config;
use t5_core::heads::{forward, from_heads_layout, num_labels, past_key_values, ForwardArgs, Labels, ModelOutput, Task};
use t5_core::model::{DecoderCache, ModelKind, OutputFlags};
use t5_core::{Cpu, Tensor};
use wasm_bindgen::prelude::*;

/// The head classes by the facade's kind names; "auto" = the class config.json's `architectures` names.
pub(crate) fn parse_task(kind: &str, cfg: &T5Config) -> JsResult<Task> {
    Ok(match kind {
        "seq-cls" => Task::SequenceClassification,
        "token-cls" => Task::TokenClassification,
        "qa" => Task::QuestionAnswering,
        "auto" => Task::from_config(cfg).unwrap_or(Task::ConditionalGeneration),
        other => return Err(bad_input(format!("unknown model kind {other:?}"))),
    })
}

pub(crate) fn task_of_kind(kind: ModelKind) -> Task {
    match kind {
        ModelKind::ConditionalGeneration => Task::ConditionalGeneration,
        ModelKind::Model => Task::Model,
        ModelKind::Encoder => Task::Encoder,
    }
}

/// The facade's kind name of the head classes (`None` for the base classes).
pub(crate) fn task_name(task: Task) -> Option<&'static str> {
    match task {
        Task::SequenceClassification => Some("seq-cls"),
        Task::TokenClassification => Some("token-cls"),
        Task::QuestionAnswering => Some("qa"),
        _ => None,
    }
}

/// transformers' label fields with their defaults: `num_labels` (from `id2label` when present, else 2), `id2label`
/// (`LABEL_i`), `label2id` (the inverse).
pub(crate) fn fill_label_fields(cfg: &T5Config, obj: &mut serde_json::Map<String, Value>) {
    let n = num_labels(cfg);
    obj.insert("num_labels".into(), Value::from(n));
    let id2label: serde_json::Map<String, Value> = match &cfg.id2label {
        Some(Value::Object(m)) if !m.is_empty() => m.clone(),
        _ => (0..n).map(|i| (i.to_string(), Value::from(format!("LABEL_{i}")))).collect(),
    };
    if !matches!(&cfg.label2id, Some(Value::Object(m)) if !m.is_empty()) {
        let inv: serde_json::Map<String, Value> =
            id2label.iter().filter_map(|(k, v)| Some((v.as_str()?.to_string(), Value::from(k.parse::<u64>().ok()?)))).collect();
        obj.insert("label2id".into(), Value::Object(inv));
    }
    obj.insert("id2label".into(), Value::Object(id2label));
}

/// A decoder cache (`past_key_values`) living in the engine. Passing it to `forwardFull` moves it there; the
/// output carries the updated one.
#[wasm_bindgen]
pub struct WasmCache {
    inner: DecoderCache<Cpu>,
}

#[wasm_bindgen]
impl WasmCache {
    /// Decoder positions the cache holds.
    #[wasm_bindgen(getter, js_name = pastLength)]
    pub fn past_length(&self) -> u32 {
        self.inner.past_len() as u32
    }

    #[wasm_bindgen(getter)]
    pub fn batch(&self) -> u32 {
        self.inner.batch() as u32
    }
}

/// A forward's host outputs as `forwardFull` returns them (every device; the cache is the caller's).
pub(crate) fn full_result<B: t5_core::backend::Backend>(out: ModelOutput<B>, task: Task, batch: usize, seq: usize, output_hidden_states: bool, output_attentions: bool) -> FullForwardResult {
    let dec_len = out.decoder_last_hidden_state.as_ref().map(|h| h.shape[1]);
    let logits = out.logits.map(|mut l| {
        // LM and token-classification logits are 3-D
        let n = l.cols();
        match (task, dec_len) {
            (Task::ConditionalGeneration, Some(t)) => l = l.reshape(vec![batch, t, n]),
            (Task::TokenClassification, _) => l = l.reshape(vec![batch, seq, n]),
            _ => {}
        }
        TensorData::from(l)
    });
    let enc_ran = !out.encoder.hidden_states.is_empty() || !out.encoder.attentions.is_empty();
    let list = |wanted: bool, l: Vec<Tensor>| wanted.then(|| l.into_iter().map(TensorData::from).collect::<Vec<_>>());
    let dec_ran = dec_len.is_some();
    FullForwardResult {
        loss: out.loss.map(f64::from),
        problem_type: out.problem_type.map(|p| p.as_str().to_string()),
        logits,
        start_logits: out.start_logits.map(TensorData::from),
        end_logits: out.end_logits.map(TensorData::from),
        encoder_last_hidden_state: out.encoder_last_hidden_state.map(TensorData::from),
        decoder_last_hidden_state: out.decoder_last_hidden_state.map(TensorData::from),
        encoder_hidden_states: list(output_hidden_states && enc_ran, out.encoder.hidden_states),
        encoder_attentions: list(output_attentions && enc_ran, out.encoder.attentions),
        decoder_hidden_states: list(output_hidden_states && dec_ran, out.decoder.hidden_states),
        decoder_attentions: list(output_attentions && dec_ran, out.decoder.attentions),
        cross_attentions: list(output_attentions && dec_ran, out.decoder.cross_attentions),
        cache: None,
    }
}

/// `forwardFull`'s labels: class ids (-100 ignored) or floats.
pub(crate) fn labels_of(label_ids: Option<Vec<i32>>, label_floats: Option<Vec<f32>>) -> Option<Labels> {
    match (label_ids, label_floats) {
        (Some(l), _) => Some(Labels::Ids(l.into_iter().map(i64::from).collect())),
        (None, Some(f)) => Some(Labels::Floats(f)),
        (None, None) => None,
    }
}

pub(crate) fn i64s(v: Option<Vec<i32>>) -> Option<Vec<i64>> {
    v.map(|v| v.into_iter().map(i64::from).collect())
}

#[wasm_bindgen]
impl WasmModel {
    /// transformers' `forward` of the model's class with every input and output. Flat row-major arrays;
    /// `batch` / `seq` are the encoder input's dims (of `ids` or of `encoder_outputs`). Labels: `label_ids`
    /// (Int32, -100 ignored) or `label_floats` (regression / multi-label). `past` is moved into the engine.
    /// Hidden states / attentions are present only when asked for and when that stack ran.
    #[wasm_bindgen(js_name = forwardFull)]
    #[allow(clippy::too_many_arguments)]
    pub fn forward_full(
        &self,
        ids: Option<Vec<u32>>,
        mask: Option<Vec<u32>>,
        batch: usize,
        seq: usize,
        encoder_outputs: Option<Vec<f32>>,
        decoder_ids: Option<Vec<u32>>,
        decoder_mask: Option<Vec<u32>>,
        label_ids: Option<Vec<i32>>,
        label_floats: Option<Vec<f32>>,
        start_positions: Option<Vec<i32>>,
        end_positions: Option<Vec<i32>>,
        output_hidden_states: bool,
        output_attentions: bool,
        past: Option<WasmCache>,
        use_cache: bool,
    ) -> JsResult<FullForwardResult> {
        if batch == 0 || seq == 0 {
            return Err(bad_input(format!("empty input: batch {batch}, sequence length {seq}")));
        }
        let d = self.model.config.d_model;
        let encoder_outputs = match encoder_outputs {
            Some(h) => {
                let n = batch.checked_mul(seq).and_then(|x| x.checked_mul(d)).ok_or_else(|| bad_input("encoder_outputs too large"))?;
                if h.len() != n {
                    return Err(bad_input(format!("encoder_outputs has {} values, expected [{batch}, {seq}, {d}]", h.len())));
                }
                Some(Tensor::new(vec![batch, seq, d], h))
            }
            None => None,
        };
        if let Some(p) = &past {
            if p.inner.num_layers() != self.model.config.decoder_layers() {
                return Err(bad_input("past_key_values come from another model"));
            }
        }
        let labels = labels_of(label_ids, label_floats);
        let (sp, ep) = (i64s(start_positions), i64s(end_positions));
        let args = ForwardArgs {
            input_ids: ids.as_deref(),
            attention_mask: mask.as_deref(),
            batch,
            seq,
            encoder_outputs,
            decoder_input_ids: decoder_ids.as_deref(),
            decoder_attention_mask: decoder_mask.as_deref(),
            labels,
            start_positions: sp.as_deref(),
            end_positions: ep.as_deref(),
            flags: OutputFlags { hidden_states: output_hidden_states, attentions: output_attentions },
            past: past.map(|p| p.inner),
            use_cache,
        };
        let mut out = forward(&self.model, self.task, self.head.as_ref(), args).map_err(js_err)?;
        let cache = out.cache.take();
        let mut r = full_result(out, self.task, batch, seq, output_hidden_states, output_attentions);
        r.cache = cache.map(|c| WasmCache { inner: c });
        Ok(r)
    }

    /// The cache as transformers' `past_key_values`: per decoder layer four tensors, its self-attention key and
    /// value and its cross-attention key and value, each `[batch, heads, len, d_kv]`, in that order (flat: the
    /// facade moves each out with `TensorData.takeData`, none is copied in wasm memory first).
    #[wasm_bindgen(js_name = pastKeyValues)]
    pub fn past_key_values(&self, cache: &WasmCache) -> JsResult<Vec<TensorData>> {
        if cache.inner.num_layers() != self.model.config.decoder_layers() {
            return Err(bad_input("past_key_values come from another model"));
        }
        Ok(past_key_values(&self.model, &cache.inner).into_iter().flatten().map(TensorData::from).collect())
    }

    /// A cache from transformers-layout tensors (`past_key_values` given back in): `data` holds the layers'
    /// `[self_k, self_v, cross_k, cross_v]` concatenated, self ones `[batch, heads, past_len, d_kv]`, cross ones
    /// `[batch, heads, encoder_len, d_kv]`; `mask` is the encoder attention mask (`[batch, encoder_len]`).
    #[wasm_bindgen(js_name = cacheFromTensors)]
    pub fn cache_from_tensors(&self, data: Vec<f32>, batch: usize, past_len: usize, encoder_len: usize, mask: Option<Vec<u32>>) -> JsResult<WasmCache> {
        let (h, dk, layers) = (self.model.config.num_heads, self.model.config.d_kv, self.model.config.decoder_layers());
        let (s, c) = (batch * h * past_len * dk, batch * h * encoder_len * dk);
        if data.len() != layers * 2 * (s + c) {
            return Err(bad_input(format!("past_key_values hold {} values, expected {} for {layers} layers", data.len(), layers * 2 * (s + c))));
        }
        let mut at = 0;
        let mut take = |len: usize, n: usize| -> JsResult<Tensor> {
            let t = Tensor::new(vec![batch, h, len, dk], data[at..at + n].to_vec());
            at += n;
            from_heads_layout(&t).map_err(js_err)
        };
        let mut out = Vec::with_capacity(layers);
        for _ in 0..layers {
            out.push([take(past_len, s)?, take(past_len, s)?, take(encoder_len, c)?, take(encoder_len, c)?]);
        }
        let inner = self.model.cache_from_host(out, mask).map_err(js_err)?;
        Ok(WasmCache { inner })
    }
}

#[wasm_bindgen]
impl WasmTokenizer {
    /// Ids of one text (or of a `text, pair` pair: `A </s> B </s>`) with offsets in UTF-16 code units of the input
    /// (JavaScript string indices), the post-processor's special-tokens mask and, per token, which sequence it
    /// belongs to (0 = text, 1 = pair, -1 = added special token).
    #[wasm_bindgen(js_name = encodeWithOffsets)]
    pub fn encode_with_offsets(&self, text: &str, pair: Option<String>, add_special_tokens: bool) -> JsResult<OffsetsEncoding> {
        let (ids, offsets, special, sequence) = match &pair {
            None => {
                let e = self.inner.encode_with_offsets(text, add_special_tokens).map_err(js_err)?;
                let seq: Vec<i32> = e.special_tokens_mask.iter().map(|&m| if m == 1 { -1 } else { 0 }).collect();
                let offs: Vec<(usize, usize)> = e.offsets.iter().map(|&(a, b)| (utf16_index(text, a), utf16_index(text, b))).collect();
                (e.ids, offs, e.special_tokens_mask, seq)
            }
            Some(p) => {
                // each part on its own, joined as T5's post-processor joins a pair: `A </s> B </s>`
                let a = self.inner.encode_with_offsets(text, false).map_err(js_err)?;
                let b = self.inner.encode_with_offsets(p, false).map_err(js_err)?;
                let eos = self.inner.eos_token_id().ok_or_else(|| bad_input("the tokenizer has no EOS token"))?;
                let mut ids = a.ids.clone();
                let mut offs: Vec<(usize, usize)> = a.offsets.iter().map(|&(x, y)| (utf16_index(text, x), utf16_index(text, y))).collect();
                let mut special = vec![0u32; ids.len()];
                let mut seq = vec![0i32; ids.len()];
                if add_special_tokens {
                    ids.push(eos);
                    offs.push((0, 0));
                    special.push(1);
                    seq.push(-1);
                }
                ids.extend_from_slice(&b.ids);
                offs.extend(b.offsets.iter().map(|&(x, y)| (utf16_index(p, x), utf16_index(p, y))));
                special.extend(std::iter::repeat_n(0, b.ids.len()));
                seq.extend(std::iter::repeat_n(1, b.ids.len()));
                if add_special_tokens {
                    ids.push(eos);
                    offs.push((0, 0));
                    special.push(1);
                    seq.push(-1);
                }
                (ids, offs, special, seq)
            }
        };
        Ok(OffsetsEncoding {
            ids,
            starts: offsets.iter().map(|x| x.0 as u32).collect(),
            ends: offsets.iter().map(|x| x.1 as u32).collect(),
            special,
            sequence,
        })
    }
}

/// The UTF-16 index of char index `chars` of `s` (Python `str` index → JavaScript string index).
fn utf16_index(s: &str, chars: usize) -> usize {
    s.chars().take(chars).map(char::len_utf16).sum()
}
