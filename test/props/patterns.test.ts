/**
 * Random transformer blocks written the way exporters write them — layer norm as ReduceMean / Sub / Pow|Mul / Sqrt /
 * Div (epsilon inside the root), GELU in its erf or tanh form, attention as MatMul(Q, Kᵀ) → scale (Mul or Div) →
 * additive causal mask → Softmax → MatMul(·, V) on heads split with Reshape + Transpose and merged back, Q / K / V as
 * one projection or three, bias / residual adds — with random batch, sequence (up to past the tiled-matmul
 * threshold), heads and head sizes. The default pipeline must recognize and fuse them (checked: the kernel count of a
 * fully recognized block) and compute what the unoptimized graph computes: under the reference interpreter, and on
 * webgpu and cuda-emu against the float64 reference of the unoptimized graph.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { Graph, Value } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import '../../ir/ops/index.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { optimize } from '../../passes/manager.js';
import { compile } from '../../src/session.js';
import { compareWithReference, tolerance } from '../helpers/compare.js';
import { deviceBackends } from '../helpers/device-backends.js';
import { PROP_RUNS } from '../helpers/paths.js';

const backends = await deviceBackends();

interface Block {
  B: number;
  S: number;
  H: number;
  D: number;
  separateQkv: boolean;
  powSquare: boolean;
  divScale: boolean;
  tanhGelu: boolean;
  seed: number;
}

const arbBlock: fc.Arbitrary<Block> = fc.record({
  B: fc.integer({ min: 1, max: 2 }),
  S: fc.oneof(fc.integer({ min: 1, max: 9 }), fc.constant(70)),
  H: fc.constantFrom(1, 2, 4),
  D: fc.constantFrom(4, 8, 16),
  separateQkv: fc.boolean(),
  powSquare: fc.boolean(),
  divScale: fc.boolean(),
  tanhGelu: fc.boolean(),
  seed: fc.integer({ min: 1, max: 1 << 30 }),
});

function block(c: Block): { graph: Graph; feeds: Record<string, Tensor> } {
  const { B, S, H, D } = c;
  const E = H * D;
  let a = c.seed;
  const rnd = (n: number, scale: number) =>
    Array.from({ length: n }, () => ((a = (a * 1103515245 + 12345) % 2147483648), ((a / 2147483648) * 2 - 1) * scale));
  const b = new GraphBuilder('block');
  const w = (name: string, shape: number[], scale: number) =>
    b.weight(
      name,
      makeTensor(
        'f32',
        shape,
        rnd(
          shape.reduce((p, d) => p * d, 1),
          scale,
        ),
      ),
    );
  const k = (name: string, xs: number[]) => b.weight(name, makeTensor('i64', [xs.length], xs));
  const s = (name: string, x: number) => b.weight(name, makeTensor('f32', [], [x]));
  const x = b.input('x', 'f32', [B, S, E]);

  const layerNorm = (v: Value, p: string) => {
    const mean = b.op('reduce_mean', [v], { axes: [-1], keepdims: true });
    const d = b.op('sub', [v, mean]);
    const sq = c.powSquare ? b.op('pow', [d, s(`${p}two`, 2)]) : b.op('mul', [d, d]);
    const variance = b.op('reduce_mean', [sq], { axes: [-1], keepdims: true });
    const y = b.op('div', [d, b.op('sqrt', [b.op('add', [variance, s(`${p}eps`, 1e-5)])])]);
    return b.op('add', [b.op('mul', [y, w(`${p}g`, [E], 1)]), w(`${p}b`, [E], 0.5)]);
  };
  const linear = (v: Value, p: string, n: number) =>
    b.op('add', [
      b.op('matmul', [v, w(`${p}w`, [v.type.shape.at(-1) as number, n], 1 / Math.sqrt(E))]),
      w(`${p}b`, [n], 0.1),
    ]);
  const heads = (v: Value, p: string) =>
    b.op('transpose', [b.op('reshape', [v, k(`${p}hs`, [B, S, H, D])])], { perm: [0, 2, 1, 3] });

  const h1 = layerNorm(x, 'ln1');
  let q: Value, kk: Value, vv: Value;
  if (c.separateQkv) [q, kk, vv] = ['q', 'k', 'v'].map((p) => linear(h1, p, E)) as [Value, Value, Value];
  else [q, kk, vv] = b.opN('split', [linear(h1, 'qkv', 3 * E)], { axis: -1 }, 3) as [Value, Value, Value];
  const kt = b.op('transpose', [heads(kk, 'k')], { perm: [0, 1, 3, 2] });
  const scores = b.op('matmul', [heads(q, 'q'), kt]);
  const scaled = c.divScale
    ? b.op('div', [scores, s('sc', Math.sqrt(D))])
    : b.op('mul', [scores, s('sc', 1 / Math.sqrt(D))]);
  const mask = makeTensor(
    'f32',
    [S, S],
    Array.from({ length: S * S }, (_, i) => (i % S > Math.floor(i / S) ? -Infinity : 0)),
  );
  const p = b.op('softmax', [b.op('add', [scaled, b.weight('mask', mask)])], { axis: -1 });
  const o = b.op('transpose', [b.op('matmul', [p, heads(vv, 'v')])], { perm: [0, 2, 1, 3] });
  const merged = b.op('reshape', [o, k('ms', [B, S, E])]);
  const r1 = b.op('add', [x, linear(merged, 'o', E)]);
  const f = linear(layerNorm(r1, 'ln2'), 'fc1', 2 * E);
  let g: Value;
  if (c.tanhGelu) {
    // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    const inner = b.op('mul', [
      s('c0', Math.fround(Math.sqrt(2 / Math.PI))),
      b.op('add', [f, b.op('mul', [s('c1', Math.fround(0.044715)), b.op('pow', [f, s('three', 3)])])]),
    ]);
    g = b.op('mul', [b.op('mul', [s('half', 0.5), f]), b.op('add', [s('one', 1), b.op('tanh', [inner])])]);
  } else {
    // x·0.5·(1 + erf(x / √2))
    const e = b.op('erf', [b.op('div', [f, s('r2', Math.fround(Math.SQRT2))])]);
    g = b.op('mul', [b.op('mul', [f, s('half', 0.5)]), b.op('add', [e, s('one', 1)])]);
  }
  b.output(b.op('add', [r1, linear(g, 'fc2', E)]), 'y');
  return { graph: b.build(), feeds: { x: makeTensor('f32', [B, S, E], rnd(B * S * E, 1)) } };
}

const runs = Math.max(6, Math.round(PROP_RUNS / 3));

describe('random exporter-style transformer blocks: recognized, fused, and computing the same', () => {
  it('reference: the optimized graph is a 5-op block and equals the unoptimized one', () => {
    fc.assert(
      fc.property(arbBlock, (c) => {
        const { graph, feeds } = block(c);
        const opt = optimize(graph);
        // layer norm + fused qkv projection (+ bias), attention, fused out-projection + residual, layer norm + fused
        // fc1 + gelu, fused fc2 + residual; separate Q / K / V projections and biases are merged (the split is a view)
        const ops = opt.nodes.map((n) => n.op).filter((op) => op !== 'split');
        expect(ops, JSON.stringify(c)).toEqual([
          'fused_contraction',
          'attention',
          'fused_contraction',
          'fused_contraction',
          'fused_contraction',
        ]);
        const prologues = opt.nodes.filter((n) => String(n.attrs['body'] ?? '').includes('layer_norm('));
        expect(prologues, JSON.stringify(c)).toHaveLength(2);
        const want = interpret(graph, feeds)['y']!;
        const got = interpret(opt, feeds)['y']!;
        const m = compareWithReference('y', got, want, tolerance('f32', true));
        expect(m, `${JSON.stringify(c)}: ${m?.reason}`).toBeUndefined();
      }),
      { numRuns: 4 * runs },
    );
  });

  for (const backend of backends) {
    it(`${backend}: equals the float64 reference of the unoptimized graph`, async () => {
      await fc.assert(
        fc.asyncProperty(arbBlock, async (c) => {
          const { graph, feeds } = block(c);
          const want = interpret(graph, feeds)['y']!;
          const s = await compile(graph, { backend, poison: true });
          try {
            const got = (await s.run(feeds))['y']!;
            const m = compareWithReference('y', got, want, tolerance('f32', true));
            expect(m, `${JSON.stringify(c)}: ${m?.reason}`).toBeUndefined();
          } finally {
            s.dispose();
          }
        }),
        { numRuns: runs },
      );
    }, 300_000);
  }
});
