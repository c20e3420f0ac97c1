/**
 * Token-tree attention through the paged cache: `paged_attention` with a `tree_mask` (each run token sees the
 * keys before the run and its ancestors in the run), `kv_cache_move` (a tree path compacted to consecutive slots) and
 * `tree_accept` (greedy acceptance walked on the device).
 * The float64 reference is checked against attention computed here over the visible keys only; webgpu and cuda-emu
 * against the reference, with random trees, block sizes, GQA and scattered block tables.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import '../../ir/ops/index.js';
import { GraphBuilder } from '../../ir/builder.js';
import { KilnError } from '../../ir/errors.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { checkAgainstReference } from '../helpers/backends.js';
import { deviceBackends } from '../helpers/device-backends.js';

const backends = await deviceBackends();

interface Case {
  H: number;
  Hkv: number;
  D: number;
  bs: number;
  prefix: number;
  parents: number[];
  seed: number;
}

function rand(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
}

/** Ancestor-or-self bit words of a tree given by parents (−1: the root). */
function masks(parents: readonly number[]): number[] {
  const m: number[] = [];
  parents.forEach((p, i) => (m[i] = (p < 0 ? 0 : m[p]!) | (1 << i) | 0));
  return m;
}

function attentionGraph(k: Case, N: number, MB: number) {
  const T = k.parents.length;
  const b = new GraphBuilder('tree');
  const q = b.input('q', 'f32', [1, k.H, T, k.D]);
  const kc = b.input('kc', 'f32', [N, k.Hkv, k.bs, k.D]);
  const vc = b.input('vc', 'f32', [N, k.Hkv, k.bs, k.D]);
  const bt = b.input('bt', 'i64', [1, MB]);
  const pos = b.input('pos', 'i64', [1, T]);
  const mask = b.input('mask', 'i32', [1, T]);
  b.output(b.op('paged_attention', [q, kc, vc, bt, pos, mask]), 'y');
  return b.build();
}

function feedsFor(k: Case) {
  const T = k.parents.length;
  const L = k.prefix + T;
  const MB = Math.ceil(L / k.bs) + 1;
  const N = MB + 2;
  const r = rand(k.seed);
  // a scattered table: block j of the sequence in pool block N − 1 − j
  const table = Array.from({ length: MB }, (_, j) => (N - 1 - j + N) % N);
  const cache = () =>
    makeTensor('f32', [N, k.Hkv, k.bs, k.D], Float32Array.from({ length: N * k.Hkv * k.bs * k.D }, r));
  return {
    N,
    MB,
    feeds: {
      q: makeTensor('f32', [1, k.H, T, k.D], Float32Array.from({ length: k.H * T * k.D }, r)),
      kc: cache(),
      vc: cache(),
      bt: makeTensor('i64', [1, MB], table),
      pos: makeTensor(
        'i64',
        [1, T],
        Array.from({ length: T }, (_, t) => k.prefix + t),
      ),
      mask: makeTensor('i32', [1, T], masks(k.parents)),
    } as Record<string, Tensor>,
  };
}

const arbCase = fc
  .record({
    H: fc.constantFrom(1, 2, 4),
    ratio: fc.constantFrom(1, 2),
    D: fc.constantFrom(2, 4, 8),
    bs: fc.constantFrom(1, 2, 4),
    prefix: fc.integer({ min: 0, max: 9 }),
    parentSeeds: fc.array(fc.nat(), { minLength: 1, maxLength: 12 }),
    seed: fc.integer({ min: 1, max: 1e9 }),
  })
  .map((x): Case => ({
    H: x.H,
    Hkv: Math.max(1, x.H / x.ratio),
    D: x.D,
    bs: x.bs,
    prefix: x.prefix,
    parents: x.parentSeeds.map((s, i) => (i === 0 ? -1 : s % i)),
    seed: x.seed,
  }));

describe('paged_attention with a tree mask: reference', () => {
  it('each tree node attends to the prefix and its ancestors only (attention computed here over those keys)', () => {
    fc.assert(
      fc.property(arbCase, (k) => {
        const { feeds, N, MB } = feedsFor(k);
        const y = interpret(attentionGraph(k, N, MB), feeds)['y']!;
        const T = k.parents.length;
        const table = Array.from(feeds['bt']!.data, Number);
        const anc = masks(k.parents);
        for (let h = 0; h < k.H; h++) {
          const kvh = Math.floor(h / (k.H / k.Hkv));
          for (let t = 0; t < T; t++) {
            const seen: number[] = [];
            for (let j = 0; j < k.prefix; j++) seen.push(j);
            for (let i = 0; i <= t; i++) if ((anc[t]! >> i) & 1) seen.push(k.prefix + i);
            const row = (c: Tensor, j: number) => {
              const at = ((table[Math.floor(j / k.bs)]! * k.Hkv + kvh) * k.bs + (j % k.bs)) * k.D;
              return Array.from(c.data.subarray(at, at + k.D), Number);
            };
            const qr = Array.from(feeds['q']!.data.subarray((h * T + t) * k.D, (h * T + t + 1) * k.D), Number);
            const s = seen.map((j) => row(feeds['kc']!, j).reduce((a, x, d) => a + x * qr[d]!, 0) / Math.sqrt(k.D));
            const mx = Math.max(...s);
            const e = s.map((x) => Math.exp(x - mx));
            const z = e.reduce((a, x) => a + x, 0);
            for (let d = 0; d < k.D; d++) {
              const want = seen.reduce((a, j, n) => a + (e[n]! / z) * row(feeds['vc']!, j)[d]!, 0);
              expect(Number(y.data[(h * T + t) * k.D + d])).toBeCloseTo(want, 5);
            }
          }
        }
      }),
      { numRuns: 40 },
    );
  });

  it('tree_accept walks the argmax through each tree (by hand)', () => {
    const b = new GraphBuilder('accept');
    const [ids, tok, par] = ['ids', 'tok', 'par'].map((n) => b.input(n, 'i64', [2, 6]));
    b.output(b.op('tree_accept', [ids!, tok!, par!]), 'y');
    const y = interpret(b.build(), {
      // row 0: tree 9 → {5 → {6 → 7, 8}, 4}; argmax 5 at the root, 8 after node 1, 3 after node 4
      ids: makeTensor('i64', [2, 6], [5, 8, 0, 0, 3, 0, 2, 0, 0, 0, 0, 0]),
      tok: makeTensor('i64', [2, 6], [9, 5, 6, 7, 8, 4, 9, 5, 6, 7, 8, 4]),
      par: makeTensor('i64', [2, 6], [-1, 0, 1, 2, 1, 0, -1, 0, 1, 2, 1, 0]),
    })['y']!;
    // row 1: the root's argmax 2 is no child: nothing accepted, next 2
    expect(Array.from(y.data, Number)).toEqual([2, 1, 4, 3, -1, -1, -1, 0, 2, -1, -1, -1, -1, -1]);
  });

  it('kv_cache_move compacts a path in order; a move outside the table is a located error', () => {
    const b = new GraphBuilder('move');
    const cache = b.input('cache', 'f32', [3, 1, 2, 1]);
    const bt = b.input('bt', 'i64', [1, 3]);
    const src = b.input('src', 'i64', [1, 3]);
    const dst = b.input('dst', 'i64', [1, 3]);
    b.output(b.op('kv_cache_move', [cache, bt, src, dst]), 'y');
    const g = b.build();
    // a tree run at positions 2..5 whose path is nodes 0, 2, 3 (node 1 rejected): slots 2, 4, 5 → 2, 3, 4
    const feeds = {
      cache: makeTensor('f32', [3, 1, 2, 1], [20, 21, 40, 41, 0, 1]), // position p holds 10·block + slot
      bt: makeTensor('i64', [1, 3], [2, 0, 1]),
      src: makeTensor('i64', [1, 3], [2, 4, 5]),
      dst: makeTensor('i64', [1, 3], [2, 3, 4]),
    };
    // positions: 0 → 0, 1 → 1, 2 → 20, 3 → 21, 4 → 40, 5 → 41 (pool order: block 0 = [20, 21], 1 = [40, 41], 2 = [0, 1])
    // after: p2 = 20, p3 = old p4 = 40, p4 = old p5 = 41, p5 unchanged 41
    expect(Array.from(interpret(g, feeds)['y']!.data)).toEqual([20, 40, 41, 41, 0, 1]);
    const bad = { ...feeds, src: makeTensor('i64', [1, 3], [2, 4, 6]) };
    expect(() => interpret(g, bad)).toThrow(KilnError);
  });

  it('kv_cache_write with moves: the moves first, then the writes (a write may land on a moved source)', () => {
    const b = new GraphBuilder('write');
    const cache = b.input('cache', 'f32', [3, 1, 2, 1]);
    const nw = b.input('new', 'f32', [1, 1, 1, 1]);
    const bt = b.input('bt', 'i64', [1, 3]);
    const pos = b.input('pos', 'i64', [1, 1]);
    const src = b.input('src', 'i64', [1, 2]);
    const dst = b.input('dst', 'i64', [1, 2]);
    b.output(b.op('kv_cache_write', [cache, nw, bt, pos, src, dst]), 'y');
    const y = interpret(b.build(), {
      cache: makeTensor('f32', [3, 1, 2, 1], [20, 21, 40, 41, 0, 1]),
      new: makeTensor('f32', [1, 1, 1, 1], [99]),
      bt: makeTensor('i64', [1, 3], [2, 0, 1]),
      pos: makeTensor('i64', [1, 1], [3]),
      // path nodes at positions 3 and 5 move to 1 and 2; the next token is written at 3
      src: makeTensor('i64', [1, 2], [3, 5]),
      dst: makeTensor('i64', [1, 2], [1, 2]),
    })['y']!;
    // positions: 0 → 0, 1 → old 3 = 21, 2 → old 5 = 41, 3 → 99, 4 → 40, 5 → 41 (pool order: blocks 0, 1, 2)
    expect(Array.from(y.data)).toEqual([41, 99, 40, 41, 0, 21]);
  });
});

describe.each(backends)('%s: token-tree attention and compaction', (backend) => {
  it('tree_accept over random trees and argmaxes equals the reference', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          B: fc.integer({ min: 1, max: 3 }),
          parentSeeds: fc.array(fc.nat(), { minLength: 1, maxLength: 32 }),
          seed: fc.integer({ min: 1, max: 1e9 }),
        }),
        async (k) => {
          const T = k.parentSeeds.length;
          const r = rand(k.seed);
          const small = () => Math.floor((r() + 1) * 1.5); // tokens 0..2: many matches
          const b = new GraphBuilder('accept');
          const [ids, tok, par] = ['ids', 'tok', 'par'].map((n) => b.input(n, 'i64', [k.B, T]));
          b.output(b.op('tree_accept', [ids!, tok!, par!]), 'y');
          const parents = Array.from({ length: k.B }, () => k.parentSeeds.map((s, i) => (i === 0 ? -1 : s % i))).flat();
          const feeds = {
            ids: makeTensor('i64', [k.B, T], Array.from({ length: k.B * T }, small)),
            tok: makeTensor('i64', [k.B, T], Array.from({ length: k.B * T }, small)),
            par: makeTensor('i64', [k.B, T], parents),
          };
          expect(await checkAgainstReference(b.build(), feeds, { backend })).toEqual([]);
        },
      ),
      { numRuns: 6 },
    );
  }, 120_000);

  it('paged_attention with random tree masks equals the reference', async () => {
    await fc.assert(
      fc.asyncProperty(arbCase, async (k) => {
        const { feeds, N, MB } = feedsFor(k);
        expect(await checkAgainstReference(attentionGraph(k, N, MB), feeds, { backend })).toEqual([]);
      }),
      { numRuns: 8 },
    );
  }, 120_000);

  it('kv_cache_move (a random path) equals the reference', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          bs: fc.constantFrom(1, 2, 4),
          base: fc.integer({ min: 0, max: 6 }),
          keep: fc.array(fc.boolean(), { minLength: 1, maxLength: 10 }),
          seed: fc.integer({ min: 1, max: 1e9 }),
        }),
        async (k) => {
          const T = k.keep.length;
          const MB = Math.ceil((k.base + T) / k.bs);
          const N = MB + 1;
          const path = k.keep.flatMap((x, i) => (x ? [i] : []));
          const n = Math.max(1, path.length);
          const src = Array.from({ length: n }, (_, i) => (i < path.length ? k.base + path[i]! : -1));
          const dst = Array.from({ length: n }, (_, i) => (i < path.length ? k.base + i : -1));
          const b = new GraphBuilder('move');
          const cache = b.input('cache', 'f32', [N, 2, k.bs, 3]);
          const bt = b.input('bt', 'i64', [1, MB]);
          const s = b.input('src', 'i64', [1, n]);
          const d = b.input('dst', 'i64', [1, n]);
          b.output(b.op('kv_cache_move', [cache, bt, s, d]), 'y');
          const r = rand(k.seed);
          const feeds = {
            cache: makeTensor('f32', [N, 2, k.bs, 3], Float32Array.from({ length: N * 2 * k.bs * 3 }, r)),
            bt: makeTensor(
              'i64',
              [1, MB],
              Array.from({ length: MB }, (_, j) => N - 1 - j),
            ),
            src: makeTensor('i64', [1, n], src),
            dst: makeTensor('i64', [1, n], dst),
          };
          expect(await checkAgainstReference(b.build(), feeds, { backend })).toEqual([]);
        },
      ),
      { numRuns: 6 },
    );
  }, 120_000);
});
