/**
 * nvcc compiles every sparse kernel (sparse_matmul spmv / spmm for csr, bsr, 2:4, 2:4 int4 / int8, u16 / i32 indices,
 * f16 activations, and sparse_to_dense) rendered for CUDA, for sm_80 and sm_90, without register spills. The kernels
 * are recorded from cuda-emu runs. Without nvcc (`$KILN_NVCC`, `/usr/local/cuda/bin/nvcc` or `nvcc` on the PATH) the
 * test skips locally and fails in CI.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import '../../ir/index.js';
import { packBsr, packCsr, packNm, quantizeNm, sparseLayout, type PackedSparse } from '../../ir/ops/sparse.js';
import { makeTensor } from '../../ir/tensor.js';
import { cudaTranslationUnit, recordKernels } from '../../src/runtime/cuda/source.js';
import type { Kernel } from '../../codegen/kir.js';
import { compile } from '../../src/session.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { emuProbe, requireTool } from '../helpers/tools.js';

function findNvcc(): string | undefined {
  for (const c of [process.env['KILN_NVCC'], '/usr/local/cuda/bin/nvcc', 'nvcc']) {
    if (!c) continue;
    if (spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0) return c;
  }
  return undefined;
}
const NVCC = findNvcc();
const noNvcc = await requireTool('nvcc', async () => (NVCC ? undefined : 'install the CUDA toolkit or set KILN_NVCC'));
const noEmu = await requireTool('g++ (cuda-emu)', emuProbe);
const tmp = mkdtempSync(join(os.tmpdir(), 'kiln-sparse-nvcc-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const K = 32;
const N = 8;
const W = Array.from({ length: K * N }, (_, i) => (i % 3 === 0 && (i >> 3) % 4 < 2 ? (i % 7) - 3 || 1 : 0));

function graph(p: PackedSparse, M: number, dt: 'f32' | 'f16', index: 'i32' | 'u16', bits = 0) {
  const g = p.geometry;
  const b = new GraphBuilder('s');
  const qz = bits ? quantizeNm(p, bits as 4 | 8, 4) : undefined;
  const vShape =
    g.format === 'csr' ? [p.values.length] : g.format === 'bsr' ? [p.indices.length, ...g.block] : [N, K / 2];
  const ins = [
    b.input('a', dt, [M, K]),
    qz
      ? b.weight('v', makeTensor('u8', [N, (K / 2) * (bits / 8)], qz.data), sparseLayout(g))
      : b.weight('v', makeTensor(dt, vShape, p.values), sparseLayout(g)),
    b.weight('i', makeTensor(g.format === 'nm' ? 'u8' : index, [p.indices.length], p.indices)),
    p.rowPtr ? b.weight('r', makeTensor('i32', [p.rowPtr.length], p.rowPtr)) : null,
    qz ? b.weight('s', makeTensor('f32', [N, qz.scales.length / N], qz.scales)) : null,
  ];
  const attrs = { format: g.format, K, N, block: [...g.block], ...(bits ? { bits, group: 4 } : {}) };
  b.output(b.op('sparse_matmul', ins, attrs), 'y');
  b.output(b.op('sparse_to_dense', ins.slice(1), attrs), 'w');
  return { graph: b.build(), feeds: { a: makeTensor(dt, [M, K], new Array(M * K).fill(0.5)) } };
}

describe.skipIf(noNvcc || noEmu)('nvcc compiles the sparse kernels', () => {
  it('csr / bsr / 2:4 (+ int4 / int8), spmv and spmm, f32 / f16, for sm_80 and sm_90', async () => {
    const packs = [packCsr(W, K, N), packBsr(W, K, N, [2, 4]), packNm(W, K, N)];
    const rec = await recordKernels(async () => {
      for (const M of [1, 5])
        for (const dt of ['f32', 'f16'] as const) {
          const cases = packs.map((p) => graph(p, M, dt, dt === 'f16' ? 'u16' : 'i32'));
          cases.push(graph(packs[2]!, M, dt, 'i32', 4), graph(packs[2]!, M, dt, 'i32', 8));
          for (const { graph: g, feeds } of cases) {
            const s = await compile(g, { backend: 'cuda-emu', opt: 0 });
            await s.run(feeds).finally(() => s.dispose());
          }
        }
    });
    const kernels = new Map<string, Kernel>();
    for (const r of rec.runs) for (const k of r) if (k.name.includes('sparse')) kernels.set(k.name, k);
    expect(kernels.size).toBeGreaterThanOrEqual(12);
    const file = join(tmp, 'sparse.cu');
    writeFileSync(file, cudaTranslationUnit(kernels.values(), 'nvcc'));
    for (const arch of ['sm_80', 'sm_90']) {
      const args = ['-c', `-arch=${arch}`, '-std=c++17', '-Xptxas', '-v', '-diag-suppress', '177'];
      args.push('-I', join(REPO_ROOT, 'codegen/cuda/emu'), '-o', join(tmp, `${arch}.o`), file);
      const r = spawnSync(NVCC!, args, { encoding: 'utf8' });
      const log = `${r.stdout}${r.stderr}`;
      expect(r.status, `nvcc ${arch}:\n${log.slice(0, 4000)}`).toBe(0);
      const compiled = [...log.matchAll(/Compiling entry function '([^']+)'/g)].length;
      expect(compiled).toBe(kernels.size);
      expect(log).not.toMatch(/[1-9]\d* bytes spill (stores|loads)/);
    }
  }, 300_000);
});
