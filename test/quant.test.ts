/**
 * Quantized / half-precision weights in the wasm build (SIMD128 kernels) against transformers run on
 * the same weights quantized and dequantized in Python (scripts/make_quant_fixtures.py):
 * logits within 1e-4 + 4 × fp64_diff, batched (strip-dequantized matmul) and for one decoder
 * position of one row (fused dequantize-and-dot, m = 1); greedy ids of one row.
 */

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { T5ForConditionalGeneration } from "../ts/src/index.js";
import { compareTensor, FIXTURES } from "./helpers/oracle.js";
import { parseSafetensors } from "./helpers/safetensors.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const o: any = JSON.parse(readFileSync(`${FIXTURES}quant/tiny-t5-q128.json`, "utf8"));
const st = parseSafetensors(new Uint8Array(readFileSync(`${FIXTURES}quant/tiny-t5-q128.safetensors`)));

function f32(name: string): { shape: number[]; data: Float32Array } {
  const e = st.header[name]!;
  const [s, t] = e.data_offsets;
  return { shape: e.shape, data: new Float32Array(st.data.slice(s, t).buffer) };
}

describe.each(["q4", "q8", "bf16", "fp16"] as const)("tiny-t5-q128 %s", (dtype) => {
  it("logits match transformers on the dequantized weights", async () => {
    const lm = await T5ForConditionalGeneration.fromPretrained(`${FIXTURES}tiny-t5-q128`, { dtype });
    try {
      const want = f32(`${dtype}.logits`);
      const diff = o.dtypes[dtype].fp64_diff.logits as number;
      const out = lm.forwardSync({ input_ids: o.input_ids, attention_mask: o.attention_mask, decoder_input_ids: o.decoder_input_ids });
      expect(compareTensor("logits", out.logits, want, diff)).toBeUndefined();
      // one row, one decoder position: the fused matrix × vector kernels
      const v = want.shape[2]!;
      const one = lm.forwardSync({ input_ids: [o.input_ids[0]], decoder_input_ids: [[o.decoder_input_ids[0][0]]] });
      expect(compareTensor("logits[0, 0]", one.logits, { shape: [1, 1, v], data: want.data.slice(0, v) }, diff)).toBeUndefined();
      const g = o.dtypes[dtype].greedy;
      const ids = lm.generateSync({ input_ids: [o.input_ids[0]] }, { max_new_tokens: g.max_new_tokens });
      const row0 = (g.sequences[0] as number[]).slice(0, ids[0]!.length);
      expect(ids[0]).toEqual(row0);
    } finally {
      lm.dispose();
    }
  });
});

it("an unknown dtype is a typed error", async () => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  await expect(T5ForConditionalGeneration.fromPretrained(`${FIXTURES}tiny-t5-q128`, { dtype: "q3" as any })).rejects.toThrow(/dtype/);
});
