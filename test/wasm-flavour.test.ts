/**
 * Two engine builds ship (SIMD128 and relaxed SIMD); the one the runtime supports loads.
 * `npm test` runs the oracle suites once per build: `vitest run` (Node 20: the SIMD128 baseline) and
 * `vitest run -c vitest.relaxed.config.ts` (relaxed SIMD enabled; T5_EXPECT_WASM says which must run).
 */
import { describe, expect, it } from "vitest";
import { hasRelaxedSimd, initWasm, wasmFlavour } from "../ts/src/index.js";
import { preferredFlavour, wasmFileName } from "../ts/src/wasm-features.js";

describe("engine build", () => {
  it("loads the build this runtime supports", async () => {
    await initWasm();
    const expected = process.env.T5_EXPECT_WASM ?? (hasRelaxedSimd() ? "relaxed-simd" : "simd128");
    expect(wasmFlavour()).toBe(expected);
  });

  it("the probe agrees with the engine: the relaxed build compiles exactly where the probe validates", async () => {
    const fs = await import("node:fs/promises");
    const bytes = await fs.readFile(new URL("../pkg/t5_web_relaxed_bg.wasm", import.meta.url));
    expect(WebAssembly.validate(bytes)).toBe(hasRelaxedSimd());
    const base = await fs.readFile(new URL("../pkg/t5_web_bg.wasm", import.meta.url));
    expect(WebAssembly.validate(base)).toBe(true);
  });

  it("T5_WEB_WASM=simd128 forces the baseline", () => {
    const g = globalThis as { T5_WEB_WASM?: string };
    g.T5_WEB_WASM = "simd128";
    try {
      expect(preferredFlavour()).toBe("simd128");
    } finally {
      delete g.T5_WEB_WASM;
    }
    expect(preferredFlavour()).toBe(hasRelaxedSimd() ? "relaxed-simd" : "simd128");
    expect(wasmFileName("relaxed-simd")).toBe("t5_web_relaxed_bg.wasm");
  });
});
