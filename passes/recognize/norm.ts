/**
 * Normalizations written out by exporters → `layer_norm` / `rms_norm`. The core pattern (the normalized value,
 * before scale and bias) becomes the op with a ones scale; `mul` by a scale and `add` of a bias are then absorbed one
 * at a time, so every combination of optional scale / bias is covered by a few small rules.
 *
 * Only epsilon inside the root matches: sqrt(var) + eps is another function (and not what the ops compute).
 */
import type { Node, Value } from '../../ir/graph.js';
import { isStatic, numel } from '../../ir/shape.js';
import { makeTensor } from '../../ir/tensor.js';
import { allEqual, constant, op, rule, v, type OpPattern, type Rewriter, type Rule } from '../rewrite.js';
import { divide, scalar, square, variants } from './util.js';

/** The first reduced axis when a reduce_mean keeps its dims and reduces exactly the trailing axes k..rank-1. */
export function trailingAxis(n: Node): number | undefined {
  const rank = n.inputs[0]!.type.shape.length;
  const axes = n.attrs['axes'] as readonly number[] | undefined;
  if (n.attrs['keepdims'] === false || !axes || axes.length === 0) return undefined; // no axes: ambiguous, skip
  const norm = [...new Set(axes.map((a) => (a < 0 ? a + rank : a)))].sort((a, b) => a - b);
  if (norm.length !== axes.length || norm[0]! < 0 || norm.at(-1) !== rank - 1) return undefined;
  return norm.every((a, i) => a === norm[0]! + i) ? norm[0] : undefined;
}

const trailing = (_a: unknown, n: Node) => trailingAxis(n) !== undefined;
const x = v('x');

/** The op on `x` normalizing from `axis`, with a ones scale (absorbed later if a scale follows). */
function normOp(rw: Rewriter, name: 'layer_norm' | 'rms_norm', xv: Value, axis: number, eps: number) {
  const norm = xv.type.shape.slice(axis);
  if (!isStatic(norm)) return undefined;
  const dims = norm as number[];
  const ones = rw.constant(makeTensor(xv.type.dtype, dims, new Array<number>(numel(dims)).fill(1)));
  return rw.op(name, [xv, ones], { axis: axis - xv.type.shape.length, epsilon: eps })[0];
}

/** Both reductions over the same trailing axes: that axis, else undefined. */
function sameAxis(a: Node, b: Node): number | undefined {
  const k = trailingAxis(a);
  return k !== undefined && k === trailingAxis(b) ? k : undefined;
}

// ---- layer norm: (x - mean) / sqrt(var + eps) ----

const mean = op('reduce_mean', [x], { name: 'mean', attrs: trailing });
const dev = op('sub', [x, mean]);
/** var = mean((x - mean)²), or mean(x²) - mean² (the ONNX function body: the same real function). */
const variances: OpPattern[] = [
  ...square(dev).map((s) => op('reduce_mean', [s], { name: 'var', attrs: trailing })),
  ...variants<[OpPattern, OpPattern]>(square(x), square(mean)).map(([x2, m2]) =>
    op('sub', [op('reduce_mean', [x2], { name: 'var', attrs: trailing }), m2]),
  ),
];
const layerNormPatterns = variances.flatMap((vr) => divide(dev, op('sqrt', [op('add', [vr, scalar('eps')])])));

// ---- rms norm: x / sqrt(mean(x²) + eps) ----

const rmsPatterns = square(x).flatMap((x2) =>
  divide(x, op('sqrt', [op('add', [op('reduce_mean', [x2], { name: 'var', attrs: trailing }), scalar('eps')])])),
);

// ---- scale and bias ----

/** `p` as a parameter of the normalized dims: leading 1-dims beyond their rank are reshaped away. */
function fitParam(rw: Rewriter, p: Value, norm: readonly unknown[]): Value | undefined {
  const s = p.type.shape;
  if (s.length <= norm.length) return p;
  const extra = s.slice(0, s.length - norm.length);
  const keep = s.slice(s.length - norm.length);
  if (!extra.every((d) => d === 1) || !isStatic(keep)) return undefined;
  return rw.op('reshape', [p, rw.const('i64', keep as number[])])[0];
}

const ones = constant('ones', (t) => allEqual(t, 1));

/** op(x, ones, ...) whose only reader is the root; the new op replaces both. */
function absorb(rw: Rewriter, n: Node, inputs: (Value | undefined)[]): Value | undefined {
  if (inputs.some((i) => i === undefined) || rw.isOutput(n.outputs[0]!)) return undefined;
  if (n.outputs.length !== 1 || rw.graph.users(n.outputs[0]!).length !== 1) return undefined;
  return rw.op(n.op, inputs as Value[], n.attrs)[0];
}

const normShape = (n: Node) => {
  const xs = n.inputs[0]!.type.shape;
  const a = n.attrs['axis'] as number;
  return xs.slice(a < 0 ? a + xs.length : a);
};

export const normRules: Rule[] = [
  ...layerNormPatterns.map((p) =>
    rule('layer-norm', p, (m, rw) => {
      const axis = sameAxis(m.node('mean'), m.node('var'));
      return axis === undefined ? undefined : normOp(rw, 'layer_norm', m.v('x'), axis, m.data('eps').data[0]!);
    }),
  ),
  ...rmsPatterns.map((p) =>
    rule('rms-norm', p, (m, rw) => {
      const axis = trailingAxis(m.node('var'));
      return axis === undefined ? undefined : normOp(rw, 'rms_norm', m.v('x'), axis, m.data('eps').data[0]!);
    }),
  ),
  // (x̂ · 1) · w = x̂ · w, for a w of the normalized dims (inference rejects any other shape)
  rule('layer-norm-scale', op('mul', [op('layer_norm', [x, ones], { name: 'n' }), v('w')]), (m, rw) =>
    absorb(rw, m.node('n'), [m.v('x'), fitParam(rw, m.v('w'), normShape(m.node('n')))]),
  ),
  rule('rms-norm-scale', op('mul', [op('rms_norm', [x, ones], { name: 'n' }), v('w')]), (m, rw) =>
    absorb(rw, m.node('n'), [m.v('x'), fitParam(rw, m.v('w'), normShape(m.node('n')))]),
  ),
  rule('layer-norm-bias', op('add', [op('layer_norm', [x, v('s')], { name: 'n' }), v('b')]), (m, rw) =>
    absorb(rw, m.node('n'), [m.v('x'), m.v('s'), fitParam(rw, m.v('b'), normShape(m.node('n')))]),
  ),
];
