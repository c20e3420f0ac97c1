/**
 * The ONNX conformance suite through the reference backend: no failures, the GPT-2 graph passes, and the skips are
 * exactly the allow-listed ones in the counts skips.json expects (a new skip, or a fixed one, changes a count).
 * Per-test tolerance overrides (with their reasons) live in tolerances.json.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatResult, runConformance } from '../../src/conformance.js';
import { CONFORMANCE, REPO_ROOT } from '../helpers/paths.js';

const overrides = JSON.parse(readFileSync(join(REPO_ROOT, 'test/conformance/tolerances.json'), 'utf8'));
const skips = JSON.parse(readFileSync(join(REPO_ROOT, 'test/conformance/skips.json'), 'utf8')) as Record<
  string,
  { count: number }
>;
const expectedSkips = Object.fromEntries(Object.entries(skips).map(([id, s]) => [id, s.count]));

describe('conformance (reference backend)', () => {
  it('passes every ONNX node test and model, skipping only the allow-listed ones', async () => {
    const s = await runConformance([join(CONFORMANCE, 'onnx-node'), join(CONFORMANCE, 'models')], { overrides });
    console.log(`${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped`);
    expect(s.results.filter((r) => r.status === 'fail').map(formatResult)).toEqual([]);
    expect(s.skipsByReason).toEqual(expectedSkips);
    expect(s.results.find((r) => r.name === 'model_gpt2_past')?.status).toBe('pass');
    expect(s.hostOnly).toBe(0); // the reference is not a device backend
  }, 300_000);

  it('runs graphs as imported (--opt 0) too', async () => {
    const s = await runConformance([join(CONFORMANCE, 'models', 'model_gpt2_past')], { opt: 0 });
    expect([s.passed, s.failed, s.skipped]).toEqual([1, 0, 0]);
  }, 120_000);
});
