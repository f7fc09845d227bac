/**
 * What a failed engine call leaves behind. A trap in the WebAssembly engine (`unreachable` after a Rust panic or an
 * allocation failure, an out-of-bounds access) unwinds straight through the Rust frames: the object the call was
 * running on stays borrowed (the glue then refuses every later use, `free()` included, with "attempted to take
 * ownership of Rust value while it was borrowed") and the instance's heap may be inconsistent. So:
 * - the object is poisoned: every later call on it throws {@link EngineFailureError} naming the operation that
 *   failed first; its `free()` (from `dispose()`) never throws and leaves the memory to the instance;
 * - the instance is marked failed ({@link markInstanceFailed}): models and tokenizers already loaded on it keep
 *   working, the next load gets a fresh instance, and the old one (with the memory the failure grew) is released
 *   when its last object is gone.
 * Engine errors (a typed `T5Error`, e.g. a bad option) and exceptions from user callbacks poison nothing.
 *
 * Hooks: `guardEngine(wasmObject, what)` wraps a wasm-bindgen object once, where a model or tokenizer is made; the
 * call sites stay as they are.
 */

import { EngineFailureError, isEngineTrap } from "./errors.js";
import { markInstanceFailed } from "./wasm.js";

interface Failure {
  operation: string;
  cause: unknown;
}

interface Freeable {
  free(): void;
}

/** Per wrapped object: whether (and where) its engine failed. */
const failures = new WeakMap<object, Failure>();

function failureError(what: string, op: string, f: Failure): EngineFailureError {
  const why = f.cause instanceof Error ? f.cause.message : String(f.cause);
  return new EngineFailureError(
    `${op}: ${what} is unusable: the WebAssembly engine failed during ${f.operation} (${why}); dispose it and load it again`,
    f.operation,
    { cause: f.cause },
  );
}

/** Record a trap of `op` on `target` (and its instance) and make the error the caller sees. */
function fail(target: object, what: string, op: string, e: unknown): EngineFailureError {
  const f = { operation: op, cause: e };
  failures.set(target, f);
  markInstanceFailed(target);
  return new EngineFailureError(
    `${op}: the WebAssembly engine failed (${e instanceof Error ? e.message : String(e)}); ${what} is unusable from now on`,
    op,
    { cause: e },
  );
}

/** Whether `obj` (a guarded engine object) has failed. */
export function engineFailed(obj: object): boolean {
  return failures.has(guardTargets.get(obj) ?? obj);
}

const guardTargets = new WeakMap<object, object>();

/**
 * `obj` behind a guard: method calls (and getters) that trap poison it (see the module docs); calls on a poisoned
 * object throw {@link EngineFailureError}; `free()` never throws. Engine errors pass through unchanged (the call
 * sites' `wasmCall` types them). `what` names the object in messages ("this T5ForConditionalGeneration").
 */
export function guardEngine<T extends Freeable>(obj: T, what: string): T {
  const target: object = obj;
  const proxy = new Proxy(target, {
    get(t, prop) {
      if (prop === "free") return () => freeGuarded(t as Freeable);
      if (prop === "__wbg_ptr") return Reflect.get(t, prop, t);
      const op = typeof prop === "string" ? prop : String(prop);
      const failed = failures.get(t);
      if (failed) throw failureError(what, op, failed);
      let value: unknown;
      try {
        value = Reflect.get(t, prop, t);
      } catch (e) {
        throw isEngineTrap(e) ? fail(t, what, op, e) : e;
      }
      if (typeof value !== "function") return value;
      const method = value as (...args: unknown[]) => unknown;
      return (...args: unknown[]) => {
        const again = failures.get(t);
        if (again) throw failureError(what, op, again);
        let r: unknown;
        try {
          r = method.apply(t, args);
        } catch (e) {
          throw isEngineTrap(e) ? fail(t, what, op, e) : e;
        }
        if (r instanceof Promise) {
          return r.catch((e: unknown) => {
            throw isEngineTrap(e) ? fail(t, what, op, e) : e;
          });
        }
        return r;
      };
    },
  });
  guardTargets.set(proxy, target);
  return proxy as T;
}

/**
 * Free a wasm-bindgen object without ever throwing: a poisoned one (or one whose free fails) is detached from the glue
 * (its finalizer unregistered, so that garbage collection never frees it into a failed instance) and its memory left
 * to its instance.
 */
function freeGuarded(t: Freeable): void {
  const detach = () => {
    const raw: Freeable & { __destroy_into_raw?: () => unknown } = t;
    try {
      raw.__destroy_into_raw?.();
    } catch {
      // nothing left to detach
    }
  };
  if (failures.has(t)) {
    detach();
    return;
  }
  try {
    t.free();
  } catch (e) {
    if (isEngineTrap(e)) failures.set(t, { operation: "free", cause: e });
    detach();
  }
}
