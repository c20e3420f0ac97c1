/** Importing this module registers every lowering. */
import './elementwise.js';

export { lowerNode, hasLowering, registerLowering, type Lowering } from './registry.js';
export * from './kernel-builder.js';
export * from './storage.js';
export * from './pointwise.js';
