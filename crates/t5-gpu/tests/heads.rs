//! The task heads on the GPU against transformers' oracle (test/fixtures/heads/, `scripts/make_head_fixtures.py`)
//! within the fixture tolerance (1e-4 + 4 × fp64_diff), and against the CPU backend within 1e-3: sequence
//! classification (single-label, multi-label, regression losses), token classification, question answering,
//! the encoder alone and the LM forward with labels. Every output goes through `t5_core::heads::forward_device`
//! (the model and head code the CPU runs) and is read back asynchronously (`task_forward_async`, the wasm path)
//! and synchronously (the native trait path).

use serde_json::Value;
use t5_core::heads::{ForwardArgs, Labels, ModelOutput, Task, TaskModel};
use t5_core::hub::load_dir;
use t5_core::{Cpu, Tensor};
use t5_gpu::generate::task_forward_async;
use t5_gpu::{Gpu, GpuOptions};

mod common;
#[path = "../../t5-core/tests/common/mod.rs"]
mod oracle_common;

use common::{assert_close, gpu, TOL};
use oracle_common::{assert_close_tensor, fixtures, Oracle};

fn oracle() -> Oracle {
    Oracle::load(fixtures().join("heads"), "oracle")
}

fn tol(o: &Oracle, name: &str) -> f32 {
    o.tolerance(&["fp64_diff", name])
}

fn close(o: &Oracle, name: &str, ours: &Tensor) {
    assert_close_tensor(name, ours, &o.tensor(name), tol(o, name));
}

fn close_scalar(o: &Oracle, name: &str, ours: f32) {
    let want = o.json["scalars"][name].as_f64().unwrap() as f32;
    assert!((ours - want).abs() <= tol(o, name), "{name}: GPU {ours} vs transformers {want}");
}

fn flat_u32(v: &Value) -> (Vec<u32>, usize, usize) {
    let rows = oracle_common::rows(v);
    (rows.concat(), rows.len(), rows[0].len())
}

fn flat_i64(v: &Value) -> Vec<i64> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat_i64).collect(),
        x => vec![x.as_i64().unwrap()],
    }
}

fn flat_f32(v: &Value) -> Vec<f32> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat_f32).collect(),
        x => vec![x.as_f64().unwrap() as f32],
    }
}

/// The class from `dir` on the CPU and on the GPU.
fn load(dir: &str, task: Option<Task>, g: Gpu) -> (TaskModel<Cpu>, TaskModel<Gpu>) {
    let (cfg, _, store) = load_dir(fixtures().join(dir)).unwrap();
    (TaskModel::load(cfg.clone(), &store, task, Cpu).unwrap(), TaskModel::load(cfg, &store, task, g).unwrap())
}

/// The GPU's output through the async reads, checked equal to the native sync reads and within 1e-3 of the CPU's.
fn run<'a>(cpu: &TaskModel<Cpu>, gpu: &TaskModel<Gpu>, what: &str, args: impl Fn() -> (ForwardArgs<'a, Cpu>, ForwardArgs<'a, Gpu>)) -> ModelOutput<Gpu> {
    let (ca, ga) = args();
    let c = cpu.forward(ca).unwrap();
    let o = pollster::block_on(task_forward_async(&gpu.model, gpu.task, gpu.head.as_ref(), ga)).unwrap();
    let sync = gpu.forward(args().1).unwrap();
    type Outputs<'t> = (&'static str, Option<&'t Tensor>, Option<&'t Tensor>, Option<&'t Tensor>);
    let pairs: [Outputs<'_>; 5] = [
        ("logits", o.logits.as_ref(), c.logits.as_ref(), sync.logits.as_ref()),
        ("start_logits", o.start_logits.as_ref(), c.start_logits.as_ref(), sync.start_logits.as_ref()),
        ("end_logits", o.end_logits.as_ref(), c.end_logits.as_ref(), sync.end_logits.as_ref()),
        ("encoder_last_hidden_state", o.encoder_last_hidden_state.as_ref(), c.encoder_last_hidden_state.as_ref(), sync.encoder_last_hidden_state.as_ref()),
        ("decoder_last_hidden_state", o.decoder_last_hidden_state.as_ref(), c.decoder_last_hidden_state.as_ref(), sync.decoder_last_hidden_state.as_ref()),
    ];
    for (name, g, c, s) in pairs {
        assert_eq!(g.is_some(), c.is_some(), "{what} {name}: present on the GPU and on the CPU alike");
        if let (Some(g), Some(c), Some(s)) = (g, c, s) {
            assert_close(&format!("{what} {name}"), g, c);
            assert_eq!(g.data, s.data, "{what} {name}: async and sync reads of the same GPU output");
        }
    }
    match (o.loss, c.loss) {
        (Some(a), Some(b)) => assert!((a - b).abs() <= TOL, "{what} loss: GPU {a} vs CPU {b}"),
        (a, b) => assert_eq!(a.is_some(), b.is_some(), "{what}: loss on one backend only"),
    }
    assert_eq!(o.problem_type, c.problem_type, "{what} problem_type");
    o
}

#[test]
fn sequence_classification_on_the_gpu() {
    let Some(g) = gpu(GpuOptions::default()) else { return };
    let o = oracle();
    let c = &o.json["seq_cls"];
    let (cpu, gpu) = load("heads/seq-cls", None, g.clone());
    assert_eq!(gpu.task, Task::SequenceClassification);
    let (ids, b, s) = flat_u32(&c["input_ids"]);
    let (mask, _, _) = flat_u32(&c["attention_mask"]);
    let (ids, mask) = (&ids[..], &mask[..]);
    let single = flat_i64(&c["labels"]);
    let multi = flat_f32(&c["multi_labels"]);

    let out = run(&cpu, &gpu, "seq_cls single", || {
        let mut a = ForwardArgs::new(ids, Some(mask), b, s);
        a.labels = Some(Labels::Ids(single.clone()));
        let mut g = ForwardArgs::new(ids, Some(mask), b, s);
        g.labels = a.labels.clone();
        (a, g)
    });
    close(&o, "seq_cls.logits", out.logits.as_ref().unwrap());
    close_scalar(&o, "seq_cls.loss_single", out.loss.unwrap());
    assert_eq!(out.problem_type.as_deref(), Some("single_label_classification"));

    let out = run(&cpu, &gpu, "seq_cls multi", || {
        let mut a = ForwardArgs::new(ids, Some(mask), b, s);
        a.labels = Some(Labels::Floats(multi.clone()));
        let mut g = ForwardArgs::new(ids, Some(mask), b, s);
        g.labels = a.labels.clone();
        (a, g)
    });
    close_scalar(&o, "seq_cls.loss_multi", out.loss.unwrap());

    let (dec, _, _) = flat_u32(&c["decoder_input_ids"]);
    let dec = &dec[..];
    let out = run(&cpu, &gpu, "seq_cls decoder ids", || {
        let mut a = ForwardArgs::new(ids, Some(mask), b, s);
        a.decoder_input_ids = Some(dec);
        let mut g = ForwardArgs::new(ids, Some(mask), b, s);
        g.decoder_input_ids = Some(dec);
        (a, g)
    });
    close(&o, "seq_cls.logits_dec", out.logits.as_ref().unwrap());

    // the same typed error as on the CPU (rows with different EOS counts), before anything is read
    let (bad, bb, bs) = flat_u32(&c["bad_input_ids"]);
    let err = pollster::block_on(task_forward_async(&gpu.model, gpu.task, gpu.head.as_ref(), ForwardArgs::new(&bad, None, bb, bs))).err().unwrap();
    assert_eq!(err, t5_gpu::GpuError::Core(t5_core::T5Error::BadInput(c["bad_error"].as_str().unwrap().to_string())));
}

#[test]
fn regression_and_multi_label_on_the_gpu() {
    let Some(g) = gpu(GpuOptions::default()) else { return };
    let o = oracle();
    let c = &o.json["seq_cls_small"];
    let (ids, b, s) = flat_u32(&c["input_ids"]);
    let (mask, _, _) = flat_u32(&c["attention_mask"]);
    let (ids, mask) = (&ids[..], &mask[..]);
    for (dir, name, labels) in [
        ("heads/seq-cls-regression", "seq_cls_regression", flat_f32(&c["regression_labels"])),
        ("heads/seq-cls-multi", "seq_cls_multi", flat_f32(&c["multi_labels"])),
    ] {
        let (cpu, gpu) = load(dir, None, g.clone());
        let out = run(&cpu, &gpu, name, || {
            let mut a = ForwardArgs::new(ids, Some(mask), b, s);
            a.labels = Some(Labels::Floats(labels.clone()));
            let mut g = ForwardArgs::new(ids, Some(mask), b, s);
            g.labels = a.labels.clone();
            (a, g)
        });
        close(&o, &format!("{name}.logits"), out.logits.as_ref().unwrap());
        close_scalar(&o, &format!("{name}.loss"), out.loss.unwrap());
    }
}

#[test]
fn token_classification_on_the_gpu() {
    let Some(g) = gpu(GpuOptions::default()) else { return };
    let o = oracle();
    let c = &o.json["token_cls"];
    let (cpu, gpu) = load("heads/token-cls", None, g);
    assert_eq!(gpu.task, Task::TokenClassification);
    let (ids, b, s) = flat_u32(&c["input_ids"]);
    let (mask, _, _) = flat_u32(&c["attention_mask"]);
    let (ids, mask) = (&ids[..], &mask[..]);
    let labels = flat_i64(&c["labels"]);
    let out = run(&cpu, &gpu, "token_cls", || {
        let mut a = ForwardArgs::new(ids, Some(mask), b, s);
        a.labels = Some(Labels::Ids(labels.clone()));
        let mut g = ForwardArgs::new(ids, Some(mask), b, s);
        g.labels = a.labels.clone();
        (a, g)
    });
    close(&o, "token_cls.logits", &out.logits.unwrap().reshape(vec![b, s, 5]));
    close_scalar(&o, "token_cls.loss", out.loss.unwrap());
}

#[test]
fn question_answering_on_the_gpu() {
    let Some(g) = gpu(GpuOptions::default()) else { return };
    let o = oracle();
    let c = &o.json["qa"];
    let (cpu, gpu) = load("heads/qa", None, g);
    assert_eq!(gpu.task, Task::QuestionAnswering);
    let (ids, b, s) = flat_u32(&c["input_ids"]);
    let (mask, _, _) = flat_u32(&c["attention_mask"]);
    let (ids, mask) = (&ids[..], &mask[..]);
    let (sp, ep) = (flat_i64(&c["start_positions"]), flat_i64(&c["end_positions"]));
    let (sp, ep) = (&sp[..], &ep[..]);
    let out = run(&cpu, &gpu, "qa", || {
        let mut a = ForwardArgs::new(ids, Some(mask), b, s);
        a.start_positions = Some(sp);
        a.end_positions = Some(ep);
        let mut g = ForwardArgs::new(ids, Some(mask), b, s);
        g.start_positions = Some(sp);
        g.end_positions = Some(ep);
        (a, g)
    });
    assert!(out.logits.is_none(), "the QA projection is split into start / end logits");
    close(&o, "qa.start_logits", out.start_logits.as_ref().unwrap());
    close(&o, "qa.end_logits", out.end_logits.as_ref().unwrap());
    close_scalar(&o, "qa.loss", out.loss.unwrap());
}

#[test]
fn encoder_model_and_lm_forward_on_the_gpu() {
    let Some(g) = gpu(GpuOptions::default()) else { return };
    let o = oracle();
    let c = &o.json["outputs"];
    let (ids, b, s) = flat_u32(&c["input_ids"]);
    let (mask, _, _) = flat_u32(&c["attention_mask"]);
    let (dec, _, t) = flat_u32(&c["decoder_input_ids"]);
    let (dmask, _, _) = flat_u32(&c["decoder_attention_mask"]);
    let (ids, mask, dec, dmask) = (&ids[..], &mask[..], &dec[..], &dmask[..]);

    // T5EncoderModel: the stack output after the final layer norm is transformers' last hidden state
    let (cpu, gpu) = load("tiny-t5", Some(Task::Encoder), g.clone());
    let out = run(&cpu, &gpu, "encoder", || (ForwardArgs::new(ids, Some(mask), b, s), ForwardArgs::new(ids, Some(mask), b, s)));
    let last = c["counts"]["encoder_hidden_states"].as_u64().unwrap() - 1;
    close(&o, &format!("outputs.encoder_hidden_states.{last}"), out.encoder_last_hidden_state.as_ref().unwrap());
    assert!(out.logits.is_none() && out.decoder_last_hidden_state.is_none());

    // T5ForConditionalGeneration with decoder ids and a decoder mask
    let (cpu, gpu) = load("tiny-t5", Some(Task::ConditionalGeneration), g);
    let out = run(&cpu, &gpu, "lm", || {
        let mut a = ForwardArgs::new(ids, Some(mask), b, s);
        a.decoder_input_ids = Some(dec);
        a.decoder_attention_mask = Some(dmask);
        let mut g = ForwardArgs::new(ids, Some(mask), b, s);
        g.decoder_input_ids = Some(dec);
        g.decoder_attention_mask = Some(dmask);
        (a, g)
    });
    close(&o, "outputs.logits", &out.logits.unwrap().reshape(vec![b, t, 32128]));

    // with labels (decoder input = labels shifted right): logits and loss as transformers', from the LM oracle
    let lm = Oracle::load(fixtures().join("oracle"), "tiny-t5");
    let input = lm.input();
    let labels: Vec<i64> = lm.json["labels"].as_array().unwrap().iter().flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_i64().unwrap())).collect();
    let out = run(&cpu, &gpu, "lm labels", || {
        let mut a = ForwardArgs::new(&input.ids, Some(&input.mask), input.batch, input.seq);
        a.labels = Some(Labels::Ids(labels.clone()));
        let mut g = ForwardArgs::new(&input.ids, Some(&input.mask), input.batch, input.seq);
        g.labels = a.labels.clone();
        (a, g)
    });
    let want = lm.json["loss"].as_f64().unwrap() as f32;
    let tol = lm.tolerance(&["fp64_diff", "loss"]);
    assert!((out.loss.unwrap() - want).abs() <= tol, "LM loss: GPU {} vs transformers {want} (tolerance {tol:e})", out.loss.unwrap());
    let logits = out.logits.unwrap();
    assert_close_tensor("logits_from_labels", &logits, &lm.tensor("logits_from_labels").reshape(logits.shape.clone()), lm.tolerance(&["fp64_diff", "logits_from_labels"]));
}
