"""Input ids and the PyTorch (transformers, fp32) reference for bench/compare.sh.
usage: torch_ids.py MODEL_DIR OUT_DIR [--reference]
Writes OUT_DIR/input_ids.json: the benchmark sentence tokenized by the real t5-small tokenizer (32 ids incl. </s>),
the one input every system gets. --reference: also OUT_DIR/reference_ids.json, transformers' greedy ids for
exactly 64 forced new tokens (min_new_tokens = max_new_tokens) from MODEL_DIR (the untied check model)."""
import json, os, sys
import torch
from transformers import AutoTokenizer, T5ForConditionalGeneration

TEXT = ("translate English to German: The house is wonderful and the garden is full of flowers in spring, "
        "and the children play outside in the sun all day long.")
model_dir, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
enc = AutoTokenizer.from_pretrained(model_dir)(TEXT, return_tensors="pt")
json.dump(enc.input_ids[0].tolist(), open(os.path.join(out, "input_ids.json"), "w"))
print(f"input tokens: {enc.input_ids.shape[1]}")
if "--reference" in sys.argv:
    torch.set_num_threads(1)
    model = T5ForConditionalGeneration.from_pretrained(model_dir).eval()
    with torch.inference_mode():
        ids = model.generate(**enc, do_sample=False, num_beams=1, max_new_tokens=64, min_new_tokens=64)[0].tolist()
    json.dump({"system": "transformers (PyTorch) fp32", "torch": torch.__version__, "ids": ids},
              open(os.path.join(out, "reference_ids.json"), "w"))
    print("reference ids[:16]", ids[:16])
