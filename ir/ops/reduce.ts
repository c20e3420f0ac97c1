/** Reductions over axes (sum, mean, max, ...), argmax / argmin, and cumsum. */
import { dtypeInfo, isFloat, type DType } from '../dtype.js';
import { registerOp, type Attrs, type InferContext } from '../registry.js';
import { scratchTensor, type Tensor } from '../tensor.js';
import { tensorType } from '../types.js';
import { axisSplit, broadcastStrides, numel, odometerStep, req, type Dim } from './util.js';

const NUMERIC: readonly DType[] = ['f64', 'f32', 'f16', 'bf16', 'i64', 'i32', 'i16', 'i8', 'u64', 'u32', 'u16', 'u8'];

function checkDtype(ctx: InferContext, i: number, allowed: readonly DType[]): DType {
  const dt = req(ctx, i).dtype;
  if (!allowed.includes(dt)) ctx.fail(`op ${ctx.op} does not accept dtype ${dt}`);
  return dt;
}

/**
 * The reduced axes, normalized and sorted. No axes (absent or empty) means all axes, unless noop_with_empty_axes:
 * then the set of reduced axes is empty and each output element reduces just its own input element.
 */
function reducedAxes(a: Attrs, rank: number, fail: (m: string) => never): number[] {
  const axes = a['axes'] as readonly number[] | undefined;
  if (axes === undefined || axes.length === 0) {
    return a['noop_with_empty_axes'] ? [] : Array.from({ length: rank }, (_, i) => i);
  }
  const out = axes.map((ax) => {
    if (ax < -rank || ax >= rank) fail(`axis ${ax} out of range for rank ${rank}`);
    return ax < 0 ? ax + rank : ax;
  });
  if (new Set(out).size !== out.length) fail(`duplicate axes [${axes.join(', ')}]`);
  return out.sort((x, y) => x - y);
}

/** Shape after reducing `axes`: kept as 1 or dropped. */
function reducedShape<D extends Dim>(shape: readonly D[], axes: readonly number[], keepdims: boolean): D[] {
  const out: D[] = [];
  shape.forEach((d, i) => {
    if (!axes.includes(i)) out.push(d);
    else if (keepdims) out.push(1 as D);
  });
  return out;
}

/**
 * Visit every element of `x` with the offset of the output element it reduces into (in the keepdims shape).
 * The output strides are zero on reduced axes, so the offset is a dot product.
 */
function forEachReduced(x: Tensor, axes: readonly number[], visit: (v: number, o: number) => void): number {
  const keep = reducedShape(x.shape, axes, true);
  const st = broadcastStrides(keep, x.shape).map((s, i) => (axes.includes(i) ? 0 : s));
  const r = x.shape.length;
  const idx = new Array<number>(r).fill(0);
  const off = [0];
  for (let k = 0; k < x.data.length; k++) {
    visit(x.data[k]!, off[0]!);
    odometerStep(idx, off, [st], x.shape, 0, r);
  }
  return numel(keep);
}

const nanMax = (a: number, b: number): number => (Number.isNaN(a) || Number.isNaN(b) ? NaN : a > b ? a : b);
const nanMin = (a: number, b: number): number => (Number.isNaN(a) || Number.isNaN(b) ? NaN : a < b ? a : b);

interface Reducer {
  /** Value of the reduction over the empty set. */
  init(dt: DType): number;
  step(acc: number, x: number): number;
  /** Final value from the accumulator and the number of reduced elements. */
  finish?(acc: number, count: number): number;
}

const REDUCERS: Record<string, Reducer & { doc: string; dtypes?: readonly DType[] }> = {
  reduce_sum: { doc: 'sum over axes', init: () => 0, step: (a, x) => a + x },
  reduce_mean: {
    doc: 'mean over axes (integers: truncated; empty set: NaN)',
    init: () => 0,
    step: (a, x) => a + x,
    finish: (a, n) => a / n,
  },
  reduce_prod: { doc: 'product over axes', init: () => 1, step: (a, x) => a * x },
  reduce_sum_square: { doc: 'sum of squares over axes', init: () => 0, step: (a, x) => a + x * x },
  reduce_l2: {
    doc: 'Euclidean norm over axes',
    init: () => 0,
    step: (a, x) => a + x * x,
    finish: (a) => Math.sqrt(a),
  },
  // The empty set reduces to the identity of max/min: -inf/+inf for floats, the dtype's extreme for integers.
  reduce_max: {
    doc: 'maximum over axes (NaN propagates; empty set: -inf, or the dtype minimum for integers)',
    init: (dt) => (isFloat(dt) ? -Infinity : dtypeInfo(dt).min),
    step: nanMax,
    dtypes: [...NUMERIC, 'bool'],
  },
  reduce_min: {
    doc: 'minimum over axes (NaN propagates; empty set: +inf, or the dtype maximum for integers)',
    init: (dt) => (isFloat(dt) ? Infinity : dtypeInfo(dt).max),
    step: nanMin,
    dtypes: [...NUMERIC, 'bool'],
  },
};

const REDUCE_ATTRS = {
  axes: { kind: 'ints', optional: true },
  keepdims: { kind: 'bool', default: true },
  noop_with_empty_axes: { kind: 'bool', default: false },
} as const;

function inferReduce(ctx: InferContext, allowed: readonly DType[]) {
  const t = req(ctx, 0);
  checkDtype(ctx, 0, allowed);
  const axes = reducedAxes(ctx.attrs, t.shape.length, ctx.fail);
  return [tensorType(t.dtype, reducedShape(t.shape, axes, ctx.attrs['keepdims'] as boolean))];
}

function outShape(x: Tensor, a: Attrs, axes: readonly number[]): number[] {
  return reducedShape(x.shape, axes, a['keepdims'] as boolean);
}

for (const [name, r] of Object.entries(REDUCERS)) {
  registerOp({
    name,
    doc: `${r.doc}; axes absent = all axes (none with noop_with_empty_axes)`,
    inputs: [{ name: 'x' }],
    outputs: [{ name: 'y' }],
    attrs: REDUCE_ATTRS,
    fusion: 'reduce',
    infer: (ctx) => inferReduce(ctx, r.dtypes ?? NUMERIC),
    reference([x], a, ctx) {
      const axes = reducedAxes(a, x!.shape.length, ctx.fail);
      const shape = outShape(x!, a, axes);
      const acc = new Float64Array(numel(shape)).fill(r.init(x!.dtype));
      forEachReduced(x!, axes, (v, o) => (acc[o] = r.step(acc[o]!, v)));
      if (r.finish) {
        const count = numel(axes.map((i) => x!.shape[i]!));
        for (let i = 0; i < acc.length; i++) acc[i] = r.finish(acc[i]!, count);
      }
      return [{ dtype: x!.dtype, shape, data: acc }];
    },
  });
}

registerOp({
  name: 'reduce_log_sum_exp',
  doc: 'log(sum(exp(x))) over axes, computed as max + log(sum(exp(x - max))); empty set: -inf',
  inputs: [{ name: 'x' }],
  outputs: [{ name: 'y' }],
  attrs: REDUCE_ATTRS,
  fusion: 'reduce',
  infer: (ctx) => inferReduce(ctx, NUMERIC),
  reference([x], a, ctx) {
    const axes = reducedAxes(a, x!.shape.length, ctx.fail);
    const shape = outShape(x!, a, axes);
    const m = new Float64Array(numel(shape)).fill(-Infinity);
    forEachReduced(x!, axes, (v, o) => (m[o] = nanMax(m[o]!, v)));
    const s = new Float64Array(m.length);
    // With an infinite max the shift would give NaN; the answer is that infinity (or NaN) itself.
    forEachReduced(x!, axes, (v, o) => (s[o]! += Number.isFinite(m[o]!) ? Math.exp(v - m[o]!) : 0));
    const y = m.map((mx, i) => (Number.isFinite(mx) ? mx + Math.log(s[i]!) : mx));
    return [{ dtype: x!.dtype, shape, data: y }];
  },
});

// ---- argmax / argmin ----

function argReduce(name: 'argmax' | 'argmin'): void {
  const better = name === 'argmax' ? (x: number, b: number) => x > b : (x: number, b: number) => x < b;
  registerOp({
    name,
    doc: `index (i64) of the ${name === 'argmax' ? 'largest' : 'smallest'} element along axis; NaN counts as the extreme (numpy); ties: first index, or the last with select_last_index`,
    inputs: [{ name: 'x' }],
    outputs: [{ name: 'y' }],
    attrs: {
      axis: { kind: 'int', default: 0 },
      keepdims: { kind: 'bool', default: true },
      select_last_index: { kind: 'bool', default: false },
    },
    fusion: 'reduce',
    infer(ctx) {
      const t = req(ctx, 0);
      checkDtype(ctx, 0, [...NUMERIC, 'bool']);
      const axis = argAxis(ctx.attrs, t.shape.length, ctx.fail);
      if (t.shape[axis] === 0) ctx.fail(`${name} over an empty axis ${axis}`);
      return [tensorType('i64', reducedShape(t.shape, [axis], ctx.attrs['keepdims'] as boolean))];
    },
    reference([x], a, ctx) {
      const axis = argAxis(a, x!.shape.length, ctx.fail);
      const { outer, len, inner } = axisSplit(x!.shape, axis);
      if (len === 0 && outer * inner > 0) ctx.fail(`${name} over an empty axis ${axis}`);
      const last = a['select_last_index'] as boolean;
      const out = scratchTensor('i64', reducedShape(x!.shape, [axis], a['keepdims'] as boolean));
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          const base = o * len * inner + i;
          let best = x!.data[base]!;
          let arg = 0;
          for (let k = 1; k < len; k++) {
            const v = x!.data[base + k * inner]!;
            const take = Number.isNaN(best)
              ? last && Number.isNaN(v)
              : Number.isNaN(v) || better(v, best) || (last && v === best);
            if (take) {
              best = v;
              arg = k;
            }
          }
          out.data[o * inner + i] = arg;
        }
      }
      return [out];
    },
  });
}

function argAxis(a: Attrs, rank: number, fail: (m: string) => never): number {
  const axis = a['axis'] as number;
  // A scalar has no axis; ONNX treats it as rank 1 of length 1 only through Reshape, so reject it here.
  if (axis < -rank || axis >= rank) fail(`axis ${axis} out of range for rank ${rank}`);
  return axis < 0 ? axis + rank : axis;
}

argReduce('argmax');
argReduce('argmin');

// ---- cumsum ----

registerOp({
  name: 'cumsum',
  doc: 'cumulative sum along axis; exclusive: each output omits its own element; reverse: sums from the end',
  inputs: [{ name: 'x' }],
  outputs: [{ name: 'y' }],
  attrs: {
    axis: { kind: 'int' },
    exclusive: { kind: 'bool', default: false },
    reverse: { kind: 'bool', default: false },
  },
  // A scan: neither a reduction (it keeps the shape) nor elementwise; it needs its own kernel.
  fusion: 'opaque',
  infer(ctx) {
    const t = req(ctx, 0);
    checkDtype(ctx, 0, NUMERIC);
    argAxis(ctx.attrs, t.shape.length, ctx.fail);
    return [tensorType(t.dtype, t.shape)];
  },
  reference([x], a, ctx) {
    const axis = argAxis(a, x!.shape.length, ctx.fail);
    const { outer, len, inner } = axisSplit(x!.shape, axis);
    const exclusive = a['exclusive'] as boolean;
    const reverse = a['reverse'] as boolean;
    const out = scratchTensor(x!.dtype, x!.shape);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        let acc = 0;
        for (let j = 0; j < len; j++) {
          const k = reverse ? len - 1 - j : j;
          const off = o * len * inner + k * inner + i;
          const v = x!.data[off]!;
          if (!exclusive) acc += v;
          out.data[off] = acc;
          if (exclusive) acc += v;
        }
      }
    }
    return [out];
  },
});
