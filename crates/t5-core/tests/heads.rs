//! The task heads and transformers' optional outputs against the oracle of `scripts/make_head_fixtures.py`
//! (test/fixtures/heads/): logits and losses within 1e-4 + 4 × fp64_diff, hidden states / attentions / cached keys
//! and values likewise, typed errors where transformers raises.

use serde_json::Value;
mod common;

use common::{assert_close_tensor, fixtures, rows, Oracle};
use t5_core::heads::{past_key_values, ForwardArgs, Labels, Task, TaskModel};
use t5_core::hub::load_dir;
use t5_core::model::OutputFlags;
use t5_core::{Cpu, T5Error, Tensor};

fn oracle() -> Oracle {
    Oracle::load(fixtures().join("heads"), "oracle")
}

/// The heads oracle's tolerances (`fp64_diff.<name>`) and scalars.
trait HeadsOracle {
    fn tol(&self, name: &str) -> f32;
    fn close(&self, name: &str, ours: &Tensor);
    fn close_scalar(&self, name: &str, ours: f32);
}

impl HeadsOracle for Oracle {
    fn tol(&self, name: &str) -> f32 {
        self.tolerance(&["fp64_diff", name])
    }
    fn close(&self, name: &str, ours: &Tensor) {
        assert_close_tensor(name, ours, &self.tensor(name), self.tol(name));
    }
    fn close_scalar(&self, name: &str, ours: f32) {
        let want = self.json["scalars"][name].as_f64().unwrap() as f32;
        assert!((ours - want).abs() <= self.tol(name), "{name}: {ours} vs transformers {want}");
    }
}

fn flat_u32(v: &Value) -> (Vec<u32>, usize, usize) {
    let rows = rows(v);
    (rows.concat(), rows.len(), rows[0].len())
}

fn flat_i64(v: &Value) -> Vec<i64> {
    match v {
        Value::Array(a) => a.iter().flat_map(|x| flat_i64(x)).collect(),
        x => vec![x.as_i64().unwrap()],
    }
}

fn flat_f32(v: &Value) -> Vec<f32> {
    match v {
        Value::Array(a) => a.iter().flat_map(|x| flat_f32(x)).collect(),
        x => vec![x.as_f64().unwrap() as f32],
    }
}

fn load(dir: &str, task: Option<Task>) -> TaskModel<Cpu> {
    let (cfg, _, store) = load_dir(fixtures().join(dir)).unwrap();
    TaskModel::load(cfg, &store, task, Cpu).unwrap()
}

#[test]
fn sequence_classification() {
    let o = oracle();
    let c = &o.json["seq_cls"];
    let m = load("heads/seq-cls", None);
    assert_eq!(m.task, Task::SequenceClassification, "picked from architectures");
    assert_eq!(t5_core::heads::num_labels(&m.model.config), 3);
    let (ids, b, s) = flat_u32(&c["input_ids"]);
    let (mask, _, _) = flat_u32(&c["attention_mask"]);

    let mut args = ForwardArgs::new(&ids, Some(&mask), b, s);
    args.labels = Some(Labels::Ids(flat_i64(&c["labels"])));
    let out = m.forward(args).unwrap();
    o.close("seq_cls.logits", out.logits.as_ref().unwrap());
    o.close_scalar("seq_cls.loss_single", out.loss.unwrap());
    assert_eq!(out.problem_type.as_deref(), Some("single_label_classification"));

    let mut args = ForwardArgs::new(&ids, Some(&mask), b, s);
    args.labels = Some(Labels::Floats(flat_f32(&c["multi_labels"])));
    let out = m.forward(args).unwrap();
    o.close_scalar("seq_cls.loss_multi", out.loss.unwrap());
    assert_eq!(out.problem_type.as_deref(), Some("multi_label_classification"));

    let (dec, _, _) = flat_u32(&c["decoder_input_ids"]);
    let mut args = ForwardArgs::new(&ids, Some(&mask), b, s);
    args.decoder_input_ids = Some(&dec);
    o.close("seq_cls.logits_dec", m.forward(args).unwrap().logits.as_ref().unwrap());

    // each row alone (unpadded) gives the batched row's logits
    let want = o.tensor("seq_cls.logits");
    for r in 0..b {
        let len = mask[r * s..(r + 1) * s].iter().filter(|&&x| x == 1).count();
        let row = &ids[r * s..r * s + len];
        let out = m.forward(ForwardArgs::new(row, None, 1, len)).unwrap();
        for (j, (a, w)) in out.logits.unwrap().data.iter().zip(want.row(r)).enumerate() {
            assert!((a - w).abs() <= o.tol("seq_cls.logits"), "row {r} label {j}: {a} vs {w}");
        }
    }

    // rows with different EOS counts: transformers' error, typed
    let (bad, bb, bs) = flat_u32(&c["bad_input_ids"]);
    let err = m.forward(ForwardArgs::new(&bad, None, bb, bs)).err().unwrap();
    assert_eq!(err, T5Error::BadInput(c["bad_error"].as_str().unwrap().to_string()));
    // no EOS at all
    let err = m.forward(ForwardArgs::new(&[5, 6, 7], None, 1, 3)).err().unwrap();
    assert!(matches!(err, T5Error::BadInput(ref s) if s.contains("at least one <eos>")), "{err:?}");
    // decoder ids of another length than input_ids
    let mut args = ForwardArgs::new(&ids, Some(&mask), b, s);
    let short = vec![0u32; b * 2];
    args.decoder_input_ids = Some(&short);
    assert!(matches!(m.forward(args).err().unwrap(), T5Error::BadInput(_)));
}

#[test]
fn sequence_classification_regression_and_multi_label() {
    let o = oracle();
    let c = &o.json["seq_cls_small"];
    let (ids, b, s) = flat_u32(&c["input_ids"]);
    let (mask, _, _) = flat_u32(&c["attention_mask"]);

    let m = load("heads/seq-cls-regression", None);
    let mut args = ForwardArgs::new(&ids, Some(&mask), b, s);
    args.labels = Some(Labels::Floats(flat_f32(&c["regression_labels"])));
    let out = m.forward(args).unwrap();
    o.close("seq_cls_regression.logits", out.logits.as_ref().unwrap());
    o.close_scalar("seq_cls_regression.loss", out.loss.unwrap());
    assert_eq!(out.problem_type.as_deref(), Some("regression"));

    let m = load("heads/seq-cls-multi", None);
    assert_eq!(m.model.config.problem_type.as_deref(), Some("multi_label_classification"));
    let mut args = ForwardArgs::new(&ids, Some(&mask), b, s);
    args.labels = Some(Labels::Floats(flat_f32(&c["multi_labels"])));
    let out = m.forward(args).unwrap();
    o.close("seq_cls_multi.logits", out.logits.as_ref().unwrap());
    o.close_scalar("seq_cls_multi.loss", out.loss.unwrap());
}

#[test]
fn token_classification() {
    let o = oracle();
    let c = &o.json["token_cls"];
    let m = load("heads/token-cls", None);
    assert_eq!(m.task, Task::TokenClassification);
    let (ids, b, s) = flat_u32(&c["input_ids"]);
    let (mask, _, _) = flat_u32(&c["attention_mask"]);
    let mut args = ForwardArgs::new(&ids, Some(&mask), b, s);
    args.labels = Some(Labels::Ids(flat_i64(&c["labels"])));
    let out = m.forward(args).unwrap();
    o.close("token_cls.logits", &out.logits.unwrap().reshape(vec![b, s, 5]));
    o.close_scalar("token_cls.loss", out.loss.unwrap());
}

#[test]
fn question_answering() {
    let o = oracle();
    let c = &o.json["qa"];
    let m = load("heads/qa", None);
    assert_eq!(m.task, Task::QuestionAnswering);
    let (ids, b, s) = flat_u32(&c["input_ids"]);
    let (mask, _, _) = flat_u32(&c["attention_mask"]);
    let (sp, ep) = (flat_i64(&c["start_positions"]), flat_i64(&c["end_positions"]));
    let mut args = ForwardArgs::new(&ids, Some(&mask), b, s);
    args.start_positions = Some(&sp);
    args.end_positions = Some(&ep);
    let out = m.forward(args).unwrap();
    o.close("qa.start_logits", out.start_logits.as_ref().unwrap());
    o.close("qa.end_logits", out.end_logits.as_ref().unwrap());
    o.close_scalar("qa.loss", out.loss.unwrap());
}

#[test]
fn head_classes_load_from_each_others_layouts() {
    // T5Model / T5EncoderModel from a checkpoint that keeps them under `transformer.`, as transformers allows
    let (cfg, _, store) = load_dir(fixtures().join("heads/seq-cls")).unwrap();
    assert!(TaskModel::load(cfg.clone(), &store, Some(Task::Model), Cpu).is_ok());
    assert!(TaskModel::load(cfg.clone(), &store, Some(Task::Encoder), Cpu).is_ok());
    // a head the checkpoint does not have: a typed error naming the tensor
    let err = TaskModel::load(cfg, &store, Some(Task::QuestionAnswering), Cpu).err().unwrap();
    assert!(matches!(err, T5Error::MissingTensor(ref n) if n.starts_with("qa_outputs")) || matches!(err, T5Error::BadConfig(_)), "{err:?}");
}

#[test]
fn hidden_states_attentions_and_cache() {
    let o = oracle();
    let c = &o.json["outputs"];
    let m = load("tiny-t5", Some(Task::ConditionalGeneration));
    let (ids, b, s) = flat_u32(&c["input_ids"]);
    let (mask, _, _) = flat_u32(&c["attention_mask"]);
    let (dec, _, t) = flat_u32(&c["decoder_input_ids"]);
    let (dmask, _, _) = flat_u32(&c["decoder_attention_mask"]);
    let mut args = ForwardArgs::new(&ids, Some(&mask), b, s);
    args.decoder_input_ids = Some(&dec);
    args.decoder_attention_mask = Some(&dmask);
    args.flags = OutputFlags { hidden_states: true, attentions: true };
    let out = m.forward(args).unwrap();
    o.close("outputs.logits", &out.logits.clone().unwrap().reshape(vec![b, t, 32128]));
    let counts = &c["counts"];
    for (name, list) in [
        ("encoder_hidden_states", &out.encoder.hidden_states),
        ("decoder_hidden_states", &out.decoder.hidden_states),
        ("encoder_attentions", &out.encoder.attentions),
        ("decoder_attentions", &out.decoder.attentions),
        ("cross_attentions", &out.decoder.cross_attentions),
    ] {
        assert_eq!(list.len() as u64, counts[name].as_u64().unwrap(), "{name} count");
        for (i, x) in list.iter().enumerate() {
            o.close(&format!("outputs.{name}.{i}"), x);
        }
    }

    // not asked: nothing recorded
    let mut args = ForwardArgs::new(&ids, Some(&mask), b, s);
    args.decoder_input_ids = Some(&dec);
    let plain = m.forward(args).unwrap();
    assert!(plain.encoder.hidden_states.is_empty() && plain.decoder.attentions.is_empty() && plain.cache.is_none());

    // past_key_values: a first chunk with use_cache, then the rest on the returned cache with encoder_outputs
    let split = c["split"].as_u64().unwrap() as usize;
    let first_ids: Vec<u32> = (0..b).flat_map(|r| dec[r * t..r * t + split].to_vec()).collect();
    let first_mask: Vec<u32> = (0..b).flat_map(|r| dmask[r * t..r * t + split].to_vec()).collect();
    let rest_ids: Vec<u32> = (0..b).flat_map(|r| dec[r * t + split..(r + 1) * t].to_vec()).collect();
    let mut args = ForwardArgs::new(&ids, Some(&mask), b, s);
    args.decoder_input_ids = Some(&first_ids);
    args.decoder_attention_mask = Some(&first_mask);
    args.use_cache = true;
    let first = m.forward(args).unwrap();
    o.close("outputs.first_logits", &first.logits.clone().unwrap().reshape(vec![b, split, 32128]));
    let cache = first.cache.unwrap();
    for (layer, kv) in past_key_values(&m.model, &cache).iter().enumerate() {
        for (j, n) in ["self_k", "self_v", "cross_k", "cross_v"].iter().enumerate() {
            o.close(&format!("outputs.past.{layer}.{n}"), &kv[j]);
        }
    }
    let mut args = ForwardArgs::new(&ids, Some(&mask), b, s);
    args.input_ids = None;
    args.encoder_outputs = first.encoder_last_hidden_state.clone();
    args.decoder_input_ids = Some(&rest_ids);
    args.decoder_attention_mask = Some(&dmask);
    args.past = Some(cache);
    let second = m.forward(args).unwrap();
    o.close("outputs.second_logits", &second.logits.unwrap().reshape(vec![b, t - split, 32128]));

    // the cache rebuilt from its host tensors (past_key_values given back in) continues the same way
    let mut args = ForwardArgs::new(&ids, Some(&mask), b, s);
    args.decoder_input_ids = Some(&first_ids);
    args.decoder_attention_mask = Some(&first_mask);
    args.use_cache = true;
    let again = m.forward(args).unwrap();
    let layers: Vec<[Tensor; 4]> = past_key_values(&m.model, again.cache.as_ref().unwrap())
        .into_iter()
        .map(|kv| kv.map(|x| t5_core::heads::from_heads_layout(&x).unwrap()))
        .collect();
    let rebuilt = m.model.cache_from_host(layers, Some(mask.clone())).unwrap();
    let mut args = ForwardArgs::new(&ids, Some(&mask), b, s);
    args.input_ids = None;
    args.encoder_outputs = None;
    args.decoder_input_ids = Some(&rest_ids);
    args.decoder_attention_mask = Some(&dmask);
    args.past = Some(rebuilt);
    let out = m.forward(args).unwrap();
    o.close("outputs.second_logits", &out.logits.unwrap().reshape(vec![b, t - split, 32128]));
}
