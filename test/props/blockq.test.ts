/**
 * Block-quantized kernels equal the reference semantics of the dequantized graph (ir/ops/blockq.ts: dequantize in
 * float64, then matmul / gather) to f32 rounding, on webgpu and cuda-emu: random shapes (ragged last blocks, K not a
 * multiple of anything), bits 4 / 8, block sizes 16–256, symmetric (default zero point) / asymmetric (packed u8 or
 * float zero points), g_idx, bias, M ≤ 4 (the packed-word GEMV; skinny with g_idx) and M > 1 (tiled), leading batch dims; and
 * gather_block_quantized over random axes and data dtypes. Each backend's run asserts that both matmul schedules ran.
 * fast-check prints the seed of a failing case; KILN_PROP_RUNS scales.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import '../../ir/index.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { compile, type BackendChoice } from '../../src/session.js';
import { compareWithReference, skipWebgpu, tolerance } from '../helpers/backends.js';
import { PROP_RUNS } from '../helpers/paths.js';
import { emuProbe, requireTool } from '../helpers/tools.js';

/** mulberry32: a small deterministic generator for the case's data. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface NBitsCase {
  seed: number;
  lead: readonly number[];
  K: number;
  N: number;
  bits: 4 | 8;
  block: number;
  zp: 'none' | 'packed' | 'float';
  gIdx: boolean;
  bias: boolean;
  dtype: 'f32' | 'f16';
}

const arbNBits: fc.Arbitrary<NBitsCase> = fc.record({
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  lead: fc.oneof(
    fc.constant([1]),
    fc.constant([]),
    fc.tuple(fc.integer({ min: 2, max: 80 })).map((t) => [...t]),
    fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 24 })).map((t) => [...t]),
  ),
  K: fc.integer({ min: 1, max: 300 }),
  N: fc.integer({ min: 1, max: 96 }),
  bits: fc.constantFrom(4 as const, 8 as const),
  block: fc.constantFrom(16, 32, 64, 128, 256),
  zp: fc.constantFrom('none' as const, 'packed' as const, 'float' as const),
  gIdx: fc.boolean(),
  bias: fc.boolean(),
  dtype: fc.constantFrom('f32' as const, 'f32' as const, 'f16' as const),
});

function nbitsGraph(c: NBitsCase) {
  const r = rng(c.seed);
  const nb = Math.ceil(c.K / c.block);
  const blob = (c.block * c.bits) / 8;
  const zpRow = Math.ceil((nb * c.bits) / 8);
  const b = new GraphBuilder('nbits');
  const feeds: Record<string, Tensor> = {};
  const input = (name: string, dt: DType, shape: number[], data: number[]) => {
    feeds[name] = makeTensor(dt, shape, data);
    return b.input(name, dt, shape);
  };
  const rows = c.lead.reduce((p, d) => p * d, 1);
  const byte = () => Math.floor(r() * 256);
  const ins = [
    input(
      'a',
      c.dtype,
      [...c.lead, c.K],
      Array.from({ length: rows * c.K }, () => r() * 2 - 1),
    ),
    input('b', 'u8', [c.N, nb, blob], Array.from({ length: c.N * nb * blob }, byte)),
    input(
      'scales',
      c.dtype,
      [c.N * nb],
      Array.from({ length: c.N * nb }, () => (r() * 0.09 + 0.01) * (r() < 0.5 ? -1 : 1)),
    ),
    c.zp === 'packed'
      ? input('zp', 'u8', [c.N * zpRow], Array.from({ length: c.N * zpRow }, byte))
      : c.zp === 'float'
        ? input(
            'zp',
            c.dtype,
            [c.N, nb],
            Array.from({ length: c.N * nb }, () => r() * 2 ** c.bits),
          )
        : null,
    c.gIdx
      ? input(
          'g_idx',
          'i32',
          [c.K],
          Array.from({ length: c.K }, () => Math.floor(r() * nb)),
        )
      : null,
    c.bias
      ? input(
          'bias',
          c.dtype,
          [c.N],
          Array.from({ length: c.N }, () => r() - 0.5),
        )
      : null,
  ];
  b.output(b.op('matmul_nbits', ins, { K: c.K, N: c.N, bits: c.bits, block_size: c.block }), 'y');
  return { graph: b.build(), feeds };
}

interface GatherCase {
  seed: number;
  shape: number[];
  ga: number;
  qa: number;
  kind: 'u8-4' | 'u8-8' | 'i4' | 'u4';
  block: number;
  zp: boolean;
  nIdx: number;
}

const arbGather: fc.Arbitrary<GatherCase> = fc
  .record({
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    shape: fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 3 }),
    ga: fc.nat(),
    qa: fc.nat(),
    kind: fc.constantFrom('u8-4' as const, 'u8-8' as const, 'i4' as const, 'u4' as const),
    block: fc.constantFrom(16, 32, 64),
    zp: fc.boolean(),
    nIdx: fc.integer({ min: 1, max: 5 }),
  })
  .map((g) => {
    const shape = [...g.shape];
    // packed u8 4-bit data: an even last dim (two elements per byte)
    if (g.kind === 'u8-4') shape[shape.length - 1] = 2 * Math.ceil(shape[shape.length - 1]! / 2);
    return { ...g, shape, ga: g.ga % shape.length, qa: g.qa % shape.length };
  });

function gatherGraph(c: GatherCase) {
  const r = rng(c.seed);
  const L = c.shape;
  const rank = L.length;
  const ss = L.map((d, i) => (i === c.qa ? Math.ceil(d / c.block) : d));
  const numel = (s: number[]) => s.reduce((p, d) => p * d, 1);
  const b = new GraphBuilder('gbq');
  const feeds: Record<string, Tensor> = {};
  const input = (name: string, dt: DType, shape: number[], data: number[]) => {
    feeds[name] = makeTensor(dt, shape, data);
    return b.input(name, dt, shape);
  };
  const packed = c.kind === 'u8-4';
  const dt: DType = c.kind === 'i4' ? 'i4' : c.kind === 'u4' ? 'u4' : 'u8';
  const val = () =>
    c.kind === 'i4'
      ? Math.floor(r() * 16) - 8
      : c.kind === 'u8-8' || packed
        ? Math.floor(r() * 256)
        : Math.floor(r() * 16);
  const dShape = packed ? [...L.slice(0, -1), L[rank - 1]! / 2] : L;
  const zShape = packed ? [...ss.slice(0, -1), Math.ceil(ss[rank - 1]! / 2)] : ss;
  const ins = [
    input('data', dt, dShape, Array.from({ length: numel(dShape) }, val)),
    input(
      'idx',
      'i64',
      [c.nIdx],
      Array.from({ length: c.nIdx }, () => Math.floor(r() * 2 * L[c.ga]!) - L[c.ga]!),
    ),
    input(
      'scales',
      'f32',
      ss,
      Array.from({ length: numel(ss) }, () => r() * 2 - 1),
    ),
    c.zp ? input('zp', dt, zShape, Array.from({ length: numel(zShape) }, val)) : null,
  ];
  const attrs = { gather_axis: c.ga, quantize_axis: c.qa, block_size: c.block, bits: c.kind === 'u8-8' ? 8 : 4 };
  b.output(b.op('gather_block_quantized', ins, attrs), 'y');
  return { graph: b.build(), feeds };
}

/** Run on the backend (outputs poisoned) and compare with the reference; the kernel names it launched. */
async function check(
  graph: ReturnType<typeof nbitsGraph>['graph'],
  feeds: Record<string, Tensor>,
  backend: BackendChoice,
) {
  const ref = interpret(graph, feeds);
  const s = await compile(graph, { backend, poison: true });
  try {
    const got = await s.run(feeds);
    // matmul_nbits sums K products: the long-reduction tolerance (gather: exact products, the tight one)
    const long = graph.nodes.some((n) => n.op === 'matmul_nbits');
    const m = compareWithReference('y', got['y']!, ref['y']!, tolerance(ref['y']!.dtype, long));
    return { mismatch: m, kernels: s.kernels().map((k) => k.name) };
  } finally {
    s.dispose();
  }
}

const noGpu = await skipWebgpu();
const noEmu = await requireTool('g++ (cuda-emu)', emuProbe);

const FIXED: NBitsCase[] = [
  { seed: 1, lead: [1], K: 172, N: 64, bits: 4, block: 32, zp: 'none', gIdx: false, bias: false, dtype: 'f32' }, // decode, ragged
  { seed: 2, lead: [70], K: 200, N: 72, bits: 4, block: 64, zp: 'packed', gIdx: false, bias: true, dtype: 'f32' }, // prefill
  { seed: 3, lead: [2, 40], K: 96, N: 48, bits: 8, block: 16, zp: 'float', gIdx: true, bias: false, dtype: 'f16' },
  // the packed-word GEMV: 3 rows, a word straddling K (K % 4 = 2), float zero points, bias
  { seed: 4, lead: [3, 1], K: 90, N: 37, bits: 8, block: 32, zp: 'float', gIdx: false, bias: true, dtype: 'f32' },
];

describe.each<[BackendChoice, boolean, number]>([
  ['webgpu', noGpu, Math.max(8, Math.round(PROP_RUNS / 3))],
  ['cuda-emu', noEmu, Math.max(6, Math.round(PROP_RUNS / 4))],
])('block-quantized kernels on %s equal the float64 reference', (backend, skip, runs) => {
  it.skipIf(skip)(
    'matmul_nbits: f32 / f16, bits, blocks (ragged), zero points, g_idx, bias, M = 1 and M > 1',
    async () => {
      const names = new Set<string>();
      await fc.assert(
        fc.asyncProperty(arbNBits, async (c) => {
          const { graph, feeds } = nbitsGraph(c);
          const { mismatch, kernels } = await check(graph, feeds, backend);
          kernels.forEach((k) => names.add(k));
          expect(mismatch).toBeUndefined();
        }),
        { numRuns: runs, examples: FIXED.map((c) => [c]) },
      );
      expect([...names].some((n) => n.includes('matmul_nbits_gemv'))).toBe(true);
      expect([...names].some((n) => n.includes('matmul_nbits_skinny'))).toBe(true);
      expect([...names].some((n) => n.includes('matmul_nbits_tiled'))).toBe(true);
    },
    600_000,
  );

  it.skipIf(skip)('matmul_nbits: a g_idx entry outside the row is a typed error naming the node', async () => {
    const b = new GraphBuilder('gidx');
    const ins = [
      b.input('a', 'f32', [1, 16]),
      b.input('b', 'u8', [2, 1, 8]),
      b.input('s', 'f32', [2]),
      null,
      b.input('g', 'i32', [16]),
    ];
    b.output(b.op('matmul_nbits', ins, { K: 16, N: 2, bits: 4, block_size: 16 }), 'y');
    const sess = await compile(b.build(), { backend, poison: true });
    try {
      const feeds = {
        a: makeTensor('f32', [1, 16], new Array(16).fill(1)),
        b: makeTensor('u8', [2, 1, 8], new Array(16).fill(0x99)), // every q = 9: W = (9 - 8) · scale
        s: makeTensor('f32', [2], [0.5, 2]),
      };
      const g = (bad: number) =>
        makeTensor(
          'i32',
          [16],
          new Array(16).fill(0).map((_, k) => (k === 7 ? bad : 0)),
        );
      await expect(sess.run({ ...feeds, g: g(1) })).rejects.toThrow(/index out of range .*matmul_nbits_0/);
      await expect(sess.run({ ...feeds, g: g(-1) })).rejects.toThrow(/index out of range .*matmul_nbits_0/);
      const y = await sess.run({ ...feeds, g: g(0) });
      expect(Array.from(y['y']!.data)).toEqual([8, 32]);
    } finally {
      sess.dispose();
    }
  });

  it.skipIf(skip)('gather_block_quantized: an index out of range is a typed error naming the node', async () => {
    const b = new GraphBuilder('oob');
    const d = b.input('d', 'u8', [3, 8]);
    const i = b.input('i', 'i64', [2]);
    const s = b.input('s', 'f32', [3, 1]);
    b.output(b.op('gather_block_quantized', [d, i, s], { quantize_axis: 1, block_size: 16, bits: 4 }), 'y');
    const sess = await compile(b.build(), { backend, poison: true });
    try {
      const feeds = {
        d: makeTensor('u8', [3, 8], new Array(24).fill(0x98)),
        s: makeTensor('f32', [3, 1], [1, 2, 3]),
      };
      await expect(sess.run({ ...feeds, i: makeTensor('i64', [2], [1, 3]) })).rejects.toThrow(
        /index out of range .*gather_block_quantized_0/,
      );
      // nibbles 8 (low) and 9 (high) minus the default zero point 8: 0, 1, … times the row's scale
      const y = await sess.run({ ...feeds, i: makeTensor('i64', [2], [-1, 0]) });
      expect(Array.from(y['y']!.data).slice(0, 4)).toEqual([0, 3, 0, 3]);
      expect(Array.from(y['y']!.data).slice(16, 20)).toEqual([0, 1, 0, 1]);
    } finally {
      sess.dispose();
    }
  });

  it.skipIf(skip)(
    'gather_block_quantized: axes, packed / i4 / u4 data, zero points',
    async () => {
      await fc.assert(
        fc.asyncProperty(arbGather, async (c) => {
          const { graph, feeds } = gatherGraph(c);
          expect((await check(graph, feeds, backend)).mismatch).toBeUndefined();
        }),
        { numRuns: runs },
      );
    },
    600_000,
  );
});
