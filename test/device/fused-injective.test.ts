/**
 * Fused concats (`fused_injective`) on the devices against the float64 reference: a GPT-2-style KV cache stacked into
 * one present (f32 and f16), a reshape on the chain, three levels of nesting, and one session across decode steps
 * whose cache grows (the kernel's sizes are uniforms: past 2 the same kernel serves every step).
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import '../../ir/ops/index.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { optimize } from '../../passes/manager.js';
import { compile } from '../../src/session.js';
import { checkAgainstReference } from '../helpers/backends.js';
import { compareWithReference, tolerance } from '../helpers/compare.js';
import { deviceBackends } from '../helpers/device-backends.js';

const backends = await deviceBackends();

function feedsOf(g: Graph, dims: Record<string, number> = {}): Record<string, Tensor> {
  const feeds: Record<string, Tensor> = {};
  let s = 1;
  for (const x of g.inputs) {
    const shape = x.type.shape.map((d) => (typeof d === 'number' ? d : dims[d]!));
    const n = shape.reduce((a, b) => a * b, 1);
    feeds[x.name] = makeTensor(
      x.type.dtype,
      shape,
      Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + s++) * 3),
    );
  }
  return feeds;
}

/** present = stack(transpose(transpose(past_k) ++ kᵀ), past_v ++ v) and an attention reading the inner concats. */
function kvCache(dt: 'f32' | 'f16', P: number | string = 3): Graph {
  const [H, D] = [2, 4];
  const b = new GraphBuilder('kv');
  const past = b.input('past', dt, [2, 1, H, P, D]);
  const k = b.input('k', dt, [1, H, 1, D]);
  const v = b.input('v', dt, [1, H, 1, D]);
  const q = b.input('q', dt, [1, H, 1, D]);
  const i0 = b.weight('i0', makeTensor('i64', [], [0]));
  const i1 = b.weight('i1', makeTensor('i64', [], [1]));
  const pkt = b.op('transpose', [b.op('gather', [past, i0], { axis: 0 })], { perm: [0, 1, 3, 2] });
  const kc = b.op('concat', [pkt, b.op('transpose', [k], { perm: [0, 1, 3, 2] })], { axis: -1 });
  const vc = b.op('concat', [b.op('gather', [past, i1], { axis: 0 }), v], { axis: -2 });
  const kk = b.op('transpose', [kc], { perm: [0, 1, 3, 2] });
  const present = b.op('concat', [b.op('unsqueeze', [kk], { axes: [0] }), b.op('unsqueeze', [vc], { axes: [0] })], {
    axis: 0,
  });
  b.output(b.op('attention', [q, kk, vc]), 'y');
  b.output(present, 'present');
  return b.build();
}

describe.each(backends)('fused_injective (%s)', (backend) => {
  for (const dt of ['f32', 'f16'] as const) {
    it(`${dt}: a KV cache stacked into present by one kernel; the attention reads views of it`, async () => {
      const g = kvCache(dt);
      const opt = optimize(g);
      expect(opt.nodes.filter((n) => n.op === 'fused_injective')).toHaveLength(1);
      expect(opt.nodes.filter((n) => n.op === 'concat')).toHaveLength(0);
      expect(await checkAgainstReference(g, feedsOf(g), { backend })).toEqual([]);
    });
  }

  it('a reshape on the chain and three levels of nesting', async () => {
    const b = new GraphBuilder('nest');
    const a = b.input('a', 'f32', [2, 3]);
    const c = b.input('c', 'f32', [2, 5]);
    const d = b.input('d', 'f32', [7]);
    const e = b.input('e', 'f32', [4, 2]);
    const ac = b.op('concat', [a, c], { axis: 1 }); // [2, 8]
    const t = b.op('transpose', [ac], { perm: [1, 0] }); // [8, 2]
    const te = b.op('concat', [e, t], { axis: 0 }); // [12, 2]
    const flat = b.op('reshape', [te, b.weight('s', makeTensor('i64', [1], [24]))]);
    b.output(b.op('concat', [d, flat, d], { axis: 0 }), 'y'); // [38]
    b.output(b.op('neg', [t]), 'z'); // another reader of an interior value: a view of y
    const g = b.build();
    const opt = optimize(g);
    expect(opt.nodes.filter((n) => n.op === 'fused_injective')).toHaveLength(1);
    expect(await checkAgainstReference(g, feedsOf(g), { backend })).toEqual([]);
  });

  it('one session over decode steps with a growing cache: one kernel, right at every length', async () => {
    const g = kvCache('f32', 'past');
    const s = await compile(g, { backend, poison: true });
    try {
      const names = () =>
        new Set(
          s
            .kernels()
            .filter((k) => k.op === 'fused_injective')
            .map((k) => k.name),
        );
      let afterFive = new Set<string>();
      for (const P of [1, 2, 5, 9]) {
        const feeds = feedsOf(g, { past: P });
        const got = await s.run(feeds);
        const want = interpret(g, feeds);
        for (const o of ['y', 'present']) {
          const m = compareWithReference(o, got[o]!, want[o]!, tolerance('f32', true));
          expect(m, `P = ${P}: ${m?.reason}`).toBeUndefined();
        }
        if (P === 5) afterFive = names();
      }
      // sizes of 0 / 1 are literals (a different kernel), any other length is a uniform: 9 reuses 5's kernel
      expect(names()).toEqual(afterFive);
    } finally {
      s.dispose();
    }
  });
});
