/**
 * GGUF block formats (ir/ops/ggml.ts): one hand-built block per format whose expected values are worked out by hand
 * from the format's layout (comments give the arithmetic), never by calling the dequantizer; the ops' reference on
 * those blocks; ragged / bad-size inputs are typed errors naming the node or tensor.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import { KilnError } from '../../ir/errors.js';
import '../../ir/index.js';
import { interpret } from '../../ir/interpret.js';
import { dequantizeGgml, GGML_FORMAT_INFO, quantizeGgml, type GgmlFormat } from '../../ir/ops/ggml.js';
import { makeTensor } from '../../ir/tensor.js';

/** A block of `n` zero bytes with `set` bytes written at their offsets. */
function block(n: number, set: Record<number, number>): Uint8Array {
  const b = new Uint8Array(n);
  for (const [k, v] of Object.entries(set)) b[Number(k)] = v;
  return b;
}

/** `qk` values: `fill(i)` for every element, then the listed ones. */
function expected(qk: number, fill: (i: number) => number, at: Record<number, number>): number[] {
  const y = Array.from({ length: qk }, (_, i) => fill(i));
  for (const [k, v] of Object.entries(at)) y[Number(k)] = v;
  return y;
}

// f16 bit patterns: 0x3800 = 0.5, 0x3c00 = 1, 0x4000 = 2, 0xbc00 = -1
const CASES: { format: GgmlFormat; bytes: Uint8Array; want: number[] }[] = [
  {
    // d = 0.5; qs as i8: 1, -2, 127, -128, then 0
    format: 'Q8_0',
    bytes: block(34, { 0: 0x00, 1: 0x38, 2: 1, 3: 0xfe, 4: 127, 5: 0x80 }),
    want: expected(32, () => 0, { 0: 0.5, 1: -1, 2: 63.5, 3: -64 }),
  },
  {
    // d = 2; qs[j] = 0x88 (both nibbles 8 → 0) except qs[0] = 0x3a (e0: 2·(10−8) = 4, e16: 2·(3−8) = −10) and
    // qs[15] = 0xf0 (e15: 2·(0−8) = −16, e31: 2·(15−8) = 14)
    format: 'Q4_0',
    bytes: (() => {
      const b = block(18, { 0: 0x00, 1: 0x40 });
      for (let j = 0; j < 16; j++) b[2 + j] = 0x88;
      b[2] = 0x3a;
      b[17] = 0xf0;
      return b;
    })(),
    want: expected(32, () => 0, { 0: 4, 16: -10, 15: -16, 31: 14 }),
  },
  {
    // d = 1, m = −1; qs[0] = 0x52 (e0: 2 − 1 = 1, e16: 5 − 1 = 4), the rest 0 → −1
    format: 'Q4_1',
    bytes: block(20, { 0: 0x00, 1: 0x3c, 2: 0x00, 3: 0xbc, 4: 0x52 }),
    want: expected(32, () => -1, { 0: 1, 16: 4 }),
  },
  {
    // d = 1; qh = 0x00020001 (bits 0 and 17); qs[0] = 0x21: e0 = (1 | 16) − 16 = 1, e16 = 2 − 16 = −14;
    // qs[1] = 0x43: e1 = 3 − 16 = −13, e17 = (4 | 16) − 16 = 4; every other element 0 − 16 = −16
    format: 'Q5_0',
    bytes: block(22, { 0: 0x00, 1: 0x3c, 2: 0x01, 3: 0x00, 4: 0x02, 5: 0x00, 6: 0x21, 7: 0x43 }),
    want: expected(32, () => -16, { 0: 1, 16: -14, 1: -13, 17: 4 }),
  },
  {
    // d = 0.5, m = 2; qh bit 31; qs[15] = 0xf7: e15 = 0.5·7 + 2 = 5.5, e31 = 0.5·(15 | 16) + 2 = 17.5; the rest 2
    format: 'Q5_1',
    bytes: block(24, { 0: 0x00, 1: 0x38, 2: 0x00, 3: 0x40, 7: 0x80, 23: 0xf7 }),
    want: expected(32, () => 2, { 15: 5.5, 31: 17.5 }),
  },
  {
    // d = 1, dmin = 0.5; scales (bytes 4..15): q[0] = 3, q[4] = 2 → sub-block 0: sc 3, m 2; q[1] = 0x41, q[5] = 0x84
    // → sub-block 1: sc 1, m 4; q[9] = 0x21 with q[1] >> 6 = 1, q[5] >> 6 = 2 → sub-block 5: sc 1 | 16 = 17,
    // m 2 | 32 = 34; other sub-blocks 0 / 0.
    // qs (bytes 16..143): qs[0] = 0x75 → e0 = 3·5 − 0.5·2 = 14, e32 = 1·7 − 0.5·4 = 5; qs[64] = 0xa0 → e160 (the
    // high nibbles of qs[64..95] are sub-block 5) = 17·10 − 0.5·34 = 153. Zero codes: sub-block 0 → −1,
    // sub-block 1 → −2, sub-block 5 → −17, the others 0.
    format: 'Q4_K',
    bytes: block(144, {
      0: 0x00,
      1: 0x3c,
      2: 0x00,
      3: 0x38,
      4: 3,
      8: 2,
      5: 0x41,
      9: 0x84,
      13: 0x21,
      16: 0x75,
      80: 0xa0,
    }),
    want: expected(256, (i) => (i < 32 ? -1 : i < 64 ? -2 : i >= 160 && i < 192 ? -17 : 0), {
      0: 14,
      32: 5,
      160: 153,
    }),
  },
  {
    // d = 1, dmin = 0; scales q[0] = 2 (sub-block 0), q[3] = 1 (sub-block 3); qh (bytes 16..47): qh[0] = 0x01 (bit 0:
    // element 0 of sub-block 0 gets +16), qh[5] = 0x08 (bit 3: element 5 of sub-block 3 = e101); qs (bytes 48..175):
    // qs[0] = 0x03 → e0 = 2·(3 + 16) = 38; qs[37] = 0x90 → high nibble 9 is e64 + 32 + 5 = e101 → 1·(9 + 16) = 25
    format: 'Q5_K',
    bytes: block(176, { 0: 0x00, 1: 0x3c, 4: 2, 7: 1, 16: 0x01, 21: 0x08, 48: 0x03, 85: 0x90 }),
    want: expected(256, () => 0, { 0: 38, 101: 25 }),
  },
  {
    // ql bytes 0..127, qh 128..191, i8 scales 192..207, d (bytes 208, 209) = 0.5; scales[0] = 2, [2] = −1, [13] = 3.
    // e0: ql[0] = 0x05 low, qh[0] = 0x02 bits 0–1 → (5 | 32) − 32 = 5 → 0.5·2·5 = 5.
    // e32: ql[32] = 0x0f low, qh[0] bits 2–3 = 0 → 15 − 32 = −17, scale[2] → 0.5·(−1)·(−17) = 8.5.
    // e212 = 128 + 64 + 20: ql[64 + 20] = 0xc0 high nibble 12, qh[32 + 20] = 0x30 bits 4–5 = 3 → (12 | 48) − 32 = 28,
    // scale[8 + 1 + 4] = 3 → 0.5·3·28 = 42.
    // Zero codes are −32: scale 0 covers e0..15 → −32, scale 2 e32..47 → 16, scale 13 e208..223 → −48, others 0.
    format: 'Q6_K',
    bytes: block(210, {
      0: 0x05,
      32: 0x0f,
      84: 0xc0,
      128: 0x02,
      180: 0x30,
      192: 2,
      194: 0xff,
      205: 3,
      208: 0x00,
      209: 0x38,
    }),
    want: expected(256, (i) => (i < 16 ? -32 : i >= 32 && i < 48 ? 16 : i >= 208 && i < 224 ? -48 : 0), {
      0: 5,
      32: 8.5,
      212: 42,
    }),
  },
];

describe('GGUF block formats: hand-built blocks', () => {
  it.each(CASES)('$format dequantizes as worked out by hand', ({ format, bytes, want }) => {
    expect(bytes.length).toBe(GGML_FORMAT_INFO[format].bytes);
    expect(Array.from(dequantizeGgml(format, bytes, 1, want.length), (x) => x + 0)).toEqual(want);
  });

  it.each(CASES)('$format: matmul_ggml and get_rows_ggml references use the same values', ({ format, bytes, want }) => {
    const K = want.length;
    // two rows: the block, then the same block; a = e_k picks column k, a = ones sums the row
    const w = new Uint8Array(bytes.length * 2);
    w.set(bytes, 0);
    w.set(bytes, bytes.length);
    const b = new GraphBuilder('g');
    const a = b.input('a', 'f32', [2, K]);
    const wt = b.weight('w', makeTensor('u8', [2, bytes.length], w));
    b.output(b.op('matmul_ggml', [a, wt], { format, K, N: 2 }), 'y');
    const ids = b.input('ids', 'i64', [2]);
    b.output(b.op('get_rows_ggml', [wt, ids], { format, K }), 'rows');
    const av = new Array<number>(2 * K).fill(0);
    av[0] = 1; // row 0 of a: e_0
    for (let k = 0; k < K; k++) av[K + k] = 1; // row 1: ones
    const out = interpret(b.build(), { a: makeTensor('f32', [2, K], av), ids: makeTensor('i64', [2], [1, -2]) });
    const sum = want.reduce((s, x) => s + x, 0);
    expect(Array.from(out['y']!.data)).toEqual([want[0], want[0], sum, sum]);
    expect(Array.from(out['rows']!.data, (x) => Number(x) + 0)).toEqual([...want, ...want]);
  });

  it('quantizeGgml: integers on the Q4_0 grid come back exactly', () => {
    // the largest magnitude −8 maps to code 0, so d = 1 and −8..7 are codes 0..15
    const q4 = Array.from({ length: 32 }, (_, i) => (i % 16) - 8);
    expect(Array.from(dequantizeGgml('Q4_0', quantizeGgml('Q4_0', q4, 1, 32), 1, 32))).toEqual(q4);
  });

  it.each([
    ['Q8_0', 0.01],
    ['Q4_0', 0.1],
    ['Q4_1', 0.1],
    ['Q5_0', 0.05],
    ['Q5_1', 0.05],
    ['Q4_K', 0.1],
    ['Q5_K', 0.05],
    ['Q6_K', 0.025],
  ] as [GgmlFormat, number][])('quantizeGgml %s: rel-L2 error of uniform values below %f', (format, bound) => {
    let s = 1;
    const x = Array.from({ length: 2 * 256 }, () => ((s = (s * 48271) % 2147483647) / 2147483647) * 2 - 1);
    const back = dequantizeGgml(format, quantizeGgml(format, x, 2, 256), 2, 256);
    let e = 0;
    let n = 0;
    x.forEach((v, i) => {
      e += (back[i]! - v) ** 2;
      n += v * v;
    });
    expect(Math.sqrt(e / n)).toBeLessThan(bound);
  });
});

describe('GGUF block formats: bad sizes are typed errors', () => {
  it('K that is not whole blocks: matmul_ggml names the node', () => {
    const b = new GraphBuilder('g');
    const a = b.input('a', 'f32', [1, 100]);
    const w = b.input('w', 'u8', [2, 72]);
    expect(() => b.op('matmul_ggml', [a, w], { format: 'Q4_0', K: 100, N: 2 })).toThrow(
      /Q4_0 rows of K = 100 are not whole blocks of 32/,
    );
    const b2 = new GraphBuilder('g');
    const a2 = b2.input('a', 'f32', [1, 128]);
    const w2 = b2.input('w', 'u8', [2, 72]);
    expect(() => b2.op('matmul_ggml', [a2, w2], { format: 'Q4_K', K: 128, N: 2 })).toThrow(KilnError);
  });

  it('a packed weight of the wrong size, an unknown format, a short buffer', () => {
    const b = new GraphBuilder('g');
    const a = b.input('a', 'f32', [1, 64]);
    expect(() => b.op('matmul_ggml', [a, b.input('w', 'u8', [2, 35])], { format: 'Q4_0', K: 64, N: 2 })).toThrow(
      /expected \[2,36\]/,
    );
    expect(() => b.op('matmul_ggml', [a, b.input('w2', 'u8', [2, 36])], { format: 'Q3_K', K: 64, N: 2 })).toThrow(
      KilnError,
    );
    expect(() =>
      b.op('get_rows_ggml', [b.input('t', 'u8', [4, 36]), b.input('i', 'f32', [1])], { format: 'Q4_0', K: 64 }),
    ).toThrow(/indices must be i32 or i64/);
    expect(() => dequantizeGgml('Q6_K', new Uint8Array(209), 1, 256)).toThrow(/209 bytes/);
    expect(() => quantizeGgml('Q8_0', new Float32Array(48), 1, 48, 'blk.0.attn_q.weight')).toThrow(
      /not whole blocks.*blk\.0\.attn_q\.weight/,
    );
  });
});
