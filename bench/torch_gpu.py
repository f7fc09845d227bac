"""PyTorch (transformers) on the same checkpoint and the same inputs as crates/t5-gpu/examples/bench.rs:
encoder 1x32 latency, encoder 8x128 throughput, greedy decode tokens/s (steps 2..n, as ours) at batch 1 and 8.
Usage: python3 bench/torch_gpu.py <model dir> [--tokens 64] [--runs 3] [--device cuda|cpu] [--dtype fp32|bf16|fp16]
[--static] (generate with cache_implementation="static", the seed's generation setting) [--md LABEL] (one markdown
table row: LABEL | encoder 8x128 tok/s | decode b1 | decode b8). Reported, never asserted."""
import sys, time, statistics, argparse
import torch
from transformers import T5ForConditionalGeneration, StoppingCriteria, StoppingCriteriaList

p = argparse.ArgumentParser()
p.add_argument("dir"); p.add_argument("--tokens", type=int, default=64); p.add_argument("--runs", type=int, default=3)
p.add_argument("--device", default="cuda"); p.add_argument("--batch", default="1,8")
p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"]); p.add_argument("--static", action="store_true")
p.add_argument("--md", default=None)
a = p.parse_args()
dev = torch.device(a.device)
dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[a.dtype]
model = T5ForConditionalGeneration.from_pretrained(a.dir, dtype=dtype).to(dev).eval()
extra = {"cache_implementation": "static"} if a.static else {}
vocab = model.config.vocab_size

def batch(rows, seq):
    ids = torch.tensor([(3 + (i * 7919) % (vocab - 200)) for i in range(rows * seq)]).view(rows, seq).to(dev)
    return ids

def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()

class Clock(StoppingCriteria):
    def __init__(self): self.marks = []
    def __call__(self, input_ids, scores, **kw):
        sync(); self.marks.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

@torch.inference_mode()
def enc(rows, seq):
    ids = batch(rows, seq)
    model.encoder(input_ids=ids); sync()
    ts = []
    for _ in range(a.runs):
        t = time.perf_counter(); model.encoder(input_ids=ids); sync(); ts.append(time.perf_counter() - t)
    return statistics.median(ts)

@torch.inference_mode()
def dec(rows):
    ids = batch(rows, 16)
    best = []
    for _ in range(a.runs):
        c = Clock()
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=a.tokens, min_new_tokens=a.tokens,
                       do_sample=False, num_beams=1, stopping_criteria=StoppingCriteriaList([c]), **extra)
        m = c.marks
        best.append((len(m) - 1) * rows / (m[-1] - m[0]))
    return statistics.median(best)

name = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
if a.md:
    decs = [f"{dec(int(r)):.1f}" for r in a.batch.split(",")]
    print(f"| {a.md} | {8 * 128 / enc(8, 128):.0f} | " + " | ".join(decs) + " |")
    sys.exit(0)
print(f"torch {torch.__version__} on {name}: {a.dir} ({a.dtype}{', static cache' if a.static else ''})")
print(f"| encoder, 1x32 tokens (ms) | {enc(1, 32) * 1e3:.2f} |")
print(f"| encoder, 8x128 tokens (tok/s) | {8 * 128 / enc(8, 128):.0f} |")
for r in [int(x) for x in a.batch.split(",")]:
    print(f"| greedy decode, batch {r} (tok/s) | {dec(r):.1f} |")
