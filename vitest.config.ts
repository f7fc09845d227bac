import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // no user download cache in tests (test/helpers/setup.ts)
    setupFiles: ["test/helpers/setup.ts"],
    environment: "node",
    // the wasm engine is single-threaded; a few forked workers keep the suite fast on small machines
    pool: "forks",
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
