/**
 * The download cache for files loaded from http(s) URLs.
 *
 * - Node: a directory, on by default (`env.useFSCache`): the `cache_dir` option, else `env.cacheDir`,
 *   else the `T5_WEB_CACHE_DIR` environment variable, else the user cache directory
 *   (`$XDG_CACHE_HOME/t5-web`, `~/.cache/t5-web`, `%LOCALAPPDATA%\t5-web\cache`). Each entry is
 *   `<sha256(url)>.bin` plus a `<sha256(url)>.json` holding the URL, size and SHA-256 of the bytes.
 *   Deno uses a directory only when one is named (option, `env.cacheDir` or the variable).
 * - Browsers, Deno, workers: the Cache API (`caches.open(cache_name)`, default "t5-web"; `env.useBrowserCache`);
 *   the size and SHA-256 travel in the stored response's headers.
 * - `use_cache: false` (per call) turns caching off; `env.useFSCache = false` / `env.useBrowserCache = false`
 *   globally.
 *
 * Every hit is checked against its recorded size and SHA-256; an entry that does not match (a
 * truncated write, a corrupted disk, a tampered cache) is deleted and the file fetched again.
 * Cache failures (quota, a read-only disk, a runtime without a usable cache) never fail a load: the
 * file is simply fetched.
 */

import { BadInputError } from "./errors.js";
import { defaultCacheDir, env } from "./hub.js";
import { readEnv } from "./runtime-env.js";

export interface CacheOptions {
  /** Use the download cache (default true; see `env.useFSCache` / `env.useBrowserCache`). */
  use_cache?: boolean;
  /** Node / Deno: the cache directory (default: `env.cacheDir`, the `T5_WEB_CACHE_DIR` environment variable, the
   * user cache directory). */
  cache_dir?: string;
  /** Cache API: the cache's name (default "t5-web"). */
  cache_name?: string;
}

export interface FileCache {
  /** Verified bytes for `url`, or `undefined` (absent or corrupted: corrupted entries are removed). */
  get(url: string): Promise<Uint8Array | undefined>;
  put(url: string, bytes: Uint8Array): Promise<void>;
  /** Whether an entry for `url` is stored (not verified: {@link get} checks it). */
  has(url: string): Promise<boolean>;
}

/** Environment variable naming the Node cache directory. */
export const CACHE_DIR_ENV = "T5_WEB_CACHE_DIR";

function hex(buf: ArrayBuffer): string {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256(bytes: Uint8Array | string): Promise<string> {
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  return hex(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
}

function isDeno(): boolean {
  return typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
}

function hasNodeFs(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === "string";
}

class DirCache implements FileCache {
  constructor(private readonly dir: string) {}

  private async paths(url: string) {
    const path = await import("node:path");
    const key = await sha256(url);
    return { bin: path.join(this.dir, `${key}.bin`), meta: path.join(this.dir, `${key}.json`) };
  }

  async get(url: string): Promise<Uint8Array | undefined> {
    const fs = await import("node:fs/promises");
    const { bin, meta } = await this.paths(url);
    let info: { url?: string; size?: number; sha256?: string };
    let bytes: Uint8Array;
    try {
      info = JSON.parse(await fs.readFile(meta, "utf8")) as typeof info;
      bytes = await fs.readFile(bin);
    } catch (e) {
      if ((e as { code?: string }).code === "ENOENT") return undefined;
      await this.remove(bin, meta);
      return undefined;
    }
    if (info.url !== url || info.size !== bytes.byteLength || info.sha256 !== (await sha256(bytes))) {
      await this.remove(bin, meta);
      return undefined;
    }
    return bytes;
  }

  async has(url: string): Promise<boolean> {
    const fs = await import("node:fs/promises");
    const { bin, meta } = await this.paths(url);
    return (await fs.stat(meta).catch(() => undefined)) !== undefined && (await fs.stat(bin).catch(() => undefined)) !== undefined;
  }

  private async remove(...files: string[]) {
    const fs = await import("node:fs/promises");
    for (const f of files) await fs.rm(f, { force: true }).catch(() => undefined);
  }

  async put(url: string, bytes: Uint8Array): Promise<void> {
    try {
      const fs = await import("node:fs/promises");
      const { bin, meta } = await this.paths(url);
      await fs.mkdir(this.dir, { recursive: true });
      const tmp = `${bin}.${Math.random().toString(36).slice(2)}.tmp`;
      await fs.writeFile(tmp, bytes);
      await fs.rename(tmp, bin);
      // the metadata is written last: an entry without it is a miss
      await fs.writeFile(meta, JSON.stringify({ url, size: bytes.byteLength, sha256: await sha256(bytes) }));
    } catch {
      // a cache that cannot be written is no cache
    }
  }
}

const SIZE_HEADER = "x-t5-web-size";
const HASH_HEADER = "x-t5-web-sha256";

class CacheApiCache implements FileCache {
  constructor(private readonly cache: Cache) {}

  async get(url: string): Promise<Uint8Array | undefined> {
    let res: Response | undefined;
    try {
      res = await this.cache.match(url);
    } catch {
      return undefined;
    }
    if (!res) return undefined;
    try {
      const bytes = new Uint8Array(await res.arrayBuffer());
      if (Number(res.headers.get(SIZE_HEADER)) === bytes.byteLength && res.headers.get(HASH_HEADER) === (await sha256(bytes))) {
        return bytes;
      }
    } catch {
      // unreadable entry: treat as corrupted
    }
    await this.cache.delete(url).catch(() => false);
    return undefined;
  }

  async has(url: string): Promise<boolean> {
    try {
      return (await this.cache.match(url)) !== undefined;
    } catch {
      return false;
    }
  }

  async put(url: string, bytes: Uint8Array): Promise<void> {
    try {
      const headers = {
        "content-type": "application/octet-stream",
        "content-length": String(bytes.byteLength),
        [SIZE_HEADER]: String(bytes.byteLength),
        [HASH_HEADER]: await sha256(bytes),
      };
      await this.cache.put(url, new Response(bytes as Uint8Array<ArrayBuffer>, { headers }));
    } catch {
      // quota exceeded, or a runtime whose Cache API does not store: no cache
    }
  }
}

/** The cache for these options in this runtime, or `undefined` for none. */
export async function openCache(opts: CacheOptions): Promise<FileCache | undefined> {
  if (opts.use_cache !== undefined && typeof opts.use_cache !== "boolean") {
    throw new BadInputError(`use_cache must be a boolean, got ${JSON.stringify(opts.use_cache)}`);
  }
  if (opts.cache_dir !== undefined && (typeof opts.cache_dir !== "string" || opts.cache_dir === "")) {
    throw new BadInputError(`cache_dir must be a non-empty string, got ${JSON.stringify(opts.cache_dir)}`);
  }
  if (opts.use_cache === false) return undefined;
  if (hasNodeFs()) {
    if (opts.cache_dir) return new DirCache(opts.cache_dir);
    if (env.useFSCache) {
      const dir = env.cacheDir ?? readEnv(CACHE_DIR_ENV) ?? (isDeno() ? undefined : await defaultCacheDir());
      if (dir) return new DirCache(dir);
    }
  }
  const caches = (globalThis as { caches?: CacheStorage }).caches;
  if (env.useBrowserCache && typeof caches?.open === "function" && typeof crypto?.subtle?.digest === "function") {
    try {
      return new CacheApiCache(await caches.open(opts.cache_name ?? "t5-web"));
    } catch {
      return undefined;
    }
  }
  return undefined;
}
