/**
 * Loading from a base URL (a local HTTP server over test/fixtures) gives the same model as loading
 * from the directory; HTTP 404s are MissingFileErrors.
 */

import { createReadStream, existsSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join, normalize } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AutoModelForSeq2SeqLM, AutoTokenizer, MissingFileError, T5Config, pipeline } from "../ts/src/index.js";
import { FIXTURES, loadOracle, modelDir } from "./helpers/oracle.js";

let server: Server;
let base: string;
const requests: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    requests.push(path);
    if (path.startsWith("/fail/")) {
      res.writeHead(500).end("boom");
      return;
    }
    const file = normalize(join(FIXTURES, path));
    if (!file.startsWith(FIXTURES) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": "application/octet-stream" });
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
});

describe("loading from a URL", () => {
  it.each(["tiny-t5", "tiny-t5-v1_1-sharded"])("%s over HTTP equals the oracle", async (dir) => {
    const o = loadOracle(dir === "tiny-t5" ? "tiny-t5" : "tiny-t5-v1_1").json;
    const [lm, tok] = await Promise.all([AutoModelForSeq2SeqLM.fromPretrained(`${base}/${dir}`), AutoTokenizer.fromPretrained(`${base}/${dir}/`)]);
    try {
      expect(tok(o.texts, { padding: true }).input_ids).toEqual(o.input_ids);
      expect(lm.generateSync(tok(o.texts, { padding: true }), { max_new_tokens: o.greedy.max_new_tokens })).toEqual(o.greedy.sequences);
    } finally {
      lm.dispose();
      tok.dispose();
    }
  });

  it("a file: URL is a directory", async () => {
    const c = await T5Config.fromPretrained(pathToFileURL(modelDir("tiny-t5")));
    expect(c.d_model).toBe(32);
  });

  it("a URL without the model is a MissingFileError", async () => {
    await expect(AutoModelForSeq2SeqLM.fromPretrained(`${base}/nothing-here`)).rejects.toBeInstanceOf(MissingFileError);
    await expect(AutoTokenizer.fromPretrained(new URL(`${base}/nothing-here`))).rejects.toThrow(/tokenizer\.json not found/);
  });

  it("a server error is a MissingFileError naming the URL", async () => {
    await expect(T5Config.fromPretrained(`${base}/fail/x`)).rejects.toThrow(/HTTP 500/);
  });

  it("a server that cannot be reached is a MissingFileError", async () => {
    await expect(T5Config.fromPretrained("http://127.0.0.1:9/none")).rejects.toBeInstanceOf(MissingFileError);
  });

  it("pipeline from a URL", async () => {
    const pipe = await pipeline("text2text-generation", `${base}/tiny-t5-f16`);
    try {
      const out = await pipe("cola sentence: short", { max_new_tokens: 4 });
      expect(out).toHaveLength(1);
      expect(typeof out[0]!.generated_text).toBe("string");
    } finally {
      pipe.dispose();
    }
  });
});
