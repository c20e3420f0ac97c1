/**
 * The CUDA backend on a real NVIDIA GPU (NVRTC + driver API through koffi): graphs and the random-graph property vs
 * the float64 reference. Not part of `npm test` (CI has no GPU): `npm run test:gpu`, which bench/gpu.sh runs. Without
 * libcuda the tests skip locally and fail with CI=true, and bench/gpu.sh fails on any skip.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import '../../ir/ops/index.js';
import { makeTensor } from '../../ir/tensor.js';
import { CudaDriver } from '../../src/runtime/cuda/driver.js';
import { checkAgainstReference } from '../helpers/backends.js';
import { PROP_RUNS } from '../helpers/paths.js';
import { arbGraphSeed, randomGraph } from '../helpers/random-graph.js';
import { requireTool } from '../helpers/tools.js';

const noCuda = await requireTool('an NVIDIA driver (libcuda.so.1)', () => {
  try {
    CudaDriver.load();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
});

describe.skipIf(noCuda)('CUDA GPU vs the float64 reference', () => {
  it('elementwise, broadcast, reductions, matmul, softmax, norms', async () => {
    const cases: [string, [string, number[]][], Record<string, unknown>][] = [
      [
        'add',
        [
          ['x', [3, 1, 5]],
          ['y', [4, 5]],
        ],
        {},
      ],
      ['gelu', [['x', [1000]]], {}],
      ['reduce_sum', [['x', [5, 4, 300]]], { axes: [0, 2], keepdims: false }],
      ['softmax', [['x', [3, 1000]]], { axis: -1 }],
      [
        'matmul',
        [
          ['x', [33, 70]],
          ['y', [70, 45]],
        ],
        {},
      ],
      [
        'matmul',
        [
          ['x', [2, 3, 9, 16]],
          ['y', [16, 5]],
        ],
        {},
      ],
    ];
    for (const [op, ins, attrs] of cases) {
      const b = new GraphBuilder(op);
      const feeds: Record<string, ReturnType<typeof makeTensor>> = {};
      const vs = ins.map(([n, shape]) => {
        feeds[n] = makeTensor(
          'f32',
          shape,
          Array.from({ length: shape.reduce((p, q) => p * q, 1) }, () => Math.random() * 4 - 2),
        );
        return b.input(n, 'f32', shape);
      });
      b.output(b.op(op, vs, attrs as never), 'z');
      expect(await checkAgainstReference(b.build(), feeds, { backend: 'cuda' }), op).toEqual([]);
    }
  }, 300_000);

  it('random graphs (f32, f16)', async () => {
    for (const dtype of ['f32', 'f16'] as const) {
      await fc.assert(
        fc.asyncProperty(arbGraphSeed, fc.integer({ min: 1, max: 8 }), async (seed, steps) => {
          const { graph, feeds } = randomGraph(seed, steps, dtype);
          const bad = await checkAgainstReference(graph, feeds, { backend: 'cuda' });
          expect(bad, `seed ${seed} steps ${steps} ${dtype}`).toEqual([]);
        }),
        { numRuns: Math.max(10, Math.round(PROP_RUNS / 2)), verbose: 1 },
      );
    }
  }, 600_000);
});
