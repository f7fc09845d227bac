#!/usr/bin/env python3
"""fp16 overflow fixture of t5-web: a tiny T5 v1.1-style checkpoint whose activations overflow float16, and
transformers' float16 outputs on it (the oracle of the fp16 paths, CPU and WebGPU).

    /tmp/pyenv/bin/python scripts/make_fp16_fixtures.py

T5 overflows in float16. transformers guards it two ways (modeling_t5.py):
  * `_keep_in_fp32_modules = ["wo"]`: the feed-forward output projection `wo` stays float32 and its input is cast
    up, so its output (and from then on the residual stream, float16 + float32 -> float32) is float32;
  * T5Block clamps float16 hidden states to +-(finfo(float16).max - 1000) when any value is inf (after the
    self-attention, the cross-attention and the feed-forward layers), which matters while the residual stream is
    still float16 (block 0, before its feed-forward).

The checkpoint (test/fixtures/tiny-t5-fp16-overflow/, float32 file holding float16-representable values, vocab 512,
d_model 32, 4 heads x 8, gated-gelu d_ff 48, 2 + 2 layers, initializer_factor 1.5, untied lm_head) is transformers'
random init (the first seed from 0 that passes the checks in main) with encoder weights scaled so that both guards
are needed:
  * encoder block 0 `SelfAttention.o` scaled to a largest |weight| of O_SCALE, `v` x V_SCALE: the attention output overflows float16 -> inf ->
    clamped by T5Block (without the clamp: inf -> nan in the next layer norm);
  * encoder block 1 `DenseReluDense.wo` scaled to a largest |weight| of WO_SCALE, `wi_1` x WI_SCALE: the feed-forward output exceeds 65504 -> inf in a
    float16 `wo` (the residual stream is float32 by then, so the clamp does not apply and nan follows), finite in
    the float32 `wo`.

Oracle (test/fixtures/oracle/tiny-t5-fp16-overflow.json + .safetensors):
  * guarded: from_pretrained(dtype=torch.float16, attn_implementation="eager") as shipped (wo float32, clamp on): logits (float16 values stored
    as float32) for decoder_input_ids, greedy ids (generate, max_new_tokens, stepwise with the cache), finite;
  * unguarded: every `wo` cast to float16 after loading (what `_keep_in_fp32_modules = None` means) and the clamp removed: non-finite counts recorded (> 0);
  * each guard alone: wo_fp32_clamp_off has non-finite logits (the clamp is needed); wo_fp16_clamp_on stays finite
    (with a float16 wo the stream stays float16 and the clamp catches the wo overflow) but its logits are far from
    the guarded ones (max_abs_wo_fp16_clamp_on_minus_guarded > 1: clamped values lose the wo output);
  * fp32: the same weights in float32 (shows how far float16 numerics move the logits: not an oracle).
Tolerance (stated, fp16 numerics): |ours - oracle| <= ATOL + RTOL * |oracle| elementwise on the logits; greedy ids
identical (min_top_gap recorded). CPU only, deterministic; rerunning writes identical files.
"""

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

import transformers
from transformers import T5Config, T5ForConditionalGeneration
from transformers.models.t5 import modeling_t5

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "test" / "fixtures"
NAME = "tiny-t5-fp16-overflow"
O_SCALE = 30000.0  # largest |o| weight of block 0
WO_SCALE = 30000.0  # largest |wo| weight of block 1
SCALED_STACKS = ("encoder",)  # scaled decoder layers drown the cross-attention: both rows generate the same
V_SCALE = 6.0  # block 0 v: part (not all) of the attention output overflows
WI_SCALE = 20.0  # block 1 wi_1 (the gated product grows, stays far below 65504)
# 2 float16 ulps at 0.5, 4 ulps relative: the engine rounds where transformers' eager float16 forward rounds, so only
# a rare one-ulp flip (float32 sums in another order, tanh / exp of another libm) remains; transformers' own sdpa
# and eager float16 attention differ far more on this fixture (max_abs_sdpa_minus_eager)
ATOL = 2.0**-10
RTOL = 2.0**-8
MAX_NEW = 8

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


def config():
    return T5Config(
        vocab_size=512, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=2, num_heads=4,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
        dropout_rate=0.0, initializer_factor=1.5, tie_word_embeddings=False, scale_decoder_outputs=False,
        decoder_start_token_id=0, eos_token_id=1, pad_token_id=0,
    )


INPUT_IDS = [[37, 423, 81, 19, 300, 7, 55, 1], [91, 12, 250, 1, 0, 0, 0, 0]]
ATTENTION_MASK = [[1] * 8, [1, 1, 1, 1, 0, 0, 0, 0]]
DECODER_INPUT_IDS = [[0, 44, 9, 301, 17], [0, 5, 200, 2, 64]]


class _NoClamp:
    """modeling_t5's `torch` with clamp removed (the unguarded runs)."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def clamp(x, min=None, max=None):
        return x


def run(model_dir, dtype, keep_wo_fp32=True, clamp=True, attn="eager"):
    saved_torch = modeling_t5.torch
    try:
        if not clamp:
            modeling_t5.torch = _NoClamp()
        # eager: modeling_t5's own attention (float16 scores, probabilities and outputs), the float16 numerics the
        # engine reproduces; the default sdpa kernel computes the attention in float32 on the CPU
        m = T5ForConditionalGeneration.from_pretrained(model_dir, dtype=dtype, attn_implementation=attn).eval()
        if not keep_wo_fp32:  # what `_keep_in_fp32_modules = None` would give: every wo in float16
            for name, mod in m.named_modules():
                if name.endswith(".wo"):
                    mod.half()
        wo = m.encoder.block[0].layer[1].DenseReluDense.wo.weight.dtype
        ids = torch.tensor(INPUT_IDS)
        mask = torch.tensor(ATTENTION_MASK)
        dec = torch.tensor(DECODER_INPUT_IDS)
        with torch.no_grad():
            logits = m(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
            g = m.generate(input_ids=ids, attention_mask=mask, max_new_tokens=MAX_NEW, do_sample=False, num_beams=1,
                           output_scores=True, return_dict_in_generate=True, min_new_tokens=0)
        gaps = []
        for s in g.scores:
            s = s.float()
            if torch.isfinite(s).all():
                t = s.topk(2, dim=-1).values
                gaps.append((t[:, 0] - t[:, 1]).min().item())
        return logits.float(), g.sequences.tolist(), (min(gaps) if gaps else None), str(wo)
    finally:
        modeling_t5.torch = saved_torch


def make_checkpoint(seed, d):
    torch.manual_seed(seed)
    m = T5ForConditionalGeneration(config()).eval()
    sd = {k: v.detach().clone() for k, v in m.state_dict().items()}
    for stack in SCALED_STACKS:
        o = sd[f"{stack}.block.0.layer.0.SelfAttention.o.weight"]
        o *= O_SCALE / o.abs().max()
        sd[f"{stack}.block.0.layer.0.SelfAttention.v.weight"] *= V_SCALE
        ff = 1 if stack == "encoder" else 2
        wo = sd[f"{stack}.block.1.layer.{ff}.DenseReluDense.wo.weight"]
        wo *= WO_SCALE / wo.abs().max()
        sd[f"{stack}.block.1.layer.{ff}.DenseReluDense.wi_1.weight"] *= WI_SCALE
    # float16-representable values (every dtype path loads the same numbers), stored as float32
    sd = {k: v.half().float().contiguous() for k, v in sd.items()}
    for k in list(sd):
        if k in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
            del sd[k]  # tied to shared.weight
    d.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(d / "model.safetensors"), metadata={"format": "pt"})
    m.config.save_pretrained(d)
    m.generation_config.save_pretrained(d)
    return sd


def nonfinite(t):
    return int((~torch.isfinite(t)).sum().item())


def main():
    d = FIX / NAME
    for seed in range(50):
        make_checkpoint(seed, d)
        guarded, greedy, gap, wo_dtype = run(d, torch.float16)
        assert wo_dtype == "torch.float32", wo_dtype
        unguarded, _, _, wo16 = run(d, torch.float16, keep_wo_fp32=False, clamp=False)
        assert wo16 == "torch.float16"
        wo16_clamp, _, _, _ = run(d, torch.float16, keep_wo_fp32=False, clamp=True)
        wo32_noclamp, _, _, _ = run(d, torch.float16, keep_wo_fp32=True, clamp=False)
        fp32, greedy32, _, _ = run(d, torch.float32)
        sdpa, _, _, _ = run(d, torch.float16, attn="sdpa")
        distinct = len({t for row in greedy for t in row})
        ok = (nonfinite(guarded) == 0 and nonfinite(unguarded) > 0 and nonfinite(wo16_clamp) == 0
              and nonfinite(wo32_noclamp) > 0 and (wo16_clamp - guarded).abs().max().item() > 1.0 and gap is not None and gap > 0.05 and distinct >= 4 and greedy[0] != greedy[1])
        print(f"seed {seed}: guarded finite {nonfinite(guarded) == 0}, unguarded nonfinite {nonfinite(unguarded)}, "
              f"wo16+clamp {nonfinite(wo16_clamp)}, wo32 no clamp {nonfinite(wo32_noclamp)}, gap {gap}, distinct {distinct}, rows differ {greedy[0] != greedy[1]}, wo16 diff {(wo16_clamp - guarded).abs().max().item():.3g}")
        if ok:
            break
    else:
        raise SystemExit("no seed gives the overflow fixture")
    # how much the clamp moved things: the encoder's block-0 attention output overflows
    doc = {
        "model": NAME,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "seed": seed,
        "o_scale": O_SCALE,
        "wo_scale": WO_SCALE,
        "wi_scale": WI_SCALE,
        "v_scale": V_SCALE,
        "input_ids": INPUT_IDS,
        "attention_mask": ATTENTION_MASK,
        "decoder_input_ids": DECODER_INPUT_IDS,
        "greedy": {"max_new_tokens": MAX_NEW, "sequences": greedy, "min_top_gap": gap},
        "greedy_fp32": greedy32,
        "attn_implementation": "eager",
        "tolerance": {"atol": ATOL, "rtol": RTOL, "rule": "|ours - oracle| <= atol + rtol * |oracle| on the fp16 logits; greedy ids identical"},
        "nonfinite_logits": {
            "guarded": nonfinite(guarded),
            "unguarded": nonfinite(unguarded),
            "wo_fp16_clamp_on": nonfinite(wo16_clamp),
            "wo_fp32_clamp_off": nonfinite(wo32_noclamp),
            "numel": guarded.numel(),
        },
        "max_abs_wo_fp16_clamp_on_minus_guarded": (wo16_clamp - guarded).abs().max().item(),
        "max_abs_sdpa_minus_eager": (sdpa - guarded).abs().max().item(),
        "max_abs_logit": guarded.abs().max().item(),
        "max_abs_fp16_minus_fp32": (guarded - fp32).abs().max().item(),
    }
    out = FIX / "oracle"
    (out / f"{NAME}.json").write_text(json.dumps(doc, indent=1) + "\n")
    save_file({"logits": guarded.contiguous(), "logits_fp32": fp32.contiguous()}, str(out / f"{NAME}.safetensors"), metadata={"format": "pt"})
    print(json.dumps({k: doc[k] for k in ("seed", "greedy", "nonfinite_logits", "max_abs_logit", "max_abs_fp16_minus_fp32", "max_abs_sdpa_minus_eager")}))


if __name__ == "__main__":
    main()
