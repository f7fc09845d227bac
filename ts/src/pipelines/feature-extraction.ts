/** feature-extraction (T5EncoderModel). */

import { BadInputError } from "../errors.js";
import { Tensor, type T5EncoderModel } from "../models.js";
import type { T5Tokenizer } from "../tokenizer.js";
import { textList } from "./common.js";
import type { FeatureExtractionOptions } from "./types.js";

export function featureExtraction(model: T5EncoderModel, tokenizer: T5Tokenizer) {
  return async (texts: string | string[], options: FeatureExtractionOptions = {}): Promise<Tensor> => {
    const list = textList(texts);
    const pooling = options.pooling ?? "none";
    if (!["none", "mean", "cls", "first_token", "eos", "last_token"].includes(pooling)) throw new BadInputError(`unknown pooling ${JSON.stringify(pooling)}`);
    // transformers.js: padding and truncation
    const enc = tokenizer(list, { padding: true, truncation: tokenizer.model_max_length !== undefined });
    const h = (await model.forward(enc)).last_hidden_state;
    const [b, s, d] = h.dims as [number, number, number];
    let out: Tensor;
    if (pooling === "none") {
      out = h;
    } else {
      const data = new Float32Array(b * d);
      for (let r = 0; r < b; r++) {
        const m = enc.attention_mask[r]!;
        const row = data.subarray(r * d, (r + 1) * d);
        if (pooling === "mean") {
          let n = 0;
          const acc = new Float64Array(d);
          for (let j = 0; j < s; j++) {
            if (m[j] !== 1) continue;
            n++;
            for (let k = 0; k < d; k++) acc[k]! += h.data[(r * s + j) * d + k]!;
          }
          for (let k = 0; k < d; k++) row[k] = acc[k]! / Math.max(n, 1);
        } else {
          const j = pooling === "cls" || pooling === "first_token" ? 0 : m.lastIndexOf(1);
          row.set(h.data.subarray((r * s + j) * d, (r * s + j + 1) * d));
        }
      }
      out = new Tensor(data, [b, d]);
    }
    if (options.normalize) {
      const d = out.dims[out.dims.length - 1]!;
      for (let i = 0; i < out.data.length; i += d) {
        const v = out.data.subarray(i, i + d);
        let n = 0;
        for (const x of v) n += x * x;
        n = Math.sqrt(n);
        if (n > 0) for (let k = 0; k < d; k++) v[k] = v[k]! / n;
      }
    }
    return out;
  };
}
