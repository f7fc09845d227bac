/**
 * The engine against the transformers oracle, model by model: encoder / decoder hidden states,
 * logits and loss within |ours − oracle| ≤ 1e-4 + 4 × fp64_diff[name]; greedy sequences exact.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AutoModelForSeq2SeqLM,
  AutoTokenizer,
  pipeline,
  T5EncoderModel,
  T5ForConditionalGeneration,
  T5Model,
  type T5Tokenizer,
} from "../ts/src/index.js";
import { compareTensor, loadOracle, modelDir, MODELS, withinTolerance } from "./helpers/oracle.js";

describe("tolerance check", () => {
  it("rejects what it must (guards against vacuous passes)", () => {
    const { json: o, tensors } = loadOracle("tiny-t5");
    const t = tensors.get("encoder_last_hidden_state")!;
    const tol = 1e-4 + 4 * o.fp64_diff["encoder_last_hidden_state"]!;
    const ok = Float32Array.from(t.data, (x) => x + 0.5 * tol);
    expect(compareTensor("e", { data: ok, dims: t.shape }, t, o.fp64_diff["encoder_last_hidden_state"]!)).toBeUndefined();
    const bad = Float32Array.from(t.data);
    bad[100] = bad[100]! + 2 * tol;
    expect(compareTensor("e", { data: bad, dims: t.shape }, t, o.fp64_diff["encoder_last_hidden_state"]!)).toMatch(/1 of \d+ elements/);
    const nan = Float32Array.from(t.data);
    nan[7] = NaN;
    expect(compareTensor("e", { data: nan, dims: t.shape }, t, 0)).toMatch(/ours NaN/);
    expect(compareTensor("e", { data: ok, dims: [1, ...t.shape] }, t, 0)).toMatch(/shape/);
  });
});

describe.each(MODELS)("$dir", ({ dir, oracle: stem }) => {
  const { json: o, tensors } = loadOracle(stem);
  const path = modelDir(dir);
  let lm: T5ForConditionalGeneration;
  let base: T5Model;
  let enc: T5EncoderModel;
  let tok: T5Tokenizer;

  beforeAll(async () => {
    [lm, base, enc, tok] = await Promise.all([
      AutoModelForSeq2SeqLM.fromPretrained(path),
      T5Model.fromPretrained(path),
      T5EncoderModel.fromPretrained(path),
      AutoTokenizer.fromPretrained(path),
    ]);
  });

  afterAll(() => {
    for (const x of [lm, base, enc, tok]) x?.dispose();
  });

  const expectClose = (name: string, ours: { data: Float32Array; dims: number[] }) => {
    const t = tensors.get(name);
    expect(t, `oracle tensor ${name}`).toBeDefined();
    expect(compareTensor(name, ours, t!, o.fp64_diff[name]!)).toBeUndefined();
  };

  it("tokenizes the oracle texts as transformers did", () => {
    const e = tok(o.texts, { padding: true });
    expect(e.input_ids).toEqual(o.input_ids);
    expect(e.attention_mask).toEqual(o.attention_mask);
  });

  it("encoder last_hidden_state (T5EncoderModel)", () => {
    const out = enc.forwardSync({ input_ids: o.input_ids, attention_mask: o.attention_mask });
    expectClose("encoder_last_hidden_state", out.last_hidden_state);
  });

  it("decoder last_hidden_state (T5Model)", () => {
    const out = base.forwardSync({ input_ids: o.input_ids, attention_mask: o.attention_mask, decoder_input_ids: o.decoder_input_ids });
    expectClose("decoder_last_hidden_state", out.last_hidden_state);
    expectClose("encoder_last_hidden_state", out.encoder_last_hidden_state);
  });

  it("logits from decoder_input_ids (T5ForConditionalGeneration)", () => {
    const out = lm.forwardSync({ input_ids: o.input_ids, attention_mask: o.attention_mask, decoder_input_ids: o.decoder_input_ids });
    expectClose("logits", out.logits);
    expectClose("encoder_last_hidden_state", out.encoder_last_hidden_state);
    expect(out.loss).toBeUndefined();
  });

  it("logits and loss from labels (shifted right, -100 ignored)", () => {
    const out = lm.forwardSync({ input_ids: o.input_ids, attention_mask: o.attention_mask, labels: o.labels });
    expectClose("logits_from_labels", out.logits);
    expect(out.loss).toBeDefined();
    expect(
      withinTolerance(out.loss!, o.loss, o.fp64_diff["loss"]!),
      `loss ${out.loss} vs oracle ${o.loss} (tolerance ${1e-4 + 4 * o.fp64_diff["loss"]!})`,
    ).toBe(true);
  });

  it("accepts integer tensors {data, dims} as input", () => {
    const flat = Int32Array.from(o.input_ids.flat());
    const dims = [o.input_ids.length, o.input_ids[0]!.length];
    const out = enc.forwardSync({ input_ids: { data: flat, dims }, attention_mask: { data: o.attention_mask.flat(), dims } });
    expectClose("encoder_last_hidden_state", out.last_hidden_state);
  });

  if (o.long_input_ids) {
    it("encoder on a long input (relative position buckets past max_distance)", () => {
      const out = enc.forwardSync({ input_ids: [o.long_input_ids!] });
      expectClose("long_encoder_last_hidden_state", out.last_hidden_state);
      expect(tok.encode(o.long_text!)).toEqual(o.long_input_ids);
    });
  }

  it("greedy generate, batched", () => {
    const seqs = lm.generateSync({ input_ids: o.input_ids, attention_mask: o.attention_mask }, { max_new_tokens: o.greedy.max_new_tokens });
    expect(seqs).toEqual(o.greedy.sequences);
  });

  it("greedy generate, one row at a time", () => {
    o.texts.forEach((text, i) => {
      const e = tok(text);
      const seqs = lm.generateSync(e, { max_new_tokens: o.greedy.max_new_tokens });
      expect(seqs, `row ${i}`).toEqual([o.greedy.sequences_single[i]]);
    });
  });

  it("pipeline('text2text-generation') decodes the oracle sequences", async () => {
    const pipe = await pipeline("text2text-generation", lm, { tokenizer: tok });
    const out = await pipe(o.texts, { max_new_tokens: o.greedy.max_new_tokens });
    // transformers' Text2TextGenerationPipeline decodes with skip_special_tokens=True and
    // clean_up_tokenization_spaces=False
    expect(out).toEqual(
      o.greedy.sequences_single.map((s) => ({ generated_text: tok.decode(s, { skip_special_tokens: true, clean_up_tokenization_spaces: false }) })),
    );
    const single = await pipe(o.texts[0]!, { max_new_tokens: o.greedy.max_new_tokens, batch_size: 4 });
    expect(single).toEqual([out[0]]);
    const batched = await pipe(o.texts, { max_new_tokens: o.greedy.max_new_tokens, batch_size: 3 });
    expect(batched).toEqual(out);
    pipe.dispose(); // the model and tokenizer were passed in: still usable
    expect(lm.disposed).toBe(false);
  });
});

describe("config", () => {
  it("exposes transformers' T5Config fields with defaults and derived values", async () => {
    const lm = await T5ForConditionalGeneration.fromPretrained(modelDir("tiny-t5-v1_1-sharded"));
    try {
      const c = lm.config;
      expect(c.feed_forward_proj).toBe("gated-gelu");
      expect(c.dense_act_fn).toBe("gelu_new");
      expect(c.is_gated_act).toBe(true);
      expect(c.num_layers).toBe(2);
      expect(c.num_decoder_layers).toBe(3);
      expect(c.tie_word_embeddings).toBe(false);
      expect(c.d_model).toBe(32);
      expect(c.relative_attention_num_buckets).toBe(32);
      expect(c["transformers_version"]).toBe("4.46.3");
      expect(lm.generation_config["decoder_start_token_id"]).toBe(0);
    } finally {
      lm.dispose();
    }
  });
});
