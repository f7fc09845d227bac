// A slow-tokenizer directory (spiece.model only) through the facade: the same ids as transformers'
// AutoTokenizer on that directory, and as tokenizer.json on t5-small (test/fixtures/oracle/spiece/cases.json,
// made by scripts/make_tokenizer_fixtures.py).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AutoTokenizer, MissingFileError, T5Tokenizer, TokenizerError } from "../ts/src/index.js";

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const shared = here("../../shared/models/");
const oracle = JSON.parse(readFileSync(here("./fixtures/oracle/spiece/cases.json"), "utf8")) as {
  cases: { text: string; fast: number[]; spiece: number[]; spiece_decode: string; spiece_decode_skip: string }[];
};

describe("tokenizer from spiece.model", () => {
  let slow: T5Tokenizer;
  let fast: T5Tokenizer;
  beforeAll(async () => {
    slow = await AutoTokenizer.fromPretrained(`${shared}t5-spiece`);
    fast = await AutoTokenizer.fromPretrained(`${shared}t5-small`);
  });
  afterAll(() => {
    slow.dispose();
    fast.dispose();
  });

  it("gives transformers' ids and decodes on every case", () => {
    expect(oracle.cases.length).toBeGreaterThan(300);
    for (const c of oracle.cases) {
      expect(slow.encode(c.text), c.text).toEqual(c.spiece);
      expect(fast.encode(c.text), c.text).toEqual(c.fast);
      expect(slow.decode(c.spiece), c.text).toBe(c.spiece_decode);
      expect(slow.decode(c.spiece, { skip_special_tokens: true }), c.text).toBe(c.spiece_decode_skip);
    }
  });

  it("has the sentinels of t5-small", () => {
    expect(slow.getSentinelTokens()).toEqual(fast.getSentinelTokens());
    expect(slow.getSentinelTokenIds()).toEqual(fast.getSentinelTokenIds());
    expect(slow.getSentinelTokenIds()[0]).toBe(32099);
  });

  it("rejects a corrupt spiece.model with a typed error", async () => {
    const bytes = readFileSync(`${shared}t5-spiece/spiece.model`);
    await expect(T5Tokenizer.fromSpiece(bytes.subarray(0, 1000))).rejects.toBeInstanceOf(TokenizerError);
  });

  it("names the missing file when a directory has neither tokenizer.json nor spiece.model", async () => {
    const empty = mkdtempSync(join(tmpdir(), "t5-web-no-tokenizer-"));
    try {
      await expect(AutoTokenizer.fromPretrained(empty)).rejects.toBeInstanceOf(MissingFileError);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
