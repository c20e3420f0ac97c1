/**
 * How each tensor dtype lives in device buffers and which kernel type computes it. One table for every backend,
 * consulted by lowering and by runtimes (which convert on upload / readback).
 */
import type { DType } from '../../ir/dtype.js';
import type { KType, Storage } from '../kir.js';
import type { ScheduleLookup } from './contraction/schedules.js';

/** What the target device offers that changes storage choices (from the runtime's capabilities). */
export interface DeviceCaps {
  /** f16 storage and arithmetic (WebGPU shader-f16; always on CUDA). */
  readonly f16: boolean;
  /** Subgroup (warp) operations. */
  readonly subgroups: boolean;
  readonly subgroupSize: number;
  readonly maxWorkgroupSize: number;
  readonly maxSharedBytes: number;
  /** Storage buffers one kernel may bind. */
  readonly maxBuffersPerKernel: number;
  /** Workgroups per grid dimension. */
  readonly maxGroupsPerDim: number;
  /**
   * Attention schedule: `one-kernel` (online softmax, scores never in memory), `decomposed` (scores, softmax and P·V
   * through the templates, see attention-decomposed.ts) or `auto` (the default: decomposed where it applies and the
   * scores fit its limit — faster on every adapter measured so far — else one kernel).
   */
  readonly attentionSchedule?: 'auto' | 'one-kernel' | 'decomposed' | 'tiled';
  /**
   * A CPU implementation of the API (lavapipe / llvmpipe, SwiftShader): lanes of a workgroup run as SIMD loops, so a
   * barrier splits the kernel and every workgroup-memory read is a per-lane gather. The matmul template then defaults
   * to direct register-blocked tiles (no workgroup memory): 1.6–2× faster there on [128, 512] · [512, 2048].
   */
  readonly cpu?: boolean;
  /**
   * Workgroup barriers are very dear (SwiftShader runs each as a switch between fibers): `auto` does not pick the tiled
   * attention kernel, whose key loop has barriers — in headless Chromium 156 its pipeline hung the GPU process until
   * the watchdog killed it.
   */
  readonly slowBarriers?: boolean;
  /**
   * A native packed 4×8-bit integer dot product (WGSL language feature `packed_4x8_integer_dot_product`, CUDA
   * `__dp4a`): kernel IR's `dot4`. Absent: lowerings build the same sum from shifts and multiplies (`dot4Scalar`).
   */
  readonly dot4?: boolean;
  /** Tuned contraction schedules for this device (contraction/schedules.ts); absent: the static defaults. */
  readonly schedules?: ScheduleLookup;
}

export const DEFAULT_CAPS: DeviceCaps = {
  f16: true,
  subgroups: false,
  subgroupSize: 32,
  maxWorkgroupSize: 256,
  maxSharedBytes: 16384,
  maxBuffersPerKernel: 8,
  maxGroupsPerDim: 65535,
};

/**
 * Storage of a dtype. 64-bit integers are narrowed to 32 bits at the boundary (range-checked by the runtime);
 * f64 (reference-only) and bf16 are held as f32; f16 falls back to f32 without device support.
 */
export function storageOf(dt: DType, caps: DeviceCaps): Storage {
  switch (dt) {
    case 'f32':
    case 'f64':
    case 'bf16':
      return 'f32';
    case 'f16':
      return caps.f16 ? 'f16' : 'f32';
    case 'i64':
    case 'i32':
      return 'i32';
    case 'u64':
    case 'u32':
      return 'u32';
    case 'i16':
      return 'i16x2';
    case 'u16':
      return 'u16x2';
    case 'i8':
      return 'i8x4';
    case 'u8':
    case 'bool':
      return 'u8x4';
    case 'i4':
      return 'i4x8';
    case 'u4':
      return 'u4x8';
  }
}

/** The kernel type arithmetic on a dtype uses: floats in f32, unsigned 32/64-bit in u32, other ints in i32. */
export function computeType(dt: DType): KType {
  switch (dt) {
    case 'f32':
    case 'f64':
    case 'bf16':
    case 'f16':
      return 'f32';
    case 'u32':
    case 'u64':
      return 'u32';
    case 'bool':
      return 'bool';
    default:
      return 'i32';
  }
}
