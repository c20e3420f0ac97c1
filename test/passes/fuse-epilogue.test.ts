/** Epilogue fusion: before / after IR text, near misses, and fused == unfused under the reference interpreter. */
import { describe, expect, it } from 'vitest';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { printGraph } from '../../ir/text.js';
import { verify } from '../../ir/verify.js';
import { cloneGraph } from '../../passes/clone.js';
import { fuseElementwise, fuseEpilogues } from '../../passes/fuse/index.js';
import { expectSameGraph, ir } from './helpers.js';

function fuse(text: string): Graph {
  const g = ir(text);
  fuseElementwise(g);
  fuseEpilogues(g);
  verify(g);
  return g;
}

function randomFeeds(g: Graph, seed: number): Record<string, Tensor> {
  let a = seed;
  const feeds: Record<string, Tensor> = {};
  for (const v of g.inputs) {
    const shape = v.type.shape as number[];
    const n = shape.reduce((p, d) => p * d, 1);
    feeds[v.name] = makeTensor(
      v.type.dtype,
      shape,
      Array.from({ length: n }, () => ((a = (a * 1103515245 + 12345) % 2147483648), (a / 2147483648) * 4 - 2)),
    );
  }
  return feeds;
}

/** The fused graph's reference equals the original's, bit for bit. */
function expectSameReference(before: string): Graph {
  const g0 = ir(before);
  const g1 = fuse(before);
  const feeds = randomFeeds(g0, 5);
  const a = interpret(g0, feeds);
  const b = interpret(g1, feeds);
  for (const o of g0.outputs) expect(Array.from(b[o.name]!.data)).toEqual(Array.from(a[o.name]!.data));
  return g1;
}

describe('fuse-epilogue', () => {
  // the group's inputs keep the order elementwise fusion gave them (its breadth-first walk from the root)
  it('matmul + bias + gelu + residual becomes one fused_contraction (the group inlined after the product)', () => {
    const g = fuse(`graph g {
      input %x: f32[2,4,8]
      input %w: f32[8,6]
      input %b: f32[6]
      input %r: f32[2,4,6]
      %m: f32[2,4,6] = matmul(%x, %w) @mm
      %a: f32[2,4,6] = add(%m, %b) @bias
      %h: f32[2,4,6] = gelu(%a) {approximate="none"} @act
      %y: f32[2,4,6] = add(%h, %r) @res
      output %y
    }`);
    const body = `graph body {
  input %v0: f32[2,4,8]
  input %v1: f32[8,6]
  input %v2: f32[2,4,6]
  input %v3: f32[6]
  %v4: f32[2,4,6] = matmul(%v0, %v1) @n0
  %v5: f32[2,4,6] = add(%v4, %v3) @n1
  %v6: f32[2,4,6] = gelu(%v5) {approximate="none"} @n2
  %v7: f32[2,4,6] = add(%v6, %v2) @n3
  output %v7
}
`;
    expectSameGraph(
      g,
      `graph g {
        input %x: f32[2,4,8]
        input %w: f32[8,6]
        input %b: f32[6]
        input %r: f32[2,4,6]
        %y: f32[2,4,6] = fused_contraction(%x, %w, %r, %b) {body=${JSON.stringify(body)}} @res
        output %y
      }`,
    );
    expect(printGraph(g)).toContain('@res');
  });

  it('a gemm with its C input and a single fusible reader; the product read twice stays one value', () => {
    const g = expectSameReference(`graph g {
      input %x: f32[5,8]
      input %w: f32[6,8]
      input %c: f32[6]
      %m: f32[5,6] = gemm(%x, %w, %c) {transB=true, alpha=0.5} @mm
      %s: f32[5,6] = sigmoid(%m)
      %y: f32[5,6] = mul(%m, %s)
      output %y
    }`);
    expect(g.nodes.map((n) => n.op)).toEqual(['fused_contraction']);
    expect(g.nodes[0]!.inputs.map((v) => v!.name)).toEqual(['x', 'w', 'c']);
  });

  it('a 2-D product reshaped back to [batch, seq, N] before its reader: the reshape joins the body (-1 for batch)', () => {
    const src = `graph g {
      input %x: f32[b,4]
      input %w: f32[4,6]
      input %c: f32[6]
      input %r: f32[b,1,6]
      const %s: i64[3] = [-1, 1, 6]
      %m: f32[b,6] = gemm(%x, %w, %c) @proj
      %y3: f32[b,1,6] = reshape(%m, %s) @back
      %y: f32[b,1,6] = add(%r, %y3) @res
      output %y
    }`;
    const g = fuse(src);
    const body = `graph body {
  input %v0: f32[b,4]
  input %v1: f32[4,6]
  input %v2: f32[6]
  input %v3: f32[b,1,6]
  const %v5: i64[3] = [-1, 1, 6]
  %v4: f32[b,6] = gemm(%v0, %v1, %v2) @n0
  %v6: f32[b,1,6] = reshape(%v4, %v5) @nr
  %v7: f32[b,1,6] = add(%v3, %v6) @n1
  output %v7
}
`;
    expectSameGraph(
      g,
      `graph g {
        input %x: f32[b,4]
        input %w: f32[4,6]
        input %c: f32[6]
        input %r: f32[b,1,6]
        %y: f32[b,1,6] = fused_contraction(%x, %w, %c, %r) {body=${JSON.stringify(body)}} @res
        output %y
      }`,
    );
    const feeds = randomFeeds(ir(src.replace(/\bb\b/g, '3').replace('%s: i64[3]', '%s: i64[3]')), 9);
    const a = interpret(ir(src), feeds);
    expect(Array.from(interpret(g, feeds)['y']!.data)).toEqual(Array.from(a['y']!.data));
  });

  it('near misses: a product that is a graph output, read twice, broadcast up, or integer is left alone', () => {
    for (const src of [
      // graph output
      `graph g { input %x: f32[3,4]
        input %w: f32[4,5]
        %m: f32[3,5] = matmul(%x, %w)
        %y: f32[3,5] = relu(%m)
        output %y
        output %m }`,
      // two readers
      `graph g { input %x: f32[3,4]
        input %w: f32[4,5]
        %m: f32[3,5] = matmul(%x, %w)
        %y: f32[3,5] = relu(%m)
        %z: f32[3,5] = neg(%m)
        output %y
        output %z }`,
      // the reader broadcasts the product up to a bigger shape
      `graph g { input %x: f32[3,4]
        input %w: f32[4,5]
        input %r: f32[2,3,5]
        %m: f32[3,5] = matmul(%x, %w)
        %y: f32[2,3,5] = add(%m, %r)
        output %y }`,
      // a 1-D operand (the product has no M axis)
      `graph g { input %x: f32[4]
        input %w: f32[4,5]
        %m: f32[5] = matmul(%x, %w)
        %y: f32[5] = relu(%m)
        output %y }`,
      // integer
      `graph g { input %x: i32[3,4]
        input %w: i32[4,5]
        %m: i32[3,5] = matmul(%x, %w)
        %y: i32[3,5] = neg(%m)
        output %y }`,
    ]) {
      const g = fuse(src);
      expect(
        g.nodes.some((n) => n.op === 'fused_contraction'),
        src,
      ).toBe(false);
    }
  });

  it('fused == unfused under the reference (batched matmul, broadcast extras, f16 interior rounding)', () => {
    expectSameReference(`graph g {
      input %x: f16[3,5,7]
      input %w: f16[3,7,4]
      input %s: f16[3,1,1]
      input %b: f16[4]
      %m: f16[3,5,4] = matmul(%x, %w)
      %t: f16[3,5,4] = mul(%m, %s)
      %u: f16[3,5,4] = add(%t, %b)
      %y: f16[3,5,4] = tanh(%u)
      output %y
    }`);
    const g = cloneGraph(
      ir(`graph g { input %x: f32[2,3]
      input %w: f32[3,3]
      %m: f32[2,3] = matmul(%x, %w)
      %y: f32[2,3] = exp(%m)
      output %y }`),
    );
    expect(fuseEpilogues(g)).toBe(1);
  });
});
