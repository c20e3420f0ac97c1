/**
 * kiln/codegen — the kernel IR, its legalization, lowering from graph nodes to kernels, and the one C-like renderer
 * with its WGSL and CUDA C dialects.
 *
 * @module kiln/codegen
 */
export * from './kir.js';
export { legalize } from './legalize.js';
export * from './lower/index.js';
export { CLikeRenderer } from './render/clike.js';
export { WgslRenderer } from './render/wgsl.js';
export { CudaRenderer, CUDA_PRELUDE } from './render/cuda.js';
export type { ScheduleFamily, ScheduleLookup, ScheduleStore } from './lower/contraction/schedules.js';
