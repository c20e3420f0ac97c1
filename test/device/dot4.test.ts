/**
 * Kernel IR's packed 4×8-bit dot product (`dot4`: WGSL dot4I8Packed / dot4U8Packed, CUDA __dp4a) and its scalar
 * expansion (`dot4Scalar`), on webgpu and cuda-emu, against hand-worked sums over the byte extremes (−128, 127, 255).
 */
import { describe, expect, it } from 'vitest';
import { add, c, dot4, dot4Scalar, for_, load, mul, store, v, type Kernel } from '../../codegen/kir.js';
import { legalize } from '../../codegen/legalize.js';
import { CudaRenderer } from '../../codegen/render/cuda.js';
import { WgslRenderer } from '../../codegen/render/wgsl.js';
import '../../codegen/lower/index.js';
import { lowerNode } from '../../codegen/lower/registry.js';
import { DEFAULT_CAPS, type DeviceCaps } from '../../codegen/lower/storage.js';
import { GraphBuilder } from '../../ir/builder.js';
import '../../ir/index.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor } from '../../ir/tensor.js';
import { Executor, type DeviceBackend } from '../../src/runtime/executor.js';
import { compareWithReference } from '../helpers/backends.js';
import { skipWebgpu } from '../helpers/backends.js';
import { emuProbe, requireTool } from '../helpers/tools.js';

const noGpu = await skipWebgpu();
const noGpp = await requireTool('g++ (cuda-emu)', emuProbe);

/** A word from its four bytes, low byte first (each −128…255, taken mod 256). */
const word = (b: readonly number[]) => b.reduce((w, x, j) => w + (x & 255) * 2 ** (8 * j), 0);

// [a bytes, b bytes, Σ as i8 · i8, Σ as u8 · u8], worked by hand
const CASES: [number[], number[], number, number][] = [
  [[-128, -128, -128, -128], [-128, -128, -128, -128], 65536, 65536],
  [[127, 127, 127, 127], [-128, -128, -128, -128], -65024, 65024],
  [[255, 255, 255, 255], [255, 255, 255, 255], 4, 260100],
  [[1, 2, 3, 4], [5, 6, 7, 8], 70, 70],
  [[-1, 2, -3, 4], [5, -6, 7, -8], -70, 4538],
  [[0, 0, 0, 0], [255, -128, 127, 1], 0, 0],
  [[127, 0, 0, 0], [127, 0, 0, 0], 16129, 16129],
  [[255, 0, 0, 127], [128, 0, 0, 255], 1, 65025],
];
const n = CASES.length;

/** out[4i + 0..3] = native signed, native unsigned, scalar signed, scalar unsigned dot of a[i], b[i]. */
const kernel: Kernel = {
  name: 'dot4_probe',
  buffers: [
    { name: 'a', storage: 'u32', access: 'read' },
    { name: 'b', storage: 'u32', access: 'read' },
    { name: 'o', storage: 'i32', access: 'read_write' },
  ],
  uniforms: [],
  shared: [],
  workgroup: [1, 1, 1],
  body: [
    for_('i', c.i32(0), c.i32(n), [
      ...[
        dot4(load('a', v('i', 'i32'), 'u32'), load('b', v('i', 'i32'), 'u32'), true),
        dot4(load('a', v('i', 'i32'), 'u32'), load('b', v('i', 'i32'), 'u32'), false),
        dot4Scalar(load('a', v('i', 'i32'), 'u32'), load('b', v('i', 'i32'), 'u32'), true),
        dot4Scalar(load('a', v('i', 'i32'), 'u32'), load('b', v('i', 'i32'), 'u32'), false),
      ].map((e, j) => store('o', add(mul(v('i', 'i32'), c.i32(4)), c.i32(j)), e)),
    ]),
  ],
};

async function runOn<B>(be: DeviceBackend<B>): Promise<Int32Array> {
  const bytes = (xs: number[]) => new Uint8Array(Uint32Array.from(xs).buffer);
  const a = be.alloc(4 * n, 'a');
  const b = be.alloc(4 * n, 'b');
  const o = be.alloc(16 * n, 'o');
  be.write(a, bytes(CASES.map(([x]) => word(x))));
  be.write(b, bytes(CASES.map(([, y]) => word(y))));
  be.poison?.(o, 16 * n);
  await be.prepare([kernel]);
  await be.run([{ kernel, buffers: [a, b, o], uniforms: new ArrayBuffer(0), grid: [1, 1, 1] }]);
  const out = await be.read(o, 16 * n);
  return new Int32Array(out.buffer, out.byteOffset, 4 * n);
}

function expectCases(got: Int32Array): void {
  CASES.forEach(([a, b, s, u], i) => {
    const row = Array.from(got.subarray(4 * i, 4 * i + 4));
    expect(row, `a=[${a}] b=[${b}]`).toEqual([s, u, s, u]);
  });
}

describe('dot4 rendering', () => {
  it('WGSL: dot4I8Packed / dot4U8Packed with `requires packed_4x8_integer_dot_product`', () => {
    const src = new WgslRenderer().render(legalize(kernel));
    expect(src).toMatch(/^requires packed_4x8_integer_dot_product;/m);
    expect(src).toContain('dot4I8Packed(a[i], b[i])');
    expect(src).toContain('i32(dot4U8Packed(a[i], b[i]))');
  });
  it('CUDA C: __dp4a, the int and the unsigned overload', () => {
    const src = new CudaRenderer().render(legalize(kernel));
    expect(src).toContain('__dp4a((int)(a[i]), (int)(b[i]), 0)');
    expect(src).toContain('((int)__dp4a((unsigned)(a[i]), (unsigned)(b[i]), 0u))');
  });
});

describe.skipIf(noGpu)('dot4 on webgpu', () => {
  it('native and scalar, signed and unsigned, over the byte extremes', async () => {
    const { acquireGpu } = await import('../../src/runtime/webgpu/device.js');
    const { WebGpuBackend } = await import('../../src/runtime/webgpu/backend.js');
    const gpu = await acquireGpu();
    expect(gpu.caps.packed4x8Dot, 'this adapter lists packed_4x8_integer_dot_product').toBe(true);
    const be = new WebGpuBackend(gpu);
    expect(be.caps.dot4).toBe(true);
    expectCases(await runOn(be));
  });
});

describe.skipIf(noGpp)('dot4 on cuda-emu', () => {
  it('native (__dp4a of the emulation header) and scalar, signed and unsigned, over the byte extremes', async () => {
    const { CudaEmuBackend, CUDA_CAPS } = await import('../../src/runtime/cuda-emu/backend.js');
    expect(CUDA_CAPS.dot4).toBe(true);
    expectCases(await runOn(new CudaEmuBackend()));
  }, 120_000);
});

/** The kernels matmul_integer lowers to, rendered: [names, WGSL, CUDA C]. */
function lowered(
  caps: DeviceCaps,
  da: 'i8' | 'u8',
  db: 'i8' | 'u8',
  [M, K, N]: [number, number, number],
  transB = true,
): { names: string[]; wgsl: string; cuda: string } {
  const steps = lowerNode({
    caps,
    node: 'mm',
    op: 'matmul_integer',
    attrs: transB ? { trans_b: true } : {},
    inputs: [
      { dtype: da, shape: [M, K] },
      { dtype: db, shape: transB ? [N, K] : [K, N] },
    ],
    outputs: [{ dtype: 'i32', shape: [M, N] }],
  });
  const ks = steps.map((s) => legalize(s.kernel));
  return {
    names: ks.map((k) => k.name),
    wgsl: ks.map((k) => new WgslRenderer().render(k)).join('\n'),
    cuda: ks.map((k) => new CudaRenderer().render(k)).join('\n'),
  };
}

describe('matmul_integer takes the packed dot path', () => {
  const caps: DeviceCaps = { ...DEFAULT_CAPS, dot4: true };
  it('b as [N, K] (trans_b), K % 4 == 0: dot4I8Packed in WGSL, __dp4a in CUDA C', () => {
    for (const shape of [
      [1, 64, 32],
      [17, 4, 5],
    ] as [number, number, number][]) {
      const r = lowered(caps, 'i8', 'i8', shape);
      expect(r.names.every((n) => n.includes('matmul_integer_dot4'))).toBe(true);
      expect(r.wgsl).toContain('dot4I8Packed(');
      expect(r.cuda).toContain('__dp4a(');
    }
    const uu = lowered(caps, 'u8', 'u8', [1, 8, 3]);
    expect(uu.wgsl).toContain('dot4U8Packed(');
    // mixed: the u8 side moved to i8 by XOR 0x80808080, an i8 · i8 dot
    const mixed = lowered(caps, 'u8', 'i8', [1, 8, 3]);
    expect(mixed.wgsl).toContain('dot4I8Packed(');
    expect(mixed.wgsl).toContain(`${0x80808080}u`);
  });
  it('without the device feature: the same kernel from shifts and multiplies', () => {
    const r = lowered({ ...DEFAULT_CAPS, dot4: false }, 'i8', 'i8', [1, 64, 32]);
    expect(r.names[0]).toContain('matmul_integer_dot4');
    expect(r.wgsl).not.toContain('dot4I8Packed');
    expect(r.cuda).not.toContain('__dp4a');
  });
  it('near misses keep the element-wise schedules: b as [K, N], K % 4 != 0', () => {
    expect(lowered(caps, 'i8', 'i8', [1, 64, 32], false).names.some((n) => n.includes('dot4'))).toBe(false);
    expect(lowered(caps, 'i8', 'i8', [1, 66, 32]).names.some((n) => n.includes('dot4'))).toBe(false);
  });
});

describe.skipIf(noGpu)('matmul_integer dot path on webgpu without the feature (scalar dot4)', () => {
  it('equals the float64 reference, mixed signedness and zero points', async () => {
    const { acquireGpu } = await import('../../src/runtime/webgpu/device.js');
    const { WebGpuBackend, deviceCapsOf } = await import('../../src/runtime/webgpu/backend.js');
    const gpu = await acquireGpu();
    const backend = new WebGpuBackend(gpu, { ...deviceCapsOf(gpu), dot4: false });
    const g = new GraphBuilder('mm');
    const [M, K, N] = [3, 12, 5];
    const av = Array.from({ length: M * K }, (_, i) => [0, 255, 128, 1, 77][i % 5]!);
    const bv = Array.from({ length: N * K }, (_, i) => [-128, 127, 0, -1, 3, 64][i % 6]!);
    const a = g.input('a', 'u8', [M, K]);
    const b = g.input('b', 'i8', [N, K]);
    const za = g.const('u8', [128, 3, 255], [M]);
    const zb = g.const('i8', [-128], []);
    g.output(g.op('matmul_integer', [a, b, za, zb], { trans_b: true }), 'y');
    const graph = g.build();
    const feeds = { a: makeTensor('u8', [M, K], av), b: makeTensor('i8', [N, K], bv) };
    const ex = new Executor(graph, backend, { poison: true });
    try {
      const got = await ex.run(feeds);
      expect([...backend.sources.keys()].some((k) => k.includes('matmul_integer_dot4'))).toBe(true);
      expect([...backend.sources.values()].some((s) => s.includes('dot4I8Packed'))).toBe(false);
      expect(compareWithReference('y', got['y']!, interpret(graph, feeds)['y']!)).toBeUndefined();
    } finally {
      ex.dispose();
      gpu.destroy();
    }
  });
});
