// Headless Debian Chromium (playwright-core, /usr/bin/chromium) against pages served from 127.0.0.1
// out of the scratch project made by run.mjs: `node chromium.mjs <scratch dir> <base url>`.
// Checks exact ids from examples/browser (model by URL), the Cache API (hit, then a corrupted entry
// fetched again), the Web Worker helper with streaming and abort, and the playground (typing,
// clicking, streamed output, local files), saving a screenshot to test/artifacts/playground.png.
import { mkdirSync, readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const [scratch, base] = process.argv.slice(2);
const repo = resolve(import.meta.dirname, "../..");
const expected = JSON.parse(readFileSync(join(scratch, "expected.json"), "utf8"));
const artifacts = join(repo, "test/artifacts");
mkdirSync(artifacts, { recursive: true });
const log = (...a) => console.log("[chromium]", ...a);
const check = (ok, what) => {
  if (!ok) throw new Error(`chromium: ${what}`);
};
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
  ],
  // playwright gives every launch a fresh, temporary user data dir
});
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // 404s for optional files (generation_config.json, …) and /favicon.ico are expected, not errors
  page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && errors.push(m.text()));
  const notFound = new Set();
  page.on("response", (res) => res.status() === 404 && notFound.add(new URL(res.url()).pathname));
  const weightRequests = [];
  page.on("request", (r) => r.url().endsWith("/model.safetensors") && weightRequests.push(r.url()));
  const wasmRequests = [];
  page.on("request", (r) => r.url().endsWith(".wasm") && wasmRequests.push(r.url().split("/").pop()));

  // 1. examples/browser: the model by URL, exact ids, progress events
  const exampleUrl = `${base}/examples/browser/index.html?model=/models/tiny-t5-v1_1/&${expected.texts.map((t) => `text=${encodeURIComponent(t)}`).join("&")}`;
  const runExample = async () => {
    await page.goto(exampleUrl);
    await page.waitForFunction(() => window.result !== undefined, null, { timeout: 60_000 });
    return page.evaluate(() => window.result);
  };
  let r = await runExample();
  check(!r.error, `example page failed: ${r.error} ${errors.join("; ")}`);
  check(same(r.ids, expected.sequences), `example ids ${JSON.stringify(r.ids)} != ${JSON.stringify(expected.sequences)}`);
  for (const s of ["initiate", "download", "progress", "done"]) check(r.events.includes(s), `no ${s} progress event`);
  check(weightRequests.length === 1, `expected 1 weight request, got ${weightRequests.length}`);
  // Chromium validates relaxed SIMD: the relaxed engine build is the one fetched (and it gave the exact ids)
  check(wasmRequests[0] === "t5_web_relaxed_bg.wasm", `engine build fetched: ${JSON.stringify(wasmRequests)}`);
  log(`examples/browser: ids exact on ${wasmRequests[0]}; "${r.text[0]}"`);

  // 1b. the same page cross-origin isolated (COOP + COEP): the threaded build, its workers, the same ids
  {
    const iso = await context.newPage();
    const isoWasm = [];
    iso.on("request", (q) => q.url().endsWith(".wasm") && isoWasm.push(q.url().split("/").pop()));
    iso.on("pageerror", (e) => errors.push(String(e)));
    await iso.goto(exampleUrl.replace(`${base}/`, `${base}/isolated/`).replace("model=/models/", "model=/isolated/models/"));
    await iso.waitForFunction(() => window.result !== undefined, null, { timeout: 60_000 });
    const ri = await iso.evaluate(() => ({ ...window.result, isolated: self.crossOriginIsolated, cores: navigator.hardwareConcurrency }));
    check(!ri.error, `isolated example page failed: ${ri.error} ${errors.join("; ")}`);
    check(ri.isolated === true, "the /isolated/ page is not cross-origin isolated");
    // cross-origin isolated, and Chromium validates relaxed SIMD: the threaded relaxed-SIMD build
    check(isoWasm[0] === "t5_web_threads_relaxed_bg.wasm", `isolated page fetched ${JSON.stringify(isoWasm)}`);
    check(same(ri.ids, expected.sequences), `threaded ids ${JSON.stringify(ri.ids)} != ${JSON.stringify(expected.sequences)}`);
    check(ri.threads === Math.min(ri.cores, 8), `threads ${ri.threads} with ${ri.cores} hardware threads`);
    log(`examples/browser isolated: ids exact on ${isoWasm[0]} with ${ri.threads} threads`);
    await iso.close();
  }

  // 2. the Cache API: a reload reads the weights from the cache; a corrupted entry is fetched again
  r = await runExample();
  check(same(r.ids, expected.sequences), "ids after reload");
  check(weightRequests.length === 1, `reload fetched the weights again (${weightRequests.length} requests)`);
  const corrupted = await page.evaluate(async () => {
    const cache = await caches.open("t5-web");
    const keys = (await cache.keys()).map((k) => k.url);
    const url = keys.find((k) => k.endsWith("/model.safetensors"));
    const old = await cache.match(url);
    const bytes = new Uint8Array(await old.arrayBuffer());
    bytes[bytes.length >> 1] ^= 0xff; // same size, different hash
    await cache.put(url, new Response(bytes, { headers: old.headers }));
    return keys.length;
  });
  check(corrupted >= 5, `cache holds ${corrupted} entries`);
  r = await runExample();
  check(same(r.ids, expected.sequences), "ids after the corrupted cache entry");
  check(weightRequests.length === 2, `a corrupted cache entry must be fetched again (weights requested ${weightRequests.length} times)`);
  log("Cache API: hit on reload; corrupted entry detected and fetched again");

  // cross-origin, gzip-encoded: the page sees the compressed Content-Length but not the Content-Encoding
  const crossOrigin = base.replace("127.0.0.1", "localhost") + "/gzip/models/tiny-t5-v1_1/";
  await page.goto(exampleUrl.replace("model=/models/tiny-t5-v1_1/", `model=${encodeURIComponent(crossOrigin)}`));
  await page.waitForFunction(() => window.result !== undefined, null, { timeout: 60_000 });
  r = await page.evaluate(() => window.result);
  check(!r.error && same(r.ids, expected.sequences), `cross-origin gzip: ${r.error ?? JSON.stringify(r.ids)}`);
  log("cross-origin gzip-encoded model: ids exact");

  // 3. the Web Worker helper: streamed tokens, an abort crossing into the worker, exact ids after
  await page.goto(`${base}/runtimes/browser/worker.html`);
  await page.waitForFunction(() => window.result !== undefined, null, { timeout: 90_000 });
  r = await page.evaluate(() => window.result);
  check(!r.error, `worker page: ${r.error}`);
  check(same(r.tokens, expected.sequences[0].slice(1)), `worker streamed ${JSON.stringify(r.tokens)}`);
  check(r.abort === "AbortError" && r.seen < 3000, `worker abort: ${r.abort} after ${r.seen} tokens`);
  check(r.ticks >= 3, "the page's timers did not run while the worker generated");
  check(r.after.length === 3, "worker after abort");
  log(`Web Worker: streamed tokens exact; aborted after ${r.seen} tokens (${r.ticks} timer ticks meanwhile); usable again`);

  // 4. the playground opens on the default model (models/t5-numbers) and its task: the first click gives the
  // right answer, the same text as t5-web in Node (expected.numbers, made by run.mjs from the installed package)
  await page.setViewportSize({ width: 1000, height: 900 });
  await page.goto(`${base}/playground/index.html`);
  await page.waitForSelector("body[data-model=ready]", { timeout: 60_000 });
  check((await page.inputValue("#model-url")) === "../models/t5-numbers/", "the playground's default model");
  check((await page.inputValue("#task")) === "numbers to words: " && (await page.inputValue("#input")) === "1204", "the playground's default task and input");
  await page.evaluate(() => {
    window.outputUpdates = 0;
    new MutationObserver((records) => (window.outputUpdates += records.length)).observe(document.getElementById("output"), { childList: true, characterData: true, subtree: true });
  });
  await page.click("#generate");
  await page.waitForSelector("body[data-gen=done]", { timeout: 60_000 });
  const numbers = await page.textContent("#output");
  check(numbers === expected.numbers.fp32, `playground's first answer ${JSON.stringify(numbers)} != Node's ${JSON.stringify(expected.numbers.fp32)}`);
  check(numbers === "one thousand two hundred four", `playground's first answer is wrong: ${JSON.stringify(numbers)}`);
  const numberUpdates = await page.evaluate(() => window.outputUpdates);
  check(numberUpdates >= 4, `the output changed ${numberUpdates} times: tokens did not stream in`);
  await page.screenshot({ path: join(artifacts, "playground-default.png"), fullPage: true });
  check((await page.evaluate(() => document.body.innerText)).includes("one thousand two hundred four"), "the answer is not on the page");
  log(`playground default: "numbers to words: 1204" → "${numbers}" (= Node), ${numberUpdates} updates; screenshot test/artifacts/playground-default.png`);
  // the dtype picker reloads the model; q8 / q4 give Node's q8 / q4 text; words to numbers
  for (const dtype of ["q8", "q4"]) {
    await page.selectOption("#dtype", dtype);
    await page.waitForFunction((d) => document.body.dataset.model === "ready" && document.getElementById("model-status").textContent.includes(`(${d})`), dtype, { timeout: 60_000 });
    await page.click("#generate");
    await page.waitForSelector("body[data-gen=done]", { timeout: 60_000 });
    const got = await page.textContent("#output");
    check(got === expected.numbers[dtype], `playground ${dtype}: ${JSON.stringify(got)} != Node's ${JSON.stringify(expected.numbers[dtype])}`);
  }
  await page.selectOption("#task", "words to numbers: ");
  await page.fill("#input", "six hundred seventy three");
  await page.click("#generate");
  await page.waitForSelector("body[data-gen=done]", { timeout: 60_000 });
  check((await page.textContent("#output")) === expected.numbers.words, `words to numbers (q4): ${await page.textContent("#output")} != ${expected.numbers.words}`);
  log(`playground dtype picker: q8 "${expected.numbers.q8}", q4 "${expected.numbers.q4}" (= Node); words to numbers "${expected.numbers.words}"`);
  // the WebGPU option: this Chromium runs with --disable-gpu, so it is disabled with a note or fails with a message
  const webgpu = await page.evaluate(() => ({ disabled: document.querySelector("#device option[value=webgpu]").disabled, note: document.getElementById("webgpu-note").textContent }));
  log(`playground WebGPU option: ${webgpu.disabled ? `disabled (${webgpu.note})` : "enabled"}`);

  // 5. the playground with a model by URL: type, pick a task, click, streamed output, screenshot
  const want = await (async () => {
    await page.goto(`${base}/examples/browser/index.html?model=/models/tiny-t5-v1_1/&text=${encodeURIComponent(expected.texts[0])}`);
    await page.waitForFunction(() => window.result !== undefined, null, { timeout: 60_000 });
    return (await page.evaluate(() => window.result)).text[0];
  })();
  await page.setViewportSize({ width: 1000, height: 900 });
  // served cross-origin isolated, as playground/serve.mjs serves it: the worker runs the threaded engine build
  await page.goto(`${base}/isolated/playground/index.html?model=/isolated/models/tiny-t5-v1_1/`);
  await page.waitForSelector("body[data-model=ready]", { timeout: 60_000 });
  await page.selectOption("#task", "translate English to German: ");
  await page.fill("#input", "");
  await page.type("#input", "The house is wonderful.");
  await page.fill("#max-tokens", String(expected.max_new_tokens));
  // count the output's updates: tokens must stream in, not arrive at once
  await page.evaluate(() => {
    window.outputUpdates = 0;
    new MutationObserver((records) => (window.outputUpdates += records.length)).observe(document.getElementById("output"), { childList: true, characterData: true, subtree: true });
  });
  await page.click("#generate");
  await page.waitForSelector("body[data-gen=done]", { timeout: 60_000 });
  const updates = await page.evaluate(() => window.outputUpdates);
  check(updates >= expected.max_new_tokens, `the playground's output changed ${updates} times for ${expected.max_new_tokens} tokens`);
  const out = await page.textContent("#output");
  check(out === want, `playground output ${JSON.stringify(out)} != ${JSON.stringify(want)}`);
  const speed = await page.textContent("#stat-speed");
  const size = await page.textContent("#stat-size");
  const backend = await page.textContent("#stat-backend");
  // the engine build that runs, named (Chromium validates relaxed SIMD: one of the relaxed builds)
  check(Number(speed) > 0 && /MiB/.test(size) && /^cpu \(wasm (threads-)?relaxed-simd, \d+ threads?\)$/.test(backend), `playground stats: ${speed} tok/s, ${size}, ${backend}`);
  await page.screenshot({ path: join(artifacts, "playground.png"), fullPage: true });
  log(`playground: "${out}" streamed in ${updates} updates, ${speed} tokens/s, ${size}, ${backend}; screenshot test/artifacts/playground.png`);

  // Stop: a long generation is cancelled from the page (the AbortSignal crosses into the worker)
  await page.fill("#max-tokens", "512");
  await page.click("#generate");
  await page.waitForFunction(() => Number(document.getElementById("stat-tokens").textContent) >= 3, null, { timeout: 30_000 });
  await page.click("#stop");
  await page.waitForSelector("body[data-gen=stopped]", { timeout: 30_000 });
  const stoppedAt = Number(await page.textContent("#stat-tokens"));
  check(stoppedAt < 512, `stopped after ${stoppedAt} tokens`);
  await page.fill("#max-tokens", String(expected.max_new_tokens));
  await page.click("#generate");
  await page.waitForSelector("body[data-gen=done]", { timeout: 60_000 });
  check((await page.textContent("#output")) === want, "playground output after Stop");
  log(`playground: Stop after ${stoppedAt} tokens, then the same output again`);

  // local files through the file input (after the default model has loaded)
  const model = join(scratch, "models/tiny-t5-v1_1");
  await page.goto(`${base}/playground/index.html`);
  await page.waitForSelector("body[data-model=ready]", { timeout: 60_000 });
  await page.selectOption("#task", "translate English to German: ");
  await page.fill("#input", "The house is wonderful.");
  await page.setInputFiles("#model-files", readdirSync(model).map((f) => join(model, f)));
  await page.waitForFunction(() => document.body.dataset.model === "ready" && document.getElementById("model-status").textContent.includes("local files"), null, { timeout: 60_000 });
  await page.fill("#max-tokens", String(expected.max_new_tokens));
  await page.click("#generate");
  await page.waitForSelector("body[data-gen=done]", { timeout: 60_000 });
  check((await page.textContent("#output")) === want, "playground output from local files");
  log("playground: local files give the same output");
  check(errors.length === 0, `page errors: ${errors.join("; ")}`);
  log(`404s (optional files): ${[...notFound].join(", ") || "none"}`);
} finally {
  await browser.close();
}
