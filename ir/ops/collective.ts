/**
 * Collective ops for tensor / pipeline parallelism: `all_reduce` (sum), `all_gather` (concatenation along an axis in
 * rank order) and `reduce_scatter` (sum, then rank r keeps the r-th slice along an axis). Each node carries its
 * `world_size` and `rank`. A collective's value depends on every rank's input, so a single graph cannot be
 * interpreted alone: the reference here is the world-size-1 case (identity), and any larger world raises a located
 * error. `interpretRanks` (src/parallel/interpret-ranks.ts) simulates all ranks in lockstep and resolves each
 * collective across them with `collectiveReference`, the float64 specification used by every transport (MPI, NCCL).
 */
import { isFloat } from '../dtype.js';
import { registerOp, type Attrs, type InferContext } from '../registry.js';
import { dimProduct, type Dim } from '../shape.js';
import { scratchTensor, type Tensor } from '../tensor.js';
import { tensorType } from '../types.js';
import { axisSplit, req } from './util.js';

export const COLLECTIVE_OPS: ReadonlySet<string> = new Set(['all_reduce', 'all_gather', 'reduce_scatter']);

const commonAttrs = {
  world_size: { kind: 'int' },
  rank: { kind: 'int' },
} as const;

function checkRanks(ctx: InferContext): number {
  const n = ctx.attrs['world_size'] as number;
  const r = ctx.attrs['rank'] as number;
  if (!Number.isInteger(n) || n < 1) ctx.fail(`world_size must be ≥ 1, got ${n}`);
  if (!Number.isInteger(r) || r < 0 || r >= n) ctx.fail(`rank ${r} out of range for world_size ${n}`);
  return n;
}

function axisOf(a: Attrs, rank: number): number {
  const axis = a['axis'] as number;
  return axis < 0 ? axis + rank : axis;
}

function checkAxis(ctx: InferContext, rank: number): number {
  const axis = ctx.attrs['axis'] as number;
  if (axis < -rank || axis >= rank) ctx.fail(`axis ${axis} out of range for rank ${rank}`);
  return axis < 0 ? axis + rank : axis;
}

function singleRank(x: Tensor, a: Attrs, fail: (m: string) => never): Tensor[] {
  const n = a['world_size'] as number;
  if (n !== 1) {
    fail(`a collective over ${n} ranks cannot be interpreted on one rank; use interpretRanks (kiln/parallel)`);
  }
  return [x];
}

registerOp({
  name: 'all_reduce',
  doc: 'Sum of x over all ranks of the group; every rank receives the sum.',
  inputs: [{ name: 'x' }],
  outputs: [{ name: 'y' }],
  attrs: { ...commonAttrs },
  fusion: 'opaque',
  infer(ctx) {
    const t = req(ctx, 0);
    if (!isFloat(t.dtype)) ctx.fail(`all_reduce needs a float tensor, got ${t.dtype}`);
    checkRanks(ctx);
    return [tensorType(t.dtype, t.shape)];
  },
  reference: ([x], a, ctx) => singleRank(x!, a, ctx.fail),
});

registerOp({
  name: 'all_gather',
  doc: "Concatenation of every rank's x along `axis`, in rank order.",
  inputs: [{ name: 'x' }],
  outputs: [{ name: 'y' }],
  attrs: { ...commonAttrs, axis: { kind: 'int', default: -1 } },
  fusion: 'opaque',
  infer(ctx) {
    const t = req(ctx, 0);
    const n = checkRanks(ctx);
    const axis = checkAxis(ctx, t.shape.length);
    const shape: Dim[] = [...t.shape];
    shape[axis] = dimProduct([shape[axis]!, n]);
    return [tensorType(t.dtype, shape)];
  },
  reference: ([x], a, ctx) => singleRank(x!, a, ctx.fail),
});

registerOp({
  name: 'reduce_scatter',
  doc: 'Sum of x over all ranks, split evenly along `axis`; rank r keeps slice r.',
  inputs: [{ name: 'x' }],
  outputs: [{ name: 'y' }],
  attrs: { ...commonAttrs, axis: { kind: 'int', default: -1 } },
  fusion: 'opaque',
  infer(ctx) {
    const t = req(ctx, 0);
    if (!isFloat(t.dtype)) ctx.fail(`reduce_scatter needs a float tensor, got ${t.dtype}`);
    const n = checkRanks(ctx);
    const axis = checkAxis(ctx, t.shape.length);
    const d = t.shape[axis]!;
    if (typeof d !== 'number') return ctx.fail(`reduce_scatter needs a static size along axis ${axis}`);
    if (d % n !== 0) ctx.fail(`reduce_scatter: size ${d} along axis ${axis} is not divisible by ${n} ranks`);
    const shape: Dim[] = [...t.shape];
    shape[axis] = d / n;
    return [tensorType(t.dtype, shape)];
  },
  reference: ([x], a, ctx) => singleRank(x!, a, ctx.fail),
});

/**
 * The float64 semantics of one collective across all ranks: `xs[r]` is rank r's input; returns each rank's output.
 * Inputs must have equal shapes (a typed error through `fail` otherwise).
 */
export function collectiveReference(
  op: string,
  xs: readonly Tensor[],
  attrs: Attrs,
  fail: (m: string) => never,
): Tensor[] {
  const n = xs.length;
  const shape = xs[0]!.shape;
  for (const [r, x] of xs.entries()) {
    if (x.shape.length !== shape.length || x.shape.some((d, i) => d !== shape[i])) {
      fail(`rank ${r} has shape [${x.shape}], rank 0 has [${shape}]`);
    }
  }
  const len = xs[0]!.data.length;
  const sum = (): Float64Array => {
    const s = new Float64Array(len);
    for (const x of xs) for (let i = 0; i < len; i++) s[i]! += Number(x.data[i]!);
    return s;
  };
  if (op === 'all_reduce') {
    const s = sum();
    return xs.map((x) => {
      const t = scratchTensor(x.dtype, shape);
      (t.data as Float64Array).set(s);
      return t;
    });
  }
  const axis = axisOf(attrs, shape.length);
  const { outer, len: d, inner } = axisSplit(shape, axis);
  if (op === 'all_gather') {
    const outShape = [...shape];
    outShape[axis] = d * n;
    const t = scratchTensor(xs[0]!.dtype, outShape);
    const out = t.data as Float64Array;
    for (let o = 0; o < outer; o++) {
      for (let r = 0; r < n; r++) {
        const src = xs[r]!.data;
        for (let j = 0; j < d * inner; j++) out[(o * n + r) * d * inner + j] = Number(src[o * d * inner + j]!);
      }
    }
    return xs.map(() => t);
  }
  if (op === 'reduce_scatter') {
    if (d % n !== 0) fail(`size ${d} along axis ${axis} is not divisible by ${n} ranks`);
    const s = sum();
    const part = d / n;
    const outShape = [...shape];
    outShape[axis] = part;
    return xs.map((x, r) => {
      const t = scratchTensor(x.dtype, outShape);
      const out = t.data as Float64Array;
      for (let o = 0; o < outer; o++) {
        for (let j = 0; j < part * inner; j++) out[o * part * inner + j] = s[o * d * inner + r * part * inner + j]!;
      }
      return t;
    });
  }
  return fail(`unknown collective ${op}`);
}
