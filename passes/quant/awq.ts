/**
 * AWQ (Lin et al., 2023) activation-aware weight quantization, weight-only, on top of RTN. For the matmuls reading
 * one activation x (K channels; Q / K / V after the attention RMS norm, gate / up after the FFN norm) a per-channel
 * scale s_k = m_k^α / sqrt(max m^α · min m^α), m = mean |x_k| over calibration rows (calibrate.ts), is searched over
 * α ∈ {0, 0.05, …, 1}, minimizing the calibration output error of RTN on the scaled weight:
 *
 *   Σ_matmuls Σ_rows ‖(Q(W·diag(s))·diag(s)⁻¹ − W) x‖² = Σ_n Δw_nᵀ (XᵀX) Δw_n
 *
 * (computed exactly from XᵀX, no activation rows kept). α = 0 is plain RTN, so the chosen error never exceeds RTN's
 * on the calibration statistics. diag(s)⁻¹ is folded into the preceding op — the RMS norm's weight (γ_k / s_k), or
 * for w2 (whose input is silu(x·W1) ⊙ (x·W3)) the output columns of W3 (W3[:, k] / s_k) — and the weights become
 * W·diag(s), then RTN quantizes them all (rtn.ts). Folding needs constant weights used only there and every reader
 * of the activation a matmul quantized here. wo (after attention) has no foldable producer (with grouped KV heads
 * the V columns are shared by several query heads): it is left unscaled, plain RTN.
 */
import { isFloat } from '../../ir/dtype.js';
import type { Graph, Node, Value } from '../../ir/graph.js';
import { makeTensor } from '../../ir/tensor.js';
import type { CalibrationStats } from './calibrate.js';
import { blockFor, quantizeRows, quantizeRtn, type RtnOptions, type RtnReport } from './rtn.js';
import { weightRows } from './gptq.js';

export interface AwqOptions extends RtnOptions {
  /** Grid points of α in [0, 1] (default 20: step 0.05). */
  grid?: number;
}

export interface AwqScale {
  /** The activation scaled. */
  activation: string;
  /** The op diag(s)⁻¹ was folded into. */
  foldedInto: string;
  matmuls: string[];
  alpha: number;
  /** Calibration output error Σ‖ΔW x‖² with the chosen s, and with s = 1 (RTN). */
  error: number;
  rtnError: number;
}

export interface AwqReport extends RtnReport {
  scales: AwqScale[];
  /** Activations left unscaled, with why. */
  unscaled: { activation: string; matmuls: string[]; reason: string }[];
}

/** Σ_n Δw_nᵀ M Δw_n for weight rows W [N, K] quantized with per-channel scale s (M = XᵀX). */
export function awqError(
  W: Float64Array,
  N: number,
  K: number,
  s: Float64Array,
  xtx: Float64Array,
  opts: { bits: 4 | 8; block: number; symmetric: boolean },
): number {
  const r = quantizeRows((n, k) => W[n * K + k]! * s[k]!, N, K, opts.bits, opts.block, opts.symmetric, 'f64', true);
  const d = new Float64Array(K);
  let err = 0;
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) d[k] = r.dequant[n * K + k]! / s[k]! - W[n * K + k]!;
    for (let i = 0; i < K; i++) {
      if (d[i] === 0) continue;
      let t = 0;
      for (let j = 0; j < K; j++) t += xtx[i * K + j]! * d[j]!;
      err += d[i]! * t;
    }
  }
  return err;
}

/** s = m^α normalized by sqrt(max · min) (m clamped away from 0). */
export function awqScales(absMean: Float64Array, alpha: number): Float64Array {
  const s = Float64Array.from(absMean, (m) => Math.max(m, 1e-8) ** alpha);
  let lo = Infinity;
  let hi = 0;
  for (const v of s) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const c = Math.sqrt(lo * hi);
  return s.map((v) => Math.max(v / c, 1e-4));
}

/**
 * Where diag(s)⁻¹ folds for activation `a`: the RMS norm weight producing it (`gamma`, scaled per element), or, for a
 * product mul(f(·), x·W3) (LLaMA's SiLU gate times up projection), the output columns of W3 (`cols`); or why none.
 */
export function foldTarget(
  graph: Graph,
  a: Value,
  readers: Node[],
): { norm: Node; gamma?: Value; cols?: Value } | string {
  const p = a.producer;
  const K = a.type.shape[a.type.shape.length - 1];
  if (p && p.op === 'mul' && !graph.outputs.includes(a) && graph.users(a).every((u) => readers.includes(u))) {
    for (const x of p.inputs) {
      const m = x?.producer;
      const w3 = m?.inputs[1];
      if (!x || !m || m.op !== 'matmul' || !w3?.isConst || w3.type.shape.length !== 2) continue;
      if (w3.type.shape[1] !== K || x.type.shape[x.type.shape.length - 1] !== K) continue;
      if (graph.users(x).length !== 1 || graph.users(w3).length !== 1 || graph.outputs.includes(x)) continue;
      if (p.inputs.filter((y) => y === x).length !== 1) continue;
      if (readers.some((r) => graph.users(r.inputs[1]!).length !== 1)) return 'a weight is shared';
      return { norm: m, cols: w3 };
    }
  }
  if (!p || p.op !== 'rms_norm') return `produced by ${p ? p.op : 'a graph input'}, not an RMS norm`;
  const gamma = p.inputs[1];
  if (!gamma || !gamma.isConst || gamma.type.shape.length !== 1 || gamma.type.shape[0] !== K)
    return 'the norm has no constant [K] weight';
  if (graph.users(gamma).length !== 1) return 'the norm weight is shared';
  if (graph.users(a).some((u) => !readers.includes(u)) || graph.outputs.includes(a))
    return 'the norm output has readers that are not quantized';
  if (readers.some((m) => graph.users(m.inputs[1]!).length !== 1)) return 'a weight is shared';
  return { norm: p, gamma };
}

/**
 * AWQ-scale then RTN-quantize the graph's constant-weight matmuls with the activation statistics `stats` of the same
 * float graph (calibrate.ts). The graph's float function is unchanged by the scaling alone (up to rounding).
 */
export function applyAwqScales(
  graph: Graph,
  stats: CalibrationStats,
  opts: AwqOptions,
): Omit<AwqReport, keyof RtnReport> {
  const sym = opts.symmetric ?? true;
  const only = opts.only && new Set(opts.only);
  const out: Omit<AwqReport, keyof RtnReport> = { scales: [], unscaled: [] };
  // matmuls by activation, in graph order; the LM head (einsum / matmul feeding logits) is not scaled
  const groups = new Map<Value, Node[]>();
  for (const n of graph.nodes) {
    if (n.op !== 'matmul' || (only && !only.has(n.name))) continue;
    const [a, w] = n.inputs;
    if (!a || !w || !w.isConst || w.type.shape.length !== 2 || !isFloat(a.type.dtype) || w.type.dtype !== a.type.dtype)
      continue;
    if (!opts.head && graph.outputs.some((o) => o === n.outputs[0] && o.name === 'logits')) continue;
    const g = groups.get(a) ?? [];
    g.push(n);
    groups.set(a, g);
  }
  const steps = opts.grid ?? 20;
  for (const [a, ms] of groups) {
    const names = ms.map((m) => m.name);
    const st = stats.get(a.name);
    if (!st) {
      out.unscaled.push({ activation: a.name, matmuls: names, reason: 'no calibration statistics' });
      continue;
    }
    const fold = foldTarget(graph, a, ms);
    if (typeof fold === 'string') {
      out.unscaled.push({ activation: a.name, matmuls: names, reason: fold });
      continue;
    }
    const K = st.K;
    const block = blockFor(opts.group, K);
    const Ws = ms.map((m) => ({ w: m.inputs[1]!, rows: weightRows(m.inputs[1]!) }));
    const errorAt = (s: Float64Array) =>
      Ws.reduce(
        (t, { w, rows }) =>
          t + awqError(rows, w.type.shape[1] as number, K, s, st.xtx, { bits: opts.bits, block, symmetric: sym }),
        0,
      );
    let best = { alpha: 0, s: awqScales(st.absMean, 0), error: Infinity };
    let rtnError = 0;
    for (let i = 0; i <= steps; i++) {
      const alpha = i / steps;
      const s = awqScales(st.absMean, alpha);
      const e = errorAt(s);
      if (i === 0) rtnError = e;
      if (e < best.error) best = { alpha, s, error: e };
    }
    foldScales(
      fold,
      Ws.map(({ w }) => w),
      best.s,
    );
    out.scales.push({
      activation: a.name,
      foldedInto: fold.norm.name,
      matmuls: names,
      alpha: best.alpha,
      error: best.error,
      rtnError,
    });
  }
  return out;
}

/**
 * x · W = (x · diag(s)⁻¹) · (diag(s) · W): divides the fold target (an RMS norm's γ, or the columns of the projection
 * multiplied into x) by s and multiplies the rows of every weight reading x by s. The float function is unchanged.
 */
export function foldScales(fold: { gamma?: Value; cols?: Value }, weights: readonly Value[], s: Float64Array): void {
  const f = (fold.gamma ?? fold.cols)!;
  const g = f.data!;
  const cols = g.shape[g.shape.length - 1]!;
  f.data = makeTensor(
    g.dtype,
    g.shape,
    Array.from(g.data as ArrayLike<number>, (v, i) => Number(v) / s[i % cols]!),
  );
  for (const w of weights) {
    const N = w.type.shape[1] as number;
    const d = w.data!;
    w.data = makeTensor(
      d.dtype,
      d.shape,
      Array.from(d.data as ArrayLike<number>, (v, i) => Number(v) * s[Math.floor(i / N)]!),
    );
  }
}

/**
 * AWQ: scale (applyAwqScales) then RTN (quantizeRtn) with the same options.
 *
 * @throws KilnError (code `attribute`) for bits other than 4 / 8 or a group that is neither a power of two ≥ 16 nor
 * `'channel'`; (code `verify`) for a non-finite weight element.
 */
export function quantizeAwq(graph: Graph, stats: CalibrationStats, opts: AwqOptions): AwqReport {
  const scaled = applyAwqScales(graph, stats, opts);
  return { ...quantizeRtn(graph, opts), ...scaled };
}
