/** The gather family: gather, gather_elements, gather_nd. */
import { numel, stridesOf, type Dim } from '../../shape.js';
import { reshapeLayout, selectLayout } from '../../layout.js';
import { registerOp, type InferContext } from '../../registry.js';
import { scratchTensor } from '../../tensor.js';
import { tensorType, type TensorType } from '../../types.js';
import { axisSplit, odometerStep, req } from '../util.js';
import { INDEX, axisOf, failLayout, type Fail } from './common.js';

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
  symbolic(ctx) {
    // Picking dims out of a shape vector: Shape → Gather(indices = constant) is `batch`, `seq` …
    const v = ctx.symbolicValue(0);
    const ix = ctx.symbolicValue(1);
    if (!v || !ix || ctx.inputs[0]!.shape.length !== 1) return undefined;
    const out = ix.map((i) => (typeof i === 'number' && i >= -v.length && i < v.length ? v.at(i) : undefined));
    return out.every((d) => d !== undefined) ? [out as Dim[]] : undefined;
  },
  layout(x, { attrs, hostInputs: [, indices], outShapes }) {
    // one index (a scalar or a single-element tensor): the entry of that axis, as a view
    if (!indices || indices.data.length !== 1) return undefined;
    const axis = axisOf(attrs['axis'] as number, x.shape.length, failLayout);
    const len = x.shape[axis]!;
    const i = indices.data[0]!;
    if (!(i >= -len && i < len)) return undefined; // the kernel reports it
    const l = reshapeLayout(selectLayout(x, axis, i < 0 ? i + len : i), outShapes[0]!);
    return l && [l];
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
