#!/usr/bin/env node
// Runtime tests of the *packed* package (`npm test` runs this after vitest; alone: `npm run test:runtimes`,
// or `node test/runtimes/run.mjs node chromium deno workerd` for a subset).
//
// 1. `npm pack` → tarball (size printed; must hold no source maps, Rust sources or fixtures);
// 2. a scratch directory with the tarball installed by `npm install`, the fixture model
//    test/fixtures/tiny-t5-v1_1, expected ids (oracle `greedy.sequences`), examples/ and playground/;
// 3. one stage per runtime, each checking the exact ids:
//    node     vitest (test/runtimes/node/*.spec.mjs: the package; transformers.js's own T5 usage against
//             the oracle fixtures) + examples/node/generate.mjs
//    chromium headless Debian chromium via playwright-core: examples/browser, a worker page, the
//             Cache API, the playground (screenshot in test/artifacts/)
//    deno     examples/deno/generate.ts from a directory and from a URL (then from the Cache API), imported
//             as "t5-web" through package.json and as "npm:t5-web" (deno.json nodeModulesDir "manual": the
//             npm-installed node_modules, offline)
//    workerd  examples/workerd/config.capnp serving the worker on loopback, queried over HTTP; then the
//             same worker with `cacheApiOutbound` pointing at a cache service run here (workerd's cache
//             protocol): the model by URL is cached, read back by a fresh workerd process without
//             fetching the weights, and a corrupted entry is detected (SHA-256), purged and fetched again
import { execFileSync, spawn } from "node:child_process";
import { cpSync, createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize, resolve } from "node:path";
import { gzipSync } from "node:zlib";

const repo = resolve(import.meta.dirname, "../..");
const stages = process.argv.slice(2).length ? process.argv.slice(2) : ["node", "chromium", "deno", "workerd"];
const bin = (name) => join(repo, "node_modules/.bin", name);
const log = (...a) => console.log("[runtimes]", ...a);

// ---------- 1. pack ----------
const scratch = mkdtempSync(join(tmpdir(), "t5-web-runtimes-"));
const packed = JSON.parse(execFileSync("npm", ["pack", "--json", "--pack-destination", scratch], { cwd: repo, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }))[0];
const files = packed.files.map((f) => f.path);
const forbidden = files.filter((f) => /\.map$|\.rs$|^test\/|fixtures|^crates\/|^pkg\//.test(f));
if (forbidden.length) throw new Error(`tarball holds files it must not: ${forbidden.join(", ")}`);
for (const need of ["dist/npm/node.js", "dist/npm/browser.js", "dist/npm/workerd.js", "dist/npm/index.d.ts", "dist/npm/t5_web_bg.wasm", "dist/npm/t5_web_relaxed_bg.wasm", "dist/npm/t5_web_threads_bg.wasm", "dist/npm/t5_web_threads_relaxed_bg.wasm", "dist/npm/wasm-thread-worker.js", "package.json"]) {
  if (!files.includes(need)) throw new Error(`tarball lacks ${need}`);
}
log(`tarball ${packed.filename}: ${packed.size} bytes (${(packed.size / 1048576).toFixed(2)} MiB), unpacked ${packed.unpackedSize} bytes, ${files.length} files`);

// ---------- 2. scratch project ----------
writeFileSync(join(scratch, "package.json"), JSON.stringify({ name: "t5-web-scratch", private: true, type: "module", dependencies: { "t5-web": `file:./${packed.filename}` } }, null, 2));
execFileSync("npm", ["install", "--offline", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: scratch, stdio: "inherit" });
const model = join(scratch, "models/tiny-t5-v1_1");
cpSync(join(repo, "test/fixtures/tiny-t5-v1_1"), model, { recursive: true });
const oracle = JSON.parse(readFileSync(join(repo, "test/fixtures/oracle/tiny-t5-v1_1.json"), "utf8"));
const expected = { texts: oracle.texts, max_new_tokens: oracle.greedy.max_new_tokens, sequences: oracle.greedy.sequences };
// the default model, which the playground opens on, and its answers from the installed package in Node
cpSync(join(repo, "models/t5-numbers"), join(scratch, "models/t5-numbers"), { recursive: true });
expected.numbers = JSON.parse(
  execFileSync(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `import { pipeline } from "t5-web";
const out = {};
for (const dtype of ["fp32", "q8", "q4"]) {
  const p = await pipeline("text2text-generation", "models/t5-numbers", { dtype });
  out[dtype] = (await p("numbers to words: 1204", { max_new_tokens: 40 }))[0].generated_text;
  if (dtype === "q4") out.words = (await p("words to numbers: six hundred seventy three", { max_new_tokens: 40 }))[0].generated_text;
  p.dispose();
}
console.log(JSON.stringify(out));`,
    ],
    { cwd: scratch, encoding: "utf8" },
  ),
);
writeFileSync(join(scratch, "expected.json"), JSON.stringify(expected));
// for runtimes/node/transformers-js.spec.mjs: fixtures served at Hub URLs, and transformers' outputs on them
for (const f of ["tiny-t5", "oracle/tiny-t5-v1_1.json", "oracle/tiny-t5-v1_1.safetensors", "oracle/generation/tiny-t5.json", "oracle/tokenizer.json", "heads/oracle.json"]) {
  cpSync(join(repo, "test/fixtures", f), join(scratch, "fixtures", f), { recursive: true });
}
cpSync(join(repo, "examples"), join(scratch, "examples"), { recursive: true });
if (existsSync(join(repo, "playground"))) cpSync(join(repo, "playground"), join(scratch, "playground"), { recursive: true });
cpSync(join(repo, "test/runtimes"), join(scratch, "runtimes"), { recursive: true });
log(`scratch: ${scratch}`);

// a static server over the scratch dir (127.0.0.1 only)
const types = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json", ".css": "text/css" };
const requests = [];
// /gzip/<path>: gzip-encoded with CORS, for a cross-origin page (Content-Encoding hidden from it)
// /isolated/<path>: with COOP same-origin + COEP require-corp, so a page is cross-origin isolated
// (SharedArrayBuffer: the threaded engine build)
const server = createServer((req, res) => {
  let path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
  requests.push(path);
  const gzip = path.startsWith("/gzip/");
  if (gzip) path = path.slice("/gzip".length);
  const isolated = path.startsWith("/isolated/");
  if (isolated) {
    path = path.slice("/isolated".length);
    res.setHeader("cross-origin-opener-policy", "same-origin");
    res.setHeader("cross-origin-embedder-policy", "require-corp");
  }
  const file = normalize(join(scratch, path));
  if (!file.startsWith(scratch) || !existsSync(file) || !statSync(file).isFile()) return res.writeHead(404).end("not found");
  if (gzip) {
    const body = gzipSync(readFileSync(file));
    return res.writeHead(200, { "content-type": "application/octet-stream", "content-encoding": "gzip", "content-length": body.length, "access-control-allow-origin": "*" }).end(body);
  }
  res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream", "content-length": statSync(file).size });
  createReadStream(file).pipe(res);
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const base = `http://127.0.0.1:${server.address().port}`;

const sameIds = (got, want, what) => {
  if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`${what}: ids differ\n got  ${JSON.stringify(got)}\n want ${JSON.stringify(want)}`);
};

function run(cmd, args, opts = {}) {
  return new Promise((resolvePromise, reject) => {
    const p = spawn(cmd, args, { cwd: scratch, stdio: ["ignore", "pipe", "pipe"], ...opts });
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => ((out += d), opts.echo && process.stdout.write(d)));
    p.stderr.on("data", (d) => ((err += d), opts.echo && process.stderr.write(d)));
    const timer = setTimeout(() => p.kill("SIGKILL"), opts.timeout ?? 120_000);
    p.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0) resolvePromise(out);
      else reject(new Error(`${cmd} ${args.join(" ")} exited ${code}\n${out}\n${err}`));
    });
  });
}

const lastJson = (out) => JSON.parse(out.trim().split("\n").at(-1));

/** A free loopback port. */
function freePort() {
  return new Promise((r) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => r(p));
    });
  });
}

/** `workerd serve <config>` in the scratch dir on a free port, answering once it accepts requests. */
async function startWorkerd(config) {
  const port = await freePort();
  const proc = spawn(bin("workerd"), ["serve", config, `--socket-addr=http=127.0.0.1:${port}`], { cwd: scratch, stdio: ["ignore", "pipe", "pipe"] });
  let text = "";
  proc.stderr.on("data", (d) => (text += d));
  proc.stdout.on("data", (d) => (text += d));
  const exited = new Promise((r) => proc.on("exit", r));
  const stop = async () => {
    if (proc.exitCode === null) proc.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await fetch(`http://127.0.0.1:${port}/`, { method: "HEAD" });
      break;
    } catch (e) {
      if (Date.now() > deadline || proc.exitCode !== null) {
        await stop();
        throw new Error(`workerd did not answer: ${e.message}\n${text}`);
      }
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  return { port, stop, log: () => text };
}

/** Parse an HTTP/1.1 response message (what workerd PUTs to a cache service): status, headers, body. */
function parseHttpMessage(buf) {
  const end = buf.indexOf("\r\n\r\n");
  if (end < 0) throw new Error("cache PUT body is not an HTTP message");
  const lines = buf.subarray(0, end).toString("latin1").split("\r\n");
  const status = Number(lines[0].split(" ")[1]);
  const headers = lines.slice(1).map((l) => [l.slice(0, l.indexOf(":")).trim().toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]);
  let body = buf.subarray(end + 4);
  if (headers.some(([k, v]) => k === "transfer-encoding" && /chunked/i.test(v))) {
    const parts = [];
    let at = 0;
    for (;;) {
      const eol = body.indexOf("\r\n", at);
      const n = parseInt(body.subarray(at, eol).toString("latin1"), 16);
      if (!n) break;
      parts.push(body.subarray(eol + 2, eol + 2 + n));
      at = eol + 2 + n + 2;
    }
    body = Buffer.concat(parts);
  }
  return { status, headers: headers.filter(([k]) => k !== "transfer-encoding" && k !== "content-length"), body: new Uint8Array(body) };
}

/**
 * A cache service for workerd's `cacheApiOutbound` (its cache protocol: match = GET answered with
 * `cf-cache-status: HIT` and the stored response or `MISS`; put = PUT whose body is the serialised
 * response, answered 204; delete = PURGE, answered 200 / 404). Entries are keyed by namespace
 * (`cf-cache-namespace`, set by caches.open(name)) and URL, kept in memory; `ops` logs each request.
 */
async function startCacheService() {
  const entries = new Map();
  const ops = [];
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const ns = req.headers["cf-cache-namespace"] ?? "";
    const url = `http://${req.headers.host}${req.url}`;
    const key = `${ns}|${url}`;
    if (req.method === "PUT") {
      try {
        entries.set(key, parseHttpMessage(Buffer.concat(chunks)));
        ops.push(`PUT ${key}`);
        res.writeHead(204).end();
      } catch (e) {
        ops.push(`PUT-FAILED ${key} ${e.message}`);
        res.writeHead(413).end();
      }
    } else if (req.method === "GET") {
      const e = entries.get(key);
      ops.push(`GET ${e ? "HIT" : "MISS"} ${key}`);
      if (!e) return res.writeHead(504, { "cf-cache-status": "MISS" }).end();
      res.writeHead(e.status, [...e.headers.flat(), "cf-cache-status", "HIT", "content-length", String(e.body.byteLength)]);
      res.end(e.body);
    } else if (req.method === "PURGE") {
      const had = entries.delete(key);
      ops.push(`PURGE ${key}`);
      res.writeHead(had ? 200 : 404).end();
    } else {
      res.writeHead(405).end();
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: server.address().port, entries, ops };
}

// ---------- 3. stages ----------
const results = [];
const impl = {
  async node() {
    // vitest from the repo, running a spec inside the scratch project (which resolves "t5-web" from its node_modules)
    symlinkSync(join(repo, "node_modules/vitest"), join(scratch, "node_modules/vitest"), "dir");
    writeFileSync(join(scratch, "vitest.config.mjs"), `export default { test: { include: ["runtimes/node/*.spec.mjs"], testTimeout: 60000, hookTimeout: 60000, pool: "forks" } };\n`);
    // downloads are cached by default in Node: into the scratch dir, not the user's cache
    const nodeEnv = { ...process.env, XDG_CACHE_HOME: join(scratch, ".cache") };
    await run(process.execPath, [join(repo, "node_modules/vitest/vitest.mjs"), "run", "--root", scratch], { echo: true, timeout: 240_000, env: nodeEnv });
    // the packed index.d.ts types a consumer's code (strict, no skipLibCheck)
    writeFileSync(
      join(scratch, "types-check.ts"),
      `import { AutoTokenizer, AutoModelForSeq2SeqLM, pipeline, createGenerationWorker, type ProgressInfo } from "t5-web";
const tok = await AutoTokenizer.fromPretrained("m", { progress_callback: (e: ProgressInfo) => console.log(e.status) });
const lm = await AutoModelForSeq2SeqLM.fromPretrained(new Map([["config.json", new Uint8Array(1)]]), { cache_dir: "/tmp/c" });
const ids: number[][] = await lm.generate(tok(["x"], { padding: true }), { max_new_tokens: 3, streamer: { put(v: number[][]) {}, end() {} } });
const spread: number[][] = await lm.generate({ ...tok(["x"]), max_new_tokens: 3 });
const sync: number[][] = lm.generateSync([[1n, 2n]], { max_new_tokens: 3 });
const dims: number[] = (await lm({ input_ids: new BigInt64Array([1n]), decoder_input_ids: [[0]] })).logits.dims;
const p = await pipeline("text2text-generation", "m");
const out: string = (await p("x"))[0]!.generated_text;
const w = await createGenerationWorker("m");
await w.generate("x", { on_token: (e) => e.text, signal: new AbortController().signal });
const fromWorker: number[][] = await w.model.generate([[1]], { signal: AbortSignal.timeout(10) });
// @ts-expect-error: not a generation option
lm.generate([[1]], { max_new_tokens: "3" });
export { ids, out, spread, sync, dims, fromWorker };
`,
    );
    writeFileSync(
      join(scratch, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true, lib: ["ES2022", "DOM", "ESNext.Disposable"], types: [] }, files: ["types-check.ts"] }),
    );
    await run(process.execPath, [join(repo, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], { timeout: 60_000 });
    log("node: the packed index.d.ts type-checks a consumer (strict)");
  },
  async chromium() {
    await run(process.execPath, [join(repo, "test/runtimes/chromium.mjs"), scratch, base], { echo: true, timeout: 240_000, cwd: repo });
  },
  async deno() {
    const env = { ...process.env, DENO_DIR: join(scratch, ".deno"), DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" };
    // Deno picks the package's `deno` condition: the browser build, which fetches the wasm by URL
    const resolved = (await run(bin("deno"), ["eval", "console.log(import.meta.resolve('t5-web'))"], { env })).trim();
    if (!resolved.endsWith("/node_modules/t5-web/dist/npm/browser.js")) throw new Error(`deno resolved t5-web to ${resolved}`);
    // no --allow-env anywhere: t5-web must not need it
    const args = ["run", "--allow-read", "--allow-net=127.0.0.1", "examples/deno/generate.ts"];
    const fromDir = lastJson(await run(bin("deno"), [...args, "models/tiny-t5-v1_1", ...expected.texts], { env }));
    sameIds(fromDir.ids, expected.sequences, "deno, model from a directory");
    const fromUrl = lastJson(await run(bin("deno"), [...args, `${base}/models/tiny-t5-v1_1/`, ...expected.texts], { env }));
    sameIds(fromUrl.ids, expected.sequences, "deno, model from a URL");
    // `npm:t5-web`, resolved offline from the npm-installed node_modules (deno.json: nodeModulesDir "manual")
    mkdirSync(join(scratch, "npm-spec"), { recursive: true });
    writeFileSync(join(scratch, "npm-spec/deno.json"), JSON.stringify({ nodeModulesDir: "manual" }));
    symlinkSync(join(scratch, "node_modules"), join(scratch, "npm-spec/node_modules"), "dir");
    writeFileSync(join(scratch, "npm-spec/package.json"), readFileSync(join(scratch, "package.json")));
    const example = readFileSync(join(scratch, "examples/deno/generate.ts"), "utf8");
    if (!example.includes(`from "t5-web";`)) throw new Error("examples/deno/generate.ts no longer imports \"t5-web\"");
    writeFileSync(join(scratch, "npm-spec/generate.ts"), example.replace(`from "t5-web";`, `from "npm:t5-web";`));
    const npmEnv = { ...env, DENO_DIR: join(scratch, ".deno-npm"), NPM_CONFIG_REGISTRY: "http://127.0.0.1:9/" };
    const npmResolved = (await run(bin("deno"), ["eval", "--cached-only", "console.log(import.meta.resolve('npm:t5-web'))"], { env: npmEnv, cwd: join(scratch, "npm-spec") })).trim();
    if (!npmResolved.endsWith("/node_modules/t5-web/dist/npm/browser.js")) throw new Error(`deno resolved npm:t5-web to ${npmResolved}`);
    const viaNpm = lastJson(
      await run(bin("deno"), ["run", "--cached-only", "--allow-read", "generate.ts", join(scratch, "models/tiny-t5-v1_1"), ...expected.texts], { env: npmEnv, cwd: join(scratch, "npm-spec") }),
    );
    sameIds(viaNpm.ids, expected.sequences, "deno, import from \"npm:t5-web\"");
    // the second run from the URL is served by the Cache API: no request for the weights
    const before = requests.filter((p) => p.endsWith("model.safetensors")).length;
    const cached = lastJson(await run(bin("deno"), [...args, `${base}/models/tiny-t5-v1_1/`, ...expected.texts], { env }));
    sameIds(cached.ids, expected.sequences, "deno, model from the Cache API");
    const after = requests.filter((p) => p.endsWith("model.safetensors")).length;
    if (after !== before) throw new Error(`deno: the cached weights were fetched again (${after - before} requests)`);
    // the worker helper in Deno (a module Web Worker)
    const w = lastJson(await run(bin("deno"), ["run", "--allow-read", "runtimes/deno/worker.ts"], { env }));
    sameIds(w.tokens, expected.sequences[0].slice(1), "deno worker, streamed tokens");
    if (JSON.stringify(w.first) !== JSON.stringify([w.want[0]]) || JSON.stringify(w.after) !== JSON.stringify(w.want)) throw new Error(`deno worker: ${JSON.stringify(w)}`);
    if (w.aborted !== "AbortError" || w.seen >= 3000) throw new Error(`deno worker abort: ${w.aborted} after ${w.seen} tokens`);
    // a read Deno denies is a PermissionDeniedError naming the path and the flag, not "not found"
    // (the package itself may be read: the engine's .wasm is fetched from it by file: URL)
    const denied = await run(bin("deno"), ["run", `--allow-read=${join(scratch, "node_modules")}`, "examples/deno/generate.ts", "models/tiny-t5-v1_1", "x"], { env }).then(
      () => "",
      (e) => e.message,
    );
    for (const want of ["PermissionDeniedError", "Deno denied reading", join(scratch, "models/tiny-t5-v1_1"), "--allow-read"]) {
      if (!denied.includes(want)) throw new Error(`deno without read permission for the model: no ${JSON.stringify(want)} in\n${denied}`);
    }
    if (/not found/i.test(denied)) throw new Error(`deno without read permission reported "not found":\n${denied}`);
    log(`deno: ids exact from a directory, a URL and the Cache API, and through "npm:t5-web" (offline, nodeModulesDir manual); worker: streamed, aborted after ${w.seen} tokens; "${fromDir.text[0]}"; no --allow-env; a denied read is a PermissionDeniedError naming the path and --allow-read`);
  },
  async workerd() {
    for (const f of ["config.capnp", "worker.js"]) cpSync(join(scratch, "examples/workerd", f), join(scratch, f));
    cpSync(model, join(scratch, "model"), { recursive: true });
    const post = (port, query = "") => fetch(`http://127.0.0.1:${port}/${query}`, { method: "POST", body: JSON.stringify({ texts: expected.texts }) });
    const weightRequests = () => requests.filter((p) => p.endsWith("/model.safetensors")).length;
    const modelUrl = `?model=${encodeURIComponent(`${base}/models/tiny-t5-v1_1/`)}`;
    {
      const w = await startWorkerd("config.capnp");
      try {
        const res = await post(w.port);
        const body = await res.text();
        if (!res.ok) throw new Error(`workerd answered ${res.status}: ${body}\n${w.log()}`);
        const got = JSON.parse(body);
        sameIds(got.ids, expected.sequences, "workerd");
        // the model by URL: fetched by the worker from the test server on loopback
        const before = weightRequests();
        const byUrl = await post(w.port, modelUrl);
        const byUrlBody = await byUrl.text();
        if (!byUrl.ok) throw new Error(`workerd (model by URL) answered ${byUrl.status}: ${byUrlBody}\n${w.log()}`);
        sameIds(JSON.parse(byUrlBody).ids, expected.sequences, "workerd, model by URL");
        if (weightRequests() !== before + 1) throw new Error("workerd did not fetch the weights from the URL");
        log(`workerd: ids exact over HTTP on 127.0.0.1:${w.port}, model bundled and model by URL; "${got.text[0]}"`);
      } finally {
        await w.stop();
      }
    }

    // The Cache API in workerd: caches.open() goes to the service named by `cacheApiOutbound`. workerd ships no
    // cache store of its own, so this test runs one (workerd's cache protocol, kept in memory here); each
    // fresh workerd process starts with empty globals, so a model it does not fetch came from the cache.
    const cache = await startCacheService();
    try {
      const config = readFileSync(join(scratch, "config.capnp"), "utf8")
        .replace(`(name = "internet",`, `(name = "cache", external = (address = "127.0.0.1:${cache.port}", http = ())),\n    (name = "internet",`)
        .replace(`compatibilityDate =`, `cacheApiOutbound = "cache",\n  compatibilityDate =`);
      if (!config.includes("cacheApiOutbound") || !config.includes(`name = "cache"`)) throw new Error("examples/workerd/config.capnp changed shape; update the cache test");
      writeFileSync(join(scratch, "config-cache.capnp"), config);
      const byUrl = async (what) => {
        const w = await startWorkerd("config-cache.capnp");
        try {
          const res = await post(w.port, modelUrl);
          const text = await res.text();
          if (!res.ok) throw new Error(`workerd (${what}) answered ${res.status}: ${text}\n${w.log()}`);
          sameIds(JSON.parse(text).ids, expected.sequences, `workerd, ${what}`);
        } finally {
          await w.stop();
        }
      };
      const weightKey = [...cache.entries.keys()].find((k) => k.endsWith("/model.safetensors"));
      if (weightKey) throw new Error("cache service not empty at start");
      let before = weightRequests();
      await byUrl("model by URL, cache empty");
      if (weightRequests() !== before + 1) throw new Error("workerd (cache empty) did not fetch the weights");
      const key = [...cache.entries.keys()].find((k) => k.endsWith("/model.safetensors"));
      if (!key) throw new Error(`workerd stored nothing for model.safetensors in the Cache API (stored: ${[...cache.entries.keys()].join(", ")}; ops: ${cache.ops.join(" ")})`);
      const stored = cache.entries.get(key);
      if (stored.body.byteLength !== statSync(join(model, "model.safetensors")).size) throw new Error(`cached model.safetensors holds ${stored.body.byteLength} bytes`);
      before = weightRequests();
      await byUrl("model from the Cache API, fresh process");
      if (weightRequests() !== before) throw new Error(`workerd fetched the cached weights again (${weightRequests() - before} requests)`);
      if (!cache.ops.some((o) => o.startsWith("GET HIT") && o.endsWith("/model.safetensors"))) throw new Error(`no cache hit for the weights: ${cache.ops.join(" ")}`);
      // a corrupted entry (one flipped byte, headers untouched): detected by its SHA-256, purged, fetched again
      stored.body[stored.body.byteLength >> 1] ^= 0xff;
      before = weightRequests();
      await byUrl("corrupted cache entry");
      if (weightRequests() !== before + 1) throw new Error("workerd did not fetch the weights again after the corrupted cache entry");
      if (!cache.ops.some((o) => o.startsWith("PURGE") && o.endsWith("/model.safetensors"))) throw new Error(`the corrupted entry was not purged: ${cache.ops.join(" ")}`);
      log(`workerd Cache API (cacheApiOutbound): stored on the first load, read back by a fresh process without fetching, corrupted entry purged and fetched again (${cache.ops.length} cache requests)`);
    } finally {
      await new Promise((r) => cache.server.close(r));
    }
  },
};

for (const s of stages) {
  if (!impl[s]) throw new Error(`unknown stage ${s} (have: ${Object.keys(impl).join(", ")})`);
  const t0 = Date.now();
  log(`--- ${s} ---`);
  try {
    await impl[s]();
    results.push({ stage: s, ok: true, s: (Date.now() - t0) / 1000 });
  } catch (e) {
    console.error(e);
    results.push({ stage: s, ok: false, s: (Date.now() - t0) / 1000 });
  }
}
server.close();
for (const r of results) log(`${r.ok ? "PASS" : "FAIL"} ${r.stage} (${r.s.toFixed(1)} s)`);
if (results.every((r) => r.ok) && !process.env.T5_WEB_KEEP_SCRATCH) rmSync(scratch, { recursive: true, force: true });
process.exit(results.every((r) => r.ok) ? 0 : 1);
