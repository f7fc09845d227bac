/**
 * Streaming weight loading (weights.rs `ShardStream`, files.ts `stream`): a t5-shaped fp32 checkpoint of
 * 183 MB (random weights, written here) loads as q8 / q4 from a directory and from a file-backed Blob while
 * the WebAssembly memory (its `buffer.byteLength`, which never shrinks: the high-water mark) grows by well
 * under the file's size, with logits identical to the whole-file load (which needs more memory than the
 * file). A model too large for one WebAssembly memory is a ModelTooLargeError said from the config (at the
 * first file's header) or from a safetensors header, before the weights are read.
 *
 * This file runs in its own worker (vitest pool "forks"), so the engine's memory starts fresh here.
 */

import { mkdtempSync, openAsBlob, readFileSync, rmSync, statSync, writeFileSync, openSync, writeSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { initWasm, MissingFileError, ModelTooLargeError, T5ForConditionalGeneration, wasmMemory } from "../ts/src/index.js";
import type { ProgressInfo } from "../ts/src/files.js";
import { MemorySource } from "../ts/src/sources/memory.js";
import { Reporter } from "../ts/src/sources/source.js";
import { FIXTURES } from "./helpers/oracle.js";

const CONFIG = {
  architectures: ["T5ForConditionalGeneration"],
  d_model: 512,
  d_ff: 2048,
  d_kv: 64,
  num_heads: 8,
  num_layers: 4,
  num_decoder_layers: 4,
  vocab_size: 32128,
  feed_forward_proj: "relu",
  relative_attention_num_buckets: 32,
  relative_attention_max_distance: 128,
  layer_norm_epsilon: 1e-6,
  tie_word_embeddings: true,
  decoder_start_token_id: 0,
  eos_token_id: 1,
  pad_token_id: 0,
  model_type: "t5",
};

/** The tensors of a T5 (v1, tied embeddings) with `CONFIG`'s shapes, in transformers' names. */
function tensors(): [string, number[], number][] {
  const { d_model: d, d_ff: ff, num_heads: h, vocab_size: v } = CONFIG;
  const inner = CONFIG.d_kv * h;
  const out: [string, number[], number][] = [["shared.weight", [v, d], 0.5]];
  const attn = (p: string) => ["q", "k", "v", "o"].forEach((m) => out.push([`${p}.${m}.weight`, m === "o" ? [d, inner] : [inner, d], 0.05]));
  for (const stack of ["encoder", "decoder"]) {
    for (let i = 0; i < CONFIG.num_layers; i++) {
      const p = `${stack}.block.${i}.layer`;
      attn(`${p}.0.SelfAttention`);
      if (i === 0) out.push([`${p}.0.SelfAttention.relative_attention_bias.weight`, [32, h], 0.5]);
      out.push([`${p}.0.layer_norm.weight`, [d], -1]);
      let ffl = 1;
      if (stack === "decoder") {
        attn(`${p}.1.EncDecAttention`);
        out.push([`${p}.1.layer_norm.weight`, [d], -1]);
        ffl = 2;
      }
      out.push([`${p}.${ffl}.DenseReluDense.wi.weight`, [ff, d], 0.05]);
      out.push([`${p}.${ffl}.DenseReluDense.wo.weight`, [d, ff], 0.03]);
      out.push([`${p}.${ffl}.layer_norm.weight`, [d], -1]);
    }
    out.push([`${stack}.final_layer_norm.weight`, [d], -1]);
  }
  return out;
}

/** Write config.json and a random fp32 model.safetensors (one tensor in memory at a time); returns the file size. */
function writeCheckpoint(dir: string): number {
  writeFileSync(join(dir, "config.json"), JSON.stringify(CONFIG));
  const list = tensors();
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let at = 0;
  for (const [name, shape] of list) {
    const n = shape.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: "F32", shape, data_offsets: [at, at + n] };
    at += n;
  }
  let text = JSON.stringify(header);
  text += " ".repeat((8 - (text.length % 8)) % 8);
  const fd = openSync(join(dir, "model.safetensors"), "w");
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(text.length), true);
  writeSync(fd, len);
  writeSync(fd, new TextEncoder().encode(text));
  let s = 0x9e3779b9;
  for (const [, shape, scale] of list) {
    const a = new Float32Array(shape.reduce((x, y) => x * y, 1));
    for (let i = 0; i < a.length; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      const u = (s >>> 0) / 4294967296 - 0.5;
      a[i] = scale < 0 ? 1 + 0.2 * u : 2 * scale * u;
    }
    writeSync(fd, new Uint8Array(a.buffer));
  }
  closeSync(fd);
  return statSync(join(dir, "model.safetensors")).size;
}

let dir: string;
let fileSize: number;
const input = { input_ids: [[37, 1000, 5, 31999, 8, 1], [13, 7, 4000, 1, 0, 0]], attention_mask: [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], decoder_input_ids: [[0, 5, 9], [0, 11, 3]] };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "t5-web-stream-"));
  fileSize = writeCheckpoint(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it("q8 and q4 stream in with the wasm memory high-water mark well below the file size, logits as the whole-file load", { timeout: 180_000 }, async () => {
  await initWasm();
  const mem = wasmMemory()!;
  const start = mem.buffer.byteLength;
  const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
  const events: ProgressInfo[] = [];

  const q8 = await T5ForConditionalGeneration.fromPretrained(dir, { dtype: "q8", progress_callback: (e) => events.push(e) });
  const afterQ8 = mem.buffer.byteLength;
  const q8Logits = q8.forwardSync(input).logits;
  q8.dispose();
  // the file arrived in 8 MiB reads, each reported
  const progress = events.filter((e) => e.status === "progress" && e.file === "model.safetensors");
  expect(progress.length).toBe(Math.ceil(fileSize / (8 << 20)));
  expect(progress.at(-1)).toMatchObject({ loaded: fileSize, total: fileSize, progress: 100 });

  // q4 from a file-backed Blob (as a browser upload): read slice by slice
  const files = new Map<string, Blob>([
    ["config.json", new Blob([readFileSync(join(dir, "config.json"))])],
    ["model.safetensors", await openAsBlob(join(dir, "model.safetensors"))],
  ]);
  const q4 = await T5ForConditionalGeneration.fromPretrained(files, { dtype: "q4" });
  const afterQ4 = mem.buffer.byteLength;
  const q4Logits = q4.forwardSync(input).logits;
  q4.dispose();

  const streamedPeak = mem.buffer.byteLength - start;
  console.log(
    `model.safetensors ${mib(fileSize)} fp32; wasm memory ${mib(start)} at start, +${mib(afterQ8 - start)} after the streamed q8 load, ` +
      `+${mib(afterQ4 - start)} after q4, +${mib(streamedPeak)} after both forwards`,
  );
  expect(afterQ8 - start).toBeLessThan(0.35 * fileSize);
  expect(streamedPeak).toBeLessThan(0.35 * fileSize);

  // the same models from whole files: identical logits, and the engine held the whole file
  const wholeQ8 = await T5ForConditionalGeneration.fromPretrained(dir, { dtype: "q8", stream_weights: false });
  const wholeQ8Logits = wholeQ8.forwardSync(input).logits;
  wholeQ8.dispose();
  const wholeQ4 = await T5ForConditionalGeneration.fromPretrained(dir, { dtype: "q4", stream_weights: false });
  const wholeQ4Logits = wholeQ4.forwardSync(input).logits;
  wholeQ4.dispose();
  const wholePeak = mem.buffer.byteLength - start;
  console.log(`whole-file loads: wasm memory +${mib(wholePeak)}`);
  expect(wholePeak).toBeGreaterThan(fileSize);
  expect(q8Logits.dims).toEqual([2, 3, CONFIG.vocab_size]);
  expect(Array.from(q8Logits.data)).toEqual(Array.from(wholeQ8Logits.data));
  expect(Array.from(q4Logits.data)).toEqual(Array.from(wholeQ4Logits.data));
  // q4 and q8 are different models of the same weights
  expect(Array.from(q4Logits.data)).not.toEqual(Array.from(q8Logits.data));
});

it("a checkpoint streamed from a URL is read into one reused buffer where the body is a byte stream, logits as from a directory", { timeout: 120_000 }, async () => {
  // the body a byte stream (as fetch's): pieces of an odd size that cut tensors and rows, written into the reader's
  // own buffer when it brings one (controller.byobRequest), enqueued otherwise
  const bytes = readFileSync(join(dir, "model.safetensors"));
  const piece = 300_001;
  let at = 0;
  const seen = { byob: 0, enqueued: 0, reused: 0, sizes: new Set<number>() };
  let last: Uint8Array | undefined; // the start of the last piece written
  const body = () =>
    new ReadableStream({
      type: "bytes",
      pull(c) {
        const req = c.byobRequest;
        if (req?.view) {
          const view = new Uint8Array(req.view.buffer, req.view.byteOffset, req.view.byteLength);
          const n = Math.min(piece, view.byteLength, bytes.byteLength - at);
          // the reader's buffer handed back: it still holds the last piece (a new buffer would be zeros)
          if (last && view.subarray(0, last.byteLength).every((b, i) => b === last![i])) seen.reused++;
          view.set(bytes.subarray(at, at + n));
          last = bytes.slice(at, at + Math.min(n, 64));
          seen.byob++;
          seen.sizes.add(view.byteLength);
          at += n;
          req.respond(n);
        } else {
          const n = Math.min(piece, bytes.byteLength - at);
          c.enqueue(bytes.slice(at, at + n));
          seen.enqueued++;
          at += n;
        }
        if (at === bytes.byteLength) {
          c.close();
          c.byobRequest?.respond(0);
        }
      },
    });
  const fetchFn = (async (u: URL | RequestInfo) => {
    const name = String(u).split("/").at(-1)!;
    if (name === "config.json") return new Response(readFileSync(join(dir, "config.json")));
    if (name === "model.safetensors") return new Response(body(), { headers: { "content-length": String(bytes.byteLength) } });
    return new Response("not found", { status: 404 });
  }) as typeof fetch;
  const fromUrl = await T5ForConditionalGeneration.fromPretrained("http://127.0.0.1:9/m/", { fetch: fetchFn, use_cache: false, dtype: "q4" });
  const urlLogits = fromUrl.forwardSync(input).logits;
  fromUrl.dispose();
  expect(at).toBe(bytes.byteLength);
  expect(seen.byob).toBe(Math.ceil(bytes.byteLength / piece));
  expect(seen.enqueued).toBe(0);
  // one buffer of 8 MiB (STREAM_PIECE_BYTES), offered again for every read after the first
  expect([...seen.sizes]).toEqual([8 << 20]);
  expect(seen.reused).toBe(seen.byob - 1);

  const fromDir = await T5ForConditionalGeneration.fromPretrained(dir, { dtype: "q4" });
  const dirLogits = fromDir.forwardSync(input).logits;
  fromDir.dispose();
  expect(Array.from(urlLogits.data)).toEqual(Array.from(dirLogits.data));
});

it("a Blob is read through its byte stream into one reused buffer, in 8 MiB pieces", async () => {
  const size = (20 << 20) + 5;
  const bytes = Uint8Array.from({ length: size }, (_, i) => (i * 2654435761) >>> 24);
  const events: ProgressInfo[] = [];
  const src = new MemorySource(new Map([["w.safetensors", new Blob([bytes])]]), new Reporter((e) => events.push(e), "(test)"));
  const st = (await src.stream("w.safetensors"))!;
  expect(st.size).toBe(size);
  const sizes: number[] = [];
  const copy = new Uint8Array(size);
  let at = 0;
  let prev: Uint8Array | undefined;
  let handedBack = 0;
  for await (const piece of st.chunks) {
    // the last piece's buffer went back to the stream for this read (a new buffer per piece would stay whole)
    if (prev && prev.byteLength === 0) handedBack++;
    sizes.push(piece.byteLength);
    copy.set(piece, at);
    at += piece.byteLength;
    prev = piece;
  }
  expect(sizes).toEqual([8 << 20, 8 << 20, (4 << 20) + 5]);
  expect(handedBack).toBe(2);
  expect(Buffer.compare(copy, bytes)).toBe(0);
  const progress = events.filter((e) => e.status === "progress").map((e) => (e as { loaded: number }).loaded);
  expect(progress).toEqual([8 << 20, 16 << 20, size]);
});

/** A safetensors file of f32 tensors (all ones). */
function safetensors(tensors: [string, number[]][]): Uint8Array<ArrayBuffer> {
  const header: Record<string, unknown> = {};
  let at = 0;
  for (const [name, shape] of tensors) {
    const n = shape.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: "F32", shape, data_offsets: [at, at + n] };
    at += n;
  }
  const text = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + text.byteLength + at);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.byteLength), true);
  out.set(text, 8);
  const data = new DataView(out.buffer, 8 + text.byteLength);
  for (let i = 0; i < at; i += 4) data.setFloat32(i, 1, true);
  return out;
}

it("a sharded model too large for one WebAssembly memory is a ModelTooLargeError from its config at the first shard's header", async () => {
  // t5-3b's shapes: 11.4 GB as fp32, in 9 shards; the first shard holds one small tensor
  const config = { ...CONFIG, d_model: 1024, d_ff: 16384, d_kv: 128, num_heads: 32, num_layers: 24, num_decoder_layers: 24 };
  const shards = Array.from({ length: 9 }, (_, i) => `model-0000${i + 1}-of-00009.safetensors`);
  const index = { metadata: { total_size: 11_400_000_000 }, weight_map: { "encoder.final_layer_norm.weight": shards[0], ...Object.fromEntries(shards.slice(1).map((f, i) => [`t${i}`, f])) } };
  const files = new Map<string, Blob>([
    ["config.json", new Blob([JSON.stringify(config)])],
    ["model.safetensors.index.json", new Blob([JSON.stringify(index)])],
    [shards[0]!, new Blob([safetensors([["encoder.final_layer_norm.weight", [1024]]])])],
  ]);
  const read: string[] = [];
  const progress_callback = (e: ProgressInfo) => e.status === "initiate" && read.push(e.file);
  // one wasm32 memory, whatever this machine's free memory (the default budget is the smaller of the two)
  const max_memory = 2 ** 32;
  const err = await T5ForConditionalGeneration.fromPretrained(files, { progress_callback, max_memory }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ModelTooLargeError);
  expect((err as Error).message).toMatch(/10\.\d\d GiB as fp32.*"q8" \(2\.\d\d GiB\) or "q4"/);
  expect(read.filter((f) => f.endsWith(".safetensors"))).toEqual([shards[0]]);
  // as q8 it fits: the load goes on to the second shard (absent here)
  const q8 = await T5ForConditionalGeneration.fromPretrained(files, { dtype: "q8", max_memory }).catch((e: unknown) => e);
  expect(q8).toBeInstanceOf(MissingFileError);
  expect((q8 as Error).message).toContain(shards[1]);
});

it("a safetensors header announcing more than one WebAssembly memory stops the download after the header", async () => {
  // a 6.3 GB fp32 file served over fetch: its header, then zeros produced only as they are read
  const v = 32128;
  const big = v * 24576 * 4;
  const headerText = JSON.stringify({
    "shared.weight": { dtype: "F32", shape: [v, 24576], data_offsets: [0, big] },
    "encoder.block.0.layer.1.DenseReluDense.wi.weight": { dtype: "F32", shape: [24576, v], data_offsets: [big, 2 * big] },
  });
  const head = new Uint8Array(8 + headerText.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(headerText.length), true);
  head.set(new TextEncoder().encode(headerText), 8);
  const total = head.byteLength + 2 * big;
  let served = 0;
  const body = () =>
    new ReadableStream<Uint8Array>({
      pull(c) {
        const piece = served === 0 ? head : new Uint8Array(1 << 20);
        served += piece.byteLength;
        c.enqueue(piece);
      },
    });
  const fetchFn = (async (u: URL | RequestInfo) => {
    const name = String(u).split("/").at(-1)!;
    if (name === "config.json") return new Response(readFileSync(`${FIXTURES}tiny-t5/config.json`));
    if (name === "model.safetensors") return new Response(body(), { headers: { "content-length": String(total) } });
    return new Response("not found", { status: 404 });
  }) as typeof fetch;
  const err = await T5ForConditionalGeneration.fromPretrained("http://127.0.0.1:9/m/", { fetch: fetchFn, use_cache: false }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ModelTooLargeError);
  expect((err as Error).message).toMatch(/model\.safetensors.*5\.\d\d GiB as fp32/);
  expect(served).toBeLessThan(16 << 20);
});
