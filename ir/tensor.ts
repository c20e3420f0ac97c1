/**
 * Concrete tensors as the reference interpreter sees them: every dtype held as float64 values (already rounded to
 * the dtype's storage), row-major. 64-bit integers beyond 2^53 lose precision here; kiln documents that limit.
 */
import { roundArray, type DType } from './dtype.js';
import { KilnError } from './errors.js';
import { numel, stridesOf } from './shape.js';

export interface Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: Float64Array;
}

/** Largest tensor the reference materializes (elements); past it a typed error, not an out-of-memory crash. */
export const MAX_REFERENCE_ELEMENTS = 2 ** 27;

export function makeTensor(dtype: DType, shape: readonly number[], data?: ArrayLike<number>, round = true): Tensor {
  const n = numel(shape);
  if (!(n <= MAX_REFERENCE_ELEMENTS) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new KilnError(
      'limit',
      `tensor of shape [${shape}] is invalid or exceeds ${MAX_REFERENCE_ELEMENTS} elements`,
      {
        limit: 'MAX_REFERENCE_ELEMENTS',
      },
    );
  }
  const d = new Float64Array(n);
  if (data !== undefined) {
    if (data.length !== n) throw new RangeError(`tensor of shape [${shape}] needs ${n} values, got ${data.length}`);
    d.set(data);
    if (round) roundArray(dtype, d);
  }
  return { dtype, shape: [...shape], data: d };
}

export function scalar(dtype: DType, v: number): Tensor {
  return makeTensor(dtype, [], [v]);
}

export { numel, stridesOf };

/** Read element at a multi-index. */
export function at(t: Tensor, idx: readonly number[]): number {
  const s = stridesOf(t.shape);
  let off = 0;
  for (let i = 0; i < idx.length; i++) off += idx[i]! * s[i]!;
  return t.data[off]!;
}

/** A copy that shares no memory with `t`. */
export function cloneTensor(t: Tensor): Tensor {
  return { dtype: t.dtype, shape: [...t.shape], data: t.data.slice() };
}
