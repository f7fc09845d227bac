/**
 * What the facade asks of its runtime without needing a permission: environment variables are read only where
 * they can be read without an error or a prompt (Deno: only when `--allow-env` already grants the variable), and
 * file-system errors are told apart into "absent" and "refused".
 */

import { MissingFileError, PermissionDeniedError } from "./errors.js";

interface DenoPermissions {
  querySync?(desc: { name: "env"; variable: string }): { state: string };
}

/** `process.env[name]` where reading it needs no permission; `undefined` otherwise (never throws, never prompts). */
export function readEnv(name: string): string | undefined {
  const g = globalThis as { Deno?: { permissions?: DenoPermissions }; process?: { env?: Record<string, string | undefined> } };
  try {
    if (g.Deno !== undefined) {
      // Deno: reading an unlisted variable throws (or prompts on a terminal); ask first
      const state = g.Deno.permissions?.querySync?.({ name: "env", variable: name }).state;
      if (state !== "granted") return undefined;
    }
    return g.process?.env?.[name];
  } catch {
    return undefined;
  }
}

/** Whether an error thrown by `node:fs` (in Node, Bun or Deno) means the path does not exist. */
export function isNotFound(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return code === "ENOENT" || code === "ENOTDIR" || (e as { name?: unknown }).name === "NotFound";
}

/** Whether an error thrown by `node:fs` means reading was refused (Deno's permissions, or the OS's). */
export function isPermissionDenied(e: unknown): boolean {
  const { code, name } = e as { code?: unknown; name?: unknown };
  return name === "NotCapable" || name === "PermissionDenied" || code === "EACCES" || code === "EPERM";
}

/**
 * The typed error for a failed read of `path`: {@link PermissionDeniedError} naming the path (and, under Deno, the
 * flag that grants it; `dir` is the model directory the flag should cover), else {@link MissingFileError}.
 */
export function readError(e: unknown, path: string, dir: string = path): MissingFileError | PermissionDeniedError {
  if (isPermissionDenied(e)) {
    const deno = (globalThis as { Deno?: unknown }).Deno !== undefined;
    const how = deno ? `Deno denied reading ${path}: run with --allow-read (or --allow-read=${dir})` : `permission denied reading ${path}`;
    return new PermissionDeniedError(how, { path, cause: e });
  }
  return new MissingFileError(`cannot read ${path}: ${(e as Error)?.message ?? String(e)}`, { path, cause: e });
}
