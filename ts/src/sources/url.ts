/** A base URL in the Hugging Face Hub layout, read in pieces from the response stream, optionally cached (`cache.ts`). */

import type { FileCache } from "../cache.js";
import { MissingFileError, ModelTooLargeError, T5WebError } from "../errors.js";
import { WASM32_MAX_BYTES } from "../memory-budget.js";
import { byobReader, Reporter, slices, STREAM_CACHE_MAX_BYTES, STREAM_PIECE_BYTES, type ByteStream, type FileSource } from "./source.js";

/** Pieces of a response body, one `read()` at a time (`undefined` at its end). */
interface BodyReader {
  read(): Promise<Uint8Array | undefined>;
  cancel(): Promise<void>;
}

/**
 * A reader of `body`. With `reuse`, where the body is a byte stream (fetch bodies in browsers, Deno and Node), each
 * piece is read into one buffer, handed back to the stream for the next read: as in `DirSource`, the consumer
 * copies each piece into the engine before asking for the next. The default reader makes a new `ArrayBuffer` per
 * piece (thousands for a large checkpoint, each allocated, zeroed and collected): fetching the 5.7 GB of a
 * t5-v1_1-xl-sized checkpoint from a 127.0.0.1 server in Chromium took 10.0–10.3 s with it and 8.3–8.4 s
 * reading into one buffer (docs/benchmarks.md).
 */
function bodyReader(body: ReadableStream<Uint8Array>, reuse: boolean): BodyReader {
  const byob = reuse ? byobReader(body) : undefined;
  if (byob) {
    const r = byob;
    let buf: ArrayBuffer = new ArrayBuffer(STREAM_PIECE_BYTES);
    return {
      async read() {
        const { done, value } = await r.read(new Uint8Array(buf));
        if (done || value === undefined) return undefined;
        buf = value.buffer as ArrayBuffer; // the same memory, transferred back
        return value;
      },
      cancel: () => r.cancel(),
    };
  }
  const r = body.getReader();
  return {
    async read() {
      const { done, value } = await r.read();
      return done ? undefined : value;
    },
    cancel: () => r.cancel(),
  };
}

/**
 * Reads a response body into one buffer of the announced size (no second copy), or into a list of chunks when the
 * size is unknown, reporting progress after each piece. Where the body is a byte stream and its size is announced,
 * the pieces are read straight into that buffer (a BYOB reader: no buffer per piece, no copy).
 */
export async function readBody(res: Response, onChunk: (loaded: number, total: number) => void, where: string): Promise<Uint8Array> {
  const lenHeader = res.headers.get("content-length");
  const encoded = (res.headers.get("content-encoding") ?? "identity") !== "identity";
  const total = lenHeader !== null && /^\d+$/.test(lenHeader) ? Number(lenHeader) : 0;
  if (!res.body) {
    const bytes = new Uint8Array(await res.arrayBuffer());
    onChunk(bytes.byteLength, total || bytes.byteLength);
    return bytes;
  }
  const sized = total > 0 && !encoded;
  // the file goes whole into one WebAssembly memory (a tokenizer, a pytorch_model.bin, a .gguf): larger cannot load,
  // and allocating it would be a RangeError or an abort, not an error that names the file
  if (sized && total > WASM32_MAX_BYTES) {
    await res.body.cancel().catch(() => undefined);
    throw tooLarge(where, `is ${(total / 2 ** 30).toFixed(2)} GiB`);
  }
  const byob = sized ? byobReader(res.body) : undefined;
  if (byob) return readInto(byob, total, onChunk, where);
  const reader = res.body.getReader();
  let buf: Uint8Array | undefined = sized ? await allocate(total, where, reader) : undefined;
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    // no size announced, or more than announced: stop where no WebAssembly memory could hold it
    if (loaded + value.byteLength > WASM32_MAX_BYTES) await tooLong(where, loaded + value.byteLength, reader);
    if (buf && loaded + value.byteLength > buf.byteLength) {
      // more than announced: a compressed body whose Content-Encoding is hidden (cross-origin
      // responses expose Content-Length but not Content-Encoding); collect chunks instead
      chunks.push(buf.subarray(0, loaded));
      buf = undefined;
    }
    if (buf) buf.set(value, loaded);
    else chunks.push(value);
    loaded += value.byteLength;
    onChunk(loaded, Math.max(total, loaded));
  }
  if (buf) {
    if (loaded !== total) throw truncated(where, loaded, total);
    return buf;
  }
  return concat(chunks, loaded, where);
}

/** Why a file read whole cannot load: `what` says its size (`is 5.00 GiB`). */
function tooLarge(where: string, what: string, cause?: unknown): ModelTooLargeError {
  return new ModelTooLargeError(`${where} ${what}: a file read whole must fit in one WebAssembly memory (4 GiB); safetensors weights stream (stream_weights) as q8 / q4`, { path: where, cause });
}

/** A body that went on past 4 GiB (no size announced, or a hidden Content-Encoding): cancelled, and said so. */
async function tooLong(where: string, loaded: number, reader: { cancel(): Promise<void> }): Promise<never> {
  await reader.cancel().catch(() => undefined);
  throw tooLarge(where, `went on past 4 GiB (${loaded} bytes read)`);
}

/**
 * One buffer of `length` bytes for `where`, or a ModelTooLargeError naming it where the JS engine refuses a buffer
 * that large (a RangeError: a browser short of memory, a 32-bit one), after cancelling the body's `reader`.
 */
export async function allocate(length: number, where: string, reader?: { cancel(): Promise<void> }): Promise<Uint8Array> {
  try {
    return new Uint8Array(length);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    await reader?.cancel().catch(() => undefined);
    throw tooLarge(where, `needs one buffer of ${length} bytes, which this JavaScript engine refused (${e.message})`, e);
  }
}

function truncated(where: string, loaded: number, total: number): MissingFileError {
  return new MissingFileError(`${where}: truncated download (${loaded} of ${total} bytes)`, { path: where });
}

async function concat(chunks: Uint8Array[], length: number, where: string): Promise<Uint8Array> {
  if (chunks.length === 1) return chunks[0]!;
  const buf = await allocate(length, where);
  let at = 0;
  for (const c of chunks) {
    buf.set(c, at);
    at += c.byteLength;
  }
  return buf;
}

/**
 * {@link readBody} with a BYOB reader: each read fills the rest of the one buffer of the announced `total` bytes (the
 * stream hands the buffer back after each read). A body longer than announced (a hidden Content-Encoding) goes on
 * into pieces of its own, joined at the end.
 */
async function readInto(reader: ReadableStreamBYOBReader, total: number, onChunk: (loaded: number, total: number) => void, where: string): Promise<Uint8Array> {
  let buf = await allocate(total, where, reader);
  let loaded = 0;
  while (loaded < total) {
    const { done, value } = await reader.read(buf.subarray(loaded));
    // the same memory, transferred back (also at the end of the stream, as an empty view)
    if (value === undefined) throw truncated(where, loaded, total);
    buf = new Uint8Array(value.buffer as ArrayBuffer, 0, total);
    if (done) throw truncated(where, loaded, total);
    loaded += value.byteLength;
    onChunk(loaded, total);
  }
  // the end of the body, or more than announced (a small first buffer: almost always only the end is read)
  const more: Uint8Array[] = [];
  for (;;) {
    const { done, value } = await reader.read(new Uint8Array(more.length === 0 ? 4096 : STREAM_PIECE_BYTES));
    if (done || value === undefined) break;
    if (loaded + value.byteLength > WASM32_MAX_BYTES) await tooLong(where, loaded + value.byteLength, reader);
    more.push(value);
    loaded += value.byteLength;
    onChunk(loaded, loaded);
  }
  return more.length === 0 ? buf : concat([buf, ...more], loaded, where);
}

export class UrlSource implements FileSource {
  readonly location: string;
  private readonly base: URL;
  constructor(
    base: URL,
    private readonly fetchFn: typeof globalThis.fetch,
    private readonly report: Reporter,
    private readonly cache: FileCache | undefined,
    /** Read from the cache only, never fetch (`local_files_only`): why, and the name the caller gave. */
    private readonly offline?: { why: string; label: string },
  ) {
    this.base = new URL(base.href.endsWith("/") ? base.href : base.href + "/");
    this.location = this.base.href;
  }

  missingNote(name: string): string | undefined {
    const o = this.offline;
    if (!o) return undefined;
    return `${name} of ${o.label} is not in the download cache (${o.why}, so ${new URL(name, this.base).href} was not fetched)`;
  }

  async read(name: string): Promise<Uint8Array | undefined> {
    const url = new URL(name, this.base);
    const cached = this.cache ? await this.cache.get(url.href) : undefined;
    if (cached) {
      this.report.whole(name, cached.byteLength);
      return cached;
    }
    if (this.offline) return undefined;
    const opened = await this.open(name, url);
    if (opened === undefined) return undefined;
    const res: Response = opened;
    let bytes: Uint8Array;
    try {
      bytes = await readBody(res, (loaded, total) => this.report.progress(name, loaded, total), url.href);
    } catch (e) {
      if (e instanceof T5WebError) throw e;
      throw new MissingFileError(`cannot fetch ${url.href}: ${(e as Error).message}`, { path: url.href, cause: e });
    }
    if (this.cache) await this.cache.put(url.href, bytes);
    this.report.done(name);
    return bytes;
  }

  async exists(name: string): Promise<boolean> {
    const url = new URL(name, this.base);
    if (this.offline) return (await this.cache?.has(url.href)) ?? false;
    try {
      const res = await this.fetchFn(url, { method: "HEAD" });
      await res.body?.cancel().catch(() => undefined);
      return res.ok;
    } catch {
      return false;
    }
  }

  /** Fetch `url` for file `name` with progress events: `undefined` for 404 / 410, a typed error otherwise. */
  private async open(name: string, url: URL): Promise<Response | undefined> {
    this.report.initiate(name);
    let res: Response;
    try {
      res = await this.fetchFn(url);
    } catch (e) {
      throw new MissingFileError(`cannot fetch ${url.href}: ${(e as Error).message}`, { path: url.href, cause: e });
    }
    if (res.status === 404 || res.status === 410) {
      await res.body?.cancel().catch(() => undefined);
      return undefined;
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw new MissingFileError(`cannot fetch ${url.href}: HTTP ${res.status} ${res.statusText}`, { path: url.href });
    }
    this.report.download(name);
    return res;
  }

  async stream(name: string): Promise<ByteStream | undefined> {
    const url = new URL(name, this.base);
    const cached = this.cache ? await this.cache.get(url.href) : undefined;
    if (cached) {
      this.report.whole(name, cached.byteLength);
      return { size: cached.byteLength, chunks: slices(cached) };
    }
    if (this.offline) return undefined;
    const opened = await this.open(name, url);
    if (opened === undefined) return undefined;
    const res: Response = opened;
    const lenHeader = res.headers.get("content-length");
    const encoded = (res.headers.get("content-encoding") ?? "identity") !== "identity";
    const announced = lenHeader !== null && /^\d+$/.test(lenHeader) ? Number(lenHeader) : undefined;
    // Content-Length is not the file's size for a compressed body, and the Content-Encoding saying so is hidden
    // from cross-origin pages: the engine gets no size (it checks the file against its own header), and only a
    // body shorter than announced without a visible encoding is a truncated download
    const size = undefined;
    const cache = this.cache && (announced === undefined || announced <= STREAM_CACHE_MAX_BYTES) ? this.cache : undefined;
    const report = this.report;
    const where = url.href;
    async function* chunks(): AsyncGenerator<Uint8Array> {
      const kept: Uint8Array[] = [];
      let keep = cache !== undefined;
      let loaded = 0;
      if (!res.body) {
        const bytes = new Uint8Array(await res.arrayBuffer());
        loaded = bytes.byteLength;
        report.progress(name, loaded, loaded);
        yield* slices(bytes);
        if (keep) kept.push(bytes);
      } else {
        // pieces kept for the cache are read into buffers of their own
        const reader = bodyReader(res.body, !keep);
        try {
          for (;;) {
            let piece: Uint8Array | undefined;
            try {
              piece = await reader.read();
            } catch (e) {
              throw new MissingFileError(`cannot fetch ${where}: ${(e as Error).message}`, { path: where, cause: e });
            }
            if (piece === undefined) break;
            loaded += piece.byteLength;
            if (keep) {
              kept.push(piece);
              if (loaded > STREAM_CACHE_MAX_BYTES) {
                keep = false; // larger than announced: stream past the cache
                kept.length = 0;
              }
            }
            yield piece;
            report.progress(name, loaded, Math.max(announced ?? 0, loaded));
          }
        } finally {
          // the consumer stopped early (an engine error): stop the download
          await reader.cancel().catch(() => undefined);
        }
      }
      if (!encoded && announced !== undefined && loaded < announced) {
        throw new MissingFileError(`${where}: truncated download (${loaded} of ${announced} bytes)`, { path: where });
      }
      if (keep && cache) {
        const bytes = new Uint8Array(loaded);
        let at = 0;
        for (const c of kept) {
          bytes.set(c, at);
          at += c.byteLength;
        }
        kept.length = 0;
        await cache.put(where, bytes);
      }
      report.done(name);
    }
    return { size, chunks: chunks() };
  }
}
