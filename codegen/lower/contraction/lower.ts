/** A contraction's kernel: the schedule that fits its output dtype and shape. */
import { PACK, loadType } from '../../kir.js';
import type { LowerCtx, LoweredStep } from '../kernel-builder.js';
import { checkIndexRange } from '../pointwise.js';
import { storageOf } from '../storage.js';
import { prod, simplify, total, type Contraction } from './contraction.js';
import { pointwiseContraction } from './loop.js';
import { packedGemv, packedGemvApplies } from './packed.js';
import { skinny } from './skinny.js';
import { tiled } from './tiled.js';

/** Inputs and output 0 must be indexable in i32. */
export function checkRanges(ctx: LowerCtx): void {
  ctx.inputs.forEach((t, i) => t && checkIndexRange(ctx, prod(t.shape), `input ${i}`));
  checkIndexRange(ctx, prod(ctx.outputs[0]!.shape), 'output 0');
}

/** The kernel computing a contraction into output 0: tiled, skinny, or (packed output dtypes) the loop kernel. */
export function lowerContraction(ctx: LowerCtx, con0: Contraction): LoweredStep[] {
  checkRanges(ctx);
  const con = simplify(con0);
  const M = total(con, 'm');
  const N = total(con, 'n');
  const st = storageOf(ctx.outputs[0]!.dtype, ctx.caps);
  if (PACK[st] > 1) return [pointwiseContraction(ctx, con)];
  const useSkinny = M <= 4 || N <= 4 || M * N <= 1024;
  const step =
    con.schedule?.(ctx, con, loadType(st)) ??
    (packedGemvApplies(ctx, con)
      ? packedGemv(ctx, con, loadType(st))
      : useSkinny
        ? skinny(ctx, con, loadType(st))
        : tiled(ctx, con, loadType(st)));
  // operands given with their layout's offset are indexed through its strides by the schedule itself
  const physicalInputs = [con.a, con.b].filter((w) => w.offset !== undefined).map((w) => w.input);
  return [physicalInputs.length ? { ...step, physicalInputs } : step];
}
