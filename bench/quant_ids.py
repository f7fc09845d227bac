"""transformers' greedy ids on the untied check model with t5-web's own quantization schemes applied in Python
(scripts/make_quant_fixtures.py: quantize, dequantize, run in float32), for bench/compare.sh: t5-web's bf16 / q8 / q4
ids must equal these exactly (same weights after rounding, same model).
usage: quant_ids.py MODEL_DIR OUT_DIR   (reads OUT_DIR/input_ids.json, writes OUT_DIR/reference_ids_quant.json)"""
import json, sys
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import make_quant_fixtures as q  # noqa: E402  (sets 1 thread, deterministic algorithms)

model_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
ids = torch.tensor([json.load(open(out / "input_ids.json"))])
res = {}
for d in ["bf16", "q8", "q4"]:
    m, _ = q.quantized_model(model_dir, d)
    with torch.no_grad():
        res[d] = m.generate(input_ids=ids, do_sample=False, num_beams=1, max_new_tokens=64, min_new_tokens=64)[0].tolist()
    print(d, "ids[:8]", res[d][:8])
json.dump(res, open(out / "reference_ids_quant.json", "w"))
