/**
 * matmul_integer through the packed int8 dot-product schedule (codegen/lower/contraction/dot4.ts) equals the float64
 * reference on webgpu and cuda-emu: random M (1 and > 1), K (a multiple of 4, 4 included), N, batch, signedness of a
 * and b (mixed included), zero points (none / scalar / per row / per column); b given as [N, K] (trans_b) or as a
 * constant [K, N] that the compile-time rewrite transposes. Each backend asserts that both dot kernels ran (lanes per
 * output for ≤ 4 rows, register-blocked above).
 * fast-check prints the seed of a failing case; KILN_PROP_RUNS scales.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import '../../ir/index.js';
import { interpret } from '../../ir/interpret.js';
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

type I8 = 'i8' | 'u8';
interface Case {
  seed: number;
  batch: number;
  M: number;
  K: number;
  N: number;
  da: I8;
  db: I8;
  za: 'none' | 'scalar' | 'row';
  zb: 'none' | 'scalar' | 'col';
  /** b as a constant [K, N] (rewritten to trans_b at compile time) instead of an input [N, K] with trans_b. */
  constB: boolean;
}

const arb: fc.Arbitrary<Case> = fc.record({
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  batch: fc.constantFrom(0, 0, 2),
  M: fc.oneof(fc.constant(1), fc.integer({ min: 2, max: 40 })),
  K: fc.integer({ min: 1, max: 80 }).map((k) => 4 * k),
  N: fc.integer({ min: 1, max: 48 }),
  da: fc.constantFrom('i8' as const, 'u8' as const),
  db: fc.constantFrom('i8' as const, 'u8' as const),
  za: fc.constantFrom('none' as const, 'scalar' as const, 'row' as const),
  zb: fc.constantFrom('none' as const, 'scalar' as const, 'col' as const),
  constB: fc.boolean(),
});

/** Values over the whole range of the dtype, extremes often. */
function values(n: number, dt: I8, r: () => number): number[] {
  const [lo, hi] = dt === 'i8' ? [-128, 127] : [0, 255];
  return Array.from({ length: n }, () => {
    const u = r();
    return u < 0.1 ? lo : u < 0.2 ? hi : lo + Math.floor(r() * (hi - lo + 1));
  });
}

function graphOf(c: Case): { graph: ReturnType<GraphBuilder['build']>; feeds: Record<string, Tensor> } {
  const r = rng(c.seed);
  const g = new GraphBuilder('mmi');
  const lead = c.batch ? [c.batch] : [];
  const feeds: Record<string, Tensor> = {};
  const aShape = [...lead, c.M, c.K];
  feeds['a'] = makeTensor(
    c.da,
    aShape,
    values(
      aShape.reduce((p, x) => p * x, 1),
      c.da,
      r,
    ),
  );
  const a = g.input('a', c.da, aShape);
  const bData = values(c.K * c.N, c.db, r);
  let b;
  if (c.constB) b = g.weight('w', makeTensor(c.db, [c.K, c.N], bData));
  else {
    feeds['b'] = makeTensor(c.db, [c.N, c.K], bData);
    b = g.input('b', c.db, [c.N, c.K]);
  }
  const za =
    c.za === 'none' ? null : g.const(c.da, values(c.za === 'row' ? c.M : 1, c.da, r), c.za === 'row' ? [c.M] : []);
  const zb =
    c.zb === 'none' ? null : g.const(c.db, values(c.zb === 'col' ? c.N : 1, c.db, r), c.zb === 'col' ? [c.N] : []);
  g.output(g.op('matmul_integer', [a, b, za, zb], c.constB ? {} : { trans_b: true }), 'y');
  return { graph: g.build(), feeds };
}

const noGpu = await skipWebgpu();
const noEmu = await requireTool('g++ (cuda-emu)', emuProbe);

const FIXED: Case[] = [
  { seed: 1, batch: 0, M: 1, K: 4, N: 1, da: 'i8', db: 'i8', za: 'none', zb: 'none', constB: false },
  { seed: 2, batch: 0, M: 1, K: 4, N: 3, da: 'u8', db: 'u8', za: 'scalar', zb: 'col', constB: false },
  { seed: 3, batch: 0, M: 7, K: 64, N: 9, da: 'u8', db: 'i8', za: 'row', zb: 'scalar', constB: true },
  { seed: 4, batch: 2, M: 5, K: 36, N: 17, da: 'i8', db: 'u8', za: 'scalar', zb: 'col', constB: false },
  { seed: 5, batch: 0, M: 33, K: 320, N: 40, da: 'u8', db: 'i8', za: 'none', zb: 'none', constB: true },
];

describe.each<[BackendChoice, boolean, number]>([
  ['webgpu', noGpu, Math.max(10, Math.round(PROP_RUNS / 2))],
  ['cuda-emu', noEmu, Math.max(6, Math.round(PROP_RUNS / 4))],
])('matmul_integer on the packed dot path (%s) equals the float64 reference', (backend, skip, runs) => {
  it.skipIf(skip)(
    'M, K % 4 == 0, N, batch, signedness, zero points, trans_b input or rewritten constant',
    async () => {
      let dotRuns = 0;
      const seen = new Set<string>();
      await fc.assert(
        fc.asyncProperty(arb, async (c) => {
          const { graph, feeds } = graphOf(c);
          const ref = interpret(graph, feeds);
          const s = await compile(graph, { backend, poison: true });
          try {
            const got = await s.run(feeds);
            expect(compareWithReference('y', got['y']!, ref['y']!, tolerance('i32', false))).toBeUndefined();
            const names = s.kernels().map((k) => k.name);
            names.forEach((n) => seen.add(n.replace(/_[0-9a-f]+$/, '')));
            expect(
              names.some((n) => n.includes('matmul_integer_dot4')),
              names.join(' '),
            ).toBe(true);
            dotRuns++;
          } finally {
            s.dispose();
          }
        }),
        { numRuns: runs, examples: FIXED.map((c) => [c]) },
      );
      expect(dotRuns).toBeGreaterThan(0);
      // both dot kernels ran: lanes per output (rows ≤ 4) and register-blocked (prefill)
      expect([...seen].some((n) => n.endsWith('matmul_integer_dot4'))).toBe(true);
      expect([...seen].some((n) => n.endsWith('matmul_integer_dot4b'))).toBe(true);
    },
    600_000,
  );
});
