/** Lowerings of the GGUF (ggml) block-quantized ops: slot. */
export {};
