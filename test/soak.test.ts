/**
 * Soak (short version: 120 calls, 30 cycles; `node scripts/soak.mjs` is the long one, figures in docs/hardening.md): repeated generate calls
 * and load / dispose cycles leave the engine's memory flat after warm-up, and concurrent calls on one model are
 * independent (each generation owns its state; interleaved streams give exactly the sequential results).
 */

import { describe, expect, it } from "vitest";
import { AutoModelForSeq2SeqLM, T5ForConditionalGeneration, wasmMemory } from "../ts/src/index.js";
import { modelDir } from "./helpers/oracle.js";

const TINY = modelDir("tiny-t5");
const memory = () => wasmMemory()!.buffer.byteLength;

describe("soak", () => {
  it("120 generate calls: memory flat after warm-up", { timeout: 180_000 }, async () => {
    const model = (await AutoModelForSeq2SeqLM.fromPretrained(TINY)) as T5ForConditionalGeneration;
    const opts = [{ max_new_tokens: 6 }, { max_new_tokens: 6, num_beams: 3 }, { max_new_tokens: 6, do_sample: true, seed: 3 }];
    for (let i = 0; i < 12; i++) model.generateSync([[37, 9, 5, 1]], opts[i % 3]);
    const warm = memory();
    const first = model.generateSync([[37, 9, 5, 1]], opts[0]);
    for (let i = 0; i < 120; i++) {
      const out = model.generateSync([[37, 9, 5, 1]], opts[i % 3]);
      if (i % 3 === 0) expect(out).toEqual(first);
    }
    expect(memory()).toBe(warm);
    model.dispose();
  });

  it("30 load / dispose cycles: memory flat after warm-up", { timeout: 180_000 }, async () => {
    for (let i = 0; i < 3; i++) (await AutoModelForSeq2SeqLM.fromPretrained(TINY)).dispose();
    const warm = memory();
    for (let i = 0; i < 30; i++) (await AutoModelForSeq2SeqLM.fromPretrained(TINY)).dispose();
    expect(memory()).toBe(warm);
  });

  it("interleaved streams on one model give the sequential results", { timeout: 60_000 }, async () => {
    const model = (await AutoModelForSeq2SeqLM.fromPretrained(TINY)) as T5ForConditionalGeneration;
    const a = { input_ids: [[37, 9, 5, 1]] };
    const b = { input_ids: [[8, 22, 1]] };
    const optsA = { max_new_tokens: 8, num_beams: 2 };
    const optsB = { max_new_tokens: 8 };
    const wantA = model.generateSync(a, optsA);
    const wantB = model.generateSync(b, optsB);
    const drain = async (it: AsyncGenerator<number[], { sequences: number[][] }, undefined>) => {
      for (;;) {
        const r = await it.next();
        if (r.done) return r.value.sequences;
      }
    };
    const [gotA, gotB] = await Promise.all([drain(model.generateStream(a, optsA)), drain(model.generateStream(b, optsB))]);
    expect(gotA).toEqual(wantA);
    expect(gotB).toEqual(wantB);
    // a synchronous call between the steps of a stream is independent too
    const it = model.generateStream(a, optsA);
    await it.next();
    expect(model.generateSync(b, optsB)).toEqual(wantB);
    expect(await drain(it)).toEqual(wantA);
    model.dispose();
  });
});
