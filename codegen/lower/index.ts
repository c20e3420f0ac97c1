/** Importing this module registers every lowering. */
import './elementwise.js';
import './movement.js';
import './attention.js';
import './quant.js';
import './matmul.js';
import './einsum.js';
import './reduce.js';
import './paged.js';
import './sample.js';
import './fused.js';
import './scatter.js';
import './conv.js';
import './blockq.js';
import './sparse.js';
import './ggml.js';

export { lowerNode, hasLowering, registerLowering, type Lowering } from './registry.js';
export * from './kernel-builder.js';
export * from './storage.js';
export * from './pointwise.js';
