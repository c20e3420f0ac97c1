/** Block-quantized matmul / gather ops (filled in by the issue-12 work). */
export {};
