#!/usr/bin/env python3
"""GGUF fixtures of t5-web: T5 GGUF files as llama.cpp writes them, and transformers run on their dequantized weights.

Run by hand after scripts/make_quant_fixtures.py (same venv, `pip install gguf`, no network):

    /tmp/pyenv/bin/python scripts/make_gguf_fixtures.py

The model is cut from the committed test/fixtures/tiny-t5-q128 checkpoint (bf16, gated-gelu, tied embeddings) so the
files stay small: the first 64 of d_model, the first 16 of each head's 32 dims (4 heads), the first 32 of d_ff, the
first 64 vocabulary rows, encoder block 0 and decoder block 0; v / o / wi_0 / wi_1 / wo scaled by 8 (see GAIN). It is saved as test/fixtures/gguf/tiny-t5-gguf/
(config.json + model.safetensors, float32) and written as GGUF with the `gguf` package (GGUFWriter) exactly as
llama.cpp's convert_hf_to_gguf.py (class T5Model) does: general.architecture "t5", the t5.* hyperparameter keys
(context_length, embedding_length, feed_forward_length, block_count, decoder_block_count, attention.head_count,
attention.key_length / value_length, attention.layer_norm_epsilon / layer_norm_rms_epsilon,
attention.relative_buckets_count, decoder_start_token_id), the tensor names of gguf's TensorNameMap for MODEL_ARCH.T5
(token_embd, enc.blk.N.attn_q ..., dec.blk.N.cross_attn_*, enc/dec.output_norm), 1-D tensors in F32 and every 2-D
tensor in the file type, quantized with gguf.quants (the bytes llama.cpp makes); a 2-D tensor whose rows are not a
multiple of the 32-wide block (attn_rel_b, [32 buckets, 4 heads]) falls back to F16 as convert_hf_to_gguf does.

Files under test/fixtures/gguf/:
  tiny-t5-gguf/                   config.json, generation_config.json, model.safetensors (bf16): the same model
  tiny-t5-<type>.gguf             type in f32, f16, bf16, q8_0, q4_0, q4_1
  tiny-t5-untied-q4_1.gguf        the same with an untied head (`output` = other vocabulary rows of tiny-t5-q128)
  tiny-t5encoder-q4_0.gguf        the encoder only, architecture "t5encoder" (as convert_hf_to_gguf's T5EncoderModel)
  llama.gguf                      a tiny GGUF of another architecture (general.architecture "llama")
  oracle.json / oracle.safetensors   per type: transformers (float32) on the GGUF's dequantized weights
                                  (gguf.quants.dequantize): `<type>.logits` (all rows), `<type>.encoder_last_hidden_state`,
                                  fp64_diff (the same weights in float64 vs float32), greedy ids (+ min_top_gap).

Tolerance rule: |ours - oracle| <= 1e-4 + 4 * fp64_diff[name].
"""

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

import gguf
import transformers
from transformers import DynamicCache, EncoderDecoderCache, T5Config, T5EncoderModel, T5ForConditionalGeneration

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "test" / "fixtures"
OUT = FIX / "gguf"
MODEL = OUT / "tiny-t5-gguf"
MAX_NEW_TOKENS = 8
TOLERANCE_RULE = "|ours - oracle| <= 1e-4 + 4 * fp64_diff[name] (elementwise, float32 oracle); greedy exact when min_top_gap > 1e-3"
Q = gguf.GGMLQuantizationType
TYPES = {"f32": Q.F32, "f16": Q.F16, "bf16": Q.BF16, "q8_0": Q.Q8_0, "q4_0": Q.Q4_0, "q4_1": Q.Q4_1}
FILE_TYPES = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16, "bf16": gguf.LlamaFileType.MOSTLY_BF16,
              "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
              "q4_1": gguf.LlamaFileType.MOSTLY_Q4_1}

# d_ff 32: the feed-forward output rows (ffn_down, 32 long) are not a multiple of 64, so the engine's fallbacks for
# them (Q4_0 as int8 blocks, Q4_1 as f32) are exercised too
D, HEADS, DKV, FF, VOCAB = 64, 4, 16, 32, 64
# With the initial weights' small layers the residual stream carries the input embedding through and the tied head
# keeps predicting the input token (greedy = all pad); the value, output and feed-forward projections are scaled
# by GAIN (a power of two: still bf16-exact) so greedy decoding produces varied ids.
SEED = int(__import__("os").environ.get("SEED", "3"))
GAIN = 8.0
GAINED = (".v.weight", ".o.weight", "wi_0.weight", "wi_1.weight", "wo.weight")


def make_config(tied=True):
    cfg = T5Config(vocab_size=VOCAB, d_model=D, d_kv=DKV, num_heads=HEADS, d_ff=FF, num_layers=1, num_decoder_layers=1,
                    relative_attention_num_buckets=32, relative_attention_max_distance=128,
                    feed_forward_proj="gated-gelu", tie_word_embeddings=tied, dropout_rate=0.1,
                    layer_norm_epsilon=1e-6, initializer_factor=1.0, decoder_start_token_id=0, pad_token_id=0,
                    eos_token_id=1, n_positions=512, architectures=["T5ForConditionalGeneration"])
    cfg.tie_word_embeddings = tied  # (the constructor argument does not stick in transformers 5.24)
    return cfg


def cut_model():
    """tiny-t5-q128 cut down to D / HEADS x DKV / FF / VOCAB and one encoder + one decoder block; plus an untied
    head cut from other vocabulary rows (for the untied variant)."""
    src = T5ForConditionalGeneration.from_pretrained(FIX / "tiny-t5-q128", dtype=torch.float32).state_dict()
    src_dkv = 32
    inner = torch.cat([torch.arange(h * src_dkv, h * src_dkv + DKV) for h in range(HEADS)])
    cfg = make_config()
    m = T5ForConditionalGeneration(cfg).eval()
    sd = {}
    for name, t in m.state_dict().items():
        if name in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"):
            continue
        s = src[name]
        if name == "shared.weight":
            s = s[:VOCAB, :D]
        elif "relative_attention_bias" in name:
            s = s[:, :HEADS]
        elif name.endswith("layer_norm.weight"):
            s = s[:D]
        elif any(name.endswith(f".{p}.weight") for p in ("q", "k", "v")):
            s = s[inner][:, :D]
        elif name.endswith(".o.weight"):
            s = s[:D][:, inner]
        elif name.endswith(("wi_0.weight", "wi_1.weight")):
            s = s[:FF, :D]
        elif name.endswith("wo.weight"):
            s = s[:D, :FF]
        assert s.shape == t.shape, (name, s.shape, t.shape)
        if name.endswith(GAINED):
            s = s * GAIN
        sd[name] = s.contiguous()
    m.load_state_dict(sd, strict=False)
    m.tie_weights()
    shutil.rmtree(MODEL, ignore_errors=True)
    # bf16 on disk: the cut weights are bf16 values (GAIN is a power of two), so nothing rounds
    m.to(torch.bfloat16).save_pretrained(MODEL)
    lm_head = src["shared.weight"][VOCAB:2 * VOCAB, :D].contiguous()
    return cfg, {k: v.numpy() for k, v in sd.items()}, lm_head.numpy()


def gguf_name(hf_name, tmap):
    base = hf_name[: -len(".weight")]
    name = tmap.get_name(base)
    assert name is not None, hf_name
    return name + ".weight"


def write_gguf(path, cfg, sd, type_name, arch=gguf.MODEL_ARCH.T5):
    qtype = TYPES[type_name]
    tmap = gguf.get_tensor_name_map(arch, cfg.num_layers)
    w = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[arch])
    encoder_only = arch == gguf.MODEL_ARCH.T5ENCODER
    # as convert_hf_to_gguf.py T5Model.set_gguf_parameters
    w.add_context_length(cfg.n_positions)
    w.add_embedding_length(cfg.d_model)
    w.add_feed_forward_length(cfg.d_ff)
    w.add_block_count(cfg.num_layers)
    if not encoder_only:
        w.add_decoder_block_count(cfg.num_decoder_layers)
    w.add_head_count(cfg.num_heads)
    w.add_key_length(cfg.d_kv)
    w.add_value_length(cfg.d_kv)
    w.add_layer_norm_eps(cfg.layer_norm_epsilon)
    w.add_relative_attn_buckets_count(cfg.relative_attention_num_buckets)
    w.add_layer_norm_rms_eps(cfg.layer_norm_epsilon)
    if not encoder_only:
        w.add_decoder_start_token_id(cfg.decoder_start_token_id)
    w.add_file_type(FILE_TYPES[type_name])
    # the special ids gguf.SpecialVocab writes (the model has no real tokenizer: vocabulary of 128 cut rows)
    w.add_eos_token_id(cfg.eos_token_id)
    w.add_pad_token_id(cfg.pad_token_id)
    types = {}
    for hf_name, arr in sd.items():
        if encoder_only and hf_name.startswith("decoder."):
            continue
        name = gguf_name(hf_name, tmap)
        arr = arr.astype(np.float32)
        t = qtype
        if arr.ndim <= 1:
            t = Q.F32
        elif t not in (Q.F32, Q.F16, Q.BF16) and arr.shape[-1] % 32 != 0:
            t = Q.F16
        if t == Q.F32:
            data = arr
        elif t == Q.F16:
            data = arr.astype(np.float16)
        else:
            data = gguf.quants.quantize(arr, t)
        w.add_tensor(name, data, raw_dtype=t if t not in (Q.F32, Q.F16) else None)
        types[name] = t.name
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return types


def read_back(path, cfg, arch=gguf.MODEL_ARCH.T5):
    """The GGUF's tensors dequantized by gguf.quants, under transformers' names."""
    tmap = gguf.get_tensor_name_map(arch, cfg.num_layers)
    r = gguf.GGUFReader(str(path))
    assert r.fields["general.architecture"].contents() == gguf.MODEL_ARCH_NAMES[arch]
    back = {}
    hf_names = [n for n in T5ForConditionalGeneration(cfg).state_dict()]
    by_gguf = {}
    for n in hf_names:
        if n in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight") or (n == "lm_head.weight" and cfg.tie_word_embeddings):
            continue
        if arch == gguf.MODEL_ARCH.T5ENCODER and n.startswith(("decoder.", "lm_head.")):
            continue
        by_gguf[gguf_name(n, tmap)] = n
    for t in r.tensors:
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))
        arr = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(shape).astype(np.float32)
        back[by_gguf[t.name]] = torch.from_numpy(arr.copy())
    return back


@torch.no_grad()
def run(cfg, weights, ids, mask, dec):
    out, greedy = {}, None
    # T5's encoder and decoder embed with `shared`; transformers 5 ties them only when the head is tied too
    weights = dict(weights, **{"encoder.embed_tokens.weight": weights["shared.weight"], "decoder.embed_tokens.weight": weights["shared.weight"]})
    for prec in (torch.float32, torch.float64):
        gen = T5ForConditionalGeneration.from_pretrained(MODEL, dtype=torch.float32, config=cfg).eval()
        assert gen.config.tie_word_embeddings == cfg.tie_word_embeddings
        missing, _ = gen.load_state_dict(weights, strict=False)
        assert set(missing) <= ({"lm_head.weight"} if cfg.tie_word_embeddings else set()), missing
        gen.tie_weights()
        enc = T5EncoderModel.from_pretrained(MODEL, dtype=torch.float32).eval()
        enc.load_state_dict({k: v for k, v in weights.items() if not k.startswith(("decoder.", "lm_head."))}, strict=False)
        enc.tie_weights()
        gen, enc = gen.to(prec), enc.to(prec)
        logits = gen(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
        hidden = enc(input_ids=ids, attention_mask=mask).last_hidden_state
        out[prec] = {"logits": logits, "encoder_last_hidden_state": hidden}
        if prec is torch.float32:
            g = gen.generate(ids, attention_mask=mask, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, num_beams=1,
                             output_logits=True, return_dict_in_generate=True,
                             cache=EncoderDecoderCache(DynamicCache(), DynamicCache()))
            seqs = g.sequences
            gaps, done = [], torch.zeros(seqs.shape[0], dtype=torch.bool)
            for step, lg in enumerate(g.logits):
                top2 = lg.float().topk(2, dim=-1).values
                for r_ in range(seqs.shape[0]):
                    if not done[r_]:
                        gaps.append(float(top2[r_, 0] - top2[r_, 1]))
                done |= seqs[:, step + 1] == cfg.eos_token_id
            greedy = {"max_new_tokens": MAX_NEW_TOKENS, "sequences": seqs.tolist(), "min_top_gap": min(gaps)}
    t32 = {k: v.float().contiguous() for k, v in out[torch.float32].items()}
    diff = {k: float((out[torch.float64][k] - out[torch.float32][k].double()).abs().max()) for k in t32}
    return t32, diff, greedy


def write_llama(path):
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(64)
    w.add_embedding_length(32)
    w.add_block_count(1)
    w.add_head_count(4)
    w.add_tensor("token_embd.weight", np.zeros((8, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, gguf {gguf.__version__ if hasattr(gguf, '__version__') else '?'}")
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    cfg, sd, lm_head = cut_model()
    g = torch.Generator().manual_seed(SEED)
    ids = torch.randint(2, VOCAB, (3, 10), generator=g)
    ids[:, -1] = 1
    mask = torch.ones_like(ids)
    ids[2, 6:] = 0
    ids[2, 5] = 1
    mask[2, 6:] = 0
    dec = torch.cat([torch.zeros(3, 1, dtype=torch.long), torch.randint(2, VOCAB, (3, 5), generator=g)], 1)
    doc = {"model": "tiny-t5-gguf", "tolerance_rule": TOLERANCE_RULE,
           "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
           "input_ids": ids.tolist(), "attention_mask": mask.tolist(), "decoder_input_ids": dec.tolist(), "types": {}}
    tensors = {}
    for type_name in TYPES:
        path = OUT / f"tiny-t5-{type_name}.gguf"
        types = write_gguf(path, cfg, sd, type_name)
        weights = read_back(path, cfg)
        t32, diff, greedy = run(cfg, weights, ids, mask, dec)
        for k, v in t32.items():
            tensors[f"{type_name}.{k}"] = v
        doc["types"][type_name] = {"file": path.name, "tensor_types": types, "fp64_diff": diff, "greedy": greedy}
        print(f"{type_name}: fp64_diff {diff} gap {greedy['min_top_gap']:.3g} ids {greedy['sequences']}")
    # an untied head (`output`, as convert_hf_to_gguf writes lm_head.weight of an untied checkpoint)
    untied_cfg = make_config(tied=False)
    path = OUT / "tiny-t5-untied-q4_1.gguf"
    untied = dict(sd, **{"lm_head.weight": lm_head})
    types = write_gguf(path, untied_cfg, untied, "q4_1")
    t32, diff, greedy = run(untied_cfg, read_back(path, untied_cfg), ids, mask, dec)
    tensors["untied-q4_1.logits"] = t32["logits"]
    doc["untied"] = {"file": path.name, "tensor_types": types, "fp64_diff": diff, "greedy": greedy}
    print(f"untied q4_1: fp64_diff {diff} gap {greedy['min_top_gap']:.3g} ids {greedy['sequences']}")
    # encoder only (T5EncoderModel -> architecture t5encoder): its hidden states are q4_0's
    path = OUT / "tiny-t5encoder-q4_0.gguf"
    write_gguf(path, cfg, sd, "q4_0", arch=gguf.MODEL_ARCH.T5ENCODER)
    enc_w = read_back(path, cfg, gguf.MODEL_ARCH.T5ENCODER)
    ref = read_back(OUT / "tiny-t5-q4_0.gguf", cfg)
    assert all(torch.equal(v, ref[k]) for k, v in enc_w.items()), "encoder-only weights differ from q4_0's"
    doc["encoder_only"] = {"file": path.name, "same_as": "q4_0"}
    write_llama(OUT / "llama.gguf")
    save_file(tensors, str(OUT / "oracle.safetensors"), metadata={"format": "pt"})
    (OUT / "oracle.json").write_text(json.dumps(doc, indent=1) + "\n")
    total = 0
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            total += p.stat().st_size
            print(f"  {p.stat().st_size:>10}  {p.relative_to(FIX)}")
    print(f"  {total:>10}  total")


if __name__ == "__main__":
    main()
