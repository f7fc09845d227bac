/**
 * A genuine WebAssembly trap in the shipped engine (issue 15 item 3): `armDebugTrap()` (ts/src/debug.ts, test-only)
 * makes the next `startGeneration` of the current instance execute `unreachable` inside the call, with its model
 * borrowed, exactly as a Rust panic (`panic = "abort"`) or an allocation failure does. What must follow
 * (docs/hardening.md, "A failed call"): the trapped model's later calls are `EngineFailureError`s naming the operation
 * that trapped, its `dispose()` never throws, the models and tokenizers loaded before the trap on the same instance
 * keep working (and dispose cleanly), a new load gets a fresh instance that generates the same ids, with a fresh small
 * memory. Node runs the threaded build first (vitest.config.ts); its fresh instances are single-thread builds, so the
 * second trap below is in a single-thread (factory) instance.
 */

import { describe, expect, it } from "vitest";
import {
  AutoModelForSeq2SeqLM,
  AutoTokenizer,
  EngineFailureError,
  T5ForConditionalGeneration,
  pipeline,
  wasmFlavour,
  wasmInstanceCount,
  wasmMemory,
} from "../ts/src/index.js";
import { armDebugTrap } from "../ts/src/debug.js";
import { isThreadedFlavour } from "../ts/src/wasm-features.js";
import { modelDir } from "./helpers/oracle.js";

const TINY = modelDir("tiny-t5");
const ids = [[37, 9, 5, 1]];
const opts = { max_new_tokens: 6 };

function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a throw");
}

/** A call that grows the instance's memory: 1,500 tokens' attention probabilities, returned (36 MB a layer). */
function grow(model: T5ForConditionalGeneration): void {
  const long = [Array.from({ length: 1500 }, (_, i) => 3 + (i % 50)).concat([1])];
  model.forwardSync({ input_ids: long, decoder_input_ids: [[0]], output_attentions: true });
}

async function load(): Promise<T5ForConditionalGeneration> {
  return (await AutoModelForSeq2SeqLM.fromPretrained(TINY)) as T5ForConditionalGeneration;
}

/** Trap `victim` (a model of the current instance) and check everything the docs promise. */
async function trapAndRecover(victim: T5ForConditionalGeneration, sync: boolean, want: number[][]) {
  const bystander = await load();
  const tok = await AutoTokenizer.fromPretrained(TINY);
  const oldMemory = wasmMemory()!;
  const oldBytes = oldMemory.buffer.byteLength;
  const count = wasmInstanceCount();

  await armDebugTrap();
  const first = sync ? thrown(() => victim.generateSync(ids, opts)) : await victim.generate(ids, opts).then(() => new Error("resolved"), (e: unknown) => e as Error);
  expect(first).toBeInstanceOf(EngineFailureError);
  expect((first as EngineFailureError).operation).toBe("startGeneration");
  expect(first.message).toMatch(/WebAssembly engine failed \(.*unreachable/);
  expect(first.cause).toBeInstanceOf(WebAssembly.RuntimeError);

  // the trapped model: every later call is an EngineFailureError naming what trapped
  const later = thrown(() => victim.generateSync(ids, opts));
  expect(later).toBeInstanceOf(EngineFailureError);
  expect((later as EngineFailureError).operation).toBe("startGeneration");
  expect(later.message).toMatch(/is unusable: the WebAssembly engine failed during startGeneration/);
  await expect(victim.generate(ids, opts)).rejects.toBeInstanceOf(EngineFailureError);
  await expect(victim.forward({ input_ids: ids, decoder_input_ids: [[0]] })).rejects.toBeInstanceOf(EngineFailureError);
  expect(() => victim.dispose()).not.toThrow();
  expect(() => victim.dispose()).not.toThrow();

  // models and tokenizers loaded before the trap, on the same (failed) instance, keep working
  expect(bystander.generateSync(ids, opts)).toEqual(want);
  expect(tok.decode(want[0]!, { skip_special_tokens: true })).toEqual(expect.any(String));
  expect(wasmMemory()).toBe(oldMemory);

  // the next load: a fresh instance with its own small memory, same ids
  const fresh = await load();
  expect(wasmInstanceCount()).toBe(count + 1);
  const memory = wasmMemory()!;
  expect(memory).not.toBe(oldMemory);
  expect(memory.buffer.byteLength).toBeLessThan(oldBytes);
  expect(memory.buffer.byteLength).toBeLessThan(32 << 20);
  expect(fresh.generateSync(ids, opts)).toEqual(want);
  expect(await fresh.generate(ids, opts)).toEqual(want);

  expect(() => bystander.dispose()).not.toThrow();
  expect(() => tok.dispose()).not.toThrow();
  return fresh;
}

describe("a genuine trap in the engine", { timeout: 120_000 }, () => {
  it("poisons only its model; a new load gets a fresh instance with a small memory (twice: threaded, then single-thread)", async () => {
    const victim = await load();
    const firstFlavour = wasmFlavour();
    const want = victim.generateSync(ids, opts);
    // grow the instance's memory as a large call does (a long input's attention probabilities, [heads, seq, seq] per layer)
    grow(victim);
    expect(wasmMemory()!.buffer.byteLength).toBeGreaterThan(32 << 20);

    const fresh = await trapAndRecover(victim, true, want);
    if (isThreadedFlavour(firstFlavour)) expect(isThreadedFlavour(wasmFlavour())).toBe(false);
    console.log(`trap test: first instance ${firstFlavour}, after the trap ${wasmFlavour()}`);

    // the second instance traps too (the async path this time): the third takes over
    grow(fresh);
    const third = await trapAndRecover(fresh, false, want);
    third.dispose();
  });

  it("a pipeline whose generation traps fails with EngineFailureError; a new pipeline works", async () => {
    const pipe = await pipeline("text2text-generation", TINY);
    const want = await pipe("translate English to German: hello", opts);
    await armDebugTrap();
    await expect(pipe("translate English to German: hello", opts)).rejects.toBeInstanceOf(EngineFailureError);
    await expect(pipe("translate English to German: hello", opts)).rejects.toBeInstanceOf(EngineFailureError);
    expect(() => pipe.dispose()).not.toThrow();
    const again = await pipeline("text2text-generation", TINY);
    expect(await again("translate English to German: hello", opts)).toEqual(want);
    again.dispose();
  });
});
