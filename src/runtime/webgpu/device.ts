/// <reference types="@webgpu/types" />
/**
 * Acquiring a WebGPU device and describing what it can do.
 *
 * In Node the device comes from the npm package `webgpu` (Dawn); on a machine without a GPU that needs the Mesa >= 25
 * lavapipe Vulkan driver (`sudo bash scripts/install-lavapipe.sh`). In a browser it comes from `navigator.gpu`.
 *
 * Everything the code generator and legalization need to know about the device is read once into a plain
 * {@link GpuCapabilities} object. Device loss and uncaptured errors are recorded on the {@link GpuContext} and thrown
 * as typed {@link KilnError}s by the next operation (see {@link GpuContext.check}).
 */
import { KilnError } from '../../../ir/errors.js';

/** The message telling how to get a WebGPU adapter on a machine without a GPU. */
export const INSTALL_HINT =
  'On Debian 12 without a GPU, install the Mesa >= 25 lavapipe Vulkan driver: `sudo bash scripts/install-lavapipe.sh` ' +
  '(Debian 12 ships Mesa 22.3, whose lavapipe Dawn rejects).';

/** The adapter pinned in Node when no adapter is asked for: Mesa's lavapipe, a deterministic CPU Vulkan driver. */
export const DEFAULT_NODE_ADAPTER = 'llvmpipe';

/** Device features and limits, read once from the adapter; legalization and codegen consult this. */
export interface GpuCapabilities {
  /** `shader-f16` is enabled on the device (WGSL `enable f16;`). */
  shaderF16: boolean;
  /** `subgroups` is enabled on the device (WGSL `enable subgroups;`). */
  subgroups: boolean;
  /** Smallest / largest subgroup size, when the adapter reports them (lavapipe: 8 / 8). */
  subgroupMinSize?: number;
  subgroupMaxSize?: number;
  /** WGSL language feature `packed_4x8_integer_dot_product` (`dot4I8Packed` / `dot4U8Packed`). */
  packed4x8Dot: boolean;
  /** `timestamp-query` is enabled on the device (per-step GPU timings in {@link encodeRun}). */
  timestampQuery: boolean;
  maxStorageBuffersPerShaderStage: number;
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupSizeX: number;
  maxComputeWorkgroupSizeY: number;
  maxComputeWorkgroupSizeZ: number;
  maxComputeWorkgroupsPerDimension: number;
  maxUniformBufferBindingSize: number;
  minStorageBufferOffsetAlignment: number;
  minUniformBufferOffsetAlignment: number;
  /** Adapter identity as reported by the driver. */
  adapter: { vendor: string; architecture: string; device: string; description: string; isFallbackAdapter: boolean };
  /** One human-readable line: `description (vendor/architecture)`. */
  adapterDescription: string;
  /** Where the device came from. */
  backend: 'node-webgpu' | 'navigator.gpu';
}

/** The limits kiln requests at the adapter's maximum (everything else stays at the WebGPU default). */
export const REQUESTED_LIMITS = [
  'maxStorageBuffersPerShaderStage',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxUniformBufferBindingSize',
] as const;

export interface AcquireGpuOptions {
  /**
   * Node only: the adapter to pin, a substring of its name as Dawn lists it (e.g. `'llvmpipe'`, `'SwiftShader'`,
   * `'NVIDIA'`). `'default'` lets Dawn choose. Left out: `$KILN_WEBGPU_ADAPTER` if set, else `'llvmpipe'`, falling
   * back to Dawn's choice when no lavapipe adapter exists. An explicitly named adapter that is missing is an error.
   */
  adapter?: string;
  /** Do not enable `shader-f16` even where the adapter has it (to exercise the f32 fallback). */
  disableF16?: boolean;
  /** Do not enable `subgroups` even where the adapter has it. */
  disableSubgroups?: boolean;
  powerPreference?: GPUPowerPreference;
  /** Node only: extra Dawn flags for `create()`, e.g. `'enable-dawn-features=dump_shaders'`. */
  dawnFlags?: string[];
  /**
   * Node only: keep Dawn's timestamp quantization (a browser privacy measure that rounds GPU timestamps to 2^16 ns,
   * useless for timing small kernels). Default false: kiln passes `disable-dawn-features=timestamp_quantization`.
   */
  quantizeTimestamps?: boolean;
}

/** A device plus its capabilities, with device loss and uncaptured errors recorded for the next operation. */
export class GpuContext {
  /** Absent for a device the caller brought ({@link gpuContextOf}). */
  readonly gpu: GPU | undefined;
  readonly adapter: GPUAdapter | undefined;
  readonly device: GPUDevice;
  readonly caps: GpuCapabilities;
  /** A short stable string of everything in {@link caps} that can change generated code; part of pipeline cache keys. */
  readonly fingerprint: string;
  private lostInfo: { reason: string; message: string } | undefined;
  private readonly pendingErrors: { kind: string; message: string; context?: string }[] = [];
  private readonly inFlight = new Set<Promise<unknown>>();
  private destroyed = false;

  /**
   * `external`: the caller owns the device (kiln never destroys it, and leaves its uncaptured errors to the caller:
   * kiln's own operations are checked through error scopes).
   */
  constructor(
    gpu: GPU | undefined,
    adapter: GPUAdapter | undefined,
    device: GPUDevice,
    caps: GpuCapabilities,
    readonly external = false,
  ) {
    this.gpu = gpu;
    this.adapter = adapter;
    this.device = device;
    this.caps = caps;
    this.fingerprint = capabilitiesFingerprint(caps);
    void device.lost.then((info) => {
      this.lostInfo = { reason: String(info.reason), message: info.message };
    });
    if (!external) {
      device.addEventListener('uncapturederror', (ev) => {
        const error = (ev as GPUUncapturedErrorEvent).error;
        this.pendingErrors.push({ kind: errorKind(error), message: error.message });
        ev.preventDefault();
      });
    }
  }

  /** True once the device is lost (or destroyed). */
  get isLost(): boolean {
    return this.lostInfo !== undefined || this.destroyed;
  }

  /**
   * Throws a typed error for a lost device (code 'device') or for errors recorded since the last check (uncaptured
   * errors and errors from fire-and-forget error scopes, code 'runtime' or 'device' for out-of-memory); clears the
   * recorded errors it reports. Every runtime operation calls this first.
   */
  check(operation?: string): void {
    const where = operation ? ` (before ${operation})` : '';
    if (this.destroyed) throw new KilnError('device', `WebGPU device was destroyed${where}`);
    if (this.lostInfo) {
      throw new KilnError(
        'device',
        `WebGPU device lost (${this.lostInfo.reason}): ${this.lostInfo.message.trim()}${where}`,
      );
    }
    if (this.pendingErrors.length) {
      const errors = this.pendingErrors.splice(0);
      const oom = errors.some((e) => e.kind === 'out-of-memory');
      const text = errors
        .map((e) => `${e.kind} error${e.context ? ` in ${e.context}` : ''}: ${firstLines(e.message, 6)}`)
        .join('\n');
      throw new KilnError(oom ? 'device' : 'runtime', `WebGPU reported ${errors.length} error(s)${where}:\n${text}`);
    }
  }

  /**
   * Records an error found asynchronously (e.g. an error scope popped after a submit); {@link check} reports it.
   * @internal
   */
  recordError(error: GPUError, context?: string): void {
    this.pendingErrors.push({ kind: errorKind(error), message: error.message, context });
  }

  /**
   * Tracks a fire-and-forget promise (an error scope pop) so {@link settle} can wait for it. @internal
   */
  track(p: Promise<unknown>): void {
    const q = p.finally(() => this.inFlight.delete(q));
    this.inFlight.add(q);
    q.catch(() => undefined);
  }

  /** Waits for every tracked error scope to resolve, then {@link check}s. */
  async settle(operation?: string): Promise<void> {
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
    this.check(operation);
  }

  /** Destroys the device. Later operations throw a 'device' error. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    if (!this.external) this.device.destroy();
  }
}

function errorKind(error: GPUError): string {
  const name = error.constructor?.name ?? '';
  if (name.includes('OutOfMemory')) return 'out-of-memory';
  if (name.includes('Validation')) return 'validation';
  if (name.includes('Internal')) return 'internal';
  return 'gpu';
}

function firstLines(text: string, n: number): string {
  const lines = text.trim().split('\n');
  return lines.length <= n ? lines.join('\n') : [...lines.slice(0, n), '…'].join('\n');
}

/** A stable fingerprint of the capabilities that can change generated code or its legality. */
export function capabilitiesFingerprint(caps: GpuCapabilities): string {
  const parts = [
    caps.shaderF16 ? 'f16' : 'nof16',
    caps.subgroups ? `sg${caps.subgroupMinSize ?? '?'}-${caps.subgroupMaxSize ?? '?'}` : 'nosg',
    caps.packed4x8Dot ? 'dp4' : 'nodp4',
    `wgs${caps.maxComputeWorkgroupStorageSize}`,
    `inv${caps.maxComputeInvocationsPerWorkgroup}`,
    `wg${caps.maxComputeWorkgroupSizeX}x${caps.maxComputeWorkgroupSizeY}x${caps.maxComputeWorkgroupSizeZ}`,
    `sb${caps.maxStorageBuffersPerShaderStage}`,
    caps.adapter.vendor || 'unknown',
    caps.adapter.architecture || 'unknown',
  ];
  return parts.join(':');
}

// ---------------------------------------------------------------------------------------------------------------
// Node: the Dawn instance returned by `create()` must stay referenced while any device created from it lives; if it
// is garbage-collected the process segfaults or hangs. These module-level maps hold them for the process lifetime
// (one instance per distinct flag set, shared by every context that used those flags). Holding them does not keep
// the Node process from exiting (measured with webgpu 0.6.2), so they are never dropped.

interface DawnModule {
  create(flags: string[]): GPU;
}
let dawnModule: Promise<DawnModule> | undefined;
const dawnInstances = new Map<string, GPU>();

function isNode(): boolean {
  return typeof process !== 'undefined' && typeof process.versions?.node === 'string';
}

async function nodeGpu(flags: string[]): Promise<GPU> {
  const key = JSON.stringify(flags);
  const existing = dawnInstances.get(key);
  if (existing) return existing;
  dawnModule ??= import('webgpu') as Promise<DawnModule>;
  let mod: DawnModule;
  try {
    mod = await dawnModule;
  } catch (e) {
    dawnModule = undefined;
    throw new KilnError(
      'device',
      `cannot load the npm package 'webgpu' (Dawn for Node): ${String(e)}`,
      {},
      { cause: e },
    );
  }
  const gpu = mod.create(flags);
  dawnInstances.set(key, gpu);
  return gpu;
}

/** The Dawn flags besides the adapter pin: the caller's, plus disabling timestamp quantization unless asked not to. */
function dawnFlags(opts: AcquireGpuOptions): string[] {
  const flags = [...(opts.dawnFlags ?? [])];
  if (opts.quantizeTimestamps) return flags;
  const i = flags.findIndex((f) => f.startsWith('disable-dawn-features='));
  if (i < 0) flags.push('disable-dawn-features=timestamp_quantization');
  else if (!flags[i]!.includes('timestamp_quantization')) flags[i] += ',timestamp_quantization';
  return flags;
}

/** Asks one GPU for an adapter; null where there is none (Dawn throws when a pinned adapter does not exist). */
async function tryAdapter(
  gpu: GPU,
  powerPreference: GPUPowerPreference | undefined,
  around: <T>(fn: () => T) => T = (fn) => fn(),
): Promise<{ adapter: GPUAdapter | null; error?: string }> {
  try {
    return { adapter: await around(() => gpu.requestAdapter(powerPreference ? { powerPreference } : undefined)) };
  } catch (e) {
    return { adapter: null, error: e instanceof Error ? e.message : String(e) };
  }
}

/** Dawn's stderr lines that tell the user nothing: it clamps a Vulkan driver's (lavapipe: 1000000) limit to 16. */
const DAWN_NOISE =
  /^Warning: maxDynamic(Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.$/;

let dawnFilter: Promise<(<T>(fn: () => T) => T) | undefined> | undefined;

/**
 * Dawn prints DAWN_NOISE from C++ straight to fd 2 (no toggle, no log callback) when it enumerates a Vulkan adapter,
 * synchronously inside `requestAdapter`, whatever limits are later requested. So for that call only, fd 2 is pointed
 * at an unlinked temp file (dup/dup2 from libc through koffi), then restored, and every other line is passed on.
 * No JS runs in between, so nothing of Node's own is held back. Without koffi or off Linux the warnings stay.
 */
function dawnStderrFilter(): Promise<(<T>(fn: () => T) => T) | undefined> {
  dawnFilter ??= (async () => {
    if (process.platform !== 'linux') return undefined;
    try {
      const fs = await import('node:fs');
      const { tmpdir } = await import('node:os');
      const { join } = await import('node:path');
      const { createRequire } = await import('node:module');
      const koffi = createRequire(import.meta.url)('koffi') as {
        load(lib: string): { func(sig: string): (...a: number[]) => number };
      };
      const libc = koffi.load('libc.so.6');
      const dup = libc.func('int dup(int)');
      const dup2 = libc.func('int dup2(int, int)');
      return <T>(fn: () => T): T => {
        const file = join(tmpdir(), `kiln-dawn-stderr-${process.pid}-${Math.random().toString(36).slice(2)}`);
        const fd = fs.openSync(file, 'w+');
        fs.unlinkSync(file);
        const saved = dup(2);
        if (saved < 0 || dup2(fd, 2) < 0) {
          if (saved >= 0) fs.closeSync(saved);
          fs.closeSync(fd);
          return fn();
        }
        try {
          return fn();
        } finally {
          dup2(saved, 2);
          fs.closeSync(saved);
          const buf = new Uint8Array(fs.fstatSync(fd).size);
          fs.readSync(fd, buf, 0, buf.length, 0);
          fs.closeSync(fd);
          const kept = new TextDecoder()
            .decode(buf)
            .split('\n')
            .filter((l) => l !== '' && !DAWN_NOISE.test(l));
          if (kept.length) process.stderr.write(kept.join('\n') + '\n');
        }
      };
    } catch {
      return undefined;
    }
  })();
  return dawnFilter;
}

/**
 * Acquires a WebGPU device with kiln's features and limits and reads its capabilities.
 *
 * Requested: the adapter's maximum for every limit in {@link REQUESTED_LIMITS}; features `shader-f16` (unless
 * `disableF16`), `subgroups` (unless `disableSubgroups`) and `timestamp-query`, each where the adapter has it.
 *
 * @throws KilnError code 'device' when no adapter or device can be had (the message says how to install lavapipe).
 */
export async function acquireGpu(opts: AcquireGpuOptions = {}): Promise<GpuContext> {
  const browserGpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  let gpu: GPU | undefined;
  let adapter: GPUAdapter | null = null;
  let backend: GpuCapabilities['backend'];
  const tried: string[] = [];
  if (browserGpu && !isNode()) {
    backend = 'navigator.gpu';
    gpu = browserGpu;
    const r = await tryAdapter(gpu, opts.powerPreference);
    adapter = r.adapter;
    tried.push(`navigator.gpu${r.error ? `: ${r.error}` : ''}`);
  } else if (isNode()) {
    backend = 'node-webgpu';
    const extra = dawnFlags(opts);
    const asked = opts.adapter ?? process.env.KILN_WEBGPU_ADAPTER;
    const candidates: (string | undefined)[] =
      asked === undefined ? [DEFAULT_NODE_ADAPTER, undefined] : asked === 'default' ? [undefined] : [asked];
    for (const name of candidates) {
      const flags = name === undefined ? [...extra] : [`adapter=${name}`, ...extra];
      gpu = await nodeGpu(flags);
      const r = await tryAdapter(gpu, opts.powerPreference, await dawnStderrFilter());
      tried.push(`create(${JSON.stringify(flags)}): ${r.adapter ? 'ok' : (r.error?.trim() ?? 'no adapter')}`);
      if (r.adapter) {
        adapter = r.adapter;
        break;
      }
    }
  } else {
    throw new KilnError('device', `WebGPU is not available here (no navigator.gpu and not Node). ${INSTALL_HINT}`);
  }
  if (!adapter || !gpu) {
    throw new KilnError('device', `no WebGPU adapter found. ${INSTALL_HINT}\nTried:\n  ${tried.join('\n  ')}`);
  }

  const has = (f: string) => adapter.features.has(f);
  const requiredFeatures: GPUFeatureName[] = [];
  if (has('shader-f16') && !opts.disableF16) requiredFeatures.push('shader-f16');
  if (has('subgroups') && !opts.disableSubgroups) requiredFeatures.push('subgroups' as GPUFeatureName);
  if (has('timestamp-query')) requiredFeatures.push('timestamp-query');
  const requiredLimits: Record<string, number> = {};
  const adapterLimits = adapter.limits as unknown as Record<string, number | undefined>;
  for (const name of REQUESTED_LIMITS) {
    const v = adapterLimits[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }

  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'kiln' });
  } catch (e) {
    throw new KilnError(
      'device',
      `requestDevice failed on adapter '${adapter.info?.description ?? '?'}': ${e instanceof Error ? e.message : String(e)}`,
      {},
      { cause: e },
    );
  }
  const caps = readCapabilities(adapter, device, backend, gpu);
  return new GpuContext(gpu, adapter, device, caps);
}

/** One context per device the caller brings, so every session on it shares one buffer pool and pipeline cache. */
const external = new WeakMap<GPUDevice, GpuContext>();

/**
 * A context over a GPUDevice the caller made (GPU-resident I/O: kiln's buffers and the caller's live on one device).
 * Capabilities come from the device's features and limits (and `device.adapterInfo` or the adapter when given):
 * kiln uses f16 only if the device was created with `shader-f16`, and its kernels fit the device's limits.
 */
export function gpuContextOf(device: GPUDevice, adapter?: GPUAdapter): GpuContext {
  let ctx = external.get(device);
  if (!ctx) {
    const backend = isNode() ? 'node-webgpu' : 'navigator.gpu';
    const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
    ctx = new GpuContext(undefined, adapter, device, readCapabilities(adapter, device, backend, gpu), true);
    external.set(device, ctx);
  }
  return ctx;
}

function readCapabilities(
  adapter: GPUAdapter | undefined,
  device: GPUDevice,
  backend: GpuCapabilities['backend'],
  gpu?: GPU,
): GpuCapabilities {
  const lim = device.limits;
  const info = (adapter?.info ??
    (device as { adapterInfo?: GPUAdapterInfo }).adapterInfo ??
    {}) as Partial<GPUAdapterInfo> & {
    subgroupMinSize?: number;
    subgroupMaxSize?: number;
    isFallbackAdapter?: boolean;
  };
  const subgroups = device.features.has('subgroups');
  const adapterId = {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
    isFallbackAdapter: Boolean(
      info.isFallbackAdapter ?? (adapter as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter,
    ),
  };
  const caps: GpuCapabilities = {
    shaderF16: device.features.has('shader-f16'),
    subgroups,
    packed4x8Dot: Boolean(
      (gpu as { wgslLanguageFeatures?: ReadonlySet<string> } | undefined)?.wgslLanguageFeatures?.has(
        'packed_4x8_integer_dot_product',
      ),
    ),
    timestampQuery: device.features.has('timestamp-query'),
    maxStorageBuffersPerShaderStage: lim.maxStorageBuffersPerShaderStage,
    maxStorageBufferBindingSize: lim.maxStorageBufferBindingSize,
    maxBufferSize: lim.maxBufferSize,
    maxComputeWorkgroupStorageSize: lim.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: lim.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: lim.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: lim.maxComputeWorkgroupSizeY,
    maxComputeWorkgroupSizeZ: lim.maxComputeWorkgroupSizeZ,
    maxComputeWorkgroupsPerDimension: lim.maxComputeWorkgroupsPerDimension,
    maxUniformBufferBindingSize: lim.maxUniformBufferBindingSize,
    minStorageBufferOffsetAlignment: lim.minStorageBufferOffsetAlignment,
    minUniformBufferOffsetAlignment: lim.minUniformBufferOffsetAlignment,
    adapter: adapterId,
    adapterDescription:
      `${adapterId.description || adapterId.device || 'unknown adapter'} ` +
      `(${adapterId.vendor || '?'}/${adapterId.architecture || '?'})`,
    backend,
  };
  if (subgroups && typeof info.subgroupMinSize === 'number') caps.subgroupMinSize = info.subgroupMinSize;
  if (subgroups && typeof info.subgroupMaxSize === 'number') caps.subgroupMaxSize = info.subgroupMaxSize;
  return caps;
}

/** Numeric `GPUBufferUsage` flags (fixed by the WebGPU spec), so kiln needs no WebGPU globals installed. */
export const BufferUsage = {
  MAP_READ: 0x1,
  MAP_WRITE: 0x2,
  COPY_SRC: 0x4,
  COPY_DST: 0x8,
  INDEX: 0x10,
  VERTEX: 0x20,
  UNIFORM: 0x40,
  STORAGE: 0x80,
  INDIRECT: 0x100,
  QUERY_RESOLVE: 0x200,
} as const;

/** Numeric `GPUMapMode` flags. */
export const MapMode = { READ: 0x1, WRITE: 0x2 } as const;
