/**
 * Sparse weights: packers against hand-worked arrays, pack / unpack round trips, the references of sparse_matmul and
 * sparse_to_dense against hand-worked values, located errors for bad geometry / indices, IR text round trip of the
 * layouts, the layout cost model's choice, and the sparse-select pass (rewrites where a sparse layout wins, leaves
 * dense weights and level 1 alone).
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import { KilnError, VerifyError } from '../../ir/errors.js';
import type { Graph } from '../../ir/graph.js';
import '../../ir/index.js';
import { interpret } from '../../ir/interpret.js';
import {
  packBsr,
  packCsr,
  packNm,
  quantizeNm,
  sparseGeometry,
  sparseLayout,
  unpackSparse,
  type PackedSparse,
} from '../../ir/ops/sparse.js';
import { makeTensor } from '../../ir/tensor.js';
import { parseGraph, printGraph } from '../../ir/text.js';
import { optimize } from '../../passes/manager.js';
import { nodeFlops } from '../../src/cost.js';
import { pruneMagnitude } from '../../passes/sparsity/magnitude.js';
import { formatInspect, inspectModel } from '../../src/inspect.js';
import { decodeModel } from '../../src/frontends/onnx/proto.js';
import { roundTrip } from '../helpers/onnx-roundtrip.js';
import {
  estimateLayouts,
  fitLayoutCosts,
  LAVAPIPE_COSTS,
  layoutCosts,
  selectionLines,
  selectionReport,
  selectSparseLayouts,
  weightStats,
  type LayoutCostConstants,
} from '../../passes/sparsity/select.js';

// W [K = 4, N = 2] (in, out):      Wᵀ [2, 4]:
//   [1 0]                           [1 0 3 0]
//   [0 2]                           [0 2 0 0]
//   [3 0]
//   [0 0]
const W = [1, 0, 0, 2, 3, 0, 0, 0];
const throwing = (m: string): never => {
  throw new Error(m);
};

describe('packers (hand-worked)', () => {
  it('csr over Wᵀ rows: values, k indices, row pointers', () => {
    const p = packCsr(W, 4, 2);
    expect(Array.from(p.values)).toEqual([1, 3, 2]);
    expect(Array.from(p.indices)).toEqual([0, 2, 1]);
    expect(Array.from(p.rowPtr!)).toEqual([0, 2, 3]);
  });

  it('bsr 2×2: both block columns of the one block row are kept', () => {
    const p = packBsr(W, 4, 2, [2, 2]);
    expect(Array.from(p.values)).toEqual([1, 0, 0, 2, 3, 0, 0, 0]);
    expect(Array.from(p.indices)).toEqual([0, 1]);
    expect(Array.from(p.rowPtr!)).toEqual([0, 2]);
    // 1×2 blocks: Wᵀ row 0 keeps block columns 0 ([1 0]) and 1 ([3 0]); row 1 keeps block 0 ([0 2])
    const q = packBsr(W, 4, 2, [1, 2]);
    expect(Array.from(q.values)).toEqual([1, 0, 3, 0, 0, 2]);
    expect(Array.from(q.indices)).toEqual([0, 1, 0]);
    expect(Array.from(q.rowPtr!)).toEqual([0, 2, 3]);
  });

  it('2:4: kept positions as two 2-bit fields, a short group completed with its first zero', () => {
    const p = packNm(W, 4, 2);
    // column 0: positions 0, 2 (values 1, 3) → field 0b1000; column 1: position 1 (+ zero at 0) → 0b0100
    expect(Array.from(p.values)).toEqual([1, 3, 0, 2]);
    expect(Array.from(p.indices)).toEqual([0x48]);
  });

  it('round trips random weights of every format', () => {
    let s = 7;
    const r = () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const K = 16;
    const N = 12;
    const w = Array.from({ length: K * N }, () => (r() < 0.3 ? r() - 0.5 : 0));
    const w24 = w.map((x, i) => (Math.floor(i / N) % 4 < 2 ? x : 0)); // positions 0, 1 of each group only
    const cases: [PackedSparse, number[]][] = [
      [packCsr(w, K, N), w],
      [packBsr(w, K, N, [4, 2]), w],
      [packBsr(w, K, N, [3, 8]), w],
      [packNm(w24, K, N), w24],
    ];
    for (const [p, want] of cases)
      expect(Array.from(unpackSparse(p.geometry, p.values, p.indices, p.rowPtr, throwing))).toEqual(want);
  });

  it('rejects a group with 3 non-zeros and geometry that does not divide', () => {
    expect(() => packNm([1, 1, 1, 0], 4, 1)).toThrow(/column 0, k 0..3 has 3 non-zeros/);
    expect(() => packNm([1, 1, 1, 0], 4, 1)).toThrow(KilnError);
    expect(() => packBsr(W, 4, 2, [3, 2])).toThrow(/block height 3 does not divide N = 2/);
    expect(() => sparseGeometry('nm', 6, 2, [1, 1], [2, 4], throwing)).toThrow(/K divisible by 4/);
    expect(() => sparseGeometry('nm', 8, 2, [1, 1], [1, 4], throwing)).toThrow(/only 2:4/);
  });
});

/** y = a · W through sparse_matmul with the packed constants (optionally tampered with). */
function sparseGraph(
  p: PackedSparse,
  lead: number[],
  edit?: (arrs: { indices: number[]; rowPtr?: number[] }) => void,
  index: 'i32' | 'u16' = 'i32',
) {
  const g = p.geometry;
  const arrs = { indices: Array.from(p.indices), rowPtr: p.rowPtr && Array.from(p.rowPtr) };
  edit?.(arrs);
  const b = new GraphBuilder('s');
  const a = b.input('a', 'f32', [...lead, g.K]);
  const vShape =
    g.format === 'csr' ? [p.values.length] : g.format === 'bsr' ? [p.indices.length, ...g.block] : [g.N, g.K / 2];
  const ins = [
    a,
    b.weight('values', makeTensor('f32', vShape, p.values), sparseLayout(g)),
    b.weight('indices', makeTensor(g.format === 'nm' ? 'u8' : index, [arrs.indices.length], arrs.indices)),
    arrs.rowPtr ? b.weight('row_ptr', makeTensor('i32', [arrs.rowPtr.length], arrs.rowPtr)) : null,
  ];
  b.output(b.op('sparse_matmul', ins, { format: g.format, K: g.K, N: g.N, block: [...g.block] }, 'sm'), 'y');
  return b.build();
}

describe('sparse_matmul / sparse_to_dense references', () => {
  const a = makeTensor('f32', [2, 4], [1, 1, 1, 1, 1, 2, 3, 4]);
  // row 0: [1+3, 2] = [4, 2]; row 1: [1·1 + 3·3, 2·2] = [10, 4]
  for (const [name, p] of [
    ['csr', packCsr(W, 4, 2)],
    ['bsr 2×2', packBsr(W, 4, 2, [2, 2])],
    ['bsr 1×2', packBsr(W, 4, 2, [1, 2])],
    ['2:4', packNm(W, 4, 2)],
  ] as const) {
    it(`${name}: y = a · W (hand-worked)`, () => {
      const y = interpret(sparseGraph(p, [2]), { a })['y']!;
      expect(y.shape).toEqual([2, 2]);
      expect(Array.from(y.data)).toEqual([4, 2, 10, 4]);
      if (p.geometry.format !== 'nm')
        expect(Array.from(interpret(sparseGraph(p, [2], undefined, 'u16'), { a })['y']!.data)).toEqual([4, 2, 10, 4]);
    });
  }

  it('sparse_to_dense unpacks W', () => {
    const p = packCsr(W, 4, 2);
    const b = new GraphBuilder('d');
    const ins = [
      b.weight('v', makeTensor('f32', [3], p.values), { kind: 'csr' }),
      b.weight('i', makeTensor('i32', [3], p.indices)),
      b.weight('r', makeTensor('i32', [3], p.rowPtr!)),
    ];
    b.output(b.op('sparse_to_dense', ins, { format: 'csr', K: 4, N: 2 }), 'w');
    const w = interpret(b.build(), {})['w']!;
    expect(w.shape).toEqual([4, 2]);
    expect(Array.from(w.data)).toEqual(W);
  });

  it('a bad index or row pointer is an error naming the node', () => {
    const a1 = { a: makeTensor('f32', [1, 4], [1, 1, 1, 1]) };
    const bad = [
      sparseGraph(packCsr(W, 4, 2), [1], (x) => (x.indices[1] = 4)),
      sparseGraph(packCsr(W, 4, 2), [1], (x) => (x.rowPtr![1] = 4)),
      sparseGraph(packBsr(W, 4, 2, [2, 2]), [1], (x) => (x.indices[0] = -1)),
    ];
    const msgs = [
      /indices\[1\] = 4 \(row 0\) is outside \[0, 3\]/,
      /row_ptr\[1\] = 4 is past the 3 indices/,
      /indices\[0\] = -1/,
    ];
    bad.forEach((g, i) => {
      try {
        interpret(g, a1);
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(KilnError);
        expect((e as KilnError).message).toMatch(msgs[i]!);
        expect((e as KilnError).location.node).toBe(g.nodes[0]!.name);
      }
    });
    // 2:4 positions must increase within a group
    const g24 = sparseGraph(packNm(W, 4, 2), [1], (x) => (x.indices[0] = 0x55));
    expect(() => interpret(g24, a1)).toThrow(
      /index field 0 \(column 0, group 0\) holds positions 1, 1: not increasing/,
    );
  });

  it('inference rejects inconsistent geometry, naming the node', () => {
    const p = packCsr(W, 4, 2);
    const build = (attrs: Record<string, unknown>, rowPtrLen = 3, layout = sparseLayout(p.geometry)) => {
      const b = new GraphBuilder('e');
      const ins = [
        b.input('a', 'f32', [1, 4]),
        b.weight('v', makeTensor('f32', [3], p.values), layout),
        b.weight('i', makeTensor('i32', [3], p.indices)),
        b.weight('r', makeTensor('i32', [rowPtrLen], new Array(rowPtrLen).fill(0))),
      ];
      b.op('sparse_matmul', ins, { format: 'csr', K: 4, N: 2, ...attrs } as never, 'bad');
    };
    const err = (fn: () => void) => {
      try {
        fn();
      } catch (e) {
        return e as VerifyError;
      }
      throw new Error('no error');
    };
    expect(err(() => build({ K: 5 })).message).toMatch(/a's last dim 4 is not K = 5/);
    expect(err(() => build({}, 4)).message).toMatch(/row_ptr is \[4\], expected \[3\]/);
    expect(err(() => build({}, 3, { kind: 'bsr', block: [2, 2] })).message).toMatch(
      /layout bsr\(2x2\), but the node reads csr/,
    );
    expect(err(() => build({ format: 'bsr', block: [3, 1] })).message).toMatch(/block height 3 does not divide N = 2/);
    expect(err(() => build({ K: 5 })).location.node).toMatch(/^sparse_matmul/);
    expect(() => build({})).not.toThrow();
  });

  it('IR text round-trips the sparse layouts', () => {
    for (const p of [packCsr(W, 4, 2), packBsr(W, 4, 2, [2, 2]), packNm(W, 4, 2)]) {
      const g = sparseGraph(p, [1]);
      const text = printGraph(g);
      expect(text).toMatch(/csr|bsr\(2x2\)|nm\(2:4\)/);
      expect(printGraph(parseGraph(text))).toBe(text);
    }
  });
});

describe('layout cost model', () => {
  const unit: LayoutCostConstants = {
    device: 'unit',
    launchNs: 0,
    dense: { bytesPerNs: 1, macsPerNs: 1 },
    csr: { bytesPerNs: 1, macsPerNs: 1 },
    bsr: { bytesPerNs: 1, macsPerNs: 1 },
    nm: { bytesPerNs: 1, macsPerNs: 1 },
  };
  it('bytes include the indices (hand-worked)', () => {
    const c = layoutCosts({ K: 8, N: 4, valueBytes: 4, nnz: 6, twoFour: true, bsr: { block: [2, 4], nnzb: 2 } });
    expect(c).toEqual([
      { layout: 'dense', bytes: 128, macs: 32 },
      { layout: 'csr', bytes: 6 * (4 + 2) + 4 * 5, macs: 6 }, // u16 indices
      { layout: 'bsr', bytes: 2 * (8 * 4 + 2) + 4 * 3, macs: 16 },
      { layout: 'nm', bytes: 64 + 4, macs: 16 },
    ]);
  });

  it('picks the cheapest estimate: csr when very sparse, dense when full, 2:4 at exactly half', () => {
    const K = 64;
    const N = 64;
    // dense: 16384 B + 4096 MACs = 20480; csr at nnz: 6 nnz + 260 + nnz
    expect(estimateLayouts({ K, N, valueBytes: 4, nnz: 200, twoFour: false }, 1, unit)[0]!.layout).toBe('csr');
    expect(estimateLayouts({ K, N, valueBytes: 4, nnz: 4000, twoFour: false }, 1, unit)[0]!.layout).toBe('dense');
    // 2:4 at 2048 non-zeros: 8192 + 512 + 2048 = 10752 < csr 12288 + 260 + 2048 < dense 20480
    const e = estimateLayouts({ K, N, valueBytes: 4, nnz: 2048, twoFour: true }, 1, unit);
    expect(e.map((x) => [x.layout, x.ns])).toEqual([
      ['nm', 10752],
      ['csr', 14596],
      ['dense', 20480],
    ]);
  });

  it('fitLayoutCosts recovers the constants that produced the timings (launch shared, a layout without data pinned)', () => {
    const truth: LayoutCostConstants = {
      device: 't',
      launchNs: 5e5,
      dense: { bytesPerNs: 2, macsPerNs: 1.5 },
      csr: { bytesPerNs: 1.5, macsPerNs: 1.2 },
      bsr: { bytesPerNs: 4, macsPerNs: 1.4 },
      nm: LAVAPIPE_COSTS.nm,
    };
    const timings = [];
    for (const layout of ['dense', 'csr', 'bsr'] as const)
      for (const [bytes, macs] of [
        [4e6, 1e6],
        [2e7, 6e6],
        [6e7, 1.5e7],
      ] as const)
        for (const M of [1, 32]) {
          const r = truth[layout];
          timings.push({
            layout,
            M,
            bytes,
            macs,
            ms: (truth.launchNs + bytes / r.bytesPerNs + (M * macs) / r.macsPerNs) / 1e6,
          });
        }
    const fit = fitLayoutCosts(timings, 'fit');
    expect(fit.launchNs).toBeCloseTo(truth.launchNs, 0);
    for (const l of ['dense', 'csr', 'bsr', 'nm'] as const) {
      expect(fit[l].bytesPerNs).toBeCloseTo(truth[l].bytesPerNs, 6);
      expect(fit[l].macsPerNs).toBeCloseTo(truth[l].macsPerNs, 6);
    }
  });

  it('weightStats finds 2:4 and the bsr block with the cheapest estimate', () => {
    const K = 16;
    const N = 8;
    // whole 8 × 8 blocks of Wᵀ: the block at n 0..7, k 0..7 kept
    const w = new Float64Array(K * N);
    for (let k = 0; k < 8; k++) for (let n = 0; n < 8; n++) w[k * N + n] = 1;
    const s = weightStats(w, K, N, 4, 1, unit);
    expect(s.nnz).toBe(64);
    expect(s.twoFour).toBe(false);
    expect(s.bsr).toEqual({ block: [8, 8], nnzb: 1 });
  });
});

function matmulGraph(w: ArrayLike<number>, K: number, N: number): Graph {
  const b = new GraphBuilder('mm');
  const a = b.input('a', 'f32', ['M', K]);
  b.output(b.op('matmul', [a, b.weight('w', makeTensor('f32', [K, N], w))], {}, 'proj'), 'y');
  return b.build();
}

describe('sparse-select', () => {
  const K = 64;
  const N = 32;
  const sparseW = Array.from({ length: K * N }, (_, i) => (i % 17 === 0 ? ((i % 5) - 2) / 4 || 0.5 : 0));
  const denseW = Array.from({ length: K * N }, (_, i) => ((i % 7) - 3) / 8 || 0.25);

  it('rewrites a very sparse weight to sparse_matmul with the reason, and the result is unchanged', () => {
    const g = matmulGraph(sparseW, K, N);
    const feeds = {
      a: makeTensor(
        'f32',
        [3, K],
        Array.from({ length: 3 * K }, (_, i) => Math.sin(i)),
      ),
    };
    const want = interpret(g, feeds)['y']!;
    const choices = selectSparseLayouts(g);
    expect(choices).toHaveLength(1);
    expect(choices[0]!.layout).not.toBe('dense');
    const node = g.nodes.find((n) => n.op === 'sparse_matmul')!;
    expect(node).toBeDefined();
    expect(node.attrs['reason']).toMatch(/non-zeros.*; est\. at M=1 on lavapipe: /);
    expect(g.nodes.some((n) => n.op === 'matmul')).toBe(false);
    expect(g.constants.some((c) => c.name === 'w')).toBe(false);
    expect(Array.from(interpret(g, feeds)['y']!.data)).toEqual(Array.from(want.data));
    expect(selectionLines(g)[0]).toMatch(/^matmul_\d+ \[64x32\] → (csr|bsr\(\dx\d+\)): /);
  });

  it('leaves dense weights alone (no report entry) and does not run at --opt 1', () => {
    const d = matmulGraph(denseW, K, N);
    expect(printGraph(optimize(d, { level: 2 }))).toBe(printGraph(optimize(d, { level: 1 })));
    const o2 = optimize(d, { level: 2 });
    expect(selectionReport(o2)).toEqual([]);
    const s = matmulGraph(sparseW, K, N);
    expect(optimize(s, { level: 1 }).nodes.some((n) => n.op === 'sparse_matmul')).toBe(false);
    const s2 = optimize(s, { level: 2 });
    expect(s2.nodes.some((n) => n.op === 'sparse_matmul')).toBe(true);
    expect(selectionReport(s2)).toHaveLength(1);
  });

  it('after 2:4 magnitude pruning (kiln prune) every weight runs as 2:4 (detected, chosen), outputs unchanged', () => {
    const b = new GraphBuilder('mlp');
    const wt = (seed: number, k: number, n: number) =>
      makeTensor(
        'f32',
        [k, n],
        Array.from({ length: k * n }, (_, i) => Math.sin(seed * 131 + i * 0.7)),
      );
    const h = b.op('matmul', [b.input('a', 'f32', [1, 64]), b.weight('w1', wt(1, 64, 48))]);
    b.output(b.op('matmul', [b.op('relu', [h]), b.weight('w2', wt(2, 48, 32))]), 'y');
    const g = b.build();
    pruneMagnitude(g, { pattern: { kind: 'nm', n: 2, m: 4 }, head: true });
    const feeds = {
      a: makeTensor(
        'f32',
        [1, 64],
        Array.from({ length: 64 }, (_, i) => Math.cos(i)),
      ),
    };
    const want = interpret(g, feeds)['y']!;
    const choices = selectSparseLayouts(g);
    expect(choices.map((c) => [c.layout, c.density])).toEqual([
      ['nm', 0.5],
      ['nm', 0.5],
    ]);
    expect(choices.every((c) => /2:4 along K/.test(c.reason))).toBe(true);
    expect(g.nodes.filter((n) => n.op === 'sparse_matmul').map((n) => n.attrs['format'])).toEqual(['nm', 'nm']);
    const got = interpret(g, feeds)['y']!;
    Array.from(got.data).forEach((x, i) => expect(x).toBeCloseTo(want.data[i]!, 5));
  });

  it('the rewritten graph (reason included) round-trips through the IR text', () => {
    const o2 = optimize(matmulGraph(sparseW, K, N), { level: 2 });
    const text = printGraph(o2);
    expect(text).toMatch(/sparse_matmul\(.*reason=".*non-zeros.* < .*"/);
    expect(printGraph(parseGraph(text))).toBe(text);
  });

  it('packs a weight two f16 matmuls share once, and both read it', () => {
    const b = new GraphBuilder('shared');
    const wv = b.weight('w', makeTensor('f16', [K, N], sparseW));
    b.output(b.op('matmul', [b.input('a', 'f16', [2, K]), wv]), 'y');
    b.output(b.op('matmul', [b.input('c', 'f16', [1, K]), wv]), 'z');
    const g = b.build();
    const feeds = {
      a: makeTensor(
        'f16',
        [2, K],
        Array.from({ length: 2 * K }, (_, i) => Math.sin(i)),
      ),
      c: makeTensor(
        'f16',
        [1, K],
        Array.from({ length: K }, (_, i) => Math.cos(i)),
      ),
    };
    const want = interpret(g, feeds);
    const choices = selectSparseLayouts(g);
    expect(choices.map((c) => c.layout).every((l) => l !== 'dense')).toBe(true);
    const sm = g.nodes.filter((n) => n.op === 'sparse_matmul');
    expect(sm).toHaveLength(2);
    if (choices[0]!.layout === choices[1]!.layout) expect(sm[0]!.inputs[1]).toBe(sm[1]!.inputs[1]);
    expect(sm[0]!.inputs[1]!.type.dtype).toBe('f16');
    const got = interpret(g, feeds);
    expect(Array.from(got['y']!.data)).toEqual(Array.from(want['y']!.data));
    expect(Array.from(got['z']!.data)).toEqual(Array.from(want['z']!.data));
  });

  it('records the estimates of a half-zero unstructured weight and chooses the cheapest', () => {
    const half = denseW.map((x, i) => (Math.imul(i + 1, 2654435761) >>> 31 ? 0 : x));
    const g = matmulGraph(half, K, N);
    const c = selectSparseLayouts(g);
    expect(c).toHaveLength(1);
    expect(c[0]!.density).toBeGreaterThan(0.3);
    expect(c[0]!.layout).toBe(c[0]!.estimates[0]!.layout);
    // csr stores 6 bytes per kept value (f32 + u16 k)
    const csr = c[0]!.estimates.find((e) => e.layout === 'csr')!;
    expect(csr.bytes).toBe(c[0]!.density * K * N * 6 + 4 * (N + 1));
    expect(c[0]!.reason).toMatch(/^\d+\.\d% non-zeros; est\. at M=1 on lavapipe: .* < /);
  });
});

describe('kiln inspect and the FLOP account', () => {
  it('inspect at --opt 2 lists the layout choice and why; sparse_matmul FLOPs count the stored values', async () => {
    const K = 64;
    const N = 32;
    const w = Array.from({ length: K * N }, (_, i) => (i % 23 === 0 ? 0.5 : 0));
    const b = new GraphBuilder('pruned');
    b.output(b.op('matmul', [b.input('a', 'f32', [2, K]), b.weight('w', makeTensor('f32', [K, N], w))]), 'y');
    const r = await inspectModel(b.build(), { opt: 2 });
    expect(r.layouts).toHaveLength(1);
    const text = formatInspect(r);
    expect(text).toMatch(
      /weight layouts \(sparse-select\): 1 matmuls by weights with zeros\n {2}matmul_\d+ \[64x32\] → /,
    );
    expect(text).toMatch(/% non-zeros.*est\. at M=2 on lavapipe/);
    const nnz = w.filter((x) => x !== 0).length;
    const sm = r.kernels.find((k) => k.op === 'sparse_matmul')!;
    if (r.layouts![0]!.layout === 'csr') expect(sm.flops).toBe(2 * 2 * nnz);
    expect(
      nodeFlops('sparse_matmul', { format: 'nm', K: 8, N: 4 }, { inputs: [[3, 8], [4, 4], [4]], outputs: [[3, 4]] }),
    ).toBe(2 * 3 * 16);
    const d = await inspectModel(b.build(), { opt: 1 });
    expect(d.layouts).toBeUndefined();
  });
});

describe('2:4 with int4 / int8 kept values', () => {
  it('quantizeNm (hand-worked) and the reference dequantizes in the product', () => {
    // W [8, 1]: groups [1 0 3 0] and [0 0 -2 0.5] → kept values 1, 3 | -2, 0.5 (positions 0,2 | 2,3)
    const w = [1, 0, 3, 0, 0, 0, -2, 0.5];
    const p = packNm(w, 8, 1);
    expect(Array.from(p.values)).toEqual([1, 3, -2, 0.5]);
    // int4, group 2: scales 3 / 7 and 2 / 7; q = round(v / scale) + 8: 2+8, 7+8 | -7+8, 2+8 (0.5 · 3.5 = 1.75 → 2)
    const qz = quantizeNm(p, 4, 2);
    expect(Array.from(qz.scales)).toEqual([3 / 7, 2 / 7]);
    expect(Array.from(qz.data)).toEqual([10 | (15 << 4), 1 | (10 << 4)]);
    const b = new GraphBuilder('q');
    const ins = [
      b.input('a', 'f32', [1, 8]),
      b.weight('v', makeTensor('u8', [1, 2], qz.data), { kind: 'nm', n: 2, m: 4 }),
      b.weight('i', makeTensor('u8', [1], p.indices)),
      null,
      b.weight('s', makeTensor('f32', [1, 2], qz.scales)),
    ];
    b.output(b.op('sparse_matmul', ins, { format: 'nm', K: 8, N: 1, bits: 4, group: 2 }), 'y');
    const y = interpret(b.build(), { a: makeTensor('f32', [1, 8], [1, 1, 1, 1, 1, 1, 1, 1]) })['y']!;
    const s0 = Math.fround(3 / 7);
    const s1 = Math.fround(2 / 7);
    expect(y.data[0]).toBeCloseTo(2 * s0 + 7 * s0 - 7 * s1 + 2 * s1, 6);
  });

  it('bits on csr, missing scales, or a wrong scales shape are located errors', () => {
    const mk = (attrs: Record<string, unknown>, scalesShape?: number[]) => {
      const b = new GraphBuilder('e');
      const ins = [
        b.input('a', 'f32', [1, 8]),
        b.weight('v', makeTensor('u8', [1, 2], [0, 0])),
        b.weight('i', makeTensor('u8', [1], [0x44])),
        null,
        scalesShape ? b.weight('s', makeTensor('f32', scalesShape, new Array(scalesShape[1]).fill(1))) : null,
      ];
      b.op('sparse_matmul', ins, { format: 'nm', K: 8, N: 1, ...attrs } as never);
    };
    expect(() => mk({ bits: 4, group: 2 })).toThrow(/quantized values need scales/);
    expect(() => mk({ bits: 4, group: 2 }, [1, 3])).toThrow(
      /scales are \[1,3\], expected \[N, ceil\(K \/ 2 \/ group\)\] = \[1,2\]/,
    );
    expect(() => mk({ bits: 4, group: 3 }, [1, 2])).toThrow(/group must be an even positive integer/);
    expect(() => mk({ bits: 4, group: 2, format: 'csr' }, [1, 2])).toThrow(/only supported for nm/);
    expect(() => mk({ bits: 4, group: 2 }, [1, 2])).not.toThrow();
  });
});

describe('ONNX export', () => {
  it('a sparse weight leaves kiln densified: MatMul by W, the same outputs', () => {
    const K = 16;
    const N = 8;
    const w = Array.from({ length: K * N }, (_, i) => (i % 5 === 0 ? ((i % 3) - 1) / 2 || 0.25 : 0));
    for (const p of [packCsr(w, K, N), packBsr(w, K, N, [2, 4])]) {
      const g = sparseGraph(p, [3]);
      const { graph: back, exported } = roundTrip(g);
      expect(decodeModel(exported.model).graph.nodes.map((n) => n.opType)).toEqual(['MatMul']);
      const feeds = {
        a: makeTensor(
          'f32',
          [3, K],
          Array.from({ length: 3 * K }, (_, i) => Math.sin(i)),
        ),
      };
      expect(Array.from(interpret(back, feeds)['y']!.data)).toEqual(Array.from(interpret(g, feeds)['y']!.data));
    }
  });

  it('arrays fed at run time are an UnsupportedError naming the node', () => {
    const b = new GraphBuilder('rt');
    const ins = [
      b.input('a', 'f32', [1, 4]),
      b.input('v', 'f32', [3]),
      b.input('i', 'i32', [3]),
      b.input('r', 'i32', [3]),
    ];
    b.output(b.op('sparse_matmul', ins, { format: 'csr', K: 4, N: 2 }), 'y');
    expect(() => roundTrip(b.build())).toThrow(/arrays computed at run time has no ONNX form/);
  });
});
