/** Ops that make a tensor from attributes or a shape: range, trilu, shape / size, constant, constant_of_shape. */
import { dimAdd, dimMul, dimSub } from '../../dim-expr.js';
import { isInteger } from '../../dtype.js';
import { numel, type Dim, type Shape } from '../../shape.js';
import { registerOp, type InferContext, type RefContext } from '../../registry.js';
import { makeTensor, scratchTensor, type Tensor } from '../../tensor.js';
import { tensorType } from '../../types.js';
import { req } from '../util.js';
import { NUMERIC, symDim, checkIndexInput, scalarOf, shapeValueOf, type Fail } from './common.js';

// ---- generators: range, trilu, constants ---------------------------------------------------------------------

function rangeLength(start: number, limit: number, delta: number, fail: Fail): number {
  if (delta === 0 || !Number.isFinite(start) || !Number.isFinite(limit) || !Number.isFinite(delta)) {
    fail(`range(${start}, ${limit}, ${delta}) is not finite`);
  }
  return Math.max(Math.ceil((limit - start) / delta), 0);
}

/**
 * Length of an integer range with symbolic bounds: limit - start for delta 1 (start - limit for -1), assuming the
 * range is not empty-clamped (limit >= start), as for positions past..past+seq.
 */
function symbolicRangeLength(ctx: InferContext): Dim | undefined {
  if (!isInteger(ctx.inputs[0]!.dtype)) return undefined;
  const [s, l, d] = [0, 1, 2].map((i) => ctx.symbolicValue(i)?.[0]);
  if (typeof s === 'number' && typeof l === 'number' && typeof d === 'number') return rangeLength(s, l, d, ctx.fail);
  if (s === undefined || l === undefined || (d !== 1 && d !== -1)) return undefined;
  const n = d === 1 ? dimSub(l, s) : dimSub(s, l);
  return typeof n === 'number' ? Math.max(n, 0) : n;
}

/** s + i*d as a dim. */
function dimAddMul(s: Dim, i: number, d: Dim): Dim | undefined {
  const step = dimMul(i, d);
  return step === undefined ? undefined : dimAdd(s, step);
}

registerOp({
  name: 'range',
  doc: 'y[i] = start + i*delta for i < max(ceil((limit-start)/delta), 0); scalar inputs of one dtype',
  inputs: [{ name: 'start' }, { name: 'limit' }, { name: 'delta' }],
  outputs: [{ name: 'y' }],
  attrs: {},
  fusion: 'injective',
  infer(ctx) {
    const dt = req(ctx, 0).dtype;
    if (!NUMERIC.includes(dt)) ctx.fail(`range does not accept dtype ${dt}`);
    for (const i of [0, 1, 2]) {
      const t = req(ctx, i);
      if (t.dtype !== dt) ctx.fail(`input ${i} has dtype ${t.dtype}, expected ${dt}`);
      if (t.shape.some((d) => d !== 1)) ctx.fail(`input ${i} must be a scalar`);
    }
    const c = [0, 1, 2].map((i) => ctx.constValue(i));
    if (c.every((t) => t !== undefined)) {
      const [s, l, d] = c.map((t, i) => scalarOf(t!, `input ${i}`, ctx.fail));
      return [tensorType(dt, [rangeLength(s!, l!, d!, ctx.fail)])];
    }
    return [tensorType(dt, [symbolicRangeLength(ctx) ?? symDim(ctx, 0)])];
  },
  symbolic(ctx, [t]) {
    // y = start + i*delta, known when the length is a number (a decode step's positions: [past, past+1 …]).
    const [s, d] = [ctx.symbolicValue(0)?.[0], ctx.symbolicValue(2)?.[0]];
    const n = t!.shape[0];
    if (s === undefined || d === undefined || typeof n !== 'number') return undefined;
    const ys = Array.from({ length: n }, (_, i) => dimAddMul(s, i, d));
    return ys.every((y) => y !== undefined) ? [ys as Dim[]] : undefined;
  },
  reference(inputs, _a, ctx) {
    const [s, l, d] = inputs.map((t, i) => scalarOf(t!, `input ${i}`, ctx.fail));
    const n = rangeLength(s!, l!, d!, ctx.fail);
    return [
      scratchTensor(
        inputs[0]!.dtype,
        [n],
        Array.from({ length: n }, (_, i) => s! + i * d!),
      ),
    ];
  },
});

registerOp({
  name: 'trilu',
  doc: 'keep the upper (j - i >= k) or lower (j - i <= k) triangle of the last two axes, zero the rest',
  inputs: [{ name: 'x' }, { name: 'k', optional: true }],
  outputs: [{ name: 'y' }],
  attrs: { upper: { kind: 'bool', default: true } },
  fusion: 'injective',
  infer(ctx) {
    const x = req(ctx, 0);
    if (x.shape.length < 2) ctx.fail(`trilu needs rank >= 2, got ${x.shape.length}`);
    const k = checkIndexInput(ctx, 1, 'k', false);
    if (k && k.shape.some((d) => d !== 1)) ctx.fail('k must be a scalar');
    return [tensorType(x.dtype, x.shape)];
  },
  reference([x, kt], a, ctx) {
    const t = x!;
    const k = kt ? scalarOf(kt, 'k', ctx.fail) : 0;
    const upper = a['upper'] as boolean;
    const r = t.shape.length;
    const rows = t.shape[r - 2]!;
    const cols = t.shape[r - 1]!;
    const out = scratchTensor(t.dtype, t.shape, t.data);
    for (let p = 0; p < out.data.length; p++) {
      const j = p % cols;
      const i = Math.floor(p / cols) % rows;
      if (upper ? j - i < k : j - i > k) out.data[p] = 0;
    }
    return [out];
  },
});

function shapeRange(rank: number, start: number, end: number | undefined): [number, number] {
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + rank : v, 0), rank);
  return [clamp(start), clamp(end ?? rank)];
}

function shapeDims(ctx: InferContext): Shape {
  const x = req(ctx, 0);
  const [s, e] = shapeRange(x.shape.length, ctx.attrs['start'] as number, ctx.attrs['end'] as number | undefined);
  return x.shape.slice(s, Math.max(s, e));
}

registerOp({
  name: 'shape',
  doc: 'the input shape (dims start:end, clamped) as an i64 vector',
  inputs: [{ name: 'x' }],
  outputs: [{ name: 'y' }],
  attrs: { start: { kind: 'int', default: 0 }, end: { kind: 'int', optional: true } },
  fusion: 'opaque',
  infer(ctx) {
    return [tensorType('i64', [shapeDims(ctx).length])];
  },
  symbolic: (ctx) => [shapeDims(ctx)],
  foldFromTypes(ctx) {
    const dims = shapeDims(ctx);
    if (!dims.every((d) => typeof d === 'number')) return undefined;
    return [scratchTensor('i64', [dims.length], dims as number[])];
  },
  reference([x], a) {
    const [s, e] = shapeRange(x!.shape.length, a['start'] as number, a['end'] as number | undefined);
    const dims = x!.shape.slice(s, Math.max(s, e));
    return [scratchTensor('i64', [dims.length], dims)];
  },
});

registerOp({
  name: 'size',
  doc: 'number of elements of the input, as an i64 scalar',
  inputs: [{ name: 'x' }],
  outputs: [{ name: 'y' }],
  attrs: {},
  fusion: 'opaque',
  infer(ctx) {
    req(ctx, 0);
    return [tensorType('i64', [])];
  },
  symbolic(ctx) {
    const n = req(ctx, 0).shape.reduce<Dim | undefined>(
      (acc, d) => (acc === undefined ? undefined : dimMul(acc, d)),
      1,
    );
    return [n === undefined ? undefined : [n]];
  },
  foldFromTypes(ctx) {
    const s = req(ctx, 0).shape;
    if (!s.every((d) => typeof d === 'number')) return undefined;
    return [scratchTensor('i64', [], [numel(s as number[])])];
  },
  reference([x]) {
    return [scratchTensor('i64', [], [numel(x!.shape)])];
  },
});

registerOp({
  name: 'constant',
  doc: 'the tensor `value`',
  inputs: [],
  outputs: [{ name: 'y' }],
  attrs: { value: { kind: 'tensor' } },
  fusion: 'opaque',
  infer(ctx) {
    const v = ctx.attrs['value'] as Tensor;
    return [tensorType(v.dtype, v.shape)];
  },
  symbolic: (ctx) => [Array.from((ctx.attrs['value'] as Tensor).data)],
  reference(_inputs, a) {
    const v = a['value'] as Tensor;
    return [scratchTensor(v.dtype, v.shape, v.data)];
  },
});

const F32_ZERO: Tensor = makeTensor('f32', [1], [0]);

function fillValue(a: Readonly<Record<string, unknown>>, fail: Fail): Tensor {
  const v = (a['value'] as Tensor | undefined) ?? F32_ZERO;
  if (v.data.length !== 1) fail(`value must hold one element, got shape [${v.shape}]`);
  return v;
}

registerOp({
  name: 'constant_of_shape',
  doc: 'a tensor of shape `shape` filled with the one element of `value` (default f32 0)',
  inputs: [{ name: 'shape' }],
  outputs: [{ name: 'y' }],
  attrs: { value: { kind: 'tensor', optional: true } },
  fusion: 'injective',
  infer(ctx) {
    const v = fillValue(ctx.attrs, ctx.fail);
    const s = checkIndexInput(ctx, 0, 'shape')!;
    const dims = shapeValueOf(ctx, 0, 'shape');
    if (dims) {
      if (dims.some((d) => typeof d === 'number' && d < 0)) ctx.fail(`shape [${dims.join(', ')}] has a negative dim`);
      return [tensorType(v.dtype, dims)];
    }
    const len = s.shape[0]!;
    if (typeof len !== 'number') return ctx.fail('constant_of_shape needs a shape input of static length');
    return [
      tensorType(
        v.dtype,
        Array.from({ length: len }, (_, k) => symDim(ctx, k)),
      ),
    ];
  },
  reference([s], a, ctx: RefContext) {
    const v = fillValue(a, ctx.fail);
    const dims = Array.from(s!.data);
    if (dims.some((d) => d < 0 || !Number.isInteger(d))) ctx.fail(`invalid shape [${dims.join(', ')}]`);
    const out = scratchTensor(v.dtype, dims);
    out.data.fill(v.data[0]!);
    return [out];
  },
  symbolic(ctx, [t]) {
    const v = fillValue(ctx.attrs, ctx.fail);
    return [new Array<Dim>(numel(t!.shape as number[])).fill(v.data[0]!)];
  },
});
