import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AutoTokenizer, DisposedError, InputTooLongError, T5Tokenizer, BadInputError } from "../ts/src/index.js";
import { loadTokenizerOracle, modelDir } from "./helpers/oracle.js";

const oracle = loadTokenizerOracle();
let tok: T5Tokenizer;

beforeAll(async () => {
  tok = await AutoTokenizer.fromPretrained(modelDir("tiny-t5"));
});

afterAll(() => tok.dispose());

describe("tokenizer vs transformers", () => {
  it("uses the tokenizer.json the oracle was made with", () => {
    for (const dir of ["tiny-t5", "tiny-t5-v1_1", "tiny-t5-v1_1-sharded", "tiny-t5-f16"]) {
      const sha = createHash("sha256").update(readFileSync(`${modelDir(dir)}/tokenizer.json`)).digest("hex");
      expect(sha, dir).toBe(oracle.tokenizer_json_sha256);
    }
  });

  it.each(oracle.cases.map((c, i) => [i, JSON.stringify(c.text).slice(0, 40), c] as const))("case %i %s", (_i, _t, c) => {
    const ids = tok.encode(c.text);
    expect(ids).toEqual(c.encode);
    expect(tok.decode(c.encode)).toBe(c.decode);
    expect(tok.decode(c.encode, { skip_special_tokens: true })).toBe(c.decode_skip);
  });

  it("batch decode equals per-row decode", () => {
    const rows = oracle.cases.map((c) => c.encode);
    expect(tok.batchDecode(rows)).toEqual(oracle.cases.map((c) => c.decode));
    expect(tok.batch_decode(rows, { skip_special_tokens: true })).toEqual(oracle.cases.map((c) => c.decode_skip));
  });

  it("pads a batch like tokenizer(texts, padding=True)", () => {
    const enc = tok(oracle.batch.texts, { padding: true });
    expect(enc.input_ids).toEqual(oracle.batch.input_ids);
    expect(enc.attention_mask).toEqual(oracle.batch.attention_mask);
  });

  it("truncates like tokenizer(texts, padding=True, truncation=True, max_length=8)", () => {
    const b = oracle.batch_truncated;
    const enc = tok(b.texts, { padding: true, truncation: true, max_length: b.max_length });
    expect(enc.input_ids).toEqual(b.input_ids);
    expect(enc.attention_mask).toEqual(b.attention_mask);
  });

  it("without padding returns ragged rows", () => {
    const enc = tok(oracle.batch.texts);
    expect(enc.input_ids).toEqual(oracle.batch.texts.map((t) => tok.encode(t)));
    expect(enc.attention_mask.map((r) => r.length)).toEqual(enc.input_ids.map((r) => r.length));
  });

  it("pads to max_length on request", () => {
    const enc = tok(["Hello world"], { padding: "max_length", max_length: 6 });
    expect(enc.input_ids).toEqual([[8774, 296, 1, 0, 0, 0]]);
    expect(enc.attention_mask).toEqual([[1, 1, 1, 0, 0, 0]]);
  });

  it("sentinel tokens and ids", () => {
    expect(tok.getSentinelTokens()).toEqual(oracle.sentinel_tokens);
    expect(tok.getSentinelTokenIds()).toEqual(oracle.sentinel_token_ids);
  });

  it("special token ids", () => {
    expect(tok.eos_token_id).toBe(oracle.eos_token_id);
    expect(tok.pad_token_id).toBe(oracle.pad_token_id);
    expect(tok.convertTokensToIds(["<unk>", "</s>", "<pad>"])).toEqual([oracle.unk_token_id, oracle.eos_token_id, oracle.pad_token_id]);
    expect(tok.model_max_length).toBe(512);
  });

  it("add_special_tokens: false leaves out </s>", () => {
    expect(tok.encode("Hello world", { add_special_tokens: false })).toEqual([8774, 296]);
  });
});

describe("over-long input (model_max_length 512)", () => {
  const long = Array.from({ length: 600 }, (_, i) => `w${i}`).join(" ");

  it("throws InputTooLongError when not truncating", () => {
    expect(() => tok.encode(long)).toThrow(InputTooLongError);
    expect(() => tok([long, "short"], { padding: true })).toThrow(/longer than the maximum of 512/);
  });

  it("truncates to model_max_length or max_length", () => {
    const ids = tok.encode(long, { truncation: true });
    expect(ids.length).toBe(512);
    expect(ids[511]).toBe(1);
    expect(tok.encode(long, { truncation: true, max_length: 20 }).length).toBe(20);
  });

  it("passes through with allow_long_inputs", () => {
    expect(tok.encode(long, { allow_long_inputs: true }).length).toBeGreaterThan(512);
  });
});

describe("tokenizer misuse", () => {
  it("rejects ids that are not token ids", () => {
    expect(() => tok.decode([1.5])).toThrow(BadInputError);
    expect(() => tok.decode([-1])).toThrow(BadInputError);
  });

  it("is unusable after dispose", async () => {
    const t = await T5Tokenizer.fromPretrained(modelDir("tiny-t5"));
    expect(t("a").input_ids).toEqual([[3, 9, 1]]);
    t.dispose();
    t.dispose();
    expect(t.disposed).toBe(true);
    expect(() => t.encode("a")).toThrow(DisposedError);
    expect(() => t(["a"])).toThrow(DisposedError);
    expect(() => t.decode([1])).toThrow(DisposedError);
  });
});
