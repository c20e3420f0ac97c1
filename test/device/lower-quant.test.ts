/**
 * quantize_linear / dequantize_linear / dynamic_quantize_linear lowered to WGSL and run on WebGPU (lavapipe without a
 * GPU), compared with the float64 reference: quantized outputs exactly, float outputs within f32 tolerance.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import '../../ir/index.js';
import type { Attrs } from '../../ir/registry.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { compile } from '../../src/session.js';
import { checkAgainstReference, skipWebgpu } from '../helpers/backends.js';
import { PROP_RUNS } from '../helpers/paths.js';

const noGpu = await skipWebgpu();
const runs = Math.max(6, Math.round(PROP_RUNS / 6));

const RANGE: Record<string, [number, number]> = {
  u8: [0, 255],
  i8: [-128, 127],
  u16: [0, 65535],
  i16: [-32768, 32767],
  u4: [0, 15],
  i4: [-8, 7],
};

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const randInt = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));

function rand(dtype: DType, shape: readonly number[], gen: () => number): Tensor {
  return makeTensor(dtype, shape, Array.from({ length: numel(shape) }, gen));
}

/** One op over graph inputs (null = absent optional input); all its outputs become graph outputs. */
async function check(
  op: string,
  ins: readonly (Tensor | null)[],
  attrs: Attrs,
  numOutputs = 1,
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
  const mism = await checkAgainstReference(b.build(), feeds, { backend: 'webgpu', disableF16 });
  expect(mism, `${op} ${JSON.stringify(attrs)} shapes ${ins.map((t) => (t ? `[${t.shape}]` : '_'))}`).toEqual([]);
}

type Layout = { kind: 'tensor' } | { kind: 'axis'; axis: number } | { kind: 'block'; axis: number; block: number };

function scaleShape(x: readonly number[], layout: Layout): number[] {
  if (layout.kind === 'tensor') return [];
  if (layout.kind === 'axis') return [x[layout.axis]!];
  return x.map((d, i) => (i === layout.axis ? Math.ceil(d / layout.block) : d));
}

function layoutAttrs(layout: Layout): Attrs {
  if (layout.kind === 'tensor') return {};
  if (layout.kind === 'axis') return { axis: layout.axis };
  return { axis: layout.axis, block_size: layout.block };
}

async function checkQuantize(
  shape: number[],
  layout: Layout,
  out: DType,
  opts: { xDtype?: DType; scaleDtype?: DType; zp?: boolean; special?: boolean; disableF16?: boolean } = {},
) {
  const [lo, hi] = RANGE[out]!;
  const xDt = opts.xDtype ?? 'f32';
  const sDt = opts.scaleDtype ?? 'f32';
  const sShape = scaleShape(shape, layout);
  const scale = rand(sDt, sShape, () => 0.01 + Math.random() * 0.2);
  const span = (hi - lo) * 0.1;
  let x = rand(xDt, shape, () =>
    xDt === 'i32'
      ? randInt(Math.round(-(hi - lo) * 0.15), Math.round((hi - lo) * 0.15))
      : (Math.random() - 0.5) * span * 1.3,
  );
  if (opts.special) {
    // exact ties (x / s = k + 1/2), saturation both ways, NaN and infinities
    const d = Array.from(x.data);
    const s0 = scale.data[0]!;
    const specials = [NaN, Infinity, -Infinity, 1e30, -1e30, 0, -0, 2.5 * s0, 3.5 * s0, -2.5 * s0, -0.5 * s0, 0.5 * s0];
    for (let i = 0; i < Math.min(specials.length, d.length); i++)
      d[i * Math.max(1, Math.floor(d.length / specials.length))] = specials[i]!;
    x = makeTensor(xDt, shape, d);
  }
  const zp = opts.zp === false ? null : rand(out, sShape, () => randInt(lo, hi));
  await check('quantize_linear', [x, scale, zp], { ...layoutAttrs(layout), output_dtype: out }, 1, opts.disableF16);
}

async function checkDequantize(
  shape: number[],
  layout: Layout,
  xDt: DType,
  opts: { scaleDtype?: DType; zp?: boolean; outDtype?: DType; disableF16?: boolean } = {},
) {
  const [lo, hi] = xDt === 'i32' ? [-(2 ** 20), 2 ** 20] : RANGE[xDt]!;
  const sShape = scaleShape(shape, layout);
  const x = rand(xDt, shape, () => randInt(lo, hi));
  const scale = rand(opts.scaleDtype ?? 'f32', sShape, () => (Math.random() - 0.3) * 0.5);
  const zp = opts.zp === false || xDt === 'i32' ? null : rand(xDt, sShape, () => randInt(lo, hi));
  const attrs: Attrs = { ...layoutAttrs(layout), ...(opts.outDtype ? { output_dtype: opts.outDtype } : {}) };
  await check('dequantize_linear', [x, scale, zp], attrs, 1, opts.disableF16);
}

describe.skipIf(noGpu)('quantize_linear on WebGPU', () => {
  it('per tensor, every output dtype, with and without zero point', async () => {
    for (const out of ['u8', 'i8', 'u16', 'i16', 'u4', 'i4'] as DType[]) {
      await checkQuantize([3, 37], { kind: 'tensor' }, out);
      await checkQuantize([1029], { kind: 'tensor' }, out, { zp: out === 'u8' ? false : undefined });
    }
  }, 60_000);

  it('ties round half to even; NaN, infinities and saturation', async () => {
    for (const out of ['u8', 'i8', 'i4', 'u16'] as DType[]) {
      await checkQuantize([5, 13], { kind: 'tensor' }, out, { special: true });
    }
  }, 60_000);

  it('per axis and blocked scales (blocks not dividing the axis)', async () => {
    await checkQuantize([4, 7, 3], { kind: 'axis', axis: 1 }, 'i8');
    await checkQuantize([4, 7, 3], { kind: 'axis', axis: 0 }, 'u8');
    await checkQuantize([4, 7, 3], { kind: 'axis', axis: 2 }, 'i4');
    await checkQuantize([6, 10], { kind: 'block', axis: 1, block: 4 }, 'u8');
    await checkQuantize([5, 9, 2], { kind: 'block', axis: 0, block: 2 }, 'i16');
    await checkQuantize([300, 33], { kind: 'block', axis: 1, block: 32 }, 'i4');
    await checkQuantize([1, 1], { kind: 'block', axis: 1, block: 3 }, 'u4');
  }, 60_000);

  it('i32 input; f16 input and scale (division rounded to f16) with and without shader-f16', async () => {
    await checkQuantize([17, 3], { kind: 'tensor' }, 'i8', { xDtype: 'i32' });
    for (const disableF16 of [false, true]) {
      await checkQuantize([9, 31], { kind: 'axis', axis: 1 }, 'u8', { xDtype: 'f16', scaleDtype: 'f16', disableF16 });
      await checkQuantize([9, 31], { kind: 'tensor' }, 'i8', {
        xDtype: 'f16',
        scaleDtype: 'f16',
        special: true,
        disableF16,
      });
    }
    await checkQuantize([40], { kind: 'tensor' }, 'u8', { xDtype: 'bf16', scaleDtype: 'bf16' });
  }, 60_000);

  it('empty input', async () => {
    await checkQuantize([0, 3], { kind: 'tensor' }, 'u8');
  });
});

describe.skipIf(noGpu)('dequantize_linear on WebGPU', () => {
  it('every input dtype, per tensor / per axis / blocked', async () => {
    for (const xDt of ['u8', 'i8', 'u16', 'i16', 'u4', 'i4'] as DType[]) {
      await checkDequantize([3, 37], { kind: 'tensor' }, xDt);
      await checkDequantize([5, 6, 7], { kind: 'axis', axis: 2 }, xDt);
      await checkDequantize([11, 9], { kind: 'block', axis: 0, block: 4 }, xDt, { zp: xDt !== 'u8' });
    }
    await checkDequantize([513], { kind: 'tensor' }, 'i32');
    await checkDequantize([2, 3, 5], { kind: 'axis', axis: 0 }, 'i32');
  }, 60_000);

  it('f16 / bf16 outputs, with and without shader-f16', async () => {
    for (const disableF16 of [false, true]) {
      await checkDequantize([7, 33], { kind: 'axis', axis: 1 }, 'i8', { scaleDtype: 'f16', disableF16 });
      await checkDequantize([7, 33], { kind: 'tensor' }, 'u8', { outDtype: 'f16', disableF16 });
    }
    await checkDequantize([7, 33], { kind: 'tensor' }, 'u8', { outDtype: 'bf16' });
  }, 60_000);
});

async function checkDynamic(data: number[] | Tensor, disableF16 = false) {
  const x = 'data' in data ? data : makeTensor('f32', [data.length], data);
  await check('dynamic_quantize_linear', [x], {}, 3, disableF16);
}

describe.skipIf(noGpu)('dynamic_quantize_linear on WebGPU', () => {
  it('random data of several sizes (one element, odd, larger than the workgroup)', async () => {
    for (const n of [1, 7, 255, 256, 1000, 70_001]) {
      await checkDynamic(Array.from({ length: n }, () => (Math.random() - 0.3) * 10));
    }
    await checkDynamic(rand('f32', [3, 5, 7], () => Math.random() * 3)); // all positive: lo = 0
    await checkDynamic(rand('f32', [33], () => -Math.random() * 3)); // all negative: hi = 0
  }, 60_000);

  it('all zeros, NaN (ignored by min/max, quantized to 0), infinities, empty', async () => {
    await checkDynamic([0, 0, 0, 0, 0]);
    await checkDynamic([1.5, NaN, -2, 0.25, NaN]);
    await checkDynamic([1, Infinity, -2]);
    await checkDynamic([1, -Infinity, 2]);
    await checkDynamic(makeTensor('f32', [0, 4], []));
  });

  it('f16 input with and without shader-f16', async () => {
    for (const disableF16 of [false, true]) {
      await checkDynamic(
        rand('f16', [4, 67], () => (Math.random() - 0.5) * 8),
        disableF16,
      );
    }
  });

  it('the scale is fround((hi - lo) / 255) with hi - lo taken exactly, bit for bit', async () => {
    // hi - lo is inexact in f32 for most of these pairs; the scale must still equal the float64 reference's
    const b = new GraphBuilder('t');
    const xv = b.input('x', 'f32', ['n']);
    b.opN('dynamic_quantize_linear', [xv], {}, 3).forEach((o, i) => b.output(o, `out${i}`));
    const graph = b.build();
    const session = await compile(graph, { backend: 'webgpu', poison: true });
    try {
      let inexact = 0;
      for (let t = 0; t < 200; t++) {
        const hi = Math.fround(Math.random() * 4);
        const lo = Math.fround(-Math.random() * 4 * 2 ** -randInt(0, 12));
        if (Math.fround(hi - lo) !== hi - lo) inexact++;
        const x = makeTensor('f32', [3], [hi, lo, (hi + lo) / 2]);
        const got = await session.run({ x });
        const ref = interpret(graph, { x });
        expect(got['out1']!.data[0], `hi ${hi} lo ${lo}`).toBe(ref['out1']!.data[0]);
        expect(Array.from(got['out0']!.data)).toEqual(Array.from(ref['out0']!.data));
        expect(got['out2']!.data[0]).toBe(ref['out2']!.data[0]);
      }
      expect(inexact).toBeGreaterThan(20);
    } finally {
      session.dispose();
    }
  }, 60_000);

  it('property: random sizes and ranges', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3000 }),
        fc.double({ min: 1e-3, max: 1e3, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        async (n, span, shift) => {
          await checkDynamic(Array.from({ length: n }, () => (Math.random() - shift) * span));
        },
      ),
      { numRuns: runs },
    );
  }, 60_000);
});

describe.skipIf(noGpu)('property: quantize / dequantize round trips on random shapes and layouts', () => {
  const arbCase = fc
    .tuple(
      fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 3 }),
      fc.constantFrom<DType>('u8', 'i8', 'u16', 'i16', 'u4', 'i4'),
      fc.integer({ min: 0, max: 2 }),
      fc.nat(),
      fc.integer({ min: 1, max: 5 }),
    )
    .map(([shape, dt, kind, axisSeed, block]) => {
      const axis = axisSeed % shape.length;
      const layout: Layout =
        kind === 0 ? { kind: 'tensor' } : kind === 1 ? { kind: 'axis', axis } : { kind: 'block', axis, block };
      return { shape, dt, layout };
    });

  it('quantize_linear', async () => {
    await fc.assert(
      fc.asyncProperty(arbCase, async ({ shape, dt, layout }) => {
        await checkQuantize(shape, layout, dt);
      }),
      { numRuns: runs },
    );
  }, 60_000);

  it('dequantize_linear', async () => {
    await fc.assert(
      fc.asyncProperty(arbCase, async ({ shape, dt, layout }) => {
        await checkDequantize(shape, layout, dt);
      }),
      { numRuns: runs },
    );
  }, 60_000);
});
