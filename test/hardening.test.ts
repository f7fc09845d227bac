/**
 * Hardening (issue 15) through the public API: config / tokenizer.json errors that name the file and field, call-time
 * memory budgets as typed errors, and what a trapped engine call leaves behind (engine-guard.ts, wasm.ts).
 */

import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AutoModelForSeq2SeqLM,
  AutoTokenizer,
  BadConfigError,
  BadInputError,
  EngineFailureError,
  InputTooLongError,
  MemoryBudgetError,
  T5ForConditionalGeneration,
  T5Tokenizer,
  TokenizerError,
  initWasm,
  wasmInstanceCount,
  wasmMemory,
} from "../ts/src/index.js";
import { guardEngine } from "../ts/src/engine-guard.js";
import { markInstanceFailed } from "../ts/src/wasm.js";
import { modelDir } from "./helpers/oracle.js";

const TINY = modelDir("tiny-t5");
let tmp: string;
let model: T5ForConditionalGeneration;

function variant(name: string, edit: (dir: string) => void): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  for (const f of readdirSync(TINY)) copyFileSync(join(TINY, f), join(dir, f));
  edit(dir);
  return dir;
}

function editJson(dir: string, file: string, change: (c: Record<string, unknown>) => void): void {
  const c = JSON.parse(readFileSync(join(dir, file), "utf8")) as Record<string, unknown>;
  change(c);
  writeFileSync(join(dir, file), JSON.stringify(c));
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  return p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => e as Error,
  );
}

function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected an error");
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "t5-web-hardening-"));
  model = (await AutoModelForSeq2SeqLM.fromPretrained(TINY)) as T5ForConditionalGeneration;
});

afterAll(() => {
  model.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

describe("config.json / generation_config.json at load", () => {
  it("a wrong type names the file and the field", async () => {
    const dir = variant("d-model-words", (d) => editJson(d, "config.json", (c) => (c.d_model = "sixty-four")));
    const e = await rejection(AutoModelForSeq2SeqLM.fromPretrained(dir));
    expect(e).toBeInstanceOf(BadConfigError);
    expect(e.message).toContain('config.json: d_model: expected a positive integer, got "sixty-four"');
  });

  it("relative-position settings that index out of bounds at forward time fail at load", async () => {
    for (const [name, edit, want] of [
      ["max-distance-2", (c: Record<string, unknown>) => (c.relative_attention_max_distance = 2), /relative_attention_max_distance: 2 must be larger/],
      ["buckets-1", (c: Record<string, unknown>) => (c.relative_attention_num_buckets = 1), /relative_attention_num_buckets: 1 is too few/],
      ["zero-heads", (c: Record<string, unknown>) => (c.num_heads = 0), /num_heads: must be positive/],
    ] as const) {
      const dir = variant(name, (d) => editJson(d, "config.json", edit));
      const e = await rejection(AutoModelForSeq2SeqLM.fromPretrained(dir));
      expect(e, name).toBeInstanceOf(BadConfigError);
      expect(e.message).toMatch(want);
    }
  });

  it("generation_config.json errors name the file and the key", async () => {
    const dir = variant("gen-beams-words", (d) => editJson(d, "generation_config.json", (c) => (c.num_beams = "four")));
    const e = await rejection(AutoModelForSeq2SeqLM.fromPretrained(dir));
    expect(e).toBeInstanceOf(BadConfigError);
    expect(e.message).toContain('generation_config.json: num_beams: expected a non-negative integer, got "four"');
  });
});

describe("tokenizer.json precompiled_charsmap", () => {
  const base = JSON.parse(readFileSync(join(TINY, "tokenizer.json"), "utf8")) as { normalizer: Record<string, unknown> };
  function withCharsmap(value: unknown | undefined): Uint8Array {
    const t = structuredClone(base);
    const n = t.normalizer;
    const p = (n.type === "Precompiled" ? n : (n.normalizers as Record<string, unknown>[]).find((x) => x.type === "Precompiled"))!;
    if (value === undefined) delete p.precompiled_charsmap;
    else p.precompiled_charsmap = value;
    return new TextEncoder().encode(JSON.stringify(t));
  }

  it("missing, null, empty, corrupt or oversized charsmaps are TokenizerErrors, and the engine lives on", async () => {
    const before = wasmMemory()!.buffer.byteLength;
    for (const v of [undefined, null, "", "@@@@", "AAAAAA==", "/////w==", "CAAAAP//////////"]) {
      const e = await rejection(T5Tokenizer.fromBytes(withCharsmap(v)));
      expect(e, JSON.stringify(v)).toBeInstanceOf(TokenizerError);
      expect(e.message).toMatch(/tokenizer\.json: normalizer.*precompiled_charsmap/);
    }
    // the 4-byte value used to reserve its claimed 4 GiB trie; now nothing grows
    expect(wasmMemory()!.buffer.byteLength - before).toBeLessThan(64 << 20);
    const tk = await AutoTokenizer.fromPretrained(TINY);
    expect(tk("Hello").input_ids).toBeDefined();
    tk.dispose();
  });
});

describe("the tokenizer_json fuzz corpus through the public API", () => {
  // crates/t5-fuzz/corpus/tokenizer_json: libFuzzer's minimised corpus and every crash it found (the crashes were
  // panics inside `tokenizers`, a trap in wasm); each file loads and encodes / decodes, or is a TokenizerError
  const dir = join(TINY, "../../../crates/t5-fuzz/corpus/tokenizer_json");
  it("every file loads and round-trips, or is a TokenizerError; the engine lives on", async () => {
    const files = readdirSync(dir).filter((f) => f !== "README.md");
    expect(files.filter((f) => f.startsWith("crash-")).length).toBeGreaterThanOrEqual(4);
    let rejected = 0;
    for (const f of files) {
      const bytes = readFileSync(join(dir, f));
      if (bytes.length > 512 << 10) continue;
      try {
        const tk = await T5Tokenizer.fromBytes(new Uint8Array(bytes));
        try {
          tk.decode(tk.encode("Hello world ＡＢＣ ﬁ"));
        } catch (e) {
          expect(e, `${f}: ${String(e)}`).toBeInstanceOf(TokenizerError); // a trap would be an EngineFailureError
        }
        tk.dispose();
      } catch (e) {
        expect(e, `${f}: ${String(e)}`).toBeInstanceOf(TokenizerError);
        rejected++;
      }
    }
    expect(rejected).toBeGreaterThan(0);
    const tk = await AutoTokenizer.fromPretrained(TINY);
    expect(tk("Hello").input_ids).toBeDefined();
    tk.dispose();
  }, 300_000);
});

describe("call-time budgets", () => {
  it("3,000,000 raw input_ids: InputTooLongError naming the longest that fits", () => {
    // the CPU attention holds a block of scores at a time, so an input's memory grows with its length only
    const e = thrown(() => model.generateSync([Array.from({ length: 3_000_000 }, () => 5)], { max_new_tokens: 2 }));
    expect(e).toBeInstanceOf(InputTooLongError);
    expect(e.message).toMatch(/input of 3000000 tokens is longer than the maximum of \d+/);
  });

  it("forward returning the attentions of 12,000 tokens (2 blocks of [4, 12000, 12000]): InputTooLongError, not a trap", () => {
    // each block's probabilities are 2.3 GB: before they were counted, this call ran out of wasm memory (a trap)
    const long = [Array.from({ length: 12_000 }, (_, i) => 3 + (i % 50))];
    const e = thrown(() => model.forwardSync({ input_ids: long, decoder_input_ids: [[0]], output_attentions: true }));
    expect(e).toBeInstanceOf(InputTooLongError);
    expect(e.message).toMatch(/input of 12000 tokens is longer than the maximum of \d+/);
    expect(e.message).toMatch(/that the memory budget allows for this call \(forward on a \[1, 12000\] input .* recording output_attentions; .*, or leave out output_attentions\)$/);
    const max = Number(/maximum of (\d+)/.exec(e.message)![1]);
    expect(max).toBeGreaterThan(5000);
    expect(max).toBeLessThan(12_000);
    // 40,000 decoder positions: their LM logits alone are 5 GB
    const d = thrown(() => model.forwardSync({ input_ids: [[5, 6, 1]], decoder_input_ids: [Array.from({ length: 40_000 }, () => 0)], output_hidden_states: true }));
    expect(d).toBeInstanceOf(MemoryBudgetError);
    expect(d.message).toMatch(/forward on a \[1, 3\] input with 40000 decoder positions recording output_hidden_states needs [\d.]+ GiB/);
    expect(d.message).toMatch(/shorten the input or decoder_input_ids \/ labels or split the batch, or leave out output_hidden_states/);
    // the model still answers, with the attentions of a shorter input
    const r = model.forwardSync({ input_ids: [long[0]!.slice(0, 300)], decoder_input_ids: [[0]], output_attentions: true });
    expect(r.encoder_attentions!.map((a) => a.dims)).toEqual([[1, 4, 300, 300], [1, 4, 300, 300]]);
  });

  it("num_beams: 100000, huge num_return_sequences and static caches: MemoryBudgetError", () => {
    const ids = [[5, 6, 7, 1]];
    for (const opts of [
      { num_beams: 100_000 },
      { do_sample: true, num_return_sequences: 1_000_000 },
      { cache_implementation: "static", max_new_tokens: 50_000_000 },
      { max_new_tokens: 2 ** 31 },
    ]) {
      const e = thrown(() => model.generateSync(ids, opts as never));
      expect(e, JSON.stringify(opts)).toBeInstanceOf(MemoryBudgetError);
      expect(e).toBeInstanceOf(BadInputError);
    }
    // and the model still answers
    expect(model.generateSync(ids, { max_new_tokens: 3 })[0]!.length).toBeGreaterThan(1);
  });

  it("generate(null) is a BadInputError", async () => {
    expect(thrown(() => model.generateSync(null as never))).toBeInstanceOf(BadInputError);
    expect(thrown(() => model.generateSync(undefined as never))).toBeInstanceOf(BadInputError);
    await expect(model.generate(null as never)).rejects.toBeInstanceOf(BadInputError);
  });
});

describe("a trapped call", () => {
  /** A wasm-bindgen object whose `step` traps as a Rust panic does, leaving the object borrowed. */
  function fakeEngine() {
    let borrowed = false;
    return {
      freed: false,
      step(): number {
        if (borrowed) throw new Error("recursive use of an object detected which would lead to unsafe aliasing in rust");
        borrowed = true;
        throw new WebAssembly.RuntimeError("unreachable");
      },
      ok(): number {
        if (borrowed) throw new Error("recursive use of an object detected which would lead to unsafe aliasing in rust");
        return 1;
      },
      free(): void {
        if (borrowed) throw new Error("attempted to take ownership of Rust value while it was borrowed");
        this.freed = true;
      },
    };
  }

  it("poisons only its object: later calls are EngineFailureErrors naming the operation, free never throws", () => {
    const a = guardEngine(fakeEngine(), "model A");
    const b = guardEngine(fakeEngine(), "model B");
    const first = thrown(() => a.step());
    expect(first).toBeInstanceOf(EngineFailureError);
    expect((first as EngineFailureError).operation).toBe("step");
    const later = thrown(() => a.ok());
    expect(later).toBeInstanceOf(EngineFailureError);
    expect(later.message).toMatch(/^ok: model A is unusable: the WebAssembly engine failed during step/);
    expect(() => a.free()).not.toThrow();
    expect(b.ok()).toBe(1);
    b.free();
    expect(b.freed).toBe(true);
  });

  it("an engine error or a callback's exception poisons nothing", () => {
    const obj = guardEngine(
      {
        n: 0,
        call(): number {
          this.n++;
          if (this.n === 1) throw Object.assign(new Error("bad option"), { name: "BadConfig" });
          if (this.n === 2) throw new TypeError("thrown by a user callback");
          return this.n;
        },
        free(): void {},
      },
      "x",
    );
    expect(thrown(() => obj.call()).name).toBe("BadConfig");
    expect(thrown(() => obj.call())).toBeInstanceOf(TypeError);
    expect(obj.call()).toBe(3);
  });

  it("new loads get a fresh instance; models of the failed one keep working and dispose cleanly", async () => {
    const ids = [[5, 6, 7, 1]];
    const want = model.generateSync(ids, { max_new_tokens: 4 });
    const oldMemory = wasmMemory();
    const count = wasmInstanceCount();
    markInstanceFailed(); // as engine-guard.ts does after a trap
    await initWasm();
    expect(wasmInstanceCount()).toBe(count + 1);
    expect(wasmMemory()).not.toBe(oldMemory);
    const fresh = (await AutoModelForSeq2SeqLM.fromPretrained(TINY)) as T5ForConditionalGeneration;
    expect(fresh.generateSync(ids, { max_new_tokens: 4 })).toEqual(want);
    expect(model.generateSync(ids, { max_new_tokens: 4 })).toEqual(want);
    fresh.dispose();
    expect(() => fresh.dispose()).not.toThrow();
  });
});
