/**
 * Structured pruning (passes/sparsity/structured.ts) on a small random LLaMA: the rewritten graph verifies, its
 * logits equal the float64 reference forward (test/helpers/lm-reference.ts) of the model pruned by hand — weights
 * sliced here, the config shrunk —, the weakest heads / channels / layers are the ones removed, and the FLOPs of
 * one prefill drop by exactly the hand-computed amount, both in the cost account over the graph and in the kernels
 * a run launches (kiln inspect's recording backend).
 */
import { describe, expect, it } from 'vitest';
import '../../ir/index.js';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { calibrate, calibrationFeeds } from '../../passes/quant/calibrate.js';
import { layerInfluence, pruneChannels, pruneHeads, pruneLayers, pruneWeights } from '../../passes/sparsity/index.js';
import { inspectGraph } from '../../src/inspect.js';
import { buildLlama } from '../../src/models/llama.js';
import { weightMap, type LlamaConfig } from '../../src/models/config.js';
import { bindDims, flopsByOp } from '../../src/prune-flops.js';
import { checkAgainstReference, skipWebgpu } from '../helpers/backends.js';
import { llamaForward, randomLlamaWeights } from '../helpers/lm-reference.js';
import { emuProbe, requireTool } from '../helpers/tools.js';

// head size 4: 4 query heads, 2 KV heads (groups of 2); hidden 24
const C: LlamaConfig = {
  arch: 'llama',
  dim: 16,
  hiddenDim: 24,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  vocab: 32,
  maxSeq: 16,
  normEps: 1e-5,
  ropeTheta: 10000,
  tiedHead: false,
};
const HD = 4;
const S = 5;
const TOKENS = [1, 7, 3, 30, 12];
const WINDOWS = [
  [1, 5, 9, 2, 17, 4, 11, 8],
  [3, 14, 6, 29, 21, 0, 13],
];

/** Weights as a mutable map (f32 tensors), so a test can scale parts and slice them. */
function weights(seed: number): Map<string, Tensor> {
  const src = randomLlamaWeights(C, seed);
  return new Map(src.names().map((n) => [n, src.get(n)]));
}

/** Multiply rows [r0, r1) (or columns, with `cols`) of a [R, C] weight by f. */
function scale(w: Map<string, Tensor>, name: string, r0: number, r1: number, f: number, cols = false): void {
  const t = w.get(name)!;
  const [, Cn] = t.shape as [number, number];
  const d = Float32Array.from(t.data as Float32Array);
  for (let i = 0; i < d.length; i++) {
    const idx = cols ? i % Cn : Math.floor(i / Cn);
    if (idx >= r0 && idx < r1) d[i]! *= f;
  }
  w.set(name, makeTensor('f32', t.shape, d));
}

/** Keep rows / columns of a [R, C] tensor. */
function keep2d(t: Tensor, rows: number[] | null, cols: number[] | null): Tensor {
  const [R, Cn] = t.shape as [number, number];
  const rs = rows ?? Array.from({ length: R }, (_, i) => i);
  const cs = cols ?? Array.from({ length: Cn }, (_, i) => i);
  const out: number[] = [];
  for (const r of rs) for (const c of cs) out.push(t.data[r * Cn + c] as number);
  return makeTensor('f32', [rs.length, cs.length], Float32Array.from(out));
}

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
const without = (n: number, drop: number[]) => range(0, n).filter((i) => !drop.includes(i));
const heads = (hs: number[], size: number) => hs.flatMap((h) => range(h * size, (h + 1) * size));

function logits(g: Graph, tokens: number[]): Float64Array {
  return Float64Array.from(interpret(g, calibrationFeeds(g, tokens))['logits']!.data as Float32Array);
}

function expectClose(got: Float64Array, ref: Float64Array[]): void {
  const flat = Float64Array.from(ref.flatMap((r) => [...r]));
  expect(got.length).toBe(flat.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < flat.length; i++) {
    expect(Number.isFinite(got[i]!)).toBe(true);
    num += (got[i]! - flat[i]!) ** 2;
    den += flat[i]! ** 2;
  }
  expect(Math.sqrt(num / den)).toBeLessThan(1e-5);
}

/** Prefill FLOPs of the kernels a recorded run launches (kiln inspect at opt 0). */
async function kernelFlops(g: Graph): Promise<number> {
  return (await inspectGraph(bindDims(g, { batch: 1, seq: S, past: 0 }), 0, 'wgsl')).flops!;
}

const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

describe('head pruning', () => {
  it('whole KV groups: the weak group goes, logits = reference of the hand-pruned model, FLOPs drop as predicted', async () => {
    const w = weights(1);
    // layer 0: heads 2, 3 (KV group 1) barely reach the output; layer 1: heads 0, 1 (group 0)
    scale(w, 'layers.0.wo', 8, 16, 1e-3);
    scale(w, 'layers.1.wo', 0, 8, 1e-3);
    const g = buildLlama(C, weightMap(w));
    const before = flopsByOp(g, { batch: 1, seq: S, past: 0 });
    const kBefore = await kernelFlops(g);
    const rep = pruneHeads(g, calibrate(g, WINDOWS), { heads: 2 });
    expect(rep.rows.map((r) => [r.what, r.removed, r.before, r.after])).toEqual([
      ['kv heads', [1], 2, 1],
      ['kv heads', [0], 2, 1],
    ]);
    expect(g.inputs.find((v) => v.name === 'past_key_0')!.type.shape).toEqual(['batch', 1, 'past', HD]);

    // by hand: keep query heads of the kept group (G = 2), its K / V columns and Wo rows; config 2 / 1 heads
    // (llamaForward takes the head size as dim / heads: dim 8 gives 4; the untied head never reads dim)
    const hand = new Map(w);
    const kept = [[0], [1]];
    kept.forEach((g0, l) => {
      const p = `layers.${l}.`;
      const q = heads(
        g0.flatMap((g1) => [2 * g1, 2 * g1 + 1]),
        HD,
      );
      hand.set(p + 'wq', keep2d(w.get(p + 'wq')!, null, q));
      hand.set(p + 'wk', keep2d(w.get(p + 'wk')!, null, heads(g0, HD)));
      hand.set(p + 'wv', keep2d(w.get(p + 'wv')!, null, heads(g0, HD)));
      hand.set(p + 'wo', keep2d(w.get(p + 'wo')!, q, null));
    });
    expectClose(logits(g, TOKENS), llamaForward({ ...C, dim: 8, heads: 2, kvHeads: 1 }, weightMap(hand), TOKENS));

    // per layer: wq 16×16 → 16×8, wk / wv 16×8 → 16×4, wo 16×16 → 8×16 (2·S·K·N each); attention over S×S
    // scores with 4 → 2 heads: 2·S·S·(4 + 4) + 5·S·S per head; rotary: one per output element (q 16 → 8, k 8 → 4)
    const after = flopsByOp(g, { batch: 1, seq: S, past: 0 });
    const L = C.layers;
    expect(before.get('matmul')! - after.get('matmul')!).toBe(L * 2 * S * (16 * 8 + 16 * 4 + 16 * 4 + 8 * 16));
    expect(before.get('attention')! - after.get('attention')!).toBe(L * 2 * (2 * S * S * 8 + 5 * S * S));
    expect(before.get('rotary_embedding')! - after.get('rotary_embedding')!).toBe(L * S * (8 + 4));
    const drop = L * (2 * S * 384 + 2 * (2 * S * S * 8 + 5 * S * S) + S * 12);
    expect(total(before) - total(after)).toBe(drop);
    expect(kBefore - (await kernelFlops(g))).toBe(drop);
  });

  it('query heads evenly per group: one of each group goes, KV heads stay', () => {
    const w = weights(2);
    scale(w, 'layers.0.wo', 4, 8, 1e-3); // head 1 (group 0)
    scale(w, 'layers.0.wo', 8, 12, 1e-3); // head 2 (group 1)
    const g = buildLlama(C, weightMap(w));
    const rep = pruneHeads(g, calibrate(g, WINDOWS), { heads: 2, mode: 'query' });
    expect(rep.rows[0]!.removed).toEqual([1, 2]);
    const hand = new Map(w);
    rep.rows.forEach((r, l) => {
      const p = `layers.${l}.`;
      const q = heads(without(4, r.removed), HD);
      hand.set(p + 'wq', keep2d(w.get(p + 'wq')!, null, q));
      hand.set(p + 'wo', keep2d(w.get(p + 'wo')!, q, null));
    });
    expect(g.nodes.find((n) => n.op === 'attention')!.attrs).toMatchObject({ q_num_heads: 2, kv_num_heads: 2 });
    expectClose(logits(g, TOKENS), llamaForward({ ...C, dim: 8, heads: 2, kvHeads: 2 }, weightMap(hand), TOKENS));
  });

  it('bad counts are typed errors naming the attention', () => {
    const g = buildLlama(C, randomLlamaWeights(C, 3));
    const st = calibrate(g, WINDOWS.slice(0, 1));
    expect(() => pruneHeads(g, st, { heads: 4 })).toThrow(/cannot remove 2 of 2 KV groups.*attention/);
    expect(() => pruneHeads(g, st, { heads: 1, mode: 'kv' })).toThrow(/not whole KV groups/);
    expect(() => pruneHeads(g, st, { heads: 3, mode: 'query' })).toThrow(/evenly/);
  });
});

describe('channel pruning', () => {
  it('the weakest channels leave W1 / W3 columns and W2 rows together; logits and FLOPs as by hand', async () => {
    const w = weights(4);
    scale(w, 'layers.0.w2', 16, 24, 1e-3); // channels 16..23 of layer 0 barely matter
    scale(w, 'layers.1.w2', 0, 8, 1e-3); // channels 0..7 of layer 1
    const g = buildLlama(C, weightMap(w));
    const before = flopsByOp(g, { batch: 1, seq: S, past: 0 });
    const kBefore = await kernelFlops(g);
    const rep = pruneChannels(g, calibrate(g, WINDOWS), { channels: 8 });
    expect(rep.rows.map((r) => [r.removed, r.before, r.after, r.bytesBefore, r.bytesAfter])).toEqual([
      [range(16, 24), 24, 16, 3 * 24 * 16 * 4, 3 * 16 * 16 * 4],
      [range(0, 8), 24, 16, 3 * 24 * 16 * 4, 3 * 16 * 16 * 4],
    ]);
    const hand = new Map(w);
    rep.rows.forEach((r, l) => {
      const p = `layers.${l}.`;
      const k = without(24, r.removed);
      hand.set(p + 'w1', keep2d(w.get(p + 'w1')!, null, k));
      hand.set(p + 'w3', keep2d(w.get(p + 'w3')!, null, k));
      hand.set(p + 'w2', keep2d(w.get(p + 'w2')!, k, null));
    });
    expectClose(logits(g, TOKENS), llamaForward({ ...C, hiddenDim: 16 }, weightMap(hand), TOKENS));
    // per layer: w1, w3 16×24 → 16×16 and w2 24×16 → 16×16 (2·S·16·8 each); silu and mul: one per element (S·8)
    const after = flopsByOp(g, { batch: 1, seq: S, past: 0 });
    const drop = C.layers * (3 * 2 * S * 16 * 8 + 2 * S * 8);
    expect(total(before) - total(after)).toBe(drop);
    expect(kBefore - (await kernelFlops(g))).toBe(drop);
  });
});

describe('layer pruning', () => {
  it('block influence picks the near-identity layer; the graph drops its caches; logits = the shorter model', () => {
    const w = weights(5);
    // layer 1 adds almost nothing to the residual stream
    scale(w, 'layers.1.wo', 0, 16, 1e-4);
    scale(w, 'layers.1.w2', 0, 24, 1e-4);
    const g = buildLlama({ ...C, layers: 3 }, weightMap(new Map([...w, ...renamed(weights(6), 0, 2)])));
    const bi = layerInfluence(g, WINDOWS);
    expect(bi.indexOf(Math.min(...bi))).toBe(1);
    const rep = pruneLayers(g, { layers: 1, scores: bi });
    expect(rep.rows.map((r) => r.removed)).toEqual([[1]]);
    expect(rep.rows[0]!.bytesBefore).toBe(4 * (2 * 16 + 2 * 16 * 16 + 2 * 16 * 8 + 3 * 16 * 24));
    expect(g.inputs.map((v) => v.name).filter((n) => n.startsWith('past_'))).toEqual([
      'past_key_0',
      'past_value_0',
      'past_key_2',
      'past_value_2',
    ]);
    expect(g.outputs.map((v) => v.name)).toEqual([
      'logits',
      'present_key_0',
      'present_value_0',
      'present_key_2',
      'present_value_2',
    ]);
    const hand = new Map<string, Tensor>([...w].filter(([n]) => !n.startsWith('layers.1.')));
    for (const [n, t] of renamed(weights(6), 0, 2))
      if (n.startsWith('layers.2.')) hand.set(n.replace('layers.2.', 'layers.1.'), t);
    expectClose(logits(g, TOKENS), llamaForward({ ...C, layers: 2 }, weightMap(hand), TOKENS));
  });

  it('explicit indices; removing every layer or a missing one is a typed error', () => {
    const g = buildLlama(C, randomLlamaWeights(C, 7));
    expect(() => pruneLayers(g, { layers: [0, 1] })).toThrow(/every decoder layer/);
    expect(() => pruneLayers(g, { layers: [5] })).toThrow(/no decoder layer 5/);
    expect(() => pruneLayers(g, { layers: 1 })).toThrow(/score per layer/);
    pruneLayers(g, { layers: [0] });
    expect(g.nodes.filter((n) => n.op === 'attention').length).toBe(1);
  });
});

const noGpu = await skipWebgpu();
const noEmu = await requireTool('g++ (cuda-emu)', emuProbe);

describe('pruned graphs on the devices', () => {
  /** Heads (query mode) and channels removed, then SparseGPT 2:4 on what is left. */
  function prunedModel(): Graph {
    const g = buildLlama(C, randomLlamaWeights(C, 8));
    pruneHeads(g, calibrate(g, WINDOWS), { heads: 2, mode: 'query' });
    pruneChannels(g, calibrate(g, WINDOWS), { channels: 8 });
    pruneWeights(g, { method: 'sparsegpt', pattern: { kind: 'nm', n: 2, m: 4 } }, calibrate(g, WINDOWS));
    return g;
  }
  for (const backend of ['webgpu', 'cuda-emu'] as const)
    it.skipIf(backend === 'webgpu' ? noGpu : noEmu)(
      `${backend} matches the float64 reference`,
      async () => {
        const g = prunedModel();
        expect(await checkAgainstReference(g, calibrationFeeds(g, TOKENS), { backend })).toEqual([]);
      },
      60_000,
    );
});

/** Layer `from`'s weights of a map under layer `to`'s names. */
function renamed(w: Map<string, Tensor>, from: number, to: number): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [n, t] of w)
    if (n.startsWith(`layers.${from}.`)) out.set(n.replace(`layers.${from}.`, `layers.${to}.`), t);
  return out;
}
