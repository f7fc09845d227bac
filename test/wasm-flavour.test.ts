/**
 * Four engine builds ship (SIMD128, relaxed SIMD, threads, threads with relaxed SIMD); the one the runtime
 * supports loads. `npm test` runs the oracle suites once per build: `vitest run` (Node 20 with 2+ hardware
 * threads: the threaded build), `vitest run -c vitest.threads-relaxed.config.ts` (relaxed SIMD enabled: the
 * threaded relaxed build), `vitest run -c vitest.relaxed.config.ts` (relaxed SIMD, one thread) and
 * `vitest run -c vitest.simd128.config.ts` (the baseline); T5_EXPECT_WASM says which must run.
 */
import { availableParallelism } from "node:os";
import { describe, expect, it } from "vitest";
import { BadConfigError, hasRelaxedSimd, initWasm, threadsSupported, wasmFlavour } from "../ts/src/index.js";
import { preferredFlavour, wasmFileName } from "../ts/src/wasm-features.js";

describe("engine build", () => {
  it("loads the build this runtime supports", async () => {
    await initWasm();
    const single = hasRelaxedSimd() ? "relaxed-simd" : "simd128";
    const multi = hasRelaxedSimd() ? "threads-relaxed-simd" : "threads";
    const expected = process.env.T5_EXPECT_WASM ?? (threadsSupported() && availableParallelism() > 1 ? multi : single);
    expect(wasmFlavour()).toBe(expected);
  });

  it("the probe agrees with the engine: the relaxed builds compile exactly where the probe validates", async () => {
    const fs = await import("node:fs/promises");
    const bytes = await fs.readFile(new URL("../pkg/t5_web_relaxed_bg.wasm", import.meta.url));
    expect(WebAssembly.validate(bytes)).toBe(hasRelaxedSimd());
    const threadsRelaxed = await fs.readFile(new URL("../pkg/t5_web_threads_relaxed_bg.wasm", import.meta.url));
    expect(WebAssembly.validate(threadsRelaxed)).toBe(hasRelaxedSimd());
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
      const multi = hasRelaxedSimd() ? "threads-relaxed-simd" : "threads";
      expect(preferredFlavour(4)).toBe(threadsSupported() ? multi : preferredFlavour(1));
      g2.T5_WEB_WASM = "threads";
      expect(preferredFlavour(1)).toBe("threads");
      g2.T5_WEB_WASM = "threads-relaxed-simd";
      // where relaxed SIMD does not validate (Node 20 without the flag) the forced build cannot run: the baseline
      expect(preferredFlavour(1)).toBe(hasRelaxedSimd() ? "threads-relaxed-simd" : "simd128");
    } finally {
      delete g2.T5_WEB_WASM;
      if (saved !== undefined) process.env.T5_WEB_WASM = saved;
    }
    expect(wasmFileName("relaxed-simd")).toBe("t5_web_relaxed_bg.wasm");
    expect(wasmFileName("threads")).toBe("t5_web_threads_bg.wasm");
    expect(wasmFileName("threads-relaxed-simd")).toBe("t5_web_threads_relaxed_bg.wasm");
  });

  it("a T5_WEB_WASM that names no build is a typed error naming it, not silently the default build", () => {
    const g = globalThis as { T5_WEB_WASM?: string };
    g.T5_WEB_WASM = "threads-relaxed";
    try {
      expect(() => preferredFlavour()).toThrow(BadConfigError);
      expect(() => preferredFlavour()).toThrow(/T5_WEB_WASM="threads-relaxed": expected one of "threads-relaxed-simd", "threads", "relaxed-simd", "simd128"/);
      g.T5_WEB_WASM = "";
      expect(preferredFlavour(1)).toBe(hasRelaxedSimd() ? "relaxed-simd" : "simd128");
    } finally {
      delete g.T5_WEB_WASM;
    }
  });
});
