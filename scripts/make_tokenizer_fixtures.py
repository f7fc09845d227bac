#!/usr/bin/env python3
"""Make the tokenizer oracle for loading a T5 tokenizer from `spiece.model` (no tokenizer.json).

Run by hand (packages pinned in scripts/requirements-fixtures.txt; no network):

    /tmp/pyenv/bin/python scripts/make_tokenizer_fixtures.py

Reads the real tokenizer files in ../shared/models (override with T5_SHARED_MODELS, the folder that holds t5-small/
and t5-spiece/) and writes test/fixtures/oracle/spiece/cases.json. Deterministic: rerunning writes identical bytes.

Each case is a string with the ids of three tokenizers, each with `add_special_tokens=True`:

  fast     AutoTokenizer.from_pretrained(t5-small): transformers on tokenizer.json.
  spiece   AutoTokenizer.from_pretrained(t5-spiece): transformers on a slow-tokenizer directory (spiece.model +
           tokenizer_config.json, no tokenizer.json); transformers 5 builds the backend from spiece.model.
  sp       sentencepiece.SentencePieceProcessor(model_file=spiece.model).encode(text) + [</s>]; raw SentencePiece
           knows no added tokens, so `sp_comparable` is false where an added token's text occurs in the string
           (raw or after the tokenizer's normalizer).

with decodes (skip_special_tokens False/True) of the fast ids by the fast tokenizer and of the spiece ids by the
spiece tokenizer. `disagreements` lists every case where the three differ. Also recorded: special-tokens masks,
a left-padded batch, char offsets (return_offsets_mapping), `legacy: false`, and configs without tokenizer_config
(defaults) or with a small `extra_ids`.
"""

import json
import os
import random
import shutil
import tempfile
import unicodedata
from importlib.metadata import version
from pathlib import Path

import sentencepiece as spm
import transformers
from transformers import AutoTokenizer, T5Tokenizer

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("T5_SHARED_MODELS", ROOT.parent / "shared" / "models"))
FAST_DIR = SHARED / "t5-small"
SPIECE_DIR = SHARED / "t5-spiece"
OUT = ROOT / "test" / "fixtures" / "oracle" / "spiece"

# ---------------------------------------------------------------------------------------------------------------
# strings

HAND = [
    "",
    " ",
    "   ",
    "\t",
    "\n",
    "\r\n",
    " \t\n ",
    "Hello world",
    "Hello  world",
    "Hello   world   ",
    "  leading spaces",
    "trailing spaces   ",
    "\tTabbed\tText\t",
    "line one\nline two\n\nline four",
    "carriage\rreturn",
    "translate English to German: The house is wonderful.",
    "summarize: studies have shown that owning a dog is good for you",
    "cola sentence: The course is jumping well.",
    "stsb sentence1: The rhino grazed on the grass. sentence2: A rhino is grazing in a field.",
    "question: What is the capital of France? context: Paris is the capital and largest city of France.",
    "The quick brown fox jumps over the lazy dog.",
    "THE QUICK BROWN FOX",
    "don't won't can't I'm you're we've it's",
    "Hello , world ! How are you ? Fine .",
    "a.b,c;d:e!f?g",
    "\"quoted\" 'single' `back` «guillemets» „low“ ‘curly’ “double”",
    "(parens) [brackets] {braces} <angles>",
    "1234567890",
    "3.14159 2,718 1e-10 -42 +7 0x1F 1/2 50% $100 €20 £5 ¥1000",
    "Phone: +1 (555) 123-4567, ZIP 90210",
    "2024-01-31T12:34:56Z",
    "https://huggingface.co/t5-small?x=1&y=2#frag",
    "user@example.com",
    "C:\\Windows\\System32",
    "#hashtag @mention ~tilde ^caret |pipe \\backslash",
    "___init___ --flag ==eq ++inc",
    "café naïve résumé coöperate",
    "Crème brûlée à la française",
    "Straße Fußgänger Ärger Öl Übel",
    "ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞß",
    "e\u0301 a\u0300 o\u0308 n\u0303",
    "cafe\u0301 vs caf\u00e9",
    "\u0041\u030a \u00c5 \u212b",
    "a\u0328\u0301 z\u0335\u0321\u0317",
    "ﬁ ﬂ ﬀ ﬃ ﬄ",
    "ＡＢＣ ａｂｃ １２３ ！？",
    "Ｈｅｌｌｏ　ｗｏｒｌｄ",
    "ｶﾀｶﾅ ﾊﾝｶｸ",
    "① ② ⑩ ⅷ Ⅻ ㈱ ㎏ ㎞",
    "x² y³ H₂O ½ ¼ ¾",
    "™ © ® ℃ ℉ № ℡",
    "…‥ — – ‐ ‒ ―",
    "你好，世界！",
    "我爱自然语言处理。",
    "日本語のテキストです。",
    "ひらがな カタカナ 漢字",
    "한국어 텍스트입니다",
    "Привет, мир!",
    "Γειά σου Κόσμε",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "Xin chào thế giới",
    "Zażółć gęślą jaźń",
    "Ελληνικά και English mixed 中文 text",
    "😀",
    "😀😃😄😁",
    "I ❤️ NLP 🤗",
    "👍🏽 👩‍💻 👨‍👩‍👧‍👦 🏳️‍🌈",
    "🇺🇸🇫🇷🇩🇪",
    "1️⃣ #️⃣ *️⃣",
    "emoji at end 🎉",
    "\u200b zero\u200bwidth \u200c\u200d \ufeff",
    "non\u00a0breaking\u00a0space",
    "ideographic\u3000space",
    "en\u2002em\u2003thin\u2009hair\u200a",
    "soft\u00adhyphen",
    "bell\u0007 escape\u001b del\u007f",
    "nul\u0000char",
    "line\u2028sep para\u2029sep",
    "▁ already ▁escaped▁",
    "▁▁▁",
    "<extra_id_0>",
    "<extra_id_0> <extra_id_1>",
    "The <extra_id_0> walks in <extra_id_1> park",
    "<extra_id_0>The<extra_id_1>park<extra_id_2>",
    "  <extra_id_0>  spaced  <extra_id_99>  ",
    "<extra_id_99> <extra_id_50> <extra_id_100> <extra_id_-1> <extra_id_ 0>",
    "</s>",
    "Hello</s>",
    "Hello </s> world </s>",
    "<pad>",
    "<pad><pad> text <pad>",
    "<unk>",
    "unknown <unk> token",
    "<s> not special </S> <PAD>",
    "<sql_context>",
    "select * from t <sql_context> where x",
    "＜sql_context＞ full-width brackets",
    "<sql_context><extra_id_0></s>",
    "<EXTRA_ID_0> <extra_id_0",
    "~ ` ^ | \\ { } [ ]",
    "a" * 50,
    "ab " * 40,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "Pneumonoultramicroscopicsilicovolcanoconiosis",
    " ".join(["word"] * 120),
    "The quick brown fox jumps over the lazy dog. " * 25,
    "漢字" * 60,
    "😀" * 30,
]


def generated(n, seed=20240607):
    rnd = random.Random(seed)
    pools = {
        "ascii": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "digits": "0123456789",
        "punct": "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
        "space": [" ", " ", " ", "  ", "\t", "\n", "   ", "\u00a0", "\u3000", "\r\n"],
        "latin1": "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿÀÉÎÕÜßðþ",
        "combining": ["e\u0301", "a\u0300", "o\u0308", "n\u0303", "c\u0327", "u\u0308\u0301", "i\u0307"],
        "cjk": "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心",
        "kana": "あいうえおかきくけこアイウエオカキクケコンー",
        "hangul": "가나다라마바사아자차카타파하한국어",
        "cyrillic": "абвгдежзийклмнопрстуфхцчшщъыьэюяЖЗИЙ",
        "greek": "αβγδεζηθικλμνξοπρστυφχψωΔΣΩ",
        "arabic": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
        "devanagari": "अआइईउऊएऐओऔकखगघचछजझटठडढणतथदधनपफबभमयरलवशसह्ािीुूेैोौं",
        "thai": "กขคงจฉชซญดตถทนบปผพฟภมยรลวสหอฮะาิีึืุู",
        "fullwidth": "ＡＢＣＤＥＦａｂｃｄｅｆ０１２３４５！？（）［］",
        "emoji": ["😀", "🤗", "👍", "👍🏽", "❤️", "🎉", "🇯🇵", "👩‍💻", "🔥", "✨", "☃", "♥", "✔"],
        "symbols": "™©®°±×÷€£¥§¶•…‰′″←→↑↓∀∂∈∑√∞≈≠≤≥",
        "special": ["<extra_id_0>", "<extra_id_1>", "<extra_id_7>", "<extra_id_42>", "<extra_id_99>", "</s>",
                    "<pad>", "<unk>", "<sql_context>"],
        "words": ["the", "of", "and", "translate", "English", "German", "summarize", "question", "context",
                  "house", "wonderful", "Hello", "world", "tokenizer", "running", "ran", "unbelievable",
                  "New", "York", "I'm", "can't", "U.S.A.", "e.g.", "etc."],
        "odd": ["\u200b", "\u200d", "\ufeff", "\u00ad", "\u0007", "\u001b", "\u007f", "\u2028", "▁", "\ufffd"],
    }
    weights = {"ascii": 8, "digits": 3, "punct": 3, "space": 6, "latin1": 2, "combining": 1, "cjk": 2, "kana": 1,
               "hangul": 1, "cyrillic": 1, "greek": 1, "arabic": 1, "devanagari": 1, "thai": 1, "fullwidth": 1,
               "emoji": 2, "symbols": 1, "special": 1, "words": 8, "odd": 1}
    names = sorted(weights)
    out = []
    for i in range(n):
        # a few themes: mostly one script with spaces, or a free mix
        k = rnd.choice([3, 5, 8, 12, 20, 40]) if i % 10 else rnd.choice([80, 200])
        if i % 3 == 0:
            theme = rnd.choice(names)
            local = {nm: (weights[nm] if nm in ("space", "punct", "digits") else 0) for nm in names}
            local[theme] = 20
        else:
            local = weights
        parts = []
        for _ in range(k):
            nm = rnd.choices(names, weights=[local[x] for x in names])[0]
            pool = pools[nm]
            if nm == "words":
                parts.append((" " if parts else "") + rnd.choice(pool))
            elif nm == "ascii":
                parts.append("".join(rnd.choice(pool) for _ in range(rnd.randint(1, 8))))
            else:
                parts.append(rnd.choice(pool))
        s = "".join(parts)
        if i % 7 == 0:
            s = " " * rnd.randint(1, 3) + s
        if i % 11 == 0:
            s = s + rnd.choice([" ", "  ", "\n", "\t", " \n"])
        out.append(s)
    return out


def all_strings():
    seen, out = set(), []
    for s in HAND + generated(320):
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


# ---------------------------------------------------------------------------------------------------------------


def added_contents(tok):
    return sorted(str(t) for t in tok.added_tokens_decoder.values())


def sp_comparable(text, added, normalizer):
    norm = normalizer.normalize_str(text) if normalizer is not None else text
    return not any(a in text or a in norm for a in added)


def write_json(path, obj):
    """Top-level keys one per line, lists of objects one object per line (reviewable diffs, compact)."""
    def one(v):
        return json.dumps(v, ensure_ascii=False)

    lines = []
    for k, v in obj.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            body = ",\n".join("  " + one(x) for x in v)
            lines.append(f" {one(k)}: [\n{body}\n ]")
        else:
            lines.append(f" {one(k)}: {one(v)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")


def tmp_spiece_dir(config):
    """A slow-tokenizer directory with the shared spiece.model and the given tokenizer_config (None: no config)."""
    d = Path(tempfile.mkdtemp(prefix="t5-spiece-"))
    shutil.copy(SPIECE_DIR / "spiece.model", d / "spiece.model")
    if config is not None:
        (d / "tokenizer_config.json").write_text(json.dumps(config))
    return d


def main():
    fast = AutoTokenizer.from_pretrained(str(FAST_DIR))
    slow = AutoTokenizer.from_pretrained(str(SPIECE_DIR))
    sp = spm.SentencePieceProcessor(model_file=str(SPIECE_DIR / "spiece.model"))
    eos = fast.eos_token_id
    assert eos == slow.eos_token_id == 1

    added = sorted(set(added_contents(fast)) | set(added_contents(slow)))
    normalizer = slow.backend_tokenizer.normalizer

    cases, disagreements = [], []
    for text in all_strings():
        a = fast(text).input_ids
        b = slow(text).input_ids
        c = sp.encode(text) + [eos]
        comparable = sp_comparable(text, added, normalizer)
        case = {
            "text": text,
            "fast": a,
            "fast_decode": fast.decode(a),
            "fast_decode_skip": fast.decode(a, skip_special_tokens=True),
            "spiece": b,
            "spiece_decode": slow.decode(b),
            "spiece_decode_skip": slow.decode(b, skip_special_tokens=True),
            "sp": c,
            "sp_comparable": comparable,
        }
        cases.append(case)
        kinds = []
        if a != b:
            kinds.append("fast!=spiece")
        if comparable and c != a:
            kinds.append("sp!=fast")
        if comparable and c != b:
            kinds.append("sp!=spiece")
        if kinds:
            disagreements.append({"index": len(cases) - 1, "text": text, "kinds": kinds,
                                  "fast_tokens": fast.convert_ids_to_tokens(a),
                                  "spiece_tokens": slow.convert_ids_to_tokens(b),
                                  "sp_tokens": [sp.id_to_piece(i) for i in c[:-1]] + ["</s>"]})

    # the notes written below hold (rerun under other versions: these fail if the picture changed)
    for d in disagreements:
        if "fast!=spiece" in d["kinds"]:
            assert "<sql_context>" in unicodedata.normalize("NFKC", d["text"]), d["text"]
        if "sp!=fast" in d["kinds"] or "sp!=spiece" in d["kinds"]:
            assert "u\u0308\u0301" in d["text"], d["text"]

    # special-tokens masks: the ids-based API and the one from __call__
    mask_texts = ["Hello world", "The <extra_id_0> walks in <extra_id_1> park</s>", "<pad> a <unk> b <sql_context>", ""]
    masks = []
    for t in mask_texts:
        enc = slow(t, return_special_tokens_mask=True)
        plain = slow(t, add_special_tokens=False).input_ids
        masks.append({
            "text": t,
            "input_ids": enc.input_ids,
            "call_special_tokens_mask": enc.special_tokens_mask,
            "get_special_tokens_mask_already_has": slow.get_special_tokens_mask(enc.input_ids,
                                                                               already_has_special_tokens=True),
            # get_special_tokens_mask(ids) without already_has_special_tokens raises NotImplementedError for
            # T5Tokenizer in transformers 5.24
            "ids_without_special": plain,
            "fast_call_special_tokens_mask": fast(t, return_special_tokens_mask=True).special_tokens_mask,
        })

    # left padding
    batch_texts = ["Hello world", "translate English to German: The house is wonderful.", "", "<extra_id_0> x",
                   "你好，世界！ 😀"]
    left = {}
    for name, d in [("fast", FAST_DIR), ("spiece", SPIECE_DIR)]:
        tk = AutoTokenizer.from_pretrained(str(d), padding_side="left")
        enc = tk(batch_texts, padding=True)
        left[name] = {"input_ids": enc.input_ids, "attention_mask": enc.attention_mask}
    assert left["fast"] == left["spiece"]

    # offsets (python str indices, i.e. Unicode code points)
    offset_texts = ["Hello world", "  Hello   world  ", "café naïve", "The <extra_id_0> walks", "你好，世界！",
                    "I ❤️ NLP 🤗", "ﬁ ＡＢＣ ½", "e\u0301 x", "New York-based co.", "<sql_context> x", ""]
    offsets = []
    for t in offset_texts:
        row = {"text": t}
        for name, tk in [("fast", fast), ("spiece", slow)]:
            enc = tk(t, return_offsets_mapping=True)
            row[name] = {"input_ids": enc.input_ids, "offsets": [list(o) for o in enc.offset_mapping]}
        offsets.append(row)

    # `legacy: false`: transformers 5.24's T5Tokenizer builds the same pre-tokenizer whatever `legacy` says
    cfg = json.loads((SPIECE_DIR / "tokenizer_config.json").read_text())
    legacy_texts = ["Hello world", "<extra_id_0> hello", "Hello <extra_id_0>world", "a</s>b", " leading",
                    "<extra_id_0>  <extra_id_1>  x", "▁ already ▁escaped▁"]
    d = tmp_spiece_dir({**cfg, "legacy": False})
    nonlegacy = AutoTokenizer.from_pretrained(str(d))
    nl_pre = json.loads(nonlegacy.backend_tokenizer.to_str())["pre_tokenizer"]
    legacy_false = {
        "config": "t5-spiece/tokenizer_config.json with legacy: false",
        "pre_tokenizer": nl_pre,
        "cases": [{"text": t, "ids": nonlegacy(t).input_ids, "legacy_true_ids": slow(t).input_ids}
                  for t in legacy_texts],
    }
    shutil.rmtree(d)

    # no tokenizer_config.json (T5Tokenizer defaults) and a small extra_ids
    variants = []
    for name, conf in [("no_config", None), ("extra_ids_5", {"extra_ids": 5, "tokenizer_class": "T5Tokenizer"})]:
        d = tmp_spiece_dir(conf)
        tk = T5Tokenizer.from_pretrained(str(d))
        texts = ["Hello world", "<extra_id_0> x <extra_id_4> y <extra_id_7> </s> <pad> <unk>", "café 😀"]
        sentinels = sorted((str(t) for t in tk.added_tokens_decoder.values() if str(t).startswith("<extra_id_")),
                           key=lambda t: tk.convert_tokens_to_ids(t))
        variants.append({
            "name": name,
            "tokenizer_config": conf,
            "vocab_size": len(tk),
            "sentinels": [[t, tk.convert_tokens_to_ids(t)] for t in sentinels],
            "cases": [{"text": t, "ids": tk(t).input_ids, "decode": tk.decode(tk(t).input_ids),
                       "decode_skip": tk.decode(tk(t).input_ids, skip_special_tokens=True)} for t in texts],
        })
        shutil.rmtree(d)

    slow_sentinels = sorted(((str(t), i) for i, t in slow.added_tokens_decoder.items()
                             if str(t).startswith("<extra_id_")), key=lambda x: x[1])
    counts = {k: sum(k in d["kinds"] for d in disagreements) for k in ["fast!=spiece", "sp!=fast", "sp!=spiece"]}
    write_json(OUT / "cases.json", {
        "source": "scripts/make_tokenizer_fixtures.py",
        "versions": {"transformers": transformers.__version__, "tokenizers": version("tokenizers"),
                     "sentencepiece": version("sentencepiece"), "protobuf": version("protobuf")},
        "fast_dir": "shared/models/t5-small",
        "spiece_dir": "shared/models/t5-spiece",
        "fast_class": type(fast).__name__,
        "spiece_class": type(slow).__name__,
        "fast_vocab_size": len(fast),
        "spiece_vocab_size": len(slow),
        "added_tokens": added,
        "spiece_added_tokens": {str(i): {"content": str(t), "special": t.special, "normalized": t.normalized}
                                for i, t in sorted(slow.added_tokens_decoder.items())
                                if not str(t).startswith("<extra_id_")},
        "sentinels": [list(x) for x in slow_sentinels],
        "num_cases": len(cases),
        "disagreement_counts": counts,
        "sp_comparable_count": sum(c["sp_comparable"] for c in cases),
        "notes": [
            "fast!=spiece: only strings with <sql_context>. t5-spiece/tokenizer_config.json lists it in "
            "added_tokens_decoder (id 32100, normalized, not special) and t5-small's does not; transformers adds "
            "it on load, so the full-width ＜sql_context＞ also matches it after the normalizer (NFKC).",
            "sp!=fast / sp!=spiece: only strings with the decomposed u+U+0308+U+0301. tokenizers' Precompiled "
            "normalizer looks up whole graphemes of < 6 bytes and takes the first (shortest) trie match, so it maps "
            "the grapheme to 'ü' (id 1272) and drops the acute; SentencePiece composes it to 'ǘ' (U+01D8), not in "
            "the vocabulary, so <unk> (id 2). transformers (both directories) and our Rust (same tokenizers crate) "
            "give 1272.",
            "transformers 5.24's T5Tokenizer ignores legacy and add_prefix_space: WhitespaceSplit + "
            "Metaspace(prepend_scheme always, split) whatever they say (see legacy_false).",
            "get_special_tokens_mask(ids) without already_has_special_tokens raises NotImplementedError for "
            "T5Tokenizer in transformers 5.24; return_special_tokens_mask marks only the </s> the post-processor "
            "appends.",
        ],
        "disagreements": disagreements,
        "cases": cases,
        "special_tokens_mask": masks,
        "left_padding": {"texts": batch_texts, "padding_side": "left", **left},
        "offsets": offsets,
        "legacy_false": legacy_false,
        "variants": variants,
    })
    print(f"{len(cases)} cases; disagreements: {counts}; sp comparable: {sum(c['sp_comparable'] for c in cases)}")


if __name__ == "__main__":
    main()
