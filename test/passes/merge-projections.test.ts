/** Merged projections: before / after IR text, near misses, and merged == unmerged under the reference. */
import { describe, expect, it } from 'vitest';
import { interpret } from '../../ir/interpret.js';
import { makeTensor } from '../../ir/tensor.js';
import { verify } from '../../ir/verify.js';
import { mergeProjections } from '../../passes/fuse/index.js';
import { optimize } from '../../passes/manager.js';
import { expectSameGraph, ir } from './helpers.js';

const qkv = `graph g {
  input %x: f32[2,3]
  const %wq: f32[3,2] = [1, 2, 3, 4, 5, 6]
  const %wk: f32[3,1] = [7, 8, 9]
  const %wv: f32[3,2] = [-1, -2, -3, -4, -5, -6]
  %q: f32[2,2] = matmul(%x, %wq) @mq
  %k: f32[2,1] = matmul(%x, %wk) @mk
  %v: f32[2,2] = matmul(%x, %wv) @mv
  %s: f32[2,2] = add(%q, %v) @sum
  output %s
  output %k
}`;

describe('merge-projections', () => {
  it('three projections of one activation: one matmul by the concatenated weights, split into the old values', () => {
    const g = ir(qkv);
    expect(mergeProjections(g)).toBe(1);
    verify(g);
    expectSameGraph(
      g,
      `graph g {
        input %x: f32[2,3]
        const %w: f32[3,5] = [1, 2, 7, -1, -2, 3, 4, 8, -3, -4, 5, 6, 9, -5, -6]
        %m: f32[2,5] = matmul(%x, %w)
        %q: f32[2,2], %k: f32[2,1], %v: f32[2,2] = split(%m) {axis=-1, split=[2, 1, 2]}
        %s: f32[2,2] = add(%q, %v)
        output %s
        output %k
      }`,
    );
    expect(g.outputs.map((o) => o.name)).toEqual(['s', 'k']); // graph outputs keep their names
    const feeds = { x: makeTensor('f32', [2, 3], [1, -2, 0.5, 3, 0.25, -1]) };
    const want = interpret(ir(qkv), feeds);
    const got = interpret(g, feeds);
    for (const o of ['s', 'k']) expect(Array.from(got[o]!.data)).toEqual(Array.from(want[o]!.data));
  });

  it('projections that each add their own bias: the biases merge too, and the epilogue takes the one add', () => {
    const src = `graph g {
      input %x: f32[2,3]
      const %wq: f32[3,2] = [1, 2, 3, 4, 5, 6]
      const %wk: f32[3,1] = [7, 8, 9]
      const %bq: f32[2] = [0.5, -0.5]
      const %bk: f32[1] = [2]
      %q: f32[2,2] = matmul(%x, %wq)
      %k: f32[2,1] = matmul(%x, %wk)
      %qb: f32[2,2] = add(%q, %bq)
      %kb: f32[2,1] = add(%bk, %k)
      output %qb
      output %kb
    }`;
    const g = ir(src);
    expect(mergeProjections(g)).toBe(1);
    verify(g);
    expectSameGraph(
      g,
      `graph g {
        input %x: f32[2,3]
        const %w: f32[3,3] = [1, 2, 7, 3, 4, 8, 5, 6, 9]
        const %b: f32[3] = [0.5, -0.5, 2]
        %m: f32[2,3] = matmul(%x, %w)
        %s: f32[2,3] = add(%m, %b)
        %qb: f32[2,2], %kb: f32[2,1] = split(%s) {axis=-1, split=[2, 1]}
        output %qb
        output %kb
      }`,
    );
    const feeds = { x: makeTensor('f32', [2, 3], [1, -2, 0.5, 3, 0.25, -1]) };
    const want = interpret(ir(src), feeds);
    const got = interpret(optimize(ir(src)), feeds);
    for (const o of ['qb', 'kb']) expect(Array.from(got[o]!.data)).toEqual(Array.from(want[o]!.data));
    expect(optimize(ir(src)).nodes.map((n) => n.op)).toEqual(['fused_contraction', 'split']);
  });

  it('near misses: different activations, a weight that is not a constant, another dtype, a single projection', () => {
    for (const src of [
      `graph g { input %x: f32[2,3]
        input %y: f32[2,3]
        const %a: f32[3,1] = [1, 2, 3]
        const %b: f32[3,1] = [4, 5, 6]
        %p: f32[2,1] = matmul(%x, %a)
        %q: f32[2,1] = matmul(%y, %b)
        output %p
        output %q }`,
      `graph g { input %x: f32[2,3]
        input %w: f32[3,1]
        const %a: f32[3,1] = [1, 2, 3]
        %p: f32[2,1] = matmul(%x, %a)
        %q: f32[2,1] = matmul(%x, %w)
        output %p
        output %q }`,
      `graph g { input %x: f32[2,3]
        const %a: f32[3,1] = [1, 2, 3]
        const %b: f16[3,1] = [4, 5, 6]
        %p: f32[2,1] = matmul(%x, %a)
        %h: f16[2,3] = cast(%x) {to="f16"}
        %q: f16[2,1] = matmul(%h, %b)
        output %p
        output %q }`,
      `graph g { input %x: f32[2,3]
        const %a: f32[3,1] = [1, 2, 3]
        %p: f32[2,1] = matmul(%x, %a)
        output %p }`,
    ]) {
      const g = ir(src);
      expect(mergeProjections(g), src).toBe(0);
    }
  });
  const nbits = `graph g {
    input %x: f32[1,32]
    const %a: u8[2,2,8] blockq(bits=4,group=16,axis=1,scale=f32,zp=1) = [0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128, 136, 144, 152, 160, 168, 176, 184, 192, 200, 208, 216, 224, 232, 240, 248]
    const %as: f32[2,2] = [0.5, 1, 2, 4]
    const %az: u8[2] = [119, 120]
    const %b: u8[1,2,8] blockq(bits=4,group=16,axis=1,scale=f32,zp=1) = [100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115]
    const %bs: f32[1,2] = [3, 5]
    const %bz: u8[1] = [121]
    %p: f32[1,2] = matmul_nbits(%x, %a, %as, %az) {K=32, N=2, bits=4, block_size=16} @ma
    %q: f32[1,1] = matmul_nbits(%x, %b, %bs, %bz) {K=32, N=1, bits=4, block_size=16} @mb
    output %p
    output %q
  }`;

  it('block-quantized projections: packed rows, scales and zero points concatenated (never unpacked)', () => {
    const g = ir(nbits);
    expect(mergeProjections(g)).toBe(1);
    verify(g);
    expectSameGraph(
      g,
      `graph g {
        input %x: f32[1,32]
        const %d: u8[3,2,8] blockq(bits=4,group=16,axis=1,scale=f32,zp=1) = [0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128, 136, 144, 152, 160, 168, 176, 184, 192, 200, 208, 216, 224, 232, 240, 248, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115]
        const %s: f32[3,2] = [0.5, 1, 2, 4, 3, 5]
        const %z: u8[3] = [119, 120, 121]
        %m: f32[1,3] = matmul_nbits(%x, %d, %s, %z) {K=32, N=3, bits=4, block_size=16}
        %p: f32[1,2], %q: f32[1,1] = split(%m) {axis=-1, split=[2, 1]}
        output %p
        output %q
      }`,
    );
    const feeds = {
      x: makeTensor(
        'f32',
        [1, 32],
        Array.from({ length: 32 }, (_, i) => Math.sin(i)),
      ),
    };
    const want = interpret(ir(nbits), feeds);
    const got = interpret(g, feeds);
    for (const o of ['p', 'q']) expect(Array.from(got[o]!.data)).toEqual(Array.from(want[o]!.data));
  });

  it('block-quantized near misses: other bits / block size, one with zero points and one without', () => {
    const variants = [
      nbits
        .replace('{K=32, N=1, bits=4, block_size=16}', '{K=32, N=1, bits=4, block_size=32}')
        .replace('u8[1,2,8] blockq(bits=4,group=16', 'u8[1,1,16] blockq(bits=4,group=32')
        .replace('%bs: f32[1,2] = [3, 5]', '%bs: f32[1,1] = [3]'),
      nbits
        .replace('matmul_nbits(%x, %b, %bs, %bz)', 'matmul_nbits(%x, %b, %bs)')
        .replace('    const %bz: u8[1] = [121]\n', '')
        .replace(
          'scale=f32,zp=1) = [100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115]',
          'scale=f32,zp=0) = [100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115]',
        ),
    ];
    for (const src of variants) {
      const g = ir(src);
      expect(mergeProjections(g), src).toBe(0);
    }
  });
});
