/**
 * The com.microsoft converters (src/frontends/onnx/ops/contrib-quant.ts) on cases the ort-contrib folders lack:
 * MatMulNBits with 8 bits, block 128, a ragged K, constant weights (typed with the blockq layout), a g_idx equal to
 * the default (dropped) and a bias; bits 2 unsupported with the node named; GatherBlockQuantized with constant 8-bit
 * data. Expected values worked out here from unpacked integers.
 */
import { describe, expect, it } from 'vitest';
import { UnsupportedError } from '../../ir/errors.js';
import '../../ir/index.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor } from '../../ir/tensor.js';
import { importOnnxModel } from '../../src/frontends/onnx/import.js';
import type { OnnxAttribute, OnnxModel, OnnxTensor } from '../../src/frontends/onnx/proto.js';

const init = (name: string, dataType: number, dims: number[], values: number[]): OnnxTensor => ({
  name,
  dataType,
  dims,
  values: Float64Array.from(values),
  externalData: false,
});

function model(
  opType: string,
  inputs: string[],
  attrs: [string, number][],
  inits: OnnxTensor[],
  feeds: { name: string; elemType: number; shape: number[] }[],
): OnnxModel {
  return {
    irVersion: 10,
    producerName: 'test',
    producerVersion: '',
    opsetImport: [
      { domain: '', version: 21 },
      { domain: 'com.microsoft', version: 1 },
    ],
    functions: [],
    graph: {
      name: 'g',
      nodes: [
        {
          name: 'q',
          opType,
          domain: 'com.microsoft',
          inputs,
          outputs: ['y'],
          attributes: new Map(attrs.map(([k, v]): [string, OnnxAttribute] => [k, { kind: 'int', value: v }])),
        },
      ],
      initializers: inits,
      sparseInitializers: [],
      inputs: feeds.map((f) => ({
        name: f.name,
        type: { kind: 'tensor' as const, elemType: f.elemType, shape: f.shape },
      })),
      outputs: [{ name: 'y', type: { kind: 'tensor', elemType: 1 } }],
      valueInfo: [],
    },
  };
}

describe('MatMulNBits converter', () => {
  const K = 200;
  const N = 3;
  const block = 128;
  const nb = 2;
  const q = Array.from({ length: N * K }, (_, i) => (i * 37 + 11) % 256);
  const scales = [0.01, -0.02, 0.03, 0.015, 0.025, -0.005];
  const bias = [1, -2, 0.5];
  const packed: number[] = [];
  for (let n = 0; n < N; n++) for (let k = 0; k < nb * block; k++) packed.push(k < K ? q[n * K + k]! : 0);
  const a = Array.from({ length: 2 * K }, (_, i) => ((i * 7) % 11) / 10 - 0.5);
  const attrs: [string, number][] = [
    ['K', K],
    ['N', N],
    ['bits', 8],
    ['block_size', block],
    ['accuracy_level', 4],
  ];
  const inits = [
    init('B', 2, [N, nb, block], packed),
    init('S', 1, [N * nb], scales),
    init(
      'G',
      6,
      [K],
      Array.from({ length: K }, (_, k) => Math.floor(k / block)),
    ),
    init('bias', 1, [N], bias),
  ];

  it('8 bits, block 128, ragged K, default zero point 128, default g_idx dropped, bias', () => {
    const m = model('MatMulNBits', ['A', 'B', 'S', '', 'G', 'bias'], attrs, inits, [
      { name: 'A', elemType: 1, shape: [2, K] },
    ]);
    const { graph } = importOnnxModel(m);
    const node = graph.nodes.find((n) => n.op === 'matmul_nbits')!;
    expect(node.inputs[4]).toBeNull(); // g_idx = k / block_size: the plain layout
    expect(node.inputs[1]!.type.layout).toEqual({
      kind: 'blockq',
      bits: 8,
      group: 128,
      axis: 1,
      scale: 'f32',
      zeroPoint: false,
    });
    const y = interpret(graph, { A: makeTensor('f32', [2, K], a) })['y']!;
    const want: number[] = [];
    for (let m0 = 0; m0 < 2; m0++) {
      for (let n = 0; n < N; n++) {
        let s = bias[n]!;
        for (let k = 0; k < K; k++) s += a[m0 * K + k]! * (q[n * K + k]! - 128) * scales[n * nb + (k >> 7)]!;
        want.push(s);
      }
    }
    Array.from(y.data).forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 4));
  });

  it('bits 2 is unsupported, naming the node', () => {
    const m = model(
      'MatMulNBits',
      ['A', 'B', 'S'],
      attrs.map(([k, v]) => [k, k === 'bits' ? 2 : v]),
      inits,
      [{ name: 'A', elemType: 1, shape: [2, K] }],
    );
    expect(() => importOnnxModel(m)).toThrow(UnsupportedError);
    expect(() => importOnnxModel(m)).toThrow(/bits = 2.*'q'/);
  });
});

describe('GatherBlockQuantized converter', () => {
  it('constant 8-bit u8 data with zero points, gather axis 0, blocks along axis 1', () => {
    const data = Array.from({ length: 3 * 16 }, (_, i) => (i * 53 + 7) % 256);
    const m = model(
      'GatherBlockQuantized',
      ['D', 'I', 'S', 'Z'],
      [
        ['bits', 8],
        ['block_size', 16],
        ['gather_axis', 0],
        ['quantize_axis', 1],
      ],
      [init('D', 2, [3, 16], data), init('S', 1, [3, 1], [0.5, 0.25, 2]), init('Z', 2, [3, 1], [100, 120, 140])],
      [{ name: 'I', elemType: 7, shape: [2] }],
    );
    const { graph } = importOnnxModel(m);
    expect(graph.nodes.find((n) => n.op === 'gather_block_quantized')!.inputs[0]!.type.layout.kind).toBe('blockq');
    const y = interpret(graph, { I: makeTensor('i64', [2], [2, -3]) })['y']!;
    expect(y.shape).toEqual([2, 16]);
    const want = [...data.slice(32).map((v) => (v - 140) * 2), ...data.slice(0, 16).map((v) => (v - 100) * 0.5)];
    expect(Array.from(y.data)).toEqual(want);
  });
});
