/**
 * Block-quantized LLaMA layers through the fused kernels: after RTN (int4 symmetric, int8 asymmetric with packed
 * zero points; group 32 over K = 24 and the ragged 37-wide FFN) the default pipeline merges the packed Q / K / V and
 * gate / up projections, folds the RMS norms and the residual adds into them and runs decode steps (M = 1, 3) with
 * the packed-word GEMV and prefill (M = 9) with the tiled schedule. Every output (logits and present K / V) equals
 * the float64 reference of the quantized graph as built (unmerged, unfused) on webgpu and cuda-emu.
 */
import { describe, expect, it } from 'vitest';
import '../../ir/ops/index.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import type { Graph } from '../../ir/graph.js';
import { quantizeRtn } from '../../passes/quant/index.js';
import type { LlamaConfig } from '../../src/models/config.js';
import { buildLlama } from '../../src/models/llama.js';
import { compile } from '../../src/session.js';
import { checkAgainstReference } from '../helpers/backends.js';
import { deviceBackends } from '../helpers/device-backends.js';
import { randomLlamaWeights } from '../helpers/lm-reference.js';

const config: LlamaConfig = {
  arch: 'llama',
  dim: 24,
  hiddenDim: 37,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  vocab: 40,
  maxSeq: 64,
  normEps: 1e-5,
  ropeTheta: 10000,
  tiedHead: false,
};

/** Deterministic feeds for batch / seq / past: token ids in the vocabulary, past K / V in [-1, 1). */
function feedsFor(g: Graph, dims: Record<string, number>): Record<string, Tensor> {
  let s = 12345;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const feeds: Record<string, Tensor> = {};
  for (const x of g.inputs) {
    const shape = x.type.shape.map((d) => (typeof d === 'number' ? d : dims[d]!));
    const n = shape.reduce((p, d) => p * d, 1);
    const ints = x.type.dtype.startsWith('i');
    const data = Array.from({ length: n }, (_, i) =>
      ints
        ? x.name.includes('pos')
          ? (dims['past'] ?? 0) + (i % (dims['seq'] ?? 1))
          : (i * 7 + 3) % config.vocab
        : rnd(),
    );
    feeds[x.name] = makeTensor(x.type.dtype, shape, data);
  }
  return feeds;
}

const backends = await deviceBackends();

describe.each(backends)('block-quantized LLaMA layers, fused, on %s', (backend) => {
  it.each([
    ['int4 symmetric', { bits: 4 as const, group: 32 }],
    ['int8 asymmetric (packed zero points)', { bits: 8 as const, group: 32, symmetric: false }],
  ])(
    '%s: decode (M = 1, 3) and prefill (M = 9) equal the float64 reference',
    async (_label, opts) => {
      const g = buildLlama(config, randomLlamaWeights(config, 5));
      quantizeRtn(g, opts);
      for (const dims of [
        { batch: 1, seq: 1, past: 5 },
        { batch: 3, seq: 1, past: 4 },
        { batch: 1, seq: 9, past: 0 },
      ]) {
        const feeds = feedsFor(g, dims);
        expect(await checkAgainstReference(g, feeds, { backend }), JSON.stringify(dims)).toEqual([]);
      }
      // the decode step ran the fused packed GEMV (norm + merged projections, residual epilogues)
      const s = await compile(g, { backend });
      try {
        await s.run(feedsFor(g, { batch: 1, seq: 1, past: 5 }));
        const names = s.kernels().map((k) => k.name);
        expect(names.some((n) => n.includes('fused_matmul_nbits_gemv'))).toBe(true);
      } finally {
        s.dispose();
      }
    },
    120_000,
  );
});
