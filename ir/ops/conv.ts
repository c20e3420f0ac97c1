/**
 * Convolution (ONNX Conv, opsets 1 / 11): x [N, C, *spatial] ⊛ w [M, C / group, *kernel] (+ b [M]) → y [N, M, *out],
 * 1-D and 2-D (Whisper's audio front end, ViT patch embeddings); 3-D and higher is a typed UnsupportedError naming the
 * node. Attributes as ONNX has them: auto_pad (NOTSET uses `pads`; SAME_UPPER / SAME_LOWER pad so out = ceil(in /
 * stride), the odd unit at the end / at the start; VALID pads nothing), pads [begins..., ends...], strides,
 * dilations, group (group = C = M is depthwise), kernel_shape (checked against w). Padding reads zeros.
 */
import { dimAdd } from '../dim-expr.js';
import { isFloat } from '../dtype.js';
import { UnsupportedError } from '../errors.js';
import { registerOp, type Attrs, type InferContext } from '../registry.js';
import type { Dim } from '../shape.js';
import { scratchTensor } from '../tensor.js';
import { tensorType } from '../types.js';
import { req } from './util.js';
import type { Fail } from './shape/common.js';

export const AUTO_PAD = ['NOTSET', 'SAME_UPPER', 'SAME_LOWER', 'VALID'] as const;

/** Per spatial axis: pads at the start / end, stride, dilation, kernel size, output size. */
export interface ConvAxis {
  readonly padBegin: number;
  readonly padEnd: number;
  readonly stride: number;
  readonly dilation: number;
  readonly kernel: number;
  readonly out: number;
}

/** Attribute list of length `s` (or the default), every entry an integer ≥ `min`. */
function perAxis(a: Attrs, key: string, s: number, dflt: number, min: number, fail: Fail): number[] {
  const v = a[key] as readonly number[] | undefined;
  if (v === undefined) return new Array<number>(s).fill(dflt);
  if (v.length !== s) fail(`${key} has ${v.length} entries, expected ${s} (one per spatial axis)`);
  if (v.some((x) => !(x >= min))) fail(`${key} [${v.join(', ')}] must be >= ${min}`);
  return [...v];
}

/**
 * The geometry of a conv over spatial input sizes `input` with kernel sizes `kernel` (static numbers): resolved
 * pads, strides, dilations and output sizes. Shared by inference, the reference and the lowering.
 */
export function convGeometry(input: readonly number[], kernel: readonly number[], a: Attrs, fail: Fail): ConvAxis[] {
  const s = kernel.length;
  const strides = perAxis(a, 'strides', s, 1, 1, fail);
  const dil = perAxis(a, 'dilations', s, 1, 1, fail);
  const auto = a['auto_pad'] as (typeof AUTO_PAD)[number];
  const pads = perAxis(a, 'pads', 2 * s, 0, 0, fail);
  if (auto !== 'NOTSET' && a['pads'] !== undefined && pads.some((p) => p !== 0)) {
    fail(`pads [${pads.join(', ')}] given with auto_pad ${auto}`);
  }
  return kernel.map((k, i) => {
    const inSize = input[i]!;
    const span = dil[i]! * (k - 1) + 1;
    let begin = 0;
    let end = 0;
    let out: number;
    if (auto === 'SAME_UPPER' || auto === 'SAME_LOWER') {
      out = Math.ceil(inSize / strides[i]!);
      const total = Math.max(0, (out - 1) * strides[i]! + span - inSize);
      begin = auto === 'SAME_UPPER' ? Math.floor(total / 2) : Math.ceil(total / 2);
      end = total - begin;
    } else {
      if (auto === 'NOTSET') [begin, end] = [pads[i]!, pads[i + s]!];
      out = Math.floor((inSize + begin + end - span) / strides[i]!) + 1;
    }
    if (out < 1) {
      fail(
        `spatial axis ${i}: input ${inSize} with pads ${begin}+${end} is shorter than the dilated kernel ${span} ` +
          '(no output position)',
      );
    }
    return { padBegin: begin, padEnd: end, stride: strides[i]!, dilation: dil[i]!, kernel: k, out };
  });
}

function checkConv(ctx: InferContext): { k: number[] } {
  const x = req(ctx, 0);
  const w = req(ctx, 1);
  const b = ctx.inputs[2];
  const r = x.shape.length;
  if (r > 4) {
    throw new UnsupportedError(`conv over ${r - 2} spatial axes is not supported (1-D and 2-D are)`, {
      node: ctx.node,
      op: ctx.op,
    });
  }
  if (r < 3) ctx.fail(`x must be [N, C, *spatial] with 1 or 2 spatial axes, got rank ${r}`);
  if (w.shape.length !== r) ctx.fail(`w has rank ${w.shape.length}, x has rank ${r}`);
  if (!isFloat(x.dtype)) ctx.fail(`conv needs float data, got ${x.dtype}`);
  if (w.dtype !== x.dtype) ctx.fail(`w has dtype ${w.dtype}, x has ${x.dtype}`);
  const k = w.shape.slice(2);
  if (!k.every((d): d is number => typeof d === 'number'))
    return ctx.fail('the kernel shape (w dims 2..) must be static');
  if (k.some((d) => d < 1)) ctx.fail(`kernel shape [${k.join(', ')}] has an empty axis`);
  const ks = ctx.attrs['kernel_shape'] as readonly number[] | undefined;
  if (ks && (ks.length !== k.length || ks.some((d, i) => d !== k[i]))) {
    ctx.fail(`kernel_shape [${ks.join(', ')}] differs from w's spatial dims [${k.join(', ')}]`);
  }
  const g = ctx.attrs['group'] as number;
  if (!(g >= 1)) ctx.fail(`group ${g} must be >= 1`);
  const [c, cg, m] = [x.shape[1]!, w.shape[1]!, w.shape[0]!];
  if (typeof c !== 'number') ctx.fail('the channel dim of x must be static');
  if (typeof cg === 'number' && c !== cg * g) {
    ctx.fail(`x has ${c} channels but w expects ${cg} per group × group ${g} = ${cg * g}`);
  }
  if (typeof m === 'number' && m % g !== 0) ctx.fail(`${m} output channels do not split into ${g} groups`);
  if (b) {
    if (b.dtype !== x.dtype) ctx.fail(`b has dtype ${b.dtype}, x has ${x.dtype}`);
    if (b.shape.length !== 1 || (typeof b.shape[0] === 'number' && typeof m === 'number' && b.shape[0] !== m)) {
      ctx.fail(`b must be [${m}], got [${b.shape.join(', ')}]`);
    }
  }
  return { k };
}

registerOp({
  name: 'conv',
  doc:
    'y[n, m, o...] = b[m] + Σ_{c < C/group, k...} x[n, g·C/group + c, o·stride - pad_begin + k·dilation] · ' +
    'w[m, c, k...] with g = m / (M/group), zeros outside x; 1-D or 2-D; auto_pad NOTSET | SAME_UPPER | SAME_LOWER | ' +
    'VALID, pads [begins..., ends...], strides, dilations, group, kernel_shape (checked)',
  inputs: [{ name: 'x' }, { name: 'w' }, { name: 'b', optional: true }],
  outputs: [{ name: 'y' }],
  attrs: {
    auto_pad: { kind: 'string', default: 'NOTSET', oneOf: AUTO_PAD },
    pads: { kind: 'ints', optional: true },
    strides: { kind: 'ints', optional: true },
    dilations: { kind: 'ints', optional: true },
    group: { kind: 'int', default: 1 },
    kernel_shape: { kind: 'ints', optional: true },
  },
  fusion: 'opaque',
  infer(ctx) {
    const { k } = checkConv(ctx);
    const x = req(ctx, 0);
    const spatial = x.shape.slice(2);
    // checks the attributes (lengths, ranges) on stand-in sizes when the input's sizes are symbolic
    const geo = convGeometry(
      spatial.map((d) => (typeof d === 'number' ? d : 1 << 20)),
      k,
      ctx.attrs,
      ctx.fail,
    );
    const out = spatial.map((d, i): Dim => {
      if (typeof d === 'number') return geo[i]!.out;
      const a = geo[i]!;
      const auto = ctx.attrs['auto_pad'];
      if (a.stride === 1 && (auto === 'SAME_UPPER' || auto === 'SAME_LOWER')) return d;
      if (a.stride === 1) {
        return dimAdd(d, a.padBegin + a.padEnd - a.dilation * (a.kernel - 1)) ?? `${ctx.node}_d${i + 2}`;
      }
      return `${ctx.node}_d${i + 2}`;
    });
    return [tensorType(x.dtype, [x.shape[0]!, req(ctx, 1).shape[0]!, ...out])];
  },
  reference([x, w, b], a, ctx) {
    const X = x!;
    const W = w!;
    const s = X.shape.length - 2;
    // 1-D runs as 2-D with a height of 1
    const [H, Wd] = s === 1 ? [1, X.shape[2]!] : [X.shape[2]!, X.shape[3]!];
    const [KH, KW] = s === 1 ? [1, W.shape[2]!] : [W.shape[2]!, W.shape[3]!];
    const N = X.shape[0]!;
    const C = X.shape[1]!;
    const M = W.shape[0]!;
    const G = a['group'] as number;
    const Cg = W.shape[1]!;
    if (C !== Cg * G || M % G !== 0) ctx.fail(`channels ${C} / ${M} do not fit group ${G} with w [${W.shape}]`);
    const geo = convGeometry(X.shape.slice(2), W.shape.slice(2), a, ctx.fail);
    const unit = { padBegin: 0, padEnd: 0, stride: 1, dilation: 1, kernel: 1, out: 1 };
    const [gh, gw] = s === 1 ? [unit, geo[0]!] : [geo[0]!, geo[1]!];
    const OH = gh.out;
    const OW = gw.out;
    const Mg = M / G;
    const y = scratchTensor(X.dtype, [N, M, ...geo.map((g) => g.out)]);
    const xd = X.data;
    const wd = W.data;
    for (let n = 0; n < N; n++) {
      for (let m = 0; m < M; m++) {
        const g = Math.floor(m / Mg);
        for (let oh = 0; oh < OH; oh++) {
          for (let ow = 0; ow < OW; ow++) {
            let acc = b ? b.data[m]! : 0;
            for (let c = 0; c < Cg; c++) {
              const xc = (n * C + g * Cg + c) * H;
              const wc = (m * Cg + c) * KH;
              for (let kh = 0; kh < KH; kh++) {
                const ih = oh * gh.stride - gh.padBegin + kh * gh.dilation;
                if (ih < 0 || ih >= H) continue;
                for (let kw = 0; kw < KW; kw++) {
                  const iw = ow * gw.stride - gw.padBegin + kw * gw.dilation;
                  if (iw < 0 || iw >= Wd) continue;
                  acc += xd[(xc + ih) * Wd + iw]! * wd[(wc + kh) * KW + kw]!;
                }
              }
            }
            y.data[((n * M + m) * OH + oh) * OW + ow] = acc;
          }
        }
      }
    }
    return [y];
  },
});
