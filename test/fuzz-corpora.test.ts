/**
 * The weight-file fuzz corpora through the public API in WebAssembly: every file of crates/t5-fuzz/corpus/<format>/
 * (libFuzzer's minimised inputs, edge cases and every crash found; the native fuzz targets replay them in
 * `cargo test -p t5-fuzz`) loads or is a typed error from `fromPretrained` here too, where `usize` is 32 bits and a
 * trap would be an `EngineFailureError`; and a good model loads afterwards.
 */

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EngineFailureError, T5ForConditionalGeneration, T5WebError, type ModelLoadOptions } from "../ts/src/index.js";
import { FIXTURES, modelDir } from "./helpers/oracle.js";

const CORPUS = join(FIXTURES, "../../crates/t5-fuzz/corpus");
const tiny = (name: string) => readFileSync(join(modelDir("tiny-t5"), name));
const config = tiny("config.json");
const weights = tiny("model.safetensors");

/** How each target's bytes reach a load: the file they stand for, beside tiny-t5's config.json and weights. */
const FORMATS = [
  { target: "safetensors", file: "model.safetensors", options: {} },
  { target: "safetensors", file: "model.safetensors", options: { stream_weights: false } },
  { target: "pickle", file: "pytorch_model.bin", options: {} },
  { target: "gguf", file: "model.gguf", options: {} },
  { target: "config", file: "config.json", options: {} },
  { target: "config", file: "generation_config.json", options: {} },
] as const satisfies readonly { target: string; file: string; options: ModelLoadOptions }[];

/** `bytes` as `file` in a load's files: a .gguf alone, weights beside the config, configs beside the weights. */
function filesWith(file: string, bytes: Uint8Array): Record<string, Uint8Array> {
  if (file === "model.gguf") return { [file]: bytes };
  if (file.endsWith(".json")) return { "config.json": config, "model.safetensors": weights, [file]: bytes };
  return { "config.json": config, [file]: bytes };
}

describe.each(FORMATS)("the $target fuzz corpus as $file $options", ({ target, file, options }) => {
  it("every file loads or is a typed error, never a trap; a good model loads afterwards", async () => {
    const dir = join(CORPUS, target);
    const names = readdirSync(dir).filter((f) => f !== "README.md");
    expect(names.filter((f) => f.startsWith("min-")).length).toBeGreaterThan(50);
    const codes = new Map<string, number>();
    for (const f of names) {
      try {
        (await T5ForConditionalGeneration.fromPretrained(filesWith(file, readFileSync(join(dir, f))), options)).dispose();
        codes.set("loaded", (codes.get("loaded") ?? 0) + 1);
      } catch (e) {
        expect(e, `${target}/${f}: ${String(e)}`).toBeInstanceOf(T5WebError);
        expect(e, `${target}/${f}: ${String(e)}`).not.toBeInstanceOf(EngineFailureError);
        const code = (e as T5WebError).code;
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
    }
    // most of a fuzz corpus is broken files: typed errors of the load's kinds
    expect([...codes.keys()].some((c) => ["BadWeights", "BadConfig", "BadJson", "MissingTensor"].includes(c))).toBe(true);
    const m = await T5ForConditionalGeneration.fromPretrained(modelDir("tiny-t5"));
    expect((await m.generate({ input_ids: [[5, 6, 1]] }, { max_new_tokens: 3 })).length).toBe(1);
    m.dispose();
  }, 300_000);
});
