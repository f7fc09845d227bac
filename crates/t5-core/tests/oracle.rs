//! The engine against transformers (PyTorch) on the committed fixtures that
//! `scripts/make_fixtures.py` made: hidden states, logits and loss within 1e-4 + 4 × (fp64 − fp32
//! spread of the oracle itself), greedy ids identical, batched and one row at a time.

use serde_json::Value;
mod common;

use common::{assert_close_tensor, fixtures, read_json, rows, Oracle};
use t5_core::generate::greedy;
use t5_core::hub::load_dir;
use t5_core::{Batch, Cpu, ModelKind, T5};

/// The oracle `name` of `test/fixtures/oracle`.
fn oracle(name: &str) -> Oracle {
    Oracle::load(fixtures().join("oracle"), name)
}

fn model(dir: &str, kind: ModelKind) -> T5<Cpu> {
    let (cfg, _gen, store) = load_dir(fixtures().join(dir)).unwrap();
    T5::load(cfg, &store, kind, Cpu).unwrap()
}

fn check_model(dir: &str, oracle: &str) {
    let o = Oracle::load(fixtures().join("oracle"), oracle);
    let input = o.input();
    let dec_rows = o.rows("decoder_input_ids");
    let dec_ids = dec_rows.concat();

    // T5EncoderModel
    let enc = model(dir, ModelKind::Encoder);
    let out = enc.forward(&input, None, None, None).unwrap();
    let name = "encoder_last_hidden_state";
    assert_close_tensor(&format!("{dir} {name}"), &out.encoder_last_hidden_state, &o.tensor(name), o.tolerance(&["fp64_diff", name]));

    // T5Model
    let m = model(dir, ModelKind::Model);
    let out = m.forward(&input, Some(&dec_ids), None, None).unwrap();
    let name = "decoder_last_hidden_state";
    assert_close_tensor(&format!("{dir} {name}"), out.decoder_last_hidden_state.as_ref().unwrap(), &o.tensor(name), o.tolerance(&["fp64_diff", name]));

    // T5ForConditionalGeneration: logits for given decoder ids
    let lm = model(dir, ModelKind::ConditionalGeneration);
    let out = lm.forward(&input, Some(&dec_ids), None, None).unwrap();
    assert_close_tensor(&format!("{dir} logits"), out.logits.as_ref().unwrap(), &o.tensor("logits"), o.tolerance(&["fp64_diff", "logits"]));

    // labels: shifted right inside, loss ignoring -100
    let labels: Vec<i64> = o.json["labels"].as_array().unwrap().iter().flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_i64().unwrap())).collect();
    assert!(labels.contains(&-100), "fixture labels should exercise ignore_index");
    let out = lm.forward(&input, None, Some(&labels), None).unwrap();
    assert_close_tensor(&format!("{dir} logits_from_labels"), out.logits.as_ref().unwrap(), &o.tensor("logits_from_labels"), o.tolerance(&["fp64_diff", "logits_from_labels"]));
    let loss = out.loss.unwrap();
    let want = o.json["loss"].as_f64().unwrap() as f32;
    let tol = o.tolerance(&["fp64_diff", "loss"]);
    assert!((loss - want).abs() <= tol, "{dir} loss {loss} vs transformers {want} (tolerance {tol:e})");

    // greedy, batched with padding and one row at a time
    let (_, gen, _) = load_dir(fixtures().join(dir)).unwrap();
    let mut gen = gen;
    gen.max_new_tokens = Some(o.json["greedy"]["max_new_tokens"].as_u64().unwrap() as usize);
    let got = greedy(&lm, &input, &gen, |_| true).unwrap();
    let want: Vec<Vec<u32>> = rows(&o.json["greedy"]["sequences"]);
    assert_eq!(got, want, "{dir}: batched greedy ids differ from transformers");
    let singles: Vec<Vec<u32>> = rows(&o.json["greedy"]["sequences_single"]);
    let ids = o.rows("input_ids");
    let mask = o.rows("attention_mask");
    for (r, want) in singles.iter().enumerate() {
        let len = mask[r].iter().filter(|&&m| m == 1).count();
        let one = Batch::new(ids[r][..len].to_vec(), None, 1, len).unwrap();
        let got = greedy(&lm, &one, &gen, |_| true).unwrap();
        assert_eq!(&got[0], want, "{dir}: greedy ids of row {r} alone differ from transformers");
    }
}

#[test]
fn tiny_t5_original_relu_tied_f32() {
    check_model("tiny-t5", "tiny-t5");
}

#[test]
fn tiny_t5_v1_1_gated_gelu_untied_bf16() {
    check_model("tiny-t5-v1_1", "tiny-t5-v1_1");
}

#[test]
fn tiny_t5_v1_1_sharded_same_as_single_file() {
    check_model("tiny-t5-v1_1-sharded", "tiny-t5-v1_1");
}

#[test]
fn tiny_t5_f16_sharded() {
    check_model("tiny-t5-f16", "tiny-t5-f16");
}

#[test]
fn long_input_beyond_max_distance() {
    let o = oracle("tiny-t5");
    let ids: Vec<u32> = o.json["long_input_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
    assert!(ids.len() > 128, "long input should pass relative_attention_max_distance");
    let enc = model("tiny-t5", ModelKind::Encoder);
    let n = ids.len();
    let out = enc.forward(&Batch::new(ids, None, 1, n).unwrap(), None, None, None).unwrap();
    let name = "long_encoder_last_hidden_state";
    assert_close_tensor(name, &out.encoder_last_hidden_state, &o.tensor(name), o.tolerance(&["fp64_diff", name]));
}

#[test]
fn relative_position_buckets_match_transformers() {
    let v: Value = read_json(fixtures().join("oracle/buckets.json"));
    let cases = v.as_array().map(|a| a.clone()).unwrap_or_else(|| v["cases"].as_array().cloned().unwrap_or_else(|| panic!("unexpected buckets.json layout: {v}")));
    assert!(!cases.is_empty());
    for case in cases {
        let bidirectional = case["bidirectional"].as_bool().unwrap();
        let nb = case["num_buckets"].as_u64().unwrap() as usize;
        let md = case["max_distance"].as_u64().unwrap() as usize;
        let rel = case["relative_positions"].as_array().unwrap();
        let buckets = case["buckets"].as_array().unwrap();
        for (r, b) in rel.iter().zip(buckets) {
            let r = r.as_i64().unwrap();
            assert_eq!(
                t5_core::position::relative_position_bucket(r, bidirectional, nb, md) as u64,
                b.as_u64().unwrap(),
                "bucket of {r} (bidirectional {bidirectional}, {nb} buckets, max distance {md})"
            );
        }
    }
}
