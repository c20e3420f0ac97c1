/**
 * Concat fusion: before / after IR text (the fused body, the views other readers get), near misses where it must not
 * fire, and fused == unfused under the reference (exactly: a fused concat copies elements).
 */
import { describe, expect, it } from 'vitest';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { printGraph } from '../../ir/text.js';
import { verify } from '../../ir/verify.js';
import { fuseConcats } from '../../passes/fuse/index.js';
import { expectSameGraph, ir } from './helpers.js';

/** GPT-2's KV cache: present = stack(transposeᵀ(past_k ++ k), past_v ++ v); the attention reads both inner concats. */
const kvCache = `graph g {
  input %past: f32[2,1,2,3,2]
  input %k: f32[1,2,1,2]
  input %v: f32[1,2,1,2]
  input %q: f32[1,2,1,2]
  const %i0: i64[] = [0]
  const %i1: i64[] = [1]
  %pk: f32[1,2,3,2] = gather(%past, %i0) {axis=0}
  %pv: f32[1,2,3,2] = gather(%past, %i1) {axis=0}
  %pkt: f32[1,2,2,3] = transpose(%pk) {perm=[0, 1, 3, 2]}
  %kt: f32[1,2,2,1] = transpose(%k) {perm=[0, 1, 3, 2]}
  %kc: f32[1,2,2,4] = concat(%pkt, %kt) {axis=-1}
  %vc: f32[1,2,4,2] = concat(%pv, %v) {axis=-2}
  %kk: f32[1,2,4,2] = transpose(%kc) {perm=[0, 1, 3, 2]}
  %ku: f32[1,1,2,4,2] = unsqueeze(%kk) {axes=[0]}
  %vu: f32[1,1,2,4,2] = unsqueeze(%vc) {axes=[0]}
  %present: f32[2,1,2,4,2] = concat(%ku, %vu) {axis=0}
  %y: f32[1,2,1,2] = attention(%q, %kk, %vc)
  output %y
  output %present
}`;

const kvBody = `graph body {
  input %v0: f32[1,2,2,3]
  input %v1: f32[1,2,2,1]
  input %v2: f32[1,2,3,2]
  input %v3: f32[1,2,1,2]
  %v4: f32[1,2,2,4] = concat(%v0, %v1) {axis=-1} @n0
  %v5: f32[1,2,4,2] = concat(%v2, %v3) {axis=-2} @n1
  %v6: f32[1,2,4,2] = transpose(%v4) {perm=[0, 1, 3, 2]} @n2
  %v7: f32[1,1,2,4,2] = unsqueeze(%v6) {axes=[0]} @n3
  %v8: f32[1,1,2,4,2] = unsqueeze(%v5) {axes=[0]} @n4
  %v9: f32[2,1,2,4,2] = concat(%v7, %v8) {axis=0} @n5
  output %v9
}`;

function feedsFor(src: string): Record<string, Tensor> {
  const g = ir(src);
  const feeds: Record<string, Tensor> = {};
  let s = 1;
  for (const x of g.inputs) {
    const shape = x.type.shape as number[];
    const n = shape.reduce((a, b) => a * b, 1);
    feeds[x.name] = makeTensor(
      'f32',
      shape,
      Array.from({ length: n }, (_, i) => Math.sin(i * 1.7 + s++)),
    );
  }
  return feeds;
}

function expectSameOutputs(before: string, after: ReturnType<typeof ir>): void {
  const feeds = feedsFor(before);
  const want = interpret(ir(before), feeds);
  const got = interpret(after, feeds);
  for (const [k, t] of Object.entries(want)) expect(Array.from(got[k]!.data)).toEqual(Array.from(t.data));
}

describe('fuse-concat', () => {
  it('a KV cache stack: one fused_injective, and the attention reads its keys / values as views of present', () => {
    const g = ir(kvCache);
    expect(fuseConcats(g)).toBe(1);
    verify(g);
    expectSameGraph(
      g,
      `graph g {
        input %past: f32[2,1,2,3,2]
        input %k: f32[1,2,1,2]
        input %v: f32[1,2,1,2]
        input %q: f32[1,2,1,2]
        const %i0: i64[] = [0]
        const %i1: i64[] = [1]
        const %s0: i64[1] = [0]
        const %e0: i64[1] = [1]
        const %a0: i64[1] = [0]
        const %s1: i64[1] = [1]
        const %e1: i64[1] = [2]
        const %a1: i64[1] = [0]
        %pk: f32[1,2,3,2] = gather(%past, %i0) {axis=0}
        %pv: f32[1,2,3,2] = gather(%past, %i1) {axis=0}
        %pkt: f32[1,2,2,3] = transpose(%pk) {perm=[0, 1, 3, 2]}
        %kt: f32[1,2,2,1] = transpose(%k) {perm=[0, 1, 3, 2]}
        %present: f32[2,1,2,4,2] = fused_injective(%pkt, %kt, %pv, %v) {body=${JSON.stringify(printGraph(ir(kvBody)))}}
        %kpart: f32[1,1,2,4,2] = slice(%present, %s0, %e0, %a0)
        %kk: f32[1,2,4,2] = squeeze(%kpart) {axes=[0]}
        %vpart: f32[1,1,2,4,2] = slice(%present, %s1, %e1, %a1)
        %vc: f32[1,2,4,2] = squeeze(%vpart) {axes=[0]}
        %y: f32[1,2,1,2] = attention(%q, %kk, %vc)
        output %y
        output %present
      }`,
    );
    expectSameOutputs(kvCache, g);
  });

  it('a reshape on the chain is taken back by a reshape to its input shape', () => {
    const src = `graph g {
      input %a: f32[2,3]
      input %b: f32[2,1]
      input %c: f32[6]
      const %shape: i64[1] = [8]
      %ab: f32[2,4] = concat(%a, %b) {axis=1}
      %flat: f32[8] = reshape(%ab, %shape)
      %all: f32[14] = concat(%c, %flat) {axis=0}
      %twice: f32[2,4] = add(%ab, %ab)
      output %all
      output %twice
    }`;
    const g = ir(src);
    expect(fuseConcats(g)).toBe(1);
    verify(g);
    expect(g.nodes.map((n) => n.op)).toEqual(['fused_injective', 'slice', 'reshape', 'add']);
    expect(g.nodes[2]!.outputs[0]!.type.shape).toEqual([2, 4]);
    expectSameOutputs(src, g);
  });

  it('near miss: a concat of plain inputs is left alone', () => {
    const src = `graph g {
      input %a: f32[2,3]
      input %b: f32[2,1]
      %t: f32[3,2] = transpose(%a) {perm=[1, 0]}
      %u: f32[1,2] = transpose(%b) {perm=[1, 0]}
      %y: f32[4,2] = concat(%t, %u) {axis=0}
      output %y
    }`;
    const g = ir(src);
    expect(fuseConcats(g)).toBe(0);
    expectSameGraph(g, src);
  });

  it('near miss: an inner concat that is a graph output stays a kernel of its own', () => {
    const src = `graph g {
      input %a: f32[2,3]
      input %b: f32[2,1]
      %ab: f32[2,4] = concat(%a, %b) {axis=1}
      %y: f32[4,4] = concat(%ab, %ab) {axis=0}
      output %y
      output %ab
    }`;
    const g = ir(src);
    expect(fuseConcats(g)).toBe(0);
    expectSameGraph(g, src);
  });

  it('near miss: another reader upstream of the outer concat keeps the inner one out (a view would be a cycle)', () => {
    const src = `graph g {
      input %a: f32[2,3]
      input %b: f32[2,1]
      %ab: f32[2,4] = concat(%a, %b) {axis=1}
      %n: f32[2,4] = neg(%ab)
      %y: f32[4,4] = concat(%ab, %n) {axis=0}
      output %y
    }`;
    const g = ir(src);
    expect(fuseConcats(g)).toBe(0);
    expectSameGraph(g, src);
  });

  it('near miss: a part at a symbolic offset with another reader stays out; without one it joins', () => {
    const at = (first: 'c' | 'd', extra: string) => `graph g {
      input %a: f32[2,n]
      input %b: f32[2,1]
      input %c: f32[2,3]
      input %d: f32[2,m]
      %ab: f32[2,"n+1"] = concat(%a, %b) {axis=1}
      %y: f32[2,${first === 'c' ? '"n+1+3"' : '"m+n+1"'}] = concat(%${first}, %ab) {axis=1}
      %z: f32[2,${extra === '%ab' ? '"n+1"' : 'n'}] = neg(${extra})
      output %y
      output %z
    }`;
    // after %c: offset 3, static — it joins and %z reads a slice view
    const g1 = ir(at('c', '%ab'));
    expect(fuseConcats(g1)).toBe(1);
    expect(g1.nodes.map((n) => n.op)).toEqual(['fused_injective', 'slice', 'neg']);
    // after %d: offset m — the view cannot be written, so %ab stays a kernel of its own
    const src = at('d', '%ab');
    const g2 = ir(src);
    expect(fuseConcats(g2)).toBe(0);
    expectSameGraph(g2, src);
    // the same with no other reader of %ab: no view needed, it joins
    expect(fuseConcats(ir(at('d', '%a')))).toBe(1);
  });
});
