// Builds the npm package's ESM bundles from tsc's output (dist/*.js) into dist/npm/:
//   node.js (+ cli.js, node-worker.js)     exports condition `node`
//   wasm-thread-worker.js                 a thread of the threaded engine build (all runtimes)
//   browser.js (+ browser-worker.js)      `browser`, `deno`, `default`
//   workerd.js                            `workerd`, `worker`
//   index.d.ts                            types for all of them (rollup-plugin-dts)
// Each flavour differs only in how it finds the engine's .wasm (ts/src/wasm-locate*.ts: the
// SIMD128, the relaxed-SIMD or the threaded build); the
// wasm-bindgen glues (pkg/t5_web.js, pkg/t5_web_threads.js) are bundled in. scripts/build-npm.sh runs this and wasm-opt.
import { dts } from "rollup-plugin-dts";
import { resolve } from "node:path";

const root = import.meta.dirname;
const out = resolve(root, "dist/npm");

function t5web(locate) {
  return {
    name: "t5-web-resolve",
    resolveId(source) {
      if (source === "#t5-wasm") return resolve(root, "pkg/t5_web.js");
      if (source === "#t5-wasm-threads") return resolve(root, "pkg/t5_web_threads.js");
      if (source === "./wasm-locate.js") return resolve(root, "dist", locate);
      if (source === "t5-web:wasm-module" || source === "t5-web:wasm-module-relaxed") return { id: source, external: true };
      if (source.startsWith("node:")) return { id: source, external: true };
      return null;
    },
  };
}

const output = {
  dir: out,
  format: "es",
  entryFileNames: "[name].js",
  chunkFileNames: "shared-[hash].js",
  paths: { "t5-web:wasm-module": "./t5_web_bg.wasm", "t5-web:wasm-module-relaxed": "./t5_web_relaxed_bg.wasm" },
  sourcemap: false,
};

const flavour = (locate, input) => ({
  input,
  plugins: [t5web(locate)],
  output,
  onwarn(w, warn) {
    if (w.code === "CIRCULAR_DEPENDENCY") return;
    warn(w);
  },
});

export default [
  flavour("wasm-locate.js", {
    node: "dist/index.js",
    cli: "dist/cli.js",
    "node-worker": "dist/worker-entry.js",
    // a thread of the threaded engine build, for every runtime (wasm-threads.ts)
    "wasm-thread-worker": "dist/wasm-thread-worker.js",
  }),
  flavour("wasm-locate.browser.js", { browser: "dist/index.js", "browser-worker": "dist/worker-entry.js" }),
  flavour("wasm-locate.workerd.js", { workerd: "dist/index.js" }),
  {
    input: "dist/index.d.ts",
    plugins: [
      {
        name: "t5-web-dts-resolve",
        resolveId(source) {
          if (source === "#t5-wasm") return resolve(root, "pkg/t5_web.d.ts");
          if (source === "#t5-wasm-threads") return resolve(root, "pkg/t5_web_threads.d.ts");
          return null;
        },
      },
      dts(),
    ],
    output: { file: resolve(out, "index.d.ts"), format: "es" },
  },
];
