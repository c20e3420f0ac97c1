/**
 * Lowerings of the contractions: matmul, gemm, matmul_integer, einsum.
 *
 * Each op is first described as a *strided batched contraction*: index spaces batch, m, n, k (each a list of axes,
 * so einsum's multi-label groups fit), and per operand a stride for every axis (0 where it does not depend on the
 * axis: broadcasting, or the other operand's free axis). Then
 *
 *   out[batch, m, n] = epilogue( Σ_k (a[batch, m, k] − az[...]) · (b[batch, k, n] − bz[...]) )
 *
 * with optional zero points (matmul_integer) and gemm's `alpha · acc + beta · c`. Sizes, strides (broadcast zeros
 * included), alpha and beta are uniforms; the code depends only on dtypes, the number of axes per index space, which
 * operands exist, and the schedule. Schedules:
 *
 * - **tiled**: a BM×BN output tile per workgroup — 128×128 per 256 threads for large outputs, else 64×64 per 64
 *   threads — each thread an 8×8 register block of scalar accumulators (rows ty + TY·r, columns tx + TX·c, so
 *   workgroup-memory reads and global stores are consecutive across neighbouring threads); K advances BK = 8 at a
 *   time through two workgroup tiles As[BK][BM], Bs[BK][BN], two barriers per step. Tile loads put consecutive
 *   threads on the operand's contiguous axis (k, or m / n for transposed layouts — a uniform flag, same kernel);
 *   out-of-range elements load as 0, so partial tiles need no special code. Workgroups are numbered linearly
 *   (n-tile fastest, then m-tile, then batch) over a 1-D / 2-D grid.
 * - **skinny** (GEMV-like: M or N ≤ 4, or M·N ≤ 1024 per batch): S threads share one output, each summing every
 *   S-th k; partial sums meet in workgroup memory and the output's first thread adds them in order. x·W with W
 *   n-contiguous: outputs fastest across threads, S = 4 (coalesced rows of W); otherwise (W·x, transposed weights,
 *   dot products) k fastest, S = 32.
 * - **loop** (packed i8/u8/i16/u16 results): the pointwise template, one thread per packed word, a k loop per element.
 *
 * Integer dtypes accumulate in i32 / u32 (two's-complement wrap = the reference's wrap to the dtype; i64 / u64 are
 * held in 32 bits, exact while results fit). Einsum with two operands becomes a contraction (labels in both
 * operands and the output → batch, in one operand and the output → m or n, summed → k; repeated labels sum their
 * strides, size-1 dims broadcast with stride 0); with one or three and more operands it is a pointwise kernel
 * looping over the summed labels.
 */
import { KilnError, UnsupportedError } from '../../ir/errors.js';
import { stridesOf } from '../../ir/shape.js';
import {
  PACK,
  add,
  and,
  assign,
  barrier,
  c,
  div,
  eq,
  for_,
  if_,
  load,
  loadType,
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
} from '../kir.js';
import { grid1d, KernelBuilder, type LowerCtx, type LoweredStep } from './kernel-builder.js';
import { checkIndexRange, fromCompute, pointwise, toCompute } from './pointwise.js';
import { registerLowering } from './registry.js';
import { computeType, storageOf } from './storage.js';

// ---------------------------------------------------------------------------------------------------------------
// The contraction description

type Cat = 'batch' | 'm' | 'n' | 'k';
const CATS: readonly Cat[] = ['batch', 'm', 'n', 'k'];

/** Sizes (in `Contraction.dims`) or strides (in a view) per axis of each index space. */
export interface Axes {
  batch: number[];
  m: number[];
  n: number[];
  k: number[];
}

/** A node input seen through strides over the contraction's axes. */
export interface View {
  input: number;
  st: Axes;
}

export interface Contraction {
  label: string;
  dims: Axes;
  a: View;
  b: View;
  /** Subtracted from a / b elements (matmul_integer zero points), viewed over the same axes. */
  aZero?: View;
  bZero?: View;
  /** gemm: out = alpha · acc + beta · bias (bias over batch/m/n). */
  bias?: View;
  alpha: number;
  beta: number;
  /** gemm: apply alpha (and beta to the bias); matmul-like ops store the sum as is. */
  scaled?: boolean;
  /** Strides of the output over batch / m / n (k unused). */
  out: Axes;
}

const zeros = (n: number) => new Array<number>(n).fill(0);
const prod = (xs: readonly number[]) => xs.reduce((p, x) => p * x, 1);
const total = (con: Contraction, cat: Cat) => prod(con.dims[cat]);

function views(con: Contraction): Axes[] {
  const vs = [con.a.st, con.b.st, con.out];
  for (const x of [con.aZero, con.bZero, con.bias]) if (x) vs.push(x.st);
  return vs;
}

/** Drop axes of size 1 (their index is always 0) and merge neighbours that every view walks contiguously. */
export function simplify(con: Contraction): Contraction {
  const all = views(con);
  for (const cat of CATS) {
    const dims = con.dims[cat];
    const keep = dims.map((d) => d !== 1);
    let nd: number[] = [];
    let ns: number[][] = all.map(() => []);
    dims.forEach((d, i) => {
      if (!keep[i]) return;
      const j = nd.length - 1;
      if (j >= 0 && all.every((s, q) => ns[q]![j] === s[cat][i]! * d)) {
        nd[j] = nd[j]! * d;
        all.forEach((s, q) => (ns[q]![j] = s[cat][i]!));
        return;
      }
      nd.push(d);
      all.forEach((s, q) => ns[q]!.push(s[cat][i]!));
    });
    // a size-0 axis makes the whole space empty: keep it as a single 0
    if (dims.includes(0)) {
      nd = [0];
      ns = all.map(() => [0]);
    }
    con.dims[cat] = nd;
    all.forEach((s, q) => (s[cat] = ns[q]!));
  }
  return con;
}

// ---------------------------------------------------------------------------------------------------------------
// Kernel generation helpers

/** Buffers, uniforms and index decomposition of one contraction kernel. */
class Gen {
  readonly bufs = new Map<number, string>();
  readonly ct: KType;
  private readonly unis = new Map<string, Expr>();
  constructor(
    readonly kb: KernelBuilder,
    readonly ctx: LowerCtx,
    readonly con: Contraction,
    /** Loads through another template (pointwise) instead of binding the inputs here. */
    private readonly loadAt?: (input: number, index: Expr) => Expr,
  ) {
    if (!loadAt) {
      for (const w of [con.a, con.b, con.aZero, con.bZero, con.bias]) {
        if (w && !this.bufs.has(w.input)) this.bufs.set(w.input, kb.input(ctx, w.input));
      }
    }
    this.ct = computeType(ctx.inputs[con.a.input]!.dtype);
  }

  /** A uniform per role (never shared by value, so the kernel is the same for every shape of its class). */
  private u(role: string, value: number): Expr {
    let e = this.unis.get(role);
    if (!e) {
      e = this.kb.uniform(role.replace(/[^A-Za-z0-9]/g, ''), value);
      this.unis.set(role, e);
    }
    return e;
  }

  size(cat: Cat, i: number): Expr {
    return this.u(`d${cat}${i}_`, this.con.dims[cat][i]!);
  }

  total(cat: Cat): Expr {
    const d = this.con.dims[cat];
    if (d.length === 0) return c.i32(1);
    if (d.length === 1) return this.size(cat, 0);
    return this.u(`t${cat}_`, prod(d));
  }

  /**
   * Stride of an axis in a view: a uniform (broadcast zeros and unit strides too, so one kernel serves the class),
   * except the structural zeros — a / its zero point never walk n, b never m, the output and bias never k.
   */
  stride(view: Axes, name: string, cat: Cat, i: number): Expr {
    const role = name[0]!;
    if (
      (cat === 'n' && role === 'a') ||
      (cat === 'm' && role === 'b') ||
      (cat === 'k' && (role === 'o' || role === 'c'))
    )
      return c.i32(0);
    return this.u(`s${name}${cat}${i}_`, view[cat][i]!);
  }

  /** Coordinates of a flat index over the axes of `cat` (last axis fastest). */
  coords(cat: Cat, flat: Expr): Expr[] {
    const d = this.con.dims[cat];
    if (d.length === 0) return [];
    if (d.length === 1) return [flat];
    const out: Expr[] = new Array(d.length);
    let rest = flat;
    for (let i = d.length - 1; i > 0; i--) {
      const sz = this.size(cat, i);
      out[i] = this.kb.let('x', mod(rest, sz));
      rest = this.kb.let('r', div(rest, sz));
    }
    out[0] = rest;
    return out;
  }

  offset(view: Axes, name: string, cat: Cat, coords: readonly Expr[]): Expr {
    let off: Expr = c.i32(0);
    coords.forEach((x, i) => (off = add(off, mul(x, this.stride(view, name, cat, i)))));
    return off;
  }

  /** Element `index` of a viewed input, in the compute type. */
  ld(w: View, index: Expr): Expr {
    if (this.loadAt) return this.loadAt(w.input, index);
    const info = this.ctx.inputs[w.input]!;
    const raw = load(this.bufs.get(w.input)!, index, loadType(storageOf(info.dtype, this.kb.caps)));
    return toCompute(raw, info.dtype);
  }

  zero(): Expr {
    return c.of(this.ct, 0);
  }

  /** alpha · acc + beta · bias, in the compute type. */
  epilogue(acc: Expr, biasIndex: Expr | undefined): Expr {
    const { alpha, beta, bias } = this.con;
    // gemm's alpha / beta travel as uniforms of the compute type (u32: the two's-complement bits of a negative value)
    const k = (role: string, x: number) => {
      let e = this.unis.get(role);
      if (!e) {
        const t = this.ct === 'f32' ? 'f32' : this.ct === 'u32' ? 'u32' : 'i32';
        e = this.kb.uniform(role, t === 'u32' ? x >>> 0 : x, t);
        this.unis.set(role, e);
      }
      return e;
    };
    if (!this.con.scaled) return acc;
    let y = mul(k('alpha', alpha), acc);
    if (bias && biasIndex) y = add(y, mul(k('beta', beta), this.ld(bias, biasIndex)));
    return y;
  }
}

/**
 * Packed outputs (i8/u8/i16/u16 results): the pointwise template (one thread per packed word), each element a loop
 * over k. An axis's coordinate is (flat / its output stride) mod its size — every batch/m/n axis is a contiguous
 * run of output dims (merged axes included).
 */
function pointwiseContraction(ctx: LowerCtx, con: Contraction): LoweredStep {
  const inputs = [con.a, con.b, con.aZero, con.bZero, con.bias].filter((w): w is View => !!w).map((w) => w.input);
  const reads = [...new Set(inputs)];
  return pointwise(ctx, {
    label: `${con.label}_loop`,
    reads,
    value: (p) => {
      const kb = p.kb;
      const g = new Gen(kb, ctx, con, (i, index) => p.loadAt(i, index));
      const coords: Record<'batch' | 'm' | 'n', Expr[]> = { batch: [], m: [], n: [] };
      for (const cat of ['batch', 'm', 'n'] as const) {
        con.dims[cat].forEach((_, i) => {
          const q = div(p.flat, g.stride(con.out, 'o', cat, i));
          coords[cat].push(kb.let('x', mod(q, g.size(cat, i))));
        });
      }
      const row = (w: Axes, name: string) =>
        kb.let(
          'ro',
          add(
            add(g.offset(w, name, 'batch', coords.batch), g.offset(w, name, 'm', coords.m)),
            g.offset(w, name, 'n', coords.n),
          ),
        );
      const acc = kb.fresh('acc');
      kb.emit(var_(acc, g.ct, g.zero()));
      const terms = (
        [
          [con.a, con.aZero, 'a'],
          [con.b, con.bZero, 'b'],
        ] as const
      ).map(([w, z, name]) => ({ w, z, name, rw: row(w.st, name), rz: z ? row(z.st, `${name}z`) : undefined }));
      const kv = kb.fresh('k');
      const [body] = kb.collect(() => {
        const kc = g.coords('k', v(kv, 'i32'));
        const [x, y] = terms.map(({ w, z, name, rw, rz }) => {
          let e = g.ld(w, add(rw, g.offset(w.st, name, 'k', kc)));
          if (z && rz) e = sub(e, g.ld(z, add(rz, g.offset(z.st, `${name}z`, 'k', kc))));
          return e;
        });
        kb.emit(assign(acc, add(v(acc, g.ct), mul(x!, y!))));
      });
      kb.emit(for_(kv, c.i32(0), g.total('k'), body));
      return g.epilogue(v(acc, g.ct), con.bias ? row(con.bias.st, 'c') : undefined);
    },
  });
}

/** Is the last axis of `cat` the contiguous one of this view? */
const contiguousOn = (w: Axes, cat: Cat) => w[cat].length > 0 && w[cat][w[cat].length - 1] === 1;

// ---------------------------------------------------------------------------------------------------------------
// Tiled schedule

interface TileCfg {
  BM: number;
  BN: number;
  BK: number;
  TM: number;
  TN: number;
}

/**
 * Tile shapes: 128×128 outputs per 256-thread workgroup (8×8 per thread, BK = 8) for large outputs, 64×64 per
 * 64 threads (8×8, BK = 8) otherwise, 32×32 per 64 threads (4×4) where workgroup memory is scarce; 8 / 4 / 2 KiB.
 * Thread (tx, ty) owns rows ty + TY·r and columns tx + TX·c of the tile, so workgroup-memory reads and global
 * stores are consecutive across neighbouring threads.
 * (On lavapipe 8×8 blocks run ~3× faster than 4×4: every scalar workgroup-memory read is a per-lane gather there,
 * so reads per multiply-add decide; 8×8 halves them.)
 */
function tileCfg(ctx: LowerCtx, M: number, N: number): TileCfg {
  const big: TileCfg = { BM: 128, BN: 128, BK: 8, TM: 8, TN: 8 };
  const small: TileCfg = { BM: 64, BN: 64, BK: 8, TM: 8, TN: 8 };
  const tiny: TileCfg = { BM: 32, BN: 32, BK: 8, TM: 4, TN: 4 };
  for (const t of M >= 128 && N >= 128 ? [big, small, tiny] : [small, tiny]) {
    const threads = (t.BM / t.TM) * (t.BN / t.TN);
    if (threads <= ctx.caps.maxWorkgroupSize && t.BK * (t.BM + t.BN) * 4 <= ctx.caps.maxSharedBytes) return t;
  }
  throw new UnsupportedError(
    `matmul tiles need 64 threads and 2 KiB of workgroup memory; the device allows ${ctx.caps.maxWorkgroupSize} threads, ${ctx.caps.maxSharedBytes} bytes`,
    { node: ctx.node, op: ctx.op, limit: 'workgroup size' },
  );
}

/** `target`: the kernel type output elements are stored as (the output storage's element type). */
function tiled(ctx: LowerCtx, con: Contraction, target: KType): LoweredStep {
  const { BM, BN, BK, TM, TN } = tileCfg(ctx, total(con, 'm'), total(con, 'n'));
  const TX = BN / TN;
  const TY = BM / TM;
  const T = TX * TY;
  const kb = new KernelBuilder(`${con.label}_tiled`, ctx.caps);
  const g = new Gen(kb, ctx, con);
  const ob = kb.output(ctx, 0);
  const ct = g.ct;
  const As = kb.sharedArray('As', ct, BK * BM);
  const Bs = kb.sharedArray('Bs', ct, BK * BN);
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
          kb.emit(sstore(arr, p.sIdx, select(inb, val, g.zero())));
        }
      })[0];
  };

  const loadA = tileLoads(con.a, con.aZero, 'm', BM, m0, Mu, As);
  const loadB = tileLoads(con.b, con.bZero, 'n', BN, n0, Nu, Bs);

  const acc = (r: number, cc: number) => `acc${r}_${cc}`;
  for (let r = 0; r < TM; r++) for (let cc = 0; cc < TN; cc++) kb.emit(var_(acc(r, cc), ct, g.zero()));

  const [kBody] = kb.collect(() => {
    const k0 = v('k0', 'i32');
    kb.emit(...loadA(k0), ...loadB(k0), barrier);
    // one k of the tile per iteration: TM + TN workgroup-memory reads, TM·TN multiply-adds
    const [inner] = kb.collect(() => {
      const kq = v('kq', 'i32');
      const ra = kb.let('ra', add(mul(kq, c.i32(BM)), ty));
      const rb = kb.let('rb', add(mul(kq, c.i32(BN)), tx));
      const as: Expr[] = [];
      const bs: Expr[] = [];
      for (let r = 0; r < TM; r++) as.push(kb.let('a', sload(As, add(ra, c.i32(r * TY)), ct)));
      for (let cc = 0; cc < TN; cc++) bs.push(kb.let('b', sload(Bs, add(rb, c.i32(cc * TX)), ct)));
      for (let r = 0; r < TM; r++) {
        for (let cc = 0; cc < TN; cc++) {
          kb.emit(assign(acc(r, cc), add(v(acc(r, cc), ct), mul(as[r]!, bs[cc]!))));
        }
      }
    });
    kb.emit(for_('kq', c.i32(0), c.i32(BK), inner));
    kb.emit(barrier);
  });
  kb.emit(for_('k0', c.i32(0), Ku, kBody, c.i32(BK)));

  // epilogue: TM×TN guarded stores
  const bo = base(con.out, 'o');
  const bb = con.bias ? base(con.bias.st, 'c') : undefined;
  const rows: { inb: Expr; off: Expr; boff?: Expr }[] = [];
  for (let r = 0; r < TM; r++) {
    const mi = kb.let('mi', add(m0, add(ty, c.i32(r * TY))));
    const mc = g.coords('m', mi);
    rows.push({
      inb: kb.let('min', and(live, lt(mi, Mu))),
      off: kb.let('mo', add(bo, g.offset(con.out, 'o', 'm', mc))),
      boff: con.bias && bb ? kb.let('mb', add(bb, g.offset(con.bias.st, 'c', 'm', mc))) : undefined,
    });
  }
  const cols: { inb: Expr; off: Expr; boff?: Expr }[] = [];
  for (let cc = 0; cc < TN; cc++) {
    const nj = kb.let('nj', add(n0, add(tx, c.i32(cc * TX))));
    const nc = g.coords('n', nj);
    cols.push({
      inb: kb.let('nin', lt(nj, Nu)),
      off: g.offset(con.out, 'o', 'n', nc),
      boff: con.bias ? g.offset(con.bias.st, 'c', 'n', nc) : undefined,
    });
    const last = cols[cols.length - 1]!;
    last.off = kb.let('no', last.off);
    if (last.boff) last.boff = kb.let('nb', last.boff);
  }
  for (let r = 0; r < TM; r++) {
    for (let cc = 0; cc < TN; cc++) {
      const row = rows[r]!;
      const col = cols[cc]!;
      const bidx = row.boff && col.boff ? add(row.boff, col.boff) : undefined;
      const [pre, val] = kb.collect(() => fromCompute(g.epilogue(v(acc(r, cc), ct), bidx), target));
      kb.emit(if_(and(row.inb, col.inb), [...pre, { k: 'store', buf: ob, index: add(row.off, col.off), value: val }]));
    }
  }
  return kb.build([T, 1, 1], groups === 0 ? [0, 1, 1] : grid1d(groups, ctx.caps));
}

// ---------------------------------------------------------------------------------------------------------------
// Skinny (GEMV-like) schedule

function skinny(ctx: LowerCtx, con: Contraction, target: KType): LoweredStep {
  const T = Math.min(256, 2 ** Math.floor(Math.log2(ctx.caps.maxWorkgroupSize)));
  const M = total(con, 'm');
  const N = total(con, 'n');
  const outs = total(con, 'batch') * M * N;
  // Outputs fastest across threads when the big operand is b walked along n (x · W, S = 4 threads per output);
  // else k fastest (W · x, transposed weights, dot products: S = 32 threads per output).
  const outFast = N >= 32 && contiguousOn(con.b.st, 'n') && !contiguousOn(con.b.st, 'k');
  let S = Math.min(outFast ? 4 : 32, T);
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
  const [body] = kb.collect(() => {
    const kc = g.coords('k', v('k', 'i32'));
    let a = g.ld(con.a, add(ra, g.offset(con.a.st, 'a', 'k', kc)));
    if (con.aZero && raz) a = sub(a, g.ld(con.aZero, add(raz, g.offset(con.aZero.st, 'az', 'k', kc))));
    let b = g.ld(con.b, add(rb, g.offset(con.b.st, 'b', 'k', kc)));
    if (con.bZero && rbz) b = sub(b, g.ld(con.bZero, add(rbz, g.offset(con.bZero.st, 'bz', 'k', kc))));
    kb.emit(assign('acc', add(v('acc', ct), mul(a, b))));
  });
  kb.emit(for_('k', s, Ku, body, c.i32(S)));

  const result = v('acc', ct);
  // partial sums through workgroup memory; the first thread of each output adds them in order (one barrier)
  const tail: Stmt[] = [];
  if (S > 1) {
    const red = kb.sharedArray('red', ct, T);
    const step = outFast ? OPW : 1;
    kb.emit(sstore(red, l, result), barrier);
    const part = sload(red, add(l, mul(v('j', 'i32'), c.i32(step))), ct);
    tail.push(for_('j', c.i32(1), c.i32(S), [assign('acc', add(result, part))]));
  }
  const [store0] = kb.collect(() => {
    const bo = g.offset(con.out, 'o', 'batch', bc);
    const oidx = add(add(bo, g.offset(con.out, 'o', 'm', mc)), g.offset(con.out, 'o', 'n', nc));
    const bidx = con.bias
      ? add(
          add(g.offset(con.bias.st, 'c', 'batch', bc), g.offset(con.bias.st, 'c', 'm', mc)),
          g.offset(con.bias.st, 'c', 'n', nc),
        )
      : undefined;
    const value = fromCompute(g.epilogue(result, bidx), target);
    kb.emit({ k: 'store', buf: ob, index: kb.let('oi', oidx), value });
  });
  kb.emit(if_(and(valid, eq(s, c.i32(0))), [...tail, ...store0]));
  return kb.build([T, 1, 1], outs === 0 ? [0, 1, 1] : grid1d(Math.ceil(outs / OPW), ctx.caps));
}

// ---------------------------------------------------------------------------------------------------------------
// Dispatch

function checkRanges(ctx: LowerCtx): void {
  ctx.inputs.forEach((t, i) => t && checkIndexRange(ctx, prod(t.shape), `input ${i}`));
  checkIndexRange(ctx, prod(ctx.outputs[0]!.shape), 'output 0');
}

/** The kernel computing a contraction into output 0: tiled, skinny, or (packed output dtypes) the loop kernel. */
export function lowerContraction(ctx: LowerCtx, con0: Contraction): LoweredStep[] {
  checkRanges(ctx);
  const con = simplify(con0);
  const M = total(con, 'm');
  const N = total(con, 'n');
  const st = storageOf(ctx.outputs[0]!.dtype, ctx.caps);
  if (PACK[st] > 1) return [pointwiseContraction(ctx, con)];
  const useSkinny = M <= 4 || N <= 4 || M * N <= 1024;
  return [useSkinny ? skinny(ctx, con, loadType(st)) : tiled(ctx, con, loadType(st))];
}

/** A view of an operand of numpy matmul (1-D promoted), given strides over its own dims. */
function matmulView(
  input: number,
  shape: readonly number[],
  st: readonly number[],
  role: 'a' | 'b',
  batch: readonly number[],
): View {
  const r = shape.length;
  const ax: Axes = { batch: zeros(batch.length), m: [0], n: [0], k: [0] };
  if (r === 1) ax.k = [st[0]!];
  else if (role === 'a') {
    ax.m = [st[r - 2]!];
    ax.k = [st[r - 1]!];
  } else {
    ax.k = [st[r - 2]!];
    ax.n = [st[r - 1]!];
  }
  const xb = r > 2 ? shape.slice(0, r - 2) : [];
  for (let d = 0; d < batch.length; d++) {
    const j = d - (batch.length - xb.length);
    ax.batch[d] = j < 0 || xb[j] === 1 ? 0 : st[j]!;
  }
  // a free dim of size 1 (promoted or real) is never indexed
  if (r > 1 && role === 'a' && shape[r - 2] === 1) ax.m = [0];
  if (r > 1 && role === 'b' && shape[r - 1] === 1) ax.n = [0];
  return { input, st: ax };
}

/** Strides of `shape` broadcast against `target` (same rank after right alignment), 0 where it broadcasts. */
function bstrides(shape: readonly number[], target: readonly number[]): number[] {
  const st = stridesOf(shape);
  return target.map((_, i) => {
    const j = i - (target.length - shape.length);
    return j < 0 || shape[j] === 1 ? 0 : st[j]!;
  });
}

function matmulContraction(ctx: LowerCtx, label: string): Contraction {
  const a = ctx.inputs[0]!.shape;
  const b = ctx.inputs[1]!.shape;
  const a2 = a.length === 1 ? [1, a[0]!] : a;
  const b2 = b.length === 1 ? [b[0]!, 1] : b;
  const ab = a2.slice(0, -2);
  const bb = b2.slice(0, -2);
  const nb = Math.max(ab.length, bb.length);
  const batch: number[] = [];
  for (let d = 0; d < nb; d++) {
    const x = ab[d - (nb - ab.length)] ?? 1;
    const y = bb[d - (nb - bb.length)] ?? 1;
    batch.push(x === 1 ? y : x);
  }
  const M = a2[a2.length - 2]!;
  const K = a2[a2.length - 1]!;
  const N = b2[b2.length - 1]!;
  const bst = stridesOf(batch);
  return {
    label,
    dims: { batch, m: [M], n: [N], k: [K] },
    a: matmulView(0, a, stridesOf(a), 'a', batch),
    b: matmulView(1, b, stridesOf(b), 'b', batch),
    alpha: 1,
    beta: 1,
    out: { batch: bst.map((s) => s * M * N), m: [N], n: [1], k: [0] },
  };
}

registerLowering('matmul', (ctx) => lowerContraction(ctx, matmulContraction(ctx, 'matmul')));

registerLowering('matmul_integer', (ctx) => {
  const con = matmulContraction(ctx, 'matmul_integer');
  const zeroView = (i: number, perRow: boolean): View | undefined => {
    const z = ctx.inputs[i];
    if (!z) return undefined;
    const x = ctx.inputs[i - 2]!.shape;
    const zv = perRow && z.shape.length === 1 && x.length > 1 ? [z.shape[0]!, 1] : z.shape;
    if (zv.length > x.length) {
      throw new KilnError('shape', `zero point shape [${z.shape}] does not broadcast to [${x}]`, {
        node: ctx.node,
        op: ctx.op,
      });
    }
    return matmulView(i, x, bstrides(zv, x), i === 2 ? 'a' : 'b', con.dims.batch);
  };
  con.aZero = zeroView(2, true);
  con.bZero = zeroView(3, false);
  return lowerContraction(ctx, con);
});

registerLowering('gemm', (ctx) => {
  const at = ctx.attrs;
  const dt = ctx.outputs[0]!.dtype;
  const alpha = at['alpha'] as number;
  const beta = at['beta'] as number;
  const ct = computeType(dt);
  if (ct !== 'f32' && !(Number.isInteger(alpha) && Number.isInteger(beta))) {
    throw new UnsupportedError(`gemm on ${dt} with non-integral alpha ${alpha} / beta ${beta}`, {
      node: ctx.node,
      op: ctx.op,
    });
  }
  const a = ctx.inputs[0]!.shape;
  const b = ctx.inputs[1]!.shape;
  const [M, K] = at['transA'] ? [a[1]!, a[0]!] : [a[0]!, a[1]!];
  const N = at['transB'] ? b[0]! : b[1]!;
  const sa = stridesOf(a);
  const sb = stridesOf(b);
  const con: Contraction = {
    label: 'gemm',
    scaled: true,
    dims: { batch: [], m: [M], n: [N], k: [K] },
    a: {
      input: 0,
      st: { batch: [], m: [at['transA'] ? sa[1]! : sa[0]!], n: [0], k: [at['transA'] ? sa[0]! : sa[1]!] },
    },
    b: {
      input: 1,
      st: { batch: [], m: [0], n: [at['transB'] ? sb[0]! : sb[1]!], k: [at['transB'] ? sb[1]! : sb[0]!] },
    },
    alpha,
    beta,
    out: { batch: [], m: [N], n: [1], k: [0] },
  };
  const cIn = ctx.inputs[2];
  if (cIn) {
    const cs = bstrides(cIn.shape, [M, N]);
    con.bias = { input: 2, st: { batch: [], m: [cs[0]!], n: [cs[1]!], k: [0] } };
  }
  return lowerContraction(ctx, con);
});

// ---------------------------------------------------------------------------------------------------------------
// Einsum

interface EinsumPlan {
  /** Label ids of each operand's dims (ellipsis dims are ids 0..E-1, right-aligned). */
  terms: number[][];
  out: number[];
  count: number;
}

/** Parse an equation (numpy rules; the op's verifier has already accepted it). */
function parseEinsum(eq: string, ranks: readonly number[], fail: (m: string) => never): EinsumPlan {
  const s = eq.replace(/\s+/g, '');
  const arrow = s.indexOf('->');
  const lhs = arrow < 0 ? s : s.slice(0, arrow);
  const rhs = arrow < 0 ? undefined : s.slice(arrow + 2);
  const tok = (t: string): (string | null)[] => {
    const r: (string | null)[] = [];
    for (let i = 0; i < t.length;) {
      if (t.startsWith('...', i)) {
        r.push(null);
        i += 3;
      } else if (/[A-Za-z]/.test(t[i]!)) r.push(t[i++]!);
      else fail(`einsum equation '${eq}': unexpected character '${t[i]}'`);
    }
    return r;
  };
  const terms = lhs.split(',').map(tok);
  if (terms.length !== ranks.length) fail(`einsum equation '${eq}' has ${terms.length} operands`);
  const ell = terms.map((t, i) => ranks[i]! - t.filter((x) => x !== null).length);
  const E = Math.max(0, ...ell);
  const id = new Map<string, number>();
  const counts = new Map<string, number>();
  for (const t of terms) {
    for (const ch of t) {
      if (ch === null) continue;
      if (!id.has(ch)) id.set(ch, E + id.size);
      counts.set(ch, (counts.get(ch) ?? 0) + 1);
    }
  }
  const ellIds = (e: number) => Array.from({ length: e }, (_, j) => E - e + j);
  const ids = terms.map((t, i) => t.flatMap((ch) => (ch === null ? ellIds(ell[i]!) : [id.get(ch)!])));
  let out: number[];
  if (rhs === undefined) {
    const once = [...counts].filter(([, n]) => n === 1).map(([ch]) => ch);
    once.sort((x, y) => x.charCodeAt(0) - y.charCodeAt(0));
    out = [...ellIds(E), ...once.map((ch) => id.get(ch)!)];
  } else {
    out = tok(rhs).flatMap((ch) => (ch === null ? ellIds(E) : [id.get(ch)!]));
  }
  return { terms: ids, out, count: E + id.size };
}

registerLowering('einsum', (ctx) => {
  const fail = (m: string): never => {
    throw new KilnError('attribute', m, { node: ctx.node, op: ctx.op });
  };
  const shapes = ctx.inputs.map((t) => t!.shape);
  const plan = parseEinsum(
    ctx.attrs['equation'] as string,
    shapes.map((s) => s.length),
    fail,
  );
  const dims = new Array<number>(plan.count).fill(1);
  plan.terms.forEach((t, i) =>
    t.forEach((lab, p) => {
      const d = shapes[i]![p]!;
      if (dims[lab] === 1) dims[lab] = d;
    }),
  );
  // each operand's stride per label: summed over repeated places (a diagonal), 0 where a size-1 dim broadcasts
  const strides = shapes.map((sh, i) => {
    const st = zeros(plan.count);
    const own = stridesOf(sh);
    plan.terms[i]!.forEach((lab, p) => {
      if (sh[p] !== 1) st[lab]! += own[p]!;
    });
    return st;
  });
  const outShape = plan.out.map((lab) => dims[lab]!);
  const outSt = zeros(plan.count);
  stridesOf(outShape).forEach((s, j) => (outSt[plan.out[j]!] = s));
  const summed = dims.map((_, lab) => lab).filter((lab) => !plan.out.includes(lab));
  checkRanges(ctx);

  if (shapes.length === 2) {
    const [sa, sb] = strides as [number[], number[]];
    const cat = (lab: number): Cat =>
      !plan.out.includes(lab) ? 'k' : sa[lab] && sb[lab] ? 'batch' : sb[lab] ? 'n' : 'm';
    const labels: Record<Cat, number[]> = { batch: [], m: [], n: [], k: [] };
    for (const lab of [...plan.out, ...summed]) labels[cat(lab)].push(lab);
    const pick = (st: number[]): Axes => ({
      batch: labels.batch.map((x) => st[x]!),
      m: labels.m.map((x) => st[x]!),
      n: labels.n.map((x) => st[x]!),
      k: labels.k.map((x) => st[x]!),
    });
    return lowerContraction(ctx, {
      label: 'einsum',
      dims: pick(dims),
      a: { input: 0, st: pick(sa) },
      b: { input: 1, st: pick(sb) },
      alpha: 1,
      beta: 1,
      out: pick(outSt),
    });
  }

  // one operand, or three and more: one thread per output element, looping over the summed labels
  const loopLabels = summed.filter((lab) => dims[lab] !== 1);
  const reads = shapes.map((_, i) => i);
  const ct = computeType(ctx.outputs[0]!.dtype);
  return [
    pointwise(ctx, {
      label: 'einsum',
      reads,
      value: (p) => {
        const kb = p.kb;
        const uni = (hint: string, x: number) => (x === 0 || x === 1 ? c.i32(x) : kb.uniform(hint, x));
        const bases = reads.map((i) => {
          let off: Expr = c.i32(0);
          plan.out.forEach((lab, j) => (off = add(off, mul(p.coords[j]!, uni('s', strides[i]![lab]!)))));
          return kb.let('base', off);
        });
        const accName = kb.fresh('acc');
        kb.emit(var_(accName, ct, c.of(ct, 0)));
        const loopVars = loopLabels.map(() => kb.fresh('j'));
        const [inner] = kb.collect(() => {
          let prodE: Expr | undefined;
          reads.forEach((i) => {
            let off = bases[i]!;
            loopLabels.forEach((lab, q) => (off = add(off, mul(v(loopVars[q]!, 'i32'), uni('s', strides[i]![lab]!)))));
            const x = p.loadAt(i, off);
            prodE = prodE ? mul(prodE, x) : x;
          });
          kb.emit(assign(accName, add(v(accName, ct), prodE!)));
        });
        let body: Stmt[] = inner;
        for (let q = loopLabels.length - 1; q >= 0; q--) {
          body = [for_(loopVars[q]!, c.i32(0), kb.uniform('d', dims[loopLabels[q]!]!), body)];
        }
        kb.emit(...body);
        return v(accName, ct);
      },
    }),
  ];
});
