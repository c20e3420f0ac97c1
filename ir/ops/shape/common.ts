/**
 * Helpers shared by the shape and data-movement ops: axes, index inputs, constant operands, symbolic quotients,
 * strided copies.
 */
import { DTYPES, type DType } from '../../dtype.js';
import { dimDiv, dimFactors, dimMul } from '../../dim-expr.js';
import { KilnError } from '../../errors.js';
import { dimProduct, stridesOf, type Dim } from '../../shape.js';
import type { InferContext } from '../../registry.js';
import { scratchTensor, type Tensor } from '../../tensor.js';
import type { TensorType } from '../../types.js';
import { odometerStep } from '../util.js';

export const INDEX: readonly DType[] = ['i64', 'i32'];
/** Every dtype with arithmetic: all but the packed 4-bit ones and bool. */
export const NUMERIC: readonly DType[] = DTYPES.filter((d) => d !== 'i4' && d !== 'u4' && d !== 'bool');

export type Fail = (message: string) => never;

/** Fail for `OpDef.layout`: the node was inferred already, so this only fires on an internal inconsistency. */
export const failLayout: Fail = (message) => {
  throw new KilnError('shape', message);
};

// ---- helpers -------------------------------------------------------------------------------------------------

/** Name of an unknown dim `k` of a node's output (deterministic, so re-inference reproduces it). */
export const symDim = (ctx: InferContext, k: number | string): string => `${ctx.node}_d${k}`;

/** Axis in [-rank, rank) → [0, rank), failing located. */
export function axisOf(axis: number, rank: number, fail: Fail, what = 'axis'): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) fail(`${what} ${axis} out of range for rank ${rank}`);
  return axis < 0 ? axis + rank : axis;
}

/** Sorted, normalized, duplicate-free axes. */
export function axesOf(axes: readonly number[], rank: number, fail: Fail): number[] {
  const out = axes.map((a) => axisOf(a, rank, fail));
  if (new Set(out).size !== out.length) fail(`duplicate axes [${axes.join(', ')}]`);
  return out.sort((a, b) => a - b);
}

export function checkIndexInput(ctx: InferContext, i: number, what: string, rank1 = true): TensorType | undefined {
  const t = ctx.inputs[i];
  if (!t) return undefined;
  if (!INDEX.includes(t.dtype)) ctx.fail(`${what} must be i64 or i32, got ${t.dtype}`);
  if (rank1 && t.shape.length !== 1) ctx.fail(`${what} must be 1-D, got rank ${t.shape.length}`);
  return t;
}

/** Integer values of a constant tensor input, or undefined when it is not constant. */
export function constIntsOf(ctx: InferContext, i: number, what: string): number[] | undefined {
  const c = ctx.inputs[i] ? ctx.constValue(i) : undefined;
  if (!c) return undefined;
  const v = Array.from(c.data);
  if (!v.every(Number.isInteger)) ctx.fail(`${what} must hold integers`);
  return v;
}

export function scalarOf(t: Tensor, what: string, fail: Fail): number {
  if (t.data.length !== 1) fail(`${what} must hold one element, got shape [${t.shape}]`);
  return t.data[0]!;
}

// Symbolic products: dims built by dimProduct ('64*batch*seq') are factored (dimFactors) so that reshape's -1 and
// equal splits can cancel symbols instead of inventing new ones.

/** prod(num) / prod(den) when it can be written without a new symbol, else undefined. */
export function dimQuotient(num: readonly Dim[], den: readonly Dim[]): Dim | undefined {
  const a = dimFactors(num);
  const b = dimFactors(den);
  if (b.n === 0) return undefined;
  const rest = [...a.syms];
  let factored = true;
  for (const s of b.syms) {
    const j = rest.indexOf(s);
    if (j < 0) factored = false;
    else rest.splice(j, 1);
  }
  if (factored && a.n % b.n === 0) return dimProduct([a.n / b.n, ...rest]);
  // Factors differ in spelling (`batch*past+batch*seq` over `batch`): divide the normalized polynomials.
  const prod = (ds: readonly Dim[]) =>
    ds.reduce<Dim | undefined>((acc, d) => (acc === undefined ? undefined : dimMul(acc, d)), 1);
  const p = prod(num);
  const q = prod(den);
  if (p === undefined || q === undefined || (typeof p === 'number' && typeof q === 'number')) return undefined;
  return dimDiv(p, q); // symbolic division is exact or undefined
}

// ---- symbolic shape values -------------------------------------------------------------------------------------

/** Dims held by a shape-like input (reshape's shape, slice's starts …): its constant data, else its symbolic value. */
export function shapeValueOf(ctx: InferContext, i: number, what: string): Dim[] | undefined {
  const c = constIntsOf(ctx, i, what);
  if (c) return c;
  const s = ctx.inputs[i] ? ctx.symbolicValue(i) : undefined;
  return s ? [...s] : undefined;
}

/** Symbolic hook of ops whose output holds input 0's elements in the same order (reshape, squeeze, cast …). */
export const sameElements = (ctx: InferContext): (readonly Dim[] | undefined)[] => [ctx.symbolicValue(0)];

/** Copy `x` with its axes permuted: output axis i is input axis perm[i]. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const outShape = perm.map((p) => x.shape[p]!);
  const st = stridesOf(x.shape);
  const srcStrides = perm.map((p) => st[p]!);
  return gatherStrided(x, outShape, srcStrides, 0);
}

/** out[idx] = x.data[base + Σ idx[i] * strides[i]] over the output shape (odometer walk). */
export function gatherStrided(
  x: Tensor,
  outShape: readonly number[],
  strides: readonly number[],
  base: number,
): Tensor {
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
