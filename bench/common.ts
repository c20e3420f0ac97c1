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

/**
 * The protocol of every headline number: `warmups` untimed calls of each engine, then `reps` timed calls taken in
 * turn (A B C A B C …) so that load from other processes on this shared VM falls on every engine alike. Returns each
 * engine's median wall time (ms) and, when `counter` is given, how much it advanced per call (e.g. dispatches).
 */
export async function interleaved(
  fns: readonly (() => Promise<unknown>)[],
  counter: () => number = () => 0,
  warmups = 3,
  reps = 10,
): Promise<{ ms: number[]; perCall: number[] }> {
  const counts = fns.map(() => 0);
  const call = async (i: number) => {
    const c0 = counter();
    await fns[i]!();
    counts[i]! += counter() - c0;
  };
  for (let i = 0; i < fns.length; i++) for (let w = 0; w < warmups; w++) await call(i);
  const ts = fns.map(() => [] as number[]);
  for (let r = 0; r < reps; r++) {
    for (let i = 0; i < fns.length; i++) {
      const t = performance.now();
      await call(i);
      ts[i]!.push(performance.now() - t);
    }
  }
  return { ms: ts.map(median), perCall: counts.map((c) => c / (warmups + reps)) };
}

/** Rounds of one measurement: the middle value and the spread, e.g. `186 (185–187)`; one value when all agree. */
export function spread(xs: readonly number[], digits = 1): string {
  if (xs.length === 0) return '-';
  const f = (x: number) => x.toFixed(digits);
  const s = [...xs].sort((a, b) => a - b);
  const mid = (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2; // mean of the middle two for an even count
  const [lo, hi] = [f(s[0]!), f(s[s.length - 1]!)];
  return lo === hi ? lo : `${f(mid)} (${lo}–${hi})`;
}

/** Ratio per round (kiln / peer, paired by round) as a spread: below 1 means kiln is faster. */
export function ratios(kiln: readonly number[], peer: readonly number[]): string {
  const r = kiln.map((k, i) => k / peer[i]!).filter((x) => Number.isFinite(x));
  return r.length ? spread(r, 2).replace(/^([\d.]+)/, '$1×') : '-';
}

/** Prints rows as left-aligned columns. */
export function printTable(rows: readonly (readonly string[])[]): void {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  for (const r of rows)
    console.log(
      '  ' +
        r
          .map((cell, c) => cell.padEnd(widths[c]!))
          .join('  ')
          .trimEnd(),
    );
}
