/**
 * Typed errors of t5-web. Every error the library throws is a {@link T5WebError}; the engine's
 * errors arrive from WebAssembly as a plain `Error` whose `name` is the engine's error code and are
 * mapped onto these classes by `fromWasmError`.
 *
 * Hierarchy:
 * - T5WebError
 *   - MissingFileError        a file or directory of the checkpoint is absent / cannot be fetched
 *   - PermissionDeniedError   the runtime or the OS refused to read a file (Deno without --allow-read)
 *   - BadJsonError            a JSON file does not parse
 *   - BadConfigError          config.json / generation_config.json / options are invalid
 *     - UnsupportedActivationError   feed_forward_proj names an unknown activation
 *   - BadWeightsError         a safetensors file is corrupt or truncated
 *     - MissingTensorError    a tensor the config needs is absent
 *     - ShapeMismatchError    a tensor has the wrong shape
 *     - UnsupportedDtypeError a tensor has a dtype the engine cannot read
 *   - BadInputError           ids / masks / shapes that cannot be run (e.g. token id out of vocab)
 *     - InputTooLongError     input longer than the tokenizer's model_max_length, or than the memory budget allows
 *     - MemoryBudgetError     a call would need more working memory than the model's memory limit leaves
 *   - TokenizerError          tokenizer.json cannot be read or used
 *   - ModelTooLargeError      the weights in the requested dtype, or a file read whole, exceed one WebAssembly memory (4 GiB)
 *   - DisposedError           a disposed model / tokenizer was used
 *   - EngineFailureError      the WebAssembly engine trapped (a bug, or memory exhausted): the model or tokenizer
 *                             it happened in is unusable (later calls throw this too; `dispose()` still works)
 */

export interface T5WebErrorOptions {
  cause?: unknown;
  /** The file, directory or URL concerned, where there is one. */
  path?: string;
}

export class T5WebError extends Error {
  /** Code of errors of this class (engine errors: `T5Error::code()`). */
  static readonly code: string = "T5WebError";
  /** Stable machine-readable code. */
  readonly code: string;
  /** The file, directory or URL concerned, where there is one. */
  readonly path: string | undefined;

  constructor(message: string, options: T5WebErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = (new.target as typeof T5WebError).code;
    this.path = options.path;
  }
}

export class MissingFileError extends T5WebError {
  static override readonly code: string = "MissingFile";
}

/** A repository that holds only ONNX weights (`onnx/model.onnx`, as transformers.js's): t5-web reads safetensors,
 * PyTorch `.bin` and GGUF weights; the message names the file found and what t5-web reads. */
export class OnnxOnlyError extends MissingFileError {
  static override readonly code: string = "OnnxOnly";
}

/**
 * Reading a file was refused: Deno without `--allow-read` for it (the message names the path and the flag), or
 * the operating system's permissions (EACCES / EPERM). Not a {@link MissingFileError}: the file may well exist.
 */
export class PermissionDeniedError extends T5WebError {
  static override readonly code: string = "PermissionDenied";
}

export class BadJsonError extends T5WebError {
  static override readonly code: string = "BadJson";
}

export class BadConfigError extends T5WebError {
  static override readonly code: string = "BadConfig";
}

export class UnsupportedActivationError extends BadConfigError {
  static override readonly code: string = "UnsupportedActivation";
}

export class BadWeightsError extends T5WebError {
  static override readonly code: string = "BadWeights";
}

export class MissingTensorError extends BadWeightsError {
  static override readonly code: string = "MissingTensor";
}

export class ShapeMismatchError extends BadWeightsError {
  static override readonly code: string = "ShapeMismatch";
}

export class UnsupportedDtypeError extends BadWeightsError {
  static override readonly code: string = "UnsupportedDtype";
}

export class BadInputError extends T5WebError {
  static override readonly code: string = "BadInput";
}

export class InputTooLongError extends BadInputError {
  static override readonly code: string = "InputTooLong";
}

/** A call would need more working memory (activations, every beam's KV cache, logits) than the model's memory limit
 * (`max_memory`, default what the runtime can give: see `ModelLoadOptions.max_memory`) leaves after its weights; said before the call allocates. */
export class MemoryBudgetError extends BadInputError {
  static override readonly code: string = "MemoryBudget";
}

export class TokenizerError extends T5WebError {
  static override readonly code: string = "Tokenizer";
}

/**
 * The model does not fit in one WebAssembly memory (4 GiB) in the requested dtype, or a file that is read whole (a
 * `pytorch_model.bin`, a `.gguf`, a tokenizer) is larger than one; said before the weights are read.
 */
export class ModelTooLargeError extends T5WebError {
  static override readonly code: string = "ModelTooLarge";
}

export class DisposedError extends T5WebError {
  static override readonly code: string = "Disposed";
  constructor(what: string) {
    super(`${what} has been disposed and cannot be used any more`);
  }
}

/**
 * The WebAssembly engine trapped (a Rust panic, an out-of-bounds access, memory exhausted) during `operation`. The
 * model or tokenizer it happened in is poisoned: every later call throws this error too, naming the operation that
 * failed first, and `dispose()` succeeds. Other models keep working; later loads get a fresh engine instance.
 */
export class EngineFailureError extends T5WebError {
  static override readonly code: string = "EngineFailure";
  /** The operation during which the engine failed (e.g. "generate"). */
  readonly operation: string;
  constructor(message: string, operation: string, options: T5WebErrorOptions = {}) {
    super(message, options);
    this.operation = operation;
  }
}

/** Generation stopped by its `AbortSignal` (`signal` option); `cause` is the signal's reason (e.g. the
 * `TimeoutError` of `AbortSignal.timeout()`). */
export class GenerationAbortedError extends T5WebError {
  static override readonly code: string = "Aborted";
}

/** Engine error code (`T5Error::code()`) → error class. */
const BY_CODE: Record<string, typeof T5WebError> = Object.fromEntries(
  [
    MissingFileError,
    BadConfigError,
    UnsupportedActivationError,
    BadWeightsError,
    MissingTensorError,
    ShapeMismatchError,
    UnsupportedDtypeError,
    BadInputError,
    InputTooLongError,
    TokenizerError,
    ModelTooLargeError,
    MemoryBudgetError,
  ].map((c) => [c.code, c]),
);

/**
 * Turn whatever a wasm call threw into a {@link T5WebError}: engine errors by their code,
 * anything else (a trap such as out-of-memory or `unreachable`) as a plain T5WebError with code
 * "T5WebError" carrying the original as `cause`.
 */
export function fromWasmError(e: unknown, path?: string): T5WebError {
  if (e instanceof T5WebError) return e;
  if (e instanceof Error) {
    const ctor = BY_CODE[e.name];
    if (ctor) return new ctor(e.message, { cause: e, ...(path === undefined ? {} : { path }) });
    if (isEngineTrap(e)) {
      trapHook?.();
      return new EngineFailureError(`WebAssembly engine failure: ${e.message}`, "call", { cause: e });
    }
    return new T5WebError(`WebAssembly engine failure: ${e.message}`, { cause: e });
  }
  return new T5WebError(`WebAssembly engine failure: ${String(e)}`, { cause: e });
}

let trapHook: (() => void) | undefined;

/** @internal wasm.ts: told of every trap {@link fromWasmError} sees (the instance is then replaced for new loads). */
export function onEngineTrap(hook: () => void): void {
  trapHook = hook;
}

/** Messages of the wasm-bindgen glue when a Rust object is still borrowed by a call that trapped. */
const GLUE_FAILURES = /recursive use of an object detected|attempted to take ownership of Rust value while it was borrowed|null pointer passed to rust/;

/**
 * Whether `e` is a failure of the engine itself rather than an error it reported: a trap (`WebAssembly.RuntimeError`:
 * `unreachable` after a Rust panic or allocation failure, an out-of-bounds access), a JS `RangeError` from growing the
 * memory, or the glue refusing an object a trapped call left borrowed. A JS exception thrown by a user callback
 * (streamer, `callback_function`) is none of these.
 */
export function isEngineTrap(e: unknown): boolean {
  if (typeof WebAssembly !== "undefined" && e instanceof WebAssembly.RuntimeError) return true;
  if (!(e instanceof Error)) return false;
  if (e.name === "RuntimeError") return true;
  if (e instanceof RangeError && /memory|Maximum call stack/i.test(e.message)) return true;
  return GLUE_FAILURES.test(e.message);
}

/** Run a wasm call, rethrowing its errors as typed errors. */
export function wasmCall<T>(f: () => T, path?: string): T {
  try {
    return f();
  } catch (e) {
    throw fromWasmError(e, path);
  }
}
