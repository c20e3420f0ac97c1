/** Lowerings by op: graph node (with concrete shapes) → kernel steps. One module per op family registers here. */
import { UnsupportedError } from '../../ir/errors.js';
import type { LowerCtx, LoweredStep } from './kernel-builder.js';

/** Turns one node with concrete shapes (`ctx`) into the kernel steps that compute it, in launch order. */
export type Lowering = (ctx: LowerCtx) => LoweredStep[];

const LOWERINGS = new Map<string, Lowering>();

/**
 * Registers the lowering of op `op` (one per op).
 *
 * @throws Error when `op` already has a lowering (a programming error at module load, not a user input error).
 */
export function registerLowering(op: string, fn: Lowering): void {
  if (LOWERINGS.has(op)) throw new Error(`lowering for ${op} registered twice`);
  LOWERINGS.set(op, fn);
}

/** Whether op `op` has a kernel lowering (ops without one run on the host or must be rewritten first). */
export function hasLowering(op: string): boolean {
  return LOWERINGS.has(op);
}

/**
 * The kernel steps for one node through its op's registered lowering.
 *
 * @throws UnsupportedError naming the node when the op has no lowering; a lowering's own KilnErrors (code `limit`
 * for a tensor past 32-bit indexing or a device limit, `unsupported` for a dtype / attribute it does not handle).
 */
export function lowerNode(ctx: LowerCtx): LoweredStep[] {
  const fn = LOWERINGS.get(ctx.op);
  if (!fn) throw new UnsupportedError(`no kernel lowering for op ${ctx.op}`, { node: ctx.node, op: ctx.op });
  return fn(ctx);
}
