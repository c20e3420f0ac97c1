/** Tensor- and pipeline-parallel partitioning (issue 15). */
export {};
