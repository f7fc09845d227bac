#!/usr/bin/env python3
"""Make the fixtures of the T5 heads, the extra model outputs and the pipelines: tiny random checkpoints saved with
transformers' own save_pretrained, and the HF transformers (PyTorch) oracle.

Run by hand after scripts/make_fixtures.py (it reads test/fixtures/tiny-t5; needs the packages pinned in
scripts/requirements-fixtures.txt, and transformers 4.57.1 in a --target directory for the question-answering
pipeline that transformers 5 removed; no network):

    /tmp/pyenv/bin/pip install --target /tmp/tf4 --no-deps transformers==4.57.1 huggingface_hub==0.36.0 \\
        tokenizers==0.22.1 requests urllib3 idna charset_normalizer certifi
    /tmp/pyenv/bin/python scripts/make_head_fixtures.py [--tf4 /tmp/tf4]

Deterministic: fixed seeds, torch.set_num_threads(1), deterministic algorithms, CPU only.

Written under test/fixtures/heads/ (Hub file layout; seq-cls and token-cls carry copies of tokenizer.json,
tokenizer_config.json and special_tokens_map.json of test/fixtures/tiny-t5, which are those of t5-small; the tests
give the others that tokenizer):

  seq-cls/         T5ForSequenceClassification (weights under `transformer.` + `classification_head.`), real vocab
                   (32128), d_model 16, 4 heads of 4, d_ff 32, 2+2 layers, num_labels 3 with id2label
                   negative/neutral/positive, no problem_type. float16 weights.
  token-cls/       T5ForTokenClassification (`transformer.` encoder + `classifier.`), real vocab, num_labels 5
                   (O, B-PER, I-PER, B-LOC, I-LOC). float16 weights.
  qa/              T5ForQuestionAnswering (no prefix: shared/encoder/decoder + `qa_outputs.`), real vocab, num_labels 2,
                   3 decoder layers. float16 weights.
  seq-cls-regression/  num_labels 1 (problem_type picked by transformers: regression), vocab 64, float32, no tokenizer.
  seq-cls-multi/       num_labels 4, problem_type "multi_label_classification" in config.json, vocab 64, float32.

  heads/oracle.json + heads/oracle.safetensors: for each case its inputs, the oracle tensors (float32), losses, and
  fp64_diff[name] = max |fp64 - fp32| of the same computation in float64 (same weights), as make_fixtures.py. Also:
    outputs_*: tiny-t5 (T5ForConditionalGeneration, eager attention) with output_hidden_states / output_attentions /
      decoder_attention_mask: encoder_hidden_states.i, decoder_hidden_states.i, encoder_attentions.i,
      decoder_attentions.i, cross_attentions.i; past_key_values (use_cache) after a first decoder chunk: per layer
      self k/v and cross k/v ([batch, heads, len, d_kv]) and the logits of a second chunk run on that cache.
    pipelines: outputs of transformers 5.24's text-classification and token-classification pipelines on the head
      checkpoints, feature-extraction (raw hidden states of tiny-t5's encoder; mean pooling + normalize computed here
      as transformers.js defines them), and the pipelines transformers 5 removed (summarization, translation,
      question-answering) from transformers 4 on the same models: summarization / translation with its logic, question
      answering with transformers 4.57.1's own pipeline (see `qa_child`).

Tolerance rule for tests: |ours - oracle| <= 1e-4 + 4 * fp64_diff[name] elementwise; pipeline scores 1e-4 + 4 * the
fp64 spread of the scores; labels / ids / offsets exact.
"""

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

import transformers
from transformers import (
    AutoTokenizer,
    DynamicCache,
    EncoderDecoderCache,
    T5Config,
    T5EncoderModel,
    T5ForConditionalGeneration,
    T5ForQuestionAnswering,
    T5ForSequenceClassification,
    T5ForTokenClassification,
    pipeline,
)

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()

TF4 = "/tmp/tf4"
ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "test" / "fixtures"
HEADS = FIX / "heads"
TINY = FIX / "tiny-t5"
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
TOLERANCE_RULE = "|ours - oracle| <= 1e-4 + 4 * fp64_diff[name] (elementwise, float32 oracle)"

TEXTS = [
    "I loved this film, the actors were wonderful.",
    "The weather in Paris is grey today.",
    "Terrible service.",
]
NER_TEXTS = [
    "My name is Wolfgang and I live in Berlin.",
    "Zoë met Ana in São Paulo 😀 yesterday.",
    "short",
]
QA = [
    {"question": "Where does Wolfgang live?", "context": "My name is Wolfgang and I live in Berlin, near the river."},
    {"question": "What is restored?", "context": "The old lighthouse on the cliff was restored last spring by volunteers."},
]

tensors = {}
doc = {"tolerance_rule": TOLERANCE_RULE, "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}


def max_diff(a, b):
    return float((a.detach().double() - b.detach().double()).abs().max().item())


def record(name, t32, t64):
    tensors[name] = t32.detach().to(torch.float32).contiguous()
    doc.setdefault("fp64_diff", {})[name] = max_diff(t64, t32)
    doc.setdefault("shapes", {})[name] = list(t32.shape)


def record_scalar(name, v32, v64):
    doc.setdefault("scalars", {})[name] = float(v32)
    doc.setdefault("fp64_diff", {})[name] = abs(float(v64) - float(v32))


def cfg(vocab, num_labels, **over):
    kw = dict(vocab_size=vocab, d_model=16, d_kv=4, num_heads=4, d_ff=32, num_layers=2, num_decoder_layers=2,
              relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="relu",
              dropout_rate=0.1, initializer_factor=1.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
              num_labels=num_labels)
    kw.update(over)
    return T5Config(**kw)


def make(cls, config, seed, d, dtype, tokenizer):
    torch.manual_seed(seed)
    m = cls(copy.deepcopy(config)).eval()
    with torch.no_grad():  # biases are zero-initialised: give them values so the tests see them
        for n, p in m.named_parameters():
            if n.endswith(".bias"):
                p.copy_(torch.randn_like(p) * 0.5)
    shutil.rmtree(d, ignore_errors=True)
    copy.deepcopy(m).to(dtype).save_pretrained(d)
    if tokenizer:
        for f in TOKENIZER_FILES:
            shutil.copyfile(TINY / f, d / f)


def load(cls, d, dtype):
    return cls.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").to(dtype).eval()


# ---------------------------------------------------------------------------------------------------------------
# heads


@torch.no_grad()
def seq_cls(tok):
    d = HEADS / "seq-cls"
    c = cfg(32128, 3, id2label={0: "negative", 1: "neutral", 2: "positive"},
            label2id={"negative": 0, "neutral": 1, "positive": 2}, architectures=["T5ForSequenceClassification"])
    make(T5ForSequenceClassification, c, 1, d, torch.float16, True)
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    labels = torch.tensor([2, 1, 0])
    multi = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.5, 0.0, 0.0]])
    # explicit decoder_input_ids: the head reads the decoder output at the EOS positions of input_ids, so they have the
    # input's shape
    dec = torch.randint(2, 1000, enc.input_ids.shape, generator=torch.Generator().manual_seed(1))
    dec[:, 0] = 0
    out = {}
    for dt in (torch.float32, torch.float64):
        m = load(T5ForSequenceClassification, d, dt)
        a = m(input_ids=enc.input_ids, attention_mask=enc.attention_mask, labels=labels)
        m.config.problem_type = None
        b = m(input_ids=enc.input_ids, attention_mask=enc.attention_mask, labels=multi.to(dt))
        assert m.config.problem_type == "multi_label_classification"
        m.config.problem_type = None
        e = m(input_ids=enc.input_ids, attention_mask=enc.attention_mask, decoder_input_ids=dec)
        out[dt] = (a, b, e)
    (a, b, e), (a64, b64, e64) = out[torch.float32], out[torch.float64]
    record("seq_cls.logits", a.logits, a64.logits)
    record("seq_cls.logits_dec", e.logits, e64.logits)
    record_scalar("seq_cls.loss_single", a.loss, a64.loss)
    record_scalar("seq_cls.loss_multi", b.loss, b64.loss)
    # rows with different numbers of EOS tokens
    m = load(T5ForSequenceClassification, d, torch.float32)
    bad = torch.tensor([[37, 1, 5, 1], [8, 9, 10, 1]])
    try:
        m(input_ids=bad)
        raise AssertionError("expected an error")
    except Exception as ex:  # noqa: BLE001
        err = str(ex)
    single = [m(**tok(t, return_tensors="pt")).logits[0].tolist() for t in TEXTS]
    doc["seq_cls"] = {"dir": "heads/seq-cls", "texts": TEXTS, "input_ids": enc.input_ids.tolist(),
                      "attention_mask": enc.attention_mask.tolist(), "labels": labels.tolist(),
                      "multi_labels": multi.tolist(), "decoder_input_ids": dec.tolist(),
                      "bad_input_ids": bad.tolist(), "bad_error": err, "single_logits": single}


@torch.no_grad()
def seq_cls_small():
    ids = torch.tensor([[5, 6, 7, 1, 0], [8, 9, 1, 0, 0], [10, 11, 12, 13, 1]])
    mask = (torch.arange(5)[None] <= (ids == 1).int().argmax(1)[:, None]).long()
    # regression
    d = HEADS / "seq-cls-regression"
    make(T5ForSequenceClassification, cfg(64, 1, architectures=["T5ForSequenceClassification"]), 2, d,
         torch.float32, False)
    y = torch.tensor([0.5, -1.0, 2.0])
    r = {dt: load(T5ForSequenceClassification, d, dt)(input_ids=ids, attention_mask=mask, labels=y.to(dt))
         for dt in (torch.float32, torch.float64)}
    record("seq_cls_regression.logits", r[torch.float32].logits, r[torch.float64].logits)
    record_scalar("seq_cls_regression.loss", r[torch.float32].loss, r[torch.float64].loss)
    # multi-label, problem_type in config.json
    d = HEADS / "seq-cls-multi"
    make(T5ForSequenceClassification, cfg(64, 4, problem_type="multi_label_classification", num_decoder_layers=3,
                                          architectures=["T5ForSequenceClassification"]), 3, d, torch.float32, False)
    ym = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0]])
    r = {dt: load(T5ForSequenceClassification, d, dt)(input_ids=ids, attention_mask=mask, labels=ym.to(dt))
         for dt in (torch.float32, torch.float64)}
    record("seq_cls_multi.logits", r[torch.float32].logits, r[torch.float64].logits)
    record_scalar("seq_cls_multi.loss", r[torch.float32].loss, r[torch.float64].loss)
    doc["seq_cls_small"] = {"input_ids": ids.tolist(), "attention_mask": mask.tolist(), "regression_labels": y.tolist(),
                            "multi_labels": ym.tolist()}


@torch.no_grad()
def token_cls(tok):
    d = HEADS / "token-cls"
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    c = cfg(32128, 5, id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
            architectures=["T5ForTokenClassification"])
    make(T5ForTokenClassification, c, 4, d, torch.float16, True)
    enc = tok(NER_TEXTS, padding=True, return_tensors="pt")
    labels = torch.randint(0, 5, enc.input_ids.shape, generator=torch.Generator().manual_seed(0))
    labels[enc.attention_mask == 0] = -100
    r = {dt: load(T5ForTokenClassification, d, dt)(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                                                   labels=labels) for dt in (torch.float32, torch.float64)}
    record("token_cls.logits", r[torch.float32].logits, r[torch.float64].logits)
    record_scalar("token_cls.loss", r[torch.float32].loss, r[torch.float64].loss)
    doc["token_cls"] = {"dir": "heads/token-cls", "texts": NER_TEXTS, "input_ids": enc.input_ids.tolist(),
                        "attention_mask": enc.attention_mask.tolist(), "labels": labels.tolist()}


@torch.no_grad()
def qa(tok):
    d = HEADS / "qa"
    c = cfg(32128, 2, num_decoder_layers=3, architectures=["T5ForQuestionAnswering"])
    make(T5ForQuestionAnswering, c, 5, d, torch.float16, False)
    enc = tok([q["question"] for q in QA], [q["context"] for q in QA], padding=True, return_tensors="pt")
    seq = enc.input_ids.shape[1]
    start = torch.tensor([5, seq + 7])  # the second is out of range: clamped to seq and ignored by the loss
    end = torch.tensor([8, 3])
    r = {dt: load(T5ForQuestionAnswering, d, dt)(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                                                 start_positions=start, end_positions=end)
         for dt in (torch.float32, torch.float64)}
    record("qa.start_logits", r[torch.float32].start_logits, r[torch.float64].start_logits)
    record("qa.end_logits", r[torch.float32].end_logits, r[torch.float64].end_logits)
    record_scalar("qa.loss", r[torch.float32].loss, r[torch.float64].loss)
    doc["qa"] = {"dir": "heads/qa", "examples": QA, "input_ids": enc.input_ids.tolist(),
                 "attention_mask": enc.attention_mask.tolist(), "start_positions": start.tolist(),
                 "end_positions": end.tolist()}


# ---------------------------------------------------------------------------------------------------------------
# outputs: hidden states, attentions, cache


@torch.no_grad()
def outputs(tok):
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    dec = torch.tensor([[0, 27, 1858, 48, 814, 6], [0, 37, 1969, 16, 0, 0], [0, 20255, 1, 0, 0, 0]])
    dmask = (torch.arange(6)[None] < torch.tensor([[6], [4], [3]])).long()
    split = 4
    res = {}
    for dt in (torch.float32, torch.float64):
        m = load(T5ForConditionalGeneration, TINY, dt)
        full = m(input_ids=enc.input_ids, attention_mask=enc.attention_mask, decoder_input_ids=dec,
                 decoder_attention_mask=dmask, output_hidden_states=True, output_attentions=True)
        first = m(input_ids=enc.input_ids, attention_mask=enc.attention_mask, decoder_input_ids=dec[:, :split],
                  decoder_attention_mask=dmask[:, :split], use_cache=True,
                  cache=EncoderDecoderCache(DynamicCache(), DynamicCache()))
        cache = first.past_key_values
        kv = []
        for layer in range(len(cache.self_attention_cache.layers)):
            s, c = cache.self_attention_cache.layers[layer], cache.cross_attention_cache.layers[layer]
            kv.append([s.keys.clone(), s.values.clone(), c.keys.clone(), c.values.clone()])
        second = m(encoder_outputs=(first.encoder_last_hidden_state,), attention_mask=enc.attention_mask,
                   decoder_input_ids=dec[:, split:], decoder_attention_mask=dmask, cache=cache, use_cache=True)
        res[dt] = (full, first, kv, second)
    (f, a, kv, s), (f64, a64, kv64, s64) = res[torch.float32], res[torch.float64]
    record("outputs.logits", f.logits, f64.logits)
    for name in ["encoder_hidden_states", "decoder_hidden_states", "encoder_attentions", "decoder_attentions",
                 "cross_attentions"]:
        for i, (x, y) in enumerate(zip(getattr(f, name), getattr(f64, name))):
            record(f"outputs.{name}.{i}", x, y)
    record("outputs.first_logits", a.logits, a64.logits)
    for layer, (x, y) in enumerate(zip(kv, kv64)):
        for j, n in enumerate(["self_k", "self_v", "cross_k", "cross_v"]):
            record(f"outputs.past.{layer}.{n}", x[j], y[j])
    record("outputs.second_logits", s.logits, s64.logits)
    doc["outputs"] = {"dir": "tiny-t5", "input_ids": enc.input_ids.tolist(), "attention_mask": enc.attention_mask.tolist(),
                      "decoder_input_ids": dec.tolist(), "decoder_attention_mask": dmask.tolist(), "split": split,
                      "counts": {n: len(getattr(f, n)) for n in ["encoder_hidden_states", "decoder_hidden_states",
                                                                  "encoder_attentions", "decoder_attentions",
                                                                  "cross_attentions"]}}


# ---------------------------------------------------------------------------------------------------------------
# pipelines


def to_py(x):
    if isinstance(x, dict):
        return {k: to_py(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_py(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return x


def qa_child():
    """Run under transformers 4.57.1 (PYTHONPATH=--tf4): its real QuestionAnsweringPipeline (removed in 5.x), one
    JSON document on stdout. (An earlier version re-implemented the pipeline for one window here; it left out the
    merging of equal answers across candidates and the top_k * 2 + 10 candidates taken before word alignment.)"""
    assert transformers.__version__.startswith("4."), transformers.__version__
    tok = AutoTokenizer.from_pretrained(str(TINY))
    r = {}
    for dt in (torch.float32, torch.float64):
        m = load(T5ForQuestionAnswering, HEADS / "qa", dt)
        qa = pipeline("question-answering", model=m, tokenizer=tok)
        r[str(dt)] = to_py({
            "top1": qa(QA),
            "top3": qa(QA[0], top_k=3),
            "impossible": qa(QA[1], handle_impossible_answer=True, top_k=2),
        })
    r["transformers"] = transformers.__version__
    print(json.dumps(r))


def pipelines(tok):
    p = {}
    # text-classification (transformers 5.24's pipeline)
    for dt in (torch.float32, torch.float64):
        m = load(T5ForSequenceClassification, HEADS / "seq-cls", dt)
        clf = pipeline("text-classification", model=m, tokenizer=tok)
        r = {
            "default": clf(TEXTS),
            "top_k_none": clf(TEXTS, top_k=None),
            "top_k_2": clf(TEXTS[0], top_k=2),
            "sigmoid": clf(TEXTS, function_to_apply="sigmoid", top_k=None),
            "none": clf(TEXTS[1], function_to_apply="none", top_k=None),
            "pair": clf({"text": TEXTS[0], "text_pair": TEXTS[1]}),
        }
        p.setdefault("text_classification", {})[str(dt)] = to_py(r)
    # token-classification
    for dt in (torch.float32, torch.float64):
        m = load(T5ForTokenClassification, HEADS / "token-cls", dt)
        ner = pipeline("token-classification", model=m, tokenizer=tok)
        r = {
            "none": ner(NER_TEXTS),
            "none_all": ner(NER_TEXTS[0], ignore_labels=[]),
            "simple": ner(NER_TEXTS, aggregation_strategy="simple"),
            "first": ner(NER_TEXTS, aggregation_strategy="first"),
            "average": ner(NER_TEXTS, aggregation_strategy="average"),
            "max": ner(NER_TEXTS, aggregation_strategy="max"),
        }
        p.setdefault("token_classification", {})[str(dt)] = to_py(r)
    # question-answering: transformers 4.57.1's own pipeline, in a child process (see qa_child)
    env = {**os.environ, "PYTHONPATH": TF4}
    out = subprocess.run([sys.executable, __file__, "--qa-child"], env=env, check=True, capture_output=True, text=True)
    qa = json.loads(out.stdout)
    p["question_answering"] = {k: v for k, v in qa.items() if k != "transformers"}
    doc["versions"]["question_answering"] = qa["transformers"]
    # feature-extraction: transformers' pipeline gives the raw hidden states; pooling as transformers.js
    fe = {}
    for dt in (torch.float32, torch.float64):
        m = load(T5EncoderModel, TINY, dt)
        ext = pipeline("feature-extraction", model=m, tokenizer=tok)
        raw = [torch.tensor(ext(t)[0], dtype=dt) for t in TEXTS]
        mean = [x.mean(0) for x in raw]
        norm = [x / x.norm().clamp_min(1e-12) for x in mean]
        fe[dt] = (raw, mean, norm)
    for i in range(len(TEXTS)):
        record(f"fe.raw.{i}", fe[torch.float32][0][i], fe[torch.float64][0][i])
        record(f"fe.mean.{i}", fe[torch.float32][1][i], fe[torch.float64][1][i])
        record(f"fe.norm.{i}", fe[torch.float32][2][i], fe[torch.float64][2][i])
    # summarization / translation (transformers 4 logic: prefix + generate + decode(skip_special_tokens=True,
    # clean_up_tokenization_spaces=False)); the translation prefix comes from task_specific_params.
    m = T5ForConditionalGeneration.from_pretrained(TINY, dtype=torch.float32).eval()
    tsp = {"summarization": {"prefix": "summarize: ", "max_length": 10},
           "translation_en_to_de": {"prefix": "translate English to German: ", "max_length": 9}}

    def gen(texts, prefix, max_length):
        outs = []
        for t in texts:
            e = tok(prefix + t, return_tensors="pt")
            s = m.generate(**e, max_length=max_length, do_sample=False, num_beams=1,
                           cache=EncoderDecoderCache(DynamicCache(), DynamicCache()))
            outs.append(tok.decode(s[0], skip_special_tokens=True, clean_up_tokenization_spaces=False))
        return outs

    p["task_specific_params"] = tsp
    p["summarization"] = [{"summary_text": x} for x in gen(TEXTS, "summarize: ", 10)]
    p["translation_en_to_de"] = [{"translation_text": x} for x in gen(TEXTS, "translate English to German: ", 9)]
    doc["pipelines"] = p


def main():
    global TF4
    ap = argparse.ArgumentParser()
    ap.add_argument("--tf4", default="/tmp/tf4", help="a pip --target directory holding transformers 4.57.1")
    ap.add_argument("--qa-child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    TF4 = a.tf4
    if a.qa_child:
        return qa_child()
    HEADS.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(str(TINY))
    seq_cls(tok)
    seq_cls_small()
    token_cls(tok)
    qa(tok)
    outputs(tok)
    pipelines(tok)
    save_file(tensors, str(HEADS / "oracle.safetensors"), metadata={"format": "pt"})
    (HEADS / "oracle.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    total = sum(f.stat().st_size for f in HEADS.rglob("*") if f.is_file())
    print(f"{len(tensors)} tensors, {total} bytes under {HEADS}")
    print(json.dumps({k: v for k, v in doc["fp64_diff"].items() if "outputs" not in k}, indent=1))


if __name__ == "__main__":
    main()
