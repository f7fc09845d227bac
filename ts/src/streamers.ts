/**
 * Streamers, as transformers.js' `TextStreamer`: give one to `generate(…, {streamer})` (or `generateStream`) and it
 * is told the prompt (the decoder start token), the new tokens after every step (`put`) and the end (`end`). Beam
 * search cannot stream (as in transformers). A port of transformers.js' `TextStreamer` (src/generation/streamers.js).
 */

import { BadInputError } from "./errors.js";
import type { GenerationStreamer } from "./models.js";
import type { T5Tokenizer } from "./tokenizer.js";

export interface TextStreamerOptions {
  /** Do not emit the prompt (for T5: the decoder start token, which decodes to nothing when special tokens are
   * skipped). Default false, as transformers.js. */
  skip_prompt?: boolean;
  /** Default true, as transformers.js. */
  skip_special_tokens?: boolean;
  /** Told each new piece of text, as it is complete (at spaces, newlines, CJK characters; the rest at the end).
   * Default: written to stdout (Node) / console.log, with a newline at the end of the stream. */
  callback_function?: (text: string) => void;
  /** Told the token ids of each `put`. */
  token_callback_function?: (tokens: number[]) => void;
  /** Other options of `decode` (e.g. `clean_up_tokenization_spaces`). */
  decode_kwargs?: { clean_up_tokenization_spaces?: boolean };
}

function stdoutWrite(text: string): void {
  const proc = (globalThis as { process?: { stdout?: { write(s: string): void } } }).process;
  if (proc?.stdout) proc.stdout.write(text);
  else console.log(text);
}

/** transformers' `_is_chinese_char`: CJK ideographs, after which text is emitted without waiting for a space. */
function isChineseChar(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

/** Decodes the (single) row as it is generated and emits the text in complete words, like transformers.js'. */
export class TextStreamer implements GenerationStreamer {
  private tokenCache: number[] = [];
  private printLen = 0;
  private nextTokensArePrompt = true;
  private readonly skipPrompt: boolean;
  private readonly skipSpecial: boolean;
  private readonly emit: (text: string) => void;

  constructor(
    readonly tokenizer: T5Tokenizer,
    private readonly options: TextStreamerOptions = {},
  ) {
    this.skipPrompt = options.skip_prompt ?? false;
    this.skipSpecial = options.skip_special_tokens ?? true;
    this.emit = options.callback_function ?? stdoutWrite;
  }

  private decode(ids: number[]): string {
    return this.tokenizer.decode(ids, { skip_special_tokens: this.skipSpecial, ...(this.options.decode_kwargs ?? {}) });
  }

  put(value: number[][]): void {
    if (value.length > 1) {
      throw new BadInputError(`TextStreamer only supports a batch of 1 (got ${value.length} rows): generate one input at a time, or use callback_function / generateStream for batches`);
    }
    const isPrompt = this.nextTokensArePrompt;
    if (isPrompt) {
      this.nextTokensArePrompt = false;
      if (this.skipPrompt) return;
    }
    const tokens = (value[0] ?? []).map(Number);
    this.options.token_callback_function?.(tokens);
    this.tokenCache.push(...tokens);
    const text = this.decode(this.tokenCache);
    let printable: string;
    if (isPrompt || text.endsWith("\n")) {
      printable = text.slice(this.printLen);
      this.tokenCache = [];
      this.printLen = 0;
    } else if (text.length > 0 && isChineseChar(text.codePointAt(text.length - 1)!)) {
      printable = text.slice(this.printLen);
      this.printLen += printable.length;
    } else {
      printable = text.slice(this.printLen, text.lastIndexOf(" ") + 1);
      this.printLen += printable.length;
    }
    this.onFinalizedText(printable, false);
  }

  end(): void {
    let printable = "";
    if (this.tokenCache.length > 0) {
      printable = this.decode(this.tokenCache).slice(this.printLen);
      this.tokenCache = [];
      this.printLen = 0;
    }
    this.nextTokensArePrompt = true;
    this.onFinalizedText(printable, true);
  }

  private onFinalizedText(text: string, streamEnd: boolean): void {
    if (text.length > 0) this.emit(text);
    // transformers.js ends the stream with a newline only when it writes to stdout itself
    if (streamEnd && this.emit === stdoutWrite) this.emit("\n");
  }
}
