/**
 * Pad (ONNX Pad, opsets 2-24): add `pads` elements before / after each axis of `data`, filled per `mode`:
 * `constant` (the `constant_value` input, default 0), `reflect` (mirror without repeating the edge, as numpy),
 * `edge` (repeat the edge element) or `wrap` (periodic). Negative pads remove elements: the input is cropped by the
 * negative parts first, then padded by the positive parts (ONNX Runtime's order). Pads larger than the axis keep
 * reflecting / wrapping periodically, as numpy.pad does.
 */
import type { DType } from '../dtype.js';
import { dimSum, stridesOf, type Dim } from '../shape.js';
import { registerOp, type InferContext } from '../registry.js';
import { scratchTensor } from '../tensor.js';
import { tensorType } from '../types.js';
import { odometerStep, req } from './util.js';

type Fail = (message: string) => never;

export const PAD_MODES = ['constant', 'reflect', 'edge', 'wrap'] as const;
export type PadMode = (typeof PAD_MODES)[number];

const INDEX: readonly DType[] = ['i64', 'i32'];

/** Per-axis padding of a rank-`rank` tensor: before / after (may be negative), every axis listed. */
export interface PadAxes {
  begin: number[];
  end: number[];
}

/**
 * Spread ONNX `pads` ([x1_begin, x2_begin, ..., x1_end, x2_end, ...] over `axes`, default all axes) over the rank:
 * unlisted axes get 0. Fails on a length mismatch, an axis out of range, a duplicate axis or a non-integer pad.
 */
export function padAxes(
  rank: number,
  pads: readonly number[],
  axes: readonly number[] | undefined,
  fail: Fail,
): PadAxes {
  const ax = axes ?? Array.from({ length: rank }, (_, i) => i);
  if (pads.length !== 2 * ax.length) {
    fail(`pads has ${pads.length} entries; ${ax.length} axes need ${2 * ax.length}`);
  }
  if (!pads.every(Number.isInteger)) fail(`pads [${pads.join(', ')}] must hold integers`);
  const begin = new Array<number>(rank).fill(0);
  const end = new Array<number>(rank).fill(0);
  const seen = new Set<number>();
  ax.forEach((a, i) => {
    if (!Number.isInteger(a) || a < -rank || a >= rank) fail(`pad axis ${a} out of range for rank ${rank}`);
    const k = a < 0 ? a + rank : a;
    if (seen.has(k)) fail(`duplicate pad axes [${ax.join(', ')}]`);
    seen.add(k);
    begin[k] = pads[i]!;
    end[k] = pads[i + ax.length]!;
  });
  return { begin, end };
}

/** One axis after normalization: crop `cropBegin`, keep `kept` elements, then pad `padBegin` / `padEnd`. */
export interface PadAxis {
  cropBegin: number;
  kept: number;
  padBegin: number;
  padEnd: number;
  out: number;
}

/** Crop-then-pad view of one axis of size `d` (fails when cropping more than the axis holds). */
export function padAxis(d: number, begin: number, end: number, fail: Fail): PadAxis {
  const cropBegin = Math.max(0, -begin);
  const cropEnd = Math.max(0, -end);
  const kept = d - cropBegin - cropEnd;
  if (kept < 0) fail(`pads ${begin}, ${end} remove more than the ${d} elements of an axis`);
  const padBegin = Math.max(0, begin);
  const padEnd = Math.max(0, end);
  return { cropBegin, kept, padBegin, padEnd, out: kept + padBegin + padEnd };
}

/**
 * Source coordinate in [0, kept) of padded coordinate `j` (j = output coordinate − padBegin, any integer) for a
 * non-constant mode; kept ≥ 1.
 */
export function padSource(mode: Exclude<PadMode, 'constant'>, j: number, kept: number): number {
  switch (mode) {
    case 'edge':
      return Math.min(Math.max(j, 0), kept - 1);
    case 'wrap':
      return ((j % kept) + kept) % kept;
    case 'reflect': {
      if (kept === 1) return 0;
      const p = 2 * (kept - 1);
      const t = ((j % p) + p) % p;
      return t < kept ? t : p - t;
    }
  }
}

const symDim = (ctx: InferContext, k: number): string => `${ctx.node}_d${k}`;

function constInts(ctx: InferContext, i: number, what: string): number[] | undefined {
  const c = ctx.inputs[i] ? ctx.constValue(i) : undefined;
  if (!c) return undefined;
  const v = Array.from(c.data);
  if (!v.every(Number.isInteger)) ctx.fail(`${what} must hold integers`);
  return v;
}

function checkIndexInput(ctx: InferContext, i: number, what: string): void {
  const t = ctx.inputs[i];
  if (!t) return;
  if (!INDEX.includes(t.dtype)) ctx.fail(`${what} must be i64 or i32, got ${t.dtype}`);
  if (t.shape.length !== 1) ctx.fail(`${what} must be 1-D, got rank ${t.shape.length}`);
}

/** d + n for a symbolic dim (n may be negative). */
function symPlus(d: string, n: number): Dim {
  if (n === 0) return d;
  return n > 0 ? dimSum([d, n]) : `${d}-${-n}`;
}

registerOp({
  name: 'pad',
  doc: 'pad (or crop, with negative pads) each axis; mode constant | reflect | edge | wrap',
  inputs: [
    { name: 'data' },
    { name: 'pads' },
    { name: 'constant_value', optional: true },
    { name: 'axes', optional: true },
  ],
  outputs: [{ name: 'y' }],
  attrs: { mode: { kind: 'string', default: 'constant', oneOf: PAD_MODES } },
  fusion: 'injective',
  infer(ctx) {
    const x = req(ctx, 0);
    const rank = x.shape.length;
    checkIndexInput(ctx, 1, 'pads');
    checkIndexInput(ctx, 3, 'axes');
    const cv = ctx.inputs[2];
    if (cv) {
      if (cv.dtype !== x.dtype) ctx.fail(`constant_value has dtype ${cv.dtype}, data has ${x.dtype}`);
      if (cv.shape.some((d) => d !== 1)) ctx.fail('constant_value must hold one element');
    }
    const pads = constInts(ctx, 1, 'pads');
    const axes = ctx.inputs[3] ? constInts(ctx, 3, 'axes') : undefined;
    const unknownAll = () => [
      tensorType(
        x.dtype,
        x.shape.map((_, k) => symDim(ctx, k)),
      ),
    ];
    if (ctx.inputs[3] && !axes) return unknownAll();
    if (!pads) {
      if (!axes) return unknownAll();
      const out: Dim[] = [...x.shape];
      for (const a of axes) {
        if (a < -rank || a >= rank) ctx.fail(`pad axis ${a} out of range for rank ${rank}`);
        const k = a < 0 ? a + rank : a;
        out[k] = symDim(ctx, k);
      }
      return [tensorType(x.dtype, out)];
    }
    const { begin, end } = padAxes(rank, pads, axes, ctx.fail);
    const mode = ctx.attrs['mode'] as PadMode;
    const out = x.shape.map((d, k): Dim => {
      const b = begin[k]!;
      const e = end[k]!;
      if (typeof d === 'string') return symPlus(d, b + e);
      const a = padAxis(d, b, e, ctx.fail);
      if (mode !== 'constant' && a.kept === 0 && a.padBegin + a.padEnd > 0) {
        ctx.fail(`mode ${mode} cannot pad an axis with no elements`);
      }
      return a.out;
    });
    return [tensorType(x.dtype, out)];
  },
  reference([x, padsT, cvT, axesT], a, ctx) {
    const t = x!;
    const rank = t.shape.length;
    const mode = a['mode'] as PadMode;
    const { begin, end } = padAxes(rank, Array.from(padsT!.data), axesT && Array.from(axesT.data), ctx.fail);
    const ax = t.shape.map((d, k) => padAxis(d, begin[k]!, end[k]!, ctx.fail));
    if (mode !== 'constant' && ax.some((p) => p.kept === 0 && p.padBegin + p.padEnd > 0)) {
      ctx.fail(`mode ${mode} cannot pad an axis with no elements`);
    }
    if (cvT && cvT.data.length !== 1) ctx.fail(`constant_value must hold one element, got shape [${cvT.shape}]`);
    const value = cvT ? cvT.data[0]! : 0;
    const outShape = ax.map((p) => p.out);
    const out = scratchTensor(t.dtype, outShape);
    const st = stridesOf(t.shape);
    const idx = new Array<number>(rank).fill(0);
    for (let k = 0; k < out.data.length; k++) {
      let off = 0;
      let inside = true;
      for (let d = 0; d < rank; d++) {
        const p = ax[d]!;
        let j = idx[d]! - p.padBegin;
        if (j < 0 || j >= p.kept) {
          if (mode === 'constant') {
            inside = false;
            break;
          }
          j = padSource(mode, j, p.kept);
        }
        off += (j + p.cropBegin) * st[d]!;
      }
      out.data[k] = inside ? t.data[off]! : value;
      odometerStep(idx, [], [], outShape, 0, rank);
    }
    return [out];
  },
});
