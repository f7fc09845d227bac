/** question-answering (T5ForQuestionAnswering). */

import { BadInputError } from "../errors.js";
import type { T5ForQuestionAnswering } from "../heads.js";
import type { T5Tokenizer } from "../tokenizer.js";
import { softmax } from "./common.js";
import type { QuestionAnsweringInput, QuestionAnsweringOptions, QuestionAnsweringOutput } from "./types.js";

/** transformers' `Encoding.word_to_chars(word, sequence_index)`: the char span of the tokens of `word` in sequence
 * `seq` (scanning that sequence's tokens while their word ids are not past `word`), `undefined` when there is none. */
function wordToChars(seqIds: (number | null)[], wordIds: (number | null)[], offsets: [number, number][], word: number, seq: number): [number, number] | undefined {
  let lo = seqIds.indexOf(seq);
  let hi = seqIds.lastIndexOf(seq) + 1;
  if (lo < 0) [lo, hi] = [0, seqIds.length];
  let first = -1;
  let last = -1;
  for (let i = lo; i < hi; i++) {
    const w = wordIds[i] ?? null;
    if (w !== null && w > word) break;
    if (w === word) {
      if (first < 0) first = i;
      last = i;
    }
  }
  return first < 0 ? undefined : [offsets[first]![0], offsets[last]![1]];
}

/** numpy's choice of the `k` best (start, end) spans of one window: `tril(triu(outer), max_answer_len - 1)` flattened,
 * best first (ties in index order), zero entries after the positive ones when fewer than `k` are positive. */
function bestSpans(start: number[], end: number[], k: number, maxLen: number): { s: number; t: number; score: number }[] {
  const L = start.length;
  const cands: { s: number; t: number; score: number; flat: number }[] = [];
  for (let s = 0; s < L; s++) {
    if (start[s] === 0) continue;
    for (let t = s; t < Math.min(L, s + maxLen); t++) {
      const score = start[s]! * end[t]!;
      if (score > 0) cands.push({ s, t, score, flat: s * L + t });
    }
  }
  cands.sort((a, b) => b.score - a.score || a.flat - b.flat);
  const picked = cands.slice(0, k);
  if (picked.length < k) {
    const taken = new Set(picked.map((c) => c.flat));
    for (let f = 0; f < L * L && picked.length < k; f++) {
      if (!taken.has(f)) picked.push({ s: Math.floor(f / L), t: f % L, score: 0, flat: f });
    }
  }
  return picked;
}
export function questionAnswering(model: T5ForQuestionAnswering, tokenizer: T5Tokenizer) {
  const posInt = (v: number | undefined, name: string, min: number) => {
    if (v !== undefined && (!Number.isInteger(v) || v < min)) throw new BadInputError(`${name} must be an integer >= ${min}, got ${String(v)}`);
    return v;
  };
  const one = async (q: QuestionAnsweringInput, o: QuestionAnsweringOptions): Promise<QuestionAnsweringOutput | QuestionAnsweringOutput[]> => {
    if (!q || typeof q.question !== "string" || typeof q.context !== "string") throw new BadInputError("question-answering input must be {question, context}");
    const topK = posInt(o.top_k, "top_k", 1) ?? 1;
    const maxAnswerLen = posInt(o.max_answer_len, "max_answer_len", 1) ?? 15;
    posInt(o.max_question_len, "max_question_len", 1);
    const maxSeqLen = posInt(o.max_seq_len, "max_seq_len", 1) ?? Math.min(tokenizer.model_max_length ?? 384, 384);
    const docStride = posInt(o.doc_stride, "doc_stride", 0) ?? Math.min(Math.floor(maxSeqLen / 2), 128);
    if (docStride > maxSeqLen) throw new BadInputError(`doc_stride (${docStride}) is larger than max_seq_len (${maxSeqLen})`);
    const align = o.align_to_words ?? true;
    const impossible = o.handle_impossible_answer ?? false;
    // transformers: the question first (truncating only the context) unless the tokenizer pads on the left
    const questionFirst = tokenizer.padding_side === "right";
    const enc = tokenizer(questionFirst ? q.question : q.context, questionFirst ? q.context : q.question, {
      truncation: questionFirst ? "only_second" : "only_first",
      max_length: maxSeqLen,
      stride: docStride,
      return_overflowing_tokens: true,
      return_offsets_mapping: true,
    });
    const windows = enc.input_ids.length;
    // all windows in one padded batch (padding on the right; the decoder is causal, the encoder masked)
    const seq = Math.max(...enc.input_ids.map((r) => r.length));
    const pad = tokenizer.pad_token_id;
    const out = await model.forward({
      input_ids: enc.input_ids.map((r) => [...r, ...Array<number>(seq - r.length).fill(pad)]),
      attention_mask: enc.input_ids.map((r) => [...Array<number>(r.length).fill(1), ...Array<number>(seq - r.length).fill(0)]),
    });
    let minNull = 1000000;
    const answers: QuestionAnsweringOutput[] = [];
    const seqIndex = questionFirst ? 1 : 0;
    for (let w = 0; w < windows; w++) {
      const ids = enc.input_ids[w]!;
      const L = ids.length;
      const seqIds = enc.sequence_ids(w);
      const wordIds = enc.word_ids(w);
      const offsets = enc.offset_mapping![w]!;
      // tokens that can be part of an answer (p_mask = 0): the context's, or every token (transformers' left-padding path)
      const ok = seqIds.map((x) => (questionFirst ? x === 1 : true));
      const norm = (logits: Float32Array) => softmax(Array.from(logits.subarray(w * seq, w * seq + L), (v, i) => (ok[i] ? v : -10000)));
      const start = norm(out.start_logits.data);
      const end = norm(out.end_logits.data);
      if (impossible) minNull = Math.min(minNull, start[0]! * end[0]!);
      start[0] = end[0] = 0;
      const picked = bestSpans(start, end, align ? topK * 2 + 10 : topK, maxAnswerLen).filter((c) => ok[c.s] && ok[c.t]);
      // transformers shifts by the pad tokens of a left-padded window (none without padding, but a "<pad>" typed in the text counts)
      const shift = questionFirst ? 0 : ids.filter((id) => id === pad).length;
      for (const c of picked) {
        const s = c.s - shift;
        const t = c.t - shift;
        let span: [number, number] | undefined;
        if (align && s >= 0 && t >= 0) {
          const sw = seqIds[s] === null ? null : wordIds[s];
          const tw = seqIds[t] === null ? null : wordIds[t];
          const a = sw === null || sw === undefined ? undefined : wordToChars(seqIds, wordIds, offsets, sw, seqIndex);
          const b = tw === null || tw === undefined ? undefined : wordToChars(seqIds, wordIds, offsets, tw, seqIndex);
          if (a && b) span = [a[0], b[1]];
        }
        // no word to align to: the token offsets (Python's negative indices count from the end)
        span ??= [offsets.at(s)![0], offsets.at(t)![1]];
        const answer = q.context.slice(span[0], span[1]);
        const same = answers.find((x) => x.answer.toLowerCase() === answer.toLowerCase());
        if (same) same.score += c.score;
        else answers.push({ score: c.score, start: span[0], end: span[1], answer });
      }
    }
    if (impossible) answers.push({ score: minNull, start: 0, end: 0, answer: "" });
    answers.sort((a, b) => b.score - a.score);
    const top = answers.slice(0, topK);
    return top.length === 1 ? top[0]! : top;
  };
  return async (inputs: QuestionAnsweringInput | QuestionAnsweringInput[], options: QuestionAnsweringOptions = {}) => {
    if (Array.isArray(inputs)) {
      if (inputs.length === 0) throw new BadInputError("question-answering needs at least one {question, context}");
      const res = [];
      for (const q of inputs) {
        res.push(await one(q, options));
        await Promise.resolve();
      }
      return res;
    }
    return one(inputs, options);
  };
}
