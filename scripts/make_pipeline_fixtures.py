#!/usr/bin/env python3
"""Oracle of the tokenizer call options and pipeline windowing (issue 5's last pieces): left padding as a tokenizer
property / load option / call option, word ids / sequence ids / offsets / overflowing windows with a stride,
pre-tokenized input (`is_split_into_words`), models on left-padded batches, transformers' token-classification
pipeline on pre-split words, and transformers' question-answering pipeline on contexts split into several windows.

Run by hand after scripts/make_fixtures.py and scripts/make_head_fixtures.py (no network):

    /tmp/pyenv/bin/pip install --target /tmp/tf4 --no-deps transformers==4.57.1 huggingface_hub==0.36.0 \\
        tokenizers==0.22.1 requests urllib3 idna charset_normalizer certifi   # transformers 4's QA pipeline
    /tmp/pyenv/bin/python scripts/make_pipeline_fixtures.py [--tf4 /tmp/tf4]

Everything but question answering comes from transformers 5.24 (scripts/requirements-fixtures.txt). transformers 5
has no question-answering pipeline, so that part re-runs this script under transformers 4.57.1 (a 4.x release;
its `pipeline("question-answering")`) with `--tf4` on PYTHONPATH, and records the real pipeline's output.

Written: test/fixtures/pipelines/oracle.json and oracle.safetensors (float32 tensors; fp64_diff[name] = max |fp64 -
fp32| of the same computation in float64, as make_fixtures.py). Tolerance rule for tests: |ours - oracle| <= 1e-4 + 4 *
fp64_diff elementwise; pipeline scores 1e-4 + 4 * the fp64 spread of the same score; ids, masks, offsets, words,
labels and generated ids exact.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "test" / "fixtures"
OUT = FIX / "pipelines"
HEADS = FIX / "heads"
TINY = FIX / "tiny-t5"
V11 = FIX / "tiny-t5-v1_1"

# the batch of scripts/make_fixtures.py (mixed lengths) and a one-word row
TEXTS = [
    "translate English to German: The house is wonderful.",
    "summarize: The old lighthouse on the northern cliff was restored last spring by a group of volunteers. "
    "They replaced the broken windows, painted the tower white and red again, and opened a small museum that "
    "tells the story of the keepers who lived there for more than a century.",
    "cola sentence: short",
]
MAX_NEW_TOKENS = 12

WORDS = [
    ["My", "name", "is", "Wolfgang", "and", "I", "live", "in", "Berlin."],
    ["Zoë", "met", "Ana", "in", "São", "Paulo", "😀", "yesterday,", "didn't", "she?"],
    ["short"],
]

CONTEXT = (
    "The old lighthouse on the northern cliff was built in 1871 by the harbour board of Kirkwall. For more than a "
    "century its keepers lived in the small white cottage beside the tower, climbing the spiral stairs every evening "
    "to light the great lamp. In 1936 the lamp was converted to electricity, and the last keeper, a man called "
    "Magnus Flett, left the island in the spring of 1962. After that the building stood empty for many years. Storms "
    "broke the windows, gulls nested in the lantern room, and the paint peeled from the walls. Last spring a group "
    "of volunteers from the village restored it: they replaced the broken windows, painted the tower white and red "
    "again, and opened a small museum that tells the story of the keepers. The museum is open every Saturday from "
    "May to September, and visitors can climb to the gallery to see the seals on the rocks below."
)
# long enough for several windows at the pipeline's defaults (max_seq_len 384, doc_stride 128)
LONG_CONTEXT = " ".join([CONTEXT] * 4)
QUESTIONS = ["Who was the last keeper?", "When was the lamp converted to electricity?", "What did the volunteers do?"]


def to_py(x):
    import numpy as np

    if isinstance(x, dict):
        return {k: to_py(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_py(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return x


# ---------------------------------------------------------------------------------------------------------------
# question answering under transformers 4.57.1 (child process)


def qa_child():
    import torch
    import transformers
    from transformers import AutoTokenizer, T5ForQuestionAnswering, pipeline

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    assert transformers.__version__.startswith("4."), transformers.__version__
    tok = AutoTokenizer.from_pretrained(str(TINY))
    left = AutoTokenizer.from_pretrained(str(TINY), padding_side="left")
    small = {"max_seq_len": 48, "doc_stride": 16}
    cases = {
        "small_top1": ({"question": QUESTIONS[0], "context": CONTEXT}, small),
        "small_top3": ({"question": QUESTIONS[1], "context": CONTEXT}, {**small, "top_k": 3}),
        "small_impossible": ({"question": QUESTIONS[2], "context": CONTEXT},
                             {**small, "top_k": 2, "handle_impossible_answer": True}),
        "small_answer_len": ({"question": QUESTIONS[2], "context": CONTEXT}, {**small, "max_answer_len": 4,
                                                                              "top_k": 2}),
        "small_not_aligned": ({"question": QUESTIONS[0], "context": CONTEXT}, {**small, "align_to_words": False,
                                                                               "top_k": 2}),
        "stride_0": ({"question": QUESTIONS[1], "context": CONTEXT}, {"max_seq_len": 40, "doc_stride": 0, "top_k": 2}),
        "defaults_long": ({"question": QUESTIONS[0], "context": LONG_CONTEXT}, {"top_k": 3}),
        "batch": ([{"question": q, "context": CONTEXT} for q in QUESTIONS], small),
    }
    out = {"versions": {"transformers": transformers.__version__}, "cases": {}}
    for dt in (torch.float32, torch.float64):
        m = T5ForQuestionAnswering.from_pretrained(HEADS / "qa", dtype=torch.float32,
                                                   attn_implementation="eager").to(dt).eval()
        for name, (inputs, opts) in cases.items():
            p = pipeline("question-answering", model=m, tokenizer=tok)
            res = p(inputs, **opts)
            out["cases"].setdefault(name, {"inputs": inputs, "options": opts})[str(dt)] = to_py(res)
        # padding_side "left": transformers puts the context first and truncates "only_first"
        p = pipeline("question-answering", model=m, tokenizer=left)
        name = "left_tokenizer"
        res = p({"question": QUESTIONS[0], "context": CONTEXT}, **small, top_k=2)
        out["cases"].setdefault(name, {"inputs": {"question": QUESTIONS[0], "context": CONTEXT},
                                       "options": {**small, "top_k": 2}, "padding_side": "left"})[str(dt)] = to_py(res)
    n_windows = {}
    for name, (inputs, opts) in cases.items():
        one = inputs[0] if isinstance(inputs, list) else inputs
        msl = opts.get("max_seq_len", 384)
        enc = tok(one["question"], one["context"], truncation="only_second", max_length=msl,
                  stride=opts.get("doc_stride", min(msl // 2, 128)), return_overflowing_tokens=True)
        n_windows[name] = len(enc.input_ids)
    out["windows"] = n_windows
    print(json.dumps(out, ensure_ascii=False))


# ---------------------------------------------------------------------------------------------------------------
# transformers 5.24 parts


def tokenizer_cases(tok_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    assert tok.padding_side == "right"
    r = {}
    prop = AutoTokenizer.from_pretrained(str(tok_dir))
    prop.padding_side = "left"
    enc = prop(TEXTS, padding=True)
    r["left_property"] = {"input_ids": enc.input_ids, "attention_mask": enc.attention_mask}
    load = AutoTokenizer.from_pretrained(str(tok_dir), padding_side="left")
    enc2 = load(TEXTS, padding=True)
    assert enc2.input_ids == enc.input_ids
    r["left_load_option"] = {"input_ids": enc2.input_ids, "attention_mask": enc2.attention_mask}
    enc3 = tok(TEXTS, padding=True, padding_side="left")
    assert enc3.input_ids == enc.input_ids
    r["left_call_option"] = {"input_ids": enc3.input_ids, "attention_mask": enc3.attention_mask}
    enc4 = load(TEXTS, padding=True, padding_side="right")
    r["right_call_option_on_left"] = {"input_ids": enc4.input_ids, "attention_mask": enc4.attention_mask}
    enc5 = tok(TEXTS, padding="max_length", max_length=64, truncation=True, padding_side="left")
    r["left_max_length"] = {"max_length": 64, "input_ids": enc5.input_ids, "attention_mask": enc5.attention_mask}
    enc6 = load(TEXTS, padding=True, truncation=True, max_length=10)
    r["left_truncated"] = {"max_length": 10, "input_ids": enc6.input_ids, "attention_mask": enc6.attention_mask}

    # word ids, sequence ids, offsets (char offsets, Python str indices)
    def detail(e, i):
        return {"input_ids": e["input_ids"][i], "attention_mask": e["attention_mask"][i],
                "offset_mapping": [list(x) for x in e["offset_mapping"][i]],
                "special_tokens_mask": e["special_tokens_mask"][i],
                "word_ids": e.word_ids(i), "sequence_ids": e.sequence_ids(i)}

    e = tok(TEXTS[:2], padding=True, padding_side="left", return_offsets_mapping=True, return_special_tokens_mask=True)
    r["details_left"] = {"texts": TEXTS[:2], "rows": [detail(e, i) for i in range(2)]}
    # pre-tokenized words
    e = tok(WORDS[0], is_split_into_words=True, return_offsets_mapping=True, return_special_tokens_mask=True)
    one = tok([WORDS[0]], is_split_into_words=True, return_offsets_mapping=True, return_special_tokens_mask=True)
    assert one.input_ids[0] == e.input_ids and one.word_ids(0) == e.word_ids()
    r["words_single"] = {"words": WORDS[0], "rows": [detail(one, 0)]}
    e = tok(WORDS, is_split_into_words=True, padding=True, return_offsets_mapping=True,
            return_special_tokens_mask=True)
    r["words_batch"] = {"words": WORDS, "rows": [detail(e, i) for i in range(len(WORDS))]}
    # question / context windows: truncation only_second with a stride and overflowing tokens
    windows = {}
    for name, (msl, stride) in {"48_16": (48, 16), "40_0": (40, 0), "384_128": (384, 128)}.items():
        ctx = LONG_CONTEXT if msl == 384 else CONTEXT
        e = tok(QUESTIONS[0], ctx, truncation="only_second", max_length=msl, stride=stride,
                return_overflowing_tokens=True, return_offsets_mapping=True, return_special_tokens_mask=True)
        windows[name] = {"question": QUESTIONS[0], "context": ctx, "max_length": msl, "stride": stride,
                         "overflow_to_sample_mapping": e["overflow_to_sample_mapping"],
                         "rows": [detail(e, i) for i in range(len(e.input_ids))]}
    # batch of two pairs, padded, windows of both
    e = tok([QUESTIONS[0], QUESTIONS[1]], [CONTEXT, "A short context."], truncation="only_second", max_length=40,
            stride=8, return_overflowing_tokens=True, return_offsets_mapping=True, return_special_tokens_mask=True,
            padding=True)
    windows["pairs_padded"] = {"question": [QUESTIONS[0], QUESTIONS[1]], "context": [CONTEXT, "A short context."],
                               "max_length": 40, "stride": 8, "padding": True,
                               "overflow_to_sample_mapping": e["overflow_to_sample_mapping"],
                               "rows": [detail(e, i) for i in range(len(e.input_ids))]}
    r["windows"] = windows
    return r


def left_padded_models(tensors, fp64_diff):
    import torch
    from transformers import AutoTokenizer, DynamicCache, EncoderDecoderCache, T5EncoderModel, \
        T5ForConditionalGeneration

    tok = AutoTokenizer.from_pretrained(str(TINY), padding_side="left")
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    res = {"texts": TEXTS, "input_ids": enc.input_ids.tolist(), "attention_mask": enc.attention_mask.tolist(),
           "max_new_tokens": MAX_NEW_TOKENS, "models": {}}
    for name, d in (("tiny-t5", TINY), ("tiny-t5-v1_1", V11)):
        hs = {}
        for dt in (torch.float32, torch.float64):
            e = T5EncoderModel.from_pretrained(d, dtype=torch.float32).to(dt).eval()
            with torch.no_grad():
                hs[dt] = e(input_ids=enc.input_ids, attention_mask=enc.attention_mask).last_hidden_state
        key = f"left.{name}.encoder_last_hidden_state"
        tensors[key] = hs[torch.float32].contiguous()
        fp64_diff[key] = float((hs[torch.float64] - hs[torch.float32].double()).abs().max())
        m = T5ForConditionalGeneration.from_pretrained(d, dtype=torch.float32).eval()

        def gen(ids, mask):
            with torch.no_grad():
                out = m.generate(ids, attention_mask=mask, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                                 num_beams=1, output_logits=True, return_dict_in_generate=True,
                                 cache=EncoderDecoderCache(DynamicCache(), DynamicCache()))
            gaps = [float((lambda t: t[:, 0] - t[:, 1])(lg.topk(2, dim=-1).values).min()) for lg in out.logits]
            return out.sequences.tolist(), min(gaps)

        seqs, gap = gen(enc.input_ids, enc.attention_mask)
        single = []
        for i, t in enumerate(TEXTS):
            one = tok(t, return_tensors="pt")
            s1, g1 = gen(one.input_ids, one.attention_mask)
            single.append(s1[0])
            gap = min(gap, g1)
            # unpadded real tokens of the left-padded row: same encoder output as the row alone
            n = one.input_ids.shape[1]
            with torch.no_grad():
                alone = e.to(torch.float32)(input_ids=one.input_ids).last_hidden_state[0]
            diff = float((hs[torch.float32][i, -n:] - alone).abs().max())
            assert diff < 1e-4, (name, i, diff)
        # greedy ids per row equal the row alone (rows stop at different steps: compare up to each row's end)
        for a, b in zip(seqs, single):
            assert a[:len(b)] == b and all(x == 0 for x in a[len(b):]), (name, a, b)
        res["models"][name] = {"sequences": seqs, "sequences_single": single, "min_top_gap": gap}
    return res


def token_classification():
    import torch
    import transformers
    from transformers import AutoTokenizer, T5ForTokenClassification, pipeline

    tok = AutoTokenizer.from_pretrained(str(HEADS / "token-cls"))
    r = {}
    for dt in (torch.float32, torch.float64):
        m = T5ForTokenClassification.from_pretrained(HEADS / "token-cls", dtype=torch.float32,
                                                     attn_implementation="eager").to(dt).eval()
        ner = pipeline("token-classification", model=m, tokenizer=tok)
        res = {
            "none": ner(WORDS, is_split_into_words=True),
            "none_all": ner(WORDS[0], is_split_into_words=True, ignore_labels=[]),
            "simple": ner(WORDS, is_split_into_words=True, aggregation_strategy="simple"),
            "first": ner(WORDS, is_split_into_words=True, aggregation_strategy="first"),
            "average": ner(WORDS, is_split_into_words=True, aggregation_strategy="average"),
            "max": ner(WORDS, is_split_into_words=True, aggregation_strategy="max"),
            "max_all": ner(WORDS[1], is_split_into_words=True, aggregation_strategy="max", ignore_labels=[]),
            "delimiter": ner(WORDS[1], is_split_into_words=True, delimiter="_", ignore_labels=[]),
        }
        r[str(dt)] = to_py(res)
    return {"words": WORDS, "versions": {"transformers": transformers.__version__}, **r}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tf4", default="/tmp/tf4", help="a --target directory holding transformers 4.57.1")
    ap.add_argument("--qa-child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.qa_child:
        return qa_child()

    import torch
    import transformers
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    assert transformers.__version__ == "5.24.0", transformers.__version__

    env = {**os.environ, "PYTHONPATH": a.tf4}
    qa = subprocess.run([sys.executable, __file__, "--qa-child"], env=env, check=True, capture_output=True, text=True)
    qa = json.loads(qa.stdout)

    tensors, fp64_diff = {}, {}
    doc = {
        "tolerance_rule": "|ours - oracle| <= 1e-4 + 4 * fp64_diff[name]; pipeline scores 1e-4 + 4 * |f64 - f32|",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "question_answering": qa["versions"]},
        "tokenizer": tokenizer_cases(TINY),
        "left_padded": left_padded_models(tensors, fp64_diff),
        "token_classification_words": token_classification(),
        "question_answering": {"cases": qa["cases"], "windows": qa["windows"]},
        "fp64_diff": fp64_diff,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(OUT / "oracle.safetensors"), metadata={"format": "pt"})
    (OUT / "oracle.json").write_text(json.dumps(doc, ensure_ascii=False) + "\n", encoding="utf-8")
    print("windows per QA case:", qa["windows"])
    print("min top gaps:", {k: v["min_top_gap"] for k, v in doc["left_padded"]["models"].items()})
    print(f"{sum(f.stat().st_size for f in OUT.iterdir())} bytes under {OUT}")


if __name__ == "__main__":
    main()
