/**
 * Movement ops as strided views on the devices: a transpose / split / slice / single-index gather / expand / reshape
 * feeding any kernel runs no kernel of its own — the consumer's loads follow the layout over the producer's buffer
 * (codegen/lower/view.ts) — and every result equals the float64 reference of the graph. Covers views of views, views
 * feeding matmul / softmax / layer norm / reductions / concat / attention, reversed slices, broadcast (stride 0), a
 * view that is a graph output (its kernel runs), a reshape no strides express (copied), and an in-place update whose
 * target is a view (copied out first, the viewed buffer untouched).
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import '../../ir/ops/index.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { compile, type Session } from '../../src/session.js';
import { compareWithReference } from '../helpers/compare.js';
import { deviceBackends } from '../helpers/device-backends.js';

const backends = await deviceBackends();

function randn(n: number, seed: number): number[] {
  let a = seed;
  return Array.from({ length: n }, () => {
    a = (a * 1103515245 + 12345) % 2147483648;
    return (a / 2147483648) * 2 - 1;
  });
}

/** Runs the graph, returning outputs and the names of the kernels each run launched. */
async function runCounting(
  graph: Graph,
  feeds: Record<string, Tensor>,
  backend: string,
): Promise<{ out: Record<string, Tensor>; kernels: string[]; remapped: string[] }> {
  const session: Session = await compile(graph, { backend: backend as 'webgpu', poison: true });
  const kernels: string[] = [];
  const remapped: string[] = []; // kernels whose loads were rewritten through a view (uniforms vin…/voff…)
  type K = { kernel: { name: string; uniforms: readonly { name: string }[] } };
  const be = (session as unknown as { executor: { backend: { run(s: readonly K[]): unknown } } }).executor.backend;
  const run = be.run.bind(be);
  be.run = (s) => {
    kernels.push(...s.map((x) => x.kernel.name));
    remapped.push(...s.filter((x) => x.kernel.uniforms.some((u) => /^voff/.test(u.name))).map((x) => x.kernel.name));
    return run(s);
  };
  try {
    return { out: await session.run(feeds), kernels, remapped };
  } finally {
    session.dispose();
  }
}

function expectReference(graph: Graph, feeds: Record<string, Tensor>, out: Record<string, Tensor>): void {
  const ref = interpret(graph, feeds);
  for (const o of graph.outputs) {
    const m = compareWithReference(o.name, out[o.name]!, ref[o.name]!);
    expect(m, m?.reason).toBeUndefined();
  }
}

const i64 = (v: number[]) => makeTensor('i64', [v.length], v);

describe.each(backends)('movement ops as views (%s)', (backend) => {
  it('attention written with split / transpose / reshape: no movement kernels, equal to the reference', async () => {
    // x [B, S, 3·H·D] → split q, k, v → [B, S, H, D] → [B, H, S, D]; scores, softmax, PV; → [B, S, H·D]
    const [B, S, H, D] = [2, 5, 3, 8];
    const b = new GraphBuilder('mha');
    const x = b.input('x', 'f32', [B, S, 3 * H * D]);
    const [q, k, v] = b.opN('split', [x], { axis: 2 }, 3);
    const heads = (t: typeof q) =>
      b.op('transpose', [b.op('reshape', [t!, b.weight(`s${t!.name}`, i64([B, S, H, D]))])], { perm: [0, 2, 1, 3] });
    const kt = b.op('transpose', [heads(k)], { perm: [0, 1, 3, 2] });
    const p = b.op('softmax', [b.op('matmul', [heads(q), kt])], { axis: -1 });
    const o = b.op('transpose', [b.op('matmul', [p, heads(v)])], { perm: [0, 2, 1, 3] });
    b.output(b.op('reshape', [o, b.weight('so', i64([B, S, H * D]))]), 'out');
    const graph = b.build();
    const feeds = { x: makeTensor('f32', [B, S, 3 * H * D], randn(B * S * 3 * H * D, 7)) };
    const { out, kernels, remapped } = await runCounting(graph, feeds, backend);
    expectReference(graph, feeds, out);
    expect(kernels.filter((k) => /split|transpose/.test(k))).toEqual([]);
    // two matmuls, the softmax, and the last reshape (merging heads a transpose separated needs a copy)
    expect(kernels.length).toBe(4);
    // the matmuls index their views' strides themselves: only the reshape's copy is remapped
    expect(remapped.filter((k) => /matmul/.test(k))).toEqual([]);
  });

  it('matmul / gemm / einsum / attention read strided views in place (tiled and skinny schedules)', async () => {
    const b = new GraphBuilder('native');
    const x = b.input('x', 'f32', [2, 40, 96]);
    const y = b.input('y', 'f32', [2, 96, 40]);
    // tiled: a sliced, transposed view times a transposed view (M = N = 40 > skinny limits)
    const xs = b.op('slice', [x, b.weight('s0', i64([8])), b.weight('e0', i64([72])), b.weight('a0', i64([2]))]); // [2,40,64]
    const yt = b.op('transpose', [y], { perm: [0, 2, 1] }); // [2, 40, 96]
    const ys = b.op('slice', [yt, b.weight('s1', i64([16])), b.weight('e1', i64([80])), b.weight('a1', i64([2]))]); // [2,40,64]
    b.output(b.op('matmul', [xs, b.op('transpose', [ys], { perm: [0, 2, 1] })]), 'tiled'); // [2, 40, 40]
    // skinny: one row (a single-index gather) times a view
    const row = b.op('gather', [xs, b.weight('r', makeTensor('i64', [], [1]))], { axis: 1 }); // [2, 64]
    b.output(
      b.op('matmul', [b.op('unsqueeze', [row], { axes: [1] }), b.op('transpose', [ys], { perm: [0, 2, 1] })]),
      'skinny',
    );
    // gemm with transB on a view, and a reversed slice as A
    const a2 = b.op('gather', [x, b.weight('g0', makeTensor('i64', [], [0]))], { axis: 0 }); // [40, 96]
    const rev = b.op('slice', [
      a2,
      b.weight('s2', i64([-1])),
      b.weight('e2', i64([-41])),
      b.weight('a2', i64([0])),
      b.weight('p2', i64([-1])),
    ]);
    const b2 = b.op('gather', [yt, b.weight('g1', makeTensor('i64', [], [1]))], { axis: 0 }); // [40, 96]
    b.output(b.op('gemm', [rev, b2], { transB: true, alpha: 0.5 }), 'gemm');
    b.output(b.op('einsum', [xs, ys], { equation: 'bik,bjk->bij' }), 'einsum');
    // attention on head views of a fused QKV tensor, GQA (4 q heads, 2 kv heads), rank 4, causal
    const qkv = b.input('qkv', 'f32', [2, 9, 8 * 16]);
    const [q, k, v] = b.opN('split', [qkv], { axis: 2, split: [64, 32, 32] }, 3);
    const heads = (t: typeof q, h: number) =>
      b.op('transpose', [b.op('reshape', [t!, b.weight(`hs${h}${t!.name}`, i64([2, 9, h, 16]))])], {
        perm: [0, 2, 1, 3],
      });
    b.output(b.op('attention', [heads(q, 4), heads(k, 2), heads(v, 2)], { is_causal: true }), 'attn4');
    // the same as rank-3 inputs [B, S, H·D]: column slices of qkv
    b.output(b.op('attention', [q!, k!, v!], { q_num_heads: 4, kv_num_heads: 2 }), 'attn3');
    const graph = b.build();
    const feeds = {
      x: makeTensor('f32', [2, 40, 96], randn(2 * 40 * 96, 21)),
      y: makeTensor('f32', [2, 96, 40], randn(2 * 96 * 40, 22)),
      qkv: makeTensor('f32', [2, 9, 128], randn(2 * 9 * 128, 23)),
    };
    const { out, kernels, remapped } = await runCounting(graph, feeds, backend);
    expectReference(graph, feeds, out);
    expect(kernels.filter((k) => /split|transpose|slice|gather|reshape|unsqueeze/.test(k))).toEqual([]);
    expect(kernels.some((k) => /tiled/.test(k)) && kernels.some((k) => /skinny/.test(k))).toBe(true);
    expect(remapped).toEqual([]);
  });

  it('views of views into reductions, norms, concat and elementwise; reversed slices and broadcasts', async () => {
    const b = new GraphBuilder('chains');
    const x = b.input('x', 'f32', [4, 6, 10]);
    const w = b.weight('w', makeTensor('f32', [7, 10], randn(70, 3)));
    // a reversed, strided slice of a transpose, then a reduction over it
    const t = b.op('transpose', [x], { perm: [2, 0, 1] }); // [10, 4, 6]
    const r = b.op('slice', [
      t,
      b.weight('st', i64([9, 5])),
      b.weight('en', i64([-11, 0])),
      b.weight('ax', i64([0, 2])),
      b.weight('sp', i64([-2, -1])),
    ]);
    b.output(b.op('reduce_sum', [r], { axes: [0], keepdims: false }), 'sum'); // [4, 5]
    // one embedding row (a gather of one index) broadcast (expand) and added to a split half
    const row = b.op('gather', [w, b.weight('i', makeTensor('i64', [], [-3]))], { axis: 0 }); // [10]
    const e = b.op('expand', [b.op('unsqueeze', [row], { axes: [0] }), b.weight('es', i64([4, 10]))]); // [4, 10]
    const [h0, h1] = b.opN('split', [x], { axis: 1 }, 2); // [4, 3, 10] each
    const g = b.op('gather', [h1!, b.weight('j', makeTensor('i64', [], [1]))], { axis: 1 }); // [4, 10]
    b.output(
      b.op('layer_norm', [b.op('add', [g, e]), b.weight('lg', makeTensor('f32', [10], randn(10, 5)))], {
        axis: -1,
        epsilon: 1e-5,
      }),
      'ln',
    );
    // concat of two views; softmax of a transposed half
    b.output(
      b.op(
        'concat',
        [h0!, b.op('slice', [h1!, b.weight('s2', i64([2])), b.weight('e2', i64([3])), b.weight('a2', i64([1]))])],
        { axis: 1 },
      ),
      'cat',
    );
    b.output(b.op('softmax', [b.op('transpose', [h0!], { perm: [0, 2, 1] })], { axis: -1 }), 'sm');
    const graph = b.build();
    const feeds = { x: makeTensor('f32', [4, 6, 10], randn(240, 11)) };
    const { out, kernels } = await runCounting(graph, feeds, backend);
    expectReference(graph, feeds, out);
    expect(kernels.filter((k) => /split|transpose|slice|gather|expand/.test(k))).toEqual([]);
  });

  it('a view that is a graph output runs its kernel; the same view also feeding a consumer stays a view', async () => {
    const b = new GraphBuilder('outs');
    const x = b.input('x', 'f32', [3, 5]);
    const t = b.op('transpose', [x]);
    b.output(t, 'xt');
    b.output(b.op('relu', [b.op('transpose', [x])]), 'relu_t');
    const graph = b.build();
    const feeds = { x: makeTensor('f32', [3, 5], randn(15, 2)) };
    const { out, kernels } = await runCounting(graph, feeds, backend);
    expectReference(graph, feeds, out);
    expect(kernels.filter((k) => /transpose/.test(k)).length).toBe(1);
  });

  it('an in-place update of a view copies it out first; the viewed tensor is unchanged', async () => {
    // cache [2, 1, 4, 2] (num_blocks, heads, block, dim) taken as a slice of a bigger input, updated in place
    const b = new GraphBuilder('inplace');
    const big = b.input('big', 'f32', [3, 1, 4, 2]);
    const cache = b.op('slice', [big, b.weight('s', i64([1])), b.weight('e', i64([3])), b.weight('a', i64([0]))]);
    const nw = b.input('new', 'f32', [1, 1, 1, 2]);
    const table = b.weight('table', makeTensor('i32', [1, 2], [1, 0]));
    const pos = b.weight('pos', makeTensor('i32', [1, 1], [2]));
    b.output(b.op('kv_cache_write', [cache, nw, table, pos]), 'y');
    b.output(b.op('neg', [big]), 'big_after'); // reads the viewed tensor after the update: must see the old values
    const graph = b.build();
    const feeds = {
      big: makeTensor('f32', [3, 1, 4, 2], randn(24, 4)),
      new: makeTensor('f32', [1, 1, 1, 2], [5, 6]),
    };
    const { out, kernels } = await runCounting(graph, feeds, backend);
    expectReference(graph, feeds, out);
    expect(kernels.filter((k) => /copy_view/.test(k)).length).toBe(1);
  });
});
