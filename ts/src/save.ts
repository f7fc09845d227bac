/**
 * `save_pretrained` of the models: files as name → bytes, written into a directory where there is a file system
 * (Node, Bun, Deno) and returned as a file map everywhere (browsers, workers: keep or upload the map; it loads back
 * with `fromPretrained(map)`).
 */

import { BadInputError } from "./errors.js";

/** A directory path (Node / Bun / Deno) to write the files into. */
export type SaveTarget = string;

/** Write `files` into `dir` (created when missing) when given; returns the files. */
export async function savePretrained(files: Map<string, Uint8Array>, dir: SaveTarget | undefined): Promise<Map<string, Uint8Array>> {
  if (dir === undefined) return files;
  if (typeof dir !== "string" || dir === "") throw new BadInputError("save_pretrained: the directory must be a non-empty path string");
  let fs: typeof import("node:fs/promises");
  let path: typeof import("node:path");
  try {
    fs = await import("node:fs/promises");
    path = await import("node:path");
  } catch (e) {
    throw new BadInputError("save_pretrained(dir) needs a file system (Node, Bun, Deno); call save_pretrained() for the files as a map", { cause: e });
  }
  await fs.mkdir(dir, { recursive: true });
  for (const [name, bytes] of files) await fs.writeFile(path.join(dir, name), bytes);
  return files;
}
