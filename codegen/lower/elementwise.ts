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
import type { KernelBuilder, LowerCtx } from './kernel-builder.js';
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

export const UNARY: Record<string, (x: Expr, ctx: LowerCtx) => Expr> = {
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
  tan: (x) => un('tan', x),
  asin: (x) => un('asin', x),
  acos: (x) => un('acos', x),
  atan: (x) => un('atan', x),
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
  registerLowering(op, (ctx) => [
    pointwise(ctx, {
      label: op,
      reads: [0],
      value: (p) => {
        const x = p.loadBroadcast(0);
        // -INT_MIN and |INT_MIN| need 33 bits: an i64 held as i32 would wrap
        if ((op === 'neg' || op === 'abs') && ctx.outputs[0]!.dtype === 'i64') {
          p.kb.raiseIf(eq(x, c.i32(-(2 ** 31))), 3);
        }
        return fn(x, ctx);
      },
    }),
  ]);
}

/**
 * 64-bit integers live in 32-bit words on the devices. The reference computes them exactly, so a result that leaves
 * the 32-bit range must not wrap: it raises the node's error flag (code 3) and the run fails with a typed error.
 */
export function checked64(kb: KernelBuilder, op: string, a: Expr, b: Expr, r: Expr, dtype: DType): Expr {
  if (dtype !== 'i64' && dtype !== 'u64') return r;
  const rv = kb.let('r64', r);
  const z = c.of(a.type, 0);
  let overflow: Expr | undefined;
  if (dtype === 'i64') {
    const xor = (x: Expr, y: Expr) => bin('bitxor', x, y);
    if (op === 'add' || op === 'sum') overflow = lt(bin('bitand', xor(a, rv), xor(b, rv)), z);
    if (op === 'sub') overflow = lt(bin('bitand', xor(a, b), xor(a, rv)), z);
    if (op === 'mul') {
      // exact: r / a == b unless the product wrapped (a = -1, b = INT_MIN is the one case division cannot see)
      const safeA = select(eq(a, z), c.i32(1), a);
      overflow = and(ne(a, z), or(ne(div(rv, safeA), b), and(eq(a, c.i32(-1)), eq(b, c.i32(-(2 ** 31))))));
    }
  } else {
    if (op === 'add' || op === 'sum') overflow = lt(rv, a);
    if (op === 'sub') overflow = lt(a, b);
    if (op === 'mul') overflow = and(ne(a, z), ne(div(rv, select(eq(a, z), c.u32(1), a)), b));
  }
  if (overflow) kb.raiseIf(overflow, 3);
  return rv;
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

export const BINARY: Record<string, (a: Expr, b: Expr, ctx: LowerCtx) => Expr> = {
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

/**
 * Expression builders of ops defined outside this file (the kernel DSL's custom ops, `kiln/dsl`): the value of the
 * op from its inputs' expressions; it may emit statements (locals, loops) into `kb` first. The fused lowering
 * (fused.ts) consults this map, so such an op fuses into elementwise groups and contraction epilogues.
 */
export const CUSTOM_EXPRS = new Map<string, (xs: readonly Expr[], ctx: LowerCtx, kb: KernelBuilder) => Expr>();

for (const [op, fn] of Object.entries(BINARY)) {
  registerLowering(op, (ctx) => [
    pointwise(ctx, {
      label: op,
      reads: [0, 1],
      value: (p) => {
        const wide = ctx.outputs[0]!.dtype === 'i64' || ctx.outputs[0]!.dtype === 'u64';
        const a = wide ? p.kb.let('a64', p.loadBroadcast(0)) : p.loadBroadcast(0);
        const b = wide ? p.kb.let('b64', p.loadBroadcast(1)) : p.loadBroadcast(1);
        const r = fn(a, b, ctx);
        if (op === 'pow' && ctx.outputs[0]!.dtype === 'i64') {
          const pf = p.kb.let('pf', un('round_even', pow(cast('f32', a), cast('f32', b))));
          p.kb.raiseIf(or(ge(pf, f(2 ** 31)), lt(pf, f(-(2 ** 31)))), 3);
        }
        return checked64(p.kb, op, a, b, r, ctx.outputs[0]!.dtype);
      },
    }),
  ]);
}

function variadic(op: string, combine: (a: Expr, b: Expr) => Expr): void {
  registerLowering(op, (ctx) => {
    const reads = ctx.inputs.map((_, i) => i);
    return pointwiseSteps(ctx, {
      label: op,
      reads,
      value: (p) => {
        const dt = ctx.outputs[0]!.dtype;
        if (dt !== 'i64' && dt !== 'u64') return reads.map((i) => p.loadBroadcast(i)).reduce(combine);
        return reads
          .map((i) => p.kb.let('v', p.loadBroadcast(i)))
          .reduce((a, b) => checked64(p.kb, op, a, b, combine(a, b), dt));
      },
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

export function convert(x: Expr, from: DType, to: DType): Expr {
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
    value: (p) => {
      const x = p.kb.let('x', p.loadBroadcast(0));
      const to = ctx.attrs['to'] as DType;
      // a float past the 32-bit words that hold i64 / u64 on the device: an error, not a saturated number
      if ((to === 'i64' || to === 'u64') && isFloatT(x)) {
        const t = un('trunc', x);
        const [lo, hi] = to === 'i64' ? [-(2 ** 31), 2 ** 31] : [-1, 2 ** 32];
        p.kb.raiseIf(or(le(t, f(lo - (to === 'i64' ? 1 : 0))), ge(t, f(hi))), 3);
      }
      return convert(x, ctx.inputs[0]!.dtype, to);
    },
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
