/**
 * Lowering of sample_token (ir/ops/sample.ts): one workgroup per row (one thread per row for short rows), f32 math,
 * no sort. The reference walks the candidates in sorted order — logit descending, lower index first on ties — so a
 * prefix of that order is named by a cut (K, I): the elements whose order key (an order-preserving u32 of the
 * logit) is > K, or == K with index <= I. Every step is a search for the shortest prefix whose aggregate over a set
 * passes a monotone test: a binary search over K (32 rounds) for the largest K whose elements with key >= K pass,
 * then a binary search over I (ceil(log2 vocab) rounds) among the elements with key == K, which resolves ties by
 * index. Each round is one pass over the row plus a workgroup all-reduce (count in i32, or weight sum in f32).
 * Summing a subset adds zeros for the excluded elements in the same order, so the f32 sums are monotone in the
 * cut and the two searches agree with each other.
 *
 *   1. l_max (max reduction); greedy rows (temperature <= 0) become top_k 1 at temperature 1: the first candidate
 *      is the argmax, first on ties.
 *   2. top_k: the shortest prefix holding k elements (k <= 0 or >= vocab: all).
 *   3. top_p: the shortest prefix of that set whose weight reaches top_p of its total (top_p >= 1: the top_k cut).
 *   4. the draw: u from the (seed, step) hash in u32 arithmetic (bit-identical to sampleUniform); the shortest
 *      prefix of the top_p set whose weight exceeds u · its total; its last element is the token. When rounding
 *      leaves no such prefix, the last kept candidate (the reference's fallback).
 *
 * All loops have workgroup-uniform bounds and the searched values only feed selects, so barriers stay in uniform
 * control flow (WGSL's uniformity analysis treats workgroup-memory loads as non-uniform).
 */
import {
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
  le,
  lt,
  mul,
  not,
  or,
  select,
  sub,
  un,
  v,
  var_,
  type Expr,
} from '../kir.js';
import { type KernelBuilder, type LowerCtx } from './kernel-builder.js';
import { registerLowering } from './registry.js';
import {
  loadCompute,
  maxMonoid,
  rowGeometry,
  rowKernel,
  storeRowValues,
  sumMonoid,
  type Monoid,
  type RowKernel,
} from './rowreduce.js';

const f = c.f32;
const i32 = c.i32;
const u32 = c.u32;
const shr = (a: Expr, n: number) => bin('shr', a, u32(n));
const xor = (a: Expr, b: Expr) => bin('bitxor', a, b);

/** Order-preserving u32 key of an f32: a larger float has a larger key; -0 keys as +0 (they compare equal). */
function orderKey(kb: KernelBuilder, x: Expr): Expr {
  const bits = kb.let('bits', bitcast('u32', select(eq(x, f(0)), f(0), x)));
  const neg = ne0(bin('bitand', bits, u32(0x80000000)));
  return kb.let('key', select(neg, xor(bits, u32(0xffffffff)), bin('bitor', bits, u32(0x80000000))));
}
const ne0 = (a: Expr) => bin('ne', a, u32(0));

/** The u32 hash of ir/ops/sample.ts `sampleBits`, top 24 bits as u in [0, 1) (exact in f32). */
function drawUniform(kb: KernelBuilder, seed: Expr, step: Expr): Expr {
  let x = kb.let('h', xor(bitcast('u32', seed), mul(bitcast('u32', step), u32(0x9e3779b9))));
  x = kb.let('h', xor(x, shr(x, 16)));
  x = kb.let('h', mul(x, u32(0x85ebca6b)));
  x = kb.let('h', xor(x, shr(x, 13)));
  x = kb.let('h', mul(x, u32(0xc2b2ae35)));
  x = kb.let('h', xor(x, shr(x, 16)));
  return kb.let('u', mul(cast('f32', shr(x, 8)), f(2 ** -24)));
}

/** A prefix of the sorted order: key > K, or key == K and index <= I. */
interface Cut {
  K: Expr;
  I: Expr;
}
const inCut = (key: Expr, j: Expr, cut: Cut): Expr => or(gt(key, cut.K), and(eq(key, cut.K), le(j, cut.I)));

/** One element of the row as a pass sees it. */
interface Elem {
  key: Expr;
  j: Expr;
  /** The weight exp((l - l_max) / T), computed on first use. */
  w: () => Expr;
}

class Sampler {
  constructor(
    readonly rk: RowKernel,
    /** Emits the loads of element j (offset `off` in the row) for one pass. */
    readonly elem: (j: Expr, off: Expr) => Elem,
    /** Rounds of the index search: ceil(log2 vocab), a uniform. */
    readonly idxRounds: Expr,
  ) {}

  /** Aggregate over the elements selected by `sel`: a count (i32) or the weight sum (f32). */
  aggregate(kind: 'count' | 'sum', sel: (e: Elem) => Expr): Expr {
    const m: Monoid = sumMonoid(kind === 'count' ? 'i32' : 'f32');
    const [a] = this.rk.accumulate(m, (j, off) => {
      const e = this.elem(j, off);
      return [select(sel(e), kind === 'count' ? i32(1) : e.w(), kind === 'count' ? i32(0) : f(0))];
    });
    return a!;
  }

  /**
   * The shortest prefix of the sorted order whose aggregate over the elements of `within` passes `pass` (monotone:
   * more elements never fail where fewer passed). Assumes the whole set passes.
   */
  search(kind: 'count' | 'sum', within: Cut | undefined, pass: (a: Expr) => Expr): Cut {
    const kb = this.rk.kb;
    const member = (e: Elem): Expr => (within ? inCut(e.key, e.j, within) : c.bool(true));
    // the largest K whose elements with key >= K pass: lo always passes, the answer is <= hi
    const lo = kb.fresh('klo');
    const hi = kb.fresh('khi');
    kb.emit(var_(lo, 'u32', u32(0)), var_(hi, 'u32', u32(0xffffffff)));
    const [kRound] = kb.collect(() => {
      const d = kb.let('d', sub(v(hi, 'u32'), v(lo, 'u32')));
      // the upper middle, without overflowing at d = 2^32 - 1
      const mid = kb.let('kmid', add(add(v(lo, 'u32'), shr(d, 1)), bin('bitand', d, u32(1))));
      const ok = kb.let('ok', pass(this.aggregate(kind, (e) => and(member(e), ge(e.key, mid)))));
      kb.emit(assign(lo, select(ok, mid, v(lo, 'u32'))), assign(hi, select(ok, v(hi, 'u32'), sub(mid, u32(1)))));
    });
    kb.emit(for_(kb.fresh('kr'), i32(0), i32(32), kRound));
    const K = kb.let('K', v(lo, 'u32'));
    // among the elements with key K, the lowest index I at which the prefix passes (key K, index <= I)
    const ilo = kb.fresh('ilo');
    const ihi = kb.fresh('ihi');
    kb.emit(var_(ilo, 'i32', i32(0)), var_(ihi, 'i32', sub(this.rk.len, i32(1))));
    const [iRound] = kb.collect(() => {
      const mid = kb.let('imid', add(v(ilo, 'i32'), div(sub(v(ihi, 'i32'), v(ilo, 'i32')), i32(2))));
      const ok = kb.let('ok', pass(this.aggregate(kind, (e) => and(member(e), inCut(e.key, e.j, { K, I: mid })))));
      kb.emit(assign(ihi, select(ok, mid, v(ihi, 'i32'))), assign(ilo, select(ok, v(ilo, 'i32'), add(mid, i32(1)))));
    });
    kb.emit(for_(kb.fresh('ir'), i32(0), this.idxRounds, iRound));
    return { K, I: kb.let('I', v(ilo, 'i32')) };
  }
}

const selectCut = (cond: Expr, a: Cut, b: Cut, kb: KernelBuilder): Cut => ({
  K: kb.let('K', select(cond, a.K, b.K)),
  I: kb.let('I', select(cond, a.I, b.I)),
});

registerLowering('sample_token', (ctx: LowerCtx) => {
  const [B, V] = ctx.inputs[0]!.shape as [number, number];
  let rounds = 0;
  while (2 ** rounds < V) rounds++;
  return [
    rowKernel(ctx, { label: 'sample_token', geom: rowGeometry([B, V], [1]) }, (rk, row) => {
      const kb = rk.kb;
      const bufs = [0, 1, 2, 3, 4, 5].map((i) => kb.input(ctx, i));
      const ob = kb.output(ctx, 0);
      const param = (i: number, hint: string) => kb.let(hint, loadCompute(kb, bufs[i]!, ctx.inputs[i]!, row));
      const temp = param(1, 'temp');
      const topK = param(2, 'topk');
      const topP = param(3, 'topp');
      const u = drawUniform(kb, param(4, 'seed'), param(5, 'step'));
      const base = rk.rowBase(row);
      const logit = (off: Expr) => kb.let('x', loadCompute(kb, bufs[0]!, ctx.inputs[0]!, add(base, off)));

      const [lmax] = rk.accumulate(maxMonoid('f32', -Infinity, true), (_j, off) => [logit(off)]);
      // greedy = top_k 1 at temperature 1 (the first candidate is the argmax)
      const greedy = kb.let('greedy', not(gt(temp, f(0))));
      const tEff = kb.let('teff', select(greedy, f(1), temp));
      const VU = rk.len;
      const kAll = or(le(topK, i32(0)), ge(topK, VU));
      const k = kb.let('k', select(greedy, i32(1), select(kAll, VU, topK)));
      const s = new Sampler(
        rk,
        (j, off) => {
          const x = logit(off);
          return { key: orderKey(kb, x), j, w: () => kb.let('w', un('exp', div(sub(x, lmax!), tEff))) };
        },
        kb.uniform('rounds', rounds),
      );

      const cutK = s.search('count', undefined, (a) => ge(a, k));
      const totalK = kb.let(
        'totk',
        s.aggregate('sum', (e) => inCut(e.key, e.j, cutK)),
      );
      const nucleus = s.search('sum', cutK, (a) => ge(a, mul(topP, totalK)));
      // top_p >= 1 (or NaN, as in the reference): no cut
      const cutP = selectCut(not(lt(topP, f(1))), cutK, nucleus, kb);
      const totalP = kb.let(
        'totp',
        s.aggregate('sum', (e) => inCut(e.key, e.j, cutP)),
      );
      const target = kb.let('target', mul(u, totalP));
      const drawn = s.search('sum', cutP, (a) => gt(a, target));
      const token = kb.let('token', select(gt(totalP, target), drawn.I, cutP.I));
      storeRowValues(rk, ob, 0, row, [token]);
    }),
  ];
});
