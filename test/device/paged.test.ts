/**
 * The paged KV cache: random small LLaMA configs built with `paged`, several sequences of different lengths in one
 * pool. Prefill each, then decode them together one token per run; every step's logits equal a float64 full recompute
 * of that sequence alone (so a batch of 4 equals 4 single runs); rolling a sequence back to position p and going on
 * equals never having gone past p. On the reference and every device backend.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import '../../ir/ops/index.js';
import type { Gpt2Config, LlamaConfig } from '../../src/models/config.js';
import { buildGpt2 } from '../../src/models/gpt2.js';
import { buildLlama } from '../../src/models/llama.js';
import { PagedLanguageModel, type PagedSequence } from '../../src/generate/paged.js';
import type { BackendName } from '../../src/session.js';
import { deviceBackends } from '../helpers/device-backends.js';
import { gpt2Forward, llamaForward, randomGpt2Weights, randomLlamaWeights } from '../helpers/lm-reference.js';
import { PROP_RUNS } from '../helpers/paths.js';

const backends: BackendName[] = ['reference', ...(await deviceBackends())];

const arbCase = fc.record({
  arch: fc.constantFrom('llama' as const, 'gpt2' as const),
  heads: fc.constantFrom(2, 4),
  ratio: fc.constantFrom(1, 2),
  hd: fc.constantFrom(4, 8),
  blockSize: fc.constantFrom(1, 2, 4),
  prompts: fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 4 }),
  decode: fc.integer({ min: 1, max: 4 }),
  rollbackTo: fc.integer({ min: 0, max: 6 }),
  seed: fc.integer({ min: 1, max: 1e9 }),
});

function relErr(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (got[i]! - ref[i]!) ** 2;
    den += ref[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

describe.each(backends)('%s: paged KV cache', (backend) => {
  it('batched decode of sequences of different lengths and rollback equal full recomputes', async () => {
    await fc.assert(
      fc.asyncProperty(arbCase, async (k) => {
        const llama: LlamaConfig = {
          arch: 'llama',
          dim: k.heads * k.hd,
          hiddenDim: 2 * k.heads * k.hd + 3,
          layers: 2,
          heads: k.heads,
          kvHeads: k.heads / k.ratio,
          vocab: 23,
          maxSeq: 32,
          normEps: 1e-5,
          ropeTheta: 10000,
          tiedHead: k.seed % 2 === 0,
        };
        const gpt2: Gpt2Config = {
          arch: 'gpt2',
          dim: k.heads * k.hd,
          hiddenDim: 3 * k.hd + 1,
          layers: 2,
          heads: k.heads,
          vocab: 23,
          maxSeq: 32,
          normEps: 1e-5,
        };
        const paged = { paged: { blockSize: k.blockSize } };
        const [config, weights, graph, forward] =
          k.arch === 'llama'
            ? (() => {
                const w = randomLlamaWeights(llama, k.seed);
                return [llama, w, buildLlama(llama, w, paged), (t: number[]) => llamaForward(llama, w, t)] as const;
              })()
            : (() => {
                const w = randomGpt2Weights(gpt2, k.seed);
                return [gpt2, w, buildGpt2(gpt2, w, paged), (t: number[]) => gpt2Forward(gpt2, w, t)] as const;
              })();
        void weights;
        const lm = await PagedLanguageModel.create({ graph, config }, { backend, numBlocks: 64 });
        let r = k.seed;
        const tok = () => (r = (r * 1103515245 + 12345) % 2147483648) % config.vocab;
        const check = (seq: PagedSequence, logits: ArrayLike<number>, what: string) => {
          const ref = forward(seq.tokens);
          const e = relErr(logits, ref[ref.length - 1]!);
          expect(e, `${what}: rel-L2 ${e}`).toBeLessThan(1e-4);
        };
        try {
          const seqs = k.prompts.map(() => lm.newSequence());
          // prefill each prompt alone (different lengths)
          for (const [i, s] of seqs.entries()) {
            const prompt = Array.from({ length: k.prompts[i]! }, tok);
            const { logits } = await lm.append([s], [prompt], { logits: true });
            const vocab = config.vocab;
            check(s, logits!.data.subarray((prompt.length - 1) * vocab, prompt.length * vocab), `prefill ${i}`);
          }
          // decode all together, one token each per run
          for (let step = 0; step < k.decode; step++) {
            const next = seqs.map(() => [tok()]);
            const { logits } = await lm.append(seqs, next, { logits: true });
            seqs.forEach((s, i) =>
              check(s, logits!.data.subarray(i * config.vocab, (i + 1) * config.vocab), `step ${step}`),
            );
          }
          // roll the first sequence back and go on: as if it had never gone past p
          const s0 = seqs[0]!;
          const p = Math.min(k.rollbackTo, s0.length - 1);
          const freeBefore = lm.freeBlocks;
          const held = Math.ceil(s0.length / k.blockSize);
          await lm.rollback(s0, p);
          expect(lm.freeBlocks).toBe(freeBefore + held - Math.ceil(p / k.blockSize));
          const { logits } = await lm.append([s0], [[tok(), tok()]], { logits: true });
          check(s0, logits!.data.subarray(config.vocab, 2 * config.vocab), 'after rollback');
          // fork: the child shares the parent's full blocks; both go on differently and each equals its recompute
          const free0 = lm.freeBlocks;
          const child = await lm.fork(s0);
          const ownTail = s0.length % k.blockSize ? 1 : 0;
          expect(lm.freeBlocks).toBe(free0 - ownTail);
          expect(child.tokens).toEqual(s0.tokens);
          const both = await lm.append([s0, child], [[tok()], [tok()]], { logits: true });
          check(s0, both.logits!.data.subarray(0, config.vocab), 'parent after fork');
          check(child, both.logits!.data.subarray(config.vocab, 2 * config.vocab), 'child after fork');
          // the parent rolls back into a block it shares with the child, and writes again: copy on write
          const q = Math.max(0, Math.min(child.length - 2, k.rollbackTo));
          await lm.rollback(s0, q);
          const again = await lm.append([s0], [[tok()]], { logits: true });
          check(s0, again.logits!.data, 'parent after rollback into a shared block');
          const c2 = await lm.append([child], [[tok()]], { logits: true });
          check(child, c2.logits!.data, 'child after the parent rewrote its side');
          for (const s of [...seqs, child]) lm.release(s);
          expect(lm.freeBlocks).toBe(64);
        } finally {
          lm.dispose();
        }
      }),
      { numRuns: Math.max(4, Math.round(PROP_RUNS / 10)) },
    );
  }, 300_000);
});

describe.each(backends)('%s: batched generation on stories260K', (backend) => {
  it('4 prompts of different lengths decoded as one batch give each prompt its single-sequence greedy text', async () => {
    const { loadLanguageModel } = await import('../../src/generate/load.js');
    const { LanguageModelSession } = await import('../../src/generate/lm.js');
    const { REPO_ROOT } = await import('../helpers/paths.js');
    const { join } = await import('node:path');
    const file = join(REPO_ROOT, 'models/stories260K.bin');
    const single = loadLanguageModel(file);
    const tok = single.tokenizer!;
    const prompts = ['Once upon a time', 'The dog', 'Lily and her mom went to the park. They', 'One day'].map((p) =>
      tok.encode(p, { bos: true }),
    );
    const lm1 = await LanguageModelSession.create(single, { backend });
    const expected: number[][] = [];
    for (const p of prompts) {
      const ids: number[] = [];
      for await (const id of lm1.generate(p, { maxTokens: 12, stop: [tok.eos!] })) ids.push(id);
      expected.push(ids);
    }
    lm1.dispose();
    const m = loadLanguageModel(file);
    const { buildLlama: build } = await import('../../src/models/llama.js');
    if (m.config.arch !== 'llama') throw new Error('llama expected');
    const { loadLlama2c } = await import('../../src/frontends/llama2c.js');
    const { readFileSync } = await import('node:fs');
    const graph = build(m.config, loadLlama2c(readFileSync(file)).weights, { paged: { blockSize: 4 } });
    const lm = await PagedLanguageModel.create({ graph, config: m.config }, { backend, numBlocks: 64 });
    try {
      const got: number[][] = prompts.map(() => []);
      for await (const { index, token } of lm.generateBatch(prompts, { maxTokens: 12, stop: [tok.eos!] })) {
        got[index]!.push(token);
      }
      expect(got).toEqual(expected);
      expect(lm.freeBlocks).toBe(64);
      // sampled on the device: the batch draws what each prompt draws alone with seed + its index
      const sampling = { maxTokens: 10, temperature: 0.9, topK: 30, topP: 0.95, seed: 11 };
      const sampled: number[][] = prompts.map(() => []);
      for await (const { index, token } of lm.generateBatch(prompts, sampling)) sampled[index]!.push(token);
      const lone = await LanguageModelSession.create(loadLanguageModel(file), { backend });
      for (const [i, p] of prompts.entries()) {
        const ids: number[] = [];
        for await (const id of lone.generate(p, { ...sampling, seed: sampling.seed + i })) ids.push(id);
        expect(sampled[i]).toEqual(ids);
      }
      lone.dispose();
    } finally {
      lm.dispose();
    }
  }, 120_000);
});

describe.each(backends.filter((b) => b !== 'reference'))('%s: paged decode traffic', (backend) => {
  it('a chained batched decode step uploads nothing but a changed block table, and reads back one id per sequence', async () => {
    const config: LlamaConfig = {
      arch: 'llama',
      dim: 16,
      hiddenDim: 40,
      layers: 2,
      heads: 4,
      kvHeads: 2,
      vocab: 31,
      maxSeq: 64,
      normEps: 1e-5,
      ropeTheta: 10000,
      tiedHead: true,
    };
    const graph = buildLlama(config, randomLlamaWeights(config, 3), { paged: { blockSize: 4 } });
    const lm = await PagedLanguageModel.create({ graph, config }, { backend, numBlocks: 32 });
    type Io = { write(b: unknown, bytes: Uint8Array): void; read(b: unknown, n: number): Promise<Uint8Array> };
    const be = (lm.session as unknown as { executor: { backend: Io } }).executor.backend;
    const w = be.write.bind(be);
    const r = be.read.bind(be);
    let up: number[] = [];
    let down: number[] = [];
    be.write = (b, bytes) => (up.push(bytes.byteLength), w(b, bytes));
    be.read = async (b, n) => (down.push(n), r(b, n));
    try {
      const seqs = [3, 5, 2, 6].map(() => lm.newSequence());
      for (const [i, s] of seqs.entries()) await lm.append([s], [Array.from({ length: 2 + i }, (_, j) => j + 1)]);
      // the first batch of 4 uploads its (greedy) sampling parameters once; then each step appends what the previous
      // one chose, as a decode loop does
      let { next } = await lm.append(
        seqs,
        seqs.map(() => [7]),
      );
      for (let step = 0; step < 6; step++) {
        up = [];
        down = [];
        const blocksBefore = seqs.map((s) => s.blocks.length);
        ({ next } = await lm.append(
          seqs,
          next.map((t) => [t]),
        ));
        const width = Math.max(...seqs.map((s) => s.blocks.length));
        const grew = seqs.some((s, i) => s.blocks.length > blocksBefore[i]!);
        // ids and positions were made on the device by the previous run: only a changed block table goes up
        // (never a pool: 32 blocks · 2 heads · 4 slots · 4 dims · 4 bytes = 4 KiB each)
        expect(up).toEqual(grew ? [4 * width * 4] : []);
        expect(down.sort((a, b) => a - b)).toEqual([4, 16]); // the flag word and next_token [4]
      }
    } finally {
      lm.dispose();
    }
  }, 60_000);
});
