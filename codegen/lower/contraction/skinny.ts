/**
 * The skinny (GEMV-like) schedule of a contraction — M or N ≤ 4, or M·N ≤ 1024 per batch: S threads share one
 * output, each summing every S-th k; partial sums meet in workgroup memory and the output's first thread adds them in
 * order. x·W with W n-contiguous: outputs fastest across threads, S = 4 (coalesced rows of W); otherwise (W·x,
 * transposed weights, dot products) k fastest, S = 32 — unless the autotuner chose another S for the class (schedules.ts).
 */
import {
  add,
  and,
  assign,
  barrier,
  c,
  div,
  eq,
  for_,
  if_,
  lt,
  mod,
  mul,
  select,
  sload,
  sstore,
  sub,
  v,
  var_,
  type Expr,
  type KType,
  type Stmt,
} from '../../kir.js';
import { grid1d, KernelBuilder, type LowerCtx, type LoweredStep } from '../kernel-builder.js';
import { fromCompute } from '../pointwise.js';
import { contiguousOn, outputReads, total, type Axes, type Contraction } from './contraction.js';
import { Gen } from './gen.js';
import { contractionClass, SKINNY_CANDIDATES, tunedChoice } from './schedules.js';

export function skinny(ctx: LowerCtx, con: Contraction, target: KType): LoweredStep {
  const T = Math.min(256, 2 ** Math.floor(Math.log2(ctx.caps.maxWorkgroupSize)));
  const M = total(con, 'm');
  const N = total(con, 'n');
  const outs = total(con, 'batch') * M * N;
  // Outputs fastest across threads when the big operand is b walked along n (x · W, S = 4 threads per output);
  // else k fastest (W · x, transposed weights, dot products: S = 32 threads per output).
  const outFast = N >= 32 && contiguousOn(con.b.st, 'n') && !contiguousOn(con.b.st, 'k');
  const tuned = tunedChoice(ctx.caps, 'skinny', contractionClass('skinny', con, ctx.outputs[0]!.dtype), ctx.node);
  let S = Math.min((tuned === undefined ? undefined : SKINNY_CANDIDATES[tuned]) ?? (outFast ? 4 : 32), T);
  if (S * 4 > ctx.caps.maxSharedBytes) S = 1;
  const OPW = T / S;

  const kb = new KernelBuilder(`${con.label}_skinny`, ctx.caps);
  const g = new Gen(kb, ctx, con);
  const ob = kb.output(ctx, 0);
  const ct = g.ct;
  const l = kb.localIndex();
  const gi = kb.groupIndex();
  const s = S === 1 ? c.i32(0) : kb.let('s', outFast ? div(l, c.i32(OPW)) : mod(l, c.i32(S)));
  const ol = S === 1 ? l : kb.let('ol', outFast ? mod(l, c.i32(OPW)) : div(l, c.i32(S)));
  const o = kb.let('o', add(mul(gi, c.i32(OPW)), ol));
  const nOut = kb.uniform('outs', outs);
  const valid = kb.let('valid', lt(o, nOut));
  const oc = kb.let('oc', select(valid, o, c.i32(0)));
  const Mu = g.total('m');
  const Nu = g.total('n');
  const Ku = g.total('k');
  let rest = oc;
  let nj: Expr = c.i32(0);
  let mi: Expr = c.i32(0);
  if (N !== 1) {
    nj = kb.let('nj', mod(rest, Nu));
    rest = kb.let('r', div(rest, Nu));
  }
  if (M !== 1) {
    mi = kb.let('mi', mod(rest, Mu));
    rest = kb.let('r', div(rest, Mu));
  }
  const bc = g.coords('batch', rest);
  const mc = M !== 1 ? g.coords('m', mi) : [];
  const nc = N !== 1 ? g.coords('n', nj) : [];
  const rowOf = (w: Axes, name: string) =>
    kb.let('ro', add(add(g.offset(w, name, 'batch', bc), g.offset(w, name, 'm', mc)), g.offset(w, name, 'n', nc)));
  const ra = rowOf(con.a.st, 'a');
  const rb = rowOf(con.b.st, 'b');
  const raz = con.aZero ? rowOf(con.aZero.st, 'az') : undefined;
  const rbz = con.bZero ? rowOf(con.bZero.st, 'bz') : undefined;

  kb.emit(var_('acc', ct, g.zero()));
  // a fused norm: each thread also sums a² over its k (a layer norm: a' = a − a₀, Σa' and Σb too); the partial sums
  // meet like acc's
  const layer = con.rowNorm?.kind === 'layer';
  if (con.rowNorm) kb.emit(var_('ss', ct, g.zero()));
  const a0 = layer ? kb.let('a0', g.ld(con.a, ra)) : undefined;
  if (layer) kb.emit(var_('sa', ct, g.zero()), var_('cs', ct, g.zero()));
  const [body] = kb.collect(() => {
    const kc = g.coords('k', v('k', 'i32'));
    let a = g.ld(con.a, add(ra, g.offset(con.a.st, 'a', 'k', kc)));
    if (con.aZero && raz) a = sub(a, g.ld(con.aZero, add(raz, g.offset(con.aZero.st, 'az', 'k', kc))));
    let b = g.ld(con.b, add(rb, g.offset(con.b.st, 'b', 'k', kc)));
    if (con.bZero && rbz) b = sub(b, g.ld(con.bZero, add(rbz, g.offset(con.bZero.st, 'bz', 'k', kc))));
    if (con.rowNorm) {
      const av = kb.let('av', a0 ? sub(a, a0) : a);
      kb.emit(assign('ss', add(v('ss', ct), mul(av, av))));
      a = av;
      b = kb.let('bw', mul(b, g.normWeight(kc)));
      if (layer) kb.emit(assign('sa', add(v('sa', ct), av)), assign('cs', add(v('cs', ct), b)));
    }
    kb.emit(assign('acc', add(v('acc', ct), mul(a, b))));
  });
  kb.emit(for_('k', s, Ku, body, c.i32(S)));

  const sum = v('acc', ct);
  // partial sums through workgroup memory; the first thread of each output adds them in order (one barrier)
  const tail: Stmt[] = [];
  if (S > 1) {
    const step = outFast ? OPW : 1;
    const sums = layer ? ['acc', 'ss', 'sa', 'cs'] : con.rowNorm ? ['acc', 'ss'] : ['acc'];
    for (const name of sums) {
      const red = kb.sharedArray(name === 'acc' ? 'red' : `red_${name}`, ct, T);
      kb.emit(sstore(red, l, v(name, ct)));
      const part = sload(red, add(l, mul(v('j', 'i32'), c.i32(step))), ct);
      tail.push(for_('j', c.i32(1), c.i32(S), [assign(name, add(v(name, ct), part))]));
    }
    kb.emit(barrier);
  }
  const result = layer
    ? g.layerScaled(sum, v('sa', ct), v('ss', ct), v('cs', ct))
    : con.rowNorm
      ? mul(sum, g.normScale(v('ss', ct)))
      : sum;
  const [store0] = kb.collect(() => {
    const bo = g.offset(con.out, 'o', 'batch', bc);
    const oidx = add(add(bo, g.offset(con.out, 'o', 'm', mc)), g.offset(con.out, 'o', 'n', nc));
    const idx = outputReads(con).map(({ w, name }) =>
      add(add(g.offset(w.st, name, 'batch', bc), g.offset(w.st, name, 'm', mc)), g.offset(w.st, name, 'n', nc)),
    );
    const value = fromCompute(g.epilogue(result, idx, { m: mi, n: nj }), target);
    kb.emit({ k: 'store', buf: ob, index: kb.let('oi', oidx), value });
  });
  kb.emit(if_(and(valid, eq(s, c.i32(0))), [...tail, ...store0]));
  return kb.build([T, 1, 1], outs === 0 ? [0, 1, 1] : grid1d(Math.ceil(outs / OPW), ctx.caps));
}
