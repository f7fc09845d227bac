/**
 * Three engine builds ship (SIMD128, relaxed SIMD, threads); the one the runtime supports loads.
 * `npm test` runs the oracle suites once per build: `vitest run` (Node with 2+ hardware threads: the
 * threaded build), `vitest run -c vitest.relaxed.config.ts` (relaxed SIMD enabled) and
 * `vitest run -c vitest.simd128.config.ts` (the baseline); T5_EXPECT_WASM says which must run.
 */
import { availableParallelism } from "node:os";
import { describe, expect, it } from "vitest";
import { hasRelaxedSimd, initWasm, threadsSupported, wasmFlavour } from "../ts/src/index.js";
import { preferredFlavour, wasmFileName } from "../ts/src/wasm-features.js";

describe("engine build", () => {
  it("loads the build this runtime supports", async () => {
    await initWasm();
    const single = hasRelaxedSimd() ? "relaxed-simd" : "simd128";
    const expected = process.env.T5_EXPECT_WASM ?? (threadsSupported() && availableParallelism() > 1 ? "threads" : single);
    expect(wasmFlavour()).toBe(expected);
  });

  it("the probe agrees with the engine: the relaxed build compiles exactly where the probe validates", async () => {
    const fs = await import("node:fs/promises");
    const bytes = await fs.readFile(new URL("../pkg/t5_web_relaxed_bg.wasm", import.meta.url));
    expect(WebAssembly.validate(bytes)).toBe(hasRelaxedSimd());
    const base = await fs.readFile(new URL("../pkg/t5_web_bg.wasm", import.meta.url));
    expect(WebAssembly.validate(base)).toBe(true);
    const threads = await fs.readFile(new URL("../pkg/t5_web_threads_bg.wasm", import.meta.url));
    expect(WebAssembly.validate(threads)).toBe(true);
  });

  it("T5_WEB_WASM=simd128 forces the baseline", () => {
    const g = globalThis as { T5_WEB_WASM?: string };
    g.T5_WEB_WASM = "simd128";
    try {
      expect(preferredFlavour()).toBe("simd128");
    } finally {
      delete g.T5_WEB_WASM;
    }
    const g2 = globalThis as { T5_WEB_WASM?: string };
    const saved = process.env.T5_WEB_WASM;
    delete process.env.T5_WEB_WASM;
    try {
      expect(preferredFlavour(1)).toBe(hasRelaxedSimd() ? "relaxed-simd" : "simd128");
      expect(preferredFlavour(4)).toBe(threadsSupported() ? "threads" : preferredFlavour(1));
      g2.T5_WEB_WASM = "threads";
      expect(preferredFlavour(1)).toBe("threads");
    } finally {
      delete g2.T5_WEB_WASM;
      if (saved !== undefined) process.env.T5_WEB_WASM = saved;
    }
    expect(wasmFileName("relaxed-simd")).toBe("t5_web_relaxed_bg.wasm");
    expect(wasmFileName("threads")).toBe("t5_web_threads_bg.wasm");
  });
});
