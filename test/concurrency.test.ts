/**
 * Concurrent calls on one model (issue 15 item 5; docs/hardening.md "Concurrency"): never interleaved state.
 * - CPU: calls run at once, each generation owning its cache, search state and PRNG: concurrent `generate` calls,
 *   interleaved streams and a `forward` between the steps give exactly the sequential results (test/soak.test.ts has
 *   interleaved streams with a synchronous call between their steps).
 * - Worker (`createGenerationWorker`): the worker runs one call at a time in arrival order (queued); concurrent
 *   calls through its model API and its `generate` give the sequential results.
 * - WebGPU: test/webgpu/node.test.ts ("concurrent calls").
 * The worker runs the built package (dist/npm/node-worker.js, `npm run build`).
 */

import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AutoModelForSeq2SeqLM, createGenerationWorker, pipeline, T5ForConditionalGeneration, type GenerationWorker } from "../ts/src/index.js";
import { modelDir, ROOT } from "./helpers/oracle.js";

const TINY = modelDir("tiny-t5");
const a = { input_ids: [[37, 9, 5, 1]] };
const b = { input_ids: [[8, 22, 1], [4, 4, 1]] };
const calls = [
  [a, { max_new_tokens: 8, num_beams: 2 }],
  [b, { max_new_tokens: 8 }],
  [a, { max_new_tokens: 8, do_sample: true, seed: 7, top_k: 5 }],
  [b, { max_new_tokens: 6, num_beams: 3, num_return_sequences: 2 }],
] as const;

async function drain(it: AsyncGenerator<number[], { sequences: number[][] }, undefined>): Promise<number[][]> {
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value.sequences;
  }
}

describe("concurrent calls on one CPU model", { timeout: 120_000 }, () => {
  let lm: T5ForConditionalGeneration;
  let want: number[][][];
  beforeAll(async () => {
    lm = (await AutoModelForSeq2SeqLM.fromPretrained(TINY)) as T5ForConditionalGeneration;
    want = calls.map(([x, o]) => lm.generateSync(x, o));
  });
  afterAll(() => lm.dispose());

  it("run at once (not queued) and give the sequential results", async () => {
    const order: number[] = [];
    const got = await Promise.all(
      calls.map(([x, o], i) =>
        lm.generate(x, {
          ...o,
          callback_function: () => {
            order.push(i);
            return true;
          },
        }),
      ),
    );
    expect(got).toEqual(want);
    // the steps of different calls alternate: they ran concurrently, yielding between steps
    const firstDone = order.lastIndexOf(0);
    expect(order.slice(0, firstDone).some((i) => i !== 0)).toBe(true);
  });

  it("streams, async generate and forward interleaved", async () => {
    const logits = (await lm.forward({ ...a, decoder_input_ids: [[0, 5]] })).logits.data;
    const s = lm.generateStream(calls[0][0], calls[0][1]);
    await s.next();
    const [g, f, rest] = await Promise.all([lm.generate(calls[3][0], calls[3][1]), lm.forward({ ...a, decoder_input_ids: [[0, 5]] }), drain(s)]);
    expect(g).toEqual(want[3]);
    expect(Array.from(f.logits.data)).toEqual(Array.from(logits));
    expect(rest).toEqual(want[0]);
  });
});

const WORKER = join(ROOT, "dist/npm/node-worker.js");

describe.runIf(existsSync(WORKER))("concurrent calls on a worker's model", { timeout: 180_000 }, () => {
  let gen: GenerationWorker;
  let lm: T5ForConditionalGeneration;
  beforeAll(async () => {
    lm = (await AutoModelForSeq2SeqLM.fromPretrained(TINY)) as T5ForConditionalGeneration;
    gen = await createGenerationWorker(TINY, { workerUrl: WORKER });
  });
  afterAll(() => {
    gen.terminate();
    lm.dispose();
  });

  it("are queued in the worker: each gives its sequential result", async () => {
    const want = calls.map(([x, o]) => lm.generateSync(x, o));
    const got = await Promise.all(calls.map(([x, o]) => gen.model.generate(x, o)));
    expect(got).toEqual(want);
    const s = gen.model.generateStream(calls[0][0], calls[0][1]);
    await s.next();
    const [g, rest] = await Promise.all([gen.model.generate(calls[1][0], calls[1][1]), drain(s)]);
    expect(g).toEqual(want[1]);
    expect(rest).toEqual(want[0]);
  });

  it("the pipeline API of the worker too", async () => {
    const pipe = await pipeline("text2text-generation", TINY);
    const texts = ["translate English to German: hello", "summarize: a b c d"];
    const want = await Promise.all(texts.map((t) => pipe(t, { max_new_tokens: 5 })));
    pipe.dispose();
    expect(await Promise.all(texts.map((t) => gen.generate(t, { max_new_tokens: 5 })))).toEqual(want);
  });
});
