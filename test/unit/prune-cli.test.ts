/**
 * `kiln prune` on stories260K (../shared/models), reference backend, small windows: the per-layer report (35
 * projections at 2:4, exactly half of each weight zero), totals, perplexity before / after, --out as IR text;
 * structured options shrink the weights in the written graph and the FLOPs line; bad arguments are one `kiln:` line
 * with status 2.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import '../../ir/index.js';
import { main } from '../../src/cli.js';
import { PRUNE_HELP } from '../../src/prune.js';
import { SHARED } from '../helpers/paths.js';
import { fileProbe, requireTool } from '../helpers/tools.js';

const MODEL = join(SHARED, 'models/stories260K.bin');
const TEXT = join(SHARED, 'data/tinystories-calib.txt');
const tmp = mkdtempSync(join(tmpdir(), 'kiln-prune-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function kiln(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const status = await main(args, { out: (t) => (stdout += t), err: (t) => (stderr += t) });
  return { status, stdout, stderr };
}

const SMALL = ['--calib', TEXT, '--calib-windows', '1', '--window', '64', '--backend', 'reference'];
const missing = await requireTool('stories260K in ../shared/models', fileProbe(MODEL, 'clone the shared data'));

describe.skipIf(missing)('kiln prune (stories260K, reference backend)', () => {
  it('SparseGPT 2:4: per-layer report, totals, perplexity before / after, --out', async () => {
    const r = await kiln(
      'prune',
      MODEL,
      '--method',
      'sparsegpt',
      '--pattern',
      '2:4',
      ...SMALL,
      '--eval',
      TEXT,
      '--max-windows',
      '2',
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const rows = r.stdout.split('\n').filter((l) => /^matmul_\d+ /.test(l));
    expect(rows).toHaveLength(35);
    for (const l of rows) expect(l).toMatch(/\s50\.0%\s/);
    expect(rows.find((l) => l.includes('layers.0.w2'))).toMatch(/172 x 64\s+5504 \/ 11008\s+50\.0%\s+43\.0 KiB\s+\d/);
    expect(r.stdout).toMatch(/^calibration: 1 windows, 64 positions of the first half/m);
    expect(r.stdout).toMatch(/^pruned layers: 113280 \/ 226560 nonzero \(50\.0% sparse\)/m);
    expect(r.stdout).toMatch(/^FLOPs of one 64-token prefill .*\(100\.0%\)/m);
    const m = /dense (\S+) -> pruned (\S+) /.exec(r.stdout)!;
    const [d, p] = [Number(m[1]), Number(m[2])];
    expect(d).toBeGreaterThan(1);
    expect(p).toBeGreaterThan(d);
    expect(r.stdout).toMatch(/second half of .*tinystories-calib\.txt, \d+ tokens in \d+ windows of 64, on reference/);
    expect(r.stdout).toMatch(/ 126 tokens in 2 windows of 64/);
  }, 60_000);

  it('magnitude needs no calibration; --out writes the zeroed weights as IR text', async () => {
    const out = join(tmp, 'm.ir');
    const r = await kiln('prune', MODEL, '--sparsity', '0.5', '--out', out);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^magnitude \(output\), 50%:/m);
    expect(r.stdout).not.toMatch(/calibration/);
    const ir = readFileSync(out, 'utf8');
    expect(ir.match(/= matmul\(/g)).toHaveLength(35);
    const wq = /const %layers\.0\.wq: f32\[64,64\] = \[([^\]]*)\]/.exec(ir)![1]!.split(', ').map(Number);
    expect(wq.filter((x) => x === 0)).toHaveLength(2048);
  }, 60_000);

  it('structured: --layers / --heads / --channels shrink the graph and the prefill FLOPs', async () => {
    const out = join(tmp, 's.ir');
    const r = await kiln('prune', MODEL, '--layers', '1', '--heads', '2', '--channels', '43', ...SMALL, '--out', out);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^block influence per layer: (\S+ ){4}\S+$/m);
    expect(r.stdout.split('\n').filter((l) => / kv heads \d/.test(l))).toHaveLength(4);
    expect(r.stdout.split('\n').filter((l) => / channels \d/.test(l) && /172 -> 129/.test(l))).toHaveLength(4);
    const f = /prefill .*: (\S+) -> (\S+) \((\S+)%\)/.exec(r.stdout)!;
    expect(Number(f[2])).toBeLessThan(Number(f[1]));
    const ir = readFileSync(out, 'utf8');
    expect(ir.match(/= attention\(/g)).toHaveLength(4);
    expect(ir.match(/const %layers\.\d\.wq: f32\[64,48\]/g)).toHaveLength(4);
    expect(ir.match(/const %layers\.\d\.w2: f32\[129,64\]/g)).toHaveLength(4);
    expect(ir.match(/input %past_key_\d: f32\[batch,3,past,8\]/g)).toHaveLength(4);
  }, 60_000);

  it('--help, and bad arguments as one kiln: line with status 2', async () => {
    const h = await kiln('prune', '--help');
    expect(h.status).toBe(0);
    expect(h.stdout).toContain(PRUNE_HELP);
    const bad: [string[], RegExp][] = [
      [[MODEL], /nothing to prune/],
      [[MODEL, '--sparsity', '0.5', '--pattern', '2:4'], /either --sparsity/],
      [[MODEL, '--method', 'wanda', '--sparsity', '0.5'], /--method wanda needs --calib FILE/],
      [[MODEL, '--heads', '2'], /structured pruning needs --calib/],
      [[MODEL, '--pattern', '4:2'], /--pattern wants N:M/],
      [[MODEL, '--sparsity', '1.5'], /--sparsity wants a fraction/],
      [[MODEL, '--method', 'wanda', '--sparsity', '0.5', '--scope', 'global', '--calib', TEXT], /magnitude option/],
      [[MODEL, '--method', 'obs', '--sparsity', '0.5'], /unknown pruning method 'obs'/],
      [[MODEL, '--sparsity', '0.5', '--calib', join(tmp, 'nope.txt')], /--calib: cannot read/],
      [
        [MODEL, '--heads', '3', '--calib', TEXT, '--calib-windows', '1', '--window', '16'],
        /evenly over 4 KV groups.*attention/,
      ],
    ];
    for (const [args, msg] of bad) {
      const r = await kiln('prune', ...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^kiln: /);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  }, 60_000);
});
