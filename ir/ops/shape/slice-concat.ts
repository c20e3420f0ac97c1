/** Slice, concat and split. */
import { dimAdd, dimSub } from '../../dim-expr.js';
import { dimSum, stridesOf, type Dim } from '../../shape.js';
import { sliceLayout } from '../../layout.js';
import { registerOp } from '../../registry.js';
import { scratchTensor, type Tensor } from '../../tensor.js';
import { tensorType } from '../../types.js';
import { axisSplit, req } from '../util.js';
import {
  symDim,
  axisOf,
  axesOf,
  checkIndexInput,
  constIntsOf,
  dimQuotient,
  failLayout,
  gatherStrided,
  shapeValueOf,
  type Fail,
} from './common.js';

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

interface SliceSpec<T extends Dim = number> {
  axes: number[];
  starts: T[];
  ends: T[];
  steps: number[];
}

function sliceSpec<T extends Dim>(
  rank: number,
  starts: readonly T[],
  ends: readonly T[],
  axes: readonly number[] | undefined,
  steps: readonly number[] | undefined,
  fail: Fail,
): SliceSpec<T> {
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

/**
 * Length of a step-1 slice whose bounds are symbolic (a dim of the sliced tensor or of another, e.g. the causal mask
 * rows [total-seq, total)): end - start, taking a symbolic bound to lie within [0, d] as the shape subgraph that
 * computed it intends (a clamped bound would not match at run time, and the interpreter's shape check says so).
 */
function symbolicSliceLength(d: Dim, start: Dim, end: Dim, step: number): Dim | undefined {
  if (step !== 1 || (typeof start === 'number' && typeof end === 'number')) return undefined;
  const s = typeof start === 'string' ? start : start <= -HUGE ? 0 : start < 0 ? dimAdd(d, start) : start;
  const e =
    typeof end === 'string'
      ? end
      : end >= HUGE
        ? d
        : end < 0
          ? dimAdd(d, end)
          : typeof d === 'number'
            ? Math.min(end, d)
            : end;
  if (s === undefined || e === undefined) return undefined;
  const len = dimSub(e, s);
  return typeof len === 'number' ? Math.max(len, 0) : len;
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
    const starts = shapeValueOf(ctx, 1, 'starts');
    const ends = shapeValueOf(ctx, 2, 'ends');
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
      const [st, en, step] = [spec.starts[i]!, spec.ends[i]!, spec.steps[i]!];
      if (typeof st === 'number' && typeof en === 'number') {
        out[a] =
          typeof d === 'number'
            ? sliceRange(st, en, step, d).len
            : (symbolicSliceDim(d, st, en, step) ?? symDim(ctx, a));
      } else out[a] = symbolicSliceLength(d, st, en, step) ?? symDim(ctx, a);
    });
    return [tensorType(x.dtype, out)];
  },
  symbolic(ctx) {
    // A piece of a shape vector (Shape → Slice [2:]) keeps its dims.
    const v = ctx.symbolicValue(0);
    if (!v || ctx.inputs[0]!.shape.length !== 1) return undefined;
    const nums = (i: number) => {
      const s = ctx.inputs[i] ? ctx.symbolicValue(i) : undefined;
      return s?.every((x) => typeof x === 'number') ? (s as number[]) : undefined;
    };
    const [starts, ends, axes, steps] = [nums(1), nums(2), nums(3), nums(4)];
    if (!starts || !ends || (ctx.inputs[3] && !axes) || (ctx.inputs[4] && !steps)) return undefined;
    const spec = sliceSpec(1, starts, ends, axes, steps, ctx.fail);
    if (spec.axes.length === 0) return [v];
    const r = sliceRange(spec.starts[0]!, spec.ends[0]!, spec.steps[0]!, v.length);
    return [Array.from({ length: r.len }, (_, k) => v[r.start + k * spec.steps[0]!]!)];
  },
  layout(x, { hostInputs: [, starts, ends, axes, steps] }) {
    if (!starts || !ends || axes === undefined || steps === undefined) return undefined;
    const spec = sliceSpec(
      x.shape.length,
      Array.from(starts.data),
      Array.from(ends.data),
      axes ? Array.from(axes.data) : undefined,
      steps ? Array.from(steps.data) : undefined,
      failLayout,
    );
    let l = x;
    spec.axes.forEach((a, i) => {
      const r = sliceRange(spec.starts[i]!, spec.ends[i]!, spec.steps[i]!, x.shape[a]!);
      l = sliceLayout(l, a, r.start, r.len, spec.steps[i]!);
    });
    return [l];
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
  symbolic(ctx) {
    // Assembling a shape vector from pieces: Concat(Unsqueeze(batch), Unsqueeze(seq), [12, 64]).
    if (ctx.inputs[0]!.shape.length !== 1) return undefined;
    const parts = ctx.inputs.map((_, i) => ctx.symbolicValue(i));
    return parts.every((p) => p !== undefined) ? [parts.flat()] : undefined;
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
  layout(x, { attrs, outShapes }) {
    const axis = axisOf(attrs['axis'] as number, x.shape.length, failLayout);
    let at = 0;
    return outShapes.map((s) => {
      const l = sliceLayout(x, axis, at, s[axis]!);
      at += s[axis]!;
      return l;
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
