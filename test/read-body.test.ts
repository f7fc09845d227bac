/**
 * Reading a whole response body (`readBody`, sources/url.ts): into one buffer of the announced size, straight from a
 * byte-stream body (a BYOB reader filling the rest of that buffer on each read) or piece by piece from any other body;
 * a body shorter than announced is a truncated download, a longer one (a hidden Content-Encoding) is read whole.
 */

import { describe, expect, it } from "vitest";
import { MissingFileError } from "../ts/src/index.js";
import { readBody } from "../ts/src/files.js";

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
