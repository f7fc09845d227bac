/**
 * Where a checkpoint's files come from: a local directory (Node / Bun / Deno with `fs`) or a base
 * URL (http, https, or any URL `fetch` can read) in the Hugging Face Hub layout.
 */

import { BadJsonError, MissingFileError, T5WebError } from "./errors.js";

export interface LoadOptions {
  /** `fetch` to use for URLs (default: the global one), e.g. to add headers. */
  fetch?: typeof globalThis.fetch;
}

export interface FileSource {
  /** The directory or base URL, for messages. */
  readonly location: string;
  /** Bytes of `name`, or `undefined` when the file does not exist. */
  read(name: string): Promise<Uint8Array | undefined>;
}

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === "string";
}

function joinLocation(location: string, name: string): string {
  return location.endsWith("/") ? location + name : `${location}/${name}`;
}

class DirSource implements FileSource {
  constructor(readonly location: string) {}

  async read(name: string): Promise<Uint8Array | undefined> {
    const fs = await import("node:fs/promises");
    const path = await import("node:path");
    try {
      return await fs.readFile(path.join(this.location, name));
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === "ENOENT") return undefined;
      throw new MissingFileError(`cannot read ${path.join(this.location, name)}: ${(e as Error).message}`, {
        path: path.join(this.location, name),
        cause: e,
      });
    }
  }
}

class UrlSource implements FileSource {
  readonly location: string;
  private readonly base: URL;
  constructor(base: URL, private readonly fetchFn: typeof globalThis.fetch) {
    this.base = new URL(base.href.endsWith("/") ? base.href : base.href + "/");
    this.location = this.base.href;
  }

  async read(name: string): Promise<Uint8Array | undefined> {
    const url = new URL(name, this.base);
    let res: Response;
    try {
      res = await this.fetchFn(url);
    } catch (e) {
      throw new MissingFileError(`cannot fetch ${url.href}: ${(e as Error).message}`, { path: url.href, cause: e });
    }
    if (res.status === 404 || res.status === 410) return undefined;
    if (!res.ok) {
      throw new MissingFileError(`cannot fetch ${url.href}: HTTP ${res.status} ${res.statusText}`, { path: url.href });
    }
    return new Uint8Array(await res.arrayBuffer());
  }
}

/**
 * A directory path or a base URL. Strings with a scheme (`https://…`, `file://…`) are URLs; other
 * strings are directory paths under Node, and URLs relative to the page elsewhere.
 */
export async function openSource(dirOrUrl: string | URL, opts: LoadOptions = {}): Promise<FileSource> {
  let url: URL | undefined;
  if (dirOrUrl instanceof URL) url = dirOrUrl;
  else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(dirOrUrl)) url = new URL(dirOrUrl);

  if (isNode() && (url === undefined || url.protocol === "file:")) {
    const { fileURLToPath } = await import("node:url");
    const path = await import("node:path");
    const fs = await import("node:fs/promises");
    const dir = path.resolve(url ? fileURLToPath(url) : (dirOrUrl as string));
    let st;
    try {
      st = await fs.stat(dir);
    } catch {
      throw new MissingFileError(`model directory not found: ${dir}`, { path: dir });
    }
    if (!st.isDirectory()) throw new MissingFileError(`not a directory: ${dir}`, { path: dir });
    return new DirSource(dir);
  }
  if (url === undefined) {
    const base = (globalThis as { location?: { href?: string } }).location?.href;
    if (!base) throw new MissingFileError(`cannot resolve ${String(dirOrUrl)}: not a URL and no filesystem here`);
    url = new URL(dirOrUrl as string, base);
  }
  const fetchFn = opts.fetch ?? globalThis.fetch;
  if (typeof fetchFn !== "function") throw new T5WebError("no fetch() available to load from a URL");
  return new UrlSource(url, fetchFn.bind(globalThis));
}

/** Bytes of a required file. */
export async function readRequired(src: FileSource, name: string): Promise<Uint8Array> {
  const bytes = await src.read(name);
  if (bytes === undefined) {
    throw new MissingFileError(`${name} not found in ${src.location}`, { path: joinLocation(src.location, name) });
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
