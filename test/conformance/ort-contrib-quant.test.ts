/**
 * The ort-contrib cases of the block-quantized contrib ops (folders named `matmulnbits__*` and
 * `gather-block-quantized__*`: MatMulNBits, GatherBlockQuantized) on the reference, webgpu and cuda-emu backends:
 * every case passes, none is skipped, and on a device backend the device computed it (no host-only pass).
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatResult, runConformance } from '../../src/conformance.js';
import type { BackendChoice } from '../../src/session.js';
import { skipWebgpu } from '../helpers/backends.js';
import { CONFORMANCE, hasShared } from '../helpers/paths.js';
import { emuProbe, requireTool } from '../helpers/tools.js';

const ROOT = join(CONFORMANCE, 'ort-contrib');
const dirs = hasShared
  ? readdirSync(ROOT)
      .filter((n) => n.startsWith('matmulnbits__') || n.startsWith('gather-block-quantized__'))
      .sort()
      .map((n) => join(ROOT, n))
  : [];

const noGpu = await skipWebgpu();
const noEmu = await requireTool('g++ (cuda-emu)', emuProbe);

describe.each<[BackendChoice, boolean]>([
  ['reference', false],
  ['webgpu', noGpu],
  ['cuda-emu', noEmu],
])('ort-contrib block-quantized ops on %s', (backend, skip) => {
  it.skipIf(skip)(
    'passes every MatMulNBits / GatherBlockQuantized case',
    async () => {
      expect(dirs.length).toBeGreaterThanOrEqual(14);
      const s = await runConformance(dirs, { backend });
      console.log(`${backend}: ${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped`);
      expect(s.results.filter((r) => r.status !== 'pass').map(formatResult)).toEqual([]);
      if (backend !== 'reference') {
        expect(s.results.every((r) => r.backend === backend && !r.hostOnly && r.placement!.device > 0)).toBe(true);
      }
    },
    600_000,
  );
});
