/**
 * The cuda-emu backend of the device executor: kernels rendered as CUDA C (the same source nvcc and NVRTC compile),
 * compiled by g++ against the emulation header and run with CUDA semantics in a child process.
 *
 * Buffers are host byte arrays. `prepare` puts every kernel of a run into one translation unit (cached on disk by
 * source hash); `run` sends all buffers the steps touch and one launch per step to the emulator in one plan and copies
 * the buffers the kernels wrote back. {@link prepareAll} compiles the kernels of a whole batch of runs (a conformance
 * suite) in a few translation units up front, in parallel, so that the runs themselves compile nothing.
 */
import os from 'node:os';
import type { Kernel } from '../../../codegen/kir.js';
import type { DeviceCaps } from '../../../codegen/lower/storage.js';
import type { DeviceBackend } from '../executor.js';
import { activeRecording, cudaTranslationUnit, groupRuns, kernelSetKey, recordKernels } from '../cuda/source.js';
import { KilnError, UnsupportedError } from '../../../ir/errors.js';
import { compileEmu, emuAvailable, MAX_EMU_TRANSFER_BYTES, type EmuModule, type EmuRunOptions } from './emu.js';
import type { EmuArg, EmuBuffer, EmuLaunch } from './plan.js';

/** g++ flags for kernels: signed overflow wraps (as on the GPU, and as the reference's integer wrap). */
export const EMU_KERNEL_FLAGS: readonly string[] = ['-fwrapv'];

/** What the emulated device offers; the limits of a CUDA GPU, with the 256-thread cap kiln's lowerings use. */
export const CUDA_CAPS: DeviceCaps = {
  f16: true,
  // Warps are 32 consecutive threads: row reductions finish with __shfl_xor_sync butterflies.
  subgroups: true,
  subgroupSize: 32,
  maxWorkgroupSize: 256,
  maxSharedBytes: 48 * 1024,
  maxBuffersPerKernel: 64,
  maxGroupsPerDim: 65535,
  dot4: true, // __dp4a (sm_61+; the emulation header defines it)
};

let availability: Promise<boolean> | undefined;

/** Throws an UnsupportedError where the emulator cannot run (no g++, not x86-64 Linux); checked once per process. */
export async function requireEmulator(): Promise<void> {
  availability ??= emuAvailable();
  if (!(await availability))
    throw new UnsupportedError(
      "backend 'cuda-emu': the CPU emulator needs g++ >= 12 on x86-64 Linux (set KILN_CXX to use another compiler)",
      { limit: 'g++' },
    );
}

/** A buffer of the emulated device: host bytes, plus how to initialize it when nothing was written yet. */
export interface EmuDeviceBuffer {
  readonly id: number;
  readonly label: string;
  bytes: Uint8Array;
  /** True once `write` or a run filled `bytes`; otherwise the buffer goes to the emulator as a fill. */
  defined: boolean;
  /** Fill byte for an undefined buffer (0xff after `poison`: NaN for floats), else zeros. */
  fill?: number;
  released: boolean;
}

/* Modules of this process: every translation unit compiled (or fetched from the disk cache), by the kernels it holds. */
interface LoadedUnit {
  module: EmuModule;
  kernels: ReadonlySet<string>;
}
const units: LoadedUnit[] = [];
const unitForSet = new Map<string, Promise<LoadedUnit>>();

function findUnit(names: readonly string[]): LoadedUnit | undefined {
  return units.find((u) => names.every((n) => u.kernels.has(n)));
}

async function compileUnit(kernels: readonly Kernel[], label: string): Promise<LoadedUnit> {
  const module = await compileEmu(cudaTranslationUnit(kernels, 'emu'), { name: label, extraFlags: EMU_KERNEL_FLAGS });
  const unit = { module, kernels: new Set(kernels.map((k) => k.name)) };
  units.push(unit);
  return unit;
}

/** The unit that holds every kernel of a run: an existing one, else a new unit of exactly these kernels. */
function unitFor(kernels: readonly Kernel[]): Promise<LoadedUnit> {
  const names = kernels.map((k) => k.name);
  const have = findUnit(names);
  if (have) return Promise.resolve(have);
  const key = kernelSetKey(names);
  let p = unitForSet.get(key);
  if (!p) {
    p = compileUnit(kernels, kernels.length === 1 ? kernels[0]!.name : `kiln_${key}`);
    unitForSet.set(key, p);
    p.catch(() => unitForSet.delete(key));
  }
  return p;
}

export interface CudaEmuBackendOptions {
  caps?: Partial<DeviceCaps>;
  /** Options for the emulator process (threads, fiber order, timeout, transfer limit). */
  run?: EmuRunOptions;
  /**
   * Largest buffer `alloc` accepts, in bytes (default and maximum {@link MAX_EMU_TRANSFER_BYTES}: a buffer is one
   * host typed array and crosses the pipe to the emulator whole).
   */
  maxBufferBytes?: number;
}

export class CudaEmuBackend implements DeviceBackend<EmuDeviceBuffer> {
  readonly name = 'cuda-emu';
  readonly caps: DeviceCaps;
  private nextId = 0;
  private unit: LoadedUnit | undefined;
  /** Per-launch times (ms, inside the emulator) of the last run. */
  lastLaunchMs: number[] = [];
  /** Kernel names of the launches of the last run, in order. */
  lastKernels: string[] = [];

  constructor(private readonly opts: CudaEmuBackendOptions = {}) {
    this.caps = { ...CUDA_CAPS, ...opts.caps };
  }

  /** Largest buffer this backend allocates. */
  get maxBufferBytes(): number {
    return Math.min(this.opts.maxBufferBytes ?? MAX_EMU_TRANSFER_BYTES, MAX_EMU_TRANSFER_BYTES);
  }

  alloc(bytes: number, label: string): EmuDeviceBuffer {
    // checked before allocating: past the typed-array cap, `new Uint8Array` throws an untyped RangeError
    const max = this.maxBufferBytes;
    if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > max)
      throw new KilnError(
        'limit',
        `cuda-emu: buffer '${label}' needs ${bytes} bytes; the emulator holds at most ${max} bytes per buffer`,
        { tensor: label, limit: `cuda-emu buffer bytes (${max})` },
      );
    return { id: this.nextId++, label, bytes: new Uint8Array(bytes), defined: false, released: false };
  }
  write(buf: EmuDeviceBuffer, bytes: Uint8Array): void {
    buf.bytes.set(bytes.subarray(0, buf.bytes.length));
    buf.defined = true;
  }
  release(buf: EmuDeviceBuffer): void {
    buf.released = true;
    buf.bytes = new Uint8Array(0);
  }
  poison(buf: EmuDeviceBuffer, bytes: number): void {
    if (buf.defined) buf.bytes.fill(0xff, 0, bytes);
    else buf.fill = 0xff;
  }

  /** The CUDA C translation unit of these kernels, as the emulator compiles it. */
  source(kernels: readonly Kernel[]): string {
    return cudaTranslationUnit(kernels, 'emu');
  }

  /** The emulator executable the last `prepare` chose (undefined before the first run or while recording). */
  get module(): EmuModule | undefined {
    return this.unit?.module;
  }

  async prepare(kernels: readonly Kernel[], onCompiled?: (kernel: string) => void): Promise<void> {
    const rec = activeRecording();
    if (rec) {
      rec.runs.push([...kernels]);
      this.unit = undefined;
      return;
    }
    this.unit = kernels.length ? await unitFor(kernels) : undefined;
    for (const k of kernels) onCompiled?.(k.name); // one translation unit: all are ready together
  }

  async run(
    steps: readonly {
      kernel: Kernel;
      buffers: EmuDeviceBuffer[];
      uniforms: ArrayBuffer;
      grid: [number, number, number];
    }[],
  ): Promise<void> {
    if (activeRecording()) return;
    let unit = this.unit;
    const names = [...new Set(steps.map((s) => s.kernel.name))];
    if (!unit || !names.every((n) => unit!.kernels.has(n)))
      unit = await unitFor([...new Map(steps.map((s) => [s.kernel.name, s.kernel])).values()]);

    const index = new Map<EmuDeviceBuffer, number>();
    const bufs: EmuDeviceBuffer[] = [];
    const written = new Set<number>();
    const launches: EmuLaunch[] = steps.map((s) => {
      const args: EmuArg[] = s.buffers.map((b, i) => {
        let bi = index.get(b);
        if (bi === undefined) {
          if (b.released)
            throw new KilnError('runtime', `cuda-emu: buffer '${b.label}' used after release`, {
              tensor: b.label,
              node: s.kernel.name,
            });
          bi = bufs.length;
          index.set(b, bi);
          bufs.push(b);
        }
        if (s.kernel.buffers[i]!.access === 'read_write') written.add(bi);
        return { buffer: bi };
      });
      const dv = new DataView(s.uniforms);
      s.kernel.uniforms.forEach((u, i) => {
        if (u.type === 'f32') args.push({ f32: dv.getFloat32(i * 4, true) });
        else if (u.type === 'u32') args.push({ u32: dv.getUint32(i * 4, true) });
        else args.push({ i32: dv.getInt32(i * 4, true) });
      });
      const [x, y, z] = s.kernel.workgroup;
      return { kernel: s.kernel.name, grid: s.grid, block: [x, y, z], args };
    });
    const buffers: EmuBuffer[] = bufs.map((b) =>
      b.defined ? { init: b.bytes } : { size: b.bytes.length, fill: b.fill ?? 0 },
    );
    const outputs = [...written].sort((a, b) => a - b);
    this.checkTransfer(bufs, outputs, launches.length, steps[0]?.kernel.name);
    const res = await unit.module.runDetailed({ buffers, launches, outputs }, this.opts.run);
    for (const [bi, bytes] of res.outputs) {
      const b = bufs[bi]!;
      b.bytes = bytes;
      b.defined = true;
    }
    this.lastLaunchMs = res.launchMs;
    this.lastKernels = steps.map((s) => s.kernel.name);
  }

  /** The outputs of a run come back in one pipe read: refuse, naming the biggest buffers, what cannot fit. */
  private checkTransfer(
    bufs: readonly EmuDeviceBuffer[],
    outputs: readonly number[],
    launches: number,
    kernel: string | undefined,
  ): void {
    const max = Math.min(this.opts.run?.maxTransferBytes ?? MAX_EMU_TRANSFER_BYTES, MAX_EMU_TRANSFER_BYTES);
    let total = 16 + 8 * launches;
    for (const o of outputs) total += 12 + bufs[o]!.bytes.length;
    if (total <= max) return;
    const big = [...outputs].sort((a, b) => bufs[b]!.bytes.length - bufs[a]!.bytes.length).slice(0, 3);
    const names = big.map((o) => `'${bufs[o]!.label}' (${bufs[o]!.bytes.length} bytes)`).join(', ');
    throw new KilnError(
      'limit',
      `cuda-emu: the outputs of this run need ${total} bytes, more than the ${max} that may return from the ` +
        `emulator at once; largest: ${names}`,
      { node: kernel, tensor: bufs[big[0]!]!.label, limit: `cuda-emu transfer bytes (${max})` },
    );
  }

  async read(buf: EmuDeviceBuffer, bytes: number): Promise<Uint8Array> {
    if (!buf.defined) {
      const out = new Uint8Array(bytes);
      if (buf.fill) out.fill(buf.fill);
      return out;
    }
    return buf.bytes.slice(0, bytes);
  }
}

/** Distinct kernels and translation units of the last {@link prepareAll}, and its time. */
export interface PrepareAllStats {
  runs: number;
  kernels: number;
  units: number;
  recordMs: number;
  compileMs: number;
  /** Units that failed to compile: their runs compile on demand (and report the error there). */
  failedUnits: number;
}

/**
 * Runs `body` (e.g. every test of a conformance suite) once with recording on, then compiles every kernel it needed in
 * at most `units` translation units, `parallel` g++ processes at a time. Later runs of the same kernels find them
 * compiled. Failures are not thrown: a unit that does not compile leaves its runs to compile on demand.
 */
export async function prepareAll(
  body: () => Promise<void>,
  opts: { units?: number; parallel?: number } = {},
): Promise<PrepareAllStats> {
  const t0 = performance.now();
  // inside an outer recording (e.g. the nvcc check collecting kernels) the outer recording sees the runs: nothing to do
  if (activeRecording()) return { runs: 0, kernels: 0, units: 0, recordMs: 0, compileMs: 0, failedUnits: 0 };
  const rec = await recordKernels(body);
  const t1 = performance.now();
  const parallel = Math.max(1, opts.parallel ?? Math.min(os.availableParallelism(), 8));
  const groups = groupRuns(rec.runs, opts.units ?? parallel * 2);
  let failed = 0;
  let next = 0;
  const worker = async () => {
    while (next < groups.length) {
      const g = groups[next++]!;
      try {
        await unitFor(g);
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, groups.length) }, worker));
  return {
    runs: rec.runs.length,
    kernels: new Set(rec.runs.flat().map((k) => k.name)).size,
    units: groups.length,
    recordMs: t1 - t0,
    compileMs: performance.now() - t1,
    failedUnits: failed,
  };
}
