/**
 * Lowerings of the block-quantized ops (ir/ops/blockq.ts).
 *
 * matmul_nbits is a contraction (contraction/) whose b operand is read through a dequantizing load hook
 * (`Contraction.bLoad`): b is viewed as the padded weight W [N, n_blocks · block] (n stride n_blocks · block, k stride
 * 1), and its element e = n · n_blocks · block + k is fetched packed — the u8 data bound as u32 words of 4-bit or
 * 8-bit fields (legalize turns the field load into a word load, a shift and a mask) — and dequantized on the spot:
 * (q − zp) · scale, with scale / zero point at e / block (or n · n_blocks + g_idx[k]). The schedules are the
 * templates': skinny GEMV for decode-sized outputs (M = 1), tiled 8×8 register blocks for prefill; the bias is an
 * epilogue read. f32 weights never exist in device memory.
 *
 * gather_block_quantized is a pointwise kernel: each output element gathers its packed value, scale and zero point.
 */
import type { DType } from '../../ir/dtype.js';
import { numel, stridesOf } from '../../ir/shape.js';
import { nbitsGeometry, gatherBQGeometry } from '../../ir/ops/blockq.js';
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
  if_,
  load,
  loadType,
  lt,
  mod,
  mul,
  or,
  select,
  sload,
  sstore,
  store,
  sub,
  v,
  var_,
  type Expr,
} from '../kir.js';
import { zeros, type Contraction, type View } from './contraction/contraction.js';
import { lowerContraction } from './contraction/lower.js';
import { grid1d, KernelBuilder, type LowerCtx, type LoweredStep } from './kernel-builder.js';
import { checkIndexRange, fromCompute, pointwise, toCompute } from './pointwise.js';
import { registerLowering } from './registry.js';
import { storageOf } from './storage.js';
import { KilnError } from '../../ir/errors.js';

const fail =
  (ctx: LowerCtx) =>
  (message: string): never => {
    throw new KilnError('verify', message, { node: ctx.node, op: ctx.op });
  };

/** Field `index` of a u8 buffer bound as packed words of 4- or 8-bit fields (legalize extracts it): an i32. */
function field(buf: string, index: Expr): Expr {
  return cast('i32', load(buf, index, 'u32'));
}

/** Element `i` of input buffer `buf` (dtype `dt`) in its compute type. */
function ld(kb: KernelBuilder, buf: string, dt: DType, i: Expr): Expr {
  return toCompute(load(buf, i, loadType(storageOf(dt, kb.caps))), dt);
}

registerLowering('matmul_nbits', (ctx) => {
  const g = nbitsGeometry(ctx.attrs, fail(ctx));
  const [a, , , , gIdx, bias] = ctx.inputs;
  const lead = a!.shape.slice(0, -1);
  const Kp = g.nBlocks * g.block;
  checkIndexRange(ctx, g.N * Kp, 'the padded weight');
  // a: its own strides (a view's layout, indexed by the schedule itself) over the leading dims (m) and k
  const aSt = a!.layout ? [...a!.layout.strides] : stridesOf(a!.shape);
  const aView: View = { input: 0, st: { batch: [], m: aSt.slice(0, -1), n: [0], k: [aSt[aSt.length - 1]!] } };
  if (a!.layout) aView.offset = a!.layout.offset;
  const outSt = stridesOf([...lead, g.N]);
  const con: Contraction = {
    label: 'matmul_nbits',
    dims: { batch: [], m: [...lead], n: [g.N], k: [g.K] },
    a: aView,
    b: { input: 1, st: { batch: [], m: zeros(lead.length), n: [Kp], k: [1] } },
    alpha: 1,
    beta: 0,
    out: { batch: [], m: outSt.slice(0, -1), n: [1], k: [0] },
    bLoad: (kb) => dequantLoad(kb, ctx, g),
  };
  if (bias) {
    con.extras = [{ input: 5, st: { batch: [], m: zeros(lead.length), n: [1], k: [0] } }];
    con.post = (_kb, acc, [b]) => add(acc, b!);
  }
  // decode-shaped (few rows of a, contiguous, natural k order): the word-per-lane GEMV below
  if (!a!.layout && !gIdx && numel(lead) <= GEMV_MAX_M && Number.isInteger(numel(lead))) return [gemvNbits(ctx, g)];
  return lowerContraction(ctx, con);
});

/** Rows of a up to which matmul_nbits uses the packed-word GEMV (decode, small batches); above: the templates. */
const GEMV_MAX_M = 4;
/**
 * Lanes that share one output row of the GEMV (each reads every LANES-th word of the row: 64 consecutive bytes per
 * row per step, whole memory sectors). On lavapipe 8–16 lanes measured 10–20% faster than 32 (fewer partial sums).
 */
const LANES = 16;

/**
 * The packed-word GEMV of matmul_nbits: each lane reads whole u32 words of W's row (8 int4 / 4 int8 values), the
 * block's scale (and zero point) once per word, the matching run of a, and accumulates Σ (q − zp) · a in f32, scaled
 * once per word; LANES lanes per output row read consecutive words (coalesced), meet in workgroup memory and the
 * row's first lane adds their sums in order (plus the bias). The weight is read once, packed: bytes ≈ the packed
 * size — the point of int4 for bandwidth-bound decode. Each a row (m) is a separate run of workgroups.
 */
function gemvNbits(ctx: LowerCtx, g: ReturnType<typeof nbitsGeometry>): LoweredStep {
  const [a, , scales, zp, , bias] = ctx.inputs;
  const M = numel(a!.shape.slice(0, -1));
  const T = Math.min(256, 2 ** Math.floor(Math.log2(ctx.caps.maxWorkgroupSize)));
  const L = Math.min(LANES, T);
  const R = T / L; // output rows per workgroup
  const vpw = 32 / g.bits; // values per word
  const rowWords = (g.nBlocks * g.block) / vpw;
  const wordsPerBlock = g.block / vpw;
  const kb = new KernelBuilder('matmul_nbits_gemv', ctx.caps);
  const ba = kb.input(ctx, 0);
  const bq = kb.buffer({ kind: 'in', index: 1 }, 'u32', 'read');
  const bs = kb.input(ctx, 2);
  const words = g.bits === 4 ? 'u4x8' : 'u8x4';
  const bz = zp ? (zp.dtype === 'u8' ? kb.buffer({ kind: 'in', index: 3 }, words, 'read') : kb.input(ctx, 3)) : '';
  const bb = bias ? kb.input(ctx, 5) : '';
  const out = kb.output(ctx, 0);
  const u = (hint: string, value: number) => kb.uniform(hint, value);
  const Nu = u('n', g.N);
  const Ku = u('k', g.K);
  const groupsN = Math.ceil(g.N / R);
  const gi = kb.groupIndex();
  const l = kb.localIndex();
  const m = kb.let('m', div(gi, u('gn', groupsN)));
  const lane = kb.let('lane', mod(l, c.i32(L)));
  const n = kb.let('n', add(mul(sub(gi, mul(m, u('gn', groupsN))), c.i32(R)), div(l, c.i32(L))));
  const valid = kb.let('valid', lt(n, Nu));
  const nc = kb.let('nc', select(valid, n, c.i32(0)));
  const rowW = kb.let('roww', mul(nc, u('rw', rowWords)));
  const rowA = kb.let('rowa', mul(m, Ku));
  const nbU = u('nb', g.nBlocks);
  const KW = Math.ceil(g.K / vpw); // words holding some k < K; the rest (a ragged block's padding) is never read
  const ragged = g.K % vpw !== 0; // the last word runs past K: its a reads are masked
  /** a[m, k0 + i] in f32, 0 past K. */
  const xAt = (wk: Expr, i: number): Expr => {
    const at = add(rowA, add(mul(wk, c.i32(vpw)), c.i32(i)));
    if (!ragged) return cast('f32', ld(kb, ba, a!.dtype, at));
    const inK = lt(add(mul(wk, c.i32(vpw)), c.i32(i)), Ku);
    return select(inK, cast('f32', ld(kb, ba, a!.dtype, select(inK, at, rowA))), c.f32(0));
  };
  kb.emit(var_('acc', 'f32', c.f32(0)));
  const [body] = kb.collect(() => {
    const w = v('w', 'i32');
    const word = kb.let('word', load(bq, add(rowW, w), 'u32'));
    const blk = kb.let('blk', bin('shr', w, c.u32(Math.log2(wordsPerBlock))));
    const si = kb.let('si', add(mul(nc, nbU), blk));
    const scale = kb.let('sc', cast('f32', ld(kb, bs, scales!.dtype, si)));
    let z: Expr = c.f32(2 ** (g.bits - 1));
    if (zp?.dtype === 'u8')
      z = kb.let('zp', cast('f32', field(bz, add(mul(nc, u('zr', g.zpRow * (8 / g.bits))), blk))));
    else if (zp) z = kb.let('zf', cast('f32', ld(kb, bz, zp.dtype, si)));
    kb.emit(var_('part', 'f32', c.f32(0)));
    for (let i = 0; i < vpw; i++) {
      const q = cast('f32', bin('bitand', bin('shr', word, c.u32(i * g.bits)), c.u32(2 ** g.bits - 1)));
      kb.emit(assign('part', add(v('part', 'f32'), mul(sub(q, z), xAt(w, i)))));
    }
    kb.emit(assign('acc', add(v('acc', 'f32'), mul(v('part', 'f32'), scale))));
  });
  kb.emit(for_('w', lane, u('kw', KW), body, c.i32(L)));
  const red = kb.sharedArray('red', 'f32', T);
  kb.emit(sstore(red, l, v('acc', 'f32')), barrier);
  const [tail] = kb.collect(() => {
    kb.emit(
      for_('j', c.i32(1), c.i32(L), [assign('acc', add(v('acc', 'f32'), sload(red, add(l, v('j', 'i32')), 'f32')))]),
    );
    const y = bias ? add(v('acc', 'f32'), cast('f32', ld(kb, bb, bias.dtype, nc))) : v('acc', 'f32');
    kb.emit(store(out, add(mul(m, Nu), nc), fromCompute(y, loadType(storageOf(ctx.outputs[0]!.dtype, kb.caps)))));
  });
  kb.emit(if_(and(valid, eq(lane, c.i32(0))), tail));
  return kb.build([T, 1, 1], M === 0 ? [0, 1, 1] : grid1d(groupsN * M, ctx.caps));
}

/** Bind the weight's buffers in `kb`; return the dequantized element of the padded weight at an index. */
function dequantLoad(kb: KernelBuilder, ctx: LowerCtx, g: ReturnType<typeof nbitsGeometry>): (e: Expr) => Expr {
  const [, , scales, zp, gIdx] = ctx.inputs;
  const words = g.bits === 4 ? 'u4x8' : 'u8x4';
  const bq = kb.buffer({ kind: 'in', index: 1 }, words, 'read');
  const bs = kb.input(ctx, 2);
  const bz = zp ? (zp.dtype === 'u8' ? kb.buffer({ kind: 'in', index: 3 }, words, 'read') : kb.input(ctx, 3)) : '';
  const bg = gIdx ? kb.input(ctx, 4) : '';
  // uniforms declared once per kernel (the hook runs at every load site of a schedule)
  const u = (hint: string, value: number) => kb.uniform(hint, value, 'i32', `blockq.${hint}`);
  return (e: Expr) => {
    const q = kb.let('q', field(bq, e));
    let s: Expr;
    let zi: Expr;
    if (gIdx) {
      const kpU = u('kp', g.nBlocks * g.block);
      const n = kb.let('wn', div(e, kpU));
      const k = kb.let('wk', sub(e, mul(n, kpU)));
      // a block index outside the row is the run's typed error naming the node (clamped meanwhile)
      const j0 = kb.let('gr', ld(kb, bg, gIdx.dtype, k));
      const nbU = u('nbk', g.nBlocks);
      kb.raiseIf(or(lt(j0, c.i32(0)), ge(j0, nbU)), 1);
      const j = kb.let('gj', select(lt(j0, c.i32(0)), c.i32(0), select(ge(j0, nbU), sub(nbU, c.i32(1)), j0)));
      s = kb.let('si', add(mul(n, nbU), j));
      zi = zp?.dtype === 'u8' ? add(mul(n, u('zr', g.zpRow * (8 / g.bits))), j) : s;
    } else {
      s = kb.let('si', bin('shr', e, c.u32(Math.log2(g.block))));
      if (zp?.dtype === 'u8') {
        const n = kb.let('wn', div(s, u('nbk', g.nBlocks)));
        const j = sub(s, mul(n, u('nbk', g.nBlocks)));
        zi = add(mul(n, u('zr', g.zpRow * (8 / g.bits))), j);
      } else zi = s;
    }
    const scale = kb.let('sc', ld(kb, bs, scales!.dtype, s));
    if (!zp) return mul(cast('f32', sub(q, c.i32(2 ** (g.bits - 1)))), scale);
    if (zp.dtype === 'u8') return mul(cast('f32', sub(q, field(bz, kb.let('zi', zi)))), scale);
    return mul(sub(cast('f32', q), ld(kb, bz, zp.dtype, zi)), scale);
  };
}

/** A run-time index into an axis of `len`: negative wraps, out of range is a located error (clamped meanwhile). */
function wrapClamp(kb: KernelBuilder, raw: Expr, len: number): Expr {
  const lenU = kb.uniform('len', len);
  const idx = kb.let('ir', cast('i32', raw));
  const w = kb.let('iw', select(lt(idx, c.i32(0)), add(idx, lenU), idx));
  kb.raiseIf(or(lt(w, c.i32(0)), ge(w, lenU)), 1);
  return select(lt(w, c.i32(0)), c.i32(0), select(ge(w, lenU), sub(lenU, c.i32(1)), w));
}

registerLowering('gather_block_quantized', (ctx) => {
  const [data, indices, , zp] = ctx.inputs;
  const geo = gatherBQGeometry(data!, ctx.attrs, fail(ctx));
  const L = geo.shape as number[];
  const ga = geo.gatherAxis;
  const qa = geo.quantizeAxis;
  const len = L[ga]!;
  const inner = numel(L.slice(ga + 1));
  const nIdx = numel(indices!.shape);
  checkIndexRange(ctx, numel(L), 'the unpacked data');
  const after = numel(L.slice(qa + 1));
  const nb = (geo.scaleShape as number[])[qa]!;
  const ss = geo.scaleShape as number[];
  const ssLast = ss[ss.length - 1]!;
  const step = pointwise(ctx, {
    label: 'gather_block_quantized',
    reads: zp ? [0, 1, 2, 3] : [0, 1, 2],
    value: (p) => {
      const kb = p.kb;
      const u = (h: string, x: number) => (x === 1 ? c.i32(1) : kb.uniform(h, x));
      const i = kb.let('gi', mod(p.flat, u('inner', inner)));
      const r = kb.let('gr', div(p.flat, u('inner', inner)));
      const j = kb.let('gj', mod(r, u('nidx', nIdx)));
      const o = kb.let('go', div(r, u('nidx', nIdx)));
      const ix = kb.let('ix', wrapClamp(kb, p.loadAt(1, j), len));
      const e = kb.let('ge', add(mul(add(mul(o, u('len', len)), ix), u('inner', inner)), i));
      // scale index: the quantized axis' coordinate divided by the block size
      const afterU = u('after', after);
      const cq = kb.let('cq', mod(div(e, afterU), u('lq', L[qa]!)));
      const before = kb.let('cb', div(e, mul(u('lq', L[qa]!), afterU)));
      const s = kb.let(
        'si',
        add(mul(add(mul(before, u('nb', nb)), div(cq, u('blk', geo.block))), afterU), mod(e, afterU)),
      );
      const nib = (x: Expr, idx: Expr) =>
        bin('bitand', bin('shr', x, cast('u32', mul(bin('bitand', idx, c.i32(1)), c.i32(4)))), c.i32(15));
      const q = geo.packed ? nib(p.loadAt(0, bin('shr', e, c.u32(1))), e) : p.loadAt(0, e);
      let z: Expr = c.i32(geo.defaultZp);
      if (zp) {
        if (geo.packed) {
          const row = kb.let('zr', div(s, u('sl', ssLast)));
          const zi = kb.let(
            'zi',
            add(mul(row, u('zrow', Math.ceil(ssLast / 2) * 2)), sub(s, mul(row, u('sl', ssLast)))),
          );
          z = nib(p.loadAt(3, bin('shr', zi, c.u32(1))), zi);
        } else z = p.loadAt(3, s);
      }
      return mul(cast('f32', sub(q, z)), p.loadAt(2, s));
    },
  });
  return [numel(ctx.outputs[0]!.shape) === 0 ? { ...step, grid: [0, 1, 1] } : step];
});
