/**
 * Checkpoints as users have them, through the TypeScript loader: sharded safetensors,
 * `pytorch_model.bin` (torch.save zip and legacy formats, read by the engine's restricted
 * unpickler), `pytorch_model.bin.index.json` shards, from a directory and over fetch; all give the
 * same logits as transformers. Malicious pickles are BadWeightsErrors. Fixtures:
 * scripts/make_format_fixtures.py.
 */

import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { convert } from "../ts/src/cli-main.js";
import { BadWeightsError, MissingFileError, T5ForConditionalGeneration } from "../ts/src/index.js";
import { FIXTURES, compareTensor, loadOracle, modelDir } from "./helpers/oracle.js";

const FORMATS = join(FIXTURES, "formats");
const o = loadOracle("tiny-t5-f16");
const tmp = mkdtempSync(join(tmpdir(), "t5-web-formats-"));

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function logits(source: string, opts = {}): Promise<Float32Array> {
  const lm = await T5ForConditionalGeneration.fromPretrained(source, opts);
  try {
    const out = lm.forwardSync({ input_ids: o.json.input_ids, attention_mask: o.json.attention_mask, decoder_input_ids: o.json.decoder_input_ids });
    const bad = compareTensor("logits", out.logits, o.tensors.get("logits")!, o.json.fp64_diff["logits"]!);
    expect(bad, source).toBeUndefined();
    return out.logits.data;
  } finally {
    lm.dispose();
  }
}

/** A fetch over the fixture files, recording the URLs asked for. */
function fixtureFetch(asked: string[]): typeof globalThis.fetch {
  return (async (input: string | URL | Request) => {
    const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
    asked.push(url.pathname);
    const rel = decodeURIComponent(url.pathname.replace(/^\/fixtures\//, ""));
    try {
      const bytes = readFileSync(join(FIXTURES, rel));
      return new Response(bytes, { status: 200, headers: { "content-length": String(bytes.byteLength) } });
    } catch {
      return new Response("not found", { status: 404 });
    }
  }) as typeof globalThis.fetch;
}

describe("checkpoint formats", () => {
  it("sharded safetensors, pytorch_model.bin (zip), pytorch_model.bin (legacy): identical logits", async () => {
    const sharded = await logits(modelDir("tiny-t5-f16"));
    for (const d of ["tiny-t5-f16-bin", "tiny-t5-f16-legacy"]) {
      expect(Array.from(await logits(join(FORMATS, d))), d).toEqual(Array.from(sharded));
    }
  });

  it("pytorch_model.bin over fetch: safetensors tried first, then the .bin", async () => {
    const asked: string[] = [];
    const got = await logits("https://example.test/fixtures/formats/tiny-t5-f16-bin/", { fetch: fixtureFetch(asked) });
    expect(Array.from(got)).toEqual(Array.from(await logits(modelDir("tiny-t5-f16"))));
    const names = asked.map((p) => p.split("/").pop());
    expect(names.indexOf("model.safetensors")).toBeLessThan(names.indexOf("pytorch_model.bin"));
    expect(names.indexOf("model.safetensors.index.json")).toBeLessThan(names.indexOf("pytorch_model.bin"));
  });

  it("pytorch_model.bin.index.json shards", async () => {
    const dir = join(tmp, "bin-sharded");
    rmSync(dir, { recursive: true, force: true });
    const src = join(FORMATS, "tiny-t5-f16-bin");
    const { mkdirSync } = await import("node:fs");
    mkdirSync(dir);
    copyFileSync(join(src, "config.json"), join(dir, "config.json"));
    copyFileSync(join(src, "pytorch_model.bin"), join(dir, "pytorch_model-00001-of-00001.bin"));
    writeFileSync(join(dir, "pytorch_model.bin.index.json"), JSON.stringify({ metadata: {}, weight_map: { "shared.weight": "pytorch_model-00001-of-00001.bin" } }));
    await logits(dir);
    writeFileSync(join(dir, "pytorch_model.bin.index.json"), JSON.stringify({ weight_map: { "shared.weight": "../pytorch_model.bin" } }));
    await expect(T5ForConditionalGeneration.fromPretrained(dir)).rejects.toThrow(BadWeightsError);
  });

  it("convert(): .bin and legacy .bin → model.safetensors with the same logits", async () => {
    const want = Array.from(await logits(modelDir("tiny-t5-f16")));
    for (const d of ["tiny-t5-f16-bin", "tiny-t5-f16-legacy"]) {
      const out = join(tmp, `conv-${d}`);
      const written = await convert(join(FORMATS, d), out);
      expect(written).toEqual(["model.safetensors", "config.json", "generation_config.json"]);
      expect(Array.from(await logits(out)), d).toEqual(want);
      // tied embeddings once: about the size of the .bin, not 4 copies
      expect(readFileSync(join(out, "model.safetensors")).byteLength).toBeLessThan(readFileSync(join(FORMATS, d, "pytorch_model.bin")).byteLength);
    }
  });

  it("malicious pickles are BadWeightsErrors and never run", async () => {
    const marker = readFileSync(join(FORMATS, "evil-marker.txt"), "utf8").trim();
    rmSync(marker, { force: true });
    for (const [f, msg] of [
      ["evil-system.bin", /refusing global posix\.system/],
      ["evil-eval-legacy.bin", /refusing global __builtin__\.eval/],
      ["evil-newobj.pkl", /pytorch_model\.bin/],
    ] as const) {
      const dir = join(tmp, `evil-${f}`);
      const { mkdirSync } = await import("node:fs");
      mkdirSync(dir, { recursive: true });
      copyFileSync(join(modelDir("tiny-t5-f16"), "config.json"), join(dir, "config.json"));
      copyFileSync(join(FORMATS, f), join(dir, "pytorch_model.bin"));
      const err = await T5ForConditionalGeneration.fromPretrained(dir).catch((e: unknown) => e);
      expect(err, f).toBeInstanceOf(BadWeightsError);
      expect((err as Error).message, f).toMatch(msg);
      expect((err as Error).message, f).toMatch(/pytorch_model\.bin/);
    }
    const { existsSync } = await import("node:fs");
    expect(existsSync(marker)).toBe(false);
  });

  it("no weights at all: MissingFileError naming every layout", async () => {
    const dir = join(tmp, "empty");
    const { mkdirSync } = await import("node:fs");
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(modelDir("tiny-t5-f16"), "config.json"), join(dir, "config.json"));
    const err = await T5ForConditionalGeneration.fromPretrained(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MissingFileError);
    expect((err as Error).message).toMatch(/model\.safetensors.*pytorch_model\.bin/);
  });
});
