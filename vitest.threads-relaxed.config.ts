import { defineConfig } from "vitest/config";

// npm test runs this suite on Node 24 (scripts/relaxed-node.sh), as Node 22+ users run the build; Node 20 needs the
// flag (and computes i32x4.relaxed_dot_i8x16_i7x16_add_s otherwise, so the q4 digit kernel stands aside there).
const relaxedFlag = Number(process.versions.node.split(".")[0]) < 22 ? ["--experimental-wasm-relaxed-simd"] : [];

// The oracle suites again on the threaded relaxed-SIMD engine build (`pkg/t5_web_threads_relaxed_bg.wasm`, the one
// Node 22+, Deno and cross-origin isolated Chromium pages load for more than one thread): Node 20's V8 validates
// relaxed SIMD only behind --experimental-wasm-relaxed-simd, and test/wasm-flavour.test.ts fails unless that build
// is the one running. T5_WEB_CPU_GRAIN=0 splits every job of the tiny fixture models across the threads, and
// test/threads.test.ts checks N threads give the bits of 1 on this build too.
export default defineConfig({
  test: {
    include: ["test/wasm-flavour.test.ts", "test/threads.test.ts", "test/models.test.ts", "test/quant.test.ts", "test/generation.test.ts"],
    setupFiles: ["test/helpers/setup.ts"],
    environment: "node",
    pool: "forks",
    execArgv: relaxedFlag,
    env: { T5_WEB_WASM: "threads-relaxed-simd", T5_EXPECT_WASM: "threads-relaxed-simd", T5_WEB_CPU_GRAIN: "0" },
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
