/**
 * Speculative decoding on the device backends: greedy output equals plain greedy decoding on the same backend, token
 * for token, for n-gram, self (layer-skip) and mixed drafts, over a few random small LLaMAs and prompts.
 */
import { describe, expect, it } from 'vitest';
import '../../ir/ops/index.js';
import type { LlamaConfig } from '../../src/models/config.js';
import { buildLlama } from '../../src/models/llama.js';
import { PagedLanguageModel } from '../../src/generate/paged.js';
import { generate, ModelDraft, NgramDraft, type DraftSource } from '../../src/generate/speculative.js';
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
          const { tokens } = await generate(target, k.prompt, { maxTokens: 12, speculative: { draft, draftLen: 3 } });
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
});
