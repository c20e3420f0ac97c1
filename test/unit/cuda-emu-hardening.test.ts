/**
 * cuda-emu hardening: where the compiled-binary cache lives and how it is bounded, typed errors for sizes the emulator
 * cannot handle and for a child process that dies, well-defined integer division in the generated CUDA C, and a
 * session that survives concurrent runs and many compile / dispose cycles.
 */
import os from 'node:os';
import path from 'node:path';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import '../../ir/ops/index.js';
import { GraphBuilder } from '../../ir/builder.js';
import { KilnError } from '../../ir/errors.js';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { compile } from '../../src/session.js';
import { Executor } from '../../src/runtime/executor.js';
import { CudaEmuBackend } from '../../src/runtime/cuda-emu/backend.js';
import * as emu from '../../src/runtime/cuda-emu/emu.js';
import { compileEmu, type EmuRunOptions } from '../../src/runtime/cuda-emu/emu.js';
import { emuProbe, requireTool } from '../helpers/tools.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const available = !(await requireTool('g++ (cuda-emu)', emuProbe));
const INT_MIN = -2147483648;

const tmpDirs: string[] = [];
function tmp(stem: string): string {
  const d = mkdtempSync(path.join(os.tmpdir(), `kiln-${stem}-`));
  tmpDirs.push(d);
  return d;
}
afterAll(() => tmpDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Sets environment variables for one test; afterEach puts the old values back. */
const savedEnv = new Map<string, string | undefined>();
function setEnv(name: string, value: string | undefined): void {
  if (!savedEnv.has(name)) savedEnv.set(name, process.env[name]);
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}
afterEach(() => {
  for (const [k, v] of savedEnv) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  savedEnv.clear();
});

/** A tiny kernel whose source is unique per call, so that it is never in any cache yet. */
function uniqueSource(): string {
  const tag = `${process.pid}_${Date.now()}_${Math.floor(Math.random() * 1e9)}`;
  return (
    `// ${tag}\n` +
    'extern "C" __global__ void add_one(int* p, int n) {\n' +
    '  int i = blockIdx.x * blockDim.x + threadIdx.x;\n' +
    '  if (i < n) p[i] += 1;\n' +
    '}\nKILN_EMU_REGISTER(add_one);\n'
  );
}

async function addOne(mod: emu.EmuModule, values: number[]): Promise<number[]> {
  const out = await mod.run({
    buffers: [{ init: new Int32Array(values) }],
    launches: [{ kernel: 'add_one', grid: 1, block: 32, args: [{ buffer: 0 }, { i32: values.length }] }],
    outputs: [0],
  });
  const b = out.get(0)!;
  return Array.from(new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4));
}

function dirBytes(p: string): number {
  const st = statSync(p);
  if (!st.isDirectory()) return st.size;
  return readdirSync(p).reduce((s, f) => s + dirBytes(path.join(p, f)), 0);
}

async function rejection(p: Promise<unknown>): Promise<KilnError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected a rejection').toBeInstanceOf(KilnError);
  return caught as KilnError;
}

/* ------------------------------------------------------------------ 1. cache location and size */

describe('cuda-emu binary cache', () => {
  it('lives in a per-user directory: KILN_CACHE_DIR, else XDG_CACHE_HOME/kiln, else ~/.cache/kiln', () => {
    expect(typeof emu.kilnCacheRoot).toBe('function');
    expect(emu.kilnCacheRoot({ KILN_CACHE_DIR: '/a/b', XDG_CACHE_HOME: '/x' })).toBe('/a/b');
    expect(emu.kilnCacheRoot({ XDG_CACHE_HOME: '/x' })).toBe(path.join('/x', 'kiln'));
    expect(emu.kilnCacheRoot({})).toBe(path.join(os.homedir(), '.cache', 'kiln'));
    // never inside the package
    expect(emu.kilnCacheRoot({}).startsWith(root + path.sep)).toBe(os.homedir().startsWith(root + path.sep));
  });

  it('prunes least-recently-used entries past the size cap', async () => {
    expect(typeof emu.pruneCache).toBe('function');
    const dir = tmp('prune');
    const now = Date.now() / 1000;
    // ten entries of 100 KB, entry i last used i minutes ago
    for (let i = 0; i < 10; i++) {
      const e = path.join(dir, `entry${i}`);
      mkdirSync(e);
      writeFileSync(path.join(e, 'kernel'), new Uint8Array(100_000));
      utimesSync(e, now - 60 * i, now - 60 * i);
    }
    const cap = 350_000;
    await emu.pruneCache(dir, cap, new Set([path.join(dir, 'entry9')]));
    expect(dirBytes(dir)).toBeLessThanOrEqual(cap + 100_000); // entry9 is kept even though it is the oldest
    const left = readdirSync(dir).sort();
    expect(left).toEqual(['entry0', 'entry1', 'entry9']);
  });

  it.skipIf(!available)(
    'falls back to a private temporary directory when the cache directory cannot be created',
    async () => {
      const file = path.join(tmp('ro'), 'a-file');
      writeFileSync(file, 'not a directory');
      setEnv('KILN_CACHE_DIR', path.join(file, 'sub')); // mkdir fails even as root (ENOTDIR)
      const mod = await compileEmu(uniqueSource(), { name: 'ro_cache', pch: false });
      expect(mod.executable.startsWith(file)).toBe(false);
      expect(await addOne(mod, [1, 2, 3])).toEqual([2, 3, 4]);
    },
    120_000,
  );

  it.skipIf(!available)(
    'bounds the cache with KILN_CACHE_MAX_MB, and a pruned module still runs',
    async () => {
      const dir = tmp('cap');
      setEnv('KILN_CACHE_DIR', dir);
      setEnv('KILN_CACHE_MAX_MB', '0.05'); // 50 KB: less than one executable
      const a = await compileEmu(uniqueSource(), { name: 'cap_a', pch: false });
      expect(a.executable.startsWith(path.join(dir, 'cuda-emu'))).toBe(true);
      const b = await compileEmu(uniqueSource(), { name: 'cap_b', pch: false });
      expect(existsSync(b.executable)).toBe(true);
      expect(existsSync(a.executable), 'the least recently used executable was pruned').toBe(false);
      // only what the last compile needs (its executable and the runtime object) is left
      const entries = readdirSync(path.join(dir, 'cuda-emu')).filter((f) => !f.startsWith('.'));
      expect(entries.length).toBeLessThanOrEqual(2);
      expect(await addOne(a, [5])).toEqual([6]); // rebuilt on demand
      expect(await addOne(b, [7])).toEqual([8]);
    },
    120_000,
  );
});

/* ------------------------------------------------------------------ 2. limits and dying children */

function addGraph(n: number): Graph {
  const b = new GraphBuilder('hardening_add');
  const x = b.input('x', 'f32', [n]);
  const y = b.input('y', 'f32', [n]);
  b.output(b.op('add', [x, y]), 'z');
  return b.build();
}

describe.skipIf(!available)('cuda-emu limits and child failures', () => {
  const fixture = readFileSync(path.join(root, 'test/fixtures/cuda/emu_kernels.cu'), 'utf8');

  it('rejects a buffer the emulator cannot hold at alloc, with a typed limit error naming it', () => {
    const be = new CudaEmuBackend();
    let caught: unknown;
    try {
      be.alloc(5 * 2 ** 30, 'huge_logits');
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(KilnError);
    expect((caught as KilnError).code).toBe('limit');
    expect((caught as KilnError).message).toMatch(/huge_logits/);
  });

  it('an injected buffer limit fails the run with a typed error naming the tensor, and the backend stays usable', async () => {
    const ex = new Executor(addGraph(512), new CudaEmuBackend({ maxBufferBytes: 1024 }));
    const feeds = {
      x: makeTensor('f32', [512], new Array(512).fill(1)),
      y: makeTensor('f32', [512], new Array(512).fill(0)),
    };
    const e = await rejection(ex.run(feeds));
    expect(e.code).toBe('limit');
    expect(e.message).toMatch(/'x'|'y'|'z'/);
    const ok = new Executor(addGraph(4), new CudaEmuBackend({ maxBufferBytes: 1024 }));
    const got = await ok.run({ x: makeTensor('f32', [4], [1, 2, 3, 4]), y: makeTensor('f32', [4], [1, 1, 1, 1]) });
    expect(Array.from(got['z']!.data)).toEqual([2, 3, 4, 5]);
  });

  it('an output past the transfer limit rejects the run (no hang, no uncaught exception)', async () => {
    const mod = await compileEmu(fixture, { name: 'emu_kernels' });
    const plan = {
      buffers: [{ init: new Float32Array(4096) }, { init: new Float32Array(4096) }, { size: 4096 * 4 }],
      launches: [
        { kernel: 'vec_add', grid: 16, block: 256, args: [{ buffer: 2 }, { buffer: 0 }, { buffer: 1 }, { i32: 4096 }] },
      ],
      outputs: [2],
    };
    const opts = { maxTransferBytes: 8192 } as EmuRunOptions;
    const e = await rejection(mod.run(plan, opts));
    expect(e.code).toBe('limit');
    expect(e.message).toMatch(/16384|bytes/);
    // and the module still runs what fits
    const small = {
      buffers: [{ init: new Float32Array([1, 2]) }, { init: new Float32Array([3, 4]) }, { size: 8 }],
      launches: [
        { kernel: 'vec_add', grid: 1, block: 32, args: [{ buffer: 2 }, { buffer: 0 }, { buffer: 1 }, { i32: 2 }] },
      ],
      outputs: [2],
    };
    const out = await mod.run(small, opts);
    expect(Array.from(new Float32Array(out.get(2)!.buffer))).toEqual([4, 6]);
  });

  it('a child killed mid-run rejects the run within seconds, and the next run works', async () => {
    const mod = await compileEmu(fixture, { name: 'emu_kernels' });
    let pid: number | undefined;
    const opts = {
      threads: 1,
      order: 'forward',
      timeoutMs: 20_000,
      onSpawn: (p: number) => {
        pid = p;
        setTimeout(() => process.kill(p, 'SIGKILL'), 300);
      },
    } as EmuRunOptions;
    const t0 = Date.now();
    const e = await rejection(
      mod.run(
        {
          buffers: [{ size: 4 }],
          launches: [{ kernel: 'spin_wait', grid: 2, block: 1, args: [{ buffer: 0 }] }],
          outputs: [],
        },
        opts,
      ),
    );
    expect(pid).toBeTypeOf('number');
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(e.code).toBe('device');
    expect(e.message).toMatch(/SIGKILL/);
    expect(e.message).toMatch(/spin_wait/);
    const out = await mod.run({
      buffers: [{ init: new Float32Array([1]) }, { init: new Float32Array([2]) }, { size: 4 }],
      launches: [
        { kernel: 'vec_add', grid: 1, block: 1, args: [{ buffer: 2 }, { buffer: 0 }, { buffer: 1 }, { i32: 1 }] },
      ],
      outputs: [2],
    });
    expect(new Float32Array(out.get(2)!.buffer)[0]).toBe(3);
  });
});

/* ------------------------------------------------------------------ 3. integer division */

async function vsReference(graph: Graph, feeds: Record<string, Tensor>): Promise<void> {
  const ref = interpret(graph, feeds);
  const s = await compile(graph, { backend: 'cuda-emu', poison: true });
  try {
    const got = await s.run(feeds);
    for (const [k, r] of Object.entries(ref)) expect(Array.from(got[k]!.data), k).toEqual(Array.from(r.data));
  } finally {
    s.dispose();
  }
}

describe.skipIf(!available)('cuda-emu integer division is well defined', () => {
  const xs = [INT_MIN, INT_MIN, INT_MIN, 7, -7, 7, -7, 2147483647, 0, 5];
  const ys = [-1, 1, 0, 2, 2, -2, -2, -1, 0, 0];

  it('div and mod (both fmod settings) of i32 INT_MIN by -1, and by 0, equal the reference', async () => {
    const b = new GraphBuilder('int_div');
    const x = b.input('x', 'i32', [xs.length]);
    const y = b.input('y', 'i32', [ys.length]);
    b.output(b.op('div', [x, y]), 'q');
    b.output(b.op('mod', [x, y]), 'r');
    b.output(b.op('mod', [x, y], { fmod: true }), 'rf');
    const g = b.build();
    const feeds = { x: makeTensor('i32', [xs.length], xs), y: makeTensor('i32', [ys.length], ys) };
    const ref = interpret(g, feeds);
    expect(ref['q']!.data[0]).toBe(INT_MIN);
    expect(ref['r']!.data[0]).toBe(0);
    await vsReference(g, feeds);
  });

  it('renders i32 / u32 division through a helper unless the divisor is a safe literal', async () => {
    const { CudaRenderer } = await import('../../codegen/render/cuda.js');
    const r = new CudaRenderer() as unknown as { expr(e: unknown): string };
    const v = (name: string, type: string) => ({ k: 'var', name, type });
    const bin = (op: string, a: unknown, b2: unknown, type = 'i32') => ({ k: 'bin', op, type, a, b: b2 });
    expect(r.expr(bin('div', v('a', 'i32'), v('b', 'i32')))).toMatch(/kiln_div_i32/);
    expect(r.expr(bin('mod', v('a', 'i32'), v('b', 'i32')))).toMatch(/kiln_mod_i32/);
    expect(r.expr(bin('div', v('a', 'u32'), v('b', 'u32'), 'u32'))).toMatch(/kiln_div_u32/);
    expect(r.expr(bin('div', v('a', 'i32'), { k: 'const', type: 'i32', value: 8 }))).toBe('(a / 8)');
    expect(r.expr(bin('div', v('a', 'i32'), { k: 'const', type: 'i32', value: -1 }))).toMatch(/kiln_div_i32/);
  });
});

/* ------------------------------------------------------------------ 4. concurrency and lifecycle */

describe.skipIf(!available)('cuda-emu sessions: concurrent runs and many compile / dispose cycles', () => {
  it('runs one session concurrently with different feeds', async () => {
    const g = addGraph(64);
    const s = await compile(g, { backend: 'cuda-emu', poison: true });
    try {
      const feeds = Array.from({ length: 6 }, (_, i) => ({
        x: makeTensor(
          'f32',
          [64],
          Array.from({ length: 64 }, (_, j) => i * 100 + j),
        ),
        y: makeTensor('f32', [64], new Array(64).fill(i)),
      }));
      const outs = await Promise.all(feeds.map((f) => s.run(f)));
      outs.forEach((o, i) =>
        expect(Array.from(o['z']!.data), `run ${i}`).toEqual(Array.from(interpret(g, feeds[i]!)['z']!.data)),
      );
    } finally {
      s.dispose();
    }
  });

  it('survives 50 compile / run / dispose cycles', async () => {
    const g = addGraph(8);
    const feeds = {
      x: makeTensor('f32', [8], [1, 2, 3, 4, 5, 6, 7, 8]),
      y: makeTensor('f32', [8], new Array(8).fill(1)),
    };
    for (let i = 0; i < 50; i++) {
      const s = await compile(g, { backend: 'cuda-emu' });
      const o = await s.run(feeds);
      expect(Array.from(o['z']!.data)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
      s.dispose();
    }
  }, 120_000);
});
