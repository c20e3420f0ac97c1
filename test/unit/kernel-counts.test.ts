/**
 * Kernels per decoder layer of a builder LLaMA (RMS norm, rotary, GQA, SwiGLU) at the default level, as a session
 * launches them for a decode step (symbolic shapes as built, run on the recording backend): a regression fails here.
 */
import { describe, expect, it } from 'vitest';
import '../../ir/ops/index.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { optimize } from '../../passes/manager.js';
import { quantizeRtn } from '../../passes/quant/index.js';
import type { LlamaConfig } from '../../src/models/config.js';
import { buildLlama } from '../../src/models/llama.js';
import { Executor } from '../../src/runtime/executor.js';
import { RecordingBackend } from '../../src/runtime/recording.js';
import { randomLlamaWeights } from '../helpers/lm-reference.js';

const config: LlamaConfig = {
  arch: 'llama',
  dim: 64,
  hiddenDim: 172,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  vocab: 32,
  maxSeq: 64,
  normEps: 1e-5,
  ropeTheta: 10000,
  tiedHead: false,
};

/** The ops a session launches for one decode step of `g` (batch 1, past 5) on the recording backend. */
async function decodeLaunches(g: ReturnType<typeof buildLlama>): Promise<(string | undefined)[]> {
  const dims: Record<string, number> = { batch: 1, seq: 1, past: 5 };
  const feeds: Record<string, Tensor> = {};
  for (const x of g.inputs) {
    const shape = x.type.shape.map((d) => (typeof d === 'number' ? d : dims[d]!));
    feeds[x.name] = makeTensor(x.type.dtype, shape);
  }
  const rec = new RecordingBackend();
  await new Executor(g, rec).run(feeds);
  return rec.launches.map((l) => l.op);
}

describe('LLaMA-style decode step', () => {
  it('7 kernels per layer (12 before merge-rotary, in-kernel present writes and norm prologues)', async () => {
    const ops = await decodeLaunches(optimize(buildLlama(config, randomLlamaWeights(config, 1))));
    const layer = [
      'fused_contraction', // attention_norm (RMS) + wq | wk | wv merged
      'rotary_embedding', // queries and keys in one
      'attention', // GQA, causal, past ++ new written to present in the same kernel
      'fused_contraction', // wo + residual
      'fused_contraction', // ffn_norm (RMS) + w1 | w3 merged
      'fused_elementwise', // silu(gate) · up
      'fused_contraction', // w2 + residual
    ];
    expect(ops).toEqual([...layer, ...layer, 'fused_contraction']); // final norm + LM head
  });

  it('int4 weights (RTN g32): the same 7 kernels per layer — the packed projections merge and fuse like f32 ones', async () => {
    const g = buildLlama(config, randomLlamaWeights(config, 1));
    quantizeRtn(g, { bits: 4, group: 32 });
    expect(g.nodes.filter((n) => n.op === 'matmul_nbits')).toHaveLength(14); // 7 projections per layer
    const ops = await decodeLaunches(optimize(g));
    const layer = [
      'fused_contraction', // attention_norm (RMS) + wq | wk | wv (packed rows concatenated)
      'rotary_embedding',
      'attention',
      'fused_contraction', // wo + residual
      'fused_contraction', // ffn_norm (RMS) + w1 | w3
      'fused_elementwise',
      'fused_contraction', // w2 + residual
    ];
    expect(ops).toEqual([...layer, ...layer, 'fused_contraction']);
  });
});
