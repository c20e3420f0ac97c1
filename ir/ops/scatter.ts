/**
 * Scatter ops: a copy of `data` with `updates` written (or combined by a reduction) at positions given by `indices`.
 * `scatter_nd` (ONNX ScatterND: index tuples address slices of data) and `scatter_elements` (ONNX ScatterElements /
 * Scatter: one index per update element along `axis`). KV-cache updates in exported decoders are one of these.
 *
 * Semantics kiln fixes where ONNX leaves them open:
 * - duplicate indices: updates are applied one after another in row-major order of the update elements (ScatterND:
 *   of the index rows). With reduction `none` the last one wins; with a reduction each is combined in that order.
 *   The device lowerings apply them in the same order (codegen/lower/scatter.ts), so results are deterministic.
 * - negative indices count from the end of their axis (both ops); an index outside [-n, n-1] is a located error.
 * - `max` / `min` propagate NaN (like the `max` / `min` ops).
 * Both may run in place in data's buffer (`inplace: 0`): the executor aliases them when nothing else reads data.
 */
import { registerOp, type AttrSpec, type InferContext } from '../registry.js';
import { numel, stridesOf, type Dim } from '../shape.js';
import { scratchTensor } from '../tensor.js';
import { tensorType } from '../types.js';
import { req } from './util.js';
import { INDEX, NUMERIC, axisOf, type Fail } from './shape/common.js';

export const SCATTER_REDUCTIONS = ['none', 'add', 'mul', 'max', 'min'] as const;
export type ScatterReduction = (typeof SCATTER_REDUCTIONS)[number];

const REDUCTION_ATTR: AttrSpec = { kind: 'string', default: 'none', oneOf: SCATTER_REDUCTIONS };

/** How an update combines with the element already there (float64; NaN propagates through max / min). */
export function scatterCombine(reduction: ScatterReduction): (old: number, upd: number) => number {
  switch (reduction) {
    case 'none':
      return (_o, u) => u;
    case 'add':
      return (o, u) => o + u;
    case 'mul':
      return (o, u) => o * u;
    case 'max':
      return (o, u) => (Number.isNaN(o) || Number.isNaN(u) ? NaN : o > u ? o : u);
    case 'min':
      return (o, u) => (Number.isNaN(o) || Number.isNaN(u) ? NaN : o < u ? o : u);
  }
}

/** Two dims that are not provably different. */
const compatible = (a: Dim, b: Dim): boolean => typeof a !== 'number' || typeof b !== 'number' || a === b;

function checkCommon(ctx: InferContext): void {
  const data = req(ctx, 0);
  const idx = req(ctx, 1);
  const upd = req(ctx, 2);
  if (!NUMERIC.includes(data.dtype) && data.dtype !== 'bool') ctx.fail(`data dtype ${data.dtype} is not supported`);
  if (!INDEX.includes(idx.dtype)) ctx.fail(`indices must be i64 or i32, got ${idx.dtype}`);
  if (upd.dtype !== data.dtype) ctx.fail(`updates have dtype ${upd.dtype}, data has ${data.dtype}`);
  const red = ctx.attrs['reduction'] as ScatterReduction;
  if (red !== 'none' && data.dtype === 'bool') ctx.fail(`reduction '${red}' is not defined on bool data`);
}

/** Wrap a negative index; out of range fails naming the op and the position. */
function wrap(i: number, n: number, fail: Fail, what: string): number {
  const j = i < 0 ? i + n : i;
  if (!(j >= 0 && j < n)) fail(`${what} index ${i} out of range [${-n}, ${n - 1}]`);
  return j;
}

registerOp({
  name: 'scatter_nd',
  doc:
    'y = copy of data; for each index row j (indices [..., k], row-major): y[indices[j], ...] = ' +
    'reduce(y[indices[j], ...], updates[j, ...]) over the slice data.shape[k:]. updates has shape ' +
    'indices.shape[:-1] + data.shape[k:]. Duplicate rows apply in row order (reduction none: the last wins); ' +
    'negative indices count from the end; reduction none | add | mul | max | min',
  inputs: [{ name: 'data' }, { name: 'indices' }, { name: 'updates' }],
  outputs: [{ name: 'y' }],
  attrs: { reduction: REDUCTION_ATTR },
  fusion: 'opaque',
  inplace: 0,
  infer(ctx) {
    checkCommon(ctx);
    const data = req(ctx, 0);
    const idx = req(ctx, 1);
    const upd = req(ctx, 2);
    const r = data.shape.length;
    const q = idx.shape.length;
    if (r < 1) ctx.fail('scatter_nd needs data of rank >= 1');
    if (q < 1) ctx.fail('scatter_nd needs indices of rank >= 1');
    const k = idx.shape[q - 1]!;
    if (typeof k !== 'number') return ctx.fail('scatter_nd needs a static last dim of indices (the tuple length)');
    if (k < 1 || k > r) ctx.fail(`index tuples of length ${k} do not fit data of rank ${r}`);
    const want = [...idx.shape.slice(0, q - 1), ...data.shape.slice(k)];
    if (upd.shape.length !== want.length || !want.every((d, i) => compatible(d, upd.shape[i]!))) {
      ctx.fail(`updates have shape [${upd.shape}], expected indices.shape[:-1] + data.shape[${k}:] = [${want}]`);
    }
    return [tensorType(data.dtype, data.shape)];
  },
  reference([data, indices, updates], a, ctx) {
    const d = data!;
    const ix = indices!;
    const u = updates!;
    const q = ix.shape.length;
    const k = ix.shape[q - 1]!;
    const rows = numel(ix.shape.slice(0, q - 1));
    const slice = numel(d.shape.slice(k));
    const want = [...ix.shape.slice(0, q - 1), ...d.shape.slice(k)];
    if (u.shape.length !== want.length || u.shape.some((n, i) => n !== want[i])) {
      ctx.fail(`updates have shape [${u.shape}], expected [${want}]`);
    }
    const st = stridesOf(d.shape);
    const combine = scatterCombine(a['reduction'] as ScatterReduction);
    const out = scratchTensor(d.dtype, d.shape, d.data);
    for (let j = 0; j < rows; j++) {
      let off = 0;
      for (let m = 0; m < k; m++) off += wrap(ix.data[j * k + m]!, d.shape[m]!, ctx.fail, 'scatter_nd') * st[m]!;
      for (let s = 0; s < slice; s++) out.data[off + s] = combine(out.data[off + s]!, u.data[j * slice + s]!);
    }
    return [out];
  },
});

registerOp({
  name: 'scatter_elements',
  doc:
    'y = copy of data; for each element i of updates (row-major): y[i with its axis coordinate replaced by ' +
    "indices[i]] = reduce(that, updates[i]). indices and updates share one shape of data's rank, no larger than " +
    "data's off the axis. Duplicates apply in order (reduction none: the last wins); negative indices count from " +
    'the end; reduction none | add | mul | max | min',
  inputs: [{ name: 'data' }, { name: 'indices' }, { name: 'updates' }],
  outputs: [{ name: 'y' }],
  attrs: { axis: { kind: 'int', default: 0 }, reduction: REDUCTION_ATTR },
  fusion: 'opaque',
  inplace: 0,
  infer(ctx) {
    checkCommon(ctx);
    const data = req(ctx, 0);
    const idx = req(ctx, 1);
    const upd = req(ctx, 2);
    const r = data.shape.length;
    if (r < 1) ctx.fail('scatter_elements needs data of rank >= 1');
    const axis = axisOf(ctx.attrs['axis'] as number, r, ctx.fail);
    if (idx.shape.length !== r) ctx.fail(`indices have rank ${idx.shape.length}, data has rank ${r}`);
    if (upd.shape.length !== r || !idx.shape.every((d, i) => compatible(d, upd.shape[i]!))) {
      ctx.fail(`updates have shape [${upd.shape}], indices [${idx.shape}]: they must be equal`);
    }
    idx.shape.forEach((d, i) => {
      const e = data.shape[i]!;
      if (i !== axis && typeof d === 'number' && typeof e === 'number' && d > e) {
        ctx.fail(`indices dim ${i} is ${d}, larger than data's ${e}`);
      }
    });
    return [tensorType(data.dtype, data.shape)];
  },
  reference([data, indices, updates], a, ctx) {
    const d = data!;
    const ix = indices!;
    const u = updates!;
    const r = d.shape.length;
    const axis = axisOf(a['axis'] as number, r, ctx.fail);
    if (
      ix.shape.length !== r ||
      u.shape.length !== r ||
      ix.shape.some((n, i) => n !== u.shape[i] || (i !== axis && n > d.shape[i]!))
    ) {
      ctx.fail(`indices [${ix.shape}] / updates [${u.shape}] do not fit data [${d.shape}]`);
    }
    const st = stridesOf(d.shape);
    const combine = scatterCombine(a['reduction'] as ScatterReduction);
    const out = scratchTensor(d.dtype, d.shape, d.data);
    const coord = new Array<number>(r).fill(0);
    for (let e = 0; e < ix.data.length; e++) {
      let off = 0;
      for (let i = 0; i < r; i++) {
        const c = i === axis ? wrap(ix.data[e]!, d.shape[i]!, ctx.fail, 'scatter_elements') : coord[i]!;
        off += c * st[i]!;
      }
      out.data[off] = combine(out.data[off]!, u.data[e]!);
      for (let i = r - 1; i >= 0; i--) {
        if (++coord[i]! < ix.shape[i]!) break;
        coord[i] = 0;
      }
    }
    return [out];
  },
});
