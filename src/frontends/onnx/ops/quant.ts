/** ONNX QuantizeLinear / DequantizeLinear / DynamicQuantizeLinear → kiln quantize_linear / dequantize_linear. */
import type { Attrs } from '../../../../ir/registry.js';
import { onnxOp, type ConvertContext } from '../convert.js';

/**
 * axis (opset 13+), block_size (21+), output_dtype (21+ quantize, 23+ dequantize), saturate (19+), precision
 * (quantize, 25+). Attributes of later opsets are simply absent from older models, so one reader serves all.
 */
function quantAttrs(ctx: ConvertContext, quantize: boolean): Attrs {
  const attrs: Record<string, number | boolean | string> = {};
  if (ctx.opset >= 13) attrs['axis'] = ctx.int('axis', 1);
  if (ctx.hasAttr('block_size')) attrs['block_size'] = ctx.int('block_size');
  // output_dtype 0 (UNDEFINED) means "not given".
  const out = ctx.int('output_dtype', 0);
  if (out !== 0) attrs['output_dtype'] = ctx.dtype(out, `${ctx.node.opType}.output_dtype`);
  if (quantize) {
    if (ctx.hasAttr('saturate')) attrs['saturate'] = ctx.int('saturate') !== 0;
    const prec = ctx.int('precision', 0);
    if (prec !== 0) attrs['precision'] = ctx.dtype(prec, 'QuantizeLinear.precision');
  }
  return attrs;
}

onnxOp('QuantizeLinear', (ctx) => [
  ctx.emit('quantize_linear', [ctx.req(0), ctx.req(1), ctx.input(2)], quantAttrs(ctx, true)),
]);
onnxOp('DequantizeLinear', (ctx) => [
  ctx.emit('dequantize_linear', [ctx.req(0), ctx.req(1), ctx.input(2)], quantAttrs(ctx, false)),
]);
onnxOp('DynamicQuantizeLinear', (ctx) => ctx.emitN('dynamic_quantize_linear', [ctx.req(0)], {}, 3));
