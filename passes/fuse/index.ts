/** Fusion passes: groups of ops that run as one kernel. */
export { fuseElementwise, fuseElementwisePass, type FuseOptions } from './elementwise.js';
export { fuseEpilogues, fuseEpiloguePass } from './epilogue.js';
export { mergeProjections, mergeProjectionsPass } from './projections.js';
export { fuseConcats, fuseConcatsPass } from './concat.js';
export { mergeRotary, mergeRotaryPass } from './rotary.js';
export { fuseNormPrologues, fuseNormProloguePass } from './norm-prologue.js';
