/**
 * GPTQ (Frantar et al., 2022) weight-only post-training quantization. Per weight W (rows w_n over the K input
 * channels of output n), with H = 2 XᵀX / rows from calibration activations (passes/quant/calibrate.ts):
 *
 * - dead channels (H[k, k] = 0) get H[k, k] = 1 and w[k] = 0; damping H += λ·I, λ = `damp` · mean(diag H);
 * - U = the upper Cholesky factor of H⁻¹ (H⁻¹ = UᵀU);
 * - columns k = 0 … K−1 are quantized in order (or, with act-order, by decreasing H[k, k]): at the first column of
 *   each group of `group` columns the group's scale / zero point come from the current (error-updated) weights with
 *   RTN's formulas (rtn.ts), q = clamp(round(w / scale) + zp); the error e = (w − dq) / U[k, k] is fed back to the
 *   columns not yet quantized, w[j] −= e · U[k, j] — eagerly within a column block of 128 (or the group if larger),
 *   lazily (one matrix product) for the columns after the block.
 *
 * The output is RTN's matmul_nbits form. With act-order the groups follow the permuted order: the packed data stays
 * in the natural k order and a g_idx [K] input names each k's group (matmul_nbits supports it; ONNX MatMulNBits
 * g_idx). The LM head and embeddings are kept in float like RTN (embeddings have no calibration activations).
 */
import { isFloat, roundHalfEvenSigned, roundToDtype, type DType } from '../../ir/dtype.js';
import { KilnError } from '../../ir/errors.js';
import { Graph, Node, Value } from '../../ir/graph.js';
import { blockqLayout } from '../../ir/ops/blockq.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { tensorType, type Layout } from '../../ir/types.js';
import { Names } from '../rewrite.js';
import type { ActivationStats, CalibrationStats } from './calibrate.js';
import { blockFor, quantizeRtn, type QuantizedLayer, type RtnOptions, type RtnReport } from './rtn.js';

export interface GptqOptions extends RtnOptions {
  /** Dampening as a fraction of the mean Hessian diagonal (default 0.01). */
  damp?: number;
  /**
   * Sequential GPTQ: before each activation's matmuls are quantized, recalibrate with this function on the graph as
   * it is then (earlier layers already quantized), so each layer compensates the error of those before it.
   */
  recalibrate?: (graph: Graph) => CalibrationStats;
  /** Quantize columns by decreasing Hessian diagonal (groups follow that order; g_idx carries it). */
  actOrder?: boolean;
  /** Columns per lazy-update block (default 128). */
  blockSize?: number;
}

/** GPTQ's result for one weight: unpacked q [N, nBlocks · block] (padding 0), scales / zero points [N, nBlocks]. */
export interface GptqResult {
  q: Uint8Array;
  scales: Float64Array;
  zeroPoints: Uint8Array | undefined;
  /** Block of each k (only with act-order). */
  gIdx: Int32Array | undefined;
  /** The dequantized weight rows [N, K]. */
  dequant: Float64Array;
  nBlocks: number;
}

/** Lower Cholesky factor of a symmetric positive-definite K × K matrix (row-major), or undefined if it is not. */
export function cholesky(a: Float64Array, K: number): Float64Array | undefined {
  const L = new Float64Array(K * K);
  for (let i = 0; i < K; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * K + j]!;
      for (let p = 0; p < j; p++) s -= L[i * K + p]! * L[j * K + p]!;
      if (i === j) {
        if (!(s > 0)) return undefined;
        L[i * K + i] = Math.sqrt(s);
      } else L[i * K + j] = s / L[j * K + j]!;
    }
  }
  return L;
}

/** H⁻¹ from its lower Cholesky factor L (H = L Lᵀ). */
function inverseFromCholesky(L: Float64Array, K: number): Float64Array {
  // Linv = L⁻¹ (lower), H⁻¹ = Linvᵀ Linv
  const Li = new Float64Array(K * K);
  for (let c = 0; c < K; c++) {
    for (let i = c; i < K; i++) {
      let s = i === c ? 1 : 0;
      for (let p = c; p < i; p++) s -= L[i * K + p]! * Li[p * K + c]!;
      Li[i * K + c] = s / L[i * K + i]!;
    }
  }
  const inv = new Float64Array(K * K);
  for (let i = 0; i < K; i++)
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let p = i; p < K; p++) s += Li[p * K + i]! * Li[p * K + j]!;
      inv[i * K + j] = s;
      inv[j * K + i] = s;
    }
  return inv;
}

/**
 * The upper Cholesky factor U of the damped H⁻¹ (H⁻¹ = UᵀU) for GPTQ, with dead channels fixed up; H is modified
 * in place. Adds damping ×10 until the factorization succeeds.
 */
export function gptqHinvUpper(H: Float64Array, K: number, damp: number, dead: boolean[]): Float64Array {
  let mean = 0;
  for (let k = 0; k < K; k++) {
    if (H[k * K + k] === 0) {
      H[k * K + k] = 1;
      dead[k] = true;
    }
    mean += H[k * K + k]! / K;
  }
  for (let d = damp, tries = 0; tries < 6; d *= 10, tries++) {
    const Hd = Float64Array.from(H);
    for (let k = 0; k < K; k++) Hd[k * K + k] += d * mean;
    const L = cholesky(Hd, K);
    if (!L) continue;
    const Lu = cholesky(inverseFromCholesky(L, K), K);
    if (!Lu) continue;
    const U = new Float64Array(K * K);
    for (let i = 0; i < K; i++) for (let j = i; j < K; j++) U[i * K + j] = Lu[j * K + i]!;
    return U;
  }
  throw new KilnError('verify', `GPTQ: the damped Hessian (K = ${K}) is not positive definite`);
}

interface GroupParams {
  scale: number;
  zp: number;
}

/** RTN's per-block scale / zero point (rtn.ts quantizeRows) of the values `ws`. */
function groupParams(ws: ArrayLike<number>, bits: 4 | 8, symmetric: boolean, scaleDtype: DType): GroupParams {
  const qmax = 2 ** bits - 1;
  const half = 2 ** (bits - 1);
  let lo = 0;
  let hi = 0;
  for (let i = 0; i < ws.length; i++) {
    lo = Math.min(lo, ws[i]!);
    hi = Math.max(hi, ws[i]!);
  }
  let scale = symmetric ? Math.max(hi, -lo) / (half - 1) : (hi - lo) / qmax;
  scale = roundToDtype(scaleDtype, scale);
  if (!(scale > 0) || !Number.isFinite(scale)) scale = 1;
  const zp = symmetric ? half : Math.min(qmax, Math.max(0, roundHalfEvenSigned(-lo / scale)));
  return { scale, zp };
}

/**
 * GPTQ on weight rows `W` [N, K] (row-major, w_n over k) with Hessian `H` [K, K] (any positive multiple of XᵀX;
 * not modified).
 */
export function gptqQuantize(
  W: Float64Array,
  N: number,
  K: number,
  Hin: Float64Array,
  o: {
    bits: 4 | 8;
    block: number;
    symmetric: boolean;
    scaleDtype: DType;
    damp?: number;
    actOrder?: boolean;
    blockSize?: number;
  },
): GptqResult {
  const { bits, block, symmetric } = o;
  const qmax = 2 ** bits - 1;
  const nb = Math.ceil(K / block);
  const H = Float64Array.from(Hin);
  const dead: boolean[] = new Array(K).fill(false);
  // permutation: position i holds channel perm[i]
  const perm = Array.from({ length: K }, (_, i) => i);
  if (o.actOrder) perm.sort((a, b) => Hin[b * K + b]! - Hin[a * K + a]! || a - b);
  const Hp = new Float64Array(K * K);
  for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) Hp[i * K + j] = H[perm[i]! * K + perm[j]!]!;
  const U = gptqHinvUpper(Hp, K, o.damp ?? 0.01, dead);
  // working weights in permuted order, column-major by position for the column loop: Wp[i * N + n]
  const Wp = new Float64Array(K * N);
  for (let i = 0; i < K; i++) for (let n = 0; n < N; n++) Wp[i * N + n] = dead[i] ? 0 : W[n * K + perm[i]!]!;
  const q = new Uint8Array(N * nb * block);
  const scales = new Float64Array(N * nb);
  const zps = new Uint8Array(N * nb);
  const dequant = new Float64Array(N * K);
  const B = Math.max(o.blockSize ?? 128, block);
  const err = new Float64Array(B * N);
  const params: GroupParams[] = [];
  for (let i1 = 0; i1 < K; i1 += B) {
    const i2 = Math.min(K, i1 + B);
    for (let i = i1; i < i2; i++) {
      const g = Math.floor(i / block);
      if (i % block === 0) {
        // the group's parameters from the current weights of its columns (all inside this block: B % block = 0)
        const g1 = Math.min(K, i + block);
        const col = new Float64Array(g1 - i);
        for (let n = 0; n < N; n++) {
          for (let j = i; j < g1; j++) col[j - i] = Wp[j * N + n]!;
          const p = groupParams(col, bits, symmetric, o.scaleDtype);
          params[n] = p;
          scales[n * nb + g] = p.scale;
          zps[n * nb + g] = p.zp;
        }
      }
      const d = U[i * K + i]!;
      const k = perm[i]!;
      for (let n = 0; n < N; n++) {
        const w = Wp[i * N + n]!;
        const { scale, zp } = params[n]!;
        const v = Math.min(qmax, Math.max(0, roundHalfEvenSigned(w / scale) + zp));
        const dq = (v - zp) * scale;
        // packed position: natural k order (act-order groups are named by g_idx)
        q[n * nb * block + (o.actOrder ? k : i)] = v;
        dequant[n * K + k] = dq;
        const e = (w - dq) / d;
        err[(i - i1) * N + n] = e;
        for (let j = i + 1; j < i2; j++) Wp[j * N + n] -= e * U[i * K + j]!;
      }
    }
    // lazy update of the columns after the block
    for (let j = i2; j < K; j++)
      for (let i = i1; i < i2; i++) {
        const u = U[i * K + j]!;
        if (u === 0) continue;
        for (let n = 0; n < N; n++) Wp[j * N + n] -= err[(i - i1) * N + n]! * u;
      }
  }
  let gIdx: Int32Array | undefined;
  if (o.actOrder) {
    gIdx = new Int32Array(K);
    for (let i = 0; i < K; i++) gIdx[perm[i]!] = Math.floor(i / block);
  }
  return { q, scales, zeroPoints: symmetric ? undefined : zps, gIdx, dequant, nBlocks: nb };
}

function pack(q: Uint8Array, bits: number): Uint8Array {
  if (bits === 8) return q;
  const out = new Uint8Array(Math.ceil(q.length / 2));
  for (let i = 0; i < q.length; i++) out[i >> 1]! |= q[i]! << (i & 1 ? 4 : 0);
  return out;
}

const bytesOf = (t: Tensor) => t.data.byteLength ?? t.data.length;

/** The rows W[n, k] of a matmul's constant [K, N] weight. */
export function weightRows(w: Value): Float64Array {
  const [K, N] = w.type.shape as [number, number];
  const d = w.data!.data;
  const rows = new Float64Array(N * K);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) rows[n * K + k] = Number(d[k * N + n]!);
  return rows;
}

/** Replace matmul `n` (activation a, constant weight w) by a matmul_nbits holding `r`. */
export function emitNbits(
  graph: Graph,
  names: Names,
  n: Node,
  r: GptqResult,
  bits: 4 | 8,
  block: number,
): { b: Value; s: Value; z?: Value; g?: Value } {
  const [a, w] = n.inputs as [Value, Value];
  const [K, N] = w.type.shape as [number, number];
  const dt = a.type.dtype;
  const constant = (hint: string, t: Tensor, layout?: Layout) => {
    const v = new Value(names.fresh(hint), tensorType(t.dtype, t.shape, layout), t);
    graph.constants.push(v);
    return v;
  };
  const sym = r.zeroPoints === undefined;
  const b = constant(
    `${w.name}_q${bits}`,
    makeTensor('u8', [N, r.nBlocks, (block * bits) / 8], pack(r.q, bits)),
    blockqLayout(bits, block, 1, dt, !sym),
  );
  const s = constant(`${w.name}_scales`, makeTensor(dt, [N, r.nBlocks], r.scales));
  let z: Value | undefined;
  if (r.zeroPoints) {
    const rowBytes = Math.ceil((r.nBlocks * bits) / 8);
    const zp = new Uint8Array(N * rowBytes);
    for (let j = 0; j < N; j++)
      zp.set(pack(r.zeroPoints.subarray(j * r.nBlocks, (j + 1) * r.nBlocks), bits), j * rowBytes);
    z = constant(`${w.name}_zp`, makeTensor('u8', [zp.length], zp));
  }
  const g = r.gIdx && constant(`${w.name}_g_idx`, makeTensor('i32', [K], r.gIdx));
  const inputs: (Value | null)[] = g ? [a, b, s, z ?? null, g] : z ? [a, b, s, z] : [a, b, s];
  const q = new Node(names.fresh(`${n.name}_q`), 'matmul_nbits', inputs as Value[], [...n.outputs], {
    K,
    N,
    bits,
    block_size: block,
  });
  graph.addNode(q, n);
  graph.removeNode(n);
  return { b, s, z, g };
}

function relL2(ref: ArrayLike<number>, got: ArrayLike<number>): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < ref.length; i++) {
    d += (got[i]! - ref[i]!) ** 2;
    s += ref[i]! ** 2;
  }
  return s === 0 ? Math.sqrt(d) : Math.sqrt(d / s);
}

/** The Hessian of an activation: 2 XᵀX / rows. */
export function hessianOf(s: ActivationStats): Float64Array {
  return Float64Array.from(s.xtx, (x) => (2 * x) / Math.max(1, s.rows));
}

/**
 * Quantize the graph's constant-weight matmuls with GPTQ, using the activation statistics `stats` (calibrate.ts) of
 * the same graph; matmuls without statistics, the LM head and embeddings are handled as RTN handles them (RTN with
 * the same options quantizes whatever GPTQ did not, e.g. embeddings when asked for).
 *
 * @throws KilnError (code `attribute`) for bits other than 4 / 8 (and RTN's option checks); (code `shape`, naming the
 * node) when a matmul's statistics have another K than its weight.
 */
export function quantizeGptq(graph: Graph, stats: CalibrationStats, opts: GptqOptions): RtnReport {
  // RTN's option checks and its decisions (head / embeddings / only) on a copy of nothing: run RTN last on the rest
  const sym = opts.symmetric ?? true;
  const names = new Names(graph);
  const done: QuantizedLayer[] = [];
  let before = 0;
  for (const c of graph.constants) before += bytesOf(c.data!);
  const only = opts.only && new Set(opts.only);
  const logitsFed = (n: Node) => {
    let v = n.outputs[0]!;
    for (let hop = 0; hop < 4; hop++) {
      if (graph.outputs.includes(v)) return v.name === 'logits';
      const us = graph.users(v);
      if (us.length !== 1 || !['cast', 'reshape', 'identity'].includes(us[0]!.op)) return false;
      v = us[0]!.outputs[0]!;
    }
    return false;
  };
  if (opts.bits !== 4 && opts.bits !== 8)
    throw new KilnError('attribute', `GPTQ bits must be 4 or 8, got ${opts.bits}`);
  let fresh: Value | undefined;
  for (const n of [...graph.nodes]) {
    if (n.op !== 'matmul' || (only && !only.has(n.name))) continue;
    const [a, w] = n.inputs;
    if (!a || !w || !w.isConst || w.type.shape.length !== 2 || !isFloat(a.type.dtype) || w.type.dtype !== a.type.dtype)
      continue;
    if (!opts.head && logitsFed(n)) continue;
    if (opts.recalibrate && a !== fresh) {
      stats = opts.recalibrate(graph);
      fresh = a;
    }
    const st = stats.get(a.name);
    if (!st) continue;
    const [K, N] = w.type.shape as [number, number];
    if (st.K !== K)
      throw new KilnError('shape', `calibration statistics have K = ${st.K}, weight has ${K}`, { node: n.name });
    const block = blockFor(opts.group, K);
    const W = weightRows(w);
    const r = gptqQuantize(W, N, K, hessianOf(st), {
      bits: opts.bits,
      block,
      symmetric: sym,
      scaleDtype: a.type.dtype,
      damp: opts.damp,
      actOrder: opts.actOrder,
      blockSize: opts.blockSize,
    });
    const e = emitNbits(graph, names, n, r, opts.bits, block);
    done.push({
      node: n.name,
      weight: w.name,
      op: 'matmul_nbits',
      K,
      N,
      block,
      bytesBefore: bytesOf(w.data!),
      bytesAfter: [e.b, e.s, e.z, e.g].reduce((t, v) => t + (v ? bytesOf(v.data!) : 0), 0),
      weightRelL2: relL2(W, r.dequant),
    });
  }
  graph.constants = graph.constants.filter((c) => graph.users(c).length > 0 || graph.outputs.includes(c));
  const rest = quantizeRtn(graph, opts);
  return { layers: [...done, ...rest.layers], kept: rest.kept, bytesBefore: before, bytesAfter: rest.bytesAfter };
}
