/**
 * The packed int8 dot-product schedule of matmul_integer: where both operands' packed words run along K (a
 * [..., M, K] row-major, b given as [..., N, K] — `trans_b`) and K % 4 == 0, each lane reads whole u32 words of a
 * row of a and a row of b and adds their 4-lane dot product (`dot4`: WGSL dot4I8Packed / dot4U8Packed, CUDA __dp4a,
 * or its scalar expansion on devices without one), S lanes per output meeting in workgroup memory.
 *
 * Zero points and mixed signedness are folded, exactly in i32:
 *
 *   Σ (a − za)(b − zb) = Σ ab − zb·Σa − za·Σb + K·za·zb,   Σa = Σ dot4(a, 0x01010101) (Σb alike).
 *
 * Mixed signedness (u8 activations × i8 weights, as ONNX DynamicQuantizeLinear gives, or the reverse): the u8 side's
 * words are XORed with 0x80808080 — each byte becomes its value − 128 as an i8 — and its zero point becomes z − 128
 * (0 − 128 where it has none), so the dot is i8 × i8. The column / row sums are computed in the kernel from the same
 * words (one more dot per word each, only where the other side's zero point can be nonzero), so b need not be a
 * constant.
 */
import {
  add,
  and,
  assign,
  barrier,
  bin,
  c,
  div,
  dot4Of,
  eq,
  for_,
  if_,
  load,
  loadType,
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
import { fromCompute, toCompute } from '../pointwise.js';
import { storageOf } from '../storage.js';
import { total, type Axes, type Contraction } from './contraction.js';
import { Gen } from './gen.js';

const INT8 = new Set(['i8', 'u8']);

/** Does the packed dot-product schedule cover this (simplified) matmul_integer contraction? */
export function dot4Applies(ctx: LowerCtx, con: Contraction): boolean {
  const K = con.dims.k.length === 1 ? con.dims.k[0]! : 0;
  const words = (w: Axes, cats: readonly ('batch' | 'm' | 'n')[]) =>
    w.k[0] === 1 && cats.every((cat) => w[cat].every((s) => s % 4 === 0));
  const zeroK = (w: Contraction['aZero']) => !w || w.st.k.every((s) => s === 0);
  return (
    K > 0 &&
    K % 4 === 0 &&
    total(con, 'batch') * total(con, 'm') * total(con, 'n') > 0 &&
    INT8.has(ctx.inputs[con.a.input]!.dtype) &&
    INT8.has(ctx.inputs[con.b.input]!.dtype) &&
    con.a.offset === undefined &&
    con.b.offset === undefined &&
    words(con.a.st, ['batch', 'm']) &&
    words(con.b.st, ['batch', 'n']) &&
    zeroK(con.aZero) &&
    zeroK(con.bZero) &&
    !con.bias &&
    !con.extras?.length &&
    !con.rowNorm &&
    !con.bLoad &&
    !con.packedB
  );
}

/** `Contraction.schedule` of matmul_integer: the packed dot-product kernel where it applies (see {@link dot4Applies}). */
export function dot4Schedule(ctx: LowerCtx, con: Contraction, target: KType): LoweredStep | undefined {
  if (!dot4Applies(ctx, con)) return undefined;
  const rows = total(con, 'batch') * total(con, 'm');
  if (rows > DOT4_GEMV_MAX_ROWS && con.dims.m.length === 1 && con.dims.n.length <= 1) {
    return dot4Blocked(ctx, con, target);
  }
  return dot4Matmul(ctx, con, target);
}

/** Rows of a (batch × m) up to which the lanes-per-output kernel runs; above, the register-blocked one. */
export const DOT4_GEMV_MAX_ROWS = 4;

/**
 * Register block of the blocked kernel: TM rows × TN columns per thread (16 words read per 64 dot4s). On lavapipe,
 * [128, 4096] · [4096, 4096]: 8×8 267 ms, 8×4 288, 4×4 382, 4×8 443 (per element: 440–530).
 */
const TM = 8;
const TN = 8;

/**
 * Prefill-sized products: each thread computes a TM × TN block of outputs straight from memory (no workgroup memory,
 * no barriers), reading TM words of a and TN words of b per step of 4 k for TM·TN dot4s.
 */
export function dot4Blocked(ctx: LowerCtx, con: Contraction, target: KType): LoweredStep {
  const T = Math.min(64, 2 ** Math.floor(Math.log2(ctx.caps.maxWorkgroupSize)));
  const M = total(con, 'm');
  const N = total(con, 'n');
  const B = total(con, 'batch');
  const K = con.dims.k[0]!;
  const MB = Math.ceil(M / TM);
  const NB = Math.ceil(N / TN);
  const threads = B * MB * NB;
  const native = Boolean(ctx.caps.dot4);
  const kb = new KernelBuilder(`${con.label}_dot4b`, ctx.caps);
  const aw = kb.buffer({ kind: 'in', index: con.a.input }, 'u32', 'read');
  const bw = con.b.input === con.a.input ? aw : kb.buffer({ kind: 'in', index: con.b.input }, 'u32', 'read');
  const zbufs = new Map<number, string>();
  const g = new Gen(kb, ctx, con, (input, index) => {
    let buf = zbufs.get(input);
    if (!buf) zbufs.set(input, (buf = kb.input(ctx, input)));
    const info = ctx.inputs[input]!;
    return toCompute(load(buf, index, loadType(storageOf(info.dtype, kb.caps))), info.dtype);
  });
  const ob = kb.output(ctx, 0);
  const ua = ctx.inputs[con.a.input]!.dtype === 'u8';
  const ub = ctx.inputs[con.b.input]!.dtype === 'u8';
  const signed = !(ua && ub);
  const shiftA = signed && ua;
  const shiftB = signed && ub;

  const t = kb.let('t', add(mul(kb.groupIndex(), c.i32(T)), kb.localIndex()));
  const valid = kb.let('valid', lt(t, kb.uniform('threads', threads)));
  const tc = kb.let('tc', select(valid, t, c.i32(0)));
  const nbU = kb.uniform('nb', NB);
  const mbU = kb.uniform('mb', MB);
  const nb = kb.let('nbi', mod(tc, nbU));
  const rest = kb.let('r', div(tc, nbU));
  const mb = kb.let('mbi', mod(rest, mbU));
  const bc = g.coords('batch', kb.let('bi', div(rest, mbU)));
  const Mu = g.total('m');
  const Nu = g.total('n');
  const ms: Expr[] = [];
  const ns: Expr[] = [];
  const mOk: Expr[] = [];
  const nOk: Expr[] = [];
  for (let i = 0; i < TM; i++) {
    const m = kb.let('m', add(mul(mb, c.i32(TM)), c.i32(i)));
    mOk.push(kb.let('mok', lt(m, Mu)));
    ms.push(kb.let('mc', select(mOk[i]!, m, sub(Mu, c.i32(1)))));
  }
  for (let j = 0; j < TN; j++) {
    const n = kb.let('n', add(mul(nb, c.i32(TN)), c.i32(j)));
    nOk.push(kb.let('nok', lt(n, Nu)));
    ns.push(kb.let('nc', select(nOk[j]!, n, sub(Nu, c.i32(1)))));
  }
  const nCoords = (n: Expr) => (con.dims.n.length ? [n] : []);
  const rowA = (m: Expr) =>
    kb.let('ra', div(add(g.offset(con.a.st, 'a', 'batch', bc), g.offset(con.a.st, 'a', 'm', [m])), c.i32(4)));
  const rowB = (n: Expr) =>
    kb.let('rb', div(add(g.offset(con.b.st, 'b', 'batch', bc), g.offset(con.b.st, 'b', 'n', nCoords(n))), c.i32(4)));
  const ras = ms.map(rowA);
  const rbs = ns.map(rowB);
  const zeroAt = (view: Contraction['aZero'], name: string, shifted: boolean, m: Expr, n: Expr) => {
    const z = view
      ? g.ld(
          view,
          add(
            add(g.offset(view.st, name, 'batch', bc), g.offset(view.st, name, 'm', [m])),
            g.offset(view.st, name, 'n', nCoords(n)),
          ),
        )
      : undefined;
    if (!shifted) return z && kb.let(`z${name}`, z);
    return kb.let(`z${name}`, sub(z ?? c.i32(0), c.i32(128)));
  };
  const zas = ms.map((m) => zeroAt(con.aZero, 'az', shiftA, m, c.i32(0)));
  const zbs = ns.map((n) => zeroAt(con.bZero, 'bz', shiftB, c.i32(0), n));
  const needSa = zbs.some((z) => z);
  const needSb = zas.some((z) => z);
  const ONES = c.u32(0x01010101);
  const FLIP = c.u32(0x80808080);
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) kb.emit(var_(`acc${i}_${j}`, 'i32', c.i32(0)));
  if (needSa) for (let i = 0; i < TM; i++) kb.emit(var_(`sa${i}`, 'i32', c.i32(0)));
  if (needSb) for (let j = 0; j < TN; j++) kb.emit(var_(`sb${j}`, 'i32', c.i32(0)));
  const [body] = kb.collect(() => {
    const w = v('w', 'i32');
    const xs = ras.map((ra) => {
      const x = load(aw, add(ra, w), 'u32');
      return kb.let('xa', shiftA ? bin('bitxor', x, FLIP) : x);
    });
    const ys = rbs.map((rb) => {
      const y = load(bw, add(rb, w), 'u32');
      return kb.let('xb', shiftB ? bin('bitxor', y, FLIP) : y);
    });
    for (let i = 0; i < TM; i++) {
      for (let j = 0; j < TN; j++) {
        const name = `acc${i}_${j}`;
        kb.emit(assign(name, add(v(name, 'i32'), dot4Of(xs[i]!, ys[j]!, signed, native))));
      }
    }
    if (needSa)
      xs.forEach((x, i) => kb.emit(assign(`sa${i}`, add(v(`sa${i}`, 'i32'), dot4Of(x, ONES, signed, native)))));
    if (needSb)
      ys.forEach((y, j) => kb.emit(assign(`sb${j}`, add(v(`sb${j}`, 'i32'), dot4Of(ONES, y, signed, native)))));
  });
  kb.emit(for_('w', c.i32(0), kb.uniform('kw', K / 4), body));
  const Ku = g.total('k');
  for (let i = 0; i < TM; i++) {
    for (let j = 0; j < TN; j++) {
      const [st] = kb.collect(() => {
        let r: Expr = v(`acc${i}_${j}`, 'i32');
        const za = zas[i];
        const zb = zbs[j];
        if (zb) r = sub(r, mul(zb, v(`sa${i}`, 'i32')));
        if (za) r = sub(r, mul(za, v(`sb${j}`, 'i32')));
        if (za && zb) r = add(r, mul(mul(Ku, za), zb));
        const oi = kb.let(
          'oi',
          add(
            add(g.offset(con.out, 'o', 'batch', bc), g.offset(con.out, 'o', 'm', [ms[i]!])),
            g.offset(con.out, 'o', 'n', nCoords(ns[j]!)),
          ),
        );
        kb.emit({ k: 'store', buf: ob, index: oi, value: fromCompute(r, target) });
      });
      kb.emit(if_(and(valid, and(mOk[i]!, nOk[j]!)), st));
    }
  }
  return kb.build([T, 1, 1], grid1d(Math.ceil(threads / T), ctx.caps));
}

/** The kernel: S lanes per output (k fastest), each summing dot4 of every S-th word pair of its rows of a and b. */
export function dot4Matmul(ctx: LowerCtx, con: Contraction, target: KType): LoweredStep {
  const T = Math.min(256, 2 ** Math.floor(Math.log2(ctx.caps.maxWorkgroupSize)));
  const M = total(con, 'm');
  const N = total(con, 'n');
  const K = con.dims.k[0]!;
  const KW = K / 4;
  const outs = total(con, 'batch') * M * N;
  // lanes per output: a warp on GPUs; on CPU adapters (lavapipe) 8 measured fastest (8.6 ms vs 11.5 with 32 at 4096²)
  let S = Math.min(ctx.caps.cpu ? 8 : 32, T, 2 ** Math.ceil(Math.log2(KW)));
  if (S * 4 > ctx.caps.maxSharedBytes) S = 1;
  const OPW = T / S;
  const native = Boolean(ctx.caps.dot4);

  const kb = new KernelBuilder(`${con.label}_dot4`, ctx.caps);
  // a and b as raw u32 words; the zero points (element loads) bound on first use
  const aw = kb.buffer({ kind: 'in', index: con.a.input }, 'u32', 'read');
  const bw = con.b.input === con.a.input ? aw : kb.buffer({ kind: 'in', index: con.b.input }, 'u32', 'read');
  const zbufs = new Map<number, string>();
  const g = new Gen(kb, ctx, con, (input, index) => {
    let buf = zbufs.get(input);
    if (!buf) zbufs.set(input, (buf = kb.input(ctx, input)));
    const info = ctx.inputs[input]!;
    return toCompute(load(buf, index, loadType(storageOf(info.dtype, kb.caps))), info.dtype);
  });
  const ob = kb.output(ctx, 0);

  const ua = ctx.inputs[con.a.input]!.dtype === 'u8';
  const ub = ctx.inputs[con.b.input]!.dtype === 'u8';
  const signed = !(ua && ub);
  const shiftA = signed && ua; // the u8 side of a mixed product, moved to i8 by − 128
  const shiftB = signed && ub;

  const l = kb.localIndex();
  const gi = kb.groupIndex();
  const s = S === 1 ? c.i32(0) : kb.let('s', mod(l, c.i32(S)));
  const o = kb.let('o', add(mul(gi, c.i32(OPW)), S === 1 ? l : div(l, c.i32(S))));
  const valid = kb.let('valid', lt(o, kb.uniform('outs', outs)));
  const oc = kb.let('oc', select(valid, o, c.i32(0)));
  let rest = oc;
  let nj: Expr = c.i32(0);
  let mi: Expr = c.i32(0);
  if (N !== 1) {
    nj = kb.let('nj', mod(rest, g.total('n')));
    rest = kb.let('r', div(rest, g.total('n')));
  }
  if (M !== 1) {
    mi = kb.let('mi', mod(rest, g.total('m')));
    rest = kb.let('r', div(rest, g.total('m')));
  }
  const bc = g.coords('batch', rest);
  const mc = M !== 1 ? g.coords('m', mi) : [];
  const nc = N !== 1 ? g.coords('n', nj) : [];
  const at = (w: Axes, name: string) =>
    add(add(g.offset(w, name, 'batch', bc), g.offset(w, name, 'm', mc)), g.offset(w, name, 'n', nc));
  // rows start on word boundaries (strides % 4 == 0): word offsets
  const ra = kb.let('ra', div(at(con.a.st, 'a'), c.i32(4)));
  const rb = kb.let('rb', div(at(con.b.st, 'b'), c.i32(4)));

  /** The zero point of a side in the signed frame (undefined: 0). */
  const zeroOf = (view: Contraction['aZero'], name: string, shifted: boolean): Expr | undefined => {
    const z = view ? g.ld(view, at(view.st, name)) : undefined;
    if (!shifted) return z && kb.let(`z${name}`, z);
    return kb.let(`z${name}`, sub(z ?? c.i32(0), c.i32(128)));
  };
  const za = zeroOf(con.aZero, 'az', shiftA);
  const zb = zeroOf(con.bZero, 'bz', shiftB);

  const ONES = c.u32(0x01010101);
  const FLIP = c.u32(0x80808080);
  kb.emit(var_('acc', 'i32', c.i32(0)));
  if (zb) kb.emit(var_('sa', 'i32', c.i32(0)));
  if (za) kb.emit(var_('sb', 'i32', c.i32(0)));
  const [body] = kb.collect(() => {
    const w = v('w', 'i32');
    let x = load(aw, add(ra, w), 'u32');
    let y = load(bw, add(rb, w), 'u32');
    if (shiftA) x = bin('bitxor', x, FLIP);
    if (shiftB) y = bin('bitxor', y, FLIP);
    x = kb.let('xa', x);
    y = kb.let('xb', y);
    kb.emit(assign('acc', add(v('acc', 'i32'), dot4Of(x, y, signed, native))));
    if (zb) kb.emit(assign('sa', add(v('sa', 'i32'), dot4Of(x, ONES, signed, native))));
    if (za) kb.emit(assign('sb', add(v('sb', 'i32'), dot4Of(ONES, y, signed, native))));
  });
  kb.emit(for_('w', s, kb.uniform('kw', KW), body, c.i32(S)));
  // this lane's share of Σab − zb·Σa − za·Σb (linear, so the lanes' shares add up)
  let part: Expr = v('acc', 'i32');
  if (zb) part = sub(part, mul(zb, v('sa', 'i32')));
  if (za) part = sub(part, mul(za, v('sb', 'i32')));
  kb.emit(var_('part', 'i32', part));

  const tail: Stmt[] = [];
  if (S > 1) {
    const red = kb.sharedArray('red', 'i32', T);
    kb.emit(sstore(red, l, v('part', 'i32')));
    tail.push(
      for_('j', c.i32(1), c.i32(S), [assign('part', add(v('part', 'i32'), sload(red, add(l, v('j', 'i32')), 'i32')))]),
    );
    kb.emit(barrier);
  }
  const [store0] = kb.collect(() => {
    let result: Expr = v('part', 'i32');
    if (za && zb) result = add(result, mul(mul(g.total('k'), za), zb));
    const oi = kb.let('oi', at(con.out, 'o'));
    kb.emit({ k: 'store', buf: ob, index: oi, value: fromCompute(result, target) });
  });
  kb.emit(if_(and(valid, eq(s, c.i32(0))), [...tail, ...store0]));
  return kb.build([T, 1, 1], grid1d(Math.ceil(outs / OPW), ctx.caps));
}
