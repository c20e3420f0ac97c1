/**
 * Sparse kernels equal the float64 reference of the DENSE pruned weight: a random W [K, N] pruned to a random
 * density (unstructured for csr, whole h × w blocks of Wᵀ plus zeros inside kept blocks for bsr, a random 2:4 pattern
 * for nm — some groups keeping fewer than 2), packed by the host packers into `sparse_matmul`'s constants, run on
 * the reference interpreter, webgpu and cuda-emu, and compared with `matmul(a, W)` interpreted in float64 (the
 * sparse op's own reference is not the oracle; quantized 2:4 cases: the spec's dequantized W). Random K, N, lead dims (M = 1: SpMV; M > 1: SpMM with ragged row
 * tiles), f32 / f16 activations and values. fast-check prints the seed of a failing case; KILN_PROP_RUNS scales.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import '../../ir/index.js';
import { interpret } from '../../ir/interpret.js';
import { packBsr, packCsr, packNm, quantizeNm, sparseLayout, type PackedSparse } from '../../ir/ops/sparse.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { compile, type BackendChoice } from '../../src/session.js';
import { compareWithReference, skipWebgpu, tolerance } from '../helpers/backends.js';
import { PROP_RUNS } from '../helpers/paths.js';
import { emuProbe, requireTool } from '../helpers/tools.js';

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

export interface SparseCase {
  seed: number;
  format: 'csr' | 'bsr' | 'nm';
  lead: readonly number[];
  /** K / N in units of the format's block (bsr: w / h; nm: 4 along K). */
  kUnits: number;
  nUnits: number;
  block: readonly [number, number];
  density: number;
  dtype: 'f32' | 'f16';
  /** csr / bsr index dtype. */
  index: 'i32' | 'u16';
  /** nm: int4 / int8 kept values with per-group scales (0: float values); f32 only. */
  quant?: { bits: 4 | 8; group: number };
}

const arbCase: fc.Arbitrary<SparseCase> = fc
  .record({
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    format: fc.constantFrom('csr' as const, 'bsr' as const, 'nm' as const),
    lead: fc.oneof(
      fc.constant([1]),
      fc.constant([]),
      fc.tuple(fc.integer({ min: 2, max: 40 })).map((t) => [...t]),
      fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 12 })).map((t) => [...t]),
    ),
    kUnits: fc.integer({ min: 1, max: 24 }),
    nUnits: fc.integer({ min: 1, max: 24 }),
    block: fc.tuple(fc.constantFrom(1, 2, 4, 8), fc.constantFrom(1, 2, 4, 8)),
    density: fc.oneof(fc.constant(0), fc.constant(1), fc.double({ min: 0.02, max: 0.95, noNaN: true })),
    dtype: fc.constantFrom('f32' as const, 'f32' as const, 'f16' as const),
    index: fc.constantFrom('i32' as const, 'u16' as const),
    quant: fc.option(
      fc.record({ bits: fc.constantFrom(4 as const, 8 as const), group: fc.constantFrom(2, 4, 8, 16, 32) }),
      { nil: undefined },
    ),
  })
  .map((c) => (c.quant && c.format === 'nm' ? { ...c, dtype: 'f32' as const } : { ...c, quant: undefined }));

/**
 * The oracle's weight for a quantized 2:4 case, from the pruned W by the spec (not the packer): per column and group
 * of `group` kept values (group / 2 groups of 4 along K), scale = max |w| / (2^(bits−1) − 1), held in f32; each
 * non-zero becomes clamp(round-half-away(w / scale)) · scale.
 */
function dequantOracle(w: Float64Array, K: number, N: number, bits: number, group: number): Float64Array {
  const qmax = 2 ** (bits - 1) - 1;
  const out = new Float64Array(w.length);
  const span = (group / 2) * 4; // k per scale
  for (let n = 0; n < N; n++)
    for (let k0 = 0; k0 < K; k0 += span) {
      let mx = 0;
      for (let k = k0; k < Math.min(K, k0 + span); k++) mx = Math.max(mx, Math.abs(w[k * N + n]!));
      const scale = mx / qmax;
      for (let k = k0; k < Math.min(K, k0 + span); k++) {
        const x = w[k * N + n]!;
        const q = scale ? Math.sign(x) * Math.round(Math.abs(x) / scale) : 0;
        out[k * N + n] = Math.max(-qmax - 1, Math.min(qmax, q)) * Math.fround(scale);
      }
    }
  return out;
}

/** A value exact in f16: a multiple of 1/64 in [−1, 1], never 0. */
const val = (r: () => number) => ((Math.floor(r() * 64) + 1) / 64) * (r() < 0.5 ? -1 : 1);

/** The pruned dense weight W [K, N] of a case. */
export function prunedWeight(c: SparseCase): { K: number; N: number; w: Float64Array } {
  const r = rng(c.seed);
  const [h, bw] = c.format === 'bsr' ? c.block : [1, 1];
  const K = c.kUnits * (c.format === 'nm' ? 4 : bw);
  const N = c.nUnits * h;
  const w = new Float64Array(K * N);
  if (c.format === 'nm') {
    for (let n = 0; n < N; n++)
      for (let q = 0; q < K / 4; q++) {
        // 2 kept positions, each non-zero with probability 2 · density (capped): density 0.5 → full 2:4
        const pos = [0, 1, 2, 3].sort(() => r() - 0.5).slice(0, 2);
        for (const j of pos) if (r() < Math.min(1, 2 * c.density)) w[(4 * q + j) * N + n] = val(r);
      }
  } else if (c.format === 'bsr') {
    for (let rb = 0; rb < N / h; rb++)
      for (let kb = 0; kb < K / bw; kb++) {
        if (r() >= c.density) continue;
        for (let i = 0; i < h; i++)
          for (let j = 0; j < bw; j++) if (r() < 0.8) w[(kb * bw + j) * N + rb * h + i] = val(r);
      }
  } else for (let i = 0; i < K * N; i++) if (r() < c.density) w[i] = val(r);
  return { K, N, w };
}

function pack(c: SparseCase, w: Float64Array, K: number, N: number): PackedSparse {
  if (c.format === 'csr') return packCsr(w, K, N);
  if (c.format === 'bsr') return packBsr(w, K, N, c.block);
  return packNm(w, K, N);
}

/** The sparse graph, the dense-weight graph (the oracle) and the feeds. */
function graphs(c: SparseCase) {
  const { K, N, w } = prunedWeight(c);
  const p = pack(c, w, K, N);
  const r = rng(c.seed ^ 0x5bd1e995);
  const rows = c.lead.reduce((x, d) => x * d, 1);
  const feeds: Record<string, Tensor> = {
    a: makeTensor(
      c.dtype,
      [...c.lead, K],
      Array.from({ length: rows * K }, () => r() * 2 - 1),
    ),
  };
  const g = p.geometry;
  const sb = new GraphBuilder('sparse');
  const a = sb.input('a', c.dtype, [...c.lead, K]);
  const vShape =
    g.format === 'csr' ? [p.values.length] : g.format === 'bsr' ? [p.indices.length, ...g.block] : [N, K / 2];
  const qz = c.quant && quantizeNm(p, c.quant.bits, c.quant.group);
  const values = qz
    ? sb.weight('values', makeTensor('u8', [N, (K / 2) * (c.quant!.bits / 8)], qz.data), sparseLayout(g))
    : sb.weight('values', makeTensor(c.dtype, vShape, p.values), sparseLayout(g));
  const scales = qz ? sb.weight('scales', makeTensor('f32', [N, qz.scales.length / N], qz.scales)) : null;
  const indices = sb.weight(
    'indices',
    g.format === 'nm'
      ? makeTensor('u8', [p.indices.length], p.indices)
      : makeTensor(c.index, [p.indices.length], p.indices),
  );
  const rowPtr = p.rowPtr ? sb.weight('row_ptr', makeTensor('i32', [p.rowPtr.length], p.rowPtr)) : null;
  const attrs = { format: c.format, K, N, block: [...g.block], ...(c.quant ?? {}) };
  sb.output(sb.op('sparse_matmul', [a, values, indices, rowPtr, scales], attrs), 'y');
  const db = new GraphBuilder('dense');
  const da = db.input('a', c.dtype, [...c.lead, K]);
  const wd = c.quant ? dequantOracle(w, K, N, c.quant.bits, c.quant.group) : w;
  db.output(db.op('matmul', [da, db.weight('w', makeTensor(c.dtype, [K, N], wd))]), 'y');
  return { sparse: sb.build(), dense: db.build(), feeds };
}

async function check(c: SparseCase, backend: BackendChoice | 'interpret') {
  const { sparse, dense, feeds } = graphs(c);
  const want = interpret(dense, feeds)['y']!;
  let got: Tensor;
  let kernels: string[] = [];
  if (backend === 'interpret') got = interpret(sparse, feeds)['y']!;
  else {
    const s = await compile(sparse, { backend, poison: true });
    try {
      got = (await s.run(feeds))['y']!;
      kernels = s.kernels().map((k) => k.name);
    } finally {
      s.dispose();
    }
  }
  return { mismatch: compareWithReference('y', got, want, tolerance(want.dtype, true)), kernels };
}

const FIXED: SparseCase[] = [
  {
    seed: 1,
    format: 'csr',
    lead: [1],
    kUnits: 37,
    nUnits: 19,
    block: [1, 1],
    density: 0.1,
    dtype: 'f32',
    index: 'i32',
  },
  {
    seed: 2,
    format: 'csr',
    lead: [13],
    kUnits: 20,
    nUnits: 9,
    block: [1, 1],
    density: 0.5,
    dtype: 'f16',
    index: 'u16',
  },
  { seed: 3, format: 'bsr', lead: [1], kUnits: 6, nUnits: 5, block: [4, 8], density: 0.3, dtype: 'f32', index: 'u16' },
  {
    seed: 4,
    format: 'bsr',
    lead: [2, 9],
    kUnits: 5,
    nUnits: 7,
    block: [2, 4],
    density: 0.6,
    dtype: 'f32',
    index: 'i32',
  },
  { seed: 5, format: 'nm', lead: [1], kUnits: 9, nUnits: 11, block: [1, 1], density: 0.5, dtype: 'f32', index: 'i32' },
  { seed: 6, format: 'nm', lead: [17], kUnits: 7, nUnits: 5, block: [1, 1], density: 0.3, dtype: 'f16', index: 'i32' },
  {
    seed: 8,
    format: 'nm',
    lead: [1],
    kUnits: 20,
    nUnits: 6,
    block: [1, 1],
    density: 0.5,
    dtype: 'f32',
    index: 'i32',
    quant: { bits: 4, group: 16 },
  },
  {
    seed: 9,
    format: 'nm',
    lead: [11],
    kUnits: 9,
    nUnits: 7,
    block: [1, 1],
    density: 0.4,
    dtype: 'f32',
    index: 'i32',
    quant: { bits: 8, group: 4 },
  },
  { seed: 7, format: 'csr', lead: [3], kUnits: 8, nUnits: 8, block: [1, 1], density: 0, dtype: 'f32', index: 'i32' },
];

const noGpu = await skipWebgpu();
const noEmu = await requireTool('g++ (cuda-emu)', emuProbe);

describe.each<[BackendChoice | 'interpret', boolean, number]>([
  ['interpret', false, Math.max(20, PROP_RUNS)],
  ['webgpu', noGpu, Math.max(8, Math.round(PROP_RUNS / 3))],
  ['cuda-emu', noEmu, Math.max(6, Math.round(PROP_RUNS / 5))],
])('sparse_matmul on %s equals the dense reference of the pruned weight', (backend, skip, runs) => {
  it.skipIf(skip)(
    'csr / bsr (random blocks) / 2:4, densities 0–100%, f32 / f16, M = 1 and M > 1',
    async () => {
      const names = new Set<string>();
      await fc.assert(
        fc.asyncProperty(arbCase, async (c) => {
          const { mismatch, kernels } = await check(c, backend);
          kernels.forEach((k) => names.add(k));
          expect(mismatch).toBeUndefined();
        }),
        { numRuns: runs, examples: FIXED.map((c) => [c]) },
      );
      if (backend !== 'interpret')
        for (const f of ['csr', 'bsr', 'nm'])
          for (const kind of ['spmv', 'spmm'])
            expect([...names].some((n) => n.includes(`sparse_matmul_${f}_${kind}`))).toBe(true);
    },
    600_000,
  );
});
