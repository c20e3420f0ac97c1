/**
 * Concrete tensors: row-major values held in the dtype's natural typed array (Float32Array for f32, f16 and bf16 —
 * both exact in f32 —, Int32Array for i32, Uint8Array for u8 / u4 / bool, …). 64-bit integers are held as float64
 * values, exact to 2^53 (feeds may come as BigInt64Array or bigint values; larger magnitudes are a typed error).
 * The reference computes in float64 on scratch tensors (`scratchTensor`) and stores each result in its natural array.
 */
import { dtypeInfo, isDType, isFloat, roundArray, roundToDtype, type DType } from './dtype.js';
import { KilnError } from './errors.js';
import { numel, stridesOf } from './shape.js';

/** The typed arrays a tensor's values live in. */
export type TensorData =
  Float64Array | Float32Array | Int32Array | Uint32Array | Int16Array | Uint16Array | Int8Array | Uint8Array;

export interface Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

/** What callers may hand kiln as a tensor: any numeric array, or bigint arrays for 64-bit integers. */
export interface TensorLike {
  readonly dtype: DType | string;
  readonly shape: readonly number[];
  readonly data: TensorData | BigInt64Array | BigUint64Array | ArrayLike<number> | ArrayLike<bigint>;
}

/** Largest tensor the reference materializes (elements); past it a typed error, not an out-of-memory crash. */
export const MAX_REFERENCE_ELEMENTS = 2 ** 27;

type ArrayCtor = new (n: number) => TensorData;
const NATURAL: Record<DType, ArrayCtor> = {
  f64: Float64Array,
  f32: Float32Array,
  f16: Float32Array,
  bf16: Float32Array,
  i64: Float64Array,
  u64: Float64Array,
  i32: Int32Array,
  u32: Uint32Array,
  i16: Int16Array,
  u16: Uint16Array,
  i8: Int8Array,
  i4: Int8Array,
  u8: Uint8Array,
  u4: Uint8Array,
  bool: Uint8Array,
};

/** A zeroed array of `dtype`'s natural kind. */
export function naturalArray(dtype: DType, n: number): TensorData {
  return new NATURAL[dtype](n);
}

/** True when `data` is already the natural array of `dtype` (so it can be taken without a copy). */
export function isNaturalArray(dtype: DType, data: unknown): data is TensorData {
  return data instanceof NATURAL[dtype];
}

function checkShape(shape: readonly number[], where: { tensor?: string }): number {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new KilnError('shape', `invalid shape [${String(shape)}]: dims must be non-negative integers`, where);
  }
  const n = numel(shape);
  if (!(n <= MAX_REFERENCE_ELEMENTS)) {
    throw new KilnError('limit', `tensor of shape [${shape}] exceeds ${MAX_REFERENCE_ELEMENTS} elements`, {
      ...where,
      limit: 'MAX_REFERENCE_ELEMENTS',
    });
  }
  return n;
}

/** A float64 value of an integer dtype from a number or bigint; a typed error for NaN, fractions, out of range. */
function intValue(dtype: DType, v: number | bigint, i: number, where: { tensor?: string }): number {
  const info = dtypeInfo(dtype);
  if (typeof v === 'bigint') {
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new KilnError('limit', `element ${i} = ${v} of a ${dtype} tensor is beyond 2^53, kiln's integer range`, {
        ...where,
        limit: 'i64 exact to 2^53',
      });
    }
    v = Number(v);
  }
  if (!Number.isInteger(v) || v < info.min || v > info.max) {
    const why = Number.isNaN(v)
      ? 'NaN'
      : !Number.isInteger(v)
        ? 'not an integer'
        : `outside [${info.min}, ${info.max}]`;
    throw new KilnError('dtype', `element ${i} = ${v} of a ${dtype} tensor is ${why}`, where);
  }
  return v;
}

/**
 * A tensor of `dtype` and `shape` from caller data, validated: integer and bool dtypes reject NaN, fractions and
 * out-of-range values; float values are rounded to the dtype (f16 / bf16 nearest-even). An array that already is the
 * dtype's natural kind is taken without a copy (f32 data as a Float32Array, i32 as an Int32Array …). Without `data`
 * the tensor is zero-filled; `where.tensor` names the tensor in errors.
 *
 * @throws KilnError (code `dtype`) for an unknown dtype or an invalid element (index and value in the message);
 * (code `shape`) for a shape that is not a list of non-negative integers or data of the wrong length; (code `limit`)
 * for more than {@link MAX_REFERENCE_ELEMENTS} elements.
 */
export function makeTensor(
  dtype: DType,
  shape: readonly number[],
  data?: TensorLike['data'],
  where: { tensor?: string } = {},
): Tensor {
  if (!isDType(dtype)) {
    throw new KilnError('dtype', `unknown dtype '${String(dtype)}'`, where);
  }
  const n = checkShape(shape, where);
  if (data === undefined) return { dtype, shape: [...shape], data: naturalArray(dtype, n) };
  if (data.length !== n) {
    throw new KilnError('shape', `tensor of shape [${shape}] needs ${n} values, got ${data.length}`, where);
  }
  if (isFloat(dtype)) {
    if (isNaturalArray(dtype, data) && (dtype === 'f32' || dtype === 'f64')) return { dtype, shape: [...shape], data };
    const out = naturalArray(dtype, n);
    if (dtype === 'f32' || dtype === 'f64') out.set(data as ArrayLike<number>);
    else for (let i = 0; i < n; i++) out[i] = roundToDtype(dtype, Number((data as ArrayLike<number>)[i]));
    return { dtype, shape: [...shape], data: out };
  }
  if (dtype === 'bool') {
    const out = naturalArray(dtype, n);
    for (let i = 0; i < n; i++) {
      const v = (data as ArrayLike<number | bigint | boolean>)[i]!;
      if (!(v === 0 || v === 1 || v === true || v === false || v === 0n || v === 1n)) {
        throw new KilnError('dtype', `element ${i} = ${String(v)} of a bool tensor is not 0 / 1`, where);
      }
      out[i] = Number(v);
    }
    return { dtype, shape: [...shape], data: out };
  }
  const natural = isNaturalArray(dtype, data) && !(data instanceof Float64Array);
  const out = natural ? data : naturalArray(dtype, n);
  for (let i = 0; i < n; i++) {
    const v = intValue(dtype, (data as ArrayLike<number | bigint>)[i]!, i, where);
    if (!natural) out[i] = v;
  }
  return { dtype, shape: [...shape], data: out };
}

/**
 * A caller's tensor-like feed as a kiln tensor: dtype known, length matching the shape, values valid for the dtype.
 * `name` locates errors.
 *
 * @throws KilnError naming the tensor (code `runtime`) when `t` is not `{ dtype, shape, data }`; otherwise as
 * {@link makeTensor}.
 */
export function toTensor(t: TensorLike, name: string): Tensor {
  if (t === null || typeof t !== 'object' || !('data' in t) || !('shape' in t)) {
    throw new KilnError('runtime', 'feed is not a tensor ({ dtype, shape, data })', { tensor: name });
  }
  return makeTensor(t.dtype as DType, t.shape, t.data, { tensor: name });
}

/**
 * Internal: a tensor from float64 values computed with the reference semantics, stored in the natural array with the
 * dtype's rounding (floats nearest-even, integers wrapped two's-complement, bool nonzero → 1). No validation: this is
 * how computed results — which may legitimately wrap — are stored.
 */
export function fromValues(dtype: DType, shape: readonly number[], values: ArrayLike<number>): Tensor {
  const n = checkShape(shape, {});
  if (values.length !== n)
    throw new KilnError('shape', `tensor of shape [${shape}] needs ${n} values, got ${values.length}`);
  if (isNaturalArray(dtype, values) && (dtype === 'f32' || dtype === 'f64' || !isFloat(dtype))) {
    // already stored in the dtype's array: its values are representable (integer arrays are exact, not wrapped)
    if (dtype === 'f32' || dtype === 'f64' || !(values instanceof Float64Array)) {
      return { dtype, shape: [...shape], data: values };
    }
  }
  const out = naturalArray(dtype, n);
  if (dtype === 'f32' || dtype === 'f64') out.set(values);
  else for (let i = 0; i < n; i++) out[i] = roundToDtype(dtype, values[i]!);
  return { dtype, shape: [...shape], data: out };
}

/**
 * Internal: a zeroed float64 tensor for a reference to fill (full float64 precision while computing; the interpreter
 * rounds and stores the result in the natural array once).
 */
export function scratchTensor(
  dtype: DType,
  shape: readonly number[],
  values?: ArrayLike<number>,
): Tensor & { data: Float64Array } {
  const n = checkShape(shape, {});
  const data = new Float64Array(n);
  if (values !== undefined) {
    if (values.length !== n)
      throw new KilnError('shape', `tensor of shape [${shape}] needs ${n} values, got ${values.length}`);
    data.set(values);
    roundArray(dtype, data);
  }
  return { dtype, shape: [...shape], data };
}

/**
 * A rank-0 tensor holding `v` (validated as {@link makeTensor}).
 *
 * @throws KilnError (code `dtype`) when `v` does not fit an integer / bool dtype (NaN, a fraction, out of range).
 */
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

/** The values of a 64-bit integer tensor as a BigInt64Array (as onnxruntime users read int64 outputs). */
export function toBigInt64Array(t: Tensor): BigInt64Array {
  const out = new BigInt64Array(t.data.length);
  for (let i = 0; i < out.length; i++) out[i] = BigInt(Math.trunc(t.data[i]!));
  return out;
}
