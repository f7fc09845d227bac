"""PyTorch eager (transformers) timing for bench/compare.sh: one (dtype, threads) per process, one JSON line,
the same fields as bench/bench-wasm.mjs, `t5-bench run --json` and bench/js/*.mjs.
usage: torch_bench.py MODEL_DIR fp32|bf16 THREADS INPUT_IDS_JSON [runs=3] [warmup=1]
- encoder 32: the INPUT_IDS (32 tokens), batch 1; generate: greedy, exactly 64 forced new tokens (min = max);
- encoder 8x128: row r = 100 + (i * (53 + r)) % 3000; encoder 1x512: 100 + (i * 53) % 3000;
- summarize: that 512-token input, greedy, exactly 64 forced new tokens, total ms (encoder included)."""
import json, resource, statistics as st, sys, time
import torch
from transformers import T5ForConditionalGeneration

model_dir, dtype, threads, ids_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
runs = int(sys.argv[5]) if len(sys.argv) > 5 else 3
warm = int(sys.argv[6]) if len(sys.argv) > 6 else 1
NEW = 64
torch.set_num_threads(threads)
torch.set_num_interop_threads(1)
t = time.perf_counter()
model = T5ForConditionalGeneration.from_pretrained(model_dir, dtype={"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]).eval()
load_s = time.perf_counter() - t
rss_mb = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() / 1e6

ids = lambda n, mul: [100 + (i * mul) % 3000 for i in range(n)]
in32 = torch.tensor([json.load(open(ids_file))])
in8 = torch.tensor([ids(128, 53 + r) for r in range(8)])
in512 = torch.tensor([ids(512, 53)])

def timed(fn):
    for _ in range(warm):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        r = fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out, r

gen = lambda x: model.generate(input_ids=x, attention_mask=torch.ones_like(x), do_sample=False, num_beams=1, max_new_tokens=NEW, min_new_tokens=NEW)
with torch.inference_mode():
    enc32, _ = timed(lambda: model.encoder(input_ids=in32))
    enc8, _ = timed(lambda: model.encoder(input_ids=in8))
    enc512, _ = timed(lambda: model.encoder(input_ids=in512))
    gen32, out = timed(lambda: gen(in32))
    summ, _ = timed(lambda: gen(in512))
assert out.shape[1] == NEW + 1, out.shape
e, g = st.median(enc32), st.median(gen32)
print(json.dumps({
    "runtime": "torch", "system": f"PyTorch {torch.__version__} eager (transformers)", "dtype": dtype, "threads": threads,
    "load_s": load_s, "rss_mb": rss_mb, "input_tokens": in32.shape[1], "runs": runs, "warmup": warm,
    "encoder_32_ms": e, "generate_64_ms": g, "decode_tok_s": NEW / ((g - e) / 1e3),
    "encoder_8x128_tok_s": 1024 / (st.median(enc8) / 1e3), "encoder_1x512_ms": st.median(enc512), "summarize_ms": st.median(summ),
    "encoder_32_ms_all": enc32, "generate_64_ms_all": gen32, "encoder_8x128_ms_all": enc8, "encoder_1x512_ms_all": enc512,
    "summarize_ms_all": summ, "ids": out[0].tolist(),
}))
