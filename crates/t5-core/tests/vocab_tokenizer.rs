//! `Tokenizer::from_vocab` (transformers 5.24's `T5Tokenizer(vocab=...)`) against the oracle of
//! scripts/make_vocab_tokenizer_fixtures.py: every id equals transformers', except the added sentinels, numbered
//! descending as in the pretrained checkpoints (`ids` in the fixture; `hf_ids` are transformers' own).

use serde_json::{json, Value};
use std::path::PathBuf;
use t5_core::tokenizer::{Tokenizer, VocabSpec};
use t5_core::T5Error;

fn oracle() -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test/fixtures/oracle/vocab-tokenizer/cases.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn build(init: &Value) -> Tokenizer {
    Tokenizer::from_vocab(&VocabSpec::from_json(&init.to_string()).unwrap()).unwrap()
}

#[test]
fn ids_equal_transformers_with_descending_sentinels() {
    let o = oracle();
    for c in o["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let tok = build(&c["init"]);
        assert_eq!(tok.vocab_size() as u64, c["vocab_size"].as_u64().unwrap(), "{name}: vocab_size");
        assert_eq!(tok.pad_token_id() as u64, c["pad_token_id"].as_u64().unwrap(), "{name}: pad");
        assert_eq!(tok.eos_token_id().map(u64::from), c["eos_token_id"].as_u64(), "{name}: eos");
        assert_eq!(tok.unk_token_id().map(u64::from), c["unk_token_id"].as_u64(), "{name}: unk");
        let sentinels = tok.sentinels();
        let names: Vec<&str> = sentinels.iter().map(|(t, _)| t.as_str()).collect();
        let want: Vec<&str> = c["sentinel_tokens"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(names, want, "{name}: sentinel tokens");
        assert_eq!(sentinels.iter().map(|(_, id)| *id).collect::<Vec<_>>(), u32s(&c["sentinel_token_ids"]), "{name}: sentinel ids");
        for r in c["rows"].as_array().unwrap() {
            let text = r["text"].as_str().unwrap();
            let ids = tok.encode(text, true).unwrap();
            assert_eq!(ids, u32s(&r["ids"]), "{name}: ids of {text:?}");
            let tokens: Vec<String> = ids.iter().map(|&i| tok.id_to_token(i).unwrap()).collect();
            let want: Vec<&str> = r["tokens"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            assert_eq!(tokens, want, "{name}: tokens of {text:?}");
            assert_eq!(tok.decode(&ids, false).unwrap(), r["decoded"].as_str().unwrap(), "{name}: decode of {text:?}");
            assert_eq!(tok.decode(&ids, true).unwrap(), r["decoded_skip"].as_str().unwrap(), "{name}: decode (skip) of {text:?}");
        }
        let m = &c["special_tokens_mask"];
        assert_eq!(tok.special_tokens_mask_of(&u32s(&m["ids"]), None, true).unwrap(), u32s(&m["mask"]), "{name}: special mask");
    }
}

#[test]
fn default_sentinels_count_down_to_the_last_id() {
    let o = oracle();
    let c = o["cases"].as_array().unwrap().iter().find(|c| c["name"] == "default").unwrap();
    let tok = build(&c["init"]);
    let n = tok.vocab_size() as u32;
    // the checkpoints' convention: <extra_id_0> is the last id, <extra_id_99> the first after the vocabulary
    assert_eq!(tok.token_to_id("<extra_id_0>"), Some(n - 1));
    assert_eq!(tok.token_to_id("<extra_id_99>"), Some(n - 100));
    // transformers numbers them the other way round
    let hf = u32s(&c["hf_sentinel_token_ids"]);
    assert_eq!(hf[0], n - 100);
}

#[test]
fn saved_files_load_back_to_identical_ids() {
    let o = oracle();
    for c in o["cases"].as_array().unwrap() {
        let tok = build(&c["init"]);
        let saved = tok.saved().unwrap();
        let back = Tokenizer::from_bytes(saved.tokenizer_json.as_bytes(), Some(saved.tokenizer_config_json.as_bytes())).unwrap();
        for r in c["rows"].as_array().unwrap() {
            let text = r["text"].as_str().unwrap();
            assert_eq!(back.encode(text, true).unwrap(), u32s(&r["ids"]), "{}: reloaded ids of {text:?}", c["name"]);
        }
        assert_eq!(back.sentinels(), tok.sentinels());
        assert_eq!(back.pad_token_id(), tok.pad_token_id());
        assert_eq!(back.unk_token_id(), tok.unk_token_id());
        let cfg: Value = serde_json::from_str(&saved.tokenizer_config_json).unwrap();
        assert_eq!(cfg["tokenizer_class"], "T5Tokenizer");
        assert_eq!(cfg["extra_ids"].as_u64().unwrap() as usize, tok.sentinels().len());
    }
}

#[test]
fn special_tokens_mask_without_special_tokens_follows_the_t5_template() {
    let tok = build(&json!({"vocab": [["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0], ["▁a", -1.0]], "extra_ids": 1}));
    assert_eq!(tok.special_tokens_mask_of(&[3, 3], None, false).unwrap(), vec![0, 0, 1]);
    assert_eq!(tok.special_tokens_mask_of(&[3], Some(&[3, 3]), false).unwrap(), vec![0, 1, 0, 0, 1]);
    assert_eq!(tok.special_tokens_mask_of(&[3, 1, 0, 4], None, true).unwrap(), vec![0, 1, 1, 1]);
    assert!(matches!(tok.special_tokens_mask_of(&[3], Some(&[3]), true), Err(T5Error::BadInput(_))));
    assert_eq!(tok.tokenize("a a", None, false).unwrap(), vec!["▁a", "▁a"]);
    assert_eq!(tok.tokenize("a", Some("a"), true).unwrap(), vec!["▁a", "</s>", "▁a", "</s>"]);
    assert_eq!(tok.token_to_id_or_unk("nope"), Some(2));
}

#[test]
fn bad_vocabularies_are_typed_errors_naming_the_option() {
    let err = |v: Value| match Tokenizer::from_vocab(&VocabSpec::from_json(&v.to_string()).unwrap()) {
        Err(T5Error::BadConfig(m)) => m,
        Err(e) => panic!("{v}: wrong error {e:?}"),
        Ok(_) => panic!("{v}: accepted"),
    };
    assert!(err(json!({"vocab": [["a", 0.0], ["b", 0.0]]})).contains("at least 3"));
    assert!(err(json!({"vocab": [["a", 0.0], ["b", null], ["c", 0.0]]})).contains("vocab[1]"));
    assert!(err(json!({"vocab": [["a", 0.0], ["a", 0.0], ["c", 0.0]]})).contains("twice"));
    assert!(err(json!({"vocab": [["a", 0.0], ["", 0.0], ["c", 0.0]]})).contains("vocab[1]"));
    assert!(err(json!({"vocab": [["a", 0.0], ["b", 0.0], ["c", 0.0]], "extra_ids": 2.5})).contains("extra_ids"));
    assert!(err(json!({"vocab": [["a", 0.0], ["b", 0.0], ["c", 0.0]], "extra_ids": -1})).contains("extra_ids"));
    assert!(err(json!({"vocab": [["a", 0.0], ["b", 0.0], ["c", 0.0]], "extra_ids": 3, "additional_special_tokens": ["<extra_id_0>"]}))
        .contains("additional_special_tokens"));
    assert!(err(json!({"vocab": [["a", 0.0], ["b", 0.0], ["c", 0.0]], "padding_side": "up"})).contains("padding_side"));
    assert!(matches!(VocabSpec::from_json(r#"{"vocab": [], "extra_idz": 1}"#), Err(T5Error::BadConfig(m)) if m.contains("extra_idz")));
}
