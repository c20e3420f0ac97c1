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
import type { OnnxAttribute, OnnxModel } from '../../src/frontends/onnx/proto.js';
import { PROP_RUNS } from '../helpers/paths.js';
import { ONNX, onnxModelOf, onnxNodeOf } from '../helpers/onnx-model.js';
import { verifyError } from '../helpers/errors.js';

/** Run one op (absent optional inputs as null) through the builder and the interpreter. */
function runN(op: string, inputs: readonly (Tensor | null)[], attrs: Attrs = {}, numOutputs = 1): Tensor[] {
  const b = new GraphBuilder('t');
  const vs = inputs.map((x, i) => (x ? b.input(`x${i}`, x.dtype, x.shape) : null));
  const outs = b.opN(op, vs, attrs, numOutputs);
  outs.forEach((o, i) => b.output(o, `y${i}`));
  const feeds: Record<string, Tensor> = {};
  inputs.forEach((x, i) => x && (feeds[`x${i}`] = x));
  const r = interpret(b.build(), feeds);
  return outs.map((_, i) => r[`y${i}`]!);
}
const run = (op: string, inputs: readonly (Tensor | null)[], attrs: Attrs = {}): Tensor => runN(op, inputs, attrs)[0]!;

function infer(op: string, types: readonly [DType, Shape][], attrs: Attrs = {}, numOutputs = 1): TensorType[] {
  const b = new GraphBuilder('t');
  const vs = types.map(([dt, s], i) => b.input(`x${i}`, dt, s));
  return b.opN(op, vs, attrs, numOutputs).map((v) => v.type);
}

const t = (shape: number[], data: number[], dtype: DType = 'f64') => makeTensor(dtype, shape, data);
function close(got: Tensor, shape: number[], want: readonly number[], tol = 1e-12): void {
  expect(got.shape).toEqual(shape);
  expect(got.data.length).toBe(want.length);
  want.forEach((w, i) => {
    const g = got.data[i]!;
    if (Number.isNaN(w)) expect(g).toBeNaN();
    else expect(Math.abs(g - w)).toBeLessThanOrEqual(tol * (1 + Math.abs(w)));
  });
}

describe('softmax / log_softmax', () => {
  const x = t([3], [0, Math.log(2), Math.log(3)]);
  it('softmax of [0, ln 2, ln 3] is [1/6, 2/6, 3/6]; log_softmax its log', () => {
    close(run('softmax', [x]), [3], [1 / 6, 2 / 6, 3 / 6]);
    close(run('log_softmax', [x]), [3], [Math.log(1 / 6), Math.log(2 / 6), Math.log(3 / 6)]);
  });
  it('is stable for large inputs', () => {
    const big = t([3], [1000, 1000 + Math.log(2), 1000 + Math.log(3)]);
    close(run('softmax', [big]), [3], [1 / 6, 2 / 6, 3 / 6], 1e-9);
    close(run('log_softmax', [t([2], [1e4, 1e4])]), [2], [-Math.LN2, -Math.LN2]);
  });
  it('works along a non-last axis', () => {
    const y = run('softmax', [t([2, 2], [0, 5, Math.log(3), 5])], { axis: 0 });
    close(y, [2, 2], [1 / 4, 1 / 2, 3 / 4, 1 / 2]);
  });
  it('rejects integer inputs and bad axes', () => {
    expect(verifyError(() => infer('softmax', [['i32', [2]]])).message).toContain('dtype i32');
    expect(verifyError(() => infer('log_softmax', [['f32', [2, 3]]], { axis: 2 })).message).toContain(
      'axis 2 out of range',
    );
  });
});

describe('layer_norm / rms_norm', () => {
  const x = t([2, 4], [1, 2, 3, 4, 2, 2, 2, 2]);
  it('normalizes the last axis and returns mean / inv_std_dev', () => {
    const eps = 1e-5;
    const [y, mean, inv] = runN('layer_norm', [x, t([4], [1, 1, 1, 1]), null], {}, 3);
    // row 0: mean 2.5, variance 1.25; row 1: constant, variance 0
    const is0 = 1 / Math.sqrt(1.25 + eps);
    const is1 = 1 / Math.sqrt(eps);
    close(y!, [2, 4], [-1.5 * is0, -0.5 * is0, 0.5 * is0, 1.5 * is0, 0, 0, 0, 0]);
    expect(mean!.dtype).toBe('f32');
    close(mean!, [2, 1], [2.5, 2]);
    close(inv!, [2, 1], [Math.fround(is0), Math.fround(is1)]);
  });
  it('applies broadcast scale and bias', () => {
    const y = run('layer_norm', [t([1, 2], [0, 2]), t([1], [3]), t([2], [10, 20])], { epsilon: 0 });
    close(y, [1, 2], [7, 23]);
  });
  it('axis 0 normalizes over every dim', () => {
    const y = run('layer_norm', [t([2, 2], [1, 3, 5, 7]), t([2, 2], [1, 1, 1, 1])], { axis: 0, epsilon: 0 });
    const s = Math.sqrt(5);
    close(y, [2, 2], [-3 / s, -1 / s, 1 / s, 3 / s]);
  });
  it('infers stat shapes and dtypes from symbolic inputs', () => {
    const [y, mean, inv] = infer(
      'layer_norm',
      [
        ['f16', ['batch', 'seq', 64]],
        ['f16', [64]],
      ],
      { stash_type: 'f32' },
      3,
    );
    expect(y).toMatchObject({ dtype: 'f16', shape: ['batch', 'seq', 64] });
    expect(mean).toMatchObject({ dtype: 'f32', shape: ['batch', 'seq', 1] });
    expect(inv).toMatchObject({ dtype: 'f32', shape: ['batch', 'seq', 1] });
  });
  it('rms_norm divides by the root mean square', () => {
    const y = run('rms_norm', [t([2, 2], [3, 4, 1, 1]), t([2], [2, 1])], { epsilon: 0 });
    const r = Math.sqrt(12.5);
    close(y, [2, 2], [(2 * 3) / r, 4 / r, 2, 1]);
    const z = run('rms_norm', [t([1, 2, 2], [1, 1, 1, 1]), t([1], [1])], { axis: 1, epsilon: 3 });
    close(z, [1, 2, 2], [0.5, 0.5, 0.5, 0.5]);
  });
  it('rejects scale shapes that do not broadcast to the normalized shape', () => {
    expect(
      verifyError(() =>
        infer('layer_norm', [
          ['f32', [2, 4]],
          ['f32', [3]],
        ]),
      ).message,
    ).toContain('does not broadcast to the normalized shape');
    expect(
      verifyError(() =>
        infer('rms_norm', [
          ['f32', [2, 4]],
          ['f32', [2, 4]],
        ]),
      ).message,
    ).toContain('scale shape [2,4]');
    expect(
      verifyError(() =>
        infer('rms_norm', [
          ['f32', [2, 4]],
          ['f16', [4]],
        ]),
      ).message,
    ).toContain('dtype f16');
  });
});

describe('matmul', () => {
  const a = t([2, 3], [1, 2, 3, 4, 5, 6]);
  const b = t([3, 2], [7, 8, 9, 10, 11, 12]);
  it('2-D by 2-D', () => {
    close(run('matmul', [a, b]), [2, 2], [58, 64, 139, 154]);
  });
  it('1-D operands are promoted and squeezed', () => {
    close(run('matmul', [t([3], [1, 2, 3]), t([3], [4, 5, 6])]), [], [32]);
    close(run('matmul', [t([3], [1, 0, 1]), b]), [2], [18, 20]);
    close(run('matmul', [a, t([3], [1, 0, 1])]), [2], [4, 10]);
  });
  it('broadcasts batch dims', () => {
    const a3 = t([2, 1, 1, 2], [1, 2, 3, 4]);
    const b3 = t([3, 2, 1], [1, 1, 1, 0, 0, 1]);
    const y = run('matmul', [a3, b3]);
    // a3[i] is a 1x2 row, b3[j] a 2x1 column: y[i,j] = a3[i] . b3[j]
    close(y, [2, 3, 1, 1], [3, 1, 2, 7, 3, 4]);
  });
  it('integer matmul is exact', () => {
    const y = run('matmul', [t([1, 2], [100000, 3], 'i64'), t([2, 1], [100000, -7], 'i64')]);
    expect(y.dtype).toBe('i64');
    expect(Array.from(y.data)).toEqual([1e10 - 21]);
  });
  it('infers symbolic shapes', () => {
    const [y] = infer('matmul', [
      ['f32', ['batch', 'seq', 64]],
      ['f32', [64, 128]],
    ]);
    expect(y!.shape).toEqual(['batch', 'seq', 128]);
    const [z] = infer('matmul', [
      ['f32', ['b', 'h', 'q', 16]],
      ['f32', ['b', 'h', 16, 'k']],
    ]);
    expect(z!.shape).toEqual(['b', 'h', 'q', 'k']);
  });
  it('rejects mismatched inner dims, scalars and mixed dtypes', () => {
    expect(
      verifyError(() =>
        infer('matmul', [
          ['f32', [2, 3]],
          ['f32', [4, 2]],
        ]),
      ).message,
    ).toContain('inner dims differ');
    expect(
      verifyError(() =>
        infer('matmul', [
          ['f32', []],
          ['f32', [2]],
        ]),
      ).message,
    ).toContain('rank >= 1');
    expect(
      verifyError(() =>
        infer('matmul', [
          ['f32', [2, 2, 3]],
          ['f32', [3, 3, 2]],
        ]),
      ).message,
    ).toContain('cannot broadcast');
    expect(
      verifyError(() =>
        infer('matmul', [
          ['f32', [2, 3]],
          ['f16', [3, 2]],
        ]),
      ).message,
    ).toContain('dtype f16');
  });
});

describe('gemm', () => {
  const a = t([2, 2], [1, 2, 3, 4]);
  const b = t([2, 2], [5, 6, 7, 8]);
  it('alpha, beta, transposes, broadcast c', () => {
    close(run('gemm', [a, b, null]), [2, 2], [19, 22, 43, 50]);
    // a^T = [[1,3],[2,4]], b^T = [[5,7],[6,8]]
    close(run('gemm', [a, b, null], { transA: true }), [2, 2], [26, 30, 38, 44]);
    close(run('gemm', [a, b, null], { transB: true }), [2, 2], [17, 23, 39, 53]);
    close(run('gemm', [a, b, t([2], [1, -1])], { alpha: 2, beta: 10 }), [2, 2], [48, 34, 96, 90]);
    close(run('gemm', [a, b, t([], [1])], { transA: true, transB: true }), [2, 2], [24, 32, 35, 47]);
    close(run('gemm', [a, b, t([2, 1], [1, 2])]), [2, 2], [20, 23, 45, 52]);
  });
  it('non-square shapes with transposes', () => {
    // a stored [K=3, M=1] and transposed, b stored [N=2, K=3] and transposed
    const y = run('gemm', [t([3, 1], [1, 2, 3]), t([2, 3], [1, 1, 1, 0, 1, 0]), null], { transA: true, transB: true });
    close(y, [1, 2], [6, 2]);
  });
  it('rejects bad ranks and a c that does not broadcast', () => {
    expect(
      verifyError(() =>
        infer('gemm', [
          ['f32', [2, 2, 2]],
          ['f32', [2, 2]],
        ]),
      ).message,
    ).toContain('2-D');
    expect(
      verifyError(() =>
        infer('gemm', [
          ['f32', [2, 3]],
          ['f32', [2, 3]],
        ]),
      ).message,
    ).toContain('inner dims differ');
    expect(
      verifyError(() =>
        infer('gemm', [
          ['f32', [2, 3]],
          ['f32', [3, 4]],
          ['f32', [3]],
        ]),
      ).message,
    ).toContain('does not broadcast to [2, 4]');
  });
});

describe('matmul_integer', () => {
  const a = t([2, 2], [11, 12, 13, 14], 'u8');
  const b = t([2, 2], [1, 2, 3, 4], 'i8');
  it('without zero points', () => {
    const y = run('matmul_integer', [a, b]);
    expect(y.dtype).toBe('i32');
    close(y, [2, 2], [47, 70, 55, 82]);
  });
  it('scalar, per-row and per-column zero points', () => {
    // a - 10 = [[1,2],[3,4]]
    close(run('matmul_integer', [a, b, t([], [10], 'u8'), null]), [2, 2], [7, 10, 15, 22]);
    // per row: a - [[10],[12]] = [[1,2],[1,2]]; per column: b - [1, 2] = [[0,0],[2,2]]
    close(run('matmul_integer', [a, b, t([2], [10, 12], 'u8'), t([2], [1, 2], 'i8')]), [2, 2], [4, 4, 4, 4]);
  });
  it('trans_b: b given as [N, K], zero points per column as without it', () => {
    // bᵀ of [[1,2],[3,4]] is [[1,3],[2,4]]: same products as above
    const bt = t([2, 2], [1, 3, 2, 4], 'i8');
    close(run('matmul_integer', [a, bt], { trans_b: true }), [2, 2], [47, 70, 55, 82]);
    close(
      run('matmul_integer', [a, bt, t([2], [10, 12], 'u8'), t([2], [1, 2], 'i8')], { trans_b: true }),
      [2, 2],
      [4, 4, 4, 4],
    );
    // [1, 4] · [3, 4]ᵀ: a single row against 3 columns given as rows
    const y = run(
      'matmul_integer',
      [t([1, 4], [1, 2, 3, 4], 'i8'), t([3, 4], [1, 0, 0, 0, 0, 1, 0, 0, -1, -1, -1, -1], 'i8')],
      {
        trans_b: true,
      },
    );
    close(y, [1, 3], [1, 2, -10]);
    expect(
      verifyError(() =>
        infer(
          'matmul_integer',
          [
            ['u8', [2, 3]],
            ['u8', [3]],
          ],
          { trans_b: true },
        ),
      ).message,
    ).toContain('trans_b');
  });
  it('rejects float inputs and mismatched zero-point dtypes', () => {
    expect(
      verifyError(() =>
        infer('matmul_integer', [
          ['f32', [2, 2]],
          ['i8', [2, 2]],
        ]),
      ).message,
    ).toContain('dtype f32');
    expect(
      verifyError(() =>
        infer('matmul_integer', [
          ['u8', [2, 2]],
          ['i8', [2, 2]],
          ['i8', []],
        ]),
      ).message,
    ).toContain('zero point');
    expect(
      verifyError(() =>
        infer('matmul_integer', [
          ['u8', [2, 3]],
          ['u8', [3, 4]],
          ['u8', [3]],
        ]),
      ).message,
    ).toContain('per row');
  });
});

describe('einsum', () => {
  const a = t([2, 3], [1, 2, 3, 4, 5, 6]);
  it('matmul, inner product, transpose, trace, diagonal', () => {
    close(run('einsum', [a, t([3, 2], [7, 8, 9, 10, 11, 12])], { equation: 'ij,jk->ik' }), [2, 2], [58, 64, 139, 154]);
    close(run('einsum', [t([3], [1, 2, 3]), t([3], [4, 5, 6])], { equation: 'i,i' }), [], [32]);
    close(run('einsum', [a], { equation: 'ij->ji' }), [3, 2], [1, 4, 2, 5, 3, 6]);
    // implicit output: labels in ASCII order, so 'ji' is a transpose too
    close(run('einsum', [a], { equation: 'ji' }), [3, 2], [1, 4, 2, 5, 3, 6]);
    const sq = t([3, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    close(run('einsum', [sq], { equation: 'ii' }), [], [15]);
    close(run('einsum', [sq], { equation: 'ii->i' }), [3], [1, 5, 9]);
    close(run('einsum', [a], { equation: 'ij->' }), [], [21]);
    close(run('einsum', [t([], [3])], { equation: '->' }), [], [3]);
  });
  it('batch dims with ellipsis, broadcasting', () => {
    const x = t([2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8]);
    close(run('einsum', [x], { equation: '...ii->...i' }), [2, 2], [1, 4, 5, 8]);
    const y = run('einsum', [x, t([1, 2, 1], [1, 1])], { equation: '...ij,...jk->...ik' });
    close(y, [2, 2, 1], [3, 7, 11, 15]);
    close(run('einsum', [x, t([2], [1, -1])], { equation: 'bij,j->bi' }), [2, 2], [-1, -1, -1, -1]);
  });
  it('infers symbolic shapes', () => {
    const [y] = infer(
      'einsum',
      [
        ['f32', ['b', 'h', 'q', 8]],
        ['f32', ['b', 'h', 'k', 8]],
      ],
      { equation: 'bhqd,bhkd->bhqk' },
    );
    expect(y!.shape).toEqual(['b', 'h', 'q', 'k']);
    const [z] = infer('einsum', [['f32', ['n', 4, 4]]], { equation: '...ii->...i' });
    expect(z!.shape).toEqual(['n', 4]);
  });
  it('rejects malformed equations with located errors', () => {
    expect(verifyError(() => infer('einsum', [['f32', [2, 3]]], { equation: 'ij,jk->ik' })).message).toContain(
      'has 2 operands, got 1 inputs',
    );
    expect(verifyError(() => infer('einsum', [['f32', [2, 3]]], { equation: 'ijk->i' })).message).toContain('rank 2');
    expect(verifyError(() => infer('einsum', [['f32', [2, 3]]], { equation: 'i1->i' })).message).toContain(
      "unexpected character '1'",
    );
    expect(verifyError(() => infer('einsum', [['f32', [2, 3]]], { equation: 'ij->k' })).message).toContain("label 'k'");
    expect(verifyError(() => infer('einsum', [['f32', [2, 3]]], { equation: 'ii->i' })).message).toContain(
      'repeated label',
    );
    expect(
      verifyError(() =>
        infer(
          'einsum',
          [
            ['f32', [2, 3]],
            ['f32', [4, 2]],
          ],
          { equation: 'ij,jk->ik' },
        ),
      ).message,
    ).toContain('sizes 3 and 4');
    expect(verifyError(() => infer('einsum', [['f32', [2, 3]]], { equation: '...j->j' })).message).toContain(
      "needs '...'",
    );
  });
});

// ---- properties ----

const arbMat = (rows: number, cols: number) =>
  fc
    .array(fc.integer({ min: -9, max: 9 }), { minLength: rows * cols, maxLength: rows * cols })
    .map((d) => t([rows, cols], d));
const dims3 = fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }));

describe('nn properties', () => {
  it('matmul = einsum ij,jk->ik = gemm on the transposed operands', () => {
    fc.assert(
      fc.property(
        dims3.chain(([m, k, n]) => fc.tuple(arbMat(m, k), arbMat(k, n))),
        ([a, b]) => {
          const mm = run('matmul', [a, b]);
          expect(Array.from(run('einsum', [a, b], { equation: 'ij,jk->ik' }).data)).toEqual(Array.from(mm.data));
          const at = run('einsum', [a], { equation: 'ij->ji' });
          const bt = run('einsum', [b], { equation: 'ij->ji' });
          const g = run('gemm', [at, bt, null], { transA: true, transB: true });
          expect(Array.from(g.data)).toEqual(Array.from(mm.data));
        },
      ),
      { numRuns: PROP_RUNS },
    );
  });

  it('softmax rows sum to 1 and do not change when a constant is added', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -30, max: 30, noNaN: true }), { minLength: 1, maxLength: 8 }),
        fc.double({ min: -100, max: 100, noNaN: true }),
        (xs, c) => {
          const s = run('softmax', [t([xs.length], xs)]);
          expect(Math.abs(Array.from(s.data).reduce((p, q) => p + q, 0) - 1)).toBeLessThan(1e-12);
          const s2 = run('softmax', [
            t(
              [xs.length],
              xs.map((v) => v + c),
            ),
          ]);
          s.data.forEach((v, i) => expect(Math.abs(v - s2.data[i]!)).toBeLessThan(1e-9));
          const ls = run('log_softmax', [t([xs.length], xs)]);
          ls.data.forEach((v, i) => expect(Math.abs(Math.exp(v) - s.data[i]!)).toBeLessThan(1e-12));
        },
      ),
      { numRuns: PROP_RUNS },
    );
  });

  it('layer_norm with unit scale has zero mean and unit variance per row', () => {
    fc.assert(
      fc.property(
        fc
          .array(fc.double({ min: -100, max: 100, noNaN: true }), { minLength: 2, maxLength: 12 })
          .filter((xs) => xs.some((v) => Math.abs(v - xs[0]!) > 1e-3)),
        (xs) => {
          const n = xs.length;
          const y = run('layer_norm', [t([1, n], xs), t([n], new Array(n).fill(1))], { epsilon: 0 });
          const mean = Array.from(y.data).reduce((p, q) => p + q, 0) / n;
          const v = Array.from(y.data).reduce((p, q) => p + q * q, 0) / n;
          expect(Math.abs(mean)).toBeLessThan(1e-9);
          expect(Math.abs(v - 1)).toBeLessThan(1e-9);
        },
      ),
      { numRuns: PROP_RUNS },
    );
  });
});

// ---- ONNX converters ----

const A = {
  int: (value: number): OnnxAttribute => ({ kind: 'int', value }),
  float: (value: number): OnnxAttribute => ({ kind: 'float', value }),
  str: (value: string): OnnxAttribute => ({ kind: 'string', value }),
};

function onnxModel(
  opType: string,
  opset: number,
  inputs: [string, number[]][],
  outputs: string[],
  attributes: Record<string, OnnxAttribute> = {},
): OnnxModel {
  return onnxModelOf({
    nodes: [
      onnxNodeOf(
        opType,
        inputs.map(([n]) => n),
        outputs,
        attributes,
        'n0',
      ),
    ],
    opset,
    inputs: inputs.map(([name, shape]) => ({ name, elemType: ONNX.DOUBLE, shape })),
    outputs: outputs.filter((o) => o),
  });
}
const runOnnx = (m: OnnxModel, feeds: Record<string, Tensor>) => interpret(importOnnxModel(m).graph, feeds);

describe('ONNX nn converters', () => {
  // [2, 2, 2]: softmax over the last 4 elements of each batch (opset < 13) vs over dim 1 only (opset 13)
  const x = t([2, 2, 2], [0, 0, 0, Math.log(5), 1, 1, 1, 1]);
  it('Softmax before opset 13 coerces to 2-D around the axis; from 13 the axis is one dim', () => {
    const old = runOnnx(onnxModel('Softmax', 11, [['x', [2, 2, 2]]], ['y']), { x })['y']!;
    close(old, [2, 2, 2], [1 / 8, 1 / 8, 1 / 8, 5 / 8, 0.25, 0.25, 0.25, 0.25]);
    const cur = runOnnx(onnxModel('Softmax', 13, [['x', [2, 2, 2]]], ['y'], { axis: A.int(1) }), { x })['y']!;
    close(cur, [2, 2, 2], [0.5, 1 / 6, 0.5, 5 / 6, 0.5, 0.5, 0.5, 0.5]);
    const ls = runOnnx(onnxModel('LogSoftmax', 1, [['x', [2, 2, 2]]], ['y'], { axis: A.int(0) }), { x })['y']!;
    const z = Math.log(3 + 5 + 4 * Math.E);
    close(ls, [2, 2, 2], [-z, -z, -z, Math.log(5) - z, 1 - z, 1 - z, 1 - z, 1 - z]);
  });

  it('LayerNormalization with the optional mean output, InvStdDev skipped', () => {
    const m = onnxModel(
      'LayerNormalization',
      17,
      [
        ['x', [2, 2]],
        ['s', [2]],
      ],
      ['y', 'mean'],
      { epsilon: A.float(0) },
    );
    const r = runOnnx(m, { x: t([2, 2], [1, 3, 2, 6]), s: t([2], [1, 2]) });
    close(r['y']!, [2, 2], [-1, 2, -1, 2]);
    close(r['mean']!, [2, 1], [2, 4]);
  });

  it('Gemm, MatMul, Einsum, RMSNormalization', () => {
    const a = t([2, 2], [1, 2, 3, 4]);
    const g = onnxModel(
      'Gemm',
      13,
      [
        ['a', [2, 2]],
        ['b', [2, 2]],
      ],
      ['y'],
      { transA: A.int(1), alpha: A.float(0.5) },
    );
    close(runOnnx(g, { a, b: a })['y']!, [2, 2], [5, 7, 7, 10]);
    const mm = onnxModel(
      'MatMul',
      13,
      [
        ['a', [2, 2]],
        ['b', [2]],
      ],
      ['y'],
    );
    close(runOnnx(mm, { a, b: t([2], [1, 1]) })['y']!, [2], [3, 7]);
    const es = onnxModel('Einsum', 12, [['a', [2, 2]]], ['y'], { equation: A.str('ii') });
    close(runOnnx(es, { a })['y']!, [], [5]);
    const rn = onnxModel(
      'RMSNormalization',
      23,
      [
        ['a', [2, 2]],
        ['s', [2]],
      ],
      ['y'],
      { epsilon: A.float(0) },
    );
    const r1 = Math.sqrt(2.5);
    const r2 = Math.sqrt(12.5);
    close(runOnnx(rn, { a, s: t([2], [1, 1]) })['y']!, [2, 2], [1 / r1, 2 / r1, 3 / r2, 4 / r2]);
  });
});
