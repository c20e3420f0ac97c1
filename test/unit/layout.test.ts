/**
 * Strided layouts of movement ops (OpDef.layout) against their float64 references: a random tensor is stored under
 * a random non-row-major layout in a larger buffer (a transposed / sliced / reversed view), the op's layout is
 * computed from it, and reading the buffer through the result must give exactly what the op's reference computes
 * on the tensor. Also the reshape re-striding rules (when strides exist, and when they cannot).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  contiguousLayout,
  isContiguous,
  permuteLayout,
  reshapeLayout,
  simplifyLayout,
  sliceLayout,
  type StridedLayout,
} from '../../ir/layout.js';
import '../../ir/ops/index.js';
import { getOp, resolveAttrs, type Attrs } from '../../ir/registry.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { PROP_RUNS } from '../helpers/paths.js';

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** The elements a layout addresses in `buf`, row-major. */
function read(buf: Float64Array, l: StridedLayout): number[] {
  const out: number[] = [];
  const idx = new Array<number>(l.shape.length).fill(0);
  for (let k = 0; k < numel(l.shape); k++) {
    out.push(buf[l.offset + idx.reduce((a, c, d) => a + c * l.strides[d]!, 0)]!);
    for (let d = l.shape.length - 1; d >= 0; d--) {
      if (++idx[d]! < l.shape[d]!) break;
      idx[d] = 0;
    }
  }
  return out;
}

/** A tensor of `shape` stored non-row-major: a reversed, transposed, padded view of a bigger buffer. */
function storedView(shape: readonly number[], rnd: () => number): { buf: Float64Array; l: StridedLayout; t: Tensor } {
  const r = shape.length;
  // store with the dims in a random order, each padded by 0-2 entries, some reversed
  const order = shape.map((_, i) => i).sort(() => rnd() - 0.5);
  const padded = order.map((d) => shape[d]! + Math.floor(rnd() * 3));
  const base = contiguousLayout(padded, 0);
  const buf = Float64Array.from({ length: numel(padded) + 3 }, () => Math.round((rnd() * 2 - 1) * 1000) / 8);
  let l: StridedLayout = { ...base, offset: 3 };
  order.forEach((d, k) => {
    const rev = rnd() < 0.3 && shape[d]! > 1;
    l = rev ? sliceLayout(l, k, shape[d]! - 1, shape[d]!, -1) : sliceLayout(l, k, 0, shape[d]!, 1);
  });
  const inv = new Array<number>(r);
  order.forEach((d, k) => (inv[d] = k));
  l = permuteLayout(l, inv);
  return { buf, l, t: makeTensor('f32', [...shape], read(buf, l)) };
}

interface Case {
  op: string;
  attrs?: Attrs;
  extra?: (Tensor | undefined)[];
  outShapes: number[][];
}

function casesFor(shape: number[], rnd: () => number): Case[] {
  const r = shape.length;
  const ax = Math.floor(rnd() * r);
  const i64 = (v: number[]) => makeTensor('i64', [v.length], v);
  const out: Case[] = [];
  const perm = shape.map((_, i) => i).sort(() => rnd() - 0.5);
  out.push({ op: 'transpose', attrs: { perm }, outShapes: [perm.map((p) => shape[p]!)] });
  // slice with a random start / end / step (negative steps included)
  const d = shape[ax]!;
  const step = rnd() < 0.3 ? -1 - Math.floor(rnd() * 2) : 1 + Math.floor(rnd() * 2);
  const start = Math.floor(rnd() * d) - (rnd() < 0.2 ? d : 0);
  const end = step > 0 ? start + 1 + Math.floor(rnd() * d) : -d - 1;
  const s0 = start < 0 ? start + d : start;
  const e0 = end < 0 ? Math.max(end + d, -1) : Math.min(end, d);
  const len = Math.max(0, Math.ceil((e0 - (step > 0 ? Math.min(s0, d) : Math.min(s0, d - 1))) / step));
  out.push({
    op: 'slice',
    extra: [i64([start]), i64([end]), i64([ax]), i64([step])],
    outShapes: [shape.map((x, k) => (k === ax ? len : x))],
  });
  if (d % 2 === 0) {
    out.push({
      op: 'split',
      attrs: { axis: ax },
      outShapes: [0, 1].map(() => shape.map((x, k) => (k === ax ? d / 2 : x))),
    });
  }
  const gi = Math.floor(rnd() * d) - (rnd() < 0.5 ? d : 0);
  out.push({
    op: 'gather',
    attrs: { axis: ax },
    extra: [makeTensor('i64', [], [gi])],
    outShapes: [shape.filter((_, k) => k !== ax)],
  });
  const flat = [numel(shape)];
  out.push({ op: 'reshape', extra: [i64(flat)], outShapes: [flat] });
  out.push({ op: 'unsqueeze', attrs: { axes: [0] }, outShapes: [[1, ...shape]] });
  const ones = shape.map((x) => (x === 1 ? 3 : x));
  out.push({ op: 'expand', extra: [i64([2, ...ones])], outShapes: [[2, ...ones]] });
  return out;
}

describe('movement-op layouts equal their references', () => {
  it('property: on non-row-major stored tensors, every output reads back as the reference computes it', () => {
    let viewed = 0;
    let refused = 0;
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 4 }),
        fc.integer(),
        (shape, seed) => {
          let a = seed >>> 0 || 1;
          const rnd = () => ((a = (a * 1103515245 + 12345) >>> 0), a / 4294967296);
          const { buf, l, t } = storedView(shape, rnd);
          for (const cs of casesFor(shape, rnd)) {
            const def = getOp(cs.op);
            const attrs = resolveAttrs(def, cs.attrs ?? {}, cs.op);
            const want = def.reference([t, ...(cs.extra ?? [])], attrs, {
              node: cs.op,
              op: cs.op,
              numOutputs: cs.outShapes.length,
              outputDtypes: cs.outShapes.map(() => 'f32'),
              fail: (m: string): never => {
                throw new Error(m);
              },
            });
            const got = def.layout!(l, {
              attrs,
              hostInputs: [undefined, ...(cs.extra ?? [])],
              outShapes: cs.outShapes,
            });
            if (!got) {
              refused++;
              // only a reshape may be inexpressible (merging dims a permutation separated)
              expect(cs.op).toBe('reshape');
              continue;
            }
            viewed++;
            got.forEach((g, i) => {
              expect(g!.shape, `${cs.op} output ${i} shape`).toEqual(want[i]!.shape);
              expect(read(buf, g!), `${cs.op} output ${i}`).toEqual(Array.from(want[i]!.data));
            });
          }
        },
      ),
      { numRuns: Math.max(50, 4 * PROP_RUNS) },
    );
    expect(viewed).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(0);
  });

  it('reshape re-strides where it can and refuses where it cannot', () => {
    const t = permuteLayout(contiguousLayout([2, 3, 4]), [1, 0, 2]); // [3, 2, 4], strides (4, 12, 1)
    expect(reshapeLayout(t, [3, 2, 2, 2])).toEqual({ offset: 0, shape: [3, 2, 2, 2], strides: [4, 12, 2, 1] });
    expect(reshapeLayout(t, [1, 3, 1, 2, 4, 1])?.strides.filter((_, i) => [1, 3, 4].includes(i))).toEqual([4, 12, 1]);
    expect(reshapeLayout(t, [6, 4])).toBeUndefined(); // dims 0 and 1 were swapped: not one stride
    expect(reshapeLayout(t, [3, 8])).toBeUndefined();
    const c = contiguousLayout([4, 6], 5);
    expect(reshapeLayout(c, [2, 12])).toEqual(contiguousLayout([2, 12], 5));
    expect(isContiguous(permuteLayout(contiguousLayout([1, 5, 1]), [2, 1, 0]))).toBe(true);
    expect(simplifyLayout(sliceLayout(contiguousLayout([4, 8]), 1, 0, 8))).toEqual({
      offset: 0,
      shape: [32],
      strides: [1],
    });
    expect(simplifyLayout(sliceLayout(contiguousLayout([4, 8]), 1, 2, 4))).toEqual({
      offset: 2,
      shape: [4, 4],
      strides: [8, 1],
    });
  });
});
