/**
 * kv_cache_write and paged_attention: hand-worked references (block_size 2, two sequences with different block tables
 * and lengths, padding, GQA 2:1), type inference and its located errors, reference errors for positions past the block
 * table or table entries outside the pool, and a property tying both ops to the existing `attention` op: writing K/V
 * token by token into a shuffled paged cache and attending through it equals causal attention on contiguous K/V.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import { KilnError } from '../../ir/errors.js';
import type { DType } from '../../ir/dtype.js';
import '../../ir/index.js';
import { interpret } from '../../ir/interpret.js';
import { getOp, type Attrs } from '../../ir/registry.js';
import type { Dim } from '../../ir/shape.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { verifyError } from '../helpers/errors.js';
import { PROP_RUNS } from '../helpers/paths.js';

/** Run one op on concrete inputs through the interpreter. */
function run(op: string, ins: readonly Tensor[], attrs: Attrs = {}): Tensor {
  const b = new GraphBuilder('t');
  const feeds: Record<string, Tensor> = {};
  const vals = ins.map((t, i) => {
    feeds[`in${i}`] = t;
    return b.input(`in${i}`, t.dtype, t.shape);
  });
  b.output(b.op(op, vals, attrs), 'y');
  return interpret(b.build(), feeds)['y']!;
}

function infer(op: string, ins: readonly [DType, Dim[]][], attrs: Attrs = {}): { dtype: DType; shape: readonly Dim[] } {
  const b = new GraphBuilder('t');
  const v = b.op(
    op,
    ins.map(([dt, s], i) => b.input(`in${i}`, dt, s)),
    attrs,
  );
  return { dtype: v.type.dtype, shape: v.type.shape };
}

/** The located VerifyError of adding the node; checks it names `${op}_0` and contains `text`. */
function inferError(op: string, ins: readonly [DType, Dim[]][], text: string): void {
  const e = verifyError(() => infer(op, ins));
  expect(e.location.node).toBe(`${op}_0`);
  expect(e.message).toContain(text);
}

/** The KilnError the reference raises, naming the node and containing `text`. */
function refError(op: string, ins: readonly Tensor[], text: string): void {
  let err: unknown;
  try {
    run(op, ins);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(KilnError);
  expect((err as KilnError).code).toBe('runtime');
  expect((err as KilnError).location.node).toBe(`${op}_0`);
  expect((err as KilnError).message).toContain(`node '${op}_0'`);
  expect((err as KilnError).message).toContain(text);
}

const f64 = (shape: number[], data: number[]) => makeTensor('f64', shape, data);
const i64 = (shape: number[], data: number[]) => makeTensor('i64', shape, data);

function expectClose(got: Tensor, want: readonly number[], tol = 1e-12): void {
  expect(got.data.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const g = got.data[i]!;
    expect(Number.isNaN(g), `element ${i} is NaN`).toBe(false);
    expect(Math.abs(g - want[i]!), `element ${i}: ${g} vs ${want[i]}`).toBeLessThanOrEqual(
      tol * Math.max(1, Math.abs(want[i]!)),
    );
  }
}

describe('kv_cache_write reference', () => {
  it('block_size 2, two sequences with different block tables, a padding position', () => {
    // cache [3 blocks, 1 kv head, 2 slots, 1 dim]: slot (n, s) holds 100 + 10n + s
    const cache = f64([3, 1, 2, 1], [100, 101, 110, 111, 120, 121]);
    const nw = f64([2, 1, 2, 1], [1, 2, 3, 4]);
    const table = i64([2, 2], [2, 0, 1, 2]);
    // seq 0: p=1 → block table[0][0]=2 slot 1; p=2 → table[0][1]=0 slot 0. seq 1: p=0 → table[1][0]=1 slot 0; -1 pads
    const pos = i64([2, 2], [1, 2, 0, -1]);
    const y = run('kv_cache_write', [cache, nw, table, pos]);
    expect(y.shape).toEqual([3, 1, 2, 1]);
    expect(Array.from(y.data)).toEqual([2, 101, 3, 111, 120, 1]);
    // the input is not modified (the reference is functional)
    expect(Array.from(cache.data)).toEqual([100, 101, 110, 111, 120, 121]);
  });

  it('every kv head and head dim of a token is written; i32 indices; f16 rounds', () => {
    const cache = f64([2, 2, 1, 2], new Array<number>(8).fill(0));
    // new[0, h, 0, :]: head 0 [1, 2], head 1 [3, 4]; position 1 → block index 1 → table entry 0
    const nw = f64([1, 2, 1, 2], [1, 2, 3, 4]);
    const y = run('kv_cache_write', [cache, nw, makeTensor('i32', [1, 2], [1, 0]), makeTensor('i32', [1, 1], [1])]);
    expect(Array.from(y.data)).toEqual([1, 2, 3, 4, 0, 0, 0, 0]);
    const h = run('kv_cache_write', [
      makeTensor('f16', [1, 1, 2, 1], [0, 0]),
      makeTensor('f16', [1, 1, 1, 1], [1 / 3]),
      i64([1, 1], [0]),
      i64([1, 1], [1]),
    ]);
    expect(h.dtype).toBe('f16');
    expect(Array.from(h.data)).toEqual([0, 0.333251953125]); // 1/3 in f16: 0x3555
  });

  it('a position past the block table or a table entry outside the pool fails naming the value', () => {
    const cache = f64([3, 1, 2, 1], new Array<number>(6).fill(0));
    const nw = f64([1, 1, 1, 1], [5]);
    // position 4 with block_size 2 is in block 2; the table row has 2 entries
    refError('kv_cache_write', [cache, nw, i64([1, 2], [0, 1]), i64([1, 1], [4])], 'position 4');
    refError('kv_cache_write', [cache, nw, i64([1, 2], [0, 7]), i64([1, 1], [3])], '= 7');
    refError('kv_cache_write', [cache, nw, i64([1, 2], [-1, 1]), i64([1, 1], [0])], '= -1');
    // an entry past the written ones is never looked at
    expect(Array.from(run('kv_cache_write', [cache, nw, i64([1, 2], [2, -1]), i64([1, 1], [1])]).data)).toEqual([
      0, 0, 0, 0, 0, 5,
    ]);
  });
});

describe('paged_attention reference', () => {
  // 4 blocks of 2 slots, 1 kv head, head_dim 1. seq 0 uses blocks [2, 0], seq 1 blocks [1, 3].
  // keys of seq 0 at positions 0, 1, 2: slots (2,0), (2,1), (0,0) = 0, ln 2, ln 3; values 3, 6, 12.
  // seq 1 position 0: slot (1,0), key 5, value -2. Slots no query may read hold NaN.
  const N = NaN;
  const keys = f64([4, 1, 2, 1], [Math.log(3), N, 5, N, 0, Math.log(2), N, N]);
  const values = f64([4, 1, 2, 1], [12, N, -2, N, 3, 6, N, N]);
  const table = i64([2, 2], [2, 0, 1, 3]);
  const pos = i64([2, 2], [1, 2, 0, -1]);
  // GQA 2:1: head 0 has q = 1 (scores = keys, weights ∝ 1 : 2 : 3), head 1 has q = 0 (uniform weights)
  const q = f64([2, 2, 2, 1], [1, 1, 0, 0, 1, 1, 0, 0]);

  it('two sequences, GQA 2:1, a padding query: hand-worked softmax weights', () => {
    const y = run('paged_attention', [q, keys, values, table, pos], { scale: 1 });
    expect(y.shape).toEqual([2, 2, 2, 1]);
    expectClose(y, [
      (3 + 2 * 6) / 3, // b0 h0 p=1: weights 1:2
      (3 + 2 * 6 + 3 * 12) / 6, // b0 h0 p=2: weights 1:2:3
      (3 + 6) / 2, // b0 h1 p=1: mean
      (3 + 6 + 12) / 3, // b0 h1 p=2: mean
      -2, // b1 h0 p=0: the only key
      0, // b1 h0 padding
      -2,
      0,
    ]);
  });

  it('scale 0 means 1/sqrt(head_dim); an explicit scale multiplies the scores', () => {
    // head_dim 4, one sequence, keys at positions 0 and 1 in block 0 (block_size 2)
    // q·k0 = 2·ln2 · 1 ... choose q = (ln 4, 0, 0, 0), k0 = (0,...), k1 = (1, 0, 0, 0): scores 0 and ln 4
    const qq = f64([1, 1, 1, 4], [Math.log(4), 0, 0, 0]);
    const kc = f64([1, 1, 2, 4], [0, 0, 0, 0, 1, 0, 0, 0]);
    const vc = f64([1, 1, 2, 4], [1, 0, 0, 0, 0, 1, 0, 0]);
    const args = [qq, kc, vc, i64([1, 1], [0]), i64([1, 1], [1])];
    // default scale 1/2: logits 0, ln 2 → weights 1/3, 2/3
    expectClose(run('paged_attention', args), [1 / 3, 2 / 3, 0, 0]);
    // scale 1: logits 0, ln 4 → weights 1/5, 4/5
    expectClose(run('paged_attention', args, { scale: 1 }), [1 / 5, 4 / 5, 0, 0]);
  });

  it('large scores do not overflow (the max is subtracted)', () => {
    const kc = f64([1, 1, 2, 1], [1000, 1000 + Math.log(3)]);
    const vc = f64([1, 1, 2, 1], [4, 8]);
    const y = run('paged_attention', [f64([1, 1, 1, 1], [1]), kc, vc, i64([1, 1], [0]), i64([1, 1], [1])], {
      scale: 1,
    });
    expectClose(y, [(4 + 3 * 8) / 4], 1e-9);
  });

  it('a key position past the block table or a bad table entry fails; unused entries are not read', () => {
    const one = f64([1, 1, 1, 1], [1]);
    const kc = f64([2, 1, 2, 1], [0, 0, 0, 0]);
    // query at position 3 reads keys 0..3: block indices 0 and 1; the row has only 1 entry
    refError('paged_attention', [one, kc, kc, i64([1, 1], [0]), i64([1, 1], [3])], 'position 2');
    refError('paged_attention', [one, kc, kc, i64([1, 2], [0, 9]), i64([1, 1], [3])], '= 9');
    // position 1 needs block index 0 only: entry 1 (garbage) is never read; padding reads nothing at all
    const y = run('paged_attention', [one, kc, kc, i64([1, 2], [1, -7]), i64([1, 1], [1])]);
    expectClose(y, [0]);
    expectClose(run('paged_attention', [one, kc, kc, i64([1, 1], [99]), i64([1, 1], [-1])]), [0]);
  });
});

describe('type inference', () => {
  const cacheT: [DType, Dim[]] = ['f32', ['blocks', 2, 4, 8]];
  const newT: [DType, Dim[]] = ['f32', ['batch', 2, 'seq', 8]];
  const btT: [DType, Dim[]] = ['i64', ['batch', 'max_blocks']];
  const posT: [DType, Dim[]] = ['i64', ['batch', 'seq']];
  const qT: [DType, Dim[]] = ['f32', ['batch', 4, 'seq', 8]];

  it('registry: kv_cache_write runs in place in input 0, both opaque', () => {
    expect(getOp('kv_cache_write').inplace).toBe(0);
    expect(getOp('kv_cache_write').fusion).toBe('opaque');
    expect(getOp('paged_attention').inplace).toBeUndefined();
    expect(getOp('paged_attention').fusion).toBe('opaque');
  });

  it('output types: the cache for kv_cache_write, q for paged_attention (symbolic dims kept)', () => {
    expect(infer('kv_cache_write', [cacheT, newT, btT, posT])).toEqual({ dtype: 'f32', shape: ['blocks', 2, 4, 8] });
    expect(
      infer('kv_cache_write', [
        ['f16', [5, 1, 2, 3]],
        ['f16', [2, 1, 7, 3]],
        ['i32', [2, 4]],
        ['i32', [2, 7]],
      ]),
    ).toEqual({ dtype: 'f16', shape: [5, 1, 2, 3] });
    expect(infer('paged_attention', [qT, cacheT, cacheT, btT, posT])).toEqual({
      dtype: 'f32',
      shape: ['batch', 4, 'seq', 8],
    });
    expect(
      infer('paged_attention', [['f16', [1, 4, 3, 8]], ['f16', [9, 1, 16, 8]], ['f16', [9, 1, 16, 8]], btT, posT]),
    ).toEqual({ dtype: 'f16', shape: [1, 4, 3, 8] });
  });

  it('kv_cache_write: dtype, rank and shape errors name the node', () => {
    inferError('kv_cache_write', [['i32', [3, 2, 4, 8]], newT, btT, posT], 'cache must be a float tensor');
    inferError('kv_cache_write', [cacheT, ['f16', ['batch', 2, 'seq', 8]], btT, posT], 'new has dtype f16');
    inferError('kv_cache_write', [cacheT, newT, ['f32', ['batch', 4]], posT], 'block_table must be integer');
    inferError('kv_cache_write', [cacheT, newT, btT, ['f32', ['batch', 'seq']]], 'positions must be integer');
    inferError('kv_cache_write', [['f32', [3, 2, 8]], newT, btT, posT], 'rank 3');
    inferError('kv_cache_write', [cacheT, ['f32', [2, 'seq', 8]], btT, posT], 'new [batch, kv_heads, seq, head_dim]');
    inferError('kv_cache_write', [cacheT, newT, ['i64', [4]], posT], 'block_table [batch, max_blocks] must be 2-D');
    inferError('kv_cache_write', [cacheT, newT, btT, ['i64', ['seq']]], 'positions [batch, seq] must be 2-D');
    inferError('kv_cache_write', [cacheT, ['f32', ['batch', 3, 'seq', 8]], btT, posT], '3 kv heads');
    inferError('kv_cache_write', [cacheT, ['f32', ['batch', 2, 'seq', 4]], btT, posT], 'head_dim 4');
    inferError(
      'kv_cache_write',
      [cacheT, ['f32', [2, 2, 1, 8]], ['i64', [3, 4]], ['i64', [2, 1]]],
      'block_table batch 3',
    );
    inferError(
      'kv_cache_write',
      [cacheT, ['f32', [2, 2, 1, 8]], ['i64', [2, 4]], ['i64', [1, 1]]],
      'positions batch 1',
    );
    inferError(
      'kv_cache_write',
      [cacheT, ['f32', [2, 2, 3, 8]], ['i64', [2, 4]], ['i64', [2, 1]]],
      'positions length 1',
    );
    inferError('kv_cache_write', [['f32', [3, 2, 0, 8]], newT, btT, posT], 'block_size must be positive');
  });

  it('paged_attention: dtype, rank, GQA and shape errors name the node', () => {
    inferError('paged_attention', [['i32', ['batch', 4, 'seq', 8]], cacheT, cacheT, btT, posT], 'q must be a float');
    inferError('paged_attention', [qT, ['f16', ['blocks', 2, 4, 8]], cacheT, btT, posT], 'key_cache has dtype f16');
    inferError('paged_attention', [qT, cacheT, ['f16', ['blocks', 2, 4, 8]], btT, posT], 'value_cache has dtype f16');
    inferError('paged_attention', [qT, cacheT, ['f32', ['blocks', 2, 4, 4]], btT, posT], 'differ');
    inferError('paged_attention', [['f32', ['batch', 4, 8]], cacheT, cacheT, btT, posT], 'rank 3');
    inferError('paged_attention', [qT, ['f32', [2, 4, 8]], ['f32', [2, 4, 8]], btT, posT], 'key_cache');
    inferError('paged_attention', [['f32', ['batch', 3, 'seq', 8]], cacheT, cacheT, btT, posT], 'multiple of kv');
    inferError('paged_attention', [['f32', ['batch', 4, 'seq', 16]], cacheT, cacheT, btT, posT], 'head_dim 16');
    inferError('paged_attention', [qT, cacheT, cacheT, ['i64', ['batch']], posT], 'block_table');
    inferError('paged_attention', [qT, cacheT, cacheT, btT, ['f32', ['batch', 'seq']]], 'positions must be integer');
    inferError('paged_attention', [['f32', [2, 4, 3, 8]], cacheT, cacheT, btT, ['i64', [2, 5]]], 'positions length 5');
  });
});

/** Deterministic pseudo-random numbers for one case (fast-check picks the seed). */
function lcg(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('property: token-by-token writes + paged_attention = causal attention on contiguous K/V', () => {
  const arb = fc.record({
    B: fc.integer({ min: 1, max: 3 }),
    Hkv: fc.integer({ min: 1, max: 2 }),
    group: fc.constantFrom(1, 2, 4),
    D: fc.integer({ min: 1, max: 6 }),
    bs: fc.integer({ min: 1, max: 4 }),
    lengths: fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 3, maxLength: 3 }),
    /** Fraction of each sequence already in the cache before the queries (a prefix as past). */
    past: fc.array(fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), { minLength: 3, maxLength: 3 }),
    extraBlocks: fc.integer({ min: 0, max: 3 }),
    extraTable: fc.integer({ min: 0, max: 2 }),
    scale: fc.constantFrom(0, 0.7),
    seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  });

  it('holds for random sequences, block tables and GQA ratios', () => {
    fc.assert(
      fc.property(arb, (a) => {
        const rnd = lcg(a.seed);
        const { B, Hkv, D, bs } = a;
        const H = Hkv * a.group;
        const L = a.lengths.slice(0, B);
        const P = L.map((l, b) => Math.floor(a.past[b]! * l)); // queries are tokens P..L-1
        const Sq = L.map((l, b) => l - P[b]!);
        const maxL = Math.max(...L);
        const maxSq = Math.max(...Sq);
        const need = L.map((l) => Math.ceil(l / bs));
        const N = need.reduce((x, y) => x + y, 0) + a.extraBlocks;
        const MB = Math.max(...need) + a.extraTable;
        // blocks shuffled over the pool, none shared, some free; unused table entries are invalid ids
        const ids = Array.from({ length: N }, (_, i) => i);
        for (let i = N - 1; i > 0; i--) {
          const j = Math.floor(rnd() * (i + 1));
          [ids[i], ids[j]] = [ids[j]!, ids[i]!];
        }
        const table: number[] = [];
        let next = 0;
        for (let b = 0; b < B; b++) {
          for (let i = 0; i < MB; i++) table.push(i < need[b]! ? ids[next++]! : rnd() < 0.5 ? -1 : N + 3);
        }
        const r = () => rnd() * 2 - 1;
        // contiguous K/V [b][h][j][d] and queries [b][h][i][d] for the tokens P..L-1
        const K = L.map((l) => Array.from({ length: Hkv * l * D }, r));
        const V = L.map((l) => Array.from({ length: Hkv * l * D }, r));
        const Q = Sq.map((s) => Array.from({ length: H * s * D }, r));

        const g = new GraphBuilder('paged');
        const feeds: Record<string, Tensor> = {};
        const input = (name: string, t: Tensor) => {
          feeds[name] = t;
          return g.input(name, t.dtype, t.shape);
        };
        // the pool starts as NaN: a read of a slot no token wrote poisons the output
        const pool = makeTensor('f64', [N, Hkv, bs, D], new Array<number>(N * Hkv * bs * D).fill(NaN));
        let kc = input('k_pool', pool);
        let vc = input('v_pool', pool);
        const bt = input('table', makeTensor('i64', [B, MB], table));
        for (let j = 0; j < maxL; j++) {
          // token j of every sequence (padding where a sequence is shorter)
          const tok = (src: number[][]) =>
            makeTensor(
              'f64',
              [B, Hkv, 1, D],
              Array.from({ length: B * Hkv * D }, (_, i) => {
                const [b, h, d] = [Math.floor(i / (Hkv * D)), Math.floor(i / D) % Hkv, i % D];
                return j < L[b]! ? src[b]![(h * L[b]! + j) * D + d]! : 0;
              }),
            );
          const pos = input(
            `pos${j}`,
            makeTensor(
              'i64',
              [B, 1],
              L.map((l) => (j < l ? j : -1)),
            ),
          );
          kc = g.op('kv_cache_write', [kc, input(`k${j}`, tok(K)), bt, pos]);
          vc = g.op('kv_cache_write', [vc, input(`v${j}`, tok(V)), bt, pos]);
        }
        const qT = makeTensor(
          'f64',
          [B, H, maxSq, D],
          Array.from({ length: B * H * maxSq * D }, (_, i) => {
            const [b, h, t, d] = [
              Math.floor(i / (H * maxSq * D)),
              Math.floor(i / (maxSq * D)) % H,
              Math.floor(i / D) % maxSq,
              i % D,
            ];
            return t < Sq[b]! ? Q[b]![(h * Sq[b]! + t) * D + d]! : 0;
          }),
        );
        const qpos = makeTensor(
          'i64',
          [B, maxSq],
          Array.from({ length: B * maxSq }, (_, i) => {
            const [b, t] = [Math.floor(i / maxSq), i % maxSq];
            return t < Sq[b]! ? P[b]! + t : -1;
          }),
        );
        const y = g.op('paged_attention', [input('q', qT), kc, vc, bt, input('qpos', qpos)], { scale: a.scale });
        g.output(y, 'y');
        const got = interpret(g.build(), feeds)['y']!;

        for (let b = 0; b < B; b++) {
          // the oracle: attention of this sequence alone, tokens < P as the past, causal
          const sub = (src: number[], from: number, to: number) => {
            const out: number[] = [];
            for (let h = 0; h < Hkv; h++) out.push(...src.slice((h * L[b]! + from) * D, (h * L[b]! + to) * D));
            return makeTensor('f64', [1, Hkv, to - from, D], out);
          };
          const ins: (Tensor | null)[] = [
            makeTensor('f64', [1, H, Sq[b]!, D], Q[b]!),
            sub(K[b]!, P[b]!, L[b]!),
            sub(V[b]!, P[b]!, L[b]!),
            null,
            P[b]! > 0 ? sub(K[b]!, 0, P[b]!) : null,
            P[b]! > 0 ? sub(V[b]!, 0, P[b]!) : null,
          ];
          const ob = new GraphBuilder('oracle');
          const of: Record<string, Tensor> = {};
          const vals = ins.map((t, i) => {
            if (!t) return null;
            of[`in${i}`] = t;
            return ob.input(`in${i}`, t.dtype, t.shape);
          });
          const attrs: Attrs = a.scale ? { is_causal: true, scale: a.scale } : { is_causal: true };
          ob.output(ob.opN('attention', vals, attrs, 1)[0]!, 'y');
          const want = interpret(ob.build(), of)['y']!;
          for (let h = 0; h < H; h++) {
            for (let t = 0; t < maxSq; t++) {
              for (let d = 0; d < D; d++) {
                const gv = got.data[((b * H + h) * maxSq + t) * D + d]!;
                const wv = t < Sq[b]! ? want.data[(h * Sq[b]! + t) * D + d]! : 0; // padding rows are zeros
                expect(Math.abs(gv - wv), `b${b} h${h} t${t} d${d}: ${gv} vs ${wv}`).toBeLessThanOrEqual(1e-12);
              }
            }
          }
        }
      }),
      { numRuns: Math.max(20, PROP_RUNS) },
    );
  });
});
