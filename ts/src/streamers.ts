/**
 * Streamers, as transformers.js' `TextStreamer`: give one to `generate(…, {streamer})` (or
 * `generateStream`) and it is told the new tokens after every step (`put`) and the end (`end`).
 * Beam search cannot stream (as in transformers).
 */

import type { GenerationStreamer } from "./models.js";
import type { T5Tokenizer } from "./tokenizer.js";

export interface TextStreamerOptions {
  /** Default true, as transformers.js. */
  skip_special_tokens?: boolean;
  /** Told each new piece of text; default: written to stdout (Node) / console.log. */
  callback_function?: (text: string) => void;
  /** Told the token ids of each step. */
  token_callback_function?: (tokens: number[]) => void;
}

/**
 * Decodes the first row as it is generated and emits the text in complete words (at spaces and newlines; the rest at
 * `end()`), like transformers' `TextStreamer`.
 */
export class TextStreamer implements GenerationStreamer {
  private ids: number[] = [];
  private printed = 0;
  private readonly skip: boolean;
  private readonly emit: (text: string) => void;

  constructor(
    readonly tokenizer: T5Tokenizer,
    private readonly options: TextStreamerOptions = {},
  ) {
    this.skip = options.skip_special_tokens ?? true;
    this.emit =
      options.callback_function ??
      ((text) => {
        const proc = (globalThis as { process?: { stdout?: { write(s: string): void } } }).process;
        if (proc?.stdout) proc.stdout.write(text);
        else console.log(text);
      });
  }

  put(value: number[][]): void {
    const tokens = value.map((row) => row[0]!).filter((t) => t !== undefined);
    if (tokens.length === 0) return;
    this.options.token_callback_function?.(tokens);
    this.ids.push(tokens[0]!);
    const text = this.tokenizer.decode(this.ids, { skip_special_tokens: this.skip });
    const cut = Math.max(text.lastIndexOf(" "), text.lastIndexOf("\n")) + 1;
    if (cut > this.printed) {
      this.emit(text.slice(this.printed, cut));
      this.printed = cut;
    }
  }

  end(): void {
    const text = this.tokenizer.decode(this.ids, { skip_special_tokens: this.skip });
    const rest = text.slice(this.printed);
    this.emit(rest + "\n");
    this.ids = [];
    this.printed = 0;
  }
}
