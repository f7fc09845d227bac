"""A t5-small-shaped checkpoint with random weights (torch seed 0, transformers' own init) + the real tokenizer
files, for bench/compare.sh (same method as ../shared/anchors/make_random.py).
usage: make_random.py TOKENIZER_AND_CONFIG_DIR OUT_DIR [--untied]
--untied: a separate random lm_head, used only for the greedy-id agreement check (a random *tied* t5-small
emits token 0 forever, so ids agree trivially there)."""
import os, shutil, sys
import torch
from transformers import T5Config, T5ForConditionalGeneration

src, dst = sys.argv[1], sys.argv[2]
untied = "--untied" in sys.argv
torch.manual_seed(0)
cfg = T5Config.from_pretrained(src, **({"tie_word_embeddings": False} if untied else {}))
model = T5ForConditionalGeneration(cfg).eval()
if untied:  # transformers 4.x (the ONNX exporter) always shares encoder/decoder embed_tokens with `shared`
    with torch.no_grad():
        model.encoder.embed_tokens.weight.copy_(model.shared.weight)
        model.decoder.embed_tokens.weight.copy_(model.shared.weight)
os.makedirs(dst, exist_ok=True)
model.save_pretrained(dst, safe_serialization=True)
for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "spiece.model", "generation_config.json"]:
    if os.path.exists(os.path.join(src, f)):
        shutil.copy(os.path.join(src, f), dst)
print(f"saved {dst}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params (unique), untied={untied}")
