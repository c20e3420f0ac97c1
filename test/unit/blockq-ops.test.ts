/**
 * matmul_nbits / gather_block_quantized: the float64 references against values worked out here from unpacked
 * integers (packed by the test itself), shape inference, and located errors for bad bits / block sizes / shapes.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import { VerifyError } from '../../ir/errors.js';
import '../../ir/index.js';
import { interpret } from '../../ir/interpret.js';
import type { Attrs } from '../../ir/registry.js';
import type { Dim } from '../../ir/shape.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';

function run(op: string, ins: readonly (Tensor | null)[], attrs: Attrs): Tensor {
  const b = new GraphBuilder('t');
  const feeds: Record<string, Tensor> = {};
  const vals = ins.map((t, i) => {
    if (!t) return null;
    feeds[`in${i}`] = t;
    return b.input(`in${i}`, t.dtype, t.shape);
  });
  b.output(b.op(op, vals, attrs), 'y');
  return interpret(b.build(), feeds)['y']!;
}

function inferError(op: string, ins: readonly ([DType, Dim[]] | null)[], attrs: Attrs): string {
  const b = new GraphBuilder('t');
  try {
    b.op(
      op,
      ins.map((t, i) => (t ? b.input(`in${i}`, t[0], t[1]) : null)),
      attrs,
    );
  } catch (e) {
    expect(e).toBeInstanceOf(VerifyError);
    expect((e as VerifyError).message).toContain(`node '${op}_0'`);
    return (e as VerifyError).message;
  }
  throw new Error('expected a VerifyError');
}

/** Pack unsigned `bits`-wide values (low nibble first for 4 bits) into bytes. */
function pack(vals: readonly number[], bits: number): number[] {
  if (bits === 8) return [...vals];
  const out = new Array<number>(Math.ceil(vals.length / 2)).fill(0);
  vals.forEach((v, i) => (out[i >> 1]! |= (v & 15) << (i & 1 ? 4 : 0)));
  return out;
}

/** A deterministic small integer sequence. */
const seq = (n: number, mod: number, mul = 7, add = 3) => Array.from({ length: n }, (_, i) => (i * mul + add) % mod);

interface Case {
  K: number;
  N: number;
  M: number;
  bits: 4 | 8;
  block: number;
  zp?: 'packed' | 'float';
  gIdx?: boolean;
  bias?: boolean;
}

/** Inputs and the expected output of a case, W built directly from q / zp / scale per (n, k). */
function nbitsCase(c: Case) {
  const { K, N, M, bits, block } = c;
  const nb = Math.ceil(K / block);
  const qmax = 2 ** bits;
  const q = seq(N * K, qmax); // q[n * K + k]
  const scales = seq(N * nb, 5, 3, 1).map((v) => (v + 1) * 0.125 * (v % 2 ? -1 : 1));
  const zps = seq(N * nb, qmax, 5, 1);
  const gidx = Array.from({ length: K }, (_, k) => (k * 3) % nb);
  const a = seq(M * K, 9, 5, 2).map((v) => (v - 4) * 0.5);
  const bias = seq(N, 4).map((v) => v - 1.5);
  const group = (k: number) => (c.gIdx ? gidx[k]! : Math.floor(k / block));
  const zeroOf = (n: number, j: number) => (c.zp ? zps[n * nb + j]! : 2 ** (bits - 1));
  const y: number[] = [];
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = c.bias ? bias[n]! : 0;
      for (let k = 0; k < K; k++) {
        const j = group(k);
        s += a[m * K + k]! * (q[n * K + k]! - zeroOf(n, j)) * scales[n * nb + j]!;
      }
      y.push(s);
    }
  }
  // packed data: each row padded to nb * block elements
  const padded: number[] = [];
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < nb * block; k++) padded.push(k < K ? q[n * K + k]! : 0);
  }
  const zpRow = Math.ceil((nb * bits) / 8);
  const zpPacked: number[] = [];
  for (let n = 0; n < N; n++) {
    const row = pack(zps.slice(n * nb, (n + 1) * nb), bits);
    while (row.length < zpRow) row.push(0);
    zpPacked.push(...row);
  }
  const ins: (Tensor | null)[] = [
    makeTensor('f32', [M, K], a),
    makeTensor('u8', [N, nb, (block * bits) / 8], pack(padded, bits)),
    makeTensor('f32', [N * nb], scales),
    c.zp === 'packed'
      ? makeTensor('u8', [N * zpRow], zpPacked)
      : c.zp === 'float'
        ? makeTensor('f32', [N, nb], zps)
        : null,
    c.gIdx ? makeTensor('i32', [K], gidx) : null,
    c.bias ? makeTensor('f32', [N], bias) : null,
  ];
  return { ins, y, attrs: { K, N, bits, block_size: block } };
}

describe('matmul_nbits reference', () => {
  const cases: Case[] = [
    { K: 16, N: 3, M: 2, bits: 4, block: 16, zp: 'packed' },
    { K: 20, N: 3, M: 1, bits: 4, block: 16, zp: 'packed' }, // ragged last block
    { K: 40, N: 5, M: 3, bits: 4, block: 16 }, // default zero point 8, odd block count
    { K: 33, N: 2, M: 2, bits: 8, block: 32, zp: 'packed' },
    { K: 48, N: 4, M: 2, bits: 8, block: 16 }, // default zero point 128
    { K: 50, N: 3, M: 2, bits: 4, block: 16, zp: 'float', bias: true },
    { K: 40, N: 3, M: 2, bits: 4, block: 16, zp: 'packed', gIdx: true },
  ];
  for (const c of cases) {
    it(`K=${c.K} N=${c.N} M=${c.M} bits=${c.bits} block=${c.block} zp=${c.zp ?? 'default'}${c.gIdx ? ' g_idx' : ''}${c.bias ? ' bias' : ''}`, () => {
      const { ins, y, attrs } = nbitsCase(c);
      const out = run('matmul_nbits', ins, attrs);
      expect(out.shape).toEqual([c.M, c.N]);
      const got = Array.from(out.data as Float32Array);
      got.forEach((v, i) => expect(v).toBeCloseTo(y[i]!, 4));
    });
  }

  it('keeps leading dims of a: [2, 3, K] → [2, 3, N]', () => {
    const { ins, attrs } = nbitsCase({ K: 16, N: 2, M: 6, bits: 4, block: 16 });
    const a = ins[0]!;
    ins[0] = makeTensor('f32', [2, 3, 16], Array.from(a.data as Float32Array));
    expect(run('matmul_nbits', ins, attrs).shape).toEqual([2, 3, 2]);
  });

  it('a g_idx entry outside the blocks is a located error', () => {
    const { ins, attrs } = nbitsCase({ K: 16, N: 2, M: 1, bits: 4, block: 16, gIdx: true });
    ins[4] = makeTensor(
      'i32',
      [16],
      new Array(16).fill(0).map((_, i) => (i === 5 ? 3 : 0)),
    );
    expect(() => run('matmul_nbits', ins, attrs)).toThrow(/g_idx\[5\] = 3 .*matmul_nbits_0/);
  });
});

describe('matmul_nbits inference errors name the node', () => {
  const ok: ([DType, Dim[]] | null)[] = [
    ['f32', [2, 32]],
    ['u8', [8, 2, 8]],
    ['f32', [8, 2]],
  ];
  const attrs = { K: 32, N: 8, bits: 4, block_size: 16 };
  it('bits', () => expect(inferError('matmul_nbits', ok, { ...attrs, bits: 3 })).toMatch(/bits must be 4 or 8/));
  it('block size', () =>
    expect(inferError('matmul_nbits', ok, { ...attrs, block_size: 24 })).toMatch(/block_size must be a power of two/));
  it('packed shape', () =>
    expect(inferError('matmul_nbits', [ok[0]!, ['u8', [8, 2, 16]], ok[2]!], attrs)).toMatch(/expected \[8,2,8\]/));
  it('K mismatch', () =>
    expect(inferError('matmul_nbits', [['f32', [2, 31]], ok[1]!, ok[2]!], attrs)).toMatch(/last dim 31 is not K/));
  it('scale count', () =>
    expect(inferError('matmul_nbits', [ok[0]!, ok[1]!, ['f32', [8, 3]]], attrs)).toMatch(/scales have 24 elements/));
  it('zero point count', () =>
    expect(inferError('matmul_nbits', [...ok, ['u8', [16]]], attrs)).toMatch(/packed zero points have 16/));
  it('a blockq layout on the packed data that disagrees with the attributes', () => {
    const b = new GraphBuilder('t');
    const lay = { kind: 'blockq', bits: 8, group: 16, axis: 1, scale: 'f32', zeroPoint: false } as const;
    const ins = [b.input('a', 'f32', [2, 32]), b.input('b', 'u8', [8, 2, 8], lay), b.input('s', 'f32', [8, 2])];
    expect(() => b.op('matmul_nbits', ins, attrs)).toThrow(
      /layout blockq\(bits=8,group=16.*reads blockq\(bits=4,group=16/,
    );
    const ok = { ...lay, bits: 4 };
    const b2 = new GraphBuilder('t');
    const ins2 = [b2.input('a', 'f32', [2, 32]), b2.input('b', 'u8', [8, 2, 8], ok), b2.input('s', 'f32', [8, 2])];
    expect(b2.op('matmul_nbits', ins2, attrs).type.shape).toEqual([2, 8]);
  });
  it('bias shape', () =>
    expect(inferError('matmul_nbits', [...ok, null, null, ['f32', [4]]], attrs)).toMatch(/bias must be \[N\]/));
});

describe('gather_block_quantized reference', () => {
  it('i4 data with zero points, gather axis 0, blocks along the last axis (ragged)', () => {
    // data [3, 20] of i4, block 16 along axis 1 → scales [3, 2]
    const q = seq(60, 16).map((v) => v - 8);
    const scales = [0.5, -1, 2, 0.25, 1.5, -0.75];
    const zps = [1, -2, 0, 3, -1, 2];
    const y = run(
      'gather_block_quantized',
      [
        makeTensor('i4', [3, 20], q),
        makeTensor('i64', [2], [2, -3]),
        makeTensor('f32', [3, 2], scales),
        makeTensor('i4', [3, 2], zps),
      ],
      { gather_axis: 0, quantize_axis: 1, block_size: 16, bits: 4 },
    );
    expect(y.shape).toEqual([2, 20]);
    const want: number[] = [];
    for (const r of [2, 0]) {
      for (let k = 0; k < 20; k++) {
        const j = r * 2 + Math.floor(k / 16);
        want.push((q[r * 20 + k]! - zps[j]!) * scales[j]!);
      }
    }
    expect(Array.from(y.data as Float32Array)).toEqual(want);
  });

  it('u8 data packing two 4-bit values, default zero point 8, gather along axis 1', () => {
    // logical [2, 32], packed [2, 16]; block 16 → scales [2, 2]
    const q = seq(64, 16, 5, 1);
    const scales = [1, 2, 3, 4];
    const y = run(
      'gather_block_quantized',
      [makeTensor('u8', [2, 16], pack(q, 4)), makeTensor('i32', [2], [17, 3]), makeTensor('f32', [2, 2], scales)],
      { gather_axis: 1, quantize_axis: 1, block_size: 16, bits: 4 },
    );
    expect(y.shape).toEqual([2, 2]);
    const want: number[] = [];
    for (let r = 0; r < 2; r++) for (const k of [17, 3]) want.push((q[r * 32 + k]! - 8) * scales[r * 2 + (k >> 4)]!);
    expect(Array.from(y.data as Float32Array)).toEqual(want);
  });

  it('u8 8-bit data, packed u8 zero points per block', () => {
    const q = seq(32, 256, 37, 11);
    const y = run(
      'gather_block_quantized',
      [
        makeTensor('u8', [2, 16], q),
        makeTensor('i64', [1], [1]),
        makeTensor('f32', [2, 1], [0.5, 0.25]),
        makeTensor('u8', [2, 1], [100, 130]),
      ],
      { gather_axis: 0, quantize_axis: 1, block_size: 16, bits: 8 },
    );
    expect(Array.from(y.data as Float32Array)).toEqual(q.slice(16).map((v) => (v - 130) * 0.25));
  });

  it('out-of-range index and bad scales are located errors', () => {
    expect(() =>
      run(
        'gather_block_quantized',
        [
          makeTensor('i4', [2, 16], new Array(32).fill(1)),
          makeTensor('i64', [1], [2]),
          makeTensor('f32', [2, 1], [1, 1]),
        ],
        {
          quantize_axis: 1,
          block_size: 16,
        },
      ),
    ).toThrow(/index 2 out of range/);
    expect(
      inferError(
        'gather_block_quantized',
        [
          ['u4', [4, 32]],
          ['i64', [1]],
          ['f32', [4, 1]],
        ],
        { quantize_axis: 1, block_size: 16 },
      ),
    ).toMatch(/scales \[4,1\] do not match/);
    expect(
      inferError(
        'gather_block_quantized',
        [
          ['f32', [4, 32]],
          ['i64', [1]],
          ['f32', [4, 2]],
        ],
        { quantize_axis: 1, block_size: 16 },
      ),
    ).toMatch(/data must be u8, u4 or i4/);
  });
});
