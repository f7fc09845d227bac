"""Weight bytes one decode step reads in transformers.js's ONNX files: in decoder_model_merged{,_quantized,_q4}.onnx,
the If branch that runs with a KV cache (the one with fewer weight bytes: cross-attention K/V are not projected
there), summing the initializers fed to its matrix products (MatMul / MatMulInteger / MatMulNBits / Gemm, with their
scales and zero points) once each. The embedding Gather reads one row and is left out, as t5-bench does.
Runs in /tmp/pyenv-onnx. usage: onnx_step_bytes.py ONNX_MODEL_DIR OUT_JSON"""
import json, os, sys
import onnx
from onnx import numpy_helper

MATMUL = {"MatMul", "MatMulInteger", "MatMulNBits", "Gemm", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}
FILES = {"fp32": "decoder_model_merged.onnx", "q8": "decoder_model_merged_quantized.onnx", "q4": "decoder_model_merged_q4.onnx"}


def weight_bytes(graph, inits):
    inits = {**inits, **{i.name: i for i in graph.initializer}}
    seen, total = set(), 0
    for node in graph.node:
        if node.op_type in MATMUL:
            for name in node.input:
                if name in inits and name not in seen:
                    seen.add(name)
                    total += numpy_helper.to_array(inits[name]).nbytes
    return total


out = {}
for dtype, f in FILES.items():
    m = onnx.load(os.path.join(sys.argv[1], "onnx", f))
    inits = {i.name: i for i in m.graph.initializer}
    branches = [weight_bytes(a.g, inits) for n in m.graph.node if n.op_type == "If" for a in n.attribute if a.type == onnx.AttributeProto.GRAPH]
    out[dtype] = min(branches) / 1e6 if branches else weight_bytes(m.graph, {}) / 1e6
    print(f"{dtype}: {out[dtype]:.1f} MB read per decode step (branches: {[round(b / 1e6, 1) for b in branches]})")
json.dump(out, open(sys.argv[2], "w"))
