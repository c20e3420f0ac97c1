/**
 * The `kiln` CLI contract: help and --version, conformance lines and summary, exit statuses (0 ok, 1 a conformance
 * test failed, 2 bad usage or input), every bad argument a single `kiln: ...` line on stderr with no stack trace, and
 * no stderr noise in normal use. Most cases call main() in process; a few spawn the built CLI (`npm run build`) to
 * check what only the real process shows: the top-level handler, native (Dawn) writes to stderr.
 */
import { fileProbe, requireTool } from '../helpers/tools.js';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { kernelSources, loadModel, parseDims } from '../../src/inspect.js';
import { skipWebgpu } from '../helpers/backends.js';
import { CONFORMANCE, REPO_ROOT } from '../helpers/paths.js';

const CLI = join(REPO_ROOT, 'dist/src/cli.js');
const spawnKiln = (...args: string[]) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
const VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** main() in process, with stdout / stderr captured. */
async function kiln(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const status = await main(args, { out: (t) => (stdout += t), err: (t) => (stderr += t) });
  return { status, stdout, stderr };
}

const ADD = join(CONFORMANCE, 'onnx-node/test_add');
const GPT2 = join(CONFORMANCE, 'models/model_gpt2_past/model.onnx');
const tmp = mkdtempSync(join(tmpdir(), 'kiln-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const EMPTY = join(tmp, 'empty');
mkdirSync(EMPTY);

describe('kiln CLI: normal use', () => {
  it('--help lists every command and says which backend each command defaults to', async () => {
    const r = await kiln('--help');
    expect(r.status).toBe(0);
    for (const c of ['demo', 'generate', 'perplexity', 'conformance', 'ir', 'kernels', 'help'])
      expect(r.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
    expect(r.stdout).toMatch(/auto \| reference \| webgpu \| cuda-emu \| cuda \(default auto/);
    expect(r.stdout).toMatch(/auto \| reference \| webgpu \| cuda-emu \| cuda \(default reference\)/);
  });

  it('--version prints the package.json version', async () => {
    const r = await kiln('--version');
    expect([r.status, r.stdout, r.stderr]).toEqual([0, `${VERSION}\n`, '']);
  });

  it('conformance prints PASS / FAIL / SKIP lines and the closing summary; exit 1 on a failure', async () => {
    const ok = await kiln('conformance', ADD, join(CONFORMANCE, 'onnx-node/test_identity_sequence'));
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/^PASS test_add {2}\S+$/m);
    expect(ok.stdout).toMatch(/^SKIP test_identity_sequence {2}.+$/m);
    expect(ok.stdout).toMatch(/^skipped by reason: sequence 1$/m);
    expect(ok.stdout.trim().split('\n').at(-1)).toBe('1 passed, 0 failed, 1 skipped');
    expect(ok.stderr).toBe('');
    // a copy of test_add whose only test set lost its expected output: nothing to compare is a failure
    const noOut = join(tmp, 'fail', 'test_add');
    cpSync(ADD, noOut, { recursive: true });
    rmSync(join(noOut, 'test_data_set_0', 'output_0.pb'));
    const bad = await kiln('conformance', noOut);
    expect(bad.status).toBe(1);
    expect(bad.stdout).toMatch(/^FAIL test_add {2}test_data_set_0 has no output_\*\.pb/m);
    expect(bad.stdout.trim().split('\n').at(-1)).toBe('0 passed, 1 failed, 0 skipped');
  });

  it('--opt accepts every level, and --json records the backend, opt and each result', async () => {
    const json = join(tmp, 'out.json');
    const r = await kiln('conformance', '--opt', '0', '--json', json, ADD);
    expect(r.status).toBe(0);
    const j = JSON.parse(readFileSync(json, 'utf8')) as Record<string, unknown> & {
      results: { name: string; status: string; placement: unknown }[];
    };
    expect([j['backend'], j['opt'], j['passed'], j['hostOnly']]).toEqual(['reference', 0, 1, 0]);
    expect(j.results.map((x) => [x.name, x.status, x.placement])).toEqual([
      ['test_add', 'pass', { host: 1, device: 0 }],
    ]);
    for (const opt of ['1', '2', '3']) expect((await kiln('conformance', '--opt', opt, ADD)).status).toBe(0);
  });

  it('ir / kernels take --dims naming the symbolic input dims', async () => {
    const r = await kiln('ir', GPT2, '--dims', 'batch_size=1,seq_len=3');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/input_ids/);
    expect(r.stderr).toBe('');
  });
});

describe('kiln CLI: every bad argument is one line on stderr, exit 2', () => {
  const cases: [string, string[], RegExp][] = [
    ['unknown command', ['frobnicate'], /unknown command 'frobnicate'/],
    ['unknown flag', ['conformance', '--frob', ADD], /unknown option '--frob' for 'conformance'/],
    ['unknown flag (demo)', ['demo', '--fast'], /unknown option '--fast' for 'demo'/],
    ['flag missing its value', ['conformance', ADD, '--backend'], /option '--backend' needs a value/],
    ['flag followed by a flag', ['conformance', '--opt', '--quiet', ADD], /option '--opt' needs a value/],
    [
      'bad backend',
      ['conformance', '--backend', 'nope', ADD],
      /unknown backend 'nope' \(expected one of auto, reference, webgpu, cuda-emu, cuda\)/,
    ],
    ['bad backend (demo)', ['demo', '--backend', 'gpu'], /unknown backend 'gpu' \(expected one of auto, reference,/],
    [
      '--opt 7',
      ['conformance', '--opt', '7', ADD],
      /unknown optimization level '7' for --opt \(expected one of 0, 1, 2, 3\)/,
    ],
    ['--opt x', ['conformance', '--opt', 'x', ADD], /unknown optimization level 'x' .*0, 1, 2, 3/],
    ['--opt empty', ['conformance', '--opt=', ADD], /unknown optimization level '' /],
    ['--opt 1.0', ['conformance', '--opt', '1.0', ADD], /unknown optimization level '1.0' /],
    ['conformance without DIR', ['conformance'], /conformance needs at least one DIR/],
    ['missing directory', ['conformance', join(tmp, 'nope')], /no such directory: .*nope/],
    ['file where a directory is expected', ['conformance', join(ADD, 'model.onnx')], /not a directory: .*model\.onnx/],
    ['empty directory', ['conformance', EMPTY], /no conformance tests/],
    [
      'missing --tolerances file',
      ['conformance', '--tolerances', join(tmp, 'no.json'), ADD],
      /--tolerances: no such file/,
    ],
    ['--tolerances not JSON', ['conformance', '--tolerances', join(ADD, 'model.onnx'), ADD], /--tolerances .*not JSON/],
    [
      '--json into a missing folder',
      ['conformance', '--json', join(tmp, 'no/out.json'), ADD],
      /--json .*no such directory/,
    ],
    ['--max-tokens abc', ['demo', '--max-tokens', 'abc'], /--max-tokens wants an integer from 1 to 512, got 'abc'/],
    ['--max-tokens empty', ['demo', '--max-tokens='], /--max-tokens wants an integer from 1 to 512, got ''/],
    ['--max-tokens 0', ['demo', '--max-tokens', '0'], /--max-tokens wants an integer from 1 to 512, got '0'/],
    ['--max-tokens 2.5', ['demo', '--max-tokens', '2.5'], /got '2.5'/],
    ['demo positional', ['demo', 'extra'], /unexpected argument 'extra' for 'demo'/],
    ['--dims empty value', ['ir', GPT2, '--dims', 'batch_size='], /bad --dims entry 'batch_size='/],
    ['--dims empty', ['ir', GPT2, '--dims='], /--dims is empty/],
    ['--dims no name', ['ir', GPT2, '--dims', '=3'], /bad --dims entry '=3'/],
    ['--dims non-numeric', ['ir', GPT2, '--dims', 'batch_size=x'], /bad --dims entry 'batch_size=x'/],
    ['--dims duplicate', ['ir', GPT2, '--dims', 'batch_size=1,batch_size=2'], /--dims gives 'batch_size' twice/],
    [
      '--dims unknown name',
      ['ir', GPT2, '--dims', 'batch=1'],
      /--dims 'batch' is not a symbolic input dim .*batch_size, seq_len/,
    ],
    ['ir without a file', ['ir'], /ir needs one model file, got 0/],
    ['ir with two files', ['ir', GPT2, GPT2], /ir needs one model file, got 2/],
    ['missing model file', ['ir', join(tmp, 'nope.onnx')], /ir: no such file: .*nope\.onnx/],
    ['a directory where a file is expected', ['ir', ADD], /ir: not a file: .*test_add/],
    ['not an ONNX model', ['kernels', join(ADD, 'test_data_set_0', 'input_0.pb')], /./],
    ['bad --target', ['kernels', GPT2, '--target', 'ptx'], /unknown target 'ptx' \(expected wgsl or cuda\)/],
    ['--target on ir', ['ir', GPT2, '--target', 'wgsl'], /unknown option '--target' for 'ir'/],
  ];
  it.each(cases)('%s', async (_, args, message) => {
    const r = await kiln(...args);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.endsWith('\n')).toBe(true);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^kiln: /);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(r.stderr).toMatch(message);
  });
});

const noCli = await requireTool('the built CLI', fileProbe(CLI, 'npm run build'));
describe.skipIf(noCli)('kiln CLI (built, spawned)', () => {
  it('--version, and bad usage through the real top level: one line, exit 2, no stack', () => {
    const v = spawnKiln('--version');
    expect([v.status, v.stdout, v.stderr]).toEqual([0, `${VERSION}\n`, '']);
    for (const args of [
      ['ir', join(tmp, 'nope.onnx')],
      ['ir', ADD],
      ['conformance', ADD, '--opt', '7'],
      ['demo', '--max-tokens', 'abc'],
    ]) {
      const r = spawnKiln(...args);
      expect(r.status).toBe(2);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr).not.toMatch(/^\s+at /m);
    }
  });
});

const noGpu = await skipWebgpu();
describe.skipIf(noCli || noGpu)('kiln demo: nothing on stderr', () => {
  it('demo --backend webgpu writes nothing to stderr (Dawn limit warnings included)', () => {
    const r = spawnKiln('demo', '--backend', 'webgpu', '--max-tokens', '4');
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^backend: webgpu — \d+ nodes as device kernels/m);
  }, 60_000);

  it('demo picks its backend itself (auto) and says which on stdout, once', () => {
    const r = spawnKiln('demo', '--max-tokens', '4');
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.match(/^backend: /gm)).toHaveLength(1);
    expect(r.stdout).toMatch(/^backend: (cuda|webgpu) \(auto: the best one available here\)/m);
    expect(r.stdout).not.toMatch(/unavailable/);
  }, 60_000);
});

describe('kiln ir / kernels', () => {
  it('prints the kernels for given dims, and asks for dims that are missing', async () => {
    expect(parseDims('batch_size=1,seq_len=3')).toEqual({ batch_size: 1, seq_len: 3 });
    expect(parseDims(undefined)).toEqual({});
    expect(() => parseDims('batch=x')).toThrow(/--dims/);
    const g = loadModel(GPT2, parseDims('batch_size=1,seq_len=3'));
    const cu = await kernelSources(g, 'cuda');
    expect(cu).toMatch(/extern "C" __global__ void __launch_bounds__\(\d+\) k_/);
    const wgsl = await kernelSources(g, 'wgsl');
    expect(wgsl).toMatch(/@compute @workgroup_size\(/);
    await expect(kernelSources(loadModel(GPT2), 'wgsl')).rejects.toThrow(/give them with --dims/);
  });
});
