#!/usr/bin/env python3
"""Evaluate t5-web's default model, models/t5-numbers, with HF transformers and write models/t5-numbers/heldout.json.

Run by hand (CPU; needs torch, transformers 5, safetensors; no network):

    /tmp/pyenv/bin/python scripts/eval_default_model.py [--model models/t5-numbers] [--count 200]

The held-out set is fixed and deterministic: `count` distinct held-out numbers (blake2b(str(n)) % 50 == 7, never trained on) per
direction, spread over 1..6 digits (see heldout_numbers in train_default_model.py), first "numbers to words: N"
then "words to numbers: WORDS" (other numbers). The model is loaded as t5-web runs it: the stored bf16 weights
upcast to float32 (from_pretrained(dir, dtype=torch.float32)), and decoded greedily (do_sample=False, num_beams=1,
max_new_tokens=32) in batches of right-padded inputs with their attention mask.

heldout.json:
  accuracy          exact match of the decoded text (skip_special_tokens, stripped) with the expected text:
                    n2w, w2n, all
  generation        the generate() settings used
  examples[]        direction ("n2w" | "w2n"), number, input, expected, input_ids (EOS appended, no padding),
                    output_ids (greedy ids after the decoder start token 0, up to and including EOS 1; no EOS if
                    it stopped at max_new_tokens), output (decoded text), correct, min_top_gap (smallest top-1
                    minus top-2 raw logit over the generated steps; a small gap means float rounding may flip it)
"""

import argparse
import json
import sys
from pathlib import Path

import torch
import transformers
from transformers import AutoTokenizer, T5ForConditionalGeneration

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_default_model import OUT_DIR, heldout_examples, is_heldout  # noqa: E402

SEED = 2024
MAX_NEW_TOKENS = 32


@torch.no_grad()
def run(model_dir, count, batch_size=100):
    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = T5ForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
    rows = heldout_examples(count, seed=SEED)
    assert all(is_heldout(r[1]) for r in rows)
    examples = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        enc = tok([r[2] for r in chunk], return_tensors="pt", padding=True)
        out = model.generate(**enc, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, num_beams=1,
                             return_dict_in_generate=True, output_logits=True)
        seqs = out.sequences[:, 1:].tolist()  # drop the decoder start token
        logits = torch.stack(out.logits, dim=1).float()  # (batch, steps, vocab)
        top2 = logits.topk(2, dim=-1).values
        gaps = (top2[..., 0] - top2[..., 1]).tolist()
        for i, r in enumerate(chunk):
            ids = seqs[i]
            if 1 in ids:
                ids = ids[:ids.index(1) + 1]
            text = tok.decode(ids, skip_special_tokens=True).strip()
            examples.append({
                "direction": r[0],
                "number": r[1],
                "input": r[2],
                "expected": r[3],
                "input_ids": tok(r[2]).input_ids,
                "output_ids": ids,
                "output": text,
                "correct": text == r[3],
                "min_top_gap": round(min(gaps[i][:len(ids)]), 4),
            })
    acc = {}
    for d in ["n2w", "w2n"]:
        sel = [e["correct"] for e in examples if e["direction"] == d]
        acc[d] = sum(sel) / len(sel)
    acc["all"] = sum(e["correct"] for e in examples) / len(examples)
    return {
        "model": "t5-numbers",
        "description": "held-out numbers (blake2b(str(n)) % 50 == 7, never trained on); transformers greedy outputs on the bf16 "
                       "weights upcast to float32",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__.split("+")[0],
        "dtype": "float32",
        "generation": {"do_sample": False, "num_beams": 1, "max_new_tokens": MAX_NEW_TOKENS,
                       "padding": "right, with attention_mask", "batch_size": batch_size},
        "count_per_direction": count,
        "seed": SEED,
        "accuracy": acc,
        "min_top_gap": min(e["min_top_gap"] for e in examples),
        "examples": examples,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=OUT_DIR)
    ap.add_argument("--count", type=int, default=200, help="held-out examples per direction")
    ap.add_argument("--out", type=Path, default=None, help="default: MODEL/heldout.json")
    args = ap.parse_args()
    result = run(args.model, args.count)
    out = args.out or args.model / "heldout.json"
    with open(out, "w") as f:
        json.dump(result, f, indent=1, ensure_ascii=False)
        f.write("\n")
    acc = result["accuracy"]
    print(f"exact match: numbers->words {acc['n2w']:.4f}  words->numbers {acc['w2n']:.4f}  all {acc['all']:.4f}"
          f"  (min top-1/top-2 gap {result['min_top_gap']})")
    for e in result["examples"]:
        if not e["correct"]:
            print(f"  wrong: {e['input']!r} -> {e['output']!r} (expected {e['expected']!r})")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
