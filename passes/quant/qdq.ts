/** QAT / QAF graph folding (Q/DQ pairs, MatMulInteger, DynamicQuantizeLinear): slot. */
export {};
