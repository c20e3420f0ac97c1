/** What the benchmarks share: the plain-JS baselines, the float64 check, deterministic inputs, medians. */

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Deterministic values in [-1, 1) (an LCG: the same inputs every run). */
export function randomMatrix(n: number, seed: number): Float32Array<ArrayBuffer> {
  let s = seed >>> 0;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 31 - 1;
  }
  return a;
}

/** [M,K] × [K,N] row-major in float64: the accuracy reference. */
export function matmulF64(a: Float32Array, b: Float32Array, M: number, N: number, K: number): Float64Array {
  const c = new Float64Array(M * N);
  matmulInto(a, b, c, M, N, K);
  return c;
}

/** The plain-JS baseline: i-k-j loop over Float32Array (the cache-friendly order). */
export function matmulJsF32(a: Float32Array, b: Float32Array, c: Float32Array, M: number, N: number, K: number): void {
  c.fill(0);
  matmulInto(a, b, c, M, N, K);
}

function matmulInto(
  a: Float32Array,
  b: Float32Array,
  c: Float32Array | Float64Array,
  M: number,
  N: number,
  K: number,
): void {
  for (let i = 0; i < M; i++) {
    for (let k = 0; k < K; k++) {
      const aik = a[i * K + k]!;
      const row = i * N;
      const brow = k * N;
      for (let j = 0; j < N; j++) c[row + j]! += aik * b[brow + j]!;
    }
  }
}

/** ‖out − ref‖ / ‖ref‖ (Infinity when the output has NaN/inf). */
export function relL2(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = out[i]! - ref[i]!;
    num += d * d;
    den += ref[i]! * ref[i]!;
  }
  return Number.isFinite(num) ? Math.sqrt(num / den) : Infinity;
}
