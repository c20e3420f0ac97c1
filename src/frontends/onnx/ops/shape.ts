/**
 * ONNX shape and data-movement ops → kiln shape ops. Parameters ONNX moved from attributes to inputs over the
 * opsets (Split, Squeeze, Unsqueeze, Slice) end up where kiln wants them: run-time shape data as i64 inputs, axes and
 * split sizes as attributes read from constant inputs.
 */
import type { Value } from '../../../../ir/graph.js';
import { onnxOp, type ConvertContext } from '../convert.js';

type AttrFn = (ctx: ConvertContext) => Record<string, number | boolean>;

/** One ONNX op → one kiln op over the same inputs. */
const one =
  (op: string, attrs: AttrFn = () => ({})) =>
  (ctx: ConvertContext) => [
    ctx.emit(
      op,
      Array.from({ length: ctx.numInputs }, (_, i) => ctx.input(i)),
      attrs(ctx),
    ),
  ];

const i64 = (ctx: ConvertContext, values: readonly number[]): Value => ctx.constant('i64', values, [values.length]);

// Reshape-1 and -4 carried the target shape as an attribute.
onnxOp('Reshape', (ctx) => [ctx.emit('reshape', [ctx.req(0), i64(ctx, ctx.ints('shape'))])]);
onnxOp(
  'Reshape',
  (ctx) => [ctx.emit('reshape', [ctx.req(0), ctx.req(1)], { allowzero: ctx.int('allowzero', 0) !== 0 })],
  5,
);

onnxOp('Transpose', (ctx) => [
  ctx.emit('transpose', [ctx.req(0)], ctx.hasAttr('perm') ? { perm: ctx.ints('perm') } : {}),
]);

onnxOp('Slice', (ctx) => {
  const starts = ctx.ints('starts');
  const inputs = [ctx.req(0), i64(ctx, starts), i64(ctx, ctx.ints('ends'))];
  if (ctx.hasAttr('axes')) inputs.push(i64(ctx, ctx.ints('axes')));
  return [ctx.emit('slice', inputs)];
});
onnxOp('Slice', one('slice'), 10);

onnxOp('Concat', (ctx) => [
  ctx.emit(
    'concat',
    Array.from({ length: ctx.numInputs }, (_, i) => ctx.req(i)),
    { axis: ctx.int('axis', ctx.opset < 4 ? 1 : undefined) },
  ),
]);

/** Split sizes: attribute before opset 13, input after; opset 18 `num_outputs` with a smaller last chunk. */
function convertSplit(ctx: ConvertContext): Value[] {
  const x = ctx.req(0);
  const axis = ctx.int('axis', 0);
  const n = ctx.numOutputs;
  let sizes: number[] | undefined;
  if (ctx.input(1)) sizes = ctx.constInts(1, 'split');
  else if (ctx.opset < 13 && ctx.hasAttr('split')) sizes = ctx.ints('split');
  else if (ctx.hasAttr('num_outputs')) {
    const k = ctx.int('num_outputs');
    if (k !== n) ctx.fail(`num_outputs is ${k} but the node has ${n} outputs`);
    const r = x.type.shape.length;
    if (axis < -r || axis >= r) ctx.fail(`axis ${axis} out of range for rank ${r}`);
    const d = x.type.shape[axis < 0 ? axis + r : axis]!;
    // A symbolic dim is split into equal parts; kiln checks divisibility at run time.
    if (typeof d === 'number' && d % n !== 0) {
      const chunk = Math.ceil(d / n);
      sizes = Array.from({ length: n }, (_, i) => Math.max(0, Math.min(chunk, d - i * chunk)));
    }
  }
  return ctx.emitN('split', [x], sizes ? { axis, split: sizes } : { axis }, n);
}
onnxOp('Split', convertSplit);

onnxOp('Squeeze', (ctx) => [ctx.emit('squeeze', [ctx.req(0)], ctx.hasAttr('axes') ? { axes: ctx.ints('axes') } : {})]);
onnxOp(
  'Squeeze',
  (ctx) => [ctx.emit('squeeze', [ctx.req(0)], ctx.input(1) ? { axes: ctx.constInts(1, 'axes') } : {})],
  13,
);
onnxOp('Unsqueeze', (ctx) => [ctx.emit('unsqueeze', [ctx.req(0)], { axes: ctx.ints('axes') })]);
onnxOp('Unsqueeze', (ctx) => [ctx.emit('unsqueeze', [ctx.req(0)], { axes: ctx.constInts(1, 'axes') })], 13);

onnxOp('Expand', one('expand'), 8);
onnxOp('Tile', (ctx) => ctx.unsupported('Tile before opset 6 (tiles/axis inputs) is not supported'), 1);
onnxOp('Tile', one('tile'), 6);
onnxOp(
  'Flatten',
  one('flatten', (ctx) => ({ axis: ctx.int('axis', 1) })),
);

onnxOp(
  'Gather',
  one('gather', (ctx) => ({ axis: ctx.int('axis', 0) })),
);
onnxOp(
  'GatherElements',
  one('gather_elements', (ctx) => ({ axis: ctx.int('axis', 0) })),
  11,
);
onnxOp(
  'GatherND',
  one('gather_nd', (ctx) => ({ batch_dims: ctx.int('batch_dims', 0) })),
  11,
);

onnxOp('Range', one('range'), 11);
onnxOp(
  'Trilu',
  one('trilu', (ctx) => ({ upper: ctx.int('upper', 1) !== 0 })),
  14,
);

onnxOp('Shape', (ctx) => {
  const attrs: Record<string, number> = {};
  if (ctx.hasAttr('start')) attrs['start'] = ctx.int('start');
  if (ctx.hasAttr('end')) attrs['end'] = ctx.int('end');
  return [ctx.emit('shape', [ctx.req(0)], attrs)];
});
onnxOp('Size', one('size'));

onnxOp(
  'ConstantOfShape',
  (ctx) => [ctx.emit('constant_of_shape', [ctx.req(0)], ctx.hasAttr('value') ? { value: ctx.tensor('value') } : {})],
  9,
);

onnxOp('Identity', one('identity'));
onnxOp('CastLike', (ctx) => [ctx.emit('cast', [ctx.req(0)], { to: ctx.req(1).type.dtype })], 15);
