/**
 * W8A8 and SmoothQuant (passes/quant/smoothquant.ts): hand-worked factors and int8 columns; the W8A8 graph's
 * reference equals the W8A8 formula computed here independently; on activations with outlier channels (an RMS norm
 * weight with a few large channels, as in LLMs) SmoothQuant's output error is far below naive W8A8's; the W8A8 graph
 * runs on webgpu and cuda-emu with the reference's numbers.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import '../../ir/index.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { cloneGraph } from '../../passes/clone.js';
import { quantizeColumnsInt8, quantizeW8A8, smoothingFactors, statsOf } from '../../passes/quant/index.js';
import { compile } from '../../src/session.js';
import { deviceBackends } from '../helpers/device-backends.js';

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

const BACKENDS = await deviceBackends();
const K = 64;
const ROWS = 96;

/** x → rms_norm(γ with outlier channels) → h; q = h·w1, k = h·w2. */
function model(outliers = true) {
  const r = rng(11);
  const b = new GraphBuilder('w8a8');
  const x = b.input('x', 'f32', ['rows', K]);
  const g = Array.from({ length: K }, (_, j) => (outliers && j % 13 === 0 ? 40 : 1) * (1 + 0.2 * r()));
  const h = b.op('rms_norm', [x, b.weight('gamma', makeTensor('f32', [K], g))], { axis: -1, epsilon: 1e-5 });
  // the weights' rows for the outlier channels are small (as in LLMs: the product stays balanced)
  const w = (name: string, n: number) =>
    b.weight(
      name,
      makeTensor(
        'f32',
        [K, n],
        Array.from({ length: K * n }, (_, i) => (r() * 0.3) / (outliers && Math.floor(i / n) % 13 === 0 ? 40 : 1)),
      ),
    );
  b.output(b.matmul(h, w('w1', 32)), 'q');
  b.output(b.matmul(h, w('w2', 16)), 'k');
  const feeds = {
    x: makeTensor(
      'f32',
      [ROWS, K],
      Array.from({ length: ROWS * K }, () => 2 * r()),
    ),
  };
  return { graph: b.build(), feeds, h };
}

function calib(m: ReturnType<typeof model>) {
  let hv: Tensor | undefined;
  interpret(m.graph, m.feeds, {
    onNode(n, outs) {
      if (n.name === m.h.producer!.name) hv = outs[0]!;
    },
  });
  return new Map([[m.h.name, statsOf(m.h.name, hv!.data as Float32Array, K)]]);
}

const relErr = (a: Tensor, b: Tensor) => {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.data.length; i++) {
    num += (Number(a.data[i]) - Number(b.data[i])) ** 2;
    den += Number(b.data[i]) ** 2;
  }
  return Math.sqrt(num / den);
};

describe('W8A8 / SmoothQuant', () => {
  it('smoothing factors and int8 columns, worked by hand', () => {
    expect(Array.from(smoothingFactors([4, 1, 0], [1, 4, 2], 0.5))).toEqual([2, 0.5, 1]);
    expect(Array.from(smoothingFactors([8, 1], [2, 1], 1))).toEqual([8, 1]);
    // W [2, 2] = [[1, -0.5], [-2, 0.25]]: column scales 2/127, 0.5/127
    const { q, scales } = quantizeColumnsInt8([1, -0.5, -2, 0.25], 2, 2);
    expect(Array.from(scales)).toEqual([Math.fround(2 / 127), Math.fround(0.5 / 127)]);
    expect(Array.from(q)).toEqual([64, -127, -127, 64]);
  });

  it('the W8A8 graph computes the W8A8 formula (checked against a direct computation)', () => {
    const m = model(false);
    const float = interpret(m.graph, m.feeds);
    const g = cloneGraph(m.graph);
    const rep = quantizeW8A8(g, undefined, { smooth: false });
    expect(rep.layers.map((l) => l.node).length).toBe(2);
    expect(g.nodes.some((n) => n.op === 'matmul')).toBe(false);
    const got = interpret(g, m.feeds)['q']!;
    // independent W8A8: h from the float graph, per-row int8 h, per-column int8 w1, exact int products
    let hv: Tensor | undefined;
    interpret(m.graph, m.feeds, {
      onNode(n, outs) {
        if (n.name === m.h.producer!.name) hv = outs[0]!;
      },
    });
    const w1 = m.graph.constants.find((c) => c.name === 'w1')!.data!.data as Float32Array;
    const { q: wq, scales: sw } = quantizeColumnsInt8(w1, K, 32);
    for (let r = 0; r < ROWS; r++) {
      const row = Array.from({ length: K }, (_, k) => Number(hv!.data[r * K + k]));
      const sx = Math.fround(Math.fround(Math.max(...row.map(Math.abs))) / 127);
      const xq = row.map((v) => Math.max(-127, Math.min(127, Math.round(Math.fround(v / sx)))));
      for (let n = 0; n < 32; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += xq[k]! * wq[k * 32 + n]!;
        const want = Math.fround(Math.fround(acc * sx) * sw[n]!);
        expect(Math.abs(Number(got.data[r * 32 + n]) - want)).toBeLessThanOrEqual(Math.abs(want) * 1e-6 + 1e-7);
      }
    }
    expect(relErr(got, float['q']!)).toBeLessThan(0.02);
  });

  it('on outlier channels SmoothQuant is far more accurate than naive W8A8; the float function is kept', () => {
    const m = model(true);
    const float = interpret(m.graph, m.feeds);
    const naive = cloneGraph(m.graph);
    quantizeW8A8(naive, undefined, { smooth: false });
    const smooth = cloneGraph(m.graph);
    const rep = quantizeW8A8(smooth, calib(m), { alpha: 0.5 });
    expect(rep.layers.every((l) => l.smoothedInto !== undefined)).toBe(true);
    expect(rep.unsmoothed).toEqual([]);
    const outN = interpret(naive, m.feeds);
    const outS = interpret(smooth, m.feeds);
    for (const o of ['q', 'k']) {
      const en = relErr(outN[o]!, float[o]!);
      const es = relErr(outS[o]!, float[o]!);
      console.log(`${o}: output rel. error naive W8A8 ${en.toExponential(2)}, SmoothQuant ${es.toExponential(2)}`);
      expect(es).toBeLessThan(en / 3);
    }
  });

  for (const backend of BACKENDS) {
    it(`the W8A8 graph on ${backend} equals the reference`, async () => {
      const m = model(true);
      const g = cloneGraph(m.graph);
      quantizeW8A8(g, calib(m), {});
      const want = interpret(g, m.feeds);
      const s = await compile(g, { backend });
      const got = await s.run(m.feeds);
      s.dispose();
      for (const o of ['q', 'k']) expect(relErr(got[o]!, want[o]!)).toBeLessThan(1e-5);
    });
  }
});
