/**
 * ONNX export round trip on random graphs (test/helpers/random-graph.ts: elementwise / broadcast chains, reductions,
 * softmax, norms, matmul, transpose / reshape, gather; f32 and f16; static and symbolic dims), also with their
 * matmuls quantized by RTN (matmul_nbits as com.microsoft MatMulNBits): export → import equals the graph (normalized
 * structural hash; at opset 24, where SiLU has a one-op form) and computes the same outputs under the reference
 * interpreter at the default opset. fast-check prints the seed of a failing case; KILN_PROP_RUNS scales.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { quantizeRtn } from '../../passes/quant/index.js';
import { expectSameGraph, expectSameOutputs, roundTrip } from '../helpers/onnx-roundtrip.js';
import { PROP_RUNS } from '../helpers/paths.js';
import { arbFocus, arbGraphSeed, randomGraph, symbolize } from '../helpers/random-graph.js';

describe('random graphs: export → import', () => {
  it('equal graph (opset 24) and equal outputs (default opset)', () => {
    fc.assert(
      fc.property(
        arbGraphSeed,
        fc.integer({ min: 1, max: 8 }),
        fc.constantFrom('f32', 'f16'),
        arbFocus,
        (seed, steps, dt, focus) => {
          const { graph, feeds } = randomGraph(seed, steps, dt as 'f32' | 'f16', focus);
          expectSameGraph(roundTrip(graph, { opset: 24 }).graph, graph);
          const back = roundTrip(graph).graph;
          expectSameOutputs(graph, back, feeds);
          // a second round trip at the default opset is a fixed point
          expectSameGraph(roundTrip(back).graph, back);
        },
      ),
      { numRuns: PROP_RUNS },
    );
  });

  it('symbolic dims survive as dim_params', () => {
    fc.assert(
      fc.property(arbGraphSeed, fc.integer({ min: 1, max: 6 }), (seed, steps) => {
        const { graph, feeds } = randomGraph(seed, steps);
        const sym = symbolize(graph);
        expectSameGraph(roundTrip(sym, { opset: 24 }).graph, sym);
        expectSameOutputs(sym, roundTrip(sym).graph, feeds);
      }),
      { numRuns: Math.max(10, Math.round(PROP_RUNS / 2)) },
    );
  });

  it('with quantized matmuls (RTN 4 / 8 bits, symmetric or not): MatMulNBits round trips', () => {
    fc.assert(
      fc.property(
        arbGraphSeed,
        fc.integer({ min: 2, max: 8 }),
        fc.constantFrom(4, 8),
        fc.boolean(),
        fc.constantFrom(16, 32, 'channel'),
        (seed, steps, bits, symmetric, group) => {
          const { graph, feeds } = randomGraph(seed, steps, 'f32', 'matmul');
          const report = quantizeRtn(graph, { bits: bits as 4 | 8, group: group as 16 | 32 | 'channel', symmetric });
          expect(report.layers.length).toBeGreaterThan(0);
          expectSameGraph(roundTrip(graph, { opset: 24 }).graph, graph);
          expectSameOutputs(graph, roundTrip(graph).graph, feeds);
        },
      ),
      { numRuns: Math.max(10, Math.round(PROP_RUNS / 2)) },
    );
  });
});
