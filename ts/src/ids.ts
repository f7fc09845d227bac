/**
 * Token ids as JavaScript callers hold them — `number[]`, `number[][]`, typed arrays (`Int32Array`,
 * `Uint32Array`, `BigInt64Array`, …), BigInts, and transformers.js-style tensors `{ data, dims }` (int64
 * `BigInt64Array` or int32 data) — turned into the `Uint32Array`s the engine takes, with a typed error naming the
 * argument for anything else (a negative, fractional or too large id, a ragged batch, a tensor whose data does not
 * match its dims). Also {@link IdTensor}, the int64 tensor a tokenizer call returns with `return_tensors`.
 */

import { BadInputError } from "./errors.js";

/** A transformers.js `Tensor` (or anything shaped like one). */
export interface TensorLike {
  data: ArrayLike<number | bigint>;
  dims: readonly number[];
}

/** One sequence of ids. */
export type IdsRow = ArrayLike<number | bigint> | TensorLike;
/** Several sequences of ids (a 2-D tensor: its rows). */
export type IdsRows = ArrayLike<ArrayLike<number | bigint>> | TensorLike;

function isTensorLike(x: unknown): x is TensorLike {
  return typeof x === "object" && x !== null && "data" in x && "dims" in x && Array.isArray((x as TensorLike).dims);
}

function isRowLike(x: unknown): x is ArrayLike<number | bigint> {
  return Array.isArray(x) || (ArrayBuffer.isView(x) && !(x instanceof DataView));
}

function toId(v: unknown, what: string): number {
  if (typeof v === "bigint") {
    if (v < 0n || v > 0xffffffffn) throw new BadInputError(`${what}: ${v} is not a token id`);
    return Number(v);
  }
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new BadInputError(`${what}: ${String(v)} is not a token id`);
  return v;
}

function fillRow(src: ArrayLike<unknown>, out: Uint32Array, at: number, what: string): void {
  for (let i = 0; i < src.length; i++) out[at + i] = toId(src[i], what);
}

function tensorShape(t: TensorLike, what: string): number[] {
  const dims = [...t.dims];
  if (dims.some((d) => !Number.isInteger(d) || d < 0)) throw new BadInputError(`${what}: bad tensor dims [${dims.join(", ")}]`);
  const n = dims.reduce((a, b) => a * b, 1);
  if (t.data.length !== n) throw new BadInputError(`${what}: tensor data holds ${t.data.length} values, its dims [${dims.join(", ")}] ${n}`);
  return dims;
}

/** One sequence: a list / typed array of ids, a 1-D tensor, or a 2-D one (or a nested list) with a single row. */
export function idRow(x: unknown, what: string): Uint32Array {
  if (typeof x === "number" || typeof x === "bigint") return Uint32Array.of(toId(x, what));
  if (isTensorLike(x)) {
    const dims = tensorShape(x, what);
    if (dims.length === 1 || (dims.length === 2 && dims[0] === 1)) {
      const out = new Uint32Array(x.data.length);
      fillRow(x.data, out, 0, what);
      return out;
    }
    throw new BadInputError(`${what} takes one sequence; got a tensor of dims [${dims.join(", ")}] (use batch_decode for a batch)`);
  }
  if (!isRowLike(x)) throw new BadInputError(`${what}: expected ids (a number[], typed array or tensor), got ${x === null ? "null" : typeof x}`);
  if (Array.isArray(x) && x.length > 0 && isRowLike(x[0])) {
    if (x.length !== 1) throw new BadInputError(`${what} takes one sequence; got ${x.length} rows (use batch_decode for a batch)`);
    return idRow(x[0], what);
  }
  const out = new Uint32Array(x.length);
  fillRow(x, out, 0, what);
  return out;
}

/** Several sequences (rows may differ in length, except in a tensor): concatenated, with each row's length. */
export function idRows(x: unknown, what: string): { flat: Uint32Array; lengths: Uint32Array } {
  if (isTensorLike(x)) {
    const dims = tensorShape(x, what);
    if (dims.length !== 2) throw new BadInputError(`${what} takes a batch: a 2-D tensor, got dims [${dims.join(", ")}]`);
    const flat = new Uint32Array(x.data.length);
    fillRow(x.data, flat, 0, what);
    return { flat, lengths: new Uint32Array(dims[0]!).fill(dims[1]!) };
  }
  if (!Array.isArray(x)) throw new BadInputError(`${what}: expected a list of id sequences or a 2-D tensor, got ${x === null ? "null" : typeof x}`);
  const rows = x.map((r: unknown, i) => {
    if (isTensorLike(r)) return idRow(r, `${what}[${i}]`);
    if (!isRowLike(r)) throw new BadInputError(`${what}[${i}]: expected a sequence of ids, got ${r === null ? "null" : typeof r}`);
    return r;
  });
  const lengths = Uint32Array.from(rows, (r) => r.length);
  const flat = new Uint32Array(lengths.reduce((a, b) => a + b, 0));
  let at = 0;
  rows.forEach((r, i) => {
    fillRow(r, flat, at, `${what}[${i}]`);
    at += r.length;
  });
  return { flat, lengths };
}

/** An int64 tensor of ids, as transformers.js's `Tensor` (`type`, `data`, `dims`, `size`, `tolist()`). */
export class IdTensor implements TensorLike {
  readonly type = "int64";
  constructor(
    readonly data: BigInt64Array,
    readonly dims: [number, number],
  ) {}

  get size(): number {
    return this.data.length;
  }

  /** The rows as `number[][]`. */
  tolist(): number[][] {
    const [b, s] = this.dims;
    return Array.from({ length: b }, (_, i) => Array.from(this.data.subarray(i * s, (i + 1) * s), Number));
  }

  /** From equal-length rows; ragged rows are an error naming `what` (pad them, as transformers asks). */
  static fromRows(rows: number[][], what: string): IdTensor {
    const s = rows[0]?.length ?? 0;
    if (rows.some((r) => r.length !== s)) {
      throw new BadInputError(`${what}: rows of different lengths cannot form a tensor; pass padding: true (or "max_length") with return_tensors`);
    }
    const data = new BigInt64Array(rows.length * s);
    rows.forEach((r, i) => r.forEach((v, k) => (data[i * s + k] = BigInt(v))));
    return new IdTensor(data, [rows.length, s]);
  }
}

/**
 * What `generate()` returns: the rows of ids as a plain `number[][]` (index it, `map` it, `JSON.stringify` it,
 * compare it with `toEqual`), which also reads as transformers.js's int64 `Tensor` of ids: `dims`
 * (`[rows, length]`), `data` (a `BigInt64Array`, row-major), `type` (`"int64"`), `size` and `tolist()`. The tensor
 * view is computed from the rows when read (getters, no extra own properties), so it always matches them.
 * `map` / `slice` / `filter` give plain arrays.
 */
export class GeneratedIds extends Array<number[]> {
  static override get [Symbol.species](): ArrayConstructor {
    return Array;
  }

  /** @internal Rows of `length` ids out of the engine's flat `[batch, length]` buffer. */
  static fromFlat(flat: Uint32Array, batch: number, length: number): GeneratedIds {
    const out = new GeneratedIds();
    for (let i = 0; i < batch; i++) out.push(Array.from(flat.subarray(i * length, (i + 1) * length)));
    return out;
  }

  get type(): "int64" {
    return "int64";
  }

  /** `[rows, length]` (rows are padded to one length, as transformers pads them). */
  get dims(): [number, number] {
    return [this.length, this[0]?.length ?? 0];
  }

  get size(): number {
    return this.length * (this[0]?.length ?? 0);
  }

  /** The ids row-major as int64, as transformers.js's `Tensor.data`. */
  get data(): BigInt64Array {
    const [b, s] = this.dims;
    const data = new BigInt64Array(b * s);
    this.forEach((row, i) => row.forEach((v, k) => (data[i * s + k] = BigInt(v))));
    return data;
  }

  /** The rows as a plain `number[][]` (transformers.js's `Tensor.tolist()`). */
  tolist(): number[][] {
    return Array.from(this, (r) => [...r]);
  }
}
