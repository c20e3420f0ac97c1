/** Sparse weights (N:M, CSR, BSR): ops and float64 references. Filled by the sparsity work (issue 14). */
export {};
