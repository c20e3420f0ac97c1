/**
 * Element types and their storage rules. The reference interpreter computes in float64 and rounds every tensor it
 * produces to the storage dtype (`roundToDtype`), so f16 / bf16 / integer results match what hardware stores.
 */
export const DTYPES = [
  'f64',
  'f32',
  'f16',
  'bf16',
  'i64',
  'i32',
  'i16',
  'i8',
  'u64',
  'u32',
  'u16',
  'u8',
  'i4',
  'u4',
  'bool',
] as const;

export type DType = (typeof DTYPES)[number];

export interface DTypeInfo {
  readonly name: DType;
  /** Bits per element in storage (i4/u4 are packed two per byte). */
  readonly bits: number;
  readonly kind: 'float' | 'int' | 'uint' | 'bool';
  /** Smallest / largest representable value (floats: finite max). */
  readonly min: number;
  readonly max: number;
}

function intInfo(name: DType, bits: number, signed: boolean): DTypeInfo {
  return signed
    ? { name, bits, kind: 'int', min: -(2 ** (bits - 1)), max: 2 ** (bits - 1) - 1 }
    : { name, bits, kind: 'uint', min: 0, max: 2 ** bits - 1 };
}

const INFO: Record<DType, DTypeInfo> = {
  f64: { name: 'f64', bits: 64, kind: 'float', min: -Number.MAX_VALUE, max: Number.MAX_VALUE },
  f32: { name: 'f32', bits: 32, kind: 'float', min: -3.4028234663852886e38, max: 3.4028234663852886e38 },
  f16: { name: 'f16', bits: 16, kind: 'float', min: -65504, max: 65504 },
  bf16: { name: 'bf16', bits: 16, kind: 'float', min: -3.3895313892515355e38, max: 3.3895313892515355e38 },
  i64: intInfo('i64', 64, true),
  i32: intInfo('i32', 32, true),
  i16: intInfo('i16', 16, true),
  i8: intInfo('i8', 8, true),
  u64: intInfo('u64', 64, false),
  u32: intInfo('u32', 32, false),
  u16: intInfo('u16', 16, false),
  u8: intInfo('u8', 8, false),
  i4: intInfo('i4', 4, true),
  u4: intInfo('u4', 4, false),
  bool: { name: 'bool', bits: 8, kind: 'bool', min: 0, max: 1 },
};

/** Bits, kind (`float` / `int` / `uint` / `bool`) and representable range of a dtype. */
export function dtypeInfo(dt: DType): DTypeInfo {
  return INFO[dt];
}

/** Whether `s` names a kiln dtype (`f32`, `i64`, `bool` …). */
export function isDType(s: string): s is DType {
  return (DTYPES as readonly string[]).includes(s);
}

/** Whether `dt` is a floating-point dtype (f64, f32, f16, bf16). */
export const isFloat = (dt: DType): boolean => INFO[dt].kind === 'float';
/** Whether `dt` is a signed or unsigned integer dtype (bool is not). */
export const isInteger = (dt: DType): boolean => INFO[dt].kind === 'int' || INFO[dt].kind === 'uint';
/** Whether `dt` holds negative values (signed integers and floats). */
export const isSigned = (dt: DType): boolean => INFO[dt].kind === 'int' || INFO[dt].kind === 'float';

/** Bytes needed to store `n` elements of `dt` (sub-byte types packed). */
export function storageBytes(dt: DType, n: number): number {
  return Math.ceil((INFO[dt].bits * n) / 8);
}

// ---- float16 / bfloat16 rounding (round to nearest, ties to even; overflow to ±inf) ----

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** float64 → nearest f16 value (returned as float64). Rounds once, directly from float64 (no double rounding). */
export function roundF16(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  if (a >= 65520) return x > 0 ? Infinity : -Infinity; // 65504 + half ulp(32) rounds to inf
  // exponent of a; subnormal f16 spacing is 2^-24
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a)
    e -= 1; // guard against log2 rounding
  else if (2 ** (e + 1) <= a) e += 1;
  const ulp = 2 ** Math.max(e - 10, -24);
  return Math.sign(x) * roundHalfEven(a / ulp) * ulp;
}

/** float64 → nearest bf16 value (returned as float64). */
export function roundBF16(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1;
  else if (2 ** (e + 1) <= a) e += 1;
  const ulp = 2 ** Math.max(e - 7, -133);
  const r = roundHalfEven(a / ulp) * ulp;
  // bf16 max finite = (2 - 2^-7) * 2^127; anything rounding past it is inf
  if (r > 3.3895313892515355e38) return x > 0 ? Infinity : -Infinity;
  return Math.sign(x) * r;
}

/** Round half to even for non-negative values. */
function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** f16 bit pattern → value. */
export function f16BitsToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** f16 value (already representable) → bit pattern. */
export function numberToF16Bits(x: number): number {
  const v = roundF16(x);
  if (Number.isNaN(v)) return 0x7e00;
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a === Infinity) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | Math.round(a / 2 ** -24);
  const e = Math.floor(Math.log2(a));
  const m = Math.round((a / 2 ** e - 1) * 1024);
  return sign | ((e + 15) << 10) | m;
}

/** bf16 bit pattern → value. */
export function bf16BitsToNumber(h: number): number {
  u32buf[0] = (h & 0xffff) << 16;
  return f32buf[0]!;
}

/** bf16 value → bit pattern. */
export function numberToBF16Bits(x: number): number {
  const v = roundBF16(x);
  if (Number.isNaN(v)) return 0x7fc0;
  f32buf[0] = v;
  return u32buf[0]! >>> 16;
}

// ---- integer conversion ----

/** Wrap an integer-valued float64 into the two's-complement range of `bits` (as C casts between ints do). */
function wrapInt(v: number, bits: number, signed: boolean): number {
  const m = 2 ** bits;
  let r = v - Math.floor(v / m) * m; // 0 <= r < m
  if (signed && r >= m / 2) r -= m;
  return r;
}

/**
 * Round / convert a float64 value to what `dt` stores, as float64.
 * Floats: IEEE rounding to nearest even. Integers: truncation toward zero then two's-complement wrap (values from
 * integer arithmetic are already integral); NaN → 0. Bool: nonzero → 1.
 */
export function roundToDtype(dt: DType, x: number): number {
  switch (dt) {
    case 'f64':
      return x;
    case 'f32':
      return Math.fround(x);
    case 'f16':
      return roundF16(x);
    case 'bf16':
      return roundBF16(x);
    case 'bool':
      return x !== 0 ? 1 : 0; // NaN is nonzero: true, as in C and numpy
    default: {
      if (Number.isNaN(x)) return 0;
      const info = INFO[dt];
      const t = Math.trunc(x);
      if (info.bits >= 64) {
        // float64 cannot hold all 64-bit integers; saturate at the edges instead of wrapping garbage.
        return Math.min(Math.max(t, info.min), info.max);
      }
      return wrapInt(t, info.bits, info.kind === 'int');
    }
  }
}

/** Round every element of `data` in place to `dt`. */
export function roundArray(dt: DType, data: Float64Array): Float64Array {
  if (dt === 'f64') return data;
  if (dt === 'f32') {
    for (let i = 0; i < data.length; i++) data[i] = Math.fround(data[i]!);
    return data;
  }
  for (let i = 0; i < data.length; i++) data[i] = roundToDtype(dt, data[i]!);
  return data;
}

/** Saturating float → integer conversion, as QuantizeLinear wants (round half to even, clamp). */
export function saturateToInt(dt: DType, x: number): number {
  const info = INFO[dt];
  return Math.min(Math.max(roundHalfEvenSigned(x), info.min), info.max);
}

/** `x` rounded to the nearest integer, ties to even (−2.5 → −2, 3.5 → 4). */
export function roundHalfEvenSigned(x: number): number {
  return x < 0 ? -roundHalfEven(-x) : roundHalfEven(x);
}

/**
 * DESIGN.md's numerical conventions: how far a device or a pass may stray from the float64 reference, per dtype —
 * elementwise |got − ref| ≤ abs + rel·|ref| and in aggregate rel-L2 ≤ rel. f32 is 10× looser in `rel` after long
 * reductions (sums of many rounded terms); integers and bool are exact.
 */
export function dtypeTolerance(dt: DType, longReduction = false): { rel: number; abs: number } {
  switch (dt) {
    case 'f16':
      return { rel: 2e-3, abs: 2e-3 };
    case 'bf16':
      return { rel: 1e-2, abs: 1e-2 };
    case 'f32':
    case 'f64':
      return longReduction ? { rel: 1e-4, abs: 1e-5 } : { rel: 1e-5, abs: 1e-5 };
    default:
      return { rel: 0, abs: 0 };
  }
}
