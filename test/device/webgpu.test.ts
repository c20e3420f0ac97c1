/**
 * The WebGPU runtime on a real adapter (lavapipe on machines without a GPU).
 *
 * No adapter: with CI=true the suite fails; otherwise every test is skipped with a note saying how to install
 * lavapipe (`sudo bash scripts/install-lavapipe.sh`). A missing device feature (shader-f16, timestamp-query) likewise.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { requireTool, skipUnless } from '../helpers/tools.js';
import { KilnError } from '../../ir/errors.js';
import {
  BufferPool,
  INSTALL_HINT,
  STORAGE_USAGE,
  WgslCompileError,
  acquireGpu,
  bufferPool,
  compileKernel,
  encodeRun,
  pipelineCache,
  poisonBuffer,
  readback,
  readbackAs,
  sizeClass,
  uploadArray,
  type GpuContext,
} from '../../src/runtime/webgpu/index.js';

let gpu: GpuContext | undefined;
let acquireError: unknown;
try {
  gpu = await acquireGpu();
} catch (e) {
  acquireError = e;
}
const SKIP_NOTE =
  acquireError instanceof KilnError
    ? acquireError.message.split('\n')[0]!
    : `no WebGPU adapter (${String(acquireError)}). ${INSTALL_HINT}`;
const noGpu = await requireTool('a WebGPU adapter', () => (gpu ? undefined : SKIP_NOTE));

afterAll(() => gpu?.destroy());

/** Seeded PRNG (mulberry32): fresh inputs every run, the seed printed in failure messages. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const SEED = (Math.random() * 2 ** 32) >>> 0;

function randomF32(n: number, rand: () => number): Float32Array<ArrayBuffer> {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rand() * 4 - 2;
  return a;
}

/** f32 -> f16 bits, round to nearest even. */
function toHalf(x: number): number {
  const f = new Float32Array([x]);
  const b = new Uint32Array(f.buffer)[0]!;
  const sign = (b >>> 16) & 0x8000;
  const e8 = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (e8 === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const exp = e8 - 127 + 15;
  if (exp >= 31) return sign | 0x7c00;
  if (exp <= 0) {
    if (exp < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - exp;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (exp << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}
function fromHalf(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Max elementwise violation of |out - ref| <= atol + rtol * scale; NaN counts as a violation. */
function worst(out: ArrayLike<number>, ref: ArrayLike<number>, scale: ArrayLike<number>, rtol: number, atol: number) {
  let bad = -1;
  let count = 0;
  for (let i = 0; i < ref.length; i++) {
    const ok = Math.abs(out[i]! - ref[i]!) <= atol + rtol * Math.abs(scale[i]!);
    if (!ok) {
      count++;
      if (bad < 0) bad = i;
    }
  }
  return { count, first: bad, got: bad >= 0 ? out[bad] : undefined, want: bad >= 0 ? ref[bad] : undefined };
}

const VADD = /* wgsl */ `
struct Params { n: u32, alpha: f32 }
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i < p.n) {
    y[i] = a[i] + p.alpha * b[i];
  }
}
`;

const MUL = /* wgsl */ `
struct Params { n: u32 }
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i < p.n) {
    y[i] = a[i] * b[i];
  }
}
`;

function params(n: number, alpha?: number): ArrayBuffer {
  const buf = new ArrayBuffer(8);
  new Uint32Array(buf, 0, 1)[0] = n;
  if (alpha !== undefined) new Float32Array(buf, 4, 1)[0] = alpha;
  return buf;
}

describe.skipIf(noGpu)('WebGPU runtime', () => {
  it('reads sane capabilities', () => {
    const caps = gpu!.caps;
    expect(caps.maxComputeInvocationsPerWorkgroup).toBeGreaterThanOrEqual(256);
    expect(caps.maxStorageBuffersPerShaderStage).toBeGreaterThanOrEqual(8);
    expect(caps.maxComputeWorkgroupStorageSize).toBeGreaterThanOrEqual(16384);
    expect(caps.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 << 20);
    expect(caps.maxBufferSize).toBeGreaterThanOrEqual(caps.maxStorageBufferBindingSize);
    expect(caps.maxComputeWorkgroupsPerDimension).toBeGreaterThanOrEqual(65535);
    expect(caps.maxComputeWorkgroupSizeX).toBeGreaterThanOrEqual(256);
    expect(caps.adapterDescription.length).toBeGreaterThan(0);
    expect(gpu!.fingerprint).toContain(caps.shaderF16 ? 'f16' : 'nof16');
    if (/llvmpipe/i.test(caps.adapter.description) && /Mesa 2[5-9]/.test(caps.adapter.description)) {
      expect(caps.shaderF16).toBe(true);
      expect(caps.subgroups).toBe(true);
      expect(caps.subgroupMinSize).toBe(8);
    }
    if (caps.subgroups && caps.subgroupMinSize !== undefined) {
      expect(caps.subgroupMaxSize).toBeGreaterThanOrEqual(caps.subgroupMinSize);
    }
  });

  it('runs a vector add with uniforms on an odd length into a poisoned output', async () => {
    const ctx = gpu!;
    const n = 1_000_003;
    const rand = rng(SEED);
    const a = randomF32(n, rand);
    const b = randomF32(n, rand);
    const alpha = 0.75 + rand();
    const pipeline = await compileKernel(ctx, { key: 'test-vadd', wgsl: VADD, entryPoint: 'main', label: 'vadd' });
    const [ga, gb] = [await uploadArray(ctx, a), await uploadArray(ctx, b)];
    const gy = await bufferPool(ctx).acquire(n * 4);
    expect(gy.size).toBe(sizeClass(n * 4));
    expect(gy.size).toBeGreaterThan(n * 4);
    poisonBuffer(ctx, gy, { byteLength: gy.size });
    const run = encodeRun(ctx, [
      { pipeline, bindings: [ga, gb, gy], uniform: params(n, alpha), workgroups: [Math.ceil(n / 256)] },
    ]);
    await run.done();
    const y = await readbackAs(ctx, gy, Float32Array, n);
    expect(y.length).toBe(n);
    const alpha32 = Math.fround(alpha);
    const ref = new Float64Array(n);
    const scale = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      ref[i] = a[i]! + alpha32 * b[i]!;
      scale[i] = Math.abs(a[i]!) + Math.abs(alpha32 * b[i]!);
    }
    const w = worst(y, ref, scale, 1e-6, 0);
    expect(w, `seed ${SEED}`).toEqual({ count: 0, first: -1, got: undefined, want: undefined });
    // Past n the buffer was never written: still poison (NaN).
    const tail = new Float32Array(await readback(ctx, gy, { byteOffset: n * 4, byteLength: 64 }));
    expect(tail.every((v) => Number.isNaN(v))).toBe(true);
    for (const buf of [ga, gb, gy]) bufferPool(ctx).release(buf);
  });

  it('runs an f16 kernel (enable f16) when shader-f16 is present', async (t) => {
    const ctx = gpu!;
    skipUnless(t, ctx.caps.shaderF16, 'the device has no shader-f16');
    const wgsl = /* wgsl */ `
enable f16;
struct Params { n: u32 }
@group(0) @binding(0) var<storage, read> a: array<f16>;
@group(0) @binding(1) var<storage, read> b: array<f16>;
@group(0) @binding(2) var<storage, read_write> y: array<f16>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i < p.n) {
    y[i] = a[i] * b[i] + a[i];
  }
}
`;
    const n = 1001;
    const rand = rng(SEED ^ 0x1234);
    const a = new Uint16Array(n).map(() => toHalf(rand() * 4 - 2));
    const b = new Uint16Array(n).map(() => toHalf(rand() * 4 - 2));
    const pipeline = await compileKernel(ctx, { key: 'test-f16', wgsl, entryPoint: 'main', label: 'fma16' });
    const [ga, gb] = [await uploadArray(ctx, a), await uploadArray(ctx, b)];
    const gy = await bufferPool(ctx).acquire(n * 2);
    poisonBuffer(ctx, gy);
    encodeRun(ctx, [{ pipeline, bindings: [ga, gb, gy], uniform: params(n), workgroups: [Math.ceil(n / 64)] }]);
    const bits = await readbackAs(ctx, gy, Uint16Array, n);
    const y = Array.from(bits, fromHalf);
    const ref: number[] = [];
    const scale: number[] = [];
    for (let i = 0; i < n; i++) {
      const [x, z] = [fromHalf(a[i]!), fromHalf(b[i]!)];
      ref.push(x * z + x);
      scale.push(Math.abs(x * z) + Math.abs(x));
    }
    expect(worst(y, ref, scale, 2e-3, 1e-4).count, `seed ${SEED}`).toBe(0);
    for (const buf of [ga, gb, gy]) bufferPool(ctx).release(buf);
  });

  it('reports invalid WGSL as a typed error with line, column and source line', async () => {
    const wgsl = ['@group(0) @binding(0) var<storage, read_write> y: array<f32>;', '', '@compute @workgroup_size(1)']
      .concat(['fn main() {', '  y[0] = undefined_thing + 1.0;', '}'])
      .join('\n');
    const err = await compileKernel(gpu!, { key: 'test-bad', wgsl, entryPoint: 'main', label: 'broken_kernel' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WgslCompileError);
    expect(err).toBeInstanceOf(KilnError);
    const e = err as WgslCompileError;
    expect(e.code).toBe('runtime');
    expect(e.kernel).toBe('broken_kernel');
    expect(e.line).toBe(5);
    expect(e.column).toBeGreaterThan(0);
    expect(e.message).toContain("'broken_kernel'");
    expect(e.message).toContain('5:');
    expect(e.message).toContain('y[0] = undefined_thing + 1.0;');
    // A failed compile is not cached.
    expect(pipelineCache(gpu!).has('test-bad')).toBe(false);
  });

  it('reports a workgroup-storage overflow as a limit error', async () => {
    const words = gpu!.caps.maxComputeWorkgroupStorageSize / 4 + 16;
    const wgsl = `
var<workgroup> tile: array<f32, ${words}>;
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) l: u32) {
  tile[l] = f32(l);
  workgroupBarrier();
  y[l] = tile[${words - 1} - l];
}`;
    const err = await compileKernel(gpu!, { key: 'test-wgs', wgsl, entryPoint: 'main', label: 'too_much_smem' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WgslCompileError);
    expect(err).toMatchObject({ code: 'limit', location: { limit: 'maxComputeWorkgroupStorageSize' } });
    expect((err as KilnError).message).toContain('too_much_smem');
    const big = gpu!.caps.maxComputeWorkgroupSizeX * 2;
    const wgsl2 = `@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(${big}) fn main(@builtin(global_invocation_id) g: vec3<u32>) { y[g.x] = 1.0; }`;
    const err2 = await compileKernel(gpu!, { key: 'test-wgsize', wgsl: wgsl2, label: 'too_wide' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err2).toMatchObject({ code: 'limit', location: { limit: 'maxComputeWorkgroupSizeX' } });
  });

  it('chains two kernels in one submission, each with its own uniform', async () => {
    const ctx = gpu!;
    const n = 4099;
    const rand = rng(SEED ^ 0x777);
    const [a, b, c] = [randomF32(n, rand), randomF32(n, rand), randomF32(n, rand)];
    const mul = await compileKernel(ctx, { key: 'test-mul', wgsl: MUL, entryPoint: 'main', label: 'mul' });
    const vadd = await compileKernel(ctx, { key: 'test-vadd', wgsl: VADD, entryPoint: 'main', label: 'vadd' });
    const pool = bufferPool(ctx);
    const [ga, gb, gc] = [await uploadArray(ctx, a), await uploadArray(ctx, b), await uploadArray(ctx, c)];
    const [gt, gy] = [await pool.acquire(n * 4), await pool.acquire(n * 4)];
    poisonBuffer(ctx, gt);
    poisonBuffer(ctx, gy);
    const submits: number[] = [];
    const queue = ctx.device.queue;
    const origSubmit = queue.submit.bind(queue);
    queue.submit = (cbs: Iterable<GPUCommandBuffer>) => {
      submits.push([...cbs].length);
      return origSubmit(cbs);
    };
    try {
      encodeRun(ctx, [
        { pipeline: mul, bindings: [ga, gb, gt], uniform: params(n), workgroups: [Math.ceil(n / 64)] },
        { pipeline: vadd, bindings: [gt, gc, gy], uniform: params(n, -0.5), workgroups: [Math.ceil(n / 256)] },
      ]);
    } finally {
      queue.submit = origSubmit;
    }
    expect(submits).toEqual([1]);
    const y = await readbackAs(ctx, gy, Float32Array, n);
    const ref: number[] = [];
    const scale: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = Math.fround(a[i]! * b[i]!);
      ref.push(t - 0.5 * c[i]!);
      scale.push(Math.abs(t) + Math.abs(0.5 * c[i]!));
    }
    expect(worst(y, ref, scale, 1e-6, 0).count, `seed ${SEED}`).toBe(0);
    for (const buf of [ga, gb, gc, gt, gy]) pool.release(buf);
  });

  it('reuses released buffers by size class', async () => {
    const ctx = gpu!;
    const pool = new BufferPool(ctx);
    expect([0, 1, 256, 257, 1000, 1 << 20, (1 << 20) + 1, 3_000_001].map(sizeClass)).toEqual([
      256,
      256,
      256,
      512,
      1024,
      1 << 20,
      (1 << 20) + (1 << 17),
      3_145_728,
    ]);
    const b1 = await pool.acquire(1000);
    expect(b1.size).toBe(1024);
    expect(b1.usage).toBe(STORAGE_USAGE);
    expect(pool.byteLength(b1)).toBe(1000);
    pool.release(b1);
    const b2 = await pool.acquire(900);
    expect(b2).toBe(b1);
    expect(pool.byteLength(b2)).toBe(900);
    const b3 = await pool.acquire(900);
    expect(b3).not.toBe(b1);
    const b4 = await pool.acquire(5000);
    expect(b4.size).toBe(8192);
    expect(pool.stats()).toMatchObject({ created: 3, reused: 1, live: 3, free: 0 });
    pool.release(b2);
    expect(() => pool.release(b2)).toThrow(/released twice/);
    pool.release(b3);
    pool.release(b4);
    expect(pool.stats()).toMatchObject({ live: 0, free: 3, freeBytes: 1024 + 1024 + 8192 });
    pool.trim();
    expect(pool.stats()).toMatchObject({ live: 0, free: 0 });
    await expect(pool.acquire(ctx.caps.maxBufferSize + 1)).rejects.toMatchObject({
      code: 'limit',
      location: { limit: 'maxBufferSize' },
    });
    pool.destroy();
  });

  it('returns the same pipeline object for the same key (cache hit)', async () => {
    const ctx = gpu!;
    const cache = pipelineCache(ctx);
    const src = { key: 'test-cache-mul', wgsl: MUL, entryPoint: 'main', label: 'mul' };
    const [p1, p2] = await Promise.all([compileKernel(ctx, src), compileKernel(ctx, src)]);
    const hits = cache.hits;
    const p3 = await compileKernel(ctx, src);
    expect(p2).toBe(p1);
    expect(p3).toBe(p1);
    expect(cache.hits).toBe(hits + 1);
    expect(cache.cacheKey('x')).toContain(ctx.fingerprint);
    const other = await compileKernel(ctx, { ...src, key: 'test-cache-mul-2' });
    expect(other).not.toBe(p1);
    await expect(compileKernel(ctx, { ...src, wgsl: VADD })).rejects.toThrow(/collision/);
  });

  it('supports an explicit layout in which a binding is unused', async () => {
    const ctx = gpu!;
    const wgsl = `
@group(0) @binding(0) var<storage, read> unused: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(4)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) { y[gid.x] = f32(gid.x) * 2.0; }`;
    const pipeline = await compileKernel(ctx, {
      key: 'test-explicit',
      wgsl,
      label: 'explicit',
      bindings: ['read', 'read_write'],
    });
    const pool = bufferPool(ctx);
    const [x, y] = [await pool.acquire(16), await pool.acquire(16)];
    poisonBuffer(ctx, y);
    encodeRun(ctx, [{ pipeline, bindings: [x, y], workgroups: [1] }]);
    expect(Array.from(await readbackAs(ctx, y, Float32Array, 4))).toEqual([0, 2, 4, 6]);
    pool.release(x);
    pool.release(y);
  });

  it('rejects dispatches over device limits synchronously, and surfaces GPU validation errors at readback', async () => {
    const ctx = gpu!;
    const pipeline = await compileKernel(ctx, { key: 'test-vadd', wgsl: VADD, entryPoint: 'main', label: 'vadd' });
    const pool = bufferPool(ctx);
    const bufs = [await pool.acquire(64), await pool.acquire(64), await pool.acquire(64)];
    const tooMany = ctx.caps.maxComputeWorkgroupsPerDimension + 1;
    expect(() => encodeRun(ctx, [{ pipeline, bindings: bufs, uniform: params(16, 1), workgroups: [tooMany] }])).toThrow(
      expect.objectContaining({ code: 'limit', location: { limit: 'maxComputeWorkgroupsPerDimension' } }),
    );
    // Missing uniform: the bind group does not match the pipeline's layout.
    encodeRun(ctx, [{ pipeline, bindings: bufs, workgroups: [1], label: 'no-uniform' }], { label: 'bad-run' });
    await expect(readback(ctx, bufs[2]!)).rejects.toMatchObject({
      code: 'runtime',
      message: expect.stringMatching(/no-uniform[\s\S]*bad-run|bad-run/),
    });
    // The error was reported once; the context is usable again.
    encodeRun(ctx, [{ pipeline, bindings: bufs, uniform: params(16, 1), workgroups: [1] }]);
    await expect(readback(ctx, bufs[2]!)).resolves.toBeInstanceOf(ArrayBuffer);
    for (const b of bufs) pool.release(b);
  });

  it('times steps with timestamp queries where the device has them', async (t) => {
    const ctx = gpu!;
    skipUnless(t, ctx.caps.timestampQuery, 'the device has no timestamp-query');
    const n = 1 << 18;
    const pipeline = await compileKernel(ctx, { key: 'test-mul', wgsl: MUL, entryPoint: 'main', label: 'mul' });
    const pool = bufferPool(ctx);
    const rand = rng(SEED);
    const [ga, gb] = [await uploadArray(ctx, randomF32(n, rand)), await uploadArray(ctx, randomF32(n, rand))];
    const gy = await pool.acquire(n * 4);
    const step = { pipeline, bindings: [ga, gb, gy], uniform: params(n), workgroups: [n / 64] };
    const run = encodeRun(ctx, [step, step, step], { timing: true });
    const ns = await run.timings();
    expect(ns).toHaveLength(3);
    for (const v of ns) {
      expect(Number.isFinite(v)).toBe(true);
      expect(v).toBeGreaterThan(0);
    }
    await expect(encodeRun(ctx, [step]).timings()).rejects.toMatchObject({ code: 'unsupported' });
    for (const b of [ga, gb, gy]) pool.release(b);
  });

  it('surfaces device loss as a typed error on the next operation', async () => {
    const other = await acquireGpu();
    const pool = bufferPool(other);
    const b = await pool.acquire(64);
    other.device.destroy();
    await other.device.lost;
    expect(other.isLost).toBe(true);
    expect(() => poisonBuffer(other, b)).toThrow(expect.objectContaining({ code: 'device' }));
    await expect(pool.acquire(64)).rejects.toMatchObject({ code: 'device', message: /lost/ });
    await expect(
      compileKernel(other, { key: 'test-mul', wgsl: MUL, entryPoint: 'main', label: 'mul' }),
    ).rejects.toMatchObject({ code: 'device' });
  });
});
