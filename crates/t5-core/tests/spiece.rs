//! The tokenizer built from `spiece.model` (checkpoints without tokenizer.json) against transformers 5.24 on the
//! real files: `shared/models/t5-spiece` (a slow-tokenizer directory) and `shared/models/t5-small` (tokenizer.json
//! converted from the same spiece.model). Oracle: test/fixtures/oracle/spiece/cases.json, written by
//! scripts/make_tokenizer_fixtures.py.

use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;
use t5_core::formats::spiece::{check_precompiled_charsmap, SpModel};
use t5_core::tokenizer::{EncodeOptions, Tokenizer};
use t5_core::T5Error;

fn shared(dir: &str, file: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models").join(dir).join(file);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn oracle() -> &'static Value {
    static O: OnceLock<Value> = OnceLock::new();
    O.get_or_init(|| {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test/fixtures/oracle/spiece/cases.json");
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    })
}

fn spm() -> Vec<u8> {
    shared("t5-spiece", "spiece.model")
}

/// transformers on the slow-tokenizer directory: spiece.model + its tokenizer_config.json
fn from_spiece_dir() -> Tokenizer {
    Tokenizer::from_spiece(&spm(), Some(&shared("t5-spiece", "tokenizer_config.json"))).unwrap()
}

/// transformers on tokenizer.json
fn from_tokenizer_json() -> Tokenizer {
    Tokenizer::from_bytes(&shared("t5-small", "tokenizer.json"), Some(&shared("t5-small", "tokenizer_config.json"))).unwrap()
}

/// the same spiece.model with t5-small's tokenizer_config.json (which has no `<sql_context>`)
fn from_spiece_small_config() -> Tokenizer {
    Tokenizer::from_spiece(&spm(), Some(&shared("t5-small", "tokenizer_config.json"))).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn rows(v: &Value) -> Vec<Vec<u32>> {
    v.as_array().unwrap().iter().map(ids).collect()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

/// sentinels in id order (`<extra_id_99>` = 32000 first), whatever order `Tokenizer::sentinels` lists them in
fn by_id(mut v: Vec<(String, u32)>) -> Vec<(String, u32)> {
    v.sort_by_key(|(_, id)| *id);
    v
}

fn cases() -> &'static Vec<Value> {
    oracle()["cases"].as_array().unwrap()
}

#[test]
fn ids_and_decodes_match_transformers_on_both_directories() {
    let cases = cases();
    assert!(cases.len() >= 300, "{} cases", cases.len());
    let spiece = from_spiece_dir();
    let fast = from_tokenizer_json();
    let spiece_small = from_spiece_small_config();
    let mut differ = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let text = s(&c["text"]);
        let want_fast = ids(&c["fast"]);
        let want_spiece = ids(&c["spiece"]);
        let got_fast = fast.encode(text, true).unwrap();
        let got_spiece = spiece.encode(text, true).unwrap();
        assert_eq!(got_fast, want_fast, "tokenizer.json, case {i} {text:?}");
        assert_eq!(got_spiece, want_spiece, "spiece.model, case {i} {text:?}");
        // both of our paths on the same tokenizer_config.json: identical ids on every case
        assert_eq!(spiece_small.encode(text, true).unwrap(), got_fast, "spiece.model + t5-small config, case {i} {text:?}");
        if got_fast != got_spiece {
            differ.push(i as u64);
        }
        assert_eq!(fast.decode(&want_fast, false).unwrap(), s(&c["fast_decode"]), "decode, case {i} {text:?}");
        assert_eq!(fast.decode(&want_fast, true).unwrap(), s(&c["fast_decode_skip"]), "decode skip, case {i} {text:?}");
        assert_eq!(spiece.decode(&want_spiece, false).unwrap(), s(&c["spiece_decode"]), "decode, case {i} {text:?}");
        assert_eq!(spiece.decode(&want_spiece, true).unwrap(), s(&c["spiece_decode_skip"]), "decode skip, case {i} {text:?}");
        assert_eq!(spiece_small.decode(&want_fast, false).unwrap(), s(&c["fast_decode"]), "decode, case {i} {text:?}");
        assert_eq!(spiece_small.decode(&want_fast, true).unwrap(), s(&c["fast_decode_skip"]), "decode skip, case {i} {text:?}");
        // without special tokens: the same ids less the final </s>
        assert_eq!(spiece.encode(text, false).unwrap(), want_spiece[..want_spiece.len() - 1], "no special tokens, case {i}");
    }
    // The two directories differ only where t5-spiece's config adds `<sql_context>` (id 32100), as in transformers.
    let want: Vec<u64> = oracle()["disagreements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kinds"].as_array().unwrap().iter().any(|k| k == "fast!=spiece"))
        .map(|d| d["index"].as_u64().unwrap())
        .collect();
    assert_eq!(differ, want);
    assert!(!differ.is_empty());
}

#[test]
fn vocab_and_sentinels() {
    let spiece = from_spiece_dir();
    let fast = from_tokenizer_json();
    let o = oracle();
    assert_eq!(spiece.vocab_size() as u64, o["spiece_vocab_size"].as_u64().unwrap());
    assert_eq!(fast.vocab_size() as u64, o["fast_vocab_size"].as_u64().unwrap());
    let want: Vec<(String, u32)> = o["sentinels"].as_array().unwrap().iter().map(|p| (s(&p[0]).to_string(), p[1].as_u64().unwrap() as u32)).collect();
    assert_eq!(want.len(), 100);
    assert_eq!(by_id(spiece.sentinels()), want);
    assert_eq!(by_id(fast.sentinels()), want);
    assert_eq!(spiece.sentinels(), fast.sentinels());
    assert_eq!(spiece.token_to_id("<extra_id_0>"), Some(32099));
    assert_eq!(spiece.token_to_id("<extra_id_99>"), Some(32000));
    assert_eq!(spiece.id_to_token(32099).as_deref(), Some("<extra_id_0>"));
    for (tok, id) in [("<pad>", 0), ("</s>", 1), ("<unk>", 2), ("<sql_context>", 32100)] {
        assert_eq!(spiece.token_to_id(tok), Some(id), "{tok}");
    }
    assert_eq!(spiece.pad_token_id(), 0);
    assert_eq!(spiece.eos_token_id(), Some(1));
    assert_eq!(spiece.model_max_length(), Some(512));
    assert!(!spiece.pads_left());
}

/// What we build from spiece.model + t5-small's config is, piece for piece, the tokenizer.json transformers
/// converted from the same file (scores: tokenizer.json stores them rounded to 16 digits, the proto as f32).
#[test]
fn same_structure_as_tokenizer_json() {
    let ours: Value = serde_json::from_str(&from_spiece_small_config().to_json(false).unwrap()).unwrap();
    let theirs: Value = serde_json::from_slice(&shared("t5-small", "tokenizer.json")).unwrap();
    for key in ["normalizer", "pre_tokenizer", "post_processor", "decoder", "added_tokens", "truncation", "padding"] {
        assert_eq!(ours[key], theirs[key], "{key}");
    }
    let (m, t) = (&ours["model"], &theirs["model"]);
    for key in ["type", "unk_id", "byte_fallback"] {
        assert_eq!(m[key], t[key], "model.{key}");
    }
    let (mv, tv) = (m["vocab"].as_array().unwrap(), t["vocab"].as_array().unwrap());
    assert_eq!(mv.len(), tv.len());
    for (i, (a, b)) in mv.iter().zip(tv).enumerate() {
        assert_eq!(a[0], b[0], "piece {i}");
        let (x, y) = (a[1].as_f64().unwrap(), b[1].as_f64().unwrap());
        assert!((x - y).abs() <= 1e-6 * y.abs().max(1.0), "score of piece {i}: {x} vs {y}");
    }
}

/// The JSON of what `from_spiece` built loads back through `from_bytes` and tokenizes the same.
#[test]
fn to_json_round_trip() {
    let spiece = from_spiece_dir();
    let json = spiece.to_json(false).unwrap();
    let back = Tokenizer::from_bytes(json.as_bytes(), Some(&shared("t5-spiece", "tokenizer_config.json"))).unwrap();
    for c in cases().iter().step_by(3) {
        let text = s(&c["text"]);
        assert_eq!(back.encode(text, true).unwrap(), ids(&c["spiece"]), "{text:?}");
    }
}

#[test]
fn parses_the_real_model() {
    let m = SpModel::parse(&spm()).unwrap();
    assert_eq!(m.pieces.len(), 32000);
    assert_eq!(m.pieces[0].piece, "<pad>");
    assert_eq!(m.pieces[2].piece, "<unk>");
    assert_eq!(m.pieces[3].piece, "▁");
    assert_eq!(m.trainer_spec.model_type, 1);
    assert_eq!(m.trainer_spec.vocab_size, 32000);
    assert_eq!((m.trainer_spec.unk_id, m.trainer_spec.bos_id, m.trainer_spec.eos_id, m.trainer_spec.pad_id), (2, -1, 1, 0));
    assert!(!m.trainer_spec.byte_fallback);
    assert_eq!(m.normalizer_spec.name, "nmt_nfkc");
    assert!(m.normalizer_spec.add_dummy_prefix && m.normalizer_spec.remove_extra_whitespaces && m.normalizer_spec.escape_whitespaces);
    assert_eq!(m.normalizer_spec.precompiled_charsmap.len(), 237539);
}

fn is_tokenizer_err<T>(r: &t5_core::Result<T>) -> bool {
    matches!(r, Err(T5Error::Tokenizer(_)))
}

#[test]
fn truncated_model_is_a_tokenizer_error() {
    let b = spm();
    let n = b.len();
    let mut cuts: Vec<usize> = (0..64).collect();
    cuts.extend((64..n).step_by(4999));
    // around the trainer_spec (553304..) and normalizer_spec (554097..) and the end
    cuts.extend([553296, 553300, 553301, 553302, 553303, 553304, 554093, 554094, 554095, 554096, 554097, 554100, n - 2, n - 1]);
    for cut in cuts {
        let r = Tokenizer::from_spiece(&b[..cut], None);
        assert!(is_tokenizer_err(&r), "cut at {cut} of {n}: {:?}", r.err());
    }
}

fn append_field(model: &[u8], field: u8, body: &[u8]) -> Vec<u8> {
    let mut m = model.to_vec();
    m.push(field << 3 | 2);
    assert!(body.len() < 128);
    m.push(body.len() as u8);
    m.extend_from_slice(body);
    m
}

#[test]
fn corrupt_model_is_a_tokenizer_error() {
    let b = spm();
    // protobuf merges a repeated message field: appended specs override single fields
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("text", b"this is not a sentencepiece model".to_vec()),
        ("tokenizer.json", shared("t5-small", "tokenizer.json")),
        ("model_type BPE", append_field(&b, 2, &[3 << 3, 2])),
        // key of field 40, varint: [0xc0, 0x02]
        ("unk_id past the vocab", append_field(&b, 2, &[0xc0, 0x02, 0xc0, 0xc4, 0x07])),
        ("unk_id -1", append_field(&b, 2, &[0xc0, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])),
        ("garbage charsmap", append_field(&b, 3, &[2 << 3 | 2, 8, 0xff, 0xff, 0, 0, 1, 2, 3, 4])),
        ("charsmap trie pointing out", append_field(&b, 3, &[2 << 3 | 2, 8, 4, 0, 0, 0, 0, 0, 0, 0x7f])),
        ("piece with a bad type", append_field(&b, 1, &[1 << 3 | 2, 1, b'x', 3 << 3, 9])),
        ("empty piece", append_field(&b, 1, &[2 << 3 | 5, 0, 0, 0, 0])),
        ("non-UTF-8 piece", append_field(&b, 1, &[1 << 3 | 2, 2, 0xc3, 0x28])),
        ("NaN score", append_field(&b, 1, &[1 << 3 | 2, 1, b'x', 2 << 3 | 5, 0, 0, 0xc0, 0x7f])),
        ("known field, wrong wire type", append_field(&b, 2, &[0xc5, 0x02, 0, 0, 0, 0])),
        ("group wire type", { let mut m = b.clone(); m.extend_from_slice(&[7 << 3 | 3, 0]); m }),
        ("length past the end", { let mut m = b.clone(); m.extend_from_slice(&[9 << 3 | 2, 0x80, 0x80, 0x04]); m }),
        ("overlong varint", { let mut m = b.clone(); m.extend_from_slice(&[9 << 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]); m }),
    ];
    for (what, m) in &bad {
        let r = Tokenizer::from_spiece(m, None);
        assert!(is_tokenizer_err(&r), "{what}: {:?}", r.err());
    }
    // a config that cannot be used
    for cfg in [&b"{"[..], br#"{"extra_ids": -1}"#, br#"{"extra_ids": "many"}"#, br#"{"extra_ids": 10000000000}"#, br#"{"added_tokens_decoder": {"x": {"content": "a"}}}"#] {
        assert!(is_tokenizer_err(&Tokenizer::from_spiece(&b, Some(cfg))), "{}", String::from_utf8_lossy(cfg));
    }
    // fields the reader does not know are skipped
    let mut m = b.clone();
    m.extend_from_slice(&[9 << 3, 5, 10 << 3 | 1, 0, 0, 0, 0, 0, 0, 0, 0, 11 << 3 | 5, 0, 0, 0, 0]);
    let m = append_field(&m, 2, &[0x9a, 0x06, 0x02, 0x01, 0x80, 0xa8, 0x01, 0x00]); // fields 99 (len) and 21 (varint)
    let tk = Tokenizer::from_spiece(&m, None).unwrap();
    assert_eq!(tk.encode("Hello world", true).unwrap(), vec![8774, 296, 1]);
}

/// Deterministic single-byte corruptions all over the file: an error or a working tokenizer, never a panic.
#[test]
fn corrupted_bytes_never_panic() {
    let b = spm();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let texts = ["Hello world", "café naïve ＡＢＣ ﬁ ½ 你好 😀 e\u{301}", "\u{200b}\u{feff}\t\n x"];
    let (mut ok, mut failed) = (0, 0);
    for i in 0..24 {
        let mut m = b.clone();
        // half in the pieces, half in the specs (the last 238 KB)
        let pos = if i % 2 == 0 { (next() % 553_000) as usize } else { 553_300 + (next() % (b.len() as u64 - 553_300)) as usize };
        m[pos] ^= 1 << (next() % 8);
        match Tokenizer::from_spiece(&m, None) {
            Ok(tk) => {
                ok += 1;
                for t in texts {
                    let ids = tk.encode(t, true).unwrap();
                    tk.decode(&ids, false).unwrap();
                }
            }
            Err(T5Error::Tokenizer(_)) => failed += 1,
            Err(e) => panic!("corruption at {pos}: {e:?}"),
        }
    }
    assert_eq!(ok + failed, 24);
}

/// Corruptions of the charsmap's trie near its root, checked directly (cheap): whatever the check accepts,
/// `tokenizers`' Precompiled normalizer runs on without panicking.
#[test]
fn corrupted_charsmap_is_rejected_or_safe() {
    use tokenizers::normalizers::precompiled::Precompiled;
    let m = SpModel::parse(&spm()).unwrap();
    let cm = &m.normalizer_spec.precompiled_charsmap;
    check_precompiled_charsmap(cm).unwrap();
    let mut x: u64 = 0x2545f4914f6cdd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // every char of these goes through the trie
    let text = "ＡＢＣ ﬁ ½ ™ ① ｶﾀｶﾅ é e\u{301} 你好 😀 \u{3000}\u{a0}\u{200b}\t\n abc XYZ 123 !?";
    let (mut rejected, mut accepted) = (0, 0);
    for _ in 0..40 {
        let mut c = cm.clone();
        // units 0..2048 of the trie (bytes 4..8196): the root and the first levels
        let pos = 4 + (next() % 8192) as usize;
        c[pos] ^= 1 << (next() % 8);
        if check_precompiled_charsmap(&c).is_err() {
            rejected += 1;
            continue;
        }
        accepted += 1;
        let p = Precompiled::from(&c).unwrap();
        let _ = p.normalize_string(text);
    }
    assert_eq!(rejected + accepted, 40);
}

#[test]
fn left_padding() {
    let o = &oracle()["left_padding"];
    let texts: Vec<String> = o["texts"].as_array().unwrap().iter().map(|t| s(t).to_string()).collect();
    let opts = EncodeOptions { padding: true, truncation: false, max_length: None, add_special_tokens: true };
    for (name, mut tk) in [("spiece", from_spiece_dir()), ("fast", from_tokenizer_json())] {
        tk.set_pads_left(true);
        assert!(tk.pads_left());
        let enc = tk.encode_batch(&texts, &opts).unwrap();
        assert_eq!(enc.input_ids, rows(&o[name]["input_ids"]), "{name}");
        assert_eq!(enc.attention_mask, rows(&o[name]["attention_mask"]), "{name}");
    }
}

#[test]
fn special_tokens_masks() {
    let spiece = from_spiece_dir();
    for c in oracle()["special_tokens_mask"].as_array().unwrap() {
        let text = s(&c["text"]);
        let spans = spiece.encode_with_offsets(text, true).unwrap();
        assert_eq!(spans.ids, ids(&c["input_ids"]), "{text:?}");
        assert_eq!(spans.special_tokens_mask, ids(&c["call_special_tokens_mask"]), "{text:?}");
        assert_eq!(spiece.special_tokens_mask(&spans.ids), ids(&c["get_special_tokens_mask_already_has"]), "{text:?}");
    }
}

#[test]
fn char_offsets() {
    for (name, tk) in [("spiece", from_spiece_dir()), ("fast", from_tokenizer_json())] {
        for c in oracle()["offsets"].as_array().unwrap() {
            let text = s(&c["text"]);
            let spans = tk.encode_with_offsets(text, true).unwrap();
            let want: Vec<(usize, usize)> = c[name]["offsets"].as_array().unwrap().iter().map(|p| (p[0].as_u64().unwrap() as usize, p[1].as_u64().unwrap() as usize)).collect();
            assert_eq!(spans.ids, ids(&c[name]["input_ids"]), "{name} {text:?}");
            assert_eq!(spans.offsets, want, "{name} {text:?}");
        }
    }
}

/// transformers 5.24's T5Tokenizer ignores `legacy` (its pre-tokenizer is always Metaspace "always").
#[test]
fn legacy_false_config() {
    let o = &oracle()["legacy_false"];
    assert_eq!(o["pre_tokenizer"]["pretokenizers"][1]["prepend_scheme"], "always");
    let mut cfg: Value = serde_json::from_slice(&shared("t5-spiece", "tokenizer_config.json")).unwrap();
    cfg["legacy"] = Value::Bool(false);
    let tk = Tokenizer::from_spiece(&spm(), Some(serde_json::to_string(&cfg).unwrap().as_bytes())).unwrap();
    for c in o["cases"].as_array().unwrap() {
        assert_eq!(tk.encode(s(&c["text"]), true).unwrap(), ids(&c["ids"]), "{:?}", c["text"]);
    }
}

/// No tokenizer_config.json (T5Tokenizer defaults) and `extra_ids: 5`.
#[test]
fn config_variants() {
    for v in oracle()["variants"].as_array().unwrap() {
        let name = s(&v["name"]);
        let cfg = if v["tokenizer_config"].is_null() { None } else { Some(serde_json::to_vec(&v["tokenizer_config"]).unwrap()) };
        let tk = Tokenizer::from_spiece(&spm(), cfg.as_deref()).unwrap();
        assert_eq!(tk.vocab_size() as u64, v["vocab_size"].as_u64().unwrap(), "{name}");
        let want: Vec<(String, u32)> = v["sentinels"].as_array().unwrap().iter().map(|p| (s(&p[0]).to_string(), p[1].as_u64().unwrap() as u32)).collect();
        assert_eq!(by_id(tk.sentinels()), want, "{name}");
        for c in v["cases"].as_array().unwrap() {
            let text = s(&c["text"]);
            let got = tk.encode(text, true).unwrap();
            assert_eq!(got, ids(&c["ids"]), "{name} {text:?}");
            assert_eq!(tk.decode(&got, false).unwrap(), s(&c["decode"]), "{name} {text:?}");
            assert_eq!(tk.decode(&got, true).unwrap(), s(&c["decode_skip"]), "{name} {text:?}");
        }
    }
}
