import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { MissingFileError, PermissionDeniedError, T5WebError } from "../ts/src/errors.js";
import { isNotFound, isPermissionDenied, readEnv, readError } from "../ts/src/runtime-env.js";

const g = globalThis as { Deno?: unknown };
afterEach(() => {
  delete g.Deno;
});

describe("environment variables without permissions", () => {
  it("Node: readEnv reads process.env", () => {
    process.env.T5_WEB_TEST_VAR = "x";
    expect(readEnv("T5_WEB_TEST_VAR")).toBe("x");
    delete process.env.T5_WEB_TEST_VAR;
    expect(readEnv("T5_WEB_TEST_VAR")).toBeUndefined();
  });

  it("Deno: only a variable --allow-env grants is read; never a throw or a prompt", () => {
    process.env.T5_WEB_TEST_VAR = "x";
    const asked: string[] = [];
    g.Deno = { permissions: { querySync: (d: { variable: string }) => (asked.push(d.variable), { state: "prompt" }) } };
    expect(readEnv("T5_WEB_TEST_VAR")).toBeUndefined();
    expect(asked).toEqual(["T5_WEB_TEST_VAR"]);
    g.Deno = { permissions: { querySync: () => ({ state: "granted" }) } };
    expect(readEnv("T5_WEB_TEST_VAR")).toBe("x");
    g.Deno = { permissions: { querySync: () => { throw new Error("NotCapable"); } } };
    expect(readEnv("T5_WEB_TEST_VAR")).toBeUndefined();
    delete process.env.T5_WEB_TEST_VAR;
  });
});

describe("a refused read is PermissionDeniedError, an absent file MissingFileError", () => {
  it("Deno's NotCapable names the path and the flag", () => {
    g.Deno = {};
    const denied = Object.assign(new Error('Requires read access to "/m/config.json", run again with the --allow-read flag'), { name: "NotCapable" });
    expect(isPermissionDenied(denied)).toBe(true);
    expect(isNotFound(denied)).toBe(false);
    const e = readError(denied, "/m/config.json", "/m");
    expect(e).toBeInstanceOf(PermissionDeniedError);
    expect(e).toBeInstanceOf(T5WebError);
    expect(e).not.toBeInstanceOf(MissingFileError);
    expect(e.code).toBe("PermissionDenied");
    expect(e.path).toBe("/m/config.json");
    expect(e.message).toBe("Deno denied reading /m/config.json: run with --allow-read (or --allow-read=/m)");
    expect(e.message).not.toMatch(/not found/i);
  });

  it("Node: EACCES from the file system (a real unreadable file, unless running as root)", async () => {
    const fs = await import("node:fs/promises");
    const dir = mkdtempSync(join(tmpdir(), "t5-web-perm-"));
    const file = join(dir, "config.json");
    writeFileSync(file, "{}");
    chmodSync(file, 0);
    try {
      const err = await fs.readFile(file).then(() => undefined, (x: unknown) => x);
      if (err === undefined) return; // root reads anything: nothing to check here
      const e = readError(err, file, dir);
      expect(e).toBeInstanceOf(PermissionDeniedError);
      expect(e.message).toBe(`permission denied reading ${file}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const absent = await fs.readFile(join(dir, "nope")).then(() => undefined, (x: unknown) => x);
    expect(isNotFound(absent)).toBe(true);
    expect(readError(absent, "p")).toBeInstanceOf(MissingFileError);
  });
});
