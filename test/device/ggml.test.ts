/**
 * GGUF block-format kernels (codegen/lower/ggml.ts) equal the float64 reference (ggml's dequantization, then the
 * product / the gathered rows) to f32 rounding, on webgpu and cuda-emu: random blocks of every format (random code
 * bytes, f16 scale fields drawn from normal and subnormal values), M ≤ 4 (the block GEMV) and M > 1 (skinny, tiled), leading
 * batch dims; get_rows_ggml with negative indices and a typed error for an index out of range. fast-check prints
 * the seed of a failing case; KILN_PROP_RUNS scales.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import { numberToF16Bits } from '../../ir/dtype.js';
import '../../ir/index.js';
import { interpret } from '../../ir/interpret.js';
import { GGML_FORMAT_INFO, GGML_FORMATS, type GgmlFormat } from '../../ir/ops/ggml.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { compile, type BackendChoice } from '../../src/session.js';
import { checkAgainstReference, compareWithReference, skipWebgpu, tolerance } from '../helpers/backends.js';
import { ggmlModel, ggmlModelFeeds, GGML_MODEL_FORMATS } from '../helpers/ggml-model.js';
import { optimize } from '../../passes/manager.js';
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

/** Byte offsets of each format's f16 fields inside a block. */
const F16_FIELDS: Record<GgmlFormat, number[]> = {
  Q8_0: [0],
  Q4_0: [0],
  Q4_1: [0, 2],
  Q5_0: [0],
  Q5_1: [0, 2],
  Q4_K: [0, 2],
  Q5_K: [0, 2],
  Q6_K: [208],
};

/** `rows` rows of K elements as random blocks: random code bytes, finite f16 scales (some subnormal). */
export function randomBlocks(format: GgmlFormat, rows: number, K: number, r: () => number): Uint8Array {
  const { qk, bytes } = GGML_FORMAT_INFO[format];
  const n = (rows * K) / qk;
  const out = new Uint8Array(n * bytes);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(r() * 256);
  for (let b = 0; b < n; b++) {
    for (const f of F16_FIELDS[format]) {
      const v = r() < 0.1 ? (r() - 0.5) * 2 ** -16 : (r() - 0.5) * (qk === 256 ? 0.02 : 0.2);
      const h = numberToF16Bits(v);
      out[b * bytes + f] = h & 255;
      out[b * bytes + f + 1] = h >> 8;
    }
  }
  return out;
}

interface Case {
  seed: number;
  format: GgmlFormat;
  lead: readonly number[];
  blocks: number;
  N: number;
}

const arbCase: fc.Arbitrary<Case> = fc.record({
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  format: fc.constantFrom(...GGML_FORMATS),
  lead: fc.oneof(
    fc.constant([1]),
    fc.constant([]),
    fc.tuple(fc.integer({ min: 2, max: 40 })).map((t) => [...t]),
    fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 12 })).map((t) => [...t]),
  ),
  blocks: fc.integer({ min: 1, max: 3 }),
  N: fc.integer({ min: 1, max: 40 }),
});

function matmulGraph(c: Case) {
  const r = rng(c.seed);
  const { qk } = GGML_FORMAT_INFO[c.format];
  const K = c.blocks * (qk === 256 ? 256 : 32 * (1 + Math.floor(r() * 3)));
  const rows = c.lead.reduce((p, d) => p * d, 1);
  const b = new GraphBuilder('ggml');
  const a = b.input('a', 'f32', [...c.lead, K]);
  const w = randomBlocks(c.format, c.N, K, r);
  const wt = b.weight('w', makeTensor('u8', [c.N, w.length / c.N], w));
  b.output(b.op('matmul_ggml', [a, wt], { format: c.format, K, N: c.N }), 'y');
  const feeds = {
    a: makeTensor(
      'f32',
      [...c.lead, K],
      Array.from({ length: rows * K }, () => r() * 2 - 1),
    ),
  };
  return { graph: b.build(), feeds };
}

async function check(
  graph: ReturnType<typeof matmulGraph>['graph'],
  feeds: Record<string, Tensor>,
  backend: BackendChoice,
) {
  const ref = interpret(graph, feeds);
  const s = await compile(graph, { backend, poison: true });
  try {
    const got = await s.run(feeds);
    const out = Object.keys(ref).map((k) =>
      compareWithReference(
        k,
        got[k]!,
        ref[k]!,
        tolerance(
          ref[k]!.dtype,
          graph.nodes.some((n) => n.op === 'matmul_ggml'),
        ),
      ),
    );
    return { mismatch: out.find((m) => m), kernels: s.kernels().map((k) => k.name) };
  } finally {
    s.dispose();
  }
}

const noGpu = await skipWebgpu();
const noEmu = await requireTool('g++ (cuda-emu)', emuProbe);

const FIXED: Case[] = GGML_FORMATS.flatMap((format, i) => [
  { seed: 10 + i, format, lead: [1], blocks: 2, N: 24 },
  { seed: 20 + i, format, lead: [40], blocks: 1, N: 36 },
  { seed: 30 + i, format, lead: [2, 3], blocks: 1, N: 3 },
]);

describe.each<[BackendChoice, boolean, number]>([
  ['webgpu', noGpu, Math.max(8, Math.round(PROP_RUNS / 3))],
  ['cuda-emu', noEmu, Math.max(4, Math.round(PROP_RUNS / 5))],
])('GGUF block-format kernels on %s equal the float64 reference', (backend, skip, runs) => {
  it.skipIf(skip)(
    'matmul_ggml: every format, M ≤ 4 (block GEMV), M > 1 (skinny, tiled), batch dims',
    async () => {
      const names = new Set<string>();
      await fc.assert(
        fc.asyncProperty(arbCase, async (c) => {
          const { graph, feeds } = matmulGraph(c);
          const { mismatch, kernels } = await check(graph, feeds, backend);
          kernels.forEach((k) => names.add(k));
          expect(mismatch).toBeUndefined();
        }),
        { numRuns: runs, examples: FIXED.map((c) => [c]) },
      );
      expect([...names].some((n) => /matmul_ggml.*gemv/.test(n))).toBe(true);
      expect([...names].some((n) => /matmul_ggml.*skinny/.test(n))).toBe(true);
      expect([...names].some((n) => /matmul_ggml.*tiled/.test(n))).toBe(true);
    },
    900_000,
  );

  it.skipIf(skip)(
    'get_rows_ggml: every format, negative indices; an index out of range is a typed error naming the node',
    async () => {
      for (const [i, format] of GGML_FORMATS.entries()) {
        const r = rng(100 + i);
        const { qk } = GGML_FORMAT_INFO[format];
        const K = qk === 256 ? 256 : 64;
        const V = 7;
        const data = randomBlocks(format, V, K, r);
        const b = new GraphBuilder('rows');
        const t = b.weight('t', makeTensor('u8', [V, data.length / V], data));
        const ids = b.input('ids', 'i64', [2, 2]);
        b.output(b.op('get_rows_ggml', [t, ids], { format, K }), 'y');
        const graph = b.build();
        const feeds = { ids: makeTensor('i64', [2, 2], [0, 6, -1, 3]) };
        const { mismatch } = await check(graph, feeds, backend);
        expect(mismatch).toBeUndefined();
        if (i === 0) {
          const s = await compile(graph, { backend });
          try {
            await expect(s.run({ ids: makeTensor('i64', [2, 2], [0, 7, 1, 1]) })).rejects.toThrow(
              /out of range.*get_rows_ggml/,
            );
          } finally {
            s.dispose();
          }
        }
      }
    },
    600_000,
  );

  it.skipIf(skip)(
    'a llama GGUF with every block format (tied head too): prefill and a one-token step equal the reference',
    async () => {
      for (const tied of [false, true]) {
        const { packed } = ggmlModel(tied);
        for (const ids of [[4, 9, 33, 1, 0], [12]]) {
          const feeds = ggmlModelFeeds(packed, ids);
          expect(await checkAgainstReference(packed, feeds, { backend })).toEqual([]);
        }
      }
    },
    600_000,
  );

  it.skipIf(skip)(
    'projections of one format merge (Q/K/V, gate/up) and fuse (norm prologues, residual epilogues); equal to the reference',
    async () => {
      const uniform = Object.fromEntries(Object.keys(GGML_MODEL_FORMATS).map((k) => [k, 'Q4_K' as const]));
      const { packed } = ggmlModel(false, 3, uniform);
      const opt = optimize(packed, { level: 1 });
      const count = (g: typeof packed) => g.nodes.filter((n) => n.op === 'matmul_ggml').length;
      expect(count(packed)).toBe(8);
      const fusedGgml = opt.nodes.filter(
        (n) => n.op === 'fused_contraction' && String(n.attrs['body']).includes('matmul_ggml'),
      );
      // qkv (RMS-norm prologue), o (+ residual), gate+up (prologue), down (+ residual), head (prologue): merged and
      // fused, each one kernel
      expect(count(opt) + fusedGgml.length).toBe(5);
      expect(fusedGgml.length).toBeGreaterThanOrEqual(4);
      for (const ids of [[4, 9, 33], [12]]) {
        expect(await checkAgainstReference(packed, ggmlModelFeeds(packed, ids), { backend })).toEqual([]);
      }
      // a one-token step runs the fused projections as block GEMVs (norm prologue / residual epilogue inside)
      const s = await compile(packed, { backend });
      try {
        await s.run(ggmlModelFeeds(packed, [12]));
        const names = s.kernels().map((k) => k.name);
        // distinct kernels: with the norm prologue (qkv, gate+up, head) and with the residual epilogue (o, down)
        expect(names.filter((k) => /fused_matmul_ggml_q4_k_gemv/.test(k))).toHaveLength(2);
        expect(names.filter((k) => /matmul_ggml/.test(k) && !/gemv/.test(k))).toEqual([]);
      } finally {
        s.dispose();
      }
    },
    600_000,
  );
});
