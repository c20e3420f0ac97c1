import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import { KilnError, UnsupportedError, VerifyError } from '../../ir/errors.js';
import { inferOp } from '../../ir/infer.js';
import { interpret } from '../../ir/interpret.js';
import '../../ir/ops/index.js';
import type { Attrs } from '../../ir/registry.js';
import type { Dim, Shape } from '../../ir/shape.js';
import { makeTensor, numel, type Tensor } from '../../ir/tensor.js';
import { tensorType, type TensorType } from '../../ir/types.js';
import { importOnnxModel } from '../../src/frontends/onnx/import.js';
import type { OnnxAttribute, OnnxModel, OnnxNode, OnnxTensor } from '../../src/frontends/onnx/proto.js';
import { PROP_RUNS } from '../helpers/paths.js';
import { onnxModelOf } from '../helpers/onnx-model.js';

const INT64_MAX = 9.223372036854776e18;
const INT64_MIN = -9.223372036854776e18;

const iota = (shape: readonly number[], from = 0): number[] => Array.from({ length: numel(shape) }, (_, i) => i + from);
const T = (shape: readonly number[], data: readonly number[] = iota(shape), dtype: DType = 'f32'): Tensor =>
  makeTensor(dtype, shape, data);
const ints = (...v: number[]): Tensor => makeTensor('i64', [v.length], v);
const i64s = (v: number): Tensor => makeTensor('i64', [], [v]);

/**
 * Build a one-node graph and run it through the interpreter. Inputs listed in `fed` are graph inputs (run-time
 * data), the others constants (so shape inputs are known to inference). The interpreter also checks every output
 * against its inferred shape.
 */
function run(op: string, ins: readonly (Tensor | null)[], attrs: Attrs = {}, n = 1, fed: readonly number[] = [0]) {
  const b = new GraphBuilder();
  const feeds: Record<string, Tensor> = {};
  const vals = ins.map((t, i) => {
    if (!t) return null;
    if (!fed.includes(i)) return b.weight(`in${i}`, t);
    feeds[`in${i}`] = t;
    return b.input(`in${i}`, t.dtype, t.shape);
  });
  const outs = b.opN(op, vals, attrs, n);
  outs.forEach((o, i) => b.output(o, `out${i}`));
  const r = interpret(b.build(), feeds);
  return outs.map((_, i) => r[`out${i}`]!);
}
const run1 = (op: string, ins: readonly (Tensor | null)[], attrs: Attrs = {}, fed?: readonly number[]): Tensor =>
  run(op, ins, attrs, 1, fed)[0]!;
const vals = (t: Tensor): number[] => Array.from(t.data);

/** Output shapes of node `n0` from input types; `consts[i]` is the constant data of input i. */
function shapes(
  op: string,
  types: readonly (TensorType | undefined)[],
  attrs: Attrs = {},
  consts: readonly (Tensor | undefined)[] = [],
  n = 1,
): Shape[] {
  return inferOp(op, 'n0', types, attrs, n, (i) => consts[i]).types.map((t) => t.shape);
}
const ty = (shape: readonly Dim[], dtype: DType = 'f32'): TensorType => tensorType(dtype, shape);

/** Expect a located VerifyError from building a one-node graph. */
function expectVerify(fn: () => unknown, pattern: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(VerifyError);
  expect((err as Error).message).toMatch(pattern);
  expect((err as Error).message).toMatch(/\[at node '/);
}

describe('reshape', () => {
  it('keeps data order, infers -1 and copies 0', () => {
    const y = run1('reshape', [T([2, 3, 4]), ints(4, -1)]);
    expect(y.shape).toEqual([4, 6]);
    expect(vals(y)).toEqual(iota([24]));
    expect(run1('reshape', [T([2, 3, 4]), ints(0, -1)]).shape).toEqual([2, 12]);
    expect(run1('reshape', [T([2, 3, 4]), ints(-1)]).shape).toEqual([24]);
    expect(run1('reshape', [T([2, 3, 4]), ints(0, 0, 2, 2)]).shape).toEqual([2, 3, 2, 2]);
  });

  it('honours allowzero', () => {
    expect(run1('reshape', [T([0, 3]), ints(3, 0)], { allowzero: true }).shape).toEqual([3, 0]);
    // without allowzero the 0 copies input dim 1 (3): 9 elements from 0
    expectVerify(() => run1('reshape', [T([0, 3]), ints(3, 0)]), /cannot reshape/);
    expectVerify(() => run1('reshape', [T([0, 3]), ints(0, -1)], { allowzero: true }), /both 0 and -1/);
  });

  it('reshapes a one-element tensor to a scalar and back', () => {
    const s = run1('reshape', [T([1, 1], [7]), makeTensor('i64', [0], [])]);
    expect(s.shape).toEqual([]);
    expect(vals(s)).toEqual([7]);
    expect(run1('reshape', [T([], [7]), ints(1, -1)]).shape).toEqual([1, 1]);
  });

  it('propagates symbolic dims', () => {
    const x = ty(['batch', 'seq', 64]);
    expect(shapes('reshape', [x, ty([4], 'i64')], {}, [undefined, ints(0, 0, 8, 8)])).toEqual([['batch', 'seq', 8, 8]]);
    expect(shapes('reshape', [x, ty([2], 'i64')], {}, [undefined, ints(-1, 64)])).toEqual([['batch*seq', 64]]);
    expect(shapes('reshape', [x, ty([2], 'i64')], {}, [undefined, ints(0, -1)])).toEqual([['batch', '64*seq']]);
    expect(shapes('reshape', [x, ty([3], 'i64')], {}, [undefined, ints(0, -1, 16)])).toEqual([['batch', '4*seq', 16]]);
    // a product dim cancels: [batch*seq, 64] -> [-1, 8, 8]
    expect(shapes('reshape', [ty(['batch*seq', 64]), ty([3], 'i64')], {}, [undefined, ints(-1, 8, 8)])).toEqual([
      ['batch*seq', 8, 8],
    ]);
    // nothing to cancel: a deterministic symbol named after the node
    expect(shapes('reshape', [ty(['n', 6]), ty([2], 'i64')], {}, [undefined, ints(4, -1)])).toEqual([[4, 'n0_d1']]);
    // run-time shape of static length 3
    expect(shapes('reshape', [x, ty([3], 'i64')])).toEqual([['n0_d0', 'n0_d1', 'n0_d2']]);
  });

  it('runs with a symbolic input dim', () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'f32', ['batch', 6]);
    b.output(b.reshape(x, [0, 2, 3]), 'y');
    const y = interpret(b.build(), { x: T([2, 6]) })['y']!;
    expect(y.shape).toEqual([2, 2, 3]);
    expect(vals(y)).toEqual(iota([12]));
  });

  it('reports bad targets at the node', () => {
    expectVerify(() => run1('reshape', [T([2, 3]), ints(4, 2)]), /cannot reshape 6 elements/);
    expectVerify(() => run1('reshape', [T([2, 3]), ints(-1, -1)]), /more than one -1/);
    expectVerify(() => run1('reshape', [T([2, 3]), ints(4, -1)]), /cannot reshape 6/);
    expectVerify(() => run1('reshape', [T([2, 3]), ints(-2, 3)]), /invalid reshape dim -2/);
    expectVerify(() => run1('reshape', [T([6]), ints(6, 0)]), /lacks/);
  });
});

describe('transpose', () => {
  it('reverses axes by default and follows perm', () => {
    const y = run1('transpose', [T([2, 3])]);
    expect(y.shape).toEqual([3, 2]);
    expect(vals(y)).toEqual([0, 3, 1, 4, 2, 5]);
    // x[i][j][k] = 12i + 4j + k; y = x.transpose(1, 2, 0): y[j][k][i]
    const z = run1('transpose', [T([2, 3, 4])], { perm: [1, 2, 0] });
    expect(z.shape).toEqual([3, 4, 2]);
    expect(vals(z).slice(0, 6)).toEqual([0, 12, 1, 13, 2, 14]);
    expect(shapes('transpose', [ty(['b', 's', 8])], { perm: [0, 2, 1] })).toEqual([['b', 8, 's']]);
  });

  it('rejects a non-permutation', () => {
    expectVerify(() => run1('transpose', [T([2, 3])], { perm: [0, 0] }), /not a permutation/);
    expectVerify(() => run1('transpose', [T([2, 3])], { perm: [1, 0, 2] }), /3 entries for rank 2/);
  });

  it('property: transpose by perm then by its inverse is the identity', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 0, maxLength: 4 }).chain((shape) =>
          fc.tuple(
            fc.constant(shape),
            fc.shuffledSubarray(
              shape.map((_, i) => i),
              { minLength: shape.length, maxLength: shape.length },
            ),
            fc.array(fc.double({ noNaN: true, min: -1e3, max: 1e3 }), {
              minLength: numel(shape),
              maxLength: numel(shape),
            }),
          ),
        ),
        ([shape, perm, data]) => {
          const x = makeTensor('f64', shape, data);
          const inv = perm.map((_, i) => perm.indexOf(i));
          const y = run1('transpose', [x], { perm });
          expect(y.shape).toEqual(perm.map((p) => shape[p]));
          const z = run1('transpose', [y], { perm: inv });
          expect(z.shape).toEqual(shape);
          expect(vals(z)).toEqual(vals(x));
        },
      ),
      { numRuns: PROP_RUNS },
    );
  });
});

describe('slice', () => {
  const x = T([10]);
  const sl = (s: number[], e: number[], axes?: number[], steps?: number[], t = x) =>
    run1('slice', [t, ints(...s), ints(...e), axes ? ints(...axes) : null, steps ? ints(...steps) : null]);

  it('takes start:end:step with ONNX clamping', () => {
    expect(vals(sl([2], [7]))).toEqual([2, 3, 4, 5, 6]);
    expect(vals(sl([2], [7], [0], [2]))).toEqual([2, 4, 6]);
    expect(vals(sl([-3], [INT64_MAX]))).toEqual([7, 8, 9]);
    expect(vals(sl([-100], [3]))).toEqual([0, 1, 2]);
    expect(vals(sl([20], [30])).length).toBe(0);
    expect(vals(sl([5], [2])).length).toBe(0);
  });

  it('walks backwards with negative steps', () => {
    expect(vals(sl([-1], [INT64_MIN], [0], [-1]))).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    expect(vals(sl([8], [1], [0], [-3]))).toEqual([8, 5, 2]);
    expect(vals(sl([INT64_MAX], [-4], [0], [-2]))).toEqual([9, 7]);
    expect(vals(sl([2], [5], [0], [-1])).length).toBe(0);
  });

  it('slices chosen (negative) axes of a matrix', () => {
    const m = T([3, 4]);
    const y = sl([1], [3], [-1], undefined, m);
    expect(y.shape).toEqual([3, 2]);
    expect(vals(y)).toEqual([1, 2, 5, 6, 9, 10]);
    const z = sl([0, 1], [2, 4], [0, 1], [1, 2], m);
    expect(vals(z)).toEqual([1, 3, 5, 7]);
    expect(sl([0], [1], [1], undefined, T([0, 4])).shape).toEqual([0, 1]);
  });

  it('infers symbolic dims', () => {
    const t = [ty(['b', 's', 64]), ty([1], 'i64'), ty([1], 'i64'), ty([1], 'i64')];
    expect(shapes('slice', t, {}, [undefined, ints(0), ints(INT64_MAX), ints(1)])).toEqual([['b', 's', 64]]);
    expect(shapes('slice', t, {}, [undefined, ints(0), ints(5), ints(1)])).toEqual([['b', 'n0_d1', 64]]);
    expect(shapes('slice', t, {}, [undefined, ints(0), ints(32), ints(-1)])).toEqual([['b', 's', 32]]);
    expect(shapes('slice', t, {}, [undefined, undefined, undefined, ints(2)])).toEqual([['b', 's', 'n0_d2']]);
    expect(shapes('slice', t)).toEqual([['n0_d0', 'n0_d1', 'n0_d2']]);
  });

  it('reports bad parameters at the node', () => {
    expectVerify(() => sl([0], [5], [0], [0]), /step cannot be 0/);
    expectVerify(() => sl([0], [5], [1]), /axis 1 out of range/);
    expectVerify(() => sl([0, 0], [5]), /2 starts but 1 ends/);
  });

  it('property: step 1 agrees with Array.prototype.slice', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 12 }),
        fc.integer({ min: -16, max: 16 }),
        fc.integer({ min: -16, max: 16 }),
        (n, s, e) => {
          const data = iota([n], 1);
          expect(vals(sl([s], [e], undefined, undefined, T([n], data)))).toEqual(data.slice(s, e));
        },
      ),
      { numRuns: PROP_RUNS },
    );
  });
});

describe('concat and split', () => {
  it('concatenates along an axis', () => {
    const a = T([2, 2], [1, 2, 3, 4]);
    expect(vals(run('concat', [a, T([1, 2], [5, 6])], { axis: 0 }, 1, [0, 1])[0]!)).toEqual([1, 2, 3, 4, 5, 6]);
    const y = run('concat', [a, T([2, 1], [5, 6]), T([2, 0], [])], { axis: -1 }, 1, [0, 1, 2])[0]!;
    expect(y.shape).toEqual([2, 3]);
    expect(vals(y)).toEqual([1, 2, 5, 3, 4, 6]);
    expect(shapes('concat', [ty(['b', 'past', 8]), ty(['b', 'seq', 8])], { axis: 1 })).toEqual([['b', 'past+seq', 8]]);
  });

  it('rejects mismatched inputs', () => {
    expectVerify(() => run('concat', [T([2, 2]), T([2, 3])], { axis: 0 }, 1, [0, 1]), /dim 3 at axis 1/);
    expectVerify(() => run('concat', [T([2, 2]), T([2])], { axis: 0 }, 1, [0, 1]), /rank 1/);
    expectVerify(() => run('concat', [T([2]), T([2], [0, 1], 'f64')], { axis: 0 }, 1, [0, 1]), /dtype f64/);
    expectVerify(() => run('concat', [T([2])], { axis: 1 }), /axis 1 out of range/);
  });

  it('splits into equal and given parts, zero-size parts included', () => {
    const [a, b] = run('split', [T([2, 4])], { axis: 1 }, 2);
    expect(vals(a!)).toEqual([0, 1, 4, 5]);
    expect(vals(b!)).toEqual([2, 3, 6, 7]);
    const parts = run('split', [T([5])], { split: [2, 0, 3] }, 3);
    expect(parts.map((p) => vals(p))).toEqual([[0, 1], [], [2, 3, 4]]);
    expect(shapes('split', [ty(['b', '2*h'])], { axis: 1 }, [], 2)).toEqual([
      ['b', 'h'],
      ['b', 'h'],
    ]);
    expect(shapes('split', [ty(['s'])], {}, [], 2)).toEqual([['s/2'], ['s/2']]);
  });

  it('reports bad splits at the node', () => {
    expectVerify(() => run('split', [T([5])], {}, 2), /does not split into 2 equal parts/);
    expectVerify(() => run('split', [T([5])], { split: [2, 2] }, 2), /sum to 4/);
    expectVerify(() => run('split', [T([5])], { split: [5] }, 2), /1 sizes for 2 outputs/);
  });

  it('fails at run time when a symbolic dim does not split evenly', () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'f32', ['s']);
    const [p, q] = b.opN('split', [x], {}, 2);
    b.output(p!, 'p');
    b.output(q!, 'q');
    expect(() => interpret(b.build(), { x: T([3]) })).toThrow(/equal parts.*\[at node 'split_0'/);
  });

  it('property: split then concat is the identity', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 3 }),
        fc.nat(),
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 4 }),
        (shape, ax, cuts) => {
          const axis = ax % shape.length;
          shape[axis] = cuts.reduce((p, c) => p + c, 0);
          const x = makeTensor(
            'f64',
            shape,
            iota(shape).map((i) => Math.sin(i + ax)),
          );
          const parts = run('split', [x], { axis, split: cuts }, cuts.length);
          parts.forEach((p, i) => expect(p.shape[axis]).toBe(cuts[i]));
          const back = run(
            'concat',
            parts,
            { axis },
            1,
            parts.map((_, i) => i),
          )[0]!;
          expect(back.shape).toEqual(shape);
          expect(vals(back)).toEqual(vals(x));
        },
      ),
      { numRuns: PROP_RUNS },
    );
  });
});

describe('squeeze, unsqueeze, flatten', () => {
  it('squeezes size-1 axes', () => {
    expect(run1('squeeze', [T([1, 3, 1, 2])]).shape).toEqual([3, 2]);
    expect(run1('squeeze', [T([1, 3, 1, 2])], { axes: [-2] }).shape).toEqual([1, 3, 2]);
    expect(run1('squeeze', [T([1], [5])]).shape).toEqual([]);
    expect(shapes('squeeze', [ty(['b', 1, 1])])).toEqual([['b']]);
    expect(shapes('squeeze', [ty(['b', 1])], { axes: [0] })).toEqual([[1]]);
    expectVerify(() => run1('squeeze', [T([2, 3])], { axes: [0] }), /cannot squeeze axis 0 of size 2/);
    expectVerify(() => run1('squeeze', [T([1, 1])], { axes: [0, -2] }), /duplicate axes/);
  });

  it('checks a symbolic squeezed dim at run time', () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'f32', ['n', 2]);
    b.output(b.op('squeeze', [x], { axes: [0] }), 'y');
    const g = b.build();
    expect(interpret(g, { x: T([1, 2]) })['y']!.shape).toEqual([2]);
    expect(() => interpret(g, { x: T([3, 2]) })).toThrow(/cannot squeeze axis 0 of size 3.*squeeze_0/);
  });

  it('unsqueezes at unsorted and negative output axes', () => {
    const y = run1('unsqueeze', [T([3, 4])], { axes: [2, 0] });
    expect(y.shape).toEqual([1, 3, 1, 4]);
    expect(vals(y)).toEqual(iota([12]));
    expect(run1('unsqueeze', [T([3, 4])], { axes: [-1] }).shape).toEqual([3, 4, 1]);
    expect(run1('unsqueeze', [T([], [1])], { axes: [0] }).shape).toEqual([1]);
    expect(shapes('unsqueeze', [ty(['b', 's'])], { axes: [1, -1] })).toEqual([['b', 1, 's', 1]]);
    expectVerify(() => run1('unsqueeze', [T([3])], { axes: [1, -2] }), /duplicate axes/);
    expectVerify(() => run1('unsqueeze', [T([3])], { axes: [2] }), /axis 2 out of range for rank 2/);
  });

  it('flattens around an axis', () => {
    expect(run1('flatten', [T([2, 3, 4])]).shape).toEqual([2, 12]);
    expect(run1('flatten', [T([2, 3, 4])], { axis: 0 }).shape).toEqual([1, 24]);
    expect(run1('flatten', [T([2, 3, 4])], { axis: -1 }).shape).toEqual([6, 4]);
    expect(run1('flatten', [T([2, 3, 4])], { axis: 3 }).shape).toEqual([24, 1]);
    expect(shapes('flatten', [ty(['b', 's', 64])], { axis: 2 })).toEqual([['b*s', 64]]);
    expectVerify(() => run1('flatten', [T([2, 3])], { axis: 3 }), /flatten axis 3/);
  });
});

describe('expand and tile', () => {
  it('broadcasts bidirectionally', () => {
    const y = run1('expand', [T([3, 1], [1, 2, 3]), ints(2, 1, 4)]);
    expect(y.shape).toEqual([2, 3, 4]);
    expect(vals(y).slice(0, 12)).toEqual([1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
    expect(run1('expand', [T([3, 4]), ints(1, 1)]).shape).toEqual([3, 4]);
    expect(run1('expand', [T([3, 1]), ints(0)]).shape).toEqual([3, 0]);
    expectVerify(() => run1('expand', [T([3]), ints(4)]), /cannot broadcast/);
    expect(shapes('expand', [ty(['b', 1]), ty([3], 'i64')])).toEqual([['n0_d0', 'b', 'n0_d2']]);
    expect(shapes('expand', [ty(['b', 1]), ty([2], 'i64')], {}, [undefined, ints(1, 5)])).toEqual([['b', 5]]);
  });

  it('fails at run time on a run-time shape that does not broadcast', () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'f32', [3]);
    const s = b.input('s', 'i64', [1]);
    b.output(b.op('expand', [x, s]), 'y');
    const g = b.build();
    expect(vals(interpret(g, { x: T([3]), s: ints(1) })['y']!)).toEqual([0, 1, 2]);
    expect(() => interpret(g, { x: T([3]), s: ints(2) })).toThrow(/broadcast.*expand_0/);
  });

  it('tiles', () => {
    const y = run1('tile', [T([2, 2], [1, 2, 3, 4]), ints(1, 2)]);
    expect(y.shape).toEqual([2, 4]);
    expect(vals(y)).toEqual([1, 2, 1, 2, 3, 4, 3, 4]);
    expect(vals(run1('tile', [T([2, 2], [1, 2, 3, 4]), ints(2, 1)]))).toEqual([1, 2, 3, 4, 1, 2, 3, 4]);
    expect(run1('tile', [T([2]), ints(0)]).shape).toEqual([0]);
    expect(shapes('tile', [ty(['s', 2]), ty([2], 'i64')], {}, [undefined, ints(2, 3)])).toEqual([['2*s', 6]]);
    expectVerify(() => run1('tile', [T([2]), ints(1, 2)]), /repeats has length 2, input has rank 1/);
  });
});

describe('gathers', () => {
  const data = T([3, 2], [1, 2, 3, 4, 5, 6]);

  it('gather along axis 0 and 1, negative indices, scalar index', () => {
    const y = run1('gather', [data, makeTensor('i64', [2, 2], [0, 1, 1, 2])]);
    expect(y.shape).toEqual([2, 2, 2]);
    expect(vals(y)).toEqual([1, 2, 3, 4, 3, 4, 5, 6]);
    const m = T([3, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(vals(run1('gather', [m, makeTensor('i32', [1, 2], [0, 2])], { axis: 1 }))).toEqual([1, 3, 4, 6, 7, 9]);
    expect(vals(run1('gather', [data, ints(-1, -3)]))).toEqual([5, 6, 1, 2]);
    const s = run1('gather', [data, i64s(1)]);
    expect(s.shape).toEqual([2]);
    expect(vals(s)).toEqual([3, 4]);
    expect(shapes('gather', [ty([50, 8]), ty(['b', 's'], 'i64')])).toEqual([['b', 's', 8]]);
  });

  it('reports an out-of-range index at run time, located', () => {
    let err: unknown;
    try {
      run('gather', [data, ints(0, 3)], {}, 1, [0, 1]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KilnError);
    expect((err as KilnError).code).toBe('runtime');
    expect((err as Error).message).toMatch(/index 3 out of range.*\[at node 'gather_0'/);
    expectVerify(() => run1('gather', [data, T([2])]), /indices must be i64 or i32/);
    expectVerify(() => run1('gather', [data, ints(0)], { axis: 2 }), /axis 2 out of range/);
  });

  it('gather_elements', () => {
    const a = T([2, 2], [1, 2, 3, 4]);
    expect(vals(run1('gather_elements', [a, makeTensor('i64', [2, 2], [0, 0, 1, 0])], { axis: 1 }))).toEqual([
      1, 1, 4, 3,
    ]);
    const b = T([3, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const y = run1('gather_elements', [b, makeTensor('i64', [2, 3], [1, 2, 0, 2, 0, 0])]);
    expect(y.shape).toEqual([2, 3]);
    expect(vals(y)).toEqual([4, 8, 3, 7, 2, 3]);
    expect(vals(run1('gather_elements', [b, makeTensor('i64', [1, 2], [-1, -3])], { axis: 1 }))).toEqual([3, 1]);
    expect(() => run('gather_elements', [b, makeTensor('i64', [1, 1], [3])], {}, 1, [0, 1])).toThrow(
      /out of range.*gather_elements_0/,
    );
    expectVerify(() => run1('gather_elements', [b, ints(0)]), /indices have rank 1, data has rank 2/);
  });

  it('gather_nd with and without batch dims', () => {
    const a = T([2, 2], [0, 1, 2, 3]);
    expect(vals(run1('gather_nd', [a, makeTensor('i64', [2, 2], [0, 0, 1, 1])]))).toEqual([0, 3]);
    const r = run1('gather_nd', [a, makeTensor('i64', [2, 1], [1, 0])]);
    expect(r.shape).toEqual([2, 2]);
    expect(vals(r)).toEqual([2, 3, 0, 1]);
    const c = T([2, 2, 2]);
    expect(vals(run1('gather_nd', [c, makeTensor('i64', [2, 2], [0, 1, 1, 0])]))).toEqual([2, 3, 4, 5]);
    const z = run1('gather_nd', [c, makeTensor('i64', [2, 1], [1, 0])], { batch_dims: 1 });
    expect(z.shape).toEqual([2, 2]);
    expect(vals(z)).toEqual([2, 3, 4, 5]);
    expect(vals(run1('gather_nd', [a, makeTensor('i64', [1, 2], [-1, -2])]))).toEqual([2]);
    expect(() => run('gather_nd', [a, makeTensor('i64', [1, 2], [0, 2])], {}, 1, [0, 1])).toThrow(
      /out of range.*gather_nd_0/,
    );
    expectVerify(() => run1('gather_nd', [a, makeTensor('i64', [1, 3], [0, 0, 0])]), /tuples of length 3/);
    expect(shapes('gather_nd', [ty(['b', 4, 5]), ty(['b', 'k', 1], 'i64')], { batch_dims: 1 })).toEqual([
      ['b', 'k', 5],
    ]);
  });
});

describe('range and trilu', () => {
  const s = (v: number, dt: DType = 'i64') => makeTensor(dt, [], [v]);
  const rng = (a: number, b: number, c: number, dt: DType = 'i64') =>
    run1('range', [s(a, dt), s(b, dt), s(c, dt)], {}, []);

  it('range: ceil((limit-start)/delta) elements, empty when negative', () => {
    expect(vals(rng(0, 10, 3))).toEqual([0, 3, 6, 9]);
    expect(vals(rng(10, 4, -3, 'i32'))).toEqual([10, 7]);
    expect(rng(1, 1, 1).shape).toEqual([0]);
    expect(rng(5, 1, 2).shape).toEqual([0]);
    const f = rng(0, 1, 0.25, 'f32');
    expect(f.dtype).toBe('f32');
    expect(vals(f)).toEqual([0, 0.25, 0.5, 0.75]);
    expectVerify(() => rng(0, 1, 0), /not finite/);
    expect(shapes('range', [ty([], 'i64'), ty([], 'i64'), ty([], 'i64')])).toEqual([['n0_d0']]);
    expectVerify(() => run1('range', [s(0), s(1, 'i32'), s(1)], {}, []), /dtype i32, expected i64/);
  });

  it('trilu keeps the upper or lower triangle relative to diagonal k', () => {
    const x = T([3, 4], iota([12], 1));
    expect(vals(run1('trilu', [x]))).toEqual([1, 2, 3, 4, 0, 6, 7, 8, 0, 0, 11, 12]);
    expect(vals(run1('trilu', [x, i64s(1)]))).toEqual([0, 2, 3, 4, 0, 0, 7, 8, 0, 0, 0, 12]);
    expect(vals(run1('trilu', [x], { upper: false }))).toEqual([1, 0, 0, 0, 5, 6, 0, 0, 9, 10, 11, 0]);
    expect(vals(run1('trilu', [x, i64s(-1)], { upper: false }))).toEqual([0, 0, 0, 0, 5, 0, 0, 0, 9, 10, 0, 0]);
    expect(vals(run1('trilu', [x, i64s(5)]))).toEqual(new Array(12).fill(0));
    const batched = run1('trilu', [T([2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8])], { upper: false });
    expect(vals(batched)).toEqual([1, 0, 3, 4, 5, 0, 7, 8]);
    expectVerify(() => run1('trilu', [T([3])]), /rank >= 2/);
  });
});

describe('shape, size, constants', () => {
  it('shape with start / end clamping', () => {
    const x = T([2, 3, 4]);
    const sh = (a: Attrs = {}) => vals(run1('shape', [x], a));
    expect(sh()).toEqual([2, 3, 4]);
    expect(run1('shape', [x]).dtype).toBe('i64');
    expect(sh({ start: 1 })).toEqual([3, 4]);
    expect(sh({ end: -1 })).toEqual([2, 3]);
    expect(sh({ start: -10 })).toEqual([2, 3, 4]);
    expect(sh({ end: 10 })).toEqual([2, 3, 4]);
    expect(sh({ start: 2, end: 1 })).toEqual([]);
    expect(vals(run1('shape', [T([])]))).toEqual([]);
  });

  it('size', () => {
    const y = run1('size', [T([2, 3, 4])]);
    expect(y.shape).toEqual([]);
    expect(y.dtype).toBe('i64');
    expect(vals(y)).toEqual([24]);
    expect(vals(run1('size', [T([2, 0])]))).toEqual([0]);
  });

  it('shape and size fold from static types, without data', () => {
    const b = new GraphBuilder();
    b.foldConstants = true;
    const x = b.input('x', 'f32', ['batch', 3, 4]);
    const tail = b.op('shape', [x], { start: 1 });
    expect(tail.isConst).toBe(true);
    expect(vals(tail.data!)).toEqual([3, 4]);
    expect(b.op('shape', [x]).isConst).toBe(false);
    expect(b.op('size', [x]).isConst).toBe(false);
    const y = b.input('y', 'f32', [5, 6]);
    expect(vals(b.op('size', [y]).data!)).toEqual([30]);
    // a folded shape feeds reshape as a constant: [batch, 3, 4] -> [batch*?, 3, 4]
    const r = b.op('reshape', [x, b.op('concat', [b.const('i64', [-1]), tail], { axis: 0 })]);
    expect(r.type.shape).toEqual(['batch', 3, 4]);
  });

  it('constant and constant_of_shape', () => {
    const v = makeTensor('i32', [2], [7, -1]);
    const c = run1('constant', [], { value: v });
    expect(c.dtype).toBe('i32');
    expect(vals(c)).toEqual([7, -1]);
    const z = run1('constant_of_shape', [ints(2, 3)], {}, []);
    expect(z.dtype).toBe('f32');
    expect(z.shape).toEqual([2, 3]);
    expect(vals(z)).toEqual(new Array(6).fill(0));
    const o = run1('constant_of_shape', [ints(3)], { value: makeTensor('i64', [1], [5]) }, []);
    expect(o.dtype).toBe('i64');
    expect(vals(o)).toEqual([5, 5, 5]);
    expect(run1('constant_of_shape', [ints(0)], {}, []).shape).toEqual([0]);
    expect(run1('constant_of_shape', [makeTensor('i64', [0], [])], {}, []).shape).toEqual([]);
    expect(shapes('constant_of_shape', [ty([2], 'i64')])).toEqual([['n0_d0', 'n0_d1']]);
    expectVerify(
      () => run1('constant_of_shape', [ints(2)], { value: makeTensor('f32', [2], [1, 2]) }, []),
      /one element/,
    );
  });
});

// ---- ONNX converters: opset-dependent paths the conformance folders do not reach -----------------------------

const ONNX_FLOAT = 1;
const ONNX_INT64 = 7;

function onnxModel(
  nodes: OnnxNode[],
  opset: number,
  input: { shape: Dim[]; elemType?: number } = { shape: [2, 3, 4] },
  inits: OnnxTensor[] = [],
): OnnxModel {
  return onnxModelOf({
    nodes,
    opset,
    inputs: [{ name: 'x', elemType: input.elemType ?? ONNX_FLOAT, shape: input.shape }],
    outputs: nodes[nodes.length - 1]!.outputs,
    initializers: inits,
  });
}
function onnxNode(opType: string, inputs: string[], outputs: string[], attrs: Record<string, OnnxAttribute> = {}) {
  return { name: `${opType}_node`, opType, domain: '', inputs, outputs, attributes: new Map(Object.entries(attrs)) };
}
const aInts = (value: number[]): OnnxAttribute => ({ kind: 'ints', value });
const aInt = (value: number): OnnxAttribute => ({ kind: 'int', value });
const init = (name: string, values: number[]): OnnxTensor => ({
  name,
  dataType: ONNX_INT64,
  dims: [values.length],
  values: Float64Array.from(values),
  externalData: false,
});

function importRun(m: OnnxModel, x: Tensor): Record<string, Tensor> {
  const { graph } = importOnnxModel(m, { foldConstants: false });
  return interpret(graph, { x });
}

describe('ONNX converters', () => {
  const x = T([2, 3, 4]);

  it('Reshape-1 (shape attribute) and Reshape-14 (allowzero)', () => {
    const r1 = importRun(onnxModel([onnxNode('Reshape', ['x'], ['y'], { shape: aInts([6, -1]) })], 1), x)['y']!;
    expect(r1.shape).toEqual([6, 4]);
    const m = onnxModel([onnxNode('Reshape', ['x', 's'], ['y'], { allowzero: aInt(1) })], 14, { shape: [0, 3] }, [
      init('s', [3, 0]),
    ]);
    expect(importRun(m, T([0, 3]))['y']!.shape).toEqual([3, 0]);
  });

  it('Slice-1 (attributes) and Slice-13 (inputs)', () => {
    const s1 = onnxNode('Slice', ['x'], ['y'], {
      starts: aInts([1, -2]),
      ends: aInts([2, INT64_MAX]),
      axes: aInts([0, 2]),
    });
    const y = importRun(onnxModel([s1], 9), x)['y']!;
    expect(y.shape).toEqual([1, 3, 2]);
    expect(vals(y)).toEqual([14, 15, 18, 19, 22, 23]);
    const s13 = onnxNode('Slice', ['x', 'st', 'en', 'ax', 'sp'], ['y']);
    const m = onnxModel([s13], 13, undefined, [
      init('st', [-1]),
      init('en', [INT64_MIN]),
      init('ax', [1]),
      init('sp', [-2]),
    ]);
    const z = importRun(m, x)['y']!;
    expect(z.shape).toEqual([2, 2, 4]);
    expect(vals(z).slice(0, 8)).toEqual([8, 9, 10, 11, 0, 1, 2, 3]);
  });

  it('Split-11 (attribute), Split-13 (input) and Split-18 (num_outputs, smaller last chunk)', () => {
    const s11 = onnxNode('Split', ['x'], ['a', 'b'], { axis: aInt(2), split: aInts([1, 3]) });
    const r11 = importRun(onnxModel([s11], 11), x);
    expect(r11['a']!.shape).toEqual([2, 3, 1]);
    expect(r11['b']!.shape).toEqual([2, 3, 3]);
    const s13 = onnxNode('Split', ['x', 'sp'], ['a', 'b'], { axis: aInt(-1) });
    expect(importRun(onnxModel([s13], 13, undefined, [init('sp', [3, 1])]), x)['b']!.shape).toEqual([2, 3, 1]);
    const s18 = onnxNode('Split', ['x'], ['a', 'b', 'c'], { axis: aInt(0), num_outputs: aInt(3) });
    const r18 = importRun(onnxModel([s18], 18, { shape: [7] }), T([7]));
    expect([r18['a'], r18['b'], r18['c']].map((t) => vals(t!))).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
    const even = importRun(onnxModel([s18], 18, { shape: [6] }), T([6]));
    expect(vals(even['c']!)).toEqual([4, 5]);
  });

  it('Squeeze / Unsqueeze with attribute (opset 11) and input (opset 13)', () => {
    const sq11 = onnxNode('Squeeze', ['x'], ['y'], { axes: aInts([0]) });
    expect(importRun(onnxModel([sq11], 11, { shape: [1, 3] }), T([1, 3]))['y']!.shape).toEqual([3]);
    const sqAll = onnxNode('Squeeze', ['x'], ['y']);
    expect(importRun(onnxModel([sqAll], 13, { shape: [1, 3, 1] }), T([1, 3, 1]))['y']!.shape).toEqual([3]);
    const un11 = onnxNode('Unsqueeze', ['x'], ['y'], { axes: aInts([0, -1]) });
    expect(importRun(onnxModel([un11], 11), x)['y']!.shape).toEqual([1, 2, 3, 4, 1]);
    const un13 = onnxNode('Unsqueeze', ['x', 'ax'], ['y']);
    expect(importRun(onnxModel([un13], 13, undefined, [init('ax', [1])]), x)['y']!.shape).toEqual([2, 1, 3, 4]);
  });

  it('Unsqueeze-13 with run-time axes is a typed UnsupportedError naming the node', () => {
    const m = onnxModel([onnxNode('Unsqueeze', ['x', 'x'], ['y'])], 13);
    expect(() => importOnnxModel(m)).toThrow(UnsupportedError);
    expect(() => importOnnxModel(m)).toThrow(/Unsqueeze_node/);
  });

  it('Shape (start/end), Size, CastLike, Identity, Flatten, ConstantOfShape', () => {
    const nodes = [
      onnxNode('Shape', ['x'], ['s'], { start: aInt(-2) }),
      onnxNode('ConstantOfShape', ['s'], ['c'], {
        value: {
          kind: 'tensor',
          value: { name: 'v', dataType: ONNX_INT64, dims: [1], values: Float64Array.from([3]), externalData: false },
        },
      }),
      onnxNode('CastLike', ['x', 'c'], ['xc']),
      onnxNode('Flatten', ['xc'], ['f']),
      onnxNode('Identity', ['f'], ['y']),
    ];
    const r = importRun(
      onnxModel(nodes, 15),
      T(
        [2, 3, 4],
        iota([24]).map((v) => v + 0.5),
      ),
    );
    expect(r['y']!.dtype).toBe('i64');
    expect(r['y']!.shape).toEqual([2, 12]);
    expect(vals(r['y']!).slice(0, 3)).toEqual([0, 1, 2]);
  });
});
