/**
 * The CUDA backend of the device executor: kernels rendered as CUDA C (the source the emulator and nvcc compile),
 * compiled by NVRTC for the device's own architecture (sm_XY from its compute capability), loaded with the driver
 * API, launched on the default stream; buffers are device allocations (pooled by size).
 *
 * `prepare` compiles all kernels of a run that are not loaded yet as one NVRTC program; cubins are cached on disk by
 * source hash and architecture (`cuda/` in the per-user kiln cache, see `kilnCacheRoot`). {@link prepareAll} compiles the
 * kernels of a whole batch of runs (a conformance suite) in a few programs up front.
 *
 * Without libcuda / libnvrtc / a device, {@link CudaBackend.create} throws a KilnError with code `unsupported`.
 */
import { kilnCacheRoot } from '../cuda-emu/emu.js';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Kernel } from '../../../codegen/kir.js';
import type { DeviceCaps } from '../../../codegen/lower/storage.js';
import { KilnError, UnsupportedError } from '../../../ir/errors.js';
import type { DeviceBackend } from '../executor.js';
import { CUDA_CAPS } from '../cuda-emu/backend.js';
import { CU_DEVICE_ATTRIBUTE, CudaDriver, Nvrtc, nvrtcOptions, type Handle, type NvrtcOutput } from './driver.js';
import { CudaError } from './errors.js';
import { activeRecording, cudaTranslationUnit, groupRuns, recordKernels } from './source.js';

/** A device buffer: its address and size. */
export interface CudaBuffer {
  readonly ptr: bigint;
  readonly bytes: number;
  readonly label: string;
}

/** The device this process uses, initialized once. */
export interface CudaDevice {
  readonly driver: CudaDriver;
  readonly nvrtc: Nvrtc;
  readonly ordinal: number;
  readonly device: number;
  readonly ctx: Handle;
  readonly name: string;
  readonly cc: readonly [number, number];
  readonly caps: DeviceCaps;
  readonly driverVersion: number;
  readonly nvrtcVersion: readonly [number, number];
}

let deviceMemo: Promise<CudaDevice> | undefined;

function sharedHeaderText(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (let dir = here; ; dir = path.dirname(dir)) {
    const f = path.join(dir, 'codegen', 'cuda', 'emu', 'kiln_cuda_shared.h');
    if (existsSync(f)) return readFileSync(f, 'utf8');
    if (path.dirname(dir) === dir) break;
  }
  throw new KilnError('unsupported', 'cannot find codegen/cuda/emu/kiln_cuda_shared.h', {
    limit: 'kiln_cuda_shared.h',
  });
}

/** Compiled modules live in the per-user kiln cache (`$KILN_CACHE_DIR`, `$XDG_CACHE_HOME/kiln`, `~/.cache/kiln`). */
function repoCacheDir(): string {
  return path.join(kilnCacheRoot(), 'cuda');
}

/** Opens device `ordinal` (default `$KILN_CUDA_DEVICE` or 0): loads libcuda and libnvrtc, cuInit, primary context. */
export function openCudaDevice(ordinal = Number(process.env['KILN_CUDA_DEVICE'] ?? 0)): Promise<CudaDevice> {
  deviceMemo ??= openDevice(ordinal).catch((e: unknown) => {
    // "this machine cannot" results (no device, driver too old, stub library): an UnsupportedError, as for a
    // missing library, so that runners report a skip with the reason
    if (e instanceof CudaError && e.code === 'unsupported')
      throw new UnsupportedError(`backend 'cuda': ${e.message}`, { limit: e.resultName });
    throw e;
  });
  deviceMemo.catch(() => (deviceMemo = undefined));
  return deviceMemo;
}

async function openDevice(ordinal: number): Promise<CudaDevice> {
  const driver = CudaDriver.load();
  driver.init();
  const count = driver.deviceCount();
  if (count === 0) throw new UnsupportedError("backend 'cuda': the driver reports no CUDA device");
  if (ordinal >= count) throw new UnsupportedError(`backend 'cuda': device ${ordinal} requested, ${count} present`);
  const nvrtc = Nvrtc.load();
  const device = driver.device(ordinal);
  const ctx = driver.primaryContext(device);
  driver.setCurrent(ctx);
  const A = CU_DEVICE_ATTRIBUTE;
  const cc = [
    driver.attribute(device, A.COMPUTE_CAPABILITY_MAJOR),
    driver.attribute(device, A.COMPUTE_CAPABILITY_MINOR),
  ] as const;
  const caps: DeviceCaps = {
    ...CUDA_CAPS,
    maxWorkgroupSize: Math.min(CUDA_CAPS.maxWorkgroupSize, driver.attribute(device, A.MAX_THREADS_PER_BLOCK)),
    maxSharedBytes: Math.min(48 * 1024, driver.attribute(device, A.MAX_SHARED_MEMORY_PER_BLOCK)),
    subgroupSize: driver.attribute(device, A.WARP_SIZE),
    maxGroupsPerDim: Math.min(65535, driver.attribute(device, A.MAX_GRID_DIM_Y)),
  };
  return {
    driver,
    nvrtc,
    ordinal,
    device,
    ctx,
    name: driver.deviceName(device),
    cc,
    caps,
    driverVersion: driver.driverVersion(),
    nvrtcVersion: nvrtc.version(),
  };
}

/** Loaded functions of this process, by kernel name (modules stay loaded for the life of the process). */
const functions = new Map<string, Handle>();
const compiling = new Map<string, Promise<void>>();

/** Compiles `kernels` as one NVRTC program (or loads its cubin from the disk cache) and registers its functions. */
function compileAndLoad(dev: CudaDevice, kernels: readonly Kernel[], label: string): Promise<void> {
  const source = cudaTranslationUnit(kernels, 'nvrtc');
  const arch = `sm_${dev.cc[0]}${dev.cc[1]}`;
  const key = createHash('sha256')
    .update(`${arch}\0${dev.nvrtcVersion.join('.')}\0${dev.driverVersion}\0`)
    .update(source)
    .digest('hex');
  let p = compiling.get(key);
  if (p) return p;
  p = (async () => {
    const dir = path.join(repoCacheDir(), arch);
    const file = path.join(dir, `${key}.cubin`);
    let image: Uint8Array | undefined;
    if (existsSync(file)) image = readFileSync(file);
    if (!image) {
      let out: NvrtcOutput;
      try {
        out = dev.nvrtc.compile(source, `${label}.cu`, nvrtcOptions(dev.cc[0], dev.cc[1]), {
          'kiln_cuda_shared.h': sharedHeaderText(),
        });
      } catch (e) {
        // an NVRTC older than the device: PTX for the device's virtual architecture, JIT-compiled by the driver
        if (!(e instanceof CudaError && e.resultName === 'NVRTC_ERROR_INVALID_OPTION')) throw e;
        out = dev.nvrtc.compile(source, `${label}.cu`, nvrtcOptions(dev.cc[0], dev.cc[1], { ptx: true }), {
          'kiln_cuda_shared.h': sharedHeaderText(),
        });
      }
      image = out.image; // PTX comes NUL-terminated from NVRTC, as cuModuleLoadData wants it
      try {
        mkdirSync(dir, { recursive: true });
        const tmp = `${file}.${process.pid}.tmp`;
        writeFileSync(tmp, image);
        renameSync(tmp, file);
      } catch {
        /* the cache is an optimization */
      }
    }
    dev.driver.setCurrent(dev.ctx);
    const mod = dev.driver.loadModule(image, label);
    for (const k of kernels) functions.set(k.name, dev.driver.getFunction(mod, k.name));
  })();
  compiling.set(key, p);
  p.catch(() => compiling.delete(key));
  return p;
}

/** Kernel parameters for cuLaunchKernel: one little-endian value per parameter, buffers then uniforms. */
export function launchParams(kernel: Kernel, ptrs: readonly bigint[], uniforms: ArrayBuffer): Uint8Array[] {
  if (ptrs.length !== kernel.buffers.length)
    throw new KilnError('runtime', `kernel takes ${kernel.buffers.length} buffers, got ${ptrs.length}`, {
      node: kernel.name,
    });
  const out: Uint8Array[] = ptrs.map((p) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, p, true);
    return b;
  });
  const src = new Uint8Array(uniforms);
  kernel.uniforms.forEach((_u, i) => out.push(src.slice(i * 4, i * 4 + 4))); // i32 / u32 / f32: 4 bytes each
  return out;
}

export class CudaBackend implements DeviceBackend<CudaBuffer> {
  readonly name = 'cuda';
  readonly caps: DeviceCaps;
  private readonly pool = new Map<number, bigint[]>();
  /** Milliseconds between the first and last launch of the last run (CUDA events), when `timeRuns` is set. */
  lastRunMs = 0;
  timeRuns = false;

  private constructor(readonly dev: CudaDevice) {
    this.caps = dev.caps;
  }

  /** Opens the device (typed `unsupported` error without libcuda, libnvrtc or a device). */
  static async create(): Promise<CudaBackend> {
    return new CudaBackend(await openCudaDevice());
  }

  alloc(bytes: number, label: string): CudaBuffer {
    const size = Math.max(4, Math.ceil(bytes / 256) * 256);
    const free = this.pool.get(size);
    const ptr = free?.pop() ?? this.dev.driver.memAlloc(size, label);
    return { ptr, bytes: size, label };
  }
  write(buf: CudaBuffer, bytes: Uint8Array): void {
    this.dev.driver.memcpyHtoD(buf.ptr, bytes.subarray(0, buf.bytes));
  }
  release(buf: CudaBuffer): void {
    let l = this.pool.get(buf.bytes);
    if (!l) this.pool.set(buf.bytes, (l = []));
    l.push(buf.ptr);
  }
  poison(buf: CudaBuffer, bytes: number): void {
    this.dev.driver.memsetD8(buf.ptr, 0xff, Math.min(bytes, buf.bytes));
  }

  /** The CUDA C translation unit of these kernels, as NVRTC compiles it. */
  source(kernels: readonly Kernel[]): string {
    return cudaTranslationUnit(kernels, 'nvrtc');
  }

  async prepare(kernels: readonly Kernel[], onCompiled?: (kernel: string) => void): Promise<void> {
    const rec = activeRecording();
    if (rec) {
      rec.runs.push([...kernels]);
      return;
    }
    const missing = kernels.filter((k) => !functions.has(k.name));
    if (missing.length) await compileAndLoad(this.dev, missing, missing.length === 1 ? missing[0]!.name : 'kiln_run');
    for (const k of kernels) onCompiled?.(k.name);
  }

  async run(
    steps: readonly { kernel: Kernel; buffers: CudaBuffer[]; uniforms: ArrayBuffer; grid: [number, number, number] }[],
  ): Promise<void> {
    if (activeRecording()) return;
    const d = this.dev.driver;
    d.setCurrent(this.dev.ctx);
    const events = this.timeRuns ? [d.eventCreate(), d.eventCreate()] : undefined;
    if (events) d.eventRecord(events[0]);
    for (const s of steps) {
      const f = functions.get(s.kernel.name);
      if (!f) throw new KilnError('runtime', 'kernel was not prepared', { node: s.kernel.name });
      const [x, y, z] = s.kernel.workgroup;
      d.launch(
        f,
        s.grid,
        [x, y, z],
        launchParams(
          s.kernel,
          s.buffers.map((b) => b.ptr),
          s.uniforms,
        ),
        s.kernel.name,
      );
    }
    if (events) {
      d.eventRecord(events[1]);
      d.eventSynchronize(events[1]);
      this.lastRunMs = d.eventElapsedMs(events[0], events[1]);
      d.eventDestroy(events[0]);
      d.eventDestroy(events[1]);
    }
    // errors of asynchronous kernel execution surface here; name the run's kernels
    d.synchronize(steps.length === 1 ? steps[0]!.kernel.name : `${steps.length} launches`);
  }

  async read(buf: CudaBuffer, bytes: number): Promise<Uint8Array> {
    const out = new Uint8Array(bytes);
    this.dev.driver.memcpyDtoH(out, buf.ptr);
    return out;
  }

  /** Frees pooled device memory. */
  trim(): void {
    for (const l of this.pool.values()) for (const p of l) this.dev.driver.memFree(p);
    this.pool.clear();
  }
}

/**
 * Runs `body` once with recording on, then compiles every kernel it needed in a few NVRTC programs (see the cuda-emu
 * {@link import('../cuda-emu/backend.js').prepareAll}). Does nothing where no CUDA device is available.
 */
export async function prepareAll(body: () => Promise<void>, opts: { units?: number } = {}): Promise<void> {
  if (activeRecording()) return;
  let dev: CudaDevice;
  try {
    dev = await openCudaDevice();
  } catch {
    return; // the runs will report the missing device themselves
  }
  const rec = await recordKernels(body);
  const groups = groupRuns(rec.runs, opts.units ?? 4);
  for (const [i, g] of groups.entries()) {
    const missing = g.filter((k) => !functions.has(k.name));
    try {
      if (missing.length) await compileAndLoad(dev, missing, `kiln_unit${i}`);
    } catch {
      /* the runs of this unit compile on demand and report the error there */
    }
  }
}
