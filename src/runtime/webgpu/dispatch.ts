/// <reference types="@webgpu/types" />
/**
 * Encoding a sequence of kernel dispatches into one command buffer and one queue submission.
 *
 * Binding convention (what generated WGSL declares), all in `@group(0)`:
 *
 * ```wgsl
 * @group(0) @binding(0) var<storage, read>       a : array<f32>;   // step.bindings[0]
 * @group(0) @binding(1) var<storage, read>       b : array<f32>;   // step.bindings[1]
 * @group(0) @binding(2) var<storage, read_write> y : array<f32>;   // step.bindings[2]
 * @group(0) @binding(3) var<uniform>             u : Params;       // step.uniform, binding = bindings.length
 * ```
 *
 * The uniform (if any) sits at the next binding after the storage buffers. Its bytes are padded with zeros to a
 * multiple of 16 and bound with exactly that size, so the WGSL struct may be up to that size (WGSL rounds a uniform
 * struct up to its 16-byte alignment). All steps' uniforms share one pooled buffer per run, at offsets aligned to
 * `minUniformBufferOffsetAlignment`.
 */
import { KilnError } from '../../../ir/errors.js';
import { BufferPool, READBACK_USAGE, UNIFORM_USAGE, alignUp, bufferPool } from './buffers.js';
import { BufferUsage, MapMode, type GpuContext } from './device.js';
import { bindGroupLayoutOf } from './pipelines.js';

export interface DispatchStep {
  pipeline: GPUComputePipeline;
  /** Storage buffers at `@group(0) @binding(i)`; a GPUBuffer binds whole, a GPUBufferBinding a range of one. */
  bindings: readonly (GPUBuffer | GPUBufferBinding)[];
  /** Bytes of the uniform struct, bound at `@group(0) @binding(bindings.length)`. */
  uniform?: ArrayBuffer | ArrayBufferView;
  /** Workgroup counts; missing y/z are 1. */
  workgroups: readonly number[];
  /** Name used in error messages; default the pipeline's label. */
  label?: string;
}

export interface RunOptions {
  /** Measure per-step GPU time with timestamp queries (needs `caps.timestampQuery`). */
  timing?: boolean;
  label?: string;
  /** Pool for the uniform buffer and timing buffers; default: the context's pool. */
  pool?: BufferPool;
}

export interface RunHandle {
  /** Number of steps submitted. */
  readonly steps: number;
  /**
   * Resolves when the GPU has finished this submission; rejects with a typed KilnError when WebGPU reported an error
   * for it (or any earlier one, or the device was lost).
   */
  done(): Promise<void>;
  /**
   * GPU nanoseconds per step (from timestamp queries; each step is its own compute pass when timing). Rejects with
   * an 'unsupported' KilnError when the run was not timed or the device has no timestamp-query.
   */
  timings(): Promise<number[]>;
}

function isBuffer(b: GPUBuffer | GPUBufferBinding): b is GPUBuffer {
  return !('buffer' in b);
}

function stepName(step: DispatchStep, i: number): string {
  return `step ${i} '${step.label ?? step.pipeline.label}'`;
}

function uniformBytes(u: ArrayBuffer | ArrayBufferView): Uint8Array {
  return u instanceof ArrayBuffer ? new Uint8Array(u) : new Uint8Array(u.buffer, u.byteOffset, u.byteLength);
}

/** Checks device limits in JS so a violation is a typed 'limit' error naming the step, not a GPU validation error. */
function validateStep(ctx: GpuContext, step: DispatchStep, i: number): void {
  const caps = ctx.caps;
  const name = stepName(step, i);
  if (step.bindings.length > caps.maxStorageBuffersPerShaderStage) {
    throw new KilnError(
      'limit',
      `${name} binds ${step.bindings.length} storage buffers; the device allows ${caps.maxStorageBuffersPerShaderStage}`,
      { limit: 'maxStorageBuffersPerShaderStage' },
    );
  }
  step.bindings.forEach((b, j) => {
    const size = isBuffer(b) ? b.size : (b.size ?? b.buffer.size - (b.offset ?? 0));
    if (size > caps.maxStorageBufferBindingSize) {
      throw new KilnError(
        'limit',
        `${name} binding ${j} is ${size} bytes; the device allows ${caps.maxStorageBufferBindingSize} per storage binding`,
        { limit: 'maxStorageBufferBindingSize' },
      );
    }
  });
  if (step.uniform && alignUp(step.uniform.byteLength, 16) > caps.maxUniformBufferBindingSize) {
    throw new KilnError(
      'limit',
      `${name} uniform is ${step.uniform.byteLength} bytes; the device allows ${caps.maxUniformBufferBindingSize}`,
      { limit: 'maxUniformBufferBindingSize' },
    );
  }
  if (step.workgroups.length < 1 || step.workgroups.length > 3) {
    throw new KilnError('runtime', `${name} has ${step.workgroups.length} workgroup dimensions (want 1 to 3)`);
  }
  step.workgroups.forEach((n, d) => {
    if (!Number.isInteger(n) || n < 0) throw new KilnError('runtime', `${name} workgroups[${d}] = ${n} is invalid`);
    if (n > caps.maxComputeWorkgroupsPerDimension) {
      throw new KilnError(
        'limit',
        `${name} dispatches ${n} workgroups in dimension ${'xyz'[d]}; the device allows ${caps.maxComputeWorkgroupsPerDimension}`,
        { limit: 'maxComputeWorkgroupsPerDimension' },
      );
    }
  });
}

/**
 * Encodes all steps in one command encoder and submits them in one `queue.submit`; returns right after the submit.
 * Steps run in order, each seeing the previous steps' writes. Read results with {@link readback}, which also throws
 * errors this run recorded.
 *
 * @throws KilnError 'limit' (synchronously) when a step exceeds a device limit; 'device'/'runtime' for a lost device
 *   or errors recorded by earlier operations.
 */
export function encodeRun(ctx: GpuContext, steps: readonly DispatchStep[], opts: RunOptions = {}): RunHandle {
  const runLabel = opts.label ?? 'kiln-run';
  ctx.check(`run '${runLabel}'`);
  steps.forEach((s, i) => validateStep(ctx, s, i));
  const device = ctx.device;
  const pool = opts.pool ?? bufferPool(ctx);
  const timed = Boolean(opts.timing) && ctx.caps.timestampQuery && steps.length > 0;

  // Uniforms of all steps, packed into one buffer at aligned offsets.
  const align = Math.max(ctx.caps.minUniformBufferOffsetAlignment, 16);
  const uniformOffsets: number[] = [];
  let uniformTotal = 0;
  for (const s of steps) {
    uniformOffsets.push(uniformTotal);
    if (s.uniform) uniformTotal = alignUp(uniformTotal + alignUp(s.uniform.byteLength, 16), align);
  }
  const toRelease: GPUBuffer[] = [];
  let uniformBuffer: GPUBuffer | undefined;
  if (uniformTotal > 0) {
    uniformBuffer = pool.acquireSync(uniformTotal, { usage: UNIFORM_USAGE, label: 'kiln-uniforms' });
    toRelease.push(uniformBuffer);
    const staging = new Uint8Array(uniformTotal);
    steps.forEach((s, i) => s.uniform && staging.set(uniformBytes(s.uniform), uniformOffsets[i]));
    device.queue.writeBuffer(uniformBuffer, 0, staging.buffer, 0, uniformTotal);
  }

  let querySet: GPUQuerySet | undefined;
  let resolveBuffer: GPUBuffer | undefined;
  let timingBuffer: GPUBuffer | undefined;
  if (timed) {
    querySet = device.createQuerySet({ type: 'timestamp', count: 2 * steps.length, label: `${runLabel}-timestamps` });
    resolveBuffer = pool.acquireSync(16 * steps.length, {
      usage: BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC,
      label: 'kiln-query-resolve',
    });
    // Not pooled: a caller that never asks for the timings simply lets it be garbage-collected.
    timingBuffer = device.createBuffer({ size: 16 * steps.length, usage: READBACK_USAGE, label: 'kiln-timings' });
    toRelease.push(resolveBuffer);
  }

  device.pushErrorScope('validation');
  const encoder = device.createCommandEncoder({ label: runLabel });
  let pass: GPUComputePassEncoder | undefined;
  const bindErrors: Promise<GPUError | null>[] = [];
  steps.forEach((s, i) => {
    const entries: GPUBindGroupEntry[] = s.bindings.map((b, binding) => ({
      binding,
      resource: isBuffer(b) ? { buffer: b } : b,
    }));
    if (s.uniform) {
      entries.push({
        binding: s.bindings.length,
        resource: { buffer: uniformBuffer!, offset: uniformOffsets[i], size: alignUp(s.uniform.byteLength, 16) },
      });
    }
    device.pushErrorScope('validation');
    const bindGroup = device.createBindGroup({ layout: bindGroupLayoutOf(s.pipeline), entries, label: s.label });
    bindErrors.push(device.popErrorScope());
    if (timed) {
      pass = encoder.beginComputePass({
        label: s.label,
        timestampWrites: { querySet: querySet!, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
      });
    } else {
      pass ??= encoder.beginComputePass({ label: runLabel });
    }
    pass.setPipeline(s.pipeline);
    pass.setBindGroup(0, bindGroup);
    const [x, y = 1, z = 1] = s.workgroups;
    pass.dispatchWorkgroups(x, y, z);
    if (timed) {
      pass.end();
      pass = undefined;
    }
  });
  pass?.end();
  if (timed) {
    encoder.resolveQuerySet(querySet!, 0, 2 * steps.length, resolveBuffer!, 0);
    encoder.copyBufferToBuffer(resolveBuffer!, 0, timingBuffer!, 0, 16 * steps.length);
  }
  device.queue.submit([encoder.finish()]);
  const runError = device.popErrorScope();
  // The queue orders later writes after this submission, so pooled buffers can be reused right away.
  for (const b of toRelease) pool.release(b);
  querySet?.destroy();

  bindErrors.forEach((p, i) =>
    ctx.track(
      p.then((e) => {
        if (e) ctx.recordError(e, `binding ${stepName(steps[i]!, i)} of run '${runLabel}'`);
      }),
    ),
  );
  ctx.track(
    runError.then((e) => {
      if (e) ctx.recordError(e, `run '${runLabel}'`);
    }),
  );

  let timingPromise: Promise<number[]> | undefined;
  return {
    steps: steps.length,
    async done() {
      await device.queue.onSubmittedWorkDone();
      await ctx.settle(`completing run '${runLabel}'`);
    },
    timings() {
      if (!timed) {
        return Promise.reject(
          new KilnError(
            'unsupported',
            opts.timing
              ? `run '${runLabel}': the device has no timestamp-query feature`
              : `run '${runLabel}' was not submitted with { timing: true }`,
          ),
        );
      }
      timingPromise ??= readTimings(ctx, timingBuffer!, steps.length, runLabel);
      return timingPromise;
    },
  };
}

async function readTimings(ctx: GpuContext, buffer: GPUBuffer, n: number, runLabel: string): Promise<number[]> {
  try {
    await buffer.mapAsync(MapMode.READ, 0, 16 * n);
    const ticks = new BigUint64Array(buffer.getMappedRange(0, 16 * n).slice(0));
    buffer.unmap();
    await ctx.settle(`reading timings of run '${runLabel}'`);
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const begin = ticks[2 * i]!;
      const end = ticks[2 * i + 1]!;
      out.push(end >= begin ? Number(end - begin) : 0);
    }
    return out;
  } finally {
    buffer.destroy();
  }
}
