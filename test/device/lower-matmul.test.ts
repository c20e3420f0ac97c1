/**
 * The contraction lowerings (matmul, gemm, matmul_integer, einsum) on WebGPU against the float64 reference:
 * fresh random inputs per run, shapes around the tile sizes (64×64 and 128×128 tiles, K steps of 8) and the
 * GEMV-like path, every accepted dtype, plus fast-check properties over random shapes and attributes.
 *
 * lavapipe compiles a tiled kernel (workgroup barriers) in 1–4 s, everything else in well under a second, so the
 * cases are chosen to cover each tiled variant (layout, batch rank, dtype, zero points, bias) once and to exercise
 * the combinations on shapes that take the skinny path (M or N ≤ 4, or M·N ≤ 1024); a shape never changes the
 * kernel within its class, so repeated shapes of a class cost only a dispatch.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DType } from '../../ir/dtype.js';
import { GraphBuilder } from '../../ir/builder.js';
import '../../ir/ops/index.js';
import type { Attrs } from '../../ir/registry.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { checkAgainstReference, skipWebgpu, type Mismatch } from '../helpers/backends.js';
import { PROP_RUNS } from '../helpers/paths.js';

const noGpu = await skipWebgpu();

const isFloatDt = (dt: DType) => dt === 'f32' || dt === 'f16' || dt === 'bf16' || dt === 'f64';

/** Random values: floats in [-scale, scale); integers small enough that every sum stays exact in 32 bits. */
function random(dt: DType, shape: readonly number[], scale = 1, positive = false): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float64Array(n);
  const [lo, hi] = (
    {
      u8: [0, 255],
      i8: [-128, 127],
      u16: [0, 300],
      i16: [-300, 300],
      u32: [0, 1000],
      u64: [0, 1000],
      i32: [-1000, 1000],
      i64: [-1000, 1000],
    } as Record<string, [number, number]>
  )[dt] ?? [0, 0];
  for (let i = 0; i < n; i++) {
    d[i] = isFloatDt(dt)
      ? (positive ? Math.random() : Math.random() * 2 - 1) * scale
      : lo + Math.floor(Math.random() * (hi - lo + 1));
  }
  return makeTensor(dt, shape, d);
}

interface Case {
  op: string;
  inputs: ({ dtype: DType; shape: number[] } | null)[];
  attrs?: Attrs;
}

interface RunOpts {
  disableF16?: boolean;
  longReduction?: boolean;
  /**
   * Float inputs in [-scale, scale) (default 1): an f32 sum of K terms of size s² carries an absolute error of about
   * K·s²·6e-8 in any order, so long sums use smaller inputs to stay within the 1e-5 absolute tolerance.
   */
  scale?: number;
  /** Inputs in [0, scale): for scalar results of whole-tensor sums, which random signs make ill-conditioned. */
  positive?: boolean;
}

async function run(cs: Case, opts: RunOpts = {}): Promise<Mismatch[]> {
  const b = new GraphBuilder();
  const vals = cs.inputs.map((x, i) => (x ? b.input(`x${i}`, x.dtype, x.shape) : null));
  const y = b.op(cs.op, vals, cs.attrs ?? {});
  b.output(y, 'y');
  // A handful of outputs: each is a sum that random signs can cancel (rel-L2 over few elements is then a single
  // ill-conditioned relative error), so those cases draw positive inputs.
  const few = (y.type.shape as number[]).reduce((p, d) => p * d, 1) < 64;
  const feeds: Record<string, Tensor> = {};
  cs.inputs.forEach((x, i) => {
    if (x) feeds[`x${i}`] = random(x.dtype, x.shape, opts.scale, opts.positive ?? few);
  });
  return checkAgainstReference(b.build(), feeds, {
    backend: 'webgpu',
    disableF16: opts.disableF16,
    longReduction: opts.longReduction,
  });
}

async function expectOk(cs: Case, opts: RunOpts = {}): Promise<void> {
  const m = await run(cs, opts);
  expect(m, `${cs.op} ${JSON.stringify(cs.inputs)} ${JSON.stringify(cs.attrs ?? {})}`).toEqual([]);
}

const mm = (dtype: DType, a: number[], b: number[]): Case => ({
  op: 'matmul',
  inputs: [
    { dtype, shape: a },
    { dtype, shape: b },
  ],
});

describe.skipIf(noGpu)('matmul lowering (webgpu)', () => {
  it('f32, shapes around the tiles, GEMV-like shapes, 1-D operands, batch broadcasting', async () => {
    const shapes: [number[], number[]][] = [
      [
        [1, 1],
        [1, 1],
      ],
      [
        [3, 5],
        [5, 7],
      ],
      [
        [64, 64],
        [64, 64],
      ],
      [
        [65, 33],
        [33, 130],
      ], // partial tiles in m, n and k
      [
        [130, 17],
        [17, 63],
      ],
      [
        [1, 100],
        [100, 300],
      ], // x·W
      [
        [300, 100],
        [100, 1],
      ], // W·x
      [
        [2, 250],
        [250, 40],
      ], // M = 2
      [
        [33, 3],
        [3, 31],
      ], // few outputs
      [[7], [7]],
      [[5], [2, 5, 3]],
      [[2, 3, 4, 5], [5]],
      [
        [2, 1, 37, 20],
        [3, 20, 70],
      ], // batch broadcast on both sides
      [
        [3, 70, 20],
        [20, 80],
      ], // b shared by the batch
      [
        [2, 3, 0],
        [2, 0, 4],
      ], // K = 0: zeros
      [
        [0, 5],
        [5, 3],
      ], // empty output
    ];
    for (const [a, b] of shapes) await expectOk(mm('f32', a, b));
  });
  it('f32, long K and the 128×128 tile', async () => {
    await expectOk(mm('f32', [70, 1000], [1000, 66]), { longReduction: true, scale: 0.5 });
    await expectOk(mm('f32', [1, 3000], [3000, 5]), { longReduction: true, scale: 0.25 });
    await expectOk(mm('f32', [300, 256], [256, 260]), { longReduction: true, scale: 0.5 });
    await expectOk(mm('f32', [129, 9], [9, 200]));
  });
  it('f16 with and without shader-f16, bf16, f64', async () => {
    for (const disableF16 of [false, true]) {
      await expectOk(mm('f16', [65, 40], [40, 70]), { disableF16 });
      await expectOk(mm('f16', [1, 40], [40, 70]), { disableF16 });
    }
    await expectOk(mm('bf16', [33, 20], [20, 90]));
    await expectOk(mm('f64', [2, 70, 20], [20, 90]));
  });
  it('integer dtypes are exact (packed outputs included)', async () => {
    await expectOk(mm('i32', [67, 19], [19, 66]));
    await expectOk(mm('i64', [2, 67, 19], [19, 66]));
    for (const dt of ['i32', 'i64', 'u32', 'u64', 'i16', 'u16', 'i8', 'u8'] as DType[]) {
      await expectOk(mm(dt, [13, 19], [19, 11]));
      await expectOk(mm(dt, [3], [2, 3, 5]));
    }
    await expectOk(mm('u8', [67, 19], [19, 66]));
  });
  it('NaN and inf propagate', async () => {
    const b = new GraphBuilder();
    const a = b.input('a', 'f32', [70, 3]);
    const w = b.input('w', 'f32', [3, 70]);
    b.output(b.matmul(a, w), 'y');
    const ta = random('f32', [70, 3]);
    const tw = random('f32', [3, 70]);
    ta.data[5] = NaN;
    tw.data[7] = Infinity;
    expect(await checkAgainstReference(b.build(), { a: ta, w: tw })).toEqual([]);
  });
  it('property: random shapes, 1-D operands and batch broadcasting', async () => {
    const dim = fc.integer({ min: 1, max: 80 });
    // one batch shape; each operand keeps a suffix of it with some dims replaced by 1 (numpy broadcasting)
    const view = fc.record({
      drop: fc.integer({ min: 0, max: 2 }),
      ones: fc.array(fc.boolean(), { minLength: 2, maxLength: 2 }),
    });
    const batchOf = (batch: number[], v: { drop: number; ones: boolean[] }) =>
      batch.slice(Math.min(v.drop, batch.length)).map((d, i) => (v.ones[i] ? 1 : d));
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }),
        view,
        view,
        dim,
        dim,
        dim,
        fc.boolean(),
        fc.boolean(),
        async (batch, va, vb, m, k, n, oneDA, oneDB) => {
          const a = oneDA ? [k] : [...batchOf(batch, va), m, k];
          const b = oneDB ? [k] : [...batchOf(batch, vb), k, n];
          expect(await run(mm('f32', a, b))).toEqual([]);
        },
      ),
      { numRuns: Math.max(4, Math.round(PROP_RUNS / 3)) },
    );
  });
});

describe.skipIf(noGpu)('gemm lowering (webgpu)', () => {
  const gemm = (dtype: DType, m: number, k: number, n: number, attrs: Attrs, c: number[] | undefined): Case => ({
    op: 'gemm',
    inputs: [
      { dtype, shape: attrs['transA'] ? [k, m] : [m, k] },
      { dtype, shape: attrs['transB'] ? [n, k] : [k, n] },
      c ? { dtype, shape: c } : null,
    ],
    attrs,
  });
  it('transposes, alpha / beta, bias shapes', async () => {
    for (const [m, k, n] of [
      [70, 33, 65],
      [3, 4, 5],
      [1, 50, 100],
      [100, 50, 1],
    ] as const) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          await expectOk(gemm('f32', m, k, n, { transA, transB, alpha: 0.5, beta: -2 }, [m, n]));
        }
      }
      for (const c of [undefined, [], [1], [n], [m, 1], [1, n]]) {
        await expectOk(gemm('f32', m, k, n, { alpha: 1.5, beta: 0.25 }, c));
      }
    }
  });
  it('K = 0 gives beta · c; integer gemm is exact; f16', async () => {
    await expectOk(gemm('f32', 4, 0, 3, { beta: 2 }, [4, 3]));
    await expectOk(gemm('i32', 7, 9, 6, { alpha: 2, beta: -3, transB: true }, [6]));
    await expectOk(gemm('i64', 7, 9, 66, { alpha: 2, beta: -3 }, [66]));
    await expectOk(gemm('u32', 5, 9, 6, { alpha: 3 }, [5, 6]));
    await expectOk(gemm('f16', 7, 9, 66, { alpha: 2, beta: 0.5 }, [66]), { disableF16: true });
    await expectOk(gemm('f16', 7, 9, 6, { alpha: 2, beta: 0.5, transA: true }, [6]));
  });
  it('property: random sizes, transposes, alpha / beta and bias shapes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 90 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 90 }),
        fc.boolean(),
        fc.boolean(),
        fc.constantFrom(1, 0.5, -1.25),
        fc.constantFrom(1, 0, 2),
        fc.constantFrom<'full' | 'row' | 'col' | 'scalar'>('full', 'row', 'col', 'scalar'),
        async (m, k, n, transA, transB, alpha, beta, cKind) => {
          const c = { full: [m, n], row: [n], col: [m, 1], scalar: [] }[cKind];
          expect(await run(gemm('f32', m, k, n, { transA, transB, alpha, beta }, c))).toEqual([]);
        },
      ),
      { numRuns: Math.max(4, Math.round(PROP_RUNS / 3)) },
    );
  });
});

describe.skipIf(noGpu)('matmul_integer lowering (webgpu)', () => {
  const mi = (ta: DType, tb: DType, a: number[], b: number[], az?: number[], bz?: number[]): Case => ({
    op: 'matmul_integer',
    inputs: [
      { dtype: ta, shape: a },
      { dtype: tb, shape: b },
      az ? { dtype: ta, shape: az } : null,
      bz ? { dtype: tb, shape: bz } : null,
    ],
  });
  it('u8 / i8 with scalar, per-row and per-column zero points', async () => {
    for (const [ta, tb] of [
      ['u8', 'u8'],
      ['u8', 'i8'],
      ['i8', 'u8'],
      ['i8', 'i8'],
    ] as [DType, DType][]) {
      await expectOk(mi(ta, tb, [4, 3], [3, 2]));
      await expectOk(mi(ta, tb, [20, 37], [37, 30], [], []));
      await expectOk(mi(ta, tb, [1, 200], [200, 90], [1], [90]));
      await expectOk(mi(ta, tb, [2, 5, 37], [37, 3], [2, 5, 1], [1, 3]));
      await expectOk(mi(ta, tb, [37], [3, 37, 65], undefined, [65]));
    }
    // tiled
    await expectOk(mi('u8', 'i8', [70, 37], [37, 66], [70], [66]));
    await expectOk(mi('u8', 'i8', [2, 70, 37], [37, 66], [], [1]));
    await expectOk(mi('i8', 'u8', [70, 37], [37, 66]));
  });
  it('property: random shapes and zero points', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 80 }),
        fc.integer({ min: 1, max: 80 }),
        fc.integer({ min: 1, max: 80 }),
        fc.boolean(),
        fc.boolean(),
        async (m, k, n, rowZ, colZ) => {
          expect(await run(mi('u8', 'i8', [m, k], [k, n], rowZ ? [m] : [], colZ ? [n] : []))).toEqual([]);
        },
      ),
      { numRuns: Math.max(4, Math.round(PROP_RUNS / 4)) },
    );
  });
});

describe.skipIf(noGpu)('einsum lowering (webgpu)', () => {
  const es = (equation: string, shapes: number[][], dtype: DType = 'f32'): Case => ({
    op: 'einsum',
    inputs: shapes.map((shape) => ({ dtype, shape })),
    attrs: { equation },
  });
  it('two operands: matmul-like, batched, transposed output, outer, multi-label groups', async () => {
    const cases: [string, number[][]][] = [
      [
        'ij,jk->ik',
        [
          [70, 30],
          [30, 65],
        ],
      ],
      [
        'ij,jk',
        [
          [3, 4],
          [4, 5],
        ],
      ],
      [
        'bij,bjk->bik',
        [
          [3, 20, 7],
          [3, 7, 70],
        ],
      ],
      [
        'bhqd,bhkd->bhqk',
        [
          [2, 3, 40, 16],
          [2, 3, 50, 16],
        ],
      ],
      [
        'ik,jk->kji',
        [
          [30, 5],
          [70, 5],
        ],
      ],
      ['i,i->i', [[9], [9]]],
      ['i,j->ij', [[70], [90]]],
      [
        'ijk,jil->kl',
        [
          [4, 5, 66],
          [5, 4, 70],
        ],
      ],
      [
        'abk,cdk->acbd',
        [
          [9, 8, 5],
          [10, 7, 5],
        ],
      ],
      [
        '...ij,...jk->...ik',
        [
          [2, 1, 9, 8],
          [3, 8, 70],
        ],
      ],
      [
        'ii,ij->j',
        [
          [6, 6],
          [6, 70],
        ],
      ],
      [
        'ij,jk->ik',
        [
          [3, 0],
          [0, 4],
        ],
      ],
    ];
    for (const [eq, shapes] of cases) await expectOk(es(eq, shapes));
    // scalar results of whole sums: positive inputs (random signs make them ill-conditioned)
    for (const [eq, shapes] of [
      ['i,i', [[100], [100]]],
      [
        'ij,kl->',
        [
          [3, 4],
          [5, 2],
        ],
      ],
    ] as [string, number[][]][]) {
      await expectOk(es(eq, shapes), { positive: true });
    }
  });
  it('one and three operands: diagonals, sums, transposes, chains', async () => {
    const cases: [string, number[][]][] = [
      ['ij->ji', [[5, 70]]],
      ['ii->i', [[7, 7]]],
      ['bii->bi', [[3, 5, 5]]],
      ['ijk->k', [[3, 4, 5]]],
      ['...ii->...i', [[2, 3, 4, 4]]],
      [
        'ij,jk,kl->il',
        [
          [5, 6],
          [6, 7],
          [7, 8],
        ],
      ],
    ];
    for (const [eq, shapes] of cases) await expectOk(es(eq, shapes));
    await expectOk(es('ij->', [[30, 40]]), { positive: true });
    await expectOk(es('i,i,i->', [[20], [20], [20]]), { positive: true });
  });
  it('integer and f16 einsum', async () => {
    await expectOk(
      es(
        'bij,bjk->bik',
        [
          [2, 20, 7],
          [2, 7, 30],
        ],
        'i32',
      ),
    );
    await expectOk(
      es(
        'ij,jk->ik',
        [
          [3, 7],
          [7, 5],
        ],
        'i8',
      ),
    );
    await expectOk(es('ii->i', [[9, 9]], 'u8'));
    for (const disableF16 of [false, true]) {
      await expectOk(
        es(
          'bij,bkj->bik',
          [
            [2, 20, 7],
            [2, 30, 7],
          ],
          'f16',
        ),
        { disableF16 },
      );
    }
  });
  it('property: random two-operand equations', async () => {
    const letters = 'abcdef';
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom(...letters), { minLength: 1, maxLength: 3 }),
        fc.array(fc.constantFrom(...letters), { minLength: 1, maxLength: 3 }),
        fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 6, maxLength: 6 }),
        fc.func(fc.boolean()),
        async (ta, tb, sizes, keep) => {
          const ids = [...new Set([...ta, ...tb])];
          const out = ids.filter((x) => keep(x));
          const size = (x: string) => sizes[letters.indexOf(x)]!;
          const eq = `${ta.join('')},${tb.join('')}->${out.join('')}`;
          expect(await run(es(eq, [ta.map(size), tb.map(size)]), { positive: true })).toEqual([]);
        },
      ),
      { numRuns: Math.max(4, Math.round(PROP_RUNS / 4)) },
    );
  });
});
