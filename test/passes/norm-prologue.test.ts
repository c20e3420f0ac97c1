/** Norm prologue fusion: before / after IR text, near misses, and fused == unfused under the reference. */
import { describe, expect, it } from 'vitest';
import { interpret } from '../../ir/interpret.js';
import { makeTensor } from '../../ir/tensor.js';
import { printGraph } from '../../ir/text.js';
import { verify } from '../../ir/verify.js';
import { fuseNormPrologues } from '../../passes/fuse/index.js';
import { expectSameGraph, ir } from './helpers.js';

const src = (extra = '', dt = 'f32', axis = -1) => `graph g {
  input %x: ${dt}[2,3,4]
  const %w: ${dt}[4] = [1, 0.5, 2, -1]
  const %W: ${dt}[4,5] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
  %n: ${dt}[2,3,4] = rms_norm(%x, %w) {axis=${axis}, epsilon=0.00001}
  %y: ${dt}[2,3,5] = matmul(%n, %W)
  ${extra}
  output %y
}`;

const body = `graph body {
  input %px: f32[2,3,4]
  input %pw: f32[4]
  input %u1: f32[4,5]
  %pn: f32[2,3,4] = rms_norm(%px, %pw) {axis=-1, epsilon=0.00001} @p
  %y: f32[2,3,5] = matmul(%pn, %u1) @n
  output %y
}`;

describe('fuse-norm-prologue', () => {
  it('rms_norm → matmul: one fused_contraction whose body starts with the norm', () => {
    const g = ir(src());
    expect(fuseNormPrologues(g)).toBe(1);
    verify(g);
    expectSameGraph(
      g,
      `graph g {
        input %x: f32[2,3,4]
        const %w: f32[4] = [1, 0.5, 2, -1]
        const %W: f32[4,5] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
        %y: f32[2,3,5] = fused_contraction(%x, %w, %W) {body=${JSON.stringify(printGraph(ir(body)))}}
        output %y
      }`,
    );
    const feeds = {
      x: makeTensor(
        'f32',
        [2, 3, 4],
        Array.from({ length: 24 }, (_, i) => Math.sin(i) * 3),
      ),
    };
    const want = interpret(ir(src()), feeds)['y']!;
    const got = interpret(g, feeds)['y']!;
    expect(Array.from(got.data)).toEqual(Array.from(want.data)); // the body is the same computation
  });

  it('layer norm through a reshape, with β and a Shape reader: β·W becomes an add after the product', () => {
    const before = `graph g {
      input %x: f32[2,3,4]
      const %w: f32[4] = [1, 0.5, 2, -1]
      const %b: f32[4] = [0.25, 0, -1, 2]
      const %W: f32[4,2] = [1, 2, 3, 4, 5, 6, 7, 8]
      const %flat: i64[2] = [6, 4]
      %n: f32[2,3,4] = layer_norm(%x, %w, %b) {axis=-1, epsilon=0.00001}
      %s: i64[3] = shape(%n)
      %r: f32[6,4] = reshape(%n, %flat)
      %y: f32[6,2] = matmul(%r, %W)
      output %y
      output %s
    }`;
    const g = ir(before);
    expect(fuseNormPrologues(g)).toBe(1);
    verify(g);
    // β·W = [0.25·1 + 0·3 − 1·5 + 2·7, 0.25·2 + 0·4 − 1·6 + 2·8] = [9.25, 10.5]
    const bodyText = `graph body {
      input %px: f32[6,4]
      input %pw: f32[4]
      input %u1: f32[4,2]
      input %pb: f32[2]
      %pn: f32[6,4] = layer_norm(%px, %pw) {axis=-1, epsilon=0.00001} @p
      %y: f32[6,2] = matmul(%pn, %u1) @n
      %ps: f32[6,2] = add(%y, %pb) @pa
      output %ps
    }`;
    expectSameGraph(
      g,
      `graph g {
        input %x: f32[2,3,4]
        const %w: f32[4] = [1, 0.5, 2, -1]
        const %W: f32[4,2] = [1, 2, 3, 4, 5, 6, 7, 8]
        const %flat: i64[2] = [6, 4]
        const %bw: f32[2] = [9.25, 10.5]
        %s: i64[3] = shape(%x)
        %xf: f32[6,4] = reshape(%x, %flat)
        %y: f32[6,2] = fused_contraction(%xf, %w, %W, %bw) {body=${JSON.stringify(printGraph(ir(bodyText)))}}
        output %y
        output %s
      }`,
    );
    const feeds = {
      x: makeTensor(
        'f32',
        [2, 3, 4],
        Array.from({ length: 24 }, (_, i) => Math.cos(i) * 3 + 1),
      ),
    };
    const want = interpret(ir(before), feeds)['y']!;
    const got = interpret(g, feeds)['y']!;
    want.data.forEach((w, i) => expect(Math.abs(got.data[i]! - w)).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(w))));
  });

  const packed = (norm: string) => `graph g {
    input %x: f32[2,16]
    const %w: f32[16] = [${Array.from({ length: 16 }, (_, i) => 1 + i / 16).join(', ')}]
    const %b: f32[16] = [${Array.from({ length: 16 }, (_, i) => i / 8 - 1).join(', ')}]
    const %q: u8[5,1,8] blockq(bits=4,group=16,axis=1,scale=f32,zp=0) = [0, 37, 74, 111, 148, 185, 222, 3, 40, 77, 114, 151, 188, 225, 6, 43, 80, 117, 154, 191, 228, 9, 46, 83, 120, 157, 194, 231, 12, 49, 86, 123, 160, 197, 234, 15, 52, 89, 126, 163]
    const %s: f32[5,1] = [0.5, 1, 2, 4, 8]
    %n: f32[2,16] = ${norm} {axis=-1, epsilon=0.00001}
    %y: f32[2,5] = matmul_nbits(%n, %q, %s) {K=16, N=5, bits=4, block_size=16}
    output %y
  }`;

  it('rms_norm → matmul_nbits (packed weight): the norm joins it; a layer norm with β does not (β·W needs W)', () => {
    const g = ir(packed('rms_norm(%x, %w)'));
    expect(fuseNormPrologues(g)).toBe(1);
    verify(g);
    const f = g.nodes[0]!;
    expect(f.op).toBe('fused_contraction');
    expect(f.inputs.map((v) => v!.name)).toEqual(['x', 'w', 'q', 's']);
    const b = ir(f.attrs['body'] as string);
    expect(b.nodes.map((n) => n.op)).toEqual(['rms_norm', 'matmul_nbits']);
    const feeds = {
      x: makeTensor(
        'f32',
        [2, 16],
        Array.from({ length: 32 }, (_, i) => Math.cos(i) * 2),
      ),
    };
    const want = interpret(ir(packed('rms_norm(%x, %w)')), feeds)['y']!;
    expect(Array.from(interpret(g, feeds)['y']!.data)).toEqual(Array.from(want.data));
    // near miss: β · W cannot be formed from packed data
    expect(fuseNormPrologues(ir(packed('layer_norm(%x, %w, %b)')))).toBe(0);
  });

  it('near miss: the normed value read elsewhere, f16, another axis, the norm as the second operand, a run-time β', () => {
    const unchanged = (text: string) => {
      const g = ir(text);
      expect(fuseNormPrologues(g)).toBe(0);
      expectSameGraph(g, text);
    };
    unchanged(src('%z: f32[2,3,4] = neg(%n)\n  output %z'));
    unchanged(src('', 'f16'));
    unchanged(
      src()
        .replace('rms_norm(%x, %w)', 'layer_norm(%x, %w, %beta)')
        .replace('input %x: f32[2,3,4]', 'input %x: f32[2,3,4]\n  input %beta: f32[4]'),
    );
    unchanged(
      src()
        .replace('%n: f32[2,3,4] = rms_norm(%x, %w) {axis=-1', '%n: f32[2,3,4] = rms_norm(%x, %w) {axis=1')
        .replace('const %w: f32[4] = [1, 0.5, 2, -1]', 'const %w: f32[3,4] = [1, 0.5, 2, -1, 1, 1, 1, 1, 2, 2, 2, 2]'),
    );
    unchanged(`graph g {
      input %x: f32[5,4]
      const %w: f32[4] = [1, 0.5, 2, -1]
      input %A: f32[3,5]
      %n: f32[5,4] = rms_norm(%x, %w) {axis=-1, epsilon=0.00001}
      %y: f32[3,4] = matmul(%A, %n)
      output %y
    }`);
  });
});
