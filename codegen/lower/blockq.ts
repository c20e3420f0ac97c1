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
import { nbitsGeometry, gatherBQGeometry, type NBits } from '../../ir/ops/blockq.js';
import { add, bin, c, cast, div, ge, load, loadType, lt, mod, mul, or, select, sub, type Expr } from '../kir.js';
import { zeros, type Contraction, type PackedB, type View } from './contraction/contraction.js';
import { lowerContraction } from './contraction/lower.js';
import type { KernelBuilder, LowerCtx } from './kernel-builder.js';
import { checkIndexRange, pointwise, toCompute } from './pointwise.js';
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

/**
 * matmul_nbits as a contraction: b read through the dequantizing load hook (element schedules) and as packed words
 * (the packed GEMV), the bias as gemm's (alpha = beta = 1: exact). `at` maps the op's input positions to the kernel's
 * input bindings (a fused_contraction whose body starts with the op passes its own).
 */
export function nbitsContraction(ctx: LowerCtx, at: (i: number) => number = (i) => i): Contraction {
  const g = nbitsGeometry(ctx.attrs, fail(ctx));
  const [a, , , , gIdx, bias] = ctx.inputs;
  const lead = a!.shape.slice(0, -1);
  const Kp = g.nBlocks * g.block;
  checkIndexRange(ctx, g.N * Kp, 'the padded weight');
  // a: its own strides (a view's layout, indexed by the schedule itself); as matmul's, the leading dims but the last
  // are batch (b broadcast over them: stride 0), the last is m
  const aSt = a!.layout ? [...a!.layout.strides] : stridesOf(a!.shape);
  const nb = Math.max(lead.length - 1, 0);
  const aView: View = {
    input: 0,
    st: { batch: aSt.slice(0, nb), m: aSt.slice(nb, -1), n: [0], k: [aSt[aSt.length - 1]!] },
  };
  if (a!.layout) aView.offset = a!.layout.offset;
  const outSt = stridesOf([...lead, g.N]);
  const con: Contraction = {
    label: 'matmul_nbits',
    dims: { batch: lead.slice(0, nb), m: lead.slice(nb), n: [g.N], k: [g.K] },
    a: aView,
    b: { input: 1, st: { batch: zeros(nb), m: zeros(lead.length - nb), n: [Kp], k: [1] } },
    alpha: 1,
    beta: 1,
    out: { batch: outSt.slice(0, nb), m: outSt.slice(nb, -1), n: [1], k: [0] },
    bLoad: (kb) => dequantLoad(kb, ctx, g, at),
  };
  if (bias) {
    con.bias = { input: 5, st: { batch: zeros(nb), m: zeros(lead.length - nb), n: [1], k: [0] } };
    con.scaled = true;
  }
  if (!gIdx) con.packedB = packedWords(ctx, g, at);
  return con;
}

registerLowering('matmul_nbits', (ctx) => lowerContraction(ctx, nbitsContraction(ctx)));

/** The weight as packed u32 words per row of W, for the packed GEMV (natural k order: no g_idx). */
function packedWords(ctx: LowerCtx, g: NBits, at: (i: number) => number): PackedB {
  const [, , scales, zp] = ctx.inputs;
  const rowWords = (g.nBlocks * g.block * g.bits) / 32;
  return {
    bits: g.bits,
    block: g.block,
    K: g.K,
    N: g.N,
    rowWords,
    bind(kb) {
      const bq = kb.buffer({ kind: 'in', index: at(1) }, 'u32', 'read');
      const bs = bindIn(kb, ctx, 2, at);
      const words = g.bits === 4 ? 'u4x8' : 'u8x4';
      const bz = zp
        ? zp.dtype === 'u8'
          ? kb.buffer({ kind: 'in', index: at(3) }, words, 'read')
          : bindIn(kb, ctx, 3, at)
        : '';
      const u = (hint: string, value: number) => kb.uniform(hint, value, 'i32', `blockq.${hint}`);
      return {
        word: (n, w) => load(bq, add(mul(n, u('rw', rowWords)), w), 'u32'),
        scale: (n, j) => cast('f32', ld(kb, bs, scales!.dtype, add(mul(n, u('nbk', g.nBlocks)), j))),
        zero: (n, j) => {
          if (!zp) return c.f32(2 ** (g.bits - 1));
          if (zp.dtype === 'u8') return cast('f32', field(bz, add(mul(n, u('zr', g.zpRow * (8 / g.bits))), j)));
          return cast('f32', ld(kb, bz, zp.dtype, add(mul(n, u('nbk', g.nBlocks)), j)));
        },
      };
    },
  };
}

/** Bind the op's input `i` (kernel input `at(i)`) as a plain buffer of its dtype's storage. */
function bindIn(kb: KernelBuilder, ctx: LowerCtx, i: number, at: (i: number) => number): string {
  return kb.buffer({ kind: 'in', index: at(i) }, storageOf(ctx.inputs[i]!.dtype, kb.caps), 'read');
}

/** Bind the weight's buffers in `kb`; return the dequantized element of the padded weight at an index. */
function dequantLoad(kb: KernelBuilder, ctx: LowerCtx, g: NBits, at: (i: number) => number): (e: Expr) => Expr {
  const [, , scales, zp, gIdx] = ctx.inputs;
  const words = g.bits === 4 ? 'u4x8' : 'u8x4';
  const bq = kb.buffer({ kind: 'in', index: at(1) }, words, 'read');
  const bs = bindIn(kb, ctx, 2, at);
  const bz = zp
    ? zp.dtype === 'u8'
      ? kb.buffer({ kind: 'in', index: at(3) }, words, 'read')
      : bindIn(kb, ctx, 3, at)
    : '';
  const bg = gIdx ? bindIn(kb, ctx, 4, at) : '';
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
