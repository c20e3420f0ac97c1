/**
 * AWQ (passes/quant/awq.ts): folding the per-channel scales into the RMS norm weight (γ / s) and the weights
 * (W · diag(s)) leaves the float graph's function unchanged up to f32 rounding; on activations with outlier channels
 * the AWQ-quantized graph's output error is at most RTN's (and the search picks α > 0); an activation with no
 * foldable producer is left unscaled (plain RTN), with the reason reported.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import '../../ir/index.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { applyAwqScales, quantizeAwq, quantizeRtn, statsOf } from '../../passes/quant/index.js';

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

const K = 64;
const ROWS = 128;

/** x → rms_norm(γ) → h; q = h·w1, k = h·w2 (two readers of the norm), y = q·w3 (no foldable producer). */
function model() {
  const r = rng(3);
  const b = new GraphBuilder('awq');
  const x = b.input('x', 'f32', [ROWS, K]);
  const gamma = b.weight(
    'gamma',
    makeTensor(
      'f32',
      [K],
      Array.from({ length: K }, () => 1 + r()),
    ),
  );
  const h = b.op('rms_norm', [x, gamma], { axis: -1, epsilon: 1e-5 });
  const w = (name: string, k: number, n: number) =>
    b.weight(
      name,
      makeTensor(
        'f32',
        [k, n],
        Array.from({ length: k * n }, () => r() * 0.2),
      ),
    );
  const q = b.matmul(h, w('w1', K, 32));
  b.output(q, 'q');
  b.output(b.matmul(h, w('w2', K, 16)), 'k');
  b.output(b.matmul(q, w('w3', 32, 8)), 'y');
  // activations with a few outlier channels (×20), like LLM hidden states
  const xs = Float32Array.from({ length: ROWS * K }, () => r());
  const data = Float32Array.from({ length: ROWS * K }, (_, i) => ((i % K) % 9 === 0 ? 20 : 1) * xs[i]!);
  return { graph: b.build(), feeds: { x: makeTensor('f32', [ROWS, K], data) }, h, q };
}

function run(m: ReturnType<typeof model>) {
  return interpret(m.graph, m.feeds);
}

/** Statistics of the norm output and of q, captured from the float graph. */
function stats(m: ReturnType<typeof model>) {
  const got = new Map<string, Tensor>();
  interpret(m.graph, m.feeds, {
    onNode(n, outs) {
      got.set(n.name, outs[0]!);
    },
  });
  const st = new Map();
  for (const v of [m.h, m.q]) {
    const t = got.get(v.producer!.name)!;
    const k = t.shape[1]!;
    st.set(v.name, statsOf(v.name, t.data as Float32Array, k));
  }
  return st;
}

const sq = (a: Tensor, b: Tensor) =>
  Array.from(a.data as Float32Array).reduce((s, v, i) => s + (v - b.data[i]!) ** 2, 0);

describe('AWQ', () => {
  it('folding the scales into the norm weight leaves the float function unchanged (to f32 rounding)', () => {
    const m = model();
    const before = run(m);
    const rep = applyAwqScales(m.graph, stats(m), { bits: 4, group: 16 });
    expect(rep.scales.map((s) => [s.foldedInto, s.matmuls.length])).toEqual([[m.h.producer!.name, 2]]);
    expect(rep.scales[0]!.alpha).toBeGreaterThan(0);
    const after = run(m);
    for (const o of ['q', 'k', 'y']) {
      const a = before[o]!.data as Float32Array;
      const b = after[o]!.data as Float32Array;
      const scale = Math.max(...Array.from(a, Math.abs));
      for (let i = 0; i < a.length; i++) expect(Math.abs(b[i]! - a[i]!)).toBeLessThan(1e-5 * scale);
    }
  });

  it('output error at most RTN on activations with outlier channels; unfoldable activations get plain RTN', () => {
    for (const o of [
      { bits: 4 as const, group: 16, symmetric: true },
      { bits: 4 as const, group: 32, symmetric: false },
    ]) {
      const ref = run(model());
      const a = model();
      const rep = quantizeAwq(a.graph, stats(a), o);
      const r = model();
      quantizeRtn(r.graph, o);
      const ya = run(a);
      const yr = run(r);
      const ea = sq(ya['q']!, ref['q']!) + sq(ya['k']!, ref['k']!);
      const er = sq(yr['q']!, ref['q']!) + sq(yr['k']!, ref['k']!);
      expect(ea).toBeLessThan(er);
      expect(rep.scales[0]!.error).toBeLessThan(rep.scales[0]!.rtnError);
      expect(rep.unscaled.map((u) => [u.activation, u.reason])).toEqual([
        [a.q.name, 'produced by matmul, not an RMS norm'],
      ]);
      expect(a.graph.nodes.filter((n) => n.op === 'matmul_nbits').length).toBe(3);
    }
  });
});

describe('AWQ fold into an up projection', () => {
  it('w2 after silu(x·W1) ⊙ (x·W3): diag(s)⁻¹ goes into W3 columns, the float function unchanged', () => {
    const r = rng(9);
    const b = new GraphBuilder('ffn');
    const x = b.input('x', 'f32', [ROWS, 16]);
    const w = (name: string, k: number, n: number, amp = 0.3) =>
      b.weight(
        name,
        makeTensor(
          'f32',
          [k, n],
          Array.from({ length: k * n }, (_, i) => r() * amp * (i % n === 3 ? 10 : 1)),
        ),
      );
    const g = b.matmul(x, w('w1', 16, 48));
    const u = b.matmul(x, w('w3', 16, 48));
    const h = b.op('mul', [b.op('sigmoid', [g]), u]);
    b.output(b.matmul(h, w('w2', 48, 16)), 'y');
    const graph = b.build();
    const feeds = {
      x: makeTensor(
        'f32',
        [ROWS, 16],
        Float32Array.from({ length: ROWS * 16 }, () => r() * 2),
      ),
    };
    const before = interpret(graph, feeds)['y']!.data as Float32Array;
    const hs = new Map<string, Tensor>();
    interpret(graph, feeds, { onNode: (n, o) => void hs.set(n.name, o[0]!) });
    const st = new Map([[h.name, statsOf(h.name, hs.get(h.producer!.name)!.data as Float32Array, 48)]]);
    const rep = applyAwqScales(graph, st, { bits: 4, group: 16 });
    expect(rep.scales.map((s) => [s.foldedInto, s.matmuls.length])).toEqual([[u.producer!.name, 1]]);
    expect(rep.scales[0]!.alpha).toBeGreaterThan(0);
    const after = interpret(graph, feeds)['y']!.data as Float32Array;
    const m = Math.max(...Array.from(before, Math.abs));
    for (let i = 0; i < before.length; i++) expect(Math.abs(after[i]! - before[i]!)).toBeLessThan(1e-5 * m);
  });
});
