/**
 * Token trees (SpecInfer): the trie merge of several sources' proposals, the ancestor masks, greedy and multi-step
 * sampling acceptance by hand; SpecInfer's acceptance is distributed as the target (chi-square, host-only and through
 * a real model on the reference backend); greedy tree speculation equals plain greedy decoding for every draft
 * source and merged trees (property over random small LLaMAs); after a tree with rejected nodes the cache — moved on
 * the device at the next run — equals that of a run that only ever saw the accepted tokens.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import '../../ir/ops/index.js';
import { KilnError } from '../../ir/errors.js';
import type { LlamaConfig, WeightSource } from '../../src/models/config.js';
import { buildLlama } from '../../src/models/llama.js';
import { PagedLanguageModel } from '../../src/generate/paged.js';
import {
  generate,
  mergeProposals,
  ModelDraft,
  NgramDraft,
  SpeculativeDecoder,
  verifyTree,
  type DraftSource,
} from '../../src/generate/speculative.js';
import { greedyAccept, sampleAccept, TokenTree } from '../../src/generate/tree.js';
import { lmHeadOf, MedusaDraft, MedusaHeads, medusaTreeShape } from '../../src/generate/medusa.js';
import { rng } from '../../src/generate/sampling.js';
import { llamaForward, randomLlamaWeights } from '../helpers/lm-reference.js';
import { PROP_RUNS } from '../helpers/paths.js';

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
  return PagedLanguageModel.create({ graph, config: c }, { backend: 'reference', numBlocks: 128, hidden, tree: true });
}

function randomMedusa(c: LlamaConfig, w: WeightSource, heads: number, seed: number): MedusaDraft {
  const lm = lmHeadOf(buildLlama(c, w, { paged: { blockSize: 2 } }));
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
  return new MedusaDraft(h, { topK: 2 });
}

/** Upper tail of the chi-square distribution (regularized upper incomplete gamma Q(df/2, x/2)). */
function chiSquareP(x: number, df: number): number {
  const a = df / 2;
  const z = x / 2;
  const lnGamma = (s: number): number => {
    // Stirling series after shifting s up past 8
    let shift = 0;
    while (s < 8) shift -= Math.log(s++);
    return shift + (s - 0.5) * Math.log(s) - s + 0.5 * Math.log(2 * Math.PI) + 1 / (12 * s) - 1 / (360 * s ** 3);
  };
  if (z < a + 1) {
    // series for the lower part
    let term = 1 / a;
    let sum = term;
    for (let n = 1; n < 500; n++) {
      term *= z / (a + n);
      sum += term;
    }
    return 1 - Math.exp(-z + a * Math.log(z) - lnGamma(a)) * sum;
  }
  // continued fraction (Lentz) for the upper part
  let b = z + 1 - a;
  let cc = 1e300;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 500; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    d = Math.abs(d) < 1e-300 ? 1e-300 : d;
    cc = b + an / cc;
    cc = Math.abs(cc) < 1e-300 ? 1e-300 : cc;
    d = 1 / d;
    h *= d * cc;
  }
  return Math.exp(-z + a * Math.log(z) - lnGamma(a)) * h;
}

function chiSquare(counts: readonly number[], expected: readonly number[], N: number): { chi: number; df: number } {
  let chi = 0;
  let bins = 0;
  expected.forEach((e, i) => {
    if (e === 0) {
      expect(counts[i], `bin ${i} has probability 0`).toBe(0);
      return;
    }
    bins++;
    chi += (counts[i]! - N * e) ** 2 / (N * e);
  });
  return { chi, df: bins - 1 };
}

describe('token trees by hand', () => {
  it('merges proposals as a trie (sampled ones on branches of their own); masks are ancestor bits', () => {
    const t = new TokenTree(9);
    t.addChain([5, 6, 7]);
    t.addChain([5, 8]);
    t.addChain([4]);
    t.addChain([5, 6], [new Float64Array(10).fill(0.1), new Float64Array(10).fill(0.1)]);
    expect(t.tokens).toEqual([9, 5, 6, 7, 8, 4, 5, 6]);
    expect(t.parents).toEqual([-1, 0, 1, 2, 1, 0, 0, 6]);
    expect(t.depths).toEqual([0, 1, 2, 3, 2, 1, 1, 2]);
    expect(t.children(1)).toEqual([2, 4]);
    expect(t.pathTo(3)).toEqual([1, 2, 3]);
    expect(t.masks()).toEqual([0b1, 0b11, 0b111, 0b1111, 0b10011, 0b100001, 0b1000001, 0b11000001]);
    // a tree merged into another: the shared prefix is not repeated
    const u = new TokenTree(9);
    u.addChain([5, 8, 2]);
    t.addTree(u);
    expect(t.tokens.slice(8)).toEqual([2]);
    expect(t.parents[8]).toBe(4);
    // capacity: 32 nodes, a typed error beyond
    const full = new TokenTree(0, 3);
    expect(full.addChain([1, 2, 3, 4])).toEqual([1, 2]);
    expect(() => full.addChild(0, 7)).toThrow(KilnError);
    expect(() => new TokenTree(0, 33)).toThrow(/1…32 nodes/);
    expect(() =>
      TokenTree.from(new Array<number>(33).fill(0), [-1, ...Array.from({ length: 32 }, (_, i) => i)]),
    ).toThrow(KilnError);
    expect(() => TokenTree.from([1, 2], [-1, 1])).toThrow(/not an earlier node/);
  });

  it('greedy acceptance follows the argmax through the tree; the argmax where it leaves the tree comes next', () => {
    const t = TokenTree.from([9, 5, 6, 7, 8, 4], [-1, 0, 1, 2, 1, 0]);
    // argmax per node: root → 5 (node 1), node 1 → 8 (node 4), node 4 → 3 (no child)
    const am = [5, 8, 0, 0, 3, 0];
    expect(greedyAccept(t, (u) => am[u]!)).toEqual({ path: [1, 4], next: 3 });
    // the root's argmax not in the tree: nothing accepted
    expect(greedyAccept(t, () => 2)).toEqual({ path: [], next: 2 });
    // a leaf reached: its argmax is the bonus token
    const am2 = [5, 6, 7, 1, 0, 0];
    expect(greedyAccept(t, (u) => am2[u]!)).toEqual({ path: [1, 2, 3], next: 1 });
  });

  it('multi-step sampling tries the children in turn against the residual', () => {
    const t = TokenTree.from([9, 0, 1], [-1, 0, 0]);
    const p = Float64Array.from([0.5, 0.3, 0.2]);
    const seq = (xs: number[]) => () => xs.shift()!;
    // child token 0: accepted with p(0) = 0.5; 0.6 rejects it; the residual is [0, 0.6, 0.4]: 0.5 accepts token 1
    expect(sampleAccept(t, () => p, seq([0.6, 0.5, 0.1]))).toEqual({ path: [2], next: 0 });
    // 0.7 rejects token 1 too: the next token is drawn from [0, 0, 1]
    expect(sampleAccept(t, () => p, seq([0.6, 0.7, 0.3]))).toEqual({ path: [], next: 2 });
    // accepted at once, then a leaf: the bonus is drawn from the leaf's p (0.1 → token 0)
    expect(sampleAccept(t, () => p, seq([0.1, 0.1]))).toEqual({ path: [1], next: 0 });
  });

  it('SpecInfer sampling over a mixed tree emits the target distribution (chi-square)', () => {
    const V = 4;
    const rand = rng(123);
    // target: p(a) at the root, p(b | a) below
    const p0 = Float64Array.from([0.1, 0.4, 0.3, 0.2]);
    const p1 = (a: number) => {
      const x = Float64Array.from({ length: V }, (_, b) => 1 + ((a + 3 * b) % V));
      const z = x.reduce((s, y) => s + y, 0);
      return x.map((y) => y / z);
    };
    // draft distributions for the sampled children
    const q = Float64Array.from([0.4, 0.1, 0.1, 0.4]);
    const N = 20000;
    const counts = new Array<number>(V * V).fill(0);
    for (let n = 0; n < N; n++) {
      // deterministic children 1 and 3 (with grandchildren 2 under 1), and two sampled ones drawn from q
      const t = new TokenTree(0);
      t.addChain([1, 2]);
      t.addChain([3]);
      const draw = () => {
        let r = rand();
        for (let v = 0; v < V; v++) if ((r -= q[v]!) < 0) return v;
        return V - 1;
      };
      t.addChain([draw(), draw()], [q, q]);
      t.addChain([draw()], [q]);
      const dist = (u: number) => (u === 0 ? p0 : p1(t.tokens[u]!));
      const v = sampleAccept(t, dist, rand);
      const toks = [...v.path.map((u) => t.tokens[u]!), v.next];
      // the second token: from the tree or drawn after the first
      const second =
        toks.length > 1
          ? toks[1]!
          : (() => {
              const pb = p1(toks[0]!);
              let r = rand();
              for (let b = 0; b < V; b++) if ((r -= pb[b]!) < 0) return b;
              return V - 1;
            })();
      counts[toks[0]! * V + second]!++;
    }
    const expected = Array.from({ length: V * V }, (_, i) => p0[Math.floor(i / V)]! * p1(Math.floor(i / V))[i % V]!);
    const { chi, df } = chiSquare(counts, expected, N);
    const pv = chiSquareP(chi, df);
    expect(chiSquareP(7.815, 3)).toBeCloseTo(0.05, 3);
    expect(pv, `χ² = ${chi.toFixed(2)}, ${df} df, p = ${pv.toExponential(3)}`).toBeGreaterThan(1e-3);
  });

  it('a Medusa tree shape takes the likeliest rank paths, prefixes first', () => {
    const shape = medusaTreeShape(
      [
        [0.6, 0.2, 0.1],
        [0.5, 0.2, 0.1],
      ],
      6,
    );
    // products: [0] .6, [0,0] .3, [1] .2, [0,1] .12, [2] .1 ([1,0] .1 ties with [2]: shorter first)
    expect(shape).toEqual([[0], [0, 0], [1], [0, 1], [2]]);
  });
});

describe('token-tree speculation: greedy exactness', () => {
  it('equals plain greedy decoding for n-gram, self, Medusa top-k trees and merged trees', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          layers: fc.constantFrom(2, 3),
          heads: fc.constantFrom(2, 4),
          kvRatio: fc.constantFrom(1, 2),
          vocab: fc.constantFrom(5, 11, 17),
          blockSize: fc.constantFrom(1, 2, 4),
          prompt: fc.array(fc.nat(), { minLength: 1, maxLength: 8 }),
          nodes: fc.integer({ min: 2, max: 32 }),
          depth: fc.integer({ min: 1, max: 6 }),
          dynamic: fc.boolean(),
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
          const target = await paged(c, w, k.blockSize, true);
          const self = await ModelDraft.layerSkip(c, w, 1, { backend: 'reference', blockSize: k.blockSize });
          const medusa = randomMedusa(c, w, 3, k.seed + 2);
          const sources: [string, DraftSource | DraftSource[]][] = [
            ['ngram', new NgramDraft()],
            ['self', self],
            ['medusa', medusa],
            ['ngram+medusa+self', [new NgramDraft({ maxNgram: 2 }), medusa, self]],
          ];
          try {
            const want: number[] = [];
            for await (const { token } of target.generateBatch([prompt], { maxTokens: 14 })) want.push(token);
            for (const [name, draft] of sources) {
              const tree = { nodes: k.nodes, maxNodes: Math.max(k.nodes, 16), depth: k.depth, dynamic: k.dynamic };
              const { tokens, stats } = await generate(target, prompt, { maxTokens: 14, speculative: { draft, tree } });
              expect(tokens, name).toEqual(want);
              expect(stats.generatedTokens).toBe(want.length);
              expect(target.freeBlocks, `${name}: blocks given back`).toBe(128);
            }
          } finally {
            self.dispose();
            target.dispose();
          }
        },
      ),
      { numRuns: Math.max(5, Math.round(PROP_RUNS / 6)) },
    );
  }, 600_000);
});

describe('token-tree speculation: sampling', () => {
  it('the first two tokens of merged-tree samples (n-gram + sampled self + Medusa top-k) follow the target', async () => {
    const V = 5;
    const c = config({ vocab: V, dim: 8, heads: 2, kvHeads: 2, layers: 2 });
    const w = randomLlamaWeights(c, 7);
    const prompt = [1, 2, 1];
    const temperature = 0.8;
    const dist = (row: Float64Array) => {
      const m = Math.max(...row);
      const e = Array.from(row, (x) => Math.exp((x - m) / temperature));
      const z = e.reduce((a, b) => a + b, 0);
      return e.map((x) => x / z);
    };
    // pairs (t0, t1): the tree's first level; pairs (t1, t2) after the likeliest t0: both levels of one tree
    const first = dist(llamaForward(c, w, prompt).at(-1)!);
    const expected: number[] = [];
    for (let a = 0; a < V; a++) {
      const second = dist(llamaForward(c, w, [...prompt, a]).at(-1)!);
      for (let b = 0; b < V; b++) expected.push(first[a]! * second[b]!);
    }
    const a0 = first.indexOf(Math.max(...first));
    const after = dist(llamaForward(c, w, [...prompt, a0]).at(-1)!);
    const expected2: number[] = [];
    for (let b = 0; b < V; b++) {
      const third = dist(llamaForward(c, w, [...prompt, a0, b]).at(-1)!);
      for (let d = 0; d < V; d++) expected2.push(after[b]! * third[d]!);
    }
    const counts2 = new Array<number>(V * V).fill(0);
    let n2 = 0;
    const target = await paged(c, w, 2, true);
    const self = await ModelDraft.layerSkip(c, w, 1, { backend: 'reference', blockSize: 2 });
    const medusa = randomMedusa(c, w, 2, 5);
    const N = 2000;
    const counts = new Array<number>(V * V).fill(0);
    let accepted = 0;
    let drafted = 0;
    try {
      const dec = new SpeculativeDecoder(target, {
        draft: [new NgramDraft({ maxNgram: 2 }), self, medusa],
        tree: { nodes: 8, depth: 2, dynamic: false },
      });
      for (let seed = 0; seed < N; seed++) {
        const got: number[] = [];
        for await (const t of dec.generate(prompt, { maxTokens: 4, temperature, seed })) got.push(t);
        counts[got[0]! * V + got[1]!]!++;
        if (got[0] === a0) {
          counts2[got[1]! * V + got[2]!]!++;
          n2++;
        }
        accepted += dec.stats!.acceptedTokens;
        drafted += dec.stats!.draftedTokens;
      }
    } finally {
      self.dispose();
      target.dispose();
    }
    expect(drafted).toBeGreaterThan(N);
    expect(accepted).toBeGreaterThan(0);
    for (const [cnt, exp, n] of [
      [counts, expected, N],
      [counts2, expected2, n2],
    ] as const) {
      const { chi, df } = chiSquare(cnt, exp, n);
      const pv = chiSquareP(chi, df);
      expect(pv, `χ² = ${chi.toFixed(2)}, ${df} df, p = ${pv.toExponential(3)}`).toBeGreaterThan(1e-3);
    }
  }, 120_000);
});

describe('token-tree speculation: compaction', () => {
  it('after a tree with rejected nodes the cache equals that of a run that saw only the accepted tokens', async () => {
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
        const g3 = await greedyAfter([...prompt, cur, g1, g2]);
        const no = (t: number) => (t + 1) % c.vocab;
        // a tree where the right path is nodes 2 → 4 → 6, with wrong siblings before each (so the path moves)
        const tree = new TokenTree(cur);
        tree.addChain([no(g1), 0]); // a wrong first token (and a child of it)
        const n2 = tree.addChild(0, g1);
        tree.addChild(n2, no(g2));
        const n4 = tree.addChild(n2, g2);
        tree.addChild(n4, no(g3));
        const n6 = tree.addChild(n4, g3);
        const seq = target.newSequence();
        await target.append([seq], [prompt]);
        const v = await verifyTree(target, seq, tree, {}, () => 0.5);
        expect(v.path).toEqual([n2, n4, n6]);
        expect(v.tokens).toEqual([g1, g2, g3]);
        const kept = [...prompt, cur, g1, g2, g3];
        expect(seq.tokens).toEqual(kept);
        expect(seq.moves.length).toBeGreaterThan(0);
        const fresh = target.newSequence();
        await target.append([fresh], [kept]);
        const same = async () => {
          const [a, b] = [await target.cacheOf(seq), await target.cacheOf(fresh)];
          a.forEach((layer, i) => expect(Array.from(layer), `cache ${i}`).toEqual(Array.from(b[i]!)));
        };
        await same(); // pending moves read at their sources
        // the next run moves the slots on the device; both go on identically
        const [x, y] = [
          await target.append([seq], [[v.next]], { logits: true }),
          await target.append([fresh], [[v.next]], { logits: true }),
        ];
        expect(seq.moves).toEqual([]);
        await same();
        expect(Array.from(x.logits!.data)).toEqual(Array.from(y.logits!.data));
        target.release(seq);
        target.release(fresh);
        expect(target.freeBlocks).toBe(128);
      } finally {
        target.dispose();
      }
    }
  }, 120_000);

  it('a tree on a model made without tree, or past 32 nodes, is a typed error; merged proposals stay within size', async () => {
    const c = config({ vocab: 11 });
    const w = randomLlamaWeights(c, 1);
    const plain = await PagedLanguageModel.create(
      { graph: buildLlama(c, w, { paged: { blockSize: 2 } }), config: c },
      { backend: 'reference', numBlocks: 16 },
    );
    const seq = plain.newSequence();
    await expect(plain.append([seq], [[1, 2]], { tree: [[-1, 0]] })).rejects.toThrow(/create with tree/);
    plain.dispose();
    const tree = await paged(c, w, 2);
    const s2 = tree.newSequence();
    await expect(
      tree.append([s2], [new Array<number>(33).fill(1)], { tree: [[-1, ...Array.from({ length: 32 }, (_, i) => i)]] }),
    ).rejects.toThrow(KilnError);
    const merged = await mergeProposals(
      [new NgramDraft(), new NgramDraft({ maxNgram: 1 })],
      [1, 2, 3, 1, 2, 3, 1],
      4,
      6,
      {},
      () => 0,
    );
    expect(merged.size).toBeLessThanOrEqual(4);
    expect(merged.tokens.slice(0, 3)).toEqual([1, 2, 3]);
    tree.dispose();
  });
});

describe('kiln generate --speculative tree', () => {
  it('prints the same text as plain generation and the tree statistics', async () => {
    const { main } = await import('../../src/cli.js');
    const kiln = async (...args: string[]) => {
      let stdout = '';
      let stderr = '';
      const status = await main(args, { out: (t) => (stdout += t), err: (t) => (stderr += t) });
      return { status, stdout, stderr };
    };
    const base = ['generate', '../shared/models/stories260K.bin', '--prompt', 'Once upon a time', '--max-tokens', '12'];
    const plain = await kiln(...base, '--backend', 'reference');
    expect(plain.status, plain.stderr).toBe(0);
    for (const spec of ['tree', 'tree:ngram:2+self:2']) {
      const r = await kiln(...base, '--backend', 'reference', '--speculative', spec);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toBe(plain.stdout);
      expect(r.stderr).toMatch(
        /12 tokens on reference \(speculative tree.*, [\d.]+ tree nodes per pass\): .* accepted/,
      );
    }
    const bad = await kiln(...base, '--speculative', 'tree:nope');
    expect(bad.status).not.toBe(0);
  }, 120_000);
});
