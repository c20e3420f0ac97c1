/**
 * Fused elementwise groups on the devices: graphs compiled with the default pipeline (fusion included) equal the float64 reference
 * of the *unfused* graph, and the kernel steps per run drop — a chain of 6 elementwise ops runs as 1 kernel.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import '../../ir/ops/index.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { compile, type Session } from '../../src/session.js';
import { compareWithReference } from '../helpers/compare.js';
import { deviceBackends } from '../helpers/device-backends.js';
import { CONFORMANCE, hasShared } from '../helpers/paths.js';
import { randomGraph } from '../helpers/random-graph.js';
import { importOnnx, tensorFromOnnx } from '../../src/frontends/onnx/import.js';
import { decodeTensor } from '../../src/frontends/onnx/proto.js';

const backends = await deviceBackends();

const randn = (n: number, scale = 2) =>
  Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + 0.3) * scale + Math.cos(i * 0.37) * 0.5);

/** Kernel steps handed to the backend, counted by wrapping its `run` (as bench/engines.ts does). */
function countSteps(session: Session): () => number {
  let steps = 0;
  const be = (session as unknown as { executor?: { backend?: { run(s: readonly unknown[]): Promise<void> } } }).executor
    ?.backend;
  if (!be) throw new Error('session has no executor backend');
  const run = be.run.bind(be);
  be.run = (s) => ((steps += s.length), run(s));
  return () => steps;
}

async function runAt(
  graph: Graph,
  feeds: Record<string, Tensor>,
  backend: string,
  fused: boolean,
): Promise<{ out: Record<string, Tensor>; steps: number }> {
  // the default pipeline with or without the fusion pass
  const session = await compile(graph, {
    backend: backend as 'webgpu',
    disabledPasses: fused ? [] : ['fuse-elementwise', 'fuse-epilogue'],
  });
  try {
    const steps = countSteps(session);
    const out = await session.run(feeds);
    return { out, steps: steps() };
  } finally {
    session.dispose();
  }
}

function expectMatchesReference(graph: Graph, feeds: Record<string, Tensor>, out: Record<string, Tensor>): void {
  const ref = interpret(graph, feeds); // the unfused graph's float64 reference
  for (const o of graph.outputs) {
    const m = compareWithReference(o.name, out[o.name]!, ref[o.name]!);
    expect(m, m?.reason).toBeUndefined();
  }
}

/** x → add bias → mul scale → tanh → gelu → sub c → sigmoid (6 elementwise ops, broadcast bias and row scale). */
function chain6(dt: DType, rows: number, cols: number): { graph: Graph; feeds: Record<string, Tensor> } {
  const b = new GraphBuilder('chain6');
  const x = b.input('x', dt, [rows, cols]);
  const bias = b.input('bias', dt, [cols]);
  const scale = b.input('scale', dt, [rows, 1]);
  const c = b.weight('c', makeTensor(dt, [], [0.25]));
  let v = b.op('add', [x, bias]);
  v = b.op('mul', [v, scale]);
  v = b.op('tanh', [v]);
  v = b.op('gelu', [v], { approximate: 'tanh' });
  v = b.op('sub', [v, c]);
  v = b.op('sigmoid', [v]);
  b.output(v, 'y');
  const feeds = {
    x: makeTensor(dt, [rows, cols], randn(rows * cols)),
    bias: makeTensor(dt, [cols], randn(cols, 1)),
    scale: makeTensor(dt, [rows, 1], randn(rows, 1.5)),
  };
  return { graph: b.build(), feeds };
}

describe.skipIf(backends.length === 0)('fused elementwise on the devices', () => {
  for (const backend of backends) {
    for (const dt of ['f32', 'f16'] as const) {
      it(`${backend} ${dt}: a 6-op chain runs as 1 kernel and equals the unfused reference`, async () => {
        const { graph, feeds } = chain6(dt, 37, 300);
        const l1 = await runAt(graph, feeds, backend, false);
        const l2 = await runAt(graph, feeds, backend, true);
        expect(l1.steps).toBe(6);
        expect(l2.steps).toBe(1);
        expectMatchesReference(graph, feeds, l2.out);
      });
    }

    it(`${backend}: where / clip / cast / pow / max and a diamond in one group`, async () => {
      const b = new GraphBuilder('mixed');
      const x = b.input('x', 'f32', [5, 64]);
      const y = b.input('y', 'f16', [64]);
      const cond = b.input('cond', 'bool', [5, 1]);
      const lo = b.weight('lo', makeTensor('f32', [], [-1.5]));
      const hi = b.weight('hi', makeTensor('f32', [], [2]));
      const two = b.weight('two', makeTensor('f32', [], [2]));
      const yc = b.op('cast', [y], { to: 'f32' });
      const s = b.op('sigmoid', [x]);
      const d = b.op('add', [b.op('mul', [s, yc]), s]); // s read twice: a diamond
      const p = b.op('pow', [b.op('clip', [d, lo, hi]), two]);
      const w = b.op('where', [cond, p, b.op('neg', [x])]);
      b.output(b.op('max', [w, yc, x]), 'out');
      const graph = b.build();
      const feeds = {
        x: makeTensor('f32', [5, 64], randn(320, 3)),
        y: makeTensor('f16', [64], randn(64, 2)),
        cond: makeTensor('bool', [5, 1], [1, 0, 1, 1, 0]),
      };
      const l1 = await runAt(graph, feeds, backend, false);
      const l2 = await runAt(graph, feeds, backend, true);
      expect(l2.steps).toBe(1);
      expect(l1.steps).toBeGreaterThan(8);
      expectMatchesReference(graph, feeds, l2.out);
    });

    for (const dt of ['f32', 'f16'] as const) {
      it(`${backend} ${dt}: matmul / gemm epilogues (bias, activation, residual, scale) run in the contraction kernel`, async () => {
        const b = new GraphBuilder('epi');
        // tiled: batched matmul, a per-batch scale, a bias, tanh-gelu, a residual; the product read twice (x·σ(x))
        const x = b.input('x', dt, [2, 70, 48]);
        const w = b.weight('w', makeTensor(dt, [48, 66], randn(48 * 66, 0.2)));
        const s = b.input('s', dt, [2, 1, 1]);
        const bias = b.weight('bias', makeTensor(dt, [66], randn(66, 1)));
        const r = b.input('r', dt, [2, 70, 66]);
        const m = b.op('mul', [b.op('matmul', [x, w]), s]);
        const h = b.op('gelu', [b.op('add', [m, bias])], { approximate: 'tanh' });
        b.output(b.op('add', [h, r]), 'tiled');
        // skinny: one row, swish of the product
        const x1 = b.input('x1', dt, [1, 48]);
        const p1 = b.op('matmul', [x1, w]);
        b.output(b.op('mul', [p1, b.op('sigmoid', [p1])]), 'skinny');
        // gemm with C and transB, then relu
        const wt = b.weight('wt', makeTensor(dt, [20, 48], randn(20 * 48, 0.3)));
        const cc = b.weight('cc', makeTensor(dt, [20], randn(20, 1)));
        b.output(
          b.op('relu', [
            b.op('gemm', [b.op('reshape', [x, b.weight('sh', makeTensor('i64', [2], [140, 48]))]), wt, cc], {
              transB: true,
              alpha: 0.5,
              beta: 2,
            }),
          ]),
          'gemm',
        );
        // a gemm on [B·S, K] reshaped back to [B, S, N], plus a per-position term [1, S, N] (the rows split in two)
        const g2 = b.op('gemm', [b.op('reshape', [x, b.weight('sh2', makeTensor('i64', [2], [140, 48]))]), w]);
        const pos = b.weight('pos', makeTensor(dt, [1, 70, 66], randn(70 * 66, 1)));
        const back = b.op('reshape', [g2, b.weight('sh3', makeTensor('i64', [3], [2, 70, 66]))]);
        b.output(b.op('tanh', [b.op('add', [back, pos])]), 'rows');
        const graph = b.build();
        const feeds = {
          x: makeTensor(dt, [2, 70, 48], randn(2 * 70 * 48, 1)),
          s: makeTensor(dt, [2, 1, 1], [0.5, -1.5]),
          r: makeTensor(dt, [2, 70, 66], randn(2 * 70 * 66, 1)),
          x1: makeTensor(dt, [1, 48], randn(48, 1)),
        };
        const l1 = await runAt(graph, feeds, backend, false);
        const l2 = await runAt(graph, feeds, backend, true);
        expect(l2.steps).toBe(4);
        expect(l1.steps).toBeGreaterThan(8);
        expectMatchesReference(graph, feeds, l2.out);
      });
    }

    it(`${backend} f16: fused kernels round interior values exactly as the unfused ones store them (bit-equal)`, async () => {
      // the shader compiler must not drop the f32 → f16 → f32 round trip (Mesa's NIR folds a plain conversion pair)
      const b = new GraphBuilder('bits');
      const x = b.input('x', 'f16', [37, 48]);
      const w = b.weight('w', makeTensor('f16', [48, 70], randn(48 * 70, 0.3)));
      const r = b.input('r', 'f16', [37, 70]);
      const p = b.op('matmul', [x, w]);
      b.output(b.op('add', [b.op('silu', [p]), r]), 'epi');
      b.output(b.op('mul', [b.op('tanh', [b.op('add', [x, x])]), x]), 'chain');
      const graph = b.build();
      const feeds = {
        x: makeTensor('f16', [37, 48], randn(37 * 48, 1)),
        r: makeTensor('f16', [37, 70], randn(37 * 70, 1)),
      };
      const l1 = await runAt(graph, feeds, backend, false);
      const l2 = await runAt(graph, feeds, backend, true);
      expect(l2.steps).toBeLessThan(l1.steps);
      for (const k of ['epi', 'chain']) expect(Array.from(l2.out[k]!.data), k).toEqual(Array.from(l1.out[k]!.data));
      expectMatchesReference(graph, feeds, l2.out); // and both equal the float64 reference
    });

    it(`${backend}: random graphs fused equal the unfused reference and never run more kernels`, async () => {
      let fewer = 0;
      for (let seed = 1; seed <= 12; seed++) {
        const { graph, feeds } = randomGraph(seed * 7919, 8);
        const l1 = await runAt(graph, feeds, backend, false);
        const l2 = await runAt(graph, feeds, backend, true);
        expectMatchesReference(graph, feeds, l2.out);
        expect(l2.steps).toBeLessThanOrEqual(l1.steps);
        if (l2.steps < l1.steps) fewer++;
      }
      expect(fewer).toBeGreaterThan(3);
    }, 120_000);
  }

  // kernel steps per run without → with fusion at the default level (a fusion regression fails here): the decoder block's residual / bias
  // chains, GPT-2's attention scale + causal mask (div → where) per layer. Movement ops run no kernel where their
  // consumers read them as strided views (GPT-2: 328 → 195 with views; the block: 18 → 12), and a matmul takes the
  // elementwise group reading it as its epilogue (the block: 12 → 8); attention on head-split views that are merged
  // back runs in its 3-D form, whose output is already merged (the block: 8 → 7, the target, with the
  // one-kernel attention schedule — `kiln inspect --attention one-kernel`, test/unit/inspect.test.ts; the default
  // schedule runs it as scores, softmax and P·V, 1.7× faster on lavapipe: 9 kernels). GPT-2's
  // projections (gemm, reshape back, + residual or gelu) take their epilogues through the reshape (195 → 159); its
  // Where(mask, scores, -10000) attention is one op (mask_fill), the KV cache's three concats one fused_injective
  // kernel, and the scores matmul kept only for its Shape runs no kernel (159 → 99: 8 per layer); layer norms ride on
  // the projections after them (the block: 9 → 7; GPT-2: 99 → 75, 6 per layer).
  const MODELS: [string, number, number][] = [
    ['model_decoder_block_d512', 14, 7],
    ['model_gpt2_past', 111, 75],
  ];
  for (const [name, l1Steps, l2Steps] of MODELS) {
    it.skipIf(!hasShared || !backends.includes('webgpu'))(
      `webgpu: ${name} runs ${l1Steps} → ${l2Steps} kernels`,
      async () => {
        const dir = join(CONFORMANCE, 'models', name);
        const { graph } = importOnnx(readFileSync(join(dir, 'model.onnx')));
        const feeds: Record<string, Tensor> = {};
        graph.inputs.forEach(
          (v, i) =>
            (feeds[v.name] = tensorFromOnnx(decodeTensor(readFileSync(join(dir, 'test_data_set_0', `input_${i}.pb`))))),
        );
        const l1 = await runAt(graph, feeds, 'webgpu', false);
        const l2 = await runAt(graph, feeds, 'webgpu', true);
        expect([l1.steps, l2.steps]).toEqual([l1Steps, l2Steps]);
        expectMatchesReference(graph, feeds, l2.out);
      },
      120_000,
    );
  }
});
