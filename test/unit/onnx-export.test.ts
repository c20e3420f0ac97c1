/**
 * ONNX export (src/frontends/onnx/export.ts): per kiln op, export → import gives back the same op (normalized
 * structural hash) and equal outputs under the reference interpreter; builder LLaMA / GPT-2 and the conformance
 * models round trip; quantized matmuls as MatMulNBits; fused nodes inlined; external data; ops without an ONNX form
 * are located UnsupportedErrors.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import { KilnError, UnsupportedError } from '../../ir/errors.js';
import type { Graph, Value } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import { allOps, type Attrs } from '../../ir/registry.js';
import { makeTensor } from '../../ir/tensor.js';
import { optimize } from '../../passes/manager.js';
import { quantizeRtn } from '../../passes/quant/index.js';
import { main } from '../../src/cli.js';
import { decodeModel } from '../../src/frontends/onnx/proto.js';
import { exportOnnx, exportOnnxFile, exportOnnxModel, hasExporter } from '../../src/frontends/onnx/export.js';
import { importOnnx, importOnnxFile } from '../../src/frontends/onnx/import.js';
import type { Gpt2Config, LlamaConfig } from '../../src/models/config.js';
import { buildGpt2 } from '../../src/models/gpt2.js';
import { buildLlama } from '../../src/models/llama.js';
import { loadLanguageModel } from '../../src/generate/load.js';
import { randomGpt2Weights, randomLlamaWeights } from '../helpers/lm-reference.js';
import { expectSameGraph, expectSameOutputs, randomFeeds, roundTrip } from '../helpers/onnx-roundtrip.js';
import { CONFORMANCE, REPO_ROOT } from '../helpers/paths.js';
import { sharedProbe, requireTool } from '../helpers/tools.js';

type Build = (b: GraphBuilder) => Value | Value[];

const f32 = (b: GraphBuilder, name: string, shape: number[]) => b.input(name, 'f32', shape);
const w = (b: GraphBuilder, dtype: DType, shape: number[], seed = 1) => {
  const n = shape.reduce((a, c) => a * c, 1);
  return b.weight(
    b.unique('w'),
    makeTensor(
      dtype,
      shape,
      Array.from({ length: n }, (_, i) => (((i * 7 + seed * 13) % 11) - 5) / 4),
    ),
  );
};

function graphOf(build: Build): Graph {
  const b = new GraphBuilder('g');
  const outs = build(b);
  (Array.isArray(outs) ? outs : [outs]).forEach((o, i) => b.output(o, `y${i}`));
  return b.build();
}

const unary =
  (op: string, attrs: Attrs = {}, dt: DType = 'f32'): Build =>
  (b) =>
    b.op(op, [b.input('x', dt, [2, 5])], attrs);

/** [name, graph, same op after import (hash check), export options]. */
const CASES: [string, Build, boolean?, number?][] = [
  ...[
    'neg',
    'abs',
    'exp',
    'tanh',
    'erf',
    'sigmoid',
    'relu',
    'floor',
    'ceil',
    'round',
    'sign',
    'sin',
    'cos',
    'tan',
    'atan',
    'softplus',
    'hard_swish',
    'identity',
    'isnan',
    'isinf',
  ].map((op): [string, Build] => [op, unary(op)]),
  [
    'log / sqrt / reciprocal of |x| + 1',
    (b) => {
      const x = b.op('add', [b.op('abs', [f32(b, 'x', [3, 4])]), b.const('f32', [1], [])]);
      return [
        b.op('log', [x]),
        b.op('sqrt', [x]),
        b.op('reciprocal', [x]),
        b.op('asin', [b.op('reciprocal', [x])]),
        b.op('acos', [b.op('reciprocal', [x])]),
      ];
    },
  ],
  ['gelu none (com.microsoft Gelu at 21)', unary('gelu', { approximate: 'none' })],
  ['gelu tanh (FastGelu at 21)', unary('gelu', { approximate: 'tanh' })],
  ['gelu tanh (Gelu-20)', unary('gelu', { approximate: 'tanh' }), true, 20],
  ['hard_sigmoid', unary('hard_sigmoid', { alpha: 0.3, beta: 0.4 })],
  ['leaky_relu', unary('leaky_relu', { alpha: 0.1 })],
  ['silu (Sigmoid · x)', unary('silu'), false],
  ['silu (Swish-24)', unary('silu'), true, 24],
  ['cast f32 → f16 → i32', (b) => b.op('cast', [b.op('cast', [f32(b, 'x', [4])], { to: 'f16' })], { to: 'i32' })],
  ...['add', 'sub', 'mul', 'div', 'pow', 'equal', 'less', 'greater', 'less_equal', 'greater_equal'].map(
    (op): [string, Build] => [op, (b) => b.op(op, [f32(b, 'a', [2, 3]), f32(b, 'b', [3])])],
  ),
  ['mod fmod', (b) => b.op('mod', [f32(b, 'a', [2, 3]), b.const('f32', [0.7], [])], { fmod: true })],
  ['mod int', (b) => b.op('mod', [b.input('a', 'i32', [5]), b.const('i32', [2], [])])],
  [
    'max / min / sum variadic',
    (b) => {
      const xs = [f32(b, 'a', [2, 3]), f32(b, 'b', [3]), f32(b, 'c', [1, 3])];
      return [b.op('max', xs), b.op('min', xs), b.op('sum', xs)];
    },
  ],
  [
    'and / or / xor / not / where',
    (b) => {
      const p = b.input('p', 'bool', [4]);
      const q = b.input('q', 'bool', [4]);
      return [
        b.op('and', [p, q]),
        b.op('or', [p, q]),
        b.op('xor', [p, q]),
        b.op('where', [b.op('not', [p]), f32(b, 'x', [4]), b.const('f32', [2], [])]),
      ];
    },
  ],
  [
    'clip (lo only, both)',
    (b) => {
      const x = f32(b, 'x', [6]);
      return [b.op('clip', [x, b.const('f32', [-0.5], [])]), b.op('clip', [x, null, b.const('f32', [0.5], [])])];
    },
  ],
  ...[
    'reduce_sum',
    'reduce_mean',
    'reduce_prod',
    'reduce_sum_square',
    'reduce_l2',
    'reduce_max',
    'reduce_min',
    'reduce_log_sum_exp',
  ].map((op): [string, Build] => [
    op,
    (b) => [
      b.op(op, [f32(b, 'x', [2, 3, 4])], { axes: [0, -1], keepdims: false }),
      b.op(op, [b.input('z', 'f32', [2, 3])], {}),
    ],
  ]),
  [
    'argmax / argmin',
    (b) => {
      const x = f32(b, 'x', [3, 4]);
      return [
        b.op('argmax', [x], { axis: 1, keepdims: false }),
        b.op('argmin', [x], { axis: 0, select_last_index: true }),
      ];
    },
  ],
  ['cumsum', (b) => b.op('cumsum', [f32(b, 'x', [3, 4])], { axis: 1, exclusive: true, reverse: true })],
  [
    'softmax / log_softmax',
    (b) => {
      const x = f32(b, 'x', [2, 3, 4]);
      return [b.op('softmax', [x], { axis: 1 }), b.op('log_softmax', [x], { axis: -1 })];
    },
  ],
  [
    'layer_norm with mean and inv_std',
    (b) => b.opN('layer_norm', [f32(b, 'x', [2, 8]), w(b, 'f32', [8]), w(b, 'f32', [8], 2)], { epsilon: 1e-3 }, 3),
  ],
  ['rms_norm (SimplifiedLayerNormalization at 21)', (b) => b.rmsNorm(f32(b, 'x', [2, 8]), w(b, 'f32', [8]), 1e-6)],
  ['rms_norm (RMSNormalization-23)', (b) => b.rmsNorm(f32(b, 'x', [2, 8]), w(b, 'f32', [8]), 1e-6), true, 23],
  [
    'matmul / gemm',
    (b) => {
      const a = f32(b, 'a', [3, 4]);
      return [
        b.matmul(a, w(b, 'f32', [4, 5])),
        b.op('gemm', [a, w(b, 'f32', [5, 4]), w(b, 'f32', [5])], { alpha: 0.5, beta: 2, transB: true }),
      ];
    },
  ],
  [
    'matmul_integer',
    (b) =>
      b.op('matmul_integer', [
        b.input('a', 'u8', [2, 3]),
        b.const('i8', [-3, 5, 7, -1, 0, 2], [3, 2]),
        b.const('u8', [1], []),
        null,
      ]),
  ],
  [
    'matmul_integer trans_b (exported with a Transpose of b)',
    (b) =>
      b.op(
        'matmul_integer',
        [
          b.input('a', 'i8', [2, 4]),
          b.const('i8', [-3, 5, 7, -1, 0, 2, 127, -128], [2, 4]),
          null,
          b.const('i8', [1, -1], [2]),
        ],
        { trans_b: true },
      ),
    false, // comes back as Transpose → MatMulInteger
  ],
  ['einsum', (b) => b.op('einsum', [f32(b, 'a', [2, 3]), f32(b, 'b', [3, 4])], { equation: 'ij,jk->ik' })],
  [
    'movement: reshape / transpose / squeeze / unsqueeze / flatten',
    (b) => {
      const x = f32(b, 'x', [2, 1, 6]);
      return [
        b.reshape(x, [3, -1]),
        b.transpose(x, [2, 0, 1]),
        b.op('squeeze', [x], { axes: [1] }),
        b.op('unsqueeze', [x], { axes: [0, 4] }),
        b.op('flatten', [x], { axis: 2 }),
      ];
    },
  ],
  [
    'slice / concat / split',
    (b) => {
      const x = f32(b, 'x', [4, 6]);
      const s = b.op('slice', [
        x,
        b.const('i64', [1, 0]),
        b.const('i64', [4, 6]),
        b.const('i64', [0, 1]),
        b.const('i64', [2, 3]),
      ]);
      const [p, q] = b.split(x, [2, 4], 1);
      const [r, t] = b.opN('split', [x], { axis: 0 }, 2);
      return [s, b.concat([x, x], 0), p!, q!, r!, t!];
    },
  ],
  [
    'expand / tile',
    (b) => {
      const x = f32(b, 'x', [3, 1]);
      return [b.op('expand', [x, b.const('i64', [2, 3, 4])]), b.op('tile', [x, b.const('i64', [2, 3])])];
    },
  ],
  [
    'gather / gather_elements / gather_nd',
    (b) => {
      const x = f32(b, 'x', [3, 4]);
      return [
        b.gather(x, b.const('i64', [2, 0], [2]), 1),
        b.op('gather_elements', [x, b.const('i64', [0, 2, 1, 1, 0, 2], [3, 2])], { axis: 1 }),
        b.op('gather_nd', [x, b.const('i64', [1, 2, 0, 3], [2, 2])]),
      ];
    },
  ],
  [
    'range / trilu',
    (b) => [
      b.op('range', [b.input('s', 'i64', []), b.const('i64', [9], []), b.const('i64', [2], [])]),
      b.op('trilu', [f32(b, 'x', [4, 4]), b.const('i64', [1], [])], { upper: false }),
    ],
  ],
  [
    'shape / size / constant_of_shape on symbolic dims',
    (b) => {
      const x = b.input('x', 'f32', ['n', 3]);
      const s = b.op('shape', [x], { start: 0, end: 1 });
      return [s, b.op('size', [x]), b.op('constant_of_shape', [s], { value: makeTensor('f32', [1], [1.5]) })];
    },
  ],
  [
    'attention with past (3-D heads, causal)',
    (b) => {
      const q = f32(b, 'q', [1, 3, 8]);
      const k = f32(b, 'k', [1, 3, 4]);
      const v = f32(b, 'v', [1, 3, 4]);
      const pk = f32(b, 'pk', [1, 1, 2, 4]);
      const pv = f32(b, 'pv', [1, 1, 2, 4]);
      return b.opN(
        'attention',
        [q, k, v, null, pk, pv],
        { is_causal: true, q_num_heads: 2, kv_num_heads: 1, scale: 0.3 },
        3,
      );
    },
  ],
  [
    'attention with mask_fill (Where(mask, scale · q·kᵀ, fill), Softmax, · v)',
    (b) => {
      const q = f32(b, 'q', [2, 2, 3, 4]);
      const k = f32(b, 'k', [2, 2, 5, 4]);
      const v = f32(b, 'v', [2, 2, 5, 3]);
      return b.op('attention', [q, k, v, b.input('m', 'bool', [2, 1, 3, 5])], { mask_fill: -10000 });
    },
    false,
  ],
  [
    'rotary_embedding',
    (b) =>
      b.op('rotary_embedding', [
        f32(b, 'x', [1, 2, 3, 4]),
        w(b, 'f32', [8, 2]),
        w(b, 'f32', [8, 2], 3),
        b.const('i64', [0, 1, 5], [1, 3]),
      ]),
  ],
  [
    'quantize / dequantize / dynamic',
    (b) => {
      const x = f32(b, 'x', [2, 4]);
      const q = b.op('quantize_linear', [x, b.const('f32', [0.05], []), b.const('i8', [3], [])]);
      const d = b.op('dequantize_linear', [q, b.const('f32', [0.05], []), b.const('i8', [3], [])]);
      const bq = b.op('quantize_linear', [x, b.const('f32', [0.1, 0.2, 0.3, 0.4], [2, 2])], {
        axis: 1,
        block_size: 2,
        output_dtype: 'u8',
      });
      return [q, d, bq, ...b.opN('dynamic_quantize_linear', [x], {}, 3)];
    },
  ],
  [
    'pad constant / reflect',
    (b) => {
      const x = f32(b, 'x', [2, 3]);
      return [
        b.op('pad', [x, b.const('i64', [0, 1, 1, 2]), b.const('f32', [7], [])]),
        b.op('pad', [x, b.const('i64', [1, 1, 0, 0])], { mode: 'reflect' }),
      ];
    },
  ],
  [
    'scatter_nd / scatter_elements',
    (b) => {
      const x = f32(b, 'x', [4, 3]);
      return [
        b.op('scatter_nd', [x, b.const('i64', [2, 0], [2, 1]), f32(b, 'u', [2, 3])], { reduction: 'add' }),
        b.op('scatter_elements', [x, b.const('i64', [1, 0, 2], [1, 3]), f32(b, 'e', [1, 3])], { axis: 0 }),
      ];
    },
  ],
  [
    'conv',
    (b) =>
      b.op('conv', [f32(b, 'x', [1, 2, 5, 5]), w(b, 'f32', [4, 1, 3, 3]), w(b, 'f32', [4])], {
        group: 2,
        pads: [1, 1, 0, 0],
        strides: [2, 1],
      }),
  ],
  ['gelu f16', unary('gelu', { approximate: 'none' }, 'f16')],
  [
    'constant (a Constant node, a constant value after import)',
    (b) => b.op('add', [f32(b, 'x', [2]), b.op('constant', [], { value: makeTensor('f32', [2], [0.25, -4]) })]),
    false,
  ],
  [
    'bf16 / f64 / i4 / u4 / u16 constants',
    (b) => [
      b.op('add', [b.input('x', 'bf16', [3]), b.const('bf16', [0.5, -1.25, 3], [3])]),
      b.op('mul', [b.input('d', 'f64', [2]), b.const('f64', [Math.PI, 1e-300], [2])]),
      b.op('cast', [b.const('i4', [-8, 7, -1], [3])], { to: 'f32' }),
      b.op('cast', [b.const('u4', [15, 0, 9], [3])], { to: 'f32' }),
      b.op('cast', [b.const('u16', [65535, 3], [2])], { to: 'i32' }),
    ],
    false, // casts of constants fold on import
  ],
];

describe('export → import: per op, same op back and equal outputs', () => {
  for (const [name, build, sameOp = true, opset] of CASES) {
    it(name, () => {
      const g = graphOf(build);
      const { graph: back } = roundTrip(g, opset ? { opset } : {});
      if (sameOp) expectSameGraph(back, g);
      else expectSameGraph(roundTrip(back, opset ? { opset } : {}).graph, back);
      const feeds = randomFeeds(g, 7, { n: 3 });
      expectSameOutputs(g, back, feeds);
    });
  }

  it('i64 values the importer rounded to 2^63 (INT64_MAX slice ends) are written back clamped', () => {
    const g = graphOf((b) =>
      b.op('slice', [
        f32(b, 'x', [5, 3]),
        b.const('i64', [1], [1]),
        b.const('i64', [2 ** 63], [1]),
        b.const('i64', [0], [1]),
      ]),
    );
    const back = roundTrip(g).graph;
    expect(back.constants.find((c) => c.data!.data[0]! > 1e18)?.data!.data[0]).toBe(2 ** 63);
    expectSameOutputs(g, back, randomFeeds(g));
  });

  it('4-bit types need IR version 10 whatever the opset', () => {
    const g = graphOf((b) => b.op('cast', [b.input('q', 'u4', [4])], { to: 'f32' }));
    expect(decodeModel(exportOnnx(g, { opset: 18 })).irVersion).toBe(10);
    expect(decodeModel(exportOnnx(graphOf(unary('relu')), { opset: 18 })).irVersion).toBe(8);
  });

  it('an output that is a graph input, a constant, or listed twice gets its own name through Identity', () => {
    const b = new GraphBuilder('g');
    const x = f32(b, 'x', [3]);
    const c = b.const('f32', [1, 2, 3], [3]);
    const y = b.op('add', [x, c]);
    b.graph.outputs.push(x, c, y, y);
    const g = b.build();
    const back = roundTrip(g).graph;
    expect(back.outputs.length).toBe(4);
    expect(new Set(back.outputs.map((o) => o.name)).size).toBe(4);
    expectSameOutputs(g, back, randomFeeds(g));
  });

  it('transpose without perm (reverse the dims) round trips', () => {
    const g = graphOf((b) => b.op('transpose', [f32(b, 'x', [2, 3, 4])]));
    const back = roundTrip(g).graph;
    expectSameGraph(back, g);
    expectSameOutputs(g, back, randomFeeds(g));
  });

  it('attention with nonpad_kv_seqlen raises the default opset to 24', () => {
    const g = graphOf((b) => {
      const q = f32(b, 'q', [2, 1, 3, 4]);
      const k = f32(b, 'k', [2, 1, 5, 4]);
      return b.op('attention', [q, k, k, null, null, null, b.const('i64', [3, 5], [2])]);
    });
    const { graph: back, exported } = roundTrip(g);
    expect(exported.opsets.get('')).toBe(24);
    expectSameGraph(back, g);
    expectSameOutputs(g, back, randomFeeds(g));
  });

  it('the cases cover every op with an inverse mapping (the block-quantized ones below, sparse: unit/sparse.test.ts)', () => {
    const seen = new Set(['matmul_nbits', 'gather_block_quantized', 'sparse_matmul', 'sparse_to_dense']);
    for (const [, build] of CASES) for (const n of graphOf(build).nodes) seen.add(n.op);
    expect(
      allOps()
        .filter((d) => hasExporter(d.name) && !seen.has(d.name))
        .map((d) => d.name),
    ).toEqual([]);
  });

  it('silu without Swish is x · Sigmoid(x) in the file', () => {
    const model = decodeModel(exportOnnx(graphOf(unary('silu'))));
    expect(model.graph.nodes.map((n) => n.opType)).toEqual(['Sigmoid', 'Mul']);
    expect(model.opsetImport).toEqual([{ domain: '', version: 21 }]);
  });

  it('symbolic dims are dim_params; attention / rotary raise the opset to 23', () => {
    const g = graphOf((b) =>
      b.opN(
        'attention',
        [
          b.input('q', 'f32', ['batch', 'seq', 8]),
          b.input('k', 'f32', ['batch', 'seq', 8]),
          b.input('v', 'f32', ['batch', 'seq', 8]),
        ],
        { q_num_heads: 2, kv_num_heads: 2 },
        1,
      ),
    );
    const m = decodeModel(exportOnnx(g));
    expect(m.opsetImport).toEqual([{ domain: '', version: 23 }]);
    expect(m.graph.inputs[0]!.type).toMatchObject({ kind: 'tensor', elemType: 1, shape: ['batch', 'seq', 8] });
    expect(m.graph.outputs[0]!.type).toMatchObject({ shape: ['batch', 'seq', 8] });
    const back = importOnnx(exportOnnx(g)).graph;
    expectSameGraph(back, g);
  });
});

describe('quantized and fused graphs', () => {
  const mlp = () =>
    graphOf((b) => {
      const x = b.input('x', 'f32', [3, 64]);
      const h = b.silu(b.matmul(x, w(b, 'f32', [64, 40])));
      return b.matmul(h, w(b, 'f32', [40, 24], 2));
    });

  for (const [bits, symmetric, group] of [
    [4, true, 32],
    [4, false, 16],
    [8, false, 32],
  ] as const) {
    it(`RTN ${bits}-bit${symmetric ? '' : ' asymmetric'} group ${group}: MatMulNBits (com.microsoft), same graph back`, () => {
      const g = mlp();
      const report = quantizeRtn(g, { bits, group, symmetric });
      expect(report.layers.length).toBe(2);
      const { graph: back, exported } = roundTrip(g);
      const m = decodeModel(exported.model);
      expect(m.graph.nodes.filter((n) => n.opType === 'MatMulNBits' && n.domain === 'com.microsoft').length).toBe(2);
      expect(m.opsetImport).toContainEqual({ domain: 'com.microsoft', version: 1 });
      // silu is Sigmoid · x below opset 24: compare after one more round trip, and outputs always
      expectSameGraph(roundTrip(back).graph, back);
      expectSameGraph(roundTrip(g, { opset: 24 }).graph, g);
      expectSameOutputs(g, back, randomFeeds(g, 3));
    });
  }

  it('gather_block_quantized (an RTN-quantized embedding table) round trips', () => {
    const g = graphOf((b) => b.gather(w(b, 'f32', [10, 32]), b.input('ids', 'i64', [2, 3]), 0));
    const report = quantizeRtn(g, { bits: 4, group: 16, embeddings: true });
    expect(report.layers.map((l) => l.op)).toEqual(['gather_block_quantized']);
    const { graph: back } = roundTrip(g);
    expectSameGraph(back, g);
    expectSameOutputs(g, back, randomFeeds(g, 5), true);
  });

  it('a fused reduction (reduce + epilogue at opt level 1) is written as its body inlined, equal outputs', () => {
    const g = graphOf((b) => {
      const x = b.input('x', 'f32', [4, 16]);
      const m = b.op('reduce_mean', [x], { axes: [-1], keepdims: true });
      return b.op('tanh', [b.op('mul', [m, w(b, 'f32', [4, 1], 3)])]);
    });
    const opt = optimize(g, { level: 1 });
    expect(opt.nodes.map((n) => n.op)).toEqual(['fused_reduction']);
    const { graph: back, exported } = roundTrip(opt);
    expect(decodeModel(exported.model).graph.nodes.map((n) => n.opType)).toEqual(['ReduceMean', 'Mul', 'Tanh']);
    expectSameOutputs(g, back, randomFeeds(g, 4));
  });

  it('fused nodes (opt level 1) are written as their bodies inlined, equal outputs', () => {
    const g = graphOf((b) => {
      const x = b.input('x', 'f32', [4, 16]);
      const y = b.op('add', [b.matmul(x, w(b, 'f32', [16, 8])), w(b, 'f32', [8], 2)]);
      return b.op('mul', [b.op('tanh', [y]), b.op('sigmoid', [y])]);
    });
    const opt = optimize(g, { level: 1 });
    expect(opt.nodes.some((n) => n.op.startsWith('fused_'))).toBe(true);
    const { graph: back, exported } = roundTrip(opt);
    expect(decodeModel(exported.model).graph.nodes.every((n) => !n.opType.startsWith('fused'))).toBe(true);
    expectSameOutputs(g, back, randomFeeds(g, 2));
  });
});

describe('ops without an ONNX form', () => {
  it('every registered op has an inverse mapping, is fused (inlined), or is one of the known kiln-only ops', () => {
    // collectives: ONNX has no standard form for them (a rank's graph is run by kiln's parallel runtime)
    const kilnOnly = [
      'kv_cache_write',
      'kv_cache_move',
      'tree_accept',
      'paged_attention',
      'sample_token',
      'all_reduce',
      'all_gather',
      'reduce_scatter',
      // GGUF block formats: ONNX has no ggml block types (a model with them is written as GGUF: gguf-write.ts)
      'matmul_ggml',
      'get_rows_ggml',
    ];
    const fused = ['fused_elementwise', 'fused_contraction', 'fused_reduction', 'fused_injective'];
    const missing = allOps()
      .map((d) => d.name)
      .filter((op) => !hasExporter(op) && !kilnOnly.includes(op) && !fused.includes(op));
    expect(missing).toEqual([]);
    for (const op of kilnOnly) expect(hasExporter(op)).toBe(false);
  });

  it('kv_cache_write / sample_token are UnsupportedErrors naming the node and op', () => {
    const b = new GraphBuilder('g');
    const cache = b.input('cache', 'f32', [4, 2, 1, 3]);
    const y = b.op(
      'kv_cache_write',
      [cache, b.input('new', 'f32', [1, 2, 1, 3]), b.input('bt', 'i32', [1, 2]), b.input('pos', 'i32', [1, 1])],
      {},
      'kvw',
    );
    b.output(y, 'y');
    const g = b.build();
    let err: unknown;
    try {
      exportOnnx(g);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnsupportedError);
    expect((err as KilnError).location).toMatchObject({ node: g.nodes[0]!.name, op: 'kv_cache_write' });
    expect((err as Error).message).toMatch(/kv_cache_write/);
  });

  it('attention with mask_fill beyond its plain form (here causal) is an UnsupportedError naming the node', () => {
    const g = graphOf((b) => {
      const q = f32(b, 'q', [1, 2, 2, 4]);
      return b.op('attention', [q, q, q, b.input('m', 'bool', [2, 2])], { mask_fill: -10000, is_causal: true });
    });
    let err: unknown;
    try {
      exportOnnx(g);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnsupportedError);
    expect((err as KilnError).location).toMatchObject({ node: g.nodes[0]!.name, op: 'attention' });
    expect((err as Error).message).toMatch(/mask_fill.*is_causal/);
  });

  it('attention / rotary_embedding at an opset below 23 are UnsupportedErrors naming the node', () => {
    const g = graphOf((b) => {
      const q = f32(b, 'q', [1, 2, 2, 4]);
      return b.op('attention', [q, q, q]);
    });
    let err: unknown;
    try {
      exportOnnx(g, { opset: 21 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnsupportedError);
    expect((err as KilnError).location).toMatchObject({ node: g.nodes[0]!.name, op: 'attention' });
    expect((err as Error).message).toMatch(/opset 23/);
    expect(() => exportOnnx(g, { opset: 23 })).not.toThrow();
  });

  it('an opset below 18 is refused', () => {
    expect(() => exportOnnx(graphOf(unary('relu')), { opset: 13 })).toThrow(UnsupportedError);
  });
});

describe('external data', () => {
  const big = () =>
    graphOf((b) => {
      const x = b.input('x', 'f32', [2, 64]);
      return b.op('add', [b.matmul(x, w(b, 'f32', [64, 32])), w(b, 'f32', [32], 3)]);
    });

  it('initializers past the threshold go to the external file (64-byte aligned) and come back equal', () => {
    const g = big();
    const { graph: back, exported } = roundTrip(g, { externalData: { threshold: 100, location: 'w.bin' } });
    expect(exported.external?.location).toBe('w.bin');
    const m = decodeModel(exported.model);
    const ext = m.graph.initializers.filter((t) => t.externalData);
    expect(ext.length).toBe(2);
    for (const t of ext) expect(Number(t.externalInfo!['offset']) % 64).toBe(0);
    expect(exported.external!.size).toBeGreaterThanOrEqual(64 * 32 * 4 + 32 * 4);
    expectSameGraph(back, g);
    expectSameOutputs(g, back, randomFeeds(g, 4), true);
  });

  it('initializers past the in-model limit are a KilnError (limit) naming the tensor and saying to use external data', () => {
    const g = big();
    let err: unknown;
    try {
      exportOnnx(g, { maxModelBytes: 4096 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KilnError);
    expect((err as KilnError).code).toBe('limit');
    expect((err as KilnError).location.tensor).toBeDefined();
    expect((err as Error).message).toMatch(/external data/);
    // the same model with its big initializers outside fits
    expect(() => exportOnnxModel(g, { maxModelBytes: 4096, externalData: { threshold: 1024 } })).not.toThrow();
  });

  it('exportOnnx without a writer refuses external data; with one it gets every chunk', () => {
    const g = big();
    expect(() => exportOnnx(g, { externalData: { threshold: 100 } })).toThrow(KilnError);
    const chunks: Uint8Array[] = [];
    exportOnnx(g, { externalData: { threshold: 100 }, writeExternal: (_l, c) => chunks.push(c) });
    expect(chunks.reduce((a, c) => a + c.length, 0)).toBeGreaterThan(64 * 32 * 4);
  });

  it('exportOnnxFile writes the model and its data file; importOnnxFile reads them back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-export-'));
    try {
      const g = big();
      const path = join(dir, 'm.onnx');
      const r = await exportOnnxFile(g, path, { externalData: { threshold: 100 } });
      expect(r.externalPath).toBe(join(dir, 'm.onnx.data'));
      expect(existsSync(r.externalPath!)).toBe(true);
      expect(readFileSync(path).length).toBeLessThan(2000);
      const back = (await importOnnxFile(path)).graph;
      expectSameOutputs(g, back, randomFeeds(g, 9), true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const noShared = await requireTool('../shared', sharedProbe);

describe('models', () => {
  const llama: LlamaConfig = {
    arch: 'llama',
    dim: 16,
    hiddenDim: 24,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    vocab: 23,
    maxSeq: 32,
    normEps: 1e-5,
    ropeTheta: 10000,
    tiedHead: false,
  };
  const gpt2: Gpt2Config = {
    arch: 'gpt2',
    dim: 16,
    hiddenDim: 32,
    layers: 2,
    heads: 2,
    vocab: 19,
    maxSeq: 32,
    normEps: 1e-5,
  };

  const lmFeeds = (g: Graph) => {
    const dims = { batch: 1, seq: 3, past: 2 };
    const feeds = randomFeeds(g, 11, dims);
    feeds['input_ids'] = makeTensor(feeds['input_ids']!.dtype, [1, 3], [1, 5, 7]);
    if (feeds['position_ids']) feeds['position_ids'] = makeTensor(feeds['position_ids'].dtype, [1, 3], [2, 3, 4]);
    return feeds;
  };

  it('builder LLaMA: equal logits and presents; the same graph back at opset 24 (SiLU as Swish)', () => {
    const g = buildLlama(llama, randomLlamaWeights(llama, 1));
    const { graph: back, exported } = roundTrip(g);
    expect(decodeModel(exported.model).opsetImport).toEqual([{ domain: '', version: 23 }]);
    expectSameOutputs(g, back, lmFeeds(g));
    expectSameGraph(roundTrip(back).graph, back);
    expectSameGraph(roundTrip(g, { opset: 24 }).graph, g);
  });

  it('builder LLaMA quantized (RTN 4-bit): MatMulNBits, equal outputs', () => {
    const g = buildLlama(llama, randomLlamaWeights(llama, 2));
    quantizeRtn(g, { bits: 4, group: 16 });
    const { graph: back } = roundTrip(g);
    expectSameOutputs(g, back, lmFeeds(g));
    expectSameGraph(roundTrip(g, { opset: 24 }).graph, g);
  });

  it('builder GPT-2: same graph back, equal outputs', () => {
    const g = buildGpt2(gpt2, randomGpt2Weights(gpt2, 1));
    const { graph: back } = roundTrip(g);
    expectSameGraph(back, g);
    expectSameOutputs(g, back, lmFeeds(g));
  });

  for (const name of ['model_gpt2_past', 'model_decoder_block_d512']) {
    it.skipIf(noShared)(`conformance ${name}: import → export → import, the same graph and equal outputs`, async () => {
      const file = join(CONFORMANCE, 'models', name, 'model.onnx');
      const g = (await importOnnxFile(file)).graph;
      const { graph: back } = roundTrip(g);
      expectSameGraph(back, g);
      const dims: Record<string, number> = {};
      for (const v of g.inputs) for (const d of v.type.shape) if (typeof d === 'string') dims[d] = 2;
      const feeds = randomFeeds(g, 5, dims);
      for (const v of g.inputs) {
        if (v.type.dtype === 'i64' || v.type.dtype === 'i32') {
          const t = feeds[v.name]!;
          feeds[v.name] = makeTensor(
            v.type.dtype,
            t.shape,
            Array.from(t.data, (_x, i) => i % 3),
          );
        }
      }
      expectSameOutputs(g, back, feeds);
      if (name !== 'model_gpt2_past') return;
      // optimized: recognize makes attention with mask_fill of the exporter's Where(mask, scores, -10000)
      for (const level of [1, 3]) {
        const opt = optimize(g, { level });
        expect(opt.nodes.some((n) => n.op === 'attention' && n.attrs['mask_fill'] !== undefined)).toBe(true);
        expectSameOutputs(g, roundTrip(opt).graph, feeds);
      }
    });
  }
});

describe('kiln export', () => {
  it('writes an ONNX file from an ONNX model (with --opt 1), external data past a threshold', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-export-cli-'));
    try {
      const g = graphOf((b) => b.gelu(b.matmul(f32(b, 'x', [2, 64]), w(b, 'f32', [64, 32]))));
      const src = join(dir, 'in.onnx');
      await exportOnnxFile(g, src);
      const out = join(dir, 'out.onnx');
      const io = {
        text: '',
        errs: '',
        out(s: string) {
          this.text += s;
        },
        err(s: string) {
          this.errs += s;
        },
      };
      const code = await main(['export', src, '--out', out, '--opt', '1', '--external-data-threshold', '256'], io);
      expect(io.errs).toBe('');
      expect(code).toBe(0);
      expect(io.text).toMatch(/out\.onnx/);
      expect(existsSync(join(dir, 'out.onnx.data'))).toBe(true);
      const back = (await importOnnxFile(out)).graph;
      expectSameOutputs(g, back, randomFeeds(g, 1));
      const bad = { ...io, text: '', errs: '' };
      expect(await main(['export', src], bad)).toBe(2);
      expect(bad.errs).toMatch(/--out/);
      const bad2 = { ...io, text: '', errs: '' };
      expect(
        await main(['export', join(REPO_ROOT, 'models', 'stories260K.bin'), '--out', out, '--dims', 'a=1'], bad2),
      ).toBe(2);
      expect(bad2.errs).toMatch(/--dims/);
      const bad3 = { ...io, text: '', errs: '' };
      expect(await main(['export', src, '--out', out, '--opset', '12'], bad3)).toBe(2);
      expect(bad3.errs).toMatch(/--opset/);
      expect(exportOnnxModel(g).opsets.get('')).toBe(21);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('exports a llama2.c checkpoint (the bundled stories260K, built by the LLaMA builder)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-export-cli-'));
    try {
      const model = join(REPO_ROOT, 'models', 'stories260K.bin');
      const out = join(dir, 'stories.onnx');
      const io = {
        text: '',
        errs: '',
        out(s: string) {
          this.text += s;
        },
        err(s: string) {
          this.errs += s;
        },
      };
      expect(await main(['export', model, '--out', out], io)).toBe(0);
      const g = loadLanguageModel(model).graph;
      const back = (await importOnnxFile(out)).graph;
      const feeds = randomFeeds(g, 3, { batch: 1, seq: 2, past: 1 });
      feeds['input_ids'] = makeTensor('i64', [1, 2], [1, 100]);
      if (feeds['position_ids']) feeds['position_ids'] = makeTensor('i64', [1, 2], [1, 2]);
      expectSameOutputs(g, back, feeds);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('interprets the same as the source after a round trip through the CLI-free API (sanity of randomFeeds)', () => {
    const g = graphOf(unary('relu'));
    const r = interpret(g, randomFeeds(g, 1));
    expect(Array.from(r['y0']!.data).some((v) => v > 0)).toBe(true);
  });
});
