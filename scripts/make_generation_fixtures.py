#!/usr/bin/env python3
"""Generation oracle of t5-web: transformers' `generate` on the committed tiny fixture checkpoints.

Run by hand after scripts/make_fixtures.py (same pinned packages, venv /tmp/pyenv; no network):

    /tmp/pyenv/bin/python scripts/make_generation_fixtures.py

Writes test/fixtures/oracle/generation/<model>.json for tiny-t5 and tiny-t5-v1_1 (the sharded / f16 copies are not
repeated). Inputs are the oracle texts of test/fixtures/oracle/<model>.json (the same input_ids / attention_mask,
right padded). Each case records the generate kwargs (transformers' names), the sequences of the batched call (leading
decoder start token, pads after EOS, cropped as transformers crops them) and, per row, the sequences of the row alone;
beam cases with `output_scores` also record `sequences_scores`. Robustness of every case is checked and recorded:

  fp64_equal      the same call on model.double() gives the same ids (so float32 rounding does not decide them);
  min_margin      greedy cases: the smallest top-1 minus top-2 processed score over all steps of unfinished rows;
                  beam cases: the smallest gap between the scores of consecutive returned beams of a row
                  (`sequences_scores`) where recorded.

A case whose fp64 ids differ is an error (pick other inputs). Sampling is not recorded: t5-web samples with its own
PRNG (reproducible by seed, not torch's RNG stream).

The `preset` case is t5-small's config.task_specific_params["summarization"] (copied from ../shared/models/t5-small/
config.json into the json as `task_specific_params`) applied over the model's generation config, as transformers v4
pipelines merged them (transformers 5 no longer has that pipeline): beam 4, length_penalty 2, no_repeat_ngram 3,
min_length 30, max_length 200, early_stopping true.
"""

import json
import os
import sys
from pathlib import Path

import torch

import transformers
from transformers import DynamicCache, EncoderDecoderCache, T5ForConditionalGeneration

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "test" / "fixtures"
ORACLE = FIX / "oracle"
OUT = ORACLE / "generation"
SHARED = Path(os.environ.get("T5_SHARED_MODELS", ROOT.parent / "shared" / "models")) / "t5-small"
MODELS = ["tiny-t5", "tiny-t5-v1_1"]


def summarization_preset():
    cfg = json.loads((SHARED / "config.json").read_text())
    return cfg["task_specific_params"]


def cases(greedy_rows):
    """(name, kwargs). `greedy_rows`: the plain greedy output of each row (to pick bad words from)."""
    r0 = greedy_rows[0]
    # bad words: a single token the greedy output of row 0 uses, and a two-token sequence of row 1
    r1 = greedy_rows[1]
    bad = [[r0[2]], [r1[1], r1[2]]]
    tsp = summarization_preset()["summarization"]
    # random weights almost never emit </s>: for the EOS paths (finished beams, early stopping, pads after EOS),
    # also treat tokens the model does emit as end-of-sequence
    eos = [1, r0[3], r1[4], greedy_rows[2][5]]
    return [
        ("default_length", {}),
        ("max_length", {"max_length": 7}),
        ("beam4_lp2_early", {"num_beams": 4, "length_penalty": 2.0, "early_stopping": True, "max_new_tokens": 20}),
        ("beam3_return2_scores", {"num_beams": 3, "num_return_sequences": 2, "max_new_tokens": 16,
                                  "output_scores": True, "return_dict_in_generate": True}),
        ("beam4_never", {"num_beams": 4, "early_stopping": "never", "length_penalty": 0.5, "max_new_tokens": 14,
                         "output_scores": True, "return_dict_in_generate": True}),
        ("beam2_false", {"num_beams": 2, "early_stopping": False, "max_new_tokens": 18,
                         "output_scores": True, "return_dict_in_generate": True}),
        ("repetition_penalty", {"repetition_penalty": 1.3, "max_new_tokens": 16}),
        ("no_repeat_ngram_2", {"no_repeat_ngram_size": 2, "max_new_tokens": 16}),
        ("min_new_tokens_8", {"min_new_tokens": 8, "max_new_tokens": 12}),
        ("min_length_6", {"min_length": 6, "max_new_tokens": 12}),
        ("bad_words", {"bad_words_ids": bad, "max_new_tokens": 12}),
        ("forced_eos", {"forced_eos_token_id": 1, "max_new_tokens": 6}),
        ("beam_combo", {"num_beams": 3, "repetition_penalty": 1.2, "no_repeat_ngram_size": 2, "min_new_tokens": 4,
                        "bad_words_ids": bad, "forced_eos_token_id": 1, "max_new_tokens": 10,
                        "output_scores": True, "return_dict_in_generate": True}),
        ("preset", dict(tsp)),
        ("greedy_eos", {"eos_token_id": eos, "max_new_tokens": 12}),
        ("beam4_lp2_early_eos", {"num_beams": 4, "length_penalty": 2.0, "early_stopping": True, "max_new_tokens": 20,
                                 "eos_token_id": eos, "output_scores": True, "return_dict_in_generate": True}),
        ("beam3_return3_eos", {"num_beams": 3, "num_return_sequences": 3, "max_new_tokens": 16, "eos_token_id": eos[:2],
                               "output_scores": True, "return_dict_in_generate": True}),
        ("beam4_never_eos", {"num_beams": 4, "early_stopping": "never", "length_penalty": 1.5, "max_new_tokens": 14,
                             "eos_token_id": eos, "output_scores": True, "return_dict_in_generate": True}),
        ("beam2_false_eos", {"num_beams": 2, "early_stopping": False, "length_penalty": -0.5, "max_new_tokens": 18,
                             "eos_token_id": eos, "output_scores": True, "return_dict_in_generate": True}),
        ("beam_min_length_eos", {"num_beams": 3, "min_length": 9, "max_new_tokens": 14, "eos_token_id": eos,
                                 "no_repeat_ngram_size": 3, "output_scores": True, "return_dict_in_generate": True}),
    ]


@torch.no_grad()
def run(model, input_ids, attention_mask, kwargs):
    kw = dict(kwargs)
    out = model.generate(
        input_ids,
        attention_mask=attention_mask,
        do_sample=False,
        # transformers 5.24 sizes its default cache by config.num_layers, which breaks generate when
        # num_decoder_layers > num_layers (tiny-t5-v1_1); a lazily grown cache is the same computation.
        cache=EncoderDecoderCache(DynamicCache(), DynamicCache()),
        **kw,
    )
    if isinstance(out, torch.Tensor):
        return out, None
    scores = getattr(out, "sequences_scores", None)
    return out.sequences, scores


@torch.no_grad()
def greedy_margin(model, input_ids, attention_mask, kwargs):
    """Smallest top-1 minus top-2 processed score over the steps of unfinished rows (greedy cases only)."""
    kw = {k: v for k, v in kwargs.items() if k not in ("output_scores", "return_dict_in_generate")}
    out = model.generate(
        input_ids, attention_mask=attention_mask, do_sample=False, output_scores=True, return_dict_in_generate=True,
        cache=EncoderDecoderCache(DynamicCache(), DynamicCache()), **kw,
    )
    seqs = out.sequences
    gaps = []
    done = torch.zeros(seqs.shape[0], dtype=torch.bool)
    for step, s in enumerate(out.scores):
        top2 = s.float().topk(2, dim=-1).values
        gap = top2[:, 0] - top2[:, 1]
        for r in range(seqs.shape[0]):
            if not done[r] and torch.isfinite(top2[r, 0]):
                # a forced token (all others -inf) has an infinite gap: skip
                if torch.isfinite(gap[r]):
                    gaps.append(float(gap[r].item()))
        done |= torch.isin(seqs[:, step + 1], torch.tensor(kwargs.get("eos_token_id", [1])))
    return min(gaps) if gaps else None


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name in MODELS:
        base = json.loads((ORACLE / f"{name}.json").read_text())
        input_ids = torch.tensor(base["input_ids"])
        attention_mask = torch.tensor(base["attention_mask"])
        model = T5ForConditionalGeneration.from_pretrained(FIX / name, dtype=torch.float32).eval()
        model64 = T5ForConditionalGeneration.from_pretrained(FIX / name, dtype=torch.float32).eval().double()
        greedy_rows = [row[1:] for row in base["greedy"]["sequences"]]
        out_cases = []
        for cname, kwargs in cases(greedy_rows):
            seqs, scores = run(model, input_ids, attention_mask, kwargs)
            seqs64, scores64 = run(model64, input_ids, attention_mask, kwargs)
            fp64_equal = torch.equal(seqs, seqs64)
            if not fp64_equal:
                raise SystemExit(f"{name} {cname}: float64 ids differ from float32: pick other inputs\n{seqs}\n{seqs64}")
            single, single_scores = [], []
            for r in range(input_ids.shape[0]):
                n = int(attention_mask[r].sum())
                s, sc = run(model, input_ids[r : r + 1, :n], attention_mask[r : r + 1, :n], kwargs)
                single.append(s.tolist())
                if sc is not None:
                    single_scores.append([float(x) for x in sc])
            case = {"name": cname, "kwargs": {k: v for k, v in kwargs.items()
                                              if k not in ("output_scores", "return_dict_in_generate")},
                    "sequences": seqs.tolist(), "sequences_single": single, "fp64_equal": fp64_equal}
            nb = kwargs.get("num_beams", 1)
            if scores is not None:
                case["sequences_scores"] = [float(x) for x in scores]
                case["sequences_scores_single"] = single_scores
                case["sequences_scores_fp64_diff"] = float((scores.double() - scores64).abs().max())
                nrs = kwargs.get("num_return_sequences", 1)
                if nrs > 1:
                    gaps = [abs(float(scores[i] - scores[i + 1])) for i in range(0, len(scores), nrs)
                            for _ in range(1) if i + 1 < len(scores)]
                    case["min_margin"] = min(gaps)
            if nb == 1:
                case["min_margin"] = greedy_margin(model, input_ids, attention_mask, kwargs)
            out_cases.append(case)
            print(f"{name} {cname}: {seqs.shape[1]} positions, margin {case.get('min_margin')}", file=sys.stderr)
        doc = {
            "model": name,
            "source": "transformers T5ForConditionalGeneration.generate (float32, CPU); scripts/make_generation_fixtures.py",
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
            "texts": base["texts"],
            "input_ids": base["input_ids"],
            "attention_mask": base["attention_mask"],
            "task_specific_params": summarization_preset(),
            "cases": out_cases,
        }
        (OUT / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {OUT / (name + '.json')}", file=sys.stderr)


if __name__ == "__main__":
    main()
