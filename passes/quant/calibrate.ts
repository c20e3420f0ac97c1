/**
 * Calibration for the activation-aware quantization passes (GPTQ, AWQ): run the float model on calibration token
 * windows with the reference interpreter (float64) and collect, for every activation that feeds a matmul by a
 * constant 2-D weight, the statistics those methods need:
 *
 *   xtx[i, j] = Σ_rows x_i · x_j   (K × K, float64; GPTQ's Hessian is H = 2 · xtx / rows)
 *   absMean[i] = Σ_rows |x_i| / rows (AWQ's per-input-channel activation magnitude)
 *
 * A row is one token position (the activation flattened to [rows, K]). Matmuls reading the same activation (Q / K / V
 * after one RMS norm, gate / up) share one entry, keyed by the activation's value name. The statistics come from the
 * float model (every layer sees unquantized inputs), not sequentially from already-quantized layers.
 */
import { KilnError } from '../../ir/errors.js';
import type { Graph, Node, Value } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';

export interface ActivationStats {
  /** The activation's value name. */
  name: string;
  /** Channels (the matmul's K). */
  K: number;
  /** Rows (token positions) accumulated. */
  rows: number;
  /** Σ x xᵀ over rows, row-major K × K. */
  xtx: Float64Array;
  /** Mean |x| per channel. */
  absMean: Float64Array;
  /** Max |x| per channel (SmoothQuant's activation range). */
  absMax: Float64Array;
}

export type CalibrationStats = Map<string, ActivationStats>;

/** The activation of a matmul by a constant 2-D float weight, or undefined. */
export function constWeightInput(n: Node): Value | undefined {
  if (n.op !== 'matmul') return undefined;
  const [a, w] = n.inputs;
  if (!a || !w || !w.isConst || w.type.shape.length !== 2) return undefined;
  return a;
}

/** Feeds for one sequence of token ids from position 0 (empty KV cache, batch 1). */
export function calibrationFeeds(graph: Graph, ids: readonly number[]): Record<string, Tensor> {
  const T = ids.length;
  const feeds: Record<string, Tensor> = {};
  for (const v of graph.inputs) {
    const s = v.type.shape;
    if (v.name === 'input_ids') feeds[v.name] = makeTensor(v.type.dtype, [1, T], ids);
    else if (v.name === 'position_ids')
      feeds[v.name] = makeTensor(
        v.type.dtype,
        [1, T],
        ids.map((_, i) => i),
      );
    else if (v.name === 'attention_mask') feeds[v.name] = makeTensor(v.type.dtype, [1, T], new Array(T).fill(1));
    else if (v.name.startsWith('past_')) {
      const shape = s.map((d, i) => (typeof d === 'number' ? d : i === 0 ? 1 : 0));
      feeds[v.name] = makeTensor(v.type.dtype, shape);
    } else throw new KilnError('runtime', 'calibration does not know how to feed this graph input', { tensor: v.name });
  }
  return feeds;
}

/**
 * Run every window (token ids, each from position 0) through `graph` on the reference interpreter and accumulate
 * the statistics of every activation feeding a constant-weight matmul.
 */
export function calibrate(graph: Graph, windows: readonly (readonly number[])[]): CalibrationStats {
  // activations we want, by the node (and output index) producing them
  const want = new Map<string, { v: Value; index: number }>();
  for (const n of graph.nodes) {
    const a = constWeightInput(n);
    if (!a || !a.producer) continue;
    want.set(a.producer.name, { v: a, index: a.producer.outputs.indexOf(a) });
  }
  const stats: CalibrationStats = new Map();
  for (const ids of windows) {
    if (ids.length === 0) continue;
    interpret(graph, calibrationFeeds(graph, ids), {
      onNode(node, outputs) {
        const w = want.get(node.name);
        if (!w) return;
        const t = outputs[w.index]!;
        const K = t.shape[t.shape.length - 1]!;
        let s = stats.get(w.v.name);
        if (!s) {
          s = emptyStats(w.v.name, K);
          stats.set(w.v.name, s);
        }
        accumulate(s, t.data as ArrayLike<number>, K);
      },
    });
  }
  return stats;
}

function emptyStats(name: string, K: number): ActivationStats {
  return {
    name,
    K,
    rows: 0,
    xtx: new Float64Array(K * K),
    absMean: new Float64Array(K),
    absMax: new Float64Array(K),
  };
}

/** Add rows of `x` (rows × K, row-major) to the statistics. */
export function accumulate(s: ActivationStats, x: ArrayLike<number>, K: number): void {
  const rows = x.length / K;
  const abs = new Float64Array(K);
  for (let i = 0; i < K; i++) abs[i] = s.absMean[i]! * s.rows;
  const row = new Float64Array(K);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < K; i++) row[i] = Number(x[r * K + i]!);
    for (let i = 0; i < K; i++) {
      const xi = row[i]!;
      abs[i] += Math.abs(xi);
      if (Math.abs(xi) > s.absMax[i]!) s.absMax[i] = Math.abs(xi);
      if (xi === 0) continue;
      const o = i * K;
      for (let j = i; j < K; j++) s.xtx[o + j] += xi * row[j]!;
    }
  }
  // mirror the upper triangle
  for (let i = 0; i < K; i++) for (let j = i + 1; j < K; j++) s.xtx[j * K + i] = s.xtx[i * K + j]!;
  s.rows += rows;
  for (let i = 0; i < K; i++) s.absMean[i] = abs[i]! / s.rows;
}

/** Statistics of explicit activation rows (tests, or callers with their own activations). */
export function statsOf(name: string, x: ArrayLike<number>, K: number): ActivationStats {
  const s = emptyStats(name, K);
  accumulate(s, x, K);
  return s;
}
