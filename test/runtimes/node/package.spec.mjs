// Node, against the packed package installed in the scratch project (see ../run.mjs): run there by
// vitest with the scratch dir as root, so `t5-web` resolves through node_modules and `exports`.
import { execFile } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync, mkdtempSync, statSync, openSync, readSync, closeSync, existsSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, normalize } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AutoModelForSeq2SeqLM, AutoTokenizer, createGenerationWorker, CACHE_DIR_ENV, env, MissingFileError, pipeline } from "t5-web";

const root = join(import.meta.dirname, "../..");
const modelDir = join(root, "models/tiny-t5-v1_1");
const expected = JSON.parse(readFileSync(join(root, "expected.json"), "utf8"));
const FILES = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"];

let server;
let base;
const requests = [];

beforeAll(async () => {
  // /plain/…: Content-Length, 64 KiB writes; /chunked/…: no Content-Length (chunked), 16 KiB writes;
  // /gzip/…: Content-Encoding gzip with the compressed length; /truncated/…: announces the full length, sends half
  server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    requests.push(path);
    const [, mode, ...rest] = path.split("/");
    const file = normalize(join(root, "models", ...rest));
    if (!file.startsWith(join(root, "models")) || !existsSync(file) || !statSync(file).isFile()) return res.writeHead(404).end();
    const raw = readFileSync(file);
    const bytes = mode === "gzip" ? gzipSync(raw) : raw;
    const piece = mode === "chunked" ? 16384 : 65536;
    const headers = { "content-type": "application/octet-stream" };
    if (mode === "gzip") headers["content-encoding"] = "gzip";
    if (mode !== "chunked") headers["content-length"] = bytes.length;
    res.writeHead(200, headers);
    const end = mode === "truncated" ? bytes.length >> 1 : bytes.length;
    let at = 0;
    const pump = () => {
      while (at < end) {
        const ok = res.write(bytes.subarray(at, Math.min(end, at + piece)));
        at += piece;
        if (!ok) return res.once("drain", pump);
      }
      if (mode === "truncated") res.destroy();
      else res.end();
    };
    pump();
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${server.address().port}`;
});
afterAll(() => new Promise((r) => server.close(r)));

async function generate(source, opts = {}) {
  const [tok, lm] = await Promise.all([AutoTokenizer.fromPretrained(source, opts), AutoModelForSeq2SeqLM.fromPretrained(source, opts)]);
  try {
    return await lm.generate(tok(expected.texts, { padding: true }), { max_new_tokens: expected.max_new_tokens });
  } finally {
    lm.dispose();
    tok.dispose();
  }
}

describe("t5-web from the packed tarball, in Node", () => {
  it("resolves to the node build", async () => {
    const pkg = JSON.parse(readFileSync(join(root, "node_modules/t5-web/package.json"), "utf8"));
    expect(pkg.exports["."].node).toBe("./dist/npm/node.js");
    expect(existsSync(join(root, "node_modules/t5-web/dist/npm/t5_web_bg.wasm"))).toBe(true);
  });

  it("a directory: exact ids", async () => {
    expect(await generate(modelDir)).toEqual(expected.sequences);
  });

  it("a URL, in pieces with and without Content-Length, with transformers.js progress events", async () => {
    for (const mode of ["plain", "chunked"]) {
      const events = [];
      expect(await generate(`${base}/${mode}/tiny-t5-v1_1/`, { progress_callback: (e) => events.push(e) })).toEqual(expected.sequences);
      const w = events.filter((e) => e.file === "model.safetensors");
      expect(w[0]).toMatchObject({ status: "initiate", file: "model.safetensors" });
      expect(w[1]).toMatchObject({ status: "download" });
      const progress = w.filter((e) => e.status === "progress");
      const size = statSync(join(modelDir, "model.safetensors")).size;
      expect(progress.length).toBeGreaterThan(mode === "plain" ? size / 65536 / 2 : 2); // arrived in pieces
      for (let i = 1; i < progress.length; i++) expect(progress[i].loaded).toBeGreaterThan(progress[i - 1].loaded);
      expect(progress.at(-1)).toMatchObject({ loaded: size, total: size, progress: 100 });
      expect(w.at(-1)).toMatchObject({ status: "done" });
      expect(Object.keys(progress[0]).sort()).toEqual(["file", "loaded", "name", "progress", "status", "total"]);
    }
  });

  it("a gzip-encoded response (Content-Length of the compressed body)", async () => {
    expect(await generate(`${base}/gzip/tiny-t5-v1_1/`)).toEqual(expected.sequences);
  });

  it("pipeline reports ready", async () => {
    const events = [];
    const pipe = await pipeline("text2text-generation", `${base}/plain/tiny-t5-v1_1`, { progress_callback: (e) => events.push(e) });
    pipe.dispose();
    expect(events.at(-1)).toMatchObject({ status: "ready", task: "text2text-generation" });
  });

  it("a truncated download is a MissingFileError", async () => {
    await expect(AutoModelForSeq2SeqLM.fromPretrained(`${base}/truncated/tiny-t5-v1_1/`)).rejects.toBeInstanceOf(MissingFileError);
  });

  it("the cache dir: hits skip the network; corrupted or truncated entries are fetched again", async () => {
    const cache_dir = mkdtempSync(join(tmpdir(), "t5-web-cache-"));
    const url = `${base}/plain/tiny-t5-v1_1/`;
    const weightRequests = () => requests.filter((p) => p === "/plain/tiny-t5-v1_1/model.safetensors").length;
    let n = weightRequests();
    expect(await generate(url, { cache_dir })).toEqual(expected.sequences);
    expect(weightRequests()).toBe(n + 1);
    n = weightRequests();
    expect(await generate(url, { cache_dir })).toEqual(expected.sequences);
    expect(weightRequests()).toBe(n); // from the cache
    // flip one byte in the cached weights
    const meta = readdirSync(cache_dir).filter((f) => f.endsWith(".json")).map((f) => ({ f, m: JSON.parse(readFileSync(join(cache_dir, f), "utf8")) }));
    const entry = meta.find((x) => x.m.url.endsWith("model.safetensors"));
    const bin = join(cache_dir, entry.f.replace(/\.json$/, ".bin"));
    const bytes = readFileSync(bin);
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(bin, bytes);
    expect(await generate(url, { cache_dir })).toEqual(expected.sequences);
    expect(weightRequests()).toBe(n + 1); // detected (hash) and fetched again
    writeFileSync(bin, readFileSync(bin).subarray(0, 1000)); // truncated
    expect(await generate(url, { cache_dir })).toEqual(expected.sequences);
    expect(weightRequests()).toBe(n + 2); // detected (size) and fetched again
    expect(readFileSync(bin).length).toBe(statSync(join(modelDir, "model.safetensors")).size); // repaired
  });

  it(`the cache dir from ${CACHE_DIR_ENV}`, async () => {
    const dir = mkdtempSync(join(tmpdir(), "t5-web-cache-env-"));
    process.env[CACHE_DIR_ENV] = dir;
    try {
      expect(await generate(`${base}/chunked/tiny-t5-v1_1/`)).toEqual(expected.sequences);
    } finally {
      delete process.env[CACHE_DIR_ENV];
    }
    expect(readdirSync(dir).filter((f) => f.endsWith(".bin")).length).toBe(FILES.length);
  });

  it("File / Blob / ArrayBuffer objects: exact ids", async () => {
    const bytes = Object.fromEntries(FILES.map((f) => [f, readFileSync(join(modelDir, f))]));
    const asArrayBuffers = Object.fromEntries(FILES.map((f) => [f, bytes[f].buffer.slice(bytes[f].byteOffset, bytes[f].byteOffset + bytes[f].byteLength)]));
    expect(await generate(asArrayBuffers)).toEqual(expected.sequences);
    expect(await generate(new Map(FILES.map((f) => [f, new Blob([bytes[f]])])))).toEqual(expected.sequences);
    expect(await generate(FILES.map((f) => new File([bytes[f]], `some/dir/${f}`)))).toEqual(expected.sequences);
  });

  it("streamer gets each token; an AbortSignal stops generation", async () => {
    const [tok, lm] = await Promise.all([AutoTokenizer.fromPretrained(modelDir), AutoModelForSeq2SeqLM.fromPretrained(modelDir)]);
    const steps = [];
    const ids = await lm.generate(tok(expected.texts, { padding: true }), { max_new_tokens: expected.max_new_tokens, streamer: { put: (v) => steps.push(v.map((r) => r[0])), end: () => steps.push("end") } });
    expect(ids).toEqual(expected.sequences);
    expect(steps.at(-1)).toBe("end");
    // first the prompt (the decoder start token of each row), as transformers.js
    expect(steps[0]).toEqual(expected.sequences.map((row) => row[0]));
    expect(steps.slice(1, -1)).toEqual(expected.sequences[0].slice(1).map((_, i) => expected.sequences.map((row) => row[i + 1])));
    const ac = new AbortController();
    let n = 0;
    await expect(
      lm.generate(tok(expected.texts, { padding: true }), { max_new_tokens: expected.max_new_tokens, signal: ac.signal, streamer: { put: () => ++n === 3 && ac.abort(), end() {} } }),
    ).rejects.toThrow(/abort/i);
    expect(n).toBe(3);
    lm.dispose();
    tok.dispose();
  });

  it("a worker thread: streams tokens, same text as the main thread, AbortSignal crosses over", async () => {
    const pipe = await pipeline("text2text-generation", modelDir);
    const want = await pipe(expected.texts, { max_new_tokens: expected.max_new_tokens });
    pipe.dispose();
    const gen = await createGenerationWorker(modelDir);
    try {
      expect(gen.info.bytes).toBeGreaterThan(4_000_000);
      const tokens = [];
      const got = await gen.generate(expected.texts[0], { max_new_tokens: expected.max_new_tokens, on_token: (e) => tokens.push(e) });
      expect(got).toEqual([want[0]]);
      expect(tokens.map((t) => t.tokens[0])).toEqual(expected.sequences[0].slice(1));
      expect(tokens.at(-1).text).toBe(want[0].generated_text);
      const ac = new AbortController();
      let seen = 0;
      const aborted = gen.generate(expected.texts[0], { max_new_tokens: 3000, min_new_tokens: 3000, signal: ac.signal, on_token: () => ++seen === 2 && ac.abort() });
      await expect(aborted).rejects.toMatchObject({ name: "AbortError" });
      expect(seen).toBeLessThan(3000);
      expect(await gen.generate(expected.texts, { max_new_tokens: expected.max_new_tokens })).toEqual(want); // still usable
    } finally {
      gen.terminate();
    }
  });

  it("a worker thread's model: the model API (async generate, generateStream, model(inputs)) with the main thread's results", async () => {
    const [tok, lm] = await Promise.all([AutoTokenizer.fromPretrained(modelDir), AutoModelForSeq2SeqLM.fromPretrained(modelDir)]);
    const gen = await createGenerationWorker(modelDir);
    try {
      const m = gen.model;
      const enc = tok(expected.texts, { padding: true });
      const opts = { max_new_tokens: expected.max_new_tokens };
      expect(await m.generate(enc, opts)).toEqual(expected.sequences);
      expect(await m.generate({ ...enc, ...opts })).toEqual(expected.sequences);
      const steps = [];
      for await (const s of m.generateStream(enc, opts)) steps.push(s);
      expect(steps).toEqual(expected.sequences[0].slice(1).map((_, i) => expected.sequences.map((row) => row[i + 1])));
      const x = { ...enc, decoder_input_ids: expected.sequences.map((r) => r.slice(0, 3)) };
      const [here, there] = [await lm(x), await m(x)];
      expect(Array.from(there.logits.data)).toEqual(Array.from(here.logits.data));
      expect(there.logits.dims).toEqual(here.logits.dims);
      const one = tok([expected.texts[0]]);
      await expect(m.generate(one, { max_new_tokens: 3000, min_new_tokens: 3000, signal: AbortSignal.timeout(300) })).rejects.toMatchObject({ code: "Aborted" });
      await expect(m.generate(one, { max_new_tokens: NaN })).rejects.toMatchObject({ name: "BadConfigError" });
      expect(await m.generate(enc, opts)).toEqual(expected.sequences); // still usable
    } finally {
      gen.terminate();
      lm.dispose();
      tok.dispose();
    }
  });

  it("a worker loads a Hub id with the main thread's env (remoteHost, remotePathTemplate, allowLocalModels, cacheDir)", async () => {
    const saved = { ...env };
    const cacheDir = mkdtempSync(join(tmpdir(), "t5-web-worker-cache-"));
    const tok = await AutoTokenizer.fromPretrained(modelDir);
    // the id names the fixture under the local server's /plain/; the worker's own defaults would ask huggingface.co
    Object.assign(env, { remoteHost: `${base}/plain/`, remotePathTemplate: "{model}/", allowLocalModels: false, useFSCache: true, cacheDir });
    const before = requests.length;
    let gen;
    try {
      gen = await createGenerationWorker("tiny-t5-v1_1");
    } finally {
      Object.assign(env, saved);
    }
    try {
      expect(requests.slice(before)).toContain("/plain/tiny-t5-v1_1/model.safetensors");
      expect(readdirSync(cacheDir).filter((f) => f.endsWith(".bin")).length).toBeGreaterThanOrEqual(3);
      expect(await gen.model.generate(tok(expected.texts, { padding: true }), { max_new_tokens: expected.max_new_tokens })).toEqual(expected.sequences);
    } finally {
      gen.terminate();
      tok.dispose();
    }
    // and the main thread's allowRemoteModels = false (with no cache) stops it there too
    Object.assign(env, { remoteHost: `${base}/plain/`, remotePathTemplate: "{model}/", allowLocalModels: false, allowRemoteModels: false, useFSCache: false });
    const asked = requests.length;
    try {
      await expect(createGenerationWorker("tiny-t5-v1_1")).rejects.toThrow(/allowRemoteModels is false/);
    } finally {
      Object.assign(env, saved);
    }
    expect(requests.length).toBe(asked);
  });

  it("examples/node/generate.mjs prints the exact ids", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ["examples/node/generate.mjs", modelDir, ...expected.texts], { cwd: root });
    expect(JSON.parse(stdout).ids).toEqual(expected.sequences);
  });

  it("examples/node/worker.mjs: a plain script with a worker thread streams the exact ids and exits", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ["examples/node/worker.mjs", modelDir, expected.texts[0]], { cwd: root, timeout: 60_000 });
    expect(JSON.parse(stdout).ids).toEqual(expected.sequences[0]);
  });

  it("the t5-web bin runs from the tarball", async () => {
    const { stdout } = await promisify(execFile)(join(root, "node_modules/.bin/t5-web"), ["--help"], { cwd: root });
    expect(stdout).toMatch(/Usage:\s+t5-web/);
    const version = JSON.parse(readFileSync(join(root, "node_modules/t5-web/package.json"), "utf8")).version;
    expect((await promisify(execFile)(join(root, "node_modules/.bin/t5-web"), ["--version"], { cwd: root })).stdout).toBe(`t5-web ${version}\n`);
    // an npm installation ships no model: without --model, run says what to pass (and exits 1)
    const noModel = await promisify(execFile)(join(root, "node_modules/.bin/t5-web"), ["run", "--input", "x"], { cwd: root }).then(
      () => undefined,
      (e) => e,
    );
    expect(noModel?.code).toBe(1);
    expect(noModel.stderr).toMatch(/pass --model <hub id\|dir\|url>, e\.g\. --model google-t5\/t5-small/);
    // the help's first example names that model
    expect(stdout).toMatch(/echo "translate English to German: The house is wonderful\." \| t5-web run --model google-t5\/t5-small/);
  });
});
