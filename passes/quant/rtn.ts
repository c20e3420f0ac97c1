/**
 * Weight-only round-to-nearest (RTN) post-training quantization. Every matmul by a constant 2-D weight becomes a
 * `matmul_nbits` whose weight is block-quantized per output column (blocks of `group` consecutive k; the last block
 * of a K that the group does not divide is ragged: its statistics cover only the real elements, the packed row is
 * zero-padded), the same representation MatMulNBits imports to (ir/ops/blockq.ts): packed u8 data typed with the
 * blockq layout, scales, zero points.
 *
 *   symmetric:  scale = max|w| / (2^(bits−1) − 1), q = clamp(round(w / scale) + 2^(bits−1)), no zero-point tensor
 *   asymmetric: lo = min(w, 0), hi = max(w, 0), scale = (hi − lo) / (2^bits − 1), zp = clamp(round(−lo / scale)),
 *               q = clamp(round(w / scale) + zp), zero points packed u8
 *
 * round = half to even, clamp to [0, 2^bits − 1]; scales are stored in the activation's dtype and q is computed from
 * the stored scale. An all-zero block gets scale 1 (q = zp). Embedding tables (gather from a constant [V, D] along
 * axis 0 → gather_block_quantized, blocks along D) and the LM head (the matmul or tied-embedding einsum whose result
 * is the `logits` output, through casts / reshapes) are kept in float by default.
 */
import { isFloat, roundHalfEvenSigned, roundToDtype, type DType } from '../../ir/dtype.js';
import { KilnError } from '../../ir/errors.js';
import { Graph, Node, Value } from '../../ir/graph.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { blockqLayout } from '../../ir/ops/blockq.js';
import { tensorType, type Layout } from '../../ir/types.js';
import type { Pass } from '../context.js';
import { Names } from '../rewrite.js';

export interface RtnOptions {
  bits: 4 | 8;
  /** Elements per block along K: a power of two ≥ 16, or 'channel' (one block per output column). */
  group: number | 'channel';
  /** Symmetric (default): no zero points. */
  symmetric?: boolean;
  /** Quantize embedding tables too (default false: kept in float). */
  embeddings?: boolean;
  /** Quantize the LM head too (default false). */
  head?: boolean;
  /** Quantize only the nodes with these names (e.g. one layer at a time, to measure each one's effect). */
  only?: readonly string[];
}

/** One quantized weight. */
export interface QuantizedLayer {
  node: string;
  weight: string;
  op: 'matmul_nbits' | 'gather_block_quantized';
  K: number;
  N: number;
  block: number;
  bytesBefore: number;
  bytesAfter: number;
  /** ‖W − dequant(Q(W))‖ / ‖W‖. */
  weightRelL2: number;
}

export interface RtnReport {
  layers: QuantizedLayer[];
  /** Constant-weight nodes left in float, with why. */
  kept: { node: string; weight: string; bytes: number; reason: string }[];
  /** Bytes of every weight tensor (constants) before and after. */
  bytesBefore: number;
  bytesAfter: number;
}

/** The block size for K: the group, or one block over the whole row (the next power of two ≥ max(16, K)). */
export function blockFor(group: number | 'channel', K: number): number {
  if (group === 'channel') return Math.max(16, 2 ** Math.ceil(Math.log2(K)));
  return group;
}

function checkOptions(o: RtnOptions): void {
  if (o.bits !== 4 && o.bits !== 8) throw new KilnError('attribute', `RTN bits must be 4 or 8, got ${o.bits}`);
  if (o.group !== 'channel' && !(Number.isInteger(o.group) && o.group >= 16 && (o.group & (o.group - 1)) === 0))
    throw new KilnError('attribute', `RTN group must be a power of two >= 16 or 'channel', got ${o.group}`);
}

/** Rows of a weight, quantized: packed data, scales, packed zero points, and the dequantized values. */
export interface QuantizedRows {
  packed: Uint8Array;
  scales: number[];
  zeroPoints: Uint8Array | undefined;
  dequant: Float64Array;
  nBlocks: number;
}

/**
 * Quantize N rows of K elements (`at(n, k)`) in blocks of `block` along k. `pad`: rows laid out as n_blocks · block
 * elements (matmul_nbits); else as K elements (gather_block_quantized, K even for 4 bits).
 */
export function quantizeRows(
  at: (n: number, k: number) => number,
  N: number,
  K: number,
  bits: 4 | 8,
  block: number,
  symmetric: boolean,
  scaleDtype: DType,
  pad: boolean,
): QuantizedRows {
  const nb = Math.ceil(K / block);
  const row = pad ? nb * block : K;
  const qmax = 2 ** bits - 1;
  const half = 2 ** (bits - 1);
  const q = new Uint8Array(N * row);
  const scales: number[] = new Array(N * nb);
  const zps = new Uint8Array(N * nb);
  const dequant = new Float64Array(N * K);
  for (let n = 0; n < N; n++) {
    for (let j = 0; j < nb; j++) {
      const k0 = j * block;
      const k1 = Math.min(K, k0 + block);
      let lo = 0;
      let hi = 0;
      for (let k = k0; k < k1; k++) {
        const w = at(n, k);
        if (!Number.isFinite(w)) throw new KilnError('verify', `weight element (${n}, ${k}) is ${w}`);
        lo = Math.min(lo, w);
        hi = Math.max(hi, w);
      }
      let scale = symmetric ? Math.max(hi, -lo) / (half - 1) : (hi - lo) / qmax;
      scale = roundToDtype(scaleDtype, scale);
      if (!(scale > 0) || !Number.isFinite(scale)) scale = 1;
      const zp = symmetric ? half : Math.min(qmax, Math.max(0, roundHalfEvenSigned(-lo / scale)));
      scales[n * nb + j] = scale;
      zps[n * nb + j] = zp;
      for (let k = k0; k < k1; k++) {
        const v = Math.min(qmax, Math.max(0, roundHalfEvenSigned(at(n, k) / scale) + zp));
        q[n * row + k] = v;
        dequant[n * K + k] = (v - zp) * scale;
      }
    }
  }
  return {
    packed: pack(q, bits),
    scales,
    zeroPoints: symmetric ? undefined : packRows(zps, N, nb, bits),
    dequant,
    nBlocks: nb,
  };
}

function pack(q: Uint8Array, bits: number): Uint8Array {
  if (bits === 8) return q;
  const out = new Uint8Array(Math.ceil(q.length / 2));
  for (let i = 0; i < q.length; i++) out[i >> 1]! |= q[i]! << (i & 1 ? 4 : 0);
  return out;
}

/** Zero points [N, nb] packed per row (a row starts on a byte boundary). */
function packRows(z: Uint8Array, N: number, nb: number, bits: number): Uint8Array {
  const rowBytes = Math.ceil((nb * bits) / 8);
  const out = new Uint8Array(N * rowBytes);
  for (let n = 0; n < N; n++) out.set(pack(z.subarray(n * nb, (n + 1) * nb), bits), n * rowBytes);
  return out;
}

function relL2(ref: ArrayLike<number>, got: (i: number) => number): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < ref.length; i++) {
    const e = got(i) - ref[i]!;
    d += e * e;
    s += ref[i]! * ref[i]!;
  }
  return s === 0 ? Math.sqrt(d) : Math.sqrt(d / s);
}

const bytesOf = (t: Tensor) => t.data.byteLength ?? t.data.length;

/** Does `v` reach the `logits` graph output (itself, or through casts / reshapes that are its only readers)? */
function feedsLogits(graph: Graph, v: Value): boolean {
  for (let hop = 0; hop < 4; hop++) {
    if (graph.outputs.includes(v)) return graph.outputs.some((o) => o === v && o.name === 'logits');
    const us = graph.users(v);
    if (us.length !== 1 || !['cast', 'reshape', 'identity'].includes(us[0]!.op)) return false;
    v = us[0]!.outputs[0]!;
  }
  return false;
}

/** A matmul / einsum this pass rewrites: the activation, the weight as rows W[n, k], K and N. */
interface Target {
  node: Node;
  a: Value;
  w: Value;
  K: number;
  N: number;
  at: (n: number, k: number) => number;
}

function matmulTarget(n: Node): Target | undefined {
  const [a, w] = n.inputs;
  if (!a || !w || !w.isConst || w.type.shape.length !== 2 || a.type.shape.length < 1) return undefined;
  if (!isFloat(a.type.dtype) || w.type.dtype !== a.type.dtype) return undefined;
  const [K, N] = w.type.shape as [number, number];
  const d = w.data!.data;
  if (n.op === 'matmul') return { node: n, a, w, K, N, at: (j, k) => Number(d[k * N + j]!) };
  return undefined;
}

/** einsum 'P d, v d -> P v' with a constant [V, D] second operand (a tied LM head): W = the table itself. */
function einsumTarget(n: Node): Target | undefined {
  if (n.op !== 'einsum') return undefined;
  const [a, w] = n.inputs;
  const eq = /^([a-z]*)([a-z]),([a-z])([a-z])->([a-z]*)$/.exec(String(n.attrs['equation']).replace(/\s/g, ''));
  if (!a || !w || !w.isConst || !eq || w.type.shape.length !== 2) return undefined;
  const [, pre, d, v, d2, out] = eq;
  if (d !== d2 || out !== pre! + v || pre!.includes(v!) || pre!.includes(d!)) return undefined;
  if (!isFloat(a.type.dtype) || w.type.dtype !== a.type.dtype) return undefined;
  const [N, K] = w.type.shape as [number, number];
  const data = w.data!.data;
  return { node: n, a, w, K, N, at: (j, k) => Number(data[j * K + k]!) };
}

/**
 * Quantize the graph's weights in place (round to nearest, per block of `opts.group` along the input dim) into
 * `matmul_nbits` / `gather_block_quantized`; returns what was done, per layer.
 *
 * @throws KilnError (code `attribute`) for bits other than 4 / 8 or a group that is neither a power of two ≥ 16 nor
 * `'channel'`; (code `verify`) for a non-finite weight element.
 */
export function quantizeRtn(graph: Graph, opts: RtnOptions): RtnReport {
  checkOptions(opts);
  const sym = opts.symmetric ?? true;
  const names = new Names(graph);
  const report: RtnReport = { layers: [], kept: [], bytesBefore: 0, bytesAfter: 0 };
  for (const c of graph.constants) report.bytesBefore += bytesOf(c.data!);
  const constant = (hint: string, t: Tensor, layout?: Layout) => {
    const v = new Value(names.fresh(hint), tensorType(t.dtype, t.shape, layout), t);
    graph.constants.push(v);
    return v;
  };
  const only = opts.only && new Set(opts.only);
  for (const n of [...graph.nodes]) {
    if (only && !only.has(n.name)) continue;
    const t = matmulTarget(n) ?? einsumTarget(n);
    if (t) {
      const head = feedsLogits(graph, n.outputs[0]!);
      if (head && !opts.head) {
        report.kept.push({ node: n.name, weight: t.w.name, bytes: bytesOf(t.w.data!), reason: 'LM head' });
        continue;
      }
      const block = blockFor(opts.group, t.K);
      const dt = t.a.type.dtype;
      const r = quantizeRows(t.at, t.N, t.K, opts.bits, block, sym, dt, true);
      const blob = (block * opts.bits) / 8;
      const b = constant(
        `${t.w.name}_q${opts.bits}`,
        makeTensor('u8', [t.N, r.nBlocks, blob], r.packed),
        blockqLayout(opts.bits, block, 1, dt, !sym),
      );
      const s = constant(`${t.w.name}_scales`, makeTensor(dt, [t.N, r.nBlocks], r.scales));
      const z = r.zeroPoints && constant(`${t.w.name}_zp`, makeTensor('u8', [r.zeroPoints.length], r.zeroPoints));
      const q = new Node(names.fresh(`${n.name}_q`), 'matmul_nbits', z ? [t.a, b, s, z] : [t.a, b, s], [...n.outputs], {
        K: t.K,
        N: t.N,
        bits: opts.bits,
        block_size: block,
      });
      graph.addNode(q, n);
      graph.removeNode(n);
      const after = bytesOf(b.data!) + bytesOf(s.data!) + (z ? bytesOf(z.data!) : 0);
      report.layers.push({
        node: n.name,
        weight: t.w.name,
        op: 'matmul_nbits',
        K: t.K,
        N: t.N,
        block,
        bytesBefore: bytesOf(t.w.data!),
        bytesAfter: after,
        weightRelL2: relL2(r.dequant, (i) => t.at(Math.floor(i / t.K), i % t.K)),
      });
      continue;
    }
    if (n.op === 'gather' && n.inputs[0]?.isConst && n.inputs[0].type.shape.length === 2) {
      const w = n.inputs[0];
      if (!opts.embeddings || !isFloat(w.type.dtype) || (n.attrs['axis'] ?? 0) !== 0) {
        report.kept.push({ node: n.name, weight: w.name, bytes: bytesOf(w.data!), reason: 'embedding' });
        continue;
      }
      const [V, D] = w.type.shape as [number, number];
      if (opts.bits === 4 && D % 2) {
        report.kept.push({ node: n.name, weight: w.name, bytes: bytesOf(w.data!), reason: 'odd row length' });
        continue;
      }
      const block = blockFor(opts.group, D);
      const data = w.data!.data;
      const r = quantizeRows((i, k) => Number(data[i * D + k]!), V, D, opts.bits, block, sym, w.type.dtype, false);
      const dq = constant(
        `${w.name}_q${opts.bits}`,
        makeTensor('u8', [V, (D * opts.bits) / 8], r.packed),
        blockqLayout(opts.bits, block, 1, w.type.dtype, !sym),
      );
      const s = constant(`${w.name}_scales`, makeTensor(w.type.dtype, [V, r.nBlocks], r.scales));
      const zRow = Math.ceil((r.nBlocks * opts.bits) / 8);
      const z = r.zeroPoints && constant(`${w.name}_zp`, makeTensor('u8', [V, zRow], r.zeroPoints));
      const q = new Node(
        names.fresh(`${n.name}_q`),
        'gather_block_quantized',
        z ? [dq, n.inputs[1]!, s, z] : [dq, n.inputs[1]!, s],
        [...n.outputs],
        { gather_axis: 0, quantize_axis: 1, block_size: block, bits: opts.bits },
      );
      graph.addNode(q, n);
      graph.removeNode(n);
      report.layers.push({
        node: n.name,
        weight: w.name,
        op: 'gather_block_quantized',
        K: D,
        N: V,
        block,
        bytesBefore: bytesOf(w.data!),
        bytesAfter: bytesOf(dq.data!) + bytesOf(s.data!) + (z ? bytesOf(z.data!) : 0),
        weightRelL2: relL2(r.dequant, (i) => Number(data[i]!)),
      });
    }
  }
  graph.constants = graph.constants.filter((c) => graph.users(c).length > 0 || graph.outputs.includes(c));
  for (const c of graph.constants) report.bytesAfter += bytesOf(c.data!);
  return report;
}

/** The pass form (not in the default pipeline: quantization is asked for, e.g. by `kiln quantize`). */
export function rtnPass(opts: RtnOptions): Pass & { report?: RtnReport } {
  const pass: Pass & { report?: RtnReport } = {
    name: 'quantize-rtn',
    minLevel: 1,
    run(graph) {
      pass.report = quantizeRtn(graph, opts);
      return { changed: pass.report.layers.length > 0 };
    },
  };
  return pass;
}
