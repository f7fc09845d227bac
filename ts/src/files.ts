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
 *
 * The sources live in `sources/` (`source.ts`: the `FileSource` interface and load options; `dir.ts`, `url.ts`,
 * `memory.ts`); this file opens one ({@link openSource}) and reads a checkpoint's files through it.
 */

import { openCache } from "./cache.js";
import { BadConfigError, BadInputError, BadJsonError, BadWeightsError, MissingFileError, OnnxOnlyError, T5WebError, wasmCall } from "./errors.js";
import { env, hubBaseUrl, isHubId, notFound } from "./hub.js";
import { DirSource, findLocalDir } from "./sources/dir.js";
import { MemorySource, toFileMap } from "./sources/memory.js";
import { ENGINE_PIECE_BYTES, joinLocation, Reporter, views, type FileSource, type LoadOptions, type ModelSource } from "./sources/source.js";
import { UrlSource } from "./sources/url.js";

export {
  STREAM_CACHE_MAX_BYTES,
  STREAM_PIECE_BYTES,
  type ByteStream,
  type FileMap,
  type FileSource,
  type LoadOptions,
  type ModelSource,
  type ProgressCallback,
  type ProgressInfo,
} from "./sources/source.js";
export { readBody } from "./sources/url.js";

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === "string";
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
  for await (const chunk of st.chunks) {
    for (const piece of views(chunk, ENGINE_PIECE_BYTES)) wasmCall(() => sink.pushShard!(piece), name);
  }
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
