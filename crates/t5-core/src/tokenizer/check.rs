//! `tokenizer.json` checked before the `tokenizers` crate sees it. That crate's normalizer loader
//! `expect`s a valid `Precompiled` normalizer (a missing, null or undecodable `precompiled_charsmap`
//! panics at load), `spm_precompiled` reserves the trie size its 4-byte header claims (a 4-byte
//! value reserves up to 4 GiB), and its lookup indexes the trie unchecked (a corrupt trie panics on
//! the first text that reaches the bad unit). Every `Precompiled` normalizer (also inside a
//! `Sequence`) is decoded here and walked by [`crate::formats::spiece::check_precompiled_charsmap`].
//!
//! `TemplateProcessing` post-processors are loaded without the checks its builder makes, and its
//! encode indexes them unchecked: a template naming a special token missing from `special_tokens`,
//! a `single` template using `$B`, or a special token whose `ids` and `tokens` differ in length
//! panics (or builds an inconsistent encoding) on the first encode. Every template object of the
//! `post_processor` subtree (also inside a `Sequence`, also untagged) is checked here.

use crate::error::{Result, T5Error};
use serde_json::Value;

fn err(path: &str, msg: impl std::fmt::Display) -> T5Error {
    T5Error::Tokenizer(format!("tokenizer.json: {path}: {msg}"))
}

/// Parse `tokenizer.json` and check every part that `tokenizers` would panic on.
pub(super) fn check_tokenizer_json(bytes: &[u8]) -> Result<()> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| T5Error::Tokenizer(format!("tokenizer.json: not valid JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| T5Error::Tokenizer("tokenizer.json: expected a JSON object".into()))?;
    if let Some(n) = obj.get("normalizer") {
        check_normalizer(n, "normalizer", 0)?;
    }
    if let Some(p) = obj.get("post_processor") {
        check_post_processor(p, "post_processor", 0)?;
    }
    Ok(())
}

fn check_post_processor(p: &Value, path: &str, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(err(path, format!("post-processors nested more than {MAX_DEPTH} deep")));
    }
    match p {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_post_processor(item, &format!("{path}[{i}]"), depth + 1)?;
            }
            Ok(())
        }
        Value::Object(o) => {
            if o.get("type").and_then(Value::as_str) == Some("TemplateProcessing") || o.contains_key("single") || o.contains_key("special_tokens") {
                check_template(o, path)?;
            }
            for (k, v) in o {
                if v.is_object() || v.is_array() {
                    check_post_processor(v, &format!("{path}.{k}"), depth + 1)?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// What `TemplateProcessingBuilder::validate` and `SpecialToken::new` check, and `single` without `$B`.
fn check_template(o: &serde_json::Map<String, Value>, path: &str) -> Result<()> {
    let specials = o.get("special_tokens").and_then(Value::as_object);
    if let Some(map) = specials {
        for (key, tok) in map {
            let len = |k: &str| tok.get(k).and_then(Value::as_array).map(Vec::len);
            if let (Some(ids), Some(tokens)) = (len("ids"), len("tokens")) {
                if ids != tokens {
                    return Err(err(&format!("{path}.special_tokens[{key:?}]"), format!("{ids} ids but {tokens} tokens")));
                }
            }
        }
    }
    for which in ["single", "pair"] {
        let Some(Value::Array(pieces)) = o.get(which) else { continue };
        let (mut has_a, mut has_b) = (false, false);
        for (i, piece) in pieces.iter().enumerate() {
            let here = format!("{path}.{which}[{i}]");
            if let Some(seq) = piece.get("Sequence") {
                match seq.get("id").and_then(Value::as_str) {
                    Some("A") => has_a = true,
                    Some("B") => has_b = true,
                    _ => {}
                }
            }
            if let Some(id) = piece.get("SpecialToken").and_then(|t| t.get("id")).and_then(Value::as_str) {
                if !specials.is_some_and(|m| m.contains_key(id)) {
                    return Err(err(&here, format!("special token {id:?} is not in {path}.special_tokens")));
                }
            }
        }
        if which == "single" && has_b {
            return Err(err(&format!("{path}.single"), "uses the second sequence ($B): a single text has one"));
        }
        if which == "pair" && !(has_a && has_b) {
            return Err(err(&format!("{path}.pair"), "must use both sequences ($A and $B)"));
        }
    }
    Ok(())
}

/// Sequences nest; a file nesting them deeper than this is refused (serde_json stops at 128 anyway).
const MAX_DEPTH: usize = 32;

fn check_normalizer(n: &Value, path: &str, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(err(path, format!("normalizers nested more than {MAX_DEPTH} deep")));
    }
    // every object of the subtree: `tokenizers` also reads untagged (legacy) normalizers, e.g. a
    // Sequence whose "type" key is missing or misspelt still has its `normalizers` read
    match n {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_normalizer(item, &format!("{path}[{i}]"), depth + 1)?;
            }
            Ok(())
        }
        Value::Object(o) => {
            if o.get("type").and_then(Value::as_str) == Some("Precompiled") || o.contains_key("precompiled_charsmap") {
                check_precompiled(o, path)?;
            }
            for (k, v) in o {
                if v.is_object() || v.is_array() {
                    check_normalizer(v, &format!("{path}.{k}"), depth + 1)?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_precompiled(o: &serde_json::Map<String, Value>, path: &str) -> Result<()> {
    let field = format!("{path}.precompiled_charsmap");
    let text = match o.get("precompiled_charsmap") {
        Some(Value::String(s)) => s,
        Some(other) => return Err(err(&field, format!("expected a base64 string, got {}", crate::config::show_value(other)))),
        None => return Err(err(&field, "missing (a Precompiled normalizer needs its charsmap)")),
    };
    let bytes = decode_base64(text).ok_or_else(|| err(&field, "not valid base64"))?;
    if bytes.is_empty() {
        return Err(err(&field, "empty (a Precompiled normalizer needs its charsmap)"));
    }
    crate::formats::spiece::check_precompiled_charsmap(&bytes).map_err(|e| match e {
        T5Error::Tokenizer(m) => err(&field, m.trim_start_matches("spiece.model: ").trim_start_matches("precompiled_charsmap: ")),
        other => other,
    })
}

/// Standard base64 (`+/`), padding optional, no whitespace: what `base64::decode` of the
/// `spm_precompiled` crate accepts (where both decode, they give the same bytes).
pub(crate) fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    let body = s.strip_suffix(b"==").or_else(|| s.strip_suffix(b"=")).unwrap_or(s);
    if body.len() % 4 == 1 || (body.len() != s.len() && s.len() % 4 != 0) {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 2);
    for chunk in body.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | val(c)?;
        }
        // a last symbol whose unused low bits are set is refused, as the `base64` crate refuses it
        // ("Invalid last symbol"; the charsmap loader then panics)
        match chunk.len() {
            4 => out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]),
            3 if acc & 0b11 == 0 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
            2 if acc & 0b1111 == 0 => out.push((acc >> 4) as u8),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{check_tokenizer_json, decode_base64};

    fn with_template(single: &str, pair: &str, specials: &str) -> crate::error::Result<()> {
        let json = format!(
            r#"{{"post_processor": {{"type": "Sequence", "processors": [{{"type": "TemplateProcessing", "single": {single}, "pair": {pair}, "special_tokens": {specials}}}]}}}}"#
        );
        check_tokenizer_json(json.as_bytes())
    }

    #[test]
    fn templates_are_checked_as_their_builder_would() {
        let a = r#"{"Sequence": {"id": "A", "type_id": 0}}"#;
        let b = r#"{"Sequence": {"id": "B", "type_id": 0}}"#;
        let eos = r#"{"SpecialToken": {"id": "</s>", "type_id": 0}}"#;
        let specials = r#"{"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}"#;
        with_template(&format!("[{a}, {eos}]"), &format!("[{a}, {eos}, {b}, {eos}]"), specials).unwrap();
        let e = with_template(&format!("[{a}, {eos}]"), &format!("[{a}, {b}]"), "{}").unwrap_err();
        assert_eq!(e.code(), "Tokenizer");
        assert!(e.to_string().contains("post_processor.processors[0].single[1]: special token \"</s>\" is not in"), "{e}");
        let e = with_template(&format!("[{b}]"), &format!("[{a}, {b}]"), specials).unwrap_err();
        assert!(e.to_string().contains("single: uses the second sequence"), "{e}");
        let e = with_template(&format!("[{a}]"), &format!("[{a}, {eos}]"), specials).unwrap_err();
        assert!(e.to_string().contains("pair: must use both"), "{e}");
        let bad = r#"{"</s>": {"id": "</s>", "ids": [1, 2], "tokens": ["</s>"]}}"#;
        let e = with_template(&format!("[{a}, {eos}]"), &format!("[{a}, {b}]"), bad).unwrap_err();
        assert!(e.to_string().contains("2 ids but 1 tokens"), "{e}");
    }

    #[test]
    fn base64_round_trips() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8h").unwrap(), b"hello!");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert!(decode_base64("a").is_none());
        assert!(decode_base64("aGV sbG8").is_none());
        // unused bits of the last symbol set ("aGVsbG9" would be "hello" with 2 stray bits): refused, as `base64` does
        assert!(decode_base64("aGVsbG9").is_none());
        assert!(decode_base64("aGVsbG9=").is_none());
        assert!(decode_base64("aB").is_none());
        assert_eq!(decode_base64("aA").unwrap(), b"h");
    }
}
