/**
 * The cuda-emu backend: graphs lowered to kernel IR, rendered as CUDA C (the source nvcc and NVRTC compile), compiled
 * by g++ against the emulation header and run with CUDA semantics in a child process, compared with the float64
 * reference (outputs poisoned with NaN first; fresh random inputs every run). Also: the random-graph property (fast-check
 * seed printed; its cases are compiled up front in a few translation units with prepareAll), the emulator catching a
 * missing barrier in a generated kernel, typed errors. Needs g++ on x86-64 Linux: without it the tests skip locally
 * and fail in CI.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import { KilnError } from '../../ir/errors.js';
import type { Graph } from '../../ir/graph.js';
import '../../ir/ops/index.js';
import type { Attrs } from '../../ir/registry.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { c, load, store, type Kernel, type Stmt } from '../../codegen/kir.js';
import { lowerNode } from '../../codegen/lower/index.js';
import { Executor, encodeTensor, decodeTensor, storageBytes } from '../../src/runtime/executor.js';
import { CUDA_CAPS, CudaEmuBackend, prepareAll } from '../../src/runtime/cuda-emu/backend.js';
import { EmuError } from '../../src/runtime/cuda-emu/index.js';
import { buildTinyGpt } from '../../src/models/tiny-gpt.js';
import { compile } from '../../src/session.js';
import { interpret } from '../../ir/interpret.js';
import { checkAgainstReference } from '../helpers/backends.js';
import { PROP_RUNS } from '../helpers/paths.js';
import { emuProbe, requireTool } from '../helpers/tools.js';
import { emptyCoverage, recordPaths } from '../helpers/coverage.js';
import { arbFocus, arbGraphSeed, randomGraph, type GraphFocus } from '../helpers/random-graph.js';
import { storageOf } from '../../codegen/lower/storage.js';

const noEmu = await requireTool('g++ (cuda-emu)', emuProbe);

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function rand(dt: DType, shape: readonly number[]): Tensor {
  const n = numel(shape);
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const r = Math.random();
    if (dt === 'bool') d[i] = r < 0.5 ? 1 : 0;
    else if (dt.startsWith('u')) d[i] = Math.floor(r * 9);
    else if (dt.startsWith('i')) d[i] = Math.floor(r * 19) - 9;
    else d[i] = r * 4 - 2;
  }
  return makeTensor(dt, shape, d);
}

/** A graph of one op over inputs of the given dtypes / shapes, with random feeds. */
function single(
  op: string,
  ins: [DType, number[]][],
  attrs: Attrs = {},
): { graph: Graph; feeds: Record<string, Tensor> } {
  const b = new GraphBuilder(op);
  const feeds: Record<string, Tensor> = {};
  const vs = ins.map(([dt, shape], i) => {
    feeds[`x${i}`] = rand(dt, shape);
    return b.input(`x${i}`, dt, shape);
  });
  b.output(b.op(op, vs, attrs), 'y');
  return { graph: b.build(), feeds };
}

const CASES: [string, () => { graph: Graph; feeds: Record<string, Tensor> }, boolean?][] = [
  [
    'add broadcast f32',
    () =>
      single('add', [
        ['f32', [3, 1, 5]],
        ['f32', [4, 5]],
      ]),
  ],
  [
    'mul f16',
    () =>
      single('mul', [
        ['f16', [7, 33]],
        ['f16', [33]],
      ]),
  ],
  ['gelu f32 (larger than one block)', () => single('gelu', [['f32', [1000]]])],
  [
    'div i32 (zero divisors)',
    () =>
      single('div', [
        ['i32', [5, 6]],
        ['i32', [6]],
      ]),
  ],
  [
    'mod i8 (packed)',
    () =>
      single('mod', [
        ['i8', [9, 7]],
        ['i8', [7]],
      ]),
  ],
  [
    'greater -> bool (packed output)',
    () =>
      single('greater', [
        ['f32', [5, 3]],
        ['f32', [5, 1]],
      ]),
  ],
  [
    'where',
    () =>
      single('where', [
        ['bool', [4, 6]],
        ['f32', [4, 6]],
        ['f32', [6]],
      ]),
  ],
  ['cast f32 -> i8 (packed)', () => single('cast', [['f32', [37]]], { to: 'i8' })],
  [
    'reduce_sum axes [0, 2]',
    () => single('reduce_sum', [['f32', [5, 4, 300]]], { axes: [0, 2], keepdims: false }),
    true,
  ],
  ['reduce_max last axis', () => single('reduce_max', [['f32', [6, 513]]], { axes: [-1], keepdims: true })],
  ['softmax long rows', () => single('softmax', [['f32', [3, 1000]]], { axis: -1 }), true],
  ['log_softmax axis 0', () => single('log_softmax', [['f32', [17, 5]]], { axis: 0 })],
  [
    'matmul odd sizes',
    () =>
      single('matmul', [
        ['f32', [33, 70]],
        ['f32', [70, 45]],
      ]),
    true,
  ],
  [
    'batched matmul broadcast',
    () =>
      single('matmul', [
        ['f32', [2, 3, 9, 16]],
        ['f32', [16, 5]],
      ]),
    true,
  ],
  [
    'matmul f16',
    () =>
      single('matmul', [
        ['f16', [8, 40]],
        ['f16', [40, 12]],
      ]),
    true,
  ],
  ['transpose', () => single('transpose', [['f32', [2, 3, 5, 7]]], { perm: [3, 1, 0, 2] })],
];

describe.skipIf(noEmu)('cuda-emu backend vs the float64 reference', () => {
  for (const [name, make, long] of CASES) {
    it(
      name,
      async () => {
        const { graph, feeds } = make();
        expect(await checkAgainstReference(graph, feeds, { backend: 'cuda-emu', longReduction: long })).toEqual([]);
      },
      120_000,
    );
  }

  it('f16 graphs with the f32 storage fallback (disableF16)', async () => {
    for (const [op, ins] of [
      [
        'mul',
        [
          ['f16', [7, 33]],
          ['f16', [33]],
        ],
      ],
      ['softmax', [['f16', [5, 300]]]],
      [
        'matmul',
        [
          ['f16', [8, 40]],
          ['f16', [40, 12]],
        ],
      ],
    ] as [string, [DType, number[]][]][]) {
      const { graph, feeds } = single(op, ins, op === 'softmax' ? { axis: -1 } : {});
      expect(await checkAgainstReference(graph, feeds, { backend: 'cuda-emu', disableF16: true }), op).toEqual([]);
    }
  }, 120_000);

  it('layer_norm and rms_norm', async () => {
    for (const op of ['layer_norm', 'rms_norm']) {
      const b = new GraphBuilder(op);
      const x = b.input('x', 'f32', [4, 300]);
      const scale = b.weight('s', rand('f32', [300]));
      const ins = op === 'layer_norm' ? [x, scale, b.weight('bias', rand('f32', [300]))] : [x, scale];
      b.output(b.op(op, ins, { axis: -1, epsilon: 1e-5 }), 'y');
      const graph = b.build();
      expect(
        await checkAgainstReference(graph, { x: rand('f32', [4, 300]) }, { backend: 'cuda-emu', longReduction: true }),
      ).toEqual([]);
    }
  }, 120_000);

  it('the built-in tiny GPT (two runs of one session)', async () => {
    const graph = buildTinyGpt();
    const session = await compile(graph, { backend: 'cuda-emu', poison: true });
    try {
      for (const seq of [5, 11]) {
        const ids = makeTensor(
          'i64',
          [1, seq],
          Array.from({ length: seq }, () => Math.floor(Math.random() * 256)),
        );
        const got = (await session.run({ input_ids: ids }))['logits']!;
        const ref = interpret(graph, { input_ids: ids })['logits']!;
        let err = 0;
        for (let i = 0; i < ref.data.length; i++) err = Math.max(err, Math.abs(got.data[i]! - ref.data[i]!));
        expect(err).toBeLessThan(1e-4);
      }
    } finally {
      session.dispose();
    }
  }, 120_000);
});

describe.skipIf(noEmu)('random graphs on cuda-emu match the float64 reference', () => {
  const runs = Math.max(8, Math.round(PROP_RUNS / 3));
  // one case per fast path first: every run reaches the tiled matmul and warp-shuffle reductions over long rows
  const FOCUSED: [number, number, GraphFocus | undefined][] = [
    [0x5eed1, 2, 'matmul'],
    [0x5eed2, 2, 'rows'],
  ];
  for (const dtype of ['f32', 'f16'] as const) {
    it(`${dtype}: reaches the tiled matmul, long-row reductions and warp shuffles`, async () => {
      const seed = Number(process.env['KILN_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
      const numRuns = dtype === 'f32' ? runs : Math.max(6, runs >> 1);
      const arb = fc.tuple(arbGraphSeed, fc.integer({ min: 1, max: dtype === 'f32' ? 8 : 5 }), arbFocus);
      // compile the kernels of exactly the cases fast-check will generate (same seed) in a few units, in parallel
      const cases = [...FOCUSED, ...fc.sample(arb, { seed, numRuns })];
      await prepareAll(async () => {
        for (const [s, steps, focus] of cases) {
          const { graph, feeds } = randomGraph(s, steps, dtype, focus);
          await checkAgainstReference(graph, feeds, { backend: 'cuda-emu' }).catch(() => undefined);
        }
      });
      const cov = emptyCoverage();
      await fc.assert(
        fc.asyncProperty(arb, async ([s, steps, focus]) => {
          const { graph, feeds } = randomGraph(s, steps, dtype, focus);
          await recordPaths(cov, graph, feeds, CUDA_CAPS);
          const bad = await checkAgainstReference(graph, feeds, { backend: 'cuda-emu' });
          expect(bad, `graph seed ${s}, steps ${steps}, focus ${focus}, dtype ${dtype}`).toEqual([]);
        }),
        { seed, numRuns, verbose: 1, examples: FOCUSED.map((c) => [c]) },
      );
      console.log(`cuda-emu ${dtype} property (seed ${seed}): ${JSON.stringify(cov)}`);
      expect(cov.tiledMatmul, 'graphs with a tiled matmul').toBeGreaterThan(0);
      expect(cov.longRowReduction, 'graphs with a workgroup reduction over rows longer than it').toBeGreaterThan(0);
      expect(cov.warpShuffle, 'graphs with a warp-shuffle reduction').toBeGreaterThan(0);
    }, 600_000);
  }
});

/* ------------------------------------------------------------------ kernels run directly on the backend */

interface Run {
  output: Tensor;
  error?: unknown;
}

/** Lowers one node and runs its steps on a fresh CudaEmuBackend, optionally rewriting each kernel first. */
async function runLowered(
  op: string,
  x: Tensor,
  outShape: number[],
  attrs: Attrs,
  rewrite: (k: Kernel) => Kernel = (k) => k,
): Promise<Run> {
  const be = new CudaEmuBackend();
  const steps = lowerNode({
    caps: CUDA_CAPS,
    node: 'n',
    op,
    attrs,
    inputs: [{ dtype: x.dtype, shape: x.shape }],
    outputs: [{ dtype: x.dtype, shape: outShape }],
  });
  const st = storageOf(x.dtype, CUDA_CAPS);
  const inBuf = be.alloc(storageBytes(st, numel(x.shape)), 'x');
  be.write(inBuf, encodeTensor(x, st, 'x'));
  const outBytes = storageBytes(st, numel(outShape));
  const outBuf = be.alloc(outBytes, 'y');
  be.poison(outBuf, outBytes);
  const planned = steps.map((s) => {
    const kernel = rewrite(s.kernel);
    const buffers = s.bindings.map((b) =>
      b.kind === 'in'
        ? inBuf
        : b.kind === 'out'
          ? outBuf
          : b.kind === 'err'
            ? be.alloc(16, 'err')
            : be.alloc(b.bytes, `tmp:${b.id}`),
    );
    const uniforms = new ArrayBuffer(Math.max(16, s.uniforms.length * 4));
    const dv = new DataView(uniforms);
    kernel.uniforms.forEach((u, i) =>
      u.type === 'f32' ? dv.setFloat32(i * 4, s.uniforms[i]!, true) : dv.setInt32(i * 4, s.uniforms[i]!, true),
    );
    return { kernel, buffers, uniforms, grid: s.grid };
  });
  let error: unknown;
  try {
    await be.prepare(planned.map((p) => p.kernel));
    await be.run(planned);
  } catch (e) {
    error = e;
  }
  return { output: decodeTensor(await be.read(outBuf, outBytes), st, x.dtype, outShape), error };
}

function stripBarriers(ss: readonly Stmt[]): Stmt[] {
  return ss
    .filter((s) => s.k !== 'barrier')
    .map((s) => {
      if (s.k === 'for') return { ...s, body: stripBarriers(s.body) };
      if (s.k === 'if')
        return s.else
          ? { ...s, then: stripBarriers(s.then), else: stripBarriers(s.else) }
          : { ...s, then: stripBarriers(s.then) };
      return s;
    });
}

function hasBarrier(ss: readonly Stmt[]): boolean {
  return ss.some(
    (s) =>
      s.k === 'barrier' ||
      (s.k === 'for' && hasBarrier(s.body)) ||
      (s.k === 'if' && (hasBarrier(s.then) || hasBarrier(s.else ?? []))),
  );
}

describe.skipIf(noEmu)('the emulator checks generated kernels', () => {
  const x = rand('f32', [3, 1000]);
  const ref = interpret(
    (() => {
      const b = new GraphBuilder('r');
      b.output(b.op('reduce_sum', [b.input('x', 'f32', [3, 1000])], { axes: [-1], keepdims: false }), 'y');
      return b.build();
    })(),
    { x },
  )['y']!;

  it('a block reduction in shared memory is right with its barriers and wrong without them', async () => {
    const ok = await runLowered('reduce_sum', x, [3], { axes: [-1], keepdims: false });
    expect(ok.error).toBeUndefined();
    for (let i = 0; i < 3; i++) expect(ok.output.data[i]).toBeCloseTo(ref.data[i]!, 3);

    let stripped = 0;
    const bad = await runLowered('reduce_sum', x, [3], { axes: [-1], keepdims: false }, (k) => {
      if (!hasBarrier(k.body)) return k;
      stripped++;
      return { ...k, name: `${k.name}_nobarrier`, body: stripBarriers(k.body) };
    });
    expect(stripped).toBeGreaterThan(0);
    // fibers run in order up to a barrier: without one, thread 0 reads its neighbours' slots before they are written
    // (shared memory starts as NaN bytes in every block), so the missing barrier shows as wrong output
    const wrong =
      bad.error !== undefined || [0, 1, 2].some((i) => !(Math.abs(bad.output.data[i]! - ref.data[i]!) < 1e-3));
    expect(wrong).toBe(true);
  }, 120_000);

  it('an out-of-bounds global write is a typed error naming the kernel', async () => {
    const run = await runLowered('relu', rand('f32', [100]), [100], {}, (k) => ({
      ...k,
      name: `${k.name}_oob`,
      body: [
        ...k.body,
        store(k.buffers[k.buffers.length - 1]!.name, c.i32(100 + 64), load(k.buffers[0]!.name, c.i32(0), 'f32')),
      ],
    }));
    expect(run.error).toBeInstanceOf(EmuError);
    expect((run.error as EmuError).kind).toBe('global-oob');
    expect((run.error as KilnError).message).toMatch(/_oob/);
  }, 120_000);

  it('a kernel g++ rejects is a typed compile error', async () => {
    const run = await runLowered('relu', rand('f32', [10]), [10], {}, (k) => ({
      ...k,
      name: `${k.name}_bad`,
      body: [{ k: 'assign', name: 'undeclared_variable', value: c.f32(1) }, ...k.body],
    }));
    expect(run.error).toBeInstanceOf(KilnError);
    expect((run.error as EmuError).kind).toBe('compile');
    expect((run.error as KilnError).message).toMatch(/undeclared_variable/);
  }, 120_000);

  it('an executor over the backend reuses its compiled unit across runs', async () => {
    const { graph, feeds } = single('add', [
      ['f32', [4, 4]],
      ['f32', [4]],
    ]);
    const be = new CudaEmuBackend();
    const ex = new Executor(graph, be);
    try {
      await ex.run(feeds);
      const first = be.module!;
      expect(first.executable).toBeTruthy();
      const out = await ex.run(feeds);
      expect(be.module).toBe(first);
      // the unit holds this run's kernels (it may hold more: a unit compiled earlier in the process is reused whole)
      const inUnit = new Set((await first.kernels()).map((k) => k.name));
      expect(be.lastKernels.length).toBeGreaterThan(0);
      for (const k of be.lastKernels) expect(inUnit.has(k)).toBe(true);
      expect(out['y']!.shape).toEqual([4, 4]);
    } finally {
      ex.dispose();
    }
  }, 120_000);
});
