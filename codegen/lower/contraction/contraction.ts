/**
 * The *strided batched contraction* every contraction lowering (matmul, gemm, matmul_integer, einsum) is first
 * described as: index spaces batch, m, n, k (each a list of axes, so einsum's multi-label groups fit), and per
 * operand a stride for every axis (0 where it does not depend on the axis: broadcasting, or the other operand's free
 * axis). Then
 *
 *   out[batch, m, n] = epilogue( Σ_k (a[batch, m, k] − az[...]) · (b[batch, k, n] − bz[...]) )
 *
 * with optional zero points (matmul_integer) and gemm's `alpha · acc + beta · c`. Sizes, strides (broadcast zeros
 * included), alpha and beta are uniforms; the code depends only on dtypes, the number of axes per index space, which
 * operands exist, and the schedule (`tiled.ts`, `skinny.ts`, `loop.ts`; chosen in `lower.ts`).
 *
 * Integer dtypes accumulate in i32 / u32 (two's-complement wrap = the reference's wrap to the dtype; i64 / u64 are
 * held in 32 bits, exact while results fit).
 */

import type { Expr, KType } from '../../kir.js';
import type { KernelBuilder, LowerCtx, LoweredStep } from '../kernel-builder.js';

export type Cat = 'batch' | 'm' | 'n' | 'k';
const CATS: readonly Cat[] = ['batch', 'm', 'n', 'k'];

/** Sizes (in `Contraction.dims`) or strides (in a view) per axis of each index space. */
export interface Axes {
  batch: number[];
  m: number[];
  n: number[];
  k: number[];
}

/** A node input seen through strides over the contraction's axes. */
export interface View {
  input: number;
  st: Axes;
  /** Element offset of the input's element 0 (an input read through its strided layout). */
  offset?: number;
}

export interface Contraction {
  label: string;
  dims: Axes;
  a: View;
  b: View;
  /** Subtracted from a / b elements (matmul_integer zero points), viewed over the same axes. */
  aZero?: View;
  bZero?: View;
  /** gemm: out = alpha · acc + beta · bias (bias over batch/m/n). */
  bias?: View;
  alpha: number;
  beta: number;
  /** gemm: apply alpha (and beta to the bias); matmul-like ops store the sum as is. */
  scaled?: boolean;
  /** Strides of the output over batch / m / n (k unused). */
  out: Axes;
  /**
   * A fused epilogue: inputs read at each output element (broadcast over batch / m / n, k strides 0) and the value
   * stored, from the (alpha / beta applied) sum and those inputs' values in the compute type.
   */
  extras?: View[];
  post?: (kb: KernelBuilder, acc: Expr, extras: readonly Expr[], at: OutputAt) => Expr;
  /**
   * A load hook for b (block-quantized weights, `codegen/lower/blockq.ts`): called once per kernel to bind its own
   * buffers, it returns b's element at an index of b's view, dequantized in the compute type. b's input is then
   * not bound as a plain buffer; every schedule reads b through it.
   */
  bLoad?: (kb: KernelBuilder) => (index: Expr) => Expr;
  /**
   * A norm of a's rows fused before the product (a's k axis is the normalized one); b's element at k is multiplied
   * by the norm's weight (a view over k only) as it is loaded. `rms`: every schedule also sums a² along k and scales
   * the sum by 1 / √(Σa² / K + eps) — (a / rms(a) ⊙ w) · b, reassociated. `layer` (no bias: the caller folds β·b into
   * the epilogue): a is shifted by its row's first element a₀ (shifted moments, as the layer-norm kernel: a constant
   * row gives exactly 0), the schedules sum a', a'² and, per output column, the scaled b; the result is
   * (Σ a'·b − μ'·Σ b) / √(σ² + eps) with μ' = Σa' / K, σ² = Σa'² / K − μ'².
   */
  rowNorm?: { weight: View; eps: number; kind: 'rms' | 'layer' };
  /**
   * b as packed words of W [N, K] rows (block-quantized weights): with it, decode-sized products (M ≤ 4) run the
   * packed-word GEMV (`packed.ts`), which reads whole words instead of elements through `bLoad`.
   */
  packedB?: PackedB;
  /**
   * A weight format's own schedule, tried first (on the simplified contraction): a step, or undefined where it does
   * not apply (GGUF blocks: the block GEMV of `codegen/lower/ggml.ts`).
   */
  schedule?: (ctx: LowerCtx, con: Contraction, target: KType) => LoweredStep | undefined;
}

/** W [N, K] stored as rows of u32 words of `bits`-bit fields (low bits first), blocks of `block` k sharing a scale. */
export interface PackedB {
  bits: 4 | 8;
  block: number;
  K: number;
  N: number;
  /** u32 words per row of W (its padded blocks). */
  rowWords: number;
  /** Binds the weight's buffers in a kernel; returns its word (row n, word w), scale and zero point (row n, block j). */
  bind(kb: KernelBuilder): {
    word: (n: Expr, w: Expr) => Expr;
    scale: (n: Expr, j: Expr) => Expr;
    zero: (n: Expr, j: Expr) => Expr;
  };
}

/** The output element an epilogue computes: its flat m and n indices (within the batch). */
export interface OutputAt {
  m: Expr;
  n: Expr;
}

export const zeros = (n: number) => new Array<number>(n).fill(0);
export const prod = (xs: readonly number[]) => xs.reduce((p, x) => p * x, 1);
export const total = (con: Contraction, cat: Cat) => prod(con.dims[cat]);

function views(con: Contraction): Axes[] {
  const vs = [con.a.st, con.b.st, con.out];
  for (const x of [con.aZero, con.bZero, con.bias, con.rowNorm?.weight, ...(con.extras ?? [])]) if (x) vs.push(x.st);
  return vs;
}

/** The views read at each output element: the bias, then the epilogue's extras (stride roles `c`, `e0`, `e1`…). */
export function outputReads(con: Contraction): { w: View; name: string }[] {
  const out = con.bias ? [{ w: con.bias, name: 'c' }] : [];
  (con.extras ?? []).forEach((w, i) => out.push({ w, name: `e${i}` }));
  return out;
}

/** Drop axes of size 1 (their index is always 0) and merge neighbours that every view walks contiguously. */
export function simplify(con: Contraction): Contraction {
  const all = views(con);
  for (const cat of CATS) {
    const dims = con.dims[cat];
    const keep = dims.map((d) => d !== 1);
    let nd: number[] = [];
    let ns: number[][] = all.map(() => []);
    dims.forEach((d, i) => {
      if (!keep[i]) return;
      const j = nd.length - 1;
      if (j >= 0 && all.every((s, q) => ns[q]![j] === s[cat][i]! * d)) {
        nd[j] = nd[j]! * d;
        all.forEach((s, q) => (ns[q]![j] = s[cat][i]!));
        return;
      }
      nd.push(d);
      all.forEach((s, q) => ns[q]!.push(s[cat][i]!));
    });
    // a size-0 axis makes the whole space empty: keep it as a single 0
    if (dims.includes(0)) {
      nd = [0];
      ns = all.map(() => [0]);
    }
    con.dims[cat] = nd;
    all.forEach((s, q) => (s[cat] = ns[q]!));
  }
  return con;
}

/** Is the last axis of `cat` the contiguous one of this view? */
export const contiguousOn = (w: Axes, cat: Cat) => w[cat].length > 0 && w[cat][w[cat].length - 1] === 1;
