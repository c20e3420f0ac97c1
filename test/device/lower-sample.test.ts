/**
 * sample_token lowered and run on every device backend (webgpu, cuda-emu) against the float64 reference: random rows
 * (vocab 7 / 512 / 4099 / 32000, batches 1–4, temperature / top_k / top_p / seed / step different per row, greedy
 * rows among them), f16 logits with i32 parameters, and exact ties (equal logits), which the kernel orders by index
 * as the reference does.
 *
 * The device sums weights in f32, the reference in float64, so a draw (or a top_p cut) landing within EPS of the
 * total from a cumulative weight may legitimately go either way: such rows are skipped, and each test asserts that
 * most rows were compared and that many of them drew a token other than the argmax (so sampling is exercised).
 * Random logits are distinct (a shuffled grid, spacing far above the f32 rounding), so ties arise only where
 * a test puts them on purpose.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import '../../ir/index.js';
import { sampleRow, sampleUniform } from '../../ir/ops/sample.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { compile, type BackendName } from '../../src/session.js';
import { deviceBackends } from '../helpers/device-backends.js';

const backends: BackendName[] = await deviceBackends();

/** Skip rows whose float64 draw or top_p threshold is within EPS · total of a cumulative weight. */
const EPS = 1e-5;

function lcg(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface Row {
  logits: Float32Array;
  temp: number;
  k: number;
  p: number;
  seed: number;
  step: number;
}

const NAMES = ['logits', 'temperature', 'top_k', 'top_p', 'seed', 'step'] as const;

function graphOf(dtype: DType, intDtype: DType): Graph {
  const b = new GraphBuilder('sample');
  const dts: DType[] = [dtype, 'f32', intDtype, 'f32', intDtype, intDtype];
  const ins = NAMES.map((n, i) => b.input(n, dts[i]!, i === 0 ? ['B', 'V'] : ['B']));
  b.output(b.op('sample_token', ins), 'y');
  return b.build();
}

function feedsOf(rows: readonly Row[], dtype: DType, intDtype: DType): Record<string, Tensor> {
  const V = rows[0]!.logits.length;
  const B = rows.length;
  const logits = new Float32Array(B * V);
  rows.forEach((r, i) => logits.set(r.logits, i * V));
  return {
    logits: makeTensor(dtype, [B, V], logits),
    temperature: makeTensor(
      'f32',
      [B],
      rows.map((r) => r.temp),
    ),
    top_k: makeTensor(
      intDtype,
      [B],
      rows.map((r) => r.k),
    ),
    top_p: makeTensor(
      'f32',
      [B],
      rows.map((r) => r.p),
    ),
    seed: makeTensor(
      intDtype,
      [B],
      rows.map((r) => r.seed),
    ),
    step: makeTensor(
      intDtype,
      [B],
      rows.map((r) => r.step),
    ),
  };
}

/**
 * True when the float64 computation of the row has a cumulative weight within EPS (relative to the total) of the
 * top_p threshold or of the draw's target: f32 sums may fall on the other side.
 */
function nearBoundary(r: Row, u: number): boolean {
  if (!(r.temp > 0)) return false;
  const l = r.logits;
  const V = l.length;
  let idx = Array.from({ length: V }, (_, i) => i).sort((a, b) => l[b]! - l[a]! || a - b);
  if (r.k > 0 && r.k < V) idx = idx.slice(0, r.k);
  const w = idx.map((i) => Math.exp((l[i]! - l[idx[0]!]!) / r.temp));
  const cum: number[] = [];
  w.reduce((a, x) => (cum.push(a + x), a + x), 0);
  const near = (cs: readonly number[], t: number, total: number) => cs.some((x) => Math.abs(x - t) <= EPS * total);
  let total = cum[cum.length - 1]!;
  if (r.p < 1) {
    if (near(cum, r.p * total, total)) return true;
    let keep = cum.findIndex((x) => x >= r.p * total) + 1;
    if (keep === 0) keep = cum.length;
    total = cum[keep - 1]!;
    cum.length = keep;
  }
  return near(cum, u * total, total);
}

/** A row of distinct logits: a shuffled grid scaled to `spread`, so softmax weights span e^-spread. */
function randomRow(rnd: () => number, V: number): Row {
  const perm = Array.from({ length: V }, (_, i) => i);
  for (let i = V - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  const spread = [2, 8, 30][Math.floor(rnd() * 3)]!;
  const logits = Float32Array.from(perm, (q) => (spread * q) / V - spread / 2);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  return {
    logits,
    temp: pick([0, 0.3, 0.7, 1, 1.5, 3]),
    k: pick([0, 1, 2, 5, 40, V, V + 3, -1]),
    p: pick([1, 1, 0.95, 0.7, 0.3, 0.01]),
    seed: Math.floor(rnd() * 2 ** 31),
    step: Math.floor(rnd() * 2 ** 20),
  };
}

describe.each(backends)('%s: sample_token', (backend) => {
  /** Runs batches of rows; returns [rows compared, rows skipped, compared rows whose token is not the argmax]. */
  async function check(
    batches: readonly (readonly Row[])[],
    dtype: DType = 'f32',
    intDtype: DType = 'i64',
  ): Promise<[number, number, number]> {
    const session = await compile(graphOf(dtype, intDtype), { backend });
    let compared = 0;
    let skipped = 0;
    let sampled = 0;
    try {
      for (const rows of batches) {
        const feeds = feedsOf(rows, dtype, intDtype);
        const got = Array.from((await session.run(feeds))['y']!.data);
        const V = rows[0]!.logits.length;
        rows.forEach((r, b) => {
          // the reference sees the logits as stored (f16-rounded for f16)
          const l = feeds['logits']!.data.subarray(b * V, (b + 1) * V);
          const row = { ...r, logits: Float32Array.from(l) };
          const u = sampleUniform(r.seed, r.step);
          if (nearBoundary(row, u)) {
            skipped++;
            return;
          }
          const want = sampleRow(row.logits, r.temp, r.k, r.p, u);
          expect(got[b], `row ${b} of ${rows.length}, vocab ${V}: ${JSON.stringify({ ...r, logits: [] })}`).toBe(want);
          compared++;
          if (want !== sampleRow(row.logits, 0, 0, 1, 0)) sampled++;
        });
      }
    } finally {
      session.dispose();
    }
    return [compared, skipped, sampled];
  }

  it('random rows, vocab 7 / 512 / 4099 / 32000, batches 1–4, per-row parameters', async () => {
    const rnd = lcg(20240611);
    const batches: Row[][] = [];
    for (const V of [7, 512, 4099, 32000]) {
      for (const B of [1, 2, 3, 4]) batches.push(Array.from({ length: B }, () => randomRow(rnd, V)));
    }
    const [compared, skipped, sampled] = await check(batches);
    expect(compared + skipped).toBe(40);
    expect(compared, `skipped ${skipped}`).toBeGreaterThanOrEqual(34);
    expect(sampled).toBeGreaterThanOrEqual(10);
  }, 300_000);

  it('many steps of one 512-token row hit the same tokens as the reference', async () => {
    // one row at temperature 1.5, all tokens kept: the draws spread over the vocab
    const rnd = lcg(7);
    const base = randomRow(rnd, 512);
    const rows = Array.from({ length: 4 }, (_, b) => ({ ...base, temp: 1.5, k: 0, p: b < 2 ? 1 : 0.9, seed: 99 }));
    const batches = Array.from({ length: 6 }, (_, s) => rows.map((r, b) => ({ ...r, step: s * 4 + b })));
    const [compared, skipped, sampled] = await check(batches);
    expect(compared, `skipped ${skipped}`).toBeGreaterThanOrEqual(20);
    expect(sampled).toBeGreaterThanOrEqual(15);
  }, 300_000);

  it('f16 logits with i32 parameters', async () => {
    const rnd = lcg(31);
    const batches = [7, 512, 4099].map((V) => Array.from({ length: 3 }, () => randomRow(rnd, V)));
    const [compared, skipped] = await check(batches, 'f16', 'i32');
    expect(compared, `skipped ${skipped}`).toBeGreaterThanOrEqual(7);
  }, 300_000);

  it('exact ties are walked lower index first, as in the reference', async () => {
    // u(42, 7) = 0.050, u(0, 1) = 0.573, u(-1, 3) = 0.893 (test/unit/ops-sample.test.ts); equal weights sum exactly
    const tied = Float32Array.from([1, 5, 5, 0, 5, 5, -2]);
    const rows: Row[] = [
      { logits: tied, temp: 1, k: 0, p: 1, seed: 42, step: 7 }, // 4 tied maxima of e^0, e^-4, e^-5, e^-7 → 1
      { logits: tied, temp: 1, k: 0, p: 1, seed: 0, step: 1 }, // target 0.573 · 4.03 → third tied: 4
      { logits: tied, temp: 1, k: 2, p: 1, seed: -1, step: 3 }, // top_k 2 keeps 1, 2 → 2
      { logits: tied, temp: 0, k: 0, p: 1, seed: -1, step: 3 }, // greedy → 1
    ];
    const session = await compile(graphOf('f32', 'i64'), { backend });
    try {
      const got = Array.from((await session.run(feedsOf(rows, 'f32', 'i64')))['y']!.data);
      expect(got).toEqual([1, 4, 2, 1]);
      expect(got).toEqual(rows.map((r) => sampleRow(r.logits, r.temp, r.k, r.p, sampleUniform(r.seed, r.step))));
    } finally {
      session.dispose();
    }
  }, 120_000);
});
