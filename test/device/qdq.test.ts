/**
 * A QAT-style ONNX export (QuantizeLinear / DequantizeLinear around the weights and activations of a 2-layer MLP and
 * of an attention block's projections), imported, folded by the default pipeline (qdq-fold) and run on the reference
 * interpreter, webgpu and cuda-emu against the float64 reference of the unfolded QDQ graph.
 */
import { describe, expect, it } from 'vitest';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import '../../ir/ops/index.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { optimize } from '../../passes/index.js';
import { importOnnx } from '../../src/frontends/onnx/import.js';
import { compile } from '../../src/session.js';
import { deviceBackends } from '../helpers/device-backends.js';
import { encodeModel, type TensorSpecProto } from '../helpers/onnx-writer.js';

const FLOAT = 1;
const UINT8 = 2;
const INT8 = 3;

function rand(n: number, seed: number): number[] {
  let s = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

const D = 16; // model width
const H = 32; // MLP hidden width
const T = 4; // tokens

function qdqModel(): Uint8Array {
  const inits: TensorSpecProto[] = [];
  const f32 = (name: string, dims: number[], v: number[]) =>
    inits.push({ name, dims, data_type: FLOAT, float_data: v });
  const int = (name: string, dims: number[], signed: boolean, v: number[]) =>
    inits.push({ name, dims, data_type: signed ? INT8 : UINT8, raw_data: Uint8Array.from(v.map((x) => x & 255)) });
  const nodes: { op_type: string; input: string[]; output: string[]; attribute?: object[] }[] = [];
  const node = (op_type: string, input: string[], output: string, attribute?: object[]) =>
    nodes.push({ op_type, input, output: [output], ...(attribute ? { attribute } : {}) });
  // activation scales are powers of two: x / scale is exact in f32 on every device, so codes never differ by rounding
  const act = (x: string, s: number, out: string) => {
    f32(`${out}_s`, [], [s]);
    int(`${out}_z`, [], false, [128]);
    node('QuantizeLinear', [x, `${out}_s`, `${out}_z`], `${out}_q`);
    node('DequantizeLinear', [`${out}_q`, `${out}_s`, `${out}_z`], out);
  };
  const weight = (name: string, K: number, N: number, seed: number, signed: boolean) => {
    const codes = rand(K * N, seed).map((r) => (signed ? Math.round(r * 127) : Math.round((r + 1) * 127)));
    int(`${name}_q`, [K, N], signed, codes);
    f32(
      `${name}_s`,
      [N],
      rand(N, seed + 1).map((r) => 0.002 + Math.abs(r) * 0.01),
    );
    const ins = [`${name}_q`, `${name}_s`];
    if (!signed) {
      int(
        `${name}_z`,
        [N],
        false,
        rand(N, seed + 2).map((r) => 120 + Math.round(r * 8)),
      );
      ins.push(`${name}_z`);
    }
    node('DequantizeLinear', ins, name, [{ name: 'axis', type: 2, i: 1 }]);
  };
  // MLP: y1 = relu(x · W1) · W2
  act('x', 1 / 16, 'xa');
  weight('w1', D, H, 10, true);
  node('MatMul', ['xa', 'w1'], 'h');
  node('Relu', ['h'], 'hr');
  act('hr', 1 / 32, 'ha');
  weight('w2', H, D, 20, false);
  node('MatMul', ['ha', 'w2'], 'y1');
  // attention block: softmax(q kᵀ / 4) v over QDQ projections of x
  for (const [p, seed] of [
    ['wq', 30],
    ['wk', 40],
    ['wv', 50],
  ] as const) {
    weight(p, D, D, seed, true);
    node('MatMul', ['xa', p], `${p}_o`);
  }
  node('Transpose', ['wk_o'], 'kt', [{ name: 'perm', type: 7, ints: [1, 0] }]);
  node('MatMul', ['wq_o', 'kt'], 'sc');
  f32('quarter', [], [0.25]);
  node('Mul', ['sc', 'quarter'], 'scs');
  node('Softmax', ['scs'], 'pr', [{ name: 'axis', type: 2, i: -1 }]);
  node('MatMul', ['pr', 'wv_o'], 'y2');
  // a weight-only quantized head (float activation): matmul_nbits
  weight('w3', D, 8, 60, false);
  node('MatMul', ['x', 'w3'], 'y3');
  return encodeModel({
    opset: 13,
    nodes,
    inputs: [{ name: 'x', elem_type: FLOAT, dims: [T, D] }],
    outputs: [
      { name: 'y1', elem_type: FLOAT },
      { name: 'y2', elem_type: FLOAT },
      { name: 'y3', elem_type: FLOAT },
    ],
    initializers: inits,
  });
}

const graph: Graph = importOnnx(qdqModel()).graph; // the importer keeps a weight's DequantizeLinear
const feeds: Record<string, Tensor> = {
  x: makeTensor(
    'f32',
    [T, D],
    rand(T * D, 3).map((r) => r * 4),
  ),
};
const want = interpret(graph, feeds);
const backends = await deviceBackends();

/**
 * Same codes on both sides (power-of-two activation scales): the folded graph sums exact integers and rescales once
 * where the QDQ graph rounds every dequantized factor to f32 — a relative f32 error of a K-term sum, and the hidden
 * activation's re-quantization can move one code at a tie, one step of 1/32 times a column of W2. 1e-3 relative +
 * that step bounds both.
 */
function expectClose(got: Record<string, Tensor>): void {
  for (const k of ['y1', 'y2', 'y3']) {
    const g = got[k]!.data;
    const w = want[k]!.data;
    expect(g.length).toBe(w.length);
    for (let i = 0; i < w.length; i++) {
      expect(Number.isNaN(g[i]!)).toBe(false);
      expect(Math.abs(g[i]! - w[i]!)).toBeLessThanOrEqual(1e-3 * (1 + Math.abs(w[i]!)));
    }
  }
}

describe('a QAT / QDQ ONNX model', () => {
  it('folds: no dequantize of a weight, no f32 weight constant, integer and nbits matmuls', () => {
    const g = optimize(graph);
    const ops = g.nodes.map((n) => n.op);
    expect(g.nodes.filter((n) => n.op === 'dequantize_linear' && n.inputs[0]?.isConst)).toEqual([]);
    expect(g.constants.filter((c) => c.type.dtype === 'f32' && c.type.shape.length === 2)).toEqual([]);
    expect(ops.filter((o) => o === 'matmul_integer').length).toBe(5); // W1, W2, Wq, Wk, Wv
    expect(ops.filter((o) => o === 'matmul_nbits').length).toBe(1); // W3
    expectClose(interpret(g, feeds));
  });

  for (const backend of backends) {
    it(`equals the float64 reference of the unfolded graph on ${backend}`, async () => {
      const s = await compile(graph, { backend, poison: true });
      try {
        expectClose(await s.run(feeds));
      } finally {
        s.dispose();
      }
    });
  }
});
