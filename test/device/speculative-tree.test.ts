/**
 * Token-tree speculation on the device backends: greedy output equals plain greedy decoding (itself checked against
 * the float64 forward) for n-gram, self (layer-skip) and merged trees over random small LLaMAs; after a tree with
 * rejected nodes, the cache — compacted by kv_cache_move on the device at the next run — equals that of a run that
 * only saw the accepted tokens.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import '../../ir/ops/index.js';
import type { LlamaConfig } from '../../src/models/config.js';
import { buildLlama } from '../../src/models/llama.js';
import { PagedLanguageModel } from '../../src/generate/paged.js';
import { generate, ModelDraft, NgramDraft, verifyTree, type DraftSource } from '../../src/generate/speculative.js';
import { TokenTree } from '../../src/generate/tree.js';
import { deviceBackends } from '../helpers/device-backends.js';
import { greedyReference, llamaForward, randomLlamaWeights } from '../helpers/lm-reference.js';

const backends = await deviceBackends();

function llama(k: { layers: number; heads: number; kvHeads: number; vocab: number }): LlamaConfig {
  return {
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
}

describe.each(backends)('%s: token-tree speculation', (backend) => {
  it('greedy tree speculation equals plain greedy decoding (random models, prompts, tree sizes)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          layers: fc.constantFrom(2, 3),
          heads: fc.constantFrom(2, 4),
          kvRatio: fc.constantFrom(1, 2),
          vocab: fc.constantFrom(5, 7, 13),
          blockSize: fc.constantFrom(1, 2, 4),
          prompt: fc.array(fc.nat(), { minLength: 1, maxLength: 6 }),
          nodes: fc.integer({ min: 2, max: 32 }),
          seed: fc.integer({ min: 1, max: 1e9 }),
        }),
        async (k) => {
          const c = llama({ layers: k.layers, heads: k.heads, kvHeads: k.heads / k.kvRatio, vocab: k.vocab });
          const prompt = k.prompt.map((t) => t % c.vocab);
          const w = randomLlamaWeights(c, k.seed);
          const graph = buildLlama(c, w, { paged: { blockSize: k.blockSize } });
          const target = await PagedLanguageModel.create({ graph, config: c }, { backend, numBlocks: 64, tree: true });
          const self = await ModelDraft.layerSkip(c, w, 1, { backend, blockSize: k.blockSize });
          try {
            const want: number[] = [];
            for await (const { token } of target.generateBatch([prompt], { maxTokens: 12 })) want.push(token);
            expect(want).toEqual(greedyReference((t) => llamaForward(c, w, t), prompt, 12));
            const sources: [string, DraftSource | DraftSource[]][] = [
              ['ngram', new NgramDraft()],
              ['self', self],
              ['ngram+self', [new NgramDraft({ maxNgram: 2 }), self]],
            ];
            for (const [name, draft] of sources) {
              const { tokens } = await generate(target, prompt, {
                maxTokens: 12,
                speculative: { draft, tree: { nodes: k.nodes, maxNodes: k.nodes, depth: 4, dynamic: false } },
              });
              expect(tokens, name).toEqual(want);
            }
            expect(target.freeBlocks).toBe(64);
          } finally {
            self.dispose();
            target.dispose();
          }
        },
      ),
      { numRuns: 3 },
    );
  }, 300_000);

  it('after a tree with rejected nodes the device-compacted cache equals that of a run that saw only the accepted tokens', async () => {
    const c = llama({ layers: 2, heads: 4, kvHeads: 2, vocab: 11 });
    const w = randomLlamaWeights(c, 77);
    const graph = buildLlama(c, w, { paged: { blockSize: 2 } });
    const target = await PagedLanguageModel.create({ graph, config: c }, { backend, numBlocks: 64, tree: true });
    try {
      const prompt = [3, 1, 4, 1, 5];
      const [cur, g1, g2, g3] = greedyReference((t) => llamaForward(c, w, t), prompt, 4) as number[];
      const no = (t: number) => (t! + 1) % c.vocab;
      const tree = new TokenTree(cur!);
      tree.addChain([no(g1!), 0]);
      const n2 = tree.addChild(0, g1!);
      tree.addChild(n2, no(g2!));
      const n4 = tree.addChild(n2, g2!);
      const seq = target.newSequence();
      await target.append([seq], [prompt]);
      const v = await verifyTree(target, seq, tree, {}, () => 0.5);
      expect(v).toMatchObject({ path: [n2, n4], tokens: [g1, g2], next: g3 });
      const fresh = target.newSequence();
      await target.append([fresh], [[...prompt, cur!, g1!, g2!]]);
      // the moves run on the device with the next token
      await target.append([seq], [[g3!]]);
      await target.append([fresh], [[g3!]]);
      expect(seq.moves).toEqual([]);
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
