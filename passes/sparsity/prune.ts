/**
 * Pruning passes (issue 14): unstructured and N:M magnitude (`magnitude.ts`), Wanda (`wanda.ts`) and SparseGPT
 * (`sparsegpt.ts`) — the same graph with zeros in its dense weights (the layout choice comes later, `select.ts`) —
 * and structured pruning of heads, MLP channels and decoder layers that shrinks the matmuls (`structured.ts`).
 */
import { KilnError } from '../../ir/errors.js';
import type { Graph } from '../../ir/graph.js';
import type { CalibrationStats } from '../quant/calibrate.js';
import { pruneMagnitude } from './magnitude.js';
import type { PruneReport, PruneScope, SparsityPattern } from './masks.js';
import { pruneSparseGpt } from './sparsegpt.js';
import { pruneWanda } from './wanda.js';

export * from './magnitude.js';
export * from './masks.js';
export * from './sparsegpt.js';
export * from './structured.js';
export * from './wanda.js';

export type PruneMethod = 'magnitude' | 'wanda' | 'sparsegpt';

export interface PruneOptions {
  method: PruneMethod;
  pattern: SparsityPattern;
  /** Magnitude only (default 'output'). */
  scope?: PruneScope;
  /** SparseGPT: damping fraction, block size, sequential recalibration. */
  damp?: number;
  blockSize?: number;
  /** SparseGPT sequential: recompute the statistics on the graph pruned so far before each activation's matmuls. */
  recalibrate?: (graph: Graph) => CalibrationStats;
  head?: boolean;
  only?: readonly string[];
}

/**
 * Prune the graph's constant-weight matmuls in place with `method`. Wanda and SparseGPT need calibration statistics
 * of the same graph (passes/quant/calibrate.ts); magnitude uses them only for the report's output errors.
 */
export function pruneWeights(graph: Graph, opts: PruneOptions, stats?: CalibrationStats): PruneReport {
  if (opts.scope && opts.scope !== 'output' && opts.method !== 'magnitude')
    throw new KilnError(
      'attribute',
      `scope '${opts.scope}' is a magnitude-pruning option (${opts.method} is per output)`,
    );
  if (opts.method === 'magnitude') return pruneMagnitude(graph, opts, stats);
  if (!stats) throw new KilnError('attribute', `${opts.method} pruning needs calibration statistics`);
  if (opts.method === 'wanda') return pruneWanda(graph, stats, opts);
  if (opts.method === 'sparsegpt') return pruneSparseGpt(graph, stats, opts);
  throw new KilnError('attribute', `unknown pruning method '${String(opts.method)}'`);
}
