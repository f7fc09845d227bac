/**
 * The default memory budget of a load, "what the runtime can give" (ts/src/memory-budget.ts, issue 15 item 2): the
 * smaller of the wasm32 address space left and the host's available memory; `max_memory` overrides it; the load
 * (ModelTooLargeError) and the calls (InputTooLongError / MemoryBudgetError) are checked against it.
 */

import { totalmem } from "node:os";
import { afterEach, describe, expect, it, vi } from "vitest";
import { AutoModelForSeq2SeqLM, InputTooLongError, ModelTooLargeError, T5ForConditionalGeneration, wasmMemory } from "../ts/src/index.js";
import { defaultMemoryBudget, hostMemory, memoryBudget, WASM32_MAX_BYTES } from "../ts/src/memory-budget.js";
import { modelDir } from "./helpers/oracle.js";

const TINY = modelDir("tiny-t5");
const MiB = 2 ** 20;
const GiB = 2 ** 30;
const long = [Array.from({ length: 5000 }, (_, i) => 3 + (i % 50)).concat([1])];

afterEach(() => {
  vi.restoreAllMocks();
});

describe("memoryBudget", () => {
  it("is the wasm32 address space left, or the host's memory when smaller", () => {
    expect(memoryBudget({ wasmBytes: 0 })).toEqual({ bytes: WASM32_MAX_BYTES, source: "wasm32" });
    expect(memoryBudget({ wasmBytes: GiB })).toEqual({ bytes: 3 * GiB, source: "wasm32" });
    expect(memoryBudget({ wasmBytes: 5 * GiB })).toEqual({ bytes: 0, source: "wasm32" });
    expect(memoryBudget({ wasmBytes: GiB, host: { bytes: 2 * GiB, source: "os.freemem" } })).toEqual({ bytes: 2 * GiB, source: "os.freemem" });
    expect(memoryBudget({ wasmBytes: GiB, host: { bytes: 16 * GiB, source: "navigator.deviceMemory" } })).toEqual({ bytes: 3 * GiB, source: "wasm32" });
    // a host figure that is no figure is ignored, never a silent zero
    expect(memoryBudget({ wasmBytes: GiB, host: { bytes: NaN, source: "os.freemem" } }).source).toBe("wasm32");
    expect(memoryBudget({ wasmBytes: GiB, host: { bytes: -1, source: "os.freemem" } }).source).toBe("wasm32");
  });

  it("Node: the host's available memory (process.availableMemory), at most the machine's", async () => {
    const host = (await hostMemory())!;
    expect(host.source).toMatch(/^(process\.availableMemory|os\.freemem)$/);
    expect(host.bytes).toBeGreaterThan(0);
    expect(host.bytes).toBeLessThanOrEqual(totalmem());
    const avail = vi.spyOn(process, "availableMemory").mockReturnValue(2 * GiB);
    expect(await defaultMemoryBudget(GiB)).toBe(2 * GiB);
    avail.mockReturnValue(8 * GiB);
    expect(await defaultMemoryBudget(GiB)).toBe(3 * GiB);
  });

  it("browsers: navigator.deviceMemory; Deno: systemMemoryInfo only when --allow-sys grants it", async () => {
    expect(await hostMemory({ navigator: { deviceMemory: 2 } })).toEqual({ bytes: 2 * GiB, source: "navigator.deviceMemory" });
    expect(await hostMemory({ navigator: {} })).toBeUndefined();
    expect(await hostMemory({})).toBeUndefined();
    const deno = (state: string) => ({
      Deno: { systemMemoryInfo: () => ({ available: 5 * GiB }), permissions: { querySync: () => ({ state }) } },
    });
    expect(await hostMemory(deno("granted"))).toEqual({ bytes: 5 * GiB, source: "Deno.systemMemoryInfo" });
    expect(await hostMemory(deno("prompt"))).toBeUndefined();
  });
});

describe("loads and calls use it", { timeout: 120_000 }, () => {
  it("a host with less memory than the engine's reserve: ModelTooLargeError; max_memory overrides", async () => {
    vi.spyOn(process, "availableMemory").mockReturnValue(32 * MiB);
    const e = await AutoModelForSeq2SeqLM.fromPretrained(TINY).then(() => undefined, (err: unknown) => err as Error);
    expect(e).toBeInstanceOf(ModelTooLargeError);
    expect(e!.message).toMatch(/ 0\.03 GiB /);
    const m = await AutoModelForSeq2SeqLM.fromPretrained(TINY, { max_memory: GiB });
    expect(m.generateSync([[37, 9, 5, 1]], { max_new_tokens: 2 })[0]!.length).toBeGreaterThan(1);
    m.dispose();
  });

  it("the calls of a model loaded on a small host are checked against the same budget", async () => {
    vi.spyOn(process, "availableMemory").mockReturnValue(72 * MiB);
    const small = (await AutoModelForSeq2SeqLM.fromPretrained(TINY)) as T5ForConditionalGeneration;
    vi.restoreAllMocks();
    const roomy = (await AutoModelForSeq2SeqLM.fromPretrained(TINY)) as T5ForConditionalGeneration;
    const e = (() => {
      try {
        small.generateSync(long, { max_new_tokens: 1 });
      } catch (err) {
        return err as Error;
      }
    })();
    expect(e).toBeInstanceOf(InputTooLongError);
    expect(e!.message).toMatch(/input of 5001 tokens is longer than the maximum of \d+/);
    // the same call fits the default budget of this machine
    expect(roomy.generateSync(long, { max_new_tokens: 1 })[0]!.length).toBeGreaterThan(0);
    expect(wasmMemory()!.buffer.byteLength).toBeLessThan(WASM32_MAX_BYTES);
    small.dispose();
    roomy.dispose();
  });

  it("the CPU attention holds a block of scores at a time: a long input costs memory in proportion to its length", async () => {
    // 12,000 tokens: [4 heads, 12000, 12000] scores and probabilities would be 4.3 GB, over the 2 GiB limit
    const m = (await AutoModelForSeq2SeqLM.fromPretrained(TINY, { max_memory: 2 * GiB })) as T5ForConditionalGeneration;
    const before = wasmMemory()!.buffer.byteLength;
    const ids = [Array.from({ length: 12_000 }, (_, i) => 3 + (i % 50)).concat([1])];
    const out = m.generateSync(ids, { max_new_tokens: 2 });
    expect(out[0]!.length).toBeGreaterThan(1);
    expect(wasmMemory()!.buffer.byteLength - before).toBeLessThan(256 * MiB);
    m.dispose();
  });
});
