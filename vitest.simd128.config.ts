import { defineConfig } from "vitest/config";

// The oracle suites again on the single-thread SIMD128 baseline (`pkg/t5_web_bg.wasm`): in Node with 2+
// hardware threads `vitest run` runs the threaded build, so this forces the baseline.
export default defineConfig({
  test: {
    include: ["test/wasm-flavour.test.ts", "test/models.test.ts", "test/quant.test.ts", "test/generation.test.ts"],
    environment: "node",
    pool: "forks",
    env: { T5_WEB_WASM: "simd128", T5_EXPECT_WASM: "simd128" },
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
