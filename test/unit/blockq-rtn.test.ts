/**
 * Weight-only RTN (passes/quant/rtn.ts): hand-worked blocks (symmetric 4-bit, asymmetric 8-bit), the rewrite of a
 * small graph (matmuls → matmul_nbits, embeddings and the LM head kept unless asked), ragged groups, and the
 * quantized graph equal under the reference to the float graph whose weights are the dequantized values.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import { KilnError } from '../../ir/errors.js';
import '../../ir/index.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { quantizeRows, quantizeRtn, type RtnOptions } from '../../passes/quant/index.js';

describe('quantizeRows', () => {
  it('symmetric 4-bit: scale max|w| / 7, q = round(w / scale) + 8, nibbles low first, row padded to the block', () => {
    const w = [0.75, -1.75, 0.5, 0];
    const r = quantizeRows((_, k) => w[k]!, 1, 4, 4, 16, true, 'f32', true);
    expect(r.scales).toEqual([0.25]);
    expect(r.zeroPoints).toBeUndefined();
    // q = [11, 1, 10, 8], then 12 zeros of padding
    expect(Array.from(r.packed)).toEqual([11 | (1 << 4), 10 | (8 << 4), 0, 0, 0, 0, 0, 0]);
    expect(Array.from(r.dequant)).toEqual(w);
  });

  it('asymmetric 8-bit: range [min(w, 0), max(w, 0)] over 255 steps, zero point round(-lo / scale)', () => {
    const w = [-1, 0, 0.5, 3];
    const r = quantizeRows((_, k) => w[k]!, 1, 4, 8, 16, false, 'f32', false);
    const scale = Math.fround(4 / 255);
    expect(r.scales).toEqual([scale]);
    const zp = Math.round(1 / scale); // 63.75 → 64
    expect(Array.from(r.zeroPoints!)).toEqual([zp]);
    const q = w.map((x) => Math.min(255, Math.max(0, Math.round(x / scale) + zp)));
    expect(Array.from(r.packed)).toEqual(q);
    expect(Array.from(r.dequant)).toEqual(q.map((v) => (v - zp) * scale));
  });

  it('a ragged last block takes statistics over its real elements only', () => {
    // K = 20, block 16: block 1 holds k = 16..19 (max |w| 0.5 there, 8 in block 0)
    const w = Array.from({ length: 20 }, (_, k) => (k < 16 ? (k === 3 ? 8 : 1) : 0.5));
    const r = quantizeRows((_, k) => w[k]!, 1, 20, 8, 16, true, 'f32', true);
    expect(r.nBlocks).toBe(2);
    expect(r.scales).toEqual([Math.fround(8 / 127), Math.fround(0.5 / 127)]);
    expect(r.packed.length).toBe(32);
  });

  it('an all-zero block gets scale 1 and dequantizes to zeros', () => {
    const r = quantizeRows(() => 0, 2, 16, 4, 16, false, 'f32', true);
    expect(r.scales).toEqual([1, 1]);
    expect(Array.from(r.dequant)).toEqual(new Array(32).fill(0));
  });
});

/** A toy LM: embedding gather → matmul (ragged K = 40) → matmul → tied head einsum → logits. */
function toy() {
  const V = 12;
  const D = 32;
  const H = 40;
  // well-conditioned pseudo-random weights (a fractional-part hash; a plain sinusoid cancels in the products)
  const rnd = (n: number, s: number) =>
    Array.from({ length: n }, (_, i) => {
      const x = Math.sin((i + 1) * 12.9898 + s * 78.233) * 43758.5453;
      return (x - Math.floor(x) - 0.5) * 0.5;
    });
  const b = new GraphBuilder('toy');
  const ids = b.input('ids', 'i64', [1, 3]);
  const emb = b.weight('emb', makeTensor('f32', [V, D], rnd(V * D, 1)));
  const w1 = b.weight('w1', makeTensor('f32', [D, H], rnd(D * H, 2)));
  const w2 = b.weight('w2', makeTensor('f32', [H, D], rnd(H * D, 3)));
  const x = b.gather(emb, ids, 0);
  const h = b.matmul(b.matmul(x, w1), w2);
  b.output(b.op('einsum', [h, emb], { equation: 'bsd,vd->bsv' }), 'logits');
  const feeds = { ids: makeTensor('i64', [1, 3], [0, 5, 11]) };
  return { graph: b.build(), feeds };
}

const logits = (g: ReturnType<typeof toy>) => interpret(g.graph, g.feeds)['logits']!;

describe('quantizeRtn', () => {
  it('replaces the matmuls by matmul_nbits and keeps the embedding and the tied head by default', () => {
    const g = toy();
    const rep = quantizeRtn(g.graph, { bits: 4, group: 16 });
    expect(g.graph.nodes.map((n) => n.op)).toEqual(['gather', 'matmul_nbits', 'matmul_nbits', 'einsum']);
    expect(rep.layers.map((l) => [l.weight, l.K, l.N, l.block])).toEqual([
      ['w1', 32, 40, 16],
      ['w2', 40, 32, 16], // K = 40: blocks 16, 16, 8 (ragged)
    ]);
    expect(rep.kept.map((k) => k.reason).sort()).toEqual(['LM head', 'embedding']);
    // the packed weights are tensors of the blockq layout type (symmetric: no zero points)
    const w1q = g.graph.constants.find((c) => c.name === 'w1_q4')!;
    expect(w1q.type.layout).toEqual({ kind: 'blockq', bits: 4, group: 16, axis: 1, scale: 'f32', zeroPoint: false });
    expect(w1q.type.shape).toEqual([40, 2, 8]);
    // w1: 40 rows × 2 blocks × 8 bytes + 80 f32 scales
    expect(rep.layers[0]!.bytesAfter).toBe(40 * 2 * 8 + 80 * 4);
    expect(rep.layers[0]!.bytesBefore).toBe(32 * 40 * 4);
    expect(rep.bytesBefore - rep.bytesAfter).toBe(rep.layers.reduce((s, l) => s + l.bytesBefore - l.bytesAfter, 0));
  });

  it('the quantized graph computes the float graph with the dequantized weights (reference)', () => {
    for (const opts of [
      { bits: 4, group: 16 },
      { bits: 8, group: 32, symmetric: false },
      { bits: 4, group: 'channel', symmetric: false, embeddings: true, head: true },
    ] as RtnOptions[]) {
      const q = toy();
      const rep = quantizeRtn(q.graph, opts);
      // rebuild the float graph with each quantized weight replaced by its dequantized values (W[n, k] from the
      // report's relL2-checked rows is not exposed: recompute them here with quantizeRows on the same weights)
      const f = toy();
      for (const c of f.graph.constants) {
        const t = c.data!;
        const [R, C] = t.shape as [number, number];
        const layers = rep.layers.filter((l) => l.weight === c.name);
        if (layers.length === 0) continue;
        // the embedding table serves the gather (rows of D) and the tied head (W = the table): same blocks along D
        const l = layers[0]!;
        const byRows = l.op === 'gather_block_quantized' || l.node.startsWith('einsum');
        const at = byRows
          ? (n: number, k: number) => Number(t.data[n * C + k]!)
          : (n: number, k: number) => Number(t.data[k * C + n]!);
        const [N, K] = byRows ? [R, C] : [C, R];
        const r = quantizeRows(at, N, K, opts.bits, l.block, opts.symmetric ?? true, 'f32', !byRows);
        const d = new Float32Array(R * C);
        for (let n = 0; n < N; n++)
          for (let k = 0; k < K; k++) d[byRows ? n * C + k : k * C + n] = r.dequant[n * K + k]!;
        c.data = makeTensor('f32', [R, C], d) as Tensor;
      }
      const got = logits(q).data as Float32Array;
      const want = logits(f).data as Float32Array;
      got.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 5));
      // and close to the unquantized model
      const f32 = logits(toy()).data as Float32Array;
      let num = 0;
      let den = 0;
      f32.forEach((v, i) => {
        num += (got[i]! - v) ** 2;
        den += v * v;
      });
      expect(Math.sqrt(num / den)).toBeLessThan(opts.bits === 8 ? 0.02 : 0.25);
    }
  });

  it('head and embeddings on request', () => {
    const g = toy();
    quantizeRtn(g.graph, { bits: 8, group: 16, embeddings: true, head: true });
    expect(g.graph.nodes.map((n) => n.op)).toEqual([
      'gather_block_quantized',
      'matmul_nbits',
      'matmul_nbits',
      'matmul_nbits',
    ]);
    expect(g.graph.constants.some((c) => c.name === 'emb')).toBe(false);
  });

  it('bad options are typed errors', () => {
    expect(() => quantizeRtn(toy().graph, { bits: 3 as 4, group: 16 })).toThrow(KilnError);
    expect(() => quantizeRtn(toy().graph, { bits: 4, group: 24 })).toThrow(/group must be a power of two/);
  });
});
