/**
 * Einsum. With two operands it becomes a strided batched contraction (`contraction/`): labels in both operands and
 * the output → batch, in one operand and the output → m or n, summed → k; repeated labels sum their strides, size-1
 * dims broadcast with stride 0. With one or three and more operands it is a pointwise kernel looping over the summed
 * labels.
 */
import { KilnError } from '../../ir/errors.js';
import { planEinsum } from '../../ir/ops/nn.js';
import { stridesOf } from '../../ir/shape.js';
import { PACK, add, assign, c, for_, mul, v, var_, type Expr, type Stmt } from '../kir.js';
import { zeros, type Axes, type Cat } from './contraction/contraction.js';
import { checkRanges, lowerContraction } from './contraction/lower.js';
import { pointwise } from './pointwise.js';
import { registerLowering } from './registry.js';
import { computeType, storageOf } from './storage.js';

registerLowering('einsum', (ctx) => {
  const fail = (m: string): never => {
    throw new KilnError('attribute', m, { node: ctx.node, op: ctx.op });
  };
  const shapes = ctx.inputs.map((t) => t!.shape);
  const plan = planEinsum(
    ctx.attrs['equation'] as string,
    shapes.map((s) => s.length),
    fail,
  );
  const dims = new Array<number>(plan.count).fill(1);
  plan.terms.forEach((t, i) =>
    t.forEach((lab, p) => {
      const d = shapes[i]![p]!;
      if (dims[lab] === 1) dims[lab] = d;
    }),
  );
  // each operand's stride per label: summed over repeated places (a diagonal), 0 where a size-1 dim broadcasts
  // two operands into unpacked storage go to the tiled / skinny schedules, which index views' layouts in place
  const native = shapes.length === 2 && PACK[storageOf(ctx.outputs[0]!.dtype, ctx.caps)] === 1;
  const layoutOf = (i: number) => (native ? ctx.inputs[i]!.layout : undefined);
  const strides = shapes.map((sh, i) => {
    const st = zeros(plan.count);
    const own = layoutOf(i)?.strides ?? stridesOf(sh);
    plan.terms[i]!.forEach((lab, p) => {
      if (sh[p] !== 1) st[lab]! += own[p]!;
    });
    return st;
  });
  const outShape = plan.out.map((lab) => dims[lab]!);
  const outSt = zeros(plan.count);
  stridesOf(outShape).forEach((s, j) => (outSt[plan.out[j]!] = s));
  const summed = dims.map((_, lab) => lab).filter((lab) => !plan.out.includes(lab));
  checkRanges(ctx);

  if (shapes.length === 2) {
    const [sa, sb] = strides as [number[], number[]];
    const cat = (lab: number): Cat =>
      !plan.out.includes(lab) ? 'k' : sa[lab] && sb[lab] ? 'batch' : sb[lab] ? 'n' : 'm';
    const labels: Record<Cat, number[]> = { batch: [], m: [], n: [], k: [] };
    for (const lab of [...plan.out, ...summed]) labels[cat(lab)].push(lab);
    const pick = (st: number[]): Axes => ({
      batch: labels.batch.map((x) => st[x]!),
      m: labels.m.map((x) => st[x]!),
      n: labels.n.map((x) => st[x]!),
      k: labels.k.map((x) => st[x]!),
    });
    return lowerContraction(ctx, {
      label: 'einsum',
      dims: pick(dims),
      a: { input: 0, st: pick(sa), ...(layoutOf(0) ? { offset: layoutOf(0)!.offset } : {}) },
      b: { input: 1, st: pick(sb), ...(layoutOf(1) ? { offset: layoutOf(1)!.offset } : {}) },
      alpha: 1,
      beta: 1,
      out: pick(outSt),
    });
  }

  // one operand, or three and more: one thread per output element, looping over the summed labels
  const loopLabels = summed.filter((lab) => dims[lab] !== 1);
  const reads = shapes.map((_, i) => i);
  const ct = computeType(ctx.outputs[0]!.dtype);
  return [
    pointwise(ctx, {
      label: 'einsum',
      reads,
      value: (p) => {
        const kb = p.kb;
        const uni = (hint: string, x: number) => (x === 0 || x === 1 ? c.i32(x) : kb.uniform(hint, x));
        const bases = reads.map((i) => {
          let off: Expr = c.i32(0);
          plan.out.forEach((lab, j) => (off = add(off, mul(p.coords[j]!, uni('s', strides[i]![lab]!)))));
          return kb.let('base', off);
        });
        const accName = kb.fresh('acc');
        kb.emit(var_(accName, ct, c.of(ct, 0)));
        const loopVars = loopLabels.map(() => kb.fresh('j'));
        const [inner] = kb.collect(() => {
          let prodE: Expr | undefined;
          reads.forEach((i) => {
            let off = bases[i]!;
            loopLabels.forEach((lab, q) => (off = add(off, mul(v(loopVars[q]!, 'i32'), uni('s', strides[i]![lab]!)))));
            const x = p.loadAt(i, off);
            prodE = prodE ? mul(prodE, x) : x;
          });
          kb.emit(assign(accName, add(v(accName, ct), prodE!)));
        });
        let body: Stmt[] = inner;
        for (let q = loopLabels.length - 1; q >= 0; q--) {
          body = [for_(loopVars[q]!, c.i32(0), kb.uniform('d', dims[loopLabels[q]!]!), body)];
        }
        kb.emit(...body);
        return v(accName, ct);
      },
    }),
  ];
});
