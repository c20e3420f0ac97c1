/**
 * The issue-11 standard ops on the device backends (webgpu, cuda-emu) against the float64 reference: tan / asin /
 * acos / atan, scatter_nd and scatter_elements (every reduction, duplicate indices), conv (1-D / 2-D, pads, strides,
 * dilations, groups, auto_pad); bad indices are typed errors naming the node on every backend. Fresh random inputs
 * every run; outputs poisoned first.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import { KilnError } from '../../ir/errors.js';
import type { Graph } from '../../ir/graph.js';
import '../../ir/ops/index.js';
import type { Attrs } from '../../ir/registry.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { isDeviceTensor, type DeviceTensor } from '../../src/runtime/device-tensor.js';
import { compile, type BackendName, type Session } from '../../src/session.js';
import { cudaTranslationUnit, recordKernels } from '../../src/runtime/cuda/source.js';
import { checkAgainstReference } from '../helpers/backends.js';
import { deviceBackends } from '../helpers/device-backends.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { fileProbe, requireTool } from '../helpers/tools.js';

const devices = await deviceBackends();
const sessions: Session[] = [];
afterAll(() => sessions.forEach((s) => s.dispose()));

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function randn(n: number, lo = -2, hi = 2): number[] {
  return Array.from({ length: n }, () => lo + Math.random() * (hi - lo));
}

interface Case {
  graph: Graph;
  feeds: Record<string, Tensor>;
}

/** One op over graph inputs x0, x1 … with the given feeds. */
function oneOp(op: string, ins: [DType, readonly number[], readonly number[]][], attrs: Attrs = {}): Case {
  const b = new GraphBuilder(op);
  const feeds: Record<string, Tensor> = {};
  const vs = ins.map(([dt, shape, data], i) => {
    feeds[`x${i}`] = makeTensor(dt, shape, data);
    return b.input(`x${i}`, dt, shape);
  });
  b.output(b.op(op, vs, attrs), 'y');
  return { graph: b.build(), feeds };
}

async function expectKilnError(p: Promise<unknown>, code: string, names: string): Promise<void> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, 'expected a KilnError').toBeInstanceOf(KilnError);
  expect((e as KilnError).code).toBe(code);
  expect((e as KilnError).message).toContain(names);
}

async function session(g: Graph, backend: BackendName): Promise<Session> {
  const s = await compile(g, { backend });
  sessions.push(s);
  return s;
}

describe.each(devices)('%s: tan / asin / acos / atan', (backend) => {
  for (const [op, lo, hi] of [
    ['tan', -1.5, 1.5],
    ['asin', -1, 1],
    ['acos', -1, 1],
    ['atan', -50, 50],
  ] as const) {
    it(`${op} over its domain, specials and (for asin / acos) points outside it`, async () => {
      const special = [0, -0, NaN, Infinity, -Infinity, ...(op === 'asin' || op === 'acos' ? [1, -1, 1.5, -3] : [])];
      const data = [...special, ...randn(1000, lo, hi)];
      for (const dt of ['f32', 'f16'] as const) {
        const c = oneOp(op, [[dt, [data.length], data]]);
        expect(await checkAgainstReference(c.graph, c.feeds, { backend }), `${op} ${dt}`).toEqual([]);
      }
    });
  }
});

const REDUCTIONS = ['none', 'add', 'mul', 'max', 'min'] as const;
const randInt = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
/** Indices in [-n, n-1]: negative ones wrap; few distinct values, so duplicates are common. */
const randIdx = (n: number, count: number) => Array.from({ length: count }, () => randInt(-n, n - 1));

function scatterNdCase(dt: DType, data: number[], idxShape: number[], reduction: string): Case {
  const k = idxShape[idxShape.length - 1]!;
  const rows = numel(idxShape.slice(0, -1));
  const idx: number[] = [];
  for (let j = 0; j < rows; j++) for (let m = 0; m < k; m++) idx.push(...randIdx(data[m]!, 1));
  const updShape = [...idxShape.slice(0, -1), ...data.slice(k)];
  const vals = (n: number) => (dt.startsWith('f') ? randn(n) : Array.from({ length: n }, () => randInt(-9, 9)));
  return oneOp(
    'scatter_nd',
    [
      [dt, data, vals(numel(data))],
      ['i64', idxShape, idx],
      [dt, updShape, vals(numel(updShape))],
    ],
    { reduction },
  );
}

function scatterElementsCase(dt: DType, data: number[], upd: number[], axis: number, reduction: string): Case {
  const a = axis < 0 ? axis + data.length : axis;
  const vals = (n: number) => (dt.startsWith('f') ? randn(n) : Array.from({ length: n }, () => randInt(-9, 9)));
  return oneOp(
    'scatter_elements',
    [
      [dt, data, vals(numel(data))],
      ['i32', upd, randIdx(data[a]!, numel(upd))],
      [dt, upd, vals(numel(upd))],
    ],
    { axis, reduction },
  );
}

describe.each(devices)('%s: scatter_nd / scatter_elements', (backend) => {
  it('scatter_nd: tuples of length 1..3, every reduction, duplicate and negative indices', async () => {
    for (const reduction of REDUCTIONS) {
      for (const idxShape of [[5, 1], [2, 3, 2], [7, 3], [1]]) {
        const c = scatterNdCase('f32', [4, 5, 6], idxShape, reduction);
        expect(await checkAgainstReference(c.graph, c.feeds, { backend }), `${reduction} ${idxShape}`).toEqual([]);
      }
    }
  });

  it('scatter_nd: integer data (exact), f16 data, a KV-cache update [B, H, S_max, D]', async () => {
    for (const dt of ['i32', 'i64', 'f16'] as const) {
      for (const reduction of ['none', 'add', 'max'] as const) {
        const c = scatterNdCase(dt, [3, 4, 5], [4, 2], reduction);
        expect(await checkAgainstReference(c.graph, c.feeds, { backend }), `${dt} ${reduction}`).toEqual([]);
      }
    }
    // past cache [1, 2, 8, 4]; new tokens at positions 5, 6 of both heads: indices [1, 2, 2, 3] = (b, h, pos)
    const idx = [0, 0, 5, 0, 0, 6, 0, 1, 5, 0, 1, 6];
    const c = oneOp('scatter_nd', [
      ['f32', [1, 2, 8, 4], randn(64)],
      ['i64', [1, 2, 2, 3], idx],
      ['f32', [1, 2, 2, 4], randn(16)],
    ]);
    expect(await checkAgainstReference(c.graph, c.feeds, { backend })).toEqual([]);
  });

  it('scatter_nd with host-known indices: distinct rows in parallel, duplicates serially', async () => {
    for (const [name, idx] of [
      ['distinct (parallel)', [0, 0, 5, 0, 0, 6, 0, 1, 5, 0, 1, -2]],
      ['duplicate (serial)', [0, 0, 5, 0, 0, 6, 0, 1, 5, 0, 0, -3]],
    ] as const) {
      for (const reduction of ['none', 'add', 'max'] as const) {
        const b = new GraphBuilder('kv_const');
        const cache = b.input('cache', 'f32', [1, 2, 8, 4]);
        const i = b.weight('i', makeTensor('i64', [1, 2, 2, 3], [...idx]));
        const u = b.input('u', 'f32', [1, 2, 2, 4]);
        b.output(b.op('scatter_nd', [cache, i, u], { reduction }), 'y');
        const feeds = {
          cache: makeTensor('f32', [1, 2, 8, 4], randn(64)),
          u: makeTensor('f32', [1, 2, 2, 4], randn(16)),
        };
        expect(await checkAgainstReference(b.build(), feeds, { backend }), `${name} ${reduction}`).toEqual([]);
      }
    }
  });

  it('scatter_elements: every axis (negative too), every reduction, indices smaller than data', async () => {
    for (const reduction of REDUCTIONS) {
      for (const axis of [0, 1, 2, -1]) {
        const c = scatterElementsCase(
          'f32',
          [3, 4, 5],
          [4, 3, 5].map((d, i) => (i === (axis + 3) % 3 ? d : d - 1)),
          axis,
          reduction,
        );
        expect(await checkAgainstReference(c.graph, c.feeds, { backend }), `${reduction} axis ${axis}`).toEqual([]);
      }
    }
    const c = scatterElementsCase('i64', [6, 2], [9, 2], 0, 'add');
    expect(await checkAgainstReference(c.graph, c.feeds, { backend })).toEqual([]);
  });

  it('packed dtypes (bool, u8, i8, i16) through the gather form', async () => {
    for (const [dt, reduction] of [
      ['bool', 'none'],
      ['u8', 'max'],
      ['i8', 'add'],
      ['i16', 'mul'],
    ] as const) {
      const data = [3, 5];
      const idx = randIdx(3, 4);
      const vals = (n: number) =>
        Array.from({ length: n }, () => (dt === 'bool' ? randInt(0, 1) : dt === 'u8' ? randInt(0, 9) : randInt(-3, 3)));
      const nd = oneOp(
        'scatter_nd',
        [
          [dt, data, vals(15)],
          ['i64', [4, 1], idx],
          [dt, [4, 5], vals(20)],
        ],
        { reduction },
      );
      expect(await checkAgainstReference(nd.graph, nd.feeds, { backend }), `nd ${dt}`).toEqual([]);
      const el = oneOp(
        'scatter_elements',
        [
          [dt, data, vals(15)],
          ['i64', [2, 5], randIdx(5, 10)],
          [dt, [2, 5], vals(10)],
        ],
        { axis: 1, reduction },
      );
      expect(await checkAgainstReference(el.graph, el.feeds, { backend }), `elements ${dt}`).toEqual([]);
    }
  });

  it('in place on a temporary of the run (no copy kernel) equals the reference', async () => {
    const b = new GraphBuilder('inplace');
    const x = b.input('x', 'f32', [6, 4]);
    const i = b.input('i', 'i64', [3, 1]);
    const u = b.input('u', 'f32', [3, 4]);
    const t = b.op('neg', [x]);
    b.output(b.op('scatter_nd', [t, i, u], { reduction: 'add' }), 'y');
    const e = b.input('e', 'i64', [2, 4]);
    const v = b.input('v', 'f32', [2, 4]);
    b.output(b.op('scatter_elements', [b.op('exp', [x]), e, v], { axis: 0, reduction: 'max' }), 'z');
    const feeds = {
      x: makeTensor('f32', [6, 4], randn(24)),
      i: makeTensor('i64', [3, 1], [5, -1, 0]),
      u: makeTensor('f32', [3, 4], randn(12)),
      e: makeTensor('i64', [2, 4], randIdx(6, 8)),
      v: makeTensor('f32', [2, 4], randn(8)),
    };
    expect(await checkAgainstReference(b.build(), feeds, { backend })).toEqual([]);
  });

  it('a KV cache kept on the device (runKeep) is updated in place step by step, by both scatters', async () => {
    const b = new GraphBuilder('decode');
    const past = b.input('past', 'f32', [1, 2, 5, 3]);
    const pos = b.input('pos', 'i64', [1, 2, 1, 3]);
    const cur = b.input('cur', 'f32', [1, 2, 1, 3]);
    b.output(b.op('scatter_nd', [past, pos, cur]), 'present');
    const past2 = b.input('past2', 'f32', [1, 2, 5, 3]);
    const at = b.input('at', 'i64', [1, 2, 1, 3]);
    b.output(b.op('scatter_elements', [past2, at, cur], { axis: 2 }), 'present2');
    const s = await session(b.build(), backend);
    const zeros = makeTensor('f32', [1, 2, 5, 3], new Array<number>(30).fill(0));
    let kv: Record<string, Tensor | DeviceTensor> = { past: zeros, past2: zeros };
    // step t writes the token vector [100·h + 10·t, +1, +2] of head h at position t
    const token = (t: number) => [0, 1].flatMap((h) => [0, 1, 2].map((d) => 100 * h + 10 * t + d));
    for (let t = 0; t < 4; t++) {
      const got = await s.runKeep(
        {
          ...kv,
          pos: makeTensor('i64', [1, 2, 1, 3], [0, 0, t, 0, 1, t]),
          at: makeTensor('i64', [1, 2, 1, 3], new Array<number>(6).fill(t)),
          cur: makeTensor('f32', [1, 2, 1, 3], token(t)),
        },
        ['present', 'present2'],
      );
      for (const v of Object.values(kv)) if (isDeviceTensor(v)) v.dispose();
      kv = { past: got['present']!, past2: got['present2']! };
    }
    const want = [0, 1].flatMap((h) =>
      [0, 1, 2, 3, 4].flatMap((t) => (t < 4 ? [0, 1, 2].map((d) => 100 * h + 10 * t + d) : [0, 0, 0])),
    );
    // in place every step: no copy kernel was ever built
    expect(
      s
        .kernels()
        .map((k) => k.name)
        .filter((n) => n.includes('copy')),
    ).toEqual([]);
    for (const k of ['past', 'past2']) {
      const dt = kv[k] as DeviceTensor;
      expect(Array.from((await dt.read()).data), k).toEqual(want);
      dt.dispose();
    }
  });

  it('an index out of range is a typed error naming the node; the session still works after', async () => {
    const b = new GraphBuilder('bad');
    const i = b.input('i', 'i64', [2, 1]);
    const x = b.weight('x', makeTensor('f32', [4, 2], [0, 1, 2, 3, 4, 5, 6, 7]));
    const u = b.weight('u', makeTensor('f32', [2, 2], [9, 9, 8, 8]));
    b.output(b.op('scatter_nd', [x, i, u], {}, 'y'), 'y');
    const e = b.input('e', 'i64', [1, 2]);
    b.output(b.op('scatter_elements', [x, e, b.weight('w', makeTensor('f32', [1, 2], [5, 6]))], { axis: 0 }), 'z');
    const s = await session(b.build(), backend);
    const ok = await s.run({ i: makeTensor('i64', [2, 1], [-1, 0]), e: makeTensor('i64', [1, 2], [1, -4]) });
    expect(Array.from(ok['y']!.data)).toEqual([8, 8, 2, 3, 4, 5, 9, 9]);
    expect(Array.from(ok['z']!.data)).toEqual([0, 6, 5, 3, 4, 5, 6, 7]);
    await expectKilnError(
      s.run({ i: makeTensor('i64', [2, 1], [0, 4]), e: makeTensor('i64', [1, 2], [0, 0]) }),
      'runtime',
      'scatter_nd',
    );
    await expectKilnError(
      s.run({ i: makeTensor('i64', [2, 1], [0, 0]), e: makeTensor('i64', [1, 2], [0, -5]) }),
      'runtime',
      'scatter_elements',
    );
    const again = await s.run({ i: makeTensor('i64', [2, 1], [1, 2]), e: makeTensor('i64', [1, 2], [3, 3]) });
    expect(Array.from(again['y']!.data)).toEqual([0, 1, 9, 9, 8, 8, 6, 7]);
  });
});

function convCase(x: number[], w: number[], attrs: Attrs, bias: boolean, dt: DType = 'f32'): Case {
  const b = new GraphBuilder('conv');
  const xv = b.input('x', dt, x);
  const wv = b.input('w', dt, w);
  const bv = bias ? b.input('b', dt, [w[0]!]) : null;
  b.output(b.op('conv', [xv, wv, bv], attrs), 'y');
  const feeds: Record<string, Tensor> = {
    x: makeTensor(dt, x, randn(numel(x))),
    w: makeTensor(dt, w, randn(numel(w), -1, 1)),
  };
  if (bias) feeds['b'] = makeTensor(dt, [w[0]!], randn(w[0]!));
  return { graph: b.build(), feeds };
}

describe.each(devices)('%s: conv', (backend) => {
  const cases: [string, number[], number[], Attrs, boolean][] = [
    ['2-D 3x3 pads 1', [2, 3, 7, 6], [4, 3, 3, 3], { pads: [1, 1, 1, 1] }, true],
    ['2-D strides 2, asymmetric pads', [1, 2, 7, 5], [3, 2, 3, 3], { strides: [2, 2], pads: [1, 0, 1, 0] }, false],
    [
      '2-D dilations 2, rectangular kernel',
      [1, 2, 8, 9],
      [2, 2, 2, 3],
      { dilations: [2, 2], pads: [0, 1, 2, 1] },
      true,
    ],
    ['2-D depthwise (group = C = M)', [1, 4, 6, 6], [4, 1, 3, 3], { group: 4, pads: [1, 1, 1, 1] }, true],
    ['2-D two groups', [2, 4, 5, 5], [6, 2, 2, 2], { group: 2 }, false],
    ['2-D ViT patch embedding (kernel = stride = 4)', [1, 3, 16, 16], [8, 3, 4, 4], { strides: [4, 4] }, true],
    [
      '2-D auto_pad SAME_UPPER, stride 2',
      [1, 2, 7, 6],
      [3, 2, 4, 3],
      { auto_pad: 'SAME_UPPER', strides: [2, 2] },
      false,
    ],
    ['2-D auto_pad SAME_LOWER', [1, 2, 5, 6], [2, 2, 2, 2], { auto_pad: 'SAME_LOWER' }, true],
    ['2-D auto_pad VALID', [1, 1, 6, 7], [2, 1, 3, 2], { auto_pad: 'VALID', strides: [1, 2] }, true],
    ['1-D Whisper conv1 (k3, pads 1)', [1, 8, 30], [6, 8, 3], { pads: [1, 1] }, true],
    ['1-D Whisper conv2 (k3, stride 2, pads 1)', [2, 6, 30], [6, 6, 3], { pads: [1, 1], strides: [2] }, true],
    ['1-D dilated, grouped', [1, 4, 20], [4, 2, 3], { dilations: [3], group: 2 }, false],
    // the cases above with at least 4 output channels per group take the im2col + contraction schedule; more of it:
    ['im2col: two groups of 4 output channels', [2, 4, 5, 5], [8, 2, 2, 2], { group: 2 }, true],
    [
      'im2col: SAME_UPPER, stride 2, dilations [2, 1]',
      [1, 3, 9, 8],
      [4, 3, 3, 3],
      { auto_pad: 'SAME_UPPER', strides: [2, 2], dilations: [2, 1] },
      true,
    ],
    ['im2col: 1-D asymmetric pads, stride 3', [1, 2, 11], [5, 2, 4], { pads: [2, 1], strides: [3] }, false],
    ['im2col: batch 3, 16 output channels', [3, 5, 6, 7], [16, 5, 3, 2], { pads: [1, 0, 1, 1] }, true],
  ];
  for (const [name, x, w, attrs, bias] of cases) {
    it(name, async () => {
      const c = convCase(x, w, attrs, bias);
      expect(await checkAgainstReference(c.graph, c.feeds, { backend })).toEqual([]);
    });
  }
  it('f16 data (f32 accumulation)', async () => {
    const c = convCase([1, 4, 9, 9], [4, 4, 3, 3], { pads: [1, 1, 1, 1] }, true, 'f16');
    expect(await checkAgainstReference(c.graph, c.feeds, { backend })).toEqual([]);
  });

  it('a symbolic time axis (Whisper front end: conv1 stride 1, conv2 stride 2) serves two lengths', async () => {
    const b = new GraphBuilder('whisper');
    const x = b.input('x', 'f32', [1, 6, 'T']);
    const w1 = b.weight('w1', makeTensor('f32', [5, 6, 3], randn(90, -1, 1)));
    const w2 = b.weight('w2', makeTensor('f32', [5, 5, 3], randn(75, -1, 1)));
    const h = b.op('gelu', [b.op('conv', [x, w1], { pads: [1, 1] })]);
    b.output(b.op('conv', [h, w2], { pads: [1, 1], strides: [2] }), 'y');
    const g = b.build();
    for (const T of [16, 23]) {
      const feeds = { x: makeTensor('f32', [1, 6, T], randn(6 * T)) };
      expect(await checkAgainstReference(g, feeds, { backend }), `T=${T}`).toEqual([]);
    }
  });
});

const NVCC = process.env['KILN_NVCC'] ?? '/usr/local/cuda/bin/nvcc';
const noNvcc = await requireTool('nvcc', fileProbe(NVCC, 'install the CUDA toolkit or set KILN_NVCC'));

describe.skipIf(noNvcc)('nvcc compiles the trig / scatter / conv kernels', () => {
  it('for sm_80 and sm_90 without errors or register spills', async () => {
    const cases: Case[] = [];
    for (const op of ['tan', 'asin', 'acos', 'atan']) {
      for (const dt of ['f32', 'f16'] as const) cases.push(oneOp(op, [[dt, [4], [0.1, 0.2, 0.3, 0.4]]]));
    }
    for (const reduction of REDUCTIONS) {
      cases.push(scatterNdCase('f32', [4, 5, 6], [3, 2], reduction));
      cases.push(scatterElementsCase('f32', [3, 4, 5], [3, 4, 5], 1, reduction));
    }
    cases.push(scatterNdCase('i64', [4, 5], [3, 1], 'mul'), scatterNdCase('f16', [4, 5], [3, 1], 'add'));
    cases.push(scatterNdCase('i8', [4, 5], [3, 1], 'add'), scatterElementsCase('i16', [4, 5], [2, 5], 0, 'max'));
    cases.push(convCase([1, 3, 8, 8], [4, 3, 3, 3], { pads: [1, 1, 1, 1] }, true));
    cases.push(convCase([1, 4, 16], [4, 2, 3], { group: 2, strides: [2] }, false, 'f16'));
    const rec = await recordKernels(async () => {
      for (const c of cases) {
        const s = await compile(c.graph, { backend: 'cuda-emu' });
        await s.run(c.feeds).finally(() => s.dispose());
      }
    });
    const kernels = new Map(rec.runs.flat().map((k) => [k.name, k]));
    expect(kernels.size).toBeGreaterThan(20);
    const tmp = mkdtempSync(join(os.tmpdir(), 'kiln-nvcc-sc-'));
    try {
      const file = join(tmp, 'k.cu');
      writeFileSync(file, cudaTranslationUnit(kernels.values(), 'nvcc'));
      for (const arch of ['sm_80', 'sm_90']) {
        const { code, log } = await new Promise<{ code: number | null; log: string }>((resolve, reject) => {
          const args = ['-c', `-arch=${arch}`, '-std=c++17', '-Xptxas', '-v', '-diag-suppress', '177'];
          args.push('-I', join(REPO_ROOT, 'codegen/cuda/emu'), '-o', join(tmp, `${arch}.o`), file);
          const child = spawn(NVCC, args, { stdio: ['ignore', 'pipe', 'pipe'] });
          let out = '';
          child.stdout.on('data', (d: Buffer) => (out += d.toString()));
          child.stderr.on('data', (d: Buffer) => (out += d.toString()));
          child.on('error', reject);
          child.on('close', (rc) => resolve({ code: rc, log: out }));
        });
        expect(code, `nvcc ${arch}:\n${log.slice(0, 4000)}`).toBe(0);
        const compiled = new Set([...log.matchAll(/Compiling entry function '([^']+)'/g)].map((m) => m[1]!));
        expect(
          [...kernels.keys()].filter((k) => !compiled.has(k)),
          `${arch}: not compiled`,
        ).toEqual([]);
        const spills = [...log.matchAll(/(\d+) bytes spill stores, (\d+) bytes spill loads/g)].filter(
          (m) => m[1] !== '0' || m[2] !== '0',
        );
        expect(spills.length, `${arch}: register spills`).toBe(0);
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 120_000);
});
