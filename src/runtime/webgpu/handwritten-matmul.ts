/**
 * Two hand-written WGSL f32 matmul kernels, C[M,N] = A[M,K] · B[K,N] (row-major), kept as baselines for the
 * generated kernels (bench/webgpu-matmul.ts) and as runtime smoke tests.
 *
 * Bindings (the runtime's convention): 0 = A, 1 = B, 2 = C, 3 = uniform `{ M, N, K: u32 }`.
 */
import { KilnError } from '../../../ir/errors.js';
import type { KernelSource } from './pipelines.js';

export type HandwrittenMatmulVariant = 'naive' | 'tiled4x4';

const NAIVE = /* wgsl */ `
struct Dims { M: u32, N: u32, K: u32 }
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> d: Dims;

// One invocation per output element.
@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let row = g.y;
  let col = g.x;
  if (row >= d.M || col >= d.N) {
    return;
  }
  var acc = 0.0;
  for (var k = 0u; k < d.K; k++) {
    acc += A[row * d.K + k] * B[k * d.N + col];
  }
  C[row * d.N + col] = acc;
}
`;

/*
 * 64×64 output tile per workgroup of 16×16 invocations; each invocation owns a 4×4 block (4 rows × one vec4 of
 * columns). K advances 16 at a time through workgroup memory: As holds the 64×16 A tile as vec4s along k, Bs the 16×64
 * B tile as vec4s along n (8 KiB in all). Needs M % 64 == 0, N % 64 == 0, K % 16 == 0.
 */
const TILED = /* wgsl */ `
struct Dims { M: u32, N: u32, K: u32 }
@group(0) @binding(0) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> C: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> d: Dims;

var<workgroup> As: array<vec4<f32>, 256>; // [64 rows][4 vec4 along k]
var<workgroup> Bs: array<vec4<f32>, 256>; // [16 k][16 vec4 along n]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let tx = lid.x;
  let ty = lid.y;
  let flat = ty * 16u + tx;
  let m0 = wg.y * 64u;
  let n0 = wg.x * 64u;
  let K4 = d.K / 4u;
  let N4 = d.N / 4u;
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < d.K; k0 += 16u) {
    // Each invocation loads one vec4 of A and one of B.
    let ar = flat / 4u;
    let ak = flat % 4u;
    As[flat] = A[(m0 + ar) * K4 + k0 / 4u + ak];
    let bk = flat / 16u;
    let bn = flat % 16u;
    Bs[flat] = B[(k0 + bk) * N4 + n0 / 4u + bn];
    workgroupBarrier();
    for (var kk = 0u; kk < 4u; kk++) {
      let b0 = Bs[(kk * 4u + 0u) * 16u + tx];
      let b1 = Bs[(kk * 4u + 1u) * 16u + tx];
      let b2 = Bs[(kk * 4u + 2u) * 16u + tx];
      let b3 = Bs[(kk * 4u + 3u) * 16u + tx];
      let a0 = As[(ty * 4u + 0u) * 4u + kk];
      let a1 = As[(ty * 4u + 1u) * 4u + kk];
      let a2 = As[(ty * 4u + 2u) * 4u + kk];
      let a3 = As[(ty * 4u + 3u) * 4u + kk];
      acc0 += a0.x * b0 + a0.y * b1 + a0.z * b2 + a0.w * b3;
      acc1 += a1.x * b0 + a1.y * b1 + a1.z * b2 + a1.w * b3;
      acc2 += a2.x * b0 + a2.y * b1 + a2.z * b2 + a2.w * b3;
      acc3 += a3.x * b0 + a3.y * b1 + a3.z * b2 + a3.w * b3;
    }
    workgroupBarrier();
  }
  let base = (m0 + ty * 4u) * N4 + n0 / 4u + tx;
  C[base] = acc0;
  C[base + N4] = acc1;
  C[base + 2u * N4] = acc2;
  C[base + 3u * N4] = acc3;
}
`;

/** The kernel source of a variant (key `handwritten-matmul-<variant>`). */
export function handwrittenMatmulKernel(variant: HandwrittenMatmulVariant): KernelSource {
  return {
    key: `handwritten-matmul-${variant}`,
    wgsl: variant === 'naive' ? NAIVE : TILED,
    entryPoint: 'main',
    label: `matmul_${variant}`,
  };
}

/** Workgroup counts for an M×N output; throws an 'unsupported' KilnError when the tiled kernel cannot take the shape. */
export function handwrittenMatmulWorkgroups(
  variant: HandwrittenMatmulVariant,
  M: number,
  N: number,
  K: number,
): [number, number, number] {
  if (variant === 'naive') return [Math.ceil(N / 16), Math.ceil(M / 16), 1];
  if (M % 64 || N % 64 || K % 16) {
    throw new KilnError('unsupported', `tiled4x4 matmul needs M, N multiples of 64 and K of 16; got ${M}×${N}×${K}`);
  }
  return [N / 64, M / 64, 1];
}

/** The uniform bytes `{ M, N, K: u32 }` (padded to 16). */
export function matmulDims(M: number, N: number, K: number): Uint32Array<ArrayBuffer> {
  return new Uint32Array([M, N, K, 0]);
}
