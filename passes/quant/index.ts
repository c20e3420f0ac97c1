/** Post-training quantization passes (filled in by the issue-12 work). */
export {};
