/**
 * `kiln quantize` on stories260K (../shared/models): the per-layer / overall report, the logits error against the
 * float model, perplexity before / after with --eval (int8 RTN within 0.5% of f32 on a few evaluation windows),
 * --out written as IR text with the quantized ops, and bad arguments as one `kiln:` line, status 2.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import '../../ir/index.js';
import { main } from '../../src/cli.js';
import { logitsError } from '../../src/quantize.js';
import { SHARED } from '../helpers/paths.js';
import { fileProbe, requireTool } from '../helpers/tools.js';

const MODEL = join(SHARED, 'models/stories260K.bin');
const TOK = join(SHARED, 'models/tok512.bin');
const TEXT = join(SHARED, 'data/tinystories-calib.txt');
const tmp = mkdtempSync(join(tmpdir(), 'kiln-quantize-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function kiln(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const status = await main(args, { out: (t) => (stdout += t), err: (t) => (stderr += t) });
  return { status, stdout, stderr };
}

describe('logitsError', () => {
  it('rel-L2 and KL of hand-worked rows', () => {
    // one position, vocab 2: p = softmax([0, 0]) = [½, ½], q = softmax([0, ln 3]) = [¼, ¾]
    const e = logitsError([Float32Array.of(0, 0)], [Float32Array.of(0, Math.log(3))], 2);
    expect(e.positions).toBe(1);
    expect(e.kl).toBeCloseTo(0.5 * Math.log(0.5 / 0.25) + 0.5 * Math.log(0.5 / 0.75), 6);
    const r = logitsError([Float32Array.of(1, 2)], [Float32Array.of(1, 2.5)], 2);
    expect(r.relL2).toBeCloseTo(0.5 / Math.sqrt(5), 12);
    const same = logitsError([Float32Array.of(1, 2, 3, 4)], [Float32Array.of(1, 2, 3, 4)], 2);
    expect([same.relL2, same.kl]).toEqual([0, 0]);
  });
});

const missing = await requireTool('stories260K in ../shared/models', fileProbe(MODEL, 'clone the shared data'));

describe.skipIf(missing)('kiln quantize (stories260K, reference backend)', () => {
  it('int4 g32: per-layer bytes and output error, overall ratio, logits error; --out holds matmul_nbits', async () => {
    const out = join(tmp, 'q4.ir');
    const r = await kiln(
      'quantize',
      MODEL,
      '--tokenizer',
      TOK,
      '--bits',
      '4',
      '--group',
      '32',
      '--text',
      TEXT,
      '--calib-windows',
      '1',
      '--window',
      '64',
      '--backend',
      'reference',
      '--out',
      out,
      '--layer-error',
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    // 5 layers × 7 projections; w2 has K = 172: 6 groups of 32, the last ragged (12)
    const rows = r.stdout.split('\n').filter((l) => /\bmatmul_nbits\b/.test(l));
    expect(rows).toHaveLength(35);
    const w2 = rows.find((l) => l.includes('layers.0.w2'))!;
    // 64 rows × 6 blocks × 16 bytes + 384 f32 scales = 7680 bytes, from 172 × 64 × 4 = 44032
    expect(w2).toMatch(/172 x 64\s+32\s+43\.0 KiB\s+7\.5 KiB\s+5\.73x/);
    expect(r.stdout).toMatch(/kept \(embedding\)/);
    expect(r.stdout).toMatch(/kept \(LM head\)/);
    expect(r.stdout).toMatch(/^quantized layers: 885\.0 KiB -> 142\.2 KiB \(6\.22x\)/m);
    const m = /rel-L2 (\S+), KL\(f32 \|\| quantized\) (\S+) nats/.exec(r.stdout)!;
    const [rel, kl] = [Number(m[1]), Number(m[2])];
    expect(rel).toBeGreaterThan(0);
    expect(rel).toBeLessThan(0.5);
    expect(kl).toBeGreaterThan(0);
    expect(kl).toBeLessThan(1);
    // each layer alone: 35 rows of its logits error, all above 0 (every projection matters) and below the total's
    const per = r.stdout.split('output error per layer')[1]!.split('\n').slice(2, 37);
    expect(per.map((l) => l.split(/\s+/)[1])).toContain('layers.4.w2');
    for (const l of per) {
      const [, , e1, k1] = l.trim().split(/\s+/).map(Number);
      expect(e1).toBeGreaterThan(0);
      expect(e1).toBeLessThan(rel);
      expect(k1).toBeGreaterThan(0);
    }
    // the IR text of the quantized graph (parseGraph cannot read it back yet: its tokenizer takes the `_` of an
    // absent optional input — the model's attention nodes have some — for an identifier)
    const ir = readFileSync(out, 'utf8');
    expect(ir.match(/= matmul_nbits\(/g)).toHaveLength(35);
    expect(ir).not.toMatch(/= matmul\(/);
    expect(ir).toMatch(/const %layers\.0\.w2_q4: u8\[64,6,16\] blockq\(bits=4,group=32,axis=1,scale=f32,zp=0\) = /);
  }, 120_000);

  it('--eval: int8 RTN perplexity within 0.5% of f32 (evaluation half, 2 windows of 128)', async () => {
    const r = await kiln(
      'quantize',
      MODEL,
      '--tokenizer',
      TOK,
      '--bits',
      '8',
      '--group',
      '32',
      '--text',
      TEXT,
      '--eval',
      '--calib-windows',
      '1',
      '--window',
      '128',
      '--max-windows',
      '2',
      '--backend',
      'reference',
    );
    expect(r.status).toBe(0);
    const m = /f32 (\S+) -> quantized (\S+) \(([-+]\S+)%\)/.exec(r.stdout)!;
    const [f, q] = [Number(m[1]), Number(m[2])];
    expect(f).toBeGreaterThan(1);
    expect(Math.abs(q / f - 1)).toBeLessThan(0.005);
    expect(r.stdout).toMatch(/second half of .*tinystories-calib\.txt, 254 tokens in 2 windows of 128/);
  }, 120_000);

  it('--method gptq / awq: calibration on the first half, the same report, perplexity with --eval', async () => {
    const args = ['--tokenizer', TOK, '--text', TEXT, '--calib-windows', '2', '--window', '128'];
    const common = [...args, '--eval', '--max-windows', '1', '--backend', 'reference'];
    const g = await kiln('quantize', MODEL, '--method', 'gptq', '--act-order', ...common);
    expect(g.stderr).toBe('');
    expect(g.status).toBe(0);
    expect(g.stdout).toMatch(/GPTQ \(act-order\) int4, group 32, symmetric/);
    expect(g.stdout).toMatch(/^calibration: 2 windows, 256 positions of the first half of .*, 20 activations/m);
    expect(g.stdout.split('\n').filter((l) => /\bmatmul_nbits\b/.test(l))).toHaveLength(35);
    expect(g.stdout).toMatch(/f32 \S+ -> quantized \S+ \([-+]\S+%\)/);
    const a = await kiln('quantize', MODEL, '--method', 'awq', '--asym', ...common);
    expect(a.stderr).toBe('');
    expect(a.status).toBe(0);
    expect(a.stdout).toMatch(/AWQ int4, group 32, asymmetric/);
    // Q/K/V and gate/up scaled into the 5 + 5 norms, w2 into w3's columns; wo unscaled
    const lines = a.stdout.split('\n');
    expect(lines.filter((l) => /^\S+\s+rms_norm_\d+\s+matmul_\d+/.test(l))).toHaveLength(10);
    expect(lines.filter((l) => /^\S+\s+matmul_\d+\s+matmul_\d+\s+\d/.test(l))).toHaveLength(5);
    expect(lines.filter((l) => /unscaled \(produced by attention/.test(l))).toHaveLength(5);
    expect(a.stdout.split('\n').filter((l) => /\bmatmul_nbits\b/.test(l))).toHaveLength(35);
  }, 300_000);

  it('--method w8a8 / smoothquant: int8 matmul_integer layers, smoothing folded into the norms, perplexity', async () => {
    const args = ['--tokenizer', TOK, '--text', TEXT, '--calib-windows', '2', '--window', '128'];
    const common = [...args, '--eval', '--max-windows', '1', '--backend', 'reference'];
    const out = join(tmp, 'sq.kir');
    const s = await kiln('quantize', MODEL, '--method', 'smoothquant', '--alpha', '0.5', '--out', out, ...common);
    expect(s.stderr).toBe('');
    expect(s.status).toBe(0);
    expect(s.stdout).toMatch(/W8A8 SmoothQuant \(alpha 0.5\): int8 weights per output channel, int8 activations/);
    const rows = s.stdout.split('\n').filter((l) => /^\S+\s+\S+\s+\d+ x \d+\s+\S+\s+[\d.]+ KiB/.test(l));
    expect(rows).toHaveLength(35);
    // Q/K/V and gate/up smoothed into the norms, w2 into w3's columns; wo (reads attention) is not
    expect(rows.filter((l) => /rms_norm_\d+/.test(l))).toHaveLength(25);
    expect(s.stdout.split('\n').filter((l) => /not smoothed \(produced by attention/.test(l))).toHaveLength(5);
    expect(s.stdout).toMatch(/f32 \S+ -> quantized \S+ \([-+]\S+%\)/);
    expect(readFileSync(out, 'utf8')).toMatch(/matmul_integer/);
    const n = await kiln('quantize', MODEL, '--method', 'w8a8', ...common);
    expect(n.status, n.stderr).toBe(0);
    expect(n.stdout).toMatch(/W8A8 \(naive\)/);
    expect(n.stdout).not.toMatch(/^calibration:/m);
  }, 300_000);
});

describe('kiln quantize: bad arguments are one line, status 2', () => {
  const bad = async (...args: string[]) => {
    const r = await kiln('quantize', ...args);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^kiln: /);
    return r.stderr;
  };
  it('flags and values', async () => {
    const txt = join(tmp, 't.txt');
    writeFileSync(txt, 'hello\n');
    expect(await bad(MODEL, '--bits', '3')).toMatch(/--bits must be 4 or 8/);
    expect(await bad(MODEL, '--group', '24')).toMatch(/--group must be a power of two/);
    expect(await bad(MODEL, '--method', 'hqq')).toMatch(/unknown quantization method 'hqq'/);
    expect(await bad(MODEL, '--act-order')).toMatch(/--act-order is a GPTQ option/);
    expect(await bad(MODEL, '--alpha', '0.5')).toMatch(/--alpha is a SmoothQuant option/);
    expect(await bad(MODEL, '--method', 'smoothquant', '--alpha', '2')).toMatch(/--alpha wants a number from 0 to 1/);
    expect(await bad(MODEL, '--method', 'w8a8', '--bits', '4')).toMatch(/drop --bits/);
    expect(await bad(MODEL, '--eval')).toMatch(/--eval needs --text/);
    expect(await bad(MODEL, '--frobnicate')).toMatch(/quantize: .*frobnicate/);
    expect(await bad()).toMatch(/quantize needs one model file/);
    expect(await bad(join(tmp, 'nope.bin'), '--text', txt)).toMatch(/no such file/);
  });
  it('--help', async () => {
    const r = await kiln('quantize', '--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/--group N\|channel/);
  });
});
