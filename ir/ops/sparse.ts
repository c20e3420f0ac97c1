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
import { sparseGeometry, unpackSparse, type SparseGeometry } from './sparse-formats.js';
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
};

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

/** Check values / indices / row_ptr (ports `first` .. `first + 2`) against the geometry; returns the values dtype. */
function checkArrays(ctx: InferContext, first: number, g: SparseGeometry) {
  const values = req(ctx, first);
  const indices = req(ctx, first + 1);
  const rowPtr = ctx.inputs[first + 2];
  const [h, w] = g.block;
  if (values.dtype !== 'f32' && values.dtype !== 'f16') ctx.fail(`values must be f32 or f16, got ${values.dtype}`);
  const l = values.layout;
  const want = sparseLayout(g);
  if (l.kind !== 'dense' && layoutToString(l) !== layoutToString(want))
    ctx.fail(`values have layout ${layoutToString(l)}, but the node reads ${layoutToString(want)}`);
  if (g.format === 'nm') {
    if (rowPtr) ctx.fail('nm takes no row_ptr');
    const vs = values.shape;
    if (vs.length !== 2 || (known(vs[0]) && vs[0] !== g.N) || (known(vs[1]) && vs[1] !== g.K / 2))
      ctx.fail(`nm values are [${vs.join(',')}], expected [N, K / 2] = [${g.N},${g.K / 2}]`);
    if (indices.dtype !== 'u8') ctx.fail(`nm indices must be u8 (4-bit fields), got ${indices.dtype}`);
    const bytes = Math.ceil((g.N * g.K) / 8);
    if (indices.shape.length !== 1 || (known(indices.shape[0]) && indices.shape[0] !== bytes))
      ctx.fail(`nm indices are [${indices.shape.join(',')}], expected [ceil(N · K / 8)] = [${bytes}]`);
    return values.dtype;
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
  fail: Fail,
) {
  const [values, indices, rowPtr] = inputs.slice(first, first + 3);
  return unpackSparse(g, values!.data, indices!.data, rowPtr?.data, fail);
}

registerOp({
  name: 'sparse_matmul',
  doc:
    'y[..., N] = a[..., K] · W with W [K, N] compressed over its output columns (Wᵀ rows): format csr (values [nnz], ' +
    'indices i32 / u16 k [nnz], row_ptr i32 [N + 1]), bsr (block [h, w] of Wᵀ: values [nnzb, h, w], indices i32 block ' +
    'columns, row_ptr [N / h + 1]) or nm 2:4 along K (values [N, K / 2], indices u8 4-bit fields, two 2-bit ' +
    'positions per group of 4). Values f32 / f16; a is float; y has a\u2019s dtype.',
  inputs: [{ name: 'a' }, { name: 'values' }, { name: 'indices' }, { name: 'row_ptr', optional: true }],
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
    const w = weightOf(inputs, 1, g, ctx.fail);
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
  doc: 'The dense weight W [K, N] (values dtype) of a sparse weight in the layouts of sparse_matmul.',
  inputs: [{ name: 'values' }, { name: 'indices' }, { name: 'row_ptr', optional: true }],
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
    return [scratchTensor(ctx.outputDtypes[0]!, [g.K, g.N], weightOf(inputs, 0, g, ctx.fail))];
  },
});
