/**
 * Lowerings of the GGUF (ggml) block-quantized ops (ir/ops/ggml.ts).
 *
 * matmul_ggml is a contraction (contraction/) whose b operand is read through the dequantizing load hook
 * (`Contraction.bLoad`), as matmul_nbits: b is viewed as W [N, K] (n stride K, k stride 1), so its element
 * e = n · K + k sits in block e / QK (rows are whole blocks, stored back to back) at position e mod QK. The hook reads
 * the block's bytes from the raw u8 data (bound as packed u8x4 words: legalize turns each byte load into a word load,
 * a shift and a mask), decodes the f16 scales from their bits (sign / exponent / mantissa → an f32 bitcast,
 * subnormals and inf included) and returns ggml's value of the element. The schedules are the templates': skinny
 * GEMV for decode-sized outputs, tiled 8×8 register blocks for prefill. f32 weights never exist in device memory.
 *
 * get_rows_ggml is a pointwise kernel: each output element dequantizes its own element of the gathered row.
 */
import { numel, stridesOf } from '../../ir/shape.js';
import { ggmlGeometry, type GgmlGeometry } from '../../ir/ops/ggml.js';
import { KilnError } from '../../ir/errors.js';
import {
  add,
  and,
  assign,
  barrier,
  bin,
  bitcast,
  c,
  cast,
  div,
  eq,
  for_,
  ge,
  if_,
  load,
  lt,
  mod,
  mul,
  or,
  select,
  sload,
  sstore,
  sub,
  v,
  var_,
  type Expr,
  type KType,
} from '../kir.js';
import { contiguousOn, outputReads, total, zeros, type Contraction, type View } from './contraction/contraction.js';
import { Gen } from './contraction/gen.js';
import { lowerContraction } from './contraction/lower.js';
import { grid1d, KernelBuilder, type LowerCtx, type LoweredStep } from './kernel-builder.js';
import { checkIndexRange, fromCompute, pointwise } from './pointwise.js';
import { registerLowering } from './registry.js';

const fail =
  (ctx: LowerCtx) =>
  (message: string): never => {
    throw new KilnError('verify', message, { node: ctx.node, op: ctx.op });
  };

/** Byte `i` of the packed data, as an i32 in [0, 255]. */
type ByteAt = (i: Expr) => Expr;

const i = (x: number) => c.i32(x);
const shr = (a: Expr, n: number | Expr) => bin('shr', a, typeof n === 'number' ? c.u32(n) : cast('u32', n));
const shl = (a: Expr, n: number) => bin('shl', a, c.u32(n));
const band = (a: Expr, m: number) => bin('bitand', a, i(m));
const bor = (a: Expr, b: Expr) => bin('bitor', a, b);

/** The f16 stored little-endian at byte `o`, decoded from its bits to f32 (normal, subnormal, inf / NaN). */
function f16At(kb: KernelBuilder, byte: ByteAt, o: Expr): Expr {
  const h = kb.let('h', bor(byte(o), shl(byte(add(o, i(1))), 8)));
  const sign = kb.let('hs', shl(cast('u32', band(h, 0x8000)), 16));
  const em = cast('u32', band(h, 0x7fff));
  const exp = kb.let('he', shr(h, 10));
  const e = band(exp, 31);
  const normal = bitcast('f32', bor(sign, add(bin('shl', em, c.u32(13)), c.u32(0x38000000))));
  const special = bitcast('f32', bor(sign, bor(c.u32(0x7f800000), bin('shl', cast('u32', band(h, 0x3ff)), c.u32(13)))));
  const mag = mul(cast('f32', band(h, 0x3ff)), c.f32(2 ** -24));
  const sub0 = select(eq(band(h, 0x8000), i(0)), mag, sub(c.f32(0), mag));
  return kb.let('hf', select(eq(e, i(0)), sub0, select(eq(e, i(31)), special, normal)));
}

/** A byte read as i8. */
const signed8 = (x: Expr) => select(ge(x, i(128)), sub(x, i(256)), x);

/** ggml's get_scale_min_k4 for sub-block `s` (i32 in 0..7) of the 12 scale bytes at `o`: [scale, min]. */
function scaleMinK4(kb: KernelBuilder, byte: ByteAt, o: Expr, s: Expr): [Expr, Expr] {
  const a = kb.let('ka', byte(add(o, s))); // q[s]
  const b = kb.let('kb', byte(add(o, add(s, i(4))))); // q[s + 4]
  const lo = kb.let('kl', lt(s, i(4)));
  const p = kb.let('kp', byte(add(o, band(s, 3)))); // q[s − 4] when s ≥ 4
  const sc = select(lo, band(a, 63), bor(band(b, 15), shl(shr(p, 6), 4)));
  const mn = select(lo, band(b, 63), bor(shr(b, 4), shl(shr(a, 6), 4)));
  return [kb.let('ks', sc), kb.let('km', mn)];
}

/**
 * Element `e` of rows stored as ggml blocks (rows of whole blocks, back to back), dequantized in f32: block e / QK at
 * byte (e / QK) · block bytes, position e mod QK inside it.
 */
export function ggmlElement(kb: KernelBuilder, g: GgmlGeometry, byte: ByteAt, e: Expr): Expr {
  const lq = Math.log2(g.qk);
  const B = kb.let('gb', mul(shr(e, lq), i(g.blockBytes)));
  const p = kb.let('gp', band(e, g.qk - 1));
  const at = (off: number, idx: Expr) => byte(add(B, add(i(off), idx)));
  switch (g.format) {
    case 'Q8_0':
      return mul(f16At(kb, byte, B), cast('f32', signed8(at(2, p))));
    case 'Q4_0':
    case 'Q4_1':
    case 'Q5_0':
    case 'Q5_1': {
      const affine = g.format === 'Q4_1' || g.format === 'Q5_1';
      const five = g.format === 'Q5_0' || g.format === 'Q5_1';
      const d = f16At(kb, byte, B);
      const qs = (affine ? 4 : 2) + (five ? 4 : 0);
      // elements 0–15 are the low nibbles of qs[0..15], 16–31 the high ones
      let q = kb.let('gq', band(shr(at(qs, band(p, 15)), mul(shr(p, 4), i(4))), 15));
      if (five) {
        const h = affine ? 4 : 2;
        const hb = band(shr(at(h, shr(p, 3)), band(p, 7)), 1);
        q = kb.let('gq', bor(q, shl(hb, 4)));
      }
      if (affine) return add(mul(d, cast('f32', q)), f16At(kb, byte, add(B, i(2))));
      return mul(d, cast('f32', sub(q, i(five ? 16 : 8))));
    }
    case 'Q4_K':
    case 'Q5_K': {
      const five = g.format === 'Q5_K';
      const d = f16At(kb, byte, B);
      const dmin = f16At(kb, byte, add(B, i(2)));
      const s = kb.let('gs', shr(p, 5)); // sub-block of 32
      const [sc, mn] = scaleMinK4(kb, byte, add(B, i(4)), s);
      // 64 elements per 32 bytes of qs: low nibbles first, then high
      const l = band(p, 31);
      const qb = at(five ? 48 : 16, add(mul(shr(p, 6), i(32)), l));
      let q = kb.let('gq', band(shr(qb, mul(band(s, 1), i(4))), 15));
      if (five) q = kb.let('gq', add(q, shl(band(shr(at(16, l), s), 1), 4)));
      return sub(mul(mul(d, cast('f32', sc)), cast('f32', q)), mul(dmin, cast('f32', mn)));
    }
    case 'Q6_K': {
      const d = f16At(kb, byte, add(B, i(208)));
      const n = kb.let('gn', shr(p, 7)); // half of 128
      const r = band(p, 127);
      const t = kb.let('gt', shr(r, 5)); // quarter of 32
      const l = kb.let('gl', band(r, 31));
      const ql = at(0, add(add(mul(n, i(64)), l), mul(band(t, 1), i(32))));
      const lo4 = band(shr(ql, mul(shr(t, 1), i(4))), 15);
      const hi2 = band(shr(at(128, add(mul(n, i(32)), l)), mul(t, i(2))), 3);
      const q = kb.let('gq', sub(bor(lo4, shl(hi2, 4)), i(32)));
      const sc = signed8(at(192, add(add(mul(n, i(8)), shr(l, 4)), mul(t, i(2)))));
      return mul(mul(d, cast('f32', kb.let('gsc', sc))), cast('f32', q));
    }
  }
}

/** matmul_ggml as a contraction: b read through the dequantizing load hook. */
export function ggmlContraction(ctx: LowerCtx, at: (i: number) => number = (x) => x): Contraction {
  const N = ctx.attrs['N'] as number;
  const g = ggmlGeometry(ctx.attrs['format'], ctx.attrs['K'] as number, fail(ctx));
  const a = ctx.inputs[0]!;
  const lead = a.shape.slice(0, -1);
  checkIndexRange(ctx, N * g.K, 'the dequantized weight');
  const aSt = a.layout ? [...a.layout.strides] : stridesOf(a.shape);
  const nb = Math.max(lead.length - 1, 0);
  const aView: View = {
    input: 0,
    st: { batch: aSt.slice(0, nb), m: aSt.slice(nb, -1), n: [0], k: [aSt[aSt.length - 1]!] },
  };
  if (a.layout) aView.offset = a.layout.offset;
  const outSt = stridesOf([...lead, N]);
  return {
    label: `matmul_ggml_${g.format.toLowerCase()}`,
    dims: { batch: lead.slice(0, nb), m: lead.slice(nb), n: [N], k: [g.K] },
    a: aView,
    b: { input: 1, st: { batch: zeros(nb), m: zeros(lead.length - nb), n: [g.K], k: [1] } },
    alpha: 1,
    beta: 1,
    out: { batch: outSt.slice(0, nb), m: outSt.slice(nb, -1), n: [1], k: [0] },
    bLoad: (kb) => {
      const buf = kb.buffer({ kind: 'in', index: at(1) }, 'u8x4', 'read');
      const byte: ByteAt = (x) => cast('i32', load(buf, x, 'u32'));
      return (e) => ggmlElement(kb, g, byte, e);
    },
    schedule: (c2, con, target) => (gemvApplies(c2, con) ? ggmlGemv(c2, con, g, at, target) : undefined),
  };
}

/** Does the block GEMV cover this (simplified) contraction: decode-sized rows of a contiguous f32 a? */
function gemvApplies(ctx: LowerCtx, con: Contraction): boolean {
  const rows = total(con, 'batch') * total(con, 'm');
  return (
    rows >= 1 &&
    rows <= GGML_GEMV_MAX_ROWS &&
    con.b.st.batch.every((x) => x === 0) &&
    con.dims.n.length === 1 &&
    con.dims.k.length === 1 &&
    contiguousOn(con.a.st, 'k') &&
    !con.aZero &&
    !con.bZero &&
    con.rowNorm?.kind !== 'layer' &&
    ctx.inputs[con.a.input]!.dtype === 'f32'
  );
}

registerLowering('matmul_ggml', (ctx) => lowerContraction(ctx, ggmlContraction(ctx)));

/** Rows of a (decode-sized products) up to which matmul_ggml runs the block GEMV. */
export const GGML_GEMV_MAX_ROWS = 4;
/** Lanes that share one output element (each takes every LANES-th block of the row; they meet in workgroup memory). */
const LANES = 16;

/**
 * The block GEMV: each lane walks whole ggml blocks of one W row — the block's scales decoded once, its bytes read
 * once (a byte holds two 4-bit codes), the run of a read beside them — and accumulates Σ code · a per scale group,
 * scaled once per group; the row's lanes meet in workgroup memory, where its first lane adds their sums in order.
 */
function ggmlGemv(
  ctx: LowerCtx,
  con: Contraction,
  g: GgmlGeometry,
  at: (i: number) => number,
  target: KType,
): LoweredStep {
  const N = total(con, 'n');
  const rows = total(con, 'batch') * total(con, 'm');
  checkIndexRange(ctx, N * g.rowBytes, 'the packed weight');
  const T = Math.min(256, 2 ** Math.floor(Math.log2(ctx.caps.maxWorkgroupSize)));
  const nbr = g.K / g.qk; // blocks per row
  const L = Math.min(LANES, T, 2 ** Math.ceil(Math.log2(Math.max(nbr, 1))));
  const R = T / L;
  const kb = new KernelBuilder(`${con.label}_gemv`, ctx.caps);
  // b is read as blocks here: Gen binds every other operand (a, the norm's weight, the epilogue's inputs)
  const gen = new Gen(kb, ctx, {
    ...con,
    bLoad: () => () => {
      throw new Error(`${con.label}: the block GEMV reads b as blocks`);
    },
  });
  // the blocks as u32 words: single bytes (scales) are a word's field, runs of codes are read a word at a time
  const wb = kb.buffer({ kind: 'in', index: at(1) }, 'u32', 'read');
  const ob = kb.output(ctx, 0);
  const lastWord = kb.uniform('lw', Math.ceil((N * g.rowBytes) / 4) - 1);
  const word = (w: Expr) => load(wb, bin('min', w, lastWord), 'u32');
  const field = (wv: Expr, b: number) => cast('i32', bin('bitand', bin('shr', wv, c.u32(8 * b)), c.u32(255)));
  const byte: ByteAt = (x) =>
    cast('i32', bin('bitand', bin('shr', word(shr(x, 2)), cast('u32', mul(band(x, 3), i(8)))), c.u32(255)));
  // every block offset is even; it is a multiple of 4 when the block size is (then runs are word-aligned)
  const aligned4 = g.blockBytes % 4 === 0;
  /** `len` bytes from byte `o` (even): their words loaded once; byte j of the run as an i32. */
  const run = (o: Expr, len: number, staticOff: number): ((j: number) => Expr) => {
    const w0 = kb.let('rw', shr(o, 2));
    const ws = Array.from({ length: Math.ceil((len + 2) / 4) }, (_, t) => kb.let('w', word(add(w0, i(t)))));
    const fieldAt = (j: number) => field(ws[j >> 2]!, j & 3);
    if (aligned4) return staticOff % 4 === 0 ? fieldAt : (j) => fieldAt(j + 2);
    const odd = kb.let('ro', eq(band(o, 2), i(2)));
    return (j) => kb.let('rb', select(odd, fieldAt(j + 2), fieldAt(j)));
  };
  const Nu = gen.total('n');
  const groupsN = Math.ceil(N / R);
  const gn = kb.uniform('gn', groupsN);
  const gi = kb.groupIndex();
  const l = kb.localIndex();
  const row = kb.let('row', div(gi, gn));
  const lane = kb.let('lane', mod(l, i(L)));
  const n = kb.let('n', add(mul(sub(gi, mul(row, gn)), i(R)), div(l, i(L))));
  const valid = kb.let('valid', lt(n, Nu));
  const nc = kb.let('nc', select(valid, n, i(0)));
  const Mu = gen.total('m');
  const mi = con.dims.batch.length ? kb.let('mi', mod(row, Mu)) : row;
  const bc = gen.coords('batch', con.dims.batch.length ? kb.let('bi', div(row, Mu)) : i(0));
  const mc = gen.coords('m', mi);
  /** A view's offset of this row's batch and m coordinates. */
  const rowOff = (st: Contraction['a']['st'], name: string) =>
    add(gen.offset(st, name, 'batch', bc), gen.offset(st, name, 'm', mc));
  const ra = kb.let('ra', rowOff(con.a.st, 'a'));
  const rowB = kb.let('rb', mul(nc, kb.uniform('rbytes', g.rowBytes)));
  const rms = con.rowNorm?.kind === 'rms';
  kb.emit(var_('acc', 'f32', c.f32(0)));
  if (rms) kb.emit(var_('ss', 'f32', c.f32(0)));
  const f = (x: Expr) => cast('f32', x);
  /** a at k of this row (with a fused RMS norm: Σa² grows, and a is scaled by the norm's weight at k). */
  const x = (k: Expr) => {
    const xv = kb.let('x', gen.ld(con.a, add(ra, k)));
    if (!rms) return xv;
    kb.emit(assign('ss', add(v('ss', 'f32'), mul(xv, xv))));
    return kb.let('xw', mul(xv, gen.normWeight([k])));
  };
  const sumVar = (name: string) => kb.emit(var_(name, 'f32', c.f32(0)));
  const addTo = (name: string, e: Expr) => kb.emit(assign(name, add(v(name, 'f32'), e)));
  const [body] = kb.collect(() => {
    const blk = v('blk', 'i32');
    const B = kb.let('B', add(rowB, mul(blk, i(g.blockBytes))));
    const k0 = kb.let('k0', mul(blk, i(g.qk)));
    const at = (off: number | Expr) => byte(add(B, typeof off === 'number' ? i(off) : off));
    const fmt = g.format;
    if (fmt === 'Q8_0') {
      const d = f16At(kb, byte, B);
      sumVar('p');
      const qs = run(add(B, i(2)), 32, 2);
      for (let j = 0; j < 32; j++) addTo('p', mul(f(signed8(qs(j))), x(add(k0, i(j)))));
      addTo('acc', mul(d, v('p', 'f32')));
    } else if (fmt === 'Q4_0' || fmt === 'Q4_1' || fmt === 'Q5_0' || fmt === 'Q5_1') {
      const affine = fmt === 'Q4_1' || fmt === 'Q5_1';
      const five = fmt === 'Q5_0' || fmt === 'Q5_1';
      const d = f16At(kb, byte, B);
      const m = affine ? f16At(kb, byte, add(B, i(2))) : undefined;
      const h = affine ? 4 : 2;
      const qhr = five ? run(add(B, i(h)), 4, h) : undefined;
      const qh = qhr ? [0, 1, 2, 3].map((t) => kb.let('qh', qhr(t))) : [];
      const qsOff = h + (five ? 4 : 0);
      const qs = run(add(B, i(qsOff)), 16, qsOff);
      const zero = affine ? 0 : five ? 16 : 8;
      sumVar('p');
      if (affine) sumVar('sx');
      for (let j = 0; j < 16; j++) {
        const q = kb.let('q', qs(j));
        const pairs: [number, Expr][] = [
          [j, band(q, 15)],
          [j + 16, shr(q, 4)],
        ];
        for (const [e, code] of pairs) {
          const cv = five ? bor(code, shl(band(shr(qh[e >> 3]!, e & 7), 1), 4)) : code;
          const xe = x(add(k0, i(e)));
          addTo('p', mul(f(zero ? sub(cv, i(zero)) : cv), xe));
          if (affine) addTo('sx', xe);
        }
      }
      addTo('acc', affine ? add(mul(d, v('p', 'f32')), mul(m!, v('sx', 'f32'))) : mul(d, v('p', 'f32')));
    } else if (fmt === 'Q4_K' || fmt === 'Q5_K') {
      const five = fmt === 'Q5_K';
      const d = f16At(kb, byte, B);
      const dmin = f16At(kb, byte, add(B, i(2)));
      const qs = five ? 48 : 16;
      // 64 elements per step: sub-blocks 2c (low nibbles) and 2c + 1 (high nibbles) of qs[32c .. 32c + 31]
      const [chunk] = kb.collect(() => {
        const cc = v('cc', 'i32');
        const s1 = kb.let('s1', mul(cc, i(2)));
        const s2 = kb.let('s2', add(s1, i(1)));
        const [sc1, m1] = scaleMinK4(kb, byte, add(B, i(4)), s1);
        const [sc2, m2] = scaleMinK4(kb, byte, add(B, i(4)), s2);
        for (const nm of ['p1', 'p2', 'x1', 'x2']) sumVar(nm);
        const kc = kb.let('kc', add(k0, mul(cc, i(64))));
        const qr = run(add(B, add(i(qs), mul(cc, i(32)))), 32, qs);
        const hr = five ? run(add(B, i(16)), 32, 16) : undefined;
        for (let j = 0; j < 32; j++) {
          const q = kb.let('q', qr(j));
          let lo = band(q, 15);
          let hi = shr(q, 4);
          if (five) {
            const hb = kb.let('hb', hr!(j));
            lo = add(lo, shl(band(shr(hb, s1), 1), 4));
            hi = add(hi, shl(band(shr(hb, s2), 1), 4));
          }
          const xl = x(add(kc, i(j)));
          const xh = x(add(kc, i(j + 32)));
          addTo('p1', mul(f(lo), xl));
          addTo('p2', mul(f(hi), xh));
          addTo('x1', xl);
          addTo('x2', xh);
        }
        const dsum = add(mul(f(sc1), v('p1', 'f32')), mul(f(sc2), v('p2', 'f32')));
        const msum = add(mul(f(m1), v('x1', 'f32')), mul(f(m2), v('x2', 'f32')));
        addTo('acc', sub(mul(d, dsum), mul(dmin, msum)));
      });
      kb.emit(for_('cc', i(0), i(4), chunk));
    } else {
      // Q6_K: 128 elements per half; 8 scale groups of 16 per half
      const d = f16At(kb, byte, add(B, i(208)));
      const [half] = kb.collect(() => {
        const hh = v('hh', 'i32');
        const kh = kb.let('kh', add(k0, mul(hh, i(128))));
        const qlB = kb.let('qlb', mul(hh, i(64)));
        const qhB = kb.let('qhb', add(i(128), mul(hh, i(32))));
        const scB = kb.let('scb', add(i(192), mul(hh, i(8))));
        for (let gq = 0; gq < 8; gq++) sumVar(`p${gq}`);
        const qlr = run(add(B, qlB), 64, 0);
        const qhr = run(add(B, qhB), 32, 0);
        for (let j = 0; j < 32; j++) {
          const q0 = kb.let('ql', qlr(j));
          const q1 = kb.let('ql', qlr(j + 32));
          const qh = kb.let('qh', qhr(j));
          const codes = [band(q0, 15), band(q1, 15), shr(q0, 4), shr(q1, 4)];
          codes.forEach((lo4, t) => {
            const q = sub(bor(lo4, shl(band(shr(qh, 2 * t), 3), 4)), i(32));
            addTo(`p${(j >> 4) + 2 * t}`, mul(f(q), x(add(kh, i(32 * t + j)))));
          });
        }
        let sum: Expr = c.f32(0);
        for (let gq = 0; gq < 8; gq++) sum = add(sum, mul(f(signed8(at(add(scB, i(gq))))), v(`p${gq}`, 'f32')));
        addTo('acc', mul(d, sum));
      });
      kb.emit(for_('hh', i(0), i(2), half));
    }
  });
  kb.emit(for_('blk', lane, kb.uniform('nbr', nbr), body, i(L)));
  // partial sums meet in workgroup memory; the row's first lane adds them in order and stores the epilogue's value
  const tail = (rms ? ['acc', 'ss'] : ['acc']).map((name) => {
    const red = kb.sharedArray(`red_${name}`, 'f32', T);
    kb.emit(sstore(red, l, v(name, 'f32')));
    return for_('j', i(1), i(L), [assign(name, add(v(name, 'f32'), sload(red, add(l, v('j', 'i32')), 'f32')))]);
  });
  kb.emit(barrier);
  const [store] = kb.collect(() => {
    const result = rms ? mul(v('acc', 'f32'), gen.normScale(v('ss', 'f32'))) : v('acc', 'f32');
    const ncs = [nc];
    const idx = outputReads(con).map(({ w, name }) => add(rowOff(w.st, name), gen.offset(w.st, name, 'n', ncs)));
    const value = fromCompute(gen.epilogue(result, idx, { m: mi, n: nc }), target);
    const oi = kb.let('oi', add(rowOff(con.out, 'o'), gen.offset(con.out, 'o', 'n', ncs)));
    kb.emit({ k: 'store', buf: ob, index: oi, value });
  });
  kb.emit(if_(and(valid, eq(lane, i(0))), [...tail, ...store]));
  return kb.build([T, 1, 1], grid1d(groupsN * rows, ctx.caps));
}

registerLowering('get_rows_ggml', (ctx) => {
  const g = ggmlGeometry(ctx.attrs['format'], ctx.attrs['K'] as number, fail(ctx));
  const [data, indices] = ctx.inputs;
  const V = data!.shape[0]!;
  const nIdx = numel(indices!.shape);
  checkIndexRange(ctx, V * g.K, 'the dequantized table');
  const step = pointwise(ctx, {
    label: `get_rows_ggml_${g.format.toLowerCase()}`,
    reads: [0, 1],
    value: (p) => {
      const kb = p.kb;
      const Ku = kb.uniform('gk', g.K, 'i32', 'ggml.K');
      const Vu = kb.uniform('gv', V, 'i32', 'ggml.V');
      const k = kb.let('rk', mod(p.flat, Ku));
      const j = kb.let('rj', div(p.flat, Ku));
      // a negative index wraps; out of range is the run's typed error naming the node (clamped meanwhile)
      const raw = kb.let('ri', cast('i32', p.loadAt(1, j)));
      const w = kb.let('rw', select(lt(raw, i(0)), add(raw, Vu), raw));
      kb.raiseIf(or(lt(w, i(0)), ge(w, Vu)), 1);
      const row = kb.let('rr', select(lt(w, i(0)), i(0), select(ge(w, Vu), sub(Vu, i(1)), w)));
      const byte: ByteAt = (x) => cast('i32', p.loadAt(0, x));
      return ggmlElement(kb, g, byte, kb.let('re', add(mul(row, Ku), k)));
    },
  });
  return [nIdx === 0 ? { ...step, grid: [0, 1, 1] } : step];
});
