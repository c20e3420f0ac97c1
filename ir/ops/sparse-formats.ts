/**
 * Sparse weight formats (issue 14): geometry, host packers / unpackers, and validation of the compressed arrays.
 *
 * kiln's weights are W [K, N] (in, out) and y = a · W. Every format compresses the *transposed* weight Wᵀ [N, K]:
 * one compressed row per output column n, so a decode thread (SpMV) owns one output and walks one contiguous run of
 * values and indices, and an SpMM thread reuses each (k, value) it loads for several rows of a.
 *
 * - csr: `values` [nnz], `indices` i32 or u16 [nnz] (the k of each value), `row_ptr` i32 [N + 1] (row n's entries are
 *   row_ptr[n] .. row_ptr[n + 1] − 1; row_ptr[0] = 0, non-decreasing, row_ptr[N] = nnz).
 * - bsr(h×w): Wᵀ cut into h × w blocks (h along n, w along k; N % h = 0, K % w = 0): `values` [nnzb, h, w] (block b,
 *   element (i, j) is W[kb·w + j, rb·h + i]), `indices` i32 or u16 [nnzb] (the block column kb of each block), `row_ptr` i32
 *   [N / h + 1] over block rows rb.
 * - nm(2:4): along k, every group of 4 consecutive k of output n keeps 2 values (K % 4 = 0): `values` [N, K / 2]
 *   (group g's two values at 2g, 2g + 1), `indices` u8 [ceil(N · K / 8)]: one 4-bit field per group (field
 *   n · K / 4 + g, low nibble first), bits 0–1 the first kept position in the group, bits 2–3 the second, strictly
 *   increasing.
 */
import { KilnError } from '../errors.js';

export type SparseFormat = 'csr' | 'bsr' | 'nm';

/**
 * The narrowest dtype of csr / bsr indices for a weight: u16 while every k (csr) or block column (bsr) fits 16 bits
 * (2 bytes less per stored value than i32 — a quarter of csr's bytes), else i32. Both are accepted by the ops.
 */
export function sparseIndexDtype(g: {
  format: SparseFormat;
  K: number;
  block: readonly [number, number];
}): 'u16' | 'i32' {
  return g.K / g.block[1] <= 65536 ? 'u16' : 'i32';
}
export const SPARSE_FORMATS: readonly SparseFormat[] = ['csr', 'bsr', 'nm'];

type Fail = (message: string) => never;

/** Validated geometry of one sparse weight. */
export interface SparseGeometry {
  readonly format: SparseFormat;
  readonly K: number;
  readonly N: number;
  /** bsr block [h (along n), w (along k)]; [1, 1] for csr, [1, 4] for nm. */
  readonly block: readonly [number, number];
  /** Compressed rows: N (csr), N / h (bsr), N (nm). */
  readonly rows: number;
}

export function sparseGeometry(
  format: string,
  K: number,
  N: number,
  block: readonly number[],
  nm: readonly [number, number],
  fail: Fail,
): SparseGeometry {
  if (!(SPARSE_FORMATS as readonly string[]).includes(format))
    fail(`format must be one of ${SPARSE_FORMATS.join(', ')}, got '${format}'`);
  if (!Number.isInteger(K) || K < 1) fail(`K must be a positive integer, got ${K}`);
  if (!Number.isInteger(N) || N < 1) fail(`N must be a positive integer, got ${N}`);
  if (format === 'csr') return { format, K, N, block: [1, 1], rows: N };
  if (format === 'nm') {
    if (nm[0] !== 2 || nm[1] !== 4) fail(`only 2:4 is supported for nm, got ${nm[0]}:${nm[1]}`);
    if (K % 4 !== 0) fail(`nm(2:4) needs K divisible by 4, got K = ${K}`);
    return { format, K, N, block: [1, 4], rows: N };
  }
  const [h, w] = block;
  if (block.length !== 2 || !Number.isInteger(h) || !Number.isInteger(w) || h! < 1 || w! < 1)
    fail(`bsr block must be two positive integers [h, w], got [${block.join(',')}]`);
  if (N % h! !== 0) fail(`bsr block height ${h} does not divide N = ${N}`);
  if (K % w! !== 0) fail(`bsr block width ${w} does not divide K = ${K}`);
  return { format: 'bsr', K, N, block: [h!, w!], rows: N / h! };
}

/** A sparse weight's arrays on the host (values in float64; rounding to the values dtype is the caller's). */
export interface PackedSparse {
  readonly geometry: SparseGeometry;
  readonly values: Float64Array;
  /** csr: k per value; bsr: block column per block; nm: packed 4-bit fields (u8 bytes). */
  readonly indices: Int32Array | Uint8Array;
  /** csr / bsr only. */
  readonly rowPtr?: Int32Array;
}

const hostFail = (message: string): never => {
  throw new KilnError('shape', message, { tensor: 'weight' });
};

function checkDense(w: ArrayLike<number>, K: number, N: number): void {
  if (w.length !== K * N) hostFail(`dense weight has ${w.length} elements, expected K · N = ${K * N}`);
}

/** CSR of Wᵀ from a dense W [K, N] (row-major): the non-zeros of each output column n, k ascending. */
export function packCsr(w: ArrayLike<number>, K: number, N: number): PackedSparse {
  checkDense(w, K, N);
  const g = sparseGeometry('csr', K, N, [1, 1], [2, 4], hostFail);
  const rowPtr = new Int32Array(N + 1);
  let nnz = 0;
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) if (w[k * N + n] !== 0) nnz++;
    rowPtr[n + 1] = nnz;
  }
  const values = new Float64Array(nnz);
  const indices = new Int32Array(nnz);
  let at = 0;
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const x = w[k * N + n]!;
      if (x !== 0) {
        values[at] = x;
        indices[at++] = k;
      }
    }
  }
  return { geometry: g, values, indices, rowPtr };
}

/** BSR (h × w blocks of Wᵀ) from a dense W [K, N]: every block holding a non-zero is kept whole. */
export function packBsr(w: ArrayLike<number>, K: number, N: number, block: readonly [number, number]): PackedSparse {
  checkDense(w, K, N);
  const g = sparseGeometry('bsr', K, N, block, [2, 4], hostFail);
  const [h, bw] = g.block;
  const rowPtr = new Int32Array(g.rows + 1);
  const cols: number[] = [];
  const vals: number[] = [];
  for (let rb = 0; rb < g.rows; rb++) {
    for (let kb = 0; kb < K / bw; kb++) {
      let any = false;
      for (let i = 0; i < h && !any; i++)
        for (let j = 0; j < bw && !any; j++) any = w[(kb * bw + j) * N + rb * h + i] !== 0;
      if (!any) continue;
      cols.push(kb);
      for (let i = 0; i < h; i++) for (let j = 0; j < bw; j++) vals.push(w[(kb * bw + j) * N + rb * h + i]!);
    }
    rowPtr[rb + 1] = cols.length;
  }
  return { geometry: g, values: Float64Array.from(vals), indices: Int32Array.from(cols), rowPtr };
}

/** Whether every group of 4 consecutive k of every output column of W [K, N] holds at most 2 non-zeros. */
export function isTwoFour(w: ArrayLike<number>, K: number, N: number): boolean {
  if (K % 4 !== 0) return false;
  for (let n = 0; n < N; n++) {
    for (let k0 = 0; k0 < K; k0 += 4) {
      let nz = 0;
      for (let j = 0; j < 4; j++) if (w[(k0 + j) * N + n] !== 0) nz++;
      if (nz > 2) return false;
    }
  }
  return true;
}

/**
 * 2:4 along K from a dense W [K, N] whose groups hold at most 2 non-zeros each (else a typed error naming the group):
 * the non-zeros' positions, completed with the group's first zero positions when a group has fewer than 2.
 */
export function packNm(w: ArrayLike<number>, K: number, N: number): PackedSparse {
  checkDense(w, K, N);
  const g = sparseGeometry('nm', K, N, [1, 4], [2, 4], hostFail);
  const G = K / 4;
  const values = new Float64Array((N * K) / 2);
  const indices = new Uint8Array(Math.ceil((N * K) / 8));
  for (let n = 0; n < N; n++) {
    for (let q = 0; q < G; q++) {
      const pos: number[] = [];
      for (let j = 0; j < 4; j++) if (w[(4 * q + j) * N + n] !== 0) pos.push(j);
      if (pos.length > 2) hostFail(`column ${n}, k ${4 * q}..${4 * q + 3} has ${pos.length} non-zeros: not 2:4 sparse`);
      for (let j = 0; pos.length < 2; j++) if (!pos.includes(j)) pos.push(j);
      pos.sort((x, y) => x - y);
      values[n * 2 * G + 2 * q] = w[(4 * q + pos[0]!) * N + n]!;
      values[n * 2 * G + 2 * q + 1] = w[(4 * q + pos[1]!) * N + n]!;
      const field = n * G + q;
      indices[field >> 1]! |= (pos[0]! | (pos[1]! << 2)) << ((field & 1) * 4);
    }
  }
  return { geometry: g, values, indices };
}

/**
 * Dense W [K, N] (row-major, float64) from a sparse weight's arrays — the reference semantics of every sparse op.
 * Every index and row pointer is checked: a bad one is a located failure (`fail`).
 */
export function unpackSparse(
  g: SparseGeometry,
  values: ArrayLike<number>,
  indices: ArrayLike<number>,
  rowPtr: ArrayLike<number> | undefined,
  fail: Fail,
): Float64Array {
  const { K, N } = g;
  const w = new Float64Array(K * N);
  if (g.format === 'nm') {
    const G = K / 4;
    if (values.length !== N * 2 * G)
      fail(`nm values have ${values.length} elements, expected N · K / 2 = ${N * 2 * G}`);
    if (indices.length !== Math.ceil((N * K) / 8))
      fail(`nm indices have ${indices.length} bytes, expected ceil(N · K / 8) = ${Math.ceil((N * K) / 8)}`);
    for (let n = 0; n < N; n++) {
      for (let q = 0; q < G; q++) {
        const field = n * G + q;
        const f = (indices[field >> 1]! >> ((field & 1) * 4)) & 15;
        const i0 = f & 3;
        const i1 = f >> 2;
        if (i0 >= i1)
          fail(`nm index field ${field} (column ${n}, group ${q}) holds positions ${i0}, ${i1}: not increasing`);
        w[(4 * q + i0) * N + n] = values[n * 2 * G + 2 * q]!;
        w[(4 * q + i1) * N + n] = values[n * 2 * G + 2 * q + 1]!;
      }
    }
    return w;
  }
  if (!rowPtr) return fail(`${g.format} needs row_ptr`);
  const [h, bw] = g.block;
  const per = h * bw;
  const nnz = indices.length;
  if (rowPtr.length !== g.rows + 1) fail(`row_ptr has ${rowPtr.length} entries, expected ${g.rows + 1}`);
  if (values.length !== nnz * per)
    fail(`values have ${values.length} elements, expected ${per === 1 ? 'nnz' : 'nnzb · h · w'} = ${nnz * per}`);
  if (rowPtr[0] !== 0) fail(`row_ptr[0] = ${rowPtr[0]}, expected 0`);
  if (rowPtr[g.rows] !== nnz) fail(`row_ptr[${g.rows}] = ${rowPtr[g.rows]}, expected the number of indices ${nnz}`);
  const kLen = K / bw;
  for (let r = 0; r < g.rows; r++) {
    const s = rowPtr[r]!;
    const e = rowPtr[r + 1]!;
    if (e < s) fail(`row_ptr decreases at row ${r}: ${s} then ${e}`);
    if (e > nnz) fail(`row_ptr[${r + 1}] = ${e} is past the ${nnz} indices`);
    for (let t = s; t < e; t++) {
      const kc = indices[t]!;
      if (!(Number.isInteger(kc) && kc >= 0 && kc < kLen))
        fail(`indices[${t}] = ${kc} (row ${r}) is outside [0, ${kLen - 1}]`);
      for (let i = 0; i < h; i++)
        for (let j = 0; j < bw; j++) w[(kc * bw + j) * N + r * h + i] += values[t * per + i * bw + j]!;
    }
  }
  return w;
}
