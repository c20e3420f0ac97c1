/**
 * Backend equivalence on WebGPU: random well-typed graphs (elementwise and broadcast chains, reductions over random
 * axes, matmul, softmax, layer / RMS norm, gather, transpose / reshape; shapes with 1 and odd sizes) run as WGSL on the
 * device and are compared with the float64 reference (rel-L2 and elementwise tolerance; outputs poisoned first).
 * fast-check prints the seed of a failing case; KILN_PROP_RUNS raises the number of cases.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { interpret } from '../../ir/interpret.js';
import { makeTensor } from '../../ir/tensor.js';
import { compile } from '../../src/session.js';
import { checkAgainstReference, compareWithReference, skipWebgpu, tolerance } from '../helpers/backends.js';
import { PROP_RUNS } from '../helpers/paths.js';
import { arbGraphSeed, f32Twin, randomGraph } from '../helpers/random-graph.js';

const noGpu = await skipWebgpu();
const runs = Math.max(10, Math.round(PROP_RUNS / 2));

describe.skipIf(noGpu)('random graphs on WebGPU match the float64 reference', () => {
  it('f32', async () => {
    await fc.assert(
      fc.asyncProperty(arbGraphSeed, fc.integer({ min: 1, max: 8 }), async (seed, steps) => {
        const { graph, feeds } = randomGraph(seed, steps);
        expect(await checkAgainstReference(graph, feeds, { backend: 'webgpu', longReduction: true })).toEqual([]);
      }),
      { numRuns: runs, verbose: 1 },
    );
  }, 600_000);

  it('f16 with shader-f16', async () => {
    await fc.assert(
      fc.asyncProperty(arbGraphSeed, fc.integer({ min: 1, max: 5 }), async (seed, steps) => {
        const { graph, feeds } = randomGraph(seed, steps, 'f16');
        expect(await checkAgainstReference(graph, feeds, { backend: 'webgpu' })).toEqual([]);
      }),
      { numRuns: Math.max(8, Math.round(runs / 2)), verbose: 1 },
    );
  }, 600_000);

  // Without shader-f16 the device stores f16 tensors as f32 and skips f16 rounding between ops: it matches the f32
  // twin of the graph (f32 arithmetic on the same f16 data) to f16 output precision, at any depth.
  it('f16 without shader-f16 (f32 fallback) matches f32 arithmetic on the f16 data', async () => {
    await fc.assert(
      fc.asyncProperty(arbGraphSeed, fc.integer({ min: 1, max: 8 }), async (seed, steps) => {
        const { graph, feeds } = randomGraph(seed, steps, 'f16');
        const twin = f32Twin(graph, feeds);
        const ref = interpret(twin.graph, twin.feeds)['out']!;
        const session = await compile(graph, { backend: 'webgpu', disableF16: true, poison: true });
        try {
          const got = (await session.run(feeds))['out']!;
          const want = makeTensor('f16', ref.shape, ref.data); // the device's result is read back as f16
          expect(compareWithReference('out', got, want, tolerance('f16'))).toBeUndefined();
        } finally {
          session.dispose();
        }
      }),
      { numRuns: Math.max(8, Math.round(runs / 2)), verbose: 1 },
    );
  }, 600_000);
});
