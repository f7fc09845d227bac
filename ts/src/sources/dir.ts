/** A local directory (Node / Bun / Deno with `node:fs`). */

import { MissingFileError } from "../errors.js";
import { isNotFound, isPermissionDenied, readError } from "../runtime-env.js";
import { Reporter, STREAM_PIECE_BYTES, type ByteStream, type FileSource } from "./source.js";

export class DirSource implements FileSource {
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

/** The first of `candidates` that is a directory (Node / Deno), with the paths tried. */
export async function findLocalDir(candidates: string[]): Promise<{ dir?: string; tried: string[]; notDir?: string }> {
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
