/**
 * SparseGPT (Frantar & Alistarh, 2023, "SparseGPT: Massive Language Models Can Be Accurately Pruned in One-Shot"):
 * pruning as OBS-style reconstruction. With H = 2 XᵀX / rows from the calibration activations (damped as GPTQ damps
 * it) and U the upper Cholesky factor of H⁻¹ (passes/quant/gptq.ts `gptqHinvUpper`, shared with GPTQ), the input
 * channels k = 0 … K−1 are visited in order; in each output column the pruned weight's error e = w / U[k, k] is fed
 * back to the channels not yet visited, w[j] −= e · U[k, j] — eagerly inside a block of `blockSize` channels, lazily
 * (one product) for the channels after it. The mask is chosen as the paper does, from the updated weights by the OBS
 * saliency w² / U[k, k]²: unstructured, per output column within each block (round(s · block) of its channels);
 * N:M, per group of m consecutive channels when the visit reaches the group. Dead channels (H[k, k] = 0) are zeroed.
 */
import { KilnError } from '../../ir/errors.js';
import type { Graph, Value } from '../../ir/graph.js';
import type { CalibrationStats } from '../quant/calibrate.js';
import { gptqHinvUpper, hessianOf } from '../quant/gptq.js';
import {
  checkPattern,
  layerRow,
  patternName,
  prunableMatmuls,
  setWeight,
  statsFor,
  weightValues,
  type PruneReport,
  type SparsityPattern,
} from './masks.js';

export interface SparseGptOptions {
  pattern: SparsityPattern;
  /** Dampening as a fraction of the mean Hessian diagonal (default 0.01). */
  damp?: number;
  /** Channels per lazy-update block (default 128; rounded up to a multiple of M for N:M). */
  blockSize?: number;
  head?: boolean;
  only?: readonly string[];
  /** Sequential: recalibrate on the graph pruned so far before each new activation's matmuls are pruned. */
  recalibrate?: (graph: Graph) => CalibrationStats;
}

/**
 * SparseGPT on one weight W [K, N] (row-major as stored: W[k·N + n]) with Hessian H [K, K] (any positive multiple
 * of XᵀX; not modified). Returns the pruned and reconstructed weight [K, N].
 */
export function sparseGptPrune(
  W: ArrayLike<number>,
  K: number,
  N: number,
  H: Float64Array,
  o: { pattern: SparsityPattern; damp?: number; blockSize?: number },
): Float64Array {
  checkPattern(o.pattern);
  const p = o.pattern;
  if (p.kind === 'nm' && K % p.m !== 0)
    throw new KilnError('shape', `N:M pruning needs K (${K}) to be a multiple of M (${p.m})`);
  const dead: boolean[] = new Array<boolean>(K).fill(false);
  const U = gptqHinvUpper(Float64Array.from(H), K, o.damp ?? 0.01, dead);
  const Wp = Float64Array.from(W);
  for (let k = 0; k < K; k++) if (dead[k]) Wp.fill(0, k * N, (k + 1) * N);
  let B = Math.max(1, o.blockSize ?? 128);
  if (p.kind === 'nm') B = Math.ceil(B / p.m) * p.m;
  const err = new Float64Array(B * N);
  const pruned = new Uint8Array(K * N);
  const saliency = (k: number, n: number) => Wp[k * N + n]! ** 2 / U[k * K + k]! ** 2;
  const order: number[] = [];
  const choose = (k0: number, k1: number, count: number) => {
    for (let n = 0; n < N; n++) {
      order.length = 0;
      for (let k = k0; k < k1; k++) order.push(k);
      order.sort((a, b) => saliency(a, n) - saliency(b, n) || a - b);
      for (let i = 0; i < count; i++) pruned[order[i]! * N + n] = 1;
    }
  };
  for (let i1 = 0; i1 < K; i1 += B) {
    const i2 = Math.min(K, i1 + B);
    if (p.kind === 'unstructured') choose(i1, i2, Math.round(p.sparsity * (i2 - i1)));
    for (let i = i1; i < i2; i++) {
      if (p.kind === 'nm' && (i - i1) % p.m === 0) choose(i, i + p.m, p.m - p.n);
      const d = U[i * K + i]!;
      for (let n = 0; n < N; n++) {
        const w = Wp[i * N + n]!;
        const e = pruned[i * N + n] ? w / d : 0;
        err[(i - i1) * N + n] = e;
        if (e === 0) continue;
        Wp[i * N + n] = 0;
        for (let j = i + 1; j < i2; j++) Wp[j * N + n] -= e * U[i * K + j]!;
      }
    }
    // lazy update of the channels after the block
    for (let j = i2; j < K; j++)
      for (let i = i1; i < i2; i++) {
        const u = U[i * K + j]!;
        if (u === 0) continue;
        for (let n = 0; n < N; n++) Wp[j * N + n] -= err[(i - i1) * N + n]! * u;
      }
  }
  return Wp;
}

/**
 * SparseGPT-prune the graph's constant-weight matmuls in place with calibration statistics of the same graph (the
 * unpruned weights change too: they absorb the reconstruction).
 */
export function pruneSparseGpt(graph: Graph, stats: CalibrationStats, opts: SparseGptOptions): PruneReport {
  checkPattern(opts.pattern);
  const { prune, kept } = prunableMatmuls(graph, opts);
  const report: PruneReport = {
    method: opts.recalibrate ? 'sparsegpt (sequential)' : 'sparsegpt',
    pattern: patternName(opts.pattern),
    layers: [],
    kept,
  };
  let fresh: Value | undefined;
  for (const m of prune) {
    if (opts.recalibrate && m.activation !== fresh) {
      stats = opts.recalibrate(graph);
      fresh = m.activation;
    }
    const s = statsFor(stats, m);
    const W = weightValues(m.weight);
    const What = sparseGptPrune(W, m.K, m.N, hessianOf(s), opts);
    setWeight(m.weight, What);
    report.layers.push(layerRow(m, W, What, s));
  }
  return report;
}
