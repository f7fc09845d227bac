#!/usr/bin/env python3
"""Make the small, valid tokenizer seeds of the `spiece` and `tokenizer_json` fuzz targets.

Run by hand (needs only `sentencepiece` and `protobuf`; no network):

    /tmp/pyenv/bin/python scripts/make_fuzz_tokenizer_seeds.py

The real T5 charsmap is 237 KB (every execution decoded and walked it: 178 exec/s for `spiece`). These seeds carry
a charsmap of about 1 KB compiled by the SentencePiece trainer itself from a handful of normalization rules
(`normalization_rule_tsv`, RULES below), over a unigram model of a few dozen pieces trained on a few T5-style lines
(each rule's output occurs in them, so it has pieces and a rule that did not apply would show), with T5's special ids (<pad> 0, </s> 1, <unk> 2). Writes into crates/t5-fuzz/corpus/:

  spiece/tiny-rules.model              the rules below (full-width A/B/C/a, the fi ligature, e + combining acute,
                                       ideographic space and line separator to a space, ZWSP and soft hyphen to "")
  spiece/tiny-rules-no-charsmap.model  the same pieces, no precompiled_charsmap field (identity normalizer)
  spiece/tiny-rules-empty-charsmap.model  the field present and empty
  spiece/tiny-rule-to-empty.model      a charsmap of one rule, ZWSP -> ""
  tokenizer_json/tiny-rules*.json, tiny-rule-to-empty.json: the same four as T5-shaped tokenizer.json files
                                       (Precompiled normalizer, WhitespaceSplit + Metaspace, Unigram, </s> template)

crates/t5-fuzz/tests/seeds.rs checks that they load through t5-core and that the rules apply.
"""

import base64
import json
import tempfile
from pathlib import Path

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "crates" / "t5-fuzz" / "corpus"

RULES = [
    ("FF21", "41", "FULLWIDTH A -> A"),
    ("FF22", "42", "FULLWIDTH B -> B"),
    ("FF23", "43", "FULLWIDTH C -> C"),
    ("FF41", "61", "FULLWIDTH a -> a"),
    ("FB01", "66 69", "LIGATURE FI -> fi"),
    ("65 301", "E9", "e + COMBINING ACUTE -> e-acute"),
    ("3000", "20", "IDEOGRAPHIC SPACE -> space"),
    ("2028", "20", "LINE SEPARATOR -> space"),
    ("200B", "", "ZERO WIDTH SPACE -> removed"),
    ("AD", "", "SOFT HYPHEN -> removed"),
]
TO_EMPTY = [("200B", "", "ZERO WIDTH SPACE -> removed")]

TEXT = """Hello world
The house is wonderful.
translate English to German: The house is wonderful.
Das Haus ist wunderbar.
summarize: a small text about houses and the world.
ABC abc: a fine cafe, a fine caf\u00e9.
"""


def train(rules, tmp: Path, name: str) -> pb.ModelProto:
    tsv = tmp / f"{name}.tsv"
    tsv.write_text("".join(f"{s}\t{t}\t# {c}\n" for s, t, c in rules))
    text = tmp / "text.txt"
    text.write_text(TEXT)
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(tmp / name), vocab_size=40, model_type="unigram",
        normalization_rule_tsv=str(tsv), pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False,
        character_coverage=1.0, num_threads=1, minloglevel=2)
    m = pb.ModelProto()
    m.ParseFromString((tmp / f"{name}.model").read_bytes())
    # The trainer records its file paths (a fresh temporary folder each run): make the bytes reproducible.
    del m.trainer_spec.input[:]
    m.trainer_spec.input.append("text.txt")
    m.trainer_spec.model_prefix = name
    m.normalizer_spec.normalization_rule_tsv = f"{name}.tsv"
    return m


def tokenizer_json(m: pb.ModelProto, charsmap: bytes | None) -> bytes:
    vocab = [[p.piece, p.score] for p in m.pieces]
    added = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for i, c in enumerate(["<pad>", "</s>", "<unk>"])]
    normalizer = None if charsmap is None else {
        "type": "Precompiled", "precompiled_charsmap": base64.b64encode(charsmap).decode()}
    metaspace = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}
    doc = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": normalizer,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, metaspace]},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}},
        "decoder": metaspace,
        "model": {"type": "Unigram", "unk_id": 2, "vocab": vocab, "byte_fallback": False},
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        rules = train(RULES, Path(tmp), "rules")
        to_empty = train(TO_EMPTY, Path(tmp), "to-empty")
    no_map = pb.ModelProto()
    no_map.CopyFrom(rules)
    no_map.normalizer_spec.ClearField("precompiled_charsmap")
    no_map.normalizer_spec.name = "identity"
    empty_map = pb.ModelProto()
    empty_map.CopyFrom(rules)
    empty_map.normalizer_spec.precompiled_charsmap = b""
    assert empty_map.normalizer_spec.HasField("precompiled_charsmap")
    out = {
        "tiny-rules": (rules, rules.normalizer_spec.precompiled_charsmap),
        "tiny-rules-no-charsmap": (no_map, None),
        "tiny-rules-empty-charsmap": (empty_map, b""),
        "tiny-rule-to-empty": (to_empty, to_empty.normalizer_spec.precompiled_charsmap),
    }
    for name, (m, charsmap) in out.items():
        (OUT / "spiece" / f"{name}.model").write_bytes(m.SerializeToString())
        (OUT / "tokenizer_json" / f"{name}.json").write_bytes(tokenizer_json(m, charsmap))
        print(name, len(m.pieces), "pieces, charsmap", None if charsmap is None else len(charsmap), "bytes")


if __name__ == "__main__":
    main()
