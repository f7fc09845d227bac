/**
 * The fuzz corpora of the load and generate targets through the public API in WebAssembly: every file of
 * crates/t5-fuzz/corpus/<target>/ (libFuzzer's minimised inputs, edge cases and every crash found; the native fuzz
 * targets replay them in `cargo test -p t5-fuzz`) loads or is a typed error from `fromPretrained` here too, where
 * `usize` is 32 bits and a trap would be an `EngineFailureError`, and a good model loads afterwards; every
 * generate_options object gives ids or a typed error from `generate()`.
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

/**
 * Runs `call` for corpus file `what`, counting its outcome in `codes` (`ok`, or the error's code): an error must be
 * typed and not a trap (`EngineFailureError`). Returns the error, if any.
 */
async function outcome(codes: Map<string, number>, what: string, ok: string, call: () => Promise<void>): Promise<T5WebError | undefined> {
  let code = ok;
  let err: T5WebError | undefined;
  try {
    await call();
  } catch (e) {
    expect(e, `${what}: ${String(e)}`).toBeInstanceOf(T5WebError);
    expect(e, `${what}: ${String(e)}`).not.toBeInstanceOf(EngineFailureError);
    err = e as T5WebError;
    code = err.code;
  }
  codes.set(code, (codes.get(code) ?? 0) + 1);
  return err;
}

describe.each(FORMATS)("the $target fuzz corpus as $file $options", ({ target, file, options }) => {
  it("every file loads or is a typed error, never a trap; a good model loads afterwards", async () => {
    const dir = join(CORPUS, target);
    const names = readdirSync(dir).filter((f) => f !== "README.md");
    expect(names.filter((f) => f.startsWith("min-")).length).toBeGreaterThan(50);
    const codes = new Map<string, number>();
    for (const f of names) {
      await outcome(codes, `${target}/${f}`, "loaded", async () => (await T5ForConditionalGeneration.fromPretrained(filesWith(file, readFileSync(join(dir, f))), options)).dispose());
    }
    // most of a fuzz corpus is broken files: typed errors of the load's kinds
    expect([...codes.keys()].some((c) => ["BadWeights", "BadConfig", "BadJson", "MissingTensor"].includes(c))).toBe(true);
    const m = await T5ForConditionalGeneration.fromPretrained(modelDir("tiny-t5"));
    expect((await m.generate({ input_ids: [[5, 6, 1]] }, { max_new_tokens: 3 })).length).toBe(1);
    m.dispose();
  }, 300_000);
});

describe("the generate_options fuzz corpus as generate() options", () => {
  // each JSON object of crates/t5-fuzz/corpus/generate_options as the options of one generate on tiny-t5, stopped
  // after 100 ms by an AbortSignal where it runs long: it returns ids or is a typed error (an option that names
  // itself, a budget, the abort), never a trap
  it("every object generates or is a typed error, never a trap", async () => {
    const dir = join(CORPUS, "generate_options");
    const m = await T5ForConditionalGeneration.fromPretrained(modelDir("tiny-t5"));
    const codes = new Map<string, number>();
    let objects = 0;
    for (const f of readdirSync(dir)) {
      let options: unknown;
      try {
        options = JSON.parse(readFileSync(join(dir, f), "utf8"));
      } catch {
        continue; // not JSON here either (the target returns at once)
      }
      if (options === null || typeof options !== "object" || Array.isArray(options)) continue;
      objects++;
      const given = options as object;
      const err = await outcome(codes, f, "generated", async () => {
        const ids = await m.generate({ input_ids: [[37, 9, 5, 1]] }, { ...given, signal: AbortSignal.timeout(100) });
        expect(ids.length, f).toBeGreaterThan(0);
      });
      // a bad option is named, in the engine's words (not a JS engine's internals)
      if (err?.code === "BadConfig") {
        expect(/generation options? /.test(err.message) || Object.keys(given).some((k) => err.message.includes(k)), `${f}: ${err.message}`).toBe(true);
        expect(err.message, f).not.toMatch(/TypeError|Reflect|undefined|Error: /);
      }
    }
    expect(objects).toBeGreaterThan(100);
    expect(codes.get("generated") ?? 0).toBeGreaterThan(0);
    expect((await m.generate({ input_ids: [[37, 9, 5, 1]] }, { max_new_tokens: 3 })).length).toBe(1);
    m.dispose();
  }, 300_000);
});
