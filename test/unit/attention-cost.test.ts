/**
 * The cost account of attention (issue 9): with the one-kernel schedule the bytes one run moves grow linearly in the
 * sequence length N — the scores never reach memory — while the unfused exporter form (MatMul → Mul → Softmax →
 * MatMul, `--opt 0`) moves the N×N scores and grows quadratically; the default (`auto`) decomposed schedule moves the
 * scores too (it trades memory for speed below its limit). Measured with `kiln inspect`'s account (recording backend,
 * nothing runs).
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import '../../ir/ops/index.js';
import { makeTensor } from '../../ir/tensor.js';
import { optimize } from '../../passes/manager.js';
import { inspectGraph } from '../../src/inspect.js';

function sdpa(N: number) {
  const H = 2;
  const D = 32;
  const b = new GraphBuilder('sdpa');
  const q = b.input('q', 'f32', [1, H, N, D]);
  const k = b.input('k', 'f32', [1, H, N, D]);
  const v = b.input('v', 'f32', [1, H, N, D]);
  const s = b.op('mul', [
    b.op('matmul', [q, b.op('transpose', [k], { perm: [0, 1, 3, 2] })]),
    b.weight('c', makeTensor('f32', [], [1 / Math.sqrt(D)])),
  ]);
  b.output(b.op('matmul', [b.op('softmax', [s], { axis: -1 }), v]), 'y');
  return b.build();
}

describe('attention cost account', () => {
  it('fused: bytes moved grow linearly in N (512 … 4096); unfused: quadratically', async () => {
    const fused: number[] = [];
    const unfused: number[] = [];
    for (const N of [512, 1024, 2048, 4096]) {
      const g = sdpa(N);
      const opt = await inspectGraph(optimize(g), 1, 'wgsl', { attentionSchedule: 'one-kernel' });
      expect(opt.kernels.map((k) => k.op)).toEqual(['attention']);
      fused.push(opt.bytes.moved);
      // the default schedule: three kernels of the templates while the scores fit (N = 4096 here: 33.5M > 16.8M)
      const auto = await inspectGraph(optimize(g), 1, 'wgsl');
      expect(auto.kernels.length, `N = ${N}`).toBe(N < 4096 ? 3 : 1);
      unfused.push((await inspectGraph(g, 0, 'wgsl')).bytes.moved);
    }
    console.log(`bytes moved, N = 512…4096: fused ${fused.join(', ')}; unfused ${unfused.join(', ')}`);
    // doubling N: the fused account doubles (q, k, v, y are N×D), the unfused one nearly quadruples (N×N scores)
    for (let i = 1; i < 4; i++) {
      expect(fused[i]! / fused[i - 1]!).toBeCloseTo(2, 1);
      expect(unfused[i]! / unfused[i - 1]!).toBeGreaterThan(3.5);
    }
    expect(unfused[3]! / fused[3]!).toBeGreaterThan(100);
  }, 120_000);

  it('tiled kernel: one kernel, bytes moved linear in N (512 … 4096), as the per-row kernel', async () => {
    const tiled: number[] = [];
    for (const N of [512, 1024, 2048, 4096]) {
      const r = await inspectGraph(optimize(sdpa(N)), 1, 'wgsl', { attentionSchedule: 'tiled' });
      expect(r.kernels.map((k) => k.op)).toEqual(['attention']);
      expect(r.kernels[0]!.kernel).toMatch(/attention_tiled/);
      tiled.push(r.bytes.moved);
    }
    // q, k, v and y: 4 · H · N · D f32 elements
    expect(tiled).toEqual([512, 1024, 2048, 4096].map((N) => 4 * 2 * N * 32 * 4));
  }, 120_000);
});
