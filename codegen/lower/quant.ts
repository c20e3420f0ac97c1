/**
 * Lowering of linear (de)quantization: quantize_linear and dequantize_linear are pointwise kernels (scale and zero
 * point read at the element's per-tensor / per-axis / blocked position; packed outputs through the pointwise
 * template); dynamic_quantize_linear is a one-workgroup min/max reduction that writes y_scale and y_zero_point,
 * then a pointwise quantize (one thread per packed output word) that reads them back.
 */
import type { DType } from '../../ir/dtype.js';
import { UnsupportedError } from '../../ir/errors.js';
import { normAxis } from '../../ir/shape.js';
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
  gt,
  if_,
  isinf,
  isnan,
  load,
  lt,
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
} from '../kir.js';
import { grid1d, KernelBuilder, type LowerCtx, type LoweredStep } from './kernel-builder.js';
import { checkIndexRange, pointwise } from './pointwise.js';
import { roundBf16 } from './elementwise.js';
import { registerLowering } from './registry.js';
import { storageOf } from './storage.js';

const f = c.f32;

/** Integer range of each quantized dtype (outputs saturate to it). */
const RANGE: Partial<Record<DType, [number, number]>> = {
  u8: [0, 255],
  i8: [-128, 127],
  u16: [0, 65535],
  i16: [-32768, 32767],
  u4: [0, 15],
  i4: [-8, 7],
};

/**
 * Round an f32 value to the nearest f16 value (ties to even, subnormals, overflow to ±inf, NaN kept), staying in
 * f32: scale by a power of two so the f16 ulp at x's exponent becomes 1, round, scale back (all exact).
 */
export function roundF16(x: Expr): Expr {
  const bits = bitcast('u32', x);
  const e = sub(cast('i32', bin('bitand', bin('shr', bits, c.u32(23)), c.u32(0xff))), c.i32(127));
  const e2 = bin('max', e, c.i32(-14));
  const pow2 = (k: Expr) => bitcast('f32', bin('shl', cast('u32', add(k, c.i32(127))), c.u32(23)));
  const r = mul(un('round_even', mul(x, pow2(sub(c.i32(10), e2)))), pow2(sub(e2, c.i32(10))));
  return select(gt(un('abs', r), f(65504)), mul(r, f(Infinity)), r);
}

/** Round a computed f32 to what a float dtype holds (f32 / f64 stay as they are on the device). */
function roundTo(dt: DType, x: Expr): Expr {
  if (dt === 'f16') return roundF16(x);
  if (dt === 'bf16') return roundBf16(x);
  return x;
}

/** Saturating float → quantized integer (NaN → 0, as the reference's integer rounding makes it); result i32. */
function saturate(x: Expr, dt: DType): Expr {
  const [lo, hi] = RANGE[dt]!;
  const clamped = select(lt(x, f(lo)), f(lo), select(gt(x, f(hi)), f(hi), x));
  return select(isnan(x), c.i32(0), cast('i32', clamped));
}

/** Index of the scale / zero point of the element at `coords` (the reference's scaleIndex). */
function scaleOffset(ctx: LowerCtx, coords: readonly Expr[], uniform: KernelBuilder['uniform']): Expr {
  const x = ctx.inputs[0]!.shape;
  const scale = ctx.inputs[1]!.shape;
  const block = ctx.attrs['block_size'] as number;
  const axisAttr = ctx.attrs['axis'] as number;
  const nScale = scale.reduce((a, b) => a * b, 1);
  if (block === 0 && (scale.length === 0 || (scale.length === 1 && scale[0] === 1))) return c.i32(0);
  const ax = normAxis(axisAttr, x.length);
  if (block === 0) return nScale === 1 ? c.i32(0) : coords[ax]!;
  // blocked: scale has x's rank, ceil(x[ax] / block) along the axis
  let off: Expr = c.i32(0);
  let stride = 1;
  for (let d = x.length - 1; d >= 0; d--) {
    const cd = d === ax ? div(coords[d]!, block === 1 ? c.i32(1) : uniform('blk', block)) : coords[d]!;
    if (scale[d] !== 1) off = add(mul(cd, stride === 1 ? c.i32(1) : uniform('ss', stride)), off);
    stride *= scale[d]!;
  }
  return off;
}

registerLowering('quantize_linear', (ctx) => {
  const out = ctx.outputs[0]!.dtype;
  if (!RANGE[out]) throw new UnsupportedError(`quantize_linear to ${out}`, { node: ctx.node, op: ctx.op });
  const scaleDt = ctx.inputs[1]!.dtype;
  const prec = (ctx.attrs['precision'] as DType | undefined) ?? scaleDt;
  const zp = ctx.inputs[2];
  const zpScalar = zp !== undefined && zp.shape.reduce((a, b) => a * b, 1) === 1;
  return [
    pointwise(ctx, {
      label: 'quantize_linear',
      reads: zp ? [0, 1, 2] : [0, 1],
      value: (p) => {
        const k = p.kb.let(
          'k',
          scaleOffset(ctx, p.coords, (h, val) => p.kb.uniform(h, val)),
        );
        const x = cast('f32', p.loadAt(0, p.flat));
        const s = p.loadAt(1, k);
        const r = un('round_even', roundTo(prec, div(x, s)));
        const withZp = zp ? add(r, cast('f32', p.loadAt(2, zpScalar ? c.i32(0) : k))) : r;
        return saturate(p.kb.let('qv', withZp), out);
      },
    }),
  ];
});

registerLowering('dequantize_linear', (ctx) => {
  const out = ctx.outputs[0]!.dtype;
  const zp = ctx.inputs[2];
  const zpScalar = zp !== undefined && zp.shape.reduce((a, b) => a * b, 1) === 1;
  return [
    pointwise(ctx, {
      label: 'dequantize_linear',
      reads: zp ? [0, 1, 2] : [0, 1],
      value: (p) => {
        const k = p.kb.let(
          'k',
          scaleOffset(ctx, p.coords, (h, val) => p.kb.uniform(h, val)),
        );
        const x = cast('i32', p.loadAt(0, p.flat));
        const centered = zp ? sub(x, cast('i32', p.loadAt(2, zpScalar ? c.i32(0) : k))) : x;
        return roundTo(out, mul(cast('f32', centered), p.loadAt(1, k)));
      },
    }),
  ];
});

const DQ_WG = 256;

/**
 * y_scale = fround((hi - lo) / 255) with hi - lo taken exactly, as the float64 reference does: s + e = hi - lo by
 * Fast2Sum, q = s / 255, then one correction step from the exact residual s - 255 q = (s - 256 q) + q (both
 * subtractions exact by Sterbenz) so q is the f32 nearest to (s + e) / 255. Shader compilers may rewrite
 * (a + b) - a as b, so every intermediate goes through `opaque`: an xor with a uniform zero they cannot see through.
 */
function dynamicScale(kb: KernelBuilder, hi: Expr, lo: Expr): Expr {
  const zero = kb.uniform('zero', 0, 'u32');
  const opaque = (hint: string, x: Expr) => kb.let(hint, bitcast('f32', bin('bitxor', bitcast('u32', x), zero)));
  const negLo = un('neg', lo);
  const a = kb.let('av', select(lt(hi, negLo), negLo, hi)); // a >= b >= 0
  const b = kb.let('bv', select(lt(hi, negLo), hi, negLo));
  const s = opaque('s', add(a, b));
  const e = kb.let('e', sub(b, opaque('z', sub(s, a))));
  const q = opaque('q', div(s, f(255)));
  const t = opaque('t', sub(s, mul(q, f(256))));
  const r = opaque('r', add(t, q));
  const r2 = kb.let('r2', mul(add(r, e), f(2)));
  const qb = kb.let('qb', bitcast('u32', q));
  const up = kb.let('up', bitcast('f32', add(qb, c.u32(1))));
  const dn = kb.let('dn', bitcast('f32', sub(qb, c.u32(1))));
  const thrUp = kb.let('tu', mul(sub(up, q), f(255)));
  const thrDn = kb.let('td', mul(sub(q, dn), f(255)));
  const odd = ne(bin('bitand', qb, c.u32(1)), c.u32(0));
  const goUp = or(gt(r2, thrUp), and(eq(r2, thrUp), odd));
  const goDn = or(lt(r2, un('neg', thrDn)), and(eq(r2, un('neg', thrDn)), odd));
  const fix = and(and(ne(e, f(0)), not(isnan(e))), and(gt(q, f(0)), not(or(isinf(s), isnan(s)))));
  return kb.let('scale', select(fix, select(goUp, up, select(goDn, dn, q)), q));
}

registerLowering('dynamic_quantize_linear', (ctx) => {
  const x = ctx.inputs[0]!;
  const n = x.shape.reduce((a, b) => a * b, 1);
  checkIndexRange(ctx, n, 'input 0');
  const xload = (kb: KernelBuilder, buf: string, i: Expr) => {
    const st = storageOf(x.dtype, ctx.caps);
    return cast('f32', load(buf, i, st === 'f16' ? 'f16' : 'f32'));
  };

  // 1) one workgroup: strided min/max (NaN ignored, like the reference's comparisons), tree reduction, then
  //    thread 0 derives the scale and zero point.
  const k1 = new KernelBuilder('dynamic_quantize_linear_range', ctx.caps);
  const xb = k1.input(ctx, 0);
  const sb = k1.output(ctx, 1);
  const zb = k1.output(ctx, 2);
  const nU = k1.uniform('n', n);
  const sLo = k1.sharedArray('lo', 'f32', DQ_WG);
  const sHi = k1.sharedArray('hi', 'f32', DQ_WG);
  const l = k1.localIndex();
  k1.emit(var_('mn', 'f32', f(0)), var_('mx', 'f32', f(0)));
  const mn = v('mn', 'f32');
  const mx = v('mx', 'f32');
  const [loop] = k1.collect(() => {
    const xv = k1.let('xv', xload(k1, xb, v('i', 'i32')));
    k1.emit(assign('mn', select(lt(xv, mn), xv, mn)), assign('mx', select(gt(xv, mx), xv, mx)));
  });
  k1.emit(for_('i', l, nU, loop, c.i32(DQ_WG)));
  k1.emit(sstore(sLo, l, mn), sstore(sHi, l, mx), barrier);
  for (let stride = DQ_WG / 2; stride >= 1; stride /= 2) {
    const o = add(l, c.i32(stride));
    const [body] = k1.collect(() => {
      const a = k1.let('ra', sload(sLo, o, 'f32'));
      const b = k1.let('rb', sload(sHi, o, 'f32'));
      k1.emit(
        sstore(sLo, l, select(lt(a, sload(sLo, l, 'f32')), a, sload(sLo, l, 'f32'))),
        sstore(sHi, l, select(gt(b, sload(sHi, l, 'f32')), b, sload(sHi, l, 'f32'))),
      );
    });
    k1.emit(if_(lt(l, c.i32(stride)), body), barrier);
  }
  const [fin] = k1.collect(() => {
    const lo = k1.let('glo', sload(sLo, c.i32(0), 'f32'));
    const hi = k1.let('ghi', sload(sHi, c.i32(0), 'f32'));
    const scale = dynamicScale(k1, hi, lo);
    const zf = k1.let('zf', un('round_even', un('neg', div(lo, scale))));
    const zp = k1.let('zp', select(eq(scale, f(0)), c.i32(0), saturate(zf, 'u8')));
    k1.emit(
      { k: 'store', buf: sb, index: c.i32(0), value: scale },
      { k: 'store_packed', buf: zb, word: c.i32(0), values: [zp, c.i32(0), c.i32(0), c.i32(0)] },
    );
  });
  k1.emit(if_(eq(l, c.i32(0)), fin));
  const steps: LoweredStep[] = [k1.build([DQ_WG, 1, 1], [1, 1, 1])];

  // 2) y: one thread per packed word of four u8 values
  const k2 = new KernelBuilder('dynamic_quantize_linear_apply', ctx.caps);
  const xb2 = k2.input(ctx, 0);
  const yb = k2.output(ctx, 0);
  const sb2 = k2.buffer({ kind: 'out', index: 1 }, 'f32', 'read');
  const zb2 = k2.buffer({ kind: 'out', index: 2 }, 'u8x4', 'read');
  const n2 = k2.uniform('n', n);
  const words = Math.ceil(n / 4);
  const wU = k2.uniform('w', words);
  const t = k2.let('t', add(mul(k2.groupIndex(), c.i32(DQ_WG)), k2.localIndex()));
  const [body] = k2.collect(() => {
    const scale = k2.let('sc', load(sb2, c.i32(0), 'f32'));
    const zp = k2.let('zp', cast('f32', load(zb2, c.i32(0), 'u32')));
    const vals: Expr[] = [];
    for (let j = 0; j < 4; j++) {
      const e = k2.let('e', add(mul(t, c.i32(4)), c.i32(j)));
      const xv = k2.let('xv', xload(k2, xb2, select(lt(e, n2), e, c.i32(0))));
      const qv = k2.let('qv', add(un('round_even', div(xv, scale)), zp));
      vals.push(k2.let('y', select(eq(scale, f(0)), c.i32(0), saturate(qv, 'u8'))));
    }
    k2.emit({ k: 'store_packed', buf: yb, word: t, values: vals });
  });
  k2.emit(if_(lt(t, wU), body));
  steps.push(k2.build([DQ_WG, 1, 1], n === 0 ? [0, 1, 1] : grid1d(Math.ceil(words / DQ_WG), ctx.caps)));
  return steps;
});
