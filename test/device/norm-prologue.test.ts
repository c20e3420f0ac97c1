/**
 * RMS and layer norms fused before a contraction (`fused_contraction` with a norm prologue) on the devices against
 * the float64 reference: the GEMV schedule (decode rows, both weight layouts) and the tiled one (prefill rows, with a
 * bias and residual epilogue), a layer norm's β folded after the product, ragged sizes, rows with a large offset and
 * a constant row (shifted moments: it normalizes to exactly 0).
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { Graph } from '../../ir/graph.js';
import '../../ir/ops/index.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { optimize } from '../../passes/manager.js';
import { checkAgainstReference } from '../helpers/backends.js';
import { deviceBackends } from '../helpers/device-backends.js';

const backends = await deviceBackends();
const fill = (n: number, s: number, off = 0) => Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + s) + off);

interface Opts {
  transB?: boolean;
  epilogue?: boolean;
  off?: number;
  layer?: boolean;
  beta?: boolean;
  constantRow?: boolean;
}

function normThenProject(rows: number, K: number, N: number, opts: Opts) {
  const b = new GraphBuilder('np');
  const x = b.input('x', 'f32', [1, rows, K]);
  const w = b.weight('w', makeTensor('f32', [K], fill(K, 3)));
  const beta = opts.beta ? [b.weight('beta', makeTensor('f32', [K], fill(K, 6)))] : [];
  const n = opts.layer
    ? b.op('layer_norm', [x, w, ...beta], { axis: -1, epsilon: 1e-5 })
    : b.op('rms_norm', [x, w], { axis: -1, epsilon: 1e-5 });
  let y;
  if (opts.transB) {
    const W = b.weight('W', makeTensor('f32', [N, K], fill(N * K, 4)));
    y = b.op('matmul', [n, b.op('transpose', [W], { perm: [1, 0] })]);
  } else {
    y = b.op('matmul', [n, b.weight('W', makeTensor('f32', [K, N], fill(K * N, 4)))]);
  }
  if (opts.epilogue) {
    const bias = b.weight('bias', makeTensor('f32', [N], fill(N, 5)));
    y = b.op('add', [b.op('add', [y, bias]), b.input('res', 'f32', [1, rows, N])]);
  }
  b.output(y, 'y');
  const g: Graph = b.build();
  const xs = fill(rows * K, 1, opts.off ?? 0);
  if (opts.constantRow) for (let k = 0; k < K; k++) xs[k] = 257; // row 0 constant: normalizes to exactly 0
  const feeds: Record<string, Tensor> = { x: makeTensor('f32', [1, rows, K], xs) };
  if (opts.epilogue) feeds['res'] = makeTensor('f32', [1, rows, N], fill(rows * N, 2));
  return { g, feeds };
}

describe.each(backends)('RMS norm prologue (%s)', (backend) => {
  it.each([
    ['decode row, weights [K, N]', 1, 300, 70, {}],
    ['decode row, transposed weights', 1, 300, 70, { transB: true }],
    ['two rows, bias + residual epilogue', 2, 172, 64, { epilogue: true }],
    ['prefill rows (tiled), bias + residual', 70, 96, 130, { epilogue: true }],
    ['prefill rows, large offset', 33, 64, 40, { off: 50 }],
    ['layer norm: decode row with β', 1, 300, 70, { layer: true, beta: true }],
    ['layer norm: decode row, transposed weights, large offset', 1, 256, 48, { layer: true, transB: true, off: 100 }],
    ['layer norm: prefill rows with β, bias + residual', 70, 96, 130, { layer: true, beta: true, epilogue: true }],
    [
      'layer norm: a constant row, rows far from zero',
      40,
      64,
      33,
      { layer: true, beta: true, constantRow: true, off: 1000 },
    ],
  ] as const satisfies readonly (readonly [string, number, number, number, Opts])[])(
    '%s',
    async (_, rows, K, N, opts) => {
      const { g, feeds } = normThenProject(rows, K, N, opts);
      const opt = optimize(g);
      expect(opt.nodes.some((n) => n.op === 'rms_norm' || n.op === 'layer_norm')).toBe(false); // fused
      const body = String(opt.nodes.find((n) => n.op === 'fused_contraction')!.attrs['body']);
      expect(body).toContain((opts as Opts).layer ? 'layer_norm(' : 'rms_norm(');
      expect(await checkAgainstReference(g, feeds, { backend })).toEqual([]);
    },
  );
});
