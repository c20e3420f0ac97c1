/** Recognition: exporter patterns over primitive ops → kiln's high-level ops (layer_norm, rms_norm, gelu, silu, attention). */
import { rulePass } from '../canonicalize/index.js';
import type { Rule } from '../rewrite.js';
import { activationRules } from './activation.js';
import { attentionHeadRules, attentionRules, filledAttentionRules } from './attention.js';
import { normRules } from './norm.js';

export { activationRules } from './activation.js';
export { attentionHeadRules, attentionRules, filledAttentionRules } from './attention.js';
export { normRules, trailingAxis } from './norm.js';

// norms first: the two-pass layer-norm root is also x̂ / sqrt(mean(x̂²) + eps), an RMS norm of the deviation
export const recognizeRules: readonly Rule[] = [
  ...normRules,
  ...activationRules,
  ...attentionRules,
  ...filledAttentionRules,
];

/** Level 1: the ops are exact rewrites of the patterns, and the later passes and kernels want them whole. */
export const recognize = rulePass('recognize', 1, recognizeRules);

/**
 * Level 1, once `recognize` made the attention nodes these rules start from and canonicalization composed the key
 * transposes (the recognized form transposes Kᵀ back).
 */
export const recognizeHeads = rulePass('attention-heads', 1, attentionHeadRules);
