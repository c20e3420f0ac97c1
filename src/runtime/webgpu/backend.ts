/**
 * The WebGPU backend of the device executor: kernels rendered as WGSL (cached by structural hash + capabilities),
 * buffers from the pool, all steps of a run in one submission.
 */
import type { Kernel } from '../../../codegen/kir.js';
import { kernelHash } from '../../../codegen/kir.js';
import { legalize } from '../../../codegen/legalize.js';
import type { DeviceCaps } from '../../../codegen/lower/storage.js';
import { WgslRenderer } from '../../../codegen/render/wgsl.js';
import type { DeviceBackend } from '../executor.js';
import { bufferPool, poisonBuffer, readback, writeBuffer, type BufferPool } from './buffers.js';
import type { GpuContext } from './device.js';
import { encodeRun } from './dispatch.js';
import { compileKernel, type BindingKind } from './pipelines.js';

export function deviceCapsOf(ctx: GpuContext): DeviceCaps {
  const c = ctx.caps;
  return {
    f16: c.shaderF16,
    subgroups: false, // subgroup reductions are not used yet; tree reductions in workgroup memory everywhere
    subgroupSize: c.subgroupMinSize ?? 32,
    maxWorkgroupSize: Math.min(256, c.maxComputeInvocationsPerWorkgroup, c.maxComputeWorkgroupSizeX),
    maxSharedBytes: c.maxComputeWorkgroupStorageSize,
    maxBuffersPerKernel: c.maxStorageBuffersPerShaderStage,
    maxGroupsPerDim: c.maxComputeWorkgroupsPerDimension,
    cpu: isCpuAdapter(c.adapter),
    dot4: c.packed4x8Dot,
    ...(/swiftshader/i.test(`${c.adapter.architecture} ${c.adapter.description}`) ? { slowBarriers: true } : {}),
  };
}

/** lavapipe / llvmpipe (Mesa) and SwiftShader: WebGPU run on the CPU. */
export function isCpuAdapter(a: {
  vendor: string;
  architecture: string;
  description: string;
  device: string;
}): boolean {
  return /llvmpipe|lavapipe|swiftshader/i.test(`${a.description} ${a.device} ${a.architecture} ${a.vendor}`);
}

export class WebGpuBackend implements DeviceBackend<GPUBuffer> {
  readonly name = 'webgpu';
  readonly caps: DeviceCaps;
  /** Sessions on one GPUDevice take each other's device tensors as feeds. */
  readonly space: object;
  private readonly pool: BufferPool;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly renderer = new WgslRenderer();
  /**
   * Time every kernel with GPU timestamps (each step its own compute pass; needs timestamp-query): `lastTimings` then
   * holds the last run's nanoseconds per step. For benchmarks: it changes how a run is encoded.
   */
  profile = false;
  lastTimings: number[] = [];
  /** WGSL of every kernel compiled, by kernel name (for dumps and golden tests). */
  readonly sources = new Map<string, string>();

  constructor(
    readonly ctx: GpuContext,
    caps: DeviceCaps = deviceCapsOf(ctx),
  ) {
    this.caps = caps;
    this.space = ctx.device;
    this.pool = bufferPool(ctx);
  }

  alloc(bytes: number, label: string): GPUBuffer {
    return this.pool.acquireSync(bytes, { label });
  }
  write(buf: GPUBuffer, bytes: Uint8Array): void {
    writeBuffer(this.ctx, buf, bytes);
  }
  release(buf: GPUBuffer): void {
    this.pool.release(buf);
  }
  poison(buf: GPUBuffer, bytes: number): void {
    poisonBuffer(this.ctx, buf, { byteLength: bytes });
  }

  wgsl(k: Kernel): string {
    return this.renderer.render(legalize(k));
  }

  async prepare(kernels: readonly Kernel[], onCompiled?: (kernel: string) => void): Promise<void> {
    await Promise.all(
      kernels.map(async (k) => {
        if (this.pipelines.has(k.name)) return onCompiled?.(k.name);
        const wgsl = this.wgsl(k);
        this.sources.set(k.name, wgsl);
        const bindings: BindingKind[] = k.buffers.map((b) => b.access);
        if (k.uniforms.length) bindings.push('uniform');
        const p = await compileKernel(this.ctx, { key: kernelHash(k), wgsl, label: k.name, bindings });
        this.pipelines.set(k.name, p);
        onCompiled?.(k.name);
      }),
    );
  }

  async run(
    steps: readonly { kernel: Kernel; buffers: GPUBuffer[]; uniforms: ArrayBuffer; grid: [number, number, number] }[],
  ): Promise<void> {
    const handle = encodeRun(
      this.ctx,
      steps.map((s) => ({
        pipeline: this.pipelines.get(s.kernel.name)!,
        bindings: s.buffers,
        uniform: s.kernel.uniforms.length ? s.uniforms : undefined,
        workgroups: s.grid,
        label: s.kernel.name,
      })),
      { timing: this.profile },
    );
    await handle.done();
    if (this.profile && this.ctx.caps.timestampQuery) this.lastTimings = await handle.timings();
  }

  /** Released buffers go back to the device (the pool is shared by sessions; live ones are untouched). */
  dispose(): void {
    this.pool.trim();
    this.pipelines.clear();
    this.sources.clear();
  }

  async read(buf: GPUBuffer, bytes: number): Promise<Uint8Array> {
    return new Uint8Array(await readback(this.ctx, buf, { byteLength: bytes }));
  }
}
