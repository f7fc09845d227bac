/** text-classification (T5ForSequenceClassification) and token-classification (T5ForTokenClassification). */

import { BadInputError } from "../errors.js";
import type { T5ForSequenceClassification, T5ForTokenClassification } from "../heads.js";
import type { T5Tokenizer } from "../tokenizer.js";
import { argmax, batchSize, label, sigmoid, softmax, textList } from "./common.js";
import type { TextClassificationInput, TextClassificationOptions, TextClassificationOutput, TokenClassificationOptions, TokenClassificationOutput } from "./types.js";

export function textClassification(model: T5ForSequenceClassification, tokenizer: T5Tokenizer) {
  return async (texts: TextClassificationInput | TextClassificationInput[], options: TextClassificationOptions = {}) => {
    const list = Array.isArray(texts) ? texts : [texts];
    const isPair = (t: unknown): t is { text: string; text_pair?: string } =>
      t !== null && typeof t === "object" && typeof (t as { text?: unknown }).text === "string" && ["string", "undefined"].includes(typeof (t as { text_pair?: unknown }).text_pair);
    if (list.length === 0 || list.some((t) => typeof t !== "string" && !isPair(t))) {
      throw new BadInputError("text-classification input must be a string, {text, text_pair} or a non-empty array of them");
    }
    const legacy = !("top_k" in options);
    const topK = legacy ? 1 : options.top_k;
    let fn = options.function_to_apply;
    if (fn === undefined) {
      const c = model.config;
      if (c.problem_type === "regression") fn = "none";
      else if (c.problem_type === "multi_label_classification" || c.num_labels === 1) fn = "sigmoid";
      else fn = "softmax";
    }
    if (!["softmax", "sigmoid", "none"].includes(fn)) throw new BadInputError(`unknown function_to_apply ${JSON.stringify(fn)}`);
    const bs = batchSize(options.batch_size);
    const results: (TextClassificationOutput | TextClassificationOutput[])[] = [];
    for (let i = 0; i < list.length; i += bs) {
      const chunk = list.slice(i, i + bs);
      let enc: { input_ids: number[][]; attention_mask: number[][] };
      if (chunk.every((t) => typeof t === "string")) {
        enc = tokenizer(chunk as string[], { padding: true, truncation: tokenizer.model_max_length !== undefined });
      } else {
        const rows = chunk.map((t) => (typeof t === "string" ? tokenizer.encodeWithOffsets(t) : tokenizer.encodeWithOffsets(t.text, t.text_pair)).input_ids);
        const len = Math.max(...rows.map((r) => r.length));
        enc = {
          input_ids: rows.map((r) => [...r, ...Array<number>(len - r.length).fill(tokenizer.pad_token_id)]),
          attention_mask: rows.map((r) => [...Array<number>(r.length).fill(1), ...Array<number>(len - r.length).fill(0)]),
        };
      }
      const logits = (await model.forward(enc)).logits;
      const n = logits.dims[1]!;
      for (let r = 0; r < chunk.length; r++) {
        const row = logits.data.subarray(r * n, (r + 1) * n);
        const scores = fn === "softmax" ? softmax(row) : fn === "sigmoid" ? Array.from(row, sigmoid) : Array.from(row);
        if (topK === 1 && legacy) {
          let best = 0;
          scores.forEach((v, j) => (v > scores[best]! ? (best = j) : 0));
          results.push({ label: label(model, best), score: scores[best]! });
        } else {
          const all = scores.map((score, j) => ({ label: label(model, j), score }));
          all.sort((a, b) => b.score - a.score);
          results.push(topK === null || topK === undefined ? all : all.slice(0, topK));
        }
      }
      await Promise.resolve();
    }
    // transformers: a single text gives a one-element list, or with top_k its sorted list; a single pair its result
    if (!Array.isArray(texts)) return typeof texts === "string" && legacy ? results : results[0]!;
    return results as TextClassificationOutput[] | TextClassificationOutput[][];
  };
}

// ---------------------------------------------------------------------------------------------------------------
// token-classification

interface PreEntity {
  word: string;
  scores: number[];
  start: number;
  end: number;
  index: number;
  is_subword: boolean;
}
export function tokenClassification(model: T5ForTokenClassification, tokenizer: T5Tokenizer) {
  const unk = tokenizer.convertTokensToIds(["<unk>"])[0];
  // transformers' convert_tokens_to_string: T5's Metaspace decoder ("▁" → space, the first one dropped)
  const tokensToString = (tokens: string[]) => {
    const s = tokens.join("").replaceAll("▁", " ");
    return s.startsWith(" ") ? s.slice(1) : s;
  };

  const groupSub = (entities: TokenClassificationOutput[]): TokenClassificationOutput => {
    const first = entities[0]!;
    const scores = entities.map((e) => e.score);
    return {
      entity_group: first.entity!.split("-").slice(1).join("-") || first.entity!,
      score: scores.reduce((a, b) => a + b, 0) / scores.length,
      word: tokensToString(entities.map((e) => e.word)),
      start: first.start,
      end: entities[entities.length - 1]!.end,
    };
  };
  const tag = (name: string): [string, string] => (name.startsWith("B-") ? ["B", name.slice(2)] : name.startsWith("I-") ? ["I", name.slice(2)] : ["I", name]);
  const groupEntities = (entities: TokenClassificationOutput[]) => {
    const groups: TokenClassificationOutput[] = [];
    let cur: TokenClassificationOutput[] = [];
    for (const e of entities) {
      if (cur.length === 0) {
        cur.push(e);
        continue;
      }
      const [bi, t] = tag(e.entity!);
      const [, lt] = tag(cur[cur.length - 1]!.entity!);
      if (t === lt && bi !== "B") cur.push(e);
      else {
        groups.push(groupSub(cur));
        cur = [e];
      }
    }
    if (cur.length) groups.push(groupSub(cur));
    return groups;
  };

  return async (texts: string | string[] | string[][], options: TokenClassificationOptions = {}) => {
    const split = options.is_split_into_words ?? false;
    const delimiter = options.delimiter ?? " ";
    if (typeof delimiter !== "string") throw new BadInputError("delimiter must be a string");
    // transformers: with is_split_into_words, one list of words is one input (and gives a list of one result)
    let inputs: (string | string[])[];
    if (split) {
      const isWords = (x: unknown): x is string[] => Array.isArray(x) && x.length > 0 && x.every((w) => typeof w === "string");
      if (isWords(texts)) inputs = [texts];
      else if (Array.isArray(texts) && texts.length > 0 && texts.every(isWords)) inputs = texts as string[][];
      else throw new BadInputError("with is_split_into_words, the input must be a non-empty array of words or an array of such arrays");
    } else {
      inputs = textList(texts);
    }
    const strategy = options.aggregation_strategy ?? "none";
    if (!["none", "simple", "first", "average", "max"].includes(strategy)) throw new BadInputError(`unknown aggregation_strategy ${JSON.stringify(strategy)}`);
    const ignore = options.ignore_labels ?? ["O"];
    const bs = batchSize(options.batch_size);
    const results: TokenClassificationOutput[][] = [];
    for (let i = 0; i < inputs.length; i += bs) {
      const chunk = inputs.slice(i, i + bs);
      // transformers: truncation when the tokenizer has a model_max_length; offsets and the special-tokens mask
      const enc = tokenizer(split ? (chunk as string[][]) : (chunk as string[]), {
        padding: true,
        truncation: tokenizer.model_max_length !== undefined,
        is_split_into_words: split,
        return_offsets_mapping: true,
        return_special_tokens_mask: true,
      });
      const logits = (await model.forward({ input_ids: enc.input_ids, attention_mask: enc.attention_mask })).logits;
      const [, seq, n] = logits.dims as [number, number, number];
      chunk.forEach((input, r) => {
        // the sentence start / end index: the text, or the words joined with the delimiter
        let sentence: string;
        let wordStarts: number[] | undefined;
        if (typeof input === "string") sentence = input;
        else {
          wordStarts = [];
          let at = 0;
          for (const w of input) {
            wordStarts.push(at);
            at += w.length + delimiter.length;
          }
          sentence = input.join(delimiter);
        }
        const ids = enc.input_ids[r]!;
        const special = enc.special_tokens_mask![r]!;
        const offsets = enc.offset_mapping![r]!;
        const wordIds = enc.word_ids(r);
        const pre: PreEntity[] = [];
        ids.forEach((id, idx) => {
          if (special[idx]) return;
          const row = logits.data.subarray((r * seq + idx) * n, (r * seq + idx + 1) * n);
          let [start, end] = offsets[idx]!;
          const w = wordIds[idx];
          if (wordStarts && w !== null && w !== undefined) {
            start += wordStarts[w]!;
            end += wordStarts[w]!;
          }
          let word = tokenizer.convertIdsToTokens([id])[0] ?? "";
          // transformers' fallback heuristic for tokenizers without real words
          let isSub = start > 0 && !sentence.slice(start - 1, start + 1).includes(" ");
          if (id === unk) {
            word = sentence.slice(start, end);
            isSub = false;
          }
          pre.push({ word, scores: softmax(row), start, end, index: idx, is_subword: isSub });
        });
        let entities: TokenClassificationOutput[];
        if (strategy === "none" || strategy === "simple") {
          entities = pre.map((p) => {
            const best = argmax(p.scores);
            return { entity: label(model, best), score: p.scores[best]!, index: p.index, word: p.word, start: p.start, end: p.end };
          });
        } else {
          // word aggregation (transformers' heuristic for tokenizers without real words)
          const words: PreEntity[][] = [];
          for (const p of pre) {
            if (words.length === 0 || !p.is_subword) words.push([p]);
            else words[words.length - 1]!.push(p);
          }
          entities = words.map((w) => {
            let scores: number[];
            if (strategy === "first") scores = w[0]!.scores;
            else if (strategy === "max") scores = w.reduce((a, b) => (Math.max(...b.scores) > Math.max(...a.scores) ? b : a)).scores;
            else scores = w[0]!.scores.map((_, k) => w.reduce((a, b) => a + b.scores[k]!, 0) / w.length);
            const best = argmax(scores);
            return { entity: label(model, best), score: scores[best]!, word: tokensToString(w.map((p) => p.word)), start: w[0]!.start, end: w[w.length - 1]!.end };
          });
        }
        const grouped = strategy === "none" ? entities : groupEntities(entities);
        results.push(grouped.filter((x) => !ignore.includes(x.entity ?? "") && !ignore.includes(x.entity_group ?? "")));
      });
      await Promise.resolve();
    }
    return typeof texts === "string" ? results[0]! : results;
  };
}
