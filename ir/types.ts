/**
 * Tensor types: dtype + shape + layout. Layout is where quantization and sparsity live (DESIGN principle 2):
 * a pass that quantizes a weight changes its type, not its name.
 */
import type { DType } from './dtype.js';
import { shapeToString, type Shape } from './shape.js';

export type Layout =
  | { readonly kind: 'dense' }
  /** Block-quantized along `axis`: `group` elements share one scale (and zero point). */
  | {
      readonly kind: 'blockq';
      readonly bits: number;
      readonly group: number;
      readonly axis: number;
      readonly scale: DType;
      readonly zeroPoint: boolean;
    }
  /** N:M structured sparsity (2:4) along the last axis. */
  | { readonly kind: 'nm'; readonly n: number; readonly m: number }
  | { readonly kind: 'csr' }
  | { readonly kind: 'bsr'; readonly block: readonly [number, number] };

export const DENSE: Layout = Object.freeze({ kind: 'dense' });

export interface TensorType {
  readonly dtype: DType;
  readonly shape: Shape;
  readonly layout: Layout;
}

/** A tensor type (the shape copied); `layout` defaults to dense. */
export function tensorType(dtype: DType, shape: Shape, layout: Layout = DENSE): TensorType {
  return { dtype, shape: [...shape], layout };
}

/** A layout as IR text writes it (`blockq(bits=4,…)`, `nm(…)`); the empty string for dense. */
export function layoutToString(l: Layout): string {
  switch (l.kind) {
    case 'dense':
      return '';
    case 'blockq':
      return `blockq(bits=${l.bits},group=${l.group},axis=${l.axis},scale=${l.scale},zp=${l.zeroPoint ? 1 : 0})`;
    case 'nm':
      return `nm(${l.n}:${l.m})`;
    case 'csr':
      return 'csr';
    case 'bsr':
      return `bsr(${l.block[0]}x${l.block[1]})`;
  }
}

/** A type as IR text writes it: `f32[2,seq]`, followed by the layout when it is not dense. */
export function typeToString(t: TensorType): string {
  const l = layoutToString(t.layout);
  return `${t.dtype}${shapeToString(t.shape)}${l ? ' ' + l : ''}`;
}

/** Whether two types have the same dtype, shape (symbols compared by name) and layout. */
export function sameType(a: TensorType, b: TensorType): boolean {
  return typeToString(a) === typeToString(b);
}
