/**
 * Lowering of reductions (reduce_*, argmax / argmin), softmax / log_softmax, layer_norm / rms_norm and cumsum.
 * Everything but cumsum is a row kernel (./rowreduce.ts): one workgroup per row with a tree reduction in workgroup
 * memory, or one thread per row for short rows / column reductions. Floats accumulate in f32; integers in i32 / u32
 * (wrapping mod 2^32 is exact mod 2^bits of every narrower dtype, which is where the reference wraps too); integer
 * means accumulate in 64 bits.
 */
import { dtypeInfo, isFloat, type DType } from '../../ir/dtype.js';
import { UnsupportedError } from '../../ir/errors.js';
import { numel, stridesOf } from '../../ir/shape.js';
import {
  PACK,
  add,
  and,
  assign,
  bin,
  bitcast,
  c,
  cast,
  div,
  eq,
  for_,
  ge,
  gt,
  if_,
  isinf,
  isnan,
  le,
  load,
  lt,
  mod,
  mul,
  not,
  or,
  select,
  sub,
  un,
  var_,
  type Expr,
  type KType,
} from '../kir.js';
import { grid1d, KernelBuilder, type LowerCtx, type LoweredStep } from './kernel-builder.js';
import { checkIndexRange, fromCompute, WORKGROUP } from './pointwise.js';
import { registerLowering } from './registry.js';
import {
  floorPow2,
  isFloatType,
  loadCompute,
  maxMonoid,
  prodMonoid,
  rowGeometry,
  rowKernel,
  rowReduce,
  rowValues,
  storeRowValues,
  sumMonoid,
  type Monoid,
  type RowKernel,
  type RowReduceSpec,
} from './rowreduce.js';
import { computeType, storageOf } from './storage.js';

const f = c.f32;
const finite = (x: Expr) => not(or(isnan(x), isinf(x)));

function loc(ctx: LowerCtx) {
  return { node: ctx.node, op: ctx.op };
}

/** Reduced axes as the reference resolves them (absent / empty: all, or none with noop_with_empty_axes). */
function reducedAxes(ctx: LowerCtx): number[] {
  const rank = ctx.inputs[0]!.shape.length;
  const axes = ctx.attrs['axes'] as readonly number[] | undefined;
  if (axes === undefined || axes.length === 0) {
    return ctx.attrs['noop_with_empty_axes'] ? [] : Array.from({ length: rank }, (_, i) => i);
  }
  return axes.map((a) => (a < 0 ? a + rank : a)).sort((x, y) => x - y);
}

function axisAttr(ctx: LowerCtx): number {
  const rank = ctx.inputs[0]!.shape.length;
  const a = ctx.attrs['axis'] as number;
  return a < 0 ? a + rank : a;
}

/** Type an accumulator of `dt` lives in (bool as i32 0/1). */
function accType(dt: DType): KType {
  const ct = computeType(dt);
  return ct === 'bool' ? 'i32' : ct;
}

/** A loaded element as its accumulator type. */
function asAcc(x: Expr): Expr {
  return x.type === 'bool' ? select(x, c.i32(1), c.i32(0)) : x;
}

/** f32 → integer compute type with the reference's conversion (NaN → 0, truncation). */
function floatToInt(x: Expr, ct: KType): Expr {
  if (ct === 'f32') return x;
  const safe = select(isnan(x), f(0), un('trunc', x));
  if (ct === 'u32') return select(lt(safe, f(0)), cast('u32', cast('i32', safe)), cast('u32', safe));
  return cast('i32', safe);
}

const NAN = Number.NaN;

// ---- reduce_* ----

/** The reduced row is empty while rows exist: the identity is the result, check it is representable. */
function emptyRows(ctx: LowerCtx, axes: readonly number[]): boolean {
  const g = rowGeometry(ctx.inputs[0]!.shape, axes);
  return g.len === 0 && g.rows > 0;
}

function extremeIdentity(ctx: LowerCtx, axes: readonly number[], isMax: boolean): number {
  const dt = ctx.inputs[0]!.dtype;
  if (isFloat(dt)) return isMax ? -Infinity : Infinity;
  if (dt === 'bool') return isMax ? 0 : 1;
  const t = accType(dt);
  const lo = t === 'u32' ? 0 : -(2 ** 31);
  const hi = t === 'u32' ? 2 ** 32 - 1 : 2 ** 31 - 1;
  const info = dtypeInfo(dt);
  const want = isMax ? info.min : info.max;
  if (emptyRows(ctx, axes) && (want < lo || want > hi)) {
    throw new UnsupportedError(
      `${ctx.op} over an empty set of ${dt} gives ${isMax ? 'its minimum' : 'its maximum'}, which 32-bit device storage cannot hold`,
      loc(ctx),
    );
  }
  return Math.min(Math.max(want, lo), hi);
}

/** 64-bit integer sum as (lo, hi) u32 words: integer means must not wrap before the division. */
function sum64(): Monoid {
  return {
    types: ['u32', 'u32'],
    identity: [c.u32(0), c.u32(0)],
    combine([alo, ahi], [blo, bhi], kb) {
      const lo = kb.let('lo', add(alo!, blo!));
      const carry = select(lt(lo, alo!), c.u32(1), c.u32(0));
      return [lo, add(add(ahi!, bhi!), carry)];
    },
  };
}

/** trunc((hi:lo) / n) for a signed or unsigned 64-bit sum and n ≥ 0 (n = 0 → 0, the reference's NaN → 0). */
function div64(kb: KernelBuilder, lo: Expr, hi: Expr, n: Expr, signed: boolean): Expr {
  const neg = signed ? kb.let('neg', lt(bitcast('i32', hi), c.i32(0))) : c.bool(false);
  const mlo = signed ? kb.let('mlo', select(neg, add(bin('bitxor', lo, c.u32(0xffffffff)), c.u32(1)), lo)) : lo;
  const mhi = signed
    ? kb.let(
        'mhi',
        select(neg, add(bin('bitxor', hi, c.u32(0xffffffff)), select(eq(mlo, c.u32(0)), c.u32(1), c.u32(0))), hi),
      )
    : hi;
  const nu = kb.let('nu', cast('u32', n));
  const r = kb.fresh('rem');
  const q = kb.fresh('quo');
  const k = kb.fresh('bit');
  const rv: Expr = { k: 'var', name: r, type: 'u32' };
  const qv: Expr = { k: 'var', name: q, type: 'u32' };
  const kv: Expr = { k: 'var', name: k, type: 'i32' };
  const [body] = kb.collect(() => {
    const i = kb.let('i', sub(c.i32(63), kv));
    const word = kb.let('w', select(ge(i, c.i32(32)), mhi, mlo));
    const bit = bin('bitand', bin('shr', word, cast('u32', bin('bitand', i, c.i32(31)))), c.u32(1));
    const r2 = kb.let('r', bin('bitor', bin('shl', rv, c.u32(1)), bit));
    const take = kb.let('t', ge(r2, nu));
    kb.emit(assign(r, select(take, sub(r2, nu), r2)));
    kb.emit(assign(q, bin('bitor', bin('shl', qv, c.u32(1)), select(take, c.u32(1), c.u32(0)))));
  });
  kb.emit(var_(r, 'u32', c.u32(0)), var_(q, 'u32', c.u32(0)), for_(k, c.i32(0), c.i32(64), body));
  const res = signed ? select(neg, sub(c.u32(0), qv), qv) : qv;
  return kb.let('mean', select(eq(nu, c.u32(0)), c.u32(0), res));
}

/** floor(sqrt(s)) exactly for an integer sum of squares (as u32). */
function isqrt(kb: KernelBuilder, s: Expr): Expr {
  const su = kb.let('su', s.type === 'u32' ? s : bitcast('u32', s));
  const r0 = kb.let('r0', bin('min', cast('u32', un('sqrt', cast('f32', su))), c.u32(65535)));
  const r1 = kb.let('r1', select(gt(mul(r0, r0), su), sub(r0, c.u32(1)), r0));
  const n1 = add(r1, c.u32(1));
  return kb.let('r2', select(and(lt(r1, c.u32(65535)), le(mul(n1, n1), su)), n1, r1));
}

export type ReduceKind = 'sum' | 'mean' | 'max' | 'min' | 'prod' | 'sum_square' | 'l2';

function lowerReduce(ctx: LowerCtx, kind: ReduceKind): LoweredStep[] {
  return [rowReduce(ctx, reduceSpec(ctx, kind))];
}

/** The row-reduce spec (prologue, monoid, epilogue) of a reduction: what `fused_reduction` extends. */
export function reduceSpec(ctx: LowerCtx, kind: ReduceKind): RowReduceSpec {
  const dt = ctx.inputs[0]!.dtype;
  const at = accType(dt);
  const axes = reducedAxes(ctx);
  const isF = isFloatType(at);
  const outCt = accType(ctx.outputs[0]!.dtype);
  const base = { label: `reduce_${kind}`, input: 0, axes };
  const id = (x: Expr) => [asAcc(x)];
  switch (kind) {
    case 'sum':
    case 'prod':
      return {
        ...base,
        monoid: kind === 'sum' ? sumMonoid(at) : prodMonoid(at),
        element: id,
        finish: ([a]) => a!,
      };
    case 'sum_square':
    case 'l2':
      return {
        ...base,
        monoid: sumMonoid(at),
        element: (x) => [mul(x, x)],
        finish: ([a], _len, rk) => (kind === 'sum_square' ? a! : isF ? un('sqrt', a!) : cast(outCt, isqrt(rk.kb, a!))),
      };
    case 'max':
    case 'min': {
      const isMax = kind === 'max';
      return {
        ...base,
        monoid: maxMonoid(at, extremeIdentity(ctx, axes, isMax), isMax),
        element: id,
        finish: ([a]) => a!,
      };
    }
    case 'mean':
      if (isF) {
        return {
          ...base,
          monoid: sumMonoid('f32'),
          element: id,
          finish: ([a], len) => select(eq(len, c.i32(0)), f(NAN), div(a!, cast('f32', len))),
        };
      }
      return {
        ...base,
        monoid: sum64(),
        element: (x) =>
          at === 'u32' ? [x, c.u32(0)] : [bitcast('u32', x), select(lt(x, c.i32(0)), c.u32(0xffffffff), c.u32(0))],
        finish: ([lo, hi], len, rk) => {
          const q = div64(rk.kb, lo!, hi!, len, at !== 'u32');
          return at === 'u32' ? q : bitcast('i32', q);
        },
      };
  }
}

export const REDUCE_KINDS: Record<string, ReduceKind> = {
  reduce_sum: 'sum',
  reduce_mean: 'mean',
  reduce_max: 'max',
  reduce_min: 'min',
  reduce_prod: 'prod',
  reduce_sum_square: 'sum_square',
  reduce_l2: 'l2',
};
for (const [op, kind] of Object.entries(REDUCE_KINDS)) registerLowering(op, (ctx) => lowerReduce(ctx, kind));

/** The row's max (NaN-propagating) then sum of exp(x - max): the two reductions of softmax and log-sum-exp. */
function maxAndSumExp(rk: RowKernel, load: (off: Expr) => Expr, skipNonFinite: boolean): { m: Expr; s: Expr } {
  const [m] = rk.accumulate(maxMonoid('f32', -Infinity, true), (_j, off) => [load(off)]);
  const [s] = rk.accumulate(sumMonoid('f32'), (_j, off) => {
    const e = un('exp', sub(load(off), m!));
    return [skipNonFinite ? select(finite(m!), e, f(0)) : e];
  });
  return { m: m!, s: s! };
}

registerLowering('reduce_log_sum_exp', (ctx) => {
  const info = ctx.inputs[0]!;
  const outCt = accType(ctx.outputs[0]!.dtype);
  return [
    rowValues(ctx, { label: 'reduce_log_sum_exp', input: 0, axes: reducedAxes(ctx) }, (rk, base, xb) => {
      const kb = rk.kb;
      const load = (off: Expr) => cast('f32', loadCompute(kb, xb, info, kb.let('at', add(base, off))));
      const { m, s } = maxAndSumExp(rk, load, true);
      // an infinite (or NaN) max is the answer itself
      const y = kb.let('lse', select(finite(m), add(m, un('log', s)), m));
      return floatToInt(y, outCt);
    }),
  ];
});

// ---- argmax / argmin ----

function argMonoid(vt: KType, isMax: boolean, last: boolean): Monoid {
  return {
    types: [vt, 'i32'],
    identity: [c.of(vt, 0), c.i32(-1)],
    combine([av, ai], [bv, bi], kb) {
      const a = av!;
      const b = bv!;
      const pref = last ? gt(bi!, ai!) : lt(bi!, ai!);
      let better: Expr;
      let tie: Expr;
      if (isFloatType(vt)) {
        const aN = kb.let('an', isnan(a));
        const bN = kb.let('bn', isnan(b));
        better = or(and(bN, not(aN)), and(not(or(aN, bN)), isMax ? gt(b, a) : lt(b, a)));
        tie = or(and(aN, bN), eq(b, a));
      } else {
        better = isMax ? gt(b, a) : lt(b, a);
        tie = eq(b, a);
      }
      // index -1 marks an empty accumulator (threads that saw no element)
      const take = kb.let('take', and(ge(bi!, c.i32(0)), or(lt(ai!, c.i32(0)), or(better, and(tie, pref)))));
      return [select(take, b, a), select(take, bi!, ai!)];
    },
  };
}

for (const op of ['argmax', 'argmin'] as const) {
  registerLowering(op, (ctx) => {
    const vt = accType(ctx.inputs[0]!.dtype);
    return [
      rowReduce(ctx, {
        label: op,
        input: 0,
        axes: [axisAttr(ctx)],
        monoid: argMonoid(vt, op === 'argmax', ctx.attrs['select_last_index'] === true),
        element: (x, j) => [asAcc(x), j],
        finish: ([, i]) => i!,
      }),
    ];
  });
}

// ---- softmax / log_softmax ----

/** Store a float value into a non-packed output buffer. */
function storeValue(kb: KernelBuilder, ctx: LowerCtx, ob: string, oi: number, index: Expr, value: Expr): void {
  const st = storageOf(ctx.outputs[oi]!.dtype, ctx.caps);
  const target: KType = st === 'f16' ? 'f16' : st === 'f32' ? 'f32' : st === 'u32' ? 'u32' : 'i32';
  kb.emit({ k: 'store', buf: ob, index, value: fromCompute(value, target) });
}

for (const op of ['softmax', 'log_softmax'] as const) {
  registerLowering(op, (ctx) => {
    const info = ctx.inputs[0]!;
    const geom = rowGeometry(info.shape, [axisAttr(ctx)]);
    return [
      rowKernel(ctx, { label: op, geom }, (rk, unit) => {
        const kb = rk.kb;
        const xb = kb.input(ctx, 0);
        const ob = kb.output(ctx, 0);
        const base = rk.rowBase(unit);
        const load = (off: Expr) => loadCompute(kb, xb, info, kb.let('at', add(base, off)));
        const { m, s } = maxAndSumExp(rk, load, false);
        const ls = op === 'log_softmax' ? kb.let('ls', un('log', s)) : s;
        rk.forEach((_j, off) => {
          const at = kb.let('at', add(base, off));
          const z = kb.let('z', sub(loadCompute(kb, xb, info, at), m));
          storeValue(kb, ctx, ob, 0, at, op === 'log_softmax' ? sub(z, ls) : div(un('exp', z), s));
        });
      }),
    ];
  });
}

// ---- layer_norm / rms_norm ----

/** Index into a norm parameter broadcast (unidirectionally) to the normalized shape, for flat element j. */
function paramIndex(rk: RowKernel, pshape: readonly number[], norm: readonly number[], j: Expr): Expr {
  const pn = numel(pshape);
  if (pn === 1) return c.i32(0);
  if (pn === numel(norm)) return j;
  const kb = rk.kb;
  const pst = stridesOf(pshape);
  let rest = j;
  let off: Expr = c.i32(0);
  for (let d = norm.length - 1; d >= 0; d--) {
    if (norm[d] === 1) continue;
    const pj = d - (norm.length - pshape.length);
    const stride = pj < 0 || pshape[pj] === 1 ? 0 : pst[pj]!;
    const size = kb.uniform('nd', norm[d]!);
    const coord = kb.let('pc', mod(rest, size));
    rest = kb.let('pq', div(rest, size));
    if (stride !== 0) off = add(off, mul(coord, stride === 1 ? c.i32(1) : kb.uniform('ps', stride)));
  }
  return kb.let('pi', off);
}

function lowerNorm(ctx: LowerCtx, rms: boolean): LoweredStep[] {
  const info = ctx.inputs[0]!;
  const r = info.shape.length;
  const axis = axisAttr(ctx);
  const norm = info.shape.slice(axis);
  const geom = rowGeometry(
    info.shape,
    Array.from({ length: r - axis }, (_, i) => axis + i),
  );
  const eps = ctx.attrs['epsilon'] as number;
  const hasBias = !rms && ctx.inputs[2] !== undefined;
  const label = rms ? 'rms_norm' : 'layer_norm';
  return [
    rowKernel(ctx, { label, geom }, (rk, unit) => {
      const kb = rk.kb;
      const xb = kb.input(ctx, 0);
      const sb = kb.input(ctx, 1);
      const bb = hasBias ? kb.input(ctx, 2) : undefined;
      const ob = kb.output(ctx, 0);
      const statBufs = rms ? [] : ctx.outputs.slice(1).map((_, i) => kb.output(ctx, i + 1));
      const base = rk.rowBase(unit);
      const load = (off: Expr) => loadCompute(kb, xb, info, kb.let('at', add(base, off)));
      const n = kb.let('n', cast('f32', rk.len));
      const empty = eq(rk.len, c.i32(0));
      // Shifted moments: statistics of x - x[0] rather than x. The subtraction is exact for values near x[0], so
      // a row far from zero relative to its spread keeps its precision (a constant row normalizes to the bias
      // exactly) instead of losing it to the rounding of a large mean, amplified by 1 / std.
      const shift = rms || geom.len === 0 ? f(0) : kb.let('k', load(c.i32(0)));
      const centered = (x: Expr) => (rms || geom.len === 0 ? x : sub(x, shift));
      let mean: Expr = f(0);
      let dmean: Expr = f(0);
      let inv: Expr;
      if (rms) {
        const [ss] = rk.accumulate(sumMonoid('f32'), (_j, off) => {
          const x = kb.let('x', load(off));
          return [mul(x, x)];
        });
        inv = kb.let('inv', div(f(1), un('sqrt', add(div(ss!, n), f(eps)))));
      } else {
        const [s] = rk.accumulate(sumMonoid('f32'), (_j, off) => [centered(load(off))]);
        dmean = kb.let('dmean', select(empty, f(NAN), div(s!, n)));
        mean = kb.let('mean', add(shift, dmean));
        const [v] = rk.accumulate(sumMonoid('f32'), (_j, off) => {
          const d = kb.let('d', sub(centered(load(off)), dmean));
          return [mul(d, d)];
        });
        inv = kb.let('inv', div(f(1), un('sqrt', add(select(empty, f(NAN), div(v!, n)), f(eps)))));
      }
      rk.forEach((j, off) => {
        const at = kb.let('at', add(base, off));
        const x = loadCompute(kb, xb, info, at);
        const sc = loadCompute(kb, sb, ctx.inputs[1]!, paramIndex(rk, ctx.inputs[1]!.shape, norm, j));
        let y = rms ? mul(mul(x, inv), sc) : mul(mul(sub(centered(x), dmean), inv), sc);
        if (bb) y = add(y, loadCompute(kb, bb, ctx.inputs[2]!, paramIndex(rk, ctx.inputs[2]!.shape, norm, j)));
        storeValue(kb, ctx, ob, 0, at, y);
      });
      statBufs.forEach((b, i) => storeRowValues(rk, b, i + 1, unit, [i === 0 ? mean : inv]));
    }),
  ];
}

registerLowering('layer_norm', (ctx) => lowerNorm(ctx, false));
registerLowering('rms_norm', (ctx) => lowerNorm(ctx, true));

// ---- cumsum ----

registerLowering('cumsum', (ctx) => {
  const info = ctx.inputs[0]!;
  const out = ctx.outputs[0]!;
  const axis = axisAttr(ctx);
  const shape = info.shape;
  const len = shape[axis]!;
  const inner = numel(shape.slice(axis + 1));
  const outer = numel(shape.slice(0, axis));
  const exclusive = ctx.attrs['exclusive'] === true;
  const reverse = ctx.attrs['reverse'] === true;
  const n = numel(shape);
  checkIndexRange(ctx, n, 'input 0');
  const at = accType(info.dtype);
  const wg = floorPow2(Math.min(WORKGROUP, ctx.caps.maxWorkgroupSize));
  const empty = (groups: number): [number, number, number] =>
    groups === 0 || n === 0 ? [0, 1, 1] : grid1d(groups, ctx.caps);
  // Packed outputs (8/16-bit integers): scan into a 32-bit scratch buffer, then pack it with one thread per word.
  const per = PACK[storageOf(out.dtype, ctx.caps)];
  const scratch = { kind: 'tmp', id: 'scan', bytes: Math.max(4, n * 4) } as const;

  // Step 1: one thread per (outer, inner) line, scanning it sequentially.
  const kb = new KernelBuilder('cumsum', ctx.caps);
  const xb = kb.input(ctx, 0);
  const ob = per === 1 ? kb.output(ctx, 0) : kb.buffer(scratch, at === 'u32' ? 'u32' : 'i32', 'read_write');
  const lines = outer * inner;
  const linesU = kb.uniform('lines', lines);
  const innerU = inner === 1 ? c.i32(1) : kb.uniform('inner', inner);
  const lenU = kb.uniform('len', len);
  const g = kb.groupIndex();
  const l = kb.localIndex();
  const t = kb.let('t', add(mul(g, c.i32(wg)), l));
  const put = (index: Expr, value: Expr) =>
    per === 1 ? storeValue(kb, ctx, ob, 0, index, value) : kb.emit({ k: 'store', buf: ob, index, value });
  const [stmts] = kb.collect(() => {
    const o = kb.let('o', div(t, innerU));
    const i = kb.let('i', mod(t, innerU));
    const base = kb.let('base', add(mul(o, mul(lenU, innerU)), i));
    const acc = kb.fresh('acc');
    const accV: Expr = { k: 'var', name: acc, type: at };
    const kk = kb.fresh('k');
    const kv: Expr = { k: 'var', name: kk, type: 'i32' };
    const [body] = kb.collect(() => {
      const idx = reverse ? sub(sub(lenU, c.i32(1)), kv) : kv;
      const off = kb.let('at', add(base, mul(idx, innerU)));
      const x = kb.let('x', loadCompute(kb, xb, info, off));
      if (exclusive) {
        put(off, accV);
        kb.emit(assign(acc, add(accV, x)));
      } else {
        kb.emit(assign(acc, add(accV, x)));
        put(off, accV);
      }
    });
    kb.emit(var_(acc, at, c.of(at, 0)), for_(kk, c.i32(0), lenU, body));
  });
  kb.emit(if_(lt(t, linesU), stmts));
  const scan = kb.build([wg, 1, 1], empty(Math.ceil(lines / wg)));
  if (per === 1) return [scan];

  // Step 2: pack the scratch values into the output words (wrapping to the dtype, as the reference does).
  const pk = new KernelBuilder('cumsum_pack', ctx.caps);
  const sb = pk.buffer(scratch, at === 'u32' ? 'u32' : 'i32', 'read');
  const pb = pk.output(ctx, 0);
  const nU = pk.uniform('n', n);
  const words = Math.ceil(n / per);
  const wordsU = pk.uniform('w', words);
  const w = pk.let('t', add(mul(pk.groupIndex(), c.i32(wg)), pk.localIndex()));
  const [packBody, vals] = pk.collect(() => {
    const vs: Expr[] = [];
    for (let j = 0; j < per; j++) {
      const e = pk.let('e', add(mul(w, c.i32(per)), c.i32(j)));
      const ec = select(lt(e, nU), e, c.i32(0));
      vs.push(pk.let('v', cast('i32', load(sb, ec, at === 'u32' ? 'u32' : 'i32'))));
    }
    return vs;
  });
  pk.emit(if_(lt(w, wordsU), [...packBody, { k: 'store_packed', buf: pb, word: w, values: vals }]));
  return [scan, pk.build([wg, 1, 1], empty(Math.ceil(words / wg)))];
});
