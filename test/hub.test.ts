/**
 * Hub ids (`owner/name`, `name`) → `{remoteHost}{id}/resolve/{revision}/{file}`, the `env` settings, the download
 * cache (directory in Node, Cache API elsewhere) and the errors (ONNX-only repository, 404 naming the URL). Offline:
 * a stubbed `fetch` serves the fixture checkpoints (test/helpers/hub.ts).
 */

import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AutoModelForSeq2SeqLM,
  AutoTokenizer,
  BadInputError,
  MissingFileError,
  OnnxOnlyError,
  T5Config,
  T5ForConditionalGeneration,
  env,
  type LoadOptions,
} from "../ts/src/index.js";
import { hubStub } from "./helpers/hub.js";
import { FIXTURES, loadOracle, modelDir } from "./helpers/oracle.js";

const HF = "https://huggingface.co/";
const saved = { ...env };
const tmps: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "t5-web-hub-"));
  tmps.push(d);
  return d;
}

beforeEach(() => {
  Object.assign(env, saved, { useFSCache: false });
});
afterEach(() => {
  Object.assign(env, saved);
  for (const d of tmps.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Greedy ids of the tiny-t5 oracle texts, loaded with `opts` from `source`. */
async function generate(source: string, opts: LoadOptions): Promise<number[][]> {
  const o = loadOracle("tiny-t5").json;
  const [tok, lm] = await Promise.all([AutoTokenizer.fromPretrained(source, opts), AutoModelForSeq2SeqLM.fromPretrained(source, opts)]);
  try {
    return await lm.generate(tok(o.texts, { padding: true }), { max_new_tokens: o.greedy.max_new_tokens });
  } finally {
    lm.dispose();
    tok.dispose();
  }
}

describe("Hub ids resolve to {remoteHost}{id}/resolve/{revision}/", () => {
  it("owner/name and a bare name, default host and revision main", async () => {
    const hub = hubStub({ [`${HF}google-t5/t5-small/resolve/main/`]: "tiny-t5", [`${HF}t5-small/resolve/main/`]: "tiny-t5" });
    const a = await T5Config.fromPretrained("google-t5/t5-small", { fetch: hub.fetch });
    const b = await T5Config.fromPretrained("t5-small", { fetch: hub.fetch });
    expect(a.d_model).toBe(b.d_model);
    expect(hub.asked).toEqual([`GET ${HF}google-t5/t5-small/resolve/main/config.json`, `GET ${HF}t5-small/resolve/main/config.json`]);
  });

  it("the whole model and tokenizer: same ids as from the directory", async () => {
    const o = loadOracle("tiny-t5").json;
    const hub = hubStub({ [`${HF}owner/tiny/resolve/main/`]: "tiny-t5" });
    expect(await generate("owner/tiny", { fetch: hub.fetch })).toEqual(o.greedy.sequences);
    expect(hub.count("model.safetensors")).toBe(1);
    expect(hub.asked.every((a) => a.startsWith(`GET ${HF}owner/tiny/resolve/main/`))).toBe(true);
  });

  it("revision per call (URL-encoded, as transformers.js)", async () => {
    const hub = hubStub({ [`${HF}owner/tiny/resolve/v1.0/`]: "tiny-t5", [`${HF}owner/tiny/resolve/refs%2Fpr%2F3/`]: "tiny-t5" });
    await T5Config.fromPretrained("owner/tiny", { fetch: hub.fetch, revision: "v1.0" });
    await T5Config.fromPretrained("owner/tiny", { fetch: hub.fetch, revision: "refs/pr/3" });
    expect(hub.asked).toEqual([`GET ${HF}owner/tiny/resolve/v1.0/config.json`, `GET ${HF}owner/tiny/resolve/refs%2Fpr%2F3/config.json`]);
    await expect(T5Config.fromPretrained("owner/tiny", { fetch: hub.fetch, revision: "" })).rejects.toThrow(BadInputError);
  });

  it("env.remoteHost and env.remotePathTemplate", async () => {
    env.remoteHost = "https://mirror.example/hf";
    env.remotePathTemplate = "models/{model}@{revision}/";
    const hub = hubStub({ "https://mirror.example/hf/models/owner/tiny@dev/": "tiny-t5" });
    await T5Config.fromPretrained("owner/tiny", { fetch: hub.fetch, revision: "dev" });
    expect(hub.asked).toEqual(["GET https://mirror.example/hf/models/owner/tiny@dev/config.json"]);
  });

  it("local_files_only and env.allowRemoteModels = false: no request, an error saying why", async () => {
    const hub = hubStub({ [`${HF}owner/tiny/resolve/main/`]: "tiny-t5" });
    const e1 = await T5Config.fromPretrained("owner/tiny", { fetch: hub.fetch, local_files_only: true }).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(MissingFileError);
    expect((e1 as Error).message).toMatch(/owner\/tiny.*local_files_only/);
    env.allowRemoteModels = false;
    const e2 = await T5Config.fromPretrained("owner/tiny", { fetch: hub.fetch }).catch((e: unknown) => e);
    expect((e2 as Error).message).toMatch(/allowRemoteModels/);
    expect(hub.asked).toEqual([]);
  });

  it("a local directory wins over the Hub: as given, then under env.localModelPath", async () => {
    const hub = hubStub({ [`${HF}tiny-t5/resolve/main/`]: "tiny-t5" });
    env.localModelPath = FIXTURES;
    const c = await T5Config.fromPretrained("tiny-t5", { fetch: hub.fetch, local_files_only: true });
    expect(c.d_model).toBeGreaterThan(0);
    const d = await T5Config.fromPretrained(modelDir("tiny-t5"), { fetch: hub.fetch });
    expect(d.d_model).toBe(c.d_model);
    expect(hub.asked).toEqual([]);
    env.allowLocalModels = false; // then the same id goes to the Hub
    await T5Config.fromPretrained("tiny-t5", { fetch: hub.fetch });
    expect(hub.asked).toEqual([`GET ${HF}tiny-t5/resolve/main/config.json`]);
  });

  it("a missing path that is not a Hub id: MissingFileError, no request", async () => {
    const hub = hubStub({});
    const e = await T5Config.fromPretrained("./no/such/dir/here", { fetch: hub.fetch }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(MissingFileError);
    expect((e as Error).message).toMatch(/model directory not found.*not a Hub id/);
    expect(hub.asked).toEqual([]);
  });
});

describe("errors name the URL tried", () => {
  it("404 on a Hub id", async () => {
    const hub = hubStub({});
    const e = await T5Config.fromPretrained("owner/missing", { fetch: hub.fetch }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(MissingFileError);
    expect((e as Error).message).toContain(`${HF}owner/missing/resolve/main/config.json`);
    expect((e as MissingFileError).path).toBe(`${HF}owner/missing/resolve/main/config.json`);
    const t = await AutoTokenizer.fromPretrained("owner/missing", { fetch: hub.fetch }).catch((x: unknown) => x);
    expect((t as Error).message).toContain(`${HF}owner/missing/resolve/main/tokenizer.json`);
  });

  it("a repository with only ONNX weights: OnnxOnlyError naming the file and what t5-web reads", async () => {
    const files = { "config.json": new TextEncoder().encode(JSON.stringify({ ...(await T5Config.fromPretrained(modelDir("tiny-t5"))).toJSON() })), "onnx/model.onnx": new Uint8Array(16) };
    const hub = hubStub({ [`${HF}Xenova/t5-small/resolve/main/`]: files });
    const e = await T5ForConditionalGeneration.fromPretrained("Xenova/t5-small", { fetch: hub.fetch }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OnnxOnlyError);
    expect(e).toBeInstanceOf(MissingFileError);
    const msg = (e as Error).message;
    expect(msg).toContain(`${HF}Xenova/t5-small/resolve/main/onnx/model.onnx`);
    expect(msg).toMatch(/model\.safetensors.*pytorch_model\.bin.*\.gguf/);
    // the ONNX file itself is only probed (HEAD), never downloaded
    expect(hub.asked).not.toContain(`GET ${HF}Xenova/t5-small/resolve/main/onnx/model.onnx`);
    expect(hub.asked).toContain(`HEAD ${HF}Xenova/t5-small/resolve/main/onnx/model.onnx`);
  });

  it("no weights and no ONNX either: MissingFileError (not OnnxOnlyError)", async () => {
    const files = { "config.json": new TextEncoder().encode(JSON.stringify((await T5Config.fromPretrained(modelDir("tiny-t5"))).toJSON())) };
    const hub = hubStub({ [`${HF}owner/empty/resolve/main/`]: files });
    const e = await T5ForConditionalGeneration.fromPretrained("owner/empty", { fetch: hub.fetch }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(MissingFileError);
    expect(e).not.toBeInstanceOf(OnnxOnlyError);
    expect((e as Error).message).toContain(`${HF}owner/empty/resolve/main/model.safetensors`);
  });
});

describe("download cache", () => {
  const repo = { [`${HF}owner/tiny/resolve/main/`]: "tiny-t5" };

  it("Node, on by default: the user cache directory ($XDG_CACHE_HOME/t5-web); the second load asks nothing", async () => {
    const o = loadOracle("tiny-t5").json;
    const xdg = tmp();
    const before = process.env.XDG_CACHE_HOME;
    const own = process.env.T5_WEB_CACHE_DIR;
    process.env.XDG_CACHE_HOME = xdg;
    delete process.env.T5_WEB_CACHE_DIR;
    env.useFSCache = true; // the default outside the test setup
    try {
      const hub = hubStub(repo);
      expect(await generate("owner/tiny", { fetch: hub.fetch })).toEqual(o.greedy.sequences);
      const first = hub.asked.length;
      expect(hub.count("GET")).toBeGreaterThan(0);
      expect(readdirSync(join(xdg, "t5-web")).filter((f) => f.endsWith(".bin")).length).toBeGreaterThanOrEqual(3);
      expect(await generate("owner/tiny", { fetch: hub.fetch })).toEqual(o.greedy.sequences);
      // only files absent from the repository (404s are not cached) are asked again
      expect(hub.asked.slice(first).every((a) => !a.includes("model.safetensors") && !a.includes("config.json"))).toBe(true);
    } finally {
      if (before === undefined) delete process.env.XDG_CACHE_HOME;
      else process.env.XDG_CACHE_HOME = before;
      if (own !== undefined) process.env.T5_WEB_CACHE_DIR = own;
    }
  });

  it("env.cacheDir and the cache_dir option choose the directory", async () => {
    env.useFSCache = true;
    const envDir = (env.cacheDir = tmp());
    const hub = hubStub(repo);
    await T5Config.fromPretrained("owner/tiny", { fetch: hub.fetch });
    await T5Config.fromPretrained("owner/tiny", { fetch: hub.fetch });
    expect(hub.count("config.json")).toBe(1);
    expect(readdirSync(envDir).length).toBe(2); // .bin + .json
    const dir = tmp();
    await T5Config.fromPretrained("owner/tiny", { fetch: hub.fetch, cache_dir: dir });
    expect(hub.count("config.json")).toBe(2);
    expect(readdirSync(dir).length).toBe(2);
  });

  it("off: use_cache: false per call, env.useFSCache = false globally", async () => {
    env.useFSCache = true;
    const dir = (env.cacheDir = tmp());
    const hub = hubStub(repo);
    await T5Config.fromPretrained("owner/tiny", { fetch: hub.fetch, use_cache: false });
    await T5Config.fromPretrained("owner/tiny", { fetch: hub.fetch, use_cache: false });
    expect(hub.count("config.json")).toBe(2);
    expect(readdirSync(dir).length).toBe(0);
    env.useFSCache = false;
    await T5Config.fromPretrained("owner/tiny", { fetch: hub.fetch });
    await T5Config.fromPretrained("owner/tiny", { fetch: hub.fetch });
    expect(hub.count("config.json")).toBe(4);
    expect(readdirSync(dir).length).toBe(0);
  });

  /** Runs `body` with a Map-backed Cache API as `globalThis.caches` and `env.useBrowserCache` on. */
  async function withFakeCaches(body: (store: Map<string, Response>) => Promise<void>): Promise<void> {
    const store = new Map<string, Response>();
    const fake = {
      open: async () => ({
        match: async (u: string) => store.get(u)?.clone(),
        put: async (u: string, r: Response) => void store.set(u, r),
        delete: async (u: string) => store.delete(u),
      }),
    };
    const g = globalThis as { caches?: unknown };
    const had = g.caches;
    g.caches = fake;
    env.useBrowserCache = true;
    try {
      await body(store);
    } finally {
      g.caches = had;
    }
  }

  it("browsers: the Cache API (env.useBrowserCache), checked by size and SHA-256", async () => {
    await withFakeCaches(async (store) => {
      const hub = hubStub(repo);
      await T5Config.fromPretrained("owner/tiny", { fetch: hub.fetch });
      await T5Config.fromPretrained("owner/tiny", { fetch: hub.fetch });
      expect(hub.count("config.json")).toBe(1);
      expect([...store.keys()]).toEqual([`${HF}owner/tiny/resolve/main/config.json`]);
      env.useBrowserCache = false;
      await T5Config.fromPretrained("owner/tiny", { fetch: hub.fetch });
      expect(hub.count("config.json")).toBe(2);
    });
  });

  /** A fetch that fails every request (the network is gone), recording them. */
  function offlineFetch(): { fetch: typeof globalThis.fetch; asked: string[] } {
    const asked: string[] = [];
    const f = (async (input: URL | RequestInfo) => {
      asked.push(input instanceof URL ? input.href : typeof input === "string" ? input : input.url);
      throw new TypeError("fetch failed: network unreachable");
    }) as typeof globalThis.fetch;
    return { fetch: f, asked };
  }

  it("local_files_only reads the directory cache: same ids with a fetch that throws; an uncached id names id and file", async () => {
    const o = loadOracle("tiny-t5").json;
    env.useFSCache = true;
    env.cacheDir = tmp();
    const hub = hubStub(repo);
    const online = await generate("owner/tiny", { fetch: hub.fetch });
    expect(online).toEqual(o.greedy.sequences);
    const off = offlineFetch();
    expect(await generate("owner/tiny", { fetch: off.fetch, local_files_only: true })).toEqual(online);
    expect(off.asked).toEqual([]);
    // env.allowRemoteModels = false reads the cache the same way
    env.allowRemoteModels = false;
    expect(await generate("owner/tiny", { fetch: off.fetch })).toEqual(online);
    expect(off.asked).toEqual([]);
    env.allowRemoteModels = true;
    // an id that was never downloaded
    const e = await AutoModelForSeq2SeqLM.fromPretrained("owner/other", { fetch: off.fetch, local_files_only: true }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(MissingFileError);
    expect((e as Error).message).toContain("config.json of owner/other is not in the download cache (local_files_only is set");
    expect((e as Error).message).toContain(`${HF}owner/other/resolve/main/config.json`);
    // a cached config but no cached weights: the weights file is named
    await T5Config.fromPretrained("owner/half", { fetch: hubStub({ [`${HF}owner/half/resolve/main/`]: "tiny-t5" }).fetch });
    const w = await AutoModelForSeq2SeqLM.fromPretrained("owner/half", { fetch: off.fetch, local_files_only: true }).catch((x: unknown) => x);
    expect(w).toBeInstanceOf(MissingFileError);
    expect((w as Error).message).toContain("model.safetensors of owner/half is not in the download cache");
    expect(off.asked).toEqual([]);
  });

  it("local_files_only reads the Cache API in browsers", async () => {
    const o = loadOracle("tiny-t5").json;
    await withFakeCaches(async () => {
      const online = await generate("owner/tiny", { fetch: hubStub(repo).fetch });
      expect(online).toEqual(o.greedy.sequences);
      const off = offlineFetch();
      expect(await generate("owner/tiny", { fetch: off.fetch, local_files_only: true })).toEqual(online);
      expect(off.asked).toEqual([]);
      const e = await AutoTokenizer.fromPretrained("owner/other", { fetch: off.fetch, local_files_only: true }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(MissingFileError);
      expect((e as Error).message).toContain("tokenizer.json of owner/other is not in the download cache");
    });
  });

  it("bad cache options are typed errors", async () => {
    const hub = hubStub(repo);
    await expect(T5Config.fromPretrained("owner/tiny", { fetch: hub.fetch, cache_dir: "" })).rejects.toThrow(BadInputError);
    await expect(T5Config.fromPretrained("owner/tiny", { fetch: hub.fetch, use_cache: "yes" as unknown as boolean })).rejects.toThrow(BadInputError);
    await expect(T5Config.fromPretrained("owner/tiny", { fetch: hub.fetch, local_files_only: 1 as unknown as boolean })).rejects.toThrow(BadInputError);
  });
});
