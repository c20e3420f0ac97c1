/**
 * Real MPI runs of the built CLI: stories260K greedy text split 2 ways and 4 ways (TP 2 / 4, PP 2 / 4, TP × PP 2 × 2, PP 2 with 2 interleaved virtual stages each)
 * equals the single-process text; `kiln run-parallel` spawns mpirun itself; `kiln plan` for LLaMA-7B / -70B on 8
 * devices; TP × PP on cuda-emu ranks (compiled segments); the shim's typed error when mpicc is missing. mpirun through requireTool (fails in CI when absent).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UnsupportedError } from '../../ir/errors.js';
import { mpiShimLibrary } from '../../src/parallel/mpi.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { emuProbe, fileProbe, requireTool } from '../helpers/tools.js';

const CLI = join(REPO_ROOT, 'dist/src/cli.js');
const cache = mkdtempSync(join(tmpdir(), 'kiln-mpi-test-'));
const env = { ...process.env, KILN_CACHE_DIR: cache };
const MPIRUN = ['--allow-run-as-root', '--oversubscribe'];

const noMpi = await requireTool('mpirun (Open MPI)', () => {
  const r = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : 'install openmpi-bin and libopenmpi-dev';
});
const noCli = await requireTool('the built CLI', fileProbe(CLI, 'npm run build'));
const noEmu = await requireTool('cuda-emu (a C compiler)', emuProbe);

const GEN = ['generate', 'stories260K', '--steps', '12', '--prompt', 'Once upon a time'];

function kiln(args: readonly string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env, timeout: 60_000 });
}
function mpirun(np: number, args: readonly string[]) {
  return spawnSync('mpirun', [...MPIRUN, '-np', String(np), process.execPath, CLI, ...args], {
    encoding: 'utf8',
    env,
    timeout: 60_000,
  });
}

describe.skipIf(noMpi || noCli)('MPI ranks (mpirun, built CLI)', () => {
  const single = kiln([...GEN, '--tp', '1', '--pp', '1']);
  const text = single.stdout.split('\n')[0]!;

  it('single process baseline generates text', () => {
    expect(single.status).toBe(0);
    expect(text.length).toBeGreaterThan(10);
  });

  it.each([
    [2, 1, 1],
    [4, 1, 1],
    [1, 2, 1],
    [1, 4, 1],
    [2, 2, 1],
    [1, 2, 2],
  ])('tp %i × pp %i (virtual stages %i) gives the single-process greedy text', (tp, pp, virtual) => {
    const r = mpirun(tp * pp, [...GEN, '--tp', String(tp), '--pp', String(pp), '--virtual', String(virtual)]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe(text);
    expect(r.stdout).toMatch(/# bubble fraction \d\.\d+; bytes exchanged per token [1-9]\d*/);
    expect(r.stdout).toMatch(new RegExp(`# per-rank busy s: (r\\d\\(stage \\d\\) \\d\\.\\d+(, )?){${tp * pp}}`));
  });

  it.skipIf(noEmu)('tp 2 × pp 2 on cuda-emu ranks (segments compiled as Sessions, collectives over MPI)', () => {
    const r = mpirun(4, [...GEN, '--tp', '2', '--pp', '2', '--backend', 'cuda-emu']);
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')[0]).toBe(text);
  });

  it('several sequences in flight (pp 2): static and dynamic schedules give each prompt its single-process text', () => {
    const prompts = ['One day a little girl named Lily went to the park with her mom and saw a dog', 'Tom', 'Sue'];
    const want = prompts.map(
      (p) => kiln(['generate', 'stories260K', '--steps', '5', '--prompt', p, '--tp', '1']).stdout.split('\n')[0],
    );
    for (const schedule of ['static', 'dynamic']) {
      const r = mpirun(2, [
        'generate',
        'stories260K',
        '--steps',
        '5',
        '--pp',
        '2',
        '--prompts',
        prompts.join('|'),
        '--schedule',
        schedule,
      ]);
      expect(r.stderr).toBe('');
      expect(r.stdout.split('\n').slice(0, 3)).toEqual(want);
      expect(r.stdout).toMatch(/# bubble fraction \d\.\d+; entry order/);
      // static: arrival order; dynamic: the short prompts enter first (Johnson's rule on measured stage times)
      expect(r.stdout).toMatch(schedule === 'static' ? /entry order 0,1,2,0,1,2/ : /entry order 1,2,0/);
    }
  });

  it('bad splits are one-line typed errors', () => {
    const alone = kiln([...GEN, '--tp', '2']); // not under mpirun: a world of 1
    expect(alone.status).toBe(2);
    expect(alone.stderr).toMatch(/--tp 2 × --pp 1 needs 2 ranks, the MPI world has 1/);
    const three = mpirun(3, [...GEN, '--tp', '3']); // stories260K has 4 KV heads
    expect(three.status).not.toBe(0);
    expect(three.stderr).toMatch(/KV heads 4 is not divisible by tp 3 \[at tensor 'past_key_0'\]/);
  });

  it('kiln run-parallel spawns mpirun itself', () => {
    const r = kiln(['run-parallel', ...GEN.slice(1), '--tp', '2', '--pp', '1']);
    expect(r.status).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe(text);
  });
});

describe.skipIf(noCli)('kiln plan (built CLI)', () => {
  it('LLaMA-7B and -70B on 8 devices', () => {
    const a = kiln(['plan', '--model', 'llama-7b', '--devices', '8', '--device-memory', '80', '--bandwidth', '300']);
    expect(a.status).toBe(0);
    expect(a.stdout).toMatch(/plan: tp \d × pp \d/);
    expect(a.stdout).toMatch(/^\*\s+8\s+1\s+2\.0\s+yes/m);
    const b = kiln(['plan', '--model', 'llama-70b', '--devices', '8', '--device-memory', '24']);
    expect(b.stdout).toMatch(/^\s+1\s+8\s+17\.4\s+yes.*0\.467\s+0\.875$/m); // (S-1)/(M·V+S-1) beside (S-1)/(M·V)
    const c = kiln(['plan', '--model', 'llama-70b', '--devices', '8', '--device-memory', '16']);
    expect(c.status).toBe(1);
    expect(c.stderr).toMatch(/no tp × pp split of 8 devices fits 16 GB/);
  });
});

describe('MPI shim', () => {
  it('a missing mpicc is a typed error naming it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-mpi-none-'));
    expect(() => mpiShimLibrary({ KILN_CACHE_DIR: dir, KILN_MPICC: '/nonexistent/mpicc' })).toThrow(UnsupportedError);
    expect(() => mpiShimLibrary({ KILN_CACHE_DIR: dir, KILN_MPICC: '/nonexistent/mpicc' })).toThrow(/mpicc/);
  });
});
