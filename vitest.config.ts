import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // no user download cache in tests (test/helpers/setup.ts)
    setupFiles: ["test/helpers/setup.ts"],
    environment: "node",
    // a few forked workers keep the suite fast on small machines
    pool: "forks",
    // Node with 2+ hardware threads runs the threaded engine build (wasm-flavour.test.ts): every job of
    // the tiny fixture models is split across its threads, so every oracle suite checks the split paths
    env: { T5_WEB_CPU_GRAIN: "0" },
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
