/**
 * Reduction epilogues (fuse-epilogue on a reduce anchor → `fused_reduction`): before / after IR text, near misses, the
 * fused graph's reference equals the original's, and on webgpu / cuda-emu the group is ONE kernel with the float64
 * reference's numbers — including a DSL custom op as the epilogue.
 */
import { describe, expect, it } from 'vitest';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { verify } from '../../ir/verify.js';
import { fuseElementwise, fuseEpilogues } from '../../passes/fuse/index.js';
import { compile } from '../../src/session.js';
import { defineOp } from '../../src/dsl/index.js';
import { deviceBackends } from '../helpers/device-backends.js';
import { expectSameGraph, ir } from './helpers.js';

const BACKENDS = await deviceBackends();

function fuse(text: string): Graph {
  const g = ir(text);
  fuseElementwise(g);
  fuseEpilogues(g);
  verify(g);
  return g;
}

function feeds(g: Graph, seed: number): Record<string, Tensor> {
  let a = seed;
  const out: Record<string, Tensor> = {};
  for (const v of g.inputs) {
    const shape = v.type.shape as number[];
    out[v.name] = makeTensor(
      v.type.dtype,
      shape,
      Array.from({ length: shape.reduce((p, d) => p * d, 1) }, () => {
        a = (a * 1103515245 + 12345) % 2147483648;
        return (a / 2147483648) * 4 - 2;
      }),
    );
  }
  return out;
}

const SRC = `graph g {
  input %x: f32[6,40]
  input %s: f32[6,1]
  input %b: f32[1]
  %m: f32[6,1] = reduce_mean(%x) {axes=[-1], keepdims=true} @mean
  %t: f32[6,1] = mul(%m, %s) @scale
  %y: f32[6,1] = tanh(%t) @act
  %z: f32[6,1] = add(%y, %b) @shift
  output %z
}`;

describe('fused reductions', () => {
  it('reduce_mean + scale + tanh + shift becomes one fused_reduction with the group after the reduction', () => {
    const g = fuse(SRC);
    const body = `graph body {
  input %v0: f32[6,40]
  input %v1: f32[1]
  input %v2: f32[6,1]
  %v3: f32[6,1] = reduce_mean(%v0) {axes=[-1], keepdims=true} @n0
  %v4: f32[6,1] = mul(%v3, %v2) @n1
  %v5: f32[6,1] = tanh(%v4) @n2
  %v6: f32[6,1] = add(%v5, %v1) @n3
  output %v6
}
`;
    expectSameGraph(
      g,
      `graph g {
        input %x: f32[6,40]
        input %s: f32[6,1]
        input %b: f32[1]
        %z: f32[6,1] = fused_reduction(%x, %b, %s) {body=${JSON.stringify(body)}} @shift
        output %z
      }`,
    );
    const f = feeds(ir(SRC), 3);
    const want = interpret(ir(SRC), f)['z']!;
    expect(Array.from(interpret(g, f)['z']!.data)).toEqual(Array.from(want.data));
  });

  it('near misses: a reduction read twice, one that is a graph output, an integer reduction stay unfused', () => {
    for (const src of [
      `graph g {
        input %x: f32[4,8]
        %m: f32[4,1] = reduce_sum(%x) {axes=[-1], keepdims=true}
        %y: f32[4,1] = exp(%m)
        %z: f32[4,1] = neg(%m)
        output %y
        output %z
      }`,
      `graph g {
        input %x: f32[4,8]
        %m: f32[4,1] = reduce_sum(%x) {axes=[-1], keepdims=true}
        %y: f32[4,1] = exp(%m)
        output %m
        output %y
      }`,
      `graph g {
        input %x: i32[4,8]
        %m: i32[4,1] = reduce_sum(%x) {axes=[-1], keepdims=true}
        %y: i32[4,1] = neg(%m)
        output %y
      }`,
    ]) {
      const g = fuse(src);
      expect(g.nodes.some((n) => n.op === 'fused_reduction')).toBe(false);
    }
  });

  for (const backend of BACKENDS) {
    it(`on ${backend}: one kernel per fused reduction (column and row reductions), the reference's numbers`, async () => {
      for (const src of [
        SRC,
        // a column reduction (axis 0, no keepdims) with a broadcast residual
        `graph g {
          input %x: f32[33,300]
          input %r: f32[300]
          %m: f32[300] = reduce_max(%x) {axes=[0], keepdims=false}
          %y: f32[300] = sub(%m, %r)
          %z: f32[300] = relu(%y)
          output %z
        }`,
      ]) {
        const g = ir(src);
        const f = feeds(g, 9);
        const want = interpret(g, f)['z']!;
        const s = await compile(g, { backend, opt: 1 });
        const got = (await s.run(f))['z']!;
        expect(s.kernels().length).toBe(1);
        expect(s.kernels()[0]!.op).toBe('fused_reduction');
        s.dispose();
        for (let i = 0; i < want.data.length; i++) {
          expect(Math.abs(Number(got.data[i]) - Number(want.data[i]))).toBeLessThan(1e-5);
        }
      }
    });

    it(`on ${backend}: a DSL custom op is a reduction's fused epilogue`, async () => {
      const name = `softclip_${backend.replace('-', '_')}`;
      const op = defineOp(name, '(m: f32, c: f32): f32 => c * tanh(m / c)');
      const g = ir(`graph g {
        input %x: f32[16,64]
        input %c: f32[1]
        %q: f32[16,64] = mul(%x, %x)
        %m: f32[16,1] = reduce_mean(%q) {axes=[-1], keepdims=true}
        %z: f32[16,1] = ${op.name}(%m, %c)
        output %z
      }`);
      const f = feeds(g, 4);
      f['c'] = makeTensor('f32', [1], [1.5]);
      const want = interpret(g, f)['z']!;
      const s = await compile(g, { backend, opt: 1 });
      const got = (await s.run(f))['z']!;
      expect(s.kernels().filter((k) => k.op === 'fused_reduction').length).toBe(1);
      s.dispose();
      for (let i = 0; i < want.data.length; i++) {
        expect(Math.abs(Number(got.data[i]) - Number(want.data[i]))).toBeLessThan(1e-5);
      }
    });
  }
});
