/**
 * Tensor-parallel shards against the unsplit graph, both in the float64 reference: the collectives' all-ranks
 * semantics (hand-worked values), a lone collective's located error, and the property that the Megatron shards of
 * random LLaMA (GQA, tied / separate head) and GPT-2 configs, run together by interpretRanks through prefill + decode
 * with head-sharded KV caches, give the unsplit graph's logits (tp 2 and 4).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import { KilnError } from '../../ir/errors.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { shardTensorParallel } from '../../passes/parallel/index.js';
import { interpretRanks } from '../../src/parallel/index.js';
import type { Gpt2Config, LlamaConfig } from '../../src/models/config.js';
import { buildGpt2 } from '../../src/models/gpt2.js';
import { buildLlama } from '../../src/models/llama.js';
import type { Graph } from '../../ir/graph.js';
import { prefillThenDecode, randomGpt2Weights, randomLlamaWeights, relL2 } from '../helpers/lm-reference.js';

const RUNS = Number(process.env['KILN_PROP_RUNS'] ?? 12);

function collectiveGraph(op: string, world: number, rank: number, attrs: Record<string, number> = {}): Graph {
  const b = new GraphBuilder('c');
  const x = b.input('x', 'f32', [2, 2]);
  b.output(b.op(op, [x], { world_size: world, rank, ...attrs }), 'y');
  return b.build();
}

describe('collectives: all-ranks reference', () => {
  const xs = [makeTensor('f32', [2, 2], [1, 2, 3, 4]), makeTensor('f32', [2, 2], [10, 20, 30, 40])];
  const run = (op: string, attrs: Record<string, number> = {}) =>
    interpretRanks(
      [0, 1].map((r) => collectiveGraph(op, 2, r, attrs)),
      xs.map((x) => ({ x })),
    ).map((o) => ({ shape: o['y']!.shape, data: Array.from(o['y']!.data) }));

  it('all_reduce sums on every rank', () => {
    expect(run('all_reduce')).toEqual([
      { shape: [2, 2], data: [11, 22, 33, 44] },
      { shape: [2, 2], data: [11, 22, 33, 44] },
    ]);
  });
  it('all_gather concatenates along the axis in rank order', () => {
    const want = { shape: [2, 4], data: [1, 2, 10, 20, 3, 4, 30, 40] };
    expect(run('all_gather', { axis: -1 })).toEqual([want, want]);
    const want0 = { shape: [4, 2], data: [1, 2, 3, 4, 10, 20, 30, 40] };
    expect(run('all_gather', { axis: 0 })).toEqual([want0, want0]);
  });
  it('reduce_scatter keeps rank r’s slice of the sum', () => {
    expect(run('reduce_scatter', { axis: 0 })).toEqual([
      { shape: [1, 2], data: [11, 22] },
      { shape: [1, 2], data: [33, 44] },
    ]);
  });
  it('a lone collective over 2 ranks raises a located error; world size 1 is the identity', () => {
    const g = collectiveGraph('all_reduce', 2, 0);
    const x = makeTensor('f32', [2, 2], [1, 2, 3, 4]);
    expect(() => interpret(g, { x })).toThrow(KilnError);
    expect(() => interpret(g, { x })).toThrow(/interpretRanks.*node 'all_reduce/);
    expect(Array.from(interpret(collectiveGraph('all_reduce', 1, 0), { x })['y']!.data)).toEqual([1, 2, 3, 4]);
  });
  it('bad attributes are verify errors naming the node', () => {
    expect(() => collectiveGraph('all_reduce', 2, 2)).toThrow(/rank 2 out of range.*all_reduce/);
    expect(() => collectiveGraph('reduce_scatter', 4, 0, { axis: 0 })).toThrow(/not divisible by 4/);
  });
});

/** Rank r's heads [r·H/tp, (r+1)·H/tp) of a [B, H, T, D] cache. */
function headSlice(t: Tensor, tp: number, r: number): Tensor {
  const [B, H, T, D] = t.shape as [number, number, number, number];
  const h = H / tp;
  const out: number[] = [];
  for (let b = 0; b < B; b++)
    for (let i = r * h; i < (r + 1) * h; i++) {
      const base = (b * H + i) * T * D;
      for (let j = 0; j < T * D; j++) out.push(t.data[base + j] as number);
    }
  return makeTensor(t.dtype, [B, h, T, D], out);
}
function headConcat(ts: readonly Tensor[]): Tensor {
  const [B, h, T, D] = ts[0]!.shape as [number, number, number, number];
  const out: number[] = [];
  for (let b = 0; b < B; b++)
    for (const t of ts) {
      for (let j = 0; j < h * T * D; j++) out.push(t.data[b * h * T * D + j] as number);
    }
  return makeTensor(ts[0]!.dtype, [B, h * ts.length, T, D], out);
}

/** A RunFn over the shards: full caches in and out (sharded by heads at the boundary), rank 0's logits. */
function shardedRun(shards: readonly Graph[]) {
  const tp = shards.length;
  return (feeds: Record<string, Tensor>): Record<string, Tensor> => {
    const perRank = shards.map((_, r) => {
      const f: Record<string, Tensor> = {};
      for (const [k, v] of Object.entries(feeds)) f[k] = k.startsWith('past_') ? headSlice(v, tp, r) : v;
      return f;
    });
    const outs = interpretRanks(shards, perRank);
    const res: Record<string, Tensor> = { logits: outs[0]!['logits']! };
    for (const o of outs) expect(Array.from(o['logits']!.data)).toEqual(Array.from(res['logits']!.data));
    for (const k of Object.keys(outs[0]!)) if (k.startsWith('present_')) res[k] = headConcat(outs.map((o) => o[k]!));
    return res;
  };
}

const tokens = (n: number, vocab: number, seed: number) => [
  Array.from({ length: n }, (_, i) => (seed * 5 + i * 7) % vocab),
];

describe('tensor-parallel shards equal the unsplit graph (float64 reference, prefill + decode)', () => {
  it('LLaMA: random GQA configs, tp 2 / 4', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(2, 4),
        fc.record({ kvPer: fc.constantFrom(1, 2), group: fc.constantFrom(1, 2), hd: fc.constantFrom(2, 4) }),
        fc.record({
          hid: fc.integer({ min: 1, max: 4 }),
          voc: fc.integer({ min: 2, max: 6 }),
          layers: fc.integer({ min: 1, max: 2 }),
        }),
        fc.boolean(),
        fc.integer({ min: 1, max: 1000 }),
        async (tp, h, s, tiedHead, seed) => {
          const kvHeads = tp * h.kvPer;
          const heads = kvHeads * h.group;
          const c: LlamaConfig = {
            arch: 'llama',
            dim: heads * h.hd,
            hiddenDim: tp * s.hid * 3,
            layers: s.layers,
            heads,
            kvHeads,
            vocab: tp * s.voc,
            maxSeq: 16,
            normEps: 1e-5,
            ropeTheta: 10000,
            tiedHead,
          };
          const g = buildLlama(c, randomLlamaWeights(c, seed));
          const shards = shardTensorParallel(g, { tp });
          // vocabulary-parallel: each rank holds vocab/tp rows of the table, the whole table nowhere
          const names = shards[0]!.constants.map((v) => v.name);
          expect(names).toContain('tok_embeddings.vocab_shard');
          expect(names).not.toContain('tok_embeddings');
          const geo = { layers: c.layers, kvHeads, headDim: h.hd };
          const toks = tokens(5, c.vocab, seed);
          const want = await prefillThenDecode((f) => interpret(g, f), geo, toks, 3);
          const got = await prefillThenDecode(shardedRun(shards), geo, toks, 3);
          expect(relL2(got, want)).toBeLessThan(1e-5);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('GPT-2: random configs (fused c_attn split segment by segment), tp 2 / 4', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(2, 4),
        fc.record({
          hp: fc.constantFrom(1, 2),
          hd: fc.constantFrom(2, 4),
          hid: fc.integer({ min: 1, max: 4 }),
          voc: fc.integer({ min: 2, max: 6 }),
        }),
        fc.integer({ min: 1, max: 1000 }),
        async (tp, s, seed) => {
          const heads = tp * s.hp;
          const c: Gpt2Config = {
            arch: 'gpt2',
            dim: heads * s.hd,
            hiddenDim: tp * s.hid * 2,
            layers: 2,
            heads,
            vocab: tp * s.voc,
            maxSeq: 16,
            normEps: 1e-5,
          };
          const g = buildGpt2(c, randomGpt2Weights(c, seed));
          const shards = shardTensorParallel(g, { tp });
          const geo = { layers: c.layers, kvHeads: heads, headDim: s.hd };
          const toks = tokens(5, c.vocab, seed);
          const want = await prefillThenDecode((f) => interpret(g, f), geo, toks, 3);
          const got = await prefillThenDecode(shardedRun(shards), geo, toks, 3);
          expect(relL2(got, want)).toBeLessThan(1e-5);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('indivisible head counts are typed errors naming the node', () => {
    const c: LlamaConfig = {
      arch: 'llama',
      dim: 12,
      hiddenDim: 8,
      layers: 1,
      heads: 6,
      kvHeads: 3,
      vocab: 8,
      maxSeq: 8,
      normEps: 1e-5,
      ropeTheta: 10000,
      tiedHead: false,
    };
    const g = buildLlama(c, randomLlamaWeights(c, 1));
    expect(() => shardTensorParallel(g, { tp: 2 })).toThrow(KilnError);
  });
});
