/**
 * Real MPI runs over random LLaMA configs: random llama2.c checkpoints (head counts, GQA ratios, widths, depths, tied
 * or separate classifiers, random weights) and a character tokenizer are written to disk, and the built CLI's greedy
 * text under `mpirun -np 2 / 4` for TP 2 / 4, PP 2 / 4 and TP × PP 2 × 2 must equal the same CLI's single-process
 * text (`--tp 1 --pp 1`). The configs come from a seeded generator (`KILN_PROP_RUNS` scales how many). The property
 * over random LLaMA *and* GPT-2 graphs on every split runs in one process in tp-reference / pp-reference (the
 * collectives' all-ranks reference); this file checks the MPI transport on random models.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PROP_RUNS, REPO_ROOT } from '../helpers/paths.js';
import { fileProbe, requireTool } from '../helpers/tools.js';

const CLI = join(REPO_ROOT, 'dist/src/cli.js');
const dir = mkdtempSync(join(tmpdir(), 'kiln-mpi-random-'));
const env = { ...process.env, KILN_CACHE_DIR: join(dir, 'cache') };
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const noMpi = await requireTool('mpirun (Open MPI)', () => {
  const r = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : 'install openmpi-bin and libopenmpi-dev';
});
const noCli = await requireTool('the built CLI', fileProbe(CLI, 'npm run build'));

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32;
}

interface Cfg {
  dim: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  seq: number;
  tied: boolean;
}

/** A random config every tested split divides: 4 KV heads, widths and vocabulary multiples of 4, 4 or 8 layers. */
function randomConfig(r: () => number): Cfg {
  const kvHeads = 4;
  const heads = kvHeads * (r() < 0.5 ? 1 : 2);
  const hd = r() < 0.5 ? 4 : 8;
  return {
    dim: heads * hd,
    hidden: 4 * (3 + Math.floor(r() * 6)),
    layers: r() < 0.5 ? 4 : 8,
    heads,
    kvHeads,
    vocab: 40,
    seq: 32,
    tied: r() < 0.5,
  };
}

/** A legacy llama2.c checkpoint with random weights (norm weights near 1). */
function writeModel(c: Cfg, r: () => number, path: string): void {
  const hd = c.dim / c.heads;
  const kv = hd * c.kvHeads;
  const L = c.layers;
  const header = new Int32Array([c.dim, c.hidden, L, c.heads, c.kvHeads, c.tied ? c.vocab : -c.vocab, c.seq]);
  const sizes: [number, 'w' | 'n'][] = [
    [c.vocab * c.dim, 'w'],
    [L * c.dim, 'n'],
    [L * c.dim * c.dim, 'w'],
    [L * kv * c.dim, 'w'],
    [L * kv * c.dim, 'w'],
    [L * c.dim * c.dim, 'w'],
    [L * c.dim, 'n'],
    [L * c.hidden * c.dim, 'w'],
    [L * c.dim * c.hidden, 'w'],
    [L * c.hidden * c.dim, 'w'],
    [c.dim, 'n'],
    [c.seq * hd, 'w'],
    ...(c.tied ? [] : ([[c.vocab * c.dim, 'w']] as [number, 'w'][])),
  ];
  const parts = sizes.map(([n, kind]) =>
    Float32Array.from({ length: n }, () => (kind === 'n' ? 0.8 + 0.4 * r() : (r() - 0.5) * 1.2)),
  );
  const total = parts.reduce((s, p) => s + p.byteLength, header.byteLength);
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of [header, ...parts]) {
    out.set(new Uint8Array(p.buffer), at);
    at += p.byteLength;
  }
  writeFileSync(path, out);
}

/** A character tokenizer: <unk>, <s>, </s>, then single characters (the prompt's and some more). */
function writeTokenizer(vocab: number, path: string): void {
  const chars = ' abcdefghijklmnopqrstuvwxyz.,!?ABCDEFGHIJKLMN'.slice(0, vocab - 3).split('');
  const pieces = ['<unk>', '<s>', '</s>', ...chars];
  const enc = new TextEncoder();
  const bytes: number[] = [];
  const i32 = (v: number) => bytes.push(...new Uint8Array(new Int32Array([v]).buffer));
  const f32 = (v: number) => bytes.push(...new Uint8Array(new Float32Array([v]).buffer));
  i32(8);
  for (const p of pieces) {
    const b = enc.encode(p);
    f32(0);
    i32(b.length);
    bytes.push(...b);
  }
  writeFileSync(path, new Uint8Array(bytes));
}

function run(np: number, args: readonly string[]) {
  const cmd = np === 1 ? process.execPath : 'mpirun';
  const argv =
    np === 1
      ? [CLI, ...args]
      : ['--allow-run-as-root', '--oversubscribe', '-np', String(np), process.execPath, CLI, ...args];
  return spawnSync(cmd, argv, { encoding: 'utf8', env, timeout: 120_000 });
}

const SPLITS: [number, number][] = [
  [2, 1],
  [4, 1],
  [1, 2],
  [1, 4],
  [2, 2],
];

describe.skipIf(noMpi || noCli)('MPI ranks on random LLaMA checkpoints', () => {
  const r = lcg(20261205);
  const configs = Array.from({ length: Math.max(2, Math.round(PROP_RUNS / 30)) }, () => randomConfig(r));
  it.each(configs.map((c, i) => [i, c] as const))(
    'config %i: every split prints the single-process text',
    (i, c) => {
      const model = join(dir, `m${i}.bin`);
      const tok = join(dir, `t${i}.bin`);
      writeModel(c, r, model);
      writeTokenizer(c.vocab, tok);
      const gen = ['generate', model, '--tokenizer', tok, '--steps', '10', '--prompt', 'a cab', '--balance', 'equal'];
      const single = run(1, [...gen, '--tp', '1', '--pp', '1']);
      expect(single.stderr, JSON.stringify(c)).toBe('');
      expect(single.status).toBe(0);
      const text = single.stdout.split('\n')[0]!;
      console.log(`config ${i} ${JSON.stringify(c)}: ${JSON.stringify(text)}`);
      expect(text.length, `config ${JSON.stringify(c)} generated no text`).toBeGreaterThan(0);
      for (const [tp, pp] of SPLITS) {
        if (pp > c.layers) continue;
        const m = run(tp * pp, [...gen, '--tp', String(tp), '--pp', String(pp)]);
        expect(m.stderr, `tp ${tp} pp ${pp} ${JSON.stringify(c)}`).toBe('');
        expect(m.status).toBe(0);
        expect(m.stdout.split('\n')[0], `tp ${tp} pp ${pp} ${JSON.stringify(c)}`).toBe(text);
      }
    },
    600_000,
  );
});
