/**
 * The two attention schedules on the devices: decomposed (scores, softmax and P·V through the templates, taken by
 * default where it computes exactly what the op defines) and one-kernel (everything else), each against the float64
 * reference — GQA, 3-D and 4-D forms, past keys / values through the present outputs, a constant additive mask
 * broadcast over heads, f16; and the cases that must stay on one kernel (a fully masked row, causal masking).
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import '../../ir/ops/index.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { compile } from '../../src/session.js';
import { compareWithReference, tolerance } from '../helpers/compare.js';
import { deviceBackends } from '../helpers/device-backends.js';

const backends = await deviceBackends();

function randn(n: number, seed: number): number[] {
  let a = seed;
  return Array.from({ length: n }, () => ((a = (a * 1103515245 + 12345) % 2147483648), (a / 2147483648) * 2 - 1));
}

async function run(
  graph: Graph,
  feeds: Record<string, Tensor>,
  backend: string,
  attentionSchedule?: 'decomposed',
): Promise<string[]> {
  const s = await compile(graph, { backend: backend as 'webgpu', poison: true, attentionSchedule });
  const kernels: string[] = [];
  type K = { kernel: { name: string } };
  const be = (s as unknown as { executor: { backend: { run(x: readonly K[]): unknown } } }).executor.backend;
  const r = be.run.bind(be);
  be.run = (x) => (kernels.push(...x.map((k) => k.kernel.name)), r(x));
  try {
    const got = await s.run(feeds);
    const want = interpret(graph, feeds);
    for (const o of graph.outputs) {
      const m = compareWithReference(o.name, got[o.name]!, want[o.name]!, tolerance(want[o.name]!.dtype, true));
      expect(m, m?.reason).toBeUndefined();
    }
  } finally {
    s.dispose();
  }
  return kernels;
}

describe.each(backends)('attention schedules (%s)', (backend) => {
  for (const dt of ['f32', 'f16'] as const) {
    it(`${dt}: GQA with past and present, a constant mask over heads: decomposed`, async () => {
      const [B, Hq, Hkv, S, P, D] = [2, 4, 2, 5, 3, 8];
      const T = P + S;
      const b = new GraphBuilder('att');
      const q = b.input('q', dt, [B, Hq, S, D]);
      const k = b.input('k', dt, [B, Hkv, S, D]);
      const v = b.input('v', dt, [B, Hkv, S, D]);
      const pk = b.input('pk', dt, [B, Hkv, P, D]);
      const pv = b.input('pv', dt, [B, Hkv, P, D]);
      // a [1, Hq, S, T] additive mask: some keys masked per head, never a whole row
      const mask = makeTensor(
        dt,
        [1, Hq, S, T],
        Array.from({ length: Hq * S * T }, (_, i) => (i % 7 === 3 ? -Infinity : ((i % 5) - 2) * 0.25)),
      );
      const [y, presK, presV] = b.opN('attention', [q, k, v, b.weight('mask', mask), pk, pv], { scale: 0.3 }, 3);
      b.output(y!, 'y');
      b.output(presK!, 'present_k');
      b.output(presV!, 'present_v');
      const graph = b.build();
      const feeds: Record<string, Tensor> = {};
      let seed = 1;
      for (const x of graph.inputs)
        feeds[x.name] = makeTensor(
          dt,
          x.type.shape as number[],
          randn(
            (x.type.shape as number[]).reduce((p, d) => p * d, 1),
            seed++,
          ),
        );
      const kernels = await run(graph, feeds, backend, 'decomposed');
      expect(kernels.some((n) => n.includes('attention_scores'))).toBe(true);
    });
  }

  it('3-D form with GQA and no mask: decomposed; output written as [B, S, Hq·Dv]', async () => {
    const b = new GraphBuilder('att3');
    const q = b.input('q', 'f32', [2, 7, 4 * 6]);
    const k = b.input('k', 'f32', [2, 9, 2 * 6]);
    const v = b.input('v', 'f32', [2, 9, 2 * 5]);
    b.output(b.op('attention', [q, k, v], { q_num_heads: 4, kv_num_heads: 2 }), 'y');
    const graph = b.build();
    const feeds = {
      q: makeTensor('f32', [2, 7, 24], randn(2 * 7 * 24, 1)),
      k: makeTensor('f32', [2, 9, 12], randn(2 * 9 * 12, 2)),
      v: makeTensor('f32', [2, 9, 10], randn(2 * 9 * 10, 3)),
    };
    const kernels = await run(graph, feeds, backend, 'decomposed');
    expect(kernels.some((n) => n.includes('attention_pv'))).toBe(true);
    // auto: decomposed on lavapipe; the tiled kernel on CUDA-class devices (measured faster on cuda-emu)
    const auto = await run(graph, feeds, backend);
    expect(auto.some((n) => n.includes(backend === 'cuda-emu' ? 'attention_tiled' : 'attention_pv'))).toBe(true);
  });

  it('decode-shaped queries (S = 1) stay on one kernel by default; a requested decomposed schedule is taken', async () => {
    const b = new GraphBuilder('dec');
    const q = b.input('q', 'f32', [1, 3, 1, 8]);
    const k = b.input('k', 'f32', [1, 3, 20, 8]);
    const v = b.input('v', 'f32', [1, 3, 20, 8]);
    b.output(b.op('attention', [q, k, v]), 'y');
    const graph = b.build();
    const feeds = {
      q: makeTensor('f32', [1, 3, 1, 8], randn(24, 7)),
      k: makeTensor('f32', [1, 3, 20, 8], randn(480, 8)),
      v: makeTensor('f32', [1, 3, 20, 8], randn(480, 9)),
    };
    expect((await run(graph, feeds, backend)).filter((n) => /attention_(scores|pv)/.test(n))).toEqual([]);
    const forced = await run(graph, feeds, backend, 'decomposed');
    expect(forced.filter((n) => /attention_(scores|pv)/.test(n))).toHaveLength(2);
  });

  for (const dt of ['f32', 'f16'] as const) {
    it(`${dt}: decode with past, GQA: one kernel writes y and both present caches (no copy kernels)`, async () => {
      const [B, Hq, Hkv, P, D] = [2, 4, 2, 37, 8];
      const b = new GraphBuilder('dec');
      const q = b.input('q', dt, [B, Hq, 1, D]);
      const k = b.input('k', dt, [B, Hkv, 1, D]);
      const v = b.input('v', dt, [B, Hkv, 1, D]);
      const pk = b.input('pk', dt, [B, Hkv, P, D]);
      const pv = b.input('pv', dt, [B, Hkv, P, D]);
      const [y, presK, presV] = b.opN('attention', [q, k, v, null, pk, pv], { is_causal: true }, 3);
      b.output(y!, 'y');
      b.output(presK!, 'present_k');
      b.output(presV!, 'present_v');
      const graph = b.build();
      const feeds: Record<string, Tensor> = {};
      let seed = 21;
      for (const x of graph.inputs) {
        const shape = x.type.shape as number[];
        feeds[x.name] = makeTensor(
          dt,
          shape,
          randn(
            shape.reduce((p, d) => p * d, 1),
            seed++,
          ),
        );
      }
      const kernels = await run(graph, feeds, backend);
      expect(kernels).toHaveLength(1);
      expect(kernels[0]).toMatch(/^k_attention_/);
    });
  }

  for (const dt of ['f32', 'f16'] as const) {
    it(`${dt}: causal prefill after a past, GQA: decomposed, the causal mask as the scores' epilogue`, async () => {
      const [B, Hq, Hkv, S, P, D] = [2, 4, 2, 9, 5, 8];
      const b = new GraphBuilder('causal');
      const q = b.input('q', dt, [B, S, Hq * D]);
      const k = b.input('k', dt, [B, S, Hkv * D]);
      const v = b.input('v', dt, [B, S, Hkv * D]);
      const pk = b.input('pk', dt, [B, Hkv, P, D]);
      const pv = b.input('pv', dt, [B, Hkv, P, D]);
      const attrs = { is_causal: true, q_num_heads: Hq, kv_num_heads: Hkv };
      const [y, presK, presV] = b.opN('attention', [q, k, v, null, pk, pv], attrs, 3);
      b.output(y!, 'y');
      b.output(presK!, 'present_k');
      b.output(presV!, 'present_v');
      // and without a past
      b.output(b.op('attention', [q, k, v], attrs), 'y0');
      const graph = b.build();
      const feeds: Record<string, Tensor> = {};
      let seed = 41;
      for (const x of graph.inputs) {
        const shape = x.type.shape as number[];
        feeds[x.name] = makeTensor(
          dt,
          shape,
          randn(
            shape.reduce((p, d) => p * d, 1),
            seed++,
          ),
        );
      }
      const kernels = await run(graph, feeds, backend, 'decomposed');
      expect(kernels.filter((n) => n.includes('attention_scores'))).toHaveLength(2);
    });
  }

  it('causal with a mask stays on one kernel (a row could lose every key)', async () => {
    const b = new GraphBuilder('cm');
    const q = b.input('q', 'f32', [1, 2, 6, 4]);
    const k = b.input('k', 'f32', [1, 2, 6, 4]);
    const m = makeTensor(
      'f32',
      [6, 6],
      Array.from({ length: 36 }, (_, i) => (i % 6 === 0 ? -Infinity : 0)),
    );
    b.output(b.op('attention', [q, k, k, b.weight('m', m)], { is_causal: true }), 'y');
    const graph = b.build();
    const feeds = {
      q: makeTensor('f32', [1, 2, 6, 4], randn(48, 51)),
      k: makeTensor('f32', [1, 2, 6, 4], randn(48, 52)),
    };
    expect((await run(graph, feeds, backend)).filter((n) => /attention_(scores|pv)/.test(n))).toEqual([]);
  });

  it('mask_fill with a run-time bool mask (a fully masked row stays uniform): one kernel, as the reference', async () => {
    const b = new GraphBuilder('fill');
    const q = b.input('q', 'f32', [1, 2, 3, 4]);
    const k = b.input('k', 'f32', [1, 2, 5, 4]);
    const v = b.input('v', 'f32', [1, 2, 5, 4]);
    const m = b.input('m', 'bool', [1, 1, 3, 5]);
    b.output(b.op('attention', [q, k, v, m], { mask_fill: -10000 }), 'y');
    b.output(b.op('attention', [q, k, v, m], { mask_fill: 0.75, is_causal: true }), 'causal');
    const graph = b.build();
    const feeds = {
      q: makeTensor('f32', [1, 2, 3, 4], randn(24, 11)),
      k: makeTensor('f32', [1, 2, 5, 4], randn(40, 12)),
      v: makeTensor('f32', [1, 2, 5, 4], randn(40, 13)),
      m: makeTensor('bool', [1, 1, 3, 5], [1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]),
    };
    const kernels = await run(graph, feeds, backend);
    expect(kernels.filter((n) => /attention_(scores|pv)/.test(n))).toEqual([]);
  });

  it('a fully masked row and causal masking stay on the one-kernel schedule (zeros, not NaN)', async () => {
    const b = new GraphBuilder('att1');
    const q = b.input('q', 'f32', [1, 2, 3, 4]);
    const k = b.input('k', 'f32', [1, 2, 3, 4]);
    const v = b.input('v', 'f32', [1, 2, 3, 4]);
    const m = makeTensor('f32', [3, 3], [0, 0, 0, -Infinity, -Infinity, -Infinity, 0, -Infinity, 0]);
    b.output(b.op('attention', [q, k, v, b.weight('m', m)]), 'masked');
    b.output(b.op('attention', [q, k, v], { is_causal: true }), 'causal');
    const graph = b.build();
    const feeds = {
      q: makeTensor('f32', [1, 2, 3, 4], randn(24, 4)),
      k: makeTensor('f32', [1, 2, 3, 4], randn(24, 5)),
      v: makeTensor('f32', [1, 2, 3, 4], randn(24, 6)),
    };
    const kernels = await run(graph, feeds, backend);
    expect(kernels.filter((n) => /attention_(scores|pv)/.test(n))).toEqual([]);
  });
});
