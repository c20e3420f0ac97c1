/**
 * The tiled multi-query attention kernel (codegen/lower/attention.ts `tiledAttention`: one workgroup per tile of query
 * rows, K / V tiles in workgroup memory) on WebGPU and cuda-emu against the float64 reference: several K/V tiles and a
 * partial last one, S ≠ T (past keys, with and without present outputs), causal, GQA 4:1, every mask kind (additive,
 * bool, mask_fill, nonpad lengths), fully masked rows, head dims that are not a multiple of the threads per row, 3-D
 * and 4-D forms, f16; and which kernel runs (`tiled` requested; `auto` for many queries).
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import '../../ir/index.js';
import type { Attrs } from '../../ir/registry.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { compile } from '../../src/session.js';
import { checkAgainstReference } from '../helpers/backends.js';
import { deviceBackends } from '../helpers/device-backends.js';

const backends = await deviceBackends();
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

let seed = 7;
function rnd(): number {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return (seed / 2147483648) * 2 - 1;
}
function rand(dtype: DType, shape: readonly number[], gen?: () => number): Tensor {
  const g = gen ?? (dtype === 'bool' ? () => (rnd() < 0.3 ? 0 : 1) : rnd);
  return makeTensor(dtype, shape, Array.from({ length: numel(shape) }, g));
}

interface Case {
  rank?: 3 | 4;
  B?: number;
  Hq?: number;
  Hkv?: number;
  S: number;
  Tk: number;
  D: number;
  Dv?: number;
  past?: number;
  mask?: { shape: number[]; dtype: DType; fill?: (i: number) => number };
  nonpad?: number[];
  attrs?: Attrs;
  outputs?: number;
  dtype?: DType;
  qScale?: number;
}

function graphOf(c: Case): { graph: ReturnType<GraphBuilder['build']>; feeds: Record<string, Tensor> } {
  const rank = c.rank ?? 4;
  const [B, Hq, Hkv, S, Tk, D] = [c.B ?? 1, c.Hq ?? 2, c.Hkv ?? c.Hq ?? 2, c.S, c.Tk, c.D];
  const Dv = c.Dv ?? D;
  const dt = c.dtype ?? 'f32';
  const shape = (h: number, s: number, d: number) => (rank === 4 ? [B, h, s, d] : [B, s, h * d]);
  const qs = c.qScale ?? 1;
  const P = c.past ?? 0;
  const ins: (Tensor | null)[] = [
    rand(dt, shape(Hq, S, D), () => rnd() * qs),
    rand(dt, shape(Hkv, Tk, D)),
    rand(dt, shape(Hkv, Tk, Dv)),
    c.mask
      ? rand(
          c.mask.dtype,
          c.mask.shape,
          c.mask.fill
            ? (() => {
                let i = 0;
                return () => c.mask!.fill!(i++);
              })()
            : undefined,
        )
      : null,
    c.past !== undefined ? rand(dt, [B, Hkv, P, D]) : null,
    c.past !== undefined ? rand(dt, [B, Hkv, P, Dv]) : null,
    c.nonpad ? makeTensor('i64', [B], c.nonpad) : null,
  ];
  const attrs: Attrs = rank === 3 ? { q_num_heads: Hq, kv_num_heads: Hkv, ...c.attrs } : { ...c.attrs };
  const b = new GraphBuilder('t');
  const feeds: Record<string, Tensor> = {};
  const vals = ins.map((t, i) => {
    if (!t) return null;
    feeds[`in${i}`] = t;
    return b.input(`in${i}`, t.dtype, t.shape);
  });
  b.opN('attention', vals, attrs, c.outputs ?? 1).forEach((o, i) => b.output(o, `out${i}`));
  return { graph: b.build(), feeds };
}

async function check(backend: string, c: Case, schedule: 'tiled' | 'auto' = 'tiled'): Promise<void> {
  const { graph, feeds } = graphOf(c);
  const mism = await checkAgainstReference(graph, feeds, {
    backend: backend as 'webgpu',
    attentionSchedule: schedule,
    longReduction: true,
  });
  expect(mism, JSON.stringify(c)).toEqual([]);
}

/** Names of the kernels a compiled graph runs for these feeds. */
async function kernelNames(backend: string, c: Case, schedule?: 'tiled' | 'auto'): Promise<string[]> {
  const { graph, feeds } = graphOf(c);
  const s = await compile(graph, { backend: backend as 'webgpu', attentionSchedule: schedule });
  try {
    await s.run(feeds);
    return s.kernels().map((k) => k.name);
  } finally {
    s.dispose();
  }
}

describe.each(backends)('tiled attention (%s)', (backend) => {
  it('several K/V tiles with a partial last one, partial query tiles, large scores; 3-D form', async () => {
    await check(backend, { S: 37, Tk: 53, D: 16, qScale: 6 });
    await check(backend, { rank: 3, B: 2, Hq: 2, S: 19, Tk: 70, D: 8, Dv: 12 });
  }, 120_000);

  it('head dims not a multiple of the threads per row; wide heads (64, 72, 128)', async () => {
    await check(backend, { Hq: 1, S: 9, Tk: 33, D: 5, Dv: 3 });
    await check(backend, { Hq: 1, S: 20, Tk: 40, D: 72, Dv: 66 });
    await check(backend, { Hq: 1, S: 17, Tk: 40, D: 128 });
    await check(backend, { Hq: 1, S: 33, Tk: 45, D: 64 });
  }, 120_000);

  it('causal, GQA 4:1, past keys (S ≠ T) with and without present outputs', async () => {
    await check(backend, { Hq: 4, Hkv: 1, S: 21, Tk: 21, D: 8, attrs: { is_causal: true } });
    await check(backend, { Hq: 4, Hkv: 1, S: 10, Tk: 10, D: 8, past: 27, attrs: { is_causal: true }, outputs: 3 });
    await check(backend, { B: 2, Hq: 2, Hkv: 1, S: 7, Tk: 7, D: 6, past: 30 });
    await check(backend, { rank: 3, Hq: 4, Hkv: 2, S: 12, Tk: 12, D: 8, past: 0, outputs: 3 });
  }, 120_000);

  it('masks: additive broadcast, bool, mask_fill, nonpad lengths with causal, softcap', async () => {
    await check(backend, { B: 2, S: 18, Tk: 41, D: 8, mask: { shape: [1, 2, 18, 41], dtype: 'f32' } });
    await check(backend, { S: 18, Tk: 41, D: 8, mask: { shape: [18, 36], dtype: 'bool' }, attrs: { softcap: 1.5 } });
    await check(backend, {
      S: 11,
      Tk: 30,
      D: 8,
      mask: { shape: [11, 30], dtype: 'bool' },
      attrs: { mask_fill: -10000 },
    });
    await check(backend, { B: 2, S: 9, Tk: 40, D: 8, nonpad: [23, 40], attrs: { is_causal: true } });
  }, 120_000);

  it('fully masked rows give zeros (bool mask rows of falses, causal with a mask)', async () => {
    // every 3rd query row masks every key
    const [S, T] = [13, 29];
    await check(backend, {
      S,
      Tk: T,
      D: 8,
      mask: { shape: [S, T], dtype: 'bool', fill: (i) => (Math.floor(i / T) % 3 === 0 ? 0 : i % 2) },
      attrs: { is_causal: true },
    });
  }, 120_000);

  it('f16', async () => {
    await check(backend, { S: 20, Tk: 33, D: 16, dtype: 'f16', attrs: { is_causal: true } });
  }, 120_000);

  it('which kernel: tiled when asked; qk_matmul_output falls back to the per-row kernel', async () => {
    expect((await kernelNames(backend, { S: 8, Tk: 8, D: 8 }, 'tiled')).join()).toMatch(/attention_tiled/);
    const qk = await kernelNames(backend, { S: 8, Tk: 8, D: 8, outputs: 4 }, 'tiled');
    expect(qk.join()).not.toMatch(/attention_tiled/);
    await check(backend, { S: 8, Tk: 8, D: 8, outputs: 4, attrs: { qk_matmul_output_mode: 3 } });
    // empty heads (no workgroup-memory tile to declare): the per-row kernel
    await check(backend, { S: 6, Tk: 5, D: 0, Dv: 3 });
  }, 120_000);
});
