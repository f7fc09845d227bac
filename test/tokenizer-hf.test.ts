/**
 * The tokenizer under transformers' / transformers.js's names and conventions: `from_pretrained`, `decode` /
 * `batch_decode` of every id form (lists, typed arrays, BigInt64Array, `{ data, dims }` tensors), `tokenize`,
 * `convert_tokens_to_ids` / `convert_ids_to_tokens`, sentinels, `get_special_tokens_mask`, `return_tensors`,
 * `save_pretrained` / `save_vocabulary`; and `T5Tokenizer({ vocab, … })` against transformers 5.24's
 * `T5Tokenizer(vocab=…)` (oracle: scripts/make_vocab_tokenizer_fixtures.py).
 */

import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AutoTokenizer, BadConfigError, BadInputError, IdTensor, T5Config, T5Tokenizer, T5WebError, initWasm } from "../ts/src/index.js";
import { FIXTURES, loadTokenizerOracle, modelDir } from "./helpers/oracle.js";

const oracle = loadTokenizerOracle();
let tok: T5Tokenizer;
const tmp = mkdtempSync(join(tmpdir(), "t5-web-tok-"));

beforeAll(async () => {
  tok = await AutoTokenizer.from_pretrained(modelDir("tiny-t5"));
});

afterAll(() => {
  tok.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

describe("transformers names", () => {
  it("from_pretrained on AutoTokenizer, T5Tokenizer and T5Config", async () => {
    const t = await T5Tokenizer.from_pretrained(modelDir("tiny-t5"));
    expect(t.encode(oracle.cases[0]!.text)).toEqual(oracle.cases[0]!.encode);
    t.dispose();
    expect((await T5Config.from_pretrained(modelDir("tiny-t5"))).d_model).toBeGreaterThan(0);
  });

  it("decode / batch_decode take every id form", () => {
    const c = oracle.cases.find((x) => x.encode.length > 3)!;
    const n = c.encode.length;
    const forms: unknown[] = [
      c.encode,
      Int32Array.from(c.encode),
      Uint32Array.from(c.encode),
      BigInt64Array.from(c.encode, BigInt),
      c.encode.map(BigInt),
      [c.encode],
      { data: BigInt64Array.from(c.encode, BigInt), dims: [n] },
      { data: BigInt64Array.from(c.encode, BigInt), dims: [1, n] },
      { data: Int32Array.from(c.encode), dims: [1, n] },
    ];
    for (const f of forms) expect(tok.decode(f as number[]), String((f as object).constructor.name)).toBe(c.decode);
    const rows = oracle.cases.slice(0, 3).map((x) => x.encode);
    const want = oracle.cases.slice(0, 3).map((x) => x.decode);
    expect(tok.batch_decode(rows.map((r) => BigInt64Array.from(r, BigInt)))).toEqual(want);
    expect(tok.batch_decode(rows.map((r) => Int32Array.from(r)))).toEqual(want);
    // a padded batch as an int64 tensor (transformers.js's generate output)
    const enc = tok(oracle.batch.texts, { padding: true, return_tensors: "pt" });
    expect(enc.input_ids).toBeInstanceOf(IdTensor);
    expect(tok.batch_decode(enc.input_ids, { skip_special_tokens: true })).toEqual(tok.batch_decode(oracle.batch.input_ids, { skip_special_tokens: true }));
    expect(tok.batch_decode({ data: enc.input_ids.data, dims: enc.input_ids.dims })).toEqual(tok.batch_decode(oracle.batch.input_ids));
  });

  it("bad ids are BadInputErrors naming the method", () => {
    expect(() => tok.decode([1, -1])).toThrow(BadInputError);
    expect(() => tok.decode(BigInt64Array.of(1n, -100n))).toThrow(/decode: -100 is not a token id/);
    expect(() => tok.decode([1.5])).toThrow(BadInputError);
    expect(() => tok.decode([[1], [2]] as never)).toThrow(/batch_decode/);
    expect(() => tok.decode({ data: Int32Array.of(1, 2, 3), dims: [2, 2] } as never)).toThrow(/dims/);
    expect(() => tok.batch_decode({ data: Int32Array.of(1, 2), dims: [2] })).toThrow(/2-D/);
    expect(() => tok.batch_decode("x" as never)).toThrow(BadInputError);
  });

  it("return_tensors / return_tensor: int64 [batch, seq] tensors; ragged rows need padding", () => {
    const lists = tok(oracle.batch.texts, { padding: true });
    for (const opts of [{ return_tensors: "pt" as const }, { return_tensors: "np" as const }, { return_tensor: true as const }]) {
      const t = tok(oracle.batch.texts, { padding: true, ...opts });
      expect(t.input_ids.type).toBe("int64");
      expect(t.input_ids.data).toBeInstanceOf(BigInt64Array);
      expect(t.input_ids.dims).toEqual([lists.input_ids.length, lists.input_ids[0]!.length]);
      expect(t.input_ids.tolist()).toEqual(lists.input_ids);
      expect(t.attention_mask.tolist()).toEqual(lists.attention_mask);
    }
    expect(tok(oracle.batch.texts, { padding: true, return_tensors: false }).input_ids).toEqual(lists.input_ids);
    expect(() => tok(oracle.batch.texts, { return_tensors: "pt" })).toThrow(/padding/);
    expect(() => tok("x", { return_tensors: "torch" as never })).toThrow(BadInputError);
  });

  it("tokenize, convert_tokens_to_ids (unknown → unk), convert_ids_to_tokens", () => {
    const c = oracle.cases.find((x) => x.text === "Hello world") ?? oracle.cases[0]!;
    const tokens = tok.tokenize(c.text);
    expect(tok.convert_tokens_to_ids(tokens)).toEqual(tok.encode(c.text, { add_special_tokens: false }));
    expect(tok.tokenize(c.text, { add_special_tokens: true }).at(-1)).toBe("</s>");
    expect(tok.tokenize("a", { pair: "b", add_special_tokens: true }).filter((t) => t === "</s>").length).toBe(2);
    expect(tok.convert_tokens_to_ids("</s>")).toBe(oracle.eos_token_id);
    expect(tok.convert_tokens_to_ids("surely-not-a-piece")).toBe(oracle.unk_token_id);
    expect(tok.unk_token_id).toBe(oracle.unk_token_id);
    expect(tok.convert_ids_to_tokens(oracle.eos_token_id)).toBe("</s>");
    expect(tok.convert_ids_to_tokens(BigInt(oracle.eos_token_id))).toBe("</s>");
    expect(tok.convert_ids_to_tokens([oracle.eos_token_id, oracle.pad_token_id])).toEqual(["</s>", "<pad>"]);
    expect(tok.convert_ids_to_tokens([10 ** 9])).toEqual([undefined]);
  });

  it("get_sentinel_tokens / get_sentinel_token_ids as the checkpoint (<extra_id_0> = 32099)", () => {
    expect(tok.get_sentinel_tokens()).toEqual(oracle.sentinel_tokens);
    expect(tok.get_sentinel_token_ids()).toEqual(oracle.sentinel_token_ids);
    expect(tok.get_sentinel_token_ids()[0]).toBe(tok.vocab_size - 1);
  });

  it("get_special_tokens_mask(ids, ids1?, already_has_special_tokens?)", () => {
    const ids = tok.encode("Hello world"); // … </s>
    const body = ids.slice(0, -1);
    expect(tok.get_special_tokens_mask(body)).toEqual([...body.map(() => 0), 1]);
    expect(tok.get_special_tokens_mask(body, body)).toEqual([...body.map(() => 0), 1, ...body.map(() => 0), 1]);
    expect(tok.get_special_tokens_mask(ids, null, true)).toEqual([...body.map(() => 0), 1]);
    expect(tok.get_special_tokens_mask(ids, { already_has_special_tokens: true })).toEqual([...body.map(() => 0), 1]);
    const s0 = oracle.sentinel_token_ids[0]!;
    expect(tok.get_special_tokens_mask(BigInt64Array.of(BigInt(s0), BigInt(body[0]!), BigInt(oracle.pad_token_id)), undefined, true)).toEqual([1, 0, 1]);
    expect(() => tok.get_special_tokens_mask(ids, ids, true)).toThrow(BadInputError);
  });

  it("save_pretrained: written into a directory when given, a file map always; both load back to identical ids", async () => {
    const dir = join(tmp, "saved");
    const written = await tok.save_pretrained(dir);
    expect([...written.keys()].sort()).toEqual(["tokenizer.json", "tokenizer_config.json"]);
    expect(readdirSync(dir).sort()).toEqual(["tokenizer.json", "tokenizer_config.json"]);
    expect(Buffer.compare(readFileSync(join(dir, "tokenizer.json")), written.get("tokenizer.json")!)).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8"))).toMatchObject({ tokenizer_class: "T5Tokenizer", extra_ids: 100, pad_token: "<pad>" });
    const fromDir = await AutoTokenizer.from_pretrained(dir);
    const files = await tok.save_vocabulary();
    expect([...files.keys()].sort()).toEqual(["tokenizer.json", "tokenizer_config.json"]);
    const fromMap = await AutoTokenizer.from_pretrained(files);
    for (const c of oracle.cases) {
      expect(fromDir.encode(c.text)).toEqual(c.encode);
      expect(fromMap.encode(c.text)).toEqual(c.encode);
    }
    expect(fromDir.get_sentinel_token_ids()).toEqual(oracle.sentinel_token_ids);
    expect(fromMap.model_max_length).toBe(tok.model_max_length);
    fromDir.dispose();
    fromMap.dispose();
  });
});

interface VocabCase {
  name: string;
  init: Record<string, unknown> & { vocab: [string, number][] };
  vocab_size: number;
  pad_token_id: number;
  eos_token_id: number;
  unk_token_id: number;
  sentinel_tokens: string[];
  sentinel_token_ids: number[];
  hf_sentinel_token_ids: number[];
  special_tokens_mask: { ids: number[]; mask: number[] };
  rows: { text: string; ids: number[]; hf_ids: number[]; tokens: string[]; decoded: string; decoded_skip: string }[];
}

const vocabOracle = JSON.parse(readFileSync(join(FIXTURES, "oracle/vocab-tokenizer/cases.json"), "utf8")) as { cases: VocabCase[] };

describe("T5Tokenizer({ vocab }) vs transformers 5.24's T5Tokenizer(vocab=…)", () => {
  beforeAll(() => initWasm());

  it.each(vocabOracle.cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const t = new T5Tokenizer(c.init as never);
    expect(t.vocab_size).toBe(c.vocab_size);
    expect(t.pad_token_id).toBe(c.pad_token_id);
    expect(t.eos_token_id).toBe(c.eos_token_id);
    expect(t.unk_token_id).toBe(c.unk_token_id);
    expect(t.get_sentinel_tokens()).toEqual(c.sentinel_tokens);
    expect(t.get_sentinel_token_ids()).toEqual(c.sentinel_token_ids);
    for (const r of c.rows) {
      expect(t.encode(r.text), r.text).toEqual(r.ids);
      expect(t.convert_ids_to_tokens(r.ids), r.text).toEqual(r.tokens);
      expect(t.decode(r.ids), r.text).toBe(r.decoded);
      expect(t.decode(r.ids, { skip_special_tokens: true }), r.text).toBe(r.decoded_skip);
    }
    expect(t.get_special_tokens_mask(c.special_tokens_mask.ids, null, true)).toEqual(c.special_tokens_mask.mask);
    t.dispose();
  });

  it("sentinels count down from the last id (the checkpoints' order), transformers' count up", () => {
    const c = vocabOracle.cases.find((x) => x.name === "default")!;
    const t = new T5Tokenizer(c.init as never);
    const ids = t.get_sentinel_token_ids();
    expect(ids.length).toBe(100);
    expect(ids[0]).toBe(t.vocab_size - 1); // <extra_id_0>
    expect(ids[99]).toBe(t.vocab_size - 100);
    expect(t.convert_tokens_to_ids("<extra_id_0>")).toBe(t.vocab_size - 1);
    expect(c.hf_sentinel_token_ids[0]).toBe(t.vocab_size - 100); // transformers 5.24: ascending
    // only sentinel ids differ from transformers'
    for (const r of c.rows) r.hf_ids.forEach((id, k) => expect(r.ids[k] === id || c.hf_sentinel_token_ids.includes(id)).toBe(true));
    t.dispose();
  });

  it("a Map or an object vocabulary, fromVocab, save_pretrained round trip", async () => {
    const c = vocabOracle.cases.find((x) => x.name === "extra3_sep")!;
    const asMap = await T5Tokenizer.fromVocab({ ...c.init, vocab: new Map(c.init.vocab) } as never);
    // an object keeps its key order except for integer-like keys ("1", "0", …), which JavaScript puts first
    const noDigits = c.init.vocab.filter(([p]) => !/^\d+$/.test(p));
    const asObject = new T5Tokenizer({ ...c.init, vocab: Object.fromEntries(noDigits) } as never);
    const asList = new T5Tokenizer({ ...c.init, vocab: noDigits } as never);
    const files = await asMap.save_pretrained();
    const back = await T5Tokenizer.from_pretrained(files);
    for (const r of c.rows) {
      expect(asMap.encode(r.text)).toEqual(r.ids);
      expect(asObject.encode(r.text)).toEqual(asList.encode(r.text));
      expect(back.encode(r.text)).toEqual(r.ids);
    }
    asList.dispose();
    expect(back.get_sentinel_token_ids()).toEqual(c.sentinel_token_ids);
    for (const t of [asMap, asObject, back]) t.dispose();
  });

  it("bad constructor arguments are typed errors naming the option", () => {
    const vocab: [string, number][] = [["<pad>", 0], ["</s>", 0], ["<unk>", 0], ["▁a", -1]];
    expect(() => new T5Tokenizer({ vocab: [["a", NaN], ["b", 0], ["c", 0]] })).toThrow(/vocab\[0\]/);
    expect(() => new T5Tokenizer({ vocab, extra_ids: 2.5 })).toThrow(/extra_ids/);
    expect(() => new T5Tokenizer({ vocab, extra_ids: -1 })).toThrow(/extra_ids/);
    expect(() => new T5Tokenizer({ vocab, extra_idz: 1 } as never)).toThrow(/extra_idz/);
    expect(() => new T5Tokenizer({ vocab: [["a", 0], ["b", 0]] })).toThrow(BadConfigError);
    expect(() => new T5Tokenizer({ vocab, extra_ids: 3, additional_special_tokens: ["<extra_id_0>"] })).toThrow(/additional_special_tokens/);
    expect(() => new T5Tokenizer({ vocab: [["a", 0], ["a", 0], ["c", 0]] })).toThrow(/twice/);
    expect(() => new T5Tokenizer({ vocab: "x" } as never)).toThrow(T5WebError);
  });
});
