/**
 * Hugging Face Hub ids and the global settings of loading, as transformers.js's `env`.
 *
 * `fromPretrained("google-t5/t5-small")` (or a bare `"t5-small"`) reads
 * `{remoteHost}{remotePathTemplate}{file}` with `{model}` → the id and `{revision}` → the revision
 * (default `main`): `https://huggingface.co/google-t5/t5-small/resolve/main/config.json`.
 *
 * Which strings are Hub ids (as transformers.js decides): a string with a scheme (`https://…`,
 * `file://…`) is a URL; otherwise, where local models are allowed (`env.allowLocalModels`, the default
 * in Node / Deno / Bun), the string is first tried as a local directory — as given (relative to the
 * working directory), then under `env.localModelPath` — and only when no such directory exists, a
 * string shaped like a Hub id (`name` or `owner/name`: letters, digits, `-`, `_`, `.`; at most 96
 * characters per part) is fetched from the Hub; when `env.allowRemoteModels` is false or the call
 * passes `local_files_only: true`, only from the download cache (cache.ts), never the network. In browsers (no filesystem) a Hub-shaped id goes to the Hub, other
 * strings are URLs relative to the page; with `env.allowLocalModels` the page's
 * `{localModelPath}{id}/` is tried first.
 */

import { MissingFileError } from "./errors.js";
import { readEnv } from "./runtime-env.js";

/** transformers.js's `env`: global defaults of every load (each also settable per call, see `LoadOptions`). */
export interface Env {
  /** Host of Hub ids (default `https://huggingface.co/`). */
  remoteHost: string;
  /** Path of a Hub repository's files under `remoteHost` (default `{model}/resolve/{revision}/`). */
  remotePathTemplate: string;
  /** Whether Hub ids may be fetched (default true). */
  allowRemoteModels: boolean;
  /** Whether strings are looked up as local directories first (default: true where there is a filesystem,
   * false in browsers, as transformers.js). */
  allowLocalModels: boolean;
  /** Where local models are looked up after the path as given (default: `""` with a filesystem, `/models/` in
   * browsers). */
  localModelPath: string;
  /** Cache downloads in the browser's Cache API (default true where `caches` exists). */
  useBrowserCache: boolean;
  /** Cache downloads in a directory (default true in Node; see {@link Env.cacheDir}). */
  useFSCache: boolean;
  /** The download cache directory; `null` (default): the `T5_WEB_CACHE_DIR` environment variable, else the user
   * cache directory (`$XDG_CACHE_HOME/t5-web`, `~/.cache/t5-web`, `%LOCALAPPDATA%\t5-web\cache`). */
  cacheDir: string | null;
}

function hasFs(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === "string";
}

/** The global settings (mutable, like transformers.js's `env`). */
export const env: Env = {
  remoteHost: "https://huggingface.co/",
  remotePathTemplate: "{model}/resolve/{revision}/",
  allowRemoteModels: true,
  allowLocalModels: hasFs(),
  localModelPath: hasFs() ? "" : "/models/",
  useBrowserCache: typeof (globalThis as { caches?: unknown }).caches !== "undefined",
  useFSCache: hasFs(),
  cacheDir: null,
};

/** Per-call Hub settings (transformers.js's `from_pretrained` options). */
export interface HubOptions {
  /** Branch, tag or commit of a Hub id (default `main`). */
  revision?: string;
  /** Never ask the Hub (transformers' `local_files_only`): local directories, and for Hub ids only the files already
   * in the download cache (an earlier load put them there); a file not cached is a `MissingFileError` naming the id,
   * the file and its URL. `env.allowRemoteModels = false` reads Hub ids from the cache the same way. URLs given as
   * URLs are fetched as usual. */
  local_files_only?: boolean;
}

/** transformers.js's `isValidHfModelId`: `name` or `owner/name`. */
export function isHubId(s: string): boolean {
  return /^(\b[\w\-.]+\b\/)?\b[\w\-.]{1,96}\b$/.test(s) && !s.includes("..") && !s.startsWith(".");
}

/** The base URL of a Hub id's files (with a trailing `/`). */
export function hubBaseUrl(id: string, revision = "main"): URL {
  const path = env.remotePathTemplate.replaceAll("{model}", id).replaceAll("{revision}", encodeURIComponent(revision));
  const host = env.remoteHost.endsWith("/") ? env.remoteHost : env.remoteHost + "/";
  const url = new URL(path.replace(/^\/+/, ""), host);
  if (!url.href.endsWith("/")) return new URL(url.href + "/");
  return url;
}

/** Why a string could not be loaded, when it is neither a local directory nor (allowed to be) a Hub id. */
export function notFound(source: string, tried: string[], opts: HubOptions): MissingFileError {
  const where = tried.length > 0 ? ` (looked in ${tried.join(", ")})` : "";
  let why = "";
  if (isHubId(source)) {
    if (opts.local_files_only) why = "; local_files_only is set and no download cache is in use, so the Hub was not asked";
    else if (!env.allowRemoteModels) why = "; env.allowRemoteModels is false and no download cache is in use, so the Hub was not asked";
  } else {
    why = "; it is not a Hub id (owner/name) either";
  }
  return new MissingFileError(`model directory not found: ${source}${where}${why}`, { path: tried[0] ?? source });
}

/** The user cache directory of this platform, or `undefined` when it cannot be found (no permission to read the
 * environment, as Deno without `--allow-env`). */
export async function defaultCacheDir(): Promise<string | undefined> {
  const procEnv = readEnv;
  const own = procEnv("T5_WEB_CACHE_DIR");
  if (own) return own;
  try {
    const path = await import("node:path");
    const platform = (globalThis as { process?: { platform?: string } }).process?.platform;
    if (platform === "win32") {
      const local = procEnv("LOCALAPPDATA");
      return local ? path.join(local, "t5-web", "cache") : undefined;
    }
    const xdg = procEnv("XDG_CACHE_HOME");
    if (xdg) return path.join(xdg, "t5-web");
    const home = procEnv("HOME");
    if (home) return path.join(home, ".cache", "t5-web");
    const os = await import("node:os");
    return path.join(os.homedir(), ".cache", "t5-web");
  } catch {
    return undefined;
  }
}
