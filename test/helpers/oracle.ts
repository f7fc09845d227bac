/**
 * The transformers (PyTorch) oracle written by scripts/make_fixtures.py under test/fixtures/oracle/,
 * and the tolerance rule the tests hold the engine to.
 */

import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { readF32Tensors } from "./safetensors.js";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
export const ORACLE = `${FIXTURES}oracle/`;

/** Model directory → oracle file stem (the sharded v1.1 copy shares the v1.1 oracle). */
export const MODELS: { dir: string; oracle: string }[] = [
  { dir: "tiny-t5", oracle: "tiny-t5" },
  { dir: "tiny-t5-v1_1", oracle: "tiny-t5-v1_1" },
  { dir: "tiny-t5-v1_1-sharded", oracle: "tiny-t5-v1_1" },
  { dir: "tiny-t5-f16", oracle: "tiny-t5-f16" },
];

export interface ModelOracle {
  model: string;
  model_dirs: string[];
  texts: string[];
  input_ids: number[][];
  attention_mask: number[][];
  decoder_input_ids: number[][];
  labels: number[][];
  loss: number;
  greedy: {
    max_new_tokens: number;
    sequences: number[][];
    sequences_single: number[][];
    min_top_gap: number;
  };
  max_abs: Record<string, number>;
  fp64_diff: Record<string, number>;
  tensors: Record<string, number[]>;
  long_text?: string;
  long_input_ids?: number[];
}

export interface TokenizerOracle {
  tokenizer_json_sha256: string;
  cases: { text: string; encode: number[]; decode: string; decode_skip: string }[];
  batch: { texts: string[]; input_ids: number[][]; attention_mask: number[][] };
  batch_truncated: { texts: string[]; max_length: number; input_ids: number[][]; attention_mask: number[][] };
  sentinel_tokens: string[];
  sentinel_token_ids: number[];
  eos_token_id: number;
  pad_token_id: number;
  unk_token_id: number;
}

export function modelDir(dir: string): string {
  return `${FIXTURES}${dir}`;
}

export function oracleAvailable(stem: string): boolean {
  return existsSync(`${ORACLE}${stem}.json`) && existsSync(`${ORACLE}${stem}.safetensors`);
}

const cache = new Map<string, { json: ModelOracle; tensors: Map<string, { shape: number[]; data: Float32Array }> }>();

export function loadOracle(stem: string) {
  let o = cache.get(stem);
  if (!o) {
    o = {
      json: JSON.parse(readFileSync(`${ORACLE}${stem}.json`, "utf8")) as ModelOracle,
      tensors: readF32Tensors(new Uint8Array(readFileSync(`${ORACLE}${stem}.safetensors`))),
    };
    cache.set(stem, o);
  }
  return o;
}

export function loadTokenizerOracle(): TokenizerOracle {
  return JSON.parse(readFileSync(`${ORACLE}tokenizer.json`, "utf8")) as TokenizerOracle;
}

/**
 * The tolerance rule: |ours − oracle| ≤ 1e-4 + 4 × fp64_diff[name], elementwise. Returns a
 * description of the worst violation, or undefined when every element passes.
 */
export function compareTensor(
  name: string,
  ours: { data: ArrayLike<number>; dims: number[] },
  oracle: { shape: number[]; data: Float32Array },
  fp64Diff: number,
): string | undefined {
  if (ours.dims.join(",") !== oracle.shape.join(",")) {
    return `${name}: shape [${ours.dims.join(", ")}], oracle [${oracle.shape.join(", ")}]`;
  }
  const tol = 1e-4 + 4 * fp64Diff;
  let worst = -1;
  let worstExcess = 0;
  let bad = 0;
  let maxDiff = 0;
  for (let i = 0; i < oracle.data.length; i++) {
    const d = Math.abs(ours.data[i]! - oracle.data[i]!);
    if (!(d <= tol)) {
      bad++;
      const excess = Number.isNaN(d) ? Infinity : d - tol;
      if (excess > worstExcess || worst < 0) {
        worst = i;
        worstExcess = excess;
      }
    }
    if (d > maxDiff) maxDiff = d;
  }
  if (bad === 0) return undefined;
  const idx: number[] = [];
  let r = worst;
  for (let k = oracle.shape.length - 1; k >= 0; k--) {
    idx.unshift(r % oracle.shape[k]!);
    r = Math.floor(r / oracle.shape[k]!);
  }
  return (
    `${name}: ${bad} of ${oracle.data.length} elements outside ${tol.toExponential(3)} ` +
    `(max |diff| ${maxDiff.toExponential(3)}); worst at [${idx.join(", ")}]: ours ${ours.data[worst]}, oracle ${oracle.data[worst]}`
  );
}

/** Scalar form of the rule. */
export function withinTolerance(ours: number, oracle: number, fp64Diff: number): boolean {
  return Math.abs(ours - oracle) <= 1e-4 + 4 * fp64Diff;
}
