//! The tokenizer against transformers' `AutoTokenizer` on the real t5-small files.

use serde_json::Value;
use std::path::PathBuf;
use t5_core::tokenizer::{EncodeOptions, Tokenizer};

fn shared_t5_small() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models/t5-small")
}

fn tokenizer() -> Tokenizer {
    let d = shared_t5_small();
    Tokenizer::from_bytes(&std::fs::read(d.join("tokenizer.json")).unwrap(), Some(&std::fs::read(d.join("tokenizer_config.json")).unwrap())).unwrap()
}

fn oracle() -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test/fixtures/oracle/tokenizer.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

#[test]
fn encode_and_decode_like_transformers() {
    let tk = tokenizer();
    let o = oracle();
    let cases = o["cases"].as_array().expect("cases");
    assert!(cases.len() >= 30);
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want = ids(&c["encode"]);
        assert_eq!(tk.encode(text, true).unwrap(), want, "encode {text:?}");
        assert_eq!(tk.decode(&want, false).unwrap(), c["decode"].as_str().unwrap(), "decode {text:?}");
        assert_eq!(tk.decode(&want, true).unwrap(), c["decode_skip"].as_str().unwrap(), "decode skip_special_tokens {text:?}");
    }
}

#[test]
fn padded_and_truncated_batches() {
    let tk = tokenizer();
    let o = oracle();
    let b = &o["batch"];
    let texts: Vec<String> = b["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    let enc = tk.encode_batch(&texts, &EncodeOptions { padding: true, truncation: false, max_length: None, add_special_tokens: true }).unwrap();
    let rows = |v: &Value| v.as_array().unwrap().iter().map(ids).collect::<Vec<_>>();
    assert_eq!(enc.input_ids, rows(&b["input_ids"]));
    assert_eq!(enc.attention_mask, rows(&b["attention_mask"]));
    let t = &o["batch_truncated"];
    let max_length = t["max_length"].as_u64().unwrap() as usize;
    let enc = tk.encode_batch(&texts, &EncodeOptions { padding: true, truncation: true, max_length: Some(max_length), add_special_tokens: true }).unwrap();
    assert_eq!(enc.input_ids, rows(&t["input_ids"]));
    assert_eq!(enc.attention_mask, rows(&t["attention_mask"]));
}

#[test]
fn sentinel_tokens() {
    let tk = tokenizer();
    let o = oracle();
    let want: Vec<(String, u32)> = o["sentinel_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .zip(o["sentinel_token_ids"].as_array().unwrap())
        .map(|(t, i)| (t.as_str().unwrap().to_string(), i.as_u64().unwrap() as u32))
        .collect();
    assert_eq!(want.len(), 100);
    assert_eq!(want[0], ("<extra_id_0>".to_string(), 32099));
    assert_eq!(tk.sentinels(), want);
    assert_eq!(tk.token_to_id("<extra_id_0>"), Some(32099));
}
