/**
 * The WebGPU runtime: device acquisition and capabilities, buffers, pipeline compilation and cache, dispatch.
 *
 * Typical use:
 *
 * ```ts
 * const ctx = await acquireGpu();
 * const pipeline = await compileKernel(ctx, { key: hash, wgsl, entryPoint: 'main', label: 'add' });
 * const a = await uploadArray(ctx, xs), b = await uploadArray(ctx, ys);
 * const y = await bufferPool(ctx).acquire(xs.byteLength);
 * poisonBuffer(ctx, y);
 * encodeRun(ctx, [{ pipeline, bindings: [a, b, y], uniform: new Uint32Array([n]), workgroups: [Math.ceil(n / 256)] }]);
 * const out = await readbackAs(ctx, y, Float32Array, n);
 * ```
 */
export {
  acquireGpu,
  capabilitiesFingerprint,
  GpuContext,
  BufferUsage,
  MapMode,
  INSTALL_HINT,
  DEFAULT_NODE_ADAPTER,
  REQUESTED_LIMITS,
  type AcquireGpuOptions,
  type GpuCapabilities,
} from './device.js';
export {
  BufferPool,
  bufferPool,
  sizeClass,
  alignUp,
  uploadArray,
  writeBuffer,
  poisonBuffer,
  readback,
  readbackAs,
  STORAGE_USAGE,
  READBACK_USAGE,
  UNIFORM_USAGE,
  POISON_PATTERN,
  type AcquireOptions,
  type BufferPoolStats,
  type UploadOptions,
  type ReadbackOptions,
} from './buffers.js';
export {
  compileKernel,
  pipelineCache,
  PipelineCache,
  WgslCompileError,
  limitInMessage,
  type BindingKind,
  type KernelSource,
  type WgslDiagnostic,
} from './pipelines.js';
export { encodeRun, type DispatchStep, type RunOptions, type RunHandle } from './dispatch.js';
export {
  handwrittenMatmulKernel,
  handwrittenMatmulWorkgroups,
  matmulDims,
  type HandwrittenMatmulVariant,
} from './handwritten-matmul.js';
