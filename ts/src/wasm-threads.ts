/**
 * The threaded engine build's workers (see `wasm.ts`): each one instantiates the same compiled module
 * on the main instance's shared memory (`wasm-thread-worker.ts`) and joins the engine's CPU pool
 * (`crates/t5-core/src/pool.rs`), where it waits for work with `memory.atomic.wait`.
 * Node and Deno: `worker_threads` (unref'd: an idle pool never keeps the process alive; Deno's Web Workers
 * cannot be); browsers: module Web Workers. The worker script is `wasm-thread-worker.js` next to this module (the npm
 * bundles and tsc's `dist/`), or, under vitest (sources), tsc's `dist/` copy.
 */

import { T5WebError } from "./errors.js";

interface Started {
  /** Resolves once the worker has instantiated the module (it then serves the pool forever). */
  ready: Promise<void>;
}

function isNode(): boolean {
  const g = globalThis as { process?: { versions?: { node?: string } }; Deno?: unknown };
  return typeof g.process?.versions?.node === "string" && typeof g.Deno === "undefined";
}

function isDeno(): boolean {
  return typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
}

let scriptUrl: Promise<URL> | undefined;

/** The worker script: next to this module, or (sources under vitest) tsc's `dist/` copy. */
async function workerScript(): Promise<URL> {
  const here = new URL("./wasm-thread-worker.js", import.meta.url);
  if (!isNode() || !here.pathname.endsWith("/ts/src/wasm-thread-worker.js")) return here;
  const fs = await import("node:fs/promises");
  const dist = new URL("../../dist/wasm-thread-worker.js", import.meta.url);
  try {
    await fs.access(dist);
    return dist;
  } catch {
    throw new T5WebError(`t5-web: the threaded engine's worker script ${dist.pathname} is not built; run \`npm run build:ts\``);
  }
}

interface Init {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
}

function fail(why: unknown): T5WebError {
  return new T5WebError(`t5-web: a thread of the WebAssembly engine failed to start: ${String((why as Error)?.message ?? why)}`, { cause: why });
}

/**
 * The Node options a worker thread inherits: the parent's, less `--input-type` (allowed only with string input:
 * a worker started from `node --input-type=module -e "…"` fails with ERR_INPUT_TYPE_NOT_ALLOWED) and the V8 flags
 * a worker refuses (they hold for the whole process, its workers included).
 */
export function workerExecArgv(): string[] {
  const argv = typeof process === "undefined" ? [] : process.execArgv;
  // --input-type: ERR_INPUT_TYPE_NOT_ALLOWED in a worker; per-process V8 flags (--expose-gc, the wasm feature
  // flags such as Node 20's --experimental-wasm-relaxed-simd): ERR_WORKER_INVALID_EXEC_ARGV (`node --expose-gc`
  // could not start the threaded build)
  const perProcess = (a: string) => a.startsWith("--input-type") || /^--expose[-_]gc$/.test(a) || /^--(no-)?(experimental[-_])?wasm[-_]/.test(a);
  return argv.filter((a, i) => !perProcess(a) && argv[i - 1] !== "--input-type");
}

/**
 * `argv` less the options that `e`, a worker's `ERR_WORKER_INVALID_EXEC_ARGV`, names (`undefined` for another
 * error). V8's options hold for the whole process and a worker refuses every one of them (`node
 * --max-old-space-size=4096`, `--stack-size`, `--no-opt`, …): too many to list, so the worker is started again
 * without those Node names. Where the message names none of `argv` (another Node's wording), none is kept.
 */
export function withoutRefused(argv: readonly string[], e: unknown): string[] | undefined {
  if ((e as { code?: unknown } | undefined)?.code !== "ERR_WORKER_INVALID_EXEC_ARGV") return undefined;
  const named = /flags: (.*)$/.exec(String((e as Error).message))?.[1]?.split(", ") ?? [];
  const kept = argv.filter((a) => !named.includes(a));
  return kept.length < argv.length ? kept : [];
}

async function startOne(init: Init): Promise<Started> {
  scriptUrl ??= workerScript();
  const url = await scriptUrl;
  // Deno too: its Web Workers keep the process alive for good, its node:worker_threads ones can be unref'd
  if (isNode() || isDeno()) {
    const { Worker } = await import("node:worker_threads");
    const argv = workerExecArgv();
    let w: InstanceType<typeof Worker>;
    try {
      w = new Worker(url, { execArgv: argv });
    } catch (e) {
      const fewer = withoutRefused(argv, e);
      if (fewer === undefined) throw e;
      w = new Worker(url, { execArgv: fewer });
    }
    // referenced until it is ready (the caller awaits it), then unref'd: an idle pool never keeps the process
    // alive (after the "message" listener is gone: one added after unref() refs the worker again, nodejs/node#53036)
    const ready = new Promise<void>((resolve, reject) => {
      w.once("message", (m: unknown) => {
        if (m !== "ready") return reject(fail(m));
        w.unref();
        resolve();
      });
      w.once("error", (e) => reject(fail(e)));
    });
    w.postMessage(init);
    return { ready };
  }
  const w = new Worker(url, { type: "module", name: "t5-web-thread" });
  const ready = new Promise<void>((resolve, reject) => {
    w.addEventListener("message", (e: MessageEvent) => (e.data === "ready" ? resolve() : reject(fail(e.data))), { once: true });
    w.addEventListener("error", (e: ErrorEvent) => reject(fail(e.message)), { once: true });
  });
  w.postMessage(init);
  return { ready };
}

let started = 0;
let pending: Promise<void> = Promise.resolve();

/** Workers started so far (the engine's pool has this many + the calling thread). */
export function workersStarted(): number {
  return started;
}

/** Start workers until `count` run (none are ever stopped); resolves when all are in the pool. */
export function ensureWorkers(count: number, init: Init): Promise<void> {
  const run = pending.then(async () => {
    const more: Started[] = [];
    while (started + more.length < count) more.push(await startOne(init));
    await Promise.all(more.map((s) => s.ready));
    started += more.length;
  });
  // a failure is this call's; the next call tries again
  pending = run.catch(() => {});
  return run;
}
