/**
 * Linear (de)quantization with ONNX QuantizeLinear / DequantizeLinear / DynamicQuantizeLinear semantics:
 * q = saturate(round_half_even(x / scale) + zero_point), x = (q - zero_point) * scale, with one scale per tensor,
 * per slice along `axis`, or per block of `block_size` elements along `axis`.
 * They are opaque to the fusion pass: per-axis / blocked scales are not numpy broadcasts, and the quant pass (not
 * fusion) turns dequantize → matmul into block-quantized layouts.
 */
import { isDType, isFloat, roundHalfEvenSigned, roundToDtype, saturateToInt, type DType } from '../dtype.js';
import { registerOp, type Attrs, type InferContext } from '../registry.js';
import { normAxis, stridesOf, type Dim, type Shape } from '../shape.js';
import { scratchTensor } from '../tensor.js';
import { tensorType } from '../types.js';
import { req } from './util.js';

type Fail = (message: string) => never;

/** Integer dtypes a quantized tensor may have (FLOAT8 / INT2 / UINT2 have no kiln dtype). */
const QUANT: readonly DType[] = ['u8', 'i8', 'u16', 'i16', 'u4', 'i4'];

const compatible = (a: Dim, b: Dim): boolean => typeof a !== 'number' || typeof b !== 'number' || a === b;

type ScaleLayout = { kind: 'tensor' } | { kind: 'axis'; axis: number } | { kind: 'block'; axis: number; block: number };

/** How `scale` (and the zero point, which must have the scale's shape) map onto `x`. */
function scaleLayout(x: Shape, scale: Shape, zp: Shape | undefined, a: Attrs, fail: Fail): ScaleLayout {
  const block = a['block_size'] as number;
  const axisAttr = a['axis'] as number;
  const axis = (): number => {
    if (!Number.isInteger(axisAttr) || axisAttr < -x.length || axisAttr >= x.length) {
      fail(`axis ${axisAttr} out of range for rank ${x.length}`);
    }
    return normAxis(axisAttr, x.length);
  };
  let layout: ScaleLayout;
  if (block < 0) fail(`block_size must be >= 0, got ${block}`);
  if (block > 0) {
    if (scale.length !== x.length) fail(`blocked scale must have x's rank ${x.length}, got [${scale.join(',')}]`);
    const ax = axis();
    for (let i = 0; i < x.length; i++) {
      const d = x[i]!;
      const want = i !== ax ? d : typeof d === 'number' ? Math.ceil(d / block) : scale[i]!;
      if (!compatible(scale[i]!, want)) {
        fail(`scale [${scale.join(',')}] does not match x [${x.join(',')}] in blocks of ${block} along axis ${ax}`);
      }
    }
    layout = { kind: 'block', axis: ax, block };
  } else if (scale.length === 0 || (scale.length === 1 && scale[0] === 1)) {
    layout = { kind: 'tensor' };
  } else if (scale.length === 1) {
    const ax = axis();
    if (!compatible(scale[0]!, x[ax]!))
      fail(`per-axis scale of length ${scale[0]} does not match x dim ${ax} (${x[ax]})`);
    layout = { kind: 'axis', axis: ax };
  } else {
    return fail(`scale [${scale.join(',')}] must be a scalar, 1-D (per axis), or of x's rank with block_size > 0`);
  }
  if (zp) {
    const sameShape = zp.length === scale.length && zp.every((d, i) => compatible(d, scale[i]!));
    const bothScalar = layout.kind === 'tensor' && zp.length <= 1 && (zp.length === 0 || zp[0] === 1);
    if (!sameShape && !bothScalar)
      fail(`zero point [${zp.join(',')}] must have the scale's shape [${scale.join(',')}]`);
  }
  return layout;
}

/** For every element of x (row-major), the index of its scale / zero point. */
function scaleIndex(layout: ScaleLayout, x: readonly number[], scale: readonly number[]): (i: number) => number {
  if (layout.kind === 'tensor') return () => 0;
  const xs = stridesOf(x);
  const ax = layout.axis;
  if (layout.kind === 'axis') return (i) => Math.floor(i / xs[ax]!) % x[ax]!;
  const ss = stridesOf(scale);
  return (i) => {
    let off = 0;
    for (let d = 0; d < x.length; d++) {
      const c = Math.floor(i / xs[d]!) % x[d]!;
      off += (d === ax ? Math.floor(c / layout.block) : c) * ss[d]!;
    }
    return off;
  };
}

const blockAttrs = {
  axis: { kind: 'int', default: 1 },
  block_size: { kind: 'int', default: 0 },
} as const;

function quantizedDtype(ctx: InferContext): DType {
  const zp = ctx.inputs[2];
  const out = ctx.attrs['output_dtype'] as string | undefined;
  if (out !== undefined && !isDType(out)) ctx.fail(`unknown dtype '${out}'`);
  const dt = (out ?? zp?.dtype ?? 'u8') as DType;
  if (!QUANT.includes(dt)) ctx.fail(`quantized dtype must be one of ${QUANT.join(', ')}, got ${dt}`);
  if (zp && zp.dtype !== dt) ctx.fail(`zero point has dtype ${zp.dtype} but output_dtype is ${dt}`);
  return dt;
}

registerOp({
  name: 'quantize_linear',
  doc:
    'y = saturate(round_half_even(x / y_scale) + y_zero_point); the scale is per tensor (scalar), per axis (1-D ' +
    "along `axis`) or blocked (x's rank, block_size elements per scale along `axis`). Output dtype: output_dtype, " +
    "else the zero point's, else u8. The division is rounded to `precision` (default the scale's dtype).",
  inputs: [{ name: 'x' }, { name: 'y_scale' }, { name: 'y_zero_point', optional: true }],
  outputs: [{ name: 'y' }],
  attrs: {
    ...blockAttrs,
    // Saturation only matters for float8 outputs, which kiln lacks; integers always saturate.
    saturate: { kind: 'bool', default: true },
    output_dtype: { kind: 'dtype', optional: true },
    precision: { kind: 'dtype', optional: true },
  },
  fusion: 'opaque',
  infer(ctx) {
    const x = req(ctx, 0);
    const scale = req(ctx, 1);
    if (!isFloat(x.dtype) && x.dtype !== 'i32') ctx.fail(`x must be float or i32, got ${x.dtype}`);
    if (!isFloat(scale.dtype)) ctx.fail(`y_scale must be float, got ${scale.dtype}`);
    const prec = ctx.attrs['precision'] as string | undefined;
    if (prec !== undefined && !(isDType(prec) && isFloat(prec)))
      ctx.fail(`precision must be a float dtype, got ${prec}`);
    const dt = quantizedDtype(ctx);
    scaleLayout(x.shape, scale.shape, ctx.inputs[2]?.shape, ctx.attrs, ctx.fail);
    return [tensorType(dt, x.shape)];
  },
  reference([x, scale, zp], a, ctx) {
    const layout = scaleLayout(x!.shape, scale!.shape, zp?.shape, a, ctx.fail);
    const at = scaleIndex(layout, x!.shape, scale!.shape);
    const dt = ctx.outputDtypes[0]!;
    const prec = ((a['precision'] as DType | undefined) ?? scale!.dtype) as DType;
    const y = scratchTensor(dt, x!.shape);
    for (let i = 0; i < y.data.length; i++) {
      const k = at(i);
      const r = roundHalfEvenSigned(roundToDtype(prec, x!.data[i]! / scale!.data[k]!));
      y.data[i] = saturateToInt(dt, r + (zp ? zp.data[zp.data.length === 1 ? 0 : k]! : 0));
    }
    return [y];
  },
});

registerOp({
  name: 'dequantize_linear',
  doc:
    'y = (x - x_zero_point) * x_scale with per-tensor, per-axis or blocked scales (as quantize_linear); i32 input ' +
    "takes no zero point. Output dtype: output_dtype, else the scale's.",
  inputs: [{ name: 'x' }, { name: 'x_scale' }, { name: 'x_zero_point', optional: true }],
  outputs: [{ name: 'y' }],
  attrs: { ...blockAttrs, output_dtype: { kind: 'dtype', optional: true } },
  fusion: 'opaque',
  infer(ctx) {
    const x = req(ctx, 0);
    const scale = req(ctx, 1);
    const zp = ctx.inputs[2];
    if (!QUANT.includes(x.dtype) && x.dtype !== 'i32') {
      ctx.fail(`x must be one of ${[...QUANT, 'i32'].join(', ')}, got ${x.dtype}`);
    }
    if (!isFloat(scale.dtype)) ctx.fail(`x_scale must be float, got ${scale.dtype}`);
    if (zp && x.dtype === 'i32') ctx.fail('i32 input takes no zero point');
    if (zp && zp.dtype !== x.dtype) ctx.fail(`zero point has dtype ${zp.dtype}, x has ${x.dtype}`);
    const out = (ctx.attrs['output_dtype'] as string | undefined) ?? scale.dtype;
    if (!(isDType(out) && isFloat(out))) ctx.fail(`output_dtype must be a float dtype, got ${out}`);
    scaleLayout(x.shape, scale.shape, zp?.shape, ctx.attrs, ctx.fail);
    return [tensorType(out as DType, x.shape)];
  },
  reference([x, scale, zp], a, ctx) {
    const layout = scaleLayout(x!.shape, scale!.shape, zp?.shape, a, ctx.fail);
    const at = scaleIndex(layout, x!.shape, scale!.shape);
    const y = scratchTensor(ctx.outputDtypes[0]!, x!.shape);
    for (let i = 0; i < y.data.length; i++) {
      const k = at(i);
      y.data[i] = (x!.data[i]! - (zp ? zp.data[zp.data.length === 1 ? 0 : k]! : 0)) * scale!.data[k]!;
    }
    return [y];
  },
});

registerOp({
  name: 'dynamic_quantize_linear',
  doc:
    'u8 quantization with a scale and zero point computed from the data: range [min(0, min x), max(0, max x)], ' +
    'y_scale = range / 255 (f32), y_zero_point = saturate(round_half_even(-min / y_scale)); an all-zero x gives ' +
    'scale 0, zero point 0 and y = 0.',
  inputs: [{ name: 'x' }],
  outputs: [{ name: 'y' }, { name: 'y_scale' }, { name: 'y_zero_point' }],
  attrs: {},
  fusion: 'opaque',
  infer(ctx) {
    const x = req(ctx, 0);
    if (!isFloat(x.dtype)) ctx.fail(`x must be float, got ${x.dtype}`);
    return [tensorType('u8', x.shape), tensorType('f32', []), tensorType('u8', [])];
  },
  reference([x]) {
    let lo = 0;
    let hi = 0;
    for (const v of x!.data) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    // ONNX computes these in f32; rounding each step keeps y consistent with the scale it reports.
    const scale = Math.fround((hi - lo) / 255);
    const zp = scale === 0 ? 0 : saturateToInt('u8', roundHalfEvenSigned(Math.fround(0 - Math.fround(lo / scale))));
    const y = scratchTensor('u8', x!.shape);
    for (let i = 0; i < y.data.length; i++) {
      y.data[i] = scale === 0 ? 0 : saturateToInt('u8', roundHalfEvenSigned(Math.fround(x!.data[i]! / scale)) + zp);
    }
    return [y, scratchTensor('f32', [], [scale]), scratchTensor('u8', [], [zp])];
  },
});
