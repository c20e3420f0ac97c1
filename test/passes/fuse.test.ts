/** Elementwise fusion: before / after IR text, near misses, the text round trip, and fused == unfused (reference). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { parseGraph, printGraph, structuralHash } from '../../ir/text.js';
import { verify } from '../../ir/verify.js';
import { cloneGraph } from '../../passes/clone.js';
import { fuseElementwise } from '../../passes/fuse/index.js';
import { randomGraph } from '../helpers/random-graph.js';
import { expectSameGraph, ir } from './helpers.js';

function fuse(text: string, maxInputs?: number): Graph {
  const g = ir(text);
  fuseElementwise(g, { maxInputs });
  verify(g);
  return g;
}

/** Bit-equal tensors (NaN equals NaN): the fused reference rounds every interior value as the unfused graph does. */
function expectSameTensors(a: Record<string, Tensor>, b: Record<string, Tensor>): void {
  expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
  for (const k of Object.keys(a)) {
    expect(b[k]!.shape).toEqual(a[k]!.shape);
    expect(Array.from(b[k]!.data, (x) => (Number.isNaN(x) ? 'NaN' : x))).toEqual(
      Array.from(a[k]!.data, (x) => (Number.isNaN(x) ? 'NaN' : x)),
    );
  }
}

const countOps = (g: Graph, op: string) => g.nodes.filter((n) => n.op === op).length;

describe('fuse-elementwise', () => {
  it('a chain with a broadcast bias and a scalar constant becomes one node', () => {
    const g = fuse(`graph g {
      input %x: f32[2,3]
      input %b: f32[3]
      const %half: f32[] = [0.5]
      %a: f32[2,3] = add(%x, %b) @add_0
      %m: f32[2,3] = mul(%a, %half) @mul_1
      %t: f32[2,3] = tanh(%m) @tanh_2
      %y: f32[2,3] = gelu(%t) {approximate="tanh"} @gelu_3
      output %y
    }`);
    const body = `graph body {
  input %v0: f32[2,3]
  input %v1: f32[3]
  const %v2: f32[] = [0.5]
  %v3: f32[2,3] = add(%v0, %v1) @n0
  %v4: f32[2,3] = mul(%v3, %v2) @n1
  %v5: f32[2,3] = tanh(%v4) @n2
  %v6: f32[2,3] = gelu(%v5) {approximate="tanh"} @n3
  output %v6
}
`;
    expectSameGraph(
      g,
      `graph g {
        input %x: f32[2,3]
        input %b: f32[3]
        %y: f32[2,3] = fused_elementwise(%x, %b) {body=${JSON.stringify(body)}} @gelu_3
        output %y
      }`,
    );
    expect(g.nodes[0]!.name).toBe('gelu_3');
  });

  it('a broadcast producer is inlined: its inputs broadcast to the group output', () => {
    const g = fuse(`graph g {
      input %x: f32[4,5]
      input %c: f32[4,1]
      %e: f32[4,1] = exp(%c)
      %y: f32[4,5] = sub(%x, %e)
      output %y
    }`);
    expect(g.nodes.map((n) => n.op)).toEqual(['fused_elementwise']);
    expect(g.nodes[0]!.inputs.map((x) => x!.name)).toEqual(['x', 'c']);
  });

  it('a diamond inside the group is computed once in the body', () => {
    const g = fuse(`graph g {
      input %x: f32[8]
      %s: f32[8] = sigmoid(%x)
      %a: f32[8] = mul(%s, %x)
      %b: f32[8] = add(%s, %a)
      output %b
    }`);
    expect(g.nodes.map((n) => n.op)).toEqual(['fused_elementwise']);
    expect(g.nodes[0]!.inputs.map((x) => x!.name)).toEqual(['x']);
  });

  it('near miss: a producer with a user outside the group stays materialized', () => {
    const text = `graph g {
      input %x: f32[8]
      %s: f32[8] = exp(%x)
      %a: f32[8] = neg(%s)
      %r: f32[1] = reduce_sum(%s) {axes=[0]}
      output %a
      output %r
    }`;
    expectSameGraph(fuse(text), text);
  });

  it('a shape reader of an interior value moves to a same-shape group input (exporters Shape the scores)', () => {
    const g = fuse(`graph g {
      input %s: f32[b,2,1,n]
      input %m: bool[1,1,1,n]
      const %k: f32[] = [0.5]
      const %neg: f32[] = [-10000]
      %d: f32[b,2,1,n] = div(%s, %k)
      %sh: i64[4] = shape(%d)
      %w: f32[b,2,1,n] = where(%m, %d, %neg)
      output %w
      output %sh
    }`);
    expect(g.nodes.map((n) => n.op)).toEqual(['shape', 'fused_elementwise']);
    expect(g.nodes[0]!.inputs[0]!.name).toBe('s');
  });

  it('near miss: a shape reader with no same-shape value to move to keeps the producer', () => {
    const text = `graph g {
      input %u: f32[1,5]
      input %v: f32[4,1]
      input %t: f32[4,5]
      %e: f32[4,5] = add(%u, %v)
      %sh: i64[2] = shape(%e)
      %y: f32[4,5] = add(%e, %t)
      output %y
      output %sh
    }`;
    expect(fuse(text).nodes.map((n) => n.op)).toEqual(['add', 'shape', 'add']);
  });

  it('near miss: a reduction in between splits the chain', () => {
    const g = fuse(`graph g {
      input %x: f32[4,8]
      %e: f32[4,8] = exp(%x)
      %n: f32[4,8] = neg(%e)
      %r: f32[4,1] = reduce_sum(%n) {axes=[1], keepdims=true}
      %t: f32[4,1] = tanh(%r)
      %y: f32[4,1] = relu(%t)
      output %y
    }`);
    expect(g.nodes.map((n) => n.op)).toEqual(['fused_elementwise', 'reduce_sum', 'fused_elementwise']);
  });

  it('near miss: an integer chain and a graph-output producer are left alone', () => {
    const ints = `graph g {
      input %x: i32[8]
      %a: i32[8] = neg(%x)
      %b: i32[8] = abs(%a)
      output %b
    }`;
    expectSameGraph(fuse(ints), ints);
    const out = `graph g {
      input %x: f32[8]
      %a: f32[8] = exp(%x)
      %b: f32[8] = neg(%a)
      output %a
      output %b
    }`;
    expectSameGraph(fuse(out), out);
  });

  it('near miss: a boolean consumer ends the group (its float producer stays a plain node)', () => {
    const text = `graph g {
      input %x: f32[4,5]
      input %y: f32[4,5]
      %e: f32[4,5] = exp(%x)
      %w: bool[4,5] = less(%e, %y)
      output %w
    }`;
    expectSameGraph(fuse(text), text);
  });

  it('a group reads at most maxInputs values', () => {
    const text = `graph g {
      input %a: f32[8]
      input %b: f32[8]
      input %c: f32[8]
      input %d: f32[8]
      %s1: f32[8] = add(%a, %b)
      %s2: f32[8] = add(%s1, %c)
      %s3: f32[8] = add(%s2, %d)
      output %s3
    }`;
    const g = fuse(text, 3);
    expect(g.nodes.map((n) => n.op)).toEqual(['add', 'fused_elementwise']);
    expect(g.nodes[1]!.inputs.length).toBe(3);
    expect(countOps(fuse(text, 4), 'fused_elementwise')).toBe(1);
  });

  it('IR text round trip keeps the fused node (and its body) exactly', () => {
    const g = fuse(`graph g {
      input %x: f32[batch,16]
      input %b: f32[16]
      input %cond: bool[batch,16]
      const %k: f32[1] = [-1.5e-7]
      %a: f32[batch,16] = add(%x, %b)
      %c: f32[batch,16] = clip(%a, %k)
      %w: f32[batch,16] = where(%cond, %c, %x)
      output %w
    }`);
    expect(countOps(g, 'fused_elementwise')).toBe(1);
    const back = parseGraph(printGraph(g));
    verify(back);
    expect(printGraph(back)).toBe(printGraph(g));
    expect(structuralHash(back)).toBe(structuralHash(g));
    const feeds = {
      x: makeTensor(
        'f32',
        [3, 16],
        Array.from({ length: 48 }, (_, i) => Math.sin(i) * 3),
      ),
      b: makeTensor(
        'f32',
        [16],
        Array.from({ length: 16 }, (_, i) => i / 7 - 1),
      ),
      cond: makeTensor(
        'bool',
        [3, 16],
        Array.from({ length: 48 }, (_, i) => (i % 3 === 0 ? 1 : 0)),
      ),
    };
    expectSameTensors(interpret(g, feeds), interpret(back, feeds));
  });

  it('a malformed body fails verification with a located error', () => {
    expect(() =>
      ir(`graph g {
        input %x: f32[4]
        %y: f32[4] = fused_elementwise(%x) {body="graph b { input %a: f32[4] %c: f32[4] = nope(%a) output %c }"} @f
        output %y
      }`),
    ).toThrow(/fused_elementwise body/);
  });

  let groups = 0;
  it('property: fused == unfused under the reference interpreter (random graphs, f32 and f16)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 30 }), fc.boolean(), (seed, half) => {
        const { graph, feeds } = randomGraph(seed, 6, half ? 'f16' : 'f32');
        const fused = cloneGraph(graph);
        groups += fuseElementwise(fused);
        verify(fused);
        expect(fused.nodes.length).toBeLessThanOrEqual(graph.nodes.length);
        expectSameTensors(interpret(graph, feeds), interpret(fused, feeds));
      }),
      { numRuns: 60 },
    );
    expect(groups).toBeGreaterThan(10); // the property is about fused graphs: most samples must fuse something
  });
});
