/**
 * Generation off the main thread: {@link createGenerationWorker} starts a Web Worker (browsers) or a
 * `worker_threads` worker (Node) running the same package, loads a model there, and generates on
 * request, streaming tokens back, so that a page (or a server's event loop) stays responsive.
 *
 * ```ts
 * const gen = await createGenerationWorker("https://host/t5-small/");
 * const ac = new AbortController();
 * const [out] = await gen.generate("translate English to German: Hi", { max_new_tokens: 40, signal: ac.signal,
 *   on_token: ({ text }) => console.log(text) });
 * gen.terminate();
 * ```
 *
 * Settings: the worker loads with a copy of the main thread's `env` (hub.ts: `remoteHost`, `remotePathTemplate`,
 * `allowRemoteModels`, `allowLocalModels`, `localModelPath`, `useFSCache`, `cacheDir`, `useBrowserCache`) taken
 * when `createGenerationWorker` is called; later changes of `env` do not reach a running worker (nor a restarted
 * one: it loads as the first did). The threaded engine's pool workers (wasm-threads.ts) read no files, so `env`
 * does not concern them.
 *
 * Cancelling: aborting the `signal` stops the running generation after its current token when
 * `SharedArrayBuffer` is available (Node; browsers on cross-origin-isolated pages): the flag is
 * shared memory the worker checks after every token. Elsewhere the worker is terminated and
 * restarted (the model is loaded again on the next call). Either way the promise rejects with the
 * signal's reason (an `AbortError`).
 */

import { fromWasmError, T5WebError } from "./errors.js";
import { workerExecArgv } from "./wasm-threads.js";
import { T5Config } from "./config.js";
import { env, type Env } from "./hub.js";
import type { Engine, EngineForwardInput, EngineInput, EngineOptions, RawForward, RawGenerate, StepCallback } from "./engine.js";
import type { LoadOptions, ModelSource, ProgressCallback } from "./files.js";
import { T5ForConditionalGeneration } from "./models.js";
import type { Text2TextCallOptions, Text2TextGenerationOutput } from "./pipeline.js";
import type { EngineReply, EngineRequest, FromWorker, ToWorker, WorkerModelInfo } from "./worker-protocol.js";

export type { WorkerModelInfo } from "./worker-protocol.js";

export interface TokenEvent {
  /** Index of the generated token. */
  index: number;
  /** The new token of each row of the current batch. */
  tokens: number[];
  /** The text of row 0 so far (special tokens skipped). */
  text: string;
}

export interface WorkerGenerateOptions extends Omit<Text2TextCallOptions, "streamer" | "signal"> {
  signal?: AbortSignal;
  on_token?: (event: TokenEvent) => void;
}

export interface WorkerOptions extends Omit<LoadOptions, "fetch"> {
  /** Passed to `fromPretrained` in the worker ("cpu" | "webgpu" | "auto" where the engine has WebGPU). */
  device?: string;
  /** Passed to `fromPretrained` in the worker: storage of the weights ("fp32" | "fp16" | "bf16" | "q8" | "q4"). */
  dtype?: string;
  /** Worker script to run (default: the package's own `node-worker.js` / `browser-worker.js`). */
  workerUrl?: URL | string;
}

export interface GenerationWorker {
  /** What was loaded: location, bytes, backend. */
  readonly info: WorkerModelInfo;
  /**
   * The worker's model behind the model API of the main thread: `await model.generate(inputs, options)`,
   * `generateStream`, `await model.forward(inputs)` / `await model(inputs)`, with the same results as a model loaded
   * here (every option, streamer, callback and `AbortSignal`: they run on this side, the steps in the worker).
   * The synchronous methods are not available (the model is in another thread).
   */
  readonly model: T5ForConditionalGeneration;
  generate(texts: string | string[], options?: WorkerGenerateOptions): Promise<Text2TextGenerationOutput[]>;
  terminate(): void;
}

interface Endpoint {
  post(msg: ToWorker): void;
  onMessage(fn: (msg: FromWorker) => void): void;
  onError(fn: (e: unknown) => void): void;
  terminate(): void;
  /** Node: keep the process alive while work is pending (an idle worker does not). */
  busy(on: boolean): void;
}

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === "string" && typeof (globalThis as { Deno?: unknown }).Deno === "undefined";
}

async function spawn(workerUrl: URL | string | undefined): Promise<Endpoint> {
  if (isNode()) {
    const { Worker } = await import("node:worker_threads");
    const w = new Worker(workerUrl ?? new URL("./node-worker.js", import.meta.url), { execArgv: workerExecArgv() });
    return {
      post: (m) => w.postMessage(m),
      onMessage: (fn) => w.on("message", fn),
      onError: (fn) => w.on("error", fn),
      terminate: () => void w.terminate(),
      busy: (on) => (on ? w.ref() : w.unref()),
    };
  }
  const w = new Worker(workerUrl ?? new URL("./browser-worker.js", import.meta.url), { type: "module" });
  return {
    post: (m) => w.postMessage(m),
    onMessage: (fn) => w.addEventListener("message", (e) => fn(e.data as FromWorker)),
    onError: (fn) => w.addEventListener("error", (e) => fn(e)),
    terminate: () => w.terminate(),
    busy: () => {},
  };
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("generation aborted", "AbortError");
}

/** `model` in a form that can be posted to a worker (URLs as strings, relative to the page; File lists as arrays). */
function portable(model: ModelSource): ModelSource {
  if (model instanceof URL) return model.href;
  const loc = (globalThis as { location?: { href?: string } }).location?.href;
  if (typeof model === "string") return !isNode() && loc && !/^[a-z][a-z0-9+.-]*:/i.test(model) ? new URL(model, loc).href : model;
  if (model !== null && typeof model === "object" && !(model instanceof Map) && Symbol.iterator in model) return Array.from(model as Iterable<File>);
  if (model !== null && typeof model === "object" && typeof (model as ArrayLike<File>).length === "number") return Array.from(model as ArrayLike<File>);
  return model;
}

type Request = (req: EngineRequest, onStep: ((index: number, tokens: Uint32Array) => void) | undefined) => { id: number; done: Promise<EngineReply>; stop(): void };

function mismatch(asked: string, got: string): T5WebError {
  return new T5WebError(`t5-web worker answered a ${asked} request with a ${got} result (a worker script of another version?)`);
}

/** The engine interface (engine.ts) over a worker: each call is a message; steps come back as they are made. */
class WorkerEngine implements Engine {
  readonly kind = "seq2seq-lm";
  constructor(
    readonly device: "cpu" | "webgpu",
    private readonly request: Request,
    private readonly genConfig: string,
  ) {}

  async forward(input: EngineForwardInput): Promise<RawForward> {
    const r = await this.request({ op: "forward", input }, undefined).done;
    if (r.op !== "forward") throw mismatch("forward", r.op);
    return r.value;
  }

  async encode(input: EngineInput): Promise<Float32Array> {
    const r = await this.request({ op: "encode", input }, undefined).done;
    if (r.op !== "encode") throw mismatch("encode", r.op);
    return r.value;
  }

  async generate(input: EngineInput, options: EngineOptions, onStep: StepCallback | undefined): Promise<RawGenerate> {
    let stopped = false;
    let thrown: { e: unknown } | undefined;
    const call = this.request({ op: "generate", input, options, stream: onStep !== undefined }, (index, tokens) => {
      if (stopped || !onStep) return;
      try {
        if (onStep(index, tokens)) return;
      } catch (e) {
        // a throwing streamer / callback stops generation and is rethrown, as on the other engines
        thrown = { e };
      }
      stopped = true;
      call.stop();
    });
    const r = await call.done;
    if (thrown) throw thrown.e;
    if (r.op !== "generate") throw mismatch("generate", r.op);
    return r.value;
  }

  generationConfig(): string {
    return this.genConfig;
  }

  dispose(): void {}
}

/** Start a worker and load `model` in it (a directory, a base URL, or in-memory files). */
export async function createGenerationWorker(model: ModelSource, options: WorkerOptions = {}): Promise<GenerationWorker> {
  const { workerUrl, progress_callback, ...loadOptions } = options;
  // the main thread's env now: every (re)start of the worker loads with these settings
  const envSnapshot: Env = { ...env };
  let ep: Endpoint | undefined;
  let info: WorkerModelInfo | undefined;
  let nextId = 1;
  const pending = new Map<number, { resolve: (o: Text2TextGenerationOutput[]) => void; reject: (e: unknown) => void; on_token?: (e: TokenEvent) => void }>();
  const engineCalls = new Map<number, { resolve: (r: EngineReply) => void; reject: (e: unknown) => void; onStep: ((index: number, tokens: Uint32Array) => void) | undefined }>();

  const start = async (): Promise<Endpoint> => {
    const e = await spawn(workerUrl);
    await new Promise<void>((resolve, reject) => {
      e.onError((err) => {
        reject(err);
        for (const p of [...pending.values(), ...engineCalls.values()]) p.reject(new T5WebError(`t5-web worker failed: ${String((err as Error)?.message ?? err)}`));
        pending.clear();
        engineCalls.clear();
      });
      e.onMessage((m) => {
        if (m.type === "progress") (progress_callback as ProgressCallback | undefined)?.(m.info as never);
        else if (m.type === "loaded") {
          info = m.info;
          resolve();
        } else if (m.type === "token") pending.get(m.id)?.on_token?.({ index: m.index, tokens: m.tokens, text: m.text });
        else if (m.type === "step") engineCalls.get(m.id)?.onStep?.(m.index, m.tokens);
        else if (m.type === "engine-result") {
          engineCalls.get(m.id)?.resolve(m.result);
          engineCalls.delete(m.id);
        }
        else if (m.type === "result") {
          pending.get(m.id)?.resolve(m.output);
          pending.delete(m.id);
        } else if (m.type === "error") {
          const err = Object.assign(new Error(m.message), { name: m.name });
          if (m.id === undefined) return reject(err);
          const call = engineCalls.get(m.id);
          if (call) {
            // the model API's typed errors, by code, as on the main thread
            call.reject(m.code === undefined ? err : fromWasmError(Object.assign(new Error(m.message), { name: m.code })));
            engineCalls.delete(m.id);
            return;
          }
          pending.get(m.id)?.reject(err);
          pending.delete(m.id);
        }
      });
      e.post({ type: "load", model: portable(model), options: loadOptions as Record<string, unknown>, env: envSnapshot });
    }).catch((err) => {
      e.terminate();
      throw err;
    });
    e.busy(false);
    return e;
  };

  ep = await start();
  const shared = typeof SharedArrayBuffer !== "undefined" && (isNode() || (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true);

  const request: Request = (req, onStep) => {
    const id = nextId++;
    const done = (async () => {
      if (!ep) ep = await start();
      const current = ep;
      current.busy(true);
      try {
        return await new Promise<EngineReply>((resolve, reject) => {
          engineCalls.set(id, { resolve, reject, onStep });
          current.post({ type: "engine", id, request: req });
        });
      } finally {
        if (pending.size === 0 && engineCalls.size === 0) current.busy(false);
      }
    })();
    return { id, done, stop: () => ep?.post({ type: "stop", id }) };
  };
  const loaded = info!;
  const workerModel = new T5ForConditionalGeneration({
    engine: new WorkerEngine(loaded.device, request, loaded.generation_config),
    config: new T5Config(loaded.config),
    location: loaded.location,
    device: loaded.device,
  });

  return {
    get info() {
      return info!;
    },
    model: workerModel,
    async generate(texts, opts = {}) {
      const { signal, on_token, ...rest } = opts;
      signal?.throwIfAborted();
      if (!ep) ep = await start();
      const id = nextId++;
      const flag = shared ? new Int32Array(new SharedArrayBuffer(4)) : undefined;
      const current = ep;
      return new Promise<Text2TextGenerationOutput[]>((resolve, reject) => {
        const onAbort = () => {
          if (flag) {
            Atomics.store(flag, 0, 1); // the worker stops after its current token and rejects
          } else {
            // no shared memory: stop the worker itself; the next call starts a new one
            current.terminate();
            if (ep === current) ep = undefined;
            pending.delete(id);
            signal?.removeEventListener("abort", onAbort);
            reject(abortReason(signal!));
          }
        };
        signal?.addEventListener("abort", onAbort, { once: true });
        current.busy(true);
        const done = () => {
          signal?.removeEventListener("abort", onAbort);
          if (pending.size <= 1) current.busy(false);
        };
        pending.set(id, {
          resolve: (o) => (done(), resolve(o)),
          reject: (e) => (done(), reject(signal?.aborted ? abortReason(signal) : e)),
          ...(on_token ? { on_token } : {}),
        });
        current.post({ type: "generate", id, texts, options: rest, stream: on_token !== undefined, ...(flag ? { flag } : {}) });
      });
    },
    terminate() {
      ep?.terminate();
      ep = undefined;
      for (const p of [...pending.values(), ...engineCalls.values()]) p.reject(new T5WebError("t5-web worker terminated"));
      pending.clear();
      engineCalls.clear();
    },
  };
}
