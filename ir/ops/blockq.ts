/**
 * Block-quantized weights: `matmul_nbits` (ONNX Runtime's MatMulNBits) and `gather_block_quantized`
 * (GatherBlockQuantized).
 *
 * A block-quantized weight is the triple (packed integer data, scales, optional zero points) plus its geometry
 * (bits, block size, the blocked axis). Importers and the quantization passes (passes/quant) produce the same
 * representation: the packed data, the scales and the zero points are ordinary (constant) inputs of these ops, the
 * packed data typed with the `blockq` layout of ir/types.ts (`blockqLayout`; inference rejects a blockq layout that
 * disagrees with the node's bits / block size / axis), so a device holds the weight only in its packed form (f32
 * weights never exist in device memory).
 *
 * matmul_nbits layout (ONNX MatMulNBits): the weight is W [N, K] (y = a · Wᵀ); row n is cut into
 * n_blocks = ceil(K / block_size) blocks, the last one ragged (padded with zeros in the packed data); the packed data
 * b is u8 [N, n_blocks, block_size · bits / 8], element (n, k) at position n · n_blocks · block_size + k of the
 * padded row-major element order, bits = 4 packing two elements per byte low nibble first. Scales have
 * N · n_blocks elements (row n, block j at n · n_blocks + j). Zero points are either u8, packed like the data per
 * row (N · ceil(n_blocks · bits / 8) bytes), or floats of the scales' dtype (N · n_blocks); absent means
 * 2^(bits − 1). The optional g_idx [K] names the block of every k (act-order / GPTQ), replacing k / block_size.
 *
 *   W[n, k] = (q[n, k] − zp[n, g(k)]) · scale[n, g(k)],   y = a · Wᵀ (+ bias)
 */
import { isFloat, type DType } from '../dtype.js';
import { registerOp, type Attrs, type InferContext } from '../registry.js';
import { normAxis, type Dim, type Shape } from '../shape.js';
import { scratchTensor, type Tensor } from '../tensor.js';
import { layoutToString, tensorType, type Layout } from '../types.js';
import { req } from './util.js';

type Fail = (message: string) => never;

/** The geometry of a matmul_nbits weight. */
export interface NBits {
  readonly K: number;
  readonly N: number;
  readonly bits: 4 | 8;
  readonly block: number;
  /** Blocks per row of W: ceil(K / block). */
  readonly nBlocks: number;
  /** Bytes per block of packed data. */
  readonly blob: number;
  /** Bytes of packed u8 zero points per row of W. */
  readonly zpRow: number;
}

export const NBITS_BITS: readonly number[] = [4, 8];

/** Validate bits / block size / K / N and derive the weight's geometry; every violation a located failure. */
export function nbitsGeometry(a: Attrs, fail: Fail): NBits {
  const K = a['K'] as number;
  const N = a['N'] as number;
  const bits = a['bits'] as number;
  const block = a['block_size'] as number;
  if (!NBITS_BITS.includes(bits)) fail(`bits must be 4 or 8, got ${bits}`);
  if (!Number.isInteger(block) || block < 16 || (block & (block - 1)) !== 0)
    fail(`block_size must be a power of two >= 16, got ${block}`);
  if (!Number.isInteger(K) || K < 1) fail(`K must be a positive integer, got ${K}`);
  if (!Number.isInteger(N) || N < 1) fail(`N must be a positive integer, got ${N}`);
  const nBlocks = Math.ceil(K / block);
  return {
    K,
    N,
    bits: bits as 4 | 8,
    block,
    nBlocks,
    blob: (block * bits) / 8,
    zpRow: Math.ceil((nBlocks * bits) / 8),
  };
}

const numelOf = (s: Shape): Dim => {
  let n = 1;
  for (const d of s) {
    if (typeof d !== 'number') return d;
    n *= d;
  }
  return n;
};

/**
 * The blockq layout type of a block-quantized weight's packed data (ir/types.ts): what importers and the
 * quantization passes give the data value when it is a constant. For matmul_nbits the blocked axis is 1 (K of W [N, K]).
 */
export function blockqLayout(bits: number, group: number, axis: number, scale: DType, zeroPoint: boolean): Layout {
  return { kind: 'blockq', bits, group, axis, scale, zeroPoint };
}

/** A packed-data input's layout must be dense or the blockq layout these attributes describe. */
function checkLayout(ctx: InferContext, i: number, bits: number, group: number, axis: number): void {
  const l = ctx.inputs[i]!.layout;
  if (l.kind === 'dense') return;
  if (l.kind !== 'blockq' || l.bits !== bits || l.group !== group || l.axis !== axis)
    ctx.fail(
      `input ${i} has layout ${layoutToString(l)}, but the node reads blockq(bits=${bits},group=${group},axis=${axis})`,
    );
}

/** Element (n, k) of a packed u8 array laid out as `g` (padded rows of n_blocks · block elements). */
function packedAt(data: ArrayLike<number>, bits: number, index: number): number {
  if (bits === 8) return data[index]!;
  const byte = data[index >> 1]!;
  return index & 1 ? byte >> 4 : byte & 15;
}

/**
 * W [N, K] in float64 from the packed data, scales, zero points and g_idx of a matmul_nbits weight — the reference
 * semantics (also used by tests and the quantization passes to measure error).
 */
export function dequantizeNBits(
  g: NBits,
  b: ArrayLike<number>,
  scales: ArrayLike<number>,
  zp: { data: ArrayLike<number>; packed: boolean } | undefined,
  gIdx: ArrayLike<number> | undefined,
  fail: Fail,
): Float64Array {
  const { K, N, bits, block, nBlocks, zpRow } = g;
  const w = new Float64Array(N * K);
  const dflt = 2 ** (bits - 1);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const j = gIdx ? gIdx[k]! : Math.floor(k / block);
      if (gIdx && !(Number.isInteger(j) && j >= 0 && j < nBlocks))
        fail(`g_idx[${k}] = ${j} is not a block index in [0, ${nBlocks - 1}]`);
      const q = packedAt(b, bits, n * nBlocks * block + k);
      const s = n * nBlocks + j;
      const z = !zp ? dflt : zp.packed ? packedAt(zp.data, bits, n * zpRow * (8 / bits) + j) : zp.data[s]!;
      w[n * K + k] = (q - z) * scales[s]!;
    }
  }
  return w;
}

function checkNBits(ctx: InferContext): { g: NBits; out: Dim[]; dt: DType } {
  const g = nbitsGeometry(ctx.attrs, ctx.fail);
  const a = req(ctx, 0);
  const b = req(ctx, 1);
  const scales = req(ctx, 2);
  const [, , , zp, gIdx, bias] = ctx.inputs;
  if (!isFloat(a.dtype)) ctx.fail(`a must be float, got ${a.dtype}`);
  if (a.shape.length < 1) ctx.fail('a must have rank >= 1');
  const kd = a.shape[a.shape.length - 1]!;
  if (typeof kd === 'number' && kd !== g.K) ctx.fail(`a's last dim ${kd} is not K = ${g.K}`);
  if (b.dtype !== 'u8') ctx.fail(`packed weight b must be u8, got ${b.dtype}`);
  const bWant = [g.N, g.nBlocks, g.blob];
  const bOk = b.shape.length === 3 && b.shape.every((d, i) => typeof d !== 'number' || d === bWant[i]);
  if (!bOk)
    ctx.fail(
      `packed weight b is [${b.shape.join(',')}], expected [${bWant.join(',')}] (N, ceil(K / block_size), ` +
        `block_size · bits / 8)`,
    );
  checkLayout(ctx, 1, g.bits, g.block, 1);
  if (scales.dtype !== a.dtype) ctx.fail(`scales have dtype ${scales.dtype}, a has ${a.dtype}`);
  const ns = numelOf(scales.shape);
  if (typeof ns === 'number' && ns !== g.N * g.nBlocks)
    ctx.fail(`scales have ${ns} elements, expected N · n_blocks = ${g.N * g.nBlocks}`);
  if (zp) {
    const nz = numelOf(zp.shape);
    if (zp.dtype === 'u8') {
      if (typeof nz === 'number' && nz !== g.N * g.zpRow)
        ctx.fail(`packed zero points have ${nz} elements, expected N · ceil(n_blocks · bits / 8) = ${g.N * g.zpRow}`);
    } else if (zp.dtype === scales.dtype) {
      if (typeof nz === 'number' && nz !== g.N * g.nBlocks)
        ctx.fail(`zero points have ${nz} elements, expected N · n_blocks = ${g.N * g.nBlocks}`);
    } else ctx.fail(`zero points must be u8 or the scales' dtype ${scales.dtype}, got ${zp.dtype}`);
  }
  if (gIdx) {
    if (gIdx.dtype !== 'i32' && gIdx.dtype !== 'i64') ctx.fail(`g_idx must be i32 or i64, got ${gIdx.dtype}`);
    const ng = numelOf(gIdx.shape);
    if (gIdx.shape.length !== 1 || (typeof ng === 'number' && ng !== g.K))
      ctx.fail(`g_idx must be [K] = [${g.K}], got [${gIdx.shape.join(',')}]`);
  }
  if (bias) {
    if (bias.dtype !== a.dtype) ctx.fail(`bias has dtype ${bias.dtype}, a has ${a.dtype}`);
    if (bias.shape.length !== 1 || (typeof bias.shape[0] === 'number' && bias.shape[0] !== g.N))
      ctx.fail(`bias must be [N] = [${g.N}], got [${bias.shape.join(',')}]`);
  }
  return { g, out: [...a.shape.slice(0, -1), g.N], dt: a.dtype };
}

registerOp({
  name: 'matmul_nbits',
  doc:
    'y = a · Wᵀ (+ bias) with W [N, K] block-quantized (ONNX MatMulNBits): packed u8 data [N, ceil(K / block_size), ' +
    'block_size · bits / 8] (bits 4 or 8, low nibble first), scales [N · n_blocks], optional zero points (packed u8 ' +
    'or floats; default 2^(bits-1)), optional g_idx [K] (block of each k), optional bias [N]; a ragged last block ' +
    'is zero-padded in the data. W[n, k] = (q − zp) · scale.',
  inputs: [
    { name: 'a' },
    { name: 'b' },
    { name: 'scales' },
    { name: 'zero_points', optional: true },
    { name: 'g_idx', optional: true },
    { name: 'bias', optional: true },
  ],
  outputs: [{ name: 'y' }],
  attrs: {
    K: { kind: 'int' },
    N: { kind: 'int' },
    bits: { kind: 'int', default: 4 },
    block_size: { kind: 'int' },
  },
  fusion: 'opaque',
  infer(ctx) {
    const { out, dt } = checkNBits(ctx);
    return [tensorType(dt, out)];
  },
  reference([a, b, scales, zp, gIdx, bias], attrs, ctx) {
    const g = nbitsGeometry(attrs, ctx.fail);
    const w = dequantizeNBits(
      g,
      b!.data,
      scales!.data,
      zp && { data: zp.data, packed: zp.dtype === 'u8' },
      gIdx?.data,
      ctx.fail,
    );
    const { K, N } = g;
    const rows = a!.data.length / K;
    const y = scratchTensor(ctx.outputDtypes[0]!, [...a!.shape.slice(0, -1), N]);
    for (let m = 0; m < rows; m++) {
      for (let n = 0; n < N; n++) {
        let s = bias ? bias.data[n]! : 0;
        for (let k = 0; k < K; k++) s += a!.data[m * K + k]! * w[n * K + k]!;
        y.data[m * N + n] = s;
      }
    }
    return [y];
  },
});

// ---- gather_block_quantized ---------------------------------------------------------------------------------

/** The geometry of a gather_block_quantized data tensor: logical shape, element access, default zero point. */
export interface GatherBQ {
  /** Logical (unpacked) data shape. */
  readonly shape: Dim[];
  readonly gatherAxis: number;
  readonly quantizeAxis: number;
  readonly block: number;
  readonly bits: number;
  /** u8 data holding 8 / bits elements per byte (low bits first); false for i4 / u4 (logical elements). */
  readonly packed: boolean;
  readonly defaultZp: number;
  /** Scale shape: the logical shape with ceil(d / block) along the quantized axis. */
  readonly scaleShape: Dim[];
}

export function gatherBQGeometry(data: { dtype: DType; shape: Shape }, a: Attrs, fail: Fail): GatherBQ {
  const bits = a['bits'] as number;
  const block = a['block_size'] as number;
  if (!Number.isInteger(block) || block < 16 || (block & (block - 1)) !== 0)
    fail(`block_size must be a power of two >= 16, got ${block}`);
  const r = data.shape.length;
  if (r < 1) fail('data must have rank >= 1');
  const axis = (name: string) => {
    const v = a[name] as number;
    if (!Number.isInteger(v) || v < -r || v >= r) fail(`${name} ${v} out of range for rank ${r}`);
    return normAxis(v, r);
  };
  const gatherAxis = axis('gather_axis');
  const quantizeAxis = axis('quantize_axis');
  let packed = false;
  let defaultZp = 0;
  const shape = [...data.shape];
  if (data.dtype === 'u8') {
    if (bits !== 4 && bits !== 8) fail(`bits must be 4 or 8 for u8 data, got ${bits}`);
    packed = bits === 4;
    defaultZp = 2 ** (bits - 1);
    const last = shape[r - 1]!;
    if (packed) shape[r - 1] = typeof last === 'number' ? last * 2 : `${last}*2`;
  } else if (data.dtype === 'u4' || data.dtype === 'i4') {
    if (bits !== 4) fail(`bits must be 4 for ${data.dtype} data, got ${bits}`);
    defaultZp = data.dtype === 'u4' ? 8 : 0;
  } else fail(`data must be u8, u4 or i4, got ${data.dtype}`);
  const scaleShape = shape.map((d, i) =>
    i === quantizeAxis ? (typeof d === 'number' ? Math.ceil(d / block) : `ceil(${d}/${block})`) : d,
  );
  return { shape, gatherAxis, quantizeAxis, block, bits, packed, defaultZp, scaleShape };
}

const sameDims = (a: Shape, b: Shape) =>
  a.length === b.length && a.every((d, i) => typeof d !== 'number' || typeof b[i] !== 'number' || d === b[i]);

registerOp({
  name: 'gather_block_quantized',
  doc:
    'gather(dequantize(data), indices, gather_axis) with data block-quantized along quantize_axis (ONNX ' +
    'GatherBlockQuantized): u8 data packs 8 / bits elements per byte (low bits first; bits 4 or 8), i4 / u4 data ' +
    'holds elements as they are; scales have the logical shape with ceil(d / block_size) along quantize_axis; zero ' +
    'points (the data dtype, packed like it) default to 2^(bits-1) for unsigned data and 0 for i4. ' +
    'y = (q − zp) · scale, in the scales dtype.',
  inputs: [{ name: 'data' }, { name: 'indices' }, { name: 'scales' }, { name: 'zero_points', optional: true }],
  outputs: [{ name: 'y' }],
  attrs: {
    gather_axis: { kind: 'int', default: 0 },
    quantize_axis: { kind: 'int', default: 1 },
    block_size: { kind: 'int', default: 128 },
    bits: { kind: 'int', default: 4 },
  },
  fusion: 'opaque',
  infer(ctx) {
    const data = req(ctx, 0);
    const idx = req(ctx, 1);
    const scales = req(ctx, 2);
    const zp = ctx.inputs[3];
    const g = gatherBQGeometry(data, ctx.attrs, ctx.fail);
    if (idx.dtype !== 'i32' && idx.dtype !== 'i64') ctx.fail(`indices must be i32 or i64, got ${idx.dtype}`);
    checkLayout(ctx, 0, g.bits, g.block, g.quantizeAxis);
    if (!isFloat(scales.dtype)) ctx.fail(`scales must be float, got ${scales.dtype}`);
    if (!sameDims(scales.shape, g.scaleShape))
      ctx.fail(
        `scales [${scales.shape.join(',')}] do not match data [${g.shape.join(',')}] in blocks of ${g.block} ` +
          `along axis ${g.quantizeAxis}`,
      );
    if (zp) {
      if (zp.dtype !== data.dtype) ctx.fail(`zero points have dtype ${zp.dtype}, data has ${data.dtype}`);
      const want = [...g.scaleShape];
      const last = want.length - 1;
      if (g.packed) want[last] = typeof want[last] === 'number' ? Math.ceil(want[last] / 2) : zp.shape[last]!;
      if (!sameDims(zp.shape, want)) ctx.fail(`zero points [${zp.shape.join(',')}] expected [${want.join(',')}]`);
    }
    const s = g.shape;
    return [tensorType(scales.dtype, [...s.slice(0, g.gatherAxis), ...idx.shape, ...s.slice(g.gatherAxis + 1)])];
  },
  reference([data, indices, scales, zp], attrs, ctx) {
    const g = gatherBQGeometry(data!, attrs, ctx.fail);
    const shape = g.shape as number[];
    const w = dequantizeBlocked(g, data!, scales!, zp);
    const ax = g.gatherAxis;
    const len = shape[ax]!;
    const outer = shape.slice(0, ax).reduce((p, d) => p * d, 1);
    const inner = shape.slice(ax + 1).reduce((p, d) => p * d, 1);
    const n = indices!.data.length;
    const y = scratchTensor(ctx.outputDtypes[0]!, [...shape.slice(0, ax), ...indices!.shape, ...shape.slice(ax + 1)]);
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < n; j++) {
        const raw = Number(indices!.data[j]!);
        const i = raw < 0 ? raw + len : raw;
        if (!(i >= 0 && i < len)) ctx.fail(`gather index ${raw} out of range [${-len}, ${len - 1}]`);
        const src = (o * len + i) * inner;
        y.data.set(w.subarray(src, src + inner), (o * n + j) * inner);
      }
    }
    return [y];
  },
});

/** The logical data of a gather_block_quantized input, dequantized in float64 (row-major over `g.shape`). */
export function dequantizeBlocked(g: GatherBQ, data: Tensor, scales: Tensor, zp: Tensor | undefined): Float64Array {
  const shape = g.shape as number[];
  const r = shape.length;
  const total = shape.reduce((p, d) => p * d, 1);
  const ss = g.scaleShape as number[];
  const zRow = g.packed ? Math.ceil(ss[r - 1]! / 2) : ss[r - 1]!;
  const out = new Float64Array(total);
  const coord = new Array<number>(r).fill(0);
  for (let i = 0; i < total; i++) {
    let rest = i;
    for (let d = r - 1; d >= 0; d--) {
      coord[d] = rest % shape[d]!;
      rest = Math.floor(rest / shape[d]!);
    }
    let s = 0;
    for (let d = 0; d < r; d++) s = s * ss[d]! + (d === g.quantizeAxis ? Math.floor(coord[d]! / g.block) : coord[d]!);
    const q = g.packed ? packedAt(data.data as ArrayLike<number>, 4, i) : Number(data.data[i]!);
    let z = g.defaultZp;
    if (zp) {
      if (g.packed) {
        const sr = s % ss[r - 1]!;
        const row = (s - sr) / ss[r - 1]!;
        z = packedAt(zp.data as ArrayLike<number>, 4, row * zRow * 2 + sr);
      } else z = Number(zp.data[s]!);
    }
    out[i] = (q - z) * Number(scales.data[s]!);
  }
  return out;
}
