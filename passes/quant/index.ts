/** Post-training quantization passes: weight-only round-to-nearest (`rtn.ts`). */
export * from './rtn.js';
