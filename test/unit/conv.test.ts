/**
 * conv: the float64 reference against the ONNX spec's Conv examples (5x5 / 7x5 inputs, 3x3 ones kernel) and
 * hand-worked 1-D, grouped / depthwise, dilated and auto_pad cases; symbolic spatial sizes; typed errors for
 * inconsistent channels / groups / kernel shape / pads and for 3-D convolutions; the ONNX converter.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import { UnsupportedError, VerifyError } from '../../ir/errors.js';
import { interpret } from '../../ir/interpret.js';
import '../../ir/ops/index.js';
import type { Attrs } from '../../ir/registry.js';
import { makeTensor } from '../../ir/tensor.js';
import { importOnnxModel } from '../../src/frontends/onnx/import.js';
import type { OnnxAttribute } from '../../src/frontends/onnx/proto.js';
import { lowerNode } from '../../codegen/lower/index.js';
import { DEFAULT_CAPS } from '../../codegen/lower/storage.js';
import { verifyError } from '../helpers/errors.js';
import { onnxModelOf, onnxNodeOf } from '../helpers/onnx-model.js';

const iota = (n: number) => Array.from({ length: n }, (_, i) => i);

function conv(
  x: [number[], number[]],
  w: [number[], number[]],
  attrs: Attrs = {},
  b?: number[],
): { shape: readonly number[]; data: number[] } {
  const g = new GraphBuilder('conv');
  const xv = g.input('x', 'f32', x[0]);
  const wv = g.weight('w', makeTensor('f32', w[0], w[1]));
  const bv = b ? g.weight('b', makeTensor('f32', [b.length], b)) : null;
  g.output(g.op('conv', [xv, wv, bv], attrs), 'y');
  const y = interpret(g.build(), { x: makeTensor('f32', x[0], x[1]) })['y']!;
  return { shape: y.shape, data: Array.from(y.data) };
}

const X55: [number[], number[]] = [[1, 1, 5, 5], iota(25)];
const X75: [number[], number[]] = [[1, 1, 7, 5], iota(35)];
const ONES33: [number[], number[]] = [[1, 1, 3, 3], new Array<number>(9).fill(1)];

describe('conv 2-D (ONNX Conv examples)', () => {
  it('with and without padding', () => {
    expect(conv(X55, ONES33, { pads: [1, 1, 1, 1] }).data).toEqual([
      12, 21, 27, 33, 24, 33, 54, 63, 72, 51, 63, 99, 108, 117, 81, 93, 144, 153, 162, 111, 72, 111, 117, 123, 84,
    ]);
    const y = conv(X55, ONES33);
    expect(y.shape).toEqual([1, 1, 3, 3]);
    expect(y.data).toEqual([54, 63, 72, 99, 108, 117, 144, 153, 162]);
  });

  it('strides 2 with symmetric, no and asymmetric padding', () => {
    const a = conv(X75, ONES33, { strides: [2, 2], pads: [1, 1, 1, 1] });
    expect(a.shape).toEqual([1, 1, 4, 3]);
    expect(a.data).toEqual([12, 27, 24, 63, 108, 81, 123, 198, 141, 112, 177, 124]);
    expect(conv(X75, ONES33, { strides: [2, 2] }).data).toEqual([54, 72, 144, 162, 234, 252]);
    const c = conv(X75, ONES33, { strides: [2, 2], pads: [1, 0, 1, 0] });
    expect(c.shape).toEqual([1, 1, 4, 2]);
    expect(c.data).toEqual([21, 33, 99, 117, 189, 207, 171, 183]);
  });

  it('auto_pad SAME_LOWER with strides 2', () => {
    expect(conv(X55, ONES33, { auto_pad: 'SAME_LOWER', strides: [2, 2] }).data).toEqual([
      12, 27, 24, 63, 108, 81, 72, 117, 84,
    ]);
  });

  it('grouped (depthwise) with bias, and two groups of two channels', () => {
    // channel 0 [1, 2, 3] ⊛ [1, 1] + 100; channel 1 [10, 20, 30] ⊛ [1, -1] + 0
    const y = conv(
      [
        [1, 2, 1, 3],
        [1, 2, 3, 10, 20, 30],
      ],
      [
        [2, 1, 1, 2],
        [1, 1, 1, -1],
      ],
      { group: 2 },
      [100, 0],
    );
    expect(y.shape).toEqual([1, 2, 1, 2]);
    expect(y.data).toEqual([103, 105, -10, -10]);
    // 4 channels, group 2, 1x1 kernels: out 0 = x0 + 2·x1, out 1 = 3·x2 + 4·x3
    const z = conv(
      [
        [1, 4, 1, 1],
        [1, 2, 3, 4],
      ],
      [
        [2, 2, 1, 1],
        [1, 2, 3, 4],
      ],
      { group: 2 },
    );
    expect(z.data).toEqual([5, 25]);
  });
});

describe('conv 1-D', () => {
  const x: [number[], number[]] = [
    [1, 1, 5],
    [1, 2, 3, 4, 5],
  ];
  const diff: [number[], number[]] = [
    [1, 1, 3],
    [1, 0, -1],
  ];
  it('pads, dilations', () => {
    expect(conv(x, diff, { pads: [1, 1] }).data).toEqual([-2, -2, -2, -2, 4]);
    expect(conv(x, diff, { dilations: [2] }).data).toEqual([-4]);
  });
  it('auto_pad SAME_UPPER / SAME_LOWER put the odd pad at the end / the start; VALID pads nothing', () => {
    const x4: [number[], number[]] = [
      [1, 1, 4],
      [1, 2, 3, 4],
    ];
    const pair: [number[], number[]] = [
      [1, 1, 2],
      [1, 1],
    ];
    expect(conv(x4, pair, { auto_pad: 'SAME_UPPER' }).data).toEqual([3, 5, 7, 4]);
    expect(conv(x4, pair, { auto_pad: 'SAME_LOWER' }).data).toEqual([1, 3, 5, 7]);
    expect(conv(x4, pair, { auto_pad: 'VALID', strides: [2] }).data).toEqual([3, 7]);
  });
  it('a batch of 2 with 2 input and 3 output channels (hand sums)', () => {
    // w[m, c, :] = [m + 1, c + 1] ... y[n, m, o] = Σ_c (m+1)·x[n,c,o] + (c+1)·x[n,c,o+1]
    const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]; // [2, 2, 3]
    const ws = [1, 1, 1, 2, 2, 1, 2, 2, 3, 1, 3, 2]; // [3, 2, 2]
    const y = conv([[2, 2, 3], xs], [[3, 2, 2], ws]);
    expect(y.shape).toEqual([2, 3, 2]);
    // n=0: c0 = [1,2,3], c1 = [4,5,6]; m=0: (1·1+1·2)+(1·4+2·5) = 17, (2+3)+(5+12) = 22
    expect(y.data.slice(0, 2)).toEqual([17, 22]);
    // m=2: (3·1+1·2)+(3·4+2·5) = 27, (6+3)+(15+12) = 36
    expect(y.data.slice(4, 6)).toEqual([27, 36]);
  });
});

describe('conv shapes and errors', () => {
  it('symbolic time axis: stride 1 keeps it (Whisper conv1), stride 2 makes a fresh dim (conv2)', () => {
    const b = new GraphBuilder('w');
    const x = b.input('x', 'f32', [1, 80, 'T']);
    const w1 = b.weight('w1', makeTensor('f32', [8, 80, 3], new Array<number>(8 * 80 * 3).fill(0.01)));
    const c1 = b.op('conv', [x, w1], { pads: [1, 1] });
    expect(c1.type.shape).toEqual([1, 8, 'T']);
    const w2 = b.weight('w2', makeTensor('f32', [8, 8, 3], new Array<number>(8 * 8 * 3).fill(0.01)));
    const c2 = b.op('conv', [c1, w2], { pads: [1, 1], strides: [2] });
    expect(c2.type.shape.slice(0, 2)).toEqual([1, 8]);
    expect(typeof c2.type.shape[2]).toBe('string');
    b.output(c2, 'y');
    const y = interpret(b.build(), { x: makeTensor('f32', [1, 80, 7], new Array<number>(560).fill(1)) })['y']!;
    expect(y.shape).toEqual([1, 8, 4]);
  });

  it('inconsistent channels / groups / kernel shape / pads are verify errors naming the node', () => {
    const b = new GraphBuilder('t');
    const x = b.input('x', 'f32', [1, 3, 5, 5]);
    let k = 0;
    const w = (shape: number[]) => b.input(`w${k++}`, 'f32', shape);
    expect(verifyError(() => b.op('conv', [x, w([4, 2, 3, 3])])).message).toContain(
      'x has 3 channels but w expects 2 per group × group 1 = 2',
    );
    expect(verifyError(() => b.op('conv', [x, w([4, 1, 3, 3])], { group: 2 })).message).toContain('group 2');
    expect(verifyError(() => b.op('conv', [x, w([5, 1, 3, 3])], { group: 3 })).message).toContain(
      '5 output channels do not split into 3 groups',
    );
    expect(() => b.op('conv', [x, w([4, 3, 3, 3])], { kernel_shape: [3, 2] })).toThrow(/kernel_shape \[3, 2\] differs/);
    expect(() => b.op('conv', [x, w([4, 3, 3, 3])], { pads: [1, 1] })).toThrow(/pads has 2 entries, expected 4/);
    expect(() => b.op('conv', [x, w([4, 3, 3, 3])], { strides: [0, 1] })).toThrow(/strides \[0, 1\] must be >= 1/);
    expect(() => b.op('conv', [x, w([4, 3, 7, 3])])).toThrow(/shorter than the dilated kernel 7/);
    expect(() => b.op('conv', [x, w([4, 3, 3])])).toThrow(/w has rank 3, x has rank 4/);
    expect(() => b.op('conv', [x, w([4, 3, 3, 3]), b.input('bb', 'f32', [3])])).toThrow(/b must be \[4\]/);
    expect(() => b.op('conv', [x, w([4, 3, 3, 3])], { auto_pad: 'SAME' })).toThrow(VerifyError);
  });

  it('a 3-D convolution is an UnsupportedError naming the node', () => {
    const b = new GraphBuilder('t');
    const x = b.input('x', 'f32', [1, 1, 4, 4, 4]);
    const w = b.input('w', 'f32', [1, 1, 2, 2, 2]);
    let err: unknown;
    try {
      b.op('conv', [x, w]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnsupportedError);
    expect((err as UnsupportedError).location.node).toBeDefined();
    expect((err as Error).message).toMatch(/conv over 3 spatial axes is not supported.*at node/);
  });
});

describe('ONNX Conv', () => {
  const ints = (v: number[]): OnnxAttribute => ({ kind: 'ints', value: v });
  const model = (attrs: Record<string, OnnxAttribute>, wShape: number[]) =>
    onnxModelOf({
      nodes: [onnxNodeOf('Conv', ['x', 'w'], ['y'], attrs, 'patch_embed')],
      opset: 11,
      inputs: [
        { name: 'x', shape: [1, 1, 5, 5] },
        { name: 'w', shape: wShape },
      ],
      outputs: ['y'],
    });
  it('converts attributes (pads, strides, kernel_shape) and runs', () => {
    const { graph } = importOnnxModel(
      model({ pads: ints([1, 1, 1, 1]), strides: ints([2, 2]), kernel_shape: ints([3, 3]) }, [1, 1, 3, 3]),
    );
    expect(graph.nodes.map((n) => n.op)).toEqual(['conv']);
    const y = interpret(graph, {
      x: makeTensor('f32', [1, 1, 5, 5], iota(25)),
      w: makeTensor('f32', [1, 1, 3, 3], new Array<number>(9).fill(1)),
    })['y']!;
    expect(Array.from(y.data)).toEqual([12, 27, 24, 63, 108, 81, 72, 117, 84]);
  });
  it('inconsistent channels fail at import, naming the node', () => {
    expect(() => importOnnxModel(model({}, [1, 2, 3, 3]))).toThrow(/x has 1 channels.*patch_embed/);
  });
});

describe('conv lowering: schedule choice', () => {
  const lower = (x: number[], w: number[], attrs: Attrs = {}) =>
    lowerNode({
      caps: DEFAULT_CAPS,
      node: 'c',
      op: 'conv',
      attrs: { auto_pad: 'NOTSET', group: 1, ...attrs },
      inputs: [
        { dtype: 'f32', shape: x },
        { dtype: 'f32', shape: w },
      ],
      outputs: [{ dtype: 'f32', shape: [x[0]!, w[0]!, ...x.slice(2).map((d, i) => d - w[i + 2]! + 1)] }],
    }).map((s) => s.kernel.name.replace(/_[0-9a-f]{10}$/, ''));
  it('im2col + contraction with >= 4 output channels per group, direct otherwise (depthwise, few channels)', () => {
    expect(lower([1, 3, 8, 8], [8, 3, 3, 3])).toEqual(['k_conv_im2col', expect.stringMatching(/^k_conv_gemm/)]);
    expect(lower([1, 4, 8, 8], [4, 1, 3, 3], { group: 4 })).toEqual(['k_conv']);
    expect(lower([1, 3, 8, 8], [2, 3, 3, 3])).toEqual(['k_conv']);
  });
  it('a scratch past 64 MiB falls back to the direct schedule', () => {
    // cols would be 64·9 × 1022² f32 ≈ 2.2 GiB
    expect(lower([1, 64, 1024, 1024], [8, 64, 3, 3])).toEqual(['k_conv']);
  });
});
