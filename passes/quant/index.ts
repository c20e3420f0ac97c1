/**
 * Post-training quantization passes: weight-only round-to-nearest (`rtn.ts`), GPTQ (`gptq.ts`) and AWQ (`awq.ts`),
 * the last two fed by calibration statistics (`calibrate.ts`).
 */
export * from './rtn.js';
export * from './calibrate.js';
export * from './gptq.js';
export * from './awq.js';
export * from './smoothquant.js';
export * from './qdq.js';
