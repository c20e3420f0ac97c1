/** Lowerings of the block-quantized ops (filled in by the issue-12 work). */
export {};
