/** GGUF (ggml) block-quantized weights: slot, filled by the GGUF formats work. */
export {};
