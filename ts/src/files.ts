/**
 * Where a checkpoint's files come from:
 * - a local directory (Node / Bun / Deno with `node:fs`);
 * - a base URL (http, https, or any URL `fetch` can read) in the Hugging Face Hub layout, read in
 *   pieces from the response stream (no second copy of a large file), optionally cached (see
 *   `cache.ts`);
 * - in-memory files: `File`s (e.g. an `<input type=file multiple>`'s `FileList`), or a record /
 *   `Map` from file name to `Blob` / `ArrayBuffer` / typed array (browser uploads, workerd data
 *   modules, bytes from anywhere).
 *
 * Progress is reported through `progress_callback` with transformers.js's event shape:
 * `initiate` → (`download` → `progress`…) → `done` per file; `ready` once a pipeline is built.
 *
 * Safetensors weights are streamed: each source hands the engine the file in pieces
 * ({@link FileSource.stream}: disk reads, the response body, `Blob.slice`), and the engine converts
 * each tensor as it arrives (weights.rs `ShardStream`), so a checkpoint larger than one WebAssembly
 * memory (4 GiB) loads as q8 / q4 without the whole file ever being in JS or wasm memory.
 */

import { openCache, type CacheOptions, type FileCache } from "./cache.js";
import { BadConfigError, BadInputError, BadJsonError, MissingFileError, OnnxOnlyError, T5WebError } from "./errors.js";
import { env, hubBaseUrl, isHubId, notFound, type HubOptions } from "./hub.js";
import { BadWeightsError, wasmCall } from "./errors.js";
import { isNotFound, isPermissionDenied, readError } from "./runtime-env.js";

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

/** A file read piece by piece: its size when known, and the pieces in order. */
export interface ByteStream {
  size: number | undefined;
  chunks: AsyncIterable<Uint8Array>;
}

/** Size of the pieces read from disk and from in-memory `Blob`s. */
export const STREAM_PIECE_BYTES = 8 << 20;

/**
 * Largest file from a URL that is also written to the download cache while it streams (its pieces
 * are kept until the end to be hashed and stored); larger files stream past the cache.
 */
export const STREAM_CACHE_MAX_BYTES = 512 << 20;

/** `bytes` as pieces of at most {@link STREAM_PIECE_BYTES} (views, no copies). */
async function* slices(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.byteLength; at += STREAM_PIECE_BYTES) yield bytes.subarray(at, Math.min(bytes.byteLength, at + STREAM_PIECE_BYTES));
}

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === "string";
}

function joinLocation(location: string, name: string): string {
  return location.endsWith("/") ? location + name : `${location}/${name}`;
}

/** Reports the events of one file to the callback (if any); never throws from the callback's errors. */
class Reporter {
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

class DirSource implements FileSource {
  constructor(
    readonly location: string,
    private readonly report: Reporter,
  ) {}

  async read(name: string): Promise<Uint8Array | undefined> {
    const fs = await import("node:fs/promises");
    const path = await import("node:path");
    let bytes: Uint8Array;
    try {
      bytes = await fs.readFile(path.join(this.location, name));
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw readError(e, path.join(this.location, name), this.location);
    }
    this.report.whole(name, bytes.byteLength);
    return bytes;
  }

  async exists(name: string): Promise<boolean> {
    const fs = await import("node:fs/promises");
    const path = await import("node:path");
    return fs.stat(path.join(this.location, name)).then(
      (st) => st.isFile(),
      () => false,
    );
  }

  async stream(name: string): Promise<ByteStream | undefined> {
    const fs = await import("node:fs/promises");
    const path = await import("node:path");
    const file = path.join(this.location, name);
    let handle: Awaited<ReturnType<typeof fs.open>>;
    let size: number;
    try {
      handle = await fs.open(file, "r");
      size = (await handle.stat()).size;
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw readError(e, file, this.location);
    }
    const report = this.report;
    async function* chunks(): AsyncGenerator<Uint8Array> {
      report.initiate(name);
      // one buffer, reused: the consumer copies each piece into the engine before asking for the next
      const buf = new Uint8Array(Math.min(STREAM_PIECE_BYTES, Math.max(size, 1)));
      let loaded = 0;
      try {
        while (loaded < size) {
          let n: number;
          try {
            ({ bytesRead: n } = await handle.read(buf, 0, Math.min(buf.byteLength, size - loaded), loaded));
          } catch (e) {
            throw new MissingFileError(`cannot read ${file}: ${(e as Error).message}`, { path: file, cause: e });
          }
          if (n === 0) throw new MissingFileError(`${file}: the file shrank while it was read (${loaded} of ${size} bytes)`, { path: file });
          loaded += n;
          yield buf.subarray(0, n);
          report.progress(name, loaded, size);
        }
      } finally {
        await handle.close().catch(() => undefined);
      }
      report.done(name);
    }
    return { size, chunks: chunks() };
  }
}

/**
 * Reads a response body chunk by chunk into one buffer of the announced size (no second copy), or
 * into a list of chunks when the size is unknown, reporting progress after each chunk.
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
  const reader = res.body.getReader();
  let buf: Uint8Array | undefined = total > 0 && !encoded ? new Uint8Array(total) : undefined;
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
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
    if (loaded !== total) {
      throw new MissingFileError(`${where}: truncated download (${loaded} of ${total} bytes)`, { path: where });
    }
    return buf;
  }
  if (chunks.length === 1) return chunks[0]!;
  buf = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) {
    buf.set(c, at);
    at += c.byteLength;
  }
  return buf;
}

class UrlSource implements FileSource {
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
        const reader = res.body.getReader();
        try {
          for (;;) {
            let r: ReadableStreamReadResult<Uint8Array>;
            try {
              r = await reader.read();
            } catch (e) {
              throw new MissingFileError(`cannot fetch ${where}: ${(e as Error).message}`, { path: where, cause: e });
            }
            if (r.done) break;
            loaded += r.value.byteLength;
            if (keep) {
              kept.push(r.value);
              if (loaded > STREAM_CACHE_MAX_BYTES) {
                keep = false; // larger than announced: stream past the cache
                kept.length = 0;
              }
            }
            yield r.value;
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

type Bytesish = Blob | ArrayBuffer | ArrayBufferView;

function baseName(name: string): string {
  const i = Math.max(name.lastIndexOf("/"), name.lastIndexOf("\\"));
  return i >= 0 ? name.slice(i + 1) : name;
}

class MemorySource implements FileSource {
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
    // a Blob / File (e.g. a browser upload): read slice by slice, never whole
    const blob = f;
    const report = this.report;
    async function* chunks(): AsyncGenerator<Uint8Array> {
      report.initiate(name);
      for (let at = 0; at < blob.size; at += STREAM_PIECE_BYTES) {
        const end = Math.min(blob.size, at + STREAM_PIECE_BYTES);
        yield new Uint8Array(await blob.slice(at, end).arrayBuffer());
        report.progress(name, end, blob.size);
      }
      report.done(name);
    }
    return { size: blob.size, chunks: chunks() };
  }
}

function isBytesish(x: unknown): x is Bytesish {
  return x instanceof ArrayBuffer || ArrayBuffer.isView(x) || (typeof Blob !== "undefined" && x instanceof Blob);
}

/** A `FileMap` as name → bytes; `undefined` when `x` is not one. */
function toFileMap(x: unknown): Map<string, Bytesish> | undefined {
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

/** `revision` / `local_files_only` of a call, checked. */
function hubOptions(opts: LoadOptions): { revision: string; local_files_only: boolean } {
  const { revision, local_files_only } = opts;
  if (revision !== undefined && (typeof revision !== "string" || revision === "")) {
    throw new BadInputError(`revision must be a non-empty string (a branch, tag or commit), got ${JSON.stringify(revision)}`);
  }
  if (local_files_only !== undefined && typeof local_files_only !== "boolean") {
    throw new BadInputError(`local_files_only must be a boolean, got ${JSON.stringify(local_files_only)}`);
  }
  return { revision: revision ?? "main", local_files_only: local_files_only ?? false };
}

/** The first of `candidates` that is a directory (Node / Deno), with the paths tried. */
async function findLocalDir(candidates: string[]): Promise<{ dir?: string; tried: string[]; notDir?: string }> {
  const path = await import("node:path");
  const fs = await import("node:fs/promises");
  const tried: string[] = [];
  let notDir: string | undefined;
  for (const c of candidates) {
    const dir = path.resolve(c);
    if (tried.includes(dir)) continue;
    tried.push(dir);
    let st: Awaited<ReturnType<typeof fs.stat>> | undefined;
    try {
      st = await fs.stat(dir);
    } catch (e) {
      // a refused read (Deno without --allow-read, EACCES) says so; only an absent path falls through to the Hub
      if (isPermissionDenied(e)) throw readError(e, dir);
    }
    if (st?.isDirectory()) return { dir, tried };
    if (st && notDir === undefined) notDir = dir;
  }
  return { tried, notDir };
}

/**
 * A directory path, a base URL, a Hub id, or in-memory files. Strings with a scheme (`https://…`,
 * `file://…`) are URLs; other strings are local directories where there is a filesystem (as given, then under
 * `env.localModelPath`) and otherwise, when shaped like one, Hub ids (`owner/name`, see hub.ts); in browsers
 * Hub-shaped strings are Hub ids and other strings URLs relative to the page.
 */
export async function openSource(source: ModelSource, opts: LoadOptions = {}): Promise<FileSource> {
  const hub = hubOptions(opts);
  if (typeof source !== "string" && !(source instanceof URL)) {
    const files = toFileMap(source);
    if (!files) throw new T5WebError(`cannot load a model from ${String(source)}`);
    return new MemorySource(files, new Reporter(opts.progress_callback, "(in-memory files)"));
  }
  const dirOrUrl = source;
  let url: URL | undefined;
  let tried: string[] = [];
  let fromHub = false;
  if (dirOrUrl instanceof URL) url = dirOrUrl;
  else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(dirOrUrl)) url = new URL(dirOrUrl);

  if (isNode() && (url === undefined || url.protocol === "file:")) {
    const path = await import("node:path");
    if (url) {
      const { fileURLToPath } = await import("node:url");
      const dir = path.resolve(fileURLToPath(url));
      const found = await findLocalDir([dir]);
      if (!found.dir) throw new MissingFileError(found.notDir ? `not a directory: ${dir}` : `model directory not found: ${dir}`, { path: dir });
      return new DirSource(found.dir, new Reporter(opts.progress_callback, dir));
    }
    const s = dirOrUrl as string;
    const candidates = env.allowLocalModels ? [s, ...(env.localModelPath ? [path.join(env.localModelPath, s)] : [])] : [];
    const found = await findLocalDir(candidates);
    if (found.dir) return new DirSource(found.dir, new Reporter(opts.progress_callback, s));
    if (found.notDir && !isHubId(s)) throw new MissingFileError(`not a directory: ${found.notDir}`, { path: found.notDir });
    if (!isHubId(s)) throw notFound(s, found.tried, hub);
    url = hubBaseUrl(s, hub.revision);
    fromHub = true;
    tried = found.tried;
  }
  if (url === undefined) {
    const s = dirOrUrl as string;
    const base = (globalThis as { location?: { href?: string } }).location?.href;
    if (isHubId(s) && !(env.allowLocalModels && base)) {
      url = hubBaseUrl(s, hub.revision);
      fromHub = true;
    } else {
      if (!base) throw new MissingFileError(`cannot resolve ${s}: not a URL and no filesystem here`);
      url = new URL(isHubId(s) ? `${env.localModelPath}${s}` : s, base);
    }
  }
  const fetchFn = opts.fetch ?? globalThis.fetch;
  if (typeof fetchFn !== "function") throw new T5WebError("no fetch() available to load from a URL");
  const remote = url.protocol === "http:" || url.protocol === "https:";
  const cache = remote ? await openCache(opts) : undefined;
  const name = typeof dirOrUrl === "string" ? dirOrUrl : url.href;
  // a Hub id with transformers' local_files_only (or env.allowRemoteModels = false): only what the download cache
  // holds (files an earlier load fetched); an absent file is an error naming it
  const why = !fromHub ? undefined : hub.local_files_only ? "local_files_only is set" : !env.allowRemoteModels ? "env.allowRemoteModels is false" : undefined;
  if (why !== undefined && !cache) throw notFound(name, tried, hub);
  const offline = why !== undefined ? { why, label: name } : undefined;
  return new UrlSource(url, fetchFn.bind(globalThis), new Reporter(opts.progress_callback, name), cache, offline);
}

/** Bytes of a required file. */
export async function readRequired(src: FileSource, name: string): Promise<Uint8Array> {
  const bytes = await src.read(name);
  if (bytes === undefined) {
    const at = joinLocation(src.location, name);
    const note = src.missingNote?.(name);
    throw new MissingFileError(note ?? `${name} not found in ${src.location} (tried ${at})`, { path: at });
  }
  return bytes;
}

const utf8 = new TextDecoder("utf-8");

export function decodeText(bytes: Uint8Array): string {
  return utf8.decode(bytes);
}

/** Text of `name` after checking it is JSON (BadJsonError otherwise); `undefined` if absent. */
export async function readJsonText(src: FileSource, name: string, required: true): Promise<string>;
export async function readJsonText(src: FileSource, name: string, required: false): Promise<string | undefined>;
export async function readJsonText(src: FileSource, name: string, required: boolean): Promise<string | undefined> {
  const bytes = required ? await readRequired(src, name) : await src.read(name);
  if (bytes === undefined) return undefined;
  const text = decodeText(bytes);
  checkJson(text, joinLocation(src.location, name));
  return text;
}

/** Parse JSON, throwing {@link BadJsonError} naming `path`. */
export function checkJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new BadJsonError(`${path} is not valid JSON: ${(e as Error).message}`, { path, cause: e });
  }
}

/** What {@link addWeightFiles} needs of the engine (the wasm `WasmModelBuilder` and `shardFilesFromIndex`). */
export interface WeightSink {
  addShard(name: string, bytes: Uint8Array): void;
  addPytorchBin(name: string, bytes: Uint8Array): void;
  /** Streaming a safetensors file: `beginShard`, `pushShard` per piece, `endShard`. */
  beginShard?(name: string, size?: number): void;
  pushShard?(chunk: Uint8Array): void;
  endShard?(): void;
}

/** Stream one safetensors file into the engine: "streamed", "absent", or "cannot" (the source or the sink cannot stream). */
async function streamShard(src: FileSource, sink: WeightSink, name: string): Promise<"streamed" | "absent" | "cannot"> {
  if (!src.stream || !sink.beginShard || !sink.pushShard || !sink.endShard) return "cannot";
  const st = await src.stream(name);
  if (st === undefined) return "absent";
  wasmCall(() => sink.beginShard!(name, st.size), name);
  // an engine error (a bad header, a model too large) stops the loop, which stops the read / download
  for await (const chunk of st.chunks) wasmCall(() => sink.pushShard!(chunk), name);
  wasmCall(() => sink.endShard!(), name);
  return "streamed";
}

/** The weight layouts of a Hub checkpoint, in the order transformers prefers them. */
const WEIGHT_LAYOUTS = [
  { single: "model.safetensors", index: "model.safetensors.index.json", pytorch: false },
  { single: "pytorch_model.bin", index: "pytorch_model.bin.index.json", pytorch: true },
] as const;

/**
 * Hand a checkpoint's weights to the engine: `model.safetensors`, else the shards of
 * `model.safetensors.index.json`, else `pytorch_model.bin` (read by the engine's restricted
 * unpickler), else the shards of `pytorch_model.bin.index.json`. With `opts.stream` safetensors files
 * are streamed piece by piece when the source and the engine can; other files are read whole, one at a
 * time. Returns the file names used.
 */
export async function addWeightFiles(
  src: FileSource,
  sink: WeightSink,
  shardFilesFromIndex: (indexJson: string) => string[],
  opts: { stream?: boolean } = {},
): Promise<string[]> {
  const add = (name: string, bytes: Uint8Array, pytorch: boolean) =>
    wasmCall(() => (pytorch ? sink.addPytorchBin(name, bytes) : sink.addShard(name, bytes)), name);
  // streaming converts the linear weights as they arrive: for building a model (models.ts), not for
  // rewriting the checkpoint (`t5-web convert` keeps every tensor as stored)
  const stream = opts.stream ?? false;
  for (const { single, index, pytorch } of WEIGHT_LAYOUTS) {
    const streamed = stream && !pytorch ? await streamShard(src, sink, single) : "cannot";
    if (streamed === "streamed") return [single];
    const bytes = streamed === "absent" ? undefined : await src.read(single);
    if (bytes !== undefined) {
      add(single, bytes, pytorch);
      return [single];
    }
    const idx = await src.read(index);
    if (idx === undefined) continue;
    const text = decodeText(idx);
    checkJson(text, joinLocation(src.location, index));
    const files = wasmCall(() => shardFilesFromIndex(text), index);
    for (const f of files) {
      if (f === "" || f.includes("/") || f.includes("\\") || f === "." || f === "..") {
        throw new BadWeightsError(`${index} names ${JSON.stringify(f)}, not a file next to it`, { path: index });
      }
      const streamed = stream && !pytorch ? await streamShard(src, sink, f) : "cannot";
      if (streamed === "streamed") continue;
      if (streamed === "absent") throw new MissingFileError(src.missingNote?.(f) ?? `${f} not found in ${src.location}`, { path: joinLocation(src.location, f) });
      add(f, await readRequired(src, f), pytorch);
    }
    return files;
  }
  const reads = "model.safetensors, model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json, or a .gguf file (model_file_name)";
  for (const onnx of ONNX_FILES) {
    if (await src.exists?.(onnx)) {
      throw new OnnxOnlyError(
        `${src.location} has only ONNX weights (${joinLocation(src.location, onnx)}); t5-web runs its own engine and reads ${reads}: use the original (non-ONNX) repository of the model, or convert it`,
        { path: joinLocation(src.location, onnx) },
      );
    }
  }
  const note = src.missingNote?.("model.safetensors");
  throw new MissingFileError(
    `${note ? note + "; " : ""}no weights in ${src.location}: neither model.safetensors nor model.safetensors.index.json, nor pytorch_model.bin or pytorch_model.bin.index.json (tried ${joinLocation(src.location, "model.safetensors")}); t5-web also reads .gguf files (model_file_name)`,
    { path: src.location },
  );
}

/** The files of transformers.js-style ONNX repositories (Xenova/…, onnx-community/…), for the ONNX-only error. */
const ONNX_FILES = ["onnx/model.onnx", "onnx/encoder_model.onnx", "onnx/decoder_model_merged.onnx", "model.onnx"];

const isGgufName = (name: string) => /\.gguf$/i.test(name);

/**
 * The GGUF checkpoint `source` names, if any: `model_file_name` (a `.gguf` file in the directory /
 * base URL / in-memory files), a path or URL ending in `.gguf`, a `.gguf` `File`, or in-memory
 * files with one `.gguf` file and no safetensors / PyTorch weights. Returns where to read it from and its name;
 * `undefined` for a Hub-layout checkpoint.
 */
export function ggufSource(source: ModelSource, modelFileName?: string): { source: ModelSource; file: string } | undefined {
  if (modelFileName !== undefined && !isGgufName(modelFileName)) {
    throw new BadConfigError(`model_file_name ${JSON.stringify(modelFileName)}: only .gguf files are loaded by name`);
  }
  if (typeof Blob !== "undefined" && source instanceof Blob) {
    const name = modelFileName ?? (source as File).name;
    if (typeof name !== "string" || !isGgufName(name)) throw new T5WebError("a single model file must be a .gguf file");
    return { source: new Map([[name, source]]), file: name };
  }
  if (typeof source === "string" || source instanceof URL) {
    if (modelFileName !== undefined) return { source, file: modelFileName };
    const isUrl = source instanceof URL || /^[a-z][a-z0-9+.-]*:\/\//i.test(source);
    if (isUrl) {
      const url = new URL(source);
      const last = url.pathname.slice(url.pathname.lastIndexOf("/") + 1);
      if (!isGgufName(last)) return undefined;
      return { source: new URL("./", url), file: decodeURIComponent(last) };
    }
    if (!isGgufName(source)) return undefined;
    const i = Math.max(source.lastIndexOf("/"), source.lastIndexOf("\\"));
    return { source: i >= 0 ? source.slice(0, i) || "/" : ".", file: source.slice(i + 1) };
  }
  const files = toFileMap(source);
  if (!files) return undefined;
  if (modelFileName !== undefined) return { source: files, file: modelFileName };
  const ggufs = [...files.keys()].filter(isGgufName);
  const hubWeights = WEIGHT_LAYOUTS.some(({ single, index }) => files.has(single) || files.has(index));
  if (hubWeights || ggufs.length !== 1) return undefined;
  return { source: files, file: ggufs[0]! };
}
