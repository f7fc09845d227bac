/**
 * GGUF checkpoints (llama.cpp's T5 layout, written by the `gguf` package in
 * scripts/make_gguf_fixtures.py) through the wasm build: every type's logits within 1e-4 + 4 ×
 * fp64_diff of transformers run on the file's dequantized weights (batched, and one decoder
 * position of one row: the fused SIMD128 kernels), greedy ids identical; loading by
 * `model_file_name`, by a `.gguf` path, by URL and from a `File`; typed errors.
 */

import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { AutoModelForSeq2SeqLM, BadConfigError, BadWeightsError, T5EncoderModel, T5ForConditionalGeneration, UnsupportedDtypeError, type ModelSource } from "../ts/src/index.js";
import { compareTensor, FIXTURES } from "./helpers/oracle.js";
import { parseSafetensors } from "./helpers/safetensors.js";

const DIR = `${FIXTURES}gguf/`;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const o: any = JSON.parse(readFileSync(`${DIR}oracle.json`, "utf8"));
const st = parseSafetensors(new Uint8Array(readFileSync(`${DIR}oracle.safetensors`)));

function f32(name: string): { shape: number[]; data: Float32Array } {
  const e = st.header[name]!;
  const [s, t] = e.data_offsets;
  return { shape: e.shape, data: new Float32Array(st.data.slice(s, t).buffer) };
}

describe.each(Object.keys(o.types))("tiny-t5 GGUF %s", (ty) => {
  it("logits, encoder states and greedy ids match transformers on the dequantized weights", async () => {
    const lm = await AutoModelForSeq2SeqLM.fromPretrained(DIR, { model_file_name: `tiny-t5-${ty}.gguf` });
    try {
      expect(lm.config.vocab_size).toBe(64);
      expect(lm.config.feed_forward_proj).toBe("gated-gelu");
      const want = f32(`${ty}.logits`);
      const diff = o.types[ty].fp64_diff.logits as number;
      const out = lm.forwardSync({ input_ids: o.input_ids, attention_mask: o.attention_mask, decoder_input_ids: o.decoder_input_ids });
      expect(compareTensor("logits", out.logits, want, diff)).toBeUndefined();
      const v = want.shape[2]!;
      const one = lm.forwardSync({ input_ids: [o.input_ids[0]], decoder_input_ids: [[o.decoder_input_ids[0][0]]] });
      expect(compareTensor("logits[0, 0]", one.logits, { shape: [1, 1, v], data: want.data.slice(0, v) }, diff)).toBeUndefined();
      const g = o.types[ty].greedy;
      const ids = lm.generateSync({ input_ids: o.input_ids, attention_mask: o.attention_mask }, { max_new_tokens: g.max_new_tokens });
      expect(ids).toEqual(g.sequences);
    } finally {
      lm.dispose();
    }
    const enc = await T5EncoderModel.fromPretrained(`${DIR}tiny-t5-${ty}.gguf`);
    try {
      const h = enc.forwardSync({ input_ids: o.input_ids, attention_mask: o.attention_mask });
      const name = "encoder_last_hidden_state";
      expect(compareTensor(name, h.last_hidden_state, f32(`${ty}.${name}`), o.types[ty].fp64_diff[name])).toBeUndefined();
    } finally {
      enc.dispose();
    }
  });
});

it("an untied head (`output`) and an encoder-only file (t5encoder)", async () => {
  const lm = await T5ForConditionalGeneration.fromPretrained(`${DIR}${o.untied.file}`);
  try {
    expect(lm.config.tie_word_embeddings).toBe(false);
    const out = lm.forwardSync({ input_ids: o.input_ids, attention_mask: o.attention_mask, decoder_input_ids: o.decoder_input_ids });
    expect(compareTensor("untied logits", out.logits, f32("untied-q4_1.logits"), o.untied.fp64_diff.logits)).toBeUndefined();
    const ids = lm.generateSync({ input_ids: o.input_ids, attention_mask: o.attention_mask }, { max_new_tokens: o.untied.greedy.max_new_tokens });
    expect(ids).toEqual(o.untied.greedy.sequences);
  } finally {
    lm.dispose();
  }
  const enc = await T5EncoderModel.fromPretrained(`${DIR}tiny-t5encoder-q4_0.gguf`);
  try {
    const h = enc.forwardSync({ input_ids: o.input_ids, attention_mask: o.attention_mask });
    const name = "encoder_last_hidden_state";
    expect(compareTensor(name, h.last_hidden_state, f32(`q4_0.${name}`), o.types.q4_0.fp64_diff[name])).toBeUndefined();
  } finally {
    enc.dispose();
  }
});

it("a .gguf path, a file: URL and an in-memory File give the same logits", async () => {
  const file = `${DIR}tiny-t5-q4_0.gguf`;
  const bytes = readFileSync(file);
  const sources: ModelSource[] = [
    file,
    pathToFileURL(file),
    new File([bytes], "tiny-t5-q4_0.gguf"),
    { "model.gguf": new Uint8Array(bytes) },
    { "config.json": readFileSync(`${DIR}tiny-t5-gguf/config.json`), "model-q4_0.gguf": new Uint8Array(bytes) },
  ];
  const want = f32("q4_0.logits");
  for (const src of sources) {
    const lm = await T5ForConditionalGeneration.fromPretrained(src);
    try {
      const out = lm.forwardSync({ input_ids: o.input_ids, attention_mask: o.attention_mask, decoder_input_ids: o.decoder_input_ids });
      expect(compareTensor(`logits from ${String(src)}`, out.logits, want, o.types.q4_0.fp64_diff.logits)).toBeUndefined();
    } finally {
      lm.dispose();
    }
  }
});

it("bad GGUF files are typed errors", async () => {
  const good = new Uint8Array(readFileSync(`${DIR}tiny-t5-q8_0.gguf`));
  const load = (bytes: Uint8Array) => T5ForConditionalGeneration.fromPretrained(new File([new Uint8Array(bytes)], "x.gguf"));
  await expect(load(good.slice(0, good.length - 100))).rejects.toBeInstanceOf(BadWeightsError);
  await expect(load(good.slice(0, 1000))).rejects.toThrow(/truncated/);
  const badMagic = good.slice();
  badMagic[0] = 0x58;
  await expect(load(badMagic)).rejects.toThrow(/not a GGUF file/);
  await expect(T5ForConditionalGeneration.fromPretrained(`${DIR}llama.gguf`)).rejects.toBeInstanceOf(BadConfigError);
  await expect(T5ForConditionalGeneration.fromPretrained(`${DIR}llama.gguf`)).rejects.toThrow(/"llama"/);
  // the type of the first tensor (token_embd, Q8_0 = 8) set to Q4_K (12)
  const name = new TextEncoder().encode("token_embd.weight");
  let at = -1;
  for (let i = 0; i < good.length - name.length && at < 0; i++) {
    if (name.every((c, j) => good[i + j] === c)) at = i;
  }
  const tyAt = at + name.length + 4 + 2 * 8;
  expect(good[tyAt]).toBe(8);
  const q4k = good.slice();
  q4k[tyAt] = 12;
  await expect(load(q4k)).rejects.toBeInstanceOf(UnsupportedDtypeError);
  await expect(AutoModelForSeq2SeqLM.fromPretrained(DIR, { model_file_name: "model.bin" })).rejects.toBeInstanceOf(BadConfigError);
});
