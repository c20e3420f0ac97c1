/**
 * What the unstructured / N:M pruning passes share: the sparsity pattern, which matmuls are pruned, mask selection
 * from scores, and the per-layer report with the output error measured on calibration statistics.
 *
 * Weights are [K, N] (y = x·W). "Per output" compares the K weights of one output column n; an N:M pattern keeps at
 * most N of every M consecutive k in each column (2:4: the layout engineer B's sparse kernels read — zeros in a dense
 * weight, groups along the input dimension K).
 */
import { isFloat } from '../../ir/dtype.js';
import { KilnError } from '../../ir/errors.js';
import type { Graph, Node, Value } from '../../ir/graph.js';
import { fromValues } from '../../ir/tensor.js';
import type { ActivationStats, CalibrationStats } from '../quant/calibrate.js';

/** Unstructured: prune this fraction of each comparison group; N:M: keep `n` of every `m` consecutive k. */
export type SparsityPattern = { kind: 'unstructured'; sparsity: number } | { kind: 'nm'; n: number; m: number };

/** What scores are compared against each other (unstructured only; N:M compares within each group). */
export type PruneScope = 'output' | 'layer' | 'global';

/** A pattern for reports: `2:4`, `50%`. */
export const patternName = (p: SparsityPattern): string =>
  p.kind === 'nm' ? `${p.n}:${p.m}` : `${+(p.sparsity * 100).toFixed(2)}%`;

/**
 * Validate a pattern.
 *
 * @throws KilnError (code `attribute`) for a sparsity outside [0, 1), or an N:M that is not 0 ≤ N < M.
 */
export function checkPattern(p: SparsityPattern): void {
  if (p.kind === 'unstructured') {
    if (!(p.sparsity >= 0 && p.sparsity < 1))
      throw new KilnError('attribute', `sparsity must be in [0, 1), got ${p.sparsity}`);
  } else if (!(Number.isInteger(p.n) && Number.isInteger(p.m) && p.m >= 1 && p.n >= 0 && p.n < p.m)) {
    throw new KilnError('attribute', `an N:M pattern needs integers 0 <= N < M, got ${p.n}:${p.m}`);
  }
}

/** One pruned weight. */
export interface PrunedLayer {
  node: string;
  weight: string;
  K: number;
  N: number;
  /** Nonzero elements after pruning. */
  nonzeros: number;
  /** Fraction of zeros after pruning. */
  sparsity: number;
  /** Bytes of the weight stored dense (unchanged by pruning; the sparse layout is chosen later). */
  bytes: number;
  /** ‖(W − Ŵ)ᵀX‖ / ‖WᵀX‖ over the calibration rows (from Σxxᵀ); undefined without statistics. */
  outputRelErr?: number;
}

export interface PruneReport {
  method: string;
  pattern: string;
  layers: PrunedLayer[];
  /** Constant-weight matmuls left dense, with why. */
  kept: { node: string; weight: string; bytes: number; reason: string }[];
}

/** A matmul by a constant 2-D float weight that a pass may prune. */
export interface PrunableMatmul {
  node: Node;
  activation: Value;
  weight: Value;
  K: number;
  N: number;
}

/** Does the matmul's result reach the `logits` output (through casts / reshapes / identities)? */
function feedsLogits(graph: Graph, n: Node): boolean {
  let v = n.outputs[0]!;
  for (let hop = 0; hop < 4; hop++) {
    if (graph.outputs.includes(v)) return v.name === 'logits';
    const us = graph.users(v);
    if (us.length !== 1 || !['cast', 'reshape', 'identity'].includes(us[0]!.op)) return false;
    v = us[0]!.outputs[0]!;
  }
  return false;
}

/**
 * The matmuls a pass prunes (graph order) and those it keeps dense: the LM head unless `head`, weights read by other
 * nodes too, and (N:M) a K the group size does not divide.
 */
export function prunableMatmuls(
  graph: Graph,
  o: { head?: boolean; only?: readonly string[]; pattern?: SparsityPattern },
): { prune: PrunableMatmul[]; kept: PruneReport['kept'] } {
  const only = o.only && new Set(o.only);
  const prune: PrunableMatmul[] = [];
  const kept: PruneReport['kept'] = [];
  for (const n of graph.nodes) {
    if (n.op !== 'matmul' || (only && !only.has(n.name))) continue;
    const [a, w] = n.inputs;
    if (!a || !w || !w.isConst || w.type.shape.length !== 2 || !isFloat(w.type.dtype)) continue;
    const [K, N] = w.type.shape as [number, number];
    const bytes = K * N * bytesPer(w);
    const keep = (reason: string) => kept.push({ node: n.name, weight: w.name, bytes, reason });
    if (!o.head && feedsLogits(graph, n)) keep('LM head');
    else if (graph.users(w).length !== 1) keep('weight shared with other nodes');
    else if (o.pattern?.kind === 'nm' && K % o.pattern.m !== 0) keep(`K = ${K} is not a multiple of ${o.pattern.m}`);
    else prune.push({ node: n, activation: a, weight: w, K, N });
  }
  return { prune, kept };
}

const bytesPer = (w: Value) => (w.data!.data as ArrayBufferView).byteLength / Math.max(1, w.data!.data.length);

/** The weight as float64 [K, N] (row-major, as stored). */
export function weightValues(w: Value): Float64Array {
  return Float64Array.from(w.data!.data as ArrayLike<number>, Number);
}

/** Replace the weight's data by `values` [K, N] (rounded to its dtype). */
export function setWeight(w: Value, values: ArrayLike<number>): void {
  w.data = fromValues(w.type.dtype, w.type.shape as number[], values);
}

/**
 * Which elements of a [K, N] weight to prune, from `scores` [K, N] (lower = prune first; ties broken by the lower
 * index). Unstructured per output: round(s·K) of each column; per layer: round(s·K·N) of the weight. N:M: the m − n
 * lowest of every m consecutive k of each column (K a multiple of m). Global scope is handled by the caller
 * (`globalThreshold`).
 */
export function selectPruned(
  scores: ArrayLike<number>,
  K: number,
  N: number,
  pattern: SparsityPattern,
  scope: 'output' | 'layer' = 'output',
): Uint8Array {
  checkPattern(pattern);
  const pruned = new Uint8Array(K * N);
  if (pattern.kind === 'nm') {
    const { n: keep, m } = pattern;
    if (K % m !== 0) throw new KilnError('shape', `N:M pruning needs K (${K}) to be a multiple of M (${m})`);
    const idx = new Array<number>(m);
    for (let n = 0; n < N; n++)
      for (let k0 = 0; k0 < K; k0 += m) {
        for (let j = 0; j < m; j++) idx[j] = k0 + j;
        idx.sort((a, b) => scores[a * N + n]! - scores[b * N + n]! || a - b);
        for (let j = 0; j < m - keep; j++) pruned[idx[j]! * N + n] = 1;
      }
    return pruned;
  }
  if (scope === 'layer') {
    const order = Array.from({ length: K * N }, (_, i) => i);
    order.sort((a, b) => scores[a]! - scores[b]! || a - b);
    const count = Math.round(pattern.sparsity * K * N);
    for (let i = 0; i < count; i++) pruned[order[i]!] = 1;
    return pruned;
  }
  const count = Math.round(pattern.sparsity * K);
  const order = Array.from({ length: K }, (_, k) => k);
  for (let n = 0; n < N; n++) {
    order.sort((a, b) => scores[a * N + n]! - scores[b * N + n]! || a - b);
    for (let i = 0; i < count; i++) pruned[order[i]! * N + n] = 1;
  }
  return pruned;
}

/**
 * The global threshold for pruning `sparsity` of all `scores` together: elements below `value` are pruned, and of
 * those equal to it the first `ties` (in the order the caller visits them).
 */
export function globalThreshold(all: readonly ArrayLike<number>[], sparsity: number): { value: number; ties: number } {
  let total = 0;
  for (const s of all) total += s.length;
  const count = Math.round(sparsity * total);
  if (count === 0) return { value: -Infinity, ties: 0 };
  const flat = new Float64Array(total);
  let o = 0;
  for (const s of all) for (let i = 0; i < s.length; i++) flat[o++] = s[i]!;
  flat.sort();
  const value = flat[count - 1]!;
  let below = 0;
  while (below < count && flat[below]! < value) below++;
  return { value, ties: count - below };
}

/** ‖(W − Ŵ)ᵀX‖ / ‖WᵀX‖ with Σ_rows xxᵀ = `s.xtx`: per column n, dᵀ(XᵀX)d summed, over the same for W. */
export function outputRelErr(W: Float64Array, What: Float64Array, K: number, N: number, s: ActivationStats): number {
  let num = 0;
  let den = 0;
  const d = new Float64Array(K);
  const w = new Float64Array(K);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      w[k] = W[k * N + n]!;
      d[k] = w[k]! - What[k * N + n]!;
    }
    for (let i = 0; i < K; i++) {
      const row = i * K;
      let sd = 0;
      let sw = 0;
      for (let j = 0; j < K; j++) {
        sd += s.xtx[row + j]! * d[j]!;
        sw += s.xtx[row + j]! * w[j]!;
      }
      num += d[i]! * sd;
      den += w[i]! * sw;
    }
  }
  return den > 0 ? Math.sqrt(Math.max(0, num) / den) : Math.sqrt(Math.max(0, num));
}

/** Count nonzeros of [K, N] values. */
export function nonzeros(v: ArrayLike<number>): number {
  let c = 0;
  for (let i = 0; i < v.length; i++) if (v[i] !== 0) c++;
  return c;
}

/** The report row of a weight pruned from `W` to `What`. */
export function layerRow(m: PrunableMatmul, W: Float64Array, What: Float64Array, s?: ActivationStats): PrunedLayer {
  const nz = nonzeros(What);
  const row: PrunedLayer = {
    node: m.node.name,
    weight: m.weight.name,
    K: m.K,
    N: m.N,
    nonzeros: nz,
    sparsity: 1 - nz / (m.K * m.N),
    bytes: m.K * m.N * bytesPer(m.weight),
  };
  if (s) row.outputRelErr = outputRelErr(W, What, m.K, m.N, s);
  return row;
}

/** Zero the pruned elements of a [K, N] weight `W` (returns a copy). */
export function applyMask(W: Float64Array, pruned: Uint8Array): Float64Array {
  return W.map((w, i) => (pruned[i] ? 0 : w));
}

/** The calibration statistics of a matmul's activation, checked against its K (typed error naming the node). */
export function statsFor(stats: CalibrationStats, m: PrunableMatmul): ActivationStats {
  const s = stats.get(m.activation.name);
  if (!s)
    throw new KilnError('runtime', `no calibration statistics for activation '${m.activation.name}'`, {
      node: m.node.name,
      tensor: m.activation.name,
    });
  if (s.K !== m.K)
    throw new KilnError('shape', `calibration statistics have K = ${s.K}, the weight has K = ${m.K}`, {
      node: m.node.name,
      tensor: m.weight.name,
    });
  return s;
}
