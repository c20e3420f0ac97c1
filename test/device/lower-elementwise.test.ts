/**
 * Elementwise lowerings on WebGPU against the float64 reference: every unary op over special values, integer
 * arithmetic edge cases, the cast matrix, packed outputs, and variadic ops with more inputs than a kernel may bind.
 */
import { emuProbe, requireTool } from '../helpers/tools.js';
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import '../../ir/ops/index.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { Executor } from '../../src/runtime/executor.js';
import { checkAgainstReference, compareWithReference, skipWebgpu } from '../helpers/backends.js';

const noGpu = await skipWebgpu();

const SPECIAL = [0, -0, 1, -1, 0.5, -2.5, 3.7, 100, -100, 1e-30, 65504, Infinity, -Infinity, NaN];
const randn = (n: number) => Array.from({ length: n }, () => (Math.random() - 0.5) * 8);

function oneOp(
  op: string,
  inputs: [DType, number[], number[]][],
  attrs = {},
): { graph: Graph; feeds: Record<string, Tensor> } {
  const b = new GraphBuilder(op);
  const feeds: Record<string, Tensor> = {};
  const vs = inputs.map(([dt, shape, data], i) => {
    feeds[`x${i}`] = makeTensor(dt, shape, data);
    return b.input(`x${i}`, dt, shape);
  });
  b.output(b.op(op, vs, attrs), 'y');
  return { graph: b.build(), feeds };
}

const noGpp = await requireTool('g++ (cuda-emu)', emuProbe);

for (const [backend, skip] of [
  ['webgpu', noGpu],
  ['cuda-emu', noGpp],
] as const)
  describe.skipIf(skip)(`elementwise lowerings on ${backend}`, () => {
    const UNARY = [
      'neg',
      'abs',
      'exp',
      'log',
      'sqrt',
      'reciprocal',
      'tanh',
      'erf',
      'sigmoid',
      'relu',
      'gelu',
      'silu',
      'floor',
      'ceil',
      'round',
      'sign',
      'sin',
      'cos',
      'softplus',
      'hard_sigmoid',
      'hard_swish',
      'leaky_relu',
      'identity',
    ];
    for (const op of UNARY) {
      it(`${op} over special and random values`, async () => {
        const data = [...SPECIAL.filter((x) => !(op === 'sin' || op === 'cos') || Math.abs(x) < 1e4), ...randn(1001)];
        const { graph, feeds } = oneOp(op, [['f32', [data.length], data]]);
        expect(await checkAgainstReference(graph, feeds, { backend })).toEqual([]);
      });
    }

    it('isnan / isinf / not produce packed bool', async () => {
      for (const op of ['isnan', 'isinf']) {
        const { graph, feeds } = oneOp(op, [['f32', [SPECIAL.length], SPECIAL]]);
        expect(await checkAgainstReference(graph, feeds, { backend })).toEqual([]);
      }
      const { graph, feeds } = oneOp('not', [['bool', [7], [1, 0, 0, 1, 1, 1, 0]]]);
      expect(await checkAgainstReference(graph, feeds, { backend })).toEqual([]);
    });

    it('integer div / mod / pow edge cases are exact (division by zero gives 0 like the reference)', async () => {
      const a = [7, -7, 7, -7, 0, 5, -128, 127];
      const b = [2, 2, -2, -2, 3, 0, 3, -1];
      for (const dt of ['i32', 'i8', 'i64', 'i16'] as const) {
        for (const op of ['div', 'mod', 'add', 'sub', 'mul']) {
          const { graph, feeds } = oneOp(op, [
            [dt, [8], a],
            [dt, [8], b],
          ]);
          expect(await checkAgainstReference(graph, feeds, { backend }), `${op} ${dt}`).toEqual([]);
        }
      }
      const { graph, feeds } = oneOp('pow', [
        ['f32', [6], [-2, -2, 2, 0, -8, 3]],
        ['f32', [6], [3, 2, 0.5, 0, 1 / 3, -1]],
      ]);
      expect(await checkAgainstReference(graph, feeds, { backend })).toEqual([]);
    });

    it('the cast matrix between float, integer and bool dtypes', async () => {
      const vals = [0, 1, -1, 2.7, -2.7, 127, 128, 255, 256, -129, 1e6, 0.5, NaN];
      const dts: DType[] = ['f32', 'f16', 'bf16', 'i32', 'i64', 'i8', 'u8', 'i16', 'u16', 'u32', 'bool', 'i4', 'u4'];
      for (const from of ['f32', 'i32'] as const) {
        for (const to of dts) {
          const data = from === 'i32' ? vals.filter((x) => Number.isFinite(x)).map(Math.trunc) : vals;
          const { graph, feeds } = oneOp('cast', [[from, [data.length], data]], { to });
          expect(await checkAgainstReference(graph, feeds, { backend }), `${from} → ${to}`).toEqual([]);
        }
      }
    });

    it('where / clip / comparisons with broadcasting into packed outputs', async () => {
      const c = oneOp('where', [
        ['bool', [3, 1], [1, 0, 1]],
        ['i8', [1, 5], [1, -2, 3, -4, 5]],
        ['i8', [3, 5], randn(15).map(Math.trunc)],
      ]);
      expect(await checkAgainstReference(c.graph, c.feeds, { backend })).toEqual([]);
      const g = oneOp('greater_equal', [
        ['f32', [4, 1, 3], randn(12)],
        ['f32', [5, 1], randn(5)],
      ]);
      expect(await checkAgainstReference(g.graph, g.feeds, { backend })).toEqual([]);
    });
  });

// Variadic ops past the storage-buffer limit: inputs are gathered into one scratch buffer first.
describe.skipIf(noGpu)('variadic ops with more inputs than a kernel may bind', () => {
  let destroy: (() => void) | undefined;
  afterAll(() => destroy?.());

  it('sum / max / min of 9 inputs under a 4-buffer limit match the reference (f32, packed i8)', async () => {
    const { acquireGpu } = await import('../../src/runtime/webgpu/device.js');
    const { WebGpuBackend, deviceCapsOf } = await import('../../src/runtime/webgpu/backend.js');
    const gpu = await acquireGpu();
    destroy = () => gpu.destroy();
    const backend = new WebGpuBackend(gpu, { ...deviceCapsOf(gpu), maxBuffersPerKernel: 4 });
    const gathered = new Set<string>();
    for (const dt of ['f32', 'i8'] as const) {
      for (const op of ['sum', 'max', 'min']) {
        const shapes = [[3, 5], [5], [1, 5], [3, 1], [3, 5], [1], [3, 5], [5], [2 * 0 + 3, 5]];
        const inputs = shapes.map((s): [DType, number[], number[]] => [
          dt,
          s,
          randn(s.reduce((a, b) => a * b, 1)).map((x) => (dt === 'i8' ? Math.trunc(x) : x)),
        ]);
        const { graph, feeds } = oneOp(op, inputs);
        const ex = new Executor(graph, backend, { poison: true });
        const got = await ex.run(feeds);
        for (const k of backend.sources.keys()) if (k.includes('_gather_')) gathered.add(k);
        ex.dispose(); // frees the backend's caches too
        const ref = interpret(graph, feeds);
        expect(compareWithReference('y', got['y']!, ref['y']!), `${op} ${dt}`).toBeUndefined();
      }
    }
    expect(gathered.size).toBeGreaterThan(0); // the gathering path really ran
  });
});
