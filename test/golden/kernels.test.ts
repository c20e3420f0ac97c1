/**
 * Golden files of generated kernel source (WGSL and CUDA C) for representative kernels: a change in codegen shows up
 * as a reviewable diff. A missing file fails; (re)generate with `KILN_UPDATE_GOLDEN=1 npx vitest run test/golden`.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import '../../ir/ops/index.js';
import type { Graph } from '../../ir/graph.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { legalize } from '../../codegen/legalize.js';
import { CudaRenderer } from '../../codegen/render/cuda.js';
import { WgslRenderer } from '../../codegen/render/wgsl.js';
import { DEFAULT_CAPS, hasLowering, type DeviceCaps } from '../../codegen/lower/index.js';
import type { Kernel } from '../../codegen/kir.js';
import { CUDA_CAPS } from '../../src/runtime/cuda-emu/backend.js';
import { Executor } from '../../src/runtime/executor.js';
import { RecordingBackend } from '../../src/runtime/recording.js';
import { goldenMismatch } from '../helpers/golden.js';
import { REPO_ROOT } from '../helpers/paths.js';

const DIR = join(REPO_ROOT, 'test/golden');

interface Case {
  name: string;
  op: string;
  build: () => { graph: Graph; feeds: Record<string, Tensor> };
}

const zeros = (dtype: 'f32' | 'f16' | 'i64' | 'bool', shape: number[]) =>
  makeTensor(dtype, shape, new Array(shape.reduce((a, b) => a * b, 1)).fill(0));

function single(op: string, inputs: [string, 'f32' | 'f16' | 'i64' | 'bool', number[]][], attrs = {}) {
  return () => {
    const b = new GraphBuilder(op);
    const vs = inputs.map(([n, dt, shape]) => b.input(n, dt, shape));
    b.output(b.op(op, vs, attrs), 'y');
    return { graph: b.build(), feeds: Object.fromEntries(inputs.map(([n, dt, shape]) => [n, zeros(dt, shape)])) };
  };
}

const CASES: Case[] = [
  {
    name: 'add_broadcast',
    op: 'add',
    build: single('add', [
      ['a', 'f32', [4, 8]],
      ['b', 'f32', [8]],
    ]),
  },
  { name: 'gelu_tanh_f16', op: 'gelu', build: single('gelu', [['x', 'f16', [33]]], { approximate: 'tanh' }) },
  {
    name: 'greater_bool_packed',
    op: 'greater',
    build: single('greater', [
      ['a', 'f32', [5, 3]],
      ['b', 'f32', [5, 1]],
    ]),
  },
  { name: 'softmax_lastaxis', op: 'softmax', build: single('softmax', [['x', 'f32', [4, 100]]], { axis: -1 }) },
  {
    name: 'layer_norm',
    op: 'layer_norm',
    build: single('layer_norm', [
      ['x', 'f32', [4, 64]],
      ['g', 'f32', [64]],
      ['b', 'f32', [64]],
    ]),
  },
  {
    name: 'matmul',
    op: 'matmul',
    build: single('matmul', [
      ['a', 'f32', [2, 64, 48]],
      ['b', 'f32', [48, 80]],
    ]),
  },
  {
    name: 'transpose_0213',
    op: 'transpose',
    build: single('transpose', [['x', 'f32', [2, 3, 4, 5]]], { perm: [0, 2, 1, 3] }),
  },
  {
    name: 'gather_rows',
    op: 'gather',
    build: single(
      'gather',
      [
        ['t', 'f32', [16, 8]],
        ['i', 'i64', [2, 3]],
      ],
      { axis: 0 },
    ),
  },
];

/** Kernels a case lowers to for a device's capabilities (WebGPU defaults, or CUDA: warp shuffles in reductions). */
async function kernelsFor(c: Case, caps: DeviceCaps): Promise<Kernel[]> {
  const { graph, feeds } = c.build();
  const rec = new RecordingBackend(caps);
  await new Executor(graph, rec).run(feeds);
  return [...rec.kernels.values()].map(legalize);
}

async function kernelsOf(c: Case): Promise<{ wgsl: string; cuda: string }> {
  const wgsl = await kernelsFor(c, DEFAULT_CAPS);
  const cuda = await kernelsFor(c, CUDA_CAPS);
  return {
    wgsl: wgsl.map((k) => `// ${k.name}\n${new WgslRenderer().render(k)}`).join('\n'),
    cuda: cuda.map((k) => `// ${k.name}\n${new CudaRenderer().render(k)}`).join('\n'),
  };
}

describe('golden kernel source', () => {
  it('has a case for every golden file (a renamed case must not leave a stale file behind)', () => {
    const names = new Set(CASES.map((c) => c.name));
    for (const ext of ['wgsl', 'cuda']) {
      const stale = readdirSync(join(DIR, ext)).filter((f) => !names.has(f.replace(/\.(wgsl|cu)$/, '')));
      expect(stale, ext).toEqual([]);
    }
  });

  for (const c of CASES) {
    it(c.name, async () => {
      expect(hasLowering(c.op)).toBe(true);
      const { wgsl, cuda } = await kernelsOf(c);
      for (const [ext, text] of [
        ['wgsl', wgsl],
        ['cuda', cuda],
      ] as const) {
        const file = join(DIR, ext, `${c.name}.${ext === 'wgsl' ? 'wgsl' : 'cu'}`);
        expect(goldenMismatch(file, text)).toBeUndefined();
      }
    });
  }
});
