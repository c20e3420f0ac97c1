/**
 * Magnitude pruning: the weights of smallest |w| become zero. Scope `output` compares the K weights of each output
 * column (every column reaches the same sparsity), `layer` all of one weight, `global` every pruned weight of the
 * model together (layers end up with different sparsities). N:M patterns keep the n largest of every m consecutive k
 * of a column, whatever the scope.
 */
import type { Graph } from '../../ir/graph.js';
import type { CalibrationStats } from '../quant/calibrate.js';
import {
  applyMask,
  checkPattern,
  globalThreshold,
  layerRow,
  patternName,
  prunableMatmuls,
  selectPruned,
  setWeight,
  statsFor,
  weightValues,
  type PruneReport,
  type PruneScope,
  type SparsityPattern,
} from './masks.js';

export interface MagnitudeOptions {
  pattern: SparsityPattern;
  /** Default 'output'. */
  scope?: PruneScope;
  /** Prune the LM head too (default false). */
  head?: boolean;
  /** Prune only the matmul nodes with these names. */
  only?: readonly string[];
}

/** Magnitude-prune one [K, N] weight (scope output or layer). */
export function magnitudePrune(
  W: Float64Array,
  K: number,
  N: number,
  pattern: SparsityPattern,
  scope: 'output' | 'layer' = 'output',
): Float64Array {
  return applyMask(W, selectPruned(W.map(Math.abs), K, N, pattern, scope));
}

/**
 * Magnitude-prune the graph's constant-weight matmuls in place (zeros in the dense weights). With `stats`
 * (calibration of the same graph) the report carries each layer's output error.
 */
export function pruneMagnitude(graph: Graph, opts: MagnitudeOptions, stats?: CalibrationStats): PruneReport {
  checkPattern(opts.pattern);
  const scope = opts.scope ?? 'output';
  const { prune, kept } = prunableMatmuls(graph, opts);
  const report: PruneReport = {
    method: `magnitude (${scope})`,
    pattern: patternName(opts.pattern),
    layers: [],
    kept,
  };
  const weights = prune.map((m) => weightValues(m.weight));
  let pruned: Uint8Array[];
  if (scope === 'global' && opts.pattern.kind === 'unstructured') {
    const abs = weights.map((W) => W.map(Math.abs));
    const t = globalThreshold(abs, opts.pattern.sparsity);
    let ties = t.ties;
    pruned = abs.map((a) =>
      Uint8Array.from(a, (x) => {
        if (x < t.value) return 1;
        if (x === t.value && ties > 0) {
          ties--;
          return 1;
        }
        return 0;
      }),
    );
  } else {
    pruned = prune.map((m, i) =>
      selectPruned(weights[i]!.map(Math.abs), m.K, m.N, opts.pattern, scope === 'layer' ? 'layer' : 'output'),
    );
  }
  prune.forEach((m, i) => {
    const W = weights[i]!;
    const What = applyMask(W, pruned[i]!);
    setWeight(m.weight, What);
    report.layers.push(layerRow(m, W, What, stats && statsFor(stats, m)));
  });
  return report;
}
