/**
 * The ONNX conformance suite through the cuda-emu backend (CUDA C compiled by g++ against the emulation header, run
 * with CUDA semantics on the CPU): no failures, the skips exactly the allow-listed ones in skips.json's counts, and no
 * pass that ran on the host alone unless its graph has no node to run. The runner compiles all kernels of the suite
 * up front in a few translation units (prepareAll), cached on disk by source hash. Needs g++ on x86-64 Linux.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatResult, runConformance } from '../../src/conformance.js';
import { emuProbe, requireTool } from '../helpers/tools.js';
import { CONFORMANCE, REPO_ROOT } from '../helpers/paths.js';

const overrides = JSON.parse(readFileSync(join(REPO_ROOT, 'test/conformance/tolerances.json'), 'utf8'));
const skips = JSON.parse(readFileSync(join(REPO_ROOT, 'test/conformance/skips.json'), 'utf8')) as Record<
  string,
  { count: number }
>;
const expectedSkips = Object.fromEntries(Object.entries(skips).map(([id, s]) => [id, s.count]));
const available = !(await requireTool('g++ (cuda-emu)', emuProbe));
const dirs = [join(CONFORMANCE, 'onnx-node'), join(CONFORMANCE, 'models')];

describe.skipIf(!available)('conformance (cuda-emu backend)', () => {
  it('passes every test it does not skip for an allow-listed reason, on the device', async () => {
    const t0 = performance.now();
    const emu = await runConformance(dirs, { backend: 'cuda-emu', overrides });
    console.log(
      `cuda-emu: ${emu.passed} passed (${emu.hostOnly} host-only), ${emu.failed} failed, ${emu.skipped} skipped ` +
        `(${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );
    expect(emu.results.filter((r) => r.status === 'fail').map(formatResult)).toEqual([]);
    expect(emu.skipsByReason).toEqual(expectedSkips);
    expect(emu.results.every((r) => r.status !== 'pass' || r.backend === 'cuda-emu')).toBe(true);
    const hostOnly = emu.results.filter((r) => r.hostOnly);
    expect(hostOnly.filter((r) => r.placement!.host !== 0).map(formatResult)).toEqual([]);
    expect(hostOnly.map((r) => r.name).every((n) => n.startsWith('test_shape'))).toBe(true);
  }, 900_000);
});
