/** ONNX elementwise ops → kiln elementwise ops (mostly one to one). */
import type { Value } from '../../../../ir/graph.js';
import { onnxOp, type ConvertContext } from '../convert.js';

const direct = (kiln: string) => (ctx: ConvertContext) => [
  ctx.emit(
    kiln,
    Array.from({ length: ctx.numInputs }, (_, i) => ctx.input(i)),
  ),
];

const ONE_TO_ONE: Record<string, string> = {
  Add: 'add',
  Sub: 'sub',
  Mul: 'mul',
  Div: 'div',
  Pow: 'pow',
  Neg: 'neg',
  Abs: 'abs',
  Exp: 'exp',
  Log: 'log',
  Sqrt: 'sqrt',
  Reciprocal: 'reciprocal',
  Tanh: 'tanh',
  Erf: 'erf',
  Sigmoid: 'sigmoid',
  Relu: 'relu',
  Floor: 'floor',
  Ceil: 'ceil',
  Round: 'round',
  Sign: 'sign',
  Sin: 'sin',
  Cos: 'cos',
  Tan: 'tan',
  Asin: 'asin',
  Acos: 'acos',
  Atan: 'atan',
  Softplus: 'softplus',
  HardSwish: 'hard_swish',
  Not: 'not',
  IsNaN: 'isnan',
  And: 'and',
  Or: 'or',
  Xor: 'xor',
  Equal: 'equal',
  Less: 'less',
  Greater: 'greater',
  LessOrEqual: 'less_equal',
  GreaterOrEqual: 'greater_equal',
  Max: 'max',
  Min: 'min',
  Sum: 'sum',
  Where: 'where',
};
for (const [onnx, kiln] of Object.entries(ONE_TO_ONE)) onnxOp(onnx, direct(kiln));

onnxOp('IsInf', (ctx) => {
  const pos = ctx.int('detect_positive', 1);
  const neg = ctx.int('detect_negative', 1);
  const x = ctx.req(0);
  if (pos && neg) return [ctx.emit('isinf', [x])];
  const inf = ctx.constant(x.type.dtype, [pos ? Infinity : -Infinity], []);
  return [ctx.emit('equal', [x, inf])];
});

onnxOp('Mod', (ctx) => [ctx.emit('mod', [ctx.req(0), ctx.req(1)], { fmod: ctx.int('fmod', 0) !== 0 })]);
onnxOp('Gelu', (ctx) => [ctx.emit('gelu', [ctx.req(0)], { approximate: ctx.str('approximate', 'none') })]);
onnxOp('HardSigmoid', (ctx) => [
  ctx.emit('hard_sigmoid', [ctx.req(0)], { alpha: ctx.float('alpha', 0.2), beta: ctx.float('beta', 0.5) }),
]);
onnxOp('LeakyRelu', (ctx) => [ctx.emit('leaky_relu', [ctx.req(0)], { alpha: ctx.float('alpha', 0.01) })]);

/** Swish (opset 24) with alpha: x * sigmoid(alpha x). */
onnxOp('Swish', (ctx) => {
  const alpha = ctx.float('alpha', 1);
  const x = ctx.req(0);
  if (alpha === 1) return [ctx.emit('silu', [x])];
  const ax = ctx.emit('mul', [x, ctx.constant(x.type.dtype, [alpha], [])]);
  return [ctx.emit('mul', [x, ctx.emit('sigmoid', [ax])])];
});

onnxOp('Cast', (ctx) => [ctx.emit('cast', [ctx.req(0)], { to: ctx.dtype(ctx.int('to'), 'Cast.to') })]);

// Clip < 11 took min/max as attributes; from 11 on they are optional inputs.
onnxOp('Clip', (ctx) => {
  const x = ctx.req(0);
  const bound = (name: string): Value | null =>
    ctx.hasAttr(name) ? ctx.constant(x.type.dtype, [ctx.float(name)], []) : null;
  return [ctx.emit('clip', [x, bound('min'), bound('max')])];
});
onnxOp('Clip', (ctx) => [ctx.emit('clip', [ctx.req(0), ctx.input(1), ctx.input(2)])], 11);
