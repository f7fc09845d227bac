import { defineConfig } from "vitest/config";

// The oracle suites again on the relaxed-SIMD engine build (`pkg/t5_web_relaxed_bg.wasm`): Node 20's V8
// validates relaxed SIMD only behind --experimental-wasm-relaxed-simd (Node 22+ by default), and
// test/wasm-flavour.test.ts fails unless that build is the one running.
export default defineConfig({
  test: {
    include: ["test/wasm-flavour.test.ts", "test/models.test.ts", "test/quant.test.ts", "test/generation.test.ts"],
    environment: "node",
    pool: "forks",
    execArgv: ["--experimental-wasm-relaxed-simd"],
    env: { T5_WEB_WASM: "relaxed-simd", T5_EXPECT_WASM: "relaxed-simd" },
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
