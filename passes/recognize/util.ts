/** Shared pattern pieces for recognition: constants matched to the exact value within f32 rounding. */
import type { Tensor } from '../../ir/tensor.js';
import { constant, op, type OpOptions, type OpPattern, type Pattern, type ValuePattern } from '../rewrite.js';

/**
 * A one-element constant within one f32 ulp of `exact` (exporters round √2, 1/√2, √(2/π), 0.044715 to f32, some
 * after computing them in f32). One element only, so a constant can never broadcast a pattern to a larger shape.
 */
export function near(name: string | undefined, exact: number): ValuePattern {
  return constant(name, (t) => t.data.length === 1 && Math.abs(t.data[0]! - exact) <= 2 ** -23 * Math.abs(exact));
}

/** A one-element constant that is exactly `x` (0.5, 1, 2, 3 are exact in every float dtype). */
export function exactly(name: string | undefined, x: number): ValuePattern {
  return constant(name, (t) => t.data.length === 1 && t.data[0] === x);
}

/** A one-element constant (epsilon), finite. */
export function scalar(name: string): ValuePattern {
  return constant(name, (t: Tensor) => t.data.length === 1 && Number.isFinite(t.data[0]!));
}

/** x², as Pow(x, 2) or Mul(x, x). */
export function square(x: Pattern): OpPattern[] {
  return [op('pow', [x, exactly(undefined, 2)]), op('mul', [x, x])];
}

/** x³, as Pow(x, 3), Mul(Mul(x, x), x) in either order. */
export function cube(x: Pattern): OpPattern[] {
  return [op('pow', [x, exactly(undefined, 3)]), op('mul', [op('mul', [x, x]), x])];
}

/** a / b as Div(a, b), Mul(a, Reciprocal(b)) or Mul(a, Div(1, b)). */
export function divide(a: Pattern, b: Pattern, o: OpOptions = {}): OpPattern[] {
  return [
    op('div', [a, b], o),
    op('mul', [a, op('reciprocal', [b])], o),
    op('mul', [a, op('div', [exactly(undefined, 1), b])], o),
  ];
}

/** a·b·c in any association and order: Mul(Mul(two of them), the third). */
export function product3(a: Pattern, b: Pattern, c: Pattern, o: OpOptions = {}): OpPattern[] {
  return [
    op('mul', [op('mul', [a, b]), c], o),
    op('mul', [op('mul', [a, c]), b], o),
    op('mul', [op('mul', [b, c]), a], o),
  ];
}

/** Every combination of the alternatives (a small cartesian product for variant patterns). */
export function variants<T extends unknown[]>(...lists: { [K in keyof T]: readonly T[K][] }): T[] {
  let out: unknown[][] = [[]];
  for (const l of lists) out = out.flatMap((pre) => l.map((x) => [...pre, x]));
  return out as T[];
}
