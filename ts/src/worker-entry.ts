/**
 * The worker side of {@link createGenerationWorker}: a Web Worker (browsers, module worker) or a
 * Node `worker_threads` worker. Loads one pipeline, then answers `generate` requests, streaming
 * tokens back. Cancellation: the main side sets a flag in a SharedArrayBuffer, checked after every
 * token (where SharedArrayBuffer is unavailable, the main side terminates the worker instead).
 */

import { pipeline, type Text2TextCallOptions, type Text2TextGenerationPipeline } from "./pipeline.js";
import type { FromWorker, ToWorker } from "./worker-protocol.js";
import type { ProgressInfo } from "./files.js";

interface Port {
  post(msg: FromWorker): void;
  listen(fn: (msg: ToWorker) => void): void;
}

async function port(): Promise<Port> {
  const g: { postMessage?: (m: unknown) => void; addEventListener?: (t: string, f: (e: MessageEvent) => void) => void; WorkerGlobalScope?: unknown } = globalThis;
  if (typeof g.WorkerGlobalScope !== "undefined" && typeof g.postMessage === "function") {
    return {
      post: (m) => g.postMessage!(m),
      listen: (fn) => g.addEventListener!("message", (e) => fn(e.data as ToWorker)),
    };
  }
  const { parentPort } = await import("node:worker_threads");
  if (!parentPort) throw new Error("t5-web worker-entry must run in a worker");
  return { post: (m) => parentPort.postMessage(m), listen: (fn) => parentPort.on("message", fn) };
}

/** The streamer interface of `generate` (models.ts). */
interface Streamer {
  put(value: number[][]): void;
  end(): void;
}

const io = await port();
let pipe: Text2TextGenerationPipeline | undefined;
let queue: Promise<unknown> = Promise.resolve();

function fail(id: number | undefined, e: unknown, aborted = false) {
  const err = e as { name?: string; message?: string };
  io.post({ type: "error", id, name: err?.name ?? "Error", message: err?.message ?? String(e), aborted });
}

async function handle(msg: ToWorker): Promise<void> {
  if (msg.type === "load") {
    try {
      let bytes = 0;
      pipe = await pipeline("text2text-generation", msg.model as Parameters<typeof pipeline>[1], {
        ...msg.options,
        progress_callback: (info: ProgressInfo) => {
          if (info.status === "progress" && info.loaded === info.total) bytes += info.total;
          io.post({ type: "progress", info });
        },
      });
      const device = (pipe.model as { device?: string }).device ?? "cpu";
      io.post({ type: "loaded", info: { location: pipe.model.location, bytes, backend: device === "cpu" ? "cpu (wasm simd128)" : device } });
    } catch (e) {
      fail(undefined, e);
    }
    return;
  }
  if (msg.type === "generate") {
    const { id, flag } = msg;
    if (!pipe) return fail(id, new Error("no model loaded"));
    const tok = pipe.tokenizer;
    const ac = new AbortController();
    const streamed: number[] = [];
    let prompt = true;
    try {
      const options: Text2TextCallOptions & { signal: AbortSignal; streamer: Streamer } = {
        ...msg.options,
        signal: ac.signal,
        streamer: {
          put(value: number[][]) {
            if (flag && Atomics.load(flag, 0) !== 0) ac.abort(new DOMException("generation aborted", "AbortError"));
            // the first put is the prompt (the decoder start token), not a generated token
            if (prompt) return void (prompt = false);
            if (!msg.stream) return;
            const t = value[0]?.[0];
            if (t === undefined) return;
            streamed.push(t);
            const text = tok.decode(streamed, { skip_special_tokens: true, clean_up_tokenization_spaces: false });
            io.post({ type: "token", id, index: streamed.length - 1, tokens: value.map((r) => r[0]!), text });
          },
          end() {},
        },
      };
      const output = await pipe(msg.texts, options);
      io.post({ type: "result", id, output });
    } catch (e) {
      fail(id, e, ac.signal.aborted);
    }
  }
}

io.listen((msg) => {
  queue = queue.then(() => handle(msg));
});
