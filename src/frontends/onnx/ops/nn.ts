/** ONNX Softmax / LogSoftmax, normalizations, MatMul, Gemm, MatMulInteger, Einsum → kiln ops. */
import { isStatic } from '../../../../ir/shape.js';
import { onnxOp, type ConvertContext } from '../convert.js';

for (const [onnx, kiln] of [
  ['Softmax', 'softmax'],
  ['LogSoftmax', 'log_softmax'],
] as const) {
  /*
   * Before opset 13 the input is coerced to 2-D [prod(dims < axis), prod(dims >= axis)] (default axis 1) and the
   * op runs over the second dim: flatten the trailing dims into one, apply the op on it, restore the shape.
   */
  onnxOp(onnx, (ctx: ConvertContext) => {
    const x = ctx.req(0);
    const rank = x.type.shape.length;
    let axis = ctx.int('axis', 1);
    if (axis < -rank || axis >= rank) ctx.fail(`axis ${axis} out of range for rank ${rank}`);
    if (axis < 0) axis += rank;
    if (axis >= rank - 1) return [ctx.emit(kiln, [x], { axis: -1 })];
    const flat = ctx.emit('reshape', [x, ctx.constant('i64', [...new Array<number>(axis).fill(0), -1])]);
    const y = ctx.emit(kiln, [flat], { axis: -1 });
    const tail = x.type.shape.slice(axis);
    const back = isStatic(tail)
      ? ctx.constant('i64', [...new Array<number>(axis).fill(0), ...tail])
      : ctx.emit('shape', [x]);
    return [ctx.emit('reshape', [y, back])];
  });
  onnxOp(onnx, (ctx) => [ctx.emit(kiln, [ctx.req(0)], { axis: ctx.int('axis', -1) })], 13);
}

onnxOp(
  'LayerNormalization',
  (ctx) => {
    const outs = ctx.emitN(
      'layer_norm',
      [ctx.req(0), ctx.req(1), ctx.input(2)],
      {
        axis: ctx.int('axis', -1),
        epsilon: ctx.float('epsilon', 1e-5),
        stash_type: ctx.dtype(ctx.int('stash_type', 1), 'LayerNormalization stash_type'),
      },
      Math.max(1, Math.min(3, ctx.numOutputs)),
    );
    return outs;
  },
  17,
);

// stash_type only sets the precision of intermediates; the float64 reference is at least as precise.
onnxOp(
  'RMSNormalization',
  (ctx) => [
    ctx.emit('rms_norm', [ctx.req(0), ctx.req(1)], { axis: ctx.int('axis', -1), epsilon: ctx.float('epsilon', 1e-5) }),
  ],
  23,
);

onnxOp('MatMul', (ctx) => [ctx.emit('matmul', [ctx.req(0), ctx.req(1)])]);

onnxOp('Gemm', (ctx) => [
  ctx.emit('gemm', [ctx.req(0), ctx.req(1), ctx.input(2)], {
    alpha: ctx.float('alpha', 1),
    beta: ctx.float('beta', 1),
    transA: ctx.int('transA', 0) !== 0,
    transB: ctx.int('transB', 0) !== 0,
  }),
]);

onnxOp(
  'MatMulInteger',
  (ctx) => [ctx.emit('matmul_integer', [ctx.req(0), ctx.req(1), ctx.input(2), ctx.input(3)])],
  10,
);

onnxOp(
  'Einsum',
  (ctx) => [
    ctx.emit(
      'einsum',
      Array.from({ length: ctx.numInputs }, (_, i) => ctx.req(i)),
      { equation: ctx.str('equation') },
    ),
  ],
  12,
);
