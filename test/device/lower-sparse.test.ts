/**
 * Sparse kernels on webgpu and cuda-emu: hand-worked products and unpacking, bad indices / row pointers as the run's
 * typed error naming the node (never an out-of-bounds read), and a matmul by a pruned weight compiled at --opt 2
 * (sparse-select rewrites it) equal to the float64 reference of the dense graph.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import '../../ir/index.js';
import { packBsr, packCsr, packNm, quantizeNm } from '../../ir/ops/sparse.js';
import { makeTensor } from '../../ir/tensor.js';
import { compile, type BackendChoice } from '../../src/session.js';
import { checkAgainstReference, skipWebgpu } from '../helpers/backends.js';
import { emuProbe, requireTool } from '../helpers/tools.js';

// W [K = 4, N = 2]: columns [1 0 3 0] and [0 2 0 0]
const W = [1, 0, 0, 2, 3, 0, 0, 0];
const noGpu = await skipWebgpu();
const noEmu = await requireTool('g++ (cuda-emu)', emuProbe);

describe.each<[BackendChoice, boolean]>([
  ['webgpu', noGpu],
  ['cuda-emu', noEmu],
])('sparse kernels on %s', (backend, skip) => {
  it.skipIf(skip)('csr with its arrays fed at run time: hand-worked y, bad index / row_ptr → typed error', async () => {
    const b = new GraphBuilder('csr');
    const ins = [
      b.input('a', 'f32', [2, 4]),
      b.input('v', 'f32', [3]),
      b.input('i', 'i32', [3]),
      b.input('r', 'i32', [3]),
    ];
    b.output(b.op('sparse_matmul', ins, { format: 'csr', K: 4, N: 2 }), 'y');
    const sess = await compile(b.build(), { backend, poison: true });
    try {
      const p = packCsr(W, 4, 2);
      const feeds = {
        a: makeTensor('f32', [2, 4], [1, 1, 1, 1, 1, 2, 3, 4]),
        v: makeTensor('f32', [3], p.values),
        i: makeTensor('i32', [3], p.indices),
        r: makeTensor('i32', [3], p.rowPtr!),
      };
      expect(Array.from((await sess.run(feeds))['y']!.data)).toEqual([4, 2, 10, 4]);
      const bad = /index out of range .*sparse_matmul_0/;
      await expect(sess.run({ ...feeds, i: makeTensor('i32', [3], [0, 4, 1]) })).rejects.toThrow(bad);
      await expect(sess.run({ ...feeds, i: makeTensor('i32', [3], [0, -1, 1]) })).rejects.toThrow(bad);
      await expect(sess.run({ ...feeds, r: makeTensor('i32', [3], [0, 2, 9]) })).rejects.toThrow(bad);
      await expect(sess.run({ ...feeds, r: makeTensor('i32', [3], [0, 3, 2]) })).rejects.toThrow(bad);
      // a good run after the failures
      expect(Array.from((await sess.run(feeds))['y']!.data)).toEqual([4, 2, 10, 4]);
    } finally {
      sess.dispose();
    }
  });

  it.skipIf(skip)('bsr: a block column past K / w is a typed error naming the node', async () => {
    const p = packBsr(W, 4, 2, [2, 2]);
    const b = new GraphBuilder('bsr');
    const ins = [
      b.input('a', 'f32', [1, 4]),
      b.input('v', 'f32', [2, 2, 2]),
      b.input('i', 'i32', [2]),
      b.input('r', 'i32', [2]),
    ];
    b.output(b.op('sparse_matmul', ins, { format: 'bsr', K: 4, N: 2, block: [2, 2] }), 'y');
    const sess = await compile(b.build(), { backend, poison: true });
    try {
      const feeds = {
        a: makeTensor('f32', [1, 4], [1, 2, 3, 4]),
        v: makeTensor('f32', [2, 2, 2], p.values),
        i: makeTensor('i32', [2], p.indices),
        r: makeTensor('i32', [2], p.rowPtr!),
      };
      expect(Array.from((await sess.run(feeds))['y']!.data)).toEqual([10, 4]);
      await expect(sess.run({ ...feeds, i: makeTensor('i32', [2], [0, 2]) })).rejects.toThrow(
        /index out of range .*sparse_matmul_0/,
      );
    } finally {
      sess.dispose();
    }
  });

  it.skipIf(skip)('sparse_to_dense unpacks csr, bsr and 2:4 (hand-worked)', async () => {
    for (const p of [packCsr(W, 4, 2), packBsr(W, 4, 2, [1, 2]), packNm(W, 4, 2)]) {
      const g = p.geometry;
      const b = new GraphBuilder('unpack');
      const vShape =
        g.format === 'csr' ? [p.values.length] : g.format === 'bsr' ? [p.indices.length, ...g.block] : [2, 2];
      const ins = [
        b.weight('v', makeTensor('f32', vShape, p.values)),
        b.weight('i', makeTensor(g.format === 'nm' ? 'u8' : 'i32', [p.indices.length], p.indices)),
        p.rowPtr ? b.weight('r', makeTensor('i32', [p.rowPtr.length], p.rowPtr)) : null,
      ];
      b.output(b.op('sparse_to_dense', ins, { format: g.format, K: 4, N: 2, block: [...g.block] }), 'w');
      const sess = await compile(b.build(), { backend, poison: true, opt: 0 });
      try {
        const w = (await sess.run({}))['w']!;
        expect(w.shape).toEqual([4, 2]);
        expect(Array.from(w.data)).toEqual(W);
      } finally {
        sess.dispose();
      }
    }
  });

  it.skipIf(skip)('2:4 int4 / int8: sparse_to_dense and sparse_matmul dequantize like the reference', async () => {
    // W [8, 2]: column 0 keeps 1, 3 | −2, 0.5; column 1 keeps 2 | −1
    const w = [1, 0, 0, 2, 3, 0, 0, 0, 0, 0, 0, -1, -2, 0, 0.5, 0];
    const p = packNm(w, 8, 2);
    for (const bits of [4, 8] as const) {
      const qz = quantizeNm(p, bits, 2);
      const b = new GraphBuilder('q');
      const ins = [
        b.weight('v', makeTensor('u8', [2, (4 * bits) / 8], qz.data), { kind: 'nm', n: 2, m: 4 }),
        b.weight('i', makeTensor('u8', [2], p.indices)),
        null,
        b.weight('s', makeTensor('f32', [2, 2], qz.scales)),
      ];
      const attrs = { format: 'nm', K: 8, N: 2, bits, group: 2 };
      b.output(b.op('sparse_to_dense', ins, attrs), 'w');
      b.output(b.op('sparse_matmul', [b.input('a', 'f32', [3, 8]), ...ins], attrs), 'y');
      const feeds = {
        a: makeTensor(
          'f32',
          [3, 8],
          Array.from({ length: 24 }, (_, i) => (i % 5) - 2),
        ),
      };
      expect(await checkAgainstReference(b.build(), feeds, { backend, opt: 0 })).toEqual([]);
    }
  });

  it.skipIf(skip)('a pruned weight at --opt 2 runs sparse and equals the dense reference', async () => {
    const K = 96;
    const N = 40;
    const w = Array.from({ length: K * N }, (_, i) =>
      (Math.imul(i + 3, 2654435761) >>> 0) % 10 === 0 ? ((i % 9) - 4) / 8 || 0.5 : 0,
    );
    const b = new GraphBuilder('pruned');
    const a = b.input('a', 'f32', [5, K]);
    b.output(b.op('matmul', [a, b.weight('w', makeTensor('f32', [K, N], w))]), 'y');
    const g = b.build();
    const feeds = {
      a: makeTensor(
        'f32',
        [5, K],
        Array.from({ length: 5 * K }, (_, i) => Math.cos(i)),
      ),
    };
    expect(await checkAgainstReference(g, feeds, { backend, opt: 2 })).toEqual([]);
    const sess = await compile(g, { backend, opt: 2 });
    try {
      await sess.run(feeds);
      expect(sess.kernels().some((k) => k.name.includes('sparse_matmul'))).toBe(true);
    } finally {
      sess.dispose();
    }
  });
});
