/**
 * Unstructured and N:M pruning (passes/sparsity): magnitude per output / per layer / global, Wanda, SparseGPT on
 * hand-worked weights; the 2:4 property (every 4 consecutive k of a column hold at most 2 nonzeros); SparseGPT with
 * the identity Hessian is magnitude pruning, with a real Hessian it reconstructs better; graph-level passes leave a
 * verifying graph with zeros in the dense weights and a report.
 */
import { describe, expect, it } from 'vitest';
import '../../ir/index.js';
import { GraphBuilder } from '../../ir/builder.js';
import { KilnError } from '../../ir/errors.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor } from '../../ir/tensor.js';
import { verify } from '../../ir/verify.js';
import {
  magnitudePrune,
  outputRelErr,
  pruneWeights,
  sparseGptPrune,
  wandaPrune,
  type SparsityPattern,
} from '../../passes/sparsity/index.js';
import { statsOf } from '../../passes/quant/calibrate.js';

const HALF: SparsityPattern = { kind: 'unstructured', sparsity: 0.5 };
const TWO_FOUR: SparsityPattern = { kind: 'nm', n: 2, m: 4 };

// W [K = 4, N = 4], y = x·W: column n holds output n's weights over k
const W4 = Float64Array.of(1, -5, 2, 0.5, -3, 4, -1, 6, 2, 1, 7, -2, -4, 0.1, 3, 1);

/** Deterministic uniform numbers in [-1, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
}

/** ≤ n nonzeros in every m consecutive k of every column of a [K, N] weight. */
function nmHolds(W: ArrayLike<number>, K: number, N: number, n: number, m: number): boolean {
  for (let c = 0; c < N; c++)
    for (let k0 = 0; k0 < K; k0 += m) {
      let nz = 0;
      for (let k = k0; k < k0 + m; k++) if (W[k * N + c] !== 0) nz++;
      if (nz > n) return false;
    }
  return true;
}

describe('magnitude pruning', () => {
  it('50% per output column: the two smallest |w| of each column go', () => {
    // columns: [1 -3 2 -4] → keep -3, -4; [-5 4 1 .1] → keep -5, 4; [2 -1 7 3] → keep 7, 3; [.5 6 -2 1] → keep 6, -2
    expect([...magnitudePrune(W4, 4, 4, HALF)]).toEqual([0, -5, 0, 0, -3, 4, 0, 6, 0, 0, 7, -2, -4, 0, 3, 0]);
  });

  it('50% per layer: the 8 smallest |w| of the weight, ties by the lower index', () => {
    // |w| ascending: .1 .5 1 1 1 1 then 2 (index 2), 2 (index 8) pruned; -2 (index 11) kept
    expect([...magnitudePrune(W4, 4, 4, HALF, 'layer')]).toEqual(
      [0, -5, 0, 0, -3, 4, 0, 6, 0, 0, 7, -2, -4, 0, 3, 0].map((x, i) => (i === 11 ? -2 : x)),
    );
    const r = magnitudePrune(W4, 4, 4, HALF, 'layer');
    expect([...r].filter((x) => x === 0).length).toBe(8);
  });

  it('2:4 keeps the 2 largest of every 4 consecutive k; 50% per output may keep more in one group', () => {
    const col = Float64Array.of(1, -2, 3, 0.5, -0.1, 4, -3, 2); // K = 8, N = 1
    expect([...magnitudePrune(col, 8, 1, TWO_FOUR)]).toEqual([0, -2, 3, 0, 0, 4, -3, 0]);
    expect([...magnitudePrune(col, 8, 1, HALF)]).toEqual([0, 0, 3, 0, 0, 4, -3, 2]);
  });

  it('2:4 property on a random weight (every group of 4 along K has at most 2 nonzeros, exactly half remain)', () => {
    const r = rng(7);
    const K = 32;
    const N = 12;
    const W = Float64Array.from({ length: K * N }, r);
    const P = magnitudePrune(W, K, N, TWO_FOUR);
    expect(nmHolds(P, K, N, 2, 4)).toBe(true);
    expect(P.filter((x) => x !== 0).length).toBe((K * N) / 2);
  });

  it('bad patterns are typed errors', () => {
    expect(() => magnitudePrune(W4, 4, 4, { kind: 'unstructured', sparsity: 1.5 })).toThrow(KilnError);
    expect(() => magnitudePrune(W4, 4, 4, { kind: 'nm', n: 4, m: 4 })).toThrow(/0 <= N < M/);
    expect(() => magnitudePrune(W4, 4, 4, { kind: 'nm', n: 1, m: 3 })).toThrow(/multiple of M/);
  });
});

describe('Wanda', () => {
  it('|w| · ‖x_k‖ decides, not |w| alone', () => {
    // one calibration row x = [10, 1]: ‖X_0‖ = 10, ‖X_1‖ = 1; W = [1, -3]ᵀ → scores 10, 3: k = 1 goes
    const s = statsOf('x', [10, 1], 2);
    expect([...wandaPrune(Float64Array.of(1, -3), 2, 1, s, HALF)]).toEqual([1, 0]);
    expect([...magnitudePrune(Float64Array.of(1, -3), 2, 1, HALF)]).toEqual([0, -3]);
  });
});

describe('SparseGPT', () => {
  it('hand-worked OBS update on two channels: the kept weight absorbs the pruned one', () => {
    // H = [[2, 1], [1, 2]], w = [1, 1]: H⁻¹ = [[2, -1], [-1, 2]] / 3, its upper Cholesky factor U: U00² = 2/3,
    // U01 = -1/(3·U00), U11² = 1/2. Saliency w²/U_kk²: 1.5 (k = 0) < 2 (k = 1) → prune k = 0;
    // e = 1 / U00, w1 -= e · U01 = 1 + 1/(3 · 2/3) = 1.5 (the OBS optimum: δ1 = −H10 δ0 / H11 = 0.5)
    const H = Float64Array.of(2, 1, 1, 2);
    const r = sparseGptPrune([1, 1], 2, 1, H, { pattern: HALF, damp: 0 });
    expect(r[0]).toBe(0);
    expect(r[1]).toBeCloseTo(1.5, 12);
  });

  it('with the identity Hessian it is magnitude pruning (50% per output and 2:4)', () => {
    const r = rng(3);
    const K = 16;
    const N = 6;
    const W = Float64Array.from({ length: K * N }, r);
    const I = new Float64Array(K * K);
    for (let k = 0; k < K; k++) I[k * K + k] = 1;
    for (const pattern of [HALF, TWO_FOUR, { kind: 'unstructured', sparsity: 0.75 } as SparsityPattern])
      expect([...sparseGptPrune(W, K, N, I, { pattern })]).toEqual([...magnitudePrune(W, K, N, pattern)]);
  });

  it('with a real Hessian its output error is below Wanda’s and magnitude’s, and it keeps the pattern', () => {
    const r = rng(11);
    const K = 32;
    const N = 16;
    const rows = 256;
    // correlated activations with uneven channel scales
    const mix = Float64Array.from({ length: K * K }, r);
    const scale = Float64Array.from({ length: K }, (_, k) => 0.2 + (k % 5));
    const X = new Float64Array(rows * K);
    for (let t = 0; t < rows; t++) {
      const z = Float64Array.from({ length: K }, r);
      for (let i = 0; i < K; i++) {
        let s = 0;
        for (let j = 0; j < K; j++) s += z[j]! * mix[j * K + i]!;
        X[t * K + i] = (s + z[i]!) * scale[i]!;
      }
    }
    const st = statsOf('x', X, K);
    const W = Float64Array.from({ length: K * N }, r);
    const H = Float64Array.from(st.xtx, (x) => (2 * x) / rows);
    for (const pattern of [HALF, TWO_FOUR]) {
      const sg = sparseGptPrune(W, K, N, H, { pattern });
      const eS = outputRelErr(W, sg, K, N, st);
      const eW = outputRelErr(W, wandaPrune(W, K, N, st, pattern), K, N, st);
      const eM = outputRelErr(W, magnitudePrune(W, K, N, pattern), K, N, st);
      expect(eS).toBeLessThan(eW);
      expect(eW).toBeLessThan(eM);
      if (pattern.kind === 'nm') expect(nmHolds(sg, K, N, 2, 4)).toBe(true);
      else
        for (let n = 0; n < N; n++)
          expect(Array.from({ length: K }, (_, k) => sg[k * N + n]).filter((x) => x === 0).length).toBe(K / 2);
    }
  });
});

describe('graph passes', () => {
  /** x [rows, 8] → matmul W1 [8, 8] → relu → matmul W2 [8, 4]. */
  function mlp(seed: number) {
    const r = rng(seed);
    const b = new GraphBuilder('mlp');
    const x = b.input('x', 'f32', ['rows', 8]);
    const w1 = b.weight('w1', makeTensor('f32', [8, 8], Float32Array.from({ length: 64 }, r)));
    const w2 = b.weight('w2', makeTensor('f32', [8, 4], Float32Array.from({ length: 32 }, r)));
    b.output(b.matmul(b.op('relu', [b.matmul(x, w1)]), w2), 'y');
    return b.build();
  }

  it('each method zeroes dense weights in place, verifies, and reports sparsity / bytes / output error', () => {
    const r = rng(5);
    const x = makeTensor('f32', [16, 8], Float32Array.from({ length: 128 }, r));
    for (const method of ['magnitude', 'wanda', 'sparsegpt'] as const) {
      const g = mlp(1);
      const stats = new Map([
        ['x', statsOf('x', x.data as Float32Array, 8)],
        [g.nodes[1]!.outputs[0]!.name, statsOf('h', interpretHidden(g, x), 8)],
      ]);
      const rep = pruneWeights(g, { method, pattern: TWO_FOUR }, stats);
      verify(g);
      expect(rep.layers.map((l) => [l.weight, l.K, l.N, l.nonzeros, l.sparsity, l.bytes])).toEqual([
        ['w1', 8, 8, 32, 0.5, 256],
        ['w2', 8, 4, 16, 0.5, 128],
      ]);
      for (const l of rep.layers) expect(l.outputRelErr).toBeGreaterThan(0);
      const w1 = g.constants.find((c) => c.name === 'w1')!;
      expect(w1.type.shape).toEqual([8, 8]);
      expect(nmHolds(w1.data!.data as Float32Array, 8, 8, 2, 4)).toBe(true);
    }
  });

  it('global magnitude pools the weights: 50% overall, uneven per layer', () => {
    const g = mlp(2);
    // scale w2 up so the global threshold prunes w1 more
    const w2 = g.constants.find((c) => c.name === 'w2')!;
    w2.data = makeTensor(
      'f32',
      [8, 4],
      Float32Array.from(w2.data!.data as Float32Array, (v) => v * 4),
    );
    const rep = pruneWeights(g, { method: 'magnitude', pattern: HALF, scope: 'global' });
    const zeros = rep.layers.reduce((s, l) => s + l.K * l.N - l.nonzeros, 0);
    expect(zeros).toBe(48);
    expect(rep.layers[0]!.sparsity).toBeGreaterThan(rep.layers[1]!.sparsity);
  });

  it('calibration statistics from the interpreter feed Wanda; missing statistics are a typed error', () => {
    const g = mlp(3);
    expect(() => pruneWeights(g, { method: 'wanda', pattern: HALF })).toThrow(/calibration statistics/);
    expect(() => pruneWeights(g, { method: 'sparsegpt', pattern: HALF }, new Map())).toThrow(/matmul/);
    expect(() => pruneWeights(g, { method: 'wanda', pattern: HALF, scope: 'global' }, new Map())).toThrow(/magnitude/);
  });
});

/** The hidden activation relu(x·W1) of `mlp`, computed by the interpreter (rows × 8). */
function interpretHidden(g: ReturnType<GraphBuilder['build']>, x: ReturnType<typeof makeTensor>): Float64Array {
  let h: Float64Array | undefined;
  const relu = g.nodes[1]!;
  interpret(
    g,
    { x },
    { onNode: (n, outs) => void (n.name === relu.name && (h = Float64Array.from(outs[0]!.data as Float32Array))) },
  );
  return h!;
}
