import { defineConfig } from "vitest/config";

// npm test runs this suite on Node 24 (scripts/relaxed-node.sh), as Node 22+ users run the build; Node 20 needs the
// flag (and computes i32x4.relaxed_dot_i8x16_i7x16_add_s otherwise, so the q4 digit kernel stands aside there).
const relaxedFlag = Number(process.versions.node.split(".")[0]) < 22 ? ["--experimental-wasm-relaxed-simd"] : [];

// The oracle suites again on the relaxed-SIMD engine build (`pkg/t5_web_relaxed_bg.wasm`): Node 20's V8
// validates relaxed SIMD only behind --experimental-wasm-relaxed-simd (Node 22+ by default), and
// test/wasm-flavour.test.ts fails unless that build is the one running.
export default defineConfig({
  test: {
    include: ["test/wasm-flavour.test.ts", "test/models.test.ts", "test/quant.test.ts", "test/generation.test.ts"],
    environment: "node",
    pool: "forks",
    execArgv: relaxedFlag,
    env: { T5_WEB_WASM: "relaxed-simd", T5_EXPECT_WASM: "relaxed-simd" },
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
