/**
 * Algebraic identities: x·1, x+0, x−0, x/1, identity, views that change nothing or chain, transposes that compose,
 * exact cast chains, where on a constant condition. Each rule fires only when the result has the root's exact type
 * (a broadcast `x·ones` that grows x is not x).
 */
import { dtypeInfo, isFloat, type DType } from '../../ir/dtype.js';
import type { Node, Value } from '../../ir/graph.js';
import { getOp } from '../../ir/registry.js';
import { isStatic } from '../../ir/shape.js';
import { sameType } from '../../ir/types.js';
import { allEqual, constant, op, rule, v, type Rule } from '../rewrite.js';

/** `x` when it has the type of the root's output (so dropping the op changes nothing observable). */
const ifSameType = (root: Node, x: Value): Value | undefined =>
  sameType(root.outputs[0]!.type, x.type) ? x : undefined;

const one = (name: string) => constant(name, (t) => allEqual(t, 1));
const zero = (name: string) => constant(name, (t) => allEqual(t, 0));

export const arithmeticRules: Rule[] = [
  rule('identity', op('identity', [v('x')]), (m) => m.v('x')),
  rule('mul-one', op('mul', [v('x'), one('c')]), (m) => ifSameType(m.root, m.v('x'))),
  rule('add-zero', op('add', [v('x'), zero('c')]), (m) => ifSameType(m.root, m.v('x'))),
  rule('sub-zero', op('sub', [v('x'), zero('c')]), (m) => ifSameType(m.root, m.v('x'))),
  rule('div-one', op('div', [v('x'), one('c')]), (m) => ifSameType(m.root, m.v('x'))),
  rule('where-const', op('where', [constant('c'), v('a'), v('b')]), (m) => {
    const c = m.data('c');
    if (allEqual(c, 1)) return ifSameType(m.root, m.v('a'));
    if (allEqual(c, 0)) return ifSameType(m.root, m.v('b'));
    return undefined;
  }),
];

// ---- views and transposes ----------------------------------------------------------------------------------------

const isView = (n: Node | undefined): n is Node => n !== undefined && getOp(n.op).view === true;
const VIEW_OPS = ['reshape', 'squeeze', 'unsqueeze', 'flatten'];

export const viewRules: Rule[] = [
  // a view keeps row-major order, so one that keeps the shape is its input
  rule('view-noop', op(VIEW_OPS), (m) => ifSameType(m.root, m.root.inputs[0]!)),
  // view(view(x)) = one reshape of x to the outer shape (squeeze∘unsqueeze on the same axes: x itself)
  rule('view-chain', op(VIEW_OPS), (m, rw) => {
    const outer = m.root;
    const inner = outer.inputs[0]!.producer;
    if (!isView(inner) || inner.outputs[0] !== outer.inputs[0]) return undefined;
    const x = inner.inputs[0]!;
    const want = outer.outputs[0]!.type.shape;
    if (sameType(x.type, outer.outputs[0]!.type)) return x;
    if (isStatic(want)) return rw.op('reshape', [x, rw.const('i64', want as number[])])[0];
    // symbolic: the outer reshape's own target still applies when it copies nothing from the inner shape
    const s = outer.op === 'reshape' ? outer.inputs[1]! : undefined;
    if (s?.data && (outer.attrs['allowzero'] === true || !contains(s.data.data, 0))) {
      return rw.op('reshape', [x, s], outer.attrs)[0];
    }
    return undefined;
  }),
  rule('transpose-identity', op('transpose', [v('x')]), (m) => {
    const p = permOf(m.root);
    return p.every((q, i) => q === i) ? m.v('x') : undefined;
  }),
  // transpose(transpose(x, p1), p2)[i] = x[p1[p2[i]]]
  rule('transpose-chain', op('transpose', [op('transpose', [v('x')], { name: 'inner' })]), (m, rw) => {
    const p1 = permOf(m.node('inner'));
    const p2 = permOf(m.root);
    const q = p2.map((i) => p1[i]!);
    if (q.every((k, i) => k === i)) return m.v('x');
    return rw.op('transpose', [m.v('x')], { perm: q })[0];
  }),
];

function contains(data: ArrayLike<number>, x: number): boolean {
  for (let i = 0; i < data.length; i++) if (data[i] === x) return true;
  return false;
}

function permOf(n: Node): number[] {
  const rank = n.inputs[0]!.type.shape.length;
  const p = n.attrs['perm'] as readonly number[] | undefined;
  return p ? [...p] : Array.from({ length: rank }, (_, i) => rank - 1 - i);
}

// ---- casts -------------------------------------------------------------------------------------------------------

const MANTISSA: Partial<Record<DType, number>> = { f64: 53, f32: 24, f16: 11, bf16: 8 };

/** Every value of dtype `a` is exactly a value of dtype `b` (so casting a → b loses nothing). */
export function exactIn(a: DType, b: DType): boolean {
  if (a === b || a === 'bool') return true;
  if (b === 'bool') return false;
  const ia = dtypeInfo(a);
  const ib = dtypeInfo(b);
  if (isFloat(a)) {
    if (!isFloat(b)) return false;
    // f16 ⊂ f32 ⊂ f64, bf16 ⊂ f32 ⊂ f64 (more mantissa and at least the exponent range); f16 and bf16 are disjoint
    return MANTISSA[b]! >= MANTISSA[a]! && ib.max >= ia.max && !(a === 'f16' && b === 'bf16');
  }
  // integers: a range inside the other's, or inside a float's exact-integer range
  if (isFloat(b)) return Math.max(-ia.min, ia.max) <= 2 ** MANTISSA[b]!;
  return ib.min <= ia.min && ib.max >= ia.max;
}

export const castRules: Rule[] = [
  rule('cast-same', op('cast', [v('x')]), (m) => (m.root.attrs['to'] === m.v('x').type.dtype ? m.v('x') : undefined)),
  // cast(cast(x: A, B), C) = cast(x, C) when A → B is exact; f32 → f16 → f32 rounds and stays
  rule('cast-chain', op('cast', [op('cast', [v('x')], { name: 'inner' })]), (m, rw) => {
    const x = m.v('x');
    const b = m.node('inner').attrs['to'] as DType;
    const c = m.root.attrs['to'] as DType;
    if (!exactIn(x.type.dtype, b)) return undefined;
    return c === x.type.dtype ? x : rw.op('cast', [x], { to: c })[0];
  }),
];
