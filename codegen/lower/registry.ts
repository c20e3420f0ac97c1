/** Lowerings by op: graph node (with concrete shapes) → kernel steps. One module per op family registers here. */
import { UnsupportedError } from '../../ir/errors.js';
import type { LowerCtx, LoweredStep } from './kernel-builder.js';

export type Lowering = (ctx: LowerCtx) => LoweredStep[];

const LOWERINGS = new Map<string, Lowering>();

export function registerLowering(op: string, fn: Lowering): void {
  if (LOWERINGS.has(op)) throw new Error(`lowering for ${op} registered twice`);
  LOWERINGS.set(op, fn);
}

export function hasLowering(op: string): boolean {
  return LOWERINGS.has(op);
}

export function lowerNode(ctx: LowerCtx): LoweredStep[] {
  const fn = LOWERINGS.get(ctx.op);
  if (!fn) throw new UnsupportedError(`no kernel lowering for op ${ctx.op}`, { node: ctx.node, op: ctx.op });
  return fn(ctx);
}
