/**
 * `fused_elementwise` lowers to ONE pointwise kernel: the body is walked in order and each op's value expression is
 * built from its inputs' expressions with the same builders the standalone ops use (elementwise.ts) — body inputs
 * through `loadBroadcast` (broadcast to the fused output shape), interior values as the expressions just built,
 * bound once with `let` so a value read twice is computed once.
 */
import type { Value } from '../../ir/graph.js';
import { FUSIBLE_OPS, fusedBody } from '../../ir/ops/fused.js';
import { getOp, resolveAttrs } from '../../ir/registry.js';
import { UnsupportedError } from '../../ir/errors.js';
import { bin, c, cast, isnan, select, type Expr } from '../kir.js';
import { BINARY, UNARY, convert, nanMax } from './elementwise.js';
import type { LowerCtx, TensorInfo } from './kernel-builder.js';
import { pointwiseSteps } from './pointwise.js';
import { registerLowering } from './registry.js';
import { computeType } from './storage.js';

const isFloatT = (e: Expr) => e.type === 'f32' || e.type === 'f16';

/** The value of one body op from its operands' expressions (`sub` carries the op's attrs and dtypes). */
function build(op: string, xs: readonly (Expr | undefined)[], sub: LowerCtx): Expr {
  const u = UNARY[op];
  if (u) return u(xs[0]!, sub);
  const b = BINARY[op];
  if (b) return b(xs[0]!, xs[1]!, sub);
  const all = xs.filter((x): x is Expr => x !== undefined);
  switch (op) {
    case 'max':
    case 'min':
      return all.reduce((a, y) => nanMax(a, y, op === 'max'));
    case 'sum':
      return all.reduce((a, y) => bin('add', a, y));
    case 'cast':
      return convert(xs[0]!, sub.inputs[0]!.dtype, sub.attrs['to'] as TensorInfo['dtype']);
    case 'clip': {
      // as the clip lowering: bounds are scalars, NaN passes through
      const x = xs[0]!;
      let y = x;
      if (xs[1]) y = bin('max', y, xs[1]);
      if (xs[2]) y = bin('min', y, xs[2]);
      return isFloatT(x) ? select(isnan(x), x, y) : y;
    }
    case 'where':
      return select(xs[0]!, xs[1]!, xs[2]!);
  }
  throw new UnsupportedError(`op ${op} in a fused body has no expression builder`, { node: sub.node, op });
}

registerLowering('fused_elementwise', (ctx) => {
  const body = fusedBody(ctx.attrs['body'] as string, ctx.node);
  const outShape = ctx.outputs[0]!.shape;
  const info = (v: Value): TensorInfo => ({ dtype: v.type.dtype, shape: outShape });
  const reads = ctx.inputs.map((_, i) => i);
  return pointwiseSteps(ctx, {
    label: 'fused',
    reads,
    value: (p) => {
      const env = new Map<Value, Expr>();
      body.inputs.forEach((v, i) => env.set(v, p.kb.let('in', p.loadBroadcast(i))));
      for (const k of body.constants) {
        const x = k.data!.data[0]!;
        const ct = computeType(k.type.dtype);
        env.set(k, ct === 'bool' ? c.bool(x !== 0) : c.of(ct, Number(x)));
      }
      let last: Expr | undefined;
      for (const n of body.nodes) {
        if (!FUSIBLE_OPS.has(n.op)) {
          throw new UnsupportedError(`op ${n.op} may not appear in a fused body`, { node: ctx.node, op: n.op });
        }
        const sub: LowerCtx = {
          ...ctx,
          op: n.op,
          attrs: resolveAttrs(getOp(n.op), n.attrs, n.name),
          inputs: n.inputs.map((x) => (x ? info(x) : undefined)),
          outputs: [info(n.outputs[0]!)],
        };
        let r = build(
          n.op,
          n.inputs.map((x) => (x ? env.get(x) : undefined)),
          sub,
        );
        // an f16 value held in f16 storage is rounded there when unfused: round the same way inside the group
        if (
          n.outputs[0]!.type.dtype === 'f16' &&
          ctx.caps.f16 &&
          r.type === 'f32' &&
          n.outputs[0] !== body.outputs[0]
        ) {
          r = cast('f32', cast('f16', r));
        }
        last = p.kb.let('f', r);
        env.set(n.outputs[0]!, last);
      }
      return env.get(body.outputs[0]!) ?? last!;
    },
  });
});
