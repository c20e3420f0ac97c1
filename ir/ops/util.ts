/** Helpers shared by op definitions: broadcasting iteration, inference shortcuts, constant-input reading. */
import type { DType } from '../dtype.js';
import { broadcastShapes, numel, stridesOf, type Dim, type Shape } from '../shape.js';
import type { InferContext } from '../registry.js';
import { scratchTensor, type Tensor } from '../tensor.js';
import { tensorType, type TensorType } from '../types.js';

/** Input type `i`, failing (located) when an optional input is absent. */
export function req(ctx: InferContext, i: number): TensorType {
  const t = ctx.inputs[i];
  if (!t) ctx.fail(`input ${i} is required`);
  return t;
}

export function broadcastInfer(ctx: InferContext, idx: readonly number[]): Dim[] {
  try {
    return broadcastShapes(idx.map((i) => req(ctx, i).shape));
  } catch (e) {
    return ctx.fail((e as Error).message);
  }
}

export function requireSameDtype(ctx: InferContext, idx: readonly number[]): DType {
  const dt = req(ctx, idx[0]!).dtype;
  for (const i of idx) {
    const t = req(ctx, i);
    if (t.dtype !== dt) ctx.fail(`input ${i} has dtype ${t.dtype}, expected ${dt} like input ${idx[0]}`);
  }
  return dt;
}

export function requireDtype(ctx: InferContext, i: number, allowed: readonly DType[], what = 'dtype'): DType {
  const dt = req(ctx, i).dtype;
  if (!allowed.includes(dt)) ctx.fail(`input ${i} ${what} ${dt} not in {${allowed.join(', ')}}`);
  return dt;
}

/** Concrete broadcast shape of tensors (run time). */
export function broadcastConcrete(ts: readonly Tensor[]): number[] {
  return broadcastShapes(ts.map((t) => t.shape)) as number[];
}

/**
 * Strides of `t` viewed in a broadcast output of rank `rank`: 0 on broadcast dims. Used by every broadcasting
 * reference so an element's source offset is a dot product.
 */
export function broadcastStrides(shape: readonly number[], out: readonly number[]): number[] {
  const st = stridesOf(shape);
  const r = out.length;
  const res = new Array<number>(r).fill(0);
  for (let i = 0; i < shape.length; i++) {
    const j = i + r - shape.length;
    res[j] = shape[i] === 1 && out[j] !== 1 ? 0 : st[i]!;
  }
  return res;
}

/** Apply `fn` elementwise over broadcast inputs. */
export function broadcastMap(
  dtype: DType,
  inputs: readonly Tensor[],
  fn: (...xs: number[]) => number,
  outShape: readonly number[] = broadcastConcrete(inputs),
): Tensor & { data: Float64Array } {
  const n = numel(outShape);
  const out = scratchTensor(dtype, outShape);
  const r = outShape.length;
  const strides = inputs.map((t) => broadcastStrides(t.shape, outShape));
  const offs = new Array<number>(inputs.length).fill(0);
  const idx = new Array<number>(r).fill(0);
  const args = new Array<number>(inputs.length);
  for (let k = 0; k < n; k++) {
    for (let j = 0; j < inputs.length; j++) args[j] = inputs[j]!.data[offs[j]!]!;
    out.data[k] = fn(...args);
    odometerStep(idx, offs, strides, outShape, 0, r);
  }
  return out;
}

/**
 * Advance the multi-index `idx` over dims [from, to) of `sizes` (last fastest) by one, keeping each operand's flat
 * offset `offs[j]` in step through its `strides[j]`. Every strided reference loop shares this one odometer.
 */
export function odometerStep(
  idx: number[],
  offs: number[],
  strides: readonly (readonly number[])[],
  sizes: readonly number[],
  from: number,
  to: number,
): void {
  for (let d = to - 1; d >= from; d--) {
    idx[d]!++;
    for (let j = 0; j < offs.length; j++) offs[j]! += strides[j]![d]!;
    if (idx[d]! < sizes[d]!) return;
    for (let j = 0; j < offs.length; j++) offs[j]! -= strides[j]![d]! * sizes[d]!;
    idx[d] = 0;
  }
}

/** Values of a constant integer input as numbers, or undefined when not constant. */
export function constInts(ctx: InferContext, i: number): number[] | undefined {
  const c = ctx.constValue(i);
  return c ? Array.from(c.data) : undefined;
}

export function sameShapeType(t: TensorType, dtype: DType = t.dtype): TensorType {
  return tensorType(dtype, t.shape, t.layout);
}

export { tensorType, numel, stridesOf };
export type { Shape, Dim };

/** Iterate a tensor as [outer, axis, inner] for ops along one axis (softmax, cumsum, argmax...). */
export function axisSplit(shape: readonly number[], axis: number): { outer: number; len: number; inner: number } {
  let outer = 1;
  let inner = 1;
  for (let i = 0; i < axis; i++) outer *= shape[i]!;
  for (let i = axis + 1; i < shape.length; i++) inner *= shape[i]!;
  return { outer, len: shape[axis]!, inner };
}
