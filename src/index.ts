/**
 * kiln — kernel compiler and graph optimizer for transformer inference.
 *
 * This is the public API: build or import a graph, compile it for a backend, run it. Lower layers have their own
 * entry points: `kiln/ir` (dtypes, shapes, the op registry, graph, verifier, interpreter, text format), `kiln/codegen`
 * (kernel IR, lowering, WGSL / CUDA renderers), `kiln/passes`, `kiln/conformance` (Node only).
 *
 * The entry is browser-safe: it statically imports no Node built-ins (Node-only runtimes load on demand).
 *
 * ```ts
 * import { importOnnx, compile } from 'kiln';
 * const { graph } = importOnnx(bytes);
 * const session = await compile(graph, { backend: 'auto' });
 * const outputs = await session.run({ input_ids: { dtype: 'i64', shape: [1, 3], data: new BigInt64Array([1n, 2n, 3n]) } });
 * ```
 *
 * @module kiln
 */
import '../ir/ops/index.js';

export {
  compile,
  BACKENDS,
  BACKEND_CHOICES,
  OPT_LEVELS,
  type BackendName,
  type BackendChoice,
  type CompileOptions,
  type KernelInfo,
  type Session,
  type ValueInfo,
  type OrtStyleMetadata,
  type TransferStats,
} from './session.js';
export type { DeviceTensor } from './runtime/device-tensor.js';
export {
  makeTensor,
  toBigInt64Array,
  MAX_REFERENCE_ELEMENTS,
  type Tensor,
  type TensorData,
  type TensorLike,
} from '../ir/tensor.js';
export { DTYPES, type DType } from '../ir/dtype.js';
export type { Dim, Shape } from '../ir/shape.js';
export { GraphBuilder } from '../ir/builder.js';
export { Graph, Node, Value } from '../ir/graph.js';
export { printGraph, parseGraph } from '../ir/text.js';
export { verify } from '../ir/verify.js';
export { interpret } from '../ir/interpret.js';
export {
  KilnError,
  ParseError,
  UnsupportedError,
  VerifyError,
  type ErrorLocation,
  type KilnErrorCode,
} from '../ir/errors.js';
export {
  importOnnx,
  importOnnxFile,
  importOnnxModel,
  externalDataFrom,
  tensorFromOnnx,
  type ExternalDataReader,
  type ImportOptions,
  type ImportedModel,
} from './frontends/onnx/import.js';
export {
  exportOnnx,
  exportOnnxModel,
  exportOnnxFile,
  type ExportOptions,
  type ExportedOnnx,
} from './frontends/onnx/export.js';
export {
  ONNX_DTYPE,
  type OnnxAttribute,
  type OnnxFunction,
  type OnnxGraph,
  type OnnxNode,
  type OnnxSparseTensor,
  type OnnxValueInfo,
  type OnnxModel,
  type OnnxOpsetId,
  type OnnxTensor,
  type OnnxTensorValues,
  type OnnxType,
  type OnnxDim,
} from './frontends/onnx/proto.js';
export type { ExternalDataRef } from './frontends/onnx/proto.js';
export { buildTinyGpt, TINY_GPT, type TinyGptConfig } from './models/tiny-gpt.js';
// Language models: weights from bytes (browser-safe), graph builders, the generation runtime.
export type { Gpt2Config, LlamaConfig, ModelConfig, WeightSource } from './models/config.js';
export type { LmBuildOptions, LmDtype } from './models/lm.js';
export { buildLlama } from './models/llama.js';
export { buildGpt2 } from './models/gpt2.js';
export { loadLlama2c, type Llama2cModel } from './frontends/llama2c.js';
export {
  parseGguf,
  ggufModel,
  type GgufFile,
  type GgufModel,
  type GgufTensorInfo,
  type GgufValue,
} from './frontends/gguf.js';
export {
  writeGguf,
  llamaGguf,
  type GgufMeta,
  type GgufMetaType,
  type GgufTensorOut,
  type LlamaGgufOptions,
  type LlamaGgufReport,
} from './frontends/gguf-write.js';
export { GGML_FORMATS, type GgmlFormat } from '../ir/ops/ggml.js';
export { parseSafetensors, type SafetensorsFile } from './frontends/safetensors.js';
export { hfModel, type HfModel } from './frontends/hf-config.js';
export { loadLlama2cTokenizer } from './tokenizers/llama2c.js';
export type { Tokenizer } from './tokenizers/types.js';
export { LanguageModelSession, type GenerateOptions, type GenerationStats, type LanguageModel } from './generate/lm.js';
export type { CacheLayout, CachePair, DecoderLayout } from './generate/onnx-decoder.js';
export { generateText, perplexity, type PerplexityResult } from './generate/text.js';
export { MemoryScheduleStore, type ScheduleStore } from '../codegen/lower/contraction/schedules.js';
export { PagedLanguageModel, PagedSequence, type PagedOptions, type SamplingParams } from './generate/paged.js';
export type { SamplingOptions } from './generate/sampling.js';
export {
  SpeculativeDecoder,
  NgramDraft,
  ModelDraft,
  MixedDraft,
  generate as generateSpeculative,
  type Draft,
  type DraftSource,
  type SpeculativeOptions,
  type SpeculativeStats,
  verifyTree,
  mergeProposals,
  type TreeOptions,
  type TreeVerdictResult,
} from './generate/speculative.js';
export { TokenTree, TREE_MAX_NODES } from './generate/tree.js';
export {
  MedusaDraft,
  MedusaHeads,
  fitMedusa,
  medusaTreeShape,
  type FitOptions,
  type FitReport,
} from './generate/medusa.js';
export { createSession } from './session.js';
export { graphDot, dotToSvg } from './draw.js';
