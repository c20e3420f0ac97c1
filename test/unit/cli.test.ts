/** The `kiln` CLI contract: help lists the commands, conformance prints its lines and summary, exit statuses. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { kernelSources, loadModel, parseDims } from '../../src/inspect.js';
import { CONFORMANCE, REPO_ROOT } from '../helpers/paths.js';

const CLI = join(REPO_ROOT, 'dist/src/cli.js');
const kiln = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });

describe.skipIf(!existsSync(CLI))('kiln CLI (built)', () => {
  it('--help lists every command', () => {
    const r = kiln('--help');
    expect(r.status).toBe(0);
    for (const c of ['demo', 'conformance', 'ir', 'kernels', 'help'])
      expect(r.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
  });
  it('conformance prints PASS / FAIL / SKIP lines and the closing summary; exit 1 on a failure', () => {
    const ok = kiln(
      'conformance',
      join(CONFORMANCE, 'onnx-node/test_add'),
      join(CONFORMANCE, 'onnx-node/test_identity_sequence'),
    );
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/^PASS test_add {2}\S+$/m);
    expect(ok.stdout).toMatch(/^SKIP test_identity_sequence {2}.+$/m);
    expect(ok.stdout.trim().split('\n').at(-1)).toBe('1 passed, 0 failed, 1 skipped');
    const bad = kiln('conformance', join(CONFORMANCE, 'models/model_decoder_block_d512'));
    expect(bad.status).toBe(1);
    expect(bad.stdout).toMatch(/^FAIL model_decoder_block_d512 {2}y: element \d+/m);
  });
  it('bad usage exits 2 with a message', () => {
    const r = kiln('conformance', '--backend', 'nope', 'x');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("unknown backend 'nope'");
  });
});

describe('kiln ir / kernels', () => {
  it('prints the kernels for given dims, and asks for dims that are missing', async () => {
    const model = join(CONFORMANCE, 'models/model_gpt2_past/model.onnx');
    expect(parseDims('batch_size=1,seq_len=3')).toEqual({ batch_size: 1, seq_len: 3 });
    expect(() => parseDims('batch=x')).toThrow(/--dims/);
    const g = loadModel(model, parseDims('batch_size=1,seq_len=3'));
    const cu = await kernelSources(g, 'cuda');
    expect(cu).toMatch(/extern "C" __global__ void __launch_bounds__\(\d+\) k_/);
    const wgsl = await kernelSources(g, 'wgsl');
    expect(wgsl).toMatch(/@compute @workgroup_size\(/);
    await expect(kernelSources(loadModel(model), 'wgsl')).rejects.toThrow(/give them with --dims/);
  });
});
