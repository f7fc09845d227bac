/**
 * The models: `T5ForConditionalGeneration`, `T5Model`, `T5EncoderModel` and
 * `AutoModelForSeq2SeqLM`, loaded from a directory or base URL in the Hub layout. All numerics run
 * in the WebAssembly engine; this layer only moves arrays in and out and names things.
 *
 * Input length: T5's relative position buckets impose no maximum sequence length, so the models
 * accept inputs of any length (`n_positions` in old configs is not a limit). Length policy lives in
 * the tokenizer (see `tokenizer.ts`).
 */

import { BadInputError } from "./errors.js";
import type { ModelSource } from "./files.js";
import { runFull, wantsFull, type ExtraOutputs, type FullForwardInputs } from "./outputs.js";
import type { EngineInput, GpuGenerateStats, RawForward, RawGenerate, StepCallback } from "./engine.js";
import { encoderInput, generateArgs, type IdsLike } from "./inputs.js";
import { GenerationCall, type GenerateInputs, type GenerateOptions, type GenerateOutput } from "./generation.js";
import type { GeneratedIds } from "./ids.js";
import { Tensor } from "./tensor.js";
import { loadModel, type ModelLoadOptions } from "./model-load.js";
import { T5PreTrainedModel, type EncoderOutput, type ForwardInputs, type Seq2SeqLMOutput, type Seq2SeqModelOutput } from "./model-base.js";

export { GENERATE_KEYS, type EngineGenerateOptions, type GenerateInputs, type GenerateOptions, type GenerateOutput, type GenerationStreamer } from "./generation.js";
export { Tensor } from "./tensor.js";
export { loadModelAs, type Kind, type Loaded, type ModelLoadOptions, type WeightDtype } from "./model-load.js";
export { T5PreTrainedModel, type EncoderOutput, type ForwardInputs, type Seq2SeqLMOutput, type Seq2SeqModelOutput } from "./model-base.js";
export type { IdsLike } from "./inputs.js";

function needDecoderInput(inputs: ForwardInputs): void {
  if (inputs.decoder_input_ids === undefined && inputs.labels === undefined) {
    throw new BadInputError("decoder_input_ids or labels are required");
  }
}

function tensor(data: Float32Array | undefined, dims: number[] | undefined, what: string): Tensor {
  if (data === undefined || dims === undefined) throw new BadInputError(`the engine returned no ${what}`);
  return new Tensor(data, dims);
}

function lmOutput(r: RawForward): Seq2SeqLMOutput {
  const out: Seq2SeqLMOutput = {
    logits: tensor(r.logits, r.logits_shape, "logits"),
    decoder_last_hidden_state: tensor(r.decoder_last_hidden_state, r.decoder_shape, "decoder_last_hidden_state"),
    encoder_last_hidden_state: new Tensor(r.encoder_last_hidden_state, r.encoder_shape),
  };
  if (r.loss !== undefined) out.loss = r.loss;
  return out;
}

function modelOutput(r: RawForward): Seq2SeqModelOutput {
  return {
    last_hidden_state: tensor(r.decoder_last_hidden_state, r.decoder_shape, "decoder_last_hidden_state"),
    encoder_last_hidden_state: new Tensor(r.encoder_last_hidden_state, r.encoder_shape),
  };
}

/** transformers' `T5ForConditionalGeneration`: encoder, decoder, LM head. Callable: `await model(inputs)` is
 * `await model.forward(inputs)`. */
export class T5ForConditionalGeneration extends T5PreTrainedModel {
  static async fromPretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<T5ForConditionalGeneration> {
    return new T5ForConditionalGeneration(await loadModel(dirOrUrl, "seq2seq-lm", opts));
  }

  /** Dispatch statistics of the last WebGPU {@link generate}. */
  lastGenerateStats: GpuGenerateStats | undefined;

  /** `model(input_ids, attention_mask, decoder_input_ids | labels, decoder_attention_mask)` on either device, and
   * transformers' optional inputs / outputs (`output_hidden_states`, `output_attentions`, `encoder_outputs`,
   * `past_key_values`, `use_cache`: see outputs.ts; CPU only). */
  async forward(inputs: ForwardInputs | FullForwardInputs): Promise<Seq2SeqLMOutput & ExtraOutputs> {
    needDecoderInput(inputs as ForwardInputs);
    if (wantsFull(inputs)) return this.forwardSync(inputs);
    return lmOutput(await this.engine.forward(this.forwardInput(inputs as ForwardInputs)));
  }

  /** {@link forward}, synchronously (CPU only). */
  forwardSync(inputs: ForwardInputs | FullForwardInputs): Seq2SeqLMOutput & ExtraOutputs {
    needDecoderInput(inputs as ForwardInputs);
    const cpu = this.cpu("forwardSync");
    if (wantsFull(inputs)) return runFull(cpu.model, "seq2seq-lm", this.config, inputs as FullForwardInputs) as Seq2SeqLMOutput & ExtraOutputs;
    return lmOutput(cpu.forwardSync(this.forwardInput(inputs as ForwardInputs)));
  }

  /** @deprecated {@link forward} is async on every device. */
  forwardAsync(inputs: ForwardInputs): Promise<Seq2SeqLMOutput & ExtraOutputs> {
    return this.forward(inputs);
  }

  private prepare(inputs: GenerateInputs, options: GenerateOptions | undefined): { input: EngineInput; call: GenerationCall } {
    const { input, options: all } = generateArgs<GenerateOptions>(inputs, options);
    const given = all.decoder_start_token_id;
    // the prompt the streamer is told first; a bad value is the engine's error to report
    const start = Number.isInteger(given) && given! >= 0 ? given! : Number(this.generation_config["decoder_start_token_id"] ?? 0);
    // the rows generated: inputs × num_return_sequences (beam search, which cannot stream, steps per input)
    const nrs = all.num_return_sequences ?? this.generation_config["num_return_sequences"];
    const beams = all.num_beams ?? this.generation_config["num_beams"];
    const rows = input.batch * (Number.isInteger(nrs) && Number(beams ?? 1) <= 1 ? Number(nrs) : 1);
    return { input, call: new GenerationCall(all, rows, start) };
  }

  /**
   * transformers' `generate(**inputs, …)` on either device: greedy search, sampling (`do_sample`), beam search
   * (`num_beams`) with the logits processors of {@link GenerateOptions}. One row per input and returned sequence,
   * each starting with the decoder start token and padded as transformers pads them. With
   * `return_dict_in_generate: true`: `{sequences, sequences_scores}`. Both `generate(inputs, options)` and
   * transformers.js' `generate({...inputs, ...options})`. On the CPU it yields to the event loop between decode
   * steps, so timers and an `AbortSignal` (`signal`, e.g. `AbortSignal.timeout(ms)`) fire during it. On WebGPU every
   * step's logits are reduced on the GPU; `lastGenerateStats` then holds dispatches and bytes read per step.
   */
  generate(inputs: GenerateInputs, options: GenerateOptions & { return_dict_in_generate: true }): Promise<GenerateOutput>;
  generate(inputs: GenerateInputs & { return_dict_in_generate: true }, options?: GenerateOptions): Promise<GenerateOutput>;
  generate(inputs: GenerateInputs, options?: GenerateOptions): Promise<GeneratedIds>;
  async generate(inputs: GenerateInputs, options?: GenerateOptions): Promise<GeneratedIds | GenerateOutput> {
    const { input, call } = this.prepare(inputs, options);
    const engine = this.engine;
    const r = await engine.generate(input, call.engineOptions, call.onStep);
    if (engine.device === "webgpu") this.lastGenerateStats = r.stats;
    return call.finish(r);
  }

  /** {@link generate}, synchronously (CPU only; blocks the event loop until done: for workers and scripts). */
  generateSync(inputs: GenerateInputs, options: GenerateOptions & { return_dict_in_generate: true }): GenerateOutput;
  generateSync(inputs: GenerateInputs, options?: GenerateOptions): GeneratedIds;
  generateSync(inputs: GenerateInputs, options?: GenerateOptions): GeneratedIds | GenerateOutput {
    const cpu = this.cpu("generateSync");
    const { input, call } = this.prepare(inputs, options);
    return call.finish(cpu.generateSync(input, call.engineOptions, call.onStep));
  }

  /** @deprecated {@link generate} is async on every device. */
  generateAsync(inputs: GenerateInputs, options: GenerateOptions & { return_dict_in_generate: true }): Promise<GenerateOutput>;
  generateAsync(inputs: GenerateInputs, options?: GenerateOptions): Promise<GeneratedIds>;
  generateAsync(inputs: GenerateInputs, options?: GenerateOptions): Promise<GeneratedIds | GenerateOutput> {
    return this.generate(inputs, options);
  }

  /**
   * {@link generate} as an async iterator, on every device: yields the new token of each row after every step (beam
   * search: of each input's best running beam) and returns the final sequences (`{sequences, sequences_scores?}`).
   * An `AbortSignal` (`options.signal`) stops it between steps (the iterator then throws a
   * {@link GenerationAbortedError}); leaving a `for await` loop early stops it too. A `streamer` is told each step as
   * with {@link generate}.
   */
  async *generateStream(inputs: GenerateInputs, options?: GenerateOptions): AsyncGenerator<number[], GenerateOutput, undefined> {
    const { input, call } = this.prepare(inputs, options);
    // the engine pushes each step's tokens; this generator hands them out as they come
    const queue: number[][] = [];
    let wake: (() => void) | undefined;
    let stop = false;
    let done = false;
    let failure: { e: unknown } | undefined;
    let result: RawGenerate | undefined;
    const notify = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const onStep: StepCallback = (index, tokens) => {
      const go = call.onStep ? call.onStep(index, tokens) : true;
      queue.push(Array.from(tokens));
      notify();
      return go && !stop;
    };
    const engine = this.engine;
    const running = engine.generate(input, call.engineOptions, onStep).then(
      (r) => {
        result = r;
      },
      (e: unknown) => {
        failure = { e };
      },
    ).finally(() => {
      done = true;
      notify();
    });
    try {
      for (;;) {
        while (queue.length > 0) yield queue.shift()!;
        if (done) break;
        await new Promise<void>((resolve) => (wake = resolve));
      }
      if (failure) throw failure.e;
      if (engine.device === "webgpu") this.lastGenerateStats = result!.stats;
      return call.finishDict(result!);
    } finally {
      // a consumer that left early: stop the engine after its current step and let it finish
      stop = true;
      await running;
    }
  }
}

export interface T5ForConditionalGeneration {
  /** `await model(inputs)`: {@link T5ForConditionalGeneration.forward}. */
  (inputs: ForwardInputs | FullForwardInputs): Promise<Seq2SeqLMOutput & ExtraOutputs>;
}

/** transformers' `T5Model`: encoder and decoder, no LM head. Callable like the LM. */
export class T5Model extends T5PreTrainedModel {
  static async fromPretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<T5Model> {
    return new T5Model(await loadModel(dirOrUrl, "t5-model", opts));
  }

  async forward(inputs: ForwardInputs | FullForwardInputs): Promise<Seq2SeqModelOutput & ExtraOutputs> {
    needDecoderInput(inputs as ForwardInputs);
    if (wantsFull(inputs)) return this.forwardSync(inputs);
    return modelOutput(await this.engine.forward(this.forwardInput(inputs as ForwardInputs)));
  }

  forwardSync(inputs: ForwardInputs | FullForwardInputs): Seq2SeqModelOutput & ExtraOutputs {
    needDecoderInput(inputs as ForwardInputs);
    const cpu = this.cpu("forwardSync");
    if (wantsFull(inputs)) return runFull(cpu.model, "t5-model", this.config, inputs as FullForwardInputs) as Seq2SeqModelOutput & ExtraOutputs;
    return modelOutput(cpu.forwardSync(this.forwardInput(inputs as ForwardInputs)));
  }

  /** @deprecated {@link forward} is async on every device. */
  forwardAsync(inputs: ForwardInputs): Promise<Seq2SeqModelOutput & ExtraOutputs> {
    return this.forward(inputs);
  }
}

export interface T5Model {
  (inputs: ForwardInputs | FullForwardInputs): Promise<Seq2SeqModelOutput & ExtraOutputs>;
}

/** The inputs of the encoder-only classes. */
export interface EncoderInputs {
  input_ids: IdsLike;
  attention_mask?: IdsLike;
  output_hidden_states?: boolean;
  output_attentions?: boolean;
}

/** transformers' `T5EncoderModel`: the encoder alone. Callable like the LM. */
export class T5EncoderModel extends T5PreTrainedModel {
  static async fromPretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<T5EncoderModel> {
    return new T5EncoderModel(await loadModel(dirOrUrl, "encoder", opts));
  }

  async forward(inputs: EncoderInputs): Promise<EncoderOutput & ExtraOutputs> {
    if (wantsFull(inputs)) return this.forwardSync(inputs);
    const input = encoderInput(inputs);
    const data = await this.engine.encode(input);
    return { last_hidden_state: new Tensor(data, [input.batch, input.seq, data.length / (input.batch * input.seq)]) };
  }

  forwardSync(inputs: EncoderInputs): EncoderOutput & ExtraOutputs {
    const cpu = this.cpu("forwardSync");
    if (wantsFull(inputs)) return runFull(cpu.model, "encoder", this.config, inputs) as EncoderOutput & ExtraOutputs;
    const input = encoderInput(inputs);
    const data = cpu.encodeSync(input);
    return { last_hidden_state: new Tensor(data, [input.batch, input.seq, data.length / (input.batch * input.seq)]) };
  }

  /** @deprecated {@link forward} is async on every device. */
  forwardAsync(inputs: EncoderInputs): Promise<EncoderOutput & ExtraOutputs> {
    return this.forward(inputs);
  }
}

export interface T5EncoderModel {
  (inputs: EncoderInputs): Promise<EncoderOutput & ExtraOutputs>;
}

export class AutoModelForSeq2SeqLM {
  /** The seq2seq LM of a model directory or base URL (T5 only: `T5ForConditionalGeneration`). */
  static fromPretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<T5ForConditionalGeneration> {
    return T5ForConditionalGeneration.fromPretrained(dirOrUrl, opts);
  }

  static from_pretrained(dirOrUrl: ModelSource, opts: ModelLoadOptions = {}): Promise<T5ForConditionalGeneration> {
    return T5ForConditionalGeneration.fromPretrained(dirOrUrl, opts);
  }
}
