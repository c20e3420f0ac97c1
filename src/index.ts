/**
 * kiln — kernel compiler and graph optimizer for transformer inference.
 *
 * This entry point is browser-safe: it statically imports no Node built-ins (Node-only runtimes load on demand;
 * the conformance runner is `kiln/conformance`).
 *
 * ```ts
 * import { importOnnx, compile } from 'kiln';
 * const { graph } = importOnnx(bytes);
 * const session = await compile(graph, { backend: 'reference' });
 * const outputs = await session.run({ input_ids });
 * ```
 */
export * from '../ir/index.js';
export { compile, BACKENDS, type BackendName, type CompileOptions, type Session } from './session.js';
export {
  importOnnx,
  importOnnxModel,
  tensorFromOnnx,
  type ImportOptions,
  type ImportedModel,
} from './frontends/onnx/import.js';
/** ONNX protobuf decoding to plain typed objects. */
export * from './frontends/onnx/proto.js';

export { buildTinyGpt, TINY_GPT, type TinyGptConfig } from './models/tiny-gpt.js';
