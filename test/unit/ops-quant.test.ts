import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import { dtypeInfo, type DType } from '../../ir/dtype.js';
import { UnsupportedError, VerifyError } from '../../ir/errors.js';
import '../../ir/index.js';
import { interpret } from '../../ir/interpret.js';
import type { Attrs } from '../../ir/registry.js';
import type { Dim } from '../../ir/shape.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { importOnnxModel } from '../../src/frontends/onnx/import.js';
import type { OnnxAttribute, OnnxModel } from '../../src/frontends/onnx/proto.js';
import { PROP_RUNS } from '../helpers/paths.js';

function run(op: string, ins: readonly (Tensor | null)[], attrs: Attrs = {}, numOutputs = 1): Tensor[] {
  const b = new GraphBuilder('t');
  const feeds: Record<string, Tensor> = {};
  const vals = ins.map((t, i) => {
    if (!t) return null;
    feeds[`in${i}`] = t;
    return b.input(`in${i}`, t.dtype, t.shape);
  });
  const outs = b.opN(op, vals, attrs, numOutputs);
  outs.forEach((o, i) => b.output(o, `out${i}`));
  const r = interpret(b.build(), feeds);
  return outs.map((_, i) => r[`out${i}`]!);
}

function infer(op: string, ins: readonly ([DType, Dim[]] | null)[], attrs: Attrs = {}) {
  const b = new GraphBuilder('t');
  return b.op(
    op,
    ins.map((t, i) => (t ? b.input(`in${i}`, t[0], t[1]) : null)),
    attrs,
  ).type;
}

function inferError(op: string, ins: readonly ([DType, Dim[]] | null)[], attrs: Attrs = {}): string {
  try {
    infer(op, ins, attrs);
  } catch (e) {
    expect(e).toBeInstanceOf(VerifyError);
    expect((e as VerifyError).location.node).toBe(`${op}_0`);
    expect((e as VerifyError).message).toContain(`node '${op}_0'`);
    return (e as VerifyError).message;
  }
  throw new Error('expected a VerifyError');
}

const f32 = (shape: number[], data: number[]) => makeTensor('f32', shape, data);
const values = (t: Tensor) => Array.from(t.data);

describe('quantize_linear', () => {
  it('rounds half to even: 2.5 → 2, 3.5 → 4, -2.5 → -2', () => {
    const x = f32([8], [2.5, 3.5, -2.5, -3.5, 0.5, 1.5, 2.4, -2.6]);
    const [y] = run('quantize_linear', [x, f32([], [1]), makeTensor('i8', [], [0])]);
    expect(y!.dtype).toBe('i8');
    expect(values(y!)).toEqual([2, 4, -2, -4, 0, 2, 2, -3]);
  });

  it('adds the zero point after rounding and saturates to the dtype range', () => {
    // u8, scale 2, zero point 128: 3/2 = 1.5 → 2 → 130; 1000/2 + 128 → 255; -1000/2 + 128 → 0
    const x = f32([5], [0, 3, 5, 1000, -1000]);
    const [y] = run('quantize_linear', [x, f32([], [2]), makeTensor('u8', [], [128])]);
    expect(values(y!)).toEqual([128, 130, 130, 255, 0]);
  });

  it('defaults to u8 without a zero point; output_dtype picks 4-bit types', () => {
    const x = f32([4], [-3, 7, 20, 300]);
    const [u] = run('quantize_linear', [x, f32([], [1])]);
    expect(u!.dtype).toBe('u8');
    expect(values(u!)).toEqual([0, 7, 20, 255]);
    const [i4] = run('quantize_linear', [x, f32([], [1])], { output_dtype: 'i4' });
    expect(i4!.dtype).toBe('i4');
    expect(values(i4!)).toEqual([-3, 7, 7, 7]);
    const [u4] = run('quantize_linear', [f32([3], [-1, 9, 40]), f32([], [2])], { output_dtype: 'u4' });
    expect(values(u4!)).toEqual([0, 4, 15]);
  });

  it('per-axis scales and zero points (axis 1 by default, negative axes too)', () => {
    // x [2, 3]: column c uses scale [1, 2, 4][c], zero point [0, 10, -5][c]
    const x = f32([2, 3], [1, 4, 8, -1, -4, -8]);
    const scale = f32([3], [1, 2, 4]);
    const zp = makeTensor('i8', [3], [0, 10, -5]);
    const want = [1, 12, -3, -1, 8, -7];
    expect(values(run('quantize_linear', [x, scale, zp])[0]!)).toEqual(want);
    expect(values(run('quantize_linear', [x, scale, zp], { axis: -1 })[0]!)).toEqual(want);
    // axis 0: row r uses scale [1, 2][r]
    const rows = run('quantize_linear', [x, f32([2], [1, 2]), makeTensor('i8', [2], [0, 0])], { axis: 0 })[0]!;
    expect(values(rows)).toEqual([1, 4, 8, 0, -2, -4]);
  });

  it('blocked scales: block_size elements along axis share one scale', () => {
    // x [2, 5], axis 1, blocks of 2 → scale [2, 3] (last block has one element)
    const x = f32([2, 5], [2, 4, 6, 8, 10, 1, 2, 3, 4, 5]);
    const scale = f32([2, 3], [2, 4, 5, 1, 2, 0.5]);
    const [y] = run('quantize_linear', [x, scale, makeTensor('u8', [2, 3], [0, 0, 1, 0, 0, 0])], {
      axis: 1,
      block_size: 2,
    });
    // row 0: 2/2, 4/2, 6/4=1.5→2, 8/4, 10/5+1; row 1: 1, 2, 3/2=1.5→2, 4/2, 5/0.5
    expect(values(y!)).toEqual([1, 2, 2, 2, 3, 1, 2, 2, 2, 10]);
  });

  it('divides at the precision of the scale (f32 by default)', () => {
    // 0.35f / 0.1f is 3.4999999 in float64 but exactly 3.5 in float32, which then rounds to even 4
    const x = f32([1], [0.35]);
    const s = f32([], [0.1]);
    expect(x.data[0]! / s.data[0]!).toBeLessThan(3.5);
    expect(values(run('quantize_linear', [x, s])[0]!)).toEqual([4]);
    expect(values(run('quantize_linear', [x, s], { precision: 'f64' })[0]!)).toEqual([3]);
  });

  it('keeps symbolic dims', () => {
    const t = infer(
      'quantize_linear',
      [
        ['f32', ['batch', 'seq', 64]],
        ['f32', [64]],
        ['i8', [64]],
      ],
      { axis: -1 },
    );
    expect(t.dtype).toBe('i8');
    expect(t.shape).toEqual(['batch', 'seq', 64]);
    const blocked = infer(
      'quantize_linear',
      [
        ['f32', ['n', 64]],
        ['f32', ['n', 2]],
      ],
      { axis: 1, block_size: 32 },
    );
    expect(blocked.shape).toEqual(['n', 64]);
  });

  it('rejects bad scales, axes and dtypes with located errors', () => {
    expect(
      inferError('quantize_linear', [
        ['f32', [2, 3]],
        ['f32', [4]],
      ]),
    ).toContain('per-axis scale');
    expect(
      inferError(
        'quantize_linear',
        [
          ['f32', [2, 3]],
          ['f32', [3]],
        ],
        { axis: 2 },
      ),
    ).toContain('axis 2');
    expect(
      inferError(
        'quantize_linear',
        [
          ['f32', [2, 6]],
          ['f32', [2, 2]],
        ],
        { block_size: 2 },
      ),
    ).toContain('blocks of 2');
    expect(
      inferError('quantize_linear', [
        ['f32', [2, 6]],
        ['f32', [2, 3]],
      ]),
    ).toContain('block_size > 0');
    expect(
      inferError(
        'quantize_linear',
        [
          ['f32', [3]],
          ['f32', []],
          ['u8', []],
        ],
        { output_dtype: 'i8' },
      ),
    ).toContain('zero point has dtype u8');
    expect(
      inferError(
        'quantize_linear',
        [
          ['f32', [3]],
          ['f32', []],
        ],
        { output_dtype: 'i32' },
      ),
    ).toContain('quantized dtype');
    expect(
      inferError('quantize_linear', [
        ['f32', [2, 3]],
        ['f32', [3]],
        ['u8', [2]],
      ]),
    ).toContain("scale's shape");
  });

  it('property: dequantize(quantize(x)) is within scale/2 of x inside the representable range', () => {
    const dts: DType[] = ['u8', 'i8', 'u16', 'i16', 'u4', 'i4'];
    fc.assert(
      fc.property(
        fc.constantFrom(...dts),
        fc.double({ min: 0.01, max: 10, noNaN: true }),
        fc.integer({ min: -8, max: 8 }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 16 }),
        (dt, s, zpRaw, us) => {
          const { min, max } = dtypeInfo(dt);
          const zp = Math.min(Math.max(zpRaw + (min + max) / 2, min), max);
          const scale = Math.fround(s);
          // values whose quantization does not saturate: (q - zp) * scale for q in [min, max]
          const xs = us.map((u) => Math.fround((min + u * (max - min) - Math.round(zp)) * scale));
          const x = f32([xs.length], xs);
          const zpT = makeTensor(dt, [], [Math.round(zp)]);
          const [q] = run('quantize_linear', [x, f32([], [scale]), zpT]);
          const [back] = run('dequantize_linear', [q!, f32([], [scale]), zpT]);
          for (let i = 0; i < xs.length; i++) {
            expect(Math.abs(back!.data[i]! - x.data[i]!)).toBeLessThanOrEqual(scale / 2 + 1e-6 * Math.abs(x.data[i]!));
          }
          // and quantizing the dequantized values gives the same integers back
          expect(values(run('quantize_linear', [back!, f32([], [scale]), zpT])[0]!)).toEqual(values(q!));
        },
      ),
      { numRuns: PROP_RUNS },
    );
  });
});

describe('dequantize_linear', () => {
  it('computes (x - zero_point) * scale per tensor', () => {
    const x = makeTensor('u8', [4], [0, 3, 128, 255]);
    const [y] = run('dequantize_linear', [x, f32([], [2]), makeTensor('u8', [], [128])]);
    expect(y!.dtype).toBe('f32');
    expect(values(y!)).toEqual([-256, -250, 0, 254]);
  });

  it('per axis and blocked', () => {
    const x = makeTensor('i8', [2, 2], [1, 2, 3, 4]);
    const [ax] = run('dequantize_linear', [x, f32([2], [10, 100]), makeTensor('i8', [2], [1, 0])], { axis: 0 });
    expect(values(ax!)).toEqual([0, 10, 300, 400]);
    const xb = makeTensor('u4', [1, 3], [1, 2, 3]);
    const [bl] = run('dequantize_linear', [xb, f32([1, 2], [2, 5])], { axis: 1, block_size: 2 });
    expect(values(bl!)).toEqual([2, 4, 15]);
  });

  it('takes i32 input without a zero point and honours output_dtype', () => {
    const [y] = run('dequantize_linear', [makeTensor('i32', [3], [-65536, 0, 65536]), f32([], [0.25])], {
      output_dtype: 'f16',
    });
    expect(y!.dtype).toBe('f16');
    expect(values(y!)).toEqual([-16384, 0, 16384]);
    expect(
      inferError('dequantize_linear', [
        ['i32', [3]],
        ['f32', []],
        ['i32', []],
      ]),
    ).toContain('no zero point');
  });

  it('rejects mismatched dtypes with located errors', () => {
    expect(
      inferError('dequantize_linear', [
        ['u8', [3]],
        ['f32', []],
        ['i8', []],
      ]),
    ).toContain('zero point has dtype i8');
    expect(
      inferError('dequantize_linear', [
        ['f32', [3]],
        ['f32', []],
      ]),
    ).toContain('x must be');
    expect(
      inferError(
        'dequantize_linear',
        [
          ['u8', [3]],
          ['f32', []],
        ],
        { output_dtype: 'i32' },
      ),
    ).toContain('output_dtype');
  });
});

describe('dynamic_quantize_linear', () => {
  it('derives scale and zero point from the range including 0 (worked by hand)', () => {
    // range [-55, 200] → scale 255/255 = 1, zero point 55; 2.5 → 2 (half to even) + 55
    const [y, s, zp] = run('dynamic_quantize_linear', [f32([5], [-55, 200, 2.5, 3.5, 0])], {}, 3);
    expect(values(s!)).toEqual([1]);
    expect(values(zp!)).toEqual([55]);
    expect(values(y!)).toEqual([0, 255, 57, 59, 55]);
    expect(y!.dtype).toBe('u8');
    expect(s!.shape).toEqual([]);
  });

  it('an all-positive input has zero point 0; an all-zero input gives zeros', () => {
    const [, s, zp] = run('dynamic_quantize_linear', [f32([2], [51, 10])], {}, 3);
    expect(values(zp!)).toEqual([0]);
    expect(s!.data[0]).toBeCloseTo(0.2, 7);
    const [y0, s0, zp0] = run('dynamic_quantize_linear', [f32([3], [0, 0, 0])], {}, 3);
    expect([...values(y0!), ...values(s0!), ...values(zp0!)]).toEqual([0, 0, 0, 0, 0]);
  });

  it('property: y dequantizes to within scale/2 of x', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: -100, max: 100, noNaN: true }), { minLength: 1, maxLength: 20 }), (xs) => {
        const x = f32([xs.length], xs);
        const [y, s, zp] = run('dynamic_quantize_linear', [x], {}, 3);
        const scale = s!.data[0]!;
        for (let i = 0; i < xs.length; i++) {
          const back = (y!.data[i]! - zp!.data[0]!) * scale;
          expect(Math.abs(back - x.data[i]!)).toBeLessThanOrEqual(scale * 0.5 * (1 + 1e-5) + 1e-12);
        }
      }),
      { numRuns: PROP_RUNS },
    );
  });
});

describe('ONNX quantization converters', () => {
  const model = (attrs: [string, OnnxAttribute][], zpType?: number): OnnxModel => ({
    irVersion: 10,
    producerName: 'test',
    producerVersion: '',
    opsetImport: [{ domain: '', version: 21 }],
    functions: [],
    graph: {
      name: 'g',
      nodes: [
        {
          name: 'q',
          opType: 'QuantizeLinear',
          domain: '',
          inputs: zpType ? ['x', 's', 'zp'] : ['x', 's'],
          outputs: ['y'],
          attributes: new Map(attrs),
        },
      ],
      initializers: [],
      sparseInitializers: [],
      inputs: [
        { name: 'x', type: { kind: 'tensor', elemType: 1, shape: [2, 2] } },
        { name: 's', type: { kind: 'tensor', elemType: 1, shape: [2] } },
        ...(zpType ? [{ name: 'zp', type: { kind: 'tensor' as const, elemType: zpType, shape: [2] } }] : []),
      ],
      outputs: [{ name: 'y', type: { kind: 'tensor', elemType: 3 } }],
      valueInfo: [],
    },
  });

  it('maps axis and output_dtype', () => {
    const { graph } = importOnnxModel(
      model([
        ['axis', { kind: 'int', value: 0 }],
        ['output_dtype', { kind: 'int', value: 3 }],
      ]),
    );
    const r = interpret(graph, { x: f32([2, 2], [3, 5, 3, 5]), s: f32([2], [2, 1]) });
    expect(r['y']!.dtype).toBe('i8');
    expect(values(r['y']!)).toEqual([2, 2, 3, 5]);
  });

  it('raises UnsupportedError naming a float8 / int2 output dtype', () => {
    for (const [code, name] of [
      [17, 'FLOAT8E4M3FN'],
      [26, 'INT2'],
    ] as const) {
      expect(() => importOnnxModel(model([['output_dtype', { kind: 'int', value: code }]]))).toThrow(UnsupportedError);
      expect(() => importOnnxModel(model([['output_dtype', { kind: 'int', value: code }]]))).toThrow(name);
    }
  });
});
