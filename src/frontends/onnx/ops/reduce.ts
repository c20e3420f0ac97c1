/** ONNX reductions, ArgMax / ArgMin and CumSum → kiln reduce ops. */
import { onnxOp, type ConvertContext } from '../convert.js';

const REDUCE: Record<string, string> = {
  ReduceSum: 'reduce_sum',
  ReduceMean: 'reduce_mean',
  ReduceMax: 'reduce_max',
  ReduceMin: 'reduce_min',
  ReduceProd: 'reduce_prod',
  ReduceSumSquare: 'reduce_sum_square',
  ReduceL2: 'reduce_l2',
  ReduceLogSumExp: 'reduce_log_sum_exp',
};

/** Axes as an attribute (before the op's input-axes opset). */
const withAttrAxes = (kiln: string) => (ctx: ConvertContext) => [
  ctx.emit(kiln, [ctx.req(0)], {
    ...(ctx.hasAttr('axes') ? { axes: ctx.ints('axes') } : {}),
    keepdims: ctx.int('keepdims', 1) !== 0,
  }),
];

/** Axes as an optional constant input, plus noop_with_empty_axes. */
const withInputAxes = (kiln: string) => (ctx: ConvertContext) => [
  ctx.emit(kiln, [ctx.req(0)], {
    ...(ctx.input(1) ? { axes: ctx.constInts(1, 'axes') } : {}),
    keepdims: ctx.int('keepdims', 1) !== 0,
    noop_with_empty_axes: ctx.int('noop_with_empty_axes', 0) !== 0,
  }),
];

for (const [onnx, kiln] of Object.entries(REDUCE)) {
  onnxOp(onnx, withAttrAxes(kiln));
  // ReduceSum took its axes as an input from opset 13, the others from 18.
  onnxOp(onnx, withInputAxes(kiln), onnx === 'ReduceSum' ? 13 : 18);
}

for (const [onnx, kiln] of [
  ['ArgMax', 'argmax'],
  ['ArgMin', 'argmin'],
] as const) {
  onnxOp(onnx, (ctx) => [
    ctx.emit(kiln, [ctx.req(0)], {
      axis: ctx.int('axis', 0),
      keepdims: ctx.int('keepdims', 1) !== 0,
      select_last_index: ctx.int('select_last_index', 0) !== 0,
    }),
  ]);
}

onnxOp(
  'CumSum',
  (ctx) => {
    const axis = ctx.constInts(1, 'axis');
    if (axis.length !== 1) ctx.fail(`CumSum axis must be a single value, got ${axis.length}`);
    return [
      ctx.emit('cumsum', [ctx.req(0)], {
        axis: axis[0]!,
        exclusive: ctx.int('exclusive', 0) !== 0,
        reverse: ctx.int('reverse', 0) !== 0,
      }),
    ];
  },
  11,
);
