/**
 * Scaled dot-product attention written out by exporters → `attention` (4-D [batch, heads, seq, size] form):
 * MatMul(Q, Kᵀ) → Mul(scale) | Div(1/scale) → optional additive mask → Softmax(last axis) → MatMul(·, V).
 *
 * Only where the op computes the same function: rank-4 operands, a scale constant, a softmax over the keys, and a
 * mask that is a constant as long as the keys (the op pads a shorter mask as masked) with an attendable key in every
 * row (the op gives a fully masked row zero weights, the softmax NaN). The Where form — Where(mask, scores, fill) with
 * a bool mask (a run-time value is fine) and a finite fill — becomes the op with `mask_fill`, which replaces each
 * masked logit by the fill exactly as Where does (a fully masked row then stays uniform, as the softmax makes it).
 */
import type { Node, Value } from '../../ir/graph.js';
import { everyRowAttends } from '../../ir/ops/attention.js';
import { constant, op, rule, v, type OpPattern, type Rule } from '../rewrite.js';

const one = (name: string) =>
  constant(name, (t) => t.data.length === 1 && Number.isFinite(t.data[0]!) && t.data[0] !== 0);
const qk = op('matmul', [v('q'), v('kt')], { name: 'qk' });
const scaled: OpPattern[] = [
  op('mul', [qk, one('s')], { name: 'scale' }),
  op('div', [qk, one('s')], { name: 'scale' }),
];
const lastAxis = (a: Record<string, unknown>, n: Node) => {
  const ax = (a['axis'] as number | undefined) ?? -1;
  return ax === -1 || ax === n.inputs[0]!.type.shape.length - 1;
};
const patterns = scaled.flatMap((s) =>
  [s, op('add', [s, constant('mask')])].map((sc) => op('matmul', [op('softmax', [sc], { attrs: lastAxis }), v('v')])),
);

/** Where(mask, scores, fill) → Softmax → MatMul: GPT-2's exporter form (fill −10000), the op's `mask_fill`. */
const finite = (name: string) => constant(name, (t) => t.data.length === 1 && Number.isFinite(t.data[0]!));
const filled = scaled.map((sc) =>
  op('matmul', [op('softmax', [op('where', [v('cond'), sc, finite('fill')])], { attrs: lastAxis }), v('v')]),
);

/** `mask` broadcasts to the scores [B, H, S, T] with one entry per key (a shorter mask would pad as masked). */
function maskFits(mask: Value, scores: readonly (number | string)[]): boolean {
  const ms = mask.type.shape;
  if (ms.length > 4 || ms.at(-1) !== scores.at(-1)) return false;
  return ms.every((d, i) => d === 1 || d === scores[scores.length - ms.length + i]);
}

export const filledAttentionRules: Rule[] = filled.map((p) =>
  rule('attention-mask-fill', p, (m, rw) => {
    const [q, kt, vv, cond] = [m.v('q'), m.v('kt'), m.v('v'), m.v('cond')];
    if (![q, kt, vv].every((x: Value) => x.type.shape.length === 4) || cond.type.dtype !== 'bool') return undefined;
    if (!maskFits(cond, m.node('qk').outputs[0]!.type.shape)) return undefined;
    const s = m.data('s').data[0]!;
    const scale = m.node('scale').op === 'mul' ? s : 1 / s;
    const k = rw.op('transpose', [kt], { perm: [0, 1, 3, 2] })[0]!;
    return rw.op('attention', [q, k, vv, cond], { scale, mask_fill: m.data('fill').data[0]! })[0];
  }),
);

export const attentionRules: Rule[] = patterns.map((p) =>
  rule('attention', p, (m, rw) => {
    const [q, kt, vv] = [m.v('q'), m.v('kt'), m.v('v')];
    if (![q, kt, vv].every((x: Value) => x.type.shape.length === 4)) return undefined;
    const s = m.data('s').data[0]!;
    const scale = m.node('scale').op === 'mul' ? s : 1 / s;
    const mask = m.values.get('mask');
    if (mask) {
      const scores = m.node('qk').outputs[0]!.type.shape;
      if (mask.type.shape.length > 4 || mask.type.shape.at(-1) !== scores.at(-1)) return undefined;
      if (!everyRowAttends(mask.data!)) return undefined;
    }
    const k = rw.op('transpose', [kt], { perm: [0, 1, 3, 2] })[0]!;
    return rw.op('attention', mask ? [q, k, vv, mask] : [q, k, vv], { scale })[0];
  }),
);

// ---- heads as views of [batch, seq, heads·size] tensors -----------------------------------------------------

const perm0213 = (a: Record<string, unknown>) => {
  const p = a['perm'] as number[] | undefined;
  return p !== undefined && p.length === 4 && p[0] === 0 && p[1] === 2 && p[2] === 1 && p[3] === 3;
};
/** [B, S, H·D] → reshape [B, S, H, D] → transpose to [B, H, S, D]: the heads of a 3-D tensor. */
const heads = (x: string) => op('transpose', [op('reshape', [v(x), v()], { name: `r${x}` })], { attrs: perm0213 });

/**
 * attention over head-split [B, S, H·D] tensors whose [B, H, S, Dv] result is merged back (transpose, reshape to
 * [B, S, H·Dv]) → the op's 3-D form on the unsplit tensors (q_num_heads / kv_num_heads): the same function, and
 * its output is already the merged tensor, where the 4-D form's needs a copy to merge heads.
 */
export const attentionHeadRules: Rule[] = [false, true].map((masked) =>
  rule(
    masked ? 'attention-3d-masked' : 'attention-3d',
    op('reshape', [
      op(
        'transpose',
        [op('attention', [heads('q'), heads('k'), heads('v'), ...(masked ? [v('mask')] : [])], { name: 'att' })],
        {
          attrs: perm0213,
        },
      ),
      v(),
    ]),
    (m, rw) => {
      const att = m.node('att');
      if (att.outputs.length !== 1 || rw.graph.users(att.outputs[0]!).length !== 1) return undefined;
      const [q, k, vv] = [m.v('q'), m.v('k'), m.v('v')];
      const split = (x: Value, r: string) => {
        const s = m.node(r).outputs[0]!.type.shape; // [B, S, H, D]
        const t = x.type.shape;
        return t.length === 3 && s.length === 4 && s[0] === t[0] && s[1] === t[1] ? s[2] : undefined;
      };
      const [hq, hk, hv] = [split(q, 'rq'), split(k, 'rk'), split(vv, 'rv')];
      if (typeof hq !== 'number' || typeof hk !== 'number' || hk !== hv) return undefined;
      const ins = masked ? [q, k, vv, m.v('mask')] : [q, k, vv];
      // the engine keeps the rewrite only when the 3-D result has the merged tensor's type
      return rw.op('attention', ins, { ...att.attrs, q_num_heads: hq, kv_num_heads: hk })[0];
    },
  ),
);
