/**
 * Convolution lowering (ir/ops/conv.ts), a first schedule: direct, through the pointwise template — one thread per
 * output element y[n, m, oh, ow] (1-D runs as 2-D with a height of 1), looping over the C/group input channels of its
 * group and the kernel window, accumulating in f32; window positions in the padding are skipped (zeros). Every
 * size, stride, pad and dilation is a uniform, so one kernel serves every shape of a rank. Cost: C/group · KH · KW
 * multiply-adds per thread, each reading x and w from memory (no shared-memory tiling, no im2col); fine for a
 * Whisper / ViT front end that runs once per input, the place to add a tiled or im2col + contraction schedule if
 * convolutions become hot.
 */
import { numel } from '../../ir/shape.js';
import { convGeometry } from '../../ir/ops/conv.js';
import { KilnError } from '../../ir/errors.js';
import { add, and, assign, c, div, for_, ge, if_, lt, mul, sub, v, var_, type Expr } from '../kir.js';
import type { LowerCtx, TensorInfo } from './kernel-builder.js';
import { pointwise } from './pointwise.js';
import { registerLowering } from './registry.js';

/** The ctx with x / w / y seen as 4-D (a 1-D conv gets a height of 1); row-major order is unchanged. */
function as2d(ctx: LowerCtx): LowerCtx {
  const lift = (t: TensorInfo): TensorInfo =>
    t.shape.length === 3 ? { dtype: t.dtype, shape: [t.shape[0]!, t.shape[1]!, 1, t.shape[2]!] } : t;
  return {
    ...ctx,
    inputs: ctx.inputs.map((t, i) => (t && i < 2 ? lift(t) : t)),
    outputs: ctx.outputs.map(lift),
  };
}

registerLowering('conv', (ctx) => {
  const x0 = ctx.inputs[0]!.shape;
  const w0 = ctx.inputs[1]!.shape;
  const fail = (message: string): never => {
    throw new KilnError('shape', message, { node: ctx.node, op: ctx.op });
  };
  const geo = convGeometry(x0.slice(2), w0.slice(2), ctx.attrs, fail);
  const unit = { padBegin: 0, padEnd: 0, stride: 1, dilation: 1, kernel: 1, out: 1 };
  const [gh, gw] = geo.length === 1 ? [unit, geo[0]!] : [geo[0]!, geo[1]!];
  const vctx = as2d(ctx);
  const [, C, H, W] = vctx.inputs[0]!.shape as [number, number, number, number];
  const [M, Cg, KH, KW] = vctx.inputs[1]!.shape as [number, number, number, number];
  const group = ctx.attrs['group'] as number;
  const hasBias = ctx.inputs[2] !== undefined && ctx.inputs[2] !== null;
  const step = pointwise(vctx, {
    label: 'conv',
    reads: hasBias ? [0, 1, 2] : [0, 1],
    value: (p) => {
      const kb = p.kb;
      const u = (hint: string, value: number, key: string): Expr =>
        value === 0 || value === 1 ? c.i32(value) : kb.uniform(hint, value, 'i32', key);
      const [n, m, oh, ow] = p.coords as [Expr, Expr, Expr, Expr];
      const CgU = u('cg', Cg, 'cg');
      const g = kb.let('grp', div(m, u('mg', M / group, 'mg')));
      const HU = u('h', H, 'h');
      const WU = u('w', W, 'w');
      const KHU = u('kh', KH, 'kh');
      const KWU = u('kw', KW, 'kw');
      const ih0 = kb.let('ih0', sub(mul(oh, u('sh', gh.stride, 'sh')), u('ph', gh.padBegin, 'ph')));
      const iw0 = kb.let('iw0', sub(mul(ow, u('sw', gw.stride, 'sw')), u('pw', gw.padBegin, 'pw')));
      const dh = u('dh', gh.dilation, 'dh');
      const dw = u('dw', gw.dilation, 'dw');
      const acc = kb.fresh('acc');
      const [ci, kh, kw] = [kb.fresh('ci'), kb.fresh('kh'), kb.fresh('kw')];
      const [civ, khv, kwv] = [v(ci, 'i32'), v(kh, 'i32'), v(kw, 'i32')];
      const [chanBody] = kb.collect(() => {
        const xc = kb.let('xc', mul(add(mul(n, u('c', C, 'c')), add(mul(g, CgU), civ)), HU));
        const wc = kb.let('wc', mul(add(mul(m, CgU), civ), KHU));
        const [rowBody] = kb.collect(() => {
          const ih = kb.let('ih', add(ih0, mul(khv, dh)));
          const [cols] = kb.collect(() => {
            const iw = kb.let('iw', add(iw0, mul(kwv, dw)));
            const [mac] = kb.collect(() => {
              const xv = p.loadAt(0, add(mul(add(xc, ih), WU), iw));
              const wv = p.loadAt(1, add(mul(add(wc, khv), KWU), kwv));
              kb.emit(assign(acc, add(v(acc, 'f32'), mul(xv, wv))));
            });
            kb.emit(if_(and(ge(iw, c.i32(0)), lt(iw, WU)), mac));
          });
          kb.emit(if_(and(ge(ih, c.i32(0)), lt(ih, HU)), [for_(kw, c.i32(0), KWU, cols)]));
        });
        kb.emit(for_(kh, c.i32(0), KHU, rowBody));
      });
      const init = hasBias ? p.loadAt(2, m) : c.f32(0);
      kb.emit(var_(acc, 'f32', init), for_(ci, c.i32(0), CgU, chanBody));
      return v(acc, 'f32');
    },
  });
  return [numel(ctx.outputs[0]!.shape) === 0 ? { ...step, grid: [0, 1, 1] } : step];
});
