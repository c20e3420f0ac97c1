/**
 * The ONNX conformance suite through the WebGPU backend (lavapipe in CI): no failures, the skips exactly the
 * allow-listed ones in skips.json's counts, and no pass that ran on the host alone unless its graph has no node to
 * run (import folded it to constants: the Shape tests), so a device pass means the device computed it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatResult, runConformance } from '../../src/conformance.js';
import { skipWebgpu } from '../helpers/backends.js';
import { CONFORMANCE, REPO_ROOT } from '../helpers/paths.js';

const overrides = JSON.parse(readFileSync(join(REPO_ROOT, 'test/conformance/tolerances.json'), 'utf8'));
const skips = JSON.parse(readFileSync(join(REPO_ROOT, 'test/conformance/skips.json'), 'utf8')) as Record<
  string,
  { count: number }
>;
const expectedSkips = Object.fromEntries(Object.entries(skips).map(([id, s]) => [id, s.count]));
const noGpu = await skipWebgpu();
const dirs = [join(CONFORMANCE, 'onnx-node'), join(CONFORMANCE, 'models')];

describe.skipIf(noGpu)('conformance (webgpu backend)', () => {
  it('passes every test it does not skip for an allow-listed reason, on the device', async () => {
    const gpu = await runConformance(dirs, { backend: 'webgpu', overrides });
    console.log(
      `webgpu: ${gpu.passed} passed (${gpu.hostOnly} host-only), ${gpu.failed} failed, ${gpu.skipped} skipped`,
    );
    expect(gpu.results.filter((r) => r.status === 'fail').map(formatResult)).toEqual([]);
    expect(gpu.skipsByReason).toEqual(expectedSkips);
    expect(gpu.results.every((r) => r.status !== 'pass' || r.backend === 'webgpu')).toBe(true);
    const hostOnly = gpu.results.filter((r) => r.hostOnly);
    expect(hostOnly.filter((r) => r.placement!.host !== 0).map(formatResult)).toEqual([]);
    expect(hostOnly.map((r) => r.name).every((n) => n.startsWith('test_shape'))).toBe(true);
  }, 900_000);
});
