/// <reference types="@webgpu/types" />
/**
 * Compiled sessions: the one interface every backend offers. Weights are bound once at compile time; `run` takes
 * feeds by input name and returns outputs by output name. Returned tensors belong to the caller.
 */
import { KilnError } from '../ir/errors.js';
import type { Graph } from '../ir/graph.js';
import { interpret } from '../ir/interpret.js';
import type { Shape } from '../ir/shape.js';
import type { DType } from '../ir/dtype.js';
import { cloneTensor, makeTensor, toTensor, type Tensor, type TensorLike } from '../ir/tensor.js';
import { verify } from '../ir/verify.js';
import { isDeviceTensor, type DeviceTensor } from './runtime/device-tensor.js';
import { Executor, storageBytes, type TransferStats } from './runtime/executor.js';
import { DEFAULT_CAPS, storageOf } from '../codegen/lower/storage.js';
import type { GpuContext } from './runtime/webgpu/device.js';
import type { Storage } from '../codegen/kir.js';
import type { ScheduleStore } from '../codegen/lower/contraction/schedules.js';

export type { TransferStats };

export type BackendName = 'reference' | 'webgpu' | 'cuda-emu' | 'cuda';
export const BACKENDS: readonly BackendName[] = ['reference', 'webgpu', 'cuda-emu', 'cuda'];
/** What `compile` accepts: a backend, or `auto` for the best one available here (cuda → webgpu → reference). */
export type BackendChoice = BackendName | 'auto';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', ...BACKENDS];
/** Optimization levels: 0 runs the graph as imported; higher levels run more of the default pass pipeline. */
export const OPT_LEVELS = [0, 1, 2, 3] as const;

export interface CompileOptions {
  /** Default `reference` (`webgpu` when a `device` is given); `auto` picks the best device available here. */
  backend?: BackendChoice;
  /**
   * WebGPU: run on this GPUDevice (yours) instead of kiln's shared one, so kiln's tensors and your buffers live on one
   * device: feed your `GPUBuffer`s (`session.fromGpuBuffer`), bind outputs kept on the device (`DeviceTensor.gpuBuffer`)
   * in your own passes. Sessions on the same device take each other's device tensors as feeds. kiln uses f16 only
   * when the device has `shader-f16`; it never destroys the device and leaves its uncaptured errors to you.
   */
  device?: GPUDevice;
  /** Optimization level 0–3 (default 1): 0 runs the graph as imported, higher levels the default pass pipeline. */
  opt?: number;
  /** Passes of the pipeline not to run, by name (e.g. `fuse-elementwise`): for comparisons and bisecting. */
  disabledPasses?: readonly string[];
  /** WebGPU, cuda-emu: no f16 storage (exercise the f32 fallback). */
  disableF16?: boolean;
  /** Poison output buffers before each run so unwritten elements show as NaN (tests). */
  poison?: boolean;
  /**
   * Device backends: how `attention` is scheduled — `auto` (default: the decomposed schedule where it is exact and
   * the queries are many, one kernel otherwise), `one-kernel`, or `decomposed` where exact.
   */
  attentionSchedule?: 'auto' | 'one-kernel' | 'decomposed' | 'tiled';
  /**
   * WebGPU: where tuned contraction schedules are read (`autotune` / `kiln tune` write them). Default in Node: the
   * file `defaultScheduleFile()` when it exists (`KILN_SCHEDULES=off` ignores it); `false`: the static defaults.
   * cuda-emu reads only a store given here.
   */
  schedules?: ScheduleStore | false;
  /**
   * Input shapes to build every kernel for up front (as `session.warmup(shapes)` does); inputs with static shapes may
   * be left out. Without it the first `run` compiles what it needs.
   */
  shapes?: Readonly<Record<string, readonly number[]>>;
  /** Compile progress: `done` of `total` new kernels are ready, the last one named `kernel`. */
  onProgress?: (done: number, total: number, kernel: string) => void;
}

/** A kernel a session compiled, and the graph node it serves. */
export interface KernelInfo {
  readonly name: string;
  readonly node: string;
  readonly op: string;
}

/** An input / output as onnxruntime-web's `session.inputMetadata` describes it (symbolic dims as strings). */
export interface OrtStyleMetadata {
  readonly name: string;
  readonly isTensor: true;
  /** ONNX Runtime's tensor type name: `float32`, `float16`, `int64`, `int32`, `uint8`, `bool`, … */
  readonly type: string;
  readonly shape: readonly (number | string)[];
}

const ORT_TYPES: Record<DType, string> = {
  f64: 'float64',
  f32: 'float32',
  f16: 'float16',
  bf16: 'bfloat16',
  i64: 'int64',
  i32: 'int32',
  i16: 'int16',
  i8: 'int8',
  i4: 'int4',
  u64: 'uint64',
  u32: 'uint32',
  u16: 'uint16',
  u8: 'uint8',
  u4: 'uint4',
  bool: 'bool',
};

/** Name, dtype and (possibly symbolic) shape of a session input or output. */
export interface ValueInfo {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: Shape;
}

export interface Session {
  readonly backend: BackendName;
  readonly graph: Graph;
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Inputs / outputs as onnxruntime-web describes them (for code written against its `InferenceSession`). */
  readonly inputMetadata: readonly OrtStyleMetadata[];
  readonly outputMetadata: readonly OrtStyleMetadata[];
  /**
   * Run with feeds by input name. A feed is any `{ dtype, shape, data }`: a typed array of the dtype's kind is taken
   * without a copy, int64 feeds may be BigInt64Array or bigint[]; bad data (wrong length, NaN or fractional values in
   * an integer feed, unknown names) is a typed error naming the tensor.
   *
   * @throws KilnError naming the tensor for an unknown or missing feed (code `runtime`), a wrong dtype (`dtype`), a
   * shape that does not fit the input or binds a symbolic dim inconsistently (`shape`), invalid integer values
   * (`dtype`); naming the node when a kernel's device check fails (code `runtime`: an index out of range, a position
   * past the end of the cache) or a 64-bit integer does not fit the device's 32-bit storage (`limit`); code `runtime`
   * after `dispose`.
   */
  run(feeds: Readonly<Record<string, TensorLike | DeviceTensor>>): Promise<Record<string, Tensor>>;
  /**
   * Run, keeping the outputs named in `keep` on the device: they come back as {@link DeviceTensor}s that later runs of
   * this session take as feeds without a host round trip (a KV cache); the other outputs come to the host.
   *
   * `outputs`, when given, names the outputs wanted: only the kernels they depend on run, and the result holds only
   * them (a token-tree model's plain step skips its tree kernels).
   *
   * @throws KilnError as {@link Session.run}; also (code `runtime`) for a device tensor made by another session or
   * already disposed, or an `outputs` name that is not a graph output.
   */
  runKeep(
    feeds: Readonly<Record<string, TensorLike | DeviceTensor>>,
    keep: readonly string[],
    outputs?: readonly string[],
  ): Promise<Record<string, Tensor | DeviceTensor>>;
  /** A tensor copied to the device once (a block table, a prompt), fed to later runs without another upload. */
  upload(t: TensorLike, name?: string): DeviceTensor;
  /**
   * WebGPU: a buffer of yours as a feed (no copy; kiln never frees it). The data must be in this session's storage
   * format for the dtype ({@link Session.storageOf}) from offset 0, and the buffer needs STORAGE usage (and COPY_SRC to
   * be read back). Other backends, a buffer too small or without STORAGE usage: a typed error naming `name`.
   */
  fromGpuBuffer(buffer: GPUBuffer, desc: { dtype: DType; shape: readonly number[]; name?: string }): DeviceTensor;
  /** How a dtype is stored in this session's device buffers (`f32`, `f16`, `i32`, `u32`, packed `u8x4` …). */
  storageOf(dtype: DType): Storage;
  /** Host ↔ device traffic since the session was made (all zero on the reference backend). */
  transfers(): TransferStats;
  /** How many graph nodes run as device kernels and how many on the host (shape computations, constants). */
  placement(): { host: number; device: number };
  /**
   * Build every kernel the graph needs for these input shapes now (inputs with static shapes may be left out), so the
   * first `run` does not compile. Values are not needed: shapes are what kernels depend on.
   *
   * @throws KilnError (code `runtime`) for a shape given for an unknown input or after `dispose`; (code `shape`) when
   * an input with symbolic dims has no shape; lowering errors (code `limit` / `unsupported`) naming the node.
   */
  warmup(
    shapes?: Readonly<Record<string, readonly number[]>>,
    onProgress?: (done: number, total: number, kernel: string) => void,
  ): Promise<void>;
  /** The kernels compiled so far (empty on the reference backend). */
  kernels(): readonly KernelInfo[];
  /**
   * Frees the session's device buffers and kernels. Runs already in flight finish first (the buffers are released
   * when the last one settles); later calls to `run`, `runKeep` or `warmup` throw KilnError (code `runtime`).
   * Calling it twice is harmless.
   */
  dispose(): void;
}

function ortStyle(v: ValueInfo): OrtStyleMetadata {
  return { name: v.name, isTensor: true, type: ORT_TYPES[v.dtype], shape: [...v.shape] };
}

function infoOf(graph: Graph): { inputs: ValueInfo[]; outputs: ValueInfo[] } {
  const info = (v: { name: string; type: { dtype: DType; shape: Shape } }) => ({
    name: v.name,
    dtype: v.type.dtype,
    shape: v.type.shape,
  });
  return { inputs: graph.inputs.map(info), outputs: graph.outputs.map(info) };
}

abstract class BaseSession implements Session {
  abstract readonly backend: BackendName;
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
  protected disposed = false;
  constructor(readonly graph: Graph) {
    ({ inputs: this.inputs, outputs: this.outputs } = infoOf(graph));
  }
  get inputNames(): readonly string[] {
    return this.inputs.map((v) => v.name);
  }
  get outputNames(): readonly string[] {
    return this.outputs.map((v) => v.name);
  }
  get inputMetadata(): readonly OrtStyleMetadata[] {
    return this.inputs.map(ortStyle);
  }
  get outputMetadata(): readonly OrtStyleMetadata[] {
    return this.outputs.map(ortStyle);
  }
  fromGpuBuffer(_buffer: GPUBuffer, desc: { dtype: DType; shape: readonly number[]; name?: string }): DeviceTensor {
    throw new KilnError('unsupported', `fromGpuBuffer needs a webgpu session (this one is ${this.backend})`, {
      tensor: desc.name ?? 'gpu buffer',
    });
  }
  storageOf(dtype: DType): Storage {
    return storageOf(dtype, DEFAULT_CAPS);
  }
  transfers(): TransferStats {
    return { uploads: 0, uploadBytes: 0, readbacks: 0, readbackBytes: 0, flagReads: 0 };
  }
  /** Validated feeds as kiln tensors (see {@link Session.run}). */
  protected checkFeeds(
    feeds: Readonly<Record<string, TensorLike | DeviceTensor>>,
  ): Record<string, Tensor | DeviceTensor> {
    if (this.disposed) throw new KilnError('runtime', 'session was disposed');
    const known = new Set(this.inputNames);
    const out: Record<string, Tensor | DeviceTensor> = {};
    for (const [k, t] of Object.entries(feeds)) {
      if (!known.has(k)) {
        throw new KilnError('runtime', `unknown feed (inputs: ${[...known].join(', ') || 'none'})`, { tensor: k });
      }
      out[k] = isDeviceTensor(t) ? t : toTensor(t, k);
    }
    return out;
  }
  abstract run(feeds: Readonly<Record<string, TensorLike | DeviceTensor>>): Promise<Record<string, Tensor>>;
  abstract runKeep(
    feeds: Readonly<Record<string, TensorLike | DeviceTensor>>,
    keep: readonly string[],
    outputs?: readonly string[],
  ): Promise<Record<string, Tensor | DeviceTensor>>;
  abstract placement(): { host: number; device: number };
  abstract upload(t: TensorLike, name?: string): DeviceTensor;
  abstract dispose(): void;
  abstract kernels(): readonly KernelInfo[];
  abstract warmup(
    shapes?: Readonly<Record<string, readonly number[]>>,
    onProgress?: (done: number, total: number, kernel: string) => void,
  ): Promise<void>;

  /** Zero-valued feeds of the given shapes (static input shapes filled in). */
  protected warmupFeeds(shapes: Readonly<Record<string, readonly number[]>> = {}): Record<string, Tensor> {
    if (this.disposed) throw new KilnError('runtime', 'session was disposed');
    const known = new Set(this.inputNames);
    for (const k of Object.keys(shapes)) {
      if (!known.has(k)) throw new KilnError('runtime', 'warmup shape for an unknown input', { tensor: k });
    }
    const feeds: Record<string, Tensor> = {};
    for (const v of this.inputs) {
      const shape = shapes[v.name] ?? (v.shape.every((d) => typeof d === 'number') ? (v.shape as number[]) : undefined);
      if (!shape) {
        throw new KilnError('shape', `warmup needs a shape for input of shape [${v.shape.join(',')}]`, {
          tensor: v.name,
        });
      }
      feeds[v.name] = makeTensor(v.dtype, shape, undefined, { tensor: v.name });
    }
    return feeds;
  }
}

/** The reference backend's kept outputs: host tensors behind the DeviceTensor interface. */
class HostHeldTensor implements DeviceTensor {
  readonly onDevice = true as const;
  readonly dtype: Tensor['dtype'];
  readonly shape: readonly number[];
  private live = true;
  constructor(
    private readonly t: Tensor,
    readonly owner: Session,
  ) {
    this.dtype = t.dtype;
    this.shape = t.shape;
  }
  tensor(): Tensor {
    if (!this.live) throw new KilnError('runtime', 'device tensor was disposed');
    return this.t;
  }
  async read(): Promise<Tensor> {
    return cloneTensor(this.tensor());
  }
  dispose(): void {
    this.live = false;
  }
}

async function hostOf(t: DeviceTensor, session: Session, name: string): Promise<Tensor> {
  if (!(t instanceof HostHeldTensor) || t.owner !== session) {
    throw new KilnError('runtime', 'a device tensor can only be fed to the session that made it', { tensor: name });
  }
  return t.tensor();
}

class ReferenceSession extends BaseSession {
  readonly backend = 'reference' as const;
  async run(feeds: Readonly<Record<string, TensorLike | DeviceTensor>>): Promise<Record<string, Tensor>> {
    const checked = this.checkFeeds(feeds);
    const host: Record<string, Tensor> = {};
    for (const [k, t] of Object.entries(checked)) host[k] = isDeviceTensor(t) ? await hostOf(t, this, k) : t;
    const out = interpret(this.graph, host);
    // An output may be a constant, a feed or another output's array: the caller gets arrays of its own.
    for (const k of Object.keys(out)) out[k] = cloneTensor(out[k]!);
    return out;
  }
  async runKeep(
    feeds: Readonly<Record<string, TensorLike | DeviceTensor>>,
    keep: readonly string[],
    outputs?: readonly string[],
  ): Promise<Record<string, Tensor | DeviceTensor>> {
    const out: Record<string, Tensor | DeviceTensor> = await this.run(feeds);
    if (outputs) {
      const known = new Set(this.graph.outputs.map((o) => o.name));
      for (const k of outputs) {
        if (!known.has(k)) throw new KilnError('runtime', 'not an output of the graph', { tensor: k });
      }
      for (const k of Object.keys(out)) if (!outputs.includes(k)) delete out[k];
    }
    // the reference's "device" is the host: kept outputs are host tensors behind the same interface
    for (const k of keep) if (out[k]) out[k] = new HostHeldTensor(out[k] as Tensor, this);
    return out;
  }
  placement(): { host: number; device: number } {
    return { host: this.graph.nodes.length, device: 0 };
  }
  kernels(): readonly KernelInfo[] {
    return [];
  }
  upload(t: TensorLike, name = 'upload'): DeviceTensor {
    if (this.disposed) throw new KilnError('runtime', 'session was disposed');
    return new HostHeldTensor(cloneTensor(toTensor(t, name)), this);
  }
  async warmup(shapes?: Readonly<Record<string, readonly number[]>>): Promise<void> {
    this.warmupFeeds(shapes); // validates the names and shapes; nothing to compile
  }
  dispose(): void {
    this.disposed = true;
  }
}

/** A session over the device executor (WebGPU, cuda-emu, CUDA). */
class DeviceSession<B> extends BaseSession {
  constructor(
    readonly backend: BackendName,
    graph: Graph,
    readonly executor: Executor<B>,
  ) {
    super(graph);
  }
  async run(feeds: Readonly<Record<string, TensorLike | DeviceTensor>>): Promise<Record<string, Tensor>> {
    return this.executor.run(this.checkFeeds(feeds));
  }
  async runKeep(
    feeds: Readonly<Record<string, TensorLike | DeviceTensor>>,
    keep: readonly string[],
    outputs?: readonly string[],
  ): Promise<Record<string, Tensor | DeviceTensor>> {
    return this.executor.runKeep(this.checkFeeds(feeds), keep, outputs);
  }
  placement(): { host: number; device: number } {
    return this.executor.stats();
  }
  kernels(): readonly KernelInfo[] {
    return this.executor.kernels();
  }
  upload(t: TensorLike, name = 'upload'): DeviceTensor {
    if (this.disposed) throw new KilnError('runtime', 'session was disposed');
    return this.executor.upload(toTensor(t, name), name);
  }
  override storageOf(dtype: DType): Storage {
    return this.executor.storageFormat(dtype);
  }
  override transfers(): TransferStats {
    return this.executor.transfers();
  }
  override fromGpuBuffer(
    buffer: GPUBuffer,
    desc: { dtype: DType; shape: readonly number[]; name?: string },
  ): DeviceTensor {
    const name = desc.name ?? 'gpu buffer';
    if (this.backend !== 'webgpu') return super.fromGpuBuffer(buffer, desc);
    if (this.disposed) throw new KilnError('runtime', 'session was disposed');
    const space = (this.executor.backend as { space?: object }).space;
    if ((buffer as { device?: unknown }).device !== undefined && (buffer as { device?: unknown }).device !== space) {
      throw new KilnError('runtime', 'the buffer belongs to another GPUDevice than this session', { tensor: name });
    }
    if (!desc.shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new KilnError('shape', `shape [${desc.shape.join(',')}] is not a list of non-negative integers`, {
        tensor: name,
      });
    }
    const bytes = storageBytes(
      this.storageOf(desc.dtype),
      desc.shape.reduce((a, b) => a * b, 1),
    );
    if (buffer.size < bytes) {
      throw new KilnError('shape', `buffer of ${buffer.size} bytes holds less than the ${bytes} bytes of the data`, {
        tensor: name,
        limit: 'buffer size',
      });
    }
    if ((buffer.usage & STORAGE_USAGE) === 0) {
      throw new KilnError('runtime', 'the buffer lacks STORAGE usage (kernels bind feeds as storage buffers)', {
        tensor: name,
      });
    }
    return this.executor.wrap(buffer as unknown as B, desc.dtype, desc.shape);
  }
  async warmup(
    shapes?: Readonly<Record<string, readonly number[]>>,
    onProgress?: (done: number, total: number, kernel: string) => void,
  ): Promise<void> {
    await this.executor.warmup(this.warmupFeeds(shapes), onProgress);
  }
  dispose(): void {
    if (!this.disposed) this.executor.dispose();
    this.disposed = true;
  }
}

/** Node: the tuned-schedule file, if one exists (read once per process); browsers: none unless given. */
let fileStore: Promise<ScheduleStore | undefined> | undefined;
function nodeScheduleStore(): Promise<ScheduleStore | undefined> {
  fileStore ??= (async () => {
    if (typeof process === 'undefined' || !process.versions?.node || process.env['KILN_SCHEDULES'] === 'off') {
      return undefined;
    }
    const { existsSync } = await import('node:fs');
    const { FileScheduleStore, defaultScheduleFile } = await import('./tune.js');
    const file = defaultScheduleFile();
    return existsSync(file) ? new FileScheduleStore(file) : undefined;
  })();
  return fileStore;
}

/** The process's shared WebGPU device (the one sessions use). */
export function sharedGpuContext(disableF16 = false): Promise<GpuContext> {
  return import('./runtime/webgpu/device.js').then(({ acquireGpu }) => sharedGpu(acquireGpu, disableF16));
}

// One device per process and f16 setting: acquiring a WebGPU device is slow, and Dawn wants few of them alive.
const gpus = new Map<boolean, Promise<GpuContext>>();
function sharedGpu(
  acquire: (o: { disableF16?: boolean }) => Promise<GpuContext>,
  disableF16: boolean,
): Promise<GpuContext> {
  let p = gpus.get(disableF16);
  if (!p) {
    p = acquire({ disableF16 });
    gpus.set(disableF16, p);
    p.catch(() => gpus.delete(disableF16));
  }
  return p;
}

function checkOpt(opt: unknown): void {
  if (opt === undefined) return;
  if (!(OPT_LEVELS as readonly unknown[]).includes(opt)) {
    throw new KilnError('attribute', `unknown optimization level ${String(opt)} (expected ${OPT_LEVELS.join(', ')})`, {
      limit: 'opt',
    });
  }
}

/**
 * Compile a graph for a backend. The graph is verified first: a wrongly declared type fails here. The caller's graph
 * is not changed (the passes run on a copy). Defaults: backend `reference` (`webgpu` when `opts.device` is given),
 * `opt` 1; `auto` tries cuda, then webgpu, then the reference. With `opts.shapes`, every kernel is built before this
 * returns.
 *
 * @throws KilnError (code `unsupported`, limit `backend`) for an unknown backend or a GPUDevice with a backend other
 * than webgpu; (code `attribute`, limit `opt`) for an unknown optimization level; (code `unsupported` / `device`) when
 * the backend asked for is not available (no adapter, no CUDA library).
 * @throws VerifyError naming the node or tensor when the graph does not verify.
 */
export async function compile(graph: Graph, opts: CompileOptions = {}): Promise<Session> {
  const backend = backendOf(opts);
  checkOpt(opts.opt);
  verify(graph);
  // the passes work on a copy: the caller's graph is never changed. Imported here, not at the top, so code that only
  // runs already-optimized graphs (`createSession`, kiln/runtime) never loads them.
  const { optimize } = await import('../passes/manager.js');
  return sessionFor(backend, optimize(graph, { level: opts.opt ?? 1, disabled: opts.disabledPasses }), opts);
}

/** The backend asked for, checked (a GPUDevice implies webgpu). */
function backendOf(opts: CompileOptions): BackendChoice {
  const backend = opts.backend ?? (opts.device ? 'webgpu' : 'reference');
  if (opts.device && backend !== 'webgpu') {
    throw new KilnError('unsupported', `a GPUDevice runs only the webgpu backend, not '${backend}'`, {
      limit: 'backend',
    });
  }
  if (!(BACKEND_CHOICES as readonly string[]).includes(backend)) {
    throw new KilnError(
      'unsupported',
      `unknown backend '${String(backend)}' (expected ${BACKEND_CHOICES.join(', ')})`,
      {
        limit: 'backend',
      },
    );
  }
  return backend;
}

/**
 * A session for a graph as it is (no passes): what an ahead-of-time compiled module (kiln/runtime) uses, its graph
 * optimized when it was written. Options as for {@link compile} (`opt` and `disabledPasses` are ignored).
 *
 * @throws KilnError / VerifyError as {@link compile} (no optimization-level check).
 */
export async function createSession(graph: Graph, opts: CompileOptions = {}): Promise<Session> {
  const backend = backendOf(opts);
  verify(graph);
  return sessionFor(backend, graph, opts);
}

async function sessionFor(backend: BackendChoice, graph: Graph, opts: CompileOptions): Promise<Session> {
  const session = await compileBackend(backend, graph, opts);
  if (opts.shapes) {
    try {
      await session.warmup(opts.shapes, opts.onProgress);
    } catch (e) {
      session.dispose();
      throw e;
    }
  }
  return session;
}

/** GPUBufferUsage.STORAGE (a spec constant; no WebGPU globals needed). */
const STORAGE_USAGE = 0x80;

async function compileBackend(backend: BackendChoice, graph: Graph, opts: CompileOptions): Promise<Session> {
  if (backend === 'auto') {
    for (const b of ['cuda', 'webgpu'] as const) {
      try {
        return await compileFor(b, graph, opts);
      } catch (e) {
        // Only "this device is not here" (no library, no adapter) falls through; anything else is the caller's.
        if (!(e instanceof KilnError && (e.code === 'unsupported' || e.code === 'device'))) throw e;
      }
    }
    return compileFor('reference', graph, opts);
  }
  return compileFor(backend, graph, opts);
}

/** cuda-emu reads a schedule store only when given one (its timings say nothing about a GPU). */
function emuStore(opts: CompileOptions): { schedules?: { device: string; store: ScheduleStore } } {
  return opts.schedules ? { schedules: { device: 'cuda-emu', store: opts.schedules } } : {};
}

/** The caps entry for a requested attention schedule (none: the backend's default). */
function schedule(opts: CompileOptions): { attentionSchedule?: 'auto' | 'one-kernel' | 'decomposed' | 'tiled' } {
  return opts.attentionSchedule ? { attentionSchedule: opts.attentionSchedule } : {};
}

async function compileFor(backend: BackendName, graph: Graph, opts: CompileOptions): Promise<Session> {
  switch (backend) {
    case 'reference':
      return new ReferenceSession(graph);
    case 'webgpu': {
      const { acquireGpu } = await import('./runtime/webgpu/device.js');
      const { WebGpuBackend, deviceCapsOf } = await import('./runtime/webgpu/backend.js');
      const ctx = opts.device
        ? (await import('./runtime/webgpu/device.js')).gpuContextOf(opts.device)
        : await sharedGpu(acquireGpu, opts.disableF16 === true);
      const store = opts.schedules === false ? undefined : (opts.schedules ?? (await nodeScheduleStore()));
      const caps = {
        ...deviceCapsOf(ctx),
        ...schedule(opts),
        ...(store ? { schedules: { device: ctx.caps.adapterDescription, store } } : {}),
      };
      return new DeviceSession(
        'webgpu',
        graph,
        new Executor(graph, new WebGpuBackend(ctx, caps), { poison: opts.poison }),
      );
    }
    case 'cuda-emu': {
      const { CudaEmuBackend, requireEmulator } = await import('./runtime/cuda-emu/backend.js');
      await requireEmulator(); // UnsupportedError without g++ / x86-64 Linux
      return new DeviceSession(
        'cuda-emu',
        graph,
        new Executor(
          graph,
          new CudaEmuBackend({ caps: { f16: opts.disableF16 !== true, ...schedule(opts), ...emuStore(opts) } }),
          {
            poison: opts.poison,
          },
        ),
      );
    }
    case 'cuda': {
      const { CudaBackend } = await import('./runtime/cuda/backend.js');
      const be = await CudaBackend.create(); // typed 'unsupported' error without libcuda / libnvrtc / a GPU
      return new DeviceSession('cuda', graph, new Executor(graph, be, { poison: opts.poison }));
    }
  }
}
