//! transformers' tokenizer call options and left-padded models against scripts/make_pipeline_fixtures.py
//! (test/fixtures/pipelines/): padding side (config, setter, per call), `padding="max_length"`, pairs truncated
//! "only_second" into overlapping windows with a stride (ids, masks, char offsets, special-tokens mask, word ids,
//! sequence ids, overflow_to_sample_mapping), pre-tokenized words; settings the `tokenizers` crate would panic on
//! are errors; a left-padded batch gives transformers' encoder outputs and greedy ids, and each row's greedy ids
//! alone.

use serde_json::Value;
mod common;

use common::{fixtures, read_json, rows};
use t5_core::generate::greedy;
use t5_core::hub::load_dir;
use t5_core::tokenizer::{CallOptions, EncodeInput, EncodedRow, Padding, Sequence, Tokenizer, Truncation};
use t5_core::{Batch, Cpu, ModelKind, Tensor, T5};

fn oracle() -> Value {
    read_json(fixtures().join("pipelines/oracle.json"))
}

fn tokenizer() -> Tokenizer {
    let d = fixtures().join("tiny-t5");
    Tokenizer::from_bytes(&std::fs::read(d.join("tokenizer.json")).unwrap(), Some(&std::fs::read(d.join("tokenizer_config.json")).unwrap())).unwrap()
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect()
}

fn text(s: &str) -> EncodeInput {
    EncodeInput { text: Sequence::Text(s.to_string()), pair: None }
}

fn texts(o: &Value) -> Vec<EncodeInput> {
    strs(&o["left_padded"]["texts"]).iter().map(|t| text(t)).collect()
}

fn opts(padding: Padding) -> CallOptions {
    CallOptions { padding, add_special_tokens: true, ..Default::default() }
}

fn ids_masks(r: &[EncodedRow]) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    (r.iter().map(|x| x.input_ids.clone()).collect(), r.iter().map(|x| x.attention_mask.clone()).collect())
}

fn check_case(what: &str, got: &[EncodedRow], want: &Value) {
    let (i, m) = ids_masks(got);
    assert_eq!(i, rows(&want["input_ids"]), "{what}: input_ids");
    assert_eq!(m, rows(&want["attention_mask"]), "{what}: attention_mask");
}

/// Every field of each row as transformers' BatchEncoding has it.
fn check_rows(what: &str, got: &[EncodedRow], want: &Value) {
    let want = want.as_array().unwrap();
    assert_eq!(got.len(), want.len(), "{what}: rows");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.input_ids, u32s(&w["input_ids"]), "{what}[{k}] input_ids");
        assert_eq!(g.attention_mask, u32s(&w["attention_mask"]), "{what}[{k}] attention_mask");
        let offs: Vec<(usize, usize)> = w["offset_mapping"].as_array().unwrap().iter().map(|p| (p[0].as_u64().unwrap() as usize, p[1].as_u64().unwrap() as usize)).collect();
        assert_eq!(g.offsets, offs, "{what}[{k}] offsets");
        assert_eq!(g.special_tokens_mask, u32s(&w["special_tokens_mask"]), "{what}[{k}] special_tokens_mask");
        let words: Vec<Option<u32>> = w["word_ids"].as_array().unwrap().iter().map(|x| x.as_u64().map(|v| v as u32)).collect();
        assert_eq!(g.word_ids, words, "{what}[{k}] word_ids");
        let seqs: Vec<Option<usize>> = w["sequence_ids"].as_array().unwrap().iter().map(|x| x.as_u64().map(|v| v as usize)).collect();
        assert_eq!(g.sequence_ids, seqs, "{what}[{k}] sequence_ids");
    }
}

#[test]
fn padding_side_setter_and_per_call() {
    let o = oracle();
    let t = &o["tokenizer"];
    let mut tk = tokenizer();
    assert!(!tk.padding_side_left());
    let inputs = texts(&o);
    // per call, on a right-padding tokenizer
    let got = tk.encode_detailed(&inputs, &CallOptions { padding_left: Some(true), ..opts(Padding::Longest) }).unwrap();
    check_case("left_call_option", &got, &t["left_call_option"]);
    let got = tk.encode_detailed(&inputs, &CallOptions { padding_left: Some(true), truncation: Truncation::LongestFirst, max_length: Some(64), ..opts(Padding::MaxLength) }).unwrap();
    check_case("left_max_length", &got, &t["left_max_length"]);
    // the property
    tk.set_pads_left(true);
    assert!(tk.padding_side_left());
    let got = tk.encode_detailed(&inputs, &opts(Padding::Longest)).unwrap();
    check_case("left_property", &got, &t["left_property"]);
    let got = tk.encode_detailed(&inputs, &CallOptions { truncation: Truncation::LongestFirst, max_length: Some(10), ..opts(Padding::Longest) }).unwrap();
    check_case("left_truncated", &got, &t["left_truncated"]);
    let got = tk.encode_detailed(&inputs, &CallOptions { padding_left: Some(false), ..opts(Padding::Longest) }).unwrap();
    check_case("right_call_option_on_left", &got, &t["right_call_option_on_left"]);
    // the older batch API follows the property too
    let enc = tk.encode_batch(&strs(&o["left_padded"]["texts"]), &t5_core::tokenizer::EncodeOptions { padding: true, truncation: false, max_length: None, add_special_tokens: true }).unwrap();
    assert_eq!(enc.input_ids, rows(&t["left_property"]["input_ids"]));
    // details of a left-padded batch: offsets, special-tokens mask (padding included), word and sequence ids
    let d = &t["details_left"];
    let inputs: Vec<EncodeInput> = strs(&d["texts"]).iter().map(|x| text(x)).collect();
    let got = tk.encode_detailed(&inputs, &opts(Padding::Longest)).unwrap();
    check_rows("details_left", &got, &d["rows"]);
}

#[test]
fn pretokenized_words() {
    let o = oracle();
    let t = &o["tokenizer"];
    let tk = tokenizer();
    let one = EncodeInput { text: Sequence::Words(strs(&t["words_single"]["words"])), pair: None };
    check_rows("words_single", &tk.encode_detailed(&[one], &opts(Padding::DoNotPad)).unwrap(), &t["words_single"]["rows"]);
    let batch: Vec<EncodeInput> = t["words_batch"]["words"].as_array().unwrap().iter().map(|w| EncodeInput { text: Sequence::Words(strs(w)), pair: None }).collect();
    check_rows("words_batch", &tk.encode_detailed(&batch, &opts(Padding::Longest)).unwrap(), &t["words_batch"]["rows"]);
    // a row with no words is an error, not a panic
    let empty = EncodeInput { text: Sequence::Words(vec![]), pair: None };
    assert!(tk.encode_detailed(&[empty], &opts(Padding::DoNotPad)).is_err());
}

#[test]
fn only_second_windows_with_stride() {
    let o = oracle();
    let tk = tokenizer();
    for (name, w) in o["tokenizer"]["windows"].as_object().unwrap() {
        let pair = |q: &str, c: &str| EncodeInput { text: Sequence::Text(q.to_string()), pair: Some(Sequence::Text(c.to_string())) };
        let inputs: Vec<EncodeInput> = match (&w["question"], &w["context"]) {
            (Value::Array(q), Value::Array(c)) => q.iter().zip(c).map(|(q, c)| pair(q.as_str().unwrap(), c.as_str().unwrap())).collect(),
            (q, c) => vec![pair(q.as_str().unwrap(), c.as_str().unwrap())],
        };
        let padding = if w["padding"].as_bool() == Some(true) { Padding::Longest } else { Padding::DoNotPad };
        let got = tk
            .encode_detailed(
                &inputs,
                &CallOptions {
                    padding,
                    truncation: Truncation::OnlySecond,
                    max_length: Some(w["max_length"].as_u64().unwrap() as usize),
                    stride: w["stride"].as_u64().unwrap() as usize,
                    return_overflowing_tokens: true,
                    add_special_tokens: true,
                    padding_left: None,
                },
            )
            .unwrap();
        assert!(got.len() > inputs.len(), "{name}: several windows");
        check_rows(name, &got, &w["rows"]);
        let samples: Vec<u32> = got.iter().map(|r| r.sample as u32).collect();
        assert_eq!(samples, u32s(&w["overflow_to_sample_mapping"]), "{name}: overflow_to_sample_mapping");
    }
}

#[test]
fn settings_the_crate_would_panic_on_are_errors() {
    let o = oracle();
    let tk = tokenizer();
    let c = o["tokenizer"]["windows"]["48_16"]["context"].as_str().unwrap().to_string();
    let q = "Who was the last keeper of the lighthouse on the northern cliff of the island?".to_string();
    let pair = EncodeInput { text: Sequence::Text(q.clone()), pair: Some(Sequence::Text(c.clone())) };
    let base = CallOptions { truncation: Truncation::OnlySecond, return_overflowing_tokens: true, add_special_tokens: true, ..Default::default() };
    // the question leaves 24 - 2 - 18 = 4 context tokens per window: stride 4 is not shorter
    let n_q = tk.encode(&q, false).unwrap().len();
    let max = n_q + 2 + 4;
    let e = tk.encode_detailed(std::slice::from_ref(&pair), &CallOptions { max_length: Some(max), stride: 4, ..base.clone() }).unwrap_err();
    assert_eq!(e.code(), "Tokenizer", "{e}");
    assert!(e.to_string().contains("stride"), "{e}");
    // stride 3 works: windows of 4 context tokens moving by 1
    let ok = tk.encode_detailed(std::slice::from_ref(&pair), &CallOptions { max_length: Some(max), stride: 3, ..base.clone() }).unwrap();
    assert!(ok.len() > 10 && ok.iter().all(|r| r.input_ids.len() <= max));
    // no room for the context at all: the crate's own error
    assert!(tk.encode_detailed(std::slice::from_ref(&pair), &CallOptions { max_length: Some(n_q + 2), stride: 0, ..base.clone() }).is_err());
    // max_length not above the special tokens
    for max in [0, 1, 2] {
        assert!(tk.encode_detailed(std::slice::from_ref(&pair), &CallOptions { max_length: Some(max), ..base.clone() }).is_err());
    }
    // longest_first with a stride on a single text and on a pair
    let single = text(&c);
    assert!(tk.encode_detailed(std::slice::from_ref(&single), &CallOptions { truncation: Truncation::LongestFirst, max_length: Some(8), stride: 7, ..base.clone() }).is_err());
    let w = tk.encode_detailed(std::slice::from_ref(&single), &CallOptions { truncation: Truncation::LongestFirst, max_length: Some(8), stride: 6, ..base.clone() }).unwrap();
    assert!(w.len() > 10);
    assert!(tk.encode_detailed(std::slice::from_ref(&pair), &CallOptions { truncation: Truncation::LongestFirst, max_length: Some(12), stride: 5, ..base.clone() }).is_err());
    assert!(tk.encode_detailed(std::slice::from_ref(&pair), &CallOptions { truncation: Truncation::LongestFirst, max_length: Some(12), stride: 4, ..base.clone() }).is_ok());
    assert!(tk.encode_detailed(std::slice::from_ref(&pair), &CallOptions { truncation: Truncation::OnlyFirst, max_length: Some(c.len()), stride: 3, ..base.clone() }).is_ok());
    // only_second without a pair
    assert!(tk.encode_detailed(std::slice::from_ref(&single), &CallOptions { max_length: Some(8), ..base }).is_err());
}

fn tensor(st: &safetensors::SafeTensors, name: &str) -> Tensor {
    let v = st.tensor(name).unwrap();
    Tensor::new(v.shape().to_vec(), v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

#[test]
fn left_padded_batch_like_transformers_and_like_each_row_alone() {
    let o = oracle();
    let lp = &o["left_padded"];
    let bytes = std::fs::read(fixtures().join("pipelines/oracle.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let ids = rows(&lp["input_ids"]);
    let mask = rows(&lp["attention_mask"]);
    assert!(mask.iter().any(|m| m[0] == 0), "left padded");
    let input = Batch::new(ids.concat(), Some(mask.concat()), ids.len(), ids[0].len()).unwrap();
    for dir in ["tiny-t5", "tiny-t5-v1_1"] {
        let (cfg, gen, store) = load_dir(fixtures().join(dir)).unwrap();
        let enc = T5::<Cpu>::load(cfg.clone(), &store, ModelKind::Encoder, Cpu).unwrap();
        let out = enc.forward(&input, None, None, None).unwrap().encoder_last_hidden_state;
        let name = format!("left.{dir}.encoder_last_hidden_state");
        let want = tensor(&st, &name);
        let tol = (1e-4 + 4.0 * o["fp64_diff"][&name].as_f64().unwrap()) as f32;
        assert_eq!(out.shape, want.shape);
        let worst = out.data.iter().zip(&want.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst <= tol, "{dir}: encoder max diff {worst:e} > {tol:e}");
        let lm = T5::<Cpu>::load(cfg, &store, ModelKind::ConditionalGeneration, Cpu).unwrap();
        let mut gen = gen;
        gen.max_new_tokens = Some(lp["max_new_tokens"].as_u64().unwrap() as usize);
        let got = greedy(&lm, &input, &gen, |_| true).unwrap();
        assert_eq!(got, rows(&lp["models"][dir]["sequences"]), "{dir}: left-padded greedy ids");
        for (r, want) in rows(&lp["models"][dir]["sequences_single"]).iter().enumerate() {
            let real: Vec<u32> = ids[r].iter().zip(&mask[r]).filter(|(_, &m)| m == 1).map(|(&i, _)| i).collect();
            let one = Batch::new(real.clone(), None, 1, real.len()).unwrap();
            let alone = greedy(&lm, &one, &gen, |_| true).unwrap();
            assert_eq!(&alone[0], want, "{dir}: row {r} alone");
            assert_eq!(&got[r][..want.len()], &want[..], "{dir}: row {r} of the left-padded batch = the row alone");
        }
    }
}
