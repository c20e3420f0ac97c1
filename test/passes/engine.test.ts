/** The rewrite engine: matching (bindings, commutativity, constraints), the fixed-point driver and its cost. */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import { verify } from '../../ir/verify.js';
import {
  allEqual,
  applyRules,
  arithmeticRules,
  canonicalize,
  commonSubexpressionElimination,
  constant,
  deadCodeElimination,
  matchAt,
  op,
  rule,
  v,
} from '../../passes/index.js';
import { expectSameGraph, ir, rewrite } from './helpers.js';

describe('patterns', () => {
  const g = ir(`graph g {
    input %x: f32[2]
    input %y: f32[2]
    const %one: f32[] = [1]
    %a: f32[2] = mul(%one, %x)
    %b: f32[2] = add(%x, %x)
    %c: f32[2] = add(%x, %y)
    %d: f32[2] = softmax(%c) {axis=0}
    output %d
  }`);
  const [a, b, c, d] = g.nodes;

  it('binds names, matches commutative ops either way round, checks constants', () => {
    const m = matchAt(op('mul', [v('x'), constant('k', (t) => allEqual(t, 1))]), a!);
    expect(m?.v('x').name).toBe('x');
    expect(m?.v('k').name).toBe('one');
    expect(matchAt(op('mul', [v('x'), constant('k', (t) => allEqual(t, 2))]), a!)).toBeUndefined();
    // non-commutative when asked: the constant is on the left
    expect(matchAt(op('mul', [v('x'), constant('k')], { commutative: false }), a!)).toBeUndefined();
  });

  it('a name bound twice must be the same value', () => {
    expect(matchAt(op('add', [v('x'), v('x')]), b!)).toBeDefined();
    expect(matchAt(op('add', [v('x'), v('x')]), c!)).toBeUndefined();
  });

  it('nested patterns and attribute constraints', () => {
    const p = (axis: number) =>
      op('softmax', [op('add', [v('p'), v('q')], { name: 'sum' })], { attrs: (at) => at['axis'] === axis });
    const m = matchAt(p(0), d!);
    expect(m?.node('sum')).toBe(c);
    expect(matchAt(p(1), d!)).toBeUndefined();
  });
});

describe('fixed-point driver', () => {
  it('rules enable each other until nothing fires', () => {
    // (x·1 + 0)·1 peels off one layer per rewrite
    expectSameGraph(
      rewrite(
        `graph g {
          input %x: f32[3]
          const %one: f32[] = [1]
          const %zero: f32[] = [0]
          %a: f32[3] = mul(%x, %one)
          %b: f32[3] = add(%a, %zero)
          %c: f32[3] = mul(%one, %b)
          %z: f32[3] = exp(%c)
          output %z
        }`,
        arithmeticRules,
      ),
      `graph g {
        input %x: f32[3]
        %z: f32[3] = exp(%x)
        output %z
      }`,
    );
  });

  it('a graph output keeps its name when its producer is rewritten, and stays when only an input could replace it', () => {
    const g = rewrite(
      `graph g {
        input %x: f32[3]
        const %one: f32[] = [1]
        %a: f32[3] = exp(%x)
        %y: f32[3] = mul(%a, %one)
        %w: f32[3] = mul(%x, %one)
        output %y
        output %w
      }`,
      arithmeticRules,
    );
    expect(g.outputs.map((o) => o.name)).toEqual(['y', 'w']);
    expect(g.nodes.map((n) => n.op)).toEqual(['exp', 'mul']);
  });

  it('a user-written rule with a replacement builder', () => {
    // x + x → 2·x
    const twice = rule('add-self', op('add', [v('x'), v('x')]), (m, rw) => {
      const x = m.v('x');
      return rw.op('mul', [x, rw.const(x.type.dtype, [2], [])])[0];
    });
    expectSameGraph(
      rewrite(
        `graph g {
          input %x: f32[3]
          %y: f32[3] = add(%x, %x)
          %z: f32[3] = exp(%y)
          output %z
        }`,
        [twice],
      ),
      `graph g {
        input %x: f32[3]
        const %two: f32[] = [2]
        %y: f32[3] = mul(%x, %two)
        %z: f32[3] = exp(%y)
        output %z
      }`,
    );
  });

  it('canonicalizes a 10k-node graph in well under a second, visiting each node a bounded number of times', () => {
    const N = 10_000;
    const b = new GraphBuilder('chain');
    let x = b.input('x', 'f32', [4]);
    const one = b.const('f32', [1], [], 'one');
    const zero = b.const('f32', [0], [], 'zero');
    for (let i = 0; i < N; i++) {
      // identities to drop, interleaved with real ops that stay: every rewrite sits deep inside a long graph
      x = i % 3 === 0 ? b.mul(x, one) : i % 3 === 1 ? b.add(zero, x) : b.op('neg', [x]);
    }
    b.output(b.exp(x), 'y');
    const g = b.build();
    const t0 = performance.now();
    const stats = applyRules(g, arithmeticRules);
    const ms = performance.now() - t0;
    verify(g);
    expect(g.nodes.length).toBe(Math.floor(N / 3) + 1);
    // a driver that rescans the graph after each rewrite visits ~N²/3 nodes
    expect(stats.visits).toBeLessThan(4 * N);
    expect(ms).toBeLessThan(700);
    const t1 = performance.now();
    canonicalize.run(g, undefined as never);
    expect(performance.now() - t1).toBeLessThan(700);
  });
});

describe('CSE and DCE', () => {
  it('merges equal nodes and equal small constants', () => {
    const g = ir(`graph g {
      input %x: f32[3]
      const %c1: f32[] = [2]
      const %c2: f32[] = [2]
      %a: f32[3] = mul(%x, %c1)
      %b: f32[3] = mul(%x, %c2)
      %s: f32[3] = softmax(%a) {axis=0}
      %t: f32[3] = softmax(%b) {axis=0}
      %y: f32[3] = add(%s, %t)
      output %y
    }`);
    expect(commonSubexpressionElimination.run(g, undefined as never).changed).toBe(true);
    verify(g);
    expectSameGraph(
      g,
      `graph g {
        input %x: f32[3]
        const %c: f32[] = [2]
        %a: f32[3] = mul(%x, %c)
        %s: f32[3] = softmax(%a) {axis=0}
        %y: f32[3] = add(%s, %s)
        output %y
      }`,
    );
  });

  it('near miss: different attributes or inputs stay apart', () => {
    const text = `graph g {
      input %x: f32[3,3]
      %s: f32[3,3] = softmax(%x) {axis=0}
      %t: f32[3,3] = softmax(%x) {axis=1}
      %u: f32[3,3] = transpose(%x) {perm=[1, 0]}
      %w: f32[3,3] = transpose(%u) {perm=[1, 0]}
      %a: f32[3,3] = add(%s, %t)
      %y: f32[3,3] = add(%a, %w)
      output %y
    }`;
    const g = ir(text);
    expect(commonSubexpressionElimination.run(g, undefined as never).changed).toBe(false);
    expectSameGraph(g, text);
  });

  it('two equal graph outputs both keep their nodes (each output keeps its name)', () => {
    const text = `graph g {
      input %x: f32[3]
      %a: f32[3] = exp(%x)
      %b: f32[3] = exp(%x)
      output %a
      output %b
    }`;
    const g = ir(text);
    commonSubexpressionElimination.run(g, undefined as never);
    expectSameGraph(g, text);
  });

  it('DCE drops unread nodes and constants', () => {
    const g = ir(`graph g {
      input %x: f32[3]
      const %c: f32[] = [2]
      %a: f32[3] = mul(%x, %c)
      %b: f32[3] = exp(%x)
      output %b
    }`);
    expect(deadCodeElimination.run(g, undefined as never).changed).toBe(true);
    expectSameGraph(
      g,
      `graph g {
        input %x: f32[3]
        %b: f32[3] = exp(%x)
        output %b
      }`,
    );
  });
});
