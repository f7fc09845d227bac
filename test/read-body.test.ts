/**
 * Reading a whole response body (`readBody`, sources/url.ts): into one buffer of the announced size, straight from a
 * byte-stream body (a BYOB reader filling the rest of that buffer on each read) or piece by piece from any other body;
 * a body shorter than announced is a truncated download, a longer one (a hidden Content-Encoding) is read whole.
 */

import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { MissingFileError, ModelTooLargeError, T5ForConditionalGeneration } from "../ts/src/index.js";
import { FIXTURES } from "./helpers/oracle.js";
import { readBody } from "../ts/src/files.js";
import { allocate } from "../ts/src/sources/url.js";

const bytes = Uint8Array.from({ length: 1_000_003 }, (_, i) => (i * 7919) % 251);

/** A body serving `data` in pieces of `piece` bytes: a byte stream (recording each buffer the reader offers) or a plain one. */
function body(data: Uint8Array, piece: number, kind: "bytes" | "plain", offered: number[] = []): ReadableStream<Uint8Array> {
  let at = 0;
  if (kind === "plain") {
    return new ReadableStream<Uint8Array>({
      pull(c) {
        if (at === data.byteLength) return c.close();
        const n = Math.min(piece, data.byteLength - at);
        c.enqueue(data.slice(at, at + n));
        at += n;
      },
    });
  }
  return new ReadableStream({
    type: "bytes",
    pull(c) {
      const req = c.byobRequest;
      if (!req?.view) throw new Error("the reader brought no buffer");
      if (at === data.byteLength) {
        c.close();
        req.respond(0);
        return;
      }
      offered.push(req.view.byteLength);
      const n = Math.min(piece, req.view.byteLength, data.byteLength - at);
      new Uint8Array(req.view.buffer, req.view.byteOffset, n).set(data.subarray(at, at + n));
      at += n;
      req.respond(n);
    },
  });
}

/** Byte-for-byte equality (vitest's deep equality walks a million elements slowly). */
const same = (a: Uint8Array, b: Uint8Array) => a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;

const response = (b: ReadableStream<Uint8Array>, length: number) => new Response(b, { headers: { "content-length": String(length) } });

describe.each(["bytes", "plain"] as const)("readBody, %s body", (kind) => {
  it("reads the announced size whole, reporting progress up to it", async () => {
    const offered: number[] = [];
    const progress: [number, number][] = [];
    const out = await readBody(response(body(bytes, 65_537, kind, offered), bytes.byteLength), (l, t) => progress.push([l, t]), "u");
    expect(same(out, bytes)).toBe(true);
    expect(progress.at(-1)).toEqual([bytes.byteLength, bytes.byteLength]);
    expect(progress.length).toBe(Math.ceil(bytes.byteLength / 65_537));
    if (kind === "bytes") {
      // each read offered the rest of one buffer of the file's size (then one more read found the end)
      const rest = Array.from({ length: progress.length }, (_, i) => bytes.byteLength - i * 65_537);
      expect(offered).toEqual(rest);
    }
  });

  it("a body shorter than announced is a truncated download", async () => {
    const err = await readBody(response(body(bytes.subarray(0, 700_000), 65_537, kind), bytes.byteLength), () => {}, "https://h/m/x.bin").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MissingFileError);
    expect((err as Error).message).toBe(`https://h/m/x.bin: truncated download (700000 of ${bytes.byteLength} bytes)`);
  });

  it("a body longer than announced (a hidden Content-Encoding) is read whole", async () => {
    const out = await readBody(response(body(bytes, 65_537, kind), 400_000), () => {}, "u");
    expect(same(out, bytes)).toBe(true);
  });
});

it("a body announcing more than one WebAssembly memory is a ModelTooLargeError naming it, before anything is allocated or read", async () => {
  let pulls = 0;
  let cancelled = false;
  const b = new ReadableStream<Uint8Array>({
    pull(c) {
      pulls++;
      c.enqueue(new Uint8Array(16));
    },
    cancel() {
      cancelled = true;
    },
  });
  const total = 5 * 2 ** 30;
  const err = await readBody(response(b, total), () => {}, "https://h/m/pytorch_model.bin").catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ModelTooLargeError);
  expect((err as Error).message).toBe("https://h/m/pytorch_model.bin is 5.00 GiB: a file read whole must fit in one WebAssembly memory (4 GiB); safetensors weights stream (stream_weights) as q8 / q4");
  expect((err as ModelTooLargeError).path).toBe("https://h/m/pytorch_model.bin");
  expect(cancelled).toBe(true);
  expect(pulls).toBeLessThanOrEqual(1); // at most the stream's own first pull, which it makes on creation
});

it("a model whose pytorch_model.bin announces 5 GiB fails to load with that ModelTooLargeError", async () => {
  const fetchFn = (async (u: URL | RequestInfo) => {
    const name = String(u).split("/").at(-1)!;
    if (name === "config.json") return new Response(readFileSync(`${FIXTURES}tiny-t5/config.json`));
    if (name === "pytorch_model.bin") return new Response(new ReadableStream({ pull: (c) => c.enqueue(new Uint8Array(16)) }), { headers: { "content-length": String(5 * 2 ** 30) } });
    return new Response("not found", { status: 404 });
  }) as typeof fetch;
  const err = await T5ForConditionalGeneration.fromPretrained("http://127.0.0.1:9/big/", { fetch: fetchFn, use_cache: false }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ModelTooLargeError);
  expect((err as Error).message).toMatch(/^http:\/\/127\.0\.0\.1:9\/big\/pytorch_model\.bin is 5\.00 GiB: a file read whole must fit/);
});

describe("a body read whole that goes on past 4 GiB is a ModelTooLargeError naming it, the body cancelled", () => {
  // the pieces are views of one 64 MiB buffer (a plain body) or 8 MiB buffers the reader brings and nothing writes
  // (a byte stream): what the reader keeps is untouched memory, so the test costs no 4 GiB of RAM
  const piece = new Uint8Array(64 * 2 ** 20);
  const endless = (kind: "bytes" | "plain", state: { cancelled: boolean }) =>
    kind === "plain"
      ? new ReadableStream<Uint8Array>({ pull: (c) => c.enqueue(piece), cancel: () => void (state.cancelled = true) })
      : new ReadableStream({
          type: "bytes",
          pull(c) {
            const req = c.byobRequest!;
            req.respond(req.view!.byteLength);
          },
          cancel: () => void (state.cancelled = true),
        });

  it.each([
    ["no Content-Length, plain body", "plain", undefined],
    ["1 MB announced (a hidden Content-Encoding), plain body", "plain", 1_000_000],
    ["1 MB announced (a hidden Content-Encoding), byte stream", "bytes", 1_000_000],
  ] as const)("%s", async (_, kind, length) => {
    const state = { cancelled: false };
    const res = new Response(endless(kind, state), length === undefined ? {} : { headers: { "content-length": String(length) } });
    let last = 0;
    const err = await readBody(res, (l) => (last = l), "https://h/m/model.gguf").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelTooLargeError);
    expect((err as Error).message).toMatch(/^https:\/\/h\/m\/model\.gguf went on past 4 GiB \(\d+ bytes read\): a file read whole must fit in one WebAssembly memory \(4 GiB\)/);
    expect((err as ModelTooLargeError).path).toBe("https://h/m/model.gguf");
    expect(last).toBeLessThanOrEqual(2 ** 32);
    expect(state.cancelled).toBe(true);
  });
});

it("a buffer the JavaScript engine refuses is a ModelTooLargeError naming the file, not a RangeError", async () => {
  let cancelled = false;
  const err = await allocate(-1, "https://h/m/tokenizer.json", { cancel: async () => void (cancelled = true) }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ModelTooLargeError);
  expect((err as Error).message).toMatch(/^https:\/\/h\/m\/tokenizer\.json needs one buffer of -1 bytes, which this JavaScript engine refused \(.+\): a file read whole/);
  expect((err as Error).cause).toBeInstanceOf(RangeError);
  expect(cancelled).toBe(true);
  expect(await allocate(3, "x")).toEqual(new Uint8Array(3));
});
