/** In-memory files: `File`s, or a record / `Map` from file name to `Blob` / `ArrayBuffer` / typed array. */

import { T5WebError } from "../errors.js";
import { byobReader, Reporter, slices, STREAM_PIECE_BYTES, type ByteStream, type FileSource } from "./source.js";

type Bytesish = Blob | ArrayBuffer | ArrayBufferView;

function baseName(name: string): string {
  const i = Math.max(name.lastIndexOf("/"), name.lastIndexOf("\\"));
  return i >= 0 ? name.slice(i + 1) : name;
}

export class MemorySource implements FileSource {
  readonly location = "(in-memory files)";
  constructor(
    private readonly files: Map<string, Bytesish>,
    private readonly report: Reporter,
  ) {}

  async exists(name: string): Promise<boolean> {
    return this.files.has(name);
  }

  async read(name: string): Promise<Uint8Array | undefined> {
    const f = this.files.get(name);
    if (f === undefined) return undefined;
    let bytes: Uint8Array;
    if (f instanceof ArrayBuffer) bytes = new Uint8Array(f);
    else if (ArrayBuffer.isView(f)) bytes = new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
    else bytes = new Uint8Array(await f.arrayBuffer());
    this.report.whole(name, bytes.byteLength);
    return bytes;
  }

  async stream(name: string): Promise<ByteStream | undefined> {
    const f = this.files.get(name);
    if (f === undefined) return undefined;
    if (f instanceof ArrayBuffer || ArrayBuffer.isView(f)) {
      const bytes = f instanceof ArrayBuffer ? new Uint8Array(f) : new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
      this.report.whole(name, bytes.byteLength);
      return { size: bytes.byteLength, chunks: slices(bytes) };
    }
    // a Blob / File (e.g. a browser upload): read piece by piece, never whole
    const blob = f;
    const report = this.report;
    async function* chunks(): AsyncGenerator<Uint8Array> {
      report.initiate(name);
      const reader = blobReader(blob);
      if (reader) {
        yield* fill(reader, Math.min(STREAM_PIECE_BYTES, Math.max(blob.size, 1)), (loaded) => report.progress(name, loaded, blob.size));
      } else {
        for (let at = 0; at < blob.size; at += STREAM_PIECE_BYTES) {
          const end = Math.min(blob.size, at + STREAM_PIECE_BYTES);
          yield new Uint8Array(await blob.slice(at, end).arrayBuffer());
          report.progress(name, end, blob.size);
        }
      }
      report.done(name);
    }
    return { size: blob.size, chunks: chunks() };
  }
}

/**
 * A BYOB reader of `blob`'s stream, where it is a byte stream (Chromium, Node, Deno): read into one reused buffer, a
 * 1.71 GB `File` took 1.41–1.49 s in Chromium against 2.26–2.99 s in 8 MiB `slice().arrayBuffer()`s, each a new
 * buffer (docs/benchmarks.md). `undefined` where there is none (then the slices).
 */
function blobReader(blob: Blob): ReadableStreamBYOBReader | undefined {
  return typeof blob.stream === "function" ? byobReader(blob.stream()) : undefined;
}

/**
 * The stream's bytes as pieces of `size` bytes (the last one shorter), each a view of one buffer that every read
 * fills and the stream hands back: valid until the next piece is asked for. `progress` gets the bytes read so far.
 */
async function* fill(reader: ReadableStreamBYOBReader, size: number, progress: (loaded: number) => void): AsyncGenerator<Uint8Array> {
  let buf = new ArrayBuffer(size);
  let loaded = 0;
  try {
    for (let done = false; !done; ) {
      let filled = 0;
      while (filled < size) {
        const r = await reader.read(new Uint8Array(buf, filled));
        // the same memory, transferred back (at the end as an empty view)
        if (r.value === undefined) throw new T5WebError("a file's stream ended without handing its buffer back");
        buf = r.value.buffer as ArrayBuffer;
        if (r.done) {
          done = true;
          break;
        }
        filled += r.value.byteLength;
      }
      if (filled === 0) break;
      loaded += filled;
      yield new Uint8Array(buf, 0, filled);
      progress(loaded);
    }
  } finally {
    // the consumer stopped early (an engine error): stop reading
    await reader.cancel().catch(() => undefined);
  }
}

function isBytesish(x: unknown): x is Bytesish {
  return x instanceof ArrayBuffer || ArrayBuffer.isView(x) || (typeof Blob !== "undefined" && x instanceof Blob);
}

/** A `FileMap` as name → bytes; `undefined` when `x` is not one. */
export function toFileMap(x: unknown): Map<string, Bytesish> | undefined {
  if (x === null || typeof x !== "object" || x instanceof URL) return undefined;
  const out = new Map<string, Bytesish>();
  const addFile = (f: unknown) => {
    if (typeof Blob === "undefined" || !(f instanceof Blob) || typeof (f as File).name !== "string") {
      throw new T5WebError("a list of model files must hold File objects (with names)");
    }
    out.set(baseName((f as File).name), f);
  };
  if (x instanceof Map) {
    for (const [k, v] of x) {
      if (typeof k !== "string" || !isBytesish(v)) throw new T5WebError("a Map of model files must map names to Blob / ArrayBuffer / typed arrays");
      out.set(k, v);
    }
  } else if (Symbol.iterator in x) {
    for (const f of x as Iterable<unknown>) addFile(f);
  } else if (typeof (x as ArrayLike<unknown>).length === "number" && !isBytesish(x)) {
    const a = x as ArrayLike<unknown>;
    for (let i = 0; i < a.length; i++) addFile(a[i]);
  } else {
    for (const [k, v] of Object.entries(x)) {
      if (!isBytesish(v)) throw new T5WebError(`model file ${JSON.stringify(k)} must be a Blob, ArrayBuffer or typed array`);
      out.set(k, v);
    }
  }
  return out;
}
