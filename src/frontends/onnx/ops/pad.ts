/**
 * ONNX Pad → kiln `pad`. Pad-1 / Pad-2 carry the pads (`paddings` / `pads`) and the fill `value` as attributes;
 * Pad-11 on take them as inputs (pads, optional constant_value), Pad-18 adds the optional `axes` input and Pad-19 the
 * `wrap` mode. kiln's op always has the input form: attribute pads become i64 constants.
 */
import { PAD_MODES } from '../../../../ir/ops/pad.js';
import { onnxOp, type ConvertContext } from '../convert.js';

function modeOf(ctx: ConvertContext): string {
  const mode = ctx.str('mode', 'constant');
  if (!(PAD_MODES as readonly string[]).includes(mode)) ctx.unsupported(`Pad mode '${mode}' is not supported`);
  if (mode === 'wrap' && ctx.opset < 19) ctx.fail(`Pad mode 'wrap' needs opset 19, the model has ${ctx.opset}`);
  return mode;
}

/** Pad-1 (`paddings`) and Pad-2 (`pads`): attributes only. */
const fromAttrs = (padsAttr: string) => (ctx: ConvertContext) => {
  const x = ctx.req(0);
  const pads = ctx.ints(padsAttr);
  const value = ctx.float('value', 0);
  const mode = modeOf(ctx);
  const inputs = [x, ctx.constant('i64', pads, [pads.length])];
  if (mode === 'constant' && value !== 0) inputs.push(ctx.constant(x.type.dtype, [value], []));
  return [ctx.emit('pad', inputs, { mode })];
};
onnxOp('Pad', fromAttrs('paddings'), 1);
onnxOp('Pad', fromAttrs('pads'), 2);

onnxOp(
  'Pad',
  (ctx) => {
    const mode = modeOf(ctx);
    const inputs = [ctx.req(0), ctx.req(1), ctx.input(2)];
    if (ctx.opset >= 18 && ctx.input(3)) inputs.push(ctx.input(3));
    else if (!inputs[2]) inputs.pop();
    return [ctx.emit('pad', inputs, { mode })];
  },
  11,
);
