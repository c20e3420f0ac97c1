/**
 * GPTQ (passes/quant/gptq.ts): on a small matmul with correlated activations its output error ‖XW − XŴ‖ is below
 * RTN's; on tiny cases the dequantized weight equals a plain float64 re-implementation here of the column loop in its
 * original (OBQ) form — error feedback through H⁻¹ with a rank-1 downdate after every column, no Cholesky, no lazy
 * blocks; act-order's g_idx names groups of `group` channels; the rewritten graph computes X·Ŵᵀ under the reference.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import '../../ir/index.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor } from '../../ir/tensor.js';
import { gptqQuantize, quantizeGptq, quantizeRows, statsOf } from '../../passes/quant/index.js';

/** Deterministic pseudo-random numbers in [-0.5, 0.5). */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

/** rows × K activations with correlated channels (x = z · A, A dense) and a few large channels. */
function activations(rows: number, K: number, seed: number): Float64Array {
  const r = rng(seed);
  const A = Float64Array.from({ length: K * K }, () => r());
  const x = new Float64Array(rows * K);
  for (let i = 0; i < rows; i++) {
    const z = Array.from({ length: K }, () => r());
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let j = 0; j < K; j++) s += z[j]! * A[j * K + k]!;
      x[i * K + k] = s * (k % 7 === 0 ? 4 : 1);
    }
  }
  return x;
}

const weights = (N: number, K: number, seed: number) => {
  const r = rng(seed);
  return Float64Array.from({ length: N * K }, () => r());
};

/** ‖X Wᵀ − X Ŵᵀ‖² for rows W [N, K]. */
function outputError(x: Float64Array, W: Float64Array, Wq: ArrayLike<number>, N: number, K: number): number {
  let e = 0;
  for (let r = 0; r < x.length / K; r++)
    for (let n = 0; n < N; n++) {
      let d = 0;
      for (let k = 0; k < K; k++) d += x[r * K + k]! * (W[n * K + k]! - Wq[n * K + k]!);
      e += d * d;
    }
  return e;
}

/** GPTQ in its original form: per column, quantize, feed the error back through H⁻¹, downdate H⁻¹. */
function plainGptq(W: Float64Array, N: number, K: number, xtx: Float64Array, bits: number, group: number) {
  const H = Float64Array.from(xtx, (v) => 2 * v);
  let mean = 0;
  for (let k = 0; k < K; k++) mean += H[k * K + k]! / K;
  for (let k = 0; k < K; k++) H[k * K + k] += 0.01 * mean;
  // Gauss-Jordan inverse
  const A = Float64Array.from(H);
  const inv = new Float64Array(K * K);
  for (let i = 0; i < K; i++) inv[i * K + i] = 1;
  for (let c = 0; c < K; c++) {
    const p = A[c * K + c]!;
    for (let j = 0; j < K; j++) {
      A[c * K + j] /= p;
      inv[c * K + j] /= p;
    }
    for (let r = 0; r < K; r++) {
      if (r === c) continue;
      const f = A[r * K + c]!;
      for (let j = 0; j < K; j++) {
        A[r * K + j] -= f * A[c * K + j]!;
        inv[r * K + j] -= f * inv[c * K + j]!;
      }
    }
  }
  const w = Float64Array.from(W);
  const out = new Float64Array(N * K);
  const half = 2 ** (bits - 1);
  let scales = new Array<number>(N).fill(1);
  for (let i = 0; i < K; i++) {
    if (i % group === 0) {
      scales = Array.from({ length: N }, (_, n) => {
        let m = 0;
        for (let k = i; k < Math.min(K, i + group); k++) m = Math.max(m, Math.abs(w[n * K + k]!));
        return m / (half - 1) || 1;
      });
    }
    const d = inv[i * K + i]!;
    for (let n = 0; n < N; n++) {
      const s = scales[n]!;
      const q = Math.min(half - 1, Math.max(-half, Math.round(w[n * K + i]! / s)));
      out[n * K + i] = q * s;
      const e = (w[n * K + i]! - q * s) / d;
      for (let j = i + 1; j < K; j++) w[n * K + j] -= e * inv[i * K + j]!;
    }
    // H⁻¹ of the remaining columns: downdate by column i
    const col = Array.from({ length: K }, (_, r) => inv[r * K + i]!);
    for (let r = 0; r < K; r++) for (let j = 0; j < K; j++) inv[r * K + j] -= (col[r]! * col[j]!) / d;
  }
  return out;
}

describe('gptqQuantize', () => {
  it('has lower output error than RTN on correlated activations (4 and 8 bits, symmetric and asymmetric)', () => {
    const K = 64;
    const N = 24;
    const x = activations(512, K, 1);
    const W = weights(N, K, 2);
    const st = statsOf('x', x, K);
    for (const [bits, symmetric] of [
      [4, true],
      [4, false],
      [8, true],
    ] as const) {
      const rtn = quantizeRows((n, k) => W[n * K + k]!, N, K, bits, 16, symmetric, 'f64', true).dequant;
      for (const actOrder of [false, true]) {
        const g = gptqQuantize(W, N, K, st.xtx, { bits, block: 16, symmetric, scaleDtype: 'f64', actOrder });
        const eg = outputError(x, W, g.dequant, N, K);
        const er = outputError(x, W, rtn, N, K);
        expect(eg).toBeLessThan(0.8 * er);
      }
    }
  });

  it('equals the plain column-by-column GPTQ (H⁻¹ downdates, no Cholesky, no lazy blocks) on tiny cases', () => {
    for (const [K, N, group, blockSize] of [
      [16, 3, 16, 16],
      [48, 4, 16, 16], // three lazy blocks
      [40, 2, 16, 32], // ragged last group, blocks of 32
    ] as const) {
      const x = activations(96, K, K);
      const W = weights(N, K, K + 1);
      const st = statsOf('x', x, K);
      const g = gptqQuantize(W, N, K, st.xtx, { bits: 4, block: group, symmetric: true, scaleDtype: 'f64', blockSize });
      const want = plainGptq(W, N, K, st.xtx, 4, group);
      for (let i = 0; i < N * K; i++) expect(g.dequant[i]).toBeCloseTo(want[i]!, 9);
      // every dequantized value is (q − 8) · scale of its group
      for (let n = 0; n < N; n++)
        for (let k = 0; k < K; k++) {
          const j = Math.floor(k / group);
          const q = g.q[n * g.nBlocks * group + k]!;
          expect(g.dequant[n * K + k]).toBe((q - 8) * g.scales[n * g.nBlocks + j]!);
        }
    }
  });

  it('act-order: g_idx groups of `group` channels, by decreasing Hessian diagonal', () => {
    const K = 40;
    const x = activations(64, K, 5);
    const st = statsOf('x', x, K);
    const g = gptqQuantize(weights(3, K, 6), 3, K, st.xtx, {
      bits: 4,
      block: 16,
      symmetric: false,
      scaleDtype: 'f64',
      actOrder: true,
    });
    const gi = Array.from(g.gIdx!);
    expect([0, 1, 2].map((j) => gi.filter((v) => v === j).length)).toEqual([16, 16, 8]);
    const diag = (k: number) => st.xtx[k * K + k]!;
    const minOf = (j: number) => Math.min(...gi.flatMap((v, k) => (v === j ? [diag(k)] : [])));
    const maxOf = (j: number) => Math.max(...gi.flatMap((v, k) => (v === j ? [diag(k)] : [])));
    expect(minOf(0)).toBeGreaterThanOrEqual(maxOf(1));
    expect(minOf(1)).toBeGreaterThanOrEqual(maxOf(2));
  });
});

describe('quantizeGptq', () => {
  it('rewrites a matmul to matmul_nbits (with g_idx under act-order) computing X·Ŵᵀ under the reference', () => {
    const K = 40;
    const N = 8;
    const x = activations(6, K, 7);
    const W = weights(N, K, 8);
    for (const o of [
      { symmetric: true, actOrder: false },
      { symmetric: false, actOrder: true },
    ]) {
      const b = new GraphBuilder('g');
      const a = b.input('x', 'f32', [6, K]);
      const wk = Float32Array.from({ length: K * N }, (_, i) => W[(i % N) * K + Math.floor(i / N)]!);
      b.output(b.matmul(a, b.weight('w', makeTensor('f32', [K, N], wk))), 'y');
      const graph = b.build();
      const feeds = { x: makeTensor('f32', [6, K], Float32Array.from(x)) };
      const st = statsOf('x', Float32Array.from(x), K);
      const rep = quantizeGptq(graph, new Map([['x', st]]), { bits: 4, group: 16, ...o });
      expect(graph.nodes.map((n) => n.op)).toEqual(['matmul_nbits']);
      expect(graph.nodes[0]!.inputs.length).toBe(o.actOrder ? 5 : 3);
      expect(rep.layers.map((l) => [l.weight, l.K, l.N, l.block])).toEqual([['w', K, N, 16]]);
      // Ŵ from the same GPTQ on the f32-rounded weight, then X·Ŵᵀ in float64
      const Wf = Float64Array.from({ length: N * K }, (_, i) => wk[(i % K) * N + Math.floor(i / K)]!);
      const g = gptqQuantize(Wf, N, K, st.xtx, { bits: 4, block: 16, scaleDtype: 'f32', ...o });
      const y = interpret(graph, feeds)['y']!.data;
      for (let r = 0; r < 6; r++)
        for (let n = 0; n < N; n++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += Math.fround(x[r * K + k]!) * g.dequant[n * K + k]!;
          expect(y[r * N + n]).toBeCloseTo(s, 4);
        }
    }
  });

  it('sequential: recalibrates before each activation on the graph quantized so far', () => {
    const b = new GraphBuilder('seq');
    const r = rng(11);
    const a = b.input('x', 'f32', [8, 32]);
    const w = (name: string) =>
      b.weight(
        name,
        makeTensor(
          'f32',
          [32, 32],
          Array.from({ length: 1024 }, () => r()),
        ),
      );
    const h = b.matmul(a, w('w1'));
    b.output(b.matmul(h, w('w2')), 'y');
    const graph = b.build();
    const feeds = {
      x: makeTensor(
        'f32',
        [8, 32],
        Array.from({ length: 256 }, () => r()),
      ),
    };
    const seen: string[][] = [];
    const recalibrate = (g: typeof graph) => {
      seen.push(g.nodes.map((n) => n.op));
      const outs = new Map<string, Float32Array>();
      interpret(g, feeds, { onNode: (n, o) => void outs.set(n.name, o[0]!.data as Float32Array) });
      return new Map([
        ['x', statsOf('x', feeds.x.data as Float32Array, 32)],
        [h.name, statsOf(h.name, outs.get(g.nodes[0]!.name)!, 32)],
      ]);
    };
    quantizeGptq(graph, new Map(), { bits: 4, group: 16, recalibrate });
    expect(seen).toEqual([
      ['matmul', 'matmul'],
      ['matmul_nbits', 'matmul'],
    ]);
    expect(graph.nodes.map((n) => n.op)).toEqual(['matmul_nbits', 'matmul_nbits']);
  });
});
