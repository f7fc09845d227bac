"""PyTorch eager (transformers) on a t5-v1_1-xl-sized checkpoint, the same measurements as bench/xl-wasm.mjs and
`t5-bench run --light`: load, peak RSS, encoder 1x128 (the encoder alone), greedy decode tok/s (32-token input,
exactly 64 forced new tokens: (generate - encoder 32) / 64). One JSON line.
usage: OMP_WAIT_POLICY=PASSIVE python bench/xl_torch.py MODEL_DIR bf16|fp32 THREADS [runs=2]"""
import json, resource, statistics as st, sys, time
import torch
from transformers import T5ForConditionalGeneration

model_dir, dtype, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
runs = int(sys.argv[4]) if len(sys.argv) > 4 else 2
NEW = 64
torch.set_num_threads(threads)
torch.set_num_interop_threads(1)
t = time.perf_counter()
model = T5ForConditionalGeneration.from_pretrained(model_dir, dtype={"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]).eval()
load_s = time.perf_counter() - t
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() / 1e6
rss_load = rss()
ids = lambda n, mul: [100 + (i * mul) % 3000 for i in range(n)]
in32, in128 = torch.tensor([ids(32, 37)]), torch.tensor([ids(128, 53)])

def timed(fn):
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        r = fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out, r

gen = lambda x: model.generate(input_ids=x, attention_mask=torch.ones_like(x), do_sample=False, num_beams=1, max_new_tokens=NEW, min_new_tokens=NEW)
with torch.inference_mode():
    enc32, _ = timed(lambda: model.encoder(input_ids=in32))
    enc128, _ = timed(lambda: model.encoder(input_ids=in128))
    gen32, out = timed(lambda: gen(in32))
assert out.shape[1] == NEW + 1, out.shape
e, g, e128 = st.median(enc32), st.median(gen32), st.median(enc128)
print(json.dumps({
    "runtime": "torch", "system": f"PyTorch {torch.__version__} eager", "dtype": dtype, "threads": threads, "load_s": load_s,
    "rss_mb": rss_load, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3, "encoder_32_ms": e,
    "encoder_1x128_ms": e128, "encoder_1x128_tok_s": 128 / (e128 / 1e3), "generate_64_ms": g, "decode_tok_s": NEW / ((g - e) / 1e3),
    "runs": runs, "encoder_1x128_ms_all": enc128, "generate_64_ms_all": gen32,
}))
