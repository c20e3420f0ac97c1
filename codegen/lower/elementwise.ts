/** Lowering of elementwise and broadcast ops: each is a value expression in the pointwise template. */
import type { DType } from '../../ir/dtype.js';
import {
  add,
  and,
  bin,
  bitcast,
  c,
  cast,
  div,
  eq,
  ge,
  gt,
  isinf,
  isnan,
  le,
  lt,
  mul,
  ne,
  not,
  or,
  select,
  sub,
  un,
  type Expr,
} from '../kir.js';
import type { LowerCtx } from './kernel-builder.js';
import { pointwise, pointwiseSteps, type Pointwise } from './pointwise.js';
import { registerLowering } from './registry.js';

const f = c.f32;
const isFloatT = (e: Expr) => e.type === 'f32' || e.type === 'f16';

export const sigmoid = (x: Expr) => div(f(1), add(f(1), un('exp', un('neg', x))));
export const gelu = (x: Expr, tanh: boolean) =>
  tanh
    ? mul(
        mul(f(0.5), x),
        add(f(1), un('tanh', mul(f(Math.sqrt(2 / Math.PI)), add(x, mul(f(0.044715), mul(x, mul(x, x))))))),
      )
    : // 1 + erf(z) = erfc(-z): accurate in relative terms where the result is tiny (large negative x)
      mul(mul(f(0.5), x), un('erfc', mul(x, f(-Math.SQRT1_2))));

/** max/min with NaN propagation (WGSL and CUDA leave NaN operands implementation-defined / ignored). */
export function nanMax(a: Expr, b: Expr, isMax: boolean): Expr {
  if (!isFloatT(a)) return bin(isMax ? 'max' : 'min', a, b);
  return select(or(isMax ? gt(b, a) : lt(b, a), isnan(b)), b, a);
}

/** x^y matching Math.pow for negative bases with integral exponents and for 0^0. */
function pow(x: Expr, y: Expr): Expr {
  const p = bin('pow', un('abs', x), y);
  const yInt = eq(un('floor', y), y);
  const odd = eq(un('abs', bin('mod', y, f(2))), f(1));
  const neg = select(and(lt(x, f(0)), odd), un('neg', p), p);
  return select(eq(y, f(0)), f(1), select(and(lt(x, f(0)), not(yInt)), f(NaN), neg));
}

const UNARY: Record<string, (x: Expr, ctx: LowerCtx) => Expr> = {
  neg: (x) => un('neg', x),
  abs: (x) => un('abs', x),
  exp: (x) => un('exp', x),
  log: (x) => un('log', x),
  sqrt: (x) => un('sqrt', x),
  reciprocal: (x) => div(f(1), x),
  tanh: (x) => un('tanh', x),
  erf: (x) => un('erf', x),
  sigmoid,
  relu: (x) => (isFloatT(x) ? select(lt(x, f(0)), f(0), x) : bin('max', x, c.of(x.type, 0))),
  gelu: (x, ctx) => gelu(x, ctx.attrs['approximate'] === 'tanh'),
  silu: (x) => mul(x, sigmoid(x)),
  floor: (x) => un('floor', x),
  ceil: (x) => un('ceil', x),
  round: (x) => un('round_even', x),
  sign: (x) => (isFloatT(x) ? select(isnan(x), x, un('sign', x)) : un('sign', x)),
  sin: (x) => un('sin', x),
  cos: (x) => un('cos', x),
  softplus: (x) => select(gt(x, f(30)), x, un('log', add(f(1), un('exp', x)))),
  // min/max of NaN are implementation-defined on both targets: NaN passes through explicitly, as in the reference
  hard_sigmoid: (x, ctx) =>
    select(
      isnan(x),
      x,
      bin('max', f(0), bin('min', f(1), add(mul(f(ctx.attrs['alpha'] as number), x), f(ctx.attrs['beta'] as number)))),
    ),
  hard_swish: (x) => mul(x, bin('max', f(0), bin('min', f(1), add(div(x, f(6)), f(0.5))))),
  leaky_relu: (x, ctx) => select(lt(x, f(0)), mul(f(ctx.attrs['alpha'] as number), x), x),
  identity: (x) => x,
  not: (x) => not(x),
  isnan: (x) => isnan(x),
  isinf: (x) => isinf(x),
};

for (const [op, fn] of Object.entries(UNARY)) {
  registerLowering(op, (ctx) => [pointwise(ctx, { label: op, reads: [0], value: (p) => fn(p.loadBroadcast(0), ctx) })]);
}

function intDiv(a: Expr, b: Expr): Expr {
  const z = c.of(b.type, 0);
  return select(eq(b, z), z, div(a, select(eq(b, z), c.of(b.type, 1), b)));
}

/** Python-style modulo (sign of the divisor) when `fmod` is false. */
function modulo(a: Expr, b: Expr, fmod: boolean): Expr {
  const isF = isFloatT(a);
  const z = c.of(a.type, 0);
  const safeB = isF ? b : select(eq(b, z), c.of(b.type, 1), b);
  const r = bin('mod', a, safeB);
  if (fmod) return isF ? r : select(eq(b, z), z, r);
  const adj = select(and(ne(r, z), ne(lt(r, z), lt(b, z))), add(r, b), r);
  return isF ? adj : select(eq(b, z), z, adj);
}

const BINARY: Record<string, (a: Expr, b: Expr, ctx: LowerCtx) => Expr> = {
  add: (a, b) => add(a, b),
  sub: (a, b) => sub(a, b),
  mul: (a, b) => mul(a, b),
  div: (a, b) => (isFloatT(a) ? div(a, b) : intDiv(a, b)),
  mod: (a, b, ctx) => modulo(a, b, ctx.attrs['fmod'] === true),
  pow: (a, b) =>
    isFloatT(a) ? pow(a, cast('f32', b)) : cast(a.type, un('round_even', pow(cast('f32', a), cast('f32', b)))),
  equal: (a, b) => eq(a, b),
  less: (a, b) => lt(a, b),
  greater: (a, b) => gt(a, b),
  less_equal: (a, b) => le(a, b),
  greater_equal: (a, b) => ge(a, b),
  and: (a, b) => and(a, b),
  or: (a, b) => or(a, b),
  xor: (a, b) => ne(a, b),
};

for (const [op, fn] of Object.entries(BINARY)) {
  registerLowering(op, (ctx) => [
    pointwise(ctx, { label: op, reads: [0, 1], value: (p) => fn(p.loadBroadcast(0), p.loadBroadcast(1), ctx) }),
  ]);
}

function variadic(op: string, combine: (a: Expr, b: Expr) => Expr): void {
  registerLowering(op, (ctx) => {
    const reads = ctx.inputs.map((_, i) => i);
    return pointwiseSteps(ctx, {
      label: op,
      reads,
      value: (p) => reads.map((i) => p.loadBroadcast(i)).reduce(combine),
    });
  });
}
variadic('max', (a, b) => nanMax(a, b, true));
variadic('min', (a, b) => nanMax(a, b, false));
variadic('sum', add);

/** Round an f32 value to the nearest bf16 (ties to even), keeping NaN. */
export function roundBf16(x: Expr): Expr {
  const u = bitcast('u32', x);
  const lsb = bin('bitand', bin('shr', u, c.u32(16)), c.u32(1));
  const r = bin('bitand', add(u, add(c.u32(0x7fff), lsb)), c.u32(0xffff0000));
  return select(isnan(x), x, bitcast('f32', r));
}

function convert(x: Expr, from: DType, to: DType): Expr {
  if (to === 'bool') {
    if (x.type === 'bool') return x;
    // NaN is nonzero (true); compilers may fold `NaN != 0` as if NaN could not occur, so test its bits too
    return isFloatT(x) ? or(ne(x, c.of(x.type, 0)), isnan(x)) : ne(x, c.of(x.type, 0));
  }
  const isFloatTo = to === 'f32' || to === 'f16' || to === 'bf16' || to === 'f64';
  if (x.type === 'bool')
    return select(
      x,
      c.of(isFloatTo ? 'f32' : to === 'u32' || to === 'u64' ? 'u32' : 'i32', 1),
      c.of(isFloatTo ? 'f32' : to === 'u32' || to === 'u64' ? 'u32' : 'i32', 0),
    );
  if (isFloatTo) {
    const v = cast('f32', x);
    return to === 'bf16' && from !== 'bf16' ? roundBf16(v) : v;
  }
  const target = to === 'u32' || to === 'u64' ? 'u32' : 'i32';
  if (isFloatT(x)) {
    // NaN → 0 (the reference's choice); float→int conversion saturates on both targets for in-range types
    const safe = select(isnan(x), f(0), un('trunc', x));
    if (target === 'u32') return select(lt(safe, f(0)), cast('u32', cast('i32', safe)), cast('u32', safe));
    return cast('i32', safe);
  }
  return cast(target, x);
}

registerLowering('cast', (ctx) => [
  pointwise(ctx, {
    label: 'cast',
    reads: [0],
    value: (p) => convert(p.loadBroadcast(0), ctx.inputs[0]!.dtype, ctx.attrs['to'] as DType),
  }),
]);

registerLowering('clip', (ctx) => {
  const reads = [0, ...[1, 2].filter((i) => ctx.inputs[i] && ctx.inputs[i]!.shape.reduce((a, b) => a * b, 1) > 0)];
  return [
    pointwise(ctx, {
      label: 'clip',
      reads,
      value: (p: Pointwise) => {
        const x = p.loadBroadcast(0);
        let y = x;
        if (reads.includes(1)) y = bin('max', y, p.loadAt(1, c.i32(0)));
        if (reads.includes(2)) y = bin('min', y, p.loadAt(2, c.i32(0)));
        return isFloatT(x) ? select(isnan(x), x, y) : y;
      },
    }),
  ];
});

registerLowering('where', (ctx) => [
  pointwise(ctx, {
    label: 'where',
    reads: [0, 1, 2],
    value: (p) => select(p.loadBroadcast(0), p.loadBroadcast(1), p.loadBroadcast(2)),
  }),
]);
