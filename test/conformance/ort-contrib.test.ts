/**
 * ONNX Runtime contrib-op cases (`com.microsoft`: attention family, rotary, skip / simplified layer norms, gelus) from
 * `../shared/conformance/ort-contrib`, on the reference, webgpu and cuda-emu backends: no failures and no skips (the
 * contrib converters map every case onto kiln ops). The block-quantized cases (MatMulNBits, GatherBlockQuantized)
 * are left to their own suite. A device pass must have run on the device (no host-only pass).
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatResult, runConformance, type ConformanceSummary } from '../../src/conformance.js';
import { skipWebgpu } from '../helpers/backends.js';
import { CONFORMANCE, hasShared } from '../helpers/paths.js';
import { emuProbe, requireTool } from '../helpers/tools.js';

const ROOT = join(CONFORMANCE, 'ort-contrib');
/** Cases of other op families (block-quantized), run by their own suite. */
const OTHERS = /^(matmulnbits__|gather-block-quantized__)/;
const cases = hasShared
  ? readdirSync(ROOT, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !OTHERS.test(e.name))
      .map((e) => join(ROOT, e.name))
      .sort()
  : [];
/** Skips allowed in this suite, by ALLOWED_SKIPS id, with their counts (none: every case runs). */
const EXPECTED_SKIPS: Record<string, number> = {};
const noGpu = await skipWebgpu();
const noEmu = await requireTool('g++ (cuda-emu)', emuProbe);

function check(s: ConformanceSummary, backend: string): void {
  console.log(
    `ort-contrib ${backend}: ${s.passed} passed (${s.hostOnly} host-only), ${s.failed} failed, ${s.skipped} skipped`,
  );
  expect(s.results.filter((r) => r.status === 'fail').map(formatResult)).toEqual([]);
  expect(s.skipsByReason).toEqual(EXPECTED_SKIPS);
  expect(s.passed).toBe(cases.length);
  if (backend !== 'reference') {
    expect(s.results.every((r) => r.status !== 'pass' || r.backend === backend)).toBe(true);
    expect(s.results.filter((r) => r.hostOnly).map(formatResult)).toEqual([]);
  }
}

describe.skipIf(!hasShared)('conformance: ONNX Runtime contrib ops', () => {
  it('has the 22 non-quantized cases', () => {
    expect(cases.length).toBe(22);
  });

  it('passes on the reference backend', async () => {
    check(await runConformance(cases), 'reference');
  }, 120_000);

  it('passes on the reference backend as imported (--opt 0)', async () => {
    check(await runConformance(cases, { opt: 0 }), 'reference');
  }, 120_000);

  it.skipIf(noGpu)(
    'passes on webgpu',
    async () => {
      check(await runConformance(cases, { backend: 'webgpu' }), 'webgpu');
    },
    300_000,
  );

  it.skipIf(noEmu)(
    'passes on cuda-emu',
    async () => {
      check(await runConformance(cases, { backend: 'cuda-emu' }), 'cuda-emu');
    },
    600_000,
  );
});
