/** Lowerings of the sparse ops (ir/ops/sparse.ts). Filled by the sparsity work (issue 14). */
export {};
