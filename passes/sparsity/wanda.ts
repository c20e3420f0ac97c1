/**
 * Wanda (Sun et al., 2023, "A Simple and Effective Pruning Approach for Large Language Models"): the score of
 * weight W[k, n] is |W[k, n]| · ‖X_k‖₂, the weight's magnitude times the norm of its input channel over the
 * calibration rows (‖X_k‖₂ = sqrt(Σ_rows x_k²), the diagonal of Σxxᵀ from passes/quant/calibrate.ts). Scores are
 * compared per output (each column n over its K weights), as the paper does, or within each N:M group. No weight
 * update: only the mask changes.
 */
import type { Graph } from '../../ir/graph.js';
import type { ActivationStats, CalibrationStats } from '../quant/calibrate.js';
import {
  applyMask,
  checkPattern,
  layerRow,
  patternName,
  prunableMatmuls,
  selectPruned,
  setWeight,
  statsFor,
  weightValues,
  type PruneReport,
  type SparsityPattern,
} from './masks.js';

export interface WandaOptions {
  pattern: SparsityPattern;
  head?: boolean;
  only?: readonly string[];
}

/** Wanda scores |W[k, n]| · ‖X_k‖ of a [K, N] weight. */
export function wandaScores(W: Float64Array, K: number, N: number, s: ActivationStats): Float64Array {
  const scores = new Float64Array(K * N);
  for (let k = 0; k < K; k++) {
    const norm = Math.sqrt(Math.max(0, s.xtx[k * K + k]!));
    for (let n = 0; n < N; n++) scores[k * N + n] = Math.abs(W[k * N + n]!) * norm;
  }
  return scores;
}

/** Wanda-prune one [K, N] weight with its activation's statistics. */
export function wandaPrune(
  W: Float64Array,
  K: number,
  N: number,
  s: ActivationStats,
  pattern: SparsityPattern,
): Float64Array {
  return applyMask(W, selectPruned(wandaScores(W, K, N, s), K, N, pattern, 'output'));
}

/** Wanda-prune the graph's constant-weight matmuls in place, with calibration statistics of the same graph. */
export function pruneWanda(graph: Graph, stats: CalibrationStats, opts: WandaOptions): PruneReport {
  checkPattern(opts.pattern);
  const { prune, kept } = prunableMatmuls(graph, opts);
  const report: PruneReport = { method: 'wanda', pattern: patternName(opts.pattern), layers: [], kept };
  for (const m of prune) {
    const s = statsFor(stats, m);
    const W = weightValues(m.weight);
    const What = wandaPrune(W, m.K, m.N, s, opts.pattern);
    setWeight(m.weight, What);
    report.layers.push(layerRow(m, W, What, s));
  }
  return report;
}
