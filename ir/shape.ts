/**
 * Shapes with symbolic dimensions. A dim is a non-negative integer or a symbol (`batch`, `seq`, `past+seq`).
 * Symbols are strings: two dims are known equal only when they are the same number or the same string; composite
 * ones (`past+seq`, `2*seq`) are built and parsed by `dim-expr.ts`.
 */
import { evalDim, isSymbol } from './dim-expr.js';
import { VerifyError, type ErrorLocation } from './errors.js';

export { dimProduct, dimSum } from './dim-expr.js';

export type Dim = number | string;
export type Shape = readonly Dim[];

/** Whether every dim of `s` is a number (no symbols). */
export const isStatic = (s: Shape): s is readonly number[] => s.every((d) => typeof d === 'number');

/** Number of elements of a concrete shape (1 for a scalar `[]`). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides of a concrete shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** A shape as IR text writes it: `[2,seq,64]`. */
export function shapeToString(s: Shape): string {
  return `[${s.map(dimToString).join(',')}]`;
}

/** One dim as text: a number, a symbol name, or a quoted composite (`"past+seq"`). */
export function dimToString(d: Dim): string {
  if (typeof d === 'number') return String(d);
  return isSymbol(d) ? d : JSON.stringify(d);
}

/**
 * Normalize an axis in [-rank, rank) to [0, rank).
 *
 * @throws VerifyError at `loc` when `axis` is not an integer in that range.
 */
export function normAxis(axis: number, rank: number, loc: ErrorLocation = {}): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new VerifyError(`axis ${axis} out of range for rank ${rank}`, loc);
  }
  return axis < 0 ? axis + rank : axis;
}

/**
 * Numpy-style broadcast of shapes; symbolic dims broadcast against 1 and against themselves (a symbol against a
 * number gives the number; equality is checked at run time).
 *
 * @throws VerifyError at `loc` when two numeric dims differ and neither is 1.
 */
export function broadcastShapes(shapes: readonly Shape[], loc: ErrorLocation = {}): Dim[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const j = i - (rank - s.length);
      if (j < 0) continue;
      const e = s[j]!;
      if (e === 1) continue;
      if (d === 1) d = e;
      else if (d !== e) {
        if (typeof d === 'number' && typeof e === 'number') {
          throw new VerifyError(
            `cannot broadcast shapes ${shapes.map(shapeToString).join(' and ')} (dim ${i}: ${d} vs ${e})`,
            loc,
          );
        }
        // A symbol against a different symbol or a number: legal at run time only if they are equal, which the
        // interpreter checks; the number is the more informative static answer.
        if (typeof e === 'number') d = e;
      }
    }
    out.push(d);
  }
  return out;
}

/**
 * Bind symbolic dims of `shape` against a concrete shape; returns false on a conflict. Plain symbols bind first;
 * then an expression dim (`seq+1`, `batch*heads`) whose symbols are all bound is evaluated and must match. One with
 * an unbound symbol (or outside the expression syntax) is not checked.
 */
export function bindShape(shape: Shape, concrete: readonly number[], env: Map<string, number>): boolean {
  if (shape.length !== concrete.length) return false;
  const exprs: number[] = [];
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i]!;
    const c = concrete[i]!;
    if (typeof d === 'number') {
      if (d !== c) return false;
    } else if (isSymbol(d)) {
      const prev = env.get(d);
      if (prev === undefined) env.set(d, c);
      else if (prev !== c) return false;
    } else exprs.push(i);
  }
  for (const i of exprs) {
    let v: number;
    try {
      v = evalDim(shape[i]!, env);
    } catch {
      continue;
    }
    if (v !== concrete[i]) return false;
  }
  return true;
}
