/**
 * Movement / injective lowerings (codegen/lower/movement.ts) on WebGPU against the float64 reference: reshape
 * family, transpose, slice, concat, split, expand, tile, gathers, range, trilu, constant_of_shape, pad. Fresh random
 * inputs every run (float specials included: copies must move NaN / ±inf bit-exactly), outputs poisoned first.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { lowerNode } from '../../codegen/lower/index.js';
import type { LowerCtx } from '../../codegen/lower/kernel-builder.js';
import { DEFAULT_CAPS } from '../../codegen/lower/storage.js';
import { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import { UnsupportedError } from '../../ir/errors.js';
import type { Graph, Value } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import '../../ir/ops/index.js';
import type { Attrs } from '../../ir/registry.js';
import { makeTensor, numel, type Tensor } from '../../ir/tensor.js';
import { Executor } from '../../src/runtime/executor.js';
import { compile } from '../../src/session.js';
import { checkAgainstReference, compareWithReference, skipWebgpu } from '../helpers/backends.js';
import { PROP_RUNS } from '../helpers/paths.js';

const noGpu = await skipWebgpu();
const RUNS = Math.max(3, Math.round(PROP_RUNS / 6));
const INT64_MAX = 9.223372036854776e18;
const INT64_MIN = -9.223372036854776e18;

const RANGES: Partial<Record<DType, [number, number]>> = {
  i64: [-(2 ** 31), 2 ** 31 - 1],
  i32: [-(2 ** 31), 2 ** 31 - 1],
  i16: [-32768, 32767],
  i8: [-128, 127],
  i4: [-8, 7],
  u64: [0, 2 ** 32 - 1],
  u32: [0, 2 ** 32 - 1],
  u16: [0, 65535],
  u8: [0, 255],
  u4: [0, 15],
  bool: [0, 1],
};
const SPECIALS = [NaN, Infinity, -Infinity, -0];

/** Random values of a dtype (floats: mostly in [-4, 4], a few NaN / ±inf / -0). */
function randomTensor(dtype: DType, shape: readonly number[]): Tensor {
  const n = numel(shape);
  const r = RANGES[dtype];
  const data = Array.from({ length: n }, () => {
    if (r) return r[0] + Math.floor(Math.random() * (r[1] - r[0] + 1));
    if (Math.random() < 0.03) return SPECIALS[Math.floor(Math.random() * SPECIALS.length)]!;
    return Math.random() * 8 - 4;
  });
  return makeTensor(dtype, shape, data);
}

interface Case {
  graph: Graph;
  feeds: Record<string, Tensor>;
}

/** One op over a random graph input `x` of (dtype, shape); `extra` adds the other inputs (constants...). */
function oneOp(
  op: string,
  dtype: DType,
  shape: readonly number[],
  attrs: Attrs = {},
  extra: (b: GraphBuilder) => (Value | null)[] = () => [],
  numOutputs = 1,
): Case {
  const b = new GraphBuilder();
  const x = b.input('x', dtype, shape);
  const outs = b.opN(op, [x, ...extra(b)], attrs, numOutputs);
  outs.forEach((o, i) => b.output(o, `y${i}`));
  return { graph: b.build(), feeds: { x: randomTensor(dtype, shape) } };
}

async function expectMatch(c: Case, disableF16 = false): Promise<void> {
  const m = await checkAgainstReference(c.graph, c.feeds, { backend: 'webgpu', disableF16 });
  expect(
    m,
    `feeds ${JSON.stringify(Object.fromEntries(Object.entries(c.feeds).map(([k, t]) => [k, t.shape])))}`,
  ).toEqual([]);
}

/** f16 graphs run with shader-f16 and with the f32 fallback. */
async function expectMatchAll(c: Case): Promise<void> {
  await expectMatch(c);
  if (JSON.stringify(c.graph.inputs.map((v) => v.type.dtype)).includes('f16')) await expectMatch(c, true);
}

const i64 = (b: GraphBuilder, values: readonly number[]) => b.const('i64', values);
const ALL: readonly DType[] = ['f32', 'f16', 'bf16', 'i64', 'i32', 'u32', 'i16', 'u16', 'i8', 'u8', 'i4', 'bool'];

describe.skipIf(noGpu)('movement lowerings on WebGPU', () => {
  it('reshape / flatten / squeeze / unsqueeze copy every dtype (packed ones included)', async () => {
    for (const dt of ALL) {
      await expectMatchAll(oneOp('reshape', dt, [3, 5, 17], {}, (b) => [i64(b, [17, -1])]));
    }
    await expectMatch(oneOp('reshape', 'f32', [1], {}, (b) => [i64(b, [1, 1])]));
    await expectMatch(oneOp('flatten', 'u8', [2, 3, 67], { axis: 2 }));
    await expectMatch(oneOp('squeeze', 'bool', [1, 301, 1], { axes: [0, -1] }));
    await expectMatch(oneOp('unsqueeze', 'i8', [7, 9], { axes: [0, 2] }));
    await expectMatch(oneOp('reshape', 'f32', [0, 3], { allowzero: true }, (b) => [i64(b, [3, 0])]));
  });

  it('transpose: perms over odd shapes, several workgroups, packed dtypes', async () => {
    const cases: [number[], number[] | undefined][] = [
      [
        [33, 300],
        [1, 0],
      ],
      [
        [2, 3, 4],
        [2, 0, 1],
      ],
      [[2, 3, 4], undefined],
      [
        [1, 37, 5],
        [2, 1, 0],
      ],
      [
        [3, 1, 2, 65],
        [0, 2, 1, 3],
      ],
      [
        [2, 5, 3, 7],
        [0, 2, 1, 3],
      ],
      [[7], [0]],
    ];
    await expectMatchAll(oneOp('transpose', 'f16', [33, 300], { perm: [1, 0] }));
    // last-two-axes swaps take the shared-memory tiled kernel (partial tiles at both edges, batches merged)
    for (const dt of ['f32', 'i32'] as const) {
      await expectMatch(oneOp('transpose', dt, [3, 20, 45], { perm: [0, 2, 1] }));
      await expectMatch(oneOp('transpose', dt, [2, 2, 17, 40], { perm: [0, 1, 3, 2] }));
    }
    await expectMatchAll(oneOp('transpose', 'f16', [1, 64, 9], { perm: [0, 2, 1] }));
    await expectMatch(oneOp('transpose', 'bool', [40, 30], { perm: [1, 0] }));
    await expectMatch(oneOp('transpose', 'bool', [3, 5, 7], { perm: [2, 0, 1] }));
    for (const [shape, perm] of cases) {
      for (const dt of ['f32', 'i8'] as const) await expectMatch(oneOp('transpose', dt, shape, perm ? { perm } : {}));
    }
  });

  it('slice: negative starts / steps, int64 sentinels, axes, empty results', async () => {
    const cases: [number[], number[], number[], number[]?, number[]?][] = [
      [
        [20, 10, 5],
        [0, 0],
        [3, 10],
        [0, 1],
        [1, 1],
      ],
      [[20, 10, 5], [1], [1000], [1], [2]],
      [[20, 10, 5], [-1], [INT64_MIN], [1], [-3]],
      [
        [20, 10, 5],
        [INT64_MAX, 1],
        [-INT64_MAX, 4],
        [-1, 0],
        [-1, 1],
      ],
      [[300], [5], [290], undefined, [7]],
      [[6, 7], [3], [3], [1]],
      [
        [4, 9],
        [-100, 2],
        [100, -2],
      ],
    ];
    for (const [shape, starts, ends, axes, steps] of cases) {
      for (const dt of ['f32', 'u8'] as const) {
        await expectMatch(
          oneOp('slice', dt, shape, {}, (b) => [
            i64(b, starts),
            i64(b, ends),
            axes ? i64(b, axes) : null,
            steps ? i64(b, steps) : null,
          ]),
        );
      }
    }
  });

  it('slice parameters fed at run time are read on the host', async () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'f32', [8, 9]);
    const s = b.input('s', 'i64', [2]);
    const e = b.input('e', 'i64', [2]);
    b.output(b.op('slice', [x, s, e]), 'y');
    const feeds = {
      x: randomTensor('f32', [8, 9]),
      s: makeTensor('i64', [2], [1, -3]),
      e: makeTensor('i64', [2], [7, -1]),
    };
    await expectMatch({ graph: b.build(), feeds });
  });

  /** Concat of inputs with sizes `along` on `axis` of `shape` (that axis replaced). */
  function concatCase(dt: DType, shape: readonly number[], axis: number, along: readonly number[]): Case {
    const b = new GraphBuilder();
    const r = shape.length;
    const ax = axis < 0 ? axis + r : axis;
    const feeds: Record<string, Tensor> = {};
    const xs = along.map((d, i) => {
      const s = shape.map((x, k) => (k === ax ? d : x));
      feeds[`x${i}`] = randomTensor(dt, s);
      return b.input(`x${i}`, dt, s);
    });
    b.output(b.op('concat', xs, { axis }), 'y');
    return { graph: b.build(), feeds };
  }

  it('concat: 1 to 5 inputs, any axis, empty inputs, packed dtypes', async () => {
    for (const dt of ['f32', 'f16', 'bool', 'i16'] as const) {
      await expectMatchAll(concatCase(dt, [2, 3, 5], -1, [5, 0, 3, 1, 7]));
    }
    await expectMatch(concatCase('u8', [2, 3, 4], 0, [1, 3, 2]));
    await expectMatch(concatCase('f32', [2, 3, 4], 1, [5, 1]));
    await expectMatch(concatCase('f32', [7], 0, [300]));
    await expectMatch(concatCase('i32', [70, 5], 0, [70, 33, 1]));
    await expectMatch(concatCase('f32', [0, 5], 1, [2, 3]));
  });

  it('concat of more inputs than a kernel may bind (16 storage buffers on lavapipe) takes several steps', async () => {
    const sizes = Array.from({ length: 21 }, (_, i) => (i * 7) % 5);
    await expectMatch(concatCase('f32', [3, 2, 5], 1, sizes));
    await expectMatch(concatCase('bool', [37], 0, sizes));
  });

  it('split: equal, variable and zero-size parts', async () => {
    for (const dt of ['f32', 'u8', 'i64'] as const) {
      await expectMatch(oneOp('split', dt, [6, 4], { axis: 0 }, undefined, 3));
      await expectMatch(oneOp('split', dt, [5, 7, 3], { axis: 1, split: [2, 0, 5] }, undefined, 3));
      await expectMatch(oneOp('split', dt, [301], { axis: -1, split: [300, 1] }, undefined, 2));
    }
  });

  it('expand: broadcast dims, new leading dims, bidirectional 1s', async () => {
    const cases: [number[], number[]][] = [
      [
        [3, 1],
        [2, 3, 4],
      ],
      [[1], [5]],
      [
        [2, 1, 4],
        [3, 1],
      ],
      [
        [1, 1],
        [70, 9],
      ],
      [[4], [2, 1, 4]],
    ];
    await expectMatchAll(oneOp('expand', 'f16', [3, 1], {}, (b) => [i64(b, [2, 3, 4])]));
    await expectMatch(oneOp('expand', 'bool', [2, 1, 4], {}, (b) => [i64(b, [3, 1])]));
    for (const [shape, target] of cases) {
      await expectMatch(oneOp('expand', 'f32', shape, {}, (b) => [i64(b, target)]));
    }
  });

  it('tile', async () => {
    for (const dt of ['f32', 'i8'] as const) {
      await expectMatch(oneOp('tile', dt, [2, 3], {}, (b) => [i64(b, [3, 2])]));
      await expectMatch(oneOp('tile', dt, [1, 5, 7], {}, (b) => [i64(b, [4, 1, 9])]));
      await expectMatch(oneOp('tile', dt, [3], {}, (b) => [i64(b, [0])]));
    }
  });

  /** Indices in [-len, len) (both signs), as a graph input. */
  function indices(dt: 'i64' | 'i32', shape: readonly number[], len: number): Tensor {
    return makeTensor(
      dt,
      shape,
      Array.from({ length: numel(shape) }, () => Math.floor(Math.random() * 2 * len) - len),
    );
  }

  function gatherCase(op: string, dt: DType, shape: number[], ix: Tensor, attrs: Attrs): Case {
    const b = new GraphBuilder();
    const x = b.input('x', dt, shape);
    const i = b.input('i', ix.dtype, ix.shape);
    b.output(b.op(op, [x, i], attrs), 'y');
    return { graph: b.build(), feeds: { x: randomTensor(dt, shape), i: ix } };
  }

  it('gather: axes, negative and scalar indices, i32 / i64 indices', async () => {
    for (const dt of ['f32', 'f16', 'u8', 'i64'] as const) {
      await expectMatchAll(gatherCase('gather', dt, [10, 7], indices('i64', [4, 3], 10), { axis: 0 }));
      await expectMatchAll(gatherCase('gather', dt, [3, 10, 5], indices('i32', [6], 10), { axis: 1 }));
      await expectMatchAll(gatherCase('gather', dt, [3, 4, 9], indices('i64', [], 9), { axis: -1 }));
    }
    await expectMatch(gatherCase('gather', 'f32', [50, 64], indices('i64', [2, 7], 50), { axis: 0 }));
  });

  it('gather_elements and gather_nd (batch_dims 0 and 1)', async () => {
    await expectMatch(gatherCase('gather_elements', 'bool', [4, 5], indices('i64', [3, 5], 4), { axis: 0 }));
    await expectMatch(gatherCase('gather_nd', 'i32', [3, 5, 6], indices('i64', [3, 4, 1], 5), { batch_dims: 1 }));
    for (const dt of ['f32'] as const) {
      await expectMatch(gatherCase('gather_elements', dt, [4, 5], indices('i64', [3, 5], 4), { axis: 0 }));
      await expectMatch(gatherCase('gather_elements', dt, [4, 5, 3], indices('i32', [4, 9, 2], 5), { axis: 1 }));
      await expectMatch(gatherCase('gather_nd', dt, [4, 5, 6], indices('i64', [7, 2], 4), { batch_dims: 0 }));
      await expectMatch(gatherCase('gather_nd', dt, [3, 5, 6], indices('i64', [3, 4, 1], 5), { batch_dims: 1 }));
      await expectMatch(gatherCase('gather_nd', dt, [3, 5, 6], indices('i32', [3, 2, 2], 5), { batch_dims: 1 }));
    }
  });

  it('gather with out-of-range indices is a typed error naming the node (as on the reference), never a read out of bounds', async () => {
    const b = new GraphBuilder();
    const x = b.input('x', 'f32', [4, 2]);
    const i = b.input('i', 'i64', [4]);
    b.output(b.op('gather', [x, i], { axis: 0 }), 'y');
    const s = await compile(b.build(), { backend: 'webgpu', poison: true });
    try {
      const xs = makeTensor('f32', [4, 2], [0, 1, 2, 3, 4, 5, 6, 7]);
      await expect(s.run({ x: xs, i: makeTensor('i64', [4], [7, -9, -1, 2]) })).rejects.toThrow(
        /index out of range.*gather/,
      );
      const y = await s.run({ x: xs, i: makeTensor('i64', [4], [3, -4, -1, 2]) });
      expect(Array.from(y['y']!.data)).toEqual([6, 7, 0, 1, 6, 7, 4, 5]);
    } finally {
      s.dispose();
    }
  });

  it('range: float, int and half dtypes, positive and negative deltas', async () => {
    const cases: [DType, number, number, number][] = [
      ['f32', 0.5, 300.25, 1.25],
      ['f32', 10, -3, -0.75],
      ['i32', 7, -400, -3],
      ['i64', -5, 1000, 7],
      ['f16', 1, 40, 0.5],
      ['bf16', 2, 90, 0.375],
      ['u32', 3, 900, 4],
    ];
    for (const [dt, s, l, d] of cases) {
      const b = new GraphBuilder();
      const ins = ['s', 'l', 'd'].map((n) => b.input(n, dt, []));
      b.output(b.op('range', ins), 'y');
      const t = (v: number) => makeTensor(dt, [], [v]);
      await expectMatchAll({ graph: b.build(), feeds: { s: t(s), l: t(l), d: t(d) } });
    }
  });

  it('trilu: upper / lower, k on the host, k beyond the matrix, k computed on the device', async () => {
    for (const upper of [true, false]) {
      for (const k of [0, 1, -2, 40, -INT64_MAX]) {
        await expectMatch(oneOp('trilu', 'f32', [3, 5, 33], { upper }, (b) => [b.const('i64', [k], [])]));
      }
      await expectMatch(oneOp('trilu', 'bool', [17, 9], { upper }));
      const b = new GraphBuilder();
      const x = b.input('x', 'i32', [2, 6, 7]);
      const k0 = b.input('k', 'i64', []);
      const k = b.op('add', [k0, b.const('i64', [1], [])]); // a device value: read from its buffer
      b.output(b.op('trilu', [x, k], { upper }), 'y');
      await expectMatch({
        graph: b.build(),
        feeds: { x: randomTensor('i32', [2, 6, 7]), k: makeTensor('i64', [], [-2]) },
      });
    }
  });

  it('constant_of_shape with a run-time shape', async () => {
    const values: Tensor[] = [
      makeTensor('f32', [1], [-1.5]),
      makeTensor('i64', [1], [-7]),
      makeTensor('bool', [1], [1]),
      makeTensor('f16', [1], [0.333]),
      makeTensor('u8', [1], [200]),
    ];
    for (const value of values) {
      const b = new GraphBuilder();
      const s = b.input('s', 'i64', [3]);
      b.output(b.op('constant_of_shape', [s], { value }), 'y');
      await expectMatchAll({ graph: b.build(), feeds: { s: makeTensor('i64', [3], [3, 1, 97]) } });
    }
  });

  function padCase(
    dt: DType,
    shape: number[],
    pads: number[],
    mode: string,
    value?: number,
    axes?: number[],
    valueOnDevice = false,
  ): Case {
    const b = new GraphBuilder();
    const x = b.input('x', dt, shape);
    const feeds: Record<string, Tensor> = { x: randomTensor(dt, shape) };
    let cv: Value | null = null;
    if (value !== undefined && valueOnDevice) {
      const v0 = b.input('v', dt, []);
      feeds['v'] = makeTensor(dt, [], [value]);
      cv = b.op('identity', [v0]);
    } else if (value !== undefined) cv = b.const(dt, [value], []);
    const ins = [x, i64(b, pads), cv];
    if (axes) ins.push(i64(b, axes));
    b.output(b.op('pad', ins, { mode }), 'y');
    return { graph: b.build(), feeds };
  }

  it('pad: every mode, pads beyond the axis, negative pads, axes, constant values', async () => {
    for (const mode of ['constant', 'reflect', 'edge', 'wrap']) {
      await expectMatch(padCase('f32', [3, 4, 5], [1, 0, 2, 2, 3, 0], mode));
      await expectMatch(padCase('u8', [2, 3], [0, 7, 1, 9], mode)); // pads beyond the axis
      await expectMatch(padCase('f32', [5, 6], [-1, 2, 0, -3], mode));
      await expectMatch(padCase('f32', [4, 300], [1, 3], mode, undefined, [-1]));
    }
    await expectMatch(padCase('f32', [1, 1], [2, 3, 4, 5], 'reflect'));
    await expectMatchAll(padCase('f16', [3, 4, 5], [1, 0, 2, 2, 3, 0], 'reflect'));
    await expectMatch(padCase('bool', [2, 3], [0, 7, 1, 9], 'constant', 1));
    await expectMatch(padCase('i32', [2, 3], [0, 7, 1, 9], 'wrap'));
    await expectMatch(padCase('f32', [4, 6], [1, 1, 2, 2], 'constant', -Infinity));
    await expectMatch(padCase('f16', [4, 6], [1, 1, 2, 2], 'constant', 2.5, undefined, true));
    await expectMatch(padCase('i64', [4, 6], [0, 3], 'constant', -9, [0], true));
    await expectMatch(padCase('f32', [4, 6], [0, -6, 0, 2], 'constant', 3)); // input cropped away: all constant
  });

  it('property: transpose over random shapes and perms', async () => {
    const arb = fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 5 }).chain((shape) =>
      fc.record({
        shape: fc.constant(shape),
        perm: fc.shuffledSubarray(
          shape.map((_, i) => i),
          { minLength: shape.length, maxLength: shape.length },
        ),
        dt: fc.constantFrom<DType>('f32', 'i8', 'f16'),
      }),
    );
    await fc.assert(
      fc.asyncProperty(arb, async ({ shape, perm, dt }) => expectMatch(oneOp('transpose', dt, shape, { perm }))),
      { numRuns: RUNS },
    );
  });

  it('property: slice over random shapes and parameters', async () => {
    const arb = fc
      .array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 4 })
      .chain((shape) =>
        fc.record({
          shape: fc.constant(shape),
          params: fc.array(
            fc
              .record({
                axis: fc.integer({ min: 0, max: shape.length - 1 }),
                a: fc.integer({ min: -12, max: 12 }),
                b: fc.integer({ min: -12, max: 12 }),
                step: fc.integer({ min: -4, max: 4 }).filter((s) => s !== 0),
              })
              // mostly non-empty: the bounds ordered along the step (negatives normalized like the reference)
              .map(({ axis, a, b, step }) => {
                const norm = (x: number) => (x < 0 ? x + shape[axis]! : x);
                const lo = norm(a) <= norm(b) ? a : b;
                const hi = lo === a ? b : a;
                return { axis, step, start: step > 0 ? lo : hi, end: step > 0 ? hi : lo };
              }),
            { minLength: 1, maxLength: shape.length },
          ),
        }),
      )
      .map(({ shape, params }) => ({
        shape,
        params: params.filter((p, i) => params.findIndex((q) => q.axis === p.axis) === i),
      }));
    await fc.assert(
      fc.asyncProperty(arb, async ({ shape, params }) =>
        expectMatch(
          oneOp('slice', 'f32', shape, {}, (b) => [
            i64(
              b,
              params.map((p) => p.start),
            ),
            i64(
              b,
              params.map((p) => p.end),
            ),
            i64(
              b,
              params.map((p) => p.axis),
            ),
            i64(
              b,
              params.map((p) => p.step),
            ),
          ]),
        ),
      ),
      { numRuns: RUNS },
    );
  });

  it('property: pad over random shapes, pads (negative included) and modes', async () => {
    const arb = fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 3 }).chain((shape) =>
      fc.record({
        shape: fc.constant(shape),
        begin: fc.tuple(...shape.map((d) => fc.integer({ min: -Math.floor(d / 2), max: 9 }))),
        end: fc.tuple(...shape.map((d) => fc.integer({ min: -Math.floor(d / 2), max: 9 }))),
        mode: fc.constantFrom('constant', 'reflect', 'edge', 'wrap'),
        dt: fc.constantFrom<DType>('f32', 'u8', 'f16'),
      }),
    );
    await fc.assert(
      fc.asyncProperty(arb, async ({ shape, begin, end, mode, dt }) =>
        expectMatch(padCase(dt, shape, [...begin, ...end], mode, mode === 'constant' ? 5 : undefined)),
      ),
      { numRuns: RUNS },
    );
  });

  it('property: gather over random shapes and axes', async () => {
    const arb = fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 3 }).chain((shape) =>
      fc.record({
        shape: fc.constant(shape),
        axis: fc.integer({ min: -shape.length, max: shape.length - 1 }),
        ixShape: fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 2 }),
      }),
    );
    await fc.assert(
      fc.asyncProperty(arb, async ({ shape, axis, ixShape }) => {
        const len = shape[axis < 0 ? axis + shape.length : axis]!;
        await expectMatch(gatherCase('gather', 'f32', shape, indices('i64', ixShape, len), { axis }));
      }),
      { numRuns: RUNS },
    );
  });
});

describe('movement lowerings: kernel structure', () => {
  const ctxOf = (
    op: string,
    inputs: { dtype: DType; shape: number[]; data?: Tensor }[],
    out: number[],
    attrs: Attrs,
  ): LowerCtx => ({
    caps: { ...DEFAULT_CAPS, maxBuffersPerKernel: 4 },
    node: 'n0',
    op,
    attrs,
    inputs,
    outputs: [{ dtype: inputs[0]?.dtype ?? 'f32', shape: out }],
  });

  it('a concat of more inputs than the buffer limit splits into steps within the limit', () => {
    const ins = Array.from({ length: 7 }, () => ({ dtype: 'f32' as const, shape: [2, 3] }));
    const steps = lowerNode(ctxOf('concat', ins, [2, 21], { axis: 1 }));
    expect(steps.length).toBe(3);
    for (const s of steps) expect(s.bindings.length).toBeLessThanOrEqual(4);
    expect(
      steps.flatMap((s) => s.bindings.filter((b) => b.kind === 'in').map((b) => (b as { index: number }).index)),
    ).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it('transposes merge contiguous axes and keep shapes in uniforms', () => {
    const [a] = lowerNode(
      ctxOf('transpose', [{ dtype: 'f32', shape: [2, 3, 4, 5] }], [2, 4, 5, 3], { perm: [0, 2, 3, 1] }),
    );
    const [b] = lowerNode(
      ctxOf('transpose', [{ dtype: 'f32', shape: [6, 7, 8, 9] }], [6, 8, 9, 7], { perm: [0, 2, 3, 1] }),
    );
    expect(a!.kernel.name).toBe(b!.kernel.name); // one kernel for the shape class
    expect(a!.kernel.uniforms.length).toBeLessThan(8);
  });

  it('last-two-axes transposes use the tiled kernel, others the strided one', () => {
    const name = (shape: number[], perm: number[], dtype: DType = 'f32') =>
      lowerNode(
        ctxOf(
          'transpose',
          [{ dtype, shape }],
          perm.map((p) => shape[p]!),
          { perm },
        ),
      )[0]!.kernel.name;
    expect(name([4, 33, 40], [0, 2, 1])).toMatch(/^k_transpose_tiled_/);
    expect(name([33, 40], [1, 0])).toMatch(/^k_transpose_tiled_/);
    expect(name([33, 40], [1, 0], 'u8')).toMatch(/^k_transpose_[0-9a-f]/);
    expect(name([4, 33, 40], [1, 0, 2])).toMatch(/^k_transpose_[0-9a-f]/);
    expect(name([3, 40], [1, 0])).toMatch(/^k_transpose_[0-9a-f]/);
  });

  it('reshape binds only the data input (its shape input is host data)', () => {
    const shape = makeTensor('i64', [1], [6]);
    const [s] = lowerNode(
      ctxOf(
        'reshape',
        [
          { dtype: 'f32', shape: [2, 3] },
          { dtype: 'i64', shape: [1], data: shape },
        ],
        [6],
        {},
      ),
    );
    expect(s!.bindings).toEqual([
      { kind: 'in', index: 0 },
      { kind: 'out', index: 0 },
    ]);
  });

  it('constant: splats and tiny tensors from uniforms, larger ones are left to the host', () => {
    const at = (value: Tensor) => ({
      ...ctxOf('constant', [], value.shape as number[], { value }),
      outputs: [{ dtype: value.dtype, shape: value.shape }],
    });
    const [splat] = lowerNode(at(makeTensor('f32', [300], new Array<number>(300).fill(2.5))));
    expect(splat!.bindings).toEqual([{ kind: 'out', index: 0 }]);
    expect(splat!.uniforms).toContain(2.5);
    const [tiny] = lowerNode(at(makeTensor('i64', [3], [4, -5, 6])));
    expect(tiny!.uniforms).toEqual(expect.arrayContaining([4, -5, 6]));
    expect(() =>
      lowerNode(
        at(
          makeTensor(
            'f32',
            [40],
            Array.from({ length: 40 }, (_, i) => i),
          ),
        ),
      ),
    ).toThrow(UnsupportedError);
  });

  it('empty outputs get an empty grid', () => {
    const [s] = lowerNode(ctxOf('transpose', [{ dtype: 'f32', shape: [0, 3] }], [3, 0], {}));
    expect(s!.grid[0]).toBe(0);
  });
});

// A device with a 4-buffer limit: the multi-step concat runs for real (packed output words merged across steps).
describe.skipIf(noGpu)('concat under a small storage-buffer limit', () => {
  let destroy: (() => void) | undefined;
  afterAll(() => destroy?.());

  it('matches the reference', async () => {
    const { acquireGpu } = await import('../../src/runtime/webgpu/device.js');
    const { WebGpuBackend, deviceCapsOf } = await import('../../src/runtime/webgpu/backend.js');
    const gpu = await acquireGpu();
    destroy = () => gpu.destroy();
    const backend = new WebGpuBackend(gpu, { ...deviceCapsOf(gpu), maxBuffersPerKernel: 4 });
    const cases: [DType, [number, number], number[]][] = [
      ['f32', [2, 3], [1, 2, 0, 3, 1, 1, 2, 5]],
      ['bool', [3, 1], [3, 1, 4, 1, 5, 9, 2, 6, 5]],
    ];
    for (const [dt, shape, along] of cases) {
      {
        const b = new GraphBuilder();
        const feeds: Record<string, Tensor> = {};
        const xs = along.map((d, i) => {
          const s = [shape[0], d, shape[1]];
          feeds[`x${i}`] = randomTensor(dt, s);
          return b.input(`x${i}`, dt, s);
        });
        b.output(b.op('concat', xs, { axis: 1 }), 'y');
        const g = b.build();
        const ex = new Executor(g, backend, { poison: true });
        const got = await ex.run(feeds);
        ex.dispose();
        const ref = interpret(g, feeds);
        expect(compareWithReference('y', got['y']!, ref['y']!)).toBeUndefined();
      }
    }
  });
});
