/**
 * Reductions, argmax / argmin, softmax / log_softmax, layer_norm / rms_norm and cumsum lowered to WGSL and run on
 * WebGPU, compared with the float64 reference (outputs poisoned first). Shapes cover both row schedules (one
 * workgroup per row, one thread per row), rows shorter / longer than a workgroup, non-contiguous reduced axes,
 * size-1 and empty axes, packed integer dtypes, NaN / ±inf, and a fast-check property over random shapes / attrs.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import { UnsupportedError } from '../../ir/errors.js';
import '../../ir/ops/index.js';
import type { Attrs } from '../../ir/registry.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { lowerNode } from '../../codegen/lower/index.js';
import type { LowerCtx } from '../../codegen/lower/kernel-builder.js';
import { rowGeometry, chooseMode } from '../../codegen/lower/rowreduce.js';
import { DEFAULT_CAPS } from '../../codegen/lower/storage.js';
import { checkAgainstReference, skipWebgpu } from '../helpers/backends.js';
import { PROP_RUNS } from '../helpers/paths.js';

const noGpu = await skipWebgpu();

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Random values for a dtype: floats in [-2, 2), small integers (sums stay exact), bools. */
function randomTensor(dt: DType, shape: readonly number[], special = false): Tensor {
  const n = numel(shape);
  const data = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const r = Math.random();
    switch (dt) {
      case 'bool':
        data[i] = r < 0.5 ? 1 : 0;
        break;
      case 'u8':
      case 'u16':
      case 'u32':
      case 'u64':
        data[i] = Math.floor(r * 7);
        break;
      case 'i8':
      case 'i16':
      case 'i32':
      case 'i64':
        data[i] = Math.floor(r * 13) - 6;
        break;
      default:
        data[i] = r * 4 - 2;
    }
  }
  if (special && n > 0) {
    const vals = [NaN, Infinity, -Infinity];
    for (let k = 0; k < Math.max(1, n >> 5); k++) data[Math.floor(Math.random() * n)] = vals[k % 3]!;
  }
  return makeTensor(dt, shape, data);
}

interface Case {
  op: string;
  dtype: DType;
  shape: readonly number[];
  attrs?: Attrs;
  /** Extra inputs (layer_norm / rms_norm scale and bias) by shape. */
  params?: readonly (readonly number[] | null)[];
  outputs?: number;
  data?: Tensor;
  special?: boolean;
  disableF16?: boolean;
}

/**
 * Run cases that share an input (dtype, shape, data, f16 setting) as one graph: one node per case, all outputs
 * compared with the reference in one session (one submission), which keeps the suite fast on a CPU adapter.
 */
async function checkGroup(group: readonly Case[]): Promise<string[]> {
  const cs0 = group[0]!;
  const b = new GraphBuilder('t');
  const x = b.input('x', cs0.dtype, [...cs0.shape]);
  const feeds: Record<string, Tensor> = { x: cs0.data ?? randomTensor(cs0.dtype, cs0.shape, cs0.special) };
  const owner = new Map<string, string>();
  group.forEach((cs, c) => {
    const ins = [x];
    (cs.params ?? []).forEach((p, i) => {
      if (p === null) {
        ins.push(null as never);
        return;
      }
      const name = `p${c}_${i}`;
      ins.push(b.input(name, cs.dtype, [...p]));
      feeds[name] = randomTensor(cs.dtype, p);
    });
    const outs = b.opN(cs.op, ins, cs.attrs ?? {}, cs.outputs ?? 1);
    outs.forEach((o, i) => {
      b.output(o, `y${c}_${i}`);
      owner.set(`y${c}_${i}`, `${cs.op} ${cs.dtype} [${cs.shape}] ${JSON.stringify(cs.attrs ?? {})} output ${i}`);
    });
  });
  const mism = await checkAgainstReference(b.build(), feeds, {
    backend: 'webgpu',
    longReduction: true,
    disableF16: cs0.disableF16,
  });
  return mism.map((m) => `${owner.get(m.output) ?? m.output}: ${m.reason}`);
}

async function check(cs: Case): Promise<string[]> {
  return checkGroup([cs]);
}

async function checkAll(cases: readonly Case[]): Promise<void> {
  const groups = new Map<unknown, Case[]>();
  for (const cs of cases) {
    // cases group by their data tensor, or else by input type and flags
    const key = cs.data ?? `${cs.dtype}|${cs.shape}|${cs.special}|${cs.disableF16}`;
    const g = groups.get(key);
    if (g) g.push(cs);
    else groups.set(key, [cs]);
  }
  const bad: string[] = [];
  for (const g of groups.values()) bad.push(...(await checkGroup(g)));
  expect(bad).toEqual([]);
}

const REDUCE_OPS = [
  'reduce_sum',
  'reduce_mean',
  'reduce_max',
  'reduce_min',
  'reduce_prod',
  'reduce_sum_square',
  'reduce_l2',
  'reduce_log_sum_exp',
];

/** Shapes × axes hitting both schedules, odd sizes, strided and non-contiguous reductions. */
const REDUCE_SHAPES: { shape: number[]; axes?: number[]; keepdims?: boolean; noop?: boolean }[] = [
  { shape: [7] },
  { shape: [3, 300], axes: [1] },
  { shape: [2, 1000], axes: [-1], keepdims: false },
  { shape: [300, 5], axes: [0] },
  { shape: [2, 3, 4, 5], axes: [0, 2] },
  { shape: [3, 17, 2, 19], axes: [1, 3], keepdims: false },
  { shape: [4, 1, 33], axes: [1] },
  { shape: [40, 9000], axes: [0] },
  { shape: [5, 6], noop: true },
  { shape: [5, 6], axes: [] },
  { shape: [] },
  { shape: [1, 1, 1] },
];

describe('row kernels are shape classes (no GPU needed)', () => {
  const lower = (op: string, shape: number[], out: number[], attrs: Attrs, caps = DEFAULT_CAPS) =>
    lowerNode({
      caps,
      node: 'n',
      op,
      attrs,
      inputs: [{ dtype: 'f32', shape }],
      outputs: [{ dtype: op.startsWith('arg') ? 'i64' : 'f32', shape: out }],
    } as LowerCtx);

  it('shapes travel as uniforms: same kernel for rows of the same class', () => {
    const a = lower('reduce_sum', [3, 300], [3, 1], { axes: [1], keepdims: true, noop_with_empty_axes: false });
    const b = lower('reduce_sum', [70, 999], [70, 1], { axes: [1], keepdims: true, noop_with_empty_axes: false });
    expect(a[0]!.kernel.name).toBe(b[0]!.kernel.name);
    expect(a[0]!.uniforms).not.toEqual(b[0]!.uniforms);
    expect(a[0]!.kernel.workgroup).toEqual([256, 1, 1]);
    expect(a[0]!.grid).toEqual([3, 1, 1]);
    const s1 = lower('softmax', [4, 5, 60], [4, 5, 60], { axis: 1 });
    const s2 = lower('softmax', [9, 7, 80], [9, 7, 80], { axis: 1 });
    expect(s1[0]!.kernel.name).toBe(s2[0]!.kernel.name);
  });

  it('short rows use fewer threads; device limits are respected', () => {
    const k = lower('reduce_max', [5, 40], [5], { axes: [1], keepdims: false, noop_with_empty_axes: false });
    expect(k[0]!.kernel.workgroup).toEqual([64, 1, 1]);
    const small = { ...DEFAULT_CAPS, maxWorkgroupSize: 96 };
    const m = lower('argmax', [5, 400], [5, 1], { axis: 1, keepdims: true, select_last_index: false }, small);
    expect(m[0]!.kernel.workgroup).toEqual([64, 1, 1]);
    const empty = lower('reduce_sum', [0, 400], [0], { axes: [1], keepdims: false, noop_with_empty_axes: false });
    expect(empty[0]!.grid[0]).toBe(0);
  });

  it('an empty i64 max (the i64 minimum, beyond 32-bit storage) is unsupported, not wrong', () => {
    expect(() =>
      lowerNode({
        caps: DEFAULT_CAPS,
        node: 'n',
        op: 'reduce_max',
        attrs: { axes: [1], keepdims: true, noop_with_empty_axes: false },
        inputs: [{ dtype: 'i64', shape: [3, 0] }],
        outputs: [{ dtype: 'i64', shape: [3, 1] }],
      }),
    ).toThrow(UnsupportedError);
  });
});

describe.skipIf(noGpu)('reductions on WebGPU', () => {
  it('the schedules the shapes above are meant to hit', () => {
    expect(chooseMode(rowGeometry([3, 300], [1]))).toBe('group');
    expect(chooseMode(rowGeometry([300, 5], [0]))).toBe('group');
    expect(chooseMode(rowGeometry([40, 9000], [0]))).toBe('serial');
    expect(chooseMode(rowGeometry([2, 3, 4, 5], [0, 2]))).toBe('serial');
    const g = rowGeometry([3, 17, 2, 19], [1, 3]);
    expect(g.kept.length).toBe(2);
    expect(g.red.length).toBe(2);
    expect(chooseMode(g)).toBe('group');
  });

  it('every reduce op, f32, over shapes and axes (both schedules)', async () => {
    const cases: Case[] = [];
    for (const s of REDUCE_SHAPES) {
      // magnitudes near 1 with random signs: products of hundreds of elements stay finite and nonzero
      const data = makeTensor(
        'f32',
        s.shape,
        Float64Array.from(
          { length: numel(s.shape) },
          () => (Math.random() < 0.5 ? -1 : 1) * (0.9 + Math.random() * 0.2),
        ),
      );
      for (const op of REDUCE_OPS) {
        cases.push({
          op,
          dtype: 'f32',
          shape: s.shape,
          data,
          attrs: {
            ...(s.axes ? { axes: s.axes } : {}),
            keepdims: s.keepdims ?? true,
            noop_with_empty_axes: s.noop ?? false,
          },
        });
      }
      cases.push({ op: 'reduce_sum', dtype: 'f32', shape: s.shape, attrs: s.axes ? { axes: s.axes } : {} });
      cases.push({ op: 'reduce_l2', dtype: 'f32', shape: s.shape, attrs: s.axes ? { axes: s.axes } : {} });
    }
    await checkAll(cases);
  });

  it('integer reductions are exact (i32, i64, u32, packed i8 / u8 / i16 / u16, with wrapping)', async () => {
    const cases: Case[] = [];
    for (const dtype of ['i32', 'i64', 'u32', 'i8', 'u8', 'i16', 'u16'] as DType[]) {
      for (const op of ['reduce_sum', 'reduce_mean', 'reduce_max', 'reduce_min', 'reduce_sum_square', 'reduce_l2']) {
        for (const s of [
          { shape: [3, 300], axes: [1] },
          { shape: [9, 5], axes: [0] },
          { shape: [2, 3, 4, 5], axes: [1, 3] },
          { shape: [13] },
        ]) {
          cases.push({ op, dtype, shape: s.shape, attrs: s.axes ? { axes: s.axes } : {} });
        }
      }
      cases.push({ op: 'reduce_prod', dtype, shape: [5, 6], attrs: { axes: [1] } });
      cases.push({ op: 'reduce_log_sum_exp', dtype, shape: [5, 6], attrs: { axes: [1] } });
    }
    await checkAll(cases);
  });

  it('integer means of large values do not wrap before dividing; negative means truncate toward zero', async () => {
    const big = makeTensor(
      'i32',
      [3, 100],
      Float64Array.from({ length: 300 }, (_, i) => (i < 100 ? 2e9 : i < 200 ? -2e9 + (i % 7) : (i % 5) - 3)),
    );
    const ubig = makeTensor(
      'u32',
      [2, 70],
      Float64Array.from({ length: 140 }, (_, i) => 4e9 - (i % 11)),
    );
    await checkAll([
      { op: 'reduce_mean', dtype: 'i32', shape: [3, 100], attrs: { axes: [1] }, data: big },
      { op: 'reduce_mean', dtype: 'i32', shape: [3, 100], attrs: { axes: [0] }, data: big },
      { op: 'reduce_mean', dtype: 'u32', shape: [2, 70], attrs: { axes: [1] }, data: ubig },
      // sums that wrap i8 / i32: the reference wraps at the end too
      { op: 'reduce_sum', dtype: 'i32', shape: [3, 100], attrs: { axes: [1] }, data: big },
      {
        op: 'reduce_sum',
        dtype: 'i8',
        shape: [4, 50],
        attrs: { axes: [1] },
        data: makeTensor(
          'i8',
          [4, 50],
          Float64Array.from({ length: 200 }, (_, i) => 100 - (i % 3)),
        ),
      },
    ]);
  });

  it('bool max / min (any / all), packed outputs', async () => {
    const cases: Case[] = [];
    for (const op of ['reduce_max', 'reduce_min']) {
      for (const s of [
        { shape: [5, 7], axes: [1] },
        { shape: [3, 100], axes: [1] },
        { shape: [9, 5], axes: [0] },
        { shape: [6] },
      ]) {
        cases.push({ op, dtype: 'bool', shape: s.shape, attrs: s.axes ? { axes: s.axes } : {} });
      }
    }
    await checkAll(cases);
  });

  it('empty reductions give the identities (-inf, +inf, 0, 1, NaN mean)', async () => {
    const cases: Case[] = [];
    for (const op of REDUCE_OPS) {
      cases.push({ op, dtype: 'f32', shape: [3, 0], attrs: { axes: [1] } });
      cases.push({ op, dtype: 'f32', shape: [0, 4], attrs: { axes: [0], keepdims: false } });
      cases.push({ op, dtype: 'f32', shape: [4, 0], attrs: { axes: [0] } }); // empty output
    }
    for (const dtype of ['i32', 'u8', 'i8', 'u32'] as DType[]) {
      for (const op of ['reduce_max', 'reduce_min', 'reduce_sum', 'reduce_prod']) {
        cases.push({ op, dtype, shape: [5, 0], attrs: { axes: [1] } });
      }
    }
    await checkAll(cases);
  });

  it('NaN and ±inf propagate like the reference', async () => {
    const cases: Case[] = [];
    for (const op of ['reduce_sum', 'reduce_max', 'reduce_min', 'reduce_log_sum_exp', 'reduce_mean']) {
      cases.push({ op, dtype: 'f32', shape: [64, 40], attrs: { axes: [1] }, special: true });
      cases.push({ op, dtype: 'f32', shape: [6, 300], attrs: { axes: [1] }, special: true });
    }
    const allNegInf = makeTensor('f32', [2, 50], new Float64Array(100).fill(-Infinity));
    cases.push({ op: 'reduce_log_sum_exp', dtype: 'f32', shape: [2, 50], attrs: { axes: [1] }, data: allNegInf });
    cases.push({ op: 'reduce_max', dtype: 'f32', shape: [2, 50], attrs: { axes: [1] }, data: allNegInf });
    await checkAll(cases);
  });

  for (const disableF16 of [false, true]) {
    it(`f16 reductions ${disableF16 ? 'without' : 'with'} shader-f16`, async () => {
      const cases: Case[] = [];
      for (const op of ['reduce_sum', 'reduce_mean', 'reduce_max', 'reduce_l2', 'reduce_log_sum_exp']) {
        cases.push({ op, dtype: 'f16', shape: [3, 300], attrs: { axes: [1] }, disableF16 });
        cases.push({ op, dtype: 'f16', shape: [7, 5], attrs: { axes: [0] }, disableF16 });
      }
      cases.push({ op: 'argmax', dtype: 'f16', shape: [4, 77], attrs: { axis: 1 }, disableF16 });
      cases.push({ op: 'softmax', dtype: 'f16', shape: [4, 77], attrs: { axis: -1 }, disableF16 });
      cases.push({ op: 'log_softmax', dtype: 'f16', shape: [5, 3, 6], attrs: { axis: 1 }, disableF16 });
      cases.push({ op: 'layer_norm', dtype: 'f16', shape: [3, 100], params: [[100], [100]], outputs: 3, disableF16 });
      cases.push({ op: 'rms_norm', dtype: 'f16', shape: [3, 100], params: [[100]], disableF16 });
      cases.push({ op: 'cumsum', dtype: 'f16', shape: [4, 9], attrs: { axis: 1 }, disableF16 });
      await checkAll(cases);
    });
  }
});

describe.skipIf(noGpu)('argmax / argmin on WebGPU', () => {
  it('ties, select_last_index, NaN, all dtypes', async () => {
    const cases: Case[] = [];
    const tieData = new Map<string, Tensor>();
    const ties = (shape: number[]) => {
      let t = tieData.get(`${shape}`);
      if (!t) {
        t = makeTensor(
          'f32',
          shape,
          Float64Array.from({ length: numel(shape) }, () => Math.floor(Math.random() * 3)),
        );
        tieData.set(`${shape}`, t);
      }
      return t;
    };
    for (const op of ['argmax', 'argmin']) {
      for (const last of [false, true]) {
        for (const s of [
          { shape: [3, 300], axis: 1 },
          { shape: [300, 4], axis: 0 },
          { shape: [2, 5, 7], axis: 1 },
          { shape: [2, 5, 7], axis: -1, keepdims: false },
          { shape: [9], axis: 0 },
          { shape: [4, 1, 3], axis: 1 },
        ]) {
          const attrs = { axis: s.axis, keepdims: s.keepdims ?? true, select_last_index: last };
          cases.push({ op, dtype: 'f32', shape: s.shape, attrs });
          cases.push({ op, dtype: 'f32', shape: s.shape, attrs, data: ties(s.shape) });
          cases.push({ op, dtype: 'f32', shape: s.shape, attrs, special: true });
        }
        for (const dtype of ['i32', 'u8', 'i8', 'bool', 'u32', 'i64'] as DType[]) {
          cases.push({ op, dtype, shape: [6, 70], attrs: { axis: 1, select_last_index: last } });
          cases.push({ op, dtype, shape: [6, 7], attrs: { axis: 0, select_last_index: last } });
        }
      }
    }
    // several NaNs in a row: the first (or last) NaN wins
    const nans = makeTensor(
      'f32',
      [2, 100],
      Float64Array.from({ length: 200 }, (_, i) => (i % 37 === 5 ? NaN : i)),
    );
    for (const last of [false, true]) {
      cases.push({
        op: 'argmax',
        dtype: 'f32',
        shape: [2, 100],
        attrs: { axis: 1, select_last_index: last },
        data: nans,
      });
      cases.push({
        op: 'argmin',
        dtype: 'f32',
        shape: [2, 100],
        attrs: { axis: 1, select_last_index: last },
        data: nans,
      });
    }
    await checkAll(cases);
  });
});

describe.skipIf(noGpu)('softmax / log_softmax on WebGPU', () => {
  it('any axis, short and long rows, large numbers, -inf and NaN', async () => {
    const cases: Case[] = [];
    for (const op of ['softmax', 'log_softmax']) {
      for (const s of [
        { shape: [3, 300], axis: -1 },
        { shape: [2, 1000], axis: 1 },
        { shape: [5, 7], axis: 0 },
        { shape: [300, 3], axis: 0 },
        { shape: [3, 4, 5], axis: 1 },
        { shape: [2, 40, 3], axis: 1 },
        { shape: [6], axis: 0 },
        { shape: [4, 1], axis: 1 },
        { shape: [0, 5], axis: 1 },
      ]) {
        cases.push({ op, dtype: 'f32', shape: s.shape, attrs: { axis: s.axis } });
      }
      const big = makeTensor(
        'f32',
        [2, 64],
        Float64Array.from({ length: 128 }, (_, i) => 1000 + (i % 17)),
      );
      cases.push({ op, dtype: 'f32', shape: [2, 64], attrs: { axis: 1 }, data: big });
      cases.push({ op, dtype: 'f32', shape: [8, 50], attrs: { axis: 1 }, special: true });
      const ninf = makeTensor(
        'f32',
        [3, 40],
        Float64Array.from({ length: 120 }, (_, i) => (i < 40 ? -Infinity : i)),
      );
      cases.push({ op, dtype: 'f32', shape: [3, 40], attrs: { axis: 1 }, data: ninf });
    }
    await checkAll(cases);
  });
});

describe.skipIf(noGpu)('layer_norm / rms_norm on WebGPU', () => {
  it('axes, broadcast scale / bias, optional outputs', async () => {
    const cases: Case[] = [];
    for (const s of [
      { shape: [3, 100], axis: -1, params: [[100], [100]] },
      { shape: [2, 700], axis: 1, params: [[700], [1]] },
      { shape: [4, 5], axis: 1, params: [[5], null] },
      {
        shape: [2, 3, 4, 5],
        axis: 2,
        params: [
          [4, 5],
          [1, 5],
        ],
      },
      {
        shape: [2, 3, 4, 5],
        axis: 1,
        params: [
          [3, 1, 5],
          [4, 1],
        ],
      },
      { shape: [2, 3, 40], axis: 0, params: [[3, 40], [40]] },
      { shape: [6, 1], axis: -1, params: [[1], [1]] },
      { shape: [3, 0], axis: 1, params: [[0], [0]] },
    ]) {
      for (const outputs of [1, 3]) {
        cases.push({
          op: 'layer_norm',
          dtype: 'f32',
          shape: s.shape,
          attrs: { axis: s.axis, epsilon: 1e-3 },
          params: s.params,
          outputs,
        });
      }
      cases.push({ op: 'rms_norm', dtype: 'f32', shape: s.shape, attrs: { axis: s.axis }, params: [s.params[0]!] });
    }
    cases.push({ op: 'layer_norm', dtype: 'f32', shape: [3, 10], params: [[10]], outputs: 2 });
    await checkAll(cases);
  });

  // A row far from zero relative to its spread: f32 rounding of the mean is amplified by 1/std (up to 1/sqrt(eps)).
  // Constant rows must give the bias exactly; near-constant rows with a large offset must stay accurate.
  it('constant and near-constant rows with a large offset (ill-conditioned mean)', async () => {
    for (const len of [257, 1000, 7]) {
      const rows = [0.3, 1 / 3, 100.1, -7.77];
      const data = new Float64Array(rows.length * 2 * len);
      rows.forEach((v, r) => {
        for (let j = 0; j < len; j++) {
          data[2 * r * len + j] = v; // exactly constant row
          data[(2 * r + 1) * len + j] = v + ((j * 37) % 11) * 1e-3 * Math.abs(v); // spread 1e-3 of the offset
        }
      });
      const x = makeTensor('f32', [rows.length * 2, len], data);
      const cases: Case[] = [];
      for (const outputs of [1, 3]) {
        cases.push({
          op: 'layer_norm',
          dtype: 'f32',
          shape: [rows.length * 2, len],
          attrs: { axis: -1, epsilon: 1e-5 },
          params: [[len], [len]],
          outputs,
          data: x,
        });
      }
      await checkAll(cases);
    }
  });
});

describe.skipIf(noGpu)('cumsum on WebGPU', () => {
  it('axes, exclusive, reverse, float / integer / packed dtypes', async () => {
    const cases: Case[] = [];
    for (const dtype of ['f32', 'i32', 'i64', 'u32', 'u8', 'i8', 'i16'] as DType[]) {
      for (const s of [
        { shape: [300], axis: 0 },
        { shape: [5, 7], axis: 1 },
        { shape: [5, 7], axis: 0 },
        { shape: [3, 9, 4], axis: -2 },
        { shape: [1], axis: 0 },
      ]) {
        for (const [exclusive, reverse] of [
          [false, false],
          [true, false],
          [false, true],
          [true, true],
        ]) {
          if (dtype !== 'f32' && s.shape.length === 1 && s.shape[0] === 1 && (exclusive || reverse)) continue;
          cases.push({ op: 'cumsum', dtype, shape: s.shape, attrs: { axis: s.axis, exclusive, reverse } });
        }
      }
    }
    cases.push({ op: 'cumsum', dtype: 'f32', shape: [0, 4], attrs: { axis: 1 } });
    await checkAll(cases);
  });
});

// ---- property: random ops, shapes, attrs ----

const arbShape = fc
  .array(fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 9 }) }, fc.integer({ min: 1, max: 300 })), {
    minLength: 1,
    maxLength: 4,
  })
  .filter((s) => numel(s) <= 20000);

const arbCase: fc.Arbitrary<Case> = fc
  .record({
    shape: arbShape,
    kind: fc.constantFrom('reduce', 'arg', 'softmax', 'norm', 'cumsum'),
    op: fc.nat(),
    dtype: fc.constantFrom<DType>('f32', 'f32', 'f16', 'i32', 'u8'),
    axesMask: fc.nat(),
    axis: fc.nat(),
    flags: fc.nat(),
    pcut: fc.nat(),
  })
  .map(({ shape, kind, op, dtype, axesMask, axis, flags, pcut }): Case => {
    const r = shape.length;
    const ax = axis % r;
    const bit = (k: number) => ((flags >> k) & 1) === 1;
    const float: DType = dtype === 'f16' ? 'f16' : 'f32';
    switch (kind) {
      case 'reduce': {
        const name = REDUCE_OPS[op % REDUCE_OPS.length]!;
        const axes = shape.map((_, i) => i).filter((i) => (axesMask >> i) & 1);
        const intOk = !['reduce_prod'].includes(name);
        return {
          op: name,
          dtype: intOk ? dtype : float,
          shape,
          attrs: { axes, keepdims: bit(0), noop_with_empty_axes: bit(1) },
          data:
            name === 'reduce_prod'
              ? makeTensor(
                  float,
                  shape,
                  Float64Array.from({ length: numel(shape) }, () => 0.95 + Math.random() * 0.1),
                )
              : undefined,
        };
      }
      case 'arg':
        return {
          op: op % 2 ? 'argmax' : 'argmin',
          dtype,
          shape,
          attrs: { axis: bit(0) ? ax - r : ax, keepdims: bit(1), select_last_index: bit(2) },
        };
      case 'softmax':
        return { op: op % 2 ? 'softmax' : 'log_softmax', dtype: float, shape, attrs: { axis: ax } };
      case 'norm': {
        const norm = shape.slice(ax);
        // a trailing part of the normalized shape, some dims broadcast (1)
        const p = (k: number) =>
          norm.slice((pcut >> (k * 3)) % (norm.length + 1)).map((d, i) => ((pcut >> (8 + k * 4 + i)) & 1 ? 1 : d));
        return op % 2
          ? { op: 'rms_norm', dtype: float, shape, attrs: { axis: ax }, params: [p(0)] }
          : { op: 'layer_norm', dtype: float, shape, attrs: { axis: ax }, params: [p(0), p(1)], outputs: 1 + (op % 3) };
      }
      default:
        return {
          op: 'cumsum',
          dtype: dtype === 'f16' ? 'f32' : dtype,
          shape: shape.map((d) => Math.min(d, 50)),
          attrs: { axis: ax, exclusive: bit(0), reverse: bit(1) },
        };
    }
  });

describe.skipIf(noGpu)('property: random reductions / normalizations match the reference', () => {
  it('random ops, shapes, axes, dtypes', async () => {
    await fc.assert(
      fc.asyncProperty(arbCase, async (cs) => {
        expect(await check(cs)).toEqual([]);
      }),
      { numRuns: Math.max(10, Math.round(PROP_RUNS / 2)), verbose: 1 },
    );
  }, 120_000);
});
