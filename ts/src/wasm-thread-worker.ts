/**
 * One thread of the threaded engine build (started by `wasm-threads.ts`): receives the compiled
 * module and the main instance's shared memory, instantiates the module on that memory with its own
 * stack and thread-local storage (the wasm-bindgen glue does this for every instance after the first),
 * says "ready", then joins the engine's CPU pool for good (`workerMain` never returns: the thread
 * waits for work with `memory.atomic.wait`, which workers may do).
 */

import { initSync, workerFailed, workerMain } from "#t5-wasm-threads";

interface Init {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
}

function serve(init: Init, post: (m: unknown) => void): void {
  try {
    initSync({ module: init.module, memory: init.memory });
  } catch (e) {
    post(`instantiation failed: ${String((e as Error)?.message ?? e)}`);
    return;
  }
  post("ready");
  try {
    workerMain();
  } catch (e) {
    // a trap (out of memory, a bug): whoever waits for this thread fails instead of hanging
    workerFailed();
    throw e;
  }
}

const g: { Deno?: unknown; WorkerGlobalScope?: unknown; postMessage?: (m: unknown) => void; addEventListener?: (t: string, f: (e: MessageEvent) => void, o?: { once: boolean }) => void } = globalThis;
// Node and Deno start this as a worker_threads worker (wasm-threads.ts), browsers as a module Web Worker
if (typeof g.Deno === "undefined" && typeof g.WorkerGlobalScope !== "undefined" && typeof g.postMessage === "function") {
  g.addEventListener!("message", (e) => serve(e.data as Init, (m) => g.postMessage!(m)), { once: true });
} else {
  const { parentPort } = await import("node:worker_threads");
  if (!parentPort) throw new Error("t5-web wasm-thread-worker must run in a worker");
  parentPort.once("message", (m: Init) => serve(m, (msg) => parentPort.postMessage(msg)));
}
