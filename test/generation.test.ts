/**
 * Generation strategies against transformers' `generate` (test/fixtures/oracle/generation/*.json, made by
 * scripts/make_generation_fixtures.py): greedy / beam ids identical, beam `sequences_scores` within 1e-4 + 4 × their
 * fp64 spread, static cache = growing cache; sampling reproducible by seed (own PRNG, not torch's stream); streaming
 * (streamer, callback_function, async iterator) and AbortSignal.
 */

import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AutoTokenizer, BadConfigError, GeneratedIds, T5ForConditionalGeneration, TextStreamer, type GenerateOptions, type T5Tokenizer } from "../ts/src/index.js";
import { modelDir, ORACLE } from "./helpers/oracle.js";

interface Case {
  name: string;
  kwargs: Record<string, unknown>;
  sequences: number[][];
  sequences_single: number[][][];
  sequences_scores?: number[];
  sequences_scores_fp64_diff?: number;
}
interface GenOracle {
  input_ids: number[][];
  attention_mask: number[][];
  cases: Case[];
}

const load = (name: string): GenOracle => JSON.parse(readFileSync(`${ORACLE}generation/${name}.json`, "utf8")) as GenOracle;

describe.each(["tiny-t5", "tiny-t5-v1_1"])("%s", (name) => {
  const o = load(name);
  let lm: T5ForConditionalGeneration;
  beforeAll(async () => {
    lm = await T5ForConditionalGeneration.fromPretrained(modelDir(name));
  });
  afterAll(() => lm?.dispose());
  const inputs = () => ({ input_ids: o.input_ids, attention_mask: o.attention_mask });

  it.each(o.cases.map((c) => [c.name, c] as const))("%s: ids as transformers (batched)", (_n, c) => {
    const out = lm.generateSync(inputs(), { ...(c.kwargs as GenerateOptions), return_dict_in_generate: true });
    expect(out.sequences).toEqual(c.sequences);
    if (c.sequences_scores) {
      const tol = 1e-4 + 4 * c.sequences_scores_fp64_diff!;
      expect(out.sequences_scores).toHaveLength(c.sequences_scores.length);
      out.sequences_scores!.forEach((s, i) => expect(Math.abs(s - c.sequences_scores![i]!), `score ${i}`).toBeLessThanOrEqual(tol));
    }
  });

  it("each row alone gives transformers' single-row ids (beam and processor cases)", () => {
    for (const c of o.cases.filter((c) => c.name !== "preset")) {
      o.input_ids.forEach((row, r) => {
        const n = o.attention_mask[r]!.filter((x) => x === 1).length;
        expect(lm.generateSync([row.slice(0, n)], c.kwargs as GenerateOptions), `${c.name} row ${r}`).toEqual(c.sequences_single[r]);
      });
    }
  });

  it("generate() returns number[][] that also reads as transformers.js's int64 Tensor of ids", async () => {
    const c = o.cases[0]!;
    const got = await lm.generate(inputs(), c.kwargs as GenerateOptions);
    expect(got).toBeInstanceOf(GeneratedIds);
    expect(Array.isArray(got)).toBe(true);
    expect(got).toEqual(c.sequences); // the plain rows, as before
    expect(JSON.parse(JSON.stringify(got))).toEqual(c.sequences);
    const [rows, len] = [c.sequences.length, c.sequences[0]!.length];
    expect(got.dims).toEqual([rows, len]);
    expect(got.type).toBe("int64");
    expect(got.size).toBe(rows * len);
    expect(got.data).toBeInstanceOf(BigInt64Array);
    expect(Array.from(got.data, Number)).toEqual(c.sequences.flat());
    expect(got.tolist()).toEqual(c.sequences);
    expect(got.tolist()).not.toBeInstanceOf(GeneratedIds);
    expect(got.map((r) => r.length)).not.toBeInstanceOf(GeneratedIds);
    expect(Object.keys(got)).toEqual(c.sequences.map((_, i) => String(i))); // no extra own properties
    // the tensor form goes back into the tokenizer and into generate as ids
    const tok = await AutoTokenizer.fromPretrained(modelDir(name));
    try {
      expect(tok.batch_decode({ data: got.data, dims: got.dims })).toEqual(tok.batch_decode(c.sequences));
    } finally {
      tok.dispose();
    }
    const dict = lm.generateSync(inputs(), { ...(c.kwargs as GenerateOptions), return_dict_in_generate: true });
    expect(dict.sequences.dims).toEqual([rows, len]);
  });

  it("static KV cache gives the same ids as the growing one", () => {
    for (const c of o.cases.filter((c) => c.name.startsWith("beam") || c.name === "repetition_penalty")) {
      expect(lm.generateSync(inputs(), { ...(c.kwargs as GenerateOptions), cache_implementation: "static" }), c.name).toEqual(c.sequences);
    }
  });
});

describe("sampling, streaming, cancellation", () => {
  const o = load("tiny-t5");
  let lm: T5ForConditionalGeneration;
  let tok: T5Tokenizer;
  beforeAll(async () => {
    [lm, tok] = await Promise.all([T5ForConditionalGeneration.fromPretrained(modelDir("tiny-t5")), AutoTokenizer.fromPretrained(modelDir("tiny-t5"))]);
  });
  afterAll(() => {
    lm?.dispose();
    tok?.dispose();
  });
  const inputs = () => ({ input_ids: o.input_ids, attention_mask: o.attention_mask });
  const greedy12 = () => o.cases.find((c) => c.name === "min_new_tokens_8")!.sequences; // 12 new tokens, no EOS

  it("sampling is reproducible by seed and top_k = 1 equals greedy", () => {
    const opts = { do_sample: true, max_new_tokens: 10, top_k: 0, temperature: 1.5 };
    const a = lm.generateSync(inputs(), { ...opts, seed: 1 });
    expect(lm.generateSync(inputs(), { ...opts, seed: 1 })).toEqual(a);
    expect(lm.generateSync(inputs(), { ...opts, seed: 2 })).not.toEqual(a);
    expect(lm.generateSync(inputs(), { ...opts, seed: 1, cache_implementation: "static" })).toEqual(a);
    expect(lm.generateSync(inputs(), { do_sample: true, top_k: 1, max_new_tokens: 12, seed: 3 })).toEqual(greedy12());
    const many = lm.generateSync(inputs(), { ...opts, seed: 4, num_return_sequences: 2, top_p: 0.9 });
    expect(many).toHaveLength(6);
  });

  it("TextStreamer and callback_function see the tokens as they come", () => {
    const steps: number[][] = [];
    const seqs = lm.generateSync(inputs(), {
      max_new_tokens: 12,
      callback_function: ({ tokens }) => {
        steps.push(tokens);
      },
    });
    expect(seqs).toEqual(greedy12());
    expect(steps).toHaveLength(12);
    expect(steps.map((s) => s[0])).toEqual(seqs[0]!.slice(1));
    // TextStreamer streams one row (transformers.js: batch size 1), without a forced trailing newline
    const pieces: string[] = [];
    const c = o.cases.find((c) => c.name === "min_new_tokens_8")!;
    const n = o.attention_mask[0]!.filter((x) => x === 1).length;
    const row = lm.generateSync([o.input_ids[0]!.slice(0, n)], { ...(c.kwargs as GenerateOptions), streamer: new TextStreamer(tok, { callback_function: (t) => pieces.push(t) }) });
    expect(row).toEqual(c.sequences_single[0]);
    expect(pieces.join("")).toBe(tok.decode(row[0]!, { skip_special_tokens: true }));
    expect(() => lm.generateSync(inputs(), { max_new_tokens: 2, streamer: new TextStreamer(tok, { callback_function: () => {} }) })).toThrow(/batch of 1/);
  });

  it("callback_function returning false and an aborted signal stop generation", () => {
    const seqs = lm.generateSync(inputs(), { max_new_tokens: 12, callback_function: ({ index }) => index < 3 });
    expect(seqs.map((s) => s.length)).toEqual([5, 5, 5]);
    const ctl = new AbortController();
    let n = 0;
    expect(() =>
      lm.generateSync(inputs(), {
        max_new_tokens: 12,
        num_beams: 2,
        signal: ctl.signal,
        callback_function: () => {
          if (++n === 2) ctl.abort(new Error("stop here"));
        },
      }),
    ).toThrow("stop here");
    expect(n).toBe(2);
  });

  it("generateStream: an async iterator of step tokens that returns the sequences", async () => {
    const it = lm.generateStream(inputs(), { max_new_tokens: 12 });
    const steps: number[][] = [];
    let r = await it.next();
    while (!r.done) {
      steps.push(r.value);
      r = await it.next();
    }
    expect(r.value.sequences).toEqual(greedy12());
    expect(steps.map((s) => s[1])).toEqual(greedy12()[1]!.slice(1));
    // beam search streams too, and returns scores
    const beam = o.cases.find((c) => c.name === "beam3_return2_scores")!;
    let n = 0;
    const g = lm.generateStream(inputs(), beam.kwargs as GenerateOptions);
    for (;;) {
      const x = await g.next();
      if (x.done) {
        expect(x.value.sequences).toEqual(beam.sequences);
        expect(x.value.sequences_scores).toHaveLength(6);
        break;
      }
      n++;
    }
    expect(n).toBeGreaterThan(0);
  });

  it("generateStream stops on an AbortSignal between steps, and when the loop is left", async () => {
    const ctl = new AbortController();
    const seen: number[][] = [];
    await expect(
      (async () => {
        for await (const step of lm.generateStream(inputs(), { max_new_tokens: 12, signal: ctl.signal })) {
          seen.push(step);
          if (seen.length === 2) setTimeout(() => ctl.abort(new Error("timed out")), 0);
        }
      })(),
    ).rejects.toThrow("timed out");
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen.length).toBeLessThan(12);
    let k = 0;
    for await (const _ of lm.generateStream(inputs(), { max_new_tokens: 12 })) {
      if (++k === 3) break;
    }
    expect(k).toBe(3);
  });

  it("bad options are typed errors", () => {
    expect(() => lm.generateSync(inputs(), { num_beams: 2, streamer: new TextStreamer(tok, { callback_function: () => {} }) })).toThrow(BadConfigError);
    expect(() => lm.generateSync(inputs(), { num_beams: 2, num_return_sequences: 3 })).toThrow(BadConfigError);
    expect(() => lm.generateSync(inputs(), { do_sample: true, temperature: 0 })).toThrow(BadConfigError);
    expect(() => lm.generateSync(inputs(), { early_stopping: "sometimes" as never })).toThrow(BadConfigError);
    expect(() => lm.generateSync(inputs(), { cache_implementation: "sliding" as never })).toThrow(BadConfigError);
    expect(() => lm.generateSync(inputs(), { top_n: 3 } as never)).toThrow(BadConfigError);
  });
});
