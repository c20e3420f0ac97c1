/**
 * The test harness's allowance for ill-conditioned f16 graphs (test/helpers/sensitivity.ts): the reference's own
 * movement under one-ulp changes of its intermediates is large exactly where a norm amplifies rounding, zero where
 * there is nothing to round, and never hides an error the size of a bug.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor } from '../../ir/tensor.js';
import { compareWithReference, tolerance } from '../helpers/compare.js';
import { randomGraph } from '../helpers/random-graph.js';
import { roundingSpread, ulpOf } from '../helpers/sensitivity.js';

const maxOf = (a: ArrayLike<number>) => Array.from(a).reduce((m, x) => Math.max(m, x), 0);

describe('rounding spread of f16 references', () => {
  it('ulpOf: f16 and bf16 spacing, subnormals included', () => {
    expect(ulpOf('f16', 1)).toBe(2 ** -10);
    expect(ulpOf('f16', 0.0625)).toBe(2 ** -14);
    expect(ulpOf('f16', 1.5)).toBe(2 ** -10);
    expect(ulpOf('f16', 2 ** -20)).toBe(2 ** -24);
    expect(ulpOf('f16', 0)).toBe(2 ** -24);
    expect(ulpOf('bf16', 1)).toBe(2 ** -7);
  });

  it('is undefined without f16 intermediates, and small for a well-conditioned chain', () => {
    const b = new GraphBuilder('one');
    const x = b.input('x', 'f16', [4]);
    b.output(b.op('exp', [x]), 'out');
    const g = b.build();
    const feeds = { x: makeTensor('f16', [4], [0.1, 0.2, 0.3, 0.4]) };
    expect(roundingSpread(g, feeds, interpret(g, feeds))).toBeUndefined();

    const c = new GraphBuilder('two');
    const y = c.input('x', 'f16', [4]);
    c.output(c.op('neg', [c.op('exp', [y])]), 'out');
    const g2 = c.build();
    const s = roundingSpread(g2, feeds, interpret(g2, feeds))!['out']!;
    // exp(0.4) ≈ 1.49: one ulp of the intermediate is one ulp of the output
    expect(maxOf(s)).toBeGreaterThan(0);
    expect(maxOf(s)).toBeLessThanOrEqual(2 ** -10);
  });

  it('a layer norm over a softmax of a softmax (found by CI) moves by percents, yet a bug-sized error still fails', () => {
    const { graph, feeds } = randomGraph(1348512904, 3, 'f16', 'rows');
    expect(graph.nodes.map((n) => n.op)).toEqual(['softmax', 'softmax', 'layer_norm']);
    const ref = interpret(graph, feeds);
    const spread = roundingSpread(graph, feeds, ref)!['out']!;
    expect(maxOf(spread)).toBeGreaterThan(0.01); // five times the f16 tolerance
    const out = ref['out']!;
    // a wrong value in one element (0.5 off) and a wrong row (the reference shifted by one row) both still fail
    const tol = { ...tolerance('f16', true), spread };
    const off = makeTensor(
      'f16',
      out.shape,
      Array.from(out.data, (v, i) => (i === 100 ? v + 0.5 : v)),
    );
    expect(compareWithReference('out', off, out, tol)?.reason).toMatch(/element 100/);
    const shifted = makeTensor(
      'f16',
      out.shape,
      Array.from(out.data, (_, i) => out.data[(i + 520) % out.data.length]!),
    );
    expect(compareWithReference('out', shifted, out, tol)).toBeDefined();
  });
});
