/**
 * The worker side of {@link createGenerationWorker}: a Web Worker (browsers, module worker) or a
 * Node `worker_threads` worker. Loads one pipeline, then answers `generate` requests, streaming
 * tokens back. Cancellation: the main side sets a flag in a SharedArrayBuffer, checked after every
 * token (where SharedArrayBuffer is unavailable, the main side terminates the worker instead).
 */

import { pipeline, type Text2TextCallOptions, type Text2TextGenerationPipeline } from "./pipeline.js";
import type { EngineReply, EngineRequest, FromWorker, ToWorker } from "./worker-protocol.js";
import type { RawForward } from "./engine.js";
import type { ProgressInfo } from "./files.js";
import { env } from "./hub.js";
import { wasmFlavour } from "./wasm.js";

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
  const err = e as { name?: string; message?: string; code?: unknown };
  const code = typeof err?.code === "string" ? err.code : undefined;
  io.post({ type: "error", id, name: err?.name ?? "Error", message: err?.message ?? String(e), aborted, ...(code === undefined ? {} : { code }) });
}

/** Engine generations asked to stop (by a `stop` message, read between steps). */
const stopped = new Set<number>();

/** One call of the engine interface on the worker's model, through its public API (the same code path as on the
 * main thread). */
async function engineCall(id: number, req: EngineRequest): Promise<EngineReply> {
  if (!pipe) throw new Error("no model loaded");
  const model = pipe.model;
  const t = (data: Uint32Array | Int32Array, batch: number, seq: number) => ({ data, dims: [batch, seq] });
  const { ids, mask, batch, seq } = req.input;
  const enc = { input_ids: t(ids, batch, seq), ...(mask ? { attention_mask: t(mask, batch, seq) } : {}) };
  if (req.op === "generate") {
    const out = await model.generate(enc, {
      ...req.options,
      return_dict_in_generate: true,
      callback_function: ({ index, tokens }) => {
        if (req.stream) io.post({ type: "step", id, index, tokens: Uint32Array.from(tokens) });
        return !stopped.has(id);
      },
    });
    const length = out.sequences[0]?.length ?? 0;
    const sequences = new Uint32Array(out.sequences.length * length);
    out.sequences.forEach((row, i) => sequences.set(row, i * length));
    const scores = out.sequences_scores ? Float32Array.from(out.sequences_scores) : undefined;
    return { op: "generate", value: { sequences, batch: out.sequences.length, length, sequences_scores: scores, stats: model.lastGenerateStats } };
  }
  if (req.op === "encode") {
    const h = await pipe.model.forward({ ...enc, decoder_input_ids: t(new Uint32Array(batch), batch, 1) });
    return { op: "encode", value: h.encoder_last_hidden_state.data };
  }
  const { decoder_ids, labels, decoder_mask } = req.input;
  const dlen = (decoder_ids ?? labels)?.length;
  const dseq = dlen === undefined ? 0 : dlen / batch;
  const out = await model.forward({
    ...enc,
    ...(decoder_ids ? { decoder_input_ids: t(decoder_ids, batch, dseq) } : {}),
    ...(labels ? { labels: t(labels, batch, dseq) } : {}),
    ...(decoder_mask ? { decoder_attention_mask: t(decoder_mask, batch, dseq) } : {}),
  });
  const r: RawForward = {
    encoder_last_hidden_state: out.encoder_last_hidden_state.data,
    encoder_shape: out.encoder_last_hidden_state.dims,
    decoder_last_hidden_state: out.decoder_last_hidden_state.data,
    decoder_shape: out.decoder_last_hidden_state.dims,
    logits: out.logits.data,
    logits_shape: out.logits.dims,
    loss: out.loss,
  };
  return { op: "forward", value: r };
}

async function handle(msg: ToWorker): Promise<void> {
  if (msg.type === "load") {
    try {
      // the main thread's settings (remoteHost, allowRemoteModels, localModelPath, the cache, …), not this thread's
      // defaults: a worker resolves and caches files as the thread that created it would
      Object.assign(env, msg.env);
      let bytes = 0;
      pipe = await pipeline("text2text-generation", msg.model as Parameters<typeof pipeline>[1], {
        ...msg.options,
        progress_callback: (info: ProgressInfo) => {
          if (info.status === "progress" && info.loaded === info.total) bytes += info.total;
          io.post({ type: "progress", info });
        },
      });
      const m = pipe.model;
      const config = JSON.parse(JSON.stringify(m.config)) as Record<string, unknown>;
      const generation_config = JSON.stringify(m.generation_config);
      io.post({ type: "loaded", info: { location: m.location, bytes, backend: m.device === "cpu" ? `cpu (wasm ${wasmFlavour()}, ${m.threads} thread${m.threads === 1 ? "" : "s"})` : m.device, device: m.device, config, generation_config } });
    } catch (e) {
      fail(undefined, e);
    }
    return;
  }
  if (msg.type === "engine") {
    try {
      io.post({ type: "engine-result", id: msg.id, result: await engineCall(msg.id, msg.request) });
    } catch (e) {
      fail(msg.id, e);
    } finally {
      stopped.delete(msg.id);
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
  // a stop is read at once (between the steps of the running generation), everything else in order
  if (msg.type === "stop") return void stopped.add(msg.id);
  queue = queue.then(() => handle(msg));
});
