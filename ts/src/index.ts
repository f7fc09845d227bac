/**
 * t5-web: T5 inference for JavaScript runtimes with the Hugging Face transformers API.
 *
 * ```ts
 * import { AutoTokenizer, AutoModelForSeq2SeqLM, pipeline } from "t5-web";
 * const tokenizer = await AutoTokenizer.fromPretrained("path/or/https://host/t5-small");
 * const model = await AutoModelForSeq2SeqLM.fromPretrained("path/or/https://host/t5-small");
 * const ids = await model.generate(tokenizer(["translate English to German: Hello"], { padding: true }), { max_new_tokens: 20 });
 * tokenizer.batchDecode(ids, { skip_special_tokens: true });
 * model.dispose(); tokenizer.dispose();
 * ```
 */

export { T5Config, type T5ConfigFields } from "./config.js";
export {
  T5WebError,
  MissingFileError,
  PermissionDeniedError,
  BadJsonError,
  BadConfigError,
  UnsupportedActivationError,
  BadWeightsError,
  MissingTensorError,
  ShapeMismatchError,
  UnsupportedDtypeError,
  BadInputError,
  InputTooLongError,
  TokenizerError,
  ModelTooLargeError,
  MemoryBudgetError,
  DisposedError,
  EngineFailureError,
  OnnxOnlyError,
  GenerationAbortedError,
  type T5WebErrorOptions,
} from "./errors.js";
export type { LoadOptions } from "./files.js";
export { env, type Env, type HubOptions } from "./hub.js";
export {
  AutoModelForSeq2SeqLM,
  T5EncoderModel,
  T5ForConditionalGeneration,
  T5Model,
  T5PreTrainedModel,
  Tensor,
  type EncoderOutput,
  type ForwardInputs,
  type GenerateInputs,
  type GenerateOptions,
  type IdsLike,
  type Seq2SeqLMOutput,
  type Seq2SeqModelOutput,
} from "./models.js";
export {
  pipeline,
  type PipelineOptions,
  type SupportedTask,
  type Text2TextCallOptions,
  type Text2TextGenerationOutput,
  type Text2TextGenerationPipeline,
} from "./pipeline.js";
export {
  AutoTokenizer,
  T5Tokenizer,
  type BatchEncoding,
  type DecodeOptions,
  type ReturnTensors,
  type T5TokenizerInit,
  type TensorBatchEncoding,
  type TokenizerCallOptions,
  type TokenizerLoadOptions,
} from "./tokenizer.js";
export { GeneratedIds, IdTensor, type IdsRow, type IdsRows, type TensorLike } from "./ids.js";
export { initWasm, wasmMemory, wasmInstanceCount, wasmFlavour, wasmThreads, hasRelaxedSimd, threadsSupported, type InitOptions, type WasmSource, type WasmFlavour } from "./wasm.js";
export type { FileMap, ModelSource, ProgressCallback, ProgressInfo } from "./files.js";
export { CACHE_DIR_ENV, type CacheOptions } from "./cache.js";
export type { GenerationStreamer, GenerateOutput } from "./models.js";
export { TextStreamer, type TextStreamerOptions } from "./streamers.js";
export {
  createGenerationWorker,
  type GenerationWorker,
  type TokenEvent,
  type WorkerGenerateOptions,
  type WorkerModelInfo,
  type WorkerOptions,
} from "./worker.js";
export {
  DeviceLostError,
  installNodeWebGpu,
  WebGPUError,
  WebGPULimitsError,
  WebGPUUnavailableError,
  type Device,
} from "./webgpu.js";
export type { ModelLoadOptions, EngineGenerateOptions, EncoderInputs } from "./models.js";
export type { GpuGenerateStats } from "./engine.js";
export {
  AutoModel,
  AutoModelForQuestionAnswering,
  AutoModelForSequenceClassification,
  AutoModelForTokenClassification,
  T5ForQuestionAnswering,
  T5ForSequenceClassification,
  T5ForTokenClassification,
  type AnyT5Model,
  type Seq2SeqQuestionAnsweringModelOutput,
  type Seq2SeqSequenceClassifierOutput,
  type SequenceClassifierInputs,
  type TokenClassifierOutput,
  type TokenClassifierInputs,
} from "./heads.js";
export { PastKeyValues, type EncoderOutputsLike, type ExtraOutputs, type FloatsLike, type FullForwardInputs } from "./outputs.js";
