/**
 * The layout cost model of `sparse-select`: for one matmul by a constant weight W [K, N], the estimated time of each
 * layout kiln can run it in — dense (the contraction templates), csr, bsr(h×w), nm(2:4) (`sparse_matmul`).
 *
 *   time(layout, M) = launch + weight bytes(layout) / bandwidth(layout) + M · stored MACs(layout) / rate(layout)
 *
 * (launch — the per-run overhead — is shared by the layouts: it never changes a choice, only the printed estimates)
 *
 * weight bytes include the indices (csr: 2 per value — u16, 4 past 65536 k — + 4 per row; bsr: 2 (4) per block + 4 per
 * block row; 2:4: half the values + 4 bits per group of 4); stored MACs per row of a are K · N (dense), nnz (csr), nnzb · h · w (bsr),
 * K · N / 2 (2:4). The per-layout bandwidth and rate are a device's constants: the defaults are fitted to
 * `npm run bench -- sparse` on this project's lavapipe device (4096 × 4096, M = 1 and 32; see docs/sparsity.md),
 * and every one is overridable (`LayoutCostConstants`), e.g. with another device's fit.
 */
import { isTwoFour } from '../../ir/ops/sparse-formats.js';

export type LayoutName = 'dense' | 'csr' | 'bsr' | 'nm';

export interface LayoutRate {
  /** Weight bytes per ns the layout's kernel streams at M = 1. */
  readonly bytesPerNs: number;
  /** Stored multiply-adds per ns per row of a (the M-proportional part). */
  readonly macsPerNs: number;
}

export interface LayoutCostConstants {
  readonly device: string;
  readonly launchNs: number;
  readonly dense: LayoutRate;
  readonly csr: LayoutRate;
  readonly bsr: LayoutRate;
  readonly nm: LayoutRate;
}

/** Fitted to two runs of `bench/sparse.ts` pooled, on lavapipe (llvmpipe, 2 shared cores); see docs/sparsity.md. */
export const LAVAPIPE_COSTS: LayoutCostConstants = {
  device: 'lavapipe',
  launchNs: 470_000,
  dense: { bytesPerNs: 2.11, macsPerNs: 1.23 },
  csr: { bytesPerNs: 1.98, macsPerNs: 1.3 },
  bsr: { bytesPerNs: 3.86, macsPerNs: 1.29 },
  nm: { bytesPerNs: 2.17, macsPerNs: 1.72 },
};

/** What the model needs to know of a weight. */
export interface WeightStats {
  readonly K: number;
  readonly N: number;
  /** Bytes per stored value (4 for f32, 2 for f16). */
  readonly valueBytes: number;
  readonly nnz: number;
  readonly twoFour: boolean;
  /** The best bsr block found and its non-zero block count. */
  readonly bsr?: { readonly block: readonly [number, number]; readonly nnzb: number };
}

export interface LayoutEstimate {
  readonly layout: LayoutName;
  readonly bytes: number;
  /** MACs for one row of a. */
  readonly macs: number;
  readonly ns: number;
}

/** Weight bytes and stored MACs per row of each layout the weight can take. */
export function layoutCosts(s: WeightStats): { layout: LayoutName; bytes: number; macs: number }[] {
  const { K, N, valueBytes: vb } = s;
  const out = [{ layout: 'dense' as LayoutName, bytes: K * N * vb, macs: K * N }];
  const ib = (cols: number) => (cols <= 65536 ? 2 : 4); // sparseIndexDtype
  out.push({ layout: 'csr', bytes: s.nnz * (vb + ib(K)) + 4 * (N + 1), macs: s.nnz });
  if (s.bsr) {
    const [h, w] = s.bsr.block;
    const bytes = s.bsr.nnzb * (h * w * vb + ib(K / w)) + 4 * (N / h + 1);
    out.push({ layout: 'bsr', bytes, macs: s.bsr.nnzb * h * w });
  }
  if (s.twoFour) out.push({ layout: 'nm', bytes: (K * N * vb) / 2 + (K * N) / 8, macs: (K * N) / 2 });
  return out;
}

/** Estimated times of every layout for M rows of a, fastest first. */
export function estimateLayouts(s: WeightStats, M: number, k: LayoutCostConstants = LAVAPIPE_COSTS): LayoutEstimate[] {
  return layoutCosts(s)
    .map((c) => {
      const r = k[c.layout];
      return { ...c, ns: k.launchNs + c.bytes / r.bytesPerNs + (M * c.macs) / r.macsPerNs };
    })
    .sort((a, b) => a.ns - b.ns);
}

/** BSR blocks the selection tries (h along N, w along K). */
export const BSR_BLOCKS: readonly (readonly [number, number])[] = [
  [1, 4],
  [1, 8],
  [4, 4],
  [8, 8],
  [16, 16],
];

/** Non-zero h × w blocks of Wᵀ for a dense W [K, N] (0 when the block does not divide the weight). */
export function countBlocks(w: ArrayLike<number>, K: number, N: number, h: number, bw: number): number {
  if (N % h || K % bw) return 0;
  let nnzb = 0;
  for (let rb = 0; rb < N / h; rb++)
    for (let kb = 0; kb < K / bw; kb++) {
      let any = false;
      for (let j = 0; j < bw && !any; j++) {
        const row = (kb * bw + j) * N + rb * h;
        for (let i = 0; i < h; i++)
          if (w[row + i] !== 0) {
            any = true;
            break;
          }
      }
      if (any) nnzb++;
    }
  return nnzb;
}

/** The statistics of a dense weight: zeros, 2:4 along K, and the bsr block with the cheapest estimate at `M`. */
export function weightStats(
  w: ArrayLike<number>,
  K: number,
  N: number,
  valueBytes: number,
  M = 1,
  k: LayoutCostConstants = LAVAPIPE_COSTS,
): WeightStats {
  let nnz = 0;
  for (let i = 0; i < w.length; i++) if (w[i] !== 0) nnz++;
  const base = { K, N, valueBytes, nnz, twoFour: nnz <= (K * N) / 2 && isTwoFour(w, K, N) };
  let best: WeightStats | undefined;
  let bestNs = Infinity;
  for (const [h, bw] of BSR_BLOCKS) {
    if (N % h || K % bw) continue;
    const s = { ...base, bsr: { block: [h, bw] as const, nnzb: countBlocks(w, K, N, h, bw) } };
    const e = estimateLayouts(s, M, k).find((x) => x.layout === 'bsr')!;
    if (e.ns < bestNs) [best, bestNs] = [s, e.ns];
  }
  return best ?? base;
}

/** Solve A x = b (Gaussian elimination with partial pivoting). */
function solve(A: number[][], b: number[]): number[] {
  const n = b.length;
  const M = A.map((row, i) => [...row, b[i]!]);
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r]![c]!) > Math.abs(M[piv]![c]!)) piv = r;
    [M[c], M[piv]] = [M[piv]!, M[c]!];
    for (let r = 0; r < n; r++) {
      if (r === c || M[c]![c] === 0) continue;
      const f = M[r]![c]! / M[c]![c]!;
      for (let k = c; k <= n; k++) M[r]![k]! -= f * M[c]![k]!;
    }
  }
  return M.map((row, i) => row[n]! / row[i]!);
}

const LAYOUTS: readonly LayoutName[] = ['dense', 'csr', 'bsr', 'nm'];

/** One measured run of a layout: its weight bytes and stored MACs (`layoutCosts`), rows of a, milliseconds. */
export interface LayoutTiming {
  readonly layout: LayoutName;
  readonly M: number;
  readonly bytes: number;
  readonly macs: number;
  readonly ms: number;
}

/**
 * A device's constants from measurements (`npm run bench -- sparse` prints them): least squares (relative errors) of
 * t = launch + bytes / bandwidth(layout) + M · macs / rate(layout) over every timing, the launch (per-run overhead:
 * submission, a in, y out) shared by the layouts. A layout without timings keeps LAVAPIPE_COSTS' rates.
 */
export function fitLayoutCosts(points: readonly LayoutTiming[], device: string): LayoutCostConstants {
  const cols = 1 + 2 * LAYOUTS.length;
  const A = Array.from({ length: cols }, () => new Array<number>(cols).fill(0));
  const b = new Array<number>(cols).fill(0);
  for (const p of points) {
    const ns = p.ms * 1e6;
    const x = new Array<number>(cols).fill(0);
    const l = LAYOUTS.indexOf(p.layout);
    x[0] = 1 / ns;
    x[1 + 2 * l] = p.bytes / ns;
    x[2 + 2 * l] = (p.M * p.macs) / ns;
    for (let r = 0; r < cols; r++) {
      b[r]! += x[r]!;
      for (let c = 0; c < cols; c++) A[r]![c]! += x[r]! * x[c]!;
    }
  }
  for (let l = 0; l < LAYOUTS.length; l++)
    if (!points.some((p) => p.layout === LAYOUTS[l])) {
      // no data: pin the layout's two unknowns to the defaults (a row fixing each)
      const d = LAVAPIPE_COSTS[LAYOUTS[l]!];
      for (const [c, v] of [
        [1 + 2 * l, 1 / d.bytesPerNs],
        [2 + 2 * l, 1 / d.macsPerNs],
      ] as const) {
        A[c]![c] = 1;
        b[c] = v;
      }
    }
  const z = solve(A, b);
  const rate = (l: number) => ({
    bytesPerNs: 1 / Math.max(z[1 + 2 * l]!, 1e-12),
    macsPerNs: 1 / Math.max(z[2 + 2 * l]!, 1e-12),
  });
  return { device, launchNs: Math.max(0, z[0]!), dense: rate(0), csr: rate(1), bsr: rate(2), nm: rate(3) };
}
