// A t5-v1_1-xl-sized checkpoint in Chromium (issue 16 item 4): headless Debian Chromium (playwright-core) loads
// the package's browser build from a 127.0.0.1 page and streams the checkpoint by URL with fetch (dtype q4 / q8,
// each linear weight quantized as it arrives; the Cache API off, so 5.7 GB are not copied into the profile), then
// prints one JSON line as bench/xl-wasm.mjs does: load time, wasm memory, encoder 1×128 (one forward with a
// 1-token decoder input) and greedy decode tok/s (32-token input, exactly 64 forced new tokens).
// threads 1: a plain page (the relaxed-SIMD build); threads > 1: the page served with COOP + COEP, so it is
// cross-origin isolated and the threaded build runs its Web Workers. source `files`: the checkpoint's files picked
// in an <input type=file multiple> (as a user's upload; playwright sets them) and loaded from the FileList instead.
//   node bench/xl-chromium.mjs MODEL_DIR q4|q8 [threads=1] [runs=2] [url|files]     (needs `npm run build` first)
import { createReadStream, existsSync, readdirSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { extname, join, normalize, resolve } from "node:path";
import { chromium } from "playwright-core";

const [dirArg, dtype = "q4", threadsArg = "1", runsArg = "2", source = "url"] = process.argv.slice(2);
if (!dirArg || !["url", "files"].includes(source)) throw new Error("usage: node bench/xl-chromium.mjs MODEL_DIR q4|q8 [threads] [runs] [url|files]");
const repo = resolve(import.meta.dirname, "..");
const modelDir = resolve(dirArg);
const threads = Number(threadsArg);
const runs = Math.max(1, Number(runsArg));

const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };
const page = `<!doctype html><meta charset="utf-8"><input type="file" id="files" multiple><script type="module">
import { T5ForConditionalGeneration, env, wasmFlavour, wasmMemory } from "/dist/npm/browser.js";
env.useBrowserCache = false;
const q = new URLSearchParams(location.search);
const dtype = q.get("dtype"), numThreads = Number(q.get("threads")), runs = Number(q.get("runs")), source = q.get("source");
if (source === "files") await new Promise((r) => document.getElementById("files").addEventListener("change", r, { once: true }));
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const ids = (n, mul) => Array.from({ length: n }, (_, i) => 100 + ((i * mul) % 3000));
try {
  let t = performance.now();
  const from = source === "files" ? document.getElementById("files").files : location.origin + "/model/";
  const model = await T5ForConditionalGeneration.fromPretrained(from, { dtype, num_threads: numThreads });
  const loadS = (performance.now() - t) / 1e3;
  const wasmAfterLoad = wasmMemory()?.buffer.byteLength ?? 0;
  const in32 = { input_ids: [ids(32, 37)], decoder_input_ids: [[0]] };
  const in128 = { input_ids: [ids(128, 53)], decoder_input_ids: [[0]] };
  const f32 = [], f128 = [], gen = [];
  for (let i = 0; i < runs; i++) {
    t = performance.now(); await model(in32); f32.push(performance.now() - t);
    t = performance.now(); await model(in128); f128.push(performance.now() - t);
  }
  for (let i = 0; i < runs; i++) {
    t = performance.now();
    const out = await model.generate({ input_ids: [ids(32, 37)] }, { max_new_tokens: 64, min_new_tokens: 64 });
    gen.push(performance.now() - t);
    if (out[0].length !== 65) throw new Error("expected 65 ids, got " + out[0].length);
  }
  const e32 = median(f32), e128 = median(f128), g = median(gen);
  window.result = { runtime: "chromium", browser: navigator.userAgent.match(/Chrom(e|ium)\\/[0-9.]+/)?.[0], isolated: self.crossOriginIsolated,
    flavour: wasmFlavour(), threads: model.threads, dtype, source, load_s: loadS, wasm_mb_after_load: wasmAfterLoad / 1e6,
    wasm_mb: (wasmMemory()?.buffer.byteLength ?? 0) / 1e6, forward_32_ms: e32, forward_1x128_ms: e128,
    encoder_1x128_tok_s: 128 / (e128 / 1e3), generate_64_ms: g, decode_tok_s: 64 / ((g - e32) / 1e3), runs,
    forward_1x128_ms_all: f128, generate_64_ms_all: gen };
  model.dispose();
} catch (e) {
  window.result = { error: String(e && e.stack || e) };
}
</script>`;

const server = createServer((req, res) => {
  const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
  if (threads > 1) {
    res.setHeader("cross-origin-opener-policy", "same-origin");
    res.setHeader("cross-origin-embedder-policy", "require-corp");
  }
  if (path === "/") return res.writeHead(200, { "content-type": "text/html" }).end(page);
  const [root, rel] = path.startsWith("/model/") ? [modelDir, path.slice("/model/".length)] : [repo, path.slice(1)];
  const file = normalize(join(root, rel));
  const allowed = root === modelDir || file.startsWith(join(repo, "dist", "npm"));
  if (!file.startsWith(root) || !allowed || !existsSync(file) || !statSync(file).isFile()) return res.writeHead(404).end("not found");
  res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream", "content-length": statSync(file).size });
  createReadStream(file, { highWaterMark: 1 << 20 }).pipe(res);
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const base = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
});
try {
  const tab = await browser.newPage();
  const errors = [];
  tab.on("pageerror", (e) => errors.push(String(e)));
  await tab.goto(`${base}/?dtype=${dtype}&threads=${threads}&runs=${runs}&source=${source}`);
  if (source === "files") await tab.setInputFiles("#files", readdirSync(modelDir).map((f) => join(modelDir, f)));
  await tab.waitForFunction(() => window.result !== undefined, null, { timeout: 1_800_000, polling: 1000 });
  const r = await tab.evaluate(() => window.result);
  if (r.error) throw new Error(`page: ${r.error} ${errors.join("; ")}`);
  console.log(JSON.stringify(r));
} finally {
  await browser.close();
  server.close();
}
