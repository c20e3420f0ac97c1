/** Ops that only reinterpret or reorder a tensor: reshape, transpose, squeeze / unsqueeze, flatten. */
import { dimProduct, numel, type Dim, type Shape } from '../../shape.js';
import { permuteLayout, reshapeLayout, type StridedLayout } from '../../layout.js';
import { registerOp, type LayoutContext } from '../../registry.js';

import { tensorType } from '../../types.js';
import { req } from '../util.js';
import {
  symDim,
  axesOf,
  checkIndexInput,
  dimQuotient,
  failLayout,
  permute,
  sameElements,
  shapeValueOf,
  type Fail,
} from './common.js';

/** Same elements in the same order under a new shape: a re-striding of the input's layout, when one exists. */
function viewLayout(x: StridedLayout, ctx: LayoutContext): StridedLayout[] | undefined {
  const l = reshapeLayout(x, ctx.outShapes[0]!);
  return l && [l];
}

// ---- reshape -------------------------------------------------------------------------------------------------

/**
 * ONNX Reshape target: 0 copies the input dim (unless allowzero), -1 takes what is left. Works on symbolic input
 * dims and on a symbolic target (a dim expression in the target is a size, assumed to be neither 0 nor -1 at run
 * time); `unknown(k)` names a dim that cannot be expressed.
 */
function reshapeTarget(
  inShape: Shape,
  target: readonly Dim[],
  allowzero: boolean,
  fail: Fail,
  unknown: (k: number) => Dim,
): Dim[] {
  let infer = -1;
  const out: Dim[] = target.map((v, k) => {
    if (typeof v === 'string') return v;
    if (!Number.isInteger(v) || v < -1) fail(`invalid reshape dim ${v} at position ${k}`);
    if (v === -1) {
      if (infer >= 0) fail('reshape shape has more than one -1');
      infer = k;
      return -1;
    }
    if (v === 0 && !allowzero) {
      if (k >= inShape.length)
        fail(`reshape dim 0 at position ${k} copies a dim the rank-${inShape.length} input lacks`);
      return inShape[k]!;
    }
    return v;
  });
  if (infer >= 0) {
    if (allowzero && target.includes(0)) fail('reshape with allowzero cannot have both 0 and -1');
    const known = out.filter((_, k) => k !== infer);
    if (known.includes(0)) fail('reshape cannot infer -1 next to a dim of size 0');
    const q = dimQuotient(inShape, known);
    if (q === undefined && inShape.every((d) => typeof d === 'number') && known.every((d) => typeof d === 'number')) {
      fail(`cannot reshape ${numel(inShape as number[])} elements into [${target.join(', ')}]`);
    }
    out[infer] = q ?? unknown(infer);
  } else if (inShape.every((d) => typeof d === 'number') && out.every((d) => typeof d === 'number')) {
    const a = numel(inShape as number[]);
    const b = numel(out as number[]);
    if (a !== b) fail(`cannot reshape ${a} elements into [${out.join(', ')}] (${b} elements)`);
  }
  return out;
}

registerOp({
  name: 'reshape',
  view: true,
  layout: viewLayout,
  doc: 'same data, new shape; in `shape` 0 copies the input dim (unless allowzero) and one -1 is inferred',
  inputs: [{ name: 'x' }, { name: 'shape' }],
  outputs: [{ name: 'y' }],
  attrs: { allowzero: { kind: 'bool', default: false } },
  fusion: 'injective',
  infer(ctx) {
    const x = req(ctx, 0);
    const s = checkIndexInput(ctx, 1, 'shape')!;
    const target = shapeValueOf(ctx, 1, 'shape');
    if (target) {
      const dims = reshapeTarget(x.shape, target, ctx.attrs['allowzero'] as boolean, ctx.fail, (k) => symDim(ctx, k));
      return [tensorType(x.dtype, dims)];
    }
    const len = s.shape[0]!;
    if (typeof len !== 'number') return ctx.fail('reshape needs a shape input of static length');
    return [
      tensorType(
        x.dtype,
        Array.from({ length: len }, (_, k) => symDim(ctx, k)),
      ),
    ];
  },
  symbolic: sameElements,
  reference([x, s], a, ctx) {
    const dims = reshapeTarget(x!.shape, Array.from(s!.data), a['allowzero'] as boolean, ctx.fail, () =>
      ctx.fail('cannot infer -1'),
    ) as number[];
    return [{ dtype: x!.dtype, shape: dims, data: x!.data }];
  },
});

// ---- transpose -----------------------------------------------------------------------------------------------

function permOf(perm: readonly number[] | undefined, rank: number, fail: Fail): number[] {
  if (perm === undefined) return Array.from({ length: rank }, (_, i) => rank - 1 - i);
  if (perm.length !== rank) fail(`perm [${perm.join(', ')}] has ${perm.length} entries for rank ${rank}`);
  const seen = new Set<number>();
  for (const p of perm) {
    if (!Number.isInteger(p) || p < 0 || p >= rank || seen.has(p)) {
      fail(`perm [${perm.join(', ')}] is not a permutation of 0..${rank - 1}`);
    }
    seen.add(p);
  }
  return [...perm];
}

registerOp({
  name: 'transpose',
  doc: 'permute axes: output axis i is input axis perm[i]; no perm reverses the axes',
  inputs: [{ name: 'x' }],
  outputs: [{ name: 'y' }],
  attrs: { perm: { kind: 'ints', optional: true } },
  fusion: 'injective',
  infer(ctx) {
    const x = req(ctx, 0);
    const perm = permOf(ctx.attrs['perm'] as number[] | undefined, x.shape.length, ctx.fail);
    return [
      tensorType(
        x.dtype,
        perm.map((p) => x.shape[p]!),
      ),
    ];
  },
  layout(x, ctx) {
    return [permuteLayout(x, permOf(ctx.attrs['perm'] as number[] | undefined, x.shape.length, failLayout))];
  },
  reference([x], a, ctx) {
    return [permute(x!, permOf(a['perm'] as number[] | undefined, x!.shape.length, ctx.fail))];
  },
});

// ---- squeeze / unsqueeze / flatten ---------------------------------------------------------------------------

function squeezeShape(shape: Shape, axes: readonly number[] | undefined, fail: Fail): Dim[] {
  if (axes === undefined) return shape.filter((d) => d !== 1); // symbolic dims are assumed not to be 1
  const ax = axesOf(axes, shape.length, fail);
  for (const a of ax) {
    const d = shape[a]!;
    if (typeof d === 'number' && d !== 1) fail(`cannot squeeze axis ${a} of size ${d}`);
  }
  return shape.filter((_, k) => !ax.includes(k));
}

registerOp({
  name: 'squeeze',
  view: true,
  layout: viewLayout,
  doc: 'remove the size-1 axes `axes` (absent: every size-1 axis)',
  inputs: [{ name: 'x' }],
  outputs: [{ name: 'y' }],
  attrs: { axes: { kind: 'ints', optional: true } },
  fusion: 'injective',
  infer(ctx) {
    const x = req(ctx, 0);
    return [tensorType(x.dtype, squeezeShape(x.shape, ctx.attrs['axes'] as number[] | undefined, ctx.fail))];
  },
  symbolic: sameElements,
  reference([x], a, ctx) {
    const shape = squeezeShape(x!.shape, a['axes'] as number[] | undefined, ctx.fail) as number[];
    return [{ dtype: x!.dtype, shape, data: x!.data }];
  },
});

function unsqueezeShape(shape: Shape, axes: readonly number[], fail: Fail): Dim[] {
  const rank = shape.length + axes.length;
  const ax = axesOf(axes, rank, fail);
  const out: Dim[] = [];
  let j = 0;
  for (let k = 0; k < rank; k++) out.push(ax.includes(k) ? 1 : shape[j++]!);
  return out;
}

registerOp({
  name: 'unsqueeze',
  view: true,
  layout: viewLayout,
  doc: 'insert size-1 axes at `axes` (indices into the output, negatives allowed, any order)',
  inputs: [{ name: 'x' }],
  outputs: [{ name: 'y' }],
  attrs: { axes: { kind: 'ints' } },
  fusion: 'injective',
  infer(ctx) {
    const x = req(ctx, 0);
    return [tensorType(x.dtype, unsqueezeShape(x.shape, ctx.attrs['axes'] as number[], ctx.fail))];
  },
  symbolic: sameElements,
  reference([x], a, ctx) {
    const shape = unsqueezeShape(x!.shape, a['axes'] as number[], ctx.fail) as number[];
    return [{ dtype: x!.dtype, shape, data: x!.data }];
  },
});

function flattenShape(shape: Shape, axis: number, fail: Fail): Dim[] {
  const r = shape.length;
  if (!Number.isInteger(axis) || axis < -r || axis > r) fail(`flatten axis ${axis} out of range for rank ${r}`);
  const a = axis < 0 ? axis + r : axis;
  return [dimProduct(shape.slice(0, a)), dimProduct(shape.slice(a))];
}

registerOp({
  name: 'flatten',
  view: true,
  layout: viewLayout,
  doc: 'reshape to 2-D: [prod(dims before axis), prod(dims from axis)]',
  inputs: [{ name: 'x' }],
  outputs: [{ name: 'y' }],
  attrs: { axis: { kind: 'int', default: 1 } },
  fusion: 'injective',
  infer(ctx) {
    const x = req(ctx, 0);
    return [tensorType(x.dtype, flattenShape(x.shape, ctx.attrs['axis'] as number, ctx.fail))];
  },
  symbolic: sameElements,
  reference([x], a, ctx) {
    const shape = flattenShape(x!.shape, a['axis'] as number, ctx.fail) as number[];
    return [{ dtype: x!.dtype, shape, data: x!.data }];
  },
});
