/**
 * Hostile weight files through the public API (issue 15): every file of
 * crates/t5-core/tests/corpus/<format>/ (named `<error code>-<what>`) is a typed error from
 * `fromPretrained`, never a trap, and the library still loads a good model afterwards. The `max_memory`
 * load option bounds the whole load (files, copies, the built weights) → `ModelTooLargeError`.
 */

import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BadConfigError, ModelTooLargeError, T5ForConditionalGeneration, T5WebError } from "../ts/src/index.js";
import { FIXTURES, modelDir } from "./helpers/oracle.js";

const CORPUS = join(FIXTURES, "../../crates/t5-core/tests/corpus");
const tmp = mkdtempSync(join(tmpdir(), "t5-web-hostile-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function loadError(load: () => Promise<{ dispose(): void }>): Promise<T5WebError> {
  try {
    const m = await load();
    m.dispose();
  } catch (e) {
    expect(e).toBeInstanceOf(T5WebError);
    return e as T5WebError;
  }
  throw new Error("loaded");
}

describe("hostile weight files", () => {
  it("every GGUF corpus file is its typed error", async () => {
    const dir = join(CORPUS, "gguf");
    const files = readdirSync(dir);
    expect(files.length).toBeGreaterThanOrEqual(6);
    for (const f of files) {
      const e = await loadError(() => T5ForConditionalGeneration.fromPretrained(join(dir, f)));
      expect(e.code, `${f}: ${e.message}`).toBe(f.split("-")[0]);
    }
    // the t5.block_count that wrapped to 1 on wasm32 names the key
    const e = await loadError(() => T5ForConditionalGeneration.fromPretrained(join(dir, "BadConfig-block_count_2pow32_plus_1.gguf")));
    expect(e).toBeInstanceOf(BadConfigError);
    expect(e.message).toContain("block_count");
  });

  it("an index of 20 stride-0 pytorch shards is refused without growing memory", async () => {
    const shard = readFileSync(join(CORPUS, "pickle", "BadWeights-stride0_view_expands_one_float_to_64MiB.bin"));
    const d = join(tmp, "stride0");
    rmSync(d, { recursive: true, force: true });
    mkdirSync(d);
    copyFileSync(join(modelDir("tiny-t5"), "config.json"), join(d, "config.json"));
    const map: Record<string, string> = {};
    for (let i = 0; i < 20; i++) {
      const name = `pytorch_model-${String(i + 1).padStart(5, "0")}-of-00020.bin`;
      writeFileSync(join(d, name), shard);
      map[`t${i}`] = name;
    }
    writeFileSync(join(d, "pytorch_model.bin.index.json"), JSON.stringify({ weight_map: map }));
    const e = await loadError(() => T5ForConditionalGeneration.fromPretrained(d));
    expect(e.code, e.message).toBe("BadWeights");
    expect(e.message).toContain("expand");
  });

  it("max_memory bounds the load: ModelTooLargeError, then the same model loads without it", async () => {
    const dir = modelDir("tiny-t5");
    for (const stream_weights of [true, false]) {
      const e = await loadError(() => T5ForConditionalGeneration.fromPretrained(dir, { max_memory: 66 << 20, stream_weights }));
      expect(e, e.message).toBeInstanceOf(ModelTooLargeError);
    }
    const gguf = join(FIXTURES, "gguf", "tiny-t5-q4_0.gguf");
    expect(await loadError(() => T5ForConditionalGeneration.fromPretrained(gguf, { max_memory: 64 << 20 }))).toBeInstanceOf(ModelTooLargeError);
    const bad = await loadError(() => T5ForConditionalGeneration.fromPretrained(dir, { max_memory: Number.NaN }));
    expect(bad.code).toBe("BadInput");
    const lm = await T5ForConditionalGeneration.fromPretrained(gguf);
    lm.dispose();
    const lm2 = await T5ForConditionalGeneration.fromPretrained(dir, { max_memory: 1 << 30 });
    lm2.dispose();
  });
});
