#!/usr/bin/env python3
"""Make the checkpoint-format fixtures of t5-web: PyTorch `pytorch_model.bin` files (torch.save's zip format and the
legacy non-zip format), small tensor files that exercise the unpickler, and malicious pickles that must be refused.

Run by hand after scripts/make_fixtures.py (same venv: torch + transformers 5.24; no network):

    /tmp/pyenv/bin/python scripts/make_format_fixtures.py

Written under test/fixtures/formats/:

  tiny-t5-f16-bin/        config.json + generation_config.json of test/fixtures/tiny-t5-f16 and pytorch_model.bin =
                          torch.save(model.state_dict()) of that float16 checkpoint (zip format, as transformers 4
                          save_pretrained(safe_serialization=False) wrote it). The state dict keeps the tied
                          names (shared.weight, encoder.embed_tokens.weight, decoder.embed_tokens.weight,
                          lm_head.weight), which torch writes as one storage. No tokenizer files: tests use the
                          tokenizer of test/fixtures/tiny-t5-f16. Oracle: test/fixtures/oracle/tiny-t5-f16.*.
  tiny-t5-f16-legacy/     the same state dict saved with _use_new_zipfile_serialization=False (the pre-1.6 format:
                          consecutive pickles + raw storages).
  tensors.bin             a zip-format torch.save of a dict of small tensors: float32 / float16 / bfloat16 /
  tensors-legacy.bin      float64, a transposed (non-contiguous) view, a slice with a storage offset, two views of
                          one storage, a 0-d tensor, an int64 tensor, an nn.Parameter; tensors-legacy.bin is the
                          same in the legacy format.
  tensors-plain.pkl       the same dict as a plain pickle.dumps(protocol=2): storages inline through
                          torch.storage._load_from_bytes (nested legacy torch.save) and _codecs.encode.
  tensors.json            for each tensor: dtype, shape, values (flattened, row-major, as float).
  evil-system.bin         zip-format torch.save of a dict whose value pickles as posix.system("touch <marker>")
                          (a __reduce__ payload).
  evil-eval-legacy.bin    legacy-format torch.save with a builtins.eval payload.
  evil-newobj.pkl         a plain protocol-2 pickle of a class instance (NEWOBJ + a non-allowed global).
  evil-marker.txt         the marker path the payloads would create (they must never run).

The script checks that transformers loads each model directory (from_pretrained reads pytorch_model.bin) and gives
the oracle logits, and that torch.load(weights_only=True) refuses the evil files.
"""

import json
import os
import pickle
import shutil
import sys
from collections import OrderedDict
from pathlib import Path

import torch
from transformers import T5ForConditionalGeneration

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "test" / "fixtures"
OUT = FIX / "formats"
MARKER = "/tmp/t5-web-pickle-payload-ran"


def save_models():
    src = FIX / "tiny-t5-f16"
    model = T5ForConditionalGeneration.from_pretrained(src, dtype=torch.float16)
    sd = model.state_dict()
    names = list(sd.keys())
    assert "lm_head.weight" in names and "encoder.embed_tokens.weight" in names, names[:6]
    for d, zip_format in (("tiny-t5-f16-bin", True), ("tiny-t5-f16-legacy", False)):
        out = OUT / d
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        for f in ("config.json", "generation_config.json"):
            shutil.copyfile(src / f, out / f)
        torch.save(sd, out / "pytorch_model.bin", _use_new_zipfile_serialization=zip_format)
        print(f"{out / 'pytorch_model.bin'}: {(out / 'pytorch_model.bin').stat().st_size} bytes, {len(names)} names")


def check_models():
    oracle = json.loads((FIX / "oracle" / "tiny-t5-f16.json").read_text())
    from safetensors.torch import load_file

    want = load_file(FIX / "oracle" / "tiny-t5-f16.safetensors")["logits"]
    ids = torch.tensor(oracle["input_ids"])
    mask = torch.tensor(oracle["attention_mask"])
    dec = torch.tensor(oracle["decoder_input_ids"])
    for d in ("tiny-t5-f16-bin", "tiny-t5-f16-legacy"):
        # transformers reads pytorch_model.bin only when there is no safetensors file: the directory has none
        m = T5ForConditionalGeneration.from_pretrained(OUT / d, dtype=torch.float32).eval()
        with torch.no_grad():
            got = m(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
        diff = (got - want).abs().max().item()
        assert diff == 0.0, f"{d}: transformers gives logits {diff} away from the oracle"
        print(f"{d}: transformers logits identical to oracle/tiny-t5-f16")


def save_tensors():
    torch.manual_seed(0)
    base = torch.randn(3, 4)
    shared = torch.randn(10)
    t = OrderedDict()
    t["f32"] = base.clone()
    t["f16"] = torch.randn(2, 3).half()
    t["bf16"] = torch.randn(5).bfloat16()
    t["f64"] = torch.randn(2, 2).double()
    t["transposed"] = base.t()  # stride (1, 4): not contiguous
    t["sliced"] = shared[3:9].view(2, 3)  # storage offset 3
    t["sliced_again"] = shared[1:5]  # same storage, offset 1
    t["scalar"] = torch.tensor(2.5)
    t["int64"] = torch.arange(6).view(2, 3)
    t["param"] = torch.nn.Parameter(torch.randn(2, 2))
    t["strided3d"] = torch.randn(2, 3, 4).permute(2, 0, 1)  # 3-d non-contiguous
    torch.save(t, OUT / "tensors.bin")
    torch.save(t, OUT / "tensors-legacy.bin", _use_new_zipfile_serialization=False)
    (OUT / "tensors-plain.pkl").write_bytes(pickle.dumps(t, protocol=2))
    spec = {
        k: {
            "dtype": str(v.dtype).replace("torch.", ""),
            "shape": list(v.shape),
            "values": [float(x) for x in v.detach().double().contiguous().view(-1).tolist()],
        }
        for k, v in t.items()
    }
    (OUT / "tensors.json").write_text(json.dumps(spec, indent=1) + "\n")
    for f in ("tensors.bin", "tensors-legacy.bin"):
        back = torch.load(OUT / f, weights_only=True)
        assert all(torch.equal(back[k], t[k]) for k in t), f
    back = pickle.loads((OUT / "tensors-plain.pkl").read_bytes())
    assert all(torch.equal(back[k], t[k]) for k in t), "tensors-plain.pkl"


class EvilSystem:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


class EvilEval:
    def __reduce__(self):
        return (eval, (f"__import__('os').system('touch {MARKER}')",))


class Plain:
    def __init__(self):
        self.x = 1


def save_evil():
    torch.save({"shared.weight": torch.zeros(2), "payload": EvilSystem()}, OUT / "evil-system.bin")
    torch.save({"payload": EvilEval()}, OUT / "evil-eval-legacy.bin", _use_new_zipfile_serialization=False)
    (OUT / "evil-newobj.pkl").write_bytes(pickle.dumps({"obj": Plain()}, protocol=2))
    (OUT / "evil-marker.txt").write_text(MARKER + "\n")
    for f in ("evil-system.bin", "evil-eval-legacy.bin"):
        try:
            torch.load(OUT / f, weights_only=True)
        except pickle.UnpicklingError:
            pass
        else:
            sys.exit(f"torch.load(weights_only=True) accepted {f}")
    assert not os.path.exists(MARKER), "a payload ran"


def main():
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    save_models()
    check_models()
    save_tensors()
    save_evil()
    print("done")


if __name__ == "__main__":
    main()
