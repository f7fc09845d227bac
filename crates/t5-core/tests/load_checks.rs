//! Hardening of what a load reads and what a call asks for: config.json / generation_config.json
//! field errors and forward-time failures caught at load, tokenizer.json's `precompiled_charsmap`
//! checked before the `tokenizers` crate sees it, call-time memory budgets.

use serde_json::{json, Value};
use std::path::PathBuf;
use t5_core::budget::{self, DecoderPass};
use t5_core::generate::generate;
use t5_core::model::OutputFlags;
use t5_core::hub::load_dir;
use t5_core::tokenizer::Tokenizer;
use t5_core::{Batch, Cpu, GenerationConfig, ModelKind, T5Config, T5Error, T5};

fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test/fixtures").join(path)
}

fn tiny_config_value() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("tiny-t5/config.json")).unwrap()).unwrap()
}

fn config_with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Result<T5Config, T5Error> {
    let mut v = tiny_config_value();
    edit(v.as_object_mut().unwrap());
    T5Config::from_json(&v.to_string())
}

fn bad_config(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    match config_with(edit) {
        Err(T5Error::BadConfig(m)) => m,
        other => panic!("expected BadConfig, got {other:?}"),
    }
}

#[test]
fn config_type_errors_name_the_file_and_field() {
    let m = bad_config(|o| {
        o.insert("d_model".into(), json!("sixty-four"));
    });
    assert_eq!(m, r#"config.json: d_model: expected a positive integer, got "sixty-four""#);
    for (field, value) in [("num_heads", json!(-4)), ("layer_norm_epsilon", json!("small")), ("tie_word_embeddings", json!(1)), ("pad_token_id", json!(1u64 << 40))] {
        let m = bad_config(|o| {
            o.insert(field.into(), value.clone());
        });
        assert!(m.starts_with(&format!("config.json: {field}: expected ")), "{m}");
        assert!(m.ends_with(&format!("got {value}")), "{m}");
    }
    assert!(bad_config(|o| {
        o.insert("eos_token_id".into(), json!([1, "two"]));
    })
    .starts_with("config.json: eos_token_id: "));
    assert!(matches!(T5Config::from_json("[1, 2]"), Err(T5Error::BadConfig(m)) if m == "config.json: expected a JSON object, got an array"));
    assert!(matches!(T5Config::from_json("{\"d_model\": "), Err(T5Error::BadConfig(m)) if m.starts_with("config.json: not valid JSON: ")));
}

#[test]
fn forward_time_failures_fail_at_load() {
    // transformers loads these and fails (or reads out of bounds) on the first forward
    let cases: Vec<(&str, Value, &str)> = vec![
        ("relative_attention_max_distance", json!(2), "relative_attention_max_distance: 2 must be larger"),
        ("relative_attention_max_distance", json!(16), "relative_attention_max_distance: 16 must be larger"),
        ("relative_attention_num_buckets", json!(1), "relative_attention_num_buckets: 1 is too few"),
        ("relative_attention_num_buckets", json!(3), "relative_attention_num_buckets: 3 is too few"),
        ("d_kv", json!(0), "d_kv: must be positive"),
        ("num_layers", json!(0), "num_layers: must be positive"),
        ("num_decoder_layers", json!(0), "num_decoder_layers: must be positive"),
        ("vocab_size", json!(0), "vocab_size: must be positive"),
        ("num_layers", json!(1_000_000), "num_layers: 1000000 layers is more than"),
        ("d_model", json!(u32::MAX), "vocab_size × d_model"),
        ("d_ff", json!(1u64 << 40), "d_ff: 1099511627776 is larger than"),
        ("eos_token_id", json!(40000), "eos_token_id: token id 40000 is outside the vocabulary of 32128"),
        ("decoder_start_token_id", json!(32128), "decoder_start_token_id: token id 32128 is outside"),
        ("layer_norm_epsilon", json!(-1.0), "layer_norm_epsilon: must be a finite number >= 0"),
    ];
    for (field, value, want) in cases {
        let m = bad_config(|o| {
            o.insert(field.into(), value.clone());
        });
        assert!(m.starts_with("config.json: ") && m.contains(want), "{field} = {value}: {m}");
    }
    // the smallest settings whose buckets stay in range load
    config_with(|o| {
        o.insert("relative_attention_num_buckets".into(), json!(4));
        o.insert("relative_attention_max_distance".into(), json!(3));
    })
    .unwrap();
}

#[test]
fn every_fixture_config_still_loads() {
    for dir in ["tiny-t5", "tiny-t5-v1_1", "tiny-t5-f16", "tiny-t5-v1_1-sharded", "gguf/tiny-t5-gguf"] {
        let text = std::fs::read_to_string(fixture(&format!("{dir}/config.json"))).unwrap();
        T5Config::from_json(&text).unwrap_or_else(|e| panic!("{dir}: {e}"));
    }
}

/// A GGUF file's config goes through the same checks (its buckets come from the metadata).
#[test]
fn gguf_relative_buckets_are_checked_too() {
    let mut bytes = std::fs::read(fixture("gguf/tiny-t5-f32.gguf")).unwrap();
    let key = b"t5.attention.relative_buckets_count";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    assert_eq!(&bytes[at..at + 8], &[4, 0, 0, 0, 32, 0, 0, 0], "u32 32");
    bytes[at + 4] = 1;
    let err = t5_core::formats::gguf::load("tiny-t5-f32.gguf", bytes).err().expect("1 bucket must fail");
    assert_eq!(err.code(), "BadConfig", "{err}");
    assert!(err.to_string().contains("relative_attention_num_buckets: 1 is too few"), "{err}");
}

#[test]
fn generation_config_errors_name_the_file_and_key() {
    let cfg = T5Config::from_json(&tiny_config_value().to_string()).unwrap();
    let err = GenerationConfig::from_json(r#"{"num_beams": "four"}"#, &cfg).unwrap_err();
    assert_eq!(err, T5Error::BadConfig(r#"generation_config.json: num_beams: expected a non-negative integer, got "four""#.into()));
    let err = GenerationConfig::from_json(r#"{"decoder_start_token_id": 4294967296}"#, &cfg).unwrap_err();
    assert!(err.to_string().contains("generation_config.json: decoder_start_token_id: expected a token id"), "{err}");
    let mut g = GenerationConfig::from_model_config(&cfg);
    let err = g.apply_json(&json!({"early_stopping": "sometimes"})).unwrap_err();
    assert!(err.to_string().contains(r#"generation options: early_stopping: expected true, false or "never", got "sometimes""#), "{err}");
    assert!(g.apply_json(&json!(null)).unwrap_err().to_string().contains("generation options: expected a JSON object, got null"));
}

// ---------------------------------------------------------------------------------------------
// tokenizer.json

fn tokenizer_json() -> Value {
    serde_json::from_slice(&std::fs::read(fixture("tiny-t5/tokenizer.json")).unwrap()).unwrap()
}

/// The Precompiled normalizer of the fixture (inside its Sequence, or the normalizer itself).
fn precompiled(v: &mut Value) -> &mut serde_json::Map<String, Value> {
    let n = &mut v["normalizer"];
    if n["type"] == "Precompiled" {
        return n.as_object_mut().unwrap();
    }
    n["normalizers"].as_array_mut().unwrap().iter_mut().find(|x| x["type"] == "Precompiled").unwrap().as_object_mut().unwrap()
}

fn load_tokenizer(v: &Value) -> Result<Tokenizer, T5Error> {
    Tokenizer::from_bytes(v.to_string().as_bytes(), None)
}

#[test]
fn precompiled_charsmap_is_checked_before_tokenizers_sees_it() {
    let base = tokenizer_json();
    let mut v = base.clone();
    assert!(precompiled(&mut v).contains_key("precompiled_charsmap"), "fixture has a Precompiled normalizer");
    // each of these panicked inside `tokenizers` (load) or `spm_precompiled` (encode), or reserved 4 GiB
    let cases: Vec<(&str, Option<Value>)> = vec![
        ("missing", None),
        ("null", Some(Value::Null)),
        ("a number", Some(json!(7))),
        ("empty", Some(json!(""))),
        ("not base64", Some(json!("@@@@"))),
        ("4 zero bytes", Some(json!("AAAAAA=="))),
        ("a 4 GiB trie size", Some(json!("/////w=="))),
        ("a trie pointing outside itself", Some(json!("CAAAAP//////////"))),
    ];
    for (what, value) in cases {
        let mut v = base.clone();
        let p = precompiled(&mut v);
        match value {
            None => {
                p.remove("precompiled_charsmap");
            }
            Some(x) => {
                p.insert("precompiled_charsmap".into(), x);
            }
        }
        match load_tokenizer(&v) {
            Err(T5Error::Tokenizer(m)) => assert!(m.starts_with("tokenizer.json: normalizer") && m.contains("precompiled_charsmap"), "{what}: {m}"),
            other => panic!("{what}: expected a Tokenizer error, got {:?}", other.map(|_| ())),
        }
    }
    load_tokenizer(&base).unwrap();
}

/// Every single-byte corruption of the charsmap's trie region either fails at load or encodes
/// every probe text without a panic.
#[test]
fn corrupt_charsmaps_never_panic() {
    let base = tokenizer_json();
    let mut v = base.clone();
    let text = precompiled(&mut v)["precompiled_charsmap"].as_str().unwrap().to_string();
    let probes = ["Hello world", "ＡＢＣ ｶﾀｶﾅ", "é e\u{301} ﬁ", "\u{0}\u{7f}\u{2028}", "😀👍🏽", "ǅ ẞ"];
    let mut rejected = 0;
    let step = (text.len() / 64).max(1);
    for i in (0..text.len().min(4096)).step_by(step) {
        let mut bytes: Vec<u8> = text.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'/' } else { b'A' };
        let mut v = base.clone();
        precompiled(&mut v).insert("precompiled_charsmap".into(), json!(String::from_utf8(bytes).unwrap()));
        match load_tokenizer(&v) {
            Err(e) => {
                assert_eq!(e.code(), "Tokenizer");
                rejected += 1;
            }
            Ok(tk) => {
                for p in probes {
                    let _ = tk.encode(p, true);
                }
            }
        }
    }
    assert!(rejected > 0, "some corruptions reach the trie");
}

/// `TemplateProcessing` post-processors that `tokenizers` reads without its builder's checks and
/// then panics on at encode (the first was found by the tokenizer_json libFuzzer campaign).
#[test]
fn template_post_processors_are_checked_before_tokenizers_sees_them() {
    let base = tokenizer_json();
    assert_eq!(base["post_processor"]["type"], "TemplateProcessing", "fixture has a template");
    let eos = json!({"SpecialToken": {"id": "</s>", "type_id": 0}});
    let seq = |id: &str| json!({"Sequence": {"id": id, "type_id": 0}});
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, &str, Edit)> = vec![
        (
            "a piece names a special token that is not in special_tokens",
            "post_processor.single[1]: special token \"</s>\" is not in special_tokens",
            Box::new(|v| {
                let sp = v["post_processor"]["special_tokens"].as_object_mut().unwrap();
                let t = sp.remove("</s>").unwrap();
                sp.insert("</c>".into(), t);
            }),
        ),
        (
            "the single template reads $B",
            "post_processor.single[2]: the single-sequence template reads $B",
            Box::new(move |v| v["post_processor"]["single"].as_array_mut().unwrap().push(seq("B"))),
        ),
        (
            "a special token with more ids than tokens",
            "post_processor.special_tokens.</s>: 2 ids but 1 tokens",
            Box::new(|v| v["post_processor"]["special_tokens"]["</s>"]["ids"] = json!([1, 1])),
        ),
        (
            "the same with a misspelt type (tokenizers reads it untagged; found by libFuzzer)",
            "post_processor.single[1]: special token \"=/s>\" is not in special_tokens",
            Box::new(|v| {
                v["post_processor"]["type"] = json!("TemplateP0ocessing");
                v["post_processor"]["single"][1]["SpecialToken"]["id"] = json!("=/s>");
            }),
        ),
        (
            "the same, inside a Sequence post-processor",
            "post_processor.processors[0].single[1]: special token \"</s>\" is not in special_tokens",
            Box::new(move |v| {
                let mut t = v["post_processor"].take();
                t["special_tokens"] = json!({});
                t["pair"] = json!([seq("A"), seq("B")]);
                t["single"] = json!([seq("A"), eos.clone()]);
                v["post_processor"] = json!({"type": "Sequence", "processors": [t]});
            }),
        ),
    ];
    for (what, expected, edit) in cases {
        let mut v = base.clone();
        edit(&mut v);
        match load_tokenizer(&v) {
            Err(T5Error::Tokenizer(m)) => assert!(m.starts_with(&format!("tokenizer.json: {expected}")), "{what}: {m}"),
            other => panic!("{what}: expected a Tokenizer error, got {:?}", other.map(|_| ())),
        }
    }
    // a template the builder accepts still loads and adds its token
    let tk = load_tokenizer(&base).unwrap();
    assert_eq!(tk.encode("Hello", true).unwrap().last(), Some(&1));
}

// ---------------------------------------------------------------------------------------------
// call-time budgets

fn tiny_model() -> T5<Cpu> {
    let (cfg, _, store) = load_dir(fixture("tiny-t5")).unwrap();
    let mut m = T5::load(cfg, &store, ModelKind::ConditionalGeneration, Cpu).unwrap();
    m.set_memory_limit(Some(1 << 32)); // one wasm32 memory, as in the browser
    m
}

#[test]
fn call_budgets_fail_before_allocating() {
    let model = tiny_model();
    let gen = GenerationConfig::from_model_config(&model.config);
    // 12,000 raw input ids: [heads, seq, seq] scores would be 2.1 GiB, but the CPU's attention holds a block of
    // them per task, so the encoder's working memory grows with the length only, and the call may start
    assert!(budget::check_encode(&model, 1, 12_000).is_ok());
    assert!(budget::check_generate(&model, 1, 12_000, &gen).is_ok());
    // ... up to millions of tokens
    let n = 5_000_000;
    let long = Batch::new(vec![5; n], None, 1, n).unwrap();
    match model.encode(&long).err() {
        Some(T5Error::InputTooLong { len, max, .. }) => assert!(len == n && max > 1_000_000 && max < n, "{max}"),
        other => panic!("{other:?}"),
    }
    match generate(&model, &long, &gen, |_| true).err() {
        Some(T5Error::InputTooLong { len, .. }) => assert_eq!(len, n),
        other => panic!("{other:?}"),
    }
    // returning every block's attention probabilities of 12,000 tokens (2 × [4, 12000, 12000], 4.3 GiB) does not fit
    let none = OutputFlags::default();
    let attentions = OutputFlags { attentions: true, ..none };
    let pass = Some(DecoderPass { positions: 1, past: 0, logits: model.config.vocab_size });
    match budget::check_forward(&model, 1, 12_000, true, pass, attentions).err() {
        Some(e @ T5Error::InputTooLong { len: 12_000, max, .. }) => {
            assert!(max > 5_000 && max < 12_000, "{max}");
            // the message says which call's budget, and what else to change
            assert!(e.to_string().ends_with(&format!(
                " than the maximum of {max} that the memory budget allows for this call (forward on a [1, 12000] input with 1 decoder positions recording output_attentions; shorten the input or decoder_input_ids / labels or split the batch, or leave out output_attentions)"
            )), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(budget::check_forward(&model, 1, 12_000, true, pass, none).is_ok());
    let short = Batch::new(vec![5, 6, 7, 1], None, 1, 4).unwrap();
    let mut beams = gen.clone();
    beams.apply_json(&json!({"num_beams": 100_000})).unwrap();
    let err = generate(&model, &short, &beams, |_| true).unwrap_err();
    assert_eq!(err.code(), "MemoryBudget", "{err}");
    assert!(err.to_string().contains("100000 rows per input"), "{err}");
    let mut big_static = gen.clone();
    big_static.apply_json(&json!({"cache_implementation": "static", "max_new_tokens": 50_000_000})).unwrap();
    assert_eq!(generate(&model, &short, &big_static, |_| true).unwrap_err().code(), "MemoryBudget");
    let mut growing = gen.clone();
    growing.apply_json(&json!({"max_new_tokens": usize::MAX})).unwrap();
    assert_eq!(generate(&model, &short, &growing, |_| true).unwrap_err().code(), "MemoryBudget");
    let mut samples = gen.clone();
    samples.apply_json(&json!({"do_sample": true, "num_return_sequences": 1_000_000})).unwrap();
    assert_eq!(generate(&model, &short, &samples, |_| true).unwrap_err().code(), "MemoryBudget");
    // an ordinary call still runs
    let out = generate(&model, &short, &gen, |_| true).unwrap();
    assert_eq!(out.sequences.len(), 1);
    // forward with a huge decoder length
    let dec = vec![0u32; 40_000];
    assert!(matches!(model.forward(&short, Some(&dec), None, None).unwrap_err().code(), "MemoryBudget" | "InputTooLong"));
}
