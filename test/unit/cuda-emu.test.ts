/**
 * The CUDA C CPU emulator: hand-written kernels (test/fixtures/cuda/emu_kernels.cu) run with CUDA semantics and are
 * compared with float64 JavaScript references; emulator errors surface as typed KilnErrors.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { KilnError } from '../../ir/errors.js';
import { compileEmu, EmuError, type EmuModule, type EmuPlan } from '../../src/runtime/cuda-emu/index.js';
import { emuProbe, fileProbe, requireTool } from '../helpers/tools.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const fixture = path.join(root, 'test/fixtures/cuda/emu_kernels.cu');
const sharedHeader = path.join(root, 'codegen/cuda/emu/kiln_cuda_shared.h');
const NVCC = '/usr/local/cuda/bin/nvcc';
const noEmu = await requireTool('g++ (cuda-emu)', emuProbe);
const noNvcc = await requireTool('nvcc', fileProbe(NVCC, 'the CUDA toolkit'));
const seed = Number(process.env.KILN_SEED ?? Math.floor(Math.random() * 2 ** 31));

/* ------------------------------------------------------------------ helpers */

function rng(s: number): () => number {
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomF32(n: number, rand: () => number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rand();
  return a;
}

const f32 = (u: Uint8Array | undefined): Float32Array => new Float32Array(u!.buffer, u!.byteOffset, u!.byteLength / 4);
const u32v = (u: Uint8Array | undefined): Uint32Array => new Uint32Array(u!.buffer, u!.byteOffset, u!.byteLength / 4);
const i32v = (u: Uint8Array | undefined): Int32Array => new Int32Array(u!.buffer, u!.byteOffset, u!.byteLength / 4);
const u16v = (u: Uint8Array | undefined): Uint16Array => new Uint16Array(u!.buffer, u!.byteOffset, u!.byteLength / 2);
/** An output buffer filled with 0xff bytes (NaN as f32) so an unwritten element fails. */
const poison = (bytes: number) => ({ size: bytes, fill: 0xff });

/** Elementwise |got - ref| <= atol + rtol |ref| and ||got - ref|| / ||ref|| <= rtol; NaN never passes. */
function expectClose(got: ArrayLike<number>, ref: ArrayLike<number>, rtol: number, atol: number, label: string): void {
  expect(got.length, `${label}: length`).toBe(ref.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    const g = got[i]!;
    const r = ref[i]!;
    if (!Number.isFinite(g) || Math.abs(g - r) > atol + rtol * Math.abs(r))
      expect.fail(`${label}[${i}]: got ${g}, expected ${r} (seed ${seed})`);
    num += (g - r) ** 2;
    den += r * r;
  }
  expect(Math.sqrt(num / Math.max(den, 1e-300)), `${label}: relative error (seed ${seed})`).toBeLessThanOrEqual(rtol);
}

function matmulRef(A: Float32Array, B: Float32Array, M: number, N: number, K: number): Float64Array {
  const C = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let k = 0; k < K; k++) {
      const a = A[i * K + k]!;
      for (let j = 0; j < N; j++) C[i * N + j]! += a * B[k * N + j]!;
    }
  return C;
}

function matmulPlan(kernel: string, A: Float32Array, B: Float32Array, M: number, N: number, K: number): EmuPlan {
  return {
    buffers: [{ init: A }, { init: B }, poison(M * N * 4)],
    launches: [
      {
        kernel,
        grid: [Math.ceil(N / 16), Math.ceil(M / 16)],
        block: [16, 16],
        args: [{ buffer: 2 }, { buffer: 0 }, { buffer: 1 }, { i32: M }, { i32: N }, { i32: K }],
      },
    ],
    outputs: [2],
  };
}

/* Round-to-nearest-even references, written with float64 arithmetic on the value (not on the bit pattern). */
const cvtF = new Float32Array(1);
const cvtU = new Uint32Array(cvtF.buffer);
function f32Value(bits: number): number {
  cvtU[0] = bits >>> 0;
  return cvtF[0]!;
}
function f32Bits(v: number): number {
  cvtF[0] = v;
  return cvtU[0]!;
}
/** Rounds |x| (a float64 holding an f32 value) to a grid of quantum q, ties to even. */
function roundToGrid(a: number, q: number): number {
  const n = a / q; // exact: dividing by a power of two
  let r = Math.floor(n);
  const frac = n - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r += 1;
  return r * q;
}
function binade(v: number): number {
  let e = Math.floor(Math.log2(v));
  while (2 ** e > v) e--;
  while (2 ** (e + 1) <= v) e++;
  return e;
}
function refF32ToF16(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const expField = (bits >>> 23) & 0xff;
  if (expField === 0xff) return bits & 0x7fffff ? 0x7fff : sign | 0x7c00;
  const a = Math.abs(f32Value(bits));
  if (a === 0) return sign;
  const e = Math.max(binade(a), -14);
  const v = roundToGrid(a, 2 ** (e - 10));
  if (v >= 65536) return sign | 0x7c00;
  if (v < 2 ** -14) return sign | (v / 2 ** -24);
  const E = binade(v);
  return sign | ((E + 15) << 10) | ((v / 2 ** E - 1) * 1024);
}
function refF32ToBf16(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const expField = (bits >>> 23) & 0xff;
  if (expField === 0xff) return bits & 0x7fffff ? 0x7fff : sign | 0x7f80;
  const a = Math.abs(f32Value(bits));
  if (a === 0) return sign;
  const v = roundToGrid(a, 2 ** (Math.max(binade(a), -126) - 7));
  return sign | (f32Bits(v) >>> 16); // 2^128 becomes +inf in f32, as it must
}
function refF16ToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  if (e === 0) return s * m * 2 ** -24;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
const roundF16 = (x: number): number => refF16ToNumber(refF32ToF16(f32Bits(x)));
const roundBf16 = (x: number): number => f32Value(refF32ToBf16(f32Bits(x)) << 16);

function erf(x: number): number {
  // Maclaurin series; fine in float64 for |x| <= 3
  let term = x;
  let sum = x;
  for (let n = 1; n < 100; n++) {
    term *= (-x * x) / n;
    const t = term / (2 * n + 1);
    sum += t;
    if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

async function expectEmuError(p: Promise<unknown>, kind: string, kernel: string, message: RegExp): Promise<EmuError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected a ${kind} error`).toBeInstanceOf(EmuError);
  const e = caught as EmuError;
  expect(e).toBeInstanceOf(KilnError);
  expect(e.code).toBe('runtime');
  expect(e.kind).toBe(kind);
  expect(e.location.node).toBe(kernel);
  expect(e.message).toMatch(message);
  return e;
}

/* ------------------------------------------------------------------ tests */

describe.skipIf(noEmu)('cuda-emu: CUDA C on the CPU', () => {
  let mod: EmuModule;
  const source = readFileSync(fixture, 'utf8');

  beforeAll(async () => {
    mod = await compileEmu(source, { name: 'emu_kernels' });
    console.log(
      `cuda-emu: seed ${seed}; fixture ${mod.cached ? 'from cache' : `compiled in ${mod.compileMs.toFixed(0)} ms`}`,
    );
  }, 120_000);

  it('lists the registered kernels with their parameter kinds', async () => {
    const ks = await mod.kernels();
    expect(ks.find((k) => k.name === 'vec_add')?.params).toEqual(['pointer', 'pointer', 'pointer', 'i32']);
    expect(ks.find((k) => k.name === 'matmul_tiled')?.params).toEqual([
      'pointer',
      'pointer',
      'pointer',
      'i32',
      'i32',
      'i32',
    ]);
  });

  it('adds vectors over a grid that does not divide the size', async () => {
    const rand = rng(seed);
    const n = 1000;
    const a = randomF32(n, rand);
    const b = randomF32(n, rand);
    const out = await mod.run({
      buffers: [{ init: a }, { init: b }, poison(n * 4)],
      launches: [
        {
          kernel: 'vec_add',
          grid: Math.ceil(n / 128),
          block: 128,
          args: [{ buffer: 2 }, { buffer: 0 }, { buffer: 1 }, { i32: n }],
        },
      ],
      outputs: [2],
    });
    const ref = Float64Array.from(a, (x, i) => x + b[i]!);
    expectClose(f32(out.get(2)), ref, 1e-6, 1e-7, 'vec_add');
  });

  it('runs a shared-memory tiled matmul (64x64x64 and 50x70x30) in both thread orders', async () => {
    const rand = rng(seed + 1);
    for (const [M, N, K] of [
      [64, 64, 64],
      [50, 70, 30],
    ] as const) {
      const A = randomF32(M * K, rand);
      const B = randomF32(K * N, rand);
      const ref = matmulRef(A, B, M, N, K);
      for (const order of ['forward', 'reverse'] as const) {
        const out = await mod.run(matmulPlan('matmul_tiled', A, B, M, N, K), { order });
        expectClose(f32(out.get(2)), ref, 1e-5, 1e-5, `matmul ${M}x${N}x${K} ${order}`);
      }
    }
  });

  it('exposes a missing second __syncthreads deterministically under reverse order', async () => {
    const rand = rng(seed + 2);
    const [M, N, K] = [64, 64, 64];
    const A = randomF32(M * K, rand);
    const B = randomF32(K * N, rand);
    const ref = matmulRef(A, B, M, N, K);
    const plan = matmulPlan('matmul_tiled_nosync', A, B, M, N, K);
    const r1 = f32((await mod.run(plan, { order: 'reverse' })).get(2));
    const r2 = f32((await mod.run(plan, { order: 'reverse', threads: 1 })).get(2));
    expect(Array.from(r2)).toEqual(Array.from(r1)); // deterministic whatever the worker count
    let wrong = 0;
    for (let i = 0; i < ref.length; i++) if (!(Math.abs(r1[i]! - ref[i]!) <= 1e-4 + 1e-4 * Math.abs(ref[i]!))) wrong++;
    expect(wrong).toBeGreaterThan(ref.length / 2);
  });

  it('reduces with a shared-memory tree per block', async () => {
    const rand = rng(seed + 3);
    const n = 5000;
    const x = randomF32(n, rand);
    const blocks = Math.ceil(n / 256);
    const out = await mod.run({
      buffers: [{ init: x }, poison(blocks * 4)],
      launches: [
        { kernel: 'block_reduce_sum', grid: blocks, block: 256, args: [{ buffer: 1 }, { buffer: 0 }, { i32: n }] },
      ],
      outputs: [1],
    });
    const ref = new Float64Array(blocks);
    x.forEach((v, i) => (ref[Math.floor(i / 256)]! += v));
    expectClose(f32(out.get(1)), ref, 1e-5, 1e-5, 'block_reduce_sum');
  });

  it('reduces with warp shuffles', async () => {
    const rand = rng(seed + 4);
    const n = 10_000;
    const x = randomF32(n, rand);
    const grid = 8;
    const block = 128;
    const out = await mod.run({
      buffers: [{ init: x }, poison(grid * 4)],
      launches: [{ kernel: 'warp_reduce_sum', grid, block, args: [{ buffer: 1 }, { buffer: 0 }, { i32: n }] }],
      outputs: [1],
    });
    const ref = new Float64Array(grid);
    for (let i = 0; i < n; i++) ref[Math.floor(i / block) % grid]! += x[i]!;
    expectClose(f32(out.get(1)), ref, 1e-5, 1e-5, 'warp_reduce_sum');
  });

  it('implements __shfl_up/__shfl/__shfl_xor (width 8), __ballot, __any, __all', async () => {
    const rand = rng(seed + 5);
    const grid = 2;
    const block = 64;
    const n = grid * block;
    const x = randomF32(n, rand, 0, 1);
    const warps = n / 32;
    const out = await mod.run({
      buffers: [{ init: x }, poison(n * 4), poison(n * 4), poison(n * 4), poison(warps * 4), poison(warps * 8)],
      launches: [
        {
          kernel: 'warp_ops',
          grid,
          block,
          args: [{ buffer: 1 }, { buffer: 2 }, { buffer: 3 }, { buffer: 4 }, { buffer: 5 }, { buffer: 0 }],
        },
      ],
      outputs: [1, 2, 3, 4, 5],
    });
    const scan = new Float64Array(n);
    const gather = new Float64Array(n);
    const xor8 = new Float64Array(n);
    const ballot: number[] = [];
    const votes: number[] = [];
    for (let w = 0; w < warps; w++) {
      let acc = 0;
      let bits = 0;
      let any = 0;
      let all = 1;
      for (let l = 0; l < 32; l++) {
        const i = w * 32 + l;
        acc += x[i]!;
        scan[i] = acc;
        gather[i] = x[w * 32 + ((l * 7 + 3) % 32)]!;
        xor8[i] = x[w * 32 + (l ^ 5)]!;
        if (x[i]! > 0.5) bits = (bits | (1 << l)) >>> 0;
        if (x[i]! > 0.9) any = 1;
        if (!(x[i]! > 0)) all = 0;
      }
      ballot.push(bits);
      votes.push(any, all);
    }
    expectClose(f32(out.get(1)), scan, 1e-6, 1e-6, 'scan');
    expect(Array.from(f32(out.get(2)))).toEqual(Array.from(gather));
    expect(Array.from(f32(out.get(3)))).toEqual(Array.from(xor8));
    expect(Array.from(u32v(out.get(4)))).toEqual(ballot);
    expect(Array.from(i32v(out.get(5)))).toEqual(votes);
  });

  it('performs global atomics from blocks running in parallel', async () => {
    const rand = rng(seed + 6);
    const n = 3000;
    const x = randomF32(n, rand, 0, 1);
    const keys = Int32Array.from({ length: n }, () => Math.floor(rand() * 100_000) - 50_000);
    const counters = new Int32Array(10);
    counters[1] = -0x80000000;
    counters[2] = 0x7fffffff;
    const out = await mod.run(
      {
        buffers: [{ size: 4, fill: 0 }, { init: counters }, { size: 4, fill: 0 }, { init: x }, { init: keys }],
        launches: [
          {
            kernel: 'atomics',
            grid: Math.ceil(n / 128),
            block: 128,
            args: [{ buffer: 0 }, { buffer: 1 }, { buffer: 2 }, { buffer: 3 }, { buffer: 4 }, { i32: n }],
          },
        ],
        outputs: [0, 1, 2],
      },
      { threads: 4 },
    );
    const sum = x.reduce((s, v) => s + v, 0);
    expectClose(f32(out.get(0)), [sum], 1e-4, 1e-4, 'atomicAdd(float)');
    const c = i32v(out.get(1));
    expect(c[0]).toBe(n);
    expect(c[1]).toBe(Math.max(...keys));
    expect(c[2]).toBe(Math.min(...keys));
    for (let m = 0; m < 4; m++) expect(c[3 + m]).toBe(keys.filter((k) => (k & 3) === m).length);
    expect(u32v(out.get(2))[0]).toBe(Math.max(...Array.from(keys, (k) => ((k >>> 0) * 2) >>> 0)));
    const total = new BigUint64Array(c.buffer, 32, 1)[0]!;
    expect(total).toBe(
      BigInt.asUintN(
        64,
        keys.reduce((s, k) => s + BigInt(k), 0n),
      ),
    );
  });

  it('uses dynamic shared memory', async () => {
    const rand = rng(seed + 7);
    const grid = 5;
    const block = 96;
    const x = randomF32(grid * block, rand);
    const out = await mod.run({
      buffers: [{ init: x }, poison(x.byteLength)],
      launches: [
        { kernel: 'reverse_blocks', grid, block, dynamicSharedBytes: block * 4, args: [{ buffer: 1 }, { buffer: 0 }] },
      ],
      outputs: [1],
    });
    const ref = Float64Array.from(x, (_, i) => x[Math.floor(i / block) * block + (block - 1 - (i % block))]!);
    expect(Array.from(f32(out.get(1)))).toEqual(Array.from(ref));
  });

  it('starts every block with shared memory full of 0xff bytes (no values leak between blocks)', async () => {
    const grid = 3;
    const block = 64;
    const out = await mod.run(
      {
        buffers: [{ size: grid * block * 4 }, { size: grid * block * 4 }],
        launches: [
          { kernel: 'shared_peek', grid, block, dynamicSharedBytes: block * 4, args: [{ buffer: 0 }, { buffer: 1 }] },
        ],
        outputs: [0, 1],
      },
      { threads: 1 },
    );
    expect(u32v(out.get(0)).every((v) => v === 0xffffffff)).toBe(true);
    expect(u32v(out.get(1)).every((v) => v === 0xffffffff)).toBe(true);
  });

  it('converts float32 to f16 / bf16 bit-exactly (round to nearest even) and back', async () => {
    const rand = rng(seed + 8);
    const bits: number[] = [
      0x00000000, 0x80000000, 0x00000001, 0x807fffff, 0x00400000, 0x7f7fffff, 0xff7fffff, 0x7f800000, 0xff800000,
      0x7fc00000, 0xffc00000, 0x7f800001, 0x7fbfffff, 0xff812345, 0x33000000, 0x33000001, 0x32ffffff, 0xb3000000,
      0x33800000, 0x33c00000, 0x34200000, 0x387fc000, 0x387fe000, 0x38800000, 0x477fe000, 0x477fefff, 0x477ff000,
      0x477ff001, 0x47800000, 0xc77ff000, 0x3f801000, 0x3f803000, 0x3f800800, 0x3f808000, 0x3f818000, 0x3f7fffff,
      0x4b800000, 0x7f7f8000, 0x7f7f7fff, 0x00008000, 0x00018000,
    ];
    // every positive finite half, the f32 midpoints to its successor (ties) and their f32 neighbours, both signs
    for (let h = 0; h < 0x7c00; h++) {
      const lo = refF16ToNumber(h);
      const hi = refF16ToNumber(h + 1);
      const mid = f32Bits((lo + hi) / 2);
      bits.push(f32Bits(lo), mid, mid + 1, mid - 1);
      if (h % 7 === 0) bits.push((mid | 0x80000000) >>> 0);
    }
    for (let i = 0; i < 40_000; i++) bits.push(Math.floor(rand() * 2 ** 32)); // any pattern
    for (let i = 0; i < 20_000; i++) {
      // exponents around the f16 range, exact bf16 ties and their neighbours
      const e = 98 + Math.floor(rand() * 50);
      bits.push(((rand() < 0.5 ? 0x80000000 : 0) | (e << 23) | Math.floor(rand() * 2 ** 23)) >>> 0);
      const t = ((Math.floor(rand() * 0x10000) << 16) | 0x8000) >>> 0;
      bits.push(t, (t + 1) >>> 0, (t - 1) >>> 0);
    }
    const n = bits.length;
    const input = Uint32Array.from(bits);
    const out = await mod.run({
      buffers: [poison(n * 2), poison(n * 2), poison(n * 4), poison(n * 4), { init: input }],
      launches: [
        {
          kernel: 'convert_f16_bf16',
          grid: Math.ceil(n / 256),
          block: 256,
          args: [{ buffer: 0 }, { buffer: 1 }, { buffer: 2 }, { buffer: 3 }, { buffer: 4 }, { i32: n }],
        },
      ],
      outputs: [0, 1, 2, 3],
    });
    const h = u16v(out.get(0));
    const b = u16v(out.get(1));
    const hBack = f32(out.get(2));
    const bBack = u32v(out.get(3));
    const hex = (v: number, w: number) => `0x${v.toString(16).padStart(w, '0')}`;
    let bad = 0;
    const report: string[] = [];
    for (let i = 0; i < n; i++) {
      const x = input[i]!;
      const eh = refF32ToF16(x);
      const eb = refF32ToBf16(x);
      const back = refF16ToNumber(eh);
      const okBack = Number.isNaN(back) ? Number.isNaN(hBack[i]!) : Object.is(hBack[i], back);
      if (h[i] !== eh || b[i] !== eb || !okBack || bBack[i] !== (eb << 16) >>> 0) {
        if (bad++ < 10)
          report.push(
            `${hex(x, 8)}: f16 ${hex(h[i]!, 4)} (want ${hex(eh, 4)}), bf16 ${hex(b[i]!, 4)} (want ${hex(eb, 4)})`,
          );
      }
    }
    expect(report, `${bad} of ${n} conversions differ (seed ${seed})`).toEqual([]);
  });

  it('does f16 / bf16 arithmetic through float with one rounding per operation', async () => {
    const rand = rng(seed + 9);
    const n = 2000;
    const x = randomF32(3 * n, rand, -4, 4);
    const out = await mod.run({
      buffers: [poison(3 * n * 4), { init: x }],
      launches: [
        {
          kernel: 'half_arith',
          grid: Math.ceil(n / 128),
          block: 128,
          args: [{ buffer: 0 }, { buffer: 1 }, { i32: n }],
        },
      ],
      outputs: [0],
    });
    const ref = new Float64Array(3 * n);
    for (let i = 0; i < n; i++) {
      const [a, b, c] = [roundF16(x[3 * i]!), roundF16(x[3 * i + 1]!), roundF16(x[3 * i + 2]!)];
      ref[3 * i] = ref[3 * i + 1] = roundF16(roundF16(a * b) + c);
      ref[3 * i + 2] = roundBf16(roundBf16(x[3 * i]!) - roundBf16(x[3 * i + 1]!));
    }
    expect(Array.from(f32(out.get(0)))).toEqual(Array.from(ref));
  });

  it('provides the CUDA math functions', async () => {
    const rand = rng(seed + 10);
    const n = 500;
    const x = randomF32(n, rand, 0.1, 3);
    const out = await mod.run({
      buffers: [poison(16 * n * 4), { init: x }],
      launches: [{ kernel: 'math_funcs', grid: 4, block: 128, args: [{ buffer: 0 }, { buffer: 1 }, { i32: n }] }],
      outputs: [0],
    });
    const ref = new Float64Array(16 * n);
    for (let i = 0; i < n; i++) {
      const v = x[i]!;
      const r = [
        Math.exp(v),
        Math.log(v),
        Math.sqrt(v),
        1 / Math.sqrt(v),
        Math.tanh(v),
        erf(v),
        Math.max(v, 1),
        Math.min(v, 1),
        Math.exp(-v),
        Math.log(Math.fround(v + 1)),
        v,
        Math.pow(v, 1.5),
        Math.floor(Math.fround(v * 3)) + Math.ceil(Math.fround(v * 3)),
        1 / v,
        Math.max(v, 0.5) + Math.min(Math.trunc(v * 4), 3),
        v,
      ];
      ref.set(r, 16 * i);
    }
    expectClose(f32(out.get(0)), ref, 1e-6, 1e-6, 'math');
  });

  it('maps threadIdx / blockIdx / blockDim / gridDim for 3D launches and implements __syncthreads_count/or/and', async () => {
    for (const [grid, block] of [
      [
        [3, 2, 2],
        [8, 4, 2],
      ],
      [[2], [1024]],
    ] as const) {
      const [gx, gy = 1, gz = 1] = grid;
      const [bx, by = 1, bz = 1] = block;
      const nt = bx * by * bz;
      const nb = gx * gy * gz;
      const out = await mod.run({
        buffers: [poison(nb * nt * 16)],
        launches: [{ kernel: 'index_map', grid: [gx, gy, gz], block: [bx, by, bz], args: [{ buffer: 0 }] }],
        outputs: [0],
      });
      const got = i32v(out.get(0));
      const want = new Int32Array(nb * nt * 4);
      const count = Array.from({ length: nt }, (_, t) => t % bx).filter((x) => x % 3 === 0).length;
      for (let b = 0; b < nb; b++)
        for (let t = 0; t < nt; t++) {
          const i = 4 * (b * nt + t);
          want[i] = (t % bx) | ((Math.floor(t / bx) % by) << 10) | (Math.floor(t / (bx * by)) << 20);
          want[i + 1] = (b % gx) | ((Math.floor(b / gx) % gy) << 10) | (Math.floor(b / (gx * gy)) << 20);
          want[i + 2] = count;
          want[i + 3] = 1 + 2;
        }
      expect(Array.from(got)).toEqual(Array.from(want));
    }
  });

  it('reports a fiber stack overflow, and runs with a larger stack', async () => {
    const plan = (depth: number): EmuPlan => ({
      buffers: [poison(32 * 4)],
      launches: [{ kernel: 'recurse', grid: 1, block: 32, args: [{ buffer: 0 }, { i32: depth }] }],
      outputs: [0],
    });
    await expectEmuError(mod.run(plan(1000)), 'stack-overflow', 'recurse', /fiber stack overflow.*KILN_EMU_STACK/);
    const out = await mod.run(plan(1000), { stackBytes: 2 << 20 });
    let want = 0;
    for (let d = 1; d <= 1000; d++) want += ((d << 24) >> 24) as number; // char is signed on x86-64
    expect(Array.from(i32v(out.get(0)))).toEqual(new Array(32).fill(want));
  });

  it('reports __trap() with the thread that called it', async () => {
    await expectEmuError(
      mod.run({
        buffers: [poison(128)],
        launches: [{ kernel: 'trap_kernel', grid: 2, block: 32, args: [{ buffer: 0 }] }],
        outputs: [0],
      }),
      'trap',
      'trap_kernel',
      /block \(\d,0,0\) thread \(3,0,0\): __trap\(\) called/,
    );
  });

  it('reports an out-of-bounds shared-memory write as a typed error', async () => {
    const e = await expectEmuError(
      mod.run({
        buffers: [poison(256)],
        launches: [{ kernel: 'shared_oob', grid: 1, block: 64, args: [{ buffer: 0 }] }],
        outputs: [0],
      }),
      'shared-oob',
      'shared_oob',
      /shared-memory write.*'small'/,
    );
    expect(e.message).toMatch(/block \(0,0,0\)/);
  });

  it('reports barrier divergence instead of hanging', async () => {
    await expectEmuError(
      mod.run({
        buffers: [poison(128)],
        launches: [{ kernel: 'barrier_divergence', grid: 1, block: 32, args: [{ buffer: 0 }] }],
        outputs: [0],
      }),
      'barrier-divergence',
      'barrier_divergence',
      /16 of 32 threads wait at __syncthreads\(\).*16 threads have exited/,
    );
  });

  it('reports a null-pointer write as a crash and keeps working afterwards', async () => {
    await expectEmuError(
      mod.run({
        buffers: [],
        launches: [{ kernel: 'write_ptr', grid: 1, block: 32, args: [{ buffer: null }] }],
        outputs: [],
      }),
      'crash',
      'write_ptr',
      /SIGSEGV: null-pointer access/,
    );
    const out = await mod.run({
      buffers: [{ init: new Float32Array([1, 2]) }, { init: new Float32Array([3, 4]) }, poison(8)],
      launches: [
        { kernel: 'vec_add', grid: 1, block: 32, args: [{ buffer: 2 }, { buffer: 0 }, { buffer: 1 }, { i32: 2 }] },
      ],
      outputs: [2],
    });
    expect(Array.from(f32(out.get(2)))).toEqual([4, 6]);
  });

  it('rejects warp shuffles from missing lanes and divergent shuffles', async () => {
    await expectEmuError(
      mod.run({
        buffers: [poison(48 * 4)],
        launches: [{ kernel: 'shuffle_partial_warp', grid: 1, block: 48, args: [{ buffer: 0 }] }],
        outputs: [0],
      }),
      'shuffle',
      'shuffle_partial_warp',
      /lane \d+ reads lane \d+, which does not exist/,
    );
    await expectEmuError(
      mod.run({
        buffers: [poison(64 * 4)],
        launches: [{ kernel: 'shuffle_divergent', grid: 1, block: 64, args: [{ buffer: 0 }] }],
        outputs: [0],
      }),
      'warp-divergence',
      'shuffle_divergent',
      /16 of 32 lanes wait at __shfl_xor_sync/,
    );
  });

  it('times out a kernel that spin-waits on another block', async () => {
    await expectEmuError(
      mod.run(
        {
          buffers: [{ size: 4 }],
          launches: [{ kernel: 'spin_wait', grid: 2, block: 1, args: [{ buffer: 0 }] }],
          outputs: [],
        },
        { threads: 1, order: 'forward', timeoutMs: 1000 },
      ),
      'timeout',
      'spin_wait',
      /did not finish within 1000 ms/,
    );
  });

  it('rejects malformed plans with typed errors', async () => {
    await expectEmuError(
      mod.run({ buffers: [], launches: [{ kernel: 'nope', grid: 1, block: 1, args: [] }], outputs: [] }),
      'plan',
      'nope',
      /unknown kernel 'nope'/,
    );
    await expectEmuError(
      mod.run({
        buffers: [poison(4)],
        launches: [
          { kernel: 'vec_add', grid: 1, block: 1, args: [{ buffer: 0 }, { buffer: 0 }, { buffer: 0 }, { f32: 1 }] },
        ],
        outputs: [0],
      }),
      'plan',
      'vec_add',
      /argument 3 .* is i32 but the plan passes f32/,
    );
    await expectEmuError(
      mod.run({
        buffers: [],
        launches: [{ kernel: 'write_ptr', grid: 1, block: 2048, args: [{ buffer: null }] }],
        outputs: [],
      }),
      'launch',
      'write_ptr',
      /invalid block/,
    );
  });

  it('maps compile errors and a missing compiler to typed errors, and reuses the cache', async () => {
    const bad = 'extern "C" __global__ void broken(float* p) { p[0] = not_declared; }\nKILN_EMU_REGISTER(broken);\n';
    await expectEmuError(compileEmu(bad, { name: 'bad' }), 'compile', 'broken', /not_declared/);
    let caught: unknown;
    try {
      await compileEmu(source, { cxx: '/nonexistent/g++' });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(KilnError);
    expect((caught as KilnError).code).toBe('unsupported');
    const again = await compileEmu(source, { name: 'emu_kernels' });
    expect(again.cached).toBe(true);
    expect(again.executable).toBe(mod.executable);
  });

  it('runs a 256^3 tiled matmul', async () => {
    const rand = rng(seed + 11);
    const S = 256;
    const A = randomF32(S * S, rand);
    const B = randomF32(S * S, rand);
    const res = await mod.runDetailed(matmulPlan('matmul_tiled', A, B, S, S, S));
    console.log(
      `cuda-emu: 256^3 tiled matmul (16x16 tiles, 256 blocks x 256 fibers): ${res.launchMs[0]!.toFixed(1)} ms`,
    );
    expectClose(f32(res.outputs.get(2)), matmulRef(A, B, S, S, S), 1e-4, 1e-4, 'matmul 256^3');
  });

  it.skipIf(noNvcc)('compiles the same kernel file with nvcc for sm_80 without spills', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kiln-nvcc-'));
    try {
      const args = [
        '-arch=sm_80',
        '-c',
        '-Xptxas',
        '-v',
        '-x',
        'cu',
        '-include',
        sharedHeader,
        fixture,
        '-o',
        path.join(dir, 'k.o'),
      ];
      const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
        const p = spawn(NVCC, args, { stdio: ['ignore', 'pipe', 'pipe'] });
        let err = '';
        p.stdout.on('data', (d: Buffer) => (err += d.toString()));
        p.stderr.on('data', (d: Buffer) => (err += d.toString()));
        p.on('error', reject);
        p.on('close', (c) => resolve({ code: c, stderr: err }));
      });
      expect(code, stderr).toBe(0);
      const props = [
        ...stderr.matchAll(
          /Function properties for (\S+)\s+\d+ bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads/g,
        ),
      ];
      // every kernel is compiled; the deliberately recursive device function `deep` needs a stack and is exempt
      expect(new Set(props.map((m) => m[1])).size, stderr).toBeGreaterThanOrEqual(22);
      for (const [, fn, stores, loads] of props)
        if (!/deep/.test(fn!)) expect(`${fn}: ${stores}/${loads}`).toBe(`${fn}: 0/0`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
