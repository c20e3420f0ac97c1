/**
 * Kernel IR's packed 4×8-bit dot product (`dot4`: WGSL dot4I8Packed / dot4U8Packed, CUDA __dp4a) and its scalar
 * expansion (`dot4Scalar`), on webgpu and cuda-emu, against hand-worked sums over the byte extremes (−128, 127, 255).
 */
import { describe, expect, it } from 'vitest';
import { add, c, dot4, dot4Scalar, for_, load, mul, store, v, type Kernel } from '../../codegen/kir.js';
import { legalize } from '../../codegen/legalize.js';
import { CudaRenderer } from '../../codegen/render/cuda.js';
import { WgslRenderer } from '../../codegen/render/wgsl.js';
import type { DeviceBackend } from '../../src/runtime/executor.js';
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
