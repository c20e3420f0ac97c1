/**
 * A second schedule for `attention`: scores, softmax and P·V as three kernels of the existing templates — the
 * tiled / skinny contraction (scale and the additive mask as its epilogue), the row softmax, the contraction again —
 * through two scratch buffers. It moves the B·H·S·T scores through memory, which the one-kernel schedule never does,
 * but on adapters where that kernel's per-key loads are slow the templates win by several times (lavapipe:
 * `npm run bench -- attention` measured the one-kernel schedule 5–8× slower at N = 128…2048).
 *
 * `auto` takes it for more than ONE_KERNEL_MAX_QUERIES query rows; any schedule takes it only where it computes exactly what the op defines: no softcap, no mask_fill, no qk output, no nonpad masking, causal masking (as the scores' epilogue) only without a mask, a
 * float mask absent or host-known with an attendable key in every row and one column per key (a fully masked row is
 * zeros in the op but NaN through a softmax), past keys / values only through the `present` outputs, and scores
 * within SCORES_LIMIT elements.
 */
import { everyRowAttends } from '../../ir/ops/attention.js';
import { contiguousLayout, permuteLayout, reshapeLayout, type StridedLayout } from '../../ir/layout.js';
import { add, c, gt, mul, select, type Expr } from '../kir.js';
import { lowerContraction } from './contraction/lower.js';
import type { Binding, LowerCtx, LoweredStep, TensorInfo } from './kernel-builder.js';
import { bstrides, matmulContraction } from './matmul.js';
import { lowerNode } from './registry.js';

/** Scores elements above which the one-kernel schedule is kept (its memory does not grow with them). */
export const SCORES_LIMIT = 1 << 24;

/**
 * Query rows per (batch, head) up to which `auto` keeps the one-kernel schedule: decode and short verification
 * steps. Measured on lavapipe (12 heads of 64, one run): S = 1 is even at T = 4…2048 (0.66 vs 0.78 ms at T = 4,
 * 32 vs 33 ms at T = 2048) and S = 4 at T = 512 slightly faster in one kernel (21.7 vs 24.3 ms), while at S = 16 the
 * decomposed schedule wins 1.6× and at S = T = 128 5.7× — and one kernel is two launches fewer.
 */
export const ONE_KERNEL_MAX_QUERIES = 4;

interface Geom {
  rank: number;
  B: number;
  Hq: number;
  Hkv: number;
  S: number;
  T: number;
  P: number;
  D: number;
  Dv: number;
}

/** q / k / v as [B, H, L, size] over its buffer: its view's layout, or row-major 4-D / 3-D (undefined: no strides). */
function headsLayout(info: TensorInfo, rank: number, H: number): StridedLayout | undefined {
  const base = info.layout ?? contiguousLayout(info.shape);
  if (rank === 4) return base;
  const [B, L, HD] = info.shape as [number, number, number];
  const split = reshapeLayout(base, [B, L, H, HD / H]);
  return split && permuteLayout(split, [0, 2, 1, 3]);
}

/**
 * Rebind a template step built over a stand-in context: its input i reads `ins[i]`, its output writes `out`. The
 * inputs it indexes in place stay so where they are the node's inputs (a scratch or output buffer has no view).
 */
function rebind(step: LoweredStep, ins: readonly Binding[], out: Binding): LoweredStep {
  const bindings = step.bindings.map((b) => (b.kind === 'in' ? ins[b.index]! : b.kind === 'out' ? out : b));
  const physical = (step.physicalInputs ?? []).flatMap((i) => {
    const b = ins[i];
    return b?.kind === 'in' ? [b.index] : [];
  });
  return { ...step, bindings, physicalInputs: physical.length ? physical : undefined };
}

/**
 * The three steps of the decomposed schedule, or undefined where it does not apply (see above). `g` is the op's
 * geometry; K / V are read from the `present` outputs when the node has past inputs (the copy steps wrote them).
 */
export function decomposedAttention(ctx: LowerCtx, g: Geom, scale: number): LoweredStep[] | undefined {
  const a = ctx.attrs;
  if (ctx.caps.attentionSchedule === 'one-kernel') return undefined;
  if (ctx.caps.attentionSchedule !== 'decomposed' && g.S <= ONE_KERNEL_MAX_QUERIES) return undefined;
  const mask = ctx.inputs[3];
  const hasPast = ctx.inputs[4] !== undefined;
  if ((a['softcap'] as number) > 0 || ctx.outputs.length > 3 || ctx.inputs[6]) return undefined;
  // causal masking as the scores' epilogue (key j > query i + past: −inf); every row keeps key 0, so no row is fully
  // masked — with a mask as well that could happen, and the op's zeros are not the softmax's NaN
  const causal = a['is_causal'] as boolean;
  if (causal && mask) return undefined;
  if (a['mask_fill'] !== undefined) return undefined;
  if (hasPast && ctx.outputs.length < 3) return undefined;
  if (mask && (mask.dtype === 'bool' || !mask.data || mask.shape.at(-1) !== g.T || !everyRowAttends(mask.data))) {
    return undefined;
  }
  const { B, Hq, Hkv, S, T, D, Dv } = g;
  if (B * Hq * S * T > SCORES_LIMIT || B * Hq * S * T === 0 || Hq % Hkv !== 0) return undefined;
  const grp = Hq / Hkv;
  const dt = ctx.inputs[0]!.dtype;
  if (dt !== 'f32' && dt !== 'f16') return undefined;
  const usePresent = hasPast;

  // q as [B, Hkv, grp, S, D]; k as [B, Hkv, 1, D, T] (transposed by strides); v as [B, Hkv, 1, T, Dv]
  const q4 = headsLayout(ctx.inputs[0]!, g.rank, Hq);
  const q = q4 && reshapeLayout(q4, [B, Hkv, grp, S, D]);
  const kvLayout = (i: 1 | 2): StridedLayout | undefined =>
    usePresent ? contiguousLayout(ctx.outputs[i]!.shape) : headsLayout(ctx.inputs[i]!, g.rank, Hkv);
  const k4 = kvLayout(1);
  const v4 = kvLayout(2);
  if (!q || !k4 || !v4) return undefined;
  const kT = reshapeLayout(permuteLayout(k4, [0, 1, 3, 2]), [B, Hkv, 1, D, T]);
  const v5 = reshapeLayout(v4, [B, Hkv, 1, T, Dv]);
  if (!kT || !v5) return undefined;

  const info = (shape: number[], layout?: StridedLayout): TensorInfo => ({ dtype: 'f32', shape, layout });
  const scoresShape = [B, Hkv, grp, S, T];
  const scoresBytes = B * Hq * S * T * 4;
  const scores: Binding = { kind: 'tmp', id: 'scores', bytes: scoresBytes };
  const probs: Binding = { kind: 'tmp', id: 'probs', bytes: scoresBytes };
  const kvBinding = (i: 1 | 2): Binding => (usePresent ? { kind: 'out', index: i } : { kind: 'in', index: i });

  // 1. scores = scale · Q·Kᵀ (+ mask), the mask broadcast over the scores' [B, Hq, S, T]
  const ctx1: LowerCtx = {
    ...ctx,
    op: 'matmul',
    attrs: {},
    inputs: [
      { ...info(q.shape as number[], q), dtype: dt },
      { ...info(kT.shape as number[], kT), dtype: dt },
      ...(mask ? [mask] : []),
    ],
    outputs: [info(scoresShape)],
  };
  const con1 = matmulContraction(ctx1, 'attention_scores');
  if (mask) {
    const st = bstrides(mask.shape, [B, Hq, S, T]);
    con1.extras = [{ input: 2, st: { batch: [st[0]!, st[1]! * grp, st[1]!], m: [st[2]!], n: [st[3]!], k: [0] } }];
  }
  con1.post = (kb, acc, extras, at): Expr => {
    const sU = kb.uniform('scale', scale, 'f32', 'attention.scale');
    const scaled = mul(acc, sU);
    const logit = extras.length ? add(scaled, extras[0]!) : scaled;
    if (!causal) return logit;
    const past = g.P === 0 ? c.i32(0) : kb.uniform('past', g.P, 'i32', 'attention.past');
    return select(gt(at.n, add(at.m, past)), c.f32(-Infinity), logit);
  };
  const [s1] = lowerContraction(ctx1, con1);
  const step1 = rebind(s1!, [{ kind: 'in', index: 0 }, kvBinding(1), { kind: 'in', index: 3 }], scores);

  // 2. probabilities: a softmax over each row of keys
  const rows = B * Hq * S;
  const ctx2: LowerCtx = {
    ...ctx,
    op: 'softmax',
    attrs: { axis: -1 },
    inputs: [info([rows, T])],
    outputs: [info([rows, T])],
  };
  const steps2 = lowerNode(ctx2).map((st) => rebind(st, [scores], probs));

  // 3. y = P·V, stored as the op's output layout (4-D [B, Hq, S, Dv] or 3-D [B, S, Hq·Dv])
  const ctx3: LowerCtx = {
    ...ctx,
    op: 'matmul',
    attrs: {},
    inputs: [info(scoresShape), { ...info(v5.shape as number[], v5), dtype: dt }],
    outputs: [{ dtype: ctx.outputs[0]!.dtype, shape: [B, Hkv, grp, S, Dv] }],
  };
  const con3 = matmulContraction(ctx3, 'attention_pv');
  if (g.rank === 3) con3.out = { batch: [S * Hq * Dv, grp * Dv, Dv], m: [Hq * Dv], n: [1], k: [0] };
  const [s3] = lowerContraction(ctx3, con3);
  const step3 = rebind(s3!, [probs, kvBinding(2)], { kind: 'out', index: 0 });
  return [step1, ...steps2, step3];
}
