/**
 * scatter_nd / scatter_elements: the float64 reference against the ONNX spec's examples and hand-worked reductions,
 * duplicate indices (applied in row-major order: the last wins with reduction none), negative indices, located errors
 * for bad shapes and out-of-range indices, and the ONNX converters (opset-gated reductions).
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import { KilnError, VerifyError } from '../../ir/errors.js';
import { interpret } from '../../ir/interpret.js';
import '../../ir/ops/index.js';
import type { Attrs } from '../../ir/registry.js';
import { makeTensor } from '../../ir/tensor.js';
import { importOnnxModel } from '../../src/frontends/onnx/import.js';
import type { OnnxAttribute } from '../../src/frontends/onnx/proto.js';
import { lowerNode } from '../../codegen/lower/index.js';
import { DEFAULT_CAPS } from '../../codegen/lower/storage.js';
import { verifyError } from '../helpers/errors.js';
import { ONNX, onnxModelOf, onnxNodeOf } from '../helpers/onnx-model.js';

type In = [DType, number[], number[]];

function run(op: string, [data, idx, upd]: [In, In, In], attrs: Attrs = {}): number[] {
  const b = new GraphBuilder(op);
  const ins = [data, idx, upd].map(([dt, shape], i) => b.input(`x${i}`, dt, shape));
  b.output(b.op(op, ins, attrs), 'y');
  const feeds = Object.fromEntries([data, idx, upd].map(([dt, shape, v], i) => [`x${i}`, makeTensor(dt, shape, v)]));
  return Array.from(interpret(b.build(), feeds)['y']!.data);
}

// The 4x4x4 data of the ONNX ScatterND examples.
const BLOCK = [1, 2, 3, 4, 5, 6, 7, 8, 8, 7, 6, 5, 4, 3, 2, 1];
const DATA3 = [...BLOCK, ...BLOCK, ...BLOCK.map((v) => 9 - v), ...BLOCK.map((v) => 9 - v)];
const UPD3 = [5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 8, 8, 8, 8, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4];
const nd3 = (indices: number[], reduction = 'none') =>
  run(
    'scatter_nd',
    [
      ['f32', [4, 4, 4], DATA3],
      ['i64', [2, 1], indices],
      ['f32', [2, 4, 4], UPD3],
    ],
    { reduction },
  );

describe('scatter_nd (reference)', () => {
  it('ONNX example 1: scalars into a vector', () => {
    expect(
      run('scatter_nd', [
        ['f32', [8], [1, 2, 3, 4, 5, 6, 7, 8]],
        ['i64', [4, 1], [4, 3, 1, 7]],
        ['f32', [4], [9, 10, 11, 12]],
      ]),
    ).toEqual([1, 11, 3, 10, 9, 6, 7, 12]);
  });

  it('ONNX example 2: slices of a 4x4x4 tensor (rows 0 and 2 replaced)', () => {
    const y = nd3([0, 2]);
    expect(y.slice(0, 16)).toEqual(UPD3.slice(0, 16));
    expect(y.slice(16, 32)).toEqual(DATA3.slice(16, 32));
    expect(y.slice(32, 48)).toEqual(UPD3.slice(16, 32));
    expect(y.slice(48)).toEqual(DATA3.slice(48));
  });

  it('reductions with a duplicated index row (ONNX scatternd_add / _multiply / _max / _min)', () => {
    const rest = DATA3.slice(16);
    expect(nd3([0, 0], 'add')).toEqual([7, 8, 9, 10, 13, 14, 15, 16, 18, 17, 16, 15, 16, 15, 14, 13, ...rest]);
    expect(nd3([0, 0], 'mul')).toEqual([5, 10, 15, 20, 60, 72, 84, 96, 168, 147, 126, 105, 128, 96, 64, 32, ...rest]);
    expect(nd3([0, 0], 'max')).toEqual([5, 5, 5, 5, 6, 6, 7, 8, 8, 7, 7, 7, 8, 8, 8, 8, ...rest]);
    expect(nd3([0, 0], 'min')).toEqual([1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 3, 2, 1, ...rest]);
  });

  it('duplicates with reduction none: the last row wins (kiln’s documented rule)', () => {
    expect(nd3([0, 0]).slice(0, 16)).toEqual(UPD3.slice(16, 32));
  });

  it('negative indices count from the end; tuples address elements of a matrix', () => {
    expect(
      run('scatter_nd', [
        ['f32', [2, 3], [0, 0, 0, 0, 0, 0]],
        ['i32', [2, 2], [-1, -1, 0, 1]],
        ['f32', [2], [7, 8]],
      ]),
    ).toEqual([0, 8, 0, 0, 0, 7]);
  });

  it('max / min propagate NaN; integer data adds exactly', () => {
    const y = run(
      'scatter_nd',
      [
        ['f32', [3], [1, NaN, 3]],
        ['i64', [2, 1], [0, 1]],
        ['f32', [2], [NaN, 5]],
      ],
      { reduction: 'max' },
    );
    expect(y).toEqual([NaN, NaN, 3]);
    const z = run(
      'scatter_nd',
      [
        ['i32', [3], [2 ** 30, 1, 2]],
        ['i64', [2, 1], [0, 0]],
        ['i32', [2], [2 ** 29, 3]],
      ],
      { reduction: 'add' },
    );
    expect(z).toEqual([2 ** 30 + 2 ** 29 + 3, 1, 2]);
  });

  it('an index out of range is a run-time error naming the node', () => {
    const bad = () =>
      run('scatter_nd', [
        ['f32', [4], [1, 2, 3, 4]],
        ['i64', [2, 1], [0, 4]],
        ['f32', [2], [9, 9]],
      ]);
    expect(bad).toThrow(KilnError);
    expect(bad).toThrow(/index 4 out of range \[-4, 3\] \[at node 'scatter_nd_\d+'/);
  });

  it('bad shapes and dtypes are verify errors naming the node', () => {
    const b = new GraphBuilder('t');
    const data = b.input('d', 'f32', [4, 5]);
    const ix = b.input('i', 'i64', [3, 1]);
    expect(verifyError(() => b.op('scatter_nd', [data, ix, b.input('u', 'f32', [3, 4])], {}, 'n1')).message).toContain(
      'expected indices.shape[:-1] + data.shape[1:] = [3,5]',
    );
    expect(() => b.op('scatter_nd', [data, b.input('i3', 'i64', [3, 3]), b.input('u3', 'f32', [3])])).toThrow(
      /tuples of length 3 do not fit data of rank 2/,
    );
    expect(() => b.op('scatter_nd', [data, b.input('fi', 'f32', [3, 1]), b.input('u4', 'f32', [3, 5])])).toThrow(
      /indices must be i64 or i32/,
    );
    expect(() => b.op('scatter_nd', [data, ix, b.input('u5', 'f16', [3, 5])])).toThrow(/updates have dtype f16/);
    expect(() => b.op('scatter_nd', [data, ix, b.input('u6', 'f32', [3, 5])], { reduction: 'sum' })).toThrow(
      VerifyError,
    );
  });
});

describe('scatter_elements (reference)', () => {
  it('ONNX example 1 (axis 0)', () => {
    const y = run('scatter_elements', [
      ['f32', [3, 3], new Array<number>(9).fill(0)],
      ['i64', [2, 3], [1, 0, 2, 0, 2, 1]],
      ['f32', [2, 3], [1.0, 1.1, 1.2, 2.0, 2.1, 2.2]],
    ]);
    expect(y).toEqual([2.0, 1.1, 0, 1.0, 0, 2.2, 0, 2.1, 1.2].map(Math.fround));
  });

  it('ONNX example 2 (axis 1) and the same with a negative index', () => {
    const d: In = ['f32', [1, 5], [1, 2, 3, 4, 5]];
    const u: In = ['f32', [1, 2], [1.5, 2.25]];
    expect(run('scatter_elements', [d, ['i64', [1, 2], [1, 3]], u], { axis: 1 })).toEqual([1, 1.5, 3, 2.25, 5]);
    expect(run('scatter_elements', [d, ['i64', [1, 2], [1, -3]], u], { axis: -1 })).toEqual([1, 1.5, 2.25, 4, 5]);
  });

  it('duplicate indices: none keeps the last, reductions combine in order', () => {
    const d: In = ['f32', [1, 5], [1, 2, 3, 4, 5]];
    const i: In = ['i64', [1, 2], [1, 1]];
    const u: In = ['f32', [1, 2], [1.5, 2.25]];
    const at = (reduction: string) => run('scatter_elements', [d, i, u], { axis: 1, reduction })[1];
    expect(at('none')).toBe(2.25);
    expect(at('add')).toBe(5.75);
    expect(at('mul')).toBe(6.75);
    expect(at('max')).toBe(2.25);
    expect(at('min')).toBe(1.5);
  });

  it('indices smaller than data off the axis address the leading block', () => {
    // data 3x4, indices / updates 2x2 along axis 1: rows 0..1, columns chosen by the indices
    const y = run(
      'scatter_elements',
      [
        ['f32', [3, 4], new Array<number>(12).fill(0)],
        ['i32', [2, 2], [3, 0, 2, 2]],
        ['f32', [2, 2], [1, 2, 3, 4]],
      ],
      { axis: 1, reduction: 'add' },
    );
    expect(y).toEqual([2, 0, 0, 1, 0, 0, 7, 0, 0, 0, 0, 0]);
  });

  it('an index out of range is a run-time error naming the node; shape errors at verify', () => {
    expect(() =>
      run('scatter_elements', [
        ['f32', [2, 2], [1, 2, 3, 4]],
        ['i64', [1, 2], [0, -3]],
        ['f32', [1, 2], [9, 9]],
      ]),
    ).toThrow(/scatter_elements index -3 out of range \[-2, 1\] \[at node 'scatter_elements_\d+'/);
    const b = new GraphBuilder('t');
    const data = b.input('d', 'f32', [2, 2]);
    expect(
      verifyError(() => b.op('scatter_elements', [data, b.input('i', 'i64', [2, 3]), b.input('u', 'f32', [2, 3])]))
        .message,
    ).toContain("indices dim 1 is 3, larger than data's 2");
    expect(() =>
      b.op('scatter_elements', [data, b.input('i2', 'i64', [1, 2]), b.input('u2', 'f32', [2, 1])], { axis: 1 }),
    ).toThrow(/must be equal/);
    expect(() =>
      b.op('scatter_elements', [data, b.input('i3', 'i64', [1, 2]), b.input('u3', 'f32', [1, 2])], { axis: 2 }),
    ).toThrow(/axis 2 out of range/);
  });
});

describe('ONNX ScatterND / ScatterElements / Scatter', () => {
  const s = (v: string): OnnxAttribute => ({ kind: 'string', value: v });
  const i = (v: number): OnnxAttribute => ({ kind: 'int', value: v });
  function model(op: string, opset: number, attrs: Record<string, OnnxAttribute>, idxShape: number[]) {
    return onnxModelOf({
      nodes: [onnxNodeOf(op, ['d', 'i', 'u'], ['y'], attrs, 'sc_node')],
      opset,
      inputs: [
        { name: 'd', shape: [1, 5] },
        { name: 'i', elemType: ONNX.INT64, shape: idxShape },
        { name: 'u', shape: idxShape.length === 2 && op !== 'ScatterND' ? idxShape : [2] },
      ],
      outputs: ['y'],
    });
  }
  const feeds = {
    d: makeTensor('f32', [1, 5], [1, 2, 3, 4, 5]),
    u: makeTensor('f32', [1, 2], [1.5, 2.25]),
  };

  it('ScatterElements at opset 18 with max, Scatter at opset 9', () => {
    const { graph } = importOnnxModel(model('ScatterElements', 18, { axis: i(1), reduction: s('max') }, [1, 2]));
    expect(graph.nodes.map((n) => [n.op, n.attrs])).toEqual([['scatter_elements', { axis: 1, reduction: 'max' }]]);
    const y = interpret(graph, { ...feeds, i: makeTensor('i64', [1, 2], [0, 0]) })['y']!;
    expect(Array.from(y.data)).toEqual([2.25, 2, 3, 4, 5]);
    const old = importOnnxModel(model('Scatter', 9, { axis: i(1) }, [1, 2])).graph;
    expect(old.nodes.map((n) => n.op)).toEqual(['scatter_elements']);
  });

  it('ScatterND with add at opset 16', () => {
    const { graph } = importOnnxModel(model('ScatterND', 16, { reduction: s('add') }, [2, 2]));
    const y = interpret(graph, {
      d: feeds.d,
      i: makeTensor('i64', [2, 2], [0, 4, 0, 4]),
      u: makeTensor('f32', [2], [1.5, 2.25]),
    })['y']!;
    expect(Array.from(y.data)).toEqual([1, 2, 3, 4, 8.75]);
  });

  it('a reduction the opset does not have is an error naming the node', () => {
    expect(() => importOnnxModel(model('ScatterND', 16, { reduction: s('max') }, [2, 2]))).toThrow(
      /reduction 'max' is not one of none, add, mul at opset 16.*sc_node/,
    );
    expect(() => importOnnxModel(model('ScatterElements', 13, { reduction: s('add') }, [1, 2]))).toThrow(
      /needs opset 16.*sc_node/,
    );
  });
});

describe('scatter_nd lowering: schedule', () => {
  /** Threads of the scatter kernel (its `n` uniform) for indices of [4, 1] into data [6, 8]. */
  function threads(indices?: number[]): number {
    const steps = lowerNode({
      caps: DEFAULT_CAPS,
      node: 's',
      op: 'scatter_nd',
      attrs: { reduction: 'none' },
      inputs: [
        { dtype: 'f32', shape: [6, 8] },
        { dtype: 'i64', shape: [4, 1], ...(indices ? { data: makeTensor('i64', [4, 1], indices) } : {}) },
        { dtype: 'f32', shape: [4, 8] },
      ],
      outputs: [{ dtype: 'f32', shape: [6, 8] }],
    });
    const last = steps[steps.length - 1]!;
    const i = last.kernel.uniforms.findIndex((u) => /^n\d+$/.test(u.name));
    return last.uniforms[i]!;
  }
  it('one thread per slice element walking the rows; per update element for distinct host-known rows', () => {
    expect(threads()).toBe(8);
    expect(threads([0, 5, -1, 2])).toBe(8); // 5 and -1 are the same row
    expect(threads([0, 5, 3, 2])).toBe(32);
  });
});
