/** tan / asin / acos / atan: the float64 reference against values worked out by hand, and the ONNX converters. */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import { VerifyError } from '../../ir/errors.js';
import { interpret } from '../../ir/interpret.js';
import '../../ir/ops/index.js';
import { makeTensor } from '../../ir/tensor.js';
import { importOnnxModel } from '../../src/frontends/onnx/import.js';
import { onnxModelOf, onnxNodeOf } from '../helpers/onnx-model.js';

function run(op: string, xs: number[], dtype: 'f32' | 'f16' = 'f32'): number[] {
  const b = new GraphBuilder(op);
  b.output(b.op(op, [b.input('x', dtype, [xs.length])]), 'y');
  return Array.from(interpret(b.build(), { x: makeTensor(dtype, [xs.length], xs) })['y']!.data);
}

const PI = 3.141592653589793;
const fr = Math.fround;

describe('inverse and tangent trig ops (reference)', () => {
  it('tan at exact points and a few known values', () => {
    // tan 0 = 0, tan(-0) = -0; tan(0.5) = 0.5463024898437905 (0.5 is exact in f32)
    expect(run('tan', [0, -0, 0.5, -0.5])).toEqual([0, -0, fr(0.5463024898437905), fr(-0.5463024898437905)]);
    expect(run('tan', [NaN, Infinity])).toEqual([NaN, NaN]);
  });
  it('asin / acos on [-1, 1], NaN outside', () => {
    expect(run('asin', [0, 1, -1, 0.5])).toEqual([0, fr(PI / 2), fr(-PI / 2), fr(PI / 6)]);
    expect(run('acos', [1, -1, 0, 0.5])).toEqual([0, fr(PI), fr(PI / 2), fr(PI / 3)]);
    expect(run('asin', [1.5, -2, NaN])).toEqual([NaN, NaN, NaN]);
    expect(run('acos', [1.0000001, -Infinity])).toEqual([NaN, NaN]);
  });
  it('atan: odd, saturating at ±π/2', () => {
    expect(run('atan', [0, 1, -1, Infinity, -Infinity])).toEqual([0, fr(PI / 4), fr(-PI / 4), fr(PI / 2), fr(-PI / 2)]);
  });
  it('f16 results round to f16 (atan(1) = π/4 → 0.78515625)', () => {
    expect(run('atan', [1], 'f16')).toEqual([0.78515625]);
  });
  it('integer inputs are a located verify error', () => {
    const b = new GraphBuilder('t');
    expect(() => b.op('atan', [b.input('x', 'i32', [2])])).toThrow(VerifyError);
  });
});

describe('ONNX Tan / Asin / Acos / Atan', () => {
  it('convert one to one (opset 7 and later)', () => {
    for (const [onnx, kiln] of [
      ['Tan', 'tan'],
      ['Asin', 'asin'],
      ['Acos', 'acos'],
      ['Atan', 'atan'],
    ] as const) {
      const { graph } = importOnnxModel(
        onnxModelOf({
          nodes: [onnxNodeOf(onnx, ['x'], ['y'], {}, 'n')],
          opset: 7,
          inputs: [{ name: 'x', shape: [3] }],
          outputs: ['y'],
        }),
      );
      expect(graph.nodes.map((n) => n.op)).toEqual([kiln]);
      const y = interpret(graph, { x: makeTensor('f32', [3], [0, 0.5, 1]) })['y']!;
      const want = { tan: Math.tan, asin: Math.asin, acos: Math.acos, atan: Math.atan }[kiln];
      expect(Array.from(y.data)).toEqual([0, 0.5, 1].map((v) => fr(want(v))));
    }
  });
});
