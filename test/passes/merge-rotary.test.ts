/** Merged rotary embeddings: before / after IR text, near misses, and merged == unmerged under the reference. */
import { describe, expect, it } from 'vitest';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { verify } from '../../ir/verify.js';
import { mergeRotary } from '../../passes/fuse/index.js';
import { expectSameGraph, ir } from './helpers.js';

const qkv = (qAttrs = '{interleaved=false, num_heads=2}', kPos = '%pos', extra = '') => `graph g {
  input %x: f32[1,3,16]
  input %pos: i64[1,3]
  input %pos2: i64[1,3]
  input %cos: f32[8,2]
  input %sin: f32[8,2]
  %q: f32[1,3,8], %k: f32[1,3,4], %v: f32[1,3,4] = split(%x) {axis=-1, split=[8, 4, 4]}
  %qr: f32[1,3,8] = rotary_embedding(%q, %cos, %sin, %pos) ${qAttrs}
  %kr: f32[1,3,4] = rotary_embedding(%k, %cos, %sin, ${kPos}) {interleaved=false, num_heads=1}
  ${extra}
  output %qr
  output %kr
  output %v
}`;

function feeds(): Record<string, Tensor> {
  const f = (shape: number[], s: number) =>
    makeTensor(
      'f32',
      shape,
      Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i + s)),
    );
  return {
    x: f([1, 3, 16], 1),
    pos: makeTensor('i64', [1, 3], [2, 5, 7]),
    pos2: makeTensor('i64', [1, 3], [0, 1, 2]),
    cos: f([8, 2], 2),
    sin: f([8, 2], 3),
  };
}

describe('merge-rotary', () => {
  it('queries and keys of one split, same caches and positions: one rotary over both, split back', () => {
    const g = ir(qkv());
    expect(mergeRotary(g)).toBe(1);
    verify(g);
    expectSameGraph(
      g,
      `graph g {
        input %x: f32[1,3,16]
        input %pos: i64[1,3]
        input %pos2: i64[1,3]
        input %cos: f32[8,2]
        input %sin: f32[8,2]
        %qk: f32[1,3,12], %v: f32[1,3,4] = split(%x) {axis=-1, split=[12, 4]}
        %r: f32[1,3,12] = rotary_embedding(%qk, %cos, %sin, %pos) {interleaved=false, num_heads=3}
        %qr: f32[1,3,8], %kr: f32[1,3,4] = split(%r) {axis=-1, split=[8, 4]}
        output %qr
        output %kr
        output %v
      }`,
    );
    const want = interpret(ir(qkv()), feeds());
    const got = interpret(g, feeds());
    for (const o of ['qr', 'kr', 'v']) expect(Array.from(got[o]!.data)).toEqual(Array.from(want[o]!.data));
  });

  it('near miss: other positions, a partial rotation, another reader of the keys, interleaved vs not', () => {
    const unchanged = (src: string) => {
      const g = ir(src);
      expect(mergeRotary(g)).toBe(0);
      expectSameGraph(g, src);
    };
    unchanged(qkv(undefined, '%pos2'));
    unchanged(qkv('{interleaved=false, num_heads=2, rotary_embedding_dim=4}')); // stated, not the full default
    unchanged(qkv('{interleaved=true, num_heads=2}'));
    unchanged(qkv(undefined, undefined, '%kk: f32[1,3,4] = neg(%k)\n  output %kk'));
  });
});
