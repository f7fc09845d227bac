#!/usr/bin/env python3
"""Train t5-web's default model, models/t5-numbers: a small T5 (original architecture: relu, tied embeddings,
decoder output scaled by d_model**-0.5) trained from scratch with the real t5-small tokenizer on two synthetic
text-to-text tasks a person can check at a glance:

    numbers to words: 1204                            -> one thousand two hundred four
    words to numbers: one thousand two hundred four   -> 1204

for whole numbers 0..999999 (English words, no "and", no hyphens, no commas: 21 is "twenty one"). Training numbers
are drawn log-uniformly (the digit count 1..6 uniformly, then uniformly within it). About 2% of the numbers >= 100
are held out by a hash of the number (is_heldout: blake2b of the decimal string, mod 50 == 7): never trained on,
used for evaluation only. (A plain n % 50 == 7 split holds out every number ending in 07 or 57, so those endings
are never seen in training: the model got 95% on training numbers but only ~50% on such held-out ones. 0..99 are
all trained: they are the task's atoms.)

Run by hand (CPU, one thread; needs torch, transformers 5, safetensors, sentencepiece; no network):

    /tmp/pyenv/bin/python scripts/train_default_model.py [--minutes 32] [--resume]

The committed models/t5-numbers was made in two phases (the CPU was shared and busy, so the cosine schedule
planned for 9500 steps was cut short and annealed over the last steps with a shorter schedule):

    /tmp/pyenv/bin/python scripts/train_default_model.py --minutes 20.5 --steps 9500 --stop-at 3500
    /tmp/pyenv/bin/python scripts/train_default_model.py --minutes 20.5 --steps 5200 --stop-at 5000 --resume

(the second run resumes from the checkpoint with the LR of the 5200-step schedule, i.e. about 0.4x peak at step
3500 down to ~0.06x at step 5000; it saves the checkpoint with the best held-out accuracy, step 5000. The original
run went on to step 5156 until its time budget ran out and still picked step 5000. --minutes counts the time of
the run from the start of phase 1; raise it on a slower machine.)

The tokenizer files are read from ../shared/models/t5-small (override with T5_SHARED_MODELS, the folder that holds
t5-small/). Writes models/t5-numbers/ (bf16 model.safetensors, config.json, generation_config.json, tokenizer
files, README.md is kept as is) and checkpoints to /tmp/t5-numbers-ckpt.pt.

Speed trick (exact, not an approximation of the saved model): only K ~ 1.2k of the 32128 vocabulary entries ever
occur in these tasks. Training runs a model whose vocabulary is those K tokens plus one extra row OTHER that is
fixed at zero and stands for all 32128 - K others; its logit gets + log(32128 - K) in the loss. The saved full-vocab
model copies the K trained rows into place and leaves every other embedding row at zero, so its softmax over
32128 entries is exactly the training softmax (each unused row gives logit 0). Tied embeddings: the same rows are
the input embeddings, and unused tokens never occur in the inputs.
"""

import argparse
import hashlib
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, GenerationConfig, T5Config, T5ForConditionalGeneration

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("T5_SHARED_MODELS", ROOT.parent / "shared" / "models"))
TOKENIZER_DIR = SHARED / "t5-small"
OUT_DIR = ROOT / "models" / "t5-numbers"
CKPT = Path(os.environ.get("T5_NUMBERS_CKPT", "/tmp/t5-numbers-ckpt.pt"))
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]

FULL_VOCAB = 32128
MAX_NUMBER = 999_999
PREFIX_N2W = "numbers to words: "
PREFIX_W2N = "words to numbers: "

# The architecture (size of the bf16 safetensors ~ 2 bytes x parameters; the vocab embedding is 32128 x d_model).
MODEL_KW = dict(
    vocab_size=FULL_VOCAB,
    d_model=96,
    d_kv=24,
    num_heads=4,
    d_ff=384,
    num_layers=3,
    num_decoder_layers=3,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    dropout_rate=0.0,
    feed_forward_proj="relu",
    tie_word_embeddings=True,
    initializer_factor=1.0,
    layer_norm_epsilon=1e-6,
    decoder_start_token_id=0,
    pad_token_id=0,
    eos_token_id=1,
)

# ----------------------------------------------------------------------------------------------------------------
# Data

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def _below_1000(n):
    hundreds, rest = divmod(n, 100)
    words = []
    if hundreds:
        words += [ONES[hundreds], "hundred"]
    if rest:
        if rest < 20:
            words.append(ONES[rest])
        else:
            tens, ones = divmod(rest, 10)
            words.append(TENS[tens])
            if ones:
                words.append(ONES[ones])
    return words


def number_to_words(n):
    """English words for 0 <= n <= 999999: 1204 -> 'one thousand two hundred four'."""
    if not 0 <= n <= MAX_NUMBER:
        raise ValueError(n)
    if n == 0:
        return "zero"
    thousands, rest = divmod(n, 1000)
    words = []
    if thousands:
        words += _below_1000(thousands) + ["thousand"]
    if rest:
        words += _below_1000(rest)
    return " ".join(words)


def is_heldout(n):
    """Fixed held-out split: ~2% of the numbers >= 100, chosen by a hash of the number."""
    if n < 100:
        return False
    return int.from_bytes(hashlib.blake2b(str(n).encode(), digest_size=8).digest(), "little") % 50 == 7


def example(n, direction):
    """direction 'n2w' or 'w2n' -> (input text, target text)."""
    if direction == "n2w":
        return PREFIX_N2W + str(n), number_to_words(n)
    return PREFIX_W2N + number_to_words(n), str(n)


def sample_number(rng):
    """Log-uniform: digit count 1..6 uniformly, then uniformly among the numbers with that many digits."""
    digits = rng.randint(1, 6)
    lo = 0 if digits == 1 else 10 ** (digits - 1)
    return rng.randint(lo, 10 ** digits - 1)


def sample_train_number(rng):
    while True:
        n = sample_number(rng)
        if not is_heldout(n):
            return n


def heldout_numbers(count, seed):
    """`count` distinct held-out numbers, spread over digit counts 3..6 as evenly as they allow (deterministic)."""
    rng = random.Random(seed)
    pools = [[] for _ in range(7)]
    for n in range(100, MAX_NUMBER + 1):
        if is_heldout(n):
            pools[len(str(n))].append(n)
    pools = pools[3:]
    quota = [0] * len(pools)
    left = count
    while left:
        open_ = [i for i in range(len(pools)) if quota[i] < len(pools[i])]
        share = max(1, left // len(open_))
        for i in open_:
            take = min(share, len(pools[i]) - quota[i], left)
            quota[i] += take
            left -= take
            if not left:
                break
    out = []
    for pool, q in zip(pools, quota):
        out += sorted(rng.sample(pool, q))
    assert all(is_heldout(n) for n in out) and len(set(out)) == count
    return out


def heldout_examples(count_per_direction, seed):
    """[(direction, n, input, target)]: count_per_direction n2w examples, then as many w2n (other numbers)."""
    rows = []
    for k, direction in enumerate(["n2w", "w2n"]):
        for n in heldout_numbers(count_per_direction, seed + 1000 * k):
            rows.append((direction, n) + example(n, direction))
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Restricted vocabulary (see the module docstring)


def task_token_ids(tok):
    """Sorted full-vocab ids of every token that occurs in any input or target of either task (all n)."""
    ids = {0, 1, 2}
    words = sorted(set(ONES + TENS[2:] + ["hundred", "thousand"]))
    texts = [PREFIX_N2W, PREFIX_W2N, " ".join(words)] + words
    texts += [str(n) for n in range(MAX_NUMBER + 1)]
    texts += [PREFIX_N2W + str(n) for n in range(0, MAX_NUMBER + 1, 997)]
    for start in range(0, len(texts), 100_000):
        for row in tok(texts[start:start + 100_000]).input_ids:
            ids.update(row)
    # check that words tokenize the same in context
    for n in range(0, MAX_NUMBER + 1, 9973):
        for text in example(n, "n2w") + example(n, "w2n"):
            assert set(tok(text).input_ids) <= ids, text
    return sorted(ids)


class Vocab:
    def __init__(self, tok):
        self.tok = tok
        self.full_ids = task_token_ids(tok)  # restricted id i <-> full id full_ids[i]; OTHER = len(full_ids)
        assert self.full_ids[:3] == [0, 1, 2]
        self.K = len(self.full_ids)
        self.OTHER = self.K
        self.to_small = np.full(FULL_VOCAB, self.OTHER, dtype=np.int64)
        self.to_small[self.full_ids] = np.arange(self.K)
        self.to_full = np.array(self.full_ids + [2], dtype=np.int64)  # OTHER decodes as <unk>
        self.other_bias = math.log(FULL_VOCAB - self.K)

    def encode(self, texts):
        """Right-padded restricted ids (EOS appended) and mask."""
        rows = [self.to_small[r] for r in self.tok(texts).input_ids]
        width = max(len(r) for r in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = r
            mask[i, :len(r)] = 1
        return torch.from_numpy(ids), torch.from_numpy(mask)

    def decode(self, small_ids):
        return [self.tok.decode(self.to_full[np.asarray(r)], skip_special_tokens=True).strip() for r in small_ids]


def small_config(vocab):
    return T5Config(**{**MODEL_KW, "vocab_size": vocab.K + 1})


def loss_fn(model, vocab, batch):
    input_ids, attention_mask, labels = batch
    decoder_input_ids = model._shift_right(labels)
    out = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
    logits = out.logits.float()
    bias = torch.zeros(logits.shape[-1])
    bias[vocab.OTHER] = vocab.other_bias
    return F.cross_entropy((logits + bias).reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


def make_batch(vocab, rng, size):
    inputs, targets = [], []
    for _ in range(size):
        n = sample_train_number(rng)
        src, tgt = example(n, "n2w" if rng.random() < 0.5 else "w2n")
        inputs.append(src)
        targets.append(tgt)
    input_ids, attention_mask = vocab.encode(inputs)
    labels, label_mask = vocab.encode(targets)
    labels[label_mask == 0] = -100
    return input_ids, attention_mask, labels


def zero_other_row(model, vocab):
    with torch.no_grad():
        model.shared.weight[vocab.OTHER].zero_()


def bf16_round_copy(model):
    clone = T5ForConditionalGeneration(model.config)
    clone.load_state_dict({k: v.to(torch.bfloat16).float() for k, v in model.state_dict().items()})
    clone.eval()
    return clone


@torch.no_grad()
def evaluate_small(model, vocab, rows, batch_size=250):
    """Greedy exact match per direction with the bf16-rounded restricted model (OTHER can win, logit 0)."""
    model = bf16_round_copy(model)
    hits = {"n2w": [0, 0], "w2n": [0, 0]}
    wrong = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        input_ids, attention_mask = vocab.encode([r[2] for r in chunk])
        gen = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=32,
                             do_sample=False, num_beams=1)
        for r, text in zip(chunk, vocab.decode(gen.tolist())):
            hits[r[0]][1] += 1
            if text == r[3]:
                hits[r[0]][0] += 1
            else:
                wrong.append((r[2], r[3], text))
    return {d: h / t for d, (h, t) in hits.items()}, wrong


# ----------------------------------------------------------------------------------------------------------------
# Saving the full-vocab model


def full_model_from_small(small, vocab):
    config = T5Config(**MODEL_KW)
    config.task_specific_params = {
        "numbers_to_words": {"prefix": PREFIX_N2W, "max_length": 48, "num_beams": 1},
        "words_to_numbers": {"prefix": PREFIX_W2N, "max_length": 48, "num_beams": 1},
    }
    full = T5ForConditionalGeneration(config)
    state = small.state_dict()
    new_state = {}
    for name, tensor in full.state_dict().items():
        src = state[name]
        if tensor.shape[0] == FULL_VOCAB and name.endswith("weight") and src.shape[0] == vocab.K + 1:
            big = torch.zeros_like(tensor)
            big[torch.tensor(vocab.full_ids)] = src[:vocab.K]
            new_state[name] = big
        else:
            assert src.shape == tensor.shape, name
            new_state[name] = src.clone()
    full.load_state_dict(new_state)
    return full


def save_model(small, vocab, out_dir=OUT_DIR):
    out_dir.mkdir(parents=True, exist_ok=True)
    full = full_model_from_small(small, vocab).to(torch.bfloat16)
    full.generation_config = GenerationConfig(decoder_start_token_id=0, eos_token_id=1, pad_token_id=0,
                                              max_length=48)
    for stale in out_dir.glob("model*.safetensors*"):
        stale.unlink()
    full.save_pretrained(out_dir)
    for name in TOKENIZER_FILES:
        shutil.copyfile(TOKENIZER_DIR / name, out_dir / name)
    return out_dir


@torch.no_grad()
def evaluate_saved(out_dir, rows, batch_size=250):
    """Greedy exact match with the saved bf16 weights loaded as float32 (what t5-web runs)."""
    tok = AutoTokenizer.from_pretrained(out_dir)
    model = T5ForConditionalGeneration.from_pretrained(out_dir, dtype=torch.float32).eval()
    hits = {"n2w": [0, 0], "w2n": [0, 0]}
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        enc = tok([r[2] for r in chunk], return_tensors="pt", padding=True)
        gen = model.generate(**enc, max_new_tokens=32, do_sample=False, num_beams=1)
        for r, text in zip(chunk, tok.batch_decode(gen, skip_special_tokens=True)):
            hits[r[0]][1] += 1
            hits[r[0]][0] += text.strip() == r[3]
    return {d: h / t for d, (h, t) in hits.items()}


# ----------------------------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=32.0, help="wall-clock budget for the training loop")
    ap.add_argument("--steps", type=int, default=12000, help="planned steps (sets the LR schedule)")
    ap.add_argument("--batch", type=int, default=96)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=400)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--eval-count", type=int, default=500, help="held-out examples per direction")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stop-at", type=int, default=0, help="stop (and save) after this step's evaluation")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--bench", type=int, default=0, help="only time this many steps")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    tok = AutoTokenizer.from_pretrained(TOKENIZER_DIR)
    t0 = time.time()
    vocab = Vocab(tok)
    print(f"task vocabulary: {vocab.K} tokens (+ OTHER), built in {time.time() - t0:.1f}s", flush=True)

    full_params = sum(p.numel() for p in T5ForConditionalGeneration(T5Config(**MODEL_KW)).parameters())
    print(f"full model: {full_params:,} parameters, {2 * full_params / 1e6:.2f} MB in bf16", flush=True)
    assert 2 * full_params < 10_000_000

    model = T5ForConditionalGeneration(small_config(vocab))
    zero_other_row(model, vocab)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "relative_attention_bias" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "relative_attention_bias" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98), eps=1e-8)

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        frac = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))

    step, elapsed_before, history = 0, 0.0, []
    rng = random.Random(args.seed)
    if args.resume and CKPT.exists():
        ck = torch.load(CKPT, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, elapsed_before, history = ck["step"], ck["elapsed"], ck["history"]
        rng.setstate(ck["rng"])
        torch.set_rng_state(ck["torch_rng"])
        print(f"resumed at step {step}, {elapsed_before / 60:.1f} min trained", flush=True)

    eval_rows = heldout_examples(args.eval_count, seed=12345)
    best = (-1.0, None)
    if history:
        best = max(((h["min_acc"], h["step"]) for h in history), key=lambda x: x[0])
    model.train()
    start = time.time()
    running = None
    budget = args.minutes * 60
    while True:
        elapsed = elapsed_before + time.time() - start
        if step >= args.steps or elapsed >= budget or (args.bench and step >= args.bench):
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        batch = make_batch(vocab, rng, args.batch)
        loss = loss_fn(model, vocab, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        zero_other_row(model, vocab)
        step += 1
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 100 == 0:
            print(f"step {step} loss {running:.4f} lr {lr_at(step):.2e} {elapsed / 60:.1f} min", flush=True)
        if step % args.eval_every == 0 and not args.bench:
            model.eval()
            t_eval = time.time()
            acc, wrong = evaluate_small(model, vocab, eval_rows)
            model.train()
            elapsed_total = elapsed_before + time.time() - start
            min_acc = min(acc.values())
            history.append({"step": step, "loss": running, "n2w": acc["n2w"], "w2n": acc["w2n"],
                            "min_acc": min_acc, "minutes": elapsed_total / 60})
            print(f"EVAL step {step}: n2w {acc['n2w']:.3f} w2n {acc['w2n']:.3f} (eval {time.time() - t_eval:.0f}s)"
                  f" wrong e.g. {wrong[:3]}", flush=True)
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                        "elapsed": elapsed_total, "history": history, "rng": rng.getstate(),
                        "torch_rng": torch.get_rng_state(), "full_ids": vocab.full_ids}, CKPT)
            if min_acc > best[0]:
                best = (min_acc, step)
                torch.save({"model": model.state_dict(), "step": step, "full_ids": vocab.full_ids},
                           CKPT.with_suffix(".best.pt"))
            if args.stop_at and step >= args.stop_at:
                print(f"--stop-at {args.stop_at}; stopping", flush=True)
                break
            if min_acc >= 0.998:
                print("held-out accuracy saturated; stopping", flush=True)
                break
            # plateau: no gain in the best min accuracy for 6 evaluations
            if len(history) >= 8 and step - best[1] >= 6 * args.eval_every and best[0] >= 0.95:
                print("held-out accuracy plateaued; stopping", flush=True)
                break
    trained = elapsed_before + time.time() - start
    print(f"trained {step} steps in {trained / 60:.1f} min ({trained / max(1, step):.3f} s/step)", flush=True)
    if args.bench:
        return

    best_ck = CKPT.with_suffix(".best.pt")
    if best_ck.exists():
        ck = torch.load(best_ck, weights_only=False)
        assert ck["full_ids"] == vocab.full_ids
        model.load_state_dict(ck["model"])
        print(f"using the best checkpoint: step {ck['step']}", flush=True)
    model.eval()
    out = save_model(model, vocab)
    acc = evaluate_saved(out, eval_rows)
    print(f"saved {out}; bf16 reloaded as float32, {args.eval_count} held-out per direction: "
          f"n2w {acc['n2w']:.4f} w2n {acc['w2n']:.4f}", flush=True)


if __name__ == "__main__":
    main()
