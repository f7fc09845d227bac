//! The small tokenizer seeds (`corpus/spiece/tiny-rule*.model`, `corpus/tokenizer_json/tiny-rule*.json`, made by
//! scripts/make_fuzz_tokenizer_seeds.py) are valid T5 tokenizers and their ~1 KB charsmaps normalise: each rule of
//! the seed applies through t5-core's public loaders (tokenizers' Precompiled normalizer), and the seed without a
//! charsmap does not apply it. The fuzz targets only get their speed from these seeds if they load.

use t5_core::tokenizer::Tokenizer;
use t5_fuzz::corpus_dir;

fn load(name: &str) -> (Tokenizer, Tokenizer) {
    let spiece = std::fs::read(corpus_dir("spiece").join(format!("{name}.model"))).unwrap();
    let json = std::fs::read(corpus_dir("tokenizer_json").join(format!("{name}.json"))).unwrap();
    assert!(spiece.len() < 4096 && json.len() < 4096, "{name}: a seed stays small");
    (Tokenizer::from_spiece(&spiece, None).unwrap(), Tokenizer::from_bytes(&json, None).unwrap())
}

fn ids(tk: &Tokenizer, text: &str) -> Vec<u32> {
    tk.encode(text, true).unwrap()
}

/// `a` and `b` encode to the same ids (the rule mapping `a` to `b` applied); `b` has no `<unk>` (its pieces are in
/// the vocabulary, so a rule that did not apply shows).
fn same(tk: &Tokenizer, a: &str, b: &str) -> bool {
    let unk = tk.token_to_id("<unk>").unwrap();
    let (x, y) = (ids(tk, a), ids(tk, b));
    assert!(!y.contains(&unk), "{b:?} encodes to known pieces: {y:?}");
    x == y
}

#[test]
fn the_tiny_charsmap_applies_its_rules() {
    let (spiece, json) = load("tiny-rules");
    for tk in [&spiece, &json] {
        assert!(tk.vocab_size() >= 40);
        assert!(same(tk, "ＡＢＣ house", "ABC house"), "full-width letters are mapped");
        assert!(same(tk, "ﬁ", "fi"), "the ligature is decomposed");
        assert!(same(tk, "the\u{3000}house", "the house"), "ideographic space");
        assert!(same(tk, "wo\u{200b}rld", "world"), "zero-width space removed");
        assert!(same(tk, "wo\u{ad}rld", "world"), "soft hyphen removed");
        assert!(same(tk, "ａbc", "abc"), "full-width a");
        assert!(same(tk, "cafe\u{301}", "café"), "e + combining acute composed");
        assert!(!same(tk, "ＤＥ", "DE"), "no rule for D, E");
        let text = tk.decode(&ids(tk, "ＡＢＣ wo\u{200b}rld"), true).unwrap();
        assert_eq!(text, "ABC world");
    }
    // Both forms are the same tokenizer.
    for p in ["Hello ＡＢＣ world ﬁ", "wo\u{200b}rld\u{2028}house"] {
        assert_eq!(ids(&spiece, p), ids(&json, p), "{p:?}");
    }
}

#[test]
fn without_a_charsmap_nothing_is_mapped() {
    let (spiece, json) = load("tiny-rules-no-charsmap");
    for tk in [&spiece, &json] {
        assert!(!same(tk, "ＡＢＣ house", "ABC house"));
        assert!(!same(tk, "wo\u{200b}rld", "world"));
        assert!(same(tk, "Hello world", "Hello world"));
    }
}

#[test]
fn a_rule_to_the_empty_string_removes_the_character() {
    let (spiece, json) = load("tiny-rule-to-empty");
    for tk in [&spiece, &json] {
        assert!(same(tk, "wo\u{200b}rld", "world"));
        assert!(same(tk, "\u{200b}\u{200b}house", "house"));
        assert!(!same(tk, "ＡＢＣ house", "ABC house"), "only the one rule");
    }
}

#[test]
fn an_empty_charsmap_is_identity_in_spiece_and_an_error_in_tokenizer_json() {
    // SentencePiece treats an empty precompiled_charsmap as the identity normalizer; tokenizer.json's Precompiled
    // normalizer cannot parse one (tokenizers panics on it), so t5-core rejects it naming the field.
    let dir = |t: &str| corpus_dir(t);
    let spiece = Tokenizer::from_spiece(&std::fs::read(dir("spiece").join("tiny-rules-empty-charsmap.model")).unwrap(), None).unwrap();
    assert!(!same(&spiece, "ＡＢＣ house", "ABC house"));
    assert!(same(&spiece, "Hello world", "Hello world"));
    let json = std::fs::read(dir("tokenizer_json").join("tiny-rules-empty-charsmap.json")).unwrap();
    let e = Tokenizer::from_bytes(&json, None).err().expect("an empty charsmap is rejected");
    assert!(e.to_string().contains("precompiled_charsmap"), "{e}");
}
