/**
 * The ONNX conformance suite through the reference backend: every test passes or skips with a stated reason,
 * and the GPT-2 graph passes. Per-test tolerance overrides (with their reasons) live in tolerances.json.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatResult, runConformance } from '../../src/conformance.js';
import { CONFORMANCE, REPO_ROOT } from '../helpers/paths.js';

const overrides = JSON.parse(readFileSync(join(REPO_ROOT, 'test/conformance/tolerances.json'), 'utf8'));

describe('conformance (reference backend)', () => {
  it('passes every ONNX node test and model it does not skip', async () => {
    const s = await runConformance([join(CONFORMANCE, 'onnx-node'), join(CONFORMANCE, 'models')], { overrides });
    const failures = s.results.filter((r) => r.status === 'fail').map(formatResult);
    console.log(`${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped`);
    expect(failures).toEqual([]);
    for (const r of s.results.filter((x) => x.status === 'skip')) expect(r.reason ?? '').not.toBe('');
    expect(s.results.find((r) => r.name === 'model_gpt2_past')?.status).toBe('pass');
    expect(s.passed / (s.passed + s.failed)).toBeGreaterThanOrEqual(0.95);
  }, 300_000);

  it('runs graphs as imported (--opt 0) too', async () => {
    const s = await runConformance([join(CONFORMANCE, 'models', 'model_gpt2_past')], { opt: 0 });
    expect(s.failed).toBe(0);
    expect(s.passed).toBe(1);
  }, 120_000);
});
