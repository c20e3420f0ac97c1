/**
 * Shape and data-movement ops: reshape, transpose, slice, concat, split, squeeze / unsqueeze, expand, tile, flatten,
 * gathers, range, trilu, shape / size and constants. Shape-like parameters that may be computed at run time are i64
 * inputs; inference reads them when they are constants and otherwise names the unknown dims after the node.
 */
import type { DType } from '../dtype.js';
import { dimFactors } from '../dim-expr.js';
import { broadcastShapes, dimProduct, dimSum, numel, stridesOf, type Dim, type Shape } from '../shape.js';
import { registerOp, type InferContext, type RefContext } from '../registry.js';
import { makeTensor, scratchTensor, type Tensor } from '../tensor.js';
import { tensorType, type TensorType } from '../types.js';
import { axisSplit, broadcastMap, odometerStep, req } from './util.js';

const INDEX: readonly DType[] = ['i64', 'i32'];
const NUMERIC: readonly DType[] = ['f64', 'f32', 'f16', 'bf16', 'i64', 'i32', 'i16', 'i8', 'u64', 'u32', 'u16', 'u8'];

type Fail = (message: string) => never;

// ---- helpers -------------------------------------------------------------------------------------------------

/** Name of an unknown dim `k` of a node's output (deterministic, so re-inference reproduces it). */
const symDim = (ctx: InferContext, k: number | string): string => `${ctx.node}_d${k}`;

/** Axis in [-rank, rank) → [0, rank), failing located. */
function axisOf(axis: number, rank: number, fail: Fail, what = 'axis'): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) fail(`${what} ${axis} out of range for rank ${rank}`);
  return axis < 0 ? axis + rank : axis;
}

/** Sorted, normalized, duplicate-free axes. */
function axesOf(axes: readonly number[], rank: number, fail: Fail): number[] {
  const out = axes.map((a) => axisOf(a, rank, fail));
  if (new Set(out).size !== out.length) fail(`duplicate axes [${axes.join(', ')}]`);
  return out.sort((a, b) => a - b);
}

function checkIndexInput(ctx: InferContext, i: number, what: string, rank1 = true): TensorType | undefined {
  const t = ctx.inputs[i];
  if (!t) return undefined;
  if (!INDEX.includes(t.dtype)) ctx.fail(`${what} must be i64 or i32, got ${t.dtype}`);
  if (rank1 && t.shape.length !== 1) ctx.fail(`${what} must be 1-D, got rank ${t.shape.length}`);
  return t;
}

/** Integer values of a constant tensor input, or undefined when it is not constant. */
function constIntsOf(ctx: InferContext, i: number, what: string): number[] | undefined {
  const c = ctx.inputs[i] ? ctx.constValue(i) : undefined;
  if (!c) return undefined;
  const v = Array.from(c.data);
  if (!v.every(Number.isInteger)) ctx.fail(`${what} must hold integers`);
  return v;
}

function scalarOf(t: Tensor, what: string, fail: Fail): number {
  if (t.data.length !== 1) fail(`${what} must hold one element, got shape [${t.shape}]`);
  return t.data[0]!;
}

// Symbolic products: dims built by dimProduct ('64*batch*seq') are factored (dimFactors) so that reshape's -1 and
// equal splits can cancel symbols instead of inventing new ones.

/** prod(num) / prod(den) when it can be written without a new symbol, else undefined. */
function dimQuotient(num: readonly Dim[], den: readonly Dim[]): Dim | undefined {
  const a = dimFactors(num);
  const b = dimFactors(den);
  if (b.n === 0) return undefined;
  const rest = [...a.syms];
  for (const s of b.syms) {
    const j = rest.indexOf(s);
    if (j < 0) return undefined;
    rest.splice(j, 1);
  }
  if (a.n % b.n !== 0) return undefined;
  return dimProduct([a.n / b.n, ...rest]);
}

/** Copy `x` with its axes permuted: output axis i is input axis perm[i]. */
function permute(x: Tensor, perm: readonly number[]): Tensor {
  const outShape = perm.map((p) => x.shape[p]!);
  const st = stridesOf(x.shape);
  const srcStrides = perm.map((p) => st[p]!);
  return gatherStrided(x, outShape, srcStrides, 0);
}

/** out[idx] = x.data[base + Σ idx[i] * strides[i]] over the output shape (odometer walk). */
function gatherStrided(x: Tensor, outShape: readonly number[], strides: readonly number[], base: number): Tensor {
  const out = scratchTensor(x.dtype, outShape);
  const n = out.data.length;
  const r = outShape.length;
  const idx = new Array<number>(r).fill(0);
  const off = [base];
  for (let k = 0; k < n; k++) {
    out.data[k] = x.data[off[0]!]!;
    odometerStep(idx, off, [strides], outShape, 0, r);
  }
  return out;
}

// ---- reshape -------------------------------------------------------------------------------------------------

/**
 * ONNX Reshape target: 0 copies the input dim (unless allowzero), -1 takes what is left. Works on symbolic input
 * dims; `unknown(k)` names a dim that cannot be expressed.
 */
function reshapeTarget(
  inShape: Shape,
  target: readonly number[],
  allowzero: boolean,
  fail: Fail,
  unknown: (k: number) => Dim,
): Dim[] {
  let infer = -1;
  const out: Dim[] = target.map((v, k) => {
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
  doc: 'same data, new shape; in `shape` 0 copies the input dim (unless allowzero) and one -1 is inferred',
  inputs: [{ name: 'x' }, { name: 'shape' }],
  outputs: [{ name: 'y' }],
  attrs: { allowzero: { kind: 'bool', default: false } },
  fusion: 'injective',
  infer(ctx) {
    const x = req(ctx, 0);
    const s = checkIndexInput(ctx, 1, 'shape')!;
    const target = constIntsOf(ctx, 1, 'shape');
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
  reference([x], a, ctx) {
    return [permute(x!, permOf(a['perm'] as number[] | undefined, x!.shape.length, ctx.fail))];
  },
});

// ---- slice ---------------------------------------------------------------------------------------------------

/**
 * Start and length of an ONNX (opset 13) slice of a dim of size `d`; handles negatives, clamping, sentinels.
 * Exported so lowerings normalize exactly as the reference does.
 */
export function sliceRange(start: number, end: number, step: number, d: number): { start: number; len: number } {
  if (start < 0) start += d;
  if (end < 0) end += d;
  if (step > 0) {
    start = Math.min(Math.max(start, 0), d);
    end = Math.min(Math.max(end, 0), d);
  } else {
    start = Math.min(Math.max(start, 0), d - 1);
    end = Math.min(Math.max(end, -1), d - 1);
  }
  return { start, len: Math.max(0, Math.ceil((end - start) / step)) };
}

interface SliceSpec {
  axes: number[];
  starts: number[];
  ends: number[];
  steps: number[];
}

function sliceSpec(
  rank: number,
  starts: readonly number[],
  ends: readonly number[],
  axes: readonly number[] | undefined,
  steps: readonly number[] | undefined,
  fail: Fail,
): SliceSpec {
  if (ends.length !== starts.length) fail(`slice has ${starts.length} starts but ${ends.length} ends`);
  const ax = axes ?? starts.map((_, i) => i);
  if (ax.length !== starts.length) fail(`slice has ${starts.length} starts but ${ax.length} axes`);
  const st = steps ?? starts.map(() => 1);
  if (st.length !== starts.length) fail(`slice has ${starts.length} starts but ${st.length} steps`);
  if (st.some((s) => s === 0)) fail('slice step cannot be 0');
  const norm = ax.map((a) => axisOf(a, rank, fail));
  if (new Set(norm).size !== norm.length) fail(`duplicate slice axes [${ax.join(', ')}]`);
  return { axes: norm, starts: [...starts], ends: [...ends], steps: [...st] };
}

// float64 receives INT64_MAX / INT64_MIN as ±2^63; anything this large is a "to the end" sentinel.
const HUGE = 2 ** 62;

/** Output dim of a slice of a symbolic dim: unchanged when the slice provably takes the whole axis. */
function symbolicSliceDim(d: string, start: number, end: number, step: number): Dim | undefined {
  if (step === 1 && (start === 0 || start <= -HUGE) && end >= HUGE) return d;
  if (step === -1 && (start === -1 || start >= HUGE) && end <= -HUGE) return d;
  return undefined;
}

registerOp({
  name: 'slice',
  doc: 'ONNX Slice: per axis take start:end:step (negative indices count from the end; out-of-range clamps)',
  inputs: [
    { name: 'x' },
    { name: 'starts' },
    { name: 'ends' },
    { name: 'axes', optional: true },
    { name: 'steps', optional: true },
  ],
  outputs: [{ name: 'y' }],
  attrs: {},
  fusion: 'injective',
  infer(ctx) {
    const x = req(ctx, 0);
    const names = ['x', 'starts', 'ends', 'axes', 'steps'];
    for (const i of [1, 2, 3, 4]) checkIndexInput(ctx, i, names[i]!);
    const rank = x.shape.length;
    const starts = constIntsOf(ctx, 1, 'starts');
    const ends = constIntsOf(ctx, 2, 'ends');
    const axes = ctx.inputs[3] ? constIntsOf(ctx, 3, 'axes') : undefined;
    const steps = ctx.inputs[4] ? constIntsOf(ctx, 4, 'steps') : undefined;
    const out: Dim[] = [...x.shape];
    const axesKnown = !ctx.inputs[3] || axes !== undefined;
    if (!axesKnown)
      return [
        tensorType(
          x.dtype,
          out.map((_, k) => symDim(ctx, k)),
        ),
      ];
    if (!starts || !ends || (ctx.inputs[4] && !steps)) {
      // Only the sliced axes are unknown.
      const n = axes?.length ?? ctx.inputs[1]!.shape[0]!;
      if (typeof n !== 'number')
        return [
          tensorType(
            x.dtype,
            out.map((_, k) => symDim(ctx, k)),
          ),
        ];
      const ax = axes ?? Array.from({ length: n }, (_, i) => i);
      for (const a of axes ? axesOf(ax, rank, ctx.fail) : ax) {
        if (a >= rank) ctx.fail(`slice axis ${a} out of range for rank ${rank}`);
        out[a] = symDim(ctx, a);
      }
      return [tensorType(x.dtype, out)];
    }
    const spec = sliceSpec(rank, starts, ends, axes, steps, ctx.fail);
    spec.axes.forEach((a, i) => {
      const d = x.shape[a]!;
      out[a] =
        typeof d === 'number'
          ? sliceRange(spec.starts[i]!, spec.ends[i]!, spec.steps[i]!, d).len
          : (symbolicSliceDim(d, spec.starts[i]!, spec.ends[i]!, spec.steps[i]!) ?? symDim(ctx, a));
    });
    return [tensorType(x.dtype, out)];
  },
  reference([x, starts, ends, axes, steps], _a, ctx) {
    const t = x!;
    const spec = sliceSpec(
      t.shape.length,
      Array.from(starts!.data),
      Array.from(ends!.data),
      axes && Array.from(axes.data),
      steps && Array.from(steps.data),
      ctx.fail,
    );
    const st = stridesOf(t.shape);
    const outShape = [...t.shape];
    const strides = [...st];
    let base = 0;
    spec.axes.forEach((a, i) => {
      const r = sliceRange(spec.starts[i]!, spec.ends[i]!, spec.steps[i]!, t.shape[a]!);
      outShape[a] = r.len;
      if (r.len > 0) base += r.start * st[a]!;
      strides[a] = spec.steps[i]! * st[a]!;
    });
    return [gatherStrided(t, outShape, strides, base)];
  },
});

// ---- concat / split ------------------------------------------------------------------------------------------

registerOp({
  name: 'concat',
  doc: 'join inputs along `axis`; all other dims must agree',
  inputs: [{ name: 'x', variadic: true }],
  outputs: [{ name: 'y' }],
  attrs: { axis: { kind: 'int' } },
  fusion: 'injective',
  infer(ctx) {
    const first = req(ctx, 0);
    const rank = first.shape.length;
    if (rank === 0) ctx.fail('concat of scalars: inputs need rank >= 1');
    const axis = axisOf(ctx.attrs['axis'] as number, rank, ctx.fail);
    const out: Dim[] = [...first.shape];
    const along: Dim[] = [];
    ctx.inputs.forEach((t, i) => {
      if (!t) return ctx.fail(`input ${i} is required`);
      if (t.dtype !== first.dtype) ctx.fail(`input ${i} has dtype ${t.dtype}, expected ${first.dtype}`);
      if (t.shape.length !== rank) ctx.fail(`input ${i} has rank ${t.shape.length}, expected ${rank}`);
      t.shape.forEach((d, k) => {
        if (k === axis) return;
        const o = out[k]!;
        if (typeof o === 'number' && typeof d === 'number' && o !== d) {
          ctx.fail(`input ${i} has dim ${d} at axis ${k}, expected ${o}`);
        }
        if (typeof o === 'string' && typeof d === 'number') out[k] = d; // the number is the more precise answer
      });
      along.push(t.shape[axis]!);
    });
    out[axis] = dimSum(along);
    return [tensorType(first.dtype, out)];
  },
  reference(xs, a, ctx) {
    const ts = xs as Tensor[];
    const rank = ts[0]!.shape.length;
    const axis = axisOf(a['axis'] as number, rank, ctx.fail);
    const outShape = [...ts[0]!.shape];
    outShape[axis] = 0;
    for (const [i, t] of ts.entries()) {
      if (t.shape.length !== rank || t.shape.some((d, k) => k !== axis && d !== ts[0]!.shape[k])) {
        ctx.fail(`input ${i} has shape [${t.shape}], incompatible with [${ts[0]!.shape}] along axis ${axis}`);
      }
      outShape[axis] += t.shape[axis]!;
    }
    const out = scratchTensor(ts[0]!.dtype, outShape);
    const { outer, inner } = axisSplit(outShape, axis);
    const rowOut = outShape[axis]! * inner;
    let col = 0;
    for (const t of ts) {
      const row = t.shape[axis]! * inner;
      for (let o = 0; o < outer; o++) out.data.set(t.data.subarray(o * row, (o + 1) * row), o * rowOut + col);
      col += row;
    }
    return [out];
  },
});

function splitSizes(d: Dim, n: number, sizes: readonly number[] | undefined, fail: Fail): Dim[] {
  if (sizes) {
    if (sizes.length !== n) fail(`split has ${sizes.length} sizes for ${n} outputs`);
    if (sizes.some((s) => !Number.isInteger(s) || s < 0)) fail(`split sizes [${sizes.join(', ')}] must be >= 0`);
    const total = sizes.reduce((p, s) => p + s, 0);
    if (typeof d === 'number' && total !== d) fail(`split sizes [${sizes.join(', ')}] sum to ${total}, dim is ${d}`);
    return [...sizes];
  }
  if (n < 1) fail('split needs at least one output');
  if (typeof d === 'number') {
    if (d % n !== 0) fail(`dim ${d} does not split into ${n} equal parts`);
    return new Array<Dim>(n).fill(d / n);
  }
  const q = dimQuotient([d], [n]) ?? `${/^[A-Za-z_]\w*$/.test(d) ? d : `(${d})`}/${n}`;
  return new Array<Dim>(n).fill(q);
}

registerOp({
  name: 'split',
  doc: 'split along `axis` into parts of sizes `split` (absent: numOutputs equal parts)',
  inputs: [{ name: 'x' }],
  outputs: [{ name: 'y', variadic: true }],
  attrs: { axis: { kind: 'int', default: 0 }, split: { kind: 'ints', optional: true } },
  fusion: 'injective',
  infer(ctx) {
    const x = req(ctx, 0);
    const axis = axisOf(ctx.attrs['axis'] as number, x.shape.length, ctx.fail);
    const sizes = splitSizes(x.shape[axis]!, ctx.numOutputs, ctx.attrs['split'] as number[] | undefined, ctx.fail);
    return sizes.map((s) => {
      const shape = [...x.shape];
      shape[axis] = s;
      return tensorType(x.dtype, shape);
    });
  },
  reference([x], a, ctx) {
    const t = x!;
    const axis = axisOf(a['axis'] as number, t.shape.length, ctx.fail);
    const sizes = splitSizes(t.shape[axis]!, ctx.numOutputs, a['split'] as number[] | undefined, ctx.fail) as number[];
    const { outer, len, inner } = axisSplit(t.shape, axis);
    let at = 0;
    return sizes.map((s) => {
      const shape = [...t.shape];
      shape[axis] = s;
      const out = scratchTensor(t.dtype, shape);
      for (let o = 0; o < outer; o++) {
        const src = (o * len + at) * inner;
        out.data.set(t.data.subarray(src, src + s * inner), o * s * inner);
      }
      at += s;
      return out;
    });
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
  doc: 'remove the size-1 axes `axes` (absent: every size-1 axis)',
  inputs: [{ name: 'x' }],
  outputs: [{ name: 'y' }],
  attrs: { axes: { kind: 'ints', optional: true } },
  fusion: 'injective',
  infer(ctx) {
    const x = req(ctx, 0);
    return [tensorType(x.dtype, squeezeShape(x.shape, ctx.attrs['axes'] as number[] | undefined, ctx.fail))];
  },
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
  doc: 'insert size-1 axes at `axes` (indices into the output, negatives allowed, any order)',
  inputs: [{ name: 'x' }],
  outputs: [{ name: 'y' }],
  attrs: { axes: { kind: 'ints' } },
  fusion: 'injective',
  infer(ctx) {
    const x = req(ctx, 0);
    return [tensorType(x.dtype, unsqueezeShape(x.shape, ctx.attrs['axes'] as number[], ctx.fail))];
  },
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
  doc: 'reshape to 2-D: [prod(dims before axis), prod(dims from axis)]',
  inputs: [{ name: 'x' }],
  outputs: [{ name: 'y' }],
  attrs: { axis: { kind: 'int', default: 1 } },
  fusion: 'injective',
  infer(ctx) {
    const x = req(ctx, 0);
    return [tensorType(x.dtype, flattenShape(x.shape, ctx.attrs['axis'] as number, ctx.fail))];
  },
  reference([x], a, ctx) {
    const shape = flattenShape(x!.shape, a['axis'] as number, ctx.fail) as number[];
    return [{ dtype: x!.dtype, shape, data: x!.data }];
  },
});

// ---- expand / tile -------------------------------------------------------------------------------------------

registerOp({
  name: 'expand',
  doc: 'broadcast x against `shape` (bidirectionally: a 1 in `shape` keeps the input dim)',
  inputs: [{ name: 'x' }, { name: 'shape' }],
  outputs: [{ name: 'y' }],
  attrs: {},
  fusion: 'broadcast',
  infer(ctx) {
    const x = req(ctx, 0);
    const s = checkIndexInput(ctx, 1, 'shape')!;
    const target = constIntsOf(ctx, 1, 'shape');
    if (target) {
      if (target.some((v) => v < 0)) ctx.fail(`expand shape [${target.join(', ')}] has a negative dim`);
      try {
        return [tensorType(x.dtype, broadcastShapes([x.shape, target]))];
      } catch (e) {
        return ctx.fail((e as Error).message);
      }
    }
    const len = s.shape[0]!;
    if (typeof len !== 'number') return ctx.fail('expand needs a shape input of static length');
    const rank = Math.max(len, x.shape.length);
    // Where x's dim is not 1 the target must be 1 or equal to it, so the output dim is x's.
    const out = Array.from({ length: rank }, (_, k): Dim => {
      const d = x.shape[k - (rank - x.shape.length)];
      return d === undefined || d === 1 ? symDim(ctx, k) : d;
    });
    return [tensorType(x.dtype, out)];
  },
  reference([x, s], _a, ctx) {
    let outShape: number[];
    try {
      outShape = broadcastShapes([x!.shape, Array.from(s!.data)]) as number[];
    } catch (e) {
      return ctx.fail((e as Error).message);
    }
    return [broadcastMap(x!.dtype, [x!], (v) => v, outShape)];
  },
});

registerOp({
  name: 'tile',
  doc: 'repeat x `repeats[i]` times along each axis i',
  inputs: [{ name: 'x' }, { name: 'repeats' }],
  outputs: [{ name: 'y' }],
  attrs: {},
  fusion: 'injective',
  infer(ctx) {
    const x = req(ctx, 0);
    const r = checkIndexInput(ctx, 1, 'repeats')!;
    const reps = constIntsOf(ctx, 1, 'repeats');
    if (r.shape[0] !== x.shape.length) ctx.fail(`repeats has length ${r.shape[0]}, input has rank ${x.shape.length}`);
    if (!reps)
      return [
        tensorType(
          x.dtype,
          x.shape.map((_, k) => symDim(ctx, k)),
        ),
      ];
    if (reps.some((v) => v < 0)) ctx.fail(`repeats [${reps.join(', ')}] has a negative entry`);
    return [
      tensorType(
        x.dtype,
        x.shape.map((d, k) => dimProduct([d, reps[k]!])),
      ),
    ];
  },
  reference([x, r], _a, ctx) {
    const t = x!;
    const reps = Array.from(r!.data);
    if (reps.length !== t.shape.length) ctx.fail(`repeats has length ${reps.length}, input has rank ${t.shape.length}`);
    const outShape = t.shape.map((d, k) => d * reps[k]!);
    const out = scratchTensor(t.dtype, outShape);
    const st = stridesOf(t.shape);
    const idx = new Array<number>(outShape.length).fill(0);
    for (let k = 0; k < out.data.length; k++) {
      let off = 0;
      for (let i = 0; i < idx.length; i++) off += (idx[i]! % t.shape[i]!) * st[i]!;
      out.data[k] = t.data[off]!;
      odometerStep(idx, [], [], outShape, 0, idx.length);
    }
    return [out];
  },
});

// ---- gathers -------------------------------------------------------------------------------------------------

/** Wrap a negative index; out of range is a located run-time error, never garbage. */
function wrapIndex(i: number, n: number, fail: Fail, what: string): number {
  const j = i < 0 ? i + n : i;
  if (!(j >= 0 && j < n)) fail(`${what} index ${i} out of range [${-n}, ${n - 1}]`);
  return j;
}

function checkIndices(ctx: InferContext, i: number): TensorType {
  const t = req(ctx, i);
  if (!INDEX.includes(t.dtype)) ctx.fail(`indices must be i64 or i32, got ${t.dtype}`);
  return t;
}

registerOp({
  name: 'gather',
  doc: 'take entries of data along `axis` at `indices` (negative indices count from the end)',
  inputs: [{ name: 'data' }, { name: 'indices' }],
  outputs: [{ name: 'y' }],
  attrs: { axis: { kind: 'int', default: 0 } },
  fusion: 'injective',
  infer(ctx) {
    const data = req(ctx, 0);
    const idx = checkIndices(ctx, 1);
    if (data.shape.length === 0) ctx.fail('gather needs data of rank >= 1');
    const axis = axisOf(ctx.attrs['axis'] as number, data.shape.length, ctx.fail);
    return [tensorType(data.dtype, [...data.shape.slice(0, axis), ...idx.shape, ...data.shape.slice(axis + 1)])];
  },
  reference([data, indices], a, ctx) {
    const d = data!;
    const ix = indices!;
    const axis = axisOf(a['axis'] as number, d.shape.length, ctx.fail);
    const { outer, len, inner } = axisSplit(d.shape, axis);
    const out = scratchTensor(d.dtype, [...d.shape.slice(0, axis), ...ix.shape, ...d.shape.slice(axis + 1)]);
    const n = ix.data.length;
    const rows = Array.from(ix.data, (i) => wrapIndex(i, len, ctx.fail, 'gather'));
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < n; j++) {
        const src = (o * len + rows[j]!) * inner;
        out.data.set(d.data.subarray(src, src + inner), (o * n + j) * inner);
      }
    }
    return [out];
  },
});

registerOp({
  name: 'gather_elements',
  doc: 'y[i] = data[i with axis coordinate replaced by indices[i]]; y has the shape of indices',
  inputs: [{ name: 'data' }, { name: 'indices' }],
  outputs: [{ name: 'y' }],
  attrs: { axis: { kind: 'int', default: 0 } },
  fusion: 'injective',
  infer(ctx) {
    const data = req(ctx, 0);
    const idx = checkIndices(ctx, 1);
    const r = data.shape.length;
    if (r === 0) ctx.fail('gather_elements needs data of rank >= 1');
    if (idx.shape.length !== r) ctx.fail(`indices have rank ${idx.shape.length}, data has rank ${r}`);
    const axis = axisOf(ctx.attrs['axis'] as number, r, ctx.fail);
    idx.shape.forEach((d, k) => {
      const e = data.shape[k]!;
      if (k !== axis && typeof d === 'number' && typeof e === 'number' && d > e) {
        ctx.fail(`indices dim ${k} is ${d}, larger than data's ${e}`);
      }
    });
    return [tensorType(data.dtype, idx.shape)];
  },
  reference([data, indices], a, ctx) {
    const d = data!;
    const ix = indices!;
    const r = d.shape.length;
    const axis = axisOf(a['axis'] as number, r, ctx.fail);
    if (ix.shape.length !== r || ix.shape.some((n, k) => k !== axis && n > d.shape[k]!)) {
      ctx.fail(`indices shape [${ix.shape}] does not fit data shape [${d.shape}]`);
    }
    const st = stridesOf(d.shape);
    const out = scratchTensor(d.dtype, ix.shape);
    const idx = new Array<number>(r).fill(0);
    for (let k = 0; k < ix.data.length; k++) {
      let off = 0;
      for (let i = 0; i < r; i++) {
        const c = i === axis ? wrapIndex(ix.data[k]!, d.shape[i]!, ctx.fail, 'gather_elements') : idx[i]!;
        off += c * st[i]!;
      }
      out.data[k] = d.data[off]!;
      odometerStep(idx, [], [], ix.shape, 0, r);
    }
    return [out];
  },
});

registerOp({
  name: 'gather_nd',
  doc: 'index data by tuples in the last axis of indices; the first batch_dims axes of both are batch axes',
  inputs: [{ name: 'data' }, { name: 'indices' }],
  outputs: [{ name: 'y' }],
  attrs: { batch_dims: { kind: 'int', default: 0 } },
  fusion: 'injective',
  infer(ctx) {
    const data = req(ctx, 0);
    const idx = checkIndices(ctx, 1);
    const b = ctx.attrs['batch_dims'] as number;
    const r = data.shape.length;
    const q = idx.shape.length;
    if (r < 1 || q < 1) ctx.fail('gather_nd needs data and indices of rank >= 1');
    if (b < 0 || b >= Math.min(r, q)) ctx.fail(`batch_dims ${b} must be in [0, ${Math.min(r, q) - 1}]`);
    const m = idx.shape[q - 1]!;
    if (typeof m !== 'number') return ctx.fail('gather_nd needs a static last dim of indices');
    if (m < 1 || m > r - b) ctx.fail(`index tuples of length ${m} do not fit data rank ${r} with batch_dims ${b}`);
    for (let k = 0; k < b; k++) {
      const x = data.shape[k]!;
      const y = idx.shape[k]!;
      if (typeof x === 'number' && typeof y === 'number' && x !== y) {
        ctx.fail(`batch dim ${k}: data has ${x}, indices have ${y}`);
      }
    }
    return [tensorType(data.dtype, [...idx.shape.slice(0, q - 1), ...data.shape.slice(b + m)])];
  },
  reference([data, indices], a, ctx) {
    const d = data!;
    const ix = indices!;
    const b = a['batch_dims'] as number;
    const q = ix.shape.length;
    const m = ix.shape[q - 1]!;
    if (ix.shape.slice(0, b).some((n, k) => n !== d.shape[k])) {
      ctx.fail(`batch dims of indices [${ix.shape}] and data [${d.shape}] differ`);
    }
    const batch = numel(d.shape.slice(0, b));
    const batchStride = numel(d.shape.slice(b));
    const slice = numel(d.shape.slice(b + m));
    const perBatch = numel(ix.shape.slice(b, q - 1));
    const st = stridesOf(d.shape);
    const out = scratchTensor(d.dtype, [...ix.shape.slice(0, q - 1), ...d.shape.slice(b + m)]);
    let t = 0;
    for (let bi = 0; bi < batch; bi++) {
      for (let j = 0; j < perBatch; j++, t++) {
        let off = bi * batchStride;
        for (let k = 0; k < m; k++) {
          off += wrapIndex(ix.data[t * m + k]!, d.shape[b + k]!, ctx.fail, 'gather_nd') * st[b + k]!;
        }
        out.data.set(d.data.subarray(off, off + slice), t * slice);
      }
    }
    return [out];
  },
});

// ---- generators: range, trilu, constants ---------------------------------------------------------------------

function rangeLength(start: number, limit: number, delta: number, fail: Fail): number {
  if (delta === 0 || !Number.isFinite(start) || !Number.isFinite(limit) || !Number.isFinite(delta)) {
    fail(`range(${start}, ${limit}, ${delta}) is not finite`);
  }
  return Math.max(Math.ceil((limit - start) / delta), 0);
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
    return [tensorType(dt, [symDim(ctx, 0)])];
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
    const dims = constIntsOf(ctx, 0, 'shape');
    if (dims) {
      if (dims.some((d) => d < 0)) ctx.fail(`shape [${dims.join(', ')}] has a negative dim`);
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
});
