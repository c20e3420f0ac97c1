/**
 * kiln/passes — the pass manager, the rewrite engine and the canonicalization passes.
 *
 * @module kiln/passes
 */
export * from './context.js';
export * from './manager.js';
export * from './rewrite.js';
export * from './clone.js';
export * from './canonicalize/index.js';
export * from './quant/index.js';
export * from './sparsity/index.js';
export * from './parallel/index.js';
