/**
 * The oracle of scripts/make_head_fixtures.py (test/fixtures/heads/oracle.{json,safetensors}) and the tolerance rule.
 */

import { readFileSync } from "node:fs";
import { expect } from "vitest";
import { compareTensor, FIXTURES, withinTolerance } from "./oracle.js";
import { readF32Tensors } from "./safetensors.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

let cached: { json: Json; tensors: Map<string, { shape: number[]; data: Float32Array }> } | undefined;

export function headsOracle() {
  cached ??= {
    json: JSON.parse(readFileSync(`${FIXTURES}heads/oracle.json`, "utf8")) as Json,
    tensors: readF32Tensors(new Uint8Array(readFileSync(`${FIXTURES}heads/oracle.safetensors`))),
  };
  return cached;
}

export const headsDir = (name: string) => `${FIXTURES}heads/${name}`;

export function expectTensor(name: string, ours: { data: ArrayLike<number>; dims: number[] } | undefined) {
  const { json, tensors } = headsOracle();
  const t = tensors.get(name);
  expect(t, `oracle tensor ${name}`).toBeDefined();
  expect(ours, `our ${name}`).toBeDefined();
  expect(compareTensor(name, ours!, t!, json.fp64_diff[name] as number)).toBeUndefined();
}

export function expectScalar(name: string, ours: number | undefined) {
  const { json } = headsOracle();
  const want = json.scalars[name] as number;
  expect(ours, name).toBeDefined();
  expect(withinTolerance(ours!, want, json.fp64_diff[name] as number), `${name}: ${ours} vs transformers ${want}`).toBe(true);
}

/** Pipeline scores: 1e-4 + 4 × the fp64 spread of the same score. */
export function expectScore(what: string, ours: number, f32: number, f64: number) {
  expect(Math.abs(ours - f32) <= 1e-4 + 4 * Math.abs(f64 - f32), `${what}: ${ours} vs transformers ${f32}`).toBe(true);
}
