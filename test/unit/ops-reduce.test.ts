import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import '../../ir/index.js';
import { interpret } from '../../ir/interpret.js';
import type { Attrs } from '../../ir/registry.js';
import type { Shape } from '../../ir/shape.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import type { TensorType } from '../../ir/types.js';
import { importOnnxModel } from '../../src/frontends/onnx/import.js';
import type { OnnxAttribute, OnnxModel, OnnxNode, OnnxTensor } from '../../src/frontends/onnx/proto.js';
import { PROP_RUNS } from '../helpers/paths.js';
import { ONNX, onnxModelOf } from '../helpers/onnx-model.js';
import { verifyError } from '../helpers/errors.js';

/** Run one op on concrete tensors through the builder and the interpreter. */
function run(op: string, inputs: readonly Tensor[], attrs: Attrs = {}): Tensor {
  const b = new GraphBuilder('t');
  const vs = inputs.map((t, i) => b.input(`x${i}`, t.dtype, t.shape));
  b.output(b.op(op, vs, attrs), 'y');
  const feeds = Object.fromEntries(inputs.map((t, i) => [`x${i}`, t]));
  return interpret(b.build(), feeds)['y']!;
}

/** Inferred output type of one op on symbolic input types. */
function infer(op: string, types: readonly [DType, Shape][], attrs: Attrs = {}): TensorType {
  const b = new GraphBuilder('t');
  const vs = types.map(([dt, s], i) => b.input(`x${i}`, dt, s));
  return b.op(op, vs, attrs).type;
}

const t = (shape: number[], data: number[], dtype: DType = 'f64') => makeTensor(dtype, shape, data);
const close = (got: Tensor, shape: number[], want: number[], tol = 1e-12) => {
  expect(got.shape).toEqual(shape);
  expect(got.data.length).toBe(want.length);
  want.forEach((w, i) => {
    const g = got.data[i]!;
    if (Number.isNaN(w)) expect(g).toBeNaN();
    else if (!Number.isFinite(w)) expect(g).toBe(w);
    else expect(Math.abs(g - w)).toBeLessThanOrEqual(tol * (1 + Math.abs(w)));
  });
};

const X23 = t([2, 3], [1, 2, 3, 4, 5, 6]);

describe('reduce ops', () => {
  it('reduce_sum over one axis, keepdims on and off, negative axes', () => {
    close(run('reduce_sum', [X23], { axes: [1] }), [2, 1], [6, 15]);
    close(run('reduce_sum', [X23], { axes: [0], keepdims: false }), [3], [5, 7, 9]);
    close(run('reduce_sum', [X23], { axes: [-1], keepdims: false }), [2], [6, 15]);
  });

  it('no axes reduces everything; noop_with_empty_axes reduces nothing', () => {
    close(run('reduce_sum', [X23]), [1, 1], [21]);
    close(run('reduce_sum', [X23], { axes: [], keepdims: false }), [], [21]);
    close(run('reduce_sum', [X23], { noop_with_empty_axes: true }), [2, 3], [1, 2, 3, 4, 5, 6]);
    // each element is reduced on its own: sum of squares of one element is its square
    close(run('reduce_sum_square', [X23], { noop_with_empty_axes: true }), [2, 3], [1, 4, 9, 16, 25, 36]);
  });

  it('mean, prod, sum_square, l2', () => {
    close(run('reduce_mean', [X23], { axes: [1] }), [2, 1], [2, 5]);
    close(run('reduce_prod', [X23], { axes: [0] }), [1, 3], [4, 10, 18]);
    close(run('reduce_sum_square', [X23], { axes: [1], keepdims: false }), [2], [14, 77]);
    close(run('reduce_l2', [t([2, 2], [3, 4, 5, 12])], { axes: [1], keepdims: false }), [2], [5, 13]);
  });

  it('integer mean truncates toward zero; integer sums stay exact', () => {
    expect(Array.from(run('reduce_mean', [t([2, 2], [1, 2, -1, -2], 'i32')], { axes: [1] }).data)).toEqual([1, -1]);
    const s = run('reduce_sum', [t([3], [2 ** 40, 3, -7], 'i64')]);
    expect(s.dtype).toBe('i64');
    expect(Array.from(s.data)).toEqual([2 ** 40 - 4]);
  });

  it('max / min propagate NaN', () => {
    close(run('reduce_max', [t([2, 2], [1, NaN, 3, 2])], { axes: [1], keepdims: false }), [2], [NaN, 3]);
    close(run('reduce_min', [t([2, 2], [1, NaN, 3, 2])], { axes: [1], keepdims: false }), [2], [NaN, 2]);
    close(run('reduce_max', [X23], { axes: [0, 1] }), [1, 1], [6]);
    close(run('reduce_min', [X23], { axes: [1] }), [2, 1], [1, 4]);
  });

  it('reductions over an empty set give the identity of the reduction', () => {
    const e = makeTensor('f32', [2, 0, 3]);
    close(run('reduce_max', [e], { axes: [1] }), [2, 1, 3], new Array(6).fill(-Infinity));
    close(run('reduce_min', [e], { axes: [1], keepdims: false }), [2, 3], new Array(6).fill(Infinity));
    close(run('reduce_sum', [e], { axes: [1] }), [2, 1, 3], new Array(6).fill(0));
    close(run('reduce_prod', [e], { axes: [1] }), [2, 1, 3], new Array(6).fill(1));
    close(run('reduce_mean', [e], { axes: [1] }), [2, 1, 3], new Array(6).fill(NaN));
    close(run('reduce_log_sum_exp', [e], { axes: [1] }), [2, 1, 3], new Array(6).fill(-Infinity));
    // reducing only non-empty axes of an empty tensor gives an empty result
    expect(run('reduce_sum', [e], { axes: [2] }).shape).toEqual([2, 0, 1]);
    expect(Array.from(run('reduce_max', [makeTensor('i8', [0])]).data)).toEqual([-128]);
    expect(Array.from(run('reduce_min', [makeTensor('u8', [0])]).data)).toEqual([255]);
  });

  it('max / min accept bool', () => {
    const b = t([2, 2], [0, 1, 0, 0], 'bool');
    const y = run('reduce_max', [b], { axes: [1], keepdims: false });
    expect(y.dtype).toBe('bool');
    expect(Array.from(y.data)).toEqual([1, 0]);
    expect(Array.from(run('reduce_min', [b], { axes: [0], keepdims: false }).data)).toEqual([0, 0]);
  });

  it('log_sum_exp is exact for logs and stable for large values', () => {
    close(run('reduce_log_sum_exp', [t([3], [0, Math.log(2), Math.log(3)])]), [1], [Math.log(6)]);
    close(run('reduce_log_sum_exp', [t([2], [1000, 1000])], { keepdims: false }), [], [1000 + Math.LN2]);
    close(run('reduce_log_sum_exp', [t([2], [-Infinity, -Infinity])]), [1], [-Infinity]);
    close(run('reduce_log_sum_exp', [t([2], [Infinity, 1])]), [1], [Infinity]);
  });

  it('infers symbolic shapes', () => {
    expect(infer('reduce_mean', [['f32', ['batch', 'seq', 64]]], { axes: [-1] }).shape).toEqual(['batch', 'seq', 1]);
    expect(infer('reduce_sum', [['f32', ['batch', 'seq', 64]]], { axes: [1], keepdims: false }).shape).toEqual([
      'batch',
      64,
    ]);
    expect(infer('reduce_max', [['f16', ['b', 4]]]).shape).toEqual([1, 1]);
    expect(infer('argmax', [['f32', ['b', 'n']]], { axis: 1, keepdims: false })).toMatchObject({
      dtype: 'i64',
      shape: ['b'],
    });
  });

  it('rejects bad axes and dtypes with located errors', () => {
    expect(verifyError(() => infer('reduce_sum', [['f32', [2, 3]]], { axes: [2] })).message).toContain(
      'axis 2 out of range for rank 2',
    );
    expect(verifyError(() => infer('reduce_sum', [['f32', [2, 3]]], { axes: [1, -1] })).message).toContain(
      'duplicate axes',
    );
    expect(verifyError(() => infer('reduce_sum', [['bool', [2]]])).message).toContain('dtype bool');
    expect(verifyError(() => infer('argmax', [['f32', [2, 3]]], { axis: -3 })).message).toContain('out of range');
    expect(verifyError(() => infer('argmin', [['f32', [2, 0]]], { axis: 1 })).message).toContain('empty axis');
    expect(verifyError(() => infer('cumsum', [['f32', [2]]], { axis: 1 })).message).toContain('out of range');
    expect(verifyError(() => infer('reduce_sum', [['f32', [2]]], { axes: [0], bogus: 1 })).message).toContain(
      "unknown attribute 'bogus'",
    );
  });
});

describe('argmax / argmin', () => {
  const x = t([2, 3], [2, 7, 7, 5, 1, 5]);
  it('first index by default, last with select_last_index', () => {
    const y = run('argmax', [x], { axis: 1 });
    expect(y.dtype).toBe('i64');
    expect(y.shape).toEqual([2, 1]);
    expect(Array.from(y.data)).toEqual([1, 0]);
    expect(Array.from(run('argmax', [x], { axis: 1, select_last_index: true }).data)).toEqual([2, 2]);
    expect(Array.from(run('argmin', [x], { axis: 1, keepdims: false }).data)).toEqual([0, 1]);
    expect(Array.from(run('argmin', [x], { axis: 0, keepdims: false }).data)).toEqual([0, 1, 1]);
  });

  it('default axis is 0; NaN counts as the extreme', () => {
    expect(Array.from(run('argmax', [x]).data)).toEqual([1, 0, 0]);
    expect(Array.from(run('argmax', [t([3], [1, NaN, 5])]).data)).toEqual([1]);
    expect(Array.from(run('argmin', [t([3], [1, NaN, -5])]).data)).toEqual([1]);
  });
});

describe('cumsum', () => {
  const x = t([4], [1, 2, 3, 4]);
  it('inclusive, exclusive, reverse', () => {
    close(run('cumsum', [x], { axis: 0 }), [4], [1, 3, 6, 10]);
    close(run('cumsum', [x], { axis: 0, exclusive: true }), [4], [0, 1, 3, 6]);
    close(run('cumsum', [x], { axis: 0, reverse: true }), [4], [10, 9, 7, 4]);
    close(run('cumsum', [x], { axis: -1, reverse: true, exclusive: true }), [4], [9, 7, 4, 0]);
  });
  it('along an inner axis', () => {
    close(run('cumsum', [X23], { axis: 0 }), [2, 3], [1, 2, 3, 5, 7, 9]);
    close(run('cumsum', [X23], { axis: 1 }), [2, 3], [1, 3, 6, 4, 9, 15]);
  });
});

// ---- properties ----

const arbTensor = fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 3 }).chain((shape) =>
  fc
    .array(fc.integer({ min: -50, max: 50 }), {
      minLength: shape.reduce((a, c) => a * c, 1),
      maxLength: shape.reduce((a, c) => a * c, 1),
    })
    .map((data) => t(shape, data)),
);

describe('reduce properties', () => {
  it('reduce_sum over all axes is the sum of the data', () => {
    fc.assert(
      fc.property(arbTensor, (x) => {
        const want = Array.from(x.data).reduce((a, c) => a + c, 0);
        expect(Array.from(run('reduce_sum', [x], { keepdims: false }).data)).toEqual([want]);
      }),
      { numRuns: PROP_RUNS },
    );
  });

  it('reducing axes one at a time equals reducing them together', () => {
    fc.assert(
      fc.property(
        arbTensor.filter((x) => x.shape.length >= 2),
        fc.constantFrom('reduce_sum', 'reduce_max', 'reduce_min', 'reduce_prod'),
        (x, op) => {
          const both = run(op, [x], { axes: [0, 1] });
          const seq = run(op, [run(op, [x], { axes: [1] })], { axes: [0] });
          expect(seq.shape).toEqual(both.shape);
          // max / min are exact; a sum or product past 2^53 rounds differently in another order (float64 is not
          // associative there), so those agree to a few ulps, not bit for bit
          if (op === 'reduce_max' || op === 'reduce_min') expect(Array.from(seq.data)).toEqual(Array.from(both.data));
          else {
            seq.data.forEach((v, i) => {
              const r = both.data[i]!;
              expect(Math.abs(v - r)).toBeLessThanOrEqual(Math.abs(r) * 4 * Number.EPSILON * x.data.length);
            });
          }
        },
      ),
      { numRuns: PROP_RUNS },
    );
  });

  it('the last inclusive cumsum element is the reduce_sum; argmax points at the max', () => {
    fc.assert(
      fc.property(arbTensor, (x) => {
        const ax = x.shape.length - 1;
        const len = x.shape[ax]!;
        const cs = run('cumsum', [x], { axis: ax });
        const s = run('reduce_sum', [x], { axes: [ax], keepdims: false });
        const mx = run('reduce_max', [x], { axes: [ax], keepdims: false });
        const am = run('argmax', [x], { axis: ax, keepdims: false });
        for (let r = 0; r < s.data.length; r++) {
          expect(cs.data[r * len + len - 1]).toBe(s.data[r]);
          expect(x.data[r * len + am.data[r]!]).toBe(mx.data[r]);
        }
      }),
      { numRuns: PROP_RUNS },
    );
  });
});

// ---- ONNX converters ----

const attr = {
  ints: (value: number[]): OnnxAttribute => ({ kind: 'ints', value }),
  int: (value: number): OnnxAttribute => ({ kind: 'int', value }),
};
const i64 = (name: string, values: number[]): OnnxTensor => ({
  name,
  dataType: 7,
  dims: [values.length],
  values: Float64Array.from(values),
  externalData: false,
});

function onnxModel(node: OnnxNode, opset: number, inits: OnnxTensor[] = []): OnnxModel {
  return onnxModelOf({
    nodes: [node],
    opset,
    inputs: [{ name: 'x', elemType: ONNX.DOUBLE, shape: [2, 3] }],
    outputs: [{ name: 'y', elemType: node.opType.startsWith('Arg') ? ONNX.INT64 : ONNX.DOUBLE }],
    initializers: inits,
  });
}
const onnxNode = (opType: string, inputs: string[], attributes: Record<string, OnnxAttribute> = {}): OnnxNode => ({
  name: 'n0',
  opType,
  domain: '',
  inputs,
  outputs: ['y'],
  attributes: new Map(Object.entries(attributes)),
});
const runOnnx = (m: OnnxModel) => interpret(importOnnxModel(m).graph, { x: X23 })['y']!;

describe('ONNX reduce converters', () => {
  it('reads axes from the attribute before opset 13 (ReduceSum) / 18 (others), from the input after', () => {
    close(runOnnx(onnxModel(onnxNode('ReduceSum', ['x'], { axes: attr.ints([1]) }), 11)), [2, 1], [6, 15]);
    close(
      runOnnx(onnxModel(onnxNode('ReduceSum', ['x', 'a'], { keepdims: attr.int(0) }), 13, [i64('a', [0])])),
      [3],
      [5, 7, 9],
    );
    close(runOnnx(onnxModel(onnxNode('ReduceMean', ['x'], { axes: attr.ints([0]) }), 17)), [1, 3], [2.5, 3.5, 4.5]);
    close(runOnnx(onnxModel(onnxNode('ReduceMax', ['x', 'a']), 18, [i64('a', [-1])])), [2, 1], [3, 6]);
    close(runOnnx(onnxModel(onnxNode('ReduceL2', ['x']), 18)), [1, 1], [Math.sqrt(91)]);
    close(
      runOnnx(onnxModel(onnxNode('ReduceSum', ['x', 'a'], { noop_with_empty_axes: attr.int(1) }), 13, [i64('a', [])])),
      [2, 3],
      [1, 2, 3, 4, 5, 6],
    );
  });

  it('ArgMax / ArgMin and CumSum', () => {
    const am = runOnnx(onnxModel(onnxNode('ArgMax', ['x'], { axis: attr.int(1), keepdims: attr.int(0) }), 13));
    expect(Array.from(am.data)).toEqual([2, 2]);
    const cs = runOnnx(onnxModel(onnxNode('CumSum', ['x', 'a'], { reverse: attr.int(1) }), 14, [i64('a', [1])]));
    close(cs, [2, 3], [6, 5, 3, 15, 11, 6]);
  });

  it('a run-time axes input is unsupported, not silently ignored', () => {
    const m = onnxModel(onnxNode('ReduceSum', ['x', 'a']), 13);
    m.graph.inputs.push({ name: 'a', type: { kind: 'tensor', elemType: 7, shape: [1] } });
    expect(() => importOnnxModel(m)).toThrow(/axes must be a constant/);
  });
});
