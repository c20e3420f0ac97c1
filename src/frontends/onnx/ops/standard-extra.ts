/** ONNX ScatterND / ScatterElements / Scatter and Conv → kiln's scatter_nd / scatter_elements / conv. */
import { onnxOp, type ConvertContext } from '../convert.js';

/** Reductions each opset allows: none before 16, add / mul from 16, max / min from 18. */
function reduction(ctx: ConvertContext): string {
  if (ctx.opset < 16) {
    if (ctx.hasAttr('reduction')) ctx.fail(`attribute 'reduction' needs opset 16, the model has ${ctx.opset}`);
    return 'none';
  }
  const r = ctx.str('reduction', 'none');
  const allowed = ctx.opset >= 18 ? ['none', 'add', 'mul', 'max', 'min'] : ['none', 'add', 'mul'];
  if (!allowed.includes(r)) {
    ctx.fail(`reduction '${r}' is not one of ${allowed.join(', ')} at opset ${ctx.opset}`);
  }
  return r;
}

const scatterNd = (ctx: ConvertContext) => [
  ctx.emit('scatter_nd', [ctx.req(0), ctx.req(1), ctx.req(2)], { reduction: reduction(ctx) }),
];
onnxOp('ScatterND', scatterNd, 11);

const scatterElements = (ctx: ConvertContext) => [
  ctx.emit('scatter_elements', [ctx.req(0), ctx.req(1), ctx.req(2)], {
    axis: ctx.int('axis', 0),
    reduction: reduction(ctx),
  }),
];
onnxOp('ScatterElements', scatterElements, 11);
// Scatter (opset 9, deprecated at 11) is ScatterElements without reductions.
onnxOp('Scatter', scatterElements, 9);

onnxOp('Conv', (ctx) => {
  const attrs: Record<string, string | number | number[]> = {
    auto_pad: ctx.str('auto_pad', 'NOTSET'),
    group: ctx.int('group', 1),
  };
  for (const k of ['pads', 'strides', 'dilations', 'kernel_shape']) if (ctx.hasAttr(k)) attrs[k] = ctx.ints(k);
  return [ctx.emit('conv', [ctx.req(0), ctx.req(1), ctx.input(2)], attrs)];
});
