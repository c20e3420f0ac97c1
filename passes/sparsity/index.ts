/** Pruning (magnitude, Wanda, SparseGPT, structured) and the dense / sparse layout choice per matmul. */
export * from './prune.js';
export * from './select.js';
