"""Export a local T5 checkpoint to ONNX in the layout transformers.js reads (onnx/encoder_model*.onnx,
onnx/decoder_model_merged*.onnx), with q8 (`_quantized`) and q4 (`_q4`) variants made as transformers.js's
own conversion does (same method as ../shared/anchors/export_onnx.py).
Runs in /tmp/pyenv-onnx (optimum-onnx 0.1.0 needs transformers<4.58; torch comes from /tmp/pyenv via a .pth).
usage: export_onnx.py SRC_DIR DST_DIR"""
import os, shutil, sys, time
from optimum.exporters.onnx import main_export
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
import onnx

src, dst = sys.argv[1], sys.argv[2]
raw = dst + ".optimum"
t = time.time()
main_export(src, raw, task="text2text-generation-with-past")  # encoder_model, decoder_model(_merged), decoder_with_past
print(f"optimum export: {time.time() - t:.1f}s")
os.makedirs(f"{dst}/onnx", exist_ok=True)
for f in ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
    if os.path.exists(f"{raw}/{f}"):
        shutil.copy(f"{raw}/{f}", dst)
names = ["encoder_model", "decoder_model_merged"]
for n in names:
    shutil.copy(f"{raw}/{n}.onnx", f"{dst}/onnx/{n}.onnx")
for n in names:
    fp32 = f"{dst}/onnx/{n}.onnx"
    # q8: as transformers.js scripts/quantize.py does it (dynamic, QInt8 weights, per-tensor, subgraphs of If too)
    t = time.time()
    quantize_dynamic(fp32, f"{dst}/onnx/{n}_quantized.onnx", weight_type=QuantType.QInt8,
                     per_channel=False, reduce_range=False,
                     extra_options={"EnableSubgraph": True, "MatMulConstBOnly": True})
    print(f"q8 {n}: {time.time() - t:.1f}s")
    # q4: MatMulNBits, block 32, symmetric (transformers.js defaults); other ops stay fp32
    t = time.time()
    q = MatMulNBitsQuantizer(onnx.load(fp32), block_size=32, is_symmetric=True)
    q.process()
    q.model.save_model_to_file(f"{dst}/onnx/{n}_q4.onnx", use_external_data_format=False)
    print(f"q4 {n}: {time.time() - t:.1f}s")
shutil.rmtree(raw)
for f in sorted(os.listdir(f"{dst}/onnx")):
    print(f"  {f:40s} {os.path.getsize(f'{dst}/onnx/{f}') / 1e6:8.1f} MB")
