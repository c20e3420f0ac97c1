/**
 * Lowering of attention and rotary_embedding.
 *
 * attention: present_key / present_value (past ++ new, [B, kv_heads, T, size]) are pointwise copy kernels. The main
 * kernel runs one workgroup of CHUNK threads per (batch, head, query row) and slice of the V head dims; it walks
 * the keys in chunks of CHUNK (one key per thread: dot product, scale, softcap, bias from mask / causal / nonpad;
 * the chunk's logits go to workgroup memory), keeps an online softmax in f32 (every thread reads the chunk back, so
 * the running max, the rescaled sum and the "some key attendable" flag agree across threads without reductions;
 * each thread exponentiates its own key's logit once and the weights are read back: three barriers per chunk) and accumulates P·V with each thread owning up to MAX_ACC output dims in registers. qk_matmul_output modes 0-2 are written as the scores are computed; mode 3 (softmax) takes a second pass
 * over the keys once the max and sum are known. Rows whose keys are all masked (every bias -inf) give zeros.
 *
 * The tiled kernel (`tiledAttention`, schedule `tiled`): one workgroup of 64 threads per (batch, head, tile of Br
 * query rows); per tile of Bc keys the K and V rows are loaded once into workgroup memory, TPR threads per query row
 * score KPT keys each and own every TPR-th V dim (TPR = ⌈Dv / 64⌉ as a power of 2: Br = 64 at Dv = 64, 32 at 128;
 * Bc from the workgroup memory). Supports everything but qk_matmul_output and empty heads (the per-row kernel
 * then). `auto`: decomposed first where it applies, except on CUDA-class devices where the tiled kernel goes first;
 * the tiled kernel for > 4 queries where decomposed does not apply (and no present outputs, or past the scores
 * limit); else the per-row kernel.
 * Measured (4 heads — 2 at 2048 —, f32, min of 2–4 runs, ms, tiled vs decomposed; causal in brackets):
 *   lavapipe  S = T = 128,  D 64: 13.9 vs 7.0 (10.5 vs 7.7); D 128: 26.6 vs 10.5 (18.9 vs 10.5)
 *             S = T = 512,  D 64: 137 vs 80 (78 vs 86);     D 128: 288 vs 126 (207 vs 120)
 *             S = T = 2048, D 64: 1038 vs 351 (609 vs 321)
 *   cuda-emu  S = T = 128,  D 64: 9.1 vs 29.5 (10.2 vs 30.9); D 128: 13.3 vs 38.3 (12.1 vs 34.0)
 *             S = T = 512,  D 64: 46 vs 225 (38 vs 221);       D 128: 93 vs 259 (66 vs 255)
 *             S = T = 2048, D 64: 245 vs 773 (145 vs 764)
 * (TPR = ⌈Dv / 32⌉ measured 15–45% slower on lavapipe at 512.)
 *
 * rotary_embedding: a pointwise kernel; each output element reads its own and its partner's input and the cos/sin
 * cache entry of its position.
 */
import { KilnError } from '../../ir/errors.js';
import { decomposedAttention, ONE_KERNEL_MAX_QUERIES, SCORES_LIMIT } from './attention-decomposed.js';
import { numel } from '../../ir/shape.js';
import {
  add,
  and,
  assign,
  barrier,
  bin,
  c,
  cast,
  div,
  eq,
  for_,
  ge,
  gt,
  if_,
  load,
  loadType,
  lt,
  mod,
  mul,
  ne,
  not,
  or,
  select,
  sload,
  sstore,
  sub,
  un,
  v,
  var_,
  type Expr,
  type KType,
} from '../kir.js';
import { nanMax } from './elementwise.js';
import { grid1d, KernelBuilder, type LowerCtx, type LoweredStep } from './kernel-builder.js';
import { checkIndexRange, fromCompute, pointwise, type Pointwise } from './pointwise.js';
import { registerLowering } from './registry.js';
import { storageOf } from './storage.js';

const f = c.f32;
const i32 = c.i32;
const NEG_INF = f(-Infinity);

/** Keys per chunk = threads per workgroup of the attention kernel. */
const CHUNK = 64;
/** Output dims of V one thread accumulates in registers (more dims: more workgroups per row). */
const MAX_ACC = 4;

/** Strides of (b, h, s, d) in a 4-D [B, H, S, D] tensor or a 3-D [B, S, H*D] one (the reference's headStrides). */
function headStrides(rank: number, h: number, s: number, d: number): [number, number, number, number] {
  return rank === 4 ? [h * s * d, s * d, d, 1] : [s * h * d, d, h * d, 1];
}

/**
 * Element strides of (b, h, s) and the offset of q / k / v (input `i`, `H` heads of `Dd` dims): through the input's
 * layout when it is a view whose head dims are contiguous (read in place: the main kernel indexes any such strides),
 * else row-major (`native` false: a view's loads are then remapped after lowering).
 */
function headView(
  ctx: LowerCtx,
  i: number,
  rank: number,
  H: number,
  S: number,
  Dd: number,
): { st: [number, number, number]; offset: number; native: boolean } {
  const l = ctx.inputs[i]!.layout;
  const [b, h, s] = headStrides(rank, H, S, Dd);
  const last = rank - 1;
  if (!l || (l.strides[last] !== 1 && l.shape[last]! > 1)) return { st: [b, h, s], offset: 0, native: false };
  // rank 3 is [B, S, H·D]: heads split the contiguous last dim
  const st: [number, number, number] =
    rank === 4 ? [l.strides[0]!, l.strides[1]!, l.strides[2]!] : [l.strides[0]!, Dd, l.strides[1]!];
  return { st, offset: l.offset, native: true };
}

interface Geometry {
  rank: number;
  B: number;
  Hq: number;
  Hkv: number;
  S: number;
  Tk: number;
  P: number;
  T: number;
  D: number;
  Dv: number;
}

function geometry(ctx: LowerCtx): Geometry {
  const q = ctx.inputs[0]!.shape;
  const k = ctx.inputs[1]!.shape;
  const vv = ctx.inputs[2]!.shape;
  const rank = q.length;
  const pk = ctx.inputs[4];
  let Hq: number, Hkv: number, S: number, Tk: number, D: number, Dv: number;
  if (rank === 3) {
    Hq = ctx.attrs['q_num_heads'] as number;
    Hkv = ctx.attrs['kv_num_heads'] as number;
    S = q[1]!;
    Tk = k[1]!;
    D = q[2]! / Hq;
    Dv = vv[2]! / Hkv;
  } else {
    [, Hq, S, D] = q as [number, number, number, number];
    [, Hkv, Tk] = k as [number, number, number];
    Dv = vv[3]!;
  }
  const P = pk ? pk.shape[2]! : 0;
  return { rank, B: q[0]!, Hq, Hkv, S, Tk, P, T: P + Tk, D, Dv };
}

/** A buffer's element at `index` as f32 (or i32 / bool for integer / bool storage). */
function loadAs(kb: KernelBuilder, ctx: LowerCtx, buf: string, dtIndex: number, index: Expr, isOut = false): Expr {
  const info = isOut ? ctx.outputs[dtIndex]! : ctx.inputs[dtIndex]!;
  const st = storageOf(info.dtype, kb.caps);
  const raw = load(buf, index, loadType(st));
  return raw.type === 'f16' ? cast('f32', raw) : raw;
}

/** present = past ++ new as [B, H, P + Tk, size]: a pointwise copy for output `out` (1: keys, 2: values). */
function presentStep(ctx: LowerCtx, g: Geometry, out: 1 | 2): LoweredStep {
  const cur = out === 1 ? 1 : 2;
  const past = out === 1 ? 4 : 5;
  const hasPast = ctx.inputs[past] !== undefined;
  const size = out === 1 ? g.D : g.Dv;
  return pointwise(ctx, {
    label: out === 1 ? 'attention_present_key' : 'attention_present_value',
    output: out,
    reads: hasPast ? [cur, past] : [cur],
    value: (p: Pointwise) => {
      const kb = p.kb;
      const u = (hint: string, x: number) => (x === 0 || x === 1 ? i32(x) : kb.uniform(hint, x));
      const [b, h, t, d] = p.coords as [Expr, Expr, Expr, Expr];
      const cs = headStrides(g.rank, g.Hkv, g.Tk, size);
      const curAt = (tt: Expr) =>
        add(add(add(mul(b, u('s', cs[0])), mul(h, u('s', cs[1]))), mul(tt, u('s', cs[2]))), d);
      if (!hasPast) return p.loadAt(cur, kb.let('ci', curAt(t)));
      const P = u('past', g.P);
      const tp = kb.let('tp', bin('max', bin('min', t, sub(P, i32(1))), i32(0)));
      const pastIdx = kb.let('pi', add(mul(add(mul(add(mul(b, u('h', g.Hkv)), h), P), tp), u('dd', size)), d));
      const tc = kb.let('tc', bin('max', sub(t, P), i32(0)));
      return select(lt(t, P), p.loadAt(past, pastIdx), p.loadAt(cur, kb.let('ci', curAt(tc))));
    },
  });
}

/** Threads per workgroup of the tiled (multi-query) kernel. */
const TILE_THREADS = 64;
/** Accumulator registers per thread the tiled kernel aims for (threads per query row = ⌈Dv / this⌉, a power of 2). */
const TILE_ACC = 64;

/**
 * The tiled kernel's tile shape for these head sizes: TPR threads per query row (each owning every TPR-th V dim), Br
 * query rows per workgroup, Bc keys per K/V tile (KPT keys scored by each thread); undefined where the K and V tiles
 * of even TPR keys do not fit the device's workgroup memory.
 */
export function tileShape(
  D: number,
  Dv: number,
  maxSharedBytes: number,
): { TPR: number; Br: number; Bc: number; KPT: number; nAcc: number } | undefined {
  let TPR = 1;
  while (TPR < 16 && TPR * TILE_ACC < Dv) TPR *= 2;
  const Br = TILE_THREADS / TPR;
  const floats = Math.floor(maxSharedBytes / 4) - Br * TPR;
  const KPT = Math.min(Math.floor(64 / TPR), Math.floor(floats / (TPR * (D + Dv + Br))));
  if (KPT < 1) return undefined;
  return { TPR, Br, Bc: KPT * TPR, KPT, nAcc: Math.max(1, Math.ceil(Dv / TPR)) };
}

/**
 * The tiled kernel: one workgroup per (batch, head, tile of Br query rows). Per tile of Bc keys the workgroup loads
 * the K and V rows once into workgroup memory (past rows from past_key / past_value, the rest from the new keys),
 * each thread scores KPT keys of its query row (dot, scale, softcap, mask / causal / nonpad bias) into workgroup
 * memory, then every thread of the row takes the tile's max, rescales its running sum and accumulators and adds
 * P·V for its V dims — three barriers per tile, K/V read B·Hq·⌈S/Br⌉ times instead of B·Hq·S. Causal and nonpad
 * masking end the key loop at the tile's last attendable key. Undefined where it does not apply (qk_matmul_output,
 * workgroup memory too small): the per-row kernel below runs then.
 */
function tiledAttention(ctx: LowerCtx, g: Geometry, scale: number): LoweredStep[] | undefined {
  const { B, Hq, Hkv, S, P, T, D, Dv } = g;
  if (ctx.outputs.length > 3 || Hq % Hkv !== 0 || B * Hq * S === 0 || D === 0 || Dv === 0) return undefined;
  const shape = tileShape(D, Dv, ctx.caps.maxSharedBytes);
  if (!shape || ctx.caps.maxWorkgroupSize < TILE_THREADS) return undefined;
  const { TPR, Br, Bc, KPT, nAcc } = shape;
  const hasPast = ctx.inputs[4] !== undefined;
  const mask = ctx.inputs[3];
  const nonpad = ctx.inputs[6];
  const causal = ctx.attrs['is_causal'] as boolean;
  const softcap = ctx.attrs['softcap'] as number;
  const fill = ctx.attrs['mask_fill'] as number | undefined;
  // past keys / values: from the present outputs when the node has them (the copy steps write them first)
  const usePresent = hasPast && ctx.outputs.length > 2;

  const kb = new KernelBuilder('attention_tiled', ctx.caps);
  const u = (hint: string, x: number) => (x === 0 || x === 1 ? i32(x) : kb.uniform(hint, x));
  const qB = kb.input(ctx, 0);
  const rd = (i: 1 | 2) =>
    usePresent
      ? kb.buffer({ kind: 'out', index: i }, storageOf(ctx.outputs[i]!.dtype, ctx.caps), 'read')
      : kb.input(ctx, i);
  const kB = rd(1);
  const vB = rd(2);
  const pkB = hasPast && !usePresent ? kb.input(ctx, 4) : undefined;
  const pvB = hasPast && !usePresent ? kb.input(ctx, 5) : undefined;
  const maskB = mask ? kb.input(ctx, 3) : undefined;
  const npB = nonpad ? kb.input(ctx, 6) : undefined;
  const yB = kb.output(ctx, 0);
  if (kb.buffers.length > ctx.caps.maxBuffersPerKernel) return undefined;

  const ks = kb.sharedArray('k', 'f32', Bc * D);
  const vs = kb.sharedArray('v', 'f32', Bc * Dv);
  const ps = kb.sharedArray('p', 'f32', Br * Bc);
  const fs = kb.sharedArray('any', 'f32', Br * TPR);
  const gi = kb.groupIndex();
  const l = kb.localIndex();
  const nQT = Math.ceil(S / Br);
  const SU = u('S', S);
  const TU = u('T', T);
  const PU = u('P', P);
  const HqU = u('hq', Hq);
  const qt = kb.let('qt', mod(gi, u('nqt', nQT)));
  const r2 = kb.let('r', div(gi, u('nqt', nQT)));
  const h = kb.let('h', mod(r2, HqU));
  const b = kb.let('bi', div(r2, HqU));
  const kvh = kb.let('kvh', div(h, u('grp', Hq / Hkv)));
  const r = kb.let('row', div(l, i32(TPR)));
  const t = kb.let('t', mod(l, i32(TPR)));
  const q0 = kb.let('q0', mul(qt, i32(Br)));
  const qi = kb.let('qi', add(q0, r));
  const rowOk = kb.let('rowok', lt(qi, SU));
  const qiC = kb.let('qic', bin('min', qi, sub(SU, i32(1))));

  const qv = headView(ctx, 0, g.rank, Hq, S, D);
  const qs = qv.st;
  const physicalInputs: number[] = qv.native ? [0] : [];
  const qBase = kb.let(
    'qb',
    add(add(add(u('oq', qv.offset), mul(b, u('sq', qs[0]))), mul(h, u('sq', qs[1]))), mul(qiC, u('sq', qs[2]))),
  );
  const ys = headStrides(g.rank, Hq, S, Dv);
  const yBase = kb.let('yb', add(add(mul(b, u('sy', ys[0])), mul(h, u('sy', ys[1]))), mul(qiC, u('sy', ys[2]))));

  /** Element d of key / value row j (0 ≤ j < T) as f32, from whichever buffer holds it. */
  const kvRow = (isK: boolean, j: Expr, d: Expr, dst: string): void => {
    const size = isK ? D : Dv;
    const bh = add(mul(b, u('hkv', Hkv)), kvh);
    const [buf, dt] = isK ? [kB, 1] : [vB, 2];
    if (usePresent) {
      kb.emit(assign(dst, loadAs(kb, ctx, buf, dt, add(mul(add(mul(bh, TU), j), i32(size)), d), true)));
      return;
    }
    const hv = headView(ctx, isK ? 1 : 2, g.rank, Hkv, g.Tk, size);
    if (hv.native) physicalInputs.push(isK ? 1 : 2);
    const cs = hv.st;
    const curAt = (jj: Expr) =>
      add(
        add(add(add(u('ok', hv.offset), mul(b, u('sk', cs[0]))), mul(kvh, u('sk', cs[1]))), mul(jj, u('sk', cs[2]))),
        d,
      );
    if (!hasPast) {
      kb.emit(assign(dst, loadAs(kb, ctx, buf, dt, curAt(j))));
      return;
    }
    const pastAt = add(mul(add(mul(bh, PU), j), i32(size)), d);
    kb.emit(
      if_(
        lt(j, PU),
        [assign(dst, loadAs(kb, ctx, isK ? pkB! : pvB!, isK ? 4 : 5, pastAt))],
        [assign(dst, loadAs(kb, ctx, buf, dt, curAt(sub(j, PU))))],
      ),
    );
  };

  const validLen = npB ? kb.let('valid', cast('i32', loadAs(kb, ctx, npB, 6, b))) : TU;
  const offset = hasPast ? PU : npB ? kb.let('off', sub(validLen, SU)) : i32(0);
  // keys past the tile's last attendable one (causal: its last row + offset; nonpad: the valid length) are skipped
  let end: Expr = TU;
  if (causal) {
    const last = sub(bin('min', add(q0, i32(Br)), SU), i32(1));
    end = kb.let('end', bin('max', bin('min', end, add(add(last, offset), i32(1))), i32(0)));
  }
  if (npB) end = kb.let('end', bin('max', bin('min', end, validLen), i32(0)));
  let maskBase: Expr = i32(0);
  let maskLen: Expr = i32(0);
  if (mask) {
    const ms = [...new Array<number>(4 - mask.shape.length).fill(1), ...mask.shape];
    const st: number[] = [0, 0, 0, 0];
    let acc = 1;
    for (let d = 3; d >= 0; d--) {
      st[d] = ms[d] === 1 && d < 3 ? 0 : acc;
      acc *= ms[d]!;
    }
    maskBase = kb.let('mb', add(add(mul(b, u('sm', st[0]!)), mul(h, u('sm', st[1]!))), mul(qiC, u('sm', st[2]!))));
    maskLen = u('ml', ms[3]!);
  }
  const scaleU = kb.uniform('scale', scale, 'f32');

  kb.emit(
    var_('m', 'f32', NEG_INF),
    var_('lsum', 'f32', f(0)),
    var_('anyk', 'bool', c.bool(false)),
    ...Array.from({ length: nAcc }, (_, a) => var_(`acc${a}`, 'f32', f(0))),
  );
  const m = v('m', 'f32');
  const j0 = v('j0', 'i32');
  const [tile] = kb.collect(() => {
    // 1. the tile's K and V rows into workgroup memory, each element loaded once (zeros past the keys)
    ([true, false] as const).forEach((isK) => {
      const size = isK ? D : Dv;
      const e = kb.fresh('e');
      const [body] = kb.collect(() => {
        const ev = v(e, 'i32');
        const jj = kb.let('jj', div(ev, i32(size)));
        const d = kb.let('d', mod(ev, i32(size)));
        const j = kb.let('j', add(j0, jj));
        const x = kb.fresh('x');
        kb.emit(var_(x, 'f32', f(0)));
        const [ld] = kb.collect(() => kvRow(isK, j, d, x));
        kb.emit(if_(lt(j, end), ld), sstore(isK ? ks : vs, ev, v(x, 'f32')));
      });
      kb.emit(for_(e, l, i32(Bc * size), body, i32(TILE_THREADS)));
    });
    kb.emit(barrier);
    // 2. scores of keys t, t + TPR, … of this thread's row: dots over D with q read once per dim
    const dots = Array.from({ length: KPT }, (_, i) => `dot${i}`);
    kb.emit(...dots.map((n) => var_(n, 'f32', f(0))));
    const [dl] = kb.collect(() => {
      const d = v('dd', 'i32');
      const qd = kb.let('qd', loadAs(kb, ctx, qB, 0, add(qBase, d)));
      dots.forEach((n, i) =>
        kb.emit(assign(n, add(v(n, 'f32'), mul(qd, sload(ks, add(mul(add(t, i32(i * TPR)), i32(D)), d), 'f32'))))),
      );
    });
    kb.emit(for_('dd', i32(0), i32(D), dl));
    dots.forEach((n, i) => {
      const jj = kb.let('jj', add(t, i32(i * TPR)));
      const j = kb.let('j', add(j0, jj));
      const raw = kb.let('raw', mul(scaleU, v(n, 'f32')));
      const capped = softcap > 0 ? kb.let('cap', mul(f(softcap), un('tanh', div(raw, f(softcap))))) : raw;
      let bias: Expr = f(0);
      let base = capped;
      if (mask) {
        const mi = kb.let('mi', add(maskBase, bin('max', bin('min', j, sub(maskLen, i32(1))), i32(0))));
        const mv0 = loadAs(kb, ctx, maskB!, 3, mi);
        if (fill !== undefined) {
          const keep = kb.let('keep', and(lt(j, maskLen), ne(mv0, c.of(mv0.type, 0))));
          base = kb.let('base', select(keep, capped, kb.uniform('fill', fill, 'f32')));
        } else {
          const mv = mask.dtype === 'bool' ? select(ne(mv0, c.of(mv0.type, 0)), f(0), NEG_INF) : mv0;
          bias = kb.let('bias', select(lt(j, maskLen), mv, NEG_INF));
        }
      }
      if (causal) bias = kb.let('bias', select(gt(j, add(qi, offset)), add(bias, NEG_INF), bias));
      if (npB) bias = kb.let('bias', select(ge(j, validLen), add(bias, NEG_INF), bias));
      const live = kb.let('live', and(lt(j, end), rowOk));
      const att = kb.let('att', and(live, ne(bias, NEG_INF)));
      kb.emit(
        assign('anyk', or(v('anyk', 'bool'), att)),
        sstore(ps, add(mul(r, i32(Bc)), jj), select(live, add(base, bias), NEG_INF)),
      );
    });
    kb.emit(barrier);
    // 3. the row's online softmax (every thread of the row reads its scores) and P·V for this thread's dims
    kb.emit(var_('mc', 'f32', m));
    const pRow = kb.let('prow', mul(r, i32(Bc)));
    const [mx] = kb.collect(() =>
      kb.emit(assign('mc', nanMax(v('mc', 'f32'), sload(ps, add(pRow, v('jj', 'i32')), 'f32'), true))),
    );
    kb.emit(for_('jj', i32(0), i32(Bc), mx));
    const mNew = v('mc', 'f32');
    const alpha = kb.let('alpha', select(eq(m, NEG_INF), f(0), un('exp', sub(m, mNew))));
    kb.emit(assign('lsum', mul(v('lsum', 'f32'), alpha)));
    for (let a = 0; a < nAcc; a++) kb.emit(assign(`acc${a}`, mul(v(`acc${a}`, 'f32'), alpha)));
    const [pv] = kb.collect(() => {
      const jj = v('jj', 'i32');
      const s = kb.let('s', sload(ps, add(pRow, jj), 'f32'));
      const pj = kb.let('pj', select(eq(s, NEG_INF), f(0), un('exp', sub(s, mNew))));
      kb.emit(assign('lsum', add(v('lsum', 'f32'), pj)));
      const vRow = kb.let('vr', mul(jj, i32(Dv)));
      for (let a = 0; a < nAcc; a++) {
        const dim = a * TPR;
        const di = dim + TPR > Dv ? bin('min', add(t, i32(dim)), i32(Dv - 1)) : add(t, i32(dim));
        const vv = sload(vs, add(vRow, di), 'f32');
        // a zero weight adds nothing, even where V holds inf / NaN (the reference skips it)
        kb.emit(assign(`acc${a}`, add(v(`acc${a}`, 'f32'), select(ne(pj, f(0)), mul(pj, vv), f(0)))));
      }
    });
    kb.emit(for_('jj', i32(0), i32(Bc), pv), assign('m', mNew), barrier);
  });
  kb.emit(for_('j0', i32(0), end, tile, i32(Bc)));

  // rows whose keys are all masked give zeros: the row's threads agree through workgroup memory
  kb.emit(sstore(fs, l, select(v('anyk', 'bool'), f(1), f(0))), barrier, var_('rany', 'bool', c.bool(false)));
  const [orBody] = kb.collect(() =>
    kb.emit(assign('rany', or(v('rany', 'bool'), gt(sload(fs, add(mul(r, i32(TPR)), v('tt', 'i32')), 'f32'), f(0))))),
  );
  kb.emit(for_('tt', i32(0), i32(TPR), orBody));
  const st = storageOf(ctx.outputs[0]!.dtype, ctx.caps) === 'f16' ? 'f16' : 'f32';
  for (let a = 0; a < nAcc; a++) {
    const dim = kb.let('dim', add(t, i32(a * TPR)));
    const val = select(v('rany', 'bool'), div(v(`acc${a}`, 'f32'), v('lsum', 'f32')), f(0));
    const ok = a * TPR + TPR > Dv ? and(rowOk, lt(dim, i32(Dv))) : rowOk;
    kb.emit(if_(ok, [{ k: 'store', buf: yB, index: add(yBase, dim), value: fromCompute(val, st) }]));
  }
  const step = kb.build([TILE_THREADS, 1, 1], grid1d(B * Hq * nQT, ctx.caps));
  const uniq = [...new Set(physicalInputs)];
  return [uniq.length ? { ...step, physicalInputs: uniq } : step];
}

/**
 * Where `auto` tries the tiled kernel before the decomposed schedule: CUDA-class devices (32-lane warps, not a CPU
 * adapter) with more than 4 queries — measured on cuda-emu 2.6–5.8× faster than decomposed at S = T = 128…2048
 * (header). On lavapipe decomposed stays first: the tiled kernel measured up to 3× slower there, on par only with
 * causal masking at D = 64, S = T = 512 (78 vs 86 ms, within the noise of runs).
 */
function tiledFirst(g: Geometry, ctx: LowerCtx): boolean {
  return g.S > ONE_KERNEL_MAX_QUERIES && ctx.caps.subgroups && ctx.caps.subgroupSize === 32 && ctx.caps.cpu !== true;
}

/** Where `auto` takes the tiled kernel (see the measurements in the header). */
function preferTiled(g: Geometry, ctx: LowerCtx): boolean {
  if (g.S <= ONE_KERNEL_MAX_QUERIES || ctx.caps.slowBarriers) return false;
  // past the decomposed schedule's scores limit always; below it only where the tiled kernel adds no present copies
  // (the per-row kernel writes present itself; decomposed, where it applies, is tried first and faster on lavapipe)
  return g.B * g.Hq * g.S * g.T > SCORES_LIMIT || ctx.outputs.length < 3;
}

registerLowering('attention', (ctx) => {
  const loc = { node: ctx.node, op: ctx.op };
  const g = geometry(ctx);
  const { B, Hq, Hkv, S, P, T, D, Dv } = g;
  for (let i = 0; i < ctx.inputs.length; i++) {
    if (ctx.inputs[i]) checkIndexRange(ctx, numel(ctx.inputs[i]!.shape), `input ${i}`);
  }
  ctx.outputs.forEach((o, i) => checkIndexRange(ctx, numel(o.shape), `output ${i}`));
  const steps: LoweredStep[] = [];
  const copies = () => {
    if (ctx.outputs.length > 1) steps.push(presentStep(ctx, g, 1));
    if (ctx.outputs.length > 2) steps.push(presentStep(ctx, g, 2));
  };

  const hasPast = ctx.inputs[4] !== undefined;
  const mask = ctx.inputs[3];
  const nonpad = ctx.inputs[6];
  const causal = ctx.attrs['is_causal'] as boolean;
  const softcap = ctx.attrs['softcap'] as number;
  const mode = ctx.attrs['qk_matmul_output_mode'] as number;
  const fill = ctx.attrs['mask_fill'] as number | undefined;
  const scale = (ctx.attrs['scale'] as number | undefined) ?? (D > 0 ? 1 / Math.sqrt(D) : 1);
  const writeQk = ctx.outputs.length > 3;
  const sched = ctx.caps.attentionSchedule ?? 'auto';
  const decomposed =
    sched === 'tiled' || (sched === 'auto' && tiledFirst(g, ctx)) ? undefined : decomposedAttention(ctx, g, scale);
  if (decomposed) {
    copies();
    return [...steps, ...decomposed];
  }
  if (sched === 'tiled' || (sched === 'auto' && (tiledFirst(g, ctx) || preferTiled(g, ctx)))) {
    const tiled = tiledAttention(ctx, g, scale);
    if (tiled) {
      copies();
      return [...steps, ...tiled];
    }
  }
  // Both present outputs: the main kernel writes them itself (one workgroup per (batch, kv head) copies past ++ new)
  // where the device binds that many buffers; else copy kernels write them and the main kernel reads the copies.
  const buffersNeeded =
    4 + (hasPast ? 2 : 0) + (mask ? 1 : 0) + (nonpad ? 1 : 0) + (writeQk ? 1 : 0) + (ctx.outputs.length > 2 ? 2 : 0);
  // (no query rows: no workgroup runs, so the copies write present)
  const writePresent = ctx.outputs.length > 2 && buffersNeeded <= ctx.caps.maxBuffersPerKernel && B * Hq * S > 0;
  if (!writePresent) copies();
  const usePresent = hasPast && ctx.outputs.length > 2 && !writePresent;

  const kb = new KernelBuilder('attention', ctx.caps);
  const u = (hint: string, x: number) => (x === 0 || x === 1 ? i32(x) : kb.uniform(hint, x));
  const qB = kb.input(ctx, 0);
  let kB: string, vB: string;
  let kDt: number, vDt: number, kvOut: boolean;
  if (usePresent) {
    kB = kb.buffer({ kind: 'out', index: 1 }, storageOf(ctx.outputs[1]!.dtype, ctx.caps), 'read');
    vB = kb.buffer({ kind: 'out', index: 2 }, storageOf(ctx.outputs[2]!.dtype, ctx.caps), 'read');
    [kDt, vDt, kvOut] = [1, 2, true];
  } else {
    kB = kb.input(ctx, 1);
    vB = kb.input(ctx, 2);
    [kDt, vDt, kvOut] = [1, 2, false];
  }
  const pkB = hasPast && !usePresent ? kb.input(ctx, 4) : undefined;
  const pvB = hasPast && !usePresent ? kb.input(ctx, 5) : undefined;
  const maskB = mask ? kb.input(ctx, 3) : undefined;
  const npB = nonpad ? kb.input(ctx, 6) : undefined;
  const yB = kb.output(ctx, 0);
  const qkB = writeQk ? kb.output(ctx, 3) : undefined;
  const presentB = writePresent ? [kb.output(ctx, 1), kb.output(ctx, 2)] : undefined;
  if (kb.buffers.length > ctx.caps.maxBuffersPerKernel) {
    throw new KilnError('limit', `attention needs ${kb.buffers.length} storage buffers in one kernel`, {
      ...loc,
      limit: `maxBuffersPerKernel ${ctx.caps.maxBuffersPerKernel}`,
    });
  }

  const nAcc = Math.min(MAX_ACC, Math.max(1, Math.ceil(Dv / CHUNK)));
  const perGroup = CHUNK * nAcc;
  const nDv = Math.max(1, Math.ceil(Dv / perGroup));
  const rows = B * Hq * S;

  const sc = kb.sharedArray('sc', 'f32', CHUNK);
  const fl = kb.sharedArray('fl', 'f32', CHUNK);
  const pw = kb.sharedArray('pw', 'f32', CHUNK);
  const gi = kb.groupIndex();
  const l = kb.localIndex();
  const nDvU = u('ndv', nDv);
  const SU = u('S', S);
  const HqU = u('hq', Hq);
  const TU = u('T', T);
  const PU = u('P', P);
  const DU = u('D', D);
  const DvU = u('dv', Dv);
  const dvc = kb.let('dvc', mod(gi, nDvU));
  const r1 = kb.let('r', div(gi, nDvU));
  const qi = kb.let('qi', mod(r1, SU));
  const r2 = kb.let('r', div(r1, SU));
  const h = kb.let('h', mod(r2, HqU));
  const b = kb.let('bi', div(r2, HqU));
  const kvh = kb.let('kvh', div(h, u('grp', Hq / Hkv)));
  const qv = headView(ctx, 0, g.rank, Hq, S, D);
  const qs = qv.st;
  const physicalInputs: number[] = qv.native ? [0] : [];
  const qBase = kb.let(
    'qb',
    add(add(add(u('oq', qv.offset), mul(b, u('sq', qs[0]))), mul(h, u('sq', qs[1]))), mul(qi, u('sq', qs[2]))),
  );
  const ys = headStrides(g.rank, Hq, S, Dv);
  const yBase = kb.let('yb', add(add(mul(b, u('sy', ys[0])), mul(h, u('sy', ys[1]))), mul(qi, u('sy', ys[2]))));
  const qkBase = kb.let('ob', mul(add(mul(add(mul(b, HqU), h), SU), qi), TU));

  // Where key j (and value j) of this (b, kv head) lives: rows of `size` elements, `rowStride` apart.
  interface Source {
    buf: string;
    dt: number;
    out: boolean;
    base: Expr;
    rowStride: Expr;
  }
  const sources = (isK: boolean): { past?: Source; cur: Source } => {
    const size = isK ? D : Dv;
    const sizeU = isK ? DU : DvU;
    const bh = add(mul(b, u('hkv', Hkv)), kvh);
    if (usePresent) {
      return {
        cur: {
          buf: isK ? kB : vB,
          dt: isK ? kDt : vDt,
          out: kvOut,
          base: kb.let('kvb', mul(mul(bh, TU), sizeU)),
          rowStride: sizeU,
        },
      };
    }
    const hv = headView(ctx, isK ? 1 : 2, g.rank, Hkv, g.Tk, size);
    if (hv.native) physicalInputs.push(isK ? 1 : 2);
    const cs = hv.st;
    const curBase = add(add(u('ok', hv.offset), mul(b, u('sk', cs[0]))), mul(kvh, u('sk', cs[1])));
    const cur: Source = {
      buf: isK ? kB : vB,
      dt: isK ? 1 : 2,
      out: false,
      // rows j >= P of the new keys start at j - P
      base: kb.let('kvb', sub(curBase, mul(PU, u('sk', cs[2])))),
      rowStride: u('sk', cs[2]),
    };
    if (!hasPast) return { cur };
    return {
      cur,
      past: {
        buf: isK ? pkB! : pvB!,
        dt: isK ? 4 : 5,
        out: false,
        base: kb.let('kvp', mul(mul(bh, PU), sizeU)),
        rowStride: sizeU,
      },
    };
  };
  const kSrc = sources(true);
  const vSrc = sources(false);
  /** Statements for key/value row j from whichever source holds it. */
  const bySource = (src: { past?: Source; cur: Source }, j: Expr, body: (s: Source, row: Expr) => void): void => {
    const emitFor = (s: Source) => kb.collect(() => body(s, kb.let('row', add(s.base, mul(j, s.rowStride)))))[0];
    if (!src.past) kb.emit(...emitFor(src.cur));
    else kb.emit(if_(lt(j, PU), emitFor(src.past), emitFor(src.cur)));
  };

  if (presentB) {
    // present = past ++ new, written by the first workgroup of each (batch, kv head): its threads stride over the
    // T × size elements of the keys, then of the values (nothing in this kernel reads them back)
    const first = and(
      and(lt(b, u('nb', B)), eq(dvc, i32(0))),
      and(eq(qi, i32(0)), eq(mod(h, u('grp', Hq / Hkv)), i32(0))),
    );
    const [copy] = kb.collect(() => {
      ([1, 2] as const).forEach((out) => {
        const [src, size, sizeU] = out === 1 ? [kSrc, D, DU] : [vSrc, Dv, DvU];
        const st = storageOf(ctx.outputs[out]!.dtype, ctx.caps);
        const name = `pe${out}`;
        const [body] = kb.collect(() => {
          const e = v(name, 'i32');
          const t = kb.let('pt', div(e, sizeU));
          const d = kb.let('pd', mod(e, sizeU));
          const at = kb.let('pi', add(mul(add(mul(add(mul(b, u('hkv', Hkv)), kvh), TU), t), sizeU), d));
          bySource(src, t, (sr, row) => {
            const val = loadAs(kb, ctx, sr.buf, sr.dt, add(row, d), sr.out);
            kb.emit({
              k: 'store',
              buf: presentB[out - 1]!,
              index: at,
              value: fromCompute(val, st === 'f16' ? 'f16' : 'f32'),
            });
          });
        });
        kb.emit(for_(name, l, u('pn', g.B === 0 ? 0 : T * size), body, i32(CHUNK)));
      });
    });
    kb.emit(if_(first, copy));
  }

  const validLen = npB ? kb.let('valid', cast('i32', loadAs(kb, ctx, npB, 6, b))) : TU;
  const offset = hasPast ? PU : npB ? kb.let('off', sub(validLen, SU)) : i32(0);
  let maskBase: Expr = i32(0);
  let maskLen: Expr = i32(0);
  if (mask) {
    const ms = [...new Array<number>(4 - mask.shape.length).fill(1), ...mask.shape];
    const st: number[] = [0, 0, 0, 0];
    let acc = 1;
    for (let d = 3; d >= 0; d--) {
      st[d] = ms[d] === 1 && d < 3 ? 0 : acc;
      acc *= ms[d]!;
    }
    maskBase = kb.let('mb', add(add(mul(b, u('sm', st[0]!)), mul(h, u('sm', st[1]!))), mul(qi, u('sm', st[2]!))));
    maskLen = u('ml', ms[3]!);
  }
  const scaleU = kb.uniform('scale', scale, 'f32');

  /** Scores of key j (j < T): the raw scaled dot product, after softcap, the bias and the logit. */
  const score = (j: Expr) => {
    const dot = kb.fresh('dot');
    kb.emit(var_(dot, 'f32', f(0)));
    bySource(kSrc, j, (s, row) => {
      const d = kb.fresh('d');
      const dv = v(d, 'i32');
      const qv = loadAs(kb, ctx, qB, 0, add(qBase, dv));
      const kv = loadAs(kb, ctx, s.buf, s.dt, add(row, dv), s.out);
      kb.emit(for_(d, i32(0), DU, [assign(dot, add(v(dot, 'f32'), mul(qv, kv)))]));
    });
    const raw = kb.let('raw', mul(scaleU, v(dot, 'f32')));
    const capped = softcap > 0 ? kb.let('cap', mul(f(softcap), un('tanh', div(raw, f(softcap))))) : raw;
    let bias: Expr = f(0);
    let base = capped;
    if (mask) {
      const mi = kb.let('mi', add(maskBase, bin('max', bin('min', j, sub(maskLen, i32(1))), i32(0))));
      const m = loadAs(kb, ctx, maskB!, 3, mi);
      if (fill !== undefined) {
        // mask_fill: a masked key's logit is the fill (still attendable), not -inf
        const keep = kb.let('keep', and(lt(j, maskLen), ne(m, c.of(m.type, 0))));
        base = kb.let('base', select(keep, capped, kb.uniform('fill', fill, 'f32')));
      } else {
        const mv = mask.dtype === 'bool' ? select(ne(m, c.of(m.type, 0)), f(0), NEG_INF) : m;
        bias = kb.let('bias', select(lt(j, maskLen), mv, NEG_INF));
      }
    }
    if (causal) bias = kb.let('bias', select(gt(j, add(qi, offset)), add(bias, NEG_INF), bias));
    if (npB) bias = kb.let('bias', select(ge(j, validLen), add(bias, NEG_INF), bias));
    const logit = kb.let('logit', add(base, bias));
    return { raw, capped, bias, logit };
  };

  const outSt = (i: number): KType => {
    const st = storageOf(ctx.outputs[i]!.dtype, ctx.caps);
    return st === 'f16' ? 'f16' : 'f32';
  };

  // ---- pass 1: online softmax over key chunks ----
  // Every thread reads the whole chunk of logits back from workgroup memory, so the running max, the sum and the
  // "some key attendable" flag are the same in all threads without reductions; each key's weight is computed once,
  // by its thread, and read back: three barriers per chunk.
  kb.emit(
    var_('m', 'f32', NEG_INF),
    var_('lsum', 'f32', f(0)),
    var_('anyk', 'bool', c.bool(false)),
    ...Array.from({ length: nAcc }, (_, a) => var_(`acc${a}`, 'f32', f(0))),
  );
  const m = v('m', 'f32');
  const dims = Array.from({ length: nAcc }, (_, a) =>
    kb.let('dim', add(mul(dvc, i32(perGroup)), add(l, i32(a * CHUNK)))),
  );
  const j0 = v('j0', 'i32');
  const jj = v('jj', 'i32');
  const [chunk] = kb.collect(() => {
    const j = kb.let('j', add(j0, l));
    kb.emit(var_('s', 'f32', NEG_INF), var_('att', 'f32', f(0)));
    const [lane] = kb.collect(() => {
      const sco = score(j);
      kb.emit(assign('att', select(ne(sco.bias, NEG_INF), f(1), f(0))));
      if (qkB && mode < 3) {
        const val = mode === 0 ? sco.raw : mode === 1 ? sco.capped : sco.logit;
        kb.emit(
          if_(eq(dvc, i32(0)), [{ k: 'store', buf: qkB, index: add(qkBase, j), value: fromCompute(val, outSt(3)) }]),
        );
      }
      kb.emit(assign('s', sco.logit));
    });
    kb.emit(if_(lt(j, TU), lane));
    kb.emit(sstore(sc, l, v('s', 'f32')), sstore(fl, l, v('att', 'f32')), barrier);
    const cnt = kb.let('cnt', bin('min', i32(CHUNK), sub(TU, j0)));
    kb.emit(var_('mc', 'f32', m));
    const [maxBody] = kb.collect(() => {
      kb.emit(
        assign('mc', nanMax(v('mc', 'f32'), sload(sc, jj, 'f32'), true)),
        assign('anyk', or(v('anyk', 'bool'), gt(sload(fl, jj, 'f32'), f(0)))),
      );
    });
    kb.emit(for_('jj', i32(0), cnt, maxBody));
    const mNew = v('mc', 'f32');
    const alpha = kb.let('alpha', select(eq(m, NEG_INF), f(0), un('exp', sub(m, mNew))));
    kb.emit(assign('lsum', mul(v('lsum', 'f32'), alpha)));
    for (let a = 0; a < nAcc; a++) kb.emit(assign(`acc${a}`, mul(v(`acc${a}`, 'f32'), alpha)));
    // each thread exponentiates its own key once (not every thread every key): the weights go through memory
    const own = kb.let('own', v('s', 'f32'));
    kb.emit(sstore(pw, l, select(eq(own, NEG_INF), f(0), un('exp', sub(own, mNew)))), barrier);
    const [accum] = kb.collect(() => {
      const pj = kb.let('pj', sload(pw, jj, 'f32'));
      kb.emit(assign('lsum', add(v('lsum', 'f32'), pj)));
      const [skipZero] = kb.collect(() =>
        bySource(vSrc, add(j0, jj), (src, row) => {
          for (let a = 0; a < nAcc; a++) {
            const [upd] = kb.collect(() => {
              const vv = loadAs(kb, ctx, src.buf, src.dt, add(row, dims[a]!), src.out);
              kb.emit(assign(`acc${a}`, add(v(`acc${a}`, 'f32'), mul(pj, vv))));
            });
            kb.emit(if_(lt(dims[a]!, DvU), upd));
          }
        }),
      );
      // a zero weight adds nothing, even where V holds inf / NaN (the reference skips it)
      kb.emit(if_(ne(pj, f(0)), skipZero));
    });
    kb.emit(for_('jj', i32(0), cnt, accum), assign('m', mNew), barrier);
  });
  kb.emit(for_('j0', i32(0), TU, chunk, i32(CHUNK)));

  const total = v('lsum', 'f32');
  const attend = v('anyk', 'bool');
  for (let a = 0; a < nAcc; a++) {
    const val = select(attend, div(v(`acc${a}`, 'f32'), total), f(0));
    kb.emit(
      if_(lt(dims[a]!, DvU), [{ k: 'store', buf: yB, index: add(yBase, dims[a]!), value: fromCompute(val, outSt(0)) }]),
    );
  }

  // ---- pass 2 (qk_matmul_output_mode 3): the softmax weights themselves ----
  if (qkB && mode === 3) {
    const [chunk2] = kb.collect(() => {
      const j = kb.let('j', add(v('j1', 'i32'), l));
      const [lane] = kb.collect(() => {
        const sco = score(j);
        const e = select(eq(sco.logit, NEG_INF), f(0), un('exp', sub(sco.logit, m)));
        const pr = select(attend, div(e, total), f(0));
        kb.emit({ k: 'store', buf: qkB, index: add(qkBase, j), value: fromCompute(pr, outSt(3)) });
      });
      kb.emit(if_(and(lt(j, TU), eq(dvc, i32(0))), lane));
    });
    kb.emit(for_('j1', i32(0), TU, chunk2, i32(CHUNK)));
  }

  const main = kb.build([CHUNK, 1, 1], grid1d(rows * nDv, ctx.caps));
  steps.push(physicalInputs.length ? { ...main, physicalInputs } : main);
  if (rows === 0) steps[steps.length - 1]!.grid = [0, 1, 1];
  return steps;
});

// ---- rotary embedding ----

registerLowering('rotary_embedding', (ctx) => {
  const x = ctx.inputs[0]!.shape;
  const cosShape = ctx.inputs[1]!.shape;
  const pos = ctx.inputs[3];
  const rank = x.length;
  const numHeads = ctx.attrs['num_heads'] as number;
  const interleaved = ctx.attrs['interleaved'] as boolean;
  const headSize = rank === 4 ? x[3]! : x[2]! / numHeads;
  const rotDim = ctx.attrs['rotary_embedding_dim'] as number;
  const R = rotDim === 0 ? headSize : rotDim;
  const half = R / 2;
  const maxPos = cosShape[0]!;
  if (pos?.data) {
    for (const p of pos.data.data) {
      if (!(p >= 0 && p < maxPos)) {
        throw new KilnError('runtime', `position id ${p} outside the cache of ${maxPos}`, {
          node: ctx.node,
          op: ctx.op,
        });
      }
    }
  }
  return [
    pointwise(ctx, {
      label: 'rotary_embedding',
      reads: pos ? [0, 1, 2, 3] : [0, 1, 2],
      value: (p) => {
        const kb = p.kb;
        const u = (hint: string, val: number) => (val === 0 || val === 1 ? i32(val) : kb.uniform(hint, val));
        const bIdx = p.coords[0]!;
        const sIdx = rank === 4 ? p.coords[2]! : p.coords[1]!;
        const d = rank === 4 ? p.coords[3]! : kb.let('dh', mod(p.coords[2]!, u('hs', headSize)));
        const halfU = u('half', half);
        const inRot = kb.let('inrot', lt(d, u('rot', R)));
        const base = kb.let('base', sub(p.flat, d));
        let i: Expr, i1: Expr, first: Expr;
        if (interleaved) {
          const odd = kb.let('odd', mod(d, i32(2)));
          i = kb.let('ci', div(d, i32(2)));
          i1 = kb.let('i1', sub(p.flat, odd));
          first = eq(odd, i32(0));
        } else {
          first = kb.let('first', lt(d, halfU));
          i = kb.let('ci', select(first, d, sub(d, halfU)));
          i1 = kb.let('i1', add(base, i));
        }
        const i2 = interleaved ? add(i1, i32(1)) : add(i1, halfU);
        // outside the rotated part both indices point at the element itself (in range for any head size)
        const x1 = p.loadAt(0, kb.let('x1i', select(inRot, i1, p.flat)));
        const x2 = p.loadAt(0, kb.let('x2i', select(inRot, i2, p.flat)));
        let row: Expr;
        let ok: Expr = c.bool(true);
        if (pos) {
          const ps = pos.shape;
          const pi = add(mul(ps[0] === 1 ? i32(0) : bIdx, u('ps', ps[1]!)), ps[1] === 1 ? i32(0) : sIdx);
          const pv = kb.let('pos', cast('i32', p.loadAt(3, kb.let('pi', pi))));
          ok = kb.let('ok', and(ge(pv, i32(0)), lt(pv, u('mp', maxPos))));
          kb.raiseIf(not(ok), 2); // a device-computed position past the cache: a typed error, as on the reference
          row = kb.let('row', mul(select(ok, pv, i32(0)), halfU));
        } else {
          const cb = cosShape[0] === 1 ? i32(0) : bIdx;
          const cs = cosShape[1] === 1 ? i32(0) : sIdx;
          row = kb.let('row', mul(add(mul(cb, u('cs', cosShape[1]!)), cs), halfU));
        }
        const ci = kb.let('cidx', add(row, select(inRot, i, i32(0))));
        const cosv = p.loadAt(1, ci);
        const sinv = p.loadAt(2, ci);
        const rotated = select(first, sub(mul(cosv, x1), mul(sinv, x2)), add(mul(sinv, x1), mul(cosv, x2)));
        const y = select(inRot, rotated, p.loadAt(0, p.flat));
        return pos ? select(ok, y, f(NaN)) : y;
      },
    }),
  ];
});
