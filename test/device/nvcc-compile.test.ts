/**
 * nvcc compile check of the CUDA C dialect: every kernel the lowerings produce for the ONNX conformance suite and for
 * the random-graph property (lowered through the cuda-emu backend with recording on — nothing runs) is rendered into
 * one translation unit with the nvcc prelude and compiled for sm_80 and sm_90 (`nvcc -c -Xptxas -v`, the two
 * architectures in parallel). Fails on any compile error, on a kernel ptxas did not compile, and on any register
 * spill. Without nvcc (`/usr/local/cuda/bin/nvcc`, or `$KILN_NVCC`) or ../shared the test skips locally and fails in CI.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Kernel } from '../../codegen/kir.js';
import { findTests, runConformance } from '../../src/conformance.js';
import { cudaTranslationUnit, recordKernels } from '../../src/runtime/cuda/source.js';
import { compile } from '../../src/session.js';
import { CONFORMANCE, REPO_ROOT } from '../helpers/paths.js';
import { fileProbe, requireTool, sharedProbe } from '../helpers/tools.js';
import { randomGraph } from '../helpers/random-graph.js';

const NVCC = process.env['KILN_NVCC'] ?? '/usr/local/cuda/bin/nvcc';
const noNvcc = await requireTool('nvcc', fileProbe(NVCC, 'install the CUDA toolkit or set KILN_NVCC'));
// the conformance suite is most of the kernels checked: without ../shared the check would pass on a fraction of them
const noShared = await requireTool('the ../shared conformance data', sharedProbe);

const ARCHS = ['sm_80', 'sm_90'] as const;
const RANDOM_GRAPHS = 40;
const tmp = mkdtempSync(join(os.tmpdir(), 'kiln-nvcc-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Every distinct kernel the conformance suite and the random graphs lower to (for the CUDA caps), by name. */
async function collectKernels(): Promise<Map<string, Kernel>> {
  const rec = await recordKernels(async () => {
    const tests = findTests([join(CONFORMANCE, 'onnx-node'), join(CONFORMANCE, 'models')]);
    await runConformance(tests, { backend: 'cuda-emu' });
    for (let seed = 1; seed <= RANDOM_GRAPHS; seed++) {
      for (const dtype of ['f32', 'f16'] as const) {
        const { graph, feeds } = randomGraph(seed * 7919, 1 + (seed % 8), dtype);
        try {
          const s = await compile(graph, { backend: 'cuda-emu' });
          await s.run(feeds).finally(() => s.dispose());
        } catch {
          /* ops without a lowering: nothing to compile */
        }
      }
    }
  });
  const kernels = new Map<string, Kernel>();
  for (const r of rec.runs) for (const k of r) kernels.set(k.name, k);
  return kernels;
}

interface NvccResult {
  arch: string;
  code: number | null;
  log: string;
  ms: number;
}

function nvcc(file: string, arch: string): Promise<NvccResult> {
  const args = [
    '-c',
    `-arch=${arch}`,
    '-std=c++17',
    '-Xptxas',
    '-v',
    '-diag-suppress',
    '177', // "variable declared but never referenced": index helpers the kernel did not need
    '-I',
    join(REPO_ROOT, 'codegen/cuda/emu'),
    '-o',
    join(tmp, `${arch}.o`),
    file,
  ];
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(NVCC, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr.on('data', (d: Buffer) => (log += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ arch, code, log, ms: performance.now() - t0 }));
  });
}

/** Kernels ptxas compiled, and those whose "Function properties" report a nonzero spill. */
function parsePtxasLog(log: string): { compiled: Set<string>; spills: string[] } {
  const compiled = new Set<string>();
  const spills: string[] = [];
  let current = '';
  for (const line of log.split('\n')) {
    const entry = /Compiling entry function '([^']+)'/.exec(line);
    if (entry) {
      current = entry[1]!;
      compiled.add(current);
      continue;
    }
    const spill = /(\d+) bytes spill stores, (\d+) bytes spill loads/.exec(line);
    if (spill && (spill[1] !== '0' || spill[2] !== '0')) spills.push(`${current}: ${line.trim()}`);
  }
  return { compiled, spills };
}

describe.skipIf(noNvcc || noShared)('nvcc compiles every generated kernel', () => {
  it('conformance + random-graph kernels for sm_80 and sm_90, no errors, no spills', async () => {
    const t0 = performance.now();
    const kernels = await collectKernels();
    expect(kernels.size).toBeGreaterThan(300); // the conformance suite alone lowers to ~370 distinct kernels
    const file = join(tmp, 'kiln_kernels.cu');
    writeFileSync(file, cudaTranslationUnit(kernels.values(), 'nvcc'));
    const results = await Promise.all(ARCHS.map((a) => nvcc(file, a)));
    for (const r of results) {
      const errors = r.log
        .split('\n')
        .filter((l) => /error/i.test(l))
        .slice(0, 20);
      expect(r.code, `nvcc ${r.arch} failed:\n${errors.join('\n') || r.log.slice(0, 4000)}`).toBe(0);
      const { compiled, spills } = parsePtxasLog(r.log);
      expect(spills, `${r.arch}: register spills`).toEqual([]);
      expect(
        [...kernels.keys()].filter((k) => !compiled.has(k)),
        `${r.arch}: kernels ptxas did not compile`,
      ).toEqual([]);
    }
    console.log(
      `nvcc: ${kernels.size} kernels, ${results.map((r) => `${r.arch} ${(r.ms / 1000).toFixed(1)} s`).join(', ')}, ` +
        `total ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  }, 300_000);
});
