/**
 * Sparse weights (N:M, CSR, BSR): `sparse_matmul` (y = a · W with W [K, N] given compressed) and `sparse_to_dense`
 * (the conversion: W from its compressed arrays). The formats, packers and the unpacking that is both ops' float64
 * reference are in `sparse-formats.ts`. Like a block-quantized weight, a sparse weight is several constant inputs of
 * one op: `values` (typed with the format's layout — csr, bsr(h×w), nm(2:4) — when it is a constant), `indices`
 * and, for csr / bsr, `row_ptr`; inference rejects geometry that disagrees with the attributes, the reference rejects
 * a bad index or row pointer, each naming the node.
 */
import { isFloat } from '../dtype.js';
import { registerOp, type AttrSpec, type Attrs, type InferContext } from '../registry.js';
import { scratchTensor } from '../tensor.js';
import { layoutToString, tensorType, type Layout } from '../types.js';
import { KilnError } from '../errors.js';
import { sparseGeometry, unpackSparse, type PackedSparse, type SparseGeometry } from './sparse-formats.js';
import { req } from './util.js';

export * from './sparse-formats.js';

type Fail = (message: string) => never;

const ATTRS: Record<string, AttrSpec> = {
  format: { kind: 'string', oneOf: ['csr', 'bsr', 'nm'] },
  K: { kind: 'int' },
  N: { kind: 'int' },
  /** bsr: [h, w]. */
  block: { kind: 'ints', default: [1, 1] },
  /** nm: [n, m] (2:4 only). */
  nm: { kind: 'ints', default: [2, 4] },
  /** nm with quantized values: 4 or 8 (u8 values, `scales` given); 0: float values. */
  bits: { kind: 'int', default: 0 },
  /** nm with quantized values: kept values (along K / 2) per scale; even. */
  group: { kind: 'int', default: 32 },
};

/** The quantization of a 2:4 weight's kept values (bits 4 / 8, symmetric: zero point 2^(bits − 1)). */
export interface NmQuant {
  readonly bits: 4 | 8;
  readonly group: number;
  /** Scales per output column: ceil((K / 2) / group). */
  readonly perRow: number;
}

export function nmQuantOf(a: Attrs, g: SparseGeometry, fail: Fail): NmQuant | undefined {
  const bits = a['bits'] as number;
  if (!bits) return undefined;
  if (g.format !== 'nm') fail(`quantized values (bits ${bits}) are only supported for nm, not ${g.format}`);
  if (bits !== 4 && bits !== 8) fail(`bits must be 4 or 8 (or 0: float values), got ${bits}`);
  const group = a['group'] as number;
  if (!Number.isInteger(group) || group < 2 || group % 2) fail(`group must be an even positive integer, got ${group}`);
  return { bits, group, perRow: Math.ceil(g.K / 2 / group) };
}

/** The float64 kept values of a quantized 2:4 weight: (q − 2^(bits − 1)) · scale, [N, K / 2] row-major. */
export function dequantizeNm(
  g: SparseGeometry,
  q: NmQuant,
  data: ArrayLike<number>,
  scales: ArrayLike<number>,
): Float64Array {
  const half = g.K / 2;
  const out = new Float64Array(g.N * half);
  const zp = 2 ** (q.bits - 1);
  for (let n = 0; n < g.N; n++)
    for (let j = 0; j < half; j++) {
      const e = n * half + j;
      const v = q.bits === 8 ? data[e]! : (data[e >> 1]! >> ((e & 1) * 4)) & 15;
      out[e] = (v - zp) * scales[n * q.perRow + Math.floor(j / q.group)]!;
    }
  return out;
}

export function sparseGeometryOf(a: Attrs, fail: Fail): SparseGeometry {
  const nm = a['nm'] as readonly number[];
  return sparseGeometry(
    a['format'] as string,
    a['K'] as number,
    a['N'] as number,
    a['block'] as readonly number[],
    [nm[0]!, nm[1]!],
    fail,
  );
}

/** The layout a sparse weight's `values` constant carries. */
export function sparseLayout(g: SparseGeometry): Layout {
  if (g.format === 'csr') return { kind: 'csr' };
  if (g.format === 'bsr') return { kind: 'bsr', block: [g.block[0], g.block[1]] };
  return { kind: 'nm', n: 2, m: 4 };
}

const known = (d: unknown): d is number => typeof d === 'number';

/**
 * Quantize a 2:4 weight's kept values (a packNm result) symmetrically, round to nearest (ties away from zero): per
 * output column and group of `group` kept values, scale = max |v| / (2^(bits − 1) − 1), q = round(v / scale) +
 * 2^(bits − 1) — the u8 values [N, K / 2 · bits / 8] (int4: low nibble first) and scales [N, ceil(K / 2 / group)].
 */
export function quantizeNm(p: PackedSparse, bits: 4 | 8, group: number): { data: Uint8Array; scales: Float64Array } {
  const g = p.geometry;
  const q = nmQuantOf({ bits, group }, g, (m) => {
    throw new KilnError('attribute', m, { tensor: 'weight' });
  })!;
  const half = g.K / 2;
  const qmax = 2 ** (bits - 1) - 1;
  const scales = new Float64Array(g.N * q.perRow);
  const data = new Uint8Array((g.N * half * bits) / 8);
  for (let n = 0; n < g.N; n++)
    for (let s = 0; s < q.perRow; s++) {
      let mx = 0;
      const end = Math.min(half, (s + 1) * group);
      for (let j = s * group; j < end; j++) mx = Math.max(mx, Math.abs(p.values[n * half + j]!));
      const scale = mx / qmax;
      scales[n * q.perRow + s] = scale;
      for (let j = s * group; j < end; j++) {
        const e = n * half + j;
        const v = p.values[e]!;
        const r = scale ? Math.sign(v) * Math.round(Math.abs(v) / scale) : 0;
        const u = Math.max(-qmax - 1, Math.min(qmax, r)) + qmax + 1;
        if (bits === 8) data[e] = u;
        else data[e >> 1]! |= u << ((e & 1) * 4);
      }
    }
  return { data, scales };
}

/**
 * Check values / indices / row_ptr / scales (ports `first` .. `first + 3`) against the geometry; returns the weight's
 * float dtype (the values', or the scales' for quantized values).
 */
function checkArrays(ctx: InferContext, first: number, g: SparseGeometry) {
  const values = req(ctx, first);
  const indices = req(ctx, first + 1);
  const rowPtr = ctx.inputs[first + 2];
  const scales = ctx.inputs[first + 3];
  const [h, w] = g.block;
  const q = nmQuantOf(ctx.attrs, g, ctx.fail);
  if (q) {
    if (values.dtype !== 'u8') ctx.fail(`quantized values must be u8, got ${values.dtype}`);
    if (!scales) return ctx.fail('quantized values need scales');
    if (scales.dtype !== 'f32' && scales.dtype !== 'f16') ctx.fail(`scales must be f32 or f16, got ${scales.dtype}`);
    const ss = scales.shape;
    if (ss.length !== 2 || (known(ss[0]) && ss[0] !== g.N) || (known(ss[1]) && ss[1] !== q.perRow))
      ctx.fail(`scales are [${ss.join(',')}], expected [N, ceil(K / 2 / group)] = [${g.N},${q.perRow}]`);
  } else {
    if (scales) ctx.fail('scales are only read with bits 4 / 8');
    if (values.dtype !== 'f32' && values.dtype !== 'f16') ctx.fail(`values must be f32 or f16, got ${values.dtype}`);
  }
  const l = values.layout;
  const want = sparseLayout(g);
  if (l.kind !== 'dense' && layoutToString(l) !== layoutToString(want))
    ctx.fail(`values have layout ${layoutToString(l)}, but the node reads ${layoutToString(want)}`);
  if (g.format === 'nm') {
    if (rowPtr) ctx.fail('nm takes no row_ptr');
    const vs = values.shape;
    const row = q ? (g.K / 2) * (q.bits / 8) : g.K / 2;
    if (vs.length !== 2 || (known(vs[0]) && vs[0] !== g.N) || (known(vs[1]) && vs[1] !== row))
      ctx.fail(
        `nm values are [${vs.join(',')}], expected [N, ${q ? `K / 2 · ${q.bits} / 8` : 'K / 2'}] = [${g.N},${row}]`,
      );
    if (indices.dtype !== 'u8') ctx.fail(`nm indices must be u8 (4-bit fields), got ${indices.dtype}`);
    const bytes = Math.ceil((g.N * g.K) / 8);
    if (indices.shape.length !== 1 || (known(indices.shape[0]) && indices.shape[0] !== bytes))
      ctx.fail(`nm indices are [${indices.shape.join(',')}], expected [ceil(N · K / 8)] = [${bytes}]`);
    return q ? scales!.dtype : values.dtype;
  }
  if (!rowPtr) return ctx.fail(`${g.format} needs row_ptr`);
  if (indices.dtype !== 'i32' && indices.dtype !== 'u16') ctx.fail(`indices must be i32 or u16, got ${indices.dtype}`);
  if (rowPtr.dtype !== 'i32') ctx.fail(`row_ptr must be i32, got ${rowPtr.dtype}`);
  if (indices.shape.length !== 1) ctx.fail(`indices must be 1-D, got [${indices.shape.join(',')}]`);
  if (rowPtr.shape.length !== 1 || (known(rowPtr.shape[0]) && rowPtr.shape[0] !== g.rows + 1))
    ctx.fail(`row_ptr is [${rowPtr.shape.join(',')}], expected [${g.rows + 1}] (compressed rows + 1)`);
  const nnz = indices.shape[0];
  const vs = values.shape;
  if (g.format === 'csr') {
    if (vs.length !== 1 || (known(vs[0]) && known(nnz) && vs[0] !== nnz))
      ctx.fail(`csr values are [${vs.join(',')}], expected [nnz] = [${String(nnz)}] like indices`);
  } else if (vs.length !== 3 || (known(vs[0]) && known(nnz) && vs[0] !== nnz) || vs[1] !== h || vs[2] !== w)
    ctx.fail(`bsr values are [${vs.join(',')}], expected [nnzb, h, w] = [${String(nnz)},${h},${w}]`);
  return values.dtype;
}

function weightOf(
  inputs: readonly ({ data: ArrayLike<number> } | undefined)[],
  first: number,
  g: SparseGeometry,
  attrs: Attrs,
  fail: Fail,
) {
  const [values, indices, rowPtr, scales] = inputs.slice(first, first + 4);
  const q = nmQuantOf(attrs, g, fail);
  const vals = q ? dequantizeNm(g, q, values!.data, scales!.data) : values!.data;
  return unpackSparse(g, vals, indices!.data, rowPtr?.data, fail);
}

/**
 * The dense weight W [K, N] (float64, row-major) of a sparse weight whose arrays are known on the host — values,
 * indices, row_ptr, scales in the ops' port order (absent: undefined) — with the node's attributes; bad geometry or
 * indices are a located failure. For the ONNX exporter (a sparse weight leaves kiln densified) and tools.
 */
export function sparseDenseWeight(
  attrs: Attrs,
  arrays: readonly ({ data: ArrayLike<number> } | undefined)[],
  fail: Fail,
): { K: number; N: number; w: Float64Array } {
  const g = sparseGeometryOf(attrs, fail);
  return { K: g.K, N: g.N, w: weightOf(arrays, 0, g, attrs, fail) };
}

registerOp({
  name: 'sparse_matmul',
  doc:
    'y[..., N] = a[..., K] · W with W [K, N] compressed over its output columns (Wᵀ rows): format csr (values [nnz], ' +
    'indices i32 / u16 k [nnz], row_ptr i32 [N + 1]), bsr (block [h, w] of Wᵀ: values [nnzb, h, w], indices i32 block ' +
    'columns, row_ptr [N / h + 1]) or nm 2:4 along K (values [N, K / 2], indices u8 4-bit fields, two 2-bit ' +
    'positions per group of 4; or, with bits 4 / 8, u8 values [N, K / 2 · bits / 8] (low nibble first) and scales ' +
    '[N, ceil(K / 2 / group)]: value = (q − 2^(bits−1)) · scale). Values f32 / f16; a is float; y has a\u2019s dtype.',
  inputs: [
    { name: 'a' },
    { name: 'values' },
    { name: 'indices' },
    { name: 'row_ptr', optional: true },
    { name: 'scales', optional: true },
  ],
  outputs: [{ name: 'y' }],
  attrs: { ...ATTRS, reason: { kind: 'string', default: '' } },
  fusion: 'opaque',
  infer(ctx) {
    const g = sparseGeometryOf(ctx.attrs, ctx.fail);
    const a = req(ctx, 0);
    if (!isFloat(a.dtype)) ctx.fail(`a must be float, got ${a.dtype}`);
    if (a.shape.length < 1) ctx.fail('a must have rank >= 1');
    const kd = a.shape[a.shape.length - 1]!;
    if (known(kd) && kd !== g.K) ctx.fail(`a's last dim ${kd} is not K = ${g.K}`);
    checkArrays(ctx, 1, g);
    return [tensorType(a.dtype, [...a.shape.slice(0, -1), g.N])];
  },
  reference(inputs, attrs, ctx) {
    const g = sparseGeometryOf(attrs, ctx.fail);
    const w = weightOf(inputs, 1, g, attrs, ctx.fail);
    const a = inputs[0]!;
    const { K, N } = g;
    const rows = a.data.length / K;
    const y = scratchTensor(ctx.outputDtypes[0]!, [...a.shape.slice(0, -1), N]);
    for (let m = 0; m < rows; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a.data[m * K + k]! * w[k * N + n]!;
        y.data[m * N + n] = s;
      }
    }
    return [y];
  },
});

registerOp({
  name: 'sparse_to_dense',
  doc: 'The dense weight W [K, N] (values dtype; scales dtype when quantized) of a sparse weight in the layouts of sparse_matmul.',
  inputs: [
    { name: 'values' },
    { name: 'indices' },
    { name: 'row_ptr', optional: true },
    { name: 'scales', optional: true },
  ],
  outputs: [{ name: 'w' }],
  attrs: ATTRS,
  fusion: 'opaque',
  infer(ctx) {
    const g = sparseGeometryOf(ctx.attrs, ctx.fail);
    const dt = checkArrays(ctx, 0, g);
    return [tensorType(dt, [g.K, g.N])];
  },
  reference(inputs, attrs, ctx) {
    const g = sparseGeometryOf(attrs, ctx.fail);
    return [scratchTensor(ctx.outputDtypes[0]!, [g.K, g.N], weightOf(inputs, 0, g, attrs, ctx.fail))];
  },
});
