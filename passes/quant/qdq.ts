/**
 * QAT / QAF graph folding: the QuantizeLinear / DequantizeLinear pairs a quantization-aware export leaves around
 * weights and activations become kiln's quantized layouts and integer kernels instead of float fake-quant.
 *
 * Rules (each a before / after pair and a near miss in test/passes/qdq.test.ts):
 * - `qdq-act-weight-integer`: matmul(dequantize(quantize(x, sx, zx), sx, zx), dequantize(Wq, sw, zw)) with a
 *   per-tensor activation scale and an 8-bit weight quantized per tensor or per output column ⇒
 *   cast(matmul_integer(quantize(x), Wq, zx, zw)) · (sx · sw): i32 accumulation, one f32 rescale.
 * - `qdq-weight-nbits`: matmul(x, dequantize(Wq, s, zp)) (or gemm with transB, alpha = 1, an optional [N] bias) with
 *   a constant 8- / 4-bit weight quantized per tensor, per output column or in blocks along K ⇒ matmul_nbits, the
 *   weight repacked at compile time (transposed to [N, K], signed codes offset to unsigned, zero points moved with
 *   them), so no f32 weight and no dequantize of a weight is left.
 *
 * Numerics: the weight fold is exact — matmul_nbits dequantizes (q − zp) · s like dequantize_linear does, only the
 * accumulation order may differ. The integer fold computes Σ (xq − zx)(wq − zw) exactly in i32 and scales once, where
 * the QDQ graph rounds each dequantized factor to f32 first: the results agree within f32 rounding of a K-term dot
 * product. Both keep QDQ semantics, so the pass runs at level 1.
 */
import type { Node, Value } from '../../ir/graph.js';
import { blockqLayout } from '../../ir/ops/blockq.js';
import type { Tensor } from '../../ir/tensor.js';
import type { Pass } from '../context.js';
import { applyRules, op, rule, v, type Match, type Rewriter, type Rule } from '../rewrite.js';

const BITS: Record<string, { bits: 4 | 8; offset: number }> = {
  u8: { bits: 8, offset: 0 },
  i8: { bits: 8, offset: 128 },
  u4: { bits: 4, offset: 0 },
  i4: { bits: 4, offset: 8 },
};

/** A weight's scale layout in [K, N] terms: s(k, n) and zp(k, n) as indexes into the scale data. */
interface WeightQuant {
  K: number;
  N: number;
  /** Block along K (0: one scale for all of K). */
  block: number;
  /** Scale / zero-point index of element (k, n). */
  at(k: number, n: number): number;
  /** Code of element (k, n). */
  q(k: number, n: number): number;
}

const isPow2 = (x: number): boolean => x >= 16 && (x & (x - 1)) === 0;

/**
 * How a constant 2-D quantized weight maps onto [K, N] (kAxis: which of its axes is K), or undefined when its scale
 * layout is not per tensor, per N or blocked along K.
 */
function weightQuant(
  dq: { attrs: Record<string, unknown> },
  w: Tensor,
  scale: Tensor,
  kAxis: 0 | 1,
): WeightQuant | undefined {
  if (w.shape.length !== 2) return undefined;
  const K = w.shape[kAxis]!;
  const N = w.shape[1 - kAxis]!;
  const q = kAxis === 0 ? (k: number, n: number) => w.data[k * N + n]! : (k: number, n: number) => w.data[n * K + k]!;
  const block = (dq.attrs['block_size'] as number | undefined) ?? 0;
  const rawAxis = (dq.attrs['axis'] as number | undefined) ?? 1;
  const axis = rawAxis < 0 ? rawAxis + 2 : rawAxis;
  const ns = scale.data.length;
  if (block > 0) {
    if (axis !== kAxis || !isPow2(block)) return undefined;
    const nb = Math.ceil(K / block);
    // scale [nb, N] (kAxis 0) or [N, nb] (kAxis 1)
    const at =
      kAxis === 0
        ? (k: number, n: number) => Math.floor(k / block) * N + n
        : (k: number, n: number) => n * nb + Math.floor(k / block);
    return { K, N, block, at, q };
  }
  if (scale.shape.length === 0 || (scale.shape.length === 1 && ns === 1)) return { K, N, block: 0, at: () => 0, q };
  if (scale.shape.length === 1 && axis === 1 - kAxis && ns === N) return { K, N, block: 0, at: (_k, n) => n, q };
  return undefined;
}

/** matmul_nbits inputs for a quantized weight: packed codes, scales, packed zero points (absent when all default). */
function nbitsOf(
  rw: Rewriter,
  wq: WeightQuant,
  dt: string,
  scale: Tensor,
  zp: Tensor | undefined,
): { inputs: Value[]; attrs: { K: number; N: number; bits: number; block_size: number } } | undefined {
  const kind = BITS[dt];
  if (!kind) return undefined;
  const { bits, offset } = kind;
  const { K, N } = wq;
  const block = wq.block || (K >= 128 ? 128 : Math.max(16, 2 ** Math.ceil(Math.log2(K))));
  const nb = Math.ceil(K / block);
  const blob = (block * bits) / 8;
  const data = new Array<number>(N * nb * blob).fill(0);
  const put = (arr: number[], idx: number, val: number) => {
    if (bits === 8) arr[idx] = val;
    else arr[idx >> 1]! |= idx & 1 ? val << 4 : val;
  };
  const scales = new Array<number>(N * nb);
  const zpRow = Math.ceil((nb * bits) / 8);
  const zps = new Array<number>(N * zpRow).fill(0);
  const dflt = 2 ** (bits - 1);
  let allDefault = true;
  for (let n = 0; n < N; n++) {
    for (let j = 0; j < nb; j++) {
      const s = wq.at(j * block, n);
      scales[n * nb + j] = scale.data[s]!;
      const z = (zp ? zp.data[zp.data.length === 1 ? 0 : s]! : 0) + offset;
      if (z !== dflt) allDefault = false;
      put(zps, n * zpRow * (8 / bits) + j, z);
    }
    for (let k = 0; k < K; k++) put(data, n * nb * block + k, wq.q(k, n) + offset);
  }
  const b = rw.const('u8', data, [N, nb, blob]);
  b.type = { ...b.type, layout: blockqLayout(bits, block, 1, scale.dtype, !allDefault) };
  const sc = rw.const(scale.dtype, scales, [N * nb]);
  const inputs = [b, sc];
  if (!allDefault) inputs.push(rw.const('u8', zps, [N * zpRow]));
  return { inputs, attrs: { K, N, bits, block_size: block } };
}

/** A dequantize_linear whose inputs (code, scale, optional zero point) are all constants. */
const constDq = (name: string) =>
  op('dequantize_linear', undefined, {
    name,
    attrs: (_a, n) => !!n.inputs[0]?.isConst && !!n.inputs[1]?.isConst && (!n.inputs[2] || n.inputs[2].isConst),
  });

/** Bind the weight dequantize's code / scale / zero point as `wq`, `ws`, `wz`. */
function bindWeight(m: Match): void {
  const [wq, ws, wz] = m.node('dq').inputs;
  m.values.set('wq', wq!);
  m.values.set('ws', ws!);
  if (wz) m.values.set('wz', wz);
}

type Packed = NonNullable<ReturnType<typeof nbitsOf>>;
const PACKED = new WeakMap<Node, Map<string, Packed>>();

function foldWeight(m: Match, rw: Rewriter, x: Value, kAxis: 0 | 1, bias: Value | null): Value | undefined {
  const wq = m.v('wq');
  const scale = m.data('ws');
  const zp = m.values.has('wz') ? m.data('wz') : undefined;
  const geo = weightQuant(m.node('dq'), wq.data!, scale, kAxis);
  if (!geo || x.type.dtype !== scale.dtype) return undefined;
  // one packed copy per weight: a dequantized weight read by several matmuls (tied, shared) is packed once
  const key = `${kAxis}`;
  const cached = PACKED.get(m.node('dq'))?.get(key);
  const live = cached && cached.inputs.every((c) => rw.graph.constants.includes(c));
  const nb = live ? cached : nbitsOf(rw, geo, wq.type.dtype, scale, zp);
  if (!nb) return undefined;
  if (!live) PACKED.set(m.node('dq'), (PACKED.get(m.node('dq')) ?? new Map()).set(key, nb));
  const inputs: (Value | null)[] = [x, nb.inputs[0]!, nb.inputs[1]!, nb.inputs[2] ?? null];
  if (bias) inputs.push(null, bias);
  while (inputs.length > 3 && inputs[inputs.length - 1] === null) inputs.pop();
  return rw.op('matmul_nbits', inputs, nb.attrs)[0];
}

/** Weight DQ feeding a matmul / gemm ⇒ matmul_nbits. */
export const qdqWeightRules: readonly Rule[] = [
  rule('qdq-weight-nbits', op('matmul', [v('x'), constDq('dq')]), (m, rw) => {
    bindWeight(m);
    return foldWeight(m, rw, m.v('x'), 0, null);
  }),
  rule(
    'qdq-weight-nbits-gemm',
    op('gemm', undefined, {
      name: 'gemm',
      attrs: (a, n) =>
        (a['alpha'] ?? 1) === 1 &&
        (a['beta'] ?? 1) === 1 &&
        !a['transA'] &&
        !!a['transB'] &&
        n.inputs[1]?.producer?.op === 'dequantize_linear' &&
        (!n.inputs[2] || n.inputs[2].type.shape.length === 1),
    }),
    (m, rw) => {
      const g = m.node('gemm');
      const dq = g.inputs[1]!.producer!;
      if (!dq.inputs[0]?.isConst || !dq.inputs[1]?.isConst || (dq.inputs[2] && !dq.inputs[2].isConst)) return undefined;
      m.nodes.set('dq', dq);
      bindWeight(m);
      return foldWeight(m, rw, g.inputs[0]!, 1, g.inputs[2] ?? null);
    },
  ),
];

/** Equal scalar constants (the activation's quantize and dequantize must share scale and zero point). */
const sameScalar = (a: Value | undefined, b: Value | undefined): boolean =>
  a === b ||
  (!!a?.data &&
    !!b?.data &&
    a.data.data.length === 1 &&
    b.data.data.length === 1 &&
    a.data.data[0] === b.data.data[0] &&
    a.type.dtype === b.type.dtype);

function foldActWeight(m: Match, rw: Rewriter): Value | undefined {
  const q = m.node('q');
  const dqx = m.node('dqx');
  const [, sx, zx] = q.inputs;
  const [, sx2, zx2] = dqx.inputs;
  if (!sx?.data || sx.data.data.length !== 1 || !sameScalar(sx, sx2 ?? undefined)) return undefined;
  if ((zx ?? undefined) !== (zx2 ?? undefined) && !sameScalar(zx ?? undefined, zx2 ?? undefined)) return undefined;
  if (q.attrs['precision'] !== undefined) return undefined;
  const xq = m.v('xq');
  if (xq.type.dtype !== 'u8' && xq.type.dtype !== 'i8') return undefined;
  const wq = m.v('wq');
  if (wq.type.dtype !== 'u8' && wq.type.dtype !== 'i8') return undefined;
  const scale = m.data('ws');
  const geo = weightQuant(m.node('dq'), wq.data!, scale, 0);
  if (!geo || geo.block !== 0) return undefined;
  const { K, N } = geo;
  if (wq.type.shape[0] !== K) return undefined;
  const perCol = scale.data.length !== 1;
  const s = sx.data.data[0]!;
  const rescale = rw.const(
    scale.dtype,
    perCol ? Array.from({ length: N }, (_, n) => Math.fround(s * scale.data[n]!)) : [Math.fround(s * scale.data[0]!)],
    perCol ? [N] : [],
  );
  const wz = m.values.has('wz') ? m.v('wz') : null;
  // a [1] zero point becomes a scalar (matmul_integer reads 1-D zero points per row / column)
  const scalarZp = (z: Value | null | undefined): Value | null =>
    !z
      ? null
      : z.type.shape.length === 1 && z.data?.data.length === 1
        ? rw.const(z.type.dtype, [z.data.data[0]!], [])
        : z;
  const wzIn = scalarZp(wz);
  const zxIn = scalarZp(zx);
  const acc = rw.op('matmul_integer', [xq, wq, zxIn, wzIn])[0]!;
  const f = rw.op('cast', [acc], { to: scale.dtype })[0]!;
  return rw.op('mul', [f, rescale])[0];
}

/** Activation Q → DQ and weight DQ feeding a matmul ⇒ matmul_integer + rescale (tried before the weight-only rules). */
export const qdqIntegerRules: readonly Rule[] = [
  rule(
    'qdq-act-weight-integer',
    op('matmul', [
      op('dequantize_linear', undefined, {
        name: 'dqx',
        attrs: (_a, n) => n.inputs[0]?.producer?.op === 'quantize_linear',
      }),
      constDq('dq'),
    ]),
    (m, rw) => {
      bindWeight(m);
      m.nodes.set('q', m.node('dqx').inputs[0]!.producer!);
      m.values.set('xq', m.node('q').outputs[0]!);
      return foldActWeight(m, rw);
    },
  ),
];

/**
 * matmul_integer(a, constant b [..., K, N]) with K % 4 == 0 ⇒ matmul_integer(a, bᵀ [..., N, K], trans_b): the
 * weight's packed words then run along K, as a's do, and the lowering takes the packed int8 dot product
 * (`codegen/lower/contraction/dot4.ts`). The transpose is done once, here, on the constant.
 */
export const matmulIntegerTransBRules: readonly Rule[] = [
  rule('matmul-integer-trans-b', op('matmul_integer'), (m, rw) => {
    const n = m.root;
    if (n.attrs['trans_b']) return undefined;
    const [a, b] = n.inputs;
    const w = b?.data;
    const r = b?.type.shape.length ?? 0;
    if (!a || !w || r < 2 || a.type.shape.length < 2) return undefined;
    const [K, N] = [w.shape[r - 2]!, w.shape[r - 1]!];
    if (K % 4 !== 0 || K === 0) return undefined;
    const t = new Array<number>(w.data.length);
    for (let base = 0; base < t.length; base += K * N) {
      for (let k = 0; k < K; k++) for (let j = 0; j < N; j++) t[base + j * K + k] = w.data[base + k * N + j]!;
    }
    const bt = rw.const(w.dtype, t, [...w.shape.slice(0, -2), N, K]);
    return rw.op('matmul_integer', [a, bt, ...n.inputs.slice(2)], { ...n.attrs, trans_b: true })[0];
  }),
];

/** Every QDQ folding rule, integer folds first. */
export const qdqRules: readonly Rule[] = [...qdqIntegerRules, ...qdqWeightRules];

/**
 * Fold the Q/DQ pairs of a QAT / QAF export into matmul_integer / matmul_nbits (level 1: QDQ semantics kept), and give
 * every matmul_integer with a constant weight the trans_b layout ({@link matmulIntegerTransBRules}).
 */
export const qdqFoldPass: Pass = {
  name: 'qdq-fold',
  minLevel: 1,
  run(graph) {
    const stats = applyRules(graph, [...qdqRules, ...matmulIntegerTransBRules]);
    return { changed: stats.fired.size > 0 };
  },
};
