/** Elementwise ops against values worked out by hand (not by the interpreter). */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import { VerifyError } from '../../ir/errors.js';
import { interpret } from '../../ir/interpret.js';
import '../../ir/ops/index.js';
import { makeTensor } from '../../ir/tensor.js';

/** Run one op on literal inputs; returns the output values. */
function run(
  op: string,
  inputs: [DType, number[], number[]][],
  attrs = {},
): { shape: readonly number[]; data: number[]; dtype: DType } {
  const b = new GraphBuilder(op);
  const feeds: Record<string, ReturnType<typeof makeTensor>> = {};
  const vs = inputs.map(([dt, shape, data], i) => {
    feeds[`x${i}`] = makeTensor(dt, shape, data);
    return b.input(`x${i}`, dt, shape);
  });
  b.output(b.op(op, vs, attrs), 'y');
  const y = interpret(b.build(), feeds)['y']!;
  return { shape: y.shape, data: Array.from(y.data), dtype: y.dtype };
}
const f = (data: number[], shape = [data.length]): [DType, number[], number[]] => ['f32', shape, data];

describe('unary float ops', () => {
  it('exp, log, sqrt, reciprocal, tanh, neg, abs', () => {
    expect(run('exp', [f([0, 1])]).data).toEqual([1, Math.fround(Math.E)]);
    expect(run('log', [f([1, 0, -1])]).data).toEqual([0, -Infinity, NaN]);
    expect(run('sqrt', [f([4, 2.25])]).data).toEqual([2, 1.5]);
    expect(run('reciprocal', [f([4, -0.5])]).data).toEqual([0.25, -2]);
    expect(run('tanh', [f([0, 100])]).data).toEqual([0, 1]);
    expect(run('neg', [f([3, -0])]).data).toEqual([-3, 0]);
    expect(run('abs', [['i8', [2], [-128, 5]]]).data).toEqual([-128, 5]); // |−128| wraps in i8, as in C
  });
  it('sigmoid, relu, silu, gelu (both forms)', () => {
    expect(run('sigmoid', [f([0])]).data).toEqual([0.5]);
    expect(run('relu', [f([-2, 0, 3])]).data).toEqual([0, 0, 3]);
    expect(run('silu', [f([0, 1000])]).data).toEqual([0, 1000]);
    // gelu(1) = 0.5 * (1 + erf(1/√2)) = 0.8413447460685429; tanh form 0.8411919906082768
    expect(run('gelu', [f([1])]).data[0]).toBe(Math.fround(0.8413447460685429));
    expect(run('gelu', [f([1])], { approximate: 'tanh' }).data[0]).toBe(Math.fround(0.8411919906082768));
  });
  it('round is half-to-even; floor, ceil, sign', () => {
    expect(run('round', [f([0.5, 1.5, 2.5, -0.5, -1.5, 2.4])]).data).toEqual([0, 2, 2, -0, -2, 2]);
    expect(run('floor', [f([-1.5, 1.5])]).data).toEqual([-2, 1]);
    expect(run('ceil', [f([-1.5, 1.5])]).data).toEqual([-1, 2]);
    expect(run('sign', [f([-3, 0, 2])]).data).toEqual([-1, 0, 1]);
  });
  it('hard_sigmoid / hard_swish / softplus / leaky_relu', () => {
    expect(run('hard_sigmoid', [f([-10, 0, 10])]).data).toEqual([0, 0.5, 1]);
    expect(run('hard_swish', [f([-3, 0, 3])]).data).toEqual([-0, 0, 3]);
    expect(run('softplus', [f([0])]).data).toEqual([Math.fround(Math.LN2)]);
    expect(run('leaky_relu', [f([-2, 2])], { alpha: 0.5 }).data).toEqual([-1, 2]);
  });
  it('results round to the storage dtype (f16)', () => {
    // exp(1) = 2.718281828…; nearest f16 is 2.71875
    expect(run('exp', [['f16', [1], [1]]]).data).toEqual([2.71875]);
  });
});

describe('binary ops with broadcasting', () => {
  it('add broadcasts [2,1] with [3]', () => {
    const y = run('add', [f([10, 20], [2, 1]), f([1, 2, 3])]);
    expect(y.shape).toEqual([2, 3]);
    expect(y.data).toEqual([11, 12, 13, 21, 22, 23]);
  });
  it('integer division truncates toward zero; unsigned wraps', () => {
    expect(
      run('div', [
        ['i32', [4], [7, -7, 7, -7]],
        ['i32', [4], [2, 2, -2, -2]],
      ]).data,
    ).toEqual([3, -3, -3, 3]);
    expect(
      run('sub', [
        ['u8', [1], [1]],
        ['u8', [1], [2]],
      ]).data,
    ).toEqual([255]);
    expect(
      run('mul', [
        ['i8', [1], [100]],
        ['i8', [1], [3]],
      ]).data,
    ).toEqual([44]); // 300 mod 256
  });
  it('mod: python sign by default, C sign with fmod', () => {
    expect(
      run('mod', [
        ['i32', [2], [-7, 7]],
        ['i32', [2], [3, -3]],
      ]).data,
    ).toEqual([2, -2]);
    expect(run('mod', [f([-7, 7]), f([3, -3])], { fmod: true }).data).toEqual([-1, 1]);
  });
  it('pow with a different exponent dtype', () => {
    expect(run('pow', [f([2, -2, 9]), ['i64', [3], [3, 3, 0]]]).data).toEqual([8, -8, 1]);
  });
  it('max / min propagate NaN and are variadic', () => {
    expect(run('max', [f([1, NaN, 3]), f([2, 0, 1]), f([0, 0, 5])]).data).toEqual([2, NaN, 5]);
    expect(run('min', [f([1, 5])]).data).toEqual([1, 5]);
  });
  it('comparisons and logic produce bool', () => {
    const y = run('less', [f([1, 2, NaN]), f([2, 2, 1])]);
    expect(y.dtype).toBe('bool');
    expect(y.data).toEqual([1, 0, 0]);
    expect(
      run('xor', [
        ['bool', [4], [0, 0, 1, 1]],
        ['bool', [4], [0, 1, 0, 1]],
      ]).data,
    ).toEqual([0, 1, 1, 0]);
    expect(run('not', [['bool', [2], [0, 1]]]).data).toEqual([1, 0]);
  });
  it('rejects incompatible shapes and mixed dtypes with a located error', () => {
    expect(() => run('add', [f([1, 2]), f([1, 2, 3])])).toThrow(VerifyError);
    expect(() => run('add', [f([1, 2]), f([1, 2, 3])])).toThrow(/add_0/);
    expect(() => run('add', [f([1]), ['i32', [1], [1]]])).toThrow(/dtype/);
  });
});

describe('cast, clip, where', () => {
  it('cast float → int truncates; → bool is x != 0; f32 → f16 rounds to nearest even', () => {
    expect(run('cast', [f([2.7, -2.7, NaN])], { to: 'i32' }).data).toEqual([2, -2, 0]);
    expect(run('cast', [f([0, -0.5])], { to: 'bool' }).data).toEqual([0, 1]);
    expect(run('cast', [f([1 + 2 ** -11])], { to: 'f16' }).data).toEqual([1]);
    expect(run('cast', [['i32', [1], [300]]], { to: 'u8' }).data).toEqual([44]);
  });
  it('clip with absent bounds and NaN', () => {
    const b = new GraphBuilder('clip');
    const x = b.input('x', 'f32', [4]);
    b.output(b.op('clip', [x, null, b.const('f32', [1], [])]), 'y');
    const y = interpret(b.build(), { x: makeTensor('f32', [4], [-5, 0.5, 3, NaN]) })['y']!;
    expect(Array.from(y.data)).toEqual([-5, 0.5, 1, NaN]);
  });
  it('where broadcasts all three operands', () => {
    const y = run('where', [['bool', [2, 1], [1, 0]], f([1, 2]), f([9])]);
    expect(y.data).toEqual([1, 2, 9, 9]);
  });
});
