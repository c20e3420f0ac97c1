/**
 * kiln/ir — the typed graph IR: dtypes, symbolic shapes, tensor types with layouts, the op registry, graphs.
 *
 * @module kiln/ir
 */
import './ops/index.js';

export * from './dtype.js';
export * from './errors.js';
export * from './shape.js';
export * from './types.js';
export * from './tensor.js';
export * from './layout.js';
export * from './registry.js';
export * from './graph.js';
export * from './infer.js';
export * from './verify.js';
export * from './builder.js';
export * from './interpret.js';
export * from './text.js';
