/**
 * The ONNX conformance suite through the cuda-emu backend (CUDA C compiled by g++ against the emulation header, run
 * with CUDA semantics on the CPU): no failures, every skip with a stated reason, and every test the reference backend
 * passes must pass here too, or skip for a reason about the device. The runner compiles all kernels of the suite up
 * front in a few translation units (prepareAll), cached on disk by source hash. Needs g++ on x86-64 Linux.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatResult, runConformance } from '../../src/conformance.js';
import { emuAvailable } from '../../src/runtime/cuda-emu/index.js';
import { CONFORMANCE, REPO_ROOT } from '../helpers/paths.js';

const overrides = JSON.parse(readFileSync(join(REPO_ROOT, 'test/conformance/tolerances.json'), 'utf8'));
const available = await emuAvailable();
if (!available) console.warn('cuda-emu conformance skipped: the CPU emulator needs g++ >= 12 on x86-64 Linux');
const dirs = [join(CONFORMANCE, 'onnx-node'), join(CONFORMANCE, 'models')];

describe.skipIf(!available)('conformance (cuda-emu backend)', () => {
  it('passes every test the reference backend passes', async () => {
    const ref = await runConformance(dirs, { overrides });
    const t0 = performance.now();
    const emu = await runConformance(dirs, { backend: 'cuda-emu', overrides });
    console.log(
      `cuda-emu: ${emu.passed} passed, ${emu.failed} failed, ${emu.skipped} skipped ` +
        `(${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );
    expect(emu.results.filter((r) => r.status === 'fail').map(formatResult)).toEqual([]);
    for (const r of emu.results.filter((x) => x.status === 'skip')) expect(r.reason ?? '').not.toBe('');
    const refPassed = new Set(ref.results.filter((r) => r.status === 'pass').map((r) => r.name));
    const bad = emu.results
      .filter((r) => refPassed.has(r.name) && r.status !== 'pass')
      .filter((r) => !(r.status === 'skip' && /device|limit/i.test(r.reason ?? '')))
      .map(formatResult);
    expect(bad).toEqual([]);
  }, 900_000);
});
