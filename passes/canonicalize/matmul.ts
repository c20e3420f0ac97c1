/**
 * Matmul forms. `matmul` has no transpose flags, so transposes fold only into `gemm` (2-D, transA / transB); a 2-D
 * matmul followed by a bias add becomes one gemm (one rounding instead of two: equal within f32 tolerance).
 */
import type { Value } from '../../ir/graph.js';
import { sameType } from '../../ir/types.js';
import { op, rule, v, type Rule } from '../rewrite.js';

const isSwap = (p: unknown): boolean => p === undefined || (Array.isArray(p) && p[0] === 1 && p[1] === 0);

export const gemmRules: Rule[] = [
  rule('gemm-transpose', op('gemm'), (m, rw) => {
    const n = m.root;
    const attrs = { ...n.attrs };
    const ins = [...n.inputs];
    let folded = false;
    for (const [i, flag] of [
      [0, 'transA'],
      [1, 'transB'],
    ] as const) {
      const t = ins[i]!.producer;
      if (t?.op !== 'transpose' || t.inputs[0]!.type.shape.length !== 2 || !isSwap(t.attrs['perm'])) continue;
      ins[i] = t.inputs[0]!;
      attrs[flag] = !(attrs[flag] === true);
      folded = true;
    }
    return folded ? rw.op('gemm', ins, attrs)[0] : undefined;
  }),
];

export const matmulBiasRules: Rule[] = [
  rule('matmul-bias-gemm', op('add', [op('matmul', [v('a'), v('b')], { name: 'mm' }), v('c')]), (m, rw) => {
    const mm = m.node('mm').outputs[0]!;
    const a = m.v('a');
    const b = m.v('b');
    const c: Value = m.v('c');
    // the matmul must not be needed elsewhere, and the add must not broadcast past [M, N]
    if (rw.graph.users(mm).length !== 1 || rw.isOutput(mm)) return undefined;
    if (a.type.shape.length !== 2 || b.type.shape.length !== 2 || c.type.shape.length > 2) return undefined;
    if (!sameType(m.root.outputs[0]!.type, mm.type)) return undefined;
    return rw.op('gemm', [a, b, c])[0]; // inference declines a c that does not broadcast to [M, N]
  }),
];
