/**
 * Pipeline stages (and tensor-parallel stages: TP × PP) against the unsplit graph in the float64 reference, through
 * prefill + decode with each stage's KV caches; the balancer's dynamic program on hand-worked costs.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KilnError } from '../../ir/errors.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import type { Graph } from '../../ir/graph.js';
import { balanceLayers, equalLayers, partitionPipeline, shardTensorParallel } from '../../passes/parallel/index.js';
import { interpretPipeline } from '../../src/parallel/index.js';
import type { Gpt2Config, LlamaConfig } from '../../src/models/config.js';
import { buildGpt2 } from '../../src/models/gpt2.js';
import { buildLlama } from '../../src/models/llama.js';
import { prefillThenDecode, randomGpt2Weights, randomLlamaWeights, relL2 } from '../helpers/lm-reference.js';

const RUNS = Number(process.env['KILN_PROP_RUNS'] ?? 8);

function headSlice(t: Tensor, tp: number, r: number): Tensor {
  const [B, H, T, D] = t.shape as [number, number, number, number];
  const h = H / tp;
  const out: number[] = [];
  for (let b = 0; b < B; b++)
    for (let i = r * h; i < (r + 1) * h; i++)
      for (let j = 0; j < T * D; j++) out.push(t.data[(b * H + i) * T * D + j] as number);
  return makeTensor(t.dtype, [B, h, T, D], out);
}
function headConcat(ts: readonly Tensor[]): Tensor {
  const [B, h, T, D] = ts[0]!.shape as [number, number, number, number];
  const out: number[] = [];
  for (let b = 0; b < B; b++)
    for (const t of ts) for (let j = 0; j < h * T * D; j++) out.push(t.data[b * h * T * D + j] as number);
  return makeTensor(ts[0]!.dtype, [B, h * ts.length, T, D], out);
}

/** Full feeds in, full outputs out: caches sliced by heads per TP rank, presents gathered from the stage holding them. */
function pipelineRun(stages: readonly (readonly Graph[])[]) {
  const tp = stages[0]!.length;
  return (feeds: Record<string, Tensor>): Record<string, Tensor> => {
    const outs = interpretPipeline(stages, (_s, r, name) =>
      name.startsWith('past_') ? headSlice(feeds[name]!, tp, r) : feeds[name],
    );
    const res: Record<string, Tensor> = {};
    for (const stage of outs) {
      for (const k of Object.keys(stage[0]!)) {
        if (k === 'logits') res[k] = stage[0]![k]!;
        if (k.startsWith('present_')) res[k] = headConcat(stage.map((o) => o[k]!));
      }
    }
    return res;
  };
}

const tokens = (n: number, vocab: number, seed: number) => [
  Array.from({ length: n }, (_, i) => (seed * 3 + i * 11) % vocab),
];

describe('pipeline stages equal the unsplit graph (float64 reference, prefill + decode)', () => {
  it('LLaMA and GPT-2: PP 2 / 4 and TP × PP = 2 × 2', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom([1, 2], [1, 4], [2, 2]),
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 1, max: 1000 }),
        async ([tp, pp], gpt2, tiedHead, seed) => {
          const layers = 4 + (seed % 2);
          let g: Graph;
          let geo;
          if (gpt2) {
            const c: Gpt2Config = {
              arch: 'gpt2',
              dim: 8,
              hiddenDim: 12,
              layers,
              heads: 2,
              vocab: 10,
              maxSeq: 16,
              normEps: 1e-5,
            };
            g = buildGpt2(c, randomGpt2Weights(c, seed));
            geo = { layers, kvHeads: 2, headDim: 4 };
          } else {
            const c: LlamaConfig = {
              arch: 'llama',
              dim: 16,
              hiddenDim: 12,
              layers,
              heads: 4,
              kvHeads: 2,
              vocab: 10,
              maxSeq: 16,
              normEps: 1e-5,
              ropeTheta: 10000,
              tiedHead,
            };
            g = buildLlama(c, randomLlamaWeights(c, seed));
            geo = { layers, kvHeads: 2, headDim: 4 };
          }
          const stages = partitionPipeline(g, equalLayers(layers, pp)).map((s) =>
            tp === 1 ? [s.graph] : shardTensorParallel(s.graph, { tp }),
          );
          const toks = tokens(5, 10, seed);
          const want = await prefillThenDecode((f) => interpret(g, f), geo, toks, 3);
          const got = await prefillThenDecode(pipelineRun(stages), geo, toks, 3);
          expect(relL2(got, want)).toBeLessThan(1e-5);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('stages exchange only the hidden state', () => {
    const c: LlamaConfig = {
      arch: 'llama',
      dim: 8,
      hiddenDim: 8,
      layers: 4,
      heads: 2,
      kvHeads: 2,
      vocab: 6,
      maxSeq: 8,
      normEps: 1e-5,
      ropeTheta: 10000,
      tiedHead: true,
    };
    const st = partitionPipeline(buildLlama(c, randomLlamaWeights(c, 1)), [0, 2]);
    expect(st.map((s) => s.layers)).toEqual([
      [0, 1],
      [2, 3],
    ]);
    expect([...st[0]!.sends.values()]).toEqual([[1]]);
    expect(st[1]!.receives.size).toBe(1);
    expect(st[0]!.graph.outputs.map((o) => o.name).filter((n) => n.startsWith('present_'))).toEqual([
      'present_key_0',
      'present_value_0',
      'present_key_1',
      'present_value_1',
    ]);
  });
});

describe('balancer', () => {
  it('minimizes the slowest stage (hand-worked)', () => {
    expect(balanceLayers([1, 2, 3, 4, 10], 2)).toEqual([0, 4]); // 10 | 10
    expect(balanceLayers([4, 1, 1, 1, 1, 4], 3)).toEqual([0, 1, 5]);
    expect(equalLayers(6, 3)).toEqual([0, 2, 4]);
  });
  it('respects the memory limit, typed error when nothing fits', () => {
    expect(balanceLayers([1, 1, 1, 10], 2)).toEqual([0, 3]);
    expect(balanceLayers([1, 1, 1, 10], 2, [5, 5, 5, 5], 10)).toEqual([0, 2]); // 15 bytes would not fit
    expect(() => balanceLayers([1, 1], 2, [5, 5], 4)).toThrow(KilnError);
    expect(() => balanceLayers([1], 2)).toThrow(/2 stages for 1 layers/);
  });
});
