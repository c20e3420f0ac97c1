/// <reference types="@webgpu/types" />
/**
 * A tensor that stays on the device between runs of a session (IO binding): a run can keep named outputs on the
 * device and a later run can take them as feeds without a host round trip — how a KV cache stays on the GPU.
 */
import type { DType } from '../../ir/dtype.js';
import type { Tensor } from '../../ir/tensor.js';

export interface DeviceTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly onDevice: true;
  /** Copy to the host (a tensor the caller owns). */
  read(): Promise<Tensor>;
  /** Free the device memory (idempotent); feeding or reading it afterwards is a typed error. */
  dispose(): void;
  /**
   * WebGPU sessions: the buffer holding the data, to bind in your own WebGPU work (GPU-resident I/O). The data is in
   * the session's storage format for the dtype (`session.storageOf(dtype)`: f32 / f16 / i32 / u32 as is; int64 as the
   * low 32 bits when the session stores it in i32), from offset 0; the buffer may be larger than the data.
   */
  readonly gpuBuffer?: GPUBuffer;
}

export function isDeviceTensor(x: unknown): x is DeviceTensor {
  return typeof x === 'object' && x !== null && (x as { onDevice?: unknown }).onDevice === true;
}
