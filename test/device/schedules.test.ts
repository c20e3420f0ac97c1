/**
 * Tuned contraction schedules: every candidate the autotuner may pick computes the same as the float64 reference
 * (tile shapes on large products, threads per output on GEMVs; f32 and f16, transposed weights), on webgpu and
 * cuda-emu, and is really applied (a different kernel per candidate); the autotuner writes a choice per class that a
 * later session reads; the file store round-trips and rejects a corrupt file with a typed error.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SKINNY_CANDIDATES, TILE_CANDIDATES, type ScheduleStore } from '../../codegen/lower/contraction/schedules.js';
import { GraphBuilder } from '../../ir/builder.js';
import type { Graph } from '../../ir/graph.js';
import '../../ir/ops/index.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { compile } from '../../src/session.js';
import { autotune, FileScheduleStore, MemoryScheduleStore } from '../../src/tune.js';
import { checkAgainstReference, skipWebgpu } from '../helpers/backends.js';
import { deviceBackends } from '../helpers/device-backends.js';

const backends = await deviceBackends();
const noGpu = await skipWebgpu();

/** A store that answers every lookup with one candidate. */
const always = (name: string): ScheduleStore => ({ get: () => name, set: () => undefined });

function product(M: number, K: number, N: number, dt: 'f32' | 'f16', transB: boolean): [Graph, Record<string, Tensor>] {
  const b = new GraphBuilder('mm');
  const x = b.input('x', dt, [M, K]);
  const w = b.input('w', dt, transB ? [N, K] : [K, N]);
  b.output(transB ? b.op('gemm', [x, w], { transB: true }) : b.op('matmul', [x, w]), 'y');
  const fill = (n: number, s: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 0.7 + s));
  const ws = transB ? [N, K] : [K, N];
  return [b.build(), { x: makeTensor(dt, [M, K], fill(M * K, 1)), w: makeTensor(dt, ws, fill(K * N, 2)) }];
}

describe.each(backends)('schedule candidates (%s)', (backend) => {
  it.each([
    ['f32', false, Object.keys(TILE_CANDIDATES)],
    ['f16', false, ['t64x128', 't64x64k16']],
    ['f32', true, ['t128x64', 't32x32']],
  ] as const)('tile shapes: %s, transposed weights %s', async (dt, transB, names) => {
    const [g, feeds] = product(150, 40, 140, dt, transB);
    const kernels = new Set<string>();
    for (const name of names) {
      expect(await checkAgainstReference(g, feeds, { backend, schedules: always(name) }), name).toEqual([]);
      const s = await compile(g, { backend, schedules: always(name) });
      await s.run(feeds);
      for (const k of s.kernels()) kernels.add(k.name);
      s.dispose();
    }
    expect(kernels.size).toBe(names.length); // each candidate its own kernel
  });

  it('every threads-per-output choice of the GEMV schedule, both weight layouts', async () => {
    for (const transB of [false, true]) {
      const [g, feeds] = product(1, 300, 70, 'f32', transB);
      for (const name of Object.keys(SKINNY_CANDIDATES)) {
        const m = await checkAgainstReference(g, feeds, { backend, schedules: always(name) });
        expect(m, `${name} transB ${transB}`).toEqual([]);
      }
    }
  });

  it('a stored name that is no candidate (or "default") keeps the static schedule', async () => {
    const [g, feeds] = product(150, 40, 140, 'f32', false);
    const names: string[] = [];
    for (const store of [undefined, always('default'), always('t999')]) {
      const s = await compile(g, { backend, schedules: store ?? false });
      await s.run(feeds);
      names.push(s.kernels()[0]!.name);
      s.dispose();
    }
    expect(new Set(names).size).toBe(1);
  });
});

describe.skipIf(noGpu)('autotune (webgpu)', () => {
  it('times the candidates of each class and stores a choice a later session reads', async () => {
    const [g, feeds] = product(130, 64, 130, 'f32', false);
    const store = new MemoryScheduleStore();
    const results = await autotune(g, feeds, { store, runs: 1, budgetMs: 1 });
    expect(results).toHaveLength(1);
    const [r] = results;
    expect(r!.family).toBe('tiled');
    expect(r!.cls).toMatch(/^tiled\|f32\|b0m8n8k6\|akbn$/);
    expect(r!.nodes).toHaveLength(1);
    expect(r!.defaultMs).toBeGreaterThan(0);
    // the budget allowed one candidate round: the first candidate was timed
    expect(Object.keys(r!.times)).toEqual(['t128x128']);
    const [key, choice] = [...store.entries][0]!;
    expect(key.endsWith(`|${r!.cls}`)).toBe(true);
    expect(choice).toBe(r!.winner ?? 'default');
    // a session given the store looks the class up (and computes right)
    const looked: string[] = [];
    const spy: ScheduleStore = { get: (k) => (looked.push(k), store.get(k)), set: () => undefined };
    expect(await checkAgainstReference(g, feeds, { backend: 'webgpu', schedules: spy })).toEqual([]);
    expect(looked).toEqual([key]);
  });
});

describe('FileScheduleStore', () => {
  it('round-trips through its file; a corrupt file is a typed error naming it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-sched-'));
    const path = join(dir, 'sub', 'schedules.json');
    const a = new FileScheduleStore(path);
    expect(a.get('dev|tiled|x')).toBeUndefined();
    a.set('dev|tiled|x', 't64x64');
    expect(new FileScheduleStore(path).get('dev|tiled|x')).toBe('t64x64');
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ 'dev|tiled|x': 't64x64' });
    writeFileSync(path, '{ not json');
    expect(() => new FileScheduleStore(path)).toThrow(/schedule store .*schedules\.json is not a JSON object/);
  });
});
