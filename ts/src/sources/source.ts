/** What every checkpoint file source is and shares: the `FileSource` interface, the load options and progress events. */

import type { CacheOptions } from "../cache.js";
import type { HubOptions } from "../hub.js";

/** transformers.js's progress events. */
export type ProgressInfo =
  | { status: "initiate"; name: string; file: string }
  | { status: "download"; name: string; file: string }
  | { status: "progress"; name: string; file: string; progress: number; loaded: number; total: number }
  | { status: "done"; name: string; file: string }
  | { status: "ready"; task: string; model: string };

export type ProgressCallback = (info: ProgressInfo) => void;

/** In-memory checkpoint files: `File`s (their `name`), or file name → bytes. */
export type FileMap =
  | Iterable<File>
  | ArrayLike<File>
  | Map<string, Blob | ArrayBuffer | ArrayBufferView>
  | Record<string, Blob | ArrayBuffer | ArrayBufferView>;

/** What `fromPretrained` accepts: a directory path, a base URL, in-memory files, or one `.gguf` path / URL / `File`. */
export type ModelSource = string | URL | FileMap | File;

export interface LoadOptions extends CacheOptions, HubOptions {
  /** `fetch` to use for URLs (default: the global one), e.g. to add headers. */
  fetch?: typeof globalThis.fetch;
  /** Called with transformers.js-shaped progress events while files load. */
  progress_callback?: ProgressCallback;
}

export interface FileSource {
  /** The directory or base URL, for messages. */
  readonly location: string;
  /** Bytes of `name`, or `undefined` when the file does not exist. */
  read(name: string): Promise<Uint8Array | undefined>;
  /** `name` in pieces, or `undefined` when the file does not exist (progress reported as the pieces are read). */
  stream?(name: string): Promise<ByteStream | undefined>;
  /** Whether `name` exists, without reading it (a `HEAD` request for URLs). */
  exists?(name: string): Promise<boolean>;
  /** Why an absent file may only be absent here (a URL read from the download cache only): said in errors. */
  missingNote?(name: string): string | undefined;
}

/**
 * A file read piece by piece: its size when known, and the pieces in order. A piece is valid until the next one is
 * asked for (sources read each into one reused buffer): a consumer copies it first.
 */
export interface ByteStream {
  size: number | undefined;
  chunks: AsyncIterable<Uint8Array>;
}

/** A BYOB reader of `stream`, or `undefined` where it is not a byte stream (a stubbed fetch's body may not be). */
export function byobReader(stream: ReadableStream<Uint8Array>): ReadableStreamBYOBReader | undefined {
  try {
    return stream.getReader({ mode: "byob" });
  } catch {
    return undefined;
  }
}

/** Size of the pieces read from disk and from in-memory `Blob`s. */
export const STREAM_PIECE_BYTES = 8 << 20;

/**
 * Largest piece handed to the engine in one call while streaming weights: each call copies its piece
 * into WebAssembly memory, whose size (the high-water mark) never shrinks, so a read's piece goes in
 * as views of at most this size.
 */
export const ENGINE_PIECE_BYTES = 1 << 20;

/**
 * Largest file from a URL that is also written to the download cache while it streams (its pieces
 * are kept until the end to be hashed and stored); larger files stream past the cache.
 */
export const STREAM_CACHE_MAX_BYTES = 512 << 20;

/** `bytes` as pieces of at most `size` bytes (views, no copies). */
export function* views(bytes: Uint8Array, size: number): Generator<Uint8Array> {
  for (let at = 0; at < bytes.byteLength; at += size) yield bytes.subarray(at, Math.min(bytes.byteLength, at + size));
}

/** `bytes` as a stream of pieces of at most {@link STREAM_PIECE_BYTES} (views, no copies). */
export async function* slices(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield* views(bytes, STREAM_PIECE_BYTES);
}


export function joinLocation(location: string, name: string): string {
  return location.endsWith("/") ? location + name : `${location}/${name}`;
}

/** Reports the events of one file to the callback (if any); never throws from the callback's errors. */
export class Reporter {
  constructor(
    private readonly cb: ProgressCallback | undefined,
    private readonly name: string,
  ) {}
  emit(info: ProgressInfo): void {
    if (!this.cb) return;
    try {
      this.cb(info);
    } catch {
      // a failing progress callback must not break loading
    }
  }
  initiate(file: string) {
    this.emit({ status: "initiate", name: this.name, file });
  }
  download(file: string) {
    this.emit({ status: "download", name: this.name, file });
  }
  progress(file: string, loaded: number, total: number) {
    const progress = total > 0 ? Math.min(100, (loaded / total) * 100) : 0;
    this.emit({ status: "progress", name: this.name, file, progress, loaded, total });
  }
  done(file: string) {
    this.emit({ status: "done", name: this.name, file });
  }
  /** A file that arrived whole (disk, memory, cache): initiate, progress 100 %, done. */
  whole(file: string, size: number) {
    this.initiate(file);
    this.progress(file, size, size);
    this.done(file);
  }
}
