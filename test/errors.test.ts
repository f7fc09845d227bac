/**
 * Typed errors: every failure surfaces as a T5WebError subclass, and bad input never kills the
 * wasm instance (the release build aborts on panic, so the engine must reject it before panicking).
 */

import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AutoModelForSeq2SeqLM,
  AutoTokenizer,
  BadConfigError,
  BadInputError,
  BadJsonError,
  BadWeightsError,
  DisposedError,
  initWasm,
  MissingFileError,
  MissingTensorError,
  ShapeMismatchError,
  T5Config,
  T5EncoderModel,
  T5ForConditionalGeneration,
  T5Model,
  T5WebError,
  TokenizerError,
  UnsupportedActivationError,
  pipeline,
} from "../ts/src/index.js";
import { loadOracle, modelDir } from "./helpers/oracle.js";
import { rawTensors, writeSafetensors } from "./helpers/safetensors.js";

const TINY = modelDir("tiny-t5");
const SHARDED = modelDir("tiny-t5-v1_1-sharded");
let tmp: string;

/** A copy of a fixture model directory, with `edit` applied. */
function variant(name: string, from: string, edit: (dir: string) => void): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  for (const f of readdirSync(from)) copyFileSync(join(from, f), join(dir, f));
  edit(dir);
  return dir;
}

function editConfig(dir: string, change: (c: Record<string, unknown>) => void): void {
  const c = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
  change(c);
  writeFileSync(join(dir, "config.json"), JSON.stringify(c));
}

/** Rewrite model.safetensors through `edit` on its tensor list. */
function editWeights(dir: string, edit: (t: ReturnType<typeof rawTensors>) => ReturnType<typeof rawTensors>): void {
  const f = join(dir, "model.safetensors");
  writeFileSync(f, writeSafetensors(edit(rawTensors(new Uint8Array(readFileSync(f)))), { format: "pt" }));
}

async function rejects<E extends T5WebError>(p: Promise<unknown>, cls: new (...a: never[]) => E, message?: RegExp): Promise<E> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, "expected a rejection").toBeInstanceOf(cls);
  expect(e).toBeInstanceOf(T5WebError);
  if (message) expect((e as Error).message).toMatch(message);
  return e as E;
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "t5-web-errors-"));
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe("loading errors", () => {
  it("missing directory", async () => {
    const e = await rejects(AutoModelForSeq2SeqLM.fromPretrained(join(tmp, "does-not-exist")), MissingFileError, /model directory not found/);
    expect(e.code).toBe("MissingFile");
    expect(e.name).toBe("MissingFileError");
    await rejects(AutoTokenizer.fromPretrained(join(tmp, "does-not-exist")), MissingFileError);
  });

  it("missing config.json", async () => {
    const dir = variant("no-config", TINY, (d) => rmSync(join(d, "config.json")));
    await rejects(T5ForConditionalGeneration.fromPretrained(dir), MissingFileError, /config\.json not found/);
  });

  it("missing weights", async () => {
    const dir = variant("no-weights", TINY, (d) => rmSync(join(d, "model.safetensors")));
    await rejects(T5ForConditionalGeneration.fromPretrained(dir), MissingFileError, /neither model\.safetensors nor model\.safetensors\.index\.json/);
  });

  it("missing shard of a sharded checkpoint", async () => {
    const dir = variant("no-shard", SHARDED, (d) => rmSync(join(d, "model-00002-of-00003.safetensors")));
    const e = await rejects(T5ForConditionalGeneration.fromPretrained(dir), MissingFileError, /model-00002-of-00003\.safetensors not found/);
    expect(e.path).toContain("model-00002-of-00003.safetensors");
  });

  it("missing tokenizer.json (and no spiece.model to convert)", async () => {
    const dir = variant("no-tokenizer", TINY, (d) => {
      rmSync(join(d, "tokenizer.json"));
      rmSync(join(d, "spiece.model"));
    });
    await rejects(AutoTokenizer.fromPretrained(dir), MissingFileError, /tokenizer\.json/);
  });

  it("config.json that is not JSON", async () => {
    const dir = variant("bad-json", TINY, (d) => writeFileSync(join(d, "config.json"), '{"d_model": 32,'));
    const e = await rejects(T5ForConditionalGeneration.fromPretrained(dir), BadJsonError, /config\.json is not valid JSON/);
    expect(e.code).toBe("BadJson");
    await rejects(T5Config.fromPretrained(dir), BadJsonError);
  });

  it("generation_config.json that is not JSON", async () => {
    const dir = variant("bad-gen-json", TINY, (d) => writeFileSync(join(d, "generation_config.json"), "nope"));
    await rejects(T5ForConditionalGeneration.fromPretrained(dir), BadJsonError, /generation_config\.json/);
  });

  it("config.json with a field of the wrong type", async () => {
    const dir = variant("bad-config", TINY, (d) => editConfig(d, (c) => (c["d_model"] = "wide")));
    const e = await rejects(T5ForConditionalGeneration.fromPretrained(dir), BadConfigError, /invalid config/);
    expect(e.code).toBe("BadConfig");
  });

  it("unknown feed_forward_proj", async () => {
    const dir = variant("bad-act", TINY, (d) => editConfig(d, (c) => (c["feed_forward_proj"] = "gated-swoosh")));
    const e = await rejects(T5ForConditionalGeneration.fromPretrained(dir), UnsupportedActivationError, /gated-swoosh/);
    expect(e).toBeInstanceOf(BadConfigError);
    expect(e.code).toBe("UnsupportedActivation");
    await rejects(T5Config.fromPretrained(dir), UnsupportedActivationError);
  });

  it("truncated safetensors file", async () => {
    const dir = variant("truncated", TINY, (d) => {
      const f = join(d, "model.safetensors");
      const b = readFileSync(f);
      writeFileSync(f, b.subarray(0, Math.floor(b.length / 2)));
    });
    const e = await rejects(T5ForConditionalGeneration.fromPretrained(dir), BadWeightsError, /model\.safetensors/);
    expect(e.code).toBe("BadWeights");
  });

  it("safetensors file cut inside its header", async () => {
    const dir = variant("truncated-header", TINY, (d) => writeFileSync(join(d, "model.safetensors"), readFileSync(join(d, "model.safetensors")).subarray(0, 100)));
    await rejects(T5EncoderModel.fromPretrained(dir), BadWeightsError);
  });

  it("a tensor of the wrong shape", async () => {
    const name = "encoder.block.1.layer.0.SelfAttention.q.weight";
    // q is [inner, d_model] = [32, 32]: store it as [31, 32]
    const dir = variant("wrong-shape", TINY, (d) =>
      editWeights(d, (ts) =>
        ts.map((t) => (t.name === name ? { ...t, shape: [t.shape[0]! - 1, t.shape[1]!], bytes: t.bytes.subarray(0, (t.shape[0]! - 1) * t.shape[1]! * 4) } : t)),
      ),
    );
    const e = await rejects(T5ForConditionalGeneration.fromPretrained(dir), ShapeMismatchError, new RegExp(name.replace(/\./g, "\\.")));
    expect(e).toBeInstanceOf(BadWeightsError);
    expect(e.code).toBe("ShapeMismatch");
  });

  it("a missing tensor", async () => {
    const name = "decoder.final_layer_norm.weight";
    const dir = variant("missing-tensor", TINY, (d) => editWeights(d, (ts) => ts.filter((t) => t.name !== name)));
    await rejects(T5Model.fromPretrained(dir), MissingTensorError, /decoder\.final_layer_norm\.weight/);
    // the encoder alone does not need it
    const enc = await T5EncoderModel.fromPretrained(dir);
    enc.dispose();
  });

  it("a shard index pointing outside its folder", async () => {
    const dir = variant("evil-index", SHARDED, (d) => {
      const f = join(d, "model.safetensors.index.json");
      const idx = JSON.parse(readFileSync(f, "utf8")) as { weight_map: Record<string, string> };
      const first = Object.keys(idx.weight_map)[0]!;
      idx.weight_map[first] = "../tiny-t5/model.safetensors";
      writeFileSync(f, JSON.stringify(idx));
    });
    await rejects(T5ForConditionalGeneration.fromPretrained(dir), BadWeightsError, /not a file next to it/);
  });

  it("a tokenizer.json that is not a tokenizer", async () => {
    const dir = variant("bad-tokenizer", TINY, (d) => writeFileSync(join(d, "tokenizer.json"), '{"hello": 1}'));
    const e = await rejects(AutoTokenizer.fromPretrained(dir), TokenizerError);
    expect(e.code).toBe("Tokenizer");
  });

  it("pipeline with an unknown task", async () => {
    await rejects(pipeline("fill-mask" as "text2text-generation", TINY), BadInputError, /unsupported pipeline task/);
  });
});

describe("input errors", () => {
  let lm: T5ForConditionalGeneration;
  const o = loadOracle("tiny-t5").json;

  beforeAll(async () => {
    lm = await T5ForConditionalGeneration.fromPretrained(TINY);
  });
  afterAll(() => lm.dispose());

  it("token id out of vocab", () => {
    expect(() => lm.forwardSync({ input_ids: [[5, 32128, 1]], decoder_input_ids: [[0]] })).toThrow(BadInputError);
    expect(() => lm.forwardSync({ input_ids: [[5, 32128, 1]], decoder_input_ids: [[0]] })).toThrow(/outside the vocabulary/);
    expect(() => lm.forwardSync({ input_ids: [[5, 6, 1]], decoder_input_ids: [[0, 40000]] })).toThrow(BadInputError);
    expect(() => lm.forwardSync({ input_ids: [[5, 6, 1]], labels: [[40000, 1]] })).toThrow(BadInputError);
    expect(() => lm.generateSync([[5, 99999, 1]], { max_new_tokens: 2 })).toThrow(BadInputError);
    expect(() => lm.generateSync([[5, 6, 1]], { max_new_tokens: 2, decoder_start_token_id: 99999 })).toThrow(BadInputError);
  });

  it("ids that are not ids", () => {
    expect(() => lm.forwardSync({ input_ids: [[5, -1, 1]], decoder_input_ids: [[0]] })).toThrow(BadInputError);
    expect(() => lm.forwardSync({ input_ids: [[5, 1.5, 1]], decoder_input_ids: [[0]] })).toThrow(BadInputError);
    expect(() => lm.forwardSync({ input_ids: [[5, 6, 1]], labels: [[-5, 1]] })).toThrow(BadInputError);
    expect(() => lm.forwardSync({ input_ids: [[5, 6, 1]], attention_mask: [[1, 2, 1]], decoder_input_ids: [[0]] })).toThrow(BadInputError);
  });

  it("shapes that do not fit", () => {
    expect(() => lm.forwardSync({ input_ids: [[5, 6], [7]], decoder_input_ids: [[0], [0]] })).toThrow(/different lengths/);
    expect(() => lm.forwardSync({ input_ids: [[5, 6, 1]], attention_mask: [[1, 1]], decoder_input_ids: [[0]] })).toThrow(BadInputError);
    expect(() => lm.forwardSync({ input_ids: [[5, 6, 1]], decoder_input_ids: [[0], [0]] })).toThrow(BadInputError);
    expect(() => lm.forwardSync({ input_ids: [[5, 6, 1]], decoder_input_ids: [[0, 3]], labels: [[3]] })).toThrow(BadInputError);
    expect(() => lm.forwardSync({ input_ids: [[5, 6, 1]], decoder_input_ids: [[0, 3]], decoder_attention_mask: [[1]] })).toThrow(BadInputError);
    expect(() => lm.forwardSync({ input_ids: [[]], decoder_input_ids: [[0]] })).toThrow(/empty/);
    expect(() => lm.forwardSync({ input_ids: [[5, 6, 1]], labels: [[]] })).toThrow(/empty/);
    expect(() => lm.forwardSync({ input_ids: [[5, 6, 1]] })).toThrow(/decoder_input_ids or labels/);
    expect(() => lm.generateSync({ input_ids: { data: [1, 2, 3], dims: [2, 2] } })).toThrow(BadInputError);
  });

  it("generation options", () => {
    expect(() => lm.generateSync([[5, 6, 1]], { max_new_token: 3 } as never)).toThrow(BadConfigError);
    expect(() => lm.generateSync([[5, 6, 1]], { num_beams: 0 })).toThrow(BadConfigError);
    expect(() => lm.generateSync([[5, 6, 1]], { max_new_tokens: -1 })).toThrow(BadConfigError);
    // an id where bad_words_ids wants a list of ids (transformers' list of lists), and a word that is no id
    expect(() => lm.generateSync([[5, 6, 1]], { bad_words_ids: [6737, 95] as never })).toThrow(
      "invalid config: generation option bad_words_ids[0] must be a list of token ids (bad_words_ids is a list of lists, as in transformers), got 6737",
    );
    expect(() => lm.generateSync([[5, 6, 1]], { bad_words_ids: [[5], "x"] as never })).toThrow("invalid config: generation option bad_words_ids: must be a list of lists of token ids");
    expect(() => lm.generateSync([[5, 6, 1]], { eos_token_id: "1" as never })).toThrow("invalid config: generation option eos_token_id: must be a token id or a list of token ids");
    expect(() => lm.generateSync([[5, 6, 1]], { bad_words_ids: 9 as never })).toThrow("invalid config: generation option bad_words_ids: must be a list of lists of token ids");
    expect(() => lm.generateSync([[5, 6, 1]], { max_new_tokens: true as never })).toThrow("invalid config: generation option max_new_tokens: invalid type: boolean `true`, expected f64");
  });

  it("the engine survives bad calls made straight to the wasm bindings", async () => {
    const w = await initWasm();
    const b = new w.WasmModelBuilder(readFileSync(join(TINY, "config.json"), "utf8"));
    b.addShard("model.safetensors", new Uint8Array(readFileSync(join(TINY, "model.safetensors"))));
    const m = b.build("seq2seq-lm");
    b.free();
    const bad: [string, () => unknown][] = [
      ["ids/shape mismatch", () => m.forward(new Uint32Array(5), undefined, 2, 3, new Uint32Array([0, 0]))],
      ["zero batch", () => m.encode(new Uint32Array(0), undefined, 0, 3)],
      ["huge shape", () => m.encode(new Uint32Array(4), undefined, 0x10000, 0x10000)],
      ["empty labels", () => m.forward(new Uint32Array([5, 1]), undefined, 1, 2, undefined, new Int32Array(0))],
      ["labels vs decoder ids", () => m.forward(new Uint32Array([5, 1]), undefined, 1, 2, new Uint32Array([0, 5]), new Int32Array([5]))],
      ["decoder mask length", () => m.forward(new Uint32Array([5, 1]), undefined, 1, 2, new Uint32Array([0, 5]), undefined, new Uint32Array([1]))],
      ["decoder mask values", () => m.forward(new Uint32Array([5, 1]), undefined, 1, 2, new Uint32Array([0, 5]), undefined, new Uint32Array([1, 7]))],
      ["mask length", () => m.generate(new Uint32Array([5, 1]), new Uint32Array([1]), 1, 2, undefined)],
      ["bad options", () => m.generate(new Uint32Array([5, 1]), undefined, 1, 2, [1])],
      ["NaN option", () => m.generate(new Uint32Array([5, 1]), undefined, 1, 2, { max_new_tokens: NaN })],
      ["unknown option", () => m.generate(new Uint32Array([5, 1]), undefined, 1, 2, { max_new_token: 3 })],
      ["bad pad id", () => m.generate(new Uint32Array([5, 1]), undefined, 1, 2, { pad_token_id: 4000000 })],
      ["bad kind", () => new w.WasmModelBuilder("{}").build("decoder")],
      ["no shards", () => new w.WasmModelBuilder("{}").build("encoder")],
      ["garbage shard", () => new w.WasmModelBuilder("{}").addShard("x", new Uint8Array([1, 2, 3]))],
    ];
    for (const [what, f] of bad) {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err, what).toBeInstanceOf(Error);
      expect(["BadInput", "BadConfig", "BadWeights"], `${what}: ${(err as Error).name}: ${(err as Error).message}`).toContain((err as Error).name);
    }
    // still alive and correct
    const out = m.generate(Uint32Array.from(o.input_ids[0]!), Uint32Array.from(o.attention_mask[0]!), 1, o.input_ids[0]!.length, { max_new_tokens: 12 });
    expect(Array.from(out.sequences)).toEqual(o.greedy.sequences[0]);
    out.free();
    m.free();
  });
});

describe("disposed models", () => {
  it.each([
    ["T5ForConditionalGeneration", () => T5ForConditionalGeneration.fromPretrained(TINY)],
    ["T5Model", () => T5Model.fromPretrained(TINY)],
    ["T5EncoderModel", () => T5EncoderModel.fromPretrained(TINY)],
  ] as const)("%s throws DisposedError after dispose()", async (_n, load) => {
    const m = await load();
    expect(m.disposed).toBe(false);
    m.dispose();
    m.dispose(); // idempotent
    expect(m.disposed).toBe(true);
    const e = (() => {
      try {
        m.forwardSync({ input_ids: [[5, 1]], decoder_input_ids: [[0]] });
      } catch (err) {
        return err;
      }
    })();
    expect(e).toBeInstanceOf(DisposedError);
    expect((e as DisposedError).code).toBe("Disposed");
    expect(() => m.generation_config).toThrow(DisposedError);
  });

  it("generate after dispose", async () => {
    const m = await T5ForConditionalGeneration.fromPretrained(TINY);
    m.dispose();
    expect(() => m.generateSync([[5, 1]])).toThrow(DisposedError);
  });

  it("pipeline after dispose", async () => {
    const pipe = await pipeline("text2text-generation", TINY);
    expect((await pipe("a", { max_new_tokens: 2 })).length).toBe(1);
    pipe.dispose();
    expect(pipe.model.disposed).toBe(true);
    expect(pipe.tokenizer.disposed).toBe(true);
    await expect(pipe("a")).rejects.toBeInstanceOf(DisposedError);
  });
});
