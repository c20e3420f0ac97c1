/**
 * Speculative decoding on the reference backend: greedy output equals plain greedy decoding token for token for every
 * draft source (property over random small LLaMAs and prompts); sampled output is distributed as the target's own
 * samples (chi-square against the float64 forward's probabilities, p-value in the assertion); after a rejected draft
 * the KV cache equals that of a run that only ever saw the accepted tokens.
 */
import fc from 'fast-check';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../ir/ops/index.js';
import { KilnError } from '../../ir/errors.js';
import { printGraph } from '../../ir/text.js';
import type { LlamaConfig, WeightSource } from '../../src/models/config.js';
import { buildLlama } from '../../src/models/llama.js';
import { PagedLanguageModel } from '../../src/generate/paged.js';
import {
  generate,
  ModelDraft,
  NgramDraft,
  Pairs,
  verifyDraft,
  type DraftSource,
  SpeculativeDecoder,
} from '../../src/generate/speculative.js';
import { llamaForward, randomLlamaWeights } from '../helpers/lm-reference.js';
import { lmHeadOf, MedusaDraft, MedusaHeads } from '../../src/generate/medusa.js';
import { PROP_RUNS } from '../helpers/paths.js';
import { main } from '../../src/cli.js';

function config(o: Partial<LlamaConfig> = {}): LlamaConfig {
  return {
    arch: 'llama',
    dim: 8,
    hiddenDim: 19,
    layers: 2,
    heads: 2,
    kvHeads: 1,
    vocab: 17,
    maxSeq: 40,
    normEps: 1e-5,
    ropeTheta: 10000,
    tiedHead: false,
    ...o,
  };
}

async function paged(c: LlamaConfig, w: WeightSource, blockSize: number, hidden = false): Promise<PagedLanguageModel> {
  const graph = buildLlama(c, w, { paged: { blockSize } });
  return PagedLanguageModel.create({ graph, config: c }, { backend: 'reference', numBlocks: 128, hidden });
}

/** Sequential Medusa heads with random weights for a target (proposals vary; exactness must hold regardless). */
function randomMedusa(c: LlamaConfig, w: WeightSource, blockSize: number, heads: number, seed: number): MedusaDraft {
  const lm = lmHeadOf(buildLlama(c, w, { paged: { blockSize } }));
  let s = seed >>> 0;
  const r = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 2;
  const D = lm.dim;
  const mats = () => Array.from({ length: heads }, () => Float32Array.from({ length: D * D }, r));
  const h = new MedusaHeads(
    D,
    lm.vocab,
    mats(),
    Array.from({ length: heads }, () => Float32Array.from({ length: D }, r)),
    lm.weight,
    { u: mats(), embedding: lm.embedding! },
  );
  return new MedusaDraft(h);
}

async function plainGreedy(lm: PagedLanguageModel, prompt: number[], maxTokens: number): Promise<number[]> {
  const out: number[] = [];
  for await (const { token } of lm.generateBatch([prompt], { maxTokens })) out.push(token);
  return out;
}

describe('speculative decoding: greedy exactness', () => {
  it('equals plain greedy decoding for n-gram, self (layer-skip), a separate draft model, Medusa heads and mixes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          layers: fc.constantFrom(2, 3),
          heads: fc.constantFrom(2, 4),
          kvRatio: fc.constantFrom(1, 2),
          vocab: fc.constantFrom(5, 11, 17),
          blockSize: fc.constantFrom(1, 2, 4),
          prompt: fc.array(fc.nat(), { minLength: 1, maxLength: 8 }),
          draftLen: fc.integer({ min: 1, max: 5 }),
          adaptive: fc.boolean(),
          seed: fc.integer({ min: 1, max: 1e9 }),
        }),
        async (k) => {
          const c = config({
            layers: k.layers,
            heads: k.heads,
            kvHeads: k.heads / k.kvRatio,
            dim: 4 * k.heads,
            vocab: k.vocab,
          });
          const w = randomLlamaWeights(c, k.seed);
          const prompt = k.prompt.map((t) => t % c.vocab);
          const target = await paged(c, w, k.blockSize);
          const dc = config({ layers: 1, heads: 2, kvHeads: 2, dim: 8, vocab: k.vocab });
          const other = new ModelDraft(await paged(dc, randomLlamaWeights(dc, k.seed + 1), 2), 'other', true);
          const self = await ModelDraft.layerSkip(c, w, 1, { backend: 'reference', blockSize: k.blockSize });
          const medusa = randomMedusa(c, w, k.blockSize, 3, k.seed + 2);
          const withHidden = await paged(c, w, k.blockSize, true);
          const sources: [string, DraftSource | DraftSource[], PagedLanguageModel][] = [
            ['ngram', new NgramDraft(), target],
            ['self', self, target],
            ['other', other, target],
            ['mix', [new NgramDraft({ maxNgram: 2 }), self], target],
            ['medusa', medusa, withHidden],
            ['medusa+ngram', [medusa, new NgramDraft()], withHidden],
          ];
          try {
            const want = await plainGreedy(target, prompt, 14);
            for (const [name, draft, target] of sources) {
              const { tokens, stats } = await generate(target, prompt, {
                maxTokens: 14,
                speculative: { draft, draftLen: k.draftLen, adaptive: k.adaptive },
              });
              expect(tokens, name).toEqual(want);
              expect(stats.generatedTokens).toBe(want.length);
              expect(target.freeBlocks, `${name}: blocks given back`).toBe(128);
            }
          } finally {
            other.dispose();
            self.dispose();
            target.dispose();
            withHidden.dispose();
          }
        },
      ),
      { numRuns: Math.max(6, Math.round(PROP_RUNS / 5)) },
    );
  }, 600_000);

  it('adaptive: a right but slow draft is paused for plain passes; a right and fast one keeps drafting', async () => {
    const c = config({ vocab: 7, maxSeq: 96 });
    const w = randomLlamaWeights(c, 99);
    const target = await paged(c, w, 4);
    try {
      const want = await plainGreedy(target, [1, 2, 3], 80);
      const oracle = (delayMs: number): DraftSource => ({
        name: 'oracle',
        propose: async (ctx, k) => {
          if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
          const made = ctx.length - 3;
          return { tokens: want.slice(made, made + k) };
        },
      });
      // 60 ms per proposal of 1 token: 2 tokens per drafting pass, far slower than a reference pass of this model
      const slow = await generate(target, [1, 2, 3], {
        maxTokens: 80,
        speculative: { draft: oracle(60), draftLen: 1, maxDraftLen: 1 },
      });
      expect(slow.tokens).toEqual(want);
      // 3 plain passes measure plain decoding, 3 drafting passes measure drafting, then probes after pauses of 4, 8 …
      const draftingPasses = slow.stats.draftedTokens;
      expect(draftingPasses).toBeGreaterThanOrEqual(3);
      expect(draftingPasses).toBeLessThanOrEqual(10);
      // the same draft without the delay, 4 tokens a pass: 5 tokens per pass at about one pass's cost, it keeps drafting
      const fast = await generate(target, [1, 2, 3], {
        maxTokens: 80,
        speculative: { draft: oracle(0), draftLen: 4, maxDraftLen: 4 },
      });
      expect(fast.tokens).toEqual(want);
      // (a plain pass every 16 drafting passes keeps the baseline fresh)
      expect(fast.stats.targetPasses).toBeLessThanOrEqual(3 + Math.ceil((80 - 1 - 3) / 5) + 4);
      // adaptive off: the slow draft drafts every pass
      const fixed = await generate(target, [1, 2, 3], {
        maxTokens: 20,
        speculative: { draft: oracle(1), draftLen: 1, maxDraftLen: 1, adaptive: false },
      });
      // (the last pass has no room left for a draft)
      expect(fixed.stats.draftedTokens).toBeGreaterThanOrEqual(fixed.stats.targetPasses - 1);
    } finally {
      target.dispose();
    }
  }, 120_000);

  it('paired measurements: one pass slowed by the machine does not flip the speed ratio (median of the last 5)', () => {
    const p = new Pairs();
    // the option and plain decoding equally fast, 4 times; once the plain pass beside it took 10× (a hiccup)
    for (const base of [10, 10, 100, 10, 10]) p.add(1, 10, 1, base);
    expect(p.n).toBe(5);
    expect(p.ratio).toBe(1);
    // the option 2 tokens per pass at the same cost: twice as fast, whatever one outlier says
    for (const ms of [10, 10, 10, 1000, 10]) p.add(2, ms, 1, 10);
    expect(p.ratio).toBe(2);
  });

  it('while the gate pauses drafting, the hidden state is not read back; every draft sees the latest one', async () => {
    const c = config({ vocab: 7, maxSeq: 96 });
    const w = randomLlamaWeights(c, 99);
    const target = await paged(c, w, 4, true);
    try {
      const want = await plainGreedy(target, [1, 2, 3], 60);
      const events: ('hidden' | 'plain' | 'propose')[] = [];
      const append = target.append.bind(target);
      target.append = (seqs, tokens, opts = {}) => {
        events.push(opts.hidden ? 'hidden' : 'plain');
        return append(seqs, tokens, opts);
      };
      let observed = 0;
      const slow: DraftSource = {
        name: 'slow-hidden',
        wantsHidden: true,
        observe: () => void observed++,
        propose: async (ctx, k) => {
          events.push('propose');
          await new Promise((r) => setTimeout(r, 60));
          const made = ctx.length - 3;
          return { tokens: want.slice(made, made + k) };
        },
      };
      const { tokens, stats } = await generate(target, [1, 2, 3], {
        maxTokens: 60,
        speculative: { draft: slow, draftLen: 1, maxDraftLen: 1 },
      });
      expect(tokens).toEqual(want);
      // paused passes (most of them) skip the readback ...
      expect(events.filter((e) => e === 'plain').length).toBeGreaterThan(stats.targetPasses / 2);
      expect(observed).toBe(events.filter((e) => e === 'hidden').length);
      // ... yet the pass before every proposal read it
      events.forEach((e, i) => {
        if (e === 'propose') expect(events[i - 1]).toBe('hidden');
      });
    } finally {
      target.dispose();
    }
  }, 120_000);

  it('a draft model catches up in power-of-two runs (few shapes, kernels built once) and drafts what it would alone', async () => {
    const c = config({ vocab: 7, maxSeq: 96 });
    const w = randomLlamaWeights(c, 3);
    const model = await paged(c, w, 4);
    const alone = await paged(c, w, 4);
    try {
      const lengths: number[] = [];
      const append = model.append.bind(model);
      model.append = (seqs, tokens, opts) => {
        lengths.push(tokens[0]!.length);
        return append(seqs, tokens, opts);
      };
      const draft = new ModelDraft(model);
      const ctx = Array.from({ length: 37 }, (_, i) => (i * 5 + 1) % 7);
      const { tokens } = await draft.propose(ctx, 3, {}, () => 0);
      expect(lengths).toEqual([32, 4, 1, 1, 1]);
      // the same three tokens as greedy decoding of the context on a fresh model
      expect(tokens).toEqual(await plainGreedy(alone, ctx, 3));
      // a context 6 longer: rolls back to the shared prefix (the drafts are not in the context), then runs 4 and 2
      lengths.length = 0;
      const other = (tokens[0]! + 1) % 7; // so the shared prefix is exactly ctx
      await draft.propose([...ctx, other, 1, 2, 3, 4, 5], 1, {}, () => 0);
      expect(lengths).toEqual([4, 2]);
      draft.reset();
    } finally {
      model.dispose();
      alone.dispose();
    }
  });

  it('self:int4 (the target RTN-quantized to 4 bits) drafts and keeps the greedy text', async () => {
    const c = config({ dim: 32, hiddenDim: 64, heads: 2, kvHeads: 1, vocab: 11 });
    const w = randomLlamaWeights(c, 5);
    const target = await paged(c, w, 4);
    const q = await ModelDraft.self(c, w, { bits: 4 }, { backend: 'reference', blockSize: 4 });
    try {
      expect(q.name).toBe('self:int4');
      // its projections hold packed 4-bit weights
      expect(printGraph(q.model.session.graph)).toMatch(/blockq\(bits=4,/);
      const want = await plainGreedy(target, [1, 2, 3], 16);
      const { tokens, stats } = await generate(target, [1, 2, 3], {
        maxTokens: 16,
        speculative: { draft: q, draftLen: 3, adaptive: false },
      });
      expect(tokens).toEqual(want);
      // it drafted and some drafts were right (this random model's logits are close together, so 4 bits flip many)
      expect(stats.draftedTokens).toBeGreaterThan(0);
      expect(stats.acceptedTokens).toBeGreaterThan(0);
      await expect(ModelDraft.self(c, w, { layers: 3 })).rejects.toThrow(KilnError);
    } finally {
      q.dispose();
      target.dispose();
    }
  }, 120_000);

  it('a draft always right takes fewer target passes than tokens; stop tokens end the output as in plain decoding', async () => {
    const c = config({ vocab: 7 });
    const w = randomLlamaWeights(c, 99);
    const target = await paged(c, w, 4);
    try {
      const want = await plainGreedy(target, [1, 2, 3], 20);
      // an oracle that proposes the target's own continuation
      const oracle: DraftSource = {
        name: 'oracle',
        propose: async (ctx, k) => {
          const made = ctx.length - 3;
          return { tokens: want.slice(made, made + k) };
        },
      };
      const { tokens, stats } = await generate(target, [1, 2, 3], {
        maxTokens: 20,
        speculative: { draft: oracle, draftLen: 4, adaptive: false },
      });
      expect(tokens).toEqual(want);
      // 19 tokens after the prefill's first, 5 per pass (4 drafts + bonus): 4 passes
      expect(stats.targetPasses).toBe(4);
      expect(stats.acceptanceRate).toBe(1);
      // a stop token: plain decoding stops before it; so does speculative decoding, even inside an accepted draft
      const stopAt = want[7]!;
      const cut = want.slice(0, want.indexOf(stopAt));
      const r = await generate(target, [1, 2, 3], {
        maxTokens: 20,
        stop: [stopAt],
        speculative: { draft: oracle, draftLen: 4, adaptive: false },
      });
      expect(r.tokens).toEqual(cut);
      await expect(
        generate(target, [1], { repetitionPenalty: 1.2, speculative: { draft: new NgramDraft() } }),
      ).rejects.toThrow(KilnError);
      expect(() => new SpeculativeDecoder(target, { draft: oracle, draftLen: 0 })).toThrow(KilnError);
    } finally {
      target.dispose();
    }
  }, 120_000);

  it('n-gram drafts continue the latest earlier occurrence of the longest matching suffix', async () => {
    const d = new NgramDraft({ maxNgram: 3 });
    expect((await d.propose([5, 6, 7, 8, 9, 5, 6, 7], 3)).tokens).toEqual([8, 9, 5]);
    expect((await d.propose([1, 2, 9, 1, 3, 1], 2)).tokens).toEqual([3, 1]);
    expect((await d.propose([1, 2, 3], 2)).tokens).toEqual([]);
    expect(() => new NgramDraft({ minNgram: 0 })).toThrow(KilnError);
  });
});

/** P(χ² with df degrees of freedom ≥ x): the regularized upper incomplete gamma Q(df/2, x/2). */
function chiSquarePValue(x: number, df: number): number {
  const a = df / 2;
  const z = x / 2;
  const lnGamma = (s: number): number => {
    // Lanczos, g = 7
    const g = [
      0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
      12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
    ];
    s -= 1;
    let acc = g[0]!;
    for (let i = 1; i < 9; i++) acc += g[i]! / (s + i);
    const t = s + 7.5;
    return 0.5 * Math.log(2 * Math.PI) + (s + 0.5) * Math.log(t) - t + Math.log(acc);
  };
  if (z < a + 1) {
    // series for P, then Q = 1 − P
    let sum = 1 / a;
    let term = sum;
    for (let n = 1; n < 500; n++) {
      term *= z / (a + n);
      sum += term;
    }
    return 1 - sum * Math.exp(-z + a * Math.log(z) - lnGamma(a));
  }
  // Lentz continued fraction for Q
  let b = z + 1 - a;
  let cc = 1e300;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 500; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    d = 1 / d;
    cc = b + an / cc;
    h *= d * cc;
  }
  return Math.exp(-z + a * Math.log(z) - lnGamma(a)) * h;
}

describe('speculative decoding: sampling', () => {
  it('chi-square: the p-value helper matches tabulated quantiles', () => {
    // χ²(0.95; 3) = 7.815, χ²(0.99; 15) = 30.578
    expect(chiSquarePValue(7.815, 3)).toBeCloseTo(0.05, 3);
    expect(chiSquarePValue(30.578, 15)).toBeCloseTo(0.01, 3);
    expect(chiSquarePValue(2, 4)).toBeCloseTo(0.7358, 3);
  });

  it.each([
    ['self (layer-skip)', 'self', {}],
    ['n-gram', 'ngram', {}],
    ['self (layer-skip) with top-k 3 and top-p 0.9', 'self', { topK: 3, topP: 0.9 }],
    ['Medusa heads', 'medusa', {}],
  ] as const)(
    'the first two tokens of %s speculative samples follow the target distribution',
    async (_, kind, cut: { topK?: number; topP?: number }) => {
      const V = 5;
      const c = config({ vocab: V, dim: 8, heads: 2, kvHeads: 2, layers: 2 });
      const w = randomLlamaWeights(c, 7);
      const prompt = [1, 2, 1];
      const temperature = 0.8;
      // expected: P(a, b) = p(a | prompt) · p(b | prompt, a) from the float64 forward: the k largest logits, softmax
      // at the temperature, then the most likely tokens until their mass reaches top-p, renormalized
      const dist = (row: Float64Array) => {
        const order = Array.from(row.keys()).sort((x, y) => row[y]! - row[x]!);
        const kept = order.slice(0, cut.topK ?? V);
        const e = kept.map((i) => Math.exp((row[i]! - row[kept[0]!]!) / temperature));
        const z = e.reduce((x, y) => x + y, 0);
        let n = 0;
        for (let acc = 0; n < kept.length && acc < (cut.topP ?? 1); n++) acc += e[n]! / z;
        const zz = e.slice(0, n).reduce((x, y) => x + y, 0);
        const out = new Array<number>(V).fill(0);
        for (let j = 0; j < n; j++) out[kept[j]!] = e[j]! / zz;
        return out;
      };
      const first = dist(llamaForward(c, w, prompt).at(-1)!);
      const expected: number[] = [];
      for (let a = 0; a < V; a++) {
        const second = dist(llamaForward(c, w, [...prompt, a]).at(-1)!);
        for (let b = 0; b < V; b++) expected.push(first[a]! * second[b]!);
      }
      const target = await paged(c, w, 2, kind === 'medusa');
      const draft =
        kind === 'self'
          ? await ModelDraft.layerSkip(c, w, 1, { backend: 'reference', blockSize: 2 })
          : kind === 'medusa'
            ? randomMedusa(c, w, 2, 2, 5)
            : new NgramDraft({ maxNgram: 2 });
      const N = 3000;
      const counts = new Array<number>(V * V).fill(0);
      let accepted = 0;
      let drafted = 0;
      try {
        const dec = new SpeculativeDecoder(target, { draft, draftLen: 2, adaptive: false });
        for (let seed = 0; seed < N; seed++) {
          const got: number[] = [];
          for await (const t of dec.generate(prompt, { maxTokens: 3, temperature, seed, ...cut })) got.push(t);
          counts[got[0]! * V + got[1]!]!++;
          accepted += dec.stats!.acceptedTokens;
          drafted += dec.stats!.draftedTokens;
        }
      } finally {
        (draft as DraftSource).dispose?.();
        target.dispose();
      }
      // drafts were made, and some were rejected: both branches of the acceptance rule ran
      expect(drafted).toBeGreaterThan(N / 10);
      expect(accepted).toBeGreaterThan(0);
      expect(accepted).toBeLessThan(drafted);
      // pairs the cuts exclude never occur; the others are the chi-square's bins
      let chi = 0;
      let bins = 0;
      for (let i = 0; i < V * V; i++) {
        if (expected[i] === 0) {
          expect(counts[i], `pair ${i} is cut away`).toBe(0);
          continue;
        }
        bins++;
        chi += (counts[i]! - N * expected[i]!) ** 2 / (N * expected[i]!);
      }
      if (cut.topK) expect(bins).toBeLessThan(V * V);
      const p = chiSquarePValue(chi, bins - 1);
      expect(p, `χ² = ${chi.toFixed(2)}, ${bins - 1} df, p = ${p.toExponential(3)}`).toBeGreaterThan(1e-3);
    },
    600_000,
  );
});

describe('speculative decoding: rollback', () => {
  it('after a rejected draft the cache equals that of a run that saw only the accepted tokens', async () => {
    for (const [blockSize, seed] of [
      [1, 3],
      [2, 5],
      [4, 8],
    ] as const) {
      const c = config({ vocab: 11 });
      const w = randomLlamaWeights(c, seed);
      const target = await paged(c, w, blockSize);
      try {
        const prompt = [3, 1, 4, 1, 5];
        const greedyAfter = async (tokens: number[]) => {
          const s = target.newSequence();
          const { next } = await target.append([s], [tokens]);
          target.release(s);
          return next[0]!;
        };
        const cur = await greedyAfter(prompt);
        const g1 = await greedyAfter([...prompt, cur]);
        const g2 = await greedyAfter([...prompt, cur, g1]);
        const wrong = (g2 + 1) % c.vocab;
        for (const [draft, keep] of [
          [[g1, wrong, 0], 1],
          [[(g1 + 3) % c.vocab, 2], 0],
        ] as const) {
          const seq = target.newSequence();
          await target.append([seq], [prompt]);
          const v = await verifyDraft(target, seq, cur, { tokens: [...draft] }, {}, () => 0.5);
          expect(v.accepted).toBe(keep);
          expect(v.next).toBe(keep === 1 ? g2 : g1);
          const kept = [...prompt, cur, ...draft.slice(0, keep)];
          expect(seq.tokens).toEqual(kept);
          const fresh = target.newSequence();
          await target.append([fresh], [kept]);
          const [a, b] = [await target.cacheOf(seq), await target.cacheOf(fresh)];
          expect(a.length).toBe(2 * c.layers);
          a.forEach((layer, i) => expect(Array.from(layer), `cache ${i}`).toEqual(Array.from(b[i]!)));
          // and the two go on identically
          const [x, y] = [
            await target.append([seq], [[v.next]], { logits: true }),
            await target.append([fresh], [[v.next]], { logits: true }),
          ];
          expect(Array.from(x.logits!.data)).toEqual(Array.from(y.logits!.data));
          target.release(seq);
          target.release(fresh);
        }
        expect(target.freeBlocks).toBe(128);
      } finally {
        target.dispose();
      }
    }
  }, 120_000);
});

describe('kiln generate --speculative', () => {
  const model = '../shared/models/stories260K.bin';
  async function kiln(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    const status = await main(args, { out: (t) => (stdout += t), err: (t) => (stderr += t) });
    return { status, stdout, stderr };
  }

  it('prints the same text as plain generation and the acceptance statistics', async () => {
    const base = ['generate', model, '--prompt', 'Once upon a time', '--max-tokens', '12', '--backend', 'reference'];
    const plain = await kiln(...base);
    expect(plain.status).toBe(0);
    // the model as its own draft model: every draft token is accepted
    const same = await kiln(...base, '--draft', model, '--draft-len', '3');
    expect(same.status, same.stderr).toBe(0);
    expect(same.stdout).toBe(plain.stdout);
    expect(same.stderr).toMatch(/\(speculative draft, .*\(100%\)/);
    for (const spec of ['ngram', 'self:2', 'ngram:2+self', 'self:int4', 'self:2:int8']) {
      const r = await kiln(...base, '--speculative', spec, '--draft-len', '3');
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toBe(plain.stdout);
      expect(r.stderr).toMatch(
        /12 tokens on reference \(speculative .*\): .* target passes \(.* per token\), \d+ of \d+ draft tokens accepted/,
      );
    }
  }, 300_000);

  it('fit-medusa fits heads that beat the bare LM head at their offsets; medusa drafting keeps the text', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-medusa-'));
    try {
      const text = join(dir, 'text.txt');
      writeFileSync(text, readFileSync('../shared/data/tinystories-calib.txt', 'utf8').slice(0, 8_000));
      const heads = join(dir, 'heads.json');
      const fit = await kiln(
        'fit-medusa',
        model,
        text,
        '--heads',
        '2',
        '--epochs',
        '2',
        '--out',
        heads,
        '--backend',
        'webgpu',
      );
      expect(fit.status, fit.stderr).toBe(0);
      const acc = [...fit.stdout.matchAll(/head (\d) \(token \+\d\): ([\d.]+)% before → ([\d.]+)%/g)];
      expect(acc.length).toBe(2);
      // head 1 learned its offset: well above the LM head's own guess for the token after next
      expect(Number(acc[0]![3])).toBeGreaterThan(Number(acc[0]![2]) + 3);
      const base = ['generate', model, '--prompt', 'Once upon a time', '--max-tokens', '12', '--backend', 'reference'];
      const plain = await kiln(...base);
      const r = await kiln(...base, '--speculative', `medusa:${heads}+ngram`, '--draft-len', '2');
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toBe(plain.stdout);
      expect(r.stderr).toMatch(/speculative medusa:.*\d+ of \d+ draft tokens accepted/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);

  it('rejects a bad --speculative, --draft-len or a missing --draft as usage errors', async () => {
    const base = ['generate', model, '--prompt', 'x', '--backend', 'reference'];
    for (const [args, msg] of [
      [['--speculative', 'medusa'], /medusa needs its heads file/],
      [['--speculative', 'medusa:/nonexistent.json'], /no such file/],
      [['--speculative', 'eagle'], /unknown --speculative 'eagle'/],
      [['--speculative', 'self:9'], /self:K wants an integer from 1 to 5/],
      [['--speculative', 'self:int3'], /expected self\[:K\]\[:int4\|:int8\]/],
      [['--speculative', 'self:int4:2'], /expected self/],
      [['--speculative', 'ngram', '--draft-len', '0'], /--draft-len wants an integer/],
      [['--speculative', 'draft'], /needs --draft MODEL/],
      [['--speculative', 'ngram', '--batch', '2'], /drop --batch/],
    ] as const) {
      const r = await kiln(...base, ...args);
      expect(r.status, args.join(' ')).not.toBe(0);
      expect(r.stderr).toMatch(msg);
    }
  }, 120_000);
});
