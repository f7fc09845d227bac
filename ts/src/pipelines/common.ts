/** Input checks and score helpers shared by the pipelines. */

import { BadInputError } from "../errors.js";
import type { T5PreTrainedModel } from "../models.js";

export function textList(texts: unknown): string[] {
  const list = typeof texts === "string" ? [texts] : texts;
  if (!Array.isArray(list) || list.length === 0 || list.some((t) => typeof t !== "string")) {
    throw new BadInputError("pipeline input must be a string or a non-empty array of strings");
  }
  return list as string[];
}

export function batchSize(b: number | undefined): number {
  const bs = b ?? 1;
  if (!Number.isInteger(bs) || bs < 1) throw new BadInputError(`batch_size must be a positive integer, got ${String(b)}`);
  return bs;
}

export function softmax(x: ArrayLike<number>): number[] {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) m = Math.max(m, x[i]!);
  const e = Array.from(x, (v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

export const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

export function label(model: T5PreTrainedModel, i: number): string {
  return model.config.id2label?.[String(i)] ?? `LABEL_${i}`;
}

export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}
