/**
 * The tiled schedule of a contraction: a BM×BN output tile per workgroup — 128×128 per 256 threads for large
 * outputs, else 64×64 per 64 threads — each thread an 8×8 register block of scalar accumulators (rows ty + TY·r,
 * columns tx + TX·c, so workgroup-memory reads and global stores are consecutive across neighbouring threads); K
 * advances BK = 8 at a time through two workgroup tiles As[BK][BM], Bs[BK][BN], two barriers per step. Tile loads
 * put consecutive threads on the operand's contiguous axis (k, or m / n for transposed layouts — a uniform flag, same
 * kernel); out-of-range elements load as 0, so partial tiles need no special code. Workgroups are numbered linearly
 * (n-tile fastest, then m-tile, then batch) over a 1-D / 2-D grid. Direct tiles (`TileCfg.direct`, the default on
 * CPU adapters) keep the register blocks but read a and b from memory without workgroup tiles or barriers.
 */
import { UnsupportedError } from '../../../ir/errors.js';
import {
  add,
  and,
  assign,
  barrier,
  c,
  div,
  for_,
  if_,
  lt,
  mod,
  mul,
  ne,
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
import { contiguousOn, outputReads, total, type Axes, type Contraction, type View } from './contraction.js';
import { Gen } from './gen.js';
import { contractionClass, TILE_CANDIDATES, tileFits, tunedChoice, type TileCfg } from './schedules.js';

/**
 * Tile shapes: 128×128 outputs per 256-thread workgroup (8×8 per thread, BK = 8) for large outputs, 64×64 per
 * 64 threads (8×8, BK = 8) otherwise, 32×32 per 64 threads (4×4) where workgroup memory is scarce; 8 / 4 / 2 KiB.
 * Thread (tx, ty) owns rows ty + TY·r and columns tx + TX·c of the tile, so workgroup-memory reads and global
 * stores are consecutive across neighbouring threads. A tuned choice for the contraction's class on this device
 * (schedules.ts) comes first where it fits.
 * (On lavapipe 8×8 blocks run ~3× faster than 4×4: every scalar workgroup-memory read is a per-lane gather there,
 * so reads per multiply-add decide; 8×8 halves them.)
 */
function tileCfg(ctx: LowerCtx, con: Contraction, M: number, N: number): TileCfg {
  const tuned = tunedChoice(ctx.caps, 'tiled', contractionClass('tiled', con, ctx.outputs[0]!.dtype), ctx.node);
  const pick = tuned === undefined ? undefined : TILE_CANDIDATES[tuned];
  if (pick && tileFits(pick, ctx.caps)) return pick;
  const { t128x128: big, t64x64: small, t32x32: tiny, d64x64: direct } = TILE_CANDIDATES;
  if (ctx.caps.cpu && tileFits(direct!, ctx.caps)) return direct!;
  for (const t of M >= 128 && N >= 128 ? [big!, small!, tiny!] : [small!, tiny!]) {
    if (tileFits(t, ctx.caps)) return t;
  }
  throw new UnsupportedError(
    `matmul tiles need 64 threads and 2 KiB of workgroup memory; the device allows ${ctx.caps.maxWorkgroupSize} threads, ${ctx.caps.maxSharedBytes} bytes`,
    { node: ctx.node, op: ctx.op, limit: 'workgroup size' },
  );
}

/** `target`: the kernel type output elements are stored as (the output storage's element type). */
export function tiled(ctx: LowerCtx, con: Contraction, target: KType): LoweredStep {
  const cfg = tileCfg(ctx, con, total(con, 'm'), total(con, 'n'));
  const { BM, BN, BK, TM, TN } = cfg;
  const TX = BN / TN;
  const TY = BM / TM;
  const T = TX * TY;
  const kb = new KernelBuilder(`${con.label}_tiled`, ctx.caps);
  const g = new Gen(kb, ctx, con);
  const ob = kb.output(ctx, 0);
  const ct = g.ct;
  const As = cfg.direct ? '' : kb.sharedArray('As', ct, BK * BM);
  const Bs = cfg.direct ? '' : kb.sharedArray('Bs', ct, BK * BN);
  const M = total(con, 'm');
  const N = total(con, 'n');
  const B = total(con, 'batch');
  const tilesM = Math.ceil(M / BM);
  const tilesN = Math.ceil(N / BN);
  const groups = tilesM * tilesN * B;

  const l = kb.localIndex();
  const tx = kb.let('tx', mod(l, c.i32(TX)));
  const ty = kb.let('ty', div(l, c.i32(TX)));
  const gi = kb.groupIndex();
  const tnU = kb.uniform('tilesN', tilesN);
  const tmU = kb.uniform('tilesM', tilesM);
  const tn = kb.let('tn', mod(gi, tnU));
  const rest = kb.let('rest', div(gi, tnU));
  const tm = kb.let('tm', mod(rest, tmU));
  // a 2-D grid may hold a few workgroups past the last tile: they load nothing and store nothing
  const bRaw = kb.let('bi', div(rest, tmU));
  const live = kb.let('live', lt(bRaw, kb.uniform('nb', B)));
  const bi = kb.let('bi', select(live, bRaw, c.i32(0)));
  const m0 = kb.let('m0', mul(tm, c.i32(BM)));
  const n0 = kb.let('n0', mul(tn, c.i32(BN)));
  const Mu = g.total('m');
  const Nu = g.total('n');
  const Ku = g.total('k');
  const bc = g.coords('batch', bi);
  const base = (w: Axes, name: string) => kb.let('base', g.offset(w, name, 'batch', bc));

  /**
   * Plan of one operand's tile loads: X is the free axis ('m' for a, 'n' for b) with tile size BX.
   * Returns statements for the K loop body (given k0) that fill the shared tile.
   */
  const tileLoads = (w: View, z: View | undefined, x: 'm' | 'n', BX: number, x0: Expr, Xu: Expr, arr: string) => {
    const wn = x === 'm' ? 'a' : 'b';
    const bw = base(w.st, wn);
    const bz = z ? base(z.st, `${wn}z`) : undefined;
    // Consecutive threads walk the operand's contiguous axis: k (k-fast) or the free axis (x-fast, transposed
    // layouts). The choice is a uniform, so both layouts share one kernel; it only picks per-thread coordinates.
    const kFastU = kb.uniform(`kf${wn}`, contiguousOn(w.st, 'k') || !contiguousOn(w.st, x) ? 1 : 0);
    const kFast = kb.let('kf', ne(kFastU, c.i32(0)));
    const per = (BX * BK) / T;
    const plan: { sIdx: Expr; kk: Expr; xIn: Expr; xOff: Expr; zOff?: Expr }[] = [];
    const kFix = kb.let('kk', mod(l, c.i32(BK)));
    const kSlow = kb.let('ks', div(l, c.i32(BK)));
    const xFix = kb.let('xx', mod(l, c.i32(BX)));
    const xSlow = kb.let('xs', div(l, c.i32(BX)));
    for (let q = 0; q < per; q++) {
      const xx = kb.let('xx', select(kFast, add(kSlow, c.i32(q * (T / BK))), xFix));
      const kk = kb.let('kk', select(kFast, kFix, add(xSlow, c.i32(q * (T / BX)))));
      const sIdx = kb.let('si', add(mul(kk, c.i32(BX)), xx));
      const xa = kb.let('xa', add(x0, xx));
      const xIn = kb.let('xin', and(live, lt(xa, Xu)));
      const xc = g.coords(x, xa);
      const xOff = kb.let('xo', add(bw, g.offset(w.st, wn, x, xc)));
      const zOff = z && bz ? kb.let('zo', add(bz, g.offset(z.st, `${wn}z`, x, xc))) : undefined;
      plan.push({ sIdx, kk, xIn, xOff, zOff });
    }
    return (k0: Expr): Stmt[] =>
      kb.collect(() => {
        for (const p of plan) {
          const ka = kb.let('ka', add(k0, p.kk));
          const kinfo = { kIn: lt(ka, Ku), kc: g.coords('k', ka) };
          const inb = kb.let('inb', and(p.xIn, kinfo.kIn));
          const idx = add(p.xOff, g.offset(w.st, wn, 'k', kinfo.kc));
          let val = g.ld(w, select(inb, idx, c.i32(0)));
          if (z && p.zOff) {
            const zi = add(p.zOff, g.offset(z.st, `${wn}z`, 'k', kinfo.kc));
            val = sub(val, g.ld(z, select(inb, zi, c.i32(0))));
          }
          // a fused RMS norm's weight scales b along k (tile loads: once per element)
          if (x === 'n' && con.rowNorm) val = mul(val, g.normWeight(kinfo.kc, inb));
          kb.emit(sstore(arr, p.sIdx, select(inb, val, g.zero())));
        }
      })[0];
  };

  const loadA = cfg.direct ? () => [] : tileLoads(con.a, con.aZero, 'm', BM, m0, Mu, As);
  const loadB = cfg.direct ? () => [] : tileLoads(con.b, con.bZero, 'n', BN, n0, Nu, Bs);
  // direct (CPU adapters): each thread reads its TM rows of a and TN columns of b straight from memory at every k —
  // no workgroup tiles, no barriers; the row / column offsets and bounds are computed once
  const dA = cfg.direct
    ? Array.from({ length: TM }, (_, r) => {
        const mi = kb.let('dm', add(m0, add(ty, c.i32(r * TY))));
        const inb = kb.let('dmi', and(live, lt(mi, Mu)));
        const mc = g.coords('m', mi);
        const off = kb.let('dao', add(base(con.a.st, 'a'), g.offset(con.a.st, 'a', 'm', mc)));
        const z = con.aZero;
        const zoff = z ? kb.let('dazo', add(base(z.st, 'az'), g.offset(z.st, 'az', 'm', mc))) : undefined;
        return { inb, off, zoff };
      })
    : [];
  const dB = cfg.direct
    ? Array.from({ length: TN }, (_, cc) => {
        const nj = kb.let('dn', add(n0, add(tx, c.i32(cc * TX))));
        const inb = kb.let('dni', lt(nj, Nu));
        const nc = g.coords('n', nj);
        const off = kb.let('dbo', add(base(con.b.st, 'b'), g.offset(con.b.st, 'b', 'n', nc)));
        const z = con.bZero;
        const zoff = z ? kb.let('dbzo', add(base(z.st, 'bz'), g.offset(z.st, 'bz', 'n', nc))) : undefined;
        return { inb, off, zoff };
      })
    : [];

  const acc = (r: number, cc: number) => `acc${r}_${cc}`;
  for (let r = 0; r < TM; r++) for (let cc = 0; cc < TN; cc++) kb.emit(var_(acc(r, cc), ct, g.zero()));
  // a fused norm: Σa² (and for a layer norm Σa', a' = a − a₀, and each column's Σb) of the thread's rows / columns,
  // from the tiles it reads anyway
  const ss = (r: number) => `ss${r}`;
  const s1 = (r: number) => `sa${r}`;
  const cs = (cc: number) => `cs${cc}`;
  const layer = con.rowNorm?.kind === 'layer';
  if (con.rowNorm) for (let r = 0; r < TM; r++) kb.emit(var_(ss(r), ct, g.zero()));
  const shift: Expr[] = [];
  if (layer) {
    for (let r = 0; r < TM; r++) kb.emit(var_(s1(r), ct, g.zero()));
    for (let cc = 0; cc < TN; cc++) kb.emit(var_(cs(cc), ct, g.zero()));
    // each row's first element (k = 0), the shift of its moments
    const ba = base(con.a.st, 'a0');
    for (let r = 0; r < TM; r++) {
      const mi = kb.let('mi', add(m0, add(ty, c.i32(r * TY))));
      const inb = kb.let('min', and(live, lt(mi, Mu)));
      const idx = add(ba, g.offset(con.a.st, 'a', 'm', g.coords('m', mi)));
      shift.push(kb.let('a0', g.ld(con.a, select(inb, idx, c.i32(0)))));
    }
  }

  const [kBody] = kb.collect(() => {
    const k0 = v('k0', 'i32');
    if (!cfg.direct) kb.emit(...loadA(k0), ...loadB(k0), barrier);
    // one k of the tile per iteration: TM + TN workgroup-memory reads, TM·TN multiply-adds
    const [inner] = kb.collect(() => {
      const kq = v('kq', 'i32');
      const ra = kb.let('ra', add(mul(kq, c.i32(BM)), ty));
      const rb = kb.let('rb', add(mul(kq, c.i32(BN)), tx));
      const as: Expr[] = [];
      const bs: Expr[] = [];
      const kin0 = cfg.direct ? kb.let('dk', lt(add(v('k0', 'i32'), kq), Ku)) : undefined;
      const kc0 = cfg.direct ? g.coords('k', add(v('k0', 'i32'), kq)) : [];
      for (let r = 0; r < TM; r++) {
        if (cfg.direct) {
          const inb = kb.let('din', and(dA[r]!.inb, kin0!));
          let val = g.ld(con.a, select(inb, add(dA[r]!.off, g.offset(con.a.st, 'a', 'k', kc0)), c.i32(0)));
          if (con.aZero) {
            const zi = add(dA[r]!.zoff!, g.offset(con.aZero.st, 'az', 'k', kc0));
            val = sub(val, g.ld(con.aZero, select(inb, zi, c.i32(0))));
          }
          as.push(kb.let('a', select(inb, val, g.zero())));
        } else as.push(kb.let('a', sload(As, add(ra, c.i32(r * TY)), ct)));
      }
      if (layer) {
        // shifted by the row's first element; k past the end (zero-filled tiles) adds nothing
        const kin = kb.let('kin', lt(add(v('k0', 'i32'), kq), Ku));
        for (let r = 0; r < TM; r++) {
          as[r] = kb.let('as', select(kin, sub(as[r]!, shift[r]!), g.zero()));
          kb.emit(assign(s1(r), add(v(s1(r), ct), as[r]!)));
        }
      }
      if (con.rowNorm) for (let r = 0; r < TM; r++) kb.emit(assign(ss(r), add(v(ss(r), ct), mul(as[r]!, as[r]!))));
      for (let cc = 0; cc < TN; cc++) {
        if (cfg.direct) {
          const inb = kb.let('din', and(dB[cc]!.inb, kin0!));
          const idx = add(dB[cc]!.off, g.offset(con.b.st, 'b', 'k', kc0));
          let val = g.ld(con.b, select(inb, idx, c.i32(0)));
          if (con.bZero) {
            const zi = add(dB[cc]!.zoff!, g.offset(con.bZero.st, 'bz', 'k', kc0));
            val = sub(val, g.ld(con.bZero, select(inb, zi, c.i32(0))));
          }
          if (con.rowNorm) val = mul(val, g.normWeight(kc0, inb));
          bs.push(kb.let('b', select(inb, val, g.zero())));
        } else bs.push(kb.let('b', sload(Bs, add(rb, c.i32(cc * TX)), ct)));
      }
      if (layer) for (let cc = 0; cc < TN; cc++) kb.emit(assign(cs(cc), add(v(cs(cc), ct), bs[cc]!)));
      for (let r = 0; r < TM; r++) {
        for (let cc = 0; cc < TN; cc++) {
          kb.emit(assign(acc(r, cc), add(v(acc(r, cc), ct), mul(as[r]!, bs[cc]!))));
        }
      }
    });
    kb.emit(for_('kq', c.i32(0), c.i32(BK), inner));
    if (!cfg.direct) kb.emit(barrier);
  });
  kb.emit(for_('k0', c.i32(0), Ku, kBody, c.i32(BK)));

  // epilogue: TM×TN guarded stores
  const bo = base(con.out, 'o');
  const reads = outputReads(con);
  const bb = reads.map(({ w, name }) => base(w.st, name));
  const rows: { mi: Expr; inb: Expr; off: Expr; boff: Expr[]; scale?: Expr }[] = [];
  for (let r = 0; r < TM; r++) {
    const mi = kb.let('mi', add(m0, add(ty, c.i32(r * TY))));
    const mc = g.coords('m', mi);
    rows.push({
      mi,
      inb: kb.let('min', and(live, lt(mi, Mu))),
      off: kb.let('mo', add(bo, g.offset(con.out, 'o', 'm', mc))),
      boff: reads.map(({ w, name }, i) => kb.let('mb', add(bb[i]!, g.offset(w.st, name, 'm', mc)))),
      scale: con.rowNorm && !layer ? kb.let('rs', g.normScale(v(ss(r), ct))) : undefined,
    });
  }
  const cols: { nj: Expr; inb: Expr; off: Expr; boff: Expr[] }[] = [];
  for (let cc = 0; cc < TN; cc++) {
    const nj = kb.let('nj', add(n0, add(tx, c.i32(cc * TX))));
    const nc = g.coords('n', nj);
    cols.push({
      nj,
      inb: kb.let('nin', lt(nj, Nu)),
      off: g.offset(con.out, 'o', 'n', nc),
      boff: reads.map(({ w, name }) => g.offset(w.st, name, 'n', nc)),
    });
    const last = cols[cols.length - 1]!;
    last.off = kb.let('no', last.off);
    last.boff = last.boff.map((x) => kb.let('nb', x));
  }
  for (let r = 0; r < TM; r++) {
    for (let cc = 0; cc < TN; cc++) {
      const row = rows[r]!;
      const col = cols[cc]!;
      const idx = row.boff.map((x, i) => add(x, col.boff[i]!));
      const a = v(acc(r, cc), ct);
      const sum = layer
        ? kb.let('ln', g.layerScaled(a, v(s1(r), ct), v(ss(r), ct), v(cs(cc), ct)))
        : row.scale
          ? mul(a, row.scale)
          : a;
      const [pre, val] = kb.collect(() => fromCompute(g.epilogue(sum, idx, { m: row.mi, n: col.nj }), target));
      kb.emit(if_(and(row.inb, col.inb), [...pre, { k: 'store', buf: ob, index: add(row.off, col.off), value: val }]));
    }
  }
  return kb.build([T, 1, 1], groups === 0 ? [0, 1, 1] : grid1d(groups, ctx.caps));
}
