#!/usr/bin/env python3
"""Quantization fixtures of t5-web: transformers (PyTorch) on quantized-then-dequantized weights.

Run by hand after scripts/make_fixtures.py (same venv, no network):

    /tmp/pyenv/bin/python scripts/make_quant_fixtures.py

The engine's load-time quantization (crates/t5-core/src/quant.rs) is reimplemented here with torch ops in the same
order, so the codes, scales and zero points are bit-identical (tested in crates/t5-core/tests/quant.rs on stored
packed data). torchao is not installed in the fixture venv; the formulas are torchao's:

  q4  Int4WeightOnlyConfig(group_size=128), the tinygemm affine form (_choose_qparams_affine_tinygemm +
      _quantize_affine_tinygemm + _dequantize_affine_tinygemm): per group of 128 along the input dim,
      scale = clamp((max - min) / 15, min=1e-6), zero = min + scale * 8,
      q = clamp(round((w - (zero - scale * 8)) / scale), 0, 15), w' = (q - 8) * scale + zero   (all float32)
  q8  Int8WeightOnlyConfig: symmetric per output channel (choose_qparams_affine SYMMETRIC, int8, eps = f32 eps),
      scale = clamp(amax / 127.5, min=eps), q = clamp(round(w * (1 / scale)), -128, 127), w' = q * scale
  fp16 / bf16: round to nearest even; fp16 keeps every `wo` in float32 (T5's _keep_in_fp32_modules).

Which tensors: every 2-D `*.weight` of the checkpoint except relative_attention_bias (attention q/k/v/o,
feed-forward wi/wi_0/wi_1/wo, shared, lm_head when untied; a tied head is `shared`). q4 falls back to q8 for a
tensor whose input dim is not a multiple of 128. Quantization runs on the float32 (upcast) weights.

Written under test/fixtures/:
  tiny-t5-q128/           a T5 v1.1-style checkpoint (gated-gelu, tied embeddings) whose dims are multiples of 128:
                          d_model 128, d_kv 32, 4 heads, d_ff 256, 2+2 layers, vocab 384 (no tokenizer), bf16.
  quant/<model>.json      per dtype: inputs, fallbacks, fp64_diff, greedy ids (+ min_top_gap), tolerance rule.
  quant/<model>.safetensors  per dtype `<dtype>.logits` (tiny-t5*: batch row 0 only, vocab 32128),
                          `<dtype>.encoder_last_hidden_state`, and packed reference data of two tensors.

Tolerance rule: |ours - oracle| <= 1e-4 + 4 * fp64_diff[name] (the dequantized model run in float64 vs float32).
"""

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

import transformers
from transformers import DynamicCache, EncoderDecoderCache, T5Config, T5EncoderModel, T5ForConditionalGeneration

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "test" / "fixtures"
OUT = FIX / "quant"
GROUP = 128
MAX_NEW_TOKENS = 8
TOLERANCE_RULE = "|ours - oracle| <= 1e-4 + 4 * fp64_diff[name] (elementwise, float32 oracle); greedy exact when min_top_gap > 1e-3"


# ---------------------------------------------------------------------------------------------------------------
# the schemes (same op order as crates/t5-core/src/quant.rs)


def q4_quant(w):
    n, k = w.shape
    g = w.reshape(n, k // GROUP, GROUP)
    mn, mx = g.amin(-1), g.amax(-1)
    scale = torch.clamp((mx - mn) / float(15 - 0), min=1e-6)
    zero = mn + scale * 8.0
    min_val = zero - scale * 8.0
    q = torch.clamp(torch.round((g - min_val[..., None]) / scale[..., None]), 0, 15)
    deq = (q - 8.0) * scale[..., None] + zero[..., None]
    return q.to(torch.uint8).reshape(n, k), scale, zero, deq.reshape(n, k)


def q4_pack(q):
    """[n, k] codes -> [n, k/2] bytes: per 64-weight chunk, byte i = q[i] | q[32 + i] << 4."""
    n, k = q.shape
    c = q.reshape(n, k // 64, 2, 32)
    return (c[:, :, 0, :] | (c[:, :, 1, :] << 4)).reshape(n, k // 2).contiguous()


def q8_quant(w):
    amax = torch.max(-torch.clamp(w.amin(-1), max=0), torch.clamp(w.amax(-1), min=0))
    scale = torch.clamp(amax / (float(127 - (-128)) / 2), min=torch.finfo(torch.float32).eps)
    q = torch.clamp(torch.round(w * (1.0 / scale[:, None])), -128, 127)
    return q.to(torch.int8), scale, q * scale[:, None]


def storage_for(dtype, name, k):
    if dtype == "q4" and k % GROUP != 0:
        return "q8"
    if dtype == "fp16" and name.endswith(".wo.weight"):
        return "fp32"
    return dtype


def is_linear(name, t):
    return t.dim() == 2 and name.endswith(".weight") and "relative_attention_bias" not in name


def convert(w, dtype):
    if dtype == "fp32":
        return w
    if dtype == "fp16":
        return w.to(torch.float16).to(torch.float32)
    if dtype == "bf16":
        return w.to(torch.bfloat16).to(torch.float32)
    if dtype == "q8":
        return q8_quant(w)[2]
    if dtype == "q4":
        return q4_quant(w)[3]
    raise ValueError(dtype)


def checkpoint_tensors(model_dir):
    from safetensors import safe_open
    names = []
    for f in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(f), "pt") as sf:
            names += list(sf.keys())
    return names


def quantized_model(model_dir, dtype, cls=T5ForConditionalGeneration):
    """The float32 model with every checkpoint linear weight replaced by its dequantized `dtype` form."""
    m = cls.from_pretrained(model_dir, dtype=torch.float32).eval()
    sd = m.state_dict()
    fallbacks = []
    with torch.no_grad():
        for name in checkpoint_tensors(model_dir):
            if name not in sd:
                continue
            t = sd[name]
            if not is_linear(name, t):
                continue
            got = storage_for(dtype, name, t.shape[1])
            if got != dtype:
                fallbacks.append([name, got])
            t.copy_(convert(t.float(), got))
    # a tied head shares `shared.weight`, so it sees the same quantized values
    return m, fallbacks


# ---------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def run(model_dir, dtype, ids, mask, dec, row0_only):
    out = {}
    gaps = None
    for prec in (torch.float32, torch.float64):
        gen, fallbacks = quantized_model(model_dir, dtype)
        enc, _ = quantized_model(model_dir, dtype, T5EncoderModel)
        gen, enc = gen.to(prec), enc.to(prec)
        logits = gen(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
        if row0_only:
            logits = logits[:1]
        hidden = enc(input_ids=ids, attention_mask=mask).last_hidden_state
        out[prec] = {"logits": logits, "encoder_last_hidden_state": hidden}
        if prec is torch.float32:
            g = gen.generate(ids, attention_mask=mask, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, num_beams=1,
                             output_logits=True, return_dict_in_generate=True,
                             cache=EncoderDecoderCache(DynamicCache(), DynamicCache()))
            seqs = g.sequences
            eos = 1
            gaps, done = [], torch.zeros(seqs.shape[0], dtype=torch.bool)
            for step, lg in enumerate(g.logits):
                top2 = lg.float().topk(2, dim=-1).values
                for r in range(seqs.shape[0]):
                    if not done[r]:
                        gaps.append(float(top2[r, 0] - top2[r, 1]))
                done |= seqs[:, step + 1] == eos
            greedy = {"max_new_tokens": MAX_NEW_TOKENS, "sequences": seqs.tolist(), "min_top_gap": min(gaps)}
            fb = fallbacks
    t32 = {k: v.float().contiguous() for k, v in out[torch.float32].items()}
    diff = {k: float((out[torch.float64][k] - out[torch.float32][k].double()).abs().max()) for k in t32}
    return t32, diff, greedy, fb


def make_q128():
    cfg = T5Config(vocab_size=384, d_model=128, d_kv=32, num_heads=4, d_ff=256, num_layers=2, num_decoder_layers=2,
                   relative_attention_num_buckets=32, relative_attention_max_distance=128,
                   feed_forward_proj="gated-gelu", tie_word_embeddings=True, dropout_rate=0.1,
                   layer_norm_epsilon=1e-6, initializer_factor=1.0, decoder_start_token_id=0, pad_token_id=0,
                   eos_token_id=1, architectures=["T5ForConditionalGeneration"])
    torch.manual_seed(0)
    m = T5ForConditionalGeneration(cfg).eval()
    d = FIX / "tiny-t5-q128"
    shutil.rmtree(d, ignore_errors=True)
    m.to(torch.bfloat16).save_pretrained(d)
    return d


def main():
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    OUT.mkdir(parents=True, exist_ok=True)
    for f in OUT.glob("*"):
        f.unlink()
    q128 = make_q128()
    g = torch.Generator().manual_seed(1)
    q128_ids = torch.randint(2, 384, (3, 10), generator=g)
    q128_ids[:, -1] = 1
    q128_mask = torch.ones_like(q128_ids)
    q128_ids[2, 6:] = 0
    q128_ids[2, 5] = 1
    q128_mask[2, 6:] = 0
    q128_dec = torch.cat([torch.zeros(3, 1, dtype=torch.long), torch.randint(2, 384, (3, 5), generator=g)], 1)

    plans = [
        ("tiny-t5", ["q8", "q4", "fp16"], True),
        ("tiny-t5-v1_1", ["q8", "fp16"], True),
        ("tiny-t5-q128", ["q4", "q8", "bf16", "fp16"], False),
    ]
    for name, dtypes, row0 in plans:
        model_dir = FIX / name
        if name == "tiny-t5-q128":
            ids, mask, dec = q128_ids, q128_mask, q128_dec
        else:
            o = json.loads((FIX / "oracle" / f"{name}.json").read_text())
            ids, mask, dec = (torch.tensor(o[k]) for k in ("input_ids", "attention_mask", "decoder_input_ids"))
        doc = {"model": name, "tolerance_rule": TOLERANCE_RULE, "group_size": GROUP,
               "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
               "input_ids": ids.tolist(), "attention_mask": mask.tolist(), "decoder_input_ids": dec.tolist(),
               "logits_rows": "batch row 0 only" if row0 else "all rows", "dtypes": {}}
        tensors = {}
        for dt in dtypes:
            t32, diff, greedy, fb = run(model_dir, dt, ids, mask, dec, row0)
            for k, v in t32.items():
                tensors[f"{dt}.{k}"] = v
            doc["dtypes"][dt] = {"fp64_diff": diff, "greedy": greedy, "fallbacks": fb}
            print(f"{name} {dt}: fp64_diff {diff} gap {greedy['min_top_gap']:.3g} fallbacks {len(fb)}")
        # packed reference data: bit-identical quantization
        sd = T5ForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).state_dict()
        if name == "tiny-t5-q128":
            for t in ["decoder.block.1.layer.2.DenseReluDense.wo.weight", "shared.weight"]:
                q, s, z, _ = q4_quant(sd[t].float())
                tensors[f"packed.q4.{t}.qweight"] = q4_pack(q)
                tensors[f"packed.q4.{t}.scales"] = s.contiguous()
                tensors[f"packed.q4.{t}.zeros"] = z.contiguous()
            t = "encoder.block.0.layer.0.SelfAttention.q.weight"
            q, s, _ = q8_quant(sd[t].float())
            tensors[f"packed.q8.{t}.qweight"] = q.contiguous()
            tensors[f"packed.q8.{t}.scales"] = s.contiguous()
        if name == "tiny-t5":
            t = "shared.weight"
            q, s, _ = q8_quant(sd[t].float())
            tensors[f"packed.q8.{t}.qweight"] = q.contiguous()
            tensors[f"packed.q8.{t}.scales"] = s.contiguous()
        save_file(tensors, str(OUT / f"{name}.safetensors"), metadata={"format": "pt"})
        (OUT / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    for p in sorted(list(OUT.glob("*")) + list(q128.glob("*"))):
        print(f"  {p.stat().st_size:>10}  {p.relative_to(FIX)}")


if __name__ == "__main__":
    main()
