#!/usr/bin/env python3
"""Make the oracle for T5Tokenizer built in memory from a vocabulary (transformers 5.24's `T5Tokenizer(vocab=...)`).

Run by hand (no torch needed, no network once installed):

    python3 -m venv /tmp/tokenv && /tmp/tokenv/bin/pip install 'transformers==5.24.*' tokenizers sentencepiece
    /tmp/tokenv/bin/python scripts/make_vocab_tokenizer_fixtures.py

Writes test/fixtures/oracle/vocab-tokenizer/cases.json. Deterministic: rerunning writes identical bytes.

For each constructor setting (a vocabulary as a list of `[piece, score]`, `extra_ids`, `eos_token`, `unk_token`,
`pad_token`, `additional_special_tokens`) and each test string it records:

  hf_ids        transformers' ids (`tokenizer(text)["input_ids"]`, `</s>` appended);
  ids           the ids t5-web must give: `hf_ids` with the sentinel ids renumbered to the pretrained checkpoints'
                convention (see below); every other id is transformers' own;
  tokens        `convert_ids_to_tokens(hf_ids)` (the same strings under both numberings);
  decoded / decoded_skip   `decode(hf_ids, skip_special_tokens=False / True)`.

Per setting: `vocab_size` (`len(tokenizer)`), `sentinel_tokens` / `sentinel_token_ids` (in t5-web's numbering),
`hf_sentinel_token_ids`, `special_ids` (`all_special_ids`, t5-web numbering), and `special_tokens_mask` of the
first string's ids (`get_special_tokens_mask(ids, already_has_special_tokens=True)`).

Sentinel numbering. transformers 5.24 adds the `<extra_id_N>` tokens that are not in the vocabulary as added tokens
in ascending order (`<extra_id_0>` = the first id after the vocabulary and the other added tokens), while every
pretrained T5 checkpoint (and transformers' own `T5Tokenizer()` without a vocab) numbers them descending
(`<extra_id_0>` = the last id, 32099 in t5-small). Pretrained weights expect the descending order, so t5-web follows
it: within the block of added sentinels the ids are mirrored (`<extra_id_N>` gets the id transformers gives to
`<extra_id_{M-1-N}>`, M the number of added sentinels). transformers 5.24's `get_sentinel_tokens` raises
AttributeError, so the sentinels are computed here from the vocabulary.
"""

import json
import re
from importlib.metadata import version
from pathlib import Path

import transformers
from transformers import T5Tokenizer

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "test" / "fixtures" / "oracle" / "vocab-tokenizer" / "cases.json"

# A small Unigram vocabulary: T5's three special pieces first, then words, sub-words and characters.
WORDS = [
    ("▁", -2.0), ("▁the", -3.0), ("▁hello", -4.0), ("▁world", -4.5), ("▁translate", -6.0), ("▁English", -6.5),
    ("▁to", -3.5), ("▁German", -7.0), ("▁Das", -7.5), ("▁Haus", -8.0), ("▁ist", -7.0), ("▁wunderbar", -9.0),
    ("▁house", -6.0), ("▁is", -3.6), ("▁wonderful", -8.5), ("▁summarize", -8.0), (":", -4.0), (".", -3.2),
    (",", -3.3), ("!", -5.0), ("?", -5.1), ("'", -5.5), ("s", -4.2), ("▁don", -7.0), ("t", -4.3), ("ing", -5.0),
    ("▁sun", -6.3), ("▁run", -6.4), ("n", -4.6), ("ed", -5.2), ("er", -5.0), ("▁a", -3.9), ("a", -4.4), ("e", -4.1),
    ("o", -4.5), ("i", -4.7), ("h", -5.3), ("l", -4.9), ("r", -4.8), ("d", -5.4), ("w", -5.6), ("u", -5.7),
    ("m", -5.8), ("c", -5.9), ("1", -6.0), ("2", -6.1), ("3", -6.2), ("▁1", -6.6), ("0", -6.7), ("é", -7.2),
    ("ü", -7.3), ("▁über", -8.1), ("x", -7.8), ("z", -7.9), ("▁ab", -7.0), ("b", -6.8), ("ab", -6.9),
]
BASE = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + WORDS

SETTINGS = {
    # the seed's default: extra_ids=100, T5's special pieces in the vocabulary
    "default": {"vocab": BASE},
    # a few sentinels and one more special token
    "extra3_sep": {"vocab": BASE, "extra_ids": 3, "additional_special_tokens": ["<sep>"]},
    # special tokens not in the vocabulary: they are added after it (and the Unigram unk stays id 2, as transformers)
    "no_special_pieces": {"vocab": WORDS, "extra_ids": 2},
    # renamed eos / pad, no sentinels
    "renamed_no_sentinels": {"vocab": BASE, "extra_ids": 0, "eos_token": "<eos>", "pad_token": "<p>"},
    # sentinels given explicitly (as many as extra_ids)
    "explicit_sentinels": {"vocab": BASE, "extra_ids": 2, "additional_special_tokens": ["<extra_id_0>", "<extra_id_1>"]},
}

TEXTS = [
    "hello world",
    "translate English to German: The house is wonderful.",
    "Das Haus ist wunderbar!",
    "summarize: the sun is running, the world isn't.",
    "  hello   world  ",
    "",
    " ",
    "héllo über 123 xyz",
    "hello <extra_id_0> world <extra_id_1>",
    "<extra_id_2>the<extra_id_0>",
    "hello</s> world<pad><unk>",
    "a <sep> b <eos> c <p>",
    "Hello World, HELLO WORLD?",
    "tab\there\nnewline",
    "ab abab ba",
    "don't stop",
    "日本語 emoji 😀 hello",
]

SENTINEL = re.compile(r"^<extra_id_(\d+)>$")


def build(setting):
    kw = dict(setting)
    vocab = [tuple(p) for p in kw.pop("vocab")]
    if "additional_special_tokens" in kw:
        kw["additional_special_tokens"] = list(kw["additional_special_tokens"])
    return T5Tokenizer(vocab=vocab, **kw)


def case(name, setting):
    tok = build(setting)
    vocab_pieces = {p for p, _ in setting["vocab"]}
    added = tok.get_added_vocab()  # content -> id
    sentinels = sorted(((int(m.group(1)), t) for t in added if (m := SENTINEL.match(t))), key=lambda x: x[0])
    hf_ids_of = {t: added[t] for _, t in sentinels}
    # the added sentinels (not vocabulary pieces) are renumbered descending within their block
    fresh = [t for _, t in sentinels if t not in vocab_pieces]
    block = sorted(hf_ids_of[t] for t in fresh)
    assert block == list(range(block[0], block[0] + len(block))) if block else True, "added sentinels not contiguous"
    remap = {hf_ids_of[t]: block[len(block) - 1 - k] for k, t in enumerate(fresh)}
    assert sorted(remap) == block

    def ours(ids):
        return [remap.get(i, i) for i in ids]

    rows = []
    for text in TEXTS:
        hf_ids = tok(text)["input_ids"]
        rows.append(
            {
                "text": text,
                "hf_ids": hf_ids,
                "ids": ours(hf_ids),
                "tokens": tok.convert_ids_to_tokens(hf_ids),
                "decoded": tok.decode(hf_ids, skip_special_tokens=False),
                "decoded_skip": tok.decode(hf_ids, skip_special_tokens=True),
            }
        )
    first = rows[0]["hf_ids"]
    return {
        "name": name,
        "init": {k: v for k, v in setting.items()},
        "vocab_size": len(tok),
        "pad_token_id": remap.get(tok.pad_token_id, tok.pad_token_id),
        "eos_token_id": remap.get(tok.eos_token_id, tok.eos_token_id),
        "unk_token_id": remap.get(tok.unk_token_id, tok.unk_token_id),
        "sentinel_tokens": [t for _, t in sentinels],
        "sentinel_token_ids": ours([hf_ids_of[t] for _, t in sentinels]),
        "hf_sentinel_token_ids": [hf_ids_of[t] for _, t in sentinels],
        "special_ids": sorted(ours(tok.all_special_ids)),
        "special_tokens_mask": {"ids": ours(first), "mask": tok.get_special_tokens_mask(first, already_has_special_tokens=True)},
        "rows": rows,
    }


def main():
    out = {
        "transformers": version("transformers"),
        "tokenizers": version("tokenizers"),
        "note": "ids: transformers' ids with the added sentinels numbered descending (checkpoint convention); hf_ids: transformers' own",
        "cases": [case(n, s) for n, s in SETTINGS.items()],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes) with transformers {transformers.__version__}")


if __name__ == "__main__":
    main()
