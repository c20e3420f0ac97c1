/**
 * Lowerings of the sparse ops (ir/ops/sparse.ts).
 *
 * sparse_matmul: one thread per output column n and tile of T rows of a (T = 1 for decode — SpMV —, up to 8 for
 * prefill — SpMM —, so each (k, value) loaded from the compressed row is used T times). Threads are ordered n
 * fastest, so neighbouring threads walk neighbouring compressed rows (csr, nm) or the same block row (bsr, whose
 * block-column indices they share through the cache). Accumulation in f32; the tile's last rows past M clamp their
 * loads and skip their stores.
 * - csr: for p in row_ptr[n] .. row_ptr[n + 1]: acc_r += a[m0 + r, indices[p]] · values[p].
 * - bsr(h×w): for blocks b of block row n / h: the w values of row n % h against a[m0 + r, indices[b] · w + j].
 * - nm(2:4): for each group q: the 4-bit field (two 2-bit positions; the u8 indices bound as packed u4x8 words,
 *   legalize extracts the field) and the group's two values — dequantized in the load when they are int4 / int8
 *   with per-group scales (a 2:4 int4 weight: 3 bits per weight element and the scales). Positions are in their group by
 *   construction: no check.
 * csr / bsr check every index and row pointer on the device (`raiseIf`: the run's typed error naming the node),
 * clamped meanwhile so a bad index never reads out of bounds.
 *
 * sparse_to_dense: one thread per output column n zeroes its column of W and adds its compressed row's values in
 * (threads own disjoint columns: no atomics).
 */
import { KilnError } from '../../ir/errors.js';
import { nmQuantOf, sparseGeometryOf, type SparseGeometry } from '../../ir/ops/sparse.js';
import { numel } from '../../ir/shape.js';
import {
  add,
  assign,
  bin,
  c,
  cast,
  div,
  for_,
  ge,
  gt,
  if_,
  load,
  loadType,
  lt,
  max,
  min,
  mod,
  mul,
  or,
  ret,
  store,
  sub,
  v,
  var_,
  type Expr,
} from '../kir.js';
import { grid1d, KernelBuilder, type LowerCtx, type LoweredStep } from './kernel-builder.js';
import { checkIndexRange, fromCompute, toCompute } from './pointwise.js';
import { registerLowering } from './registry.js';
import { storageOf } from './storage.js';

const WG = 64;
/** Rows of a per SpMM thread. */
export const SPMM_TILE = 8;

const fail =
  (ctx: LowerCtx) =>
  (message: string): never => {
    throw new KilnError('verify', message, { node: ctx.node, op: ctx.op });
  };

/** Element `i` of node input `index` (bound as `buf`) in f32. */
function ldf(kb: KernelBuilder, ctx: LowerCtx, buf: string, index: number, i: Expr): Expr {
  const dt = ctx.inputs[index]!.dtype;
  return cast('f32', toCompute(load(buf, i, loadType(storageOf(dt, kb.caps))), dt));
}

/** An index input element (i32, or u16 bound as packed words: legalize extracts the field) as i32. */
function ldi(kb: KernelBuilder, ctx: LowerCtx, buf: string, index: number, i: Expr): Expr {
  const dt = ctx.inputs[index]!.dtype;
  return cast('i32', load(buf, i, loadType(storageOf(dt, kb.caps))));
}

/** Clamp x into [lo, hi]. */
const clamp = (x: Expr, lo: Expr, hi: Expr) => max(lo, min(x, hi));

/**
 * The [start, end) range of compressed row `r` from row_ptr, checked (start ≥ 0, end ≥ start, end ≤ count: else
 * the run's error) and clamped into [0, count].
 */
function rowRange(kb: KernelBuilder, rp: string, r: Expr, count: Expr): [Expr, Expr] {
  const s0 = kb.let('rs', load(rp, r, 'i32'));
  const e0 = kb.let('re', load(rp, add(r, c.i32(1)), 'i32'));
  kb.raiseIf(or(or(lt(s0, c.i32(0)), lt(e0, s0)), gt(e0, count)), 1);
  const s = kb.let('s', clamp(s0, c.i32(0), count));
  const e = kb.let('e', clamp(e0, s, count));
  return [s, e];
}

/** A checked, clamped index in [0, len). */
function checkedIndex(kb: KernelBuilder, raw: Expr, len: Expr): Expr {
  const k0 = kb.let('k0', raw);
  kb.raiseIf(or(lt(k0, c.i32(0)), ge(k0, len)), 1);
  return kb.let('k', clamp(k0, c.i32(0), sub(len, c.i32(1))));
}

/**
 * The two kept values of 2:4 group `q` of output column `n` (value index `vi` = n · K / 2 + 2q) in f32: float values
 * loaded as they are, quantized ones (u8 bound as packed 4- / 8-bit fields) as (q − 2^(bits − 1)) · scale, the two
 * sharing one scale (groups are even). `first` is the values' port; the scales are 3 ports later.
 */
function nmValues(kb: KernelBuilder, ctx: LowerCtx, g: SparseGeometry, first: number) {
  const q = nmQuantOf(ctx.attrs, g, fail(ctx));
  if (!q) {
    const vb = kb.input(ctx, first);
    return (_n: Expr, _q: Expr, vi: Expr): [Expr, Expr] => [
      kb.let('w', ldf(kb, ctx, vb, first, vi)),
      kb.let('w', ldf(kb, ctx, vb, first, add(vi, c.i32(1)))),
    ];
  }
  const vb = kb.buffer({ kind: 'in', index: first }, q.bits === 4 ? 'u4x8' : 'u8x4', 'read');
  const sb = kb.input(ctx, first + 3);
  const zp = c.i32(2 ** (q.bits - 1));
  return (n: Expr, qv: Expr, vi: Expr): [Expr, Expr] => {
    const si = add(mul(n, kb.uniform('srow', q.perRow, 'i32', 'nm.srow')), div(mul(qv, c.i32(2)), c.i32(q.group)));
    const sc = kb.let('sc', ldf(kb, ctx, sb, first + 3, si));
    const deq = (i: Expr) => kb.let('w', mul(cast('f32', sub(cast('i32', load(vb, i, 'u32')), zp)), sc));
    return [deq(vi), deq(add(vi, c.i32(1)))];
  };
}

function spmm(ctx: LowerCtx, g: SparseGeometry): LoweredStep {
  const a = ctx.inputs[0]!;
  const M = numel(a.shape.slice(0, -1));
  const { K, N } = g;
  checkIndexRange(ctx, M * K, 'a');
  checkIndexRange(ctx, M * N, 'the output');
  const T = M <= 1 ? 1 : Math.min(SPMM_TILE, M);
  const kind = T === 1 ? 'spmv' : 'spmm';
  const kb = new KernelBuilder(`sparse_matmul_${g.format}_${kind}`, ctx.caps);
  const ab = kb.input(ctx, 0);
  const nmv = g.format === 'nm' ? nmValues(kb, ctx, g, 1) : undefined;
  const vb = g.format === 'nm' ? '' : kb.input(ctx, 1);
  const ib = g.format === 'nm' ? kb.buffer({ kind: 'in', index: 2 }, 'u4x8', 'read') : kb.input(ctx, 2);
  const rb = g.format === 'nm' ? '' : kb.input(ctx, 3);
  const ob = kb.output(ctx, 0);
  const tiles = Math.ceil(M / T);
  const threads = N * tiles;
  const Ku = kb.uniform('K', K);
  const Nu = kb.uniform('N', N);
  const Mu = kb.uniform('M', M);
  const t = kb.let('t', add(mul(kb.groupIndex(), c.i32(WG)), kb.localIndex()));
  kb.emit(if_(ge(t, kb.uniform('threads', threads)), [ret]));
  const n = kb.let('n', mod(t, Nu));
  const m0 = kb.let('m0', mul(div(t, Nu), c.i32(T)));
  const rows: Expr[] = [];
  const accs: string[] = [];
  for (let r = 0; r < T; r++) {
    const row = r === 0 ? m0 : min(add(m0, c.i32(r)), sub(Mu, c.i32(1)));
    rows.push(kb.let('ra', mul(row, Ku)));
    const acc = kb.fresh('acc');
    accs.push(acc);
    kb.emit(var_(acc, 'f32', c.f32(0)));
  }
  /** acc_r += a[row r, k] · value, for every row of the tile. */
  const fma = (k: Expr, value: Expr) => {
    for (let r = 0; r < T; r++) {
      const x = ldf(kb, ctx, ab, 0, add(rows[r]!, k));
      kb.emit(assign(accs[r]!, add(v(accs[r]!, 'f32'), mul(x, value))));
    }
  };
  if (g.format === 'csr') {
    const nnz = kb.uniform('nnz', numel(ctx.inputs[2]!.shape));
    const [s, e] = rowRange(kb, rb, n, nnz);
    const p = kb.fresh('p');
    const [body] = kb.collect(() => {
      const pv = v(p, 'i32');
      const k = checkedIndex(kb, ldi(kb, ctx, ib, 2, pv), Ku);
      fma(k, kb.let('w', ldf(kb, ctx, vb, 1, pv)));
    });
    kb.emit(for_(p, s, e, body));
  } else if (g.format === 'bsr') {
    const [h, w] = g.block;
    const nnzb = kb.uniform('nnzb', numel(ctx.inputs[2]!.shape));
    const br = kb.let('br', div(n, c.i32(h)));
    const bi = kb.let('bi', mod(n, c.i32(h)));
    const [s, e] = rowRange(kb, rb, br, nnzb);
    const p = kb.fresh('p');
    const [body] = kb.collect(() => {
      const pv = v(p, 'i32');
      const kc = checkedIndex(kb, ldi(kb, ctx, ib, 2, pv), kb.uniform('kblocks', K / w));
      const k0 = kb.let('kb', mul(kc, c.i32(w)));
      const v0 = kb.let('vo', mul(add(mul(pv, c.i32(h)), bi), c.i32(w)));
      for (let j = 0; j < w; j++) fma(add(k0, c.i32(j)), kb.let('w', ldf(kb, ctx, vb, 1, add(v0, c.i32(j)))));
    });
    kb.emit(for_(p, s, e, body));
  } else {
    const G = kb.uniform('groups', K / 4);
    const q = kb.fresh('q');
    const [body] = kb.collect(() => {
      const qv = v(q, 'i32');
      const f = kb.let('f', cast('i32', load(ib, add(mul(n, G), qv), 'u32')));
      const base = kb.let('kq', mul(qv, c.i32(4)));
      const vi = kb.let('vi', mul(add(mul(n, G), qv), c.i32(2)));
      const [w0, w1] = nmv!(n, qv, vi);
      fma(add(base, bin('bitand', f, c.i32(3))), w0);
      fma(add(base, bin('shr', f, c.i32(2))), w1);
    });
    kb.emit(for_(q, c.i32(0), G, body));
  }
  const target = loadType(storageOf(ctx.outputs[0]!.dtype, kb.caps));
  for (let r = 0; r < T; r++) {
    const m = r === 0 ? m0 : add(m0, c.i32(r));
    const st = store(ob, add(mul(m, Nu), n), fromCompute(cast(target, v(accs[r]!, 'f32')), target));
    kb.emit(M % T === 0 ? st : if_(lt(m, Mu), [st]));
  }
  return kb.build([WG, 1, 1], grid1d(Math.ceil(threads / WG), ctx.caps));
}

registerLowering('sparse_matmul', (ctx) => {
  const g = sparseGeometryOf(ctx.attrs, fail(ctx));
  const M = numel(ctx.inputs[0]!.shape.slice(0, -1));
  const step = spmm(ctx, g);
  return [M === 0 ? { ...step, grid: [0, 1, 1] } : step];
});

/** sparse_to_dense: one thread per output column n (a compressed row of Wᵀ): zero the column, then scatter. */
registerLowering('sparse_to_dense', (ctx) => {
  const g = sparseGeometryOf(ctx.attrs, fail(ctx));
  const { K, N } = g;
  checkIndexRange(ctx, K * N, 'the dense weight');
  const kb = new KernelBuilder(`sparse_to_dense_${g.format}`, ctx.caps);
  const nmv = g.format === 'nm' ? nmValues(kb, ctx, g, 0) : undefined;
  const vb = g.format === 'nm' ? '' : kb.input(ctx, 0);
  const ib = g.format === 'nm' ? kb.buffer({ kind: 'in', index: 1 }, 'u4x8', 'read') : kb.input(ctx, 1);
  const rb = g.format === 'nm' ? '' : kb.input(ctx, 2);
  const ob = kb.output(ctx, 0);
  const target = loadType(storageOf(ctx.outputs[0]!.dtype, kb.caps));
  const out = (e: Expr) => fromCompute(cast(target, e), target);
  const Ku = kb.uniform('K', K);
  const Nu = kb.uniform('N', N);
  const n = kb.let('n', add(mul(kb.groupIndex(), c.i32(WG)), kb.localIndex()));
  kb.emit(if_(ge(n, Nu), [ret]));
  const kz = kb.fresh('kz');
  kb.emit(for_(kz, c.i32(0), Ku, [store(ob, add(mul(v(kz, 'i32'), Nu), n), out(c.f32(0)))]));
  /** W[k, n] += value (duplicates add, as the reference). */
  const acc = (k: Expr, value: Expr) => {
    const at = kb.let('at', add(mul(k, Nu), n));
    kb.emit(store(ob, at, out(add(cast('f32', toCompute(load(ob, at, target), ctx.outputs[0]!.dtype)), value))));
  };
  if (g.format === 'nm') {
    const G = kb.uniform('groups', K / 4);
    const q = kb.fresh('q');
    const [body] = kb.collect(() => {
      const qv = v(q, 'i32');
      const f = kb.let('f', cast('i32', load(ib, add(mul(n, G), qv), 'u32')));
      const vi = kb.let('vi', mul(add(mul(n, G), qv), c.i32(2)));
      const base = mul(qv, c.i32(4));
      const [w0, w1] = nmv!(n, qv, vi);
      acc(add(base, bin('bitand', f, c.i32(3))), w0);
      acc(add(base, bin('shr', f, c.i32(2))), w1);
    });
    kb.emit(for_(q, c.i32(0), G, body));
  } else {
    const [h, w] = g.block;
    const count = kb.uniform('nnz', numel(ctx.inputs[1]!.shape));
    const br = h === 1 ? n : kb.let('br', div(n, c.i32(h)));
    const bi = h === 1 ? c.i32(0) : kb.let('bi', mod(n, c.i32(h)));
    const [s, e] = rowRange(kb, rb, br, count);
    const p = kb.fresh('p');
    const [body] = kb.collect(() => {
      const pv = v(p, 'i32');
      const kc = checkedIndex(kb, ldi(kb, ctx, ib, 1, pv), kb.uniform('kblocks', K / w));
      const v0 = kb.let('vo', mul(add(mul(pv, c.i32(h)), bi), c.i32(w)));
      for (let j = 0; j < w; j++) acc(add(mul(kc, c.i32(w)), c.i32(j)), ldf(kb, ctx, vb, 0, add(v0, c.i32(j))));
    });
    kb.emit(for_(p, s, e, body));
  }
  return [kb.build([WG, 1, 1], grid1d(Math.ceil(N / WG), ctx.caps))];
});
