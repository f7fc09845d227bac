/**
 * The task heads of transformers' T5 — `T5ForSequenceClassification`, `T5ForTokenClassification`,
 * `T5ForQuestionAnswering` — and the `AutoModelFor…` loaders. `num_labels`, `id2label` and `label2id` come from
 * config.json (transformers' defaults when absent). The heads read the decoder fed `input_ids` shifted right unless
 * `decoder_input_ids` are given, as transformers does; every optional input / output of outputs.ts works here too.
 */

import { BadInputError } from "./errors.js";
import {
  loadModelAs,
  T5EncoderModel,
  T5ForConditionalGeneration,
  T5Model,
  T5PreTrainedModel,
  type IdsLike,
  type ModelLoadOptions,
  type Tensor,
} from "./models.js";
import type { FullOutput } from "./outputs.js";
import type { ModelSource } from "./files.js";
import { GpuEngine } from "./engine.js";
import { runFull, runFullGpu, type EngineKind, type ExtraOutputs, type FloatsLike, type FullForwardInputs } from "./outputs.js";

export interface SequenceClassifierInputs extends FullForwardInputs {
  /** Class ids `[batch]` (single label), float targets `[batch, num_labels]` (multi label) or `[batch]`
   * (regression); the loss follows `config.problem_type`, else transformers' choice from `num_labels` and the
   * labels (integers → single label). */
  labels?: IdsLike | FloatsLike;
}

/** transformers' `Seq2SeqSequenceClassifierOutput`. */
export interface Seq2SeqSequenceClassifierOutput extends ExtraOutputs {
  /** `[batch, num_labels]` */
  logits: Tensor;
  loss?: number;
  encoder_last_hidden_state?: Tensor;
}

export interface TokenClassifierInputs {
  input_ids: IdsLike;
  attention_mask?: IdsLike;
  labels?: IdsLike;
  output_hidden_states?: boolean;
  output_attentions?: boolean;
}

/** transformers' `TokenClassifierOutput`. */
export interface TokenClassifierOutput extends ExtraOutputs {
  /** `[batch, seq, num_labels]` */
  logits: Tensor;
  loss?: number;
}

/** transformers' `Seq2SeqQuestionAnsweringModelOutput`. */
export interface Seq2SeqQuestionAnsweringModelOutput extends ExtraOutputs {
  /** `[batch, decoder length]` */
  start_logits: Tensor;
  end_logits: Tensor;
  loss?: number;
  encoder_last_hidden_state?: Tensor;
}

abstract class T5HeadModel extends T5PreTrainedModel {
  protected abstract readonly kind: EngineKind;

  /** `num_labels` of the config (the size of `id2label`). */
  get num_labels(): number {
    return this.config.num_labels ?? 2;
  }

  /** The head's forward on the CPU (synchronous). */
  protected run(inputs: FullForwardInputs): FullOutput {
    return runFull(this.cpu(`${this.constructor.name}.forwardSync`).model, this.kind, this.config, inputs);
  }

  /** The head's forward on either device: on WebGPU the model and head run on the GPU and the outputs are read
   * back asynchronously. */
  protected async runAsync(inputs: FullForwardInputs): Promise<FullOutput> {
    const e = this.engine;
    if (e instanceof GpuEngine) return runFullGpu(e.model, this.kind, this.config, inputs);
    return this.run(inputs);
  }
}

/** transformers' `T5ForSequenceClassification`: the decoder output at the last EOS of each row → dense → tanh →
 * out_proj. Every row must hold the same number of EOS tokens (transformers' error otherwise). */
export class T5ForSequenceClassification extends T5HeadModel {
  protected readonly kind = "seq-cls" as const;

  static async fromPretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<T5ForSequenceClassification> {
    return loadModelAs(dirOrUrl, "seq-cls", opts, () => T5ForSequenceClassification);
  }

  async forward(inputs: SequenceClassifierInputs): Promise<Seq2SeqSequenceClassifierOutput> {
    return (await this.runAsync(inputs)) as Seq2SeqSequenceClassifierOutput;
  }

  forwardSync(inputs: SequenceClassifierInputs): Seq2SeqSequenceClassifierOutput {
    return this.run(inputs) as Seq2SeqSequenceClassifierOutput;
  }
}

/** transformers' `T5ForTokenClassification`: encoder → classifier. */
export class T5ForTokenClassification extends T5HeadModel {
  protected readonly kind = "token-cls" as const;

  static async fromPretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<T5ForTokenClassification> {
    return loadModelAs(dirOrUrl, "token-cls", opts, () => T5ForTokenClassification);
  }

  async forward(inputs: TokenClassifierInputs): Promise<TokenClassifierOutput> {
    if (inputs.input_ids === undefined) throw new BadInputError("input_ids are required");
    return (await this.runAsync(inputs)) as TokenClassifierOutput;
  }

  forwardSync(inputs: TokenClassifierInputs): TokenClassifierOutput {
    if (inputs.input_ids === undefined) throw new BadInputError("input_ids are required");
    return this.run(inputs) as TokenClassifierOutput;
  }
}

/** transformers' `T5ForQuestionAnswering`: decoder output → qa_outputs → start / end logits. */
export class T5ForQuestionAnswering extends T5HeadModel {
  protected readonly kind = "qa" as const;

  static async fromPretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<T5ForQuestionAnswering> {
    return loadModelAs(dirOrUrl, "qa", opts, () => T5ForQuestionAnswering);
  }

  async forward(inputs: FullForwardInputs): Promise<Seq2SeqQuestionAnsweringModelOutput> {
    return (await this.runAsync(inputs)) as Seq2SeqQuestionAnsweringModelOutput;
  }

  forwardSync(inputs: FullForwardInputs): Seq2SeqQuestionAnsweringModelOutput {
    return this.run(inputs) as Seq2SeqQuestionAnsweringModelOutput;
  }
}

export interface T5ForSequenceClassification {
  /** `await model(inputs)`: {@link T5ForSequenceClassification.forward}. */
  (inputs: SequenceClassifierInputs): Promise<Seq2SeqSequenceClassifierOutput>;
}
export interface T5ForTokenClassification {
  (inputs: TokenClassifierInputs): Promise<TokenClassifierOutput>;
}
export interface T5ForQuestionAnswering {
  (inputs: FullForwardInputs): Promise<Seq2SeqQuestionAnsweringModelOutput>;
}

export class AutoModelForSequenceClassification {
  /** transformers' name of `fromPretrained`. */
  static from_pretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<T5ForSequenceClassification> {
    return this.fromPretrained(dirOrUrl, opts);
  }

  static fromPretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<T5ForSequenceClassification> {
    return T5ForSequenceClassification.fromPretrained(dirOrUrl, opts);
  }
}

export class AutoModelForTokenClassification {
  /** transformers' name of `fromPretrained`. */
  static from_pretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<T5ForTokenClassification> {
    return this.fromPretrained(dirOrUrl, opts);
  }

  static fromPretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<T5ForTokenClassification> {
    return T5ForTokenClassification.fromPretrained(dirOrUrl, opts);
  }
}

export class AutoModelForQuestionAnswering {
  /** transformers' name of `fromPretrained`. */
  static from_pretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<T5ForQuestionAnswering> {
    return this.fromPretrained(dirOrUrl, opts);
  }

  static fromPretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<T5ForQuestionAnswering> {
    return T5ForQuestionAnswering.fromPretrained(dirOrUrl, opts);
  }
}

export type AnyT5Model = T5ForConditionalGeneration | T5Model | T5EncoderModel | T5ForSequenceClassification | T5ForTokenClassification | T5ForQuestionAnswering;

const CLASS_OF_KIND: Record<string, unknown> = {
  "seq-cls": T5ForSequenceClassification,
  "token-cls": T5ForTokenClassification,
  qa: T5ForQuestionAnswering,
  "seq2seq-lm": T5ForConditionalGeneration,
  "t5-model": T5Model,
  encoder: T5EncoderModel,
};

export class AutoModel {
  /** The class config.json's `architectures` names (T5ForConditionalGeneration, T5Model, T5EncoderModel or one of
   * the heads); T5ForConditionalGeneration when it names none. */
  /** transformers' name of `fromPretrained`. */
  static from_pretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<AnyT5Model> {
    return this.fromPretrained(dirOrUrl, opts);
  }

  static async fromPretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<AnyT5Model> {
    return loadModelAs<AnyT5Model>(dirOrUrl, "auto", opts, (kind) => {
      const cls = CLASS_OF_KIND[kind];
      if (!cls) throw new BadInputError(`unexpected model kind ${kind}`);
      return cls;
    });
  }
}
