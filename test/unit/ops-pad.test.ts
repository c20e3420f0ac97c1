import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import { KilnError, VerifyError } from '../../ir/errors.js';
import { inferOp } from '../../ir/infer.js';
import { interpret } from '../../ir/interpret.js';
import '../../ir/ops/index.js';
import { padSource } from '../../ir/ops/pad.js';
import type { Attrs } from '../../ir/registry.js';
import type { Dim } from '../../ir/shape.js';
import { makeTensor, numel, type Tensor } from '../../ir/tensor.js';
import { tensorType, type TensorType } from '../../ir/types.js';
import { importOnnxModel } from '../../src/frontends/onnx/import.js';
import type { OnnxAttribute, OnnxModel, OnnxNode, OnnxTensor } from '../../src/frontends/onnx/proto.js';
import '../../src/frontends/onnx/ops/index.js';
import { PROP_RUNS } from '../helpers/paths.js';
import { onnxModelOf } from '../helpers/onnx-model.js';

const T = (shape: readonly number[], data: readonly number[], dtype: DType = 'f32'): Tensor =>
  makeTensor(dtype, shape, data);
const ints = (...v: number[]): Tensor => makeTensor('i64', [v.length], v);
const vals = (t: Tensor): number[] => Array.from(t.data);

/** One pad node; x is a graph input, the other inputs constants (null: absent). */
function pad(x: Tensor, pads: Tensor, mode = 'constant', value?: Tensor | null, axes?: Tensor): Tensor {
  const b = new GraphBuilder();
  const xi = b.input('x', x.dtype, x.shape);
  const ins = [xi, b.weight('pads', pads), value ? b.weight('cv', value) : null];
  if (axes) ins.push(b.weight('axes', axes));
  const y = b.op('pad', ins, { mode });
  b.output(y, 'y');
  return interpret(b.build(), { x })['y']!;
}

function shapes(
  types: readonly (TensorType | undefined)[],
  consts: readonly (Tensor | undefined)[],
  attrs: Attrs = {},
) {
  return inferOp('pad', 'n0', types, attrs, 1, (i) => consts[i]).types.map((t) => t.shape);
}
const ty = (shape: readonly Dim[], dtype: DType = 'f32'): TensorType => tensorType(dtype, shape);

function expectVerify(fn: () => unknown, pattern: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(KilnError);
  expect((err as Error).message).toMatch(pattern);
}

describe('pad reference', () => {
  it('constant mode with a value, per-axis begin / end', () => {
    const y = pad(T([2, 2], [1, 2, 3, 4]), ints(1, 0, 0, 1), 'constant', T([], [9]));
    expect(y.shape).toEqual([3, 3]);
    expect(vals(y)).toEqual([9, 9, 9, 1, 2, 9, 3, 4, 9]);
  });

  it('constant mode defaults to 0 and keeps the dtype', () => {
    const y = pad(T([3], [5, 6, 7], 'i32'), ints(1, 2));
    expect(y.dtype).toBe('i32');
    expect(vals(y)).toEqual([0, 5, 6, 7, 0, 0]);
    const b = pad(T([2], [1, 0], 'bool'), ints(1, 1), 'constant', T([1], [1], 'bool'));
    expect(vals(b)).toEqual([1, 1, 0, 1]);
  });

  it('reflect, edge and wrap (numpy.pad semantics)', () => {
    const x = T([3], [1, 2, 3]);
    expect(vals(pad(x, ints(2, 2), 'reflect'))).toEqual([3, 2, 1, 2, 3, 2, 1]);
    expect(vals(pad(x, ints(2, 1), 'edge'))).toEqual([1, 1, 1, 2, 3, 3]);
    expect(vals(pad(x, ints(2, 1), 'wrap'))).toEqual([2, 3, 1, 2, 3, 1]);
    // pads larger than the axis keep reflecting / wrapping (values from numpy 2.4)
    expect(vals(pad(x, ints(5, 4), 'reflect'))).toEqual([2, 1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3]);
    expect(vals(pad(x, ints(5, 4), 'wrap'))).toEqual([2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1]);
    expect(vals(pad(T([1], [7]), ints(2, 2), 'reflect'))).toEqual([7, 7, 7, 7, 7]);
  });

  it('edge on two axes', () => {
    const y = pad(T([2, 2], [1, 2, 3, 4]), ints(1, 1, 1, 1), 'edge');
    expect(y.shape).toEqual([4, 4]);
    expect(vals(y)).toEqual([1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
  });

  it('negative pads crop first, then positive pads pad the cropped tensor', () => {
    const x = T([2, 3], [1, 2, 3, 4, 5, 6]);
    expect(vals(pad(x, ints(0, -1, 0, 1)))).toEqual([2, 3, 0, 5, 6, 0]);
    // edge of the cropped axis: [2, 3] → [2, 3, 3]
    expect(vals(pad(x, ints(0, -1, 0, 1), 'edge'))).toEqual([2, 3, 3, 5, 6, 6]);
    expect(pad(x, ints(-2, 0, 0, -3)).shape).toEqual([0, 0]);
  });

  it('axes select the padded axes (negative allowed)', () => {
    const x = T([2, 3], [1, 2, 3, 4, 5, 6]);
    const y = pad(x, ints(1, 1), 'constant', null, ints(-1));
    expect(y.shape).toEqual([2, 5]);
    expect(vals(y)).toEqual([0, 1, 2, 3, 0, 0, 4, 5, 6, 0]);
    const z = pad(x, ints(1, 0, 0, 2), 'wrap', null, ints(1, 0));
    // axis 1: begin 1, end 0; axis 0: begin 0, end 2
    expect(z.shape).toEqual([4, 4]);
    expect(vals(z)).toEqual([3, 1, 2, 3, 6, 4, 5, 6, 3, 1, 2, 3, 6, 4, 5, 6]);
  });

  it('a scalar pads to itself', () => {
    expect(vals(pad(T([], [4]), makeTensor('i64', [0], [])))).toEqual([4]);
  });

  it('infers shapes with symbolic dims', () => {
    const pads = ints(1, 0, 2, -1);
    expect(shapes([ty(['n', 4]), ty([4], 'i64')], [undefined, pads])).toEqual([['n+3', 3]]);
    expect(shapes([ty(['n', 4]), ty([4], 'i64')], [undefined, ints(0, 0, -2, 0)])).toEqual([['n-2', 4]]);
    expect(shapes([ty(['n', 4]), ty([4], 'i64')], [])).toEqual([['n0_d0', 'n0_d1']]);
    expect(
      shapes([ty(['n', 4]), ty([2], 'i64'), undefined, ty([1], 'i64')], [undefined, undefined, undefined, ints(1)]),
    ).toEqual([['n', 'n0_d1']]);
  });

  it('fails located on bad pads, dtypes and empty axes', () => {
    const x = T([2, 3], [1, 2, 3, 4, 5, 6]);
    expectVerify(() => pad(x, ints(1, 1)), /pads has 2 entries; 2 axes need 4/);
    expectVerify(() => pad(x, ints(1, 1, 0, 0), 'constant', null, ints(1, -1)), /duplicate pad axes/);
    expectVerify(() => pad(x, ints(1, 1), 'constant', null, ints(2)), /out of range/);
    expectVerify(() => pad(x, ints(0, 0, -3, 0)), /remove more than/);
    expectVerify(() => pad(x, ints(0, 0, 0, 0), 'constant', T([], [1], 'i32')), /constant_value has dtype i32/);
    expectVerify(() => pad(T([0], []), ints(1, 0), 'edge'), /cannot pad an axis with no elements/);
    expect(() => shapes([ty([2]), ty([2], 'f32')], [])).toThrow(VerifyError);
    expect(() => shapes([ty([2]), ty([2], 'i64')], [], { mode: 'mirror' })).toThrow(/must be one of/);
  });

  it('property: padding by non-negative pads then slicing them off gives the input back', () => {
    const arb = fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 3 }).chain((shape) =>
      fc.record({
        shape: fc.constant(shape),
        pads: fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 2 * shape.length, maxLength: 2 * shape.length }),
        mode: fc.constantFrom('constant', 'reflect', 'edge', 'wrap'),
      }),
    );
    fc.assert(
      fc.property(arb, ({ shape, pads, mode }) => {
        const n = numel(shape);
        const x = T(
          shape,
          Array.from({ length: n }, () => Math.round(Math.random() * 100)),
        );
        const y = pad(x, ints(...pads), mode);
        const r = shape.length;
        expect(y.shape).toEqual(shape.map((d, k) => d + pads[k]! + pads[k + r]!));
        const b = new GraphBuilder();
        const yi = b.input('y', 'f32', y.shape);
        const s = b.op('slice', [
          yi,
          b.const('i64', pads.slice(0, r)),
          b.const(
            'i64',
            shape.map((d, k) => pads[k]! + d),
          ),
        ]);
        b.output(s, 's');
        expect(vals(interpret(b.build(), { y })['s']!)).toEqual(vals(x));
      }),
      { numRuns: PROP_RUNS },
    );
  });

  it('property: padSource stays in range and is the identity inside the axis', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: -40, max: 40 }),
        fc.constantFrom('reflect' as const, 'edge' as const, 'wrap' as const),
        (kept, j, mode) => {
          const s = padSource(mode, j, kept);
          expect(s).toBeGreaterThanOrEqual(0);
          expect(s).toBeLessThan(kept);
          if (j >= 0 && j < kept) expect(s).toBe(j);
        },
      ),
      { numRuns: PROP_RUNS },
    );
  });
});

// ---- the ONNX converter ------------------------------------------------------------------------------------------

const ONNX_FLOAT = 1;
const ONNX_INT64 = 7;

function onnxModel(nodes: OnnxNode[], opset: number, shape: Dim[], inits: OnnxTensor[] = []): OnnxModel {
  return onnxModelOf({ nodes, opset, inputs: [{ name: 'x', shape }], outputs: ['y'], initializers: inits });
}
const node = (inputs: string[], attrs: Record<string, OnnxAttribute> = {}): OnnxNode => ({
  name: 'Pad_node',
  opType: 'Pad',
  domain: '',
  inputs,
  outputs: ['y'],
  attributes: new Map(Object.entries(attrs)),
});
const init = (name: string, values: number[], dataType = ONNX_INT64, dims = [values.length]): OnnxTensor => ({
  name,
  dataType,
  dims,
  values: Float64Array.from(values),
  externalData: false,
});

function importRun(m: OnnxModel, x: Tensor): Tensor {
  const { graph } = importOnnxModel(m, { foldConstants: false });
  return interpret(graph, { x })['y']!;
}

describe('ONNX Pad converter', () => {
  const x = T([2, 2], [1, 2, 3, 4]);

  it('Pad-1 (paddings) and Pad-2 (pads, value, mode attributes)', () => {
    const p1 = node(['x'], { paddings: { kind: 'ints', value: [0, 1, 0, 0] }, value: { kind: 'float', value: 5 } });
    expect(vals(importRun(onnxModel([p1], 1, [2, 2]), x))).toEqual([5, 1, 2, 5, 3, 4]);
    const p2 = node(['x'], { pads: { kind: 'ints', value: [1, 0, 0, 0] }, mode: { kind: 'string', value: 'edge' } });
    expect(vals(importRun(onnxModel([p2], 2, [2, 2]), x))).toEqual([1, 2, 1, 2, 3, 4]);
  });

  it('Pad-11 (pads and constant_value inputs, constant_value absent or empty)', () => {
    const m = onnxModel([node(['x', 'p', 'v'])], 11, [2, 2], [init('p', [0, 0, 1, 0]), init('v', [7], ONNX_FLOAT, [])]);
    expect(vals(importRun(m, x))).toEqual([1, 2, 3, 4, 7, 7]);
    const noValue = onnxModel([node(['x', 'p', ''])], 13, [2, 2], [init('p', [0, 0, 1, 0])]);
    expect(vals(importRun(noValue, x))).toEqual([1, 2, 3, 4, 0, 0]);
  });

  it('Pad-18 axes and Pad-19 wrap', () => {
    const m = onnxModel(
      [node(['x', 'p', '', 'a'], { mode: { kind: 'string', value: 'wrap' } })],
      19,
      [2, 2],
      [init('p', [1, 0]), init('a', [-1])],
    );
    expect(vals(importRun(m, x))).toEqual([2, 1, 2, 4, 3, 4]);
  });

  it('rejects wrap before opset 19 and unknown modes, naming the node', () => {
    const wrap = onnxModel(
      [node(['x', 'p'], { mode: { kind: 'string', value: 'wrap' } })],
      18,
      [2, 2],
      [init('p', [1, 0, 0, 0])],
    );
    expect(() => importOnnxModel(wrap)).toThrow(/wrap.*opset 19.*Pad_node/s);
    const odd = onnxModel(
      [node(['x', 'p'], { mode: { kind: 'string', value: 'symmetric' } })],
      18,
      [2, 2],
      [init('p', [1, 0, 0, 0])],
    );
    expect(() => importOnnxModel(odd)).toThrow(/symmetric/);
  });
});
