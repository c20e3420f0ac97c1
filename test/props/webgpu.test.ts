/**
 * Backend equivalence on WebGPU: random well-typed graphs (elementwise and broadcast chains, reductions over random
 * axes, matmul, softmax, layer / RMS norm, gather, transpose / reshape; shapes with 1 and odd sizes) run as WGSL on the
 * device and are compared with the float64 reference (rel-L2 and elementwise tolerance; outputs poisoned first).
 * fast-check prints the seed of a failing case; KILN_PROP_RUNS raises the number of cases.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkAgainstReference, skipWebgpu } from '../helpers/backends.js';
import { PROP_RUNS } from '../helpers/paths.js';
import { arbGraphSeed, randomGraph } from '../helpers/random-graph.js';

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

  for (const disableF16 of [false, true]) {
    it(`f16 ${disableF16 ? 'without shader-f16 (f32 fallback)' : 'with shader-f16'}`, async () => {
      await fc.assert(
        fc.asyncProperty(arbGraphSeed, fc.integer({ min: 1, max: 5 }), async (seed, steps) => {
          const { graph, feeds } = randomGraph(seed, steps, 'f16');
          expect(await checkAgainstReference(graph, feeds, { backend: 'webgpu', disableF16 })).toEqual([]);
        }),
        { numRuns: Math.max(8, Math.round(runs / 2)), verbose: 1 },
      );
    }, 600_000);
  }
});
