/**
 * W8A8: int8 weights and int8 activations, the product in int32 (`matmul_integer`) — and SmoothQuant, which makes the
 * activations quantizable first.
 *
 * Per matmul y = x · W (W [K, N] constant):
 *   weights, per output channel:   s_w[n] = max_k |W[k, n]| / 127,   W_q = round(W / s_w)   (int8 constants)
 *   activations, per token:        s_x[r] = max_k |x[r, k]| / 127,   x_q = clip(round(x / s_x), −127, 127)
 *   y ≈ (x_q ·_int32 W_q) · s_x[r] · s_w[n]
 * computed on the device in the graph (abs → reduce_max → div → round → clip → cast → matmul_integer → cast → mul).
 *
 * Naive per-token activation quantization fails when a few channels carry outliers (LLMs' LayerNorm / RMSNorm
 * outputs): one channel sets the scale of a whole row and the others round to a handful of levels. SmoothQuant
 * (Xiao et al. 2022) migrates the difficulty into the weights with a per-input-channel factor
 *   s_j = max|X_j|^α / max|W_j|^(1−α)   (α = 0.5 by default; max|X_j| from calibration)
 *   x · W = (x · diag(s)⁻¹) · (diag(s) · W)
 * and folds diag(s)⁻¹ into the RMS norm weight producing x (or a SwiGLU up projection's columns) — the same fold
 * AWQ uses (awq.ts `foldTarget` / `foldScales`) — so the float function is unchanged and no kernel is added.
 */
import { KilnError } from '../../ir/errors.js';
import { Node, Value, type Graph } from '../../ir/graph.js';
import { inferNode } from '../../ir/infer.js';
import type { Attrs } from '../../ir/registry.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { tensorType } from '../../ir/types.js';
import { Names } from '../rewrite.js';
import { foldScales, foldTarget } from './awq.js';
import type { CalibrationStats } from './calibrate.js';

export interface W8A8Options {
  /** Smooth first (SmoothQuant; needs calibration statistics), default true when `stats` are given. */
  smooth?: boolean;
  /** Migration strength α in [0, 1] (default 0.5). */
  alpha?: number;
  /** Quantize the LM head too (default false). */
  head?: boolean;
  /** Quantize only the matmul nodes with these names. */
  only?: readonly string[];
}

export interface W8A8Layer {
  node: string;
  weight: string;
  K: number;
  N: number;
  /** The RMS norm / projection the smoothing factor was folded into, if smoothed. */
  smoothedInto?: string;
  bytesBefore: number;
  bytesAfter: number;
}

export interface W8A8Report {
  layers: W8A8Layer[];
  /** Activations left unsmoothed, and why. */
  unsmoothed: { activation: string; reason: string }[];
  bytesBefore: number;
  bytesAfter: number;
}

/** s_j = max|X_j|^α / max|W_j|^(1−α), clamped to [1e−5, 1e5] (channels never seen or all-zero get 1). */
export function smoothingFactors(actMax: ArrayLike<number>, weightMax: ArrayLike<number>, alpha: number): Float64Array {
  return Float64Array.from({ length: actMax.length }, (_, j) => {
    const a = actMax[j]!;
    const w = weightMax[j]!;
    if (!(a > 0) || !(w > 0)) return 1;
    return Math.min(1e5, Math.max(1e-5, a ** alpha / w ** (1 - alpha)));
  });
}

/** Per-output-channel symmetric int8 of W [K, N] (row-major): the int8 data and N scales (0 columns: scale 1). */
export function quantizeColumnsInt8(
  w: ArrayLike<number>,
  K: number,
  N: number,
): { q: Int8Array; scales: Float32Array } {
  const scales = new Float32Array(N);
  for (let n = 0; n < N; n++) {
    let m = 0;
    for (let k = 0; k < K; k++) m = Math.max(m, Math.abs(Number(w[k * N + n])));
    scales[n] = m > 0 ? m / 127 : 1;
  }
  const q = new Int8Array(K * N);
  for (let k = 0; k < K; k++) {
    for (let n = 0; n < N; n++) {
      const v = Math.round(Number(w[k * N + n]) / scales[n]!);
      q[k * N + n] = Math.max(-127, Math.min(127, v));
    }
  }
  return { q, scales };
}

const bytesOf = (t: Tensor) => t.data.byteLength;

/** The weight's per-input-channel max |W[j, ·]| over every matmul reading one activation. */
function weightRowMax(ws: readonly Value[], K: number): Float64Array {
  const m = new Float64Array(K);
  for (const w of ws) {
    const N = w.type.shape[1] as number;
    const d = w.data!.data as ArrayLike<number>;
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) m[k] = Math.max(m[k]!, Math.abs(Number(d[k * N + n])));
  }
  return m;
}

/**
 * Rewrites the graph's f32 matmuls by constant [K, N] weights to W8A8 (smoothed first where it can fold). Defaults:
 * `alpha` 0.5, smoothing on exactly when `stats` are given.
 *
 * @throws KilnError (code `attribute`) for `alpha` outside [0, 1]; (code `runtime`) when smoothing is asked for
 * without calibration statistics.
 */
export function quantizeW8A8(graph: Graph, stats: CalibrationStats | undefined, opts: W8A8Options = {}): W8A8Report {
  const alpha = opts.alpha ?? 0.5;
  if (!(alpha >= 0 && alpha <= 1)) throw new KilnError('attribute', `alpha must be in [0, 1], got ${alpha}`);
  const smooth = opts.smooth ?? stats !== undefined;
  if (smooth && !stats) throw new KilnError('runtime', 'SmoothQuant needs calibration statistics');
  const only = opts.only && new Set(opts.only);
  const report: W8A8Report = { layers: [], unsmoothed: [], bytesBefore: 0, bytesAfter: 0 };
  for (const c of graph.constants) report.bytesBefore += bytesOf(c.data!);

  // matmuls by activation, in graph order (the LM head — the matmul feeding `logits` — only when asked)
  const groups = new Map<Value, Node[]>();
  for (const n of graph.nodes) {
    if (n.op !== 'matmul' || (only && !only.has(n.name))) continue;
    const [a, w] = n.inputs;
    if (!a || !w?.isConst || w.type.shape.length !== 2 || a.type.dtype !== 'f32' || w.type.dtype !== 'f32') continue;
    if (!opts.head && graph.outputs.some((o) => o === n.outputs[0] && o.name === 'logits')) continue;
    groups.set(a, [...(groups.get(a) ?? []), n]);
  }

  const smoothedInto = new Map<Node, string>();
  if (smooth) {
    for (const [a, ms] of groups) {
      const st = stats!.get(a.name);
      const fold = st ? foldTarget(graph, a, ms) : 'no calibration statistics';
      if (typeof fold === 'string') {
        report.unsmoothed.push({ activation: a.name, reason: fold });
        continue;
      }
      const ws = ms.map((m) => m.inputs[1]!);
      foldScales(fold, ws, smoothingFactors(st!.absMax, weightRowMax(ws, st!.K), alpha));
      for (const m of ms) smoothedInto.set(m, fold.norm.name);
    }
  }

  const names = new Names(graph);
  const constant = (hint: string, t: Tensor): Value => {
    const v = new Value(names.fresh(hint), tensorType(t.dtype, t.shape), t);
    graph.constants.push(v);
    return v;
  };
  for (const [a, ms] of groups) {
    // the activation's per-token quantization is shared by every matmul reading it
    let before = ms[0]!;
    const emit = (op: string, inputs: (Value | null)[], attrs: Attrs, hint: string, out?: Value): Value => {
      const o = out ?? new Value(names.fresh(hint), a.type);
      const node = new Node(names.fresh(`${hint}_node`), op, inputs, [o], attrs);
      if (!out) o.type = inferNode(node)[0]!;
      graph.addNode(node, before);
      return o;
    };
    const absMax = emit(
      'reduce_max',
      [emit('abs', [a], {}, `${a.name}_abs`)],
      { axes: [-1], keepdims: true },
      `${a.name}_amax`,
    );
    const tiny = constant(`${a.name}_tiny`, makeTensor('f32', [], [1e-12]));
    const c127 = constant(`${a.name}_127`, makeTensor('f32', [], [127]));
    const sx = emit('div', [emit('max', [absMax, tiny], {}, `${a.name}_amax_pos`), c127], {}, `${a.name}_sx`);
    const lo = constant(`${a.name}_lo`, makeTensor('f32', [], [-127]));
    const r = emit('round', [emit('div', [a, sx], {}, `${a.name}_scaled`)], {}, `${a.name}_rounded`);
    const xq = emit('cast', [emit('clip', [r, lo, c127], {}, `${a.name}_clipped`)], { to: 'i8' }, `${a.name}_q8`);
    for (const m of ms) {
      before = m;
      const w = m.inputs[1]!;
      const [K, N] = w.type.shape as [number, number];
      const { q, scales } = quantizeColumnsInt8(w.data!.data as ArrayLike<number>, K, N);
      const wq = constant(`${w.name}_q8`, makeTensor('i8', [K, N], q));
      const sw = constant(`${w.name}_s8`, makeTensor('f32', [N], scales));
      const acc = emit('matmul_integer', [xq, wq], {}, `${m.name}_i32`);
      const y = emit('cast', [acc], { to: 'f32' }, `${m.name}_f32`);
      emit('mul', [emit('mul', [y, sx], {}, `${m.name}_rows`), sw], {}, m.name, m.outputs[0]!);
      graph.removeNode(m);
      report.layers.push({
        node: m.name,
        weight: w.name,
        K,
        N,
        ...(smoothedInto.has(m) ? { smoothedInto: smoothedInto.get(m)! } : {}),
        bytesBefore: bytesOf(w.data!),
        bytesAfter: bytesOf(wq.data!) + bytesOf(sw.data!),
      });
    }
  }
  graph.constants = graph.constants.filter((c) => graph.users(c).length > 0 || graph.outputs.includes(c));
  for (const c of graph.constants) report.bytesAfter += bytesOf(c.data!);
  return report;
}
