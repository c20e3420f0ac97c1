/**
 * Lowerings of matmul (numpy broadcasting, 1-D operands promoted), matmul_integer (zero points per row of a / per
 * column of b, or scalar) and gemm (transposes, alpha, beta, a bias broadcast to [M, N]): each op becomes a strided
 * batched contraction (`contraction/`) over its inputs' strides.
 */
import { KilnError, UnsupportedError } from '../../ir/errors.js';
import { stridesOf } from '../../ir/shape.js';
import { zeros, type Axes, type Contraction, type View } from './contraction/contraction.js';
import { dot4Schedule } from './contraction/dot4.js';
import { lowerContraction } from './contraction/lower.js';
import type { LowerCtx } from './kernel-builder.js';
import { registerLowering } from './registry.js';
import { computeType, storageOf } from './storage.js';
import { PACK } from '../kir.js';

/** A view of an operand of numpy matmul (1-D promoted), given strides over its own dims. */
function matmulView(
  input: number,
  shape: readonly number[],
  { st, offset }: { st: readonly number[]; offset?: number },
  role: 'a' | 'b',
  batch: readonly number[],
): View {
  const r = shape.length;
  const ax: Axes = { batch: zeros(batch.length), m: [0], n: [0], k: [0] };
  if (r === 1) ax.k = [st[0]!];
  else if (role === 'a') {
    ax.m = [st[r - 2]!];
    ax.k = [st[r - 1]!];
  } else {
    ax.k = [st[r - 2]!];
    ax.n = [st[r - 1]!];
  }
  const xb = r > 2 ? shape.slice(0, r - 2) : [];
  for (let d = 0; d < batch.length; d++) {
    const j = d - (batch.length - xb.length);
    ax.batch[d] = j < 0 || xb[j] === 1 ? 0 : st[j]!;
  }
  // a free dim of size 1 (promoted or real) is never indexed
  if (r > 1 && role === 'a' && shape[r - 2] === 1) ax.m = [0];
  if (r > 1 && role === 'b' && shape[r - 1] === 1) ax.n = [0];
  return offset === undefined ? { input, st: ax } : { input, st: ax, offset };
}

/**
 * Strides of operand `i` over its own dims, and its element offset: its layout's when it is a view (the tiled and
 * skinny schedules index any strides), row-major otherwise — and always for packed outputs, whose loop schedule loads
 * through the pointwise template (remapped after lowering).
 */
function operand(ctx: LowerCtx, i: number): { st: number[]; offset?: number } {
  const t = ctx.inputs[i]!;
  const native = PACK[storageOf(ctx.outputs[0]!.dtype, ctx.caps)] === 1;
  return native && t.layout ? { st: [...t.layout.strides], offset: t.layout.offset } : { st: stridesOf(t.shape) };
}

/** Strides of `shape` broadcast against `target` (same rank after right alignment), 0 where it broadcasts. */
export function bstrides(shape: readonly number[], target: readonly number[]): number[] {
  const st = stridesOf(shape);
  return target.map((_, i) => {
    const j = i - (target.length - shape.length);
    return j < 0 || shape[j] === 1 ? 0 : st[j]!;
  });
}

/** A shape's or strides' last two entries swapped. */
const swap2 = (x: readonly number[]) => [...x.slice(0, -2), x[x.length - 1]!, x[x.length - 2]!];

/** numpy matmul as a contraction (output [...batch, M, N]); `transB`: b given as [..., N, K]. */
export function matmulContraction(ctx: LowerCtx, label: string, transB = false): Contraction {
  const a = ctx.inputs[0]!.shape;
  const b = transB ? swap2(ctx.inputs[1]!.shape) : ctx.inputs[1]!.shape;
  const bOp = operand(ctx, 1);
  if (transB) bOp.st = swap2(bOp.st);
  const a2 = a.length === 1 ? [1, a[0]!] : a;
  const b2 = b.length === 1 ? [b[0]!, 1] : b;
  const ab = a2.slice(0, -2);
  const bb = b2.slice(0, -2);
  const nb = Math.max(ab.length, bb.length);
  const batch: number[] = [];
  for (let d = 0; d < nb; d++) {
    const x = ab[d - (nb - ab.length)] ?? 1;
    const y = bb[d - (nb - bb.length)] ?? 1;
    batch.push(x === 1 ? y : x);
  }
  const M = a2[a2.length - 2]!;
  const K = a2[a2.length - 1]!;
  const N = b2[b2.length - 1]!;
  const bst = stridesOf(batch);
  return {
    label,
    dims: { batch, m: [M], n: [N], k: [K] },
    a: matmulView(0, a, operand(ctx, 0), 'a', batch),
    b: matmulView(1, b, bOp, 'b', batch),
    alpha: 1,
    beta: 1,
    out: { batch: bst.map((s) => s * M * N), m: [N], n: [1], k: [0] },
  };
}

registerLowering('matmul', (ctx) => lowerContraction(ctx, matmulContraction(ctx, 'matmul')));

registerLowering('matmul_integer', (ctx) => {
  const transB = Boolean(ctx.attrs['trans_b']);
  const con = matmulContraction(ctx, 'matmul_integer', transB);
  const zeroView = (i: number, perRow: boolean): View | undefined => {
    const z = ctx.inputs[i];
    if (!z) return undefined;
    const x = i === 3 && transB ? swap2(ctx.inputs[1]!.shape) : ctx.inputs[i - 2]!.shape;
    const zv = perRow && z.shape.length === 1 && x.length > 1 ? [z.shape[0]!, 1] : z.shape;
    if (zv.length > x.length) {
      throw new KilnError('shape', `zero point shape [${z.shape}] does not broadcast to [${x}]`, {
        node: ctx.node,
        op: ctx.op,
      });
    }
    return matmulView(i, x, { st: bstrides(zv, x) }, i === 2 ? 'a' : 'b', con.dims.batch);
  };
  con.aZero = zeroView(2, true);
  con.bZero = zeroView(3, false);
  con.schedule = dot4Schedule;
  return lowerContraction(ctx, con);
});

/** gemm as a contraction (output [M, N]): transposes, alpha, and beta · C broadcast to [M, N]. */
export function gemmContraction(ctx: LowerCtx): Contraction {
  const at = ctx.attrs;
  const dt = ctx.outputs[0]!.dtype;
  const alpha = at['alpha'] as number;
  const beta = at['beta'] as number;
  const ct = computeType(dt);
  if (ct !== 'f32' && !(Number.isInteger(alpha) && Number.isInteger(beta))) {
    throw new UnsupportedError(`gemm on ${dt} with non-integral alpha ${alpha} / beta ${beta}`, {
      node: ctx.node,
      op: ctx.op,
    });
  }
  const a = ctx.inputs[0]!.shape;
  const b = ctx.inputs[1]!.shape;
  const [M, K] = at['transA'] ? [a[1]!, a[0]!] : [a[0]!, a[1]!];
  const N = at['transB'] ? b[0]! : b[1]!;
  const { st: sa, offset: oa } = operand(ctx, 0);
  const { st: sb, offset: ob } = operand(ctx, 1);
  const con: Contraction = {
    label: 'gemm',
    scaled: true,
    dims: { batch: [], m: [M], n: [N], k: [K] },
    a: {
      input: 0,
      st: { batch: [], m: [at['transA'] ? sa[1]! : sa[0]!], n: [0], k: [at['transA'] ? sa[0]! : sa[1]!] },
      ...(oa !== undefined ? { offset: oa } : {}),
    },
    b: {
      input: 1,
      st: { batch: [], m: [0], n: [at['transB'] ? sb[0]! : sb[1]!], k: [at['transB'] ? sb[1]! : sb[0]!] },
      ...(ob !== undefined ? { offset: ob } : {}),
    },
    alpha,
    beta,
    out: { batch: [], m: [N], n: [1], k: [0] },
  };
  const cIn = ctx.inputs[2];
  if (cIn) {
    const cs = bstrides(cIn.shape, [M, N]);
    con.bias = { input: 2, st: { batch: [], m: [cs[0]!], n: [cs[1]!], k: [0] } };
  }
  return con;
}

registerLowering('gemm', (ctx) => lowerContraction(ctx, gemmContraction(ctx)));
