/**
 * GGUF (ggml) block-quantized weights: `matmul_ggml` (y = a · Wᵀ, W [N, K] stored as the raw ggml blocks of each
 * row) and `get_rows_ggml` (an embedding lookup of a quantized token table). The packed data is a u8 constant
 * [rows, K / QK · block bytes], exactly the bytes of the GGUF tensor, so a device holds the weight only packed and a
 * model can be written back to GGUF byte for byte.
 *
 * Formats (QK elements per block, little-endian, f16 = IEEE half; the float64 reference below follows ggml's
 * dequantize_row_* loops, the facts from ggml-common.h / ggml-quants.c):
 *
 * | format | QK | bytes | block | element i |
 * |---|---|---|---|---|
 * | Q8_0 | 32 | 34 | f16 d, i8 qs[32] | d · qs[i] |
 * | Q4_0 | 32 | 18 | f16 d, u8 qs[16] | d · (nib − 8); nib = qs[i] low (i < 16), qs[i − 16] high |
 * | Q4_1 | 32 | 20 | f16 d, f16 m, qs[16] | d · nib + m |
 * | Q5_0 | 32 | 22 | f16 d, u32 qh, qs[16] | d · ((nib | bit i of qh · 16) − 16) |
 * | Q5_1 | 32 | 24 | f16 d, f16 m, u32 qh, qs[16] | d · (nib | bit i of qh · 16) + m |
 * | Q4_K | 256 | 144 | f16 d, f16 dmin, scales[12], qs[128] | d · sc_s · q − dmin · m_s, s = i / 32 (6-bit packed) |
 * | Q5_K | 256 | 176 | f16 d, f16 dmin, scales[12], qh[32], qs[128] | as Q4_K with q + 16 · bit s of qh[i % 32] |
 * | Q6_K | 256 | 210 | ql[128], qh[64], i8 scales[16], f16 d | d · scales[s] · (q6 − 32) |
 *
 * K-quant element layout: Q4_K / Q5_K take 64 elements per 32 bytes of qs (the first 32 from the low nibbles, the
 * next 32 from the high ones); Q6_K takes 128 elements per 64 bytes of ql and 32 of qh (quarter t of the 128 from
 * ql[l + 32·(t & 1)] nibble t >> 1 and qh[l] bits 2t, 2t + 1; scale 16-element groups).
 */
import { f16BitsToNumber, isFloat, numberToF16Bits, roundF16 } from '../dtype.js';
import { KilnError } from '../errors.js';
import { registerOp, type Attrs } from '../registry.js';
import { scratchTensor } from '../tensor.js';
import { tensorType } from '../types.js';
import { req } from './util.js';

type Fail = (message: string) => never;

/** The GGUF block formats kiln loads, runs and writes. */
export const GGML_FORMATS = ['Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q4_K', 'Q5_K', 'Q6_K'] as const;
export type GgmlFormat = (typeof GGML_FORMATS)[number];

/** ggml type id (the GGUF tensor-info type), elements per block, bytes per block. */
export const GGML_FORMAT_INFO: Readonly<Record<GgmlFormat, { type: number; qk: number; bytes: number }>> = {
  Q4_0: { type: 2, qk: 32, bytes: 18 },
  Q4_1: { type: 3, qk: 32, bytes: 20 },
  Q5_0: { type: 6, qk: 32, bytes: 22 },
  Q5_1: { type: 7, qk: 32, bytes: 24 },
  Q8_0: { type: 8, qk: 32, bytes: 34 },
  Q4_K: { type: 12, qk: 256, bytes: 144 },
  Q5_K: { type: 13, qk: 256, bytes: 176 },
  Q6_K: { type: 14, qk: 256, bytes: 210 },
};

export const isGgmlFormat = (s: unknown): s is GgmlFormat =>
  typeof s === 'string' && (GGML_FORMATS as readonly string[]).includes(s);

/** The geometry of a ggml weight: rows of K elements in whole blocks. */
export interface GgmlGeometry {
  readonly format: GgmlFormat;
  readonly qk: number;
  readonly blockBytes: number;
  readonly K: number;
  /** Bytes per row: K / qk blocks. */
  readonly rowBytes: number;
}

/** Validate a format and a row length; K not a multiple of the block is a located failure. */
export function ggmlGeometry(format: unknown, K: number, fail: Fail): GgmlGeometry {
  if (!isGgmlFormat(format)) fail(`format must be one of ${GGML_FORMATS.join(', ')}, got ${String(format)}`);
  const f = format as GgmlFormat;
  const { qk, bytes } = GGML_FORMAT_INFO[f];
  if (!Number.isInteger(K) || K < 1) fail(`K must be a positive integer, got ${K}`);
  if (K % qk !== 0) fail(`${f} rows of K = ${K} are not whole blocks of ${qk}`);
  return { format: f, qk, blockBytes: bytes, K, rowBytes: (K / qk) * bytes };
}

const f16At = (b: ArrayLike<number>, o: number) => f16BitsToNumber(b[o]! | (b[o + 1]! << 8));
const i8 = (x: number) => (x >= 128 ? x - 256 : x);

/** ggml's get_scale_min_k4: the 6-bit scale and min of sub-block j from the 12 packed bytes at `o`. */
export function scaleMinK4(b: ArrayLike<number>, o: number, j: number): [number, number] {
  if (j < 4) return [b[o + j]! & 63, b[o + j + 4]! & 63];
  return [(b[o + j + 4]! & 15) | ((b[o + j - 4]! >> 6) << 4), (b[o + j + 4]! >> 4) | ((b[o + j]! >> 6) << 4)];
}

/** One block at byte `o` of `b`, dequantized into y[at .. at + qk) (float64: the reference semantics). */
function dequantBlock(f: GgmlFormat, b: ArrayLike<number>, o: number, y: Float64Array, at: number): void {
  switch (f) {
    case 'Q8_0': {
      const d = f16At(b, o);
      for (let i = 0; i < 32; i++) y[at + i] = d * i8(b[o + 2 + i]!);
      return;
    }
    case 'Q4_0':
    case 'Q4_1': {
      const d = f16At(b, o);
      const m = f === 'Q4_1' ? f16At(b, o + 2) : 0;
      const qs = o + (f === 'Q4_1' ? 4 : 2);
      for (let j = 0; j < 16; j++) {
        const lo = b[qs + j]! & 15;
        const hi = b[qs + j]! >> 4;
        y[at + j] = f === 'Q4_0' ? d * (lo - 8) : d * lo + m;
        y[at + j + 16] = f === 'Q4_0' ? d * (hi - 8) : d * hi + m;
      }
      return;
    }
    case 'Q5_0':
    case 'Q5_1': {
      const d = f16At(b, o);
      const one = f === 'Q5_1';
      const m = one ? f16At(b, o + 2) : 0;
      const h = o + (one ? 4 : 2);
      const qh = (b[h]! | (b[h + 1]! << 8) | (b[h + 2]! << 16) | (b[h + 3]! << 24)) >>> 0;
      const qs = h + 4;
      for (let j = 0; j < 16; j++) {
        const x0 = (b[qs + j]! & 15) | (((qh >>> j) & 1) << 4);
        const x1 = (b[qs + j]! >> 4) | (((qh >>> (j + 16)) & 1) << 4);
        y[at + j] = one ? d * x0 + m : d * (x0 - 16);
        y[at + j + 16] = one ? d * x1 + m : d * (x1 - 16);
      }
      return;
    }
    case 'Q4_K':
    case 'Q5_K': {
      const d = f16At(b, o);
      const dmin = f16At(b, o + 2);
      const sc = o + 4;
      const five = f === 'Q5_K';
      const qh = o + 16;
      let qs = o + (five ? 48 : 16);
      let out = at;
      for (let j = 0, is = 0; j < 256; j += 64, is += 2) {
        const [s1, m1] = scaleMinK4(b, sc, is);
        const [s2, m2] = scaleMinK4(b, sc, is + 1);
        for (let l = 0; l < 32; l++) {
          const hb = five ? ((b[qh + l]! >> is) & 1) * 16 : 0;
          y[out++] = d * s1 * ((b[qs + l]! & 15) + hb) - dmin * m1;
        }
        for (let l = 0; l < 32; l++) {
          const hb = five ? ((b[qh + l]! >> (is + 1)) & 1) * 16 : 0;
          y[out++] = d * s2 * ((b[qs + l]! >> 4) + hb) - dmin * m2;
        }
        qs += 32;
      }
      return;
    }
    case 'Q6_K': {
      const d = f16At(b, o + 208);
      let ql = o;
      let qh = o + 128;
      let sc = o + 192;
      for (let n = 0; n < 256; n += 128) {
        for (let l = 0; l < 32; l++) {
          const is = l >> 4;
          const q1 = ((b[ql + l]! & 15) | (((b[qh + l]! >> 0) & 3) << 4)) - 32;
          const q2 = ((b[ql + l + 32]! & 15) | (((b[qh + l]! >> 2) & 3) << 4)) - 32;
          const q3 = ((b[ql + l]! >> 4) | (((b[qh + l]! >> 4) & 3) << 4)) - 32;
          const q4 = ((b[ql + l + 32]! >> 4) | (((b[qh + l]! >> 6) & 3) << 4)) - 32;
          y[at + n + l] = d * i8(b[sc + is]!) * q1;
          y[at + n + l + 32] = d * i8(b[sc + is + 2]!) * q2;
          y[at + n + l + 64] = d * i8(b[sc + is + 4]!) * q3;
          y[at + n + l + 96] = d * i8(b[sc + is + 6]!) * q4;
        }
        ql += 64;
        qh += 32;
        sc += 8;
      }
      return;
    }
  }
}

/**
 * `rows` rows of K elements stored as ggml blocks (rows · K / QK · block bytes, from byte `offset`), dequantized in
 * float64 — the reference semantics of the ggml ops (ggml's dequantize_row_*).
 */
export function dequantizeGgml(
  format: GgmlFormat,
  bytes: ArrayLike<number>,
  rows: number,
  K: number,
  fail: Fail = (m) => {
    throw new KilnError('shape', m);
  },
  offset = 0,
): Float64Array {
  const g = ggmlGeometry(format, K, fail);
  if (bytes.length - offset < rows * g.rowBytes)
    fail(`${format} data has ${bytes.length - offset} bytes, ${rows} rows of ${K} need ${rows * g.rowBytes}`);
  const y = new Float64Array(rows * K);
  const blocks = (rows * K) / g.qk;
  for (let i = 0; i < blocks; i++) dequantBlock(format, bytes, offset + i * g.blockBytes, y, i * g.qk);
  return y;
}

// ---- ggml-style round-to-nearest quantization (the writer's re-quantization) -----------------------------------

const nearest = (x: number) => Math.round(x);
const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));

function putF16(out: Uint8Array, o: number, x: number): number {
  const h = numberToF16Bits(x);
  out[o] = h & 255;
  out[o + 1] = h >> 8;
  return roundF16(x);
}

/** 32 values → scale / min and 4- or 5-bit codes (ggml's *_ref quantizers: RTN from the stored f16 scale). */
function quantLegacy(f: GgmlFormat, x: ArrayLike<number>, xo: number, out: Uint8Array, o: number): void {
  if (f === 'Q8_0') {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[xo + i]!));
    const d = putF16(out, o, amax / 127);
    for (let i = 0; i < 32; i++) out[o + 2 + i] = clamp(d ? nearest(x[xo + i]! / d) : 0, -128, 127) & 255;
    return;
  }
  const bits = f === 'Q4_0' || f === 'Q4_1' ? 4 : 5;
  const top = 2 ** bits - 1;
  const affine = f === 'Q4_1' || f === 'Q5_1';
  let d: number;
  let m = 0;
  if (affine) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < 32; i++) {
      lo = Math.min(lo, x[xo + i]!);
      hi = Math.max(hi, x[xo + i]!);
    }
    d = putF16(out, o, (hi - lo) / top);
    m = putF16(out, o + 2, lo);
  } else {
    // the signed value of largest magnitude maps to code 0 (−2^(bits−1)), as ggml does
    let max = 0;
    for (let i = 0; i < 32; i++) if (Math.abs(x[xo + i]!) > Math.abs(max)) max = x[xo + i]!;
    d = putF16(out, o, max / -(2 ** (bits - 1)));
  }
  const zero = affine ? 0 : 2 ** (bits - 1);
  const codes = new Array<number>(32);
  for (let i = 0; i < 32; i++) codes[i] = d ? clamp(nearest((x[xo + i]! - m) / d) + zero, 0, top) : zero;
  const qs = o + (affine ? 4 : 2) + (bits === 5 ? 4 : 0);
  if (bits === 5) {
    let qh = 0;
    for (let i = 0; i < 32; i++) qh |= ((codes[i]! >> 4) & 1) << i;
    const h = o + (affine ? 4 : 2);
    for (let i = 0; i < 4; i++) out[h + i] = (qh >>> (8 * i)) & 255;
  }
  for (let j = 0; j < 16; j++) out[qs + j] = (codes[j]! & 15) | ((codes[j + 16]! & 15) << 4);
}

/** 256 values → a Q4_K / Q5_K super-block: per 32 a scale and min, both 6-bit multiples of d / dmin. */
function quantK45(f: GgmlFormat, x: ArrayLike<number>, xo: number, out: Uint8Array, o: number): void {
  const top = f === 'Q4_K' ? 15 : 31;
  const scales: number[] = [];
  const mins: number[] = [];
  for (let s = 0; s < 8; s++) {
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 32; i++) {
      lo = Math.min(lo, x[xo + 32 * s + i]!);
      hi = Math.max(hi, x[xo + 32 * s + i]!);
    }
    scales.push((hi - lo) / top);
    mins.push(-lo);
  }
  const d = putF16(out, o, Math.max(...scales) / 63);
  const dmin = putF16(out, o + 2, Math.max(...mins) / 63);
  const ls = scales.map((s) => (d ? clamp(nearest(s / d), 0, 63) : 0));
  const lm = mins.map((m) => (dmin ? clamp(nearest(m / dmin), 0, 63) : 0));
  const sc = o + 4;
  for (let j = 0; j < 4; j++) {
    out[sc + j] = (ls[j]! & 63) | ((ls[j + 4]! >> 4) << 6);
    out[sc + j + 4] = (lm[j]! & 63) | ((lm[j + 4]! >> 4) << 6);
    out[sc + j + 8] = (ls[j + 4]! & 15) | ((lm[j + 4]! & 15) << 4);
  }
  const codes = new Array<number>(256);
  for (let s = 0; s < 8; s++) {
    const [a, b] = scaleMinK4(out, sc, s);
    const ds = d * a;
    const mm = dmin * b;
    for (let i = 0; i < 32; i++) codes[32 * s + i] = ds ? clamp(nearest((x[xo + 32 * s + i]! + mm) / ds), 0, top) : 0;
  }
  const five = f === 'Q5_K';
  const qs = o + (five ? 48 : 16);
  if (five) for (let l = 0; l < 32; l++) out[o + 16 + l] = 0;
  for (let j = 0; j < 4; j++) {
    for (let l = 0; l < 32; l++) {
      const c0 = codes[64 * j + l]!;
      const c1 = codes[64 * j + 32 + l]!;
      out[qs + 32 * j + l] = (c0 & 15) | ((c1 & 15) << 4);
      if (five) out[o + 16 + l]! |= ((c0 >> 4) << (2 * j)) | ((c1 >> 4) << (2 * j + 1));
    }
  }
}

/** 256 values → a Q6_K super-block: 16 groups of 16 with i8 scales (multiples of d), codes −32..31. */
function quantK6(x: ArrayLike<number>, xo: number, out: Uint8Array, o: number): void {
  const gs: number[] = [];
  for (let s = 0; s < 16; s++) {
    let max = 0;
    for (let i = 0; i < 16; i++) if (Math.abs(x[xo + 16 * s + i]!) > Math.abs(max)) max = x[xo + 16 * s + i]!;
    gs.push(max / -32);
  }
  let gmax = 0;
  for (const s of gs) if (Math.abs(s) > Math.abs(gmax)) gmax = s;
  const d = putF16(out, o + 208, gmax / -128);
  const L = new Array<number>(256);
  for (let s = 0; s < 16; s++) {
    const sc = d ? clamp(nearest(gs[s]! / d), -128, 127) : 0;
    out[o + 192 + s] = sc & 255;
    const ds = d * sc;
    for (let i = 0; i < 16; i++) L[16 * s + i] = (ds ? clamp(nearest(x[xo + 16 * s + i]! / ds), -32, 31) : 0) + 32;
  }
  for (let n = 0; n < 2; n++) {
    for (let l = 0; l < 32; l++) {
      const q = (t: number) => L[128 * n + 32 * t + l]!;
      out[o + 64 * n + l] = (q(0) & 15) | ((q(2) & 15) << 4);
      out[o + 64 * n + l + 32] = (q(1) & 15) | ((q(3) & 15) << 4);
      out[o + 128 + 32 * n + l] = (q(0) >> 4) | ((q(1) >> 4) << 2) | ((q(2) >> 4) << 4) | ((q(3) >> 4) << 6);
    }
  }
}

/**
 * Rows of K float values → ggml blocks of `format` (round to nearest from the stored f16 scales; K-quant sub-block
 * scales rounded to their 6 / 8 bits first). A non-finite value or a K that is not whole blocks is a typed error.
 */
export function quantizeGgml(
  format: GgmlFormat,
  x: ArrayLike<number>,
  rows: number,
  K: number,
  what = 'weight',
): Uint8Array {
  const g = ggmlGeometry(format, K, (m) => {
    throw new KilnError('shape', m, { tensor: what });
  });
  for (let i = 0; i < rows * K; i++)
    if (!Number.isFinite(x[i]!)) throw new KilnError('verify', `element ${i} is ${x[i]}`, { tensor: what });
  const out = new Uint8Array(rows * g.rowBytes);
  const blocks = (rows * K) / g.qk;
  for (let i = 0; i < blocks; i++) {
    const o = i * g.blockBytes;
    const xo = i * g.qk;
    if (format === 'Q4_K' || format === 'Q5_K') quantK45(format, x, xo, out, o);
    else if (format === 'Q6_K') quantK6(x, xo, out, o);
    else quantLegacy(format, x, xo, out, o);
  }
  return out;
}

// ---- ops ------------------------------------------------------------------------------------------------------

const FORMAT_ATTR = { kind: 'string', oneOf: GGML_FORMATS as unknown as string[] } as const;

function geometryOf(a: Attrs, fail: Fail): GgmlGeometry {
  return ggmlGeometry(a['format'], a['K'] as number, fail);
}

registerOp({
  name: 'matmul_ggml',
  doc:
    'y = a · Wᵀ with W [N, K] stored as the raw ggml blocks of each row (GGUF Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, ' +
    'Q5_K, Q6_K): w is u8 [N, K / QK · block bytes]; K must be whole blocks. Reference: ggml dequantization in ' +
    'float64, then the product.',
  inputs: [{ name: 'a' }, { name: 'w' }],
  outputs: [{ name: 'y' }],
  attrs: { format: FORMAT_ATTR, K: { kind: 'int' }, N: { kind: 'int' } },
  fusion: 'opaque',
  infer(ctx) {
    const g = geometryOf(ctx.attrs, ctx.fail);
    const N = ctx.attrs['N'] as number;
    if (!Number.isInteger(N) || N < 1) ctx.fail(`N must be a positive integer, got ${N}`);
    const a = req(ctx, 0);
    const w = req(ctx, 1);
    if (!isFloat(a.dtype)) ctx.fail(`a must be float, got ${a.dtype}`);
    if (a.shape.length < 1) ctx.fail('a must have rank >= 1');
    const kd = a.shape[a.shape.length - 1]!;
    if (typeof kd === 'number' && kd !== g.K) ctx.fail(`a's last dim ${kd} is not K = ${g.K}`);
    if (w.dtype !== 'u8') ctx.fail(`packed weight w must be u8, got ${w.dtype}`);
    const want = [N, g.rowBytes];
    if (w.shape.length !== 2 || w.shape.some((d, i) => typeof d === 'number' && d !== want[i]))
      ctx.fail(
        `packed weight w is [${w.shape.join(',')}], expected [${want.join(',')}] (N, K / ${g.qk} · ${g.blockBytes})`,
      );
    return [tensorType(a.dtype, [...a.shape.slice(0, -1), N])];
  },
  reference([a, w], attrs, ctx) {
    const g = geometryOf(attrs, ctx.fail);
    const N = attrs['N'] as number;
    const { K } = g;
    const W = dequantizeGgml(g.format, w!.data as ArrayLike<number>, N, K, ctx.fail);
    const rows = a!.data.length / K;
    const y = scratchTensor(ctx.outputDtypes[0]!, [...a!.shape.slice(0, -1), N]);
    for (let m = 0; m < rows; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += Number(a!.data[m * K + k]!) * W[n * K + k]!;
        y.data[m * N + n] = s;
      }
    }
    return [y];
  },
});

registerOp({
  name: 'get_rows_ggml',
  doc:
    'Rows of a ggml block-quantized table [V, K] (u8 [V, K / QK · block bytes]) at the indices (i32 / i64; negative ' +
    'wraps), dequantized to f32: y [...indices, K]. Reference: ggml dequantization in float64.',
  inputs: [{ name: 'data' }, { name: 'indices' }],
  outputs: [{ name: 'y' }],
  attrs: { format: FORMAT_ATTR, K: { kind: 'int' } },
  fusion: 'opaque',
  infer(ctx) {
    const g = geometryOf(ctx.attrs, ctx.fail);
    const d = req(ctx, 0);
    const idx = req(ctx, 1);
    if (d.dtype !== 'u8') ctx.fail(`packed data must be u8, got ${d.dtype}`);
    if (d.shape.length !== 2 || (typeof d.shape[1] === 'number' && d.shape[1] !== g.rowBytes))
      ctx.fail(`packed data is [${d.shape.join(',')}], expected [V, ${g.rowBytes}] (K / ${g.qk} · ${g.blockBytes})`);
    if (idx.dtype !== 'i32' && idx.dtype !== 'i64') ctx.fail(`indices must be i32 or i64, got ${idx.dtype}`);
    return [tensorType('f32', [...idx.shape, g.K])];
  },
  reference([data, indices], attrs, ctx) {
    const g = geometryOf(attrs, ctx.fail);
    const V = data!.shape[0]!;
    const W = dequantizeGgml(g.format, data!.data as ArrayLike<number>, V, g.K, ctx.fail);
    const y = scratchTensor('f32', [...indices!.shape, g.K]);
    for (let j = 0; j < indices!.data.length; j++) {
      const raw = Number(indices!.data[j]!);
      const r = raw < 0 ? raw + V : raw;
      if (!(r >= 0 && r < V)) ctx.fail(`gather index ${raw} out of range [${-V}, ${V - 1}]`);
      y.data.set(W.subarray(r * g.K, (r + 1) * g.K), j * g.K);
    }
    return [y];
  },
});
