/**
 * Writing a checkpoint's files (`save_pretrained`): into a directory where there is a filesystem (Node, Deno, Bun),
 * or handed back as a file map (name → bytes) anywhere, which `from_pretrained` loads like a directory.
 */

import { BadInputError, MissingFileError } from "./errors.js";

function hasFs(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === "string";
}

/** Write `files` into `directory` (created if needed) and return their paths; without a directory, the file map. */
export async function saveFiles(files: Record<string, string | Uint8Array>, directory?: string): Promise<string[] | Record<string, Uint8Array>> {
  const bytes = Object.fromEntries(Object.entries(files).map(([k, v]) => [k, typeof v === "string" ? new TextEncoder().encode(v) : v]));
  if (directory === undefined) return bytes;
  if (typeof directory !== "string" || directory === "") throw new BadInputError(`save_pretrained: the directory must be a non-empty string, got ${JSON.stringify(directory)}`);
  if (!hasFs()) throw new BadInputError("save_pretrained: no filesystem in this runtime; call save_pretrained() without a directory to get the files as a map");
  const fs = await import("node:fs/promises");
  const path = await import("node:path");
  const out: string[] = [];
  try {
    await fs.mkdir(directory, { recursive: true });
    for (const [name, b] of Object.entries(bytes)) {
      const file = path.join(directory, name);
      await fs.writeFile(file, b);
      out.push(file);
    }
  } catch (e) {
    throw new MissingFileError(`save_pretrained: cannot write into ${directory}: ${(e as Error).message}`, { path: directory, cause: e });
  }
  return out;
}
