/** The canonicalization passes: rule families run to a fixed point, plus CSE and DCE. */
import type { Graph } from '../../ir/graph.js';
import type { Pass } from '../context.js';
import { applyRules, type Rule } from '../rewrite.js';
import { arithmeticRules, castRules, viewRules } from './algebraic.js';
import { eliminateCommonSubexpressions } from './cse.js';
import { foldRules } from './fold.js';
import { gemmRules, matmulBiasRules } from './matmul.js';

export { arithmeticRules, castRules, exactIn, viewRules } from './algebraic.js';
export { eliminateCommonSubexpressions } from './cse.js';
export { FOLD_LIMIT, foldRules } from './fold.js';
export { gemmRules, matmulBiasRules } from './matmul.js';

/** Rule families by name (tests run one family at a time). */
export const RULE_FAMILIES: Readonly<Record<string, readonly Rule[]>> = {
  fold: foldRules,
  arithmetic: arithmeticRules,
  view: viewRules,
  cast: castRules,
  gemm: gemmRules,
  'matmul-bias': matmulBiasRules,
};

/** A pass that runs rule lists to a fixed point. */
export function rulePass(name: string, minLevel: number, rules: readonly Rule[]): Pass {
  return {
    name,
    minLevel,
    run(graph: Graph) {
      const stats = applyRules(graph, rules);
      return { changed: stats.fired.size > 0 };
    },
  };
}

export const deadCodeElimination: Pass = {
  name: 'dce',
  minLevel: 1,
  run(graph) {
    const nodes = graph.nodes.length;
    const consts = graph.constants.length;
    graph.removeDead();
    return { changed: graph.nodes.length !== nodes || graph.constants.length !== consts };
  },
};

export const commonSubexpressionElimination: Pass = {
  name: 'cse',
  minLevel: 1,
  run(graph) {
    return { changed: eliminateCommonSubexpressions(graph) > 0 };
  },
};

/** Folding, identities, views and casts together, so each enables the others within one fixed point. */
export const canonicalize: Pass = rulePass('canonicalize', 1, [
  ...foldRules,
  ...arithmeticRules,
  ...viewRules,
  ...castRules,
  ...gemmRules,
]);

/** matmul + bias → gemm (level 2: changes which kernel runs). */
export const matmulBias: Pass = rulePass('matmul-bias', 2, matmulBiasRules);
