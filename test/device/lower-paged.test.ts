/**
 * kv_cache_write and paged_attention lowered and run on every device backend (webgpu, cuda-emu), compared with the
 * float64 reference with outputs poisoned first: random geometries (head_dim 8 / 64 / 128, block_size 1 / 4 / 16, GQA
 * 1 / 2 / 4, hundreds to thousands of keys, padding positions, shuffled block tables with invalid unused entries),
 * kv_cache_write in place and through the copy, the two chained as a model layer chains them, f16, and out-of-range
 * block indices as typed errors naming the node on every backend (the reference too).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lowerNode, DEFAULT_CAPS } from '../../codegen/lower/index.js';
import { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import { KilnError } from '../../ir/errors.js';
import type { Graph, Value } from '../../ir/graph.js';
import '../../ir/index.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { compile, type BackendName } from '../../src/session.js';
import { checkAgainstReference } from '../helpers/backends.js';
import { deviceBackends } from '../helpers/device-backends.js';
import { PROP_RUNS } from '../helpers/paths.js';

const backends: BackendName[] = await deviceBackends();

/** Deterministic pseudo-random numbers (cases are reproducible from their seed). */
function lcg(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface Spec {
  B: number;
  Hkv: number;
  group: number;
  D: number;
  bs: number;
  /** Keys held per sequence (its queries see positions below this). */
  lens: number[];
  /** Query / new-token rows per sequence (the positions tensor's seq). */
  S: number;
  /** Probability of a padding (-1) position. */
  pad?: number;
  dtype?: DType;
  seed: number;
}

interface Case {
  pool: () => Tensor;
  table: Tensor;
  /** Query positions: random below each sequence's length, the last row at length - 1. */
  qpos: Tensor;
  /** Distinct write positions per sequence (so no two tokens share a slot). */
  wpos: Tensor;
  q: Tensor;
  nw: Tensor;
  N: number;
}

function makeCase(s: Spec): Case {
  const rnd = lcg(s.seed);
  const dt = s.dtype ?? 'f32';
  const { B, Hkv, D, bs, S } = s;
  const H = Hkv * s.group;
  const need = s.lens.map((l) => Math.ceil(l / bs));
  const N = need.reduce((a, b) => a + b, 0) + 2; // two blocks stay free
  const MB = Math.max(...need) + 1;
  const ids = Array.from({ length: N }, (_, i) => i);
  for (let i = N - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [ids[i], ids[j]] = [ids[j]!, ids[i]!];
  }
  const table: number[] = [];
  let next = 0;
  // unused entries are invalid: reading one would raise
  for (let b = 0; b < B; b++) for (let i = 0; i < MB; i++) table.push(i < need[b]! ? ids[next++]! : -1);
  const pad = s.pad ?? 0;
  const qpos: number[] = [];
  const wpos: number[] = [];
  for (let b = 0; b < B; b++) {
    const L = s.lens[b]!;
    // distinct write slots: S positions drawn without replacement from 0..L-1
    const perm = Array.from({ length: L }, (_, i) => i);
    for (let i = L - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [perm[i], perm[j]] = [perm[j]!, perm[i]!];
    }
    for (let t = 0; t < S; t++) {
      const isPad = rnd() < pad;
      qpos.push(isPad ? -1 : t === S - 1 ? L - 1 : Math.floor(rnd() * L));
      wpos.push(isPad || t >= L ? -1 : perm[t]!);
    }
  }
  const rand = (shape: number[]) =>
    makeTensor(
      dt,
      shape,
      Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rnd() * 2 - 1),
    );
  const poolShape = [N, Hkv, bs, D];
  return {
    pool: () => rand(poolShape),
    table: makeTensor('i64', [B, MB], table),
    qpos: makeTensor('i64', [B, S], qpos),
    wpos: makeTensor('i64', [B, S], wpos),
    // queries scaled up so scores spread (the running max matters)
    q: makeTensor(
      dt,
      [B, H, S, D],
      Array.from(rand([B, H, S, D]).data, (x) => x * 3),
    ),
    nw: rand([B, Hkv, S, D]),
    N,
  };
}

/** A graph of one op with the given inputs (a name starting with `w:` becomes a weight, i.e. a constant). */
function graphOf(op: string, ins: [string, Tensor][], attrs = {}): { g: Graph; feeds: Record<string, Tensor> } {
  const b = new GraphBuilder('t');
  const feeds: Record<string, Tensor> = {};
  const vals: Value[] = ins.map(([name, t]) => {
    if (name.startsWith('w:')) return b.weight(name.slice(2), t);
    feeds[name] = t;
    return b.input(name, t.dtype, t.shape);
  });
  b.output(b.op(op, vals, attrs), 'y');
  return { g: b.build(), feeds };
}

describe('kv_cache_write lowering: in place only the scatter, otherwise copy then scatter', () => {
  const ctx = (inplace: boolean) => ({
    caps: DEFAULT_CAPS,
    node: 'w',
    op: 'kv_cache_write',
    attrs: {},
    inputs: [
      { dtype: 'f32' as DType, shape: [4, 2, 4, 8] },
      { dtype: 'f32' as DType, shape: [2, 2, 3, 8] },
      { dtype: 'i64' as DType, shape: [2, 2] },
      { dtype: 'i64' as DType, shape: [2, 3] },
    ],
    outputs: [{ dtype: 'f32' as DType, shape: [4, 2, 4, 8] }],
    inplace,
  });
  it('binds the cache (input 0) only in the copy', () => {
    const inplace = lowerNode(ctx(true));
    expect(inplace).toHaveLength(1);
    expect(inplace[0]!.bindings.some((b) => b.kind === 'in' && b.index === 0)).toBe(false);
    expect(inplace[0]!.bindings.filter((b) => b.kind === 'out')).toHaveLength(1);
    expect(inplace[0]!.errSlot).toBeDefined();
    const copy = lowerNode(ctx(false));
    expect(copy).toHaveLength(2);
    expect(copy[0]!.kernel.name).toMatch(/^k_kv_cache_copy_/);
    expect(copy[0]!.bindings).toEqual([
      { kind: 'in', index: 0 },
      { kind: 'out', index: 0 },
    ]);
    expect(copy[1]!.kernel.name).toBe(inplace[0]!.kernel.name);
  });
});

describe.each(backends)('%s: kv_cache_write', (backend) => {
  async function checkWrite(s: Spec, inplace: boolean): Promise<void> {
    const c = makeCase(s);
    // a weight (constant) cache cannot be overwritten: the executor gives the node a fresh output (the copy path)
    const { g, feeds } = graphOf('kv_cache_write', [
      [inplace ? 'cache' : 'w:cache', c.pool()],
      ['new', c.nw],
      ['table', c.table],
      ['pos', c.wpos],
    ]);
    const session = await compile(g, { backend, poison: true });
    try {
      const mism = await checkAgainstReference(g, feeds, { backend });
      expect(mism, JSON.stringify(s)).toEqual([]);
      await session.run(feeds);
      const copied = session.kernels().some((k) => k.name.startsWith('k_kv_cache_copy_'));
      expect(copied, 'copy kernel present').toBe(!inplace);
    } finally {
      session.dispose();
    }
  }

  it('in place and through the copy; block sizes 1 / 4 / 16; padding; f16', async () => {
    for (const inplace of [true, false]) {
      await checkWrite({ B: 2, Hkv: 2, group: 1, D: 8, bs: 4, lens: [7, 3], S: 3, pad: 0.2, seed: 1 }, inplace);
      await checkWrite({ B: 3, Hkv: 1, group: 1, D: 64, bs: 1, lens: [5, 9, 2], S: 2, seed: 2 }, inplace);
      await checkWrite({ B: 1, Hkv: 4, group: 1, D: 128, bs: 16, lens: [300], S: 17, pad: 0.1, seed: 3 }, inplace);
      await checkWrite({ B: 2, Hkv: 2, group: 1, D: 8, bs: 4, lens: [9, 4], S: 4, dtype: 'f16', seed: 4 }, inplace);
    }
  }, 120_000);
});

describe.each(backends)('%s: paged_attention', (backend) => {
  async function checkAttn(s: Spec, scale = 0): Promise<void> {
    const c = makeCase(s);
    const { g, feeds } = graphOf(
      'paged_attention',
      [
        ['q', c.q],
        ['kc', c.pool()],
        ['vc', c.pool()],
        ['table', c.table],
        ['pos', c.qpos],
      ],
      { scale },
    );
    const mism = await checkAgainstReference(g, feeds, { backend, longReduction: true });
    expect(mism, JSON.stringify(s)).toEqual([]);
  }

  it('head_dim 8 / 64 / 128, block_size 1 / 4 / 16, GQA 1 / 2 / 4, padding', async () => {
    await checkAttn({ B: 2, Hkv: 2, group: 1, D: 8, bs: 4, lens: [7, 3], S: 3, pad: 0.3, seed: 11 });
    await checkAttn({ B: 2, Hkv: 1, group: 2, D: 64, bs: 1, lens: [20, 65], S: 2, seed: 12 }, 0.3);
    await checkAttn({ B: 1, Hkv: 2, group: 4, D: 128, bs: 16, lens: [100], S: 2, pad: 0.2, seed: 13 });
    await checkAttn({ B: 3, Hkv: 1, group: 4, D: 8, bs: 1, lens: [1, 2, 64], S: 1, seed: 14 });
    await checkAttn({ B: 1, Hkv: 1, group: 1, D: 3, bs: 2, lens: [5], S: 4, pad: 1, seed: 15 }); // all padding
  }, 120_000);

  it('keys past a few hundred and a few thousand (many chunks, large scores)', async () => {
    await checkAttn({ B: 2, Hkv: 2, group: 2, D: 64, bs: 16, lens: [700, 129], S: 2, seed: 21 });
    await checkAttn({ B: 1, Hkv: 1, group: 2, D: 128, bs: 16, lens: [2500], S: 1, seed: 22 });
    await checkAttn({ B: 1, Hkv: 1, group: 1, D: 8, bs: 4, lens: [1000], S: 3, seed: 23 }, 4);
  }, 300_000);

  it('f16', async () => {
    await checkAttn({ B: 2, Hkv: 1, group: 2, D: 64, bs: 4, lens: [90, 10], S: 2, dtype: 'f16', seed: 31 });
  }, 120_000);

  it('property: random geometry', async () => {
    const arb = fc.record({
      B: fc.integer({ min: 1, max: 3 }),
      Hkv: fc.integer({ min: 1, max: 2 }),
      group: fc.constantFrom(1, 2, 4),
      D: fc.constantFrom(1, 5, 8, 64, 128),
      bs: fc.constantFrom(1, 4, 16),
      lens: fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 3, maxLength: 3 }),
      S: fc.integer({ min: 1, max: 4 }),
      pad: fc.constantFrom(0, 0.3),
      seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
    });
    await fc.assert(
      fc.asyncProperty(arb, (a) => checkAttn({ ...a, lens: a.lens.slice(0, a.B) })),
      { numRuns: Math.max(5, Math.round(PROP_RUNS / 10)) },
    );
  }, 300_000);
});

describe.each(backends)('%s: write then attend, as a paged model layer', (backend) => {
  it('kv_cache_write (keys and values) feeding paged_attention; both outputs', async () => {
    for (const seed of [41, 42]) {
      const s: Spec = { B: 2, Hkv: 2, group: 2, D: 8, bs: 4, lens: [30, 6], S: 3, pad: 0.2, seed };
      const c = makeCase(s);
      const b = new GraphBuilder('t');
      const feeds: Record<string, Tensor> = {
        kc: c.pool(),
        vc: c.pool(),
        k: c.nw,
        v: makeCase({ ...s, seed: seed + 100 }).nw,
        q: c.q,
        table: c.table,
        pos: c.wpos,
      };
      const inp = (n: string) => b.input(n, feeds[n]!.dtype, feeds[n]!.shape);
      const [table, pos] = [inp('table'), inp('pos')];
      const key = b.op('kv_cache_write', [inp('kc'), inp('k'), table, pos]);
      const value = b.op('kv_cache_write', [inp('vc'), inp('v'), table, pos]);
      b.output(b.op('paged_attention', [inp('q'), key, value, table, pos]), 'y');
      b.output(key, 'key');
      b.output(value, 'value');
      const mism = await checkAgainstReference(b.build(), feeds, { backend, longReduction: true });
      expect(mism).toEqual([]);
    }
  }, 120_000);
});

describe.each(['reference', ...backends] as BackendName[])('%s: bad block indices', (backend) => {
  async function expectNodeError(op: string, ins: [string, Tensor][]): Promise<void> {
    const { g, feeds } = graphOf(op, ins);
    const node = g.nodes.find((n) => n.op === op)!.name;
    const session = await compile(g, { backend, poison: true });
    try {
      const err = await session.run(feeds).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, `${op} on ${backend}`).toBeInstanceOf(KilnError);
      expect((err as KilnError).code).toBe('runtime');
      expect((err as KilnError).location.node).toBe(node);
      expect((err as KilnError).message).toContain(`'${node}'`);
    } finally {
      session.dispose();
    }
  }
  const cache = makeTensor('f32', [3, 1, 2, 4], new Array<number>(24).fill(1));
  const nw = makeTensor('f32', [1, 1, 1, 4], [1, 2, 3, 4]);
  const q = makeTensor('f32', [1, 2, 1, 4], new Array<number>(8).fill(0.5));

  it('kv_cache_write: a position past the table, a table entry outside the pool', async () => {
    const t = makeTensor('i64', [1, 2], [0, 1]);
    // position 4 with block_size 2 is in block 2 of a 2-entry table
    await expectNodeError('kv_cache_write', [
      ['c', cache],
      ['n', nw],
      ['t', t],
      ['p', makeTensor('i64', [1, 1], [4])],
    ]);
    const bad = makeTensor('i64', [1, 2], [0, 3]);
    await expectNodeError('kv_cache_write', [
      ['c', cache],
      ['n', nw],
      ['t', bad],
      ['p', makeTensor('i64', [1, 1], [2])],
    ]);
    const neg = makeTensor('i64', [1, 2], [-1, 0]);
    await expectNodeError('kv_cache_write', [
      ['c', cache],
      ['n', nw],
      ['t', neg],
      ['p', makeTensor('i64', [1, 1], [1])],
    ]);
  });

  it('paged_attention: a query past the table, a used table entry outside the pool', async () => {
    const t = makeTensor('i64', [1, 2], [0, 1]);
    const p = (x: number) => makeTensor('i64', [1, 1], [x]);
    await expectNodeError('paged_attention', [
      ['q', q],
      ['k', cache],
      ['v', cache],
      ['t', t],
      ['p', p(4)],
    ]);
    const bad = makeTensor('i64', [1, 2], [2, 5]);
    await expectNodeError('paged_attention', [
      ['q', q],
      ['k', cache],
      ['v', cache],
      ['t', bad],
      ['p', p(3)],
    ]);
    // the same bad entry is fine while no query reaches its block
    const { g, feeds } = graphOf('paged_attention', [
      ['q', q],
      ['k', cache],
      ['v', cache],
      ['t', bad],
      ['p', p(1)],
    ]);
    const s = await compile(g, { backend, poison: true });
    try {
      const y = (await s.run(feeds))['y']!;
      expect(Array.from(y.data)).toEqual(new Array<number>(8).fill(1)); // every value row is all ones
    } finally {
      s.dispose();
    }
  });
});
