/**
 * `npm run bench -- sparse [K N]`: a [M, K] · W [K, N] (default 4096 × 4096) on WebGPU with W
 * pruned to densities 5–90%, run dense (the contraction templates), csr (unstructured pruning), bsr (pruning of whole
 * 4 × 4 blocks of Wᵀ) and 2:4 (at 50%) for M = 1 (SpMV) and M = 32 (SpMM), in one run, the variants of a density
 * taking turns run by run. Prints the times, the measured crossover density per M, the per-layout constants fitted
 * to these times (the cost model's form, passes/sparsity/layout-cost.ts), and at every density the layout the cost
 * model picks (built-in constants) beside the measured fastest.
 */
import { writeFileSync } from 'node:fs';
import { GraphBuilder } from '../ir/builder.js';
import type { Graph } from '../ir/graph.js';
import '../ir/ops/index.js';
import { packBsr, packCsr, packNm, sparseIndexDtype, sparseLayout, type PackedSparse } from '../ir/ops/sparse.js';
import { makeTensor, type Tensor } from '../ir/tensor.js';
import {
  estimateLayouts,
  fitLayoutCosts,
  LAVAPIPE_COSTS,
  layoutCosts,
  weightStats,
  type LayoutCostConstants,
  type LayoutName,
} from '../passes/sparsity/layout-cost.js';
import { compile, type Session } from '../src/session.js';
import { printTable, randomMatrix } from './common.js';

/**
 * One warm-up call each, then `reps` rounds of one timed call each, taken back to back (dense first). Each variant's
 * time relative to dense is the median over rounds of its time / dense's time in the same round — paired, so load
 * from other processes on this shared 2-core VM (which moved the dense kernel's own time 2× between runs) mostly
 * cancels; `ms` is that ratio times dense's best time of the whole run (the same kernel at every density).
 */
async function pairedRatios(
  fns: readonly (() => Promise<unknown>)[],
  reps: number,
): Promise<{ ratio: number[]; dense: number[] }> {
  for (const f of fns) await f();
  const rounds: number[][] = [];
  for (let r = 0; r < reps; r++) {
    const row: number[] = [];
    for (const f of fns) {
      const t = performance.now();
      await f();
      row.push(performance.now() - t);
    }
    rounds.push(row);
  }
  const med = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2;
  };
  return { ratio: fns.map((_, i) => med(rounds.map((row) => row[i]! / row[0]!))), dense: rounds.map((row) => row[0]!) };
}

const DENSITIES = [0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9];
const MS = [1, 32];
const BLOCK: [number, number] = [4, 4];
/** Relative difference below which two layouts' times count as a tie. */
const TIE = 0.1;

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

function denseGraph(w: Float32Array, K: number, N: number): Graph {
  const b = new GraphBuilder('dense');
  const a = b.input('a', 'f32', ['M', K]);
  b.output(b.op('matmul', [a, b.weight('w', makeTensor('f32', [K, N], w))]), 'y');
  return b.build();
}

function sparseGraph(p: PackedSparse): Graph {
  const g = p.geometry;
  const b = new GraphBuilder(`sparse_${g.format}`);
  const a = b.input('a', 'f32', ['M', g.K]);
  const vShape =
    g.format === 'csr' ? [p.values.length] : g.format === 'bsr' ? [p.indices.length, ...g.block] : [g.N, g.K / 2];
  const ins = [
    a,
    b.weight('values', makeTensor('f32', vShape, p.values), sparseLayout(g)),
    b.weight('indices', makeTensor(g.format === 'nm' ? 'u8' : sparseIndexDtype(g), [p.indices.length], p.indices)),
    p.rowPtr ? b.weight('row_ptr', makeTensor('i32', [p.rowPtr.length], p.rowPtr)) : null,
  ];
  b.output(b.op('sparse_matmul', ins, { format: g.format, K: g.K, N: g.N, block: [...g.block] }), 'y');
  return b.build();
}

/** W [K, N] with each element kept with probability d (unstructured). */
function unstructured(base: Float32Array, d: number, seed: number): Float32Array {
  const r = rng(seed);
  return base.map((x) => (r() < d ? x : 0));
}

/** W [K, N] keeping whole h × w blocks of Wᵀ with probability d. */
function blocked(base: Float32Array, K: number, N: number, d: number, seed: number): Float32Array {
  const r = rng(seed);
  const [h, bw] = BLOCK;
  const out = new Float32Array(base.length);
  for (let rb = 0; rb < N / h; rb++)
    for (let kb = 0; kb < K / bw; kb++) {
      if (r() >= d) continue;
      for (let j = 0; j < bw; j++)
        for (let i = 0; i < h; i++) out[(kb * bw + j) * N + rb * h + i] = base[(kb * bw + j) * N + rb * h + i]!;
    }
  return out;
}

/** 2:4 along K: in every group of 4 consecutive k of a column, the 2 of largest magnitude. */
function twoFour(base: Float32Array, K: number, N: number): Float32Array {
  const out = new Float32Array(base.length);
  for (let n = 0; n < N; n++)
    for (let k0 = 0; k0 < K; k0 += 4) {
      const idx = [0, 1, 2, 3].sort((x, y) => Math.abs(base[(k0 + y) * N + n]!) - Math.abs(base[(k0 + x) * N + n]!));
      for (const j of idx.slice(0, 2)) out[(k0 + j) * N + n] = base[(k0 + j) * N + n]!;
    }
  return out;
}

interface Point {
  density: number;
  M: number;
  layout: LayoutName;
  ms: number;
  /** Median over rounds of time / dense's time in the same round. */
  ratio: number;
  bytes: number;
  macs: number;
  /** The weight the variant ran (the cost model's choice is judged on it). */
  weight: Float32Array;
}

export async function benchSparse(
  K = Number(process.argv[2] ?? 4096),
  N = Number(process.argv[3] ?? 4096),
): Promise<void> {
  const reps = Number(process.env['KILN_BENCH_REPS'] ?? 5);
  const base = randomMatrix(K * N, 11);
  const feeds = Object.fromEntries(MS.map((M) => [M, { a: makeTensor('f32', [M, K], randomMatrix(M * K, 12)) }]));
  const dense = await compile(denseGraph(base, K, N), { backend: 'webgpu' });
  const points: Point[] = [];
  const denseRuns = new Map(MS.map((M) => [M, [] as number[]]));
  const measure = async (
    variants: { layout: LayoutName; s: Session; weight: Float32Array; p?: PackedSparse }[],
    d: number,
  ) => {
    for (const M of MS) {
      const f = feeds[M]! as Record<string, Tensor>;
      const t = await pairedRatios(
        variants.map((v) => () => v.s.run(f)),
        M === 1 ? reps * 2 : reps,
      );
      variants.forEach((v, i) => {
        const c = layoutCosts({
          K,
          N,
          valueBytes: 4,
          nnz: v.p && v.layout === 'csr' ? v.p.values.length : K * N,
          twoFour: v.layout === 'nm',
          bsr: v.layout === 'bsr' ? { block: BLOCK, nnzb: v.p!.indices.length } : undefined,
        }).find((x) => x.layout === v.layout)!;
        const ratio = t.ratio[i]!;
        points.push({ density: d, M, layout: v.layout, ms: 0, ratio, bytes: c.bytes, macs: c.macs, weight: v.weight });
        if (i === 0) denseRuns.get(M)!.push(...t.dense);
      });
    }
  };
  for (const d of DENSITIES) {
    const wu = unstructured(base, d, 100 + d * 100);
    const wb = blocked(base, K, N, d, 200 + d * 100);
    const pc = packCsr(wu, K, N);
    const pb = packBsr(wb, K, N, BLOCK);
    const variants = [
      { layout: 'dense' as const, s: dense, weight: wu },
      { layout: 'csr' as const, s: await compile(sparseGraph(pc), { backend: 'webgpu' }), weight: wu, p: pc },
      { layout: 'bsr' as const, s: await compile(sparseGraph(pb), { backend: 'webgpu' }), weight: wb, p: pb },
    ];
    if (d === 0.5) {
      const w24 = twoFour(base, K, N);
      variants.push({
        layout: 'nm' as const,
        s: await compile(sparseGraph(packNm(w24, K, N)), { backend: 'webgpu' }),
        weight: w24,
      } as never);
    }
    await measure(variants, d);
    for (const v of variants.slice(1)) v.s.dispose();
    process.stderr.write(`density ${d} done\n`);
  }
  dense.dispose();

  // the dense kernel is the same at every density (same shape, same weight bytes): its time is the best of all its
  // runs; every variant's time is its paired ratio to dense times that
  for (const p of points) p.ms = p.ratio * Math.min(...denseRuns.get(p.M)!);
  const fitted = fitLayoutCosts(points, 'lavapipe (this run)');
  const dump = process.env['KILN_SPARSE_POINTS'];
  if (dump) writeFileSync(dump, JSON.stringify(points.map((p) => ({ ...p, weight: undefined }))));
  const at = (d: number, M: number, l: LayoutName) =>
    points.find((p) => p.density === d && p.M === M && p.layout === l);
  console.log(
    `sparse: a [M, ${K}] · W [${K}, ${N}] f32 on WebGPU, ms = median paired ratio to dense over ${2 * reps} (M = 1) / ${reps} (M = 32) rounds × dense's best`,
  );
  const rows: string[][] = [
    ['density', 'M', 'dense', 'csr', 'bsr 4x4', '2:4', 'fastest', 'model (csr weight)', 'model (bsr weight)', 'agree'],
  ];
  let agreeAll = true;
  let agreeStrict = true;
  let fittedStrict = true;
  let fittedAll = true;
  const stats = new Map<Float32Array, ReturnType<typeof weightStats>>();
  for (const M of MS)
    for (const d of DENSITIES) {
      const ps = (['dense', 'csr', 'bsr', 'nm'] as const).map((l) => at(d, M, l));
      // per pruned weight: measured fastest of the layouts that weight can take vs the model's choice
      const judge = (w: Float32Array, layouts: LayoutName[], k: LayoutCostConstants = LAVAPIPE_COSTS) => {
        let s = stats.get(w);
        if (!s) stats.set(w, (s = weightStats(w, K, N, 4)));
        const choice = estimateLayouts(s, M, k).filter((e) => layouts.includes(e.layout))[0]!.layout;
        const times = layouts.map((l) => ({ l, ms: at(d, M, l)!.ms })).sort((a, b) => a.ms - b.ms);
        const measured = times[0]!.l;
        const chosenMs = times.find((t) => t.l === choice)!.ms;
        // a tie: the chosen layout within TIE of the fastest (this VM's run-to-run noise)
        const tie = choice !== measured && chosenMs <= times[0]!.ms * (1 + TIE);
        return { choice, measured, tie };
      };
      const u = judge(ps[1]!.weight, ['dense', 'csr']);
      const b = judge(ps[2]!.weight, ['dense', 'bsr']);
      const n = ps[3] ? judge(ps[3].weight, ['dense', 'nm']) : undefined;
      const js = [u, b, ...(n ? [n] : [])];
      const strict = js.every((j) => j.choice === j.measured);
      const ok = js.every((j) => j.choice === j.measured || j.tie);
      agreeAll &&= ok;
      agreeStrict &&= strict;
      const f = [judge(ps[1]!.weight, ['dense', 'csr'], fitted), judge(ps[2]!.weight, ['dense', 'bsr'], fitted)];
      if (ps[3]) f.push(judge(ps[3].weight, ['dense', 'nm'], fitted));
      fittedStrict &&= f.every((j) => j.choice === j.measured);
      fittedAll &&= f.every((j) => j.choice === j.measured || j.tie);
      const fastest = ps.filter((p) => p).sort((x, y) => x!.ms - y!.ms)[0]!.layout;
      rows.push([
        `${d * 100}%`,
        String(M),
        ...ps.map((p) => (p ? p.ms.toFixed(1) : '')),
        fastest,
        `${u.choice} (fastest ${u.measured})`,
        `${b.choice} (fastest ${b.measured})${n ? `; 2:4 wt: ${n.choice} (fastest ${n.measured})` : ''}`,
        strict ? 'yes' : ok ? `tie (< ${TIE * 100}%)` : 'NO',
      ]);
    }
  printTable(rows);
  for (const M of MS) {
    for (const l of ['csr', 'bsr'] as const) {
      // crossover: the density where the layout's time meets dense's, interpolated between tested densities
      let cross = 'none in 5–90%';
      for (let i = 0; i + 1 < DENSITIES.length; i++) {
        const [d0, d1] = [DENSITIES[i]!, DENSITIES[i + 1]!];
        const r0 = at(d0, M, l)!.ms - at(d0, M, 'dense')!.ms;
        const r1 = at(d1, M, l)!.ms - at(d1, M, 'dense')!.ms;
        if (r0 < 0 && r1 >= 0) cross = `${((d0 + ((d1 - d0) * -r0) / (r1 - r0)) * 100).toFixed(0)}%`;
      }
      if (at(DENSITIES[0]!, M, l)!.ms >= at(DENSITIES[0]!, M, 'dense')!.ms) cross = 'slower than dense at 5%';
      else if (at(0.9, M, l)!.ms < at(0.9, M, 'dense')!.ms) cross = 'faster than dense up to 90%';
      console.log(`crossover M = ${M}, ${l} vs dense: ${cross}`);
    }
  }
  console.log(
    `cost model (built-in ${LAVAPIPE_COSTS.device} constants) picks the measured fastest at every density: ` +
      `${agreeStrict}; the fastest or within ${TIE * 100}% of it: ${agreeAll}`,
  );
  console.log(`constants fitted to this run: ${JSON.stringify(fitted)}`);
  console.log(
    `with the fitted constants the model picks the measured fastest at every density: ${fittedStrict}; ` +
      `the fastest or within ${TIE * 100}% of it: ${fittedAll}`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchSparse();
  process.exit(0);
}
