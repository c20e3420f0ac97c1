/**
 * Speculative decoding on the device backends: greedy output equals plain greedy decoding on the same backend, token
 * for token, for n-gram, self (layer-skip) and mixed drafts, over a few random small LLaMAs and prompts.
 */
import { describe, expect, it } from 'vitest';
import '../../ir/ops/index.js';
import type { LlamaConfig } from '../../src/models/config.js';
import { buildLlama } from '../../src/models/llama.js';
import { PagedLanguageModel } from '../../src/generate/paged.js';
import { generate, ModelDraft, NgramDraft, verifyDraft, type DraftSource } from '../../src/generate/speculative.js';
import { deviceBackends } from '../helpers/device-backends.js';
import { greedyReference, llamaForward, randomLlamaWeights } from '../helpers/lm-reference.js';

const backends = await deviceBackends();

const cases = [
  { layers: 2, heads: 2, kvHeads: 1, vocab: 13, blockSize: 2, prompt: [1, 5, 2, 5, 2], seed: 11 },
  { layers: 3, heads: 4, kvHeads: 4, vocab: 17, blockSize: 4, prompt: [3], seed: 23 },
  { layers: 2, heads: 4, kvHeads: 2, vocab: 7, blockSize: 1, prompt: [0, 1, 2, 3, 0, 1], seed: 5 },
];

describe.each(backends)('%s: speculative decoding', (backend) => {
  it.each(cases)(
    'greedy equals plain greedy decoding (%o)',
    async (k) => {
      const c: LlamaConfig = {
        arch: 'llama',
        dim: 4 * k.heads,
        hiddenDim: 8 * k.heads + 3,
        layers: k.layers,
        heads: k.heads,
        kvHeads: k.kvHeads,
        vocab: k.vocab,
        maxSeq: 32,
        normEps: 1e-5,
        ropeTheta: 10000,
        tiedHead: false,
      };
      const w = randomLlamaWeights(c, k.seed);
      const graph = buildLlama(c, w, { paged: { blockSize: k.blockSize } });
      const target = await PagedLanguageModel.create({ graph, config: c }, { backend, numBlocks: 64 });
      const self = await ModelDraft.layerSkip(c, w, 1, { backend, blockSize: k.blockSize });
      try {
        const want: number[] = [];
        for await (const { token } of target.generateBatch([k.prompt], { maxTokens: 12 })) want.push(token);
        // the plain device decode itself agrees with the independent float64 forward
        expect(want).toEqual(greedyReference((t) => llamaForward(c, w, t), k.prompt, 12));
        const sources: [string, DraftSource | DraftSource[]][] = [
          ['ngram', new NgramDraft()],
          ['self', self],
          ['mix', [new NgramDraft(), self]],
        ];
        for (const [name, draft] of sources) {
          const { tokens } = await generate(target, k.prompt, {
            maxTokens: 12,
            speculative: { draft, draftLen: 3, adaptive: false },
          });
          expect(tokens, name).toEqual(want);
        }
        expect(target.freeBlocks).toBe(64);
      } finally {
        self.dispose();
        target.dispose();
      }
    },
    600_000,
  );

  it('after a rejected draft the cache equals that of a run that saw only the accepted tokens', async () => {
    const c: LlamaConfig = {
      arch: 'llama',
      dim: 16,
      hiddenDim: 35,
      layers: 2,
      heads: 4,
      kvHeads: 2,
      vocab: 11,
      maxSeq: 32,
      normEps: 1e-5,
      ropeTheta: 10000,
      tiedHead: false,
    };
    const w = randomLlamaWeights(c, 77);
    const graph = buildLlama(c, w, { paged: { blockSize: 2 } });
    const target = await PagedLanguageModel.create({ graph, config: c }, { backend, numBlocks: 64 });
    try {
      const prompt = [3, 1, 4, 1, 5];
      const greedy = greedyReference((t) => llamaForward(c, w, t), prompt, 3);
      const [cur, g1, g2] = greedy as [number, number, number];
      const seq = target.newSequence();
      await target.append([seq], [prompt]);
      const v = await verifyDraft(target, seq, cur, { tokens: [g1, (g2 + 1) % c.vocab, 0] }, {}, () => 0.5);
      expect(v).toEqual({ accepted: 1, next: g2 });
      const fresh = target.newSequence();
      await target.append([fresh], [[...prompt, cur, g1]]);
      const [a, b] = [await target.cacheOf(seq), await target.cacheOf(fresh)];
      a.forEach((layer, i) => {
        let worst = 0;
        for (let j = 0; j < layer.length; j++) {
          expect(Number.isFinite(layer[j]!)).toBe(true);
          worst = Math.max(worst, Math.abs(layer[j]! - b[i]![j]!));
        }
        expect(worst, `cache ${i}`).toBeLessThan(1e-5);
      });
    } finally {
      target.dispose();
    }
  }, 300_000);
});
