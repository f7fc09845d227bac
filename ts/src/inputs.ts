/**
 * Input normalisation of the model classes, in one place for every device: ids as `number[][]`, one row
 * `number[]`, BigInts, typed arrays (one row), or a tensor `{data, dims}` (transformers.js' `Tensor`, int64
 * `BigInt64Array` or int32 / float data) become flat `Uint32Array` / `Int32Array` rows for the engine; and the two
 * calling conventions of `generate` — `generate(inputs, options)` and transformers.js' `generate({...inputs,
 * ...options})` — become one (inputs, options) pair. The options themselves are checked by the engine (Rust).
 */

import { BadConfigError, BadInputError } from "./errors.js";
import type { EngineInput } from "./engine.js";

/** An integer typed array (one row of ids). */
export type IntArray = Uint32Array | Int32Array | Uint16Array | Int16Array | Uint8Array | Int8Array | BigInt64Array | BigUint64Array;

/** Token ids: rows of numbers (or BigInts), one row, an integer typed array (one row), or a tensor `{data, dims: [batch, seq]}`. */
export type IdsLike = readonly (readonly (number | bigint)[])[] | readonly (number | bigint)[] | IntArray | { data: ArrayLike<number | bigint>; dims: readonly number[] };

export interface Flat<T> {
  data: T;
  batch: number;
  seq: number;
}

/** Rows/tensor → flat row-major values, checking that it is rectangular and holds integers in range. */
function flatten<T extends Uint32Array | Int32Array>(x: IdsLike, name: string, make: (n: number) => T, min: number, max: number): Flat<T> {
  let batch: number, seq: number, get: (i: number) => number | bigint;
  if (Array.isArray(x)) {
    const rows: unknown[] = x.length > 0 && Array.isArray(x[0]) ? x : [x];
    batch = rows.length;
    seq = batch > 0 ? (rows[0] as unknown[]).length : 0;
    for (const r of rows) {
      if (!Array.isArray(r)) throw new BadInputError(`${name} must be an array of rows`);
      if (r.length !== seq) throw new BadInputError(`${name} rows have different lengths (${seq} and ${r.length}); pad them and pass an attention mask`);
    }
    get = (i) => (rows[Math.floor(i / seq)] as (number | bigint)[])[i % seq]!;
  } else if (ArrayBuffer.isView(x) && !(x instanceof DataView)) {
    const a = x as IntArray;
    [batch, seq] = [1, a.length];
    get = (i) => a[i]!;
  } else if (x !== null && typeof x === "object" && "dims" in x && "data" in x) {
    const dims = x.dims;
    if (dims.length === 1) [batch, seq] = [1, dims[0]!];
    else if (dims.length === 2) [batch, seq] = [dims[0]!, dims[1]!];
    else throw new BadInputError(`${name} must be 2-D [batch, seq], got dims [${dims.join(", ")}]`);
    if (x.data.length !== batch * seq) throw new BadInputError(`${name} has ${x.data.length} values for dims [${dims.join(", ")}]`);
    get = (i) => x.data[i]!;
  } else {
    throw new BadInputError(`${name} must be number[][], number[], an integer typed array or a tensor {data, dims}`);
  }
  if (batch === 0 || seq === 0) throw new BadInputError(`${name} is empty (batch ${batch}, length ${seq})`);
  const data = make(batch * seq);
  for (let i = 0; i < data.length; i++) {
    const raw = get(i);
    const v = typeof raw === "bigint" ? Number(raw) : raw;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw new BadInputError(`${name}: ${String(raw)} is not a valid value`);
    data[i] = v;
  }
  return { data, batch, seq };
}

export const ids = (x: IdsLike, name: string) => flatten(x, name, (n) => new Uint32Array(n), 0, 0xffffffff);
export const mask = (x: IdsLike, name: string) => flatten(x, name, (n) => new Uint32Array(n), 0, 1);
export const labelIds = (x: IdsLike, name: string) => flatten(x, name, (n) => new Int32Array(n), -100, 0x7fffffff);

export function sameShape(a: Flat<unknown>, b: Flat<unknown>, an: string, bn: string): void {
  if (a.batch !== b.batch || a.seq !== b.seq) {
    throw new BadInputError(`${bn} is [${b.batch}, ${b.seq}] but ${an} is [${a.batch}, ${a.seq}]`);
  }
}

/** The encoder input of a call: `input_ids` and the optional `attention_mask`, checked against each other. */
export function encoderInput(inputs: { input_ids: IdsLike; attention_mask?: IdsLike | undefined }): EngineInput {
  if (inputs.input_ids === undefined) throw new BadInputError("input_ids are required");
  const input = ids(inputs.input_ids, "input_ids");
  let m: Uint32Array | undefined;
  if (inputs.attention_mask !== undefined) {
    const fm = mask(inputs.attention_mask, "attention_mask");
    sameShape(input, fm, "input_ids", "attention_mask");
    m = fm.data;
  }
  return { ids: input.data, mask: m, batch: input.batch, seq: input.seq };
}

/** Whether `x` is ids themselves (rows, a typed array or a tensor) rather than an object holding `input_ids`. */
function isIds(x: unknown): x is IdsLike {
  return Array.isArray(x) || (ArrayBuffer.isView(x) && !(x instanceof DataView)) || (x !== null && typeof x === "object" && "dims" in x && "data" in x);
}

/** The input keys of `generate({...inputs, ...options})` (transformers.js also names the ids `inputs`);
 * `token_type_ids` (which some tokenizers return) means nothing to T5 and is dropped, as transformers.js does. */
const INPUT_KEYS = new Set(["input_ids", "attention_mask", "inputs", "token_type_ids"]);

/**
 * `generate(inputs, options)` or `generate({...inputs, ...options})` → the encoder input and the options (those of
 * the second argument win over those beside the inputs). Options are not checked here: the engine does that.
 */
export function generateArgs<O extends object>(inputs: unknown, options: O | undefined): { input: EngineInput; options: O } {
  if (options !== undefined && (options === null || typeof options !== "object" || Array.isArray(options))) {
    throw new BadConfigError("generation options must be an object");
  }
  if (isIds(inputs)) return { input: encoderInput({ input_ids: inputs }), options: (options ?? {}) as O };
  if (inputs === null || typeof inputs !== "object") throw new BadInputError("generate needs input ids: {input_ids, attention_mask?}, rows of ids or a tensor");
  const rest: Record<string, unknown> = {};
  let input_ids: unknown;
  let attention_mask: unknown;
  for (const [k, v] of Object.entries(inputs)) {
    if (!INPUT_KEYS.has(k)) rest[k] = v;
    else if (k === "token_type_ids") continue;
    else if (k === "attention_mask") attention_mask = v;
    else if (input_ids !== undefined && v !== undefined) throw new BadInputError("give the ids once: input_ids or inputs");
    else if (v !== undefined) input_ids = v;
  }
  if (input_ids === undefined) throw new BadInputError("generate needs input_ids");
  const input = encoderInput({ input_ids: input_ids as IdsLike, ...(attention_mask === undefined ? {} : { attention_mask: attention_mask as IdsLike }) });
  return { input, options: { ...rest, ...(options ?? {}) } as O };
}
