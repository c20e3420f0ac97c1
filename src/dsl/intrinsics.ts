/**
 * The DSL's types and intrinsics as plain TypeScript: a DSL function type-checks as ordinary code and runs in JS (in
 * float64) as its own reference. Each type name is both a type alias and a cast function (`f32(i)`, `i32(x)`), as in
 * WGSL. The kernel side of every intrinsic lives in emit.ts; the JS definitions here are what the kernels must match.
 */
import { roundF16 } from '../../ir/dtype.js';
import { erf as refErf } from '../../ir/ops/math.js';

/** 32-bit float (kernels compute in f32; the JS reference in float64). */
export type f32 = number;
/** 16-bit float: stored as f16, computed in f32 inside kernels. */
export type f16 = number;
/** 32-bit signed integer. */
export type i32 = number;
/** 32-bit unsigned integer. */
export type u32 = number;
/** Boolean. */
export type bool = boolean;

const num = (x: number | boolean): number => (typeof x === 'boolean' ? (x ? 1 : 0) : x);

/** Convert to f32 (a bool is 1 or 0). */
export function f32(x: number | boolean): number {
  return Math.fround(num(x));
}
/** Convert to f16 (round to nearest even). */
export function f16(x: number | boolean): number {
  return roundF16(num(x));
}
/** Convert to i32: floats truncate toward zero, NaN becomes 0; integers wrap to 32 bits. */
export function i32(x: number | boolean): number {
  const v = num(x);
  if (Number.isNaN(v)) return 0;
  return Math.trunc(v) | 0;
}
/** Convert to u32: floats truncate toward zero, NaN becomes 0; integers wrap to 32 bits. */
export function u32(x: number | boolean): number {
  const v = num(x);
  if (Number.isNaN(v)) return 0;
  return Math.trunc(v) >>> 0;
}
/** Convert to bool: nonzero (NaN included) is true. */
export function bool(x: number | boolean): boolean {
  return typeof x === 'boolean' ? x : x !== 0;
}

/** 1 / (1 + e^−x) (a kernel's `sigmoid`). */
export const sigmoid = (x: f32): f32 => 1 / (1 + Math.exp(-x));
/** max(x, 0) (NaN stays NaN). */
export const relu = (x: f32): f32 => (x < 0 ? 0 : x);
/** x · sigmoid(x). */
export const silu = (x: f32): f32 => x * sigmoid(x);
/** 1 / √x (a kernel's `inverseSqrt` / `rsqrtf`). */
export const rsqrt = (x: f32): f32 => 1 / Math.sqrt(x);
/** E^x — `Math.exp` in the reference, the target's builtin in kernels. */
export const exp = Math.exp;
/** Natural logarithm — `Math.log` in the reference, the target's builtin in kernels. */
export const log = Math.log;
/** Square root — `Math.sqrt` in the reference, the target's builtin in kernels. */
export const sqrt = Math.sqrt;
/** Hyperbolic tangent — `Math.tanh` in the reference, the target's builtin in kernels. */
export const tanh = Math.tanh;
/** Absolute value — `Math.abs` in the reference, the target's builtin in kernels. */
export const abs = Math.abs;
/** Round toward −∞ — `Math.floor` in the reference, the target's builtin in kernels. */
export const floor = Math.floor;
/** Round toward +∞ — `Math.ceil` in the reference, the target's builtin in kernels. */
export const ceil = Math.ceil;
/** Round toward zero — `Math.trunc` in the reference, the target's builtin in kernels. */
export const trunc = Math.trunc;
/** Sine (radians) — `Math.sin` in the reference, the target's builtin in kernels. */
export const sin = Math.sin;
/** Cosine (radians) — `Math.cos` in the reference, the target's builtin in kernels. */
export const cos = Math.cos;
/** Tangent (radians) — `Math.tan` in the reference, the target's builtin in kernels. */
export const tan = Math.tan;
/** Arc sine — `Math.asin` in the reference, the target's builtin in kernels. */
export const asin = Math.asin;
/** Arc cosine — `Math.acos` in the reference, the target's builtin in kernels. */
export const acos = Math.acos;
/** Arc tangent — `Math.atan` in the reference, the target's builtin in kernels. */
export const atan = Math.atan;
/** X^y — `Math.pow` in the reference, the target's builtin in kernels. */
export const pow = Math.pow;

/** Gauss error function (the float64 one the reference interpreter uses). */
export const erf = (x: f32): f32 => refErf(x);

/** GELU with erf. */
export const gelu = (x: f32): f32 => 0.5 * x * (1 + erf(x / Math.SQRT2));

/** Smaller of the operands; NaN propagates (as Math.min). */
export const min = (a: number, b: number): number => Math.min(a, b);
/** Larger of the operands; NaN propagates (as Math.max). */
export const max = (a: number, b: number): number => Math.max(a, b);
/** min(max(x, lo), hi); NaN propagates. */
export const clamp = (x: number, lo: number, hi: number): number => Math.min(Math.max(x, lo), hi);
/** `cond ? a : b` (both operands are evaluated in kernels). */
export function select<T extends number | boolean>(cond: boolean, a: T, b: T): T {
  return cond ? a : b;
}
/** Integer division truncating toward zero; division by zero gives 0. */
export const idiv = (a: i32, b: i32): i32 => (b === 0 ? 0 : Math.trunc(a / b));
/** Round half up, as Math.round does (-2.5 → -2). */
export const round = Math.round;
/** sign(x): -1, 0 or 1; NaN stays NaN. */
export const sign = Math.sign;

/** Every intrinsic by name (the JS values a DSL source string is evaluated with). */
export const INTRINSICS: Readonly<Record<string, unknown>> = {
  f32,
  f16,
  i32,
  u32,
  bool,
  sigmoid,
  relu,
  silu,
  gelu,
  rsqrt,
  exp,
  log,
  sqrt,
  tanh,
  erf,
  abs,
  floor,
  ceil,
  trunc,
  round,
  sign,
  sin,
  cos,
  tan,
  asin,
  acos,
  atan,
  pow,
  min,
  max,
  clamp,
  select,
  idiv,
};
