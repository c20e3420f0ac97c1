/**
 * attention and rotary_embedding lowered to WGSL and run on WebGPU (lavapipe without a GPU), compared with the
 * float64 reference: every output (y, present_key / present_value, qk_matmul_output) with f32 tolerance after long
 * reductions (f16 tolerance for f16 graphs, with and without shader-f16).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import '../../ir/index.js';
import type { Attrs } from '../../ir/registry.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { checkAgainstReference, skipWebgpu } from '../helpers/backends.js';
import { PROP_RUNS } from '../helpers/paths.js';

const noGpu = await skipWebgpu();
const runs = Math.max(6, Math.round(PROP_RUNS / 4));

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const randInt = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));

function rand(dtype: DType, shape: readonly number[], gen: () => number = () => Math.random() * 2 - 1): Tensor {
  return makeTensor(dtype, shape, Array.from({ length: numel(shape) }, gen));
}

async function check(
  op: string,
  ins: readonly (Tensor | null)[],
  attrs: Attrs,
  numOutputs: number,
  disableF16 = false,
): Promise<void> {
  const b = new GraphBuilder('t');
  const feeds: Record<string, Tensor> = {};
  const vals = ins.map((t, i) => {
    if (!t) return null;
    feeds[`in${i}`] = t;
    return b.input(`in${i}`, t.dtype, t.shape);
  });
  b.opN(op, vals, attrs, numOutputs).forEach((o, i) => b.output(o, `out${i}`));
  const mism = await checkAgainstReference(b.build(), feeds, { backend: 'webgpu', disableF16, longReduction: true });
  expect(mism, `${op} ${JSON.stringify(attrs)} shapes ${ins.map((t) => (t ? `[${t.shape}]` : '_'))}`).toEqual([]);
}

interface AttnCase {
  rank?: 3 | 4;
  B?: number;
  Hq?: number;
  Hkv?: number;
  S?: number;
  Tk?: number;
  D?: number;
  Dv?: number;
  /** Past length (undefined: no cache inputs). */
  past?: number;
  /** Mask shape (last dim defaults to all keys) and dtype. */
  mask?: { shape: number[]; dtype: DType };
  nonpad?: number[];
  attrs?: Attrs;
  /** Node outputs: 1 (y), 3 (+ present), 4 (+ qk_matmul_output). */
  outputs?: number;
  dtype?: DType;
  disableF16?: boolean;
  /** Scale Q so scores are large (exercises the running max). */
  qScale?: number;
}

async function checkAttention(c: AttnCase): Promise<void> {
  const rank = c.rank ?? 4;
  const [B, Hq, Hkv, S, Tk, D] = [c.B ?? 2, c.Hq ?? 2, c.Hkv ?? c.Hq ?? 2, c.S ?? 3, c.Tk ?? 5, c.D ?? 8];
  const Dv = c.Dv ?? D;
  const dt = c.dtype ?? 'f32';
  const qs = c.qScale ?? 1;
  const shape = (h: number, s: number, d: number) => (rank === 4 ? [B, h, s, d] : [B, s, h * d]);
  const q = rand(dt, shape(Hq, S, D), () => (Math.random() * 2 - 1) * qs);
  const k = rand(dt, shape(Hkv, Tk, D));
  const v = rand(dt, shape(Hkv, Tk, Dv));
  const P = c.past ?? 0;
  const pk = c.past !== undefined ? rand(dt, [B, Hkv, P, D]) : null;
  const pv = c.past !== undefined ? rand(dt, [B, Hkv, P, Dv]) : null;
  const mask = c.mask
    ? rand(c.mask.dtype, c.mask.shape, c.mask.dtype === 'bool' ? () => (Math.random() < 0.7 ? 1 : 0) : undefined)
    : null;
  const nonpad = c.nonpad ? makeTensor('i64', [B], c.nonpad) : null;
  const attrs: Attrs = rank === 3 ? { q_num_heads: Hq, kv_num_heads: Hkv, ...c.attrs } : { ...c.attrs };
  await check('attention', [q, k, v, mask, pk, pv, nonpad], attrs, c.outputs ?? 1, c.disableF16);
}

describe.skipIf(noGpu)('attention on WebGPU', () => {
  it('4-D and 3-D, several sizes (one key, one query, odd head sizes)', async () => {
    await checkAttention({});
    await checkAttention({ rank: 3 });
    await checkAttention({ B: 1, Hq: 1, S: 1, Tk: 1, D: 1 });
    await checkAttention({ B: 3, Hq: 3, S: 7, Tk: 11, D: 5, Dv: 3 });
    await checkAttention({ rank: 3, B: 1, Hq: 4, S: 2, Tk: 9, D: 6, Dv: 10 });
  }, 60_000);

  it('long key sequences (several chunks), large scores, wide V heads (several workgroups per row)', async () => {
    await checkAttention({ B: 1, Hq: 2, S: 2, Tk: 300, D: 16, qScale: 8 });
    await checkAttention({ B: 1, Hq: 1, S: 3, Tk: 129, D: 4, Dv: 300 });
    await checkAttention({ rank: 3, B: 1, Hq: 2, Hkv: 1, S: 1, Tk: 200, D: 64, Dv: 65, outputs: 4 });
    await checkAttention({ B: 1, Hq: 1, S: 2, Tk: 70, D: 8, Dv: 700, outputs: 4, attrs: { qk_matmul_output_mode: 3 } });
  }, 60_000);

  it('GQA, scale, softcap', async () => {
    await checkAttention({ Hq: 6, Hkv: 2, S: 4, Tk: 7 });
    await checkAttention({ rank: 3, Hq: 4, Hkv: 1, S: 2, Tk: 6, D: 4 });
    await checkAttention({ attrs: { scale: 0.37 } });
    await checkAttention({ attrs: { softcap: 2.5 }, qScale: 6 });
    await checkAttention({ rank: 3, Hq: 4, Hkv: 2, attrs: { softcap: 0.5, scale: 2 } });
  }, 60_000);

  it('masks: bool and float, ranks 1-4 with broadcasting, shorter than the keys', async () => {
    const [B, Hq, S, T] = [2, 3, 4, 6];
    for (const dtype of ['bool', 'f32'] as DType[]) {
      for (const shape of [[T], [S, T], [1, S, T], [B, 1, S, T], [B, Hq, S, T], [Hq, 1, T], [B, Hq, 1, T], [S, 4]]) {
        await checkAttention({ B, Hq, S, Tk: T, mask: { shape, dtype } });
      }
    }
    await checkAttention({ B, Hq, S, Tk: T, mask: { shape: [S, 0], dtype: 'f32' } }); // every key masked
  }, 60_000);

  it('causal (queries aligned to the end of past), with masks and nonpad_kv_seqlen', async () => {
    await checkAttention({ S: 5, Tk: 5, attrs: { is_causal: true } });
    await checkAttention({ S: 3, Tk: 7, attrs: { is_causal: true } });
    await checkAttention({ S: 6, Tk: 4, attrs: { is_causal: true } });
    await checkAttention({ rank: 3, S: 4, Tk: 4, past: 3, attrs: { is_causal: true }, outputs: 3 });
    await checkAttention({ S: 4, Tk: 6, mask: { shape: [4, 6], dtype: 'f32' }, attrs: { is_causal: true } });
    await checkAttention({ B: 3, S: 2, Tk: 8, nonpad: [8, 3, 0] });
    await checkAttention({ B: 3, S: 2, Tk: 8, nonpad: [8, 3, 1], attrs: { is_causal: true } });
    await checkAttention({ B: 2, S: 3, Tk: 70, nonpad: [65, 2], mask: { shape: [3, 70], dtype: 'bool' }, outputs: 4 });
  }, 60_000);

  it('past_key / past_value with and without present outputs (empty past too)', async () => {
    await checkAttention({ past: 4, outputs: 3 });
    await checkAttention({ past: 4, outputs: 1 });
    await checkAttention({ past: 0, outputs: 3 });
    await checkAttention({ rank: 3, Hq: 4, Hkv: 2, S: 1, Tk: 1, past: 9, outputs: 3 });
    await checkAttention({
      Hq: 4,
      Hkv: 2,
      S: 2,
      Tk: 3,
      past: 100,
      outputs: 3,
      mask: { shape: [2, 103], dtype: 'f32' },
    });
    await checkAttention({ Hq: 2, S: 2, Tk: 2, past: 3, outputs: 1, mask: { shape: [2, 5], dtype: 'bool' } });
    await checkAttention({ S: 2, Tk: 0, past: 3, outputs: 3 });
  }, 60_000);

  it('qk_matmul_output in its four modes', async () => {
    for (const mode of [0, 1, 2, 3]) {
      await checkAttention({
        S: 3,
        Tk: 5,
        past: 2,
        outputs: 4,
        mask: { shape: [3, 7], dtype: 'f32' },
        attrs: { qk_matmul_output_mode: mode, softcap: 1.5, is_causal: true },
      });
      await checkAttention({ rank: 3, Hq: 4, Hkv: 2, outputs: 4, attrs: { qk_matmul_output_mode: mode } });
    }
  }, 60_000);

  it('fully masked rows give zeros; -inf additive mask with softcap', async () => {
    const [B, Hq, S, T] = [1, 2, 3, 4];
    const q = rand('f32', [B, Hq, S, 4]);
    const k = rand('f32', [B, Hq, T, 4]);
    const v = rand('f32', [B, Hq, T, 4]);
    const mask = makeTensor('f32', [S, T], [0, -Infinity, 0, 1, ...Array(4).fill(-Infinity), 0.5, -Infinity, 2, 0]);
    for (const mode of [0, 2, 3]) {
      await check('attention', [q, k, v, mask], { softcap: 3, qk_matmul_output_mode: mode }, 4);
    }
    const boolMask = makeTensor('bool', [S, T], [1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0]);
    await check('attention', [q, k, v, boolMask], { qk_matmul_output_mode: 3 }, 4);
  }, 60_000);

  it('NaN in a query row poisons that row only; inf in V under a masked key is skipped', async () => {
    const [B, Hq, S, T, D] = [1, 2, 3, 4, 4];
    const q = rand('f32', [B, Hq, S, D]);
    const qd = Array.from(q.data);
    qd[D + 1] = NaN; // head 0, query row 1
    const v = Array.from(rand('f32', [B, Hq, T, D]).data);
    v[D] = Infinity; // head 0, key 1: masked below for every query
    const mask = makeTensor('bool', [T], [1, 0, 1, 1]);
    await check(
      'attention',
      [makeTensor('f32', q.shape, qd), rand('f32', [B, Hq, T, D]), makeTensor('f32', [B, Hq, T, D], v), mask],
      { qk_matmul_output_mode: 3 },
      4,
    );
  }, 60_000);

  it('f16 with and without shader-f16; bf16', async () => {
    for (const disableF16 of [false, true]) {
      await checkAttention({ dtype: 'f16', disableF16, S: 3, Tk: 70, past: 2, outputs: 4 });
      await checkAttention({
        dtype: 'f16',
        disableF16,
        rank: 3,
        Hq: 4,
        Hkv: 2,
        mask: { shape: [3, 5], dtype: 'f16' },
        attrs: { qk_matmul_output_mode: 3 },
        outputs: 4,
      });
    }
    await checkAttention({ dtype: 'bf16', past: 2, outputs: 3 });
  }, 60_000);

  it('empty outputs (no query rows)', async () => {
    await checkAttention({ S: 0, Tk: 3, outputs: 4 });
    await checkAttention({ B: 0, Tk: 3, past: 1, outputs: 3 });
  });

  it('property: random geometry, masks, causal, past, softcap and qk mode', async () => {
    const arb = fc.record({
      rank: fc.constantFrom<3 | 4>(3, 4),
      B: fc.integer({ min: 1, max: 2 }),
      Hkv: fc.integer({ min: 1, max: 3 }),
      group: fc.integer({ min: 1, max: 3 }),
      S: fc.integer({ min: 1, max: 6 }),
      Tk: fc.integer({ min: 1, max: 90 }),
      D: fc.integer({ min: 1, max: 20 }),
      Dv: fc.integer({ min: 1, max: 20 }),
      past: fc.option(fc.integer({ min: 0, max: 40 }), { nil: undefined }),
      mask: fc.option(fc.constantFrom<DType>('bool', 'f32'), { nil: undefined }),
      causal: fc.boolean(),
      softcap: fc.constantFrom(0, 0, 1.5),
      mode: fc.integer({ min: 0, max: 3 }),
      outputs: fc.constantFrom(1, 3, 4),
    });
    await fc.assert(
      fc.asyncProperty(arb, async (a) => {
        const T = (a.past ?? 0) + a.Tk;
        await checkAttention({
          rank: a.rank,
          B: a.B,
          Hq: a.Hkv * a.group,
          Hkv: a.Hkv,
          S: a.S,
          Tk: a.Tk,
          D: a.D,
          Dv: a.Dv,
          past: a.past,
          mask: a.mask ? { shape: [a.S, randInt(Math.max(1, T - 3), T)], dtype: a.mask } : undefined,
          attrs: { is_causal: a.causal, softcap: a.softcap, qk_matmul_output_mode: a.mode },
          outputs: a.outputs,
        });
      }),
      { numRuns: runs },
    );
  }, 120_000);
});

interface RotaryCase {
  rank?: 3 | 4;
  B?: number;
  H?: number;
  S?: number;
  Dh?: number;
  rot?: number;
  interleaved?: boolean;
  /** Position ids shape ([B, S], [1, S], [B, 1]), or undefined for 3-D caches. */
  pos?: 'full' | 'batch1' | 'seq1';
  /** Cache batch / seq broadcast without position ids. */
  cache?: 'full' | 'batch1' | 'seq1';
  dtype?: DType;
  disableF16?: boolean;
}

async function checkRotary(c: RotaryCase): Promise<void> {
  const rank = c.rank ?? 4;
  const [B, H, S, Dh] = [c.B ?? 2, c.H ?? 3, c.S ?? 5, c.Dh ?? 8];
  const R = c.rot ?? Dh;
  const half = R / 2;
  const dt = c.dtype ?? 'f32';
  const x = rand(dt, rank === 4 ? [B, H, S, Dh] : [B, S, H * Dh]);
  let cos: Tensor,
    sin: Tensor,
    pos: Tensor | null = null;
  if (c.pos) {
    const maxPos = S + 7;
    const ps = c.pos === 'full' ? [B, S] : c.pos === 'batch1' ? [1, S] : [B, 1];
    pos = rand('i64', ps, () => randInt(0, maxPos - 1));
    const ang = Array.from({ length: maxPos * half }, () => Math.random() * 6);
    cos = makeTensor(dt, [maxPos, half], ang.map(Math.cos));
    sin = makeTensor(dt, [maxPos, half], ang.map(Math.sin));
  } else {
    const cs = c.cache === 'batch1' ? [1, S, half] : c.cache === 'seq1' ? [B, 1, half] : [B, S, half];
    const ang = Array.from({ length: numel(cs) }, () => Math.random() * 6);
    cos = makeTensor(dt, cs, ang.map(Math.cos));
    sin = makeTensor(dt, cs, ang.map(Math.sin));
  }
  const attrs: Attrs = {
    interleaved: c.interleaved ?? false,
    ...(c.rot !== undefined ? { rotary_embedding_dim: c.rot } : {}),
    ...(rank === 3 ? { num_heads: H } : {}),
  };
  await check('rotary_embedding', [x, cos, sin, pos], attrs, 1, c.disableF16);
}

describe.skipIf(noGpu)('rotary_embedding on WebGPU', () => {
  it('4-D / 3-D, interleaved or not, with and without position ids', async () => {
    for (const interleaved of [false, true]) {
      await checkRotary({ interleaved, pos: 'full' });
      await checkRotary({ interleaved, rank: 3, pos: 'batch1' });
      await checkRotary({ interleaved, pos: 'seq1', S: 1 });
      await checkRotary({ interleaved });
      await checkRotary({ interleaved, rank: 3, cache: 'batch1' });
      await checkRotary({ interleaved, cache: 'seq1', S: 1, B: 3 });
    }
  }, 60_000);

  it('partial rotary dim (odd head sizes), sizes past one workgroup', async () => {
    for (const interleaved of [false, true]) {
      await checkRotary({ interleaved, Dh: 10, rot: 4, pos: 'full' });
      await checkRotary({ interleaved, Dh: 7, rot: 6, rank: 3 });
      await checkRotary({ interleaved, Dh: 5, rot: 2, rank: 3, pos: 'full', B: 1, H: 1, S: 1 });
      await checkRotary({ interleaved, B: 2, H: 4, S: 37, Dh: 64, rot: 32, pos: 'full' });
    }
  }, 60_000);

  it('f16 with and without shader-f16', async () => {
    for (const disableF16 of [false, true]) {
      await checkRotary({ dtype: 'f16', disableF16, pos: 'full', interleaved: true });
      await checkRotary({ dtype: 'f16', disableF16, rank: 3, Dh: 6, rot: 4 });
    }
  }, 60_000);

  it('property: random shapes and attributes', async () => {
    const arb = fc.record({
      rank: fc.constantFrom<3 | 4>(3, 4),
      B: fc.integer({ min: 1, max: 3 }),
      H: fc.integer({ min: 1, max: 4 }),
      S: fc.integer({ min: 1, max: 9 }),
      halfDh: fc.integer({ min: 1, max: 12 }),
      odd: fc.boolean(),
      rotFrac: fc.double({ min: 0, max: 1, noNaN: true }),
      interleaved: fc.boolean(),
      pos: fc.constantFrom<RotaryCase['pos']>('full', 'batch1', 'seq1', undefined),
    });
    await fc.assert(
      fc.asyncProperty(arb, async (a) => {
        const Dh = a.halfDh * 2 + (a.odd ? 1 : 0);
        const rot = 2 * Math.max(1, Math.round(a.halfDh * a.rotFrac));
        await checkRotary({ rank: a.rank, B: a.B, H: a.H, S: a.S, Dh, rot, interleaved: a.interleaved, pos: a.pos });
      }),
      { numRuns: runs },
    );
  }, 60_000);
});
