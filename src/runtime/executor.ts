/**
 * The device executor shared by GPU-style backends (WebGPU, cuda-emu, CUDA). Per run: concrete shapes flow through
 * the graph (inference with the real input shapes); shape computations and constant subgraphs run on the host with
 * the reference semantics; every other node is lowered to kernel steps (cached by node and shapes — shapes travel as
 * uniforms, so kernels themselves are shared) and all steps go to the device in one submission.
 */
import { f16BitsToNumber, numberToF16Bits, type DType } from '../../ir/dtype.js';
import { KilnError, UnsupportedError } from '../../ir/errors.js';
import type { Graph, Node, Value } from '../../ir/graph.js';
import { inferOp } from '../../ir/infer.js';
import { getOp, resolveAttrs } from '../../ir/registry.js';
import { bindShape, isStatic, numel, shapeToString } from '../../ir/shape.js';
import { cloneTensor, fromValues, MAX_REFERENCE_ELEMENTS, type Tensor } from '../../ir/tensor.js';
import { tensorType } from '../../ir/types.js';
import { PACK, type Kernel, type Storage } from '../../codegen/kir.js';
import {
  DEVICE_ERRORS,
  type DeviceErrorCode,
  type LoweredStep,
  type TensorInfo,
} from '../../codegen/lower/kernel-builder.js';
import { hasLowering, lowerNode } from '../../codegen/lower/index.js';
import { storageOf, type DeviceCaps } from '../../codegen/lower/storage.js';
import { applyInputLayouts, lowerCopy } from '../../codegen/lower/view.js';
import { contiguousLayout, isContiguous, layoutKey, type StridedLayout } from '../../ir/layout.js';
import type { DeviceTensor } from './device-tensor.js';

/** What a backend provides to the executor. `B` is its buffer handle. */
export interface DeviceBackend<B> {
  readonly name: string;
  readonly caps: DeviceCaps;
  /** A buffer of at least `bytes` bytes (contents undefined). */
  alloc(bytes: number, label: string): B;
  write(buf: B, bytes: Uint8Array): void;
  release(buf: B): void;
  /** Compile (or fetch from cache) every kernel before a run; `onCompiled` hears of each one when it is ready. */
  prepare(kernels: readonly Kernel[], onCompiled?: (kernel: string) => void): Promise<void>;
  /** Run the steps in order as one submission. */
  run(steps: readonly LaunchStep<B>[]): Promise<void>;
  read(buf: B, bytes: number): Promise<Uint8Array>;
  /** Poison a buffer (NaN bit pattern) so unwritten elements show. */
  poison?(buf: B, bytes: number): void;
  /** Free what the backend holds for its session (pooled memory, caches); called once, when no run is in flight. */
  dispose?(): void;
  /** Hears of each movement node bound as a view / alias of its input's buffer, so no kernel ran (`kiln inspect`). */
  viewBound?(node: string, op: string): void;
  /**
   * The memory space buffers live in (WebGPU: the GPUDevice). Sessions whose backends share a space take each other's
   * device tensors as feeds; without one, a device tensor feeds only the session that made it.
   */
  readonly space?: object;
}

/** Host ↔ device traffic of a session since it was made (uploads of feeds and constants, readbacks of any kind). */
export interface TransferStats {
  uploads: number;
  uploadBytes: number;
  /** Reads of tensor data (outputs, `DeviceTensor.read`). */
  readbacks: number;
  readbackBytes: number;
  /** Reads of the 4-byte input-check flag word (a run with a checked kernel and a host output; deferred otherwise). */
  flagReads: number;
}

/** One kernel launch of a run. */
export interface LaunchStep<B> {
  kernel: Kernel;
  buffers: B[];
  uniforms: ArrayBuffer;
  grid: [number, number, number];
  // For inspection (RecordingBackend, `kiln inspect`); devices ignore them.
  /** The graph node served; op `copy` for a view copied out before an update in place. */
  node?: string;
  op?: string;
  /** Per buffer: the bytes a view / alias binding covers (its own elements, not its root buffer's); else undefined. */
  viewBytes?: (number | undefined)[];
}

export interface ExecutorOptions {
  /** Fill every node output buffer with NaN bits before the run (tests). */
  poison?: boolean;
  /** Lowerings kept per session (least recently used dropped first); default 4096. */
  maxCachedLowerings?: number;
}

/** Bytes a tensor of `n` elements takes in `storage` (at least 4: devices reject empty buffers). */
export function storageBytes(storage: Storage, n: number): number {
  const perWord = PACK[storage];
  const bytes = storage === 'f16' ? n * 2 : Math.ceil(n / perWord) * 4;
  return Math.max(4, Math.ceil(bytes / 4) * 4);
}

/** Encode a tensor's values in a storage format (range-checked where the storage is narrower than the dtype). */
export function encodeTensor(t: Tensor, storage: Storage, name: string): Uint8Array {
  const n = t.data.length;
  const out = new Uint8Array(storageBytes(storage, n));
  const dv = new DataView(out.buffer);
  const check = (x: number, lo: number, hi: number) => {
    if (!(x >= lo && x <= hi)) {
      throw new KilnError('limit', `value ${x} of ${t.dtype} tensor does not fit the device's 32-bit storage`, {
        tensor: name,
        limit: `${storage} range`,
      });
    }
  };
  switch (storage) {
    case 'f32':
      new Float32Array(out.buffer, 0, n).set(t.data); // rounds to nearest f32, like the device would (little-endian)
      break;
    case 'f16':
      for (let i = 0; i < n; i++) dv.setUint16(i * 2, numberToF16Bits(t.data[i]!), true);
      break;
    case 'i32':
      for (let i = 0; i < n; i++) {
        check(t.data[i]!, -(2 ** 31), 2 ** 31 - 1);
        dv.setInt32(i * 4, t.data[i]!, true);
      }
      break;
    case 'u32':
      for (let i = 0; i < n; i++) {
        check(t.data[i]!, 0, 2 ** 32 - 1);
        dv.setUint32(i * 4, t.data[i]!, true);
      }
      break;
    default: {
      const per = PACK[storage];
      const bits = 32 / per;
      const mask = 2 ** bits - 1;
      for (let i = 0; i < n; i++) {
        const w = Math.floor(i / per);
        const field = (t.data[i]! & mask) >>> 0;
        dv.setUint32(w * 4, (dv.getUint32(w * 4, true) | (field << ((i % per) * bits))) >>> 0, true);
      }
    }
  }
  return out;
}

/** Decode device bytes to a tensor of `dtype` (a fresh array the caller owns). */
export function decodeTensor(bytes: Uint8Array, storage: Storage, dtype: DType, shape: readonly number[]): Tensor {
  const n = numel(shape);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const aligned = bytes.byteOffset % 4 === 0;
  let vals: ArrayLike<number>;
  switch (storage) {
    case 'f32':
      vals = aligned
        ? new Float32Array(bytes.buffer, bytes.byteOffset, n).slice()
        : Float32Array.from({ length: n }, (_, i) => dv.getFloat32(i * 4, true));
      break;
    case 'i32':
      vals = aligned
        ? new Int32Array(bytes.buffer, bytes.byteOffset, n).slice()
        : Int32Array.from({ length: n }, (_, i) => dv.getInt32(i * 4, true));
      break;
    case 'u32':
      vals = aligned
        ? new Uint32Array(bytes.buffer, bytes.byteOffset, n).slice()
        : Uint32Array.from({ length: n }, (_, i) => dv.getUint32(i * 4, true));
      break;
    case 'f16': {
      const v = new Float32Array(n);
      for (let i = 0; i < n; i++) v[i] = f16BitsToNumber(dv.getUint16(i * 2, true));
      vals = v;
      break;
    }
    default: {
      const per = PACK[storage];
      const bits = 32 / per;
      const signed = storage.startsWith('i');
      const v = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const w = dv.getUint32(Math.floor(i / per) * 4, true);
        let x = (w >>> ((i % per) * bits)) & (2 ** bits - 1);
        if (signed && x >= 2 ** (bits - 1)) x -= 2 ** bits;
        v[i] = x;
      }
      vals = v;
    }
  }
  // The device computed in its storage type; storing with the dtype's rounding makes e.g. bool / bf16 exact.
  return fromValues(dtype, shape, vals);
}

/** Nodes whose results the host computes: shape queries and anything fed only by host-known values. */
export function hostNodes(graph: Graph): Set<Node> {
  const host = new Set<Value>(graph.constants);
  const nodes = new Set<Node>();
  for (const n of graph.nodes) {
    const onHost = n.op === 'shape' || n.op === 'size' || n.inputs.every((x) => x === null || host.has(x));
    if (onHost) {
      nodes.add(n);
      for (const o of n.outputs) host.add(o);
    }
  }
  return nodes;
}

/**
 * A DeviceTensor of this executor: its buffer, who made it and in which memory space (a feed must come from this
 * session or one sharing its space and storage formats).
 */
interface OwnedDeviceTensor<B> extends DeviceTensor {
  readonly owner: unknown;
  readonly space: object | undefined;
  readonly storage: Storage;
  buffer(): B;
}

/** A deferred input check: the flag word of runs whose outputs all stayed on the device, read at the next readback. */
interface PendingCheck {
  readonly epochs: Map<number, readonly Node[]>;
  readonly check: () => Promise<void>;
}

/** Deferred checks by memory space: any readback in the space settles them all first (no wrong result escapes). */
const pendingBySpace = new WeakMap<object, Set<PendingCheck>>();

/** Compile progress: `done` of `total` new kernels are ready, the last one `kernel`. */
export type ProgressFn = (done: number, total: number, kernel: string) => void;

/** A compiled kernel and the graph node it serves. */
export interface CompiledKernel {
  readonly name: string;
  readonly node: string;
  readonly op: string;
}

/** Run-time host values up to this many elements are offered to lowerings (and key their cache entries). */
const MAX_HOST_PARAM = 64;

/**
 * The lowering cache key of a node: its name, its input shapes, and the values of every non-constant input a lowering
 * may read on the host — a kernel specialized on one run's slice bounds must not serve the next run's.
 */
function loweringKey(n: Node, inputs: readonly ((TensorInfo & { isConst?: boolean }) | undefined)[]): string {
  return `${n.name}|${inputs
    .map((t) => (t ? `${t.shape}${t.data && !t.isConst ? `=${Array.from(t.data.data).join(',')}` : ''}` : '_'))
    .join(';')}`;
}

interface CachedLowering {
  steps: LoweredStep[];
}

export class Executor<B> {
  private readonly host: Set<Node>;
  private readonly constBuffers = new Map<Value, B>();
  private readonly lowerings = new Map<string, CachedLowering>();
  private readonly maxLowerings: number;
  private readonly graphOutputs: Set<Value>;
  /** Runs in flight: dispose waits for them before freeing what they use. */
  private inFlight = 0;
  private disposeWhenIdle = false;
  private disposed = false;
  /** The session's error-flag word (see the run's epoch) and the epoch of the last run. */
  private errWord: B | undefined;
  private epoch = 0;
  private readonly compiled = new Map<string, CompiledKernel>();
  /** Host nodes whose results depend only on input shapes (not on input data). */
  private readonly shapeOnly = new Set<Node>();
  private readonly shapeResults = new Map<string, Map<Node, Tensor[]>>();
  /** Per set of requested outputs (`runKeep`'s `outputs`), the nodes they depend on. */
  private readonly neededBy = new Map<string, Set<Node>>();
  /**
   * Device nodes whose results only `shape` / `size` read (directly or through other such nodes) and that are no
   * graph output: their shapes are inferred, nothing runs (exporters keep e.g. the attention scores alive for their
   * shape after the attention became one op).
   */
  private readonly shapeFed = new Set<Node>();
  private readonly traffic: TransferStats = {
    uploads: 0,
    uploadBytes: 0,
    readbacks: 0,
    readbackBytes: 0,
    flagReads: 0,
  };
  /** This session's deferred input checks (the epochs whose flags are unread), when it has any. */
  private pending: PendingCheck | undefined;
  constructor(
    readonly graph: Graph,
    readonly backend: DeviceBackend<B>,
    readonly opts: ExecutorOptions = {},
  ) {
    this.maxLowerings = opts.maxCachedLowerings ?? 4096;
    this.graphOutputs = new Set(graph.outputs);
    this.host = hostNodes(graph);
    const shapeValues = new Set<Value>(graph.constants);
    for (const n of graph.nodes) {
      if (!this.host.has(n)) continue;
      if (n.op === 'shape' || n.op === 'size' || n.inputs.every((x) => x === null || shapeValues.has(x))) {
        this.shapeOnly.add(n);
        for (const o of n.outputs) shapeValues.add(o);
      }
    }
    for (let i = graph.nodes.length - 1; i >= 0; i--) {
      const n = graph.nodes[i]!;
      if (this.host.has(n) || n.outputs.some((o) => this.graphOutputs.has(o))) continue;
      const readers = n.outputs.flatMap((o) => graph.users(o));
      const onlyShape = (u: Node) => u.op === 'shape' || u.op === 'size' || this.shapeFed.has(u);
      if (readers.length && readers.every(onlyShape)) this.shapeFed.add(n);
    }
    // Fail at compile time, not mid-run, when a device node has no kernel lowering.
    for (const n of graph.nodes) {
      if (!this.host.has(n) && !hasLowering(n.op)) {
        throw new UnsupportedError(`no kernel lowering for op ${n.op} on ${backend.name}`, { node: n.name, op: n.op });
      }
    }
  }

  /** Entries in the per-session caches (bounded: lowerings by `maxCachedLowerings`, shape results by 16). */
  cacheStats(): { lowerings: number; shapeResults: number } {
    return { lowerings: this.lowerings.size, shapeResults: this.shapeResults.size };
  }

  /** Host ↔ device traffic since the session was made. */
  transfers(): TransferStats {
    return { ...this.traffic };
  }

  private send(buf: B, bytes: Uint8Array): void {
    this.traffic.uploads++;
    this.traffic.uploadBytes += bytes.byteLength;
    this.backend.write(buf, bytes);
  }

  /** Reads tensor data after settling every deferred input check in this memory space. */
  private async readData(buf: B, bytes: number): Promise<Uint8Array> {
    await this.settleChecks();
    this.traffic.readbacks++;
    this.traffic.readbackBytes += bytes;
    return this.backend.read(buf, bytes);
  }

  /** Reads the flags of deferred checks (this session's, and every other session's in the same space). */
  private async settleChecks(): Promise<void> {
    const all = this.backend.space ? pendingBySpace.get(this.backend.space) : undefined;
    const checks = all ? [...all] : this.pending ? [this.pending] : [];
    for (const c of checks) await c.check();
  }

  /** Node count by where it runs (for reports). */
  stats(): { host: number; device: number } {
    return { host: this.host.size, device: this.graph.nodes.length - this.host.size };
  }

  /**
   * Bind a movement node's outputs as views of its input's buffer when its op gives a strided layout for them (all
   * outputs, non-empty, in unpacked storage). A row-major layout at offset 0 is an alias of the buffer; any other is a
   * view (not for graph outputs, which must be buffers of their own: those run the op's kernel). Returns whether the
   * node needs no kernel.
   */
  private bindViews(
    n: Node,
    outShapes: readonly (readonly number[])[],
    hostData: ReadonlyMap<Value, Tensor>,
    shapes: ReadonlyMap<Value, readonly number[]>,
    views: Map<Value, { root: Value; layout: StridedLayout }>,
    shared: Set<Value>,
    dev: Map<Value, B>,
    deviceBuffer: (v: Value) => B,
  ): boolean {
    const def = getOp(n.op);
    const x = n.inputs[0];
    if (!def.layout || !x || n.outputs.some((o) => o.type.dtype !== x.type.dtype)) return false;
    // packed storage (sub-32-bit elements) is only ever aliased whole, never viewed
    const packed = PACK[this.storage(x.type.dtype)] !== 1;
    const from = views.get(x);
    const hostInputs = def.inputs.map((_, i) => {
      const v = n.inputs[i];
      return i === 0 ? undefined : v ? hostData.get(v) : null; // null: an optional input left out
    });
    const outs = def.layout(from?.layout ?? contiguousLayout(shapes.get(x)!), {
      attrs: resolveAttrs(def, n.attrs, n.name),
      hostInputs,
      outShapes,
    });
    if (!outs || outs.length !== n.outputs.length) return false;
    const plain = outs.map((l) => l !== undefined && l.offset === 0 && isContiguous(l));
    const ok = outs.every(
      (l, i) => l && (plain[i] || (!packed && !this.graphOutputs.has(n.outputs[i]!) && l.shape.every((d) => d > 0))),
    );
    if (!ok) return false;
    const root = from?.root ?? x;
    n.outputs.forEach((o, i) => {
      shared.add(o);
      if (plain[i]) dev.set(o, deviceBuffer(root));
      else views.set(o, { root, layout: outs[i]! });
    });
    return true;
  }

  private storage(dt: DType): Storage {
    return storageOf(dt, this.backend.caps);
  }

  async run(feeds: Readonly<Record<string, Tensor | DeviceTensor>>): Promise<Record<string, Tensor>> {
    return (await this.guarded(() => this.runOnce(feeds, false))) as Record<string, Tensor>;
  }

  /**
   * Run, keeping the outputs named in `keep` on the device (returned as {@link DeviceTensor}s, fed back without a
   * host round trip); other outputs come back to the host as usual.
   */
  async runKeep(
    feeds: Readonly<Record<string, Tensor | DeviceTensor>>,
    keep: readonly string[],
    outputs?: readonly string[],
  ): Promise<Record<string, Tensor | DeviceTensor>> {
    const needed = outputs && this.needed(outputs);
    return this.guarded(() => this.runOnce(feeds, false, undefined, new Set(keep), needed));
  }

  /**
   * The nodes the named outputs depend on (cached per set): a run for a subset of the outputs launches only these —
   * e.g. a token-tree model's plain decode step skips the tree's argmax and acceptance kernels.
   */
  private needed(outputs: readonly string[]): Set<Node> {
    const key = [...new Set(outputs)].sort().join('\u0000');
    let set = this.neededBy.get(key);
    if (set) return set;
    const roots = outputs.map((name) => {
      const o = this.graph.outputs.find((v) => v.name === name);
      if (!o) throw new KilnError('runtime', 'not an output of the graph', { tensor: name });
      return o;
    });
    set = this.graph.live(roots).nodes;
    if (this.neededBy.size >= 16) this.neededBy.clear();
    this.neededBy.set(key, set);
    return set;
  }

  /** A host tensor copied to the device once, to be fed to later runs without another upload. */
  upload(t: Tensor, label = 'upload'): DeviceTensor {
    if (this.disposed || this.disposeWhenIdle) throw new KilnError('runtime', 'session was disposed');
    const st = this.storage(t.dtype);
    const buf = this.backend.alloc(storageBytes(st, t.data.length), label);
    this.send(buf, encodeTensor(t, st, label));
    return this.hold(buf, t.dtype, t.shape);
  }

  /**
   * A buffer the caller owns, as a device tensor of this session (kiln never frees it): the data must be in kiln's
   * storage format for the dtype ({@link storageOf}) and the buffer at least that large — checked by the session.
   */
  wrap(buf: B, dtype: DType, shape: readonly number[]): DeviceTensor {
    if (this.disposed || this.disposeWhenIdle) throw new KilnError('runtime', 'session was disposed');
    return this.tensorOf(buf, dtype, shape, false);
  }

  /** The storage format a dtype has in this session's buffers. */
  storageFormat(dt: DType): Storage {
    return this.storage(dt);
  }

  /** Device buffers held by DeviceTensors of this executor, with how many tensors share each. */
  private readonly held = new Map<B, number>();

  private hold(buf: B, dtype: DType, shape: readonly number[]): DeviceTensor {
    this.held.set(buf, (this.held.get(buf) ?? 0) + 1);
    return this.tensorOf(buf, dtype, shape, true);
  }

  private tensorOf(buf: B, dtype: DType, shape: readonly number[], owned: boolean): DeviceTensor {
    let live = true;
    const buffer = (): B => {
      if (!live || this.disposed) throw new KilnError('runtime', 'device tensor was disposed');
      return buf;
    };
    const st = this.storage(dtype);
    const webgpu = this.backend.name === 'webgpu';
    const t: OwnedDeviceTensor<B> = {
      get gpuBuffer() {
        return webgpu ? (buffer() as unknown as GPUBuffer) : undefined;
      },
      dtype,
      shape: [...shape],
      onDevice: true,
      owner: this,
      space: this.backend.space,
      storage: st,
      buffer,
      read: async () => decodeTensor(await this.readData(buffer(), storageBytes(st, numel(shape))), st, dtype, shape),
      dispose: () => {
        if (!live) return;
        live = false;
        if (this.disposed || !owned) return;
        const n = (this.held.get(buf) ?? 1) - 1;
        if (n > 0) this.held.set(buf, n);
        else {
          this.held.delete(buf);
          this.backend.release(buf);
        }
      },
    };
    return t;
  }

  /**
   * Lower and compile every kernel these feeds need, without running them (constants are uploaded too).
   * `onProgress(done, total, kernel)` is called as kernels finish compiling.
   */
  async warmup(feeds: Readonly<Record<string, Tensor>>, onProgress?: ProgressFn): Promise<void> {
    await this.guarded(() => this.runOnce(feeds, true, onProgress));
  }

  /** Every kernel this session has compiled, with the node it serves. */
  kernels(): readonly CompiledKernel[] {
    return [...this.compiled.values()];
  }

  private async guarded<T>(fn: () => Promise<T>): Promise<T> {
    if (this.disposed || this.disposeWhenIdle) throw new KilnError('runtime', 'session was disposed');
    this.inFlight++;
    try {
      return await fn();
    } finally {
      if (--this.inFlight === 0 && this.disposeWhenIdle) this.free();
    }
  }

  private async runOnce(
    feeds: Readonly<Record<string, Tensor | DeviceTensor>>,
    dryRun: boolean,
    onProgress?: ProgressFn,
    keep: ReadonlySet<string> = new Set(),
    needed?: ReadonlySet<Node>,
  ): Promise<Record<string, Tensor | DeviceTensor>> {
    const g = this.graph;
    // outputs not requested (when a subset is): neither computed nor returned
    const wanted = (o: Value) => !needed || !o.producer || needed.has(o.producer);
    const dims = new Map<string, number>();
    const shapes = new Map<Value, readonly number[]>();
    const hostData = new Map<Value, Tensor>();
    const dev = new Map<Value, B>();
    // Movement-op results bound as strided views of another value's buffer (see OpDef.layout): no kernel, no buffer.
    const views = new Map<Value, { root: Value; layout: StridedLayout }>();
    // Values sharing another value's buffer (aliases and views): never updated in place.
    const shared = new Set<Value>();
    const temps: B[] = [];
    const steps: LaunchStep<B>[] = [];
    const poisoned: [B, number][] = [];
    try {
      for (const v of g.inputs) {
        const t = feeds[v.name];
        if (!t) throw new KilnError('runtime', 'missing feed for graph input', { tensor: v.name });
        if (t.dtype !== v.type.dtype) {
          throw new KilnError('dtype', `feed has dtype ${t.dtype}, input wants ${v.type.dtype}`, { tensor: v.name });
        }
        if (!bindShape(v.type.shape, t.shape, dims)) {
          throw new KilnError('shape', `feed shape [${t.shape}] does not match ${shapeToString(v.type.shape)}`, {
            tensor: v.name,
          });
        }
        shapes.set(v, t.shape);
        if ('onDevice' in t) {
          const owned = t as OwnedDeviceTensor<B>;
          if (owned.owner !== this) {
            const space = this.backend.space;
            if (space === undefined || owned.space !== space) {
              throw new KilnError(
                'runtime',
                'a device tensor can only be fed to the session that made it or one on the same device',
                { tensor: v.name },
              );
            }
            if (owned.storage !== this.storage(t.dtype)) {
              throw new KilnError(
                'dtype',
                `device tensor is stored as ${owned.storage}, this session stores ${t.dtype} as ${this.storage(t.dtype)}`,
                { tensor: v.name },
              );
            }
          }
          dev.set(v, owned.buffer()); // bound as is: no upload, and not released after this run
        } else hostData.set(v, t); // available to host nodes that read inputs (e.g. a mask built from input_ids)
      }
      for (const c of g.constants) {
        shapes.set(c, c.data!.shape);
        hostData.set(c, c.data!);
      }
      // Shape computations depend only on the input shapes: reuse their results for the same shapes.
      const signature = g.inputs.map((v) => shapes.get(v)!.join(',')).join('|');
      let shapeCache = this.shapeResults.get(signature);
      if (!shapeCache) {
        if (this.shapeResults.size >= 16) this.shapeResults.clear();
        shapeCache = new Map();
        this.shapeResults.set(signature, shapeCache);
      }
      const kernelOwner = new Map<string, { node: string; op: string }>();
      // One error-flag word per node whose kernels check their inputs (gather indices, cache positions, i64 range).
      const errNodes: Node[] = [];
      let errBuf: B | undefined;
      // The flag word carries this run's epoch, so the session's own word needs no clearing before a run (nothing is
      // uploaded for it); a run overlapping another uses a word of its own, cleared.
      const epoch = (this.epoch = (this.epoch % 0xffff) + 1);
      const errBuffer = (): B => {
        if (errBuf === undefined) {
          if (this.inFlight === 1) {
            if (this.errWord === undefined) {
              this.errWord = this.backend.alloc(4, 'error flags');
              this.backend.write(this.errWord, new Uint8Array(4));
            }
            errBuf = this.errWord;
          } else {
            errBuf = this.backend.alloc(4, 'error flags');
            temps.push(errBuf);
            this.backend.write(errBuf, new Uint8Array(4));
          }
        }
        if (errNodes.length > ERR_WORDS) {
          throw new KilnError('limit', `more than ${ERR_WORDS} nodes check their inputs on the device`, {
            limit: 'ERR_WORDS',
          });
        }
        return errBuf;
      };
      const deviceBuffer = (v: Value): B => {
        v = views.get(v)?.root ?? v;
        let b = dev.get(v) ?? this.constBuffers.get(v);
        if (b !== undefined) return b;
        const t = hostData.get(v);
        if (!t) throw new KilnError('runtime', 'value has neither device nor host data', { tensor: v.name });
        const st = this.storage(t.dtype);
        b = this.backend.alloc(storageBytes(st, t.data.length), v.name);
        this.send(b, encodeTensor(t, st, v.name));
        if (v.isConst) this.constBuffers.set(v, b);
        else {
          dev.set(v, b);
          temps.push(b);
        }
        return b;
      };

      for (const n of g.nodes) {
        if (needed && !needed.has(n)) continue;
        const loc = { node: n.name, op: n.op };
        if (this.host.has(n)) {
          const cached = this.shapeOnly.has(n) ? shapeCache.get(n) : undefined;
          if (cached) {
            n.outputs.forEach((o, i) => {
              hostData.set(o, cached[i]!);
              shapes.set(o, cached[i]!.shape);
            });
            continue;
          }
          const ins = n.inputs.map((x) => {
            if (!x) return undefined;
            const t = hostData.get(x);
            if (t) return t;
            // shape/size only look at the shape
            return { dtype: x.type.dtype, shape: shapes.get(x)!, data: new Float64Array(0) } as Tensor;
          });
          const def = getOp(n.op);
          const outs = def.reference(ins, resolveAttrs(def, n.attrs, n.name), {
            node: n.name,
            op: n.op,
            numOutputs: n.outputs.length,
            outputDtypes: n.outputs.map((o) => o.type.dtype),
            fail: (m: string): never => {
              throw new KilnError('runtime', m, loc);
            },
          });
          const results = n.outputs.map((o, i) => fromValues(o.type.dtype, outs[i]!.shape, outs[i]!.data));
          n.outputs.forEach((o, i) => {
            hostData.set(o, results[i]!);
            shapes.set(o, results[i]!.shape);
          });
          if (this.shapeOnly.has(n)) shapeCache.set(n, results);
          continue;
        }
        const inTypes = n.inputs.map((x) => (x ? tensorType(x.type.dtype, shapes.get(x)!) : undefined));
        const { types, attrs } = inferOp(n.op, n.name, inTypes, n.attrs, n.outputs.length, (i) => {
          const x = n.inputs[i];
          return x ? hostData.get(x) : undefined;
        });
        const outShapes = types.map((t) => {
          if (!isStatic(t.shape)) {
            throw new KilnError('shape', `output shape ${shapeToString(t.shape)} depends on device data`, loc);
          }
          return t.shape;
        });
        n.outputs.forEach((o, i) => {
          shapes.set(o, outShapes[i]!);
          // Checked before anything runs: an output the host cannot hold must not cost a whole run first.
          if (this.graphOutputs.has(o) && numel(outShapes[i]!) > MAX_REFERENCE_ELEMENTS) {
            throw new KilnError(
              'limit',
              `output of shape [${outShapes[i]}] exceeds ${MAX_REFERENCE_ELEMENTS} elements`,
              { ...loc, tensor: o.name, limit: 'MAX_REFERENCE_ELEMENTS' },
            );
          }
        });
        if (this.shapeFed.has(n)) continue; // only its shape is read: known now
        // Host data a lowering may specialize on: constants (fixed for the session) and small run-time values
        // (slice bounds, pad amounts, scalars, shape computations), which then become part of the cache key.
        const inputs: (TensorInfo | undefined)[] = n.inputs.map((x) => {
          if (!x) return undefined;
          const h = hostData.get(x);
          const data = h && (x.isConst || h.data.length <= MAX_HOST_PARAM) ? h : undefined;
          return { dtype: x.type.dtype, shape: shapes.get(x)!, data, isConst: x.isConst };
        });
        const outputs: TensorInfo[] = n.outputs.map((o, i) => ({ dtype: o.type.dtype, shape: outShapes[i]! }));
        // Movement ops: outputs that are strided layouts of the input's elements become views of its buffer (a
        // row-major one at offset 0 is the buffer itself); consumers' loads follow the layout, no kernel runs.
        if (this.bindViews(n, outShapes, hostData, shapes, views, shared, dev, deviceBuffer)) {
          this.backend.viewBound?.(n.name, n.op);
          continue;
        }
        // Consumers index inputs row-major; a view input's loads are rewritten to follow its layout.
        const layouts = n.inputs.map((x) => (x ? views.get(x)?.layout : undefined));
        // In place: output 0 reuses the updated input's buffer when nothing else reads that input — a device
        // tensor the caller fed (a KV cache, updated where it lives) or a temporary of this run.
        const ip = getOp(n.op).inplace;
        const target = ip === undefined ? undefined : n.inputs[ip];
        if (target && !target.isConst) deviceBuffer(target); // a host feed is uploaded now, into a buffer of this run
        const fedOnDevice = (v: Value) => g.inputs.includes(v) && dev.has(v) && this.held.has(dev.get(v)!);
        if (target && views.has(target) && !this.graphOutputs.has(target) && g.users(target).length === 1) {
          // an update in place needs the tensor in a buffer of its own: copy the view out first
          const { root, layout } = views.get(target)!;
          const dt = target.type.dtype;
          const shape = shapes.get(target)!;
          const key = `copy|${dt}|${layoutKey(layout)}`;
          let copy = this.lowerings.get(key);
          if (!copy) {
            const info = { dtype: dt, shape };
            const ctx = {
              caps: this.backend.caps,
              node: n.name,
              op: 'copy',
              attrs: {},
              inputs: [info],
              outputs: [info],
            };
            copy = { steps: [lowerCopy(ctx, layout)] };
            this.lowerings.set(key, copy);
          }
          const st = this.storage(dt);
          const b = this.backend.alloc(storageBytes(st, numel(shape)), target.name);
          temps.push(b);
          const step = copy.steps[0]!;
          steps.push({
            kernel: step.kernel,
            buffers: [deviceBuffer(root), b],
            uniforms: encodeUniforms(step, -1, epoch),
            grid: step.grid,
            node: n.name,
            op: 'copy',
            viewBytes: [storageBytes(st, numel(shape)), undefined],
          });
          kernelOwner.set(step.kernel.name, { node: n.name, op: 'copy' });
          views.delete(target);
          dev.set(target, b);
          layouts[n.inputs.indexOf(target)] = undefined;
        }
        const inplace =
          target !== undefined &&
          target !== null &&
          !shared.has(target) &&
          !this.graphOutputs.has(target) &&
          g.users(target).length === 1 &&
          n.outputs[0]!.type.dtype === target.type.dtype &&
          (fedOnDevice(target) || (dev.has(target) && temps.includes(dev.get(target)!)));
        const viewKey = layouts.map((l, i) => (l ? `|L${i}=${layoutKey(l)}` : '')).join('');
        const key = `${loweringKey(n, inputs)}${inplace ? '|inplace' : ''}${viewKey}`;
        let lowered = this.lowerings.get(key);
        if (lowered) {
          // least recently used first: re-insert on a hit
          this.lowerings.delete(key);
          this.lowerings.set(key, lowered);
        } else {
          const ins = viewKey ? inputs.map((t, i) => (t && layouts[i] ? { ...t, layout: layouts[i] } : t)) : inputs;
          const plain = lowerNode({
            caps: this.backend.caps,
            node: n.name,
            op: n.op,
            attrs,
            inputs: ins,
            outputs,
            inplace,
          });
          lowered = {
            steps: viewKey
              ? plain.map((st) =>
                  applyInputLayouts(
                    st,
                    layouts.map((l, i) => (st.physicalInputs?.includes(i) ? undefined : l)),
                  ),
                )
              : plain,
          };
          this.lowerings.set(key, lowered);
          if (this.lowerings.size > this.maxLowerings) this.lowerings.delete(this.lowerings.keys().next().value!);
        }
        const outBufs = n.outputs.map((o, i) => {
          if (i === 0 && inplace) {
            const b = dev.get(target)!;
            dev.set(o, b);
            return b;
          }
          const st = this.storage(o.type.dtype);
          const bytes = storageBytes(st, numel(outShapes[i]!));
          const b = this.backend.alloc(bytes, o.name);
          dev.set(o, b);
          temps.push(b);
          if (this.opts.poison) poisoned.push([b, bytes]);
          return b;
        });
        // Scratch buffers are shared by id across the steps of one node (a reduction's partials feed its next step).
        const scratch = new Map<string, B>();
        let slot = -1; // this node's error-flag word, if one of its kernels checks its inputs
        for (const s of lowered.steps) {
          if (s.grid.some((x) => x === 0)) continue;
          if (s.errSlot !== undefined && slot < 0) {
            slot = errNodes.length;
            errNodes.push(n);
          }
          const buffers = s.bindings.map((bd) => {
            if (bd.kind === 'in') return deviceBuffer(n.inputs[bd.index]!);
            if (bd.kind === 'out') return outBufs[bd.index]!;
            if (bd.kind === 'err') return errBuffer();
            let b = scratch.get(bd.id);
            if (b === undefined) {
              b = this.backend.alloc(Math.max(4, bd.bytes), `${n.name}:${bd.id}`);
              scratch.set(bd.id, b);
              temps.push(b);
            }
            return b;
          });
          // a view / alias input binds its root's buffer; inspection counts only the view's elements (worked out only
          // for a backend that inspects, off the devices' per-launch path)
          const viewBytes = this.backend.viewBound
            ? s.bindings.map((bd) => {
                const x = bd.kind === 'in' ? n.inputs[bd.index] : undefined;
                return x && shared.has(x) ? storageBytes(this.storage(x.type.dtype), numel(shapes.get(x)!)) : undefined;
              })
            : undefined;
          steps.push({
            kernel: s.kernel,
            buffers,
            uniforms: encodeUniforms(s, slot, epoch),
            grid: s.grid,
            node: n.name,
            op: n.op,
            viewBytes,
          });
          kernelOwner.set(s.kernel.name, { node: n.name, op: n.op });
        }
      }

      const kernels = [...new Map(steps.map((s) => [s.kernel.name, s.kernel])).values()];
      const fresh = kernels.filter((k) => !this.compiled.has(k.name));
      let done = 0;
      const freshNames = new Set(fresh.map((k) => k.name));
      await this.backend.prepare(kernels, (name) => {
        if (freshNames.has(name)) onProgress?.(++done, fresh.length, name);
      });
      for (const k of fresh) this.compiled.set(k.name, { name: k.name, ...kernelOwner.get(k.name)! });
      if (this.compiled.size > this.maxLowerings) this.compiled.delete(this.compiled.keys().next().value!);
      if (dryRun) return {};
      if (this.backend.poison) for (const [b, bytes] of poisoned) this.backend.poison(b, bytes);
      // one flag word per run: 4 bytes cleared before, 4 bytes read after
      if (steps.length) await this.backend.run(steps);
      // A run whose outputs all stay on the device reads nothing back, not even its check flags (GPU-resident
      // chains): it defers them to the next readback in this memory space, which reports a failed check first.
      const allKept = g.outputs.every(
        (o) => !wanted(o) || (keep.has(o.name) && !hostData.has(o) && !this.constBuffers.has(o)),
      );
      if (errBuf !== undefined && errBuf === this.errWord && allKept) this.deferCheck(epoch, errNodes);
      else if (errBuf !== undefined) {
        await this.settleChecks();
        await this.checkFlag(errBuf, new Map([[epoch, errNodes]]));
      }

      const result: Record<string, Tensor | DeviceTensor> = {};
      for (const o of g.outputs) {
        if (!wanted(o)) continue;
        const h = hostData.get(o);
        if (h) {
          // a feed, a constant or a cached shape result: the caller gets its own copy
          result[o.name] = cloneTensor(h);
          continue;
        }
        const st = this.storage(o.type.dtype);
        const shape = shapes.get(o)!;
        const buf = dev.get(o)!;
        if (keep.has(o.name) && !this.constBuffers.has(o)) {
          // ownership moves to the DeviceTensor: this run does not release it
          const i = temps.indexOf(buf);
          if (i >= 0) temps.splice(i, 1);
          else if (!this.held.has(buf))
            throw new KilnError('runtime', 'cannot keep this output on the device', { tensor: o.name });
          result[o.name] = this.hold(buf, o.type.dtype, shape);
          continue;
        }
        const bytes = await this.readData(buf, storageBytes(st, numel(shape)));
        result[o.name] = decodeTensor(bytes, st, o.type.dtype, shape);
      }
      return result;
    } finally {
      for (const b of temps) if (!this.held.has(b)) this.backend.release(b);
    }
  }

  /** Reads a flag word; a flag set by one of `epochs`' runs is the typed error naming its node. */
  private async checkFlag(buf: B, epochs: ReadonlyMap<number, readonly Node[]>, deferred = false): Promise<void> {
    this.traffic.flagReads++;
    const flag = new DataView((await this.backend.read(buf, 4)).slice().buffer).getUint32(0, true);
    const nodes = epochs.get(flag >>> 16);
    if (nodes && (flag & 0xffff) !== 0) {
      this.backend.write(buf, new Uint8Array(4)); // no stale flag can match a later epoch after wrap-around
      const n = nodes[((flag & 0xffff) >>> 3) - 1];
      const what = DEVICE_ERRORS[(flag & 7) as DeviceErrorCode] ?? `device error code ${flag & 7}`;
      const later = deferred ? ', in an earlier run whose outputs stayed on the device' : '';
      throw new KilnError('runtime', `${what} (checked on the device${later})`, n ? { node: n.name, op: n.op } : {});
    }
  }

  /** Leaves this run's check flags unread until the next readback in the memory space. */
  private deferCheck(epoch: number, nodes: readonly Node[]): void {
    if (!this.pending) {
      const epochs = new Map<number, readonly Node[]>();
      const pending: PendingCheck = {
        epochs,
        check: async () => {
          if (this.pending !== pending) return;
          this.pending = undefined;
          if (this.backend.space) pendingBySpace.get(this.backend.space)?.delete(pending);
          if (this.disposed || this.errWord === undefined) return;
          await this.checkFlag(this.errWord, epochs, true);
        },
      };
      this.pending = pending;
      const space = this.backend.space;
      if (space) {
        let set = pendingBySpace.get(space);
        if (!set) pendingBySpace.set(space, (set = new Set()));
        set.add(pending);
      }
    }
    this.pending.epochs.set(epoch, nodes);
  }

  /** Frees device memory and caches; runs in flight finish first (their results stay valid). */
  dispose(): void {
    if (this.inFlight > 0) this.disposeWhenIdle = true;
    else this.free();
  }

  private free(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const b of this.held.keys()) this.backend.release(b);
    this.held.clear();
    if (this.errWord !== undefined) this.backend.release(this.errWord);
    this.errWord = undefined;
    for (const b of this.constBuffers.values()) this.backend.release(b);
    this.constBuffers.clear();
    this.lowerings.clear();
    this.shapeResults.clear();
    this.compiled.clear();
    this.backend.dispose?.();
  }
}

/** Checking nodes per run the flag word can name: (slot + 1) · 8 + code fits its low 16 bits, the epoch the high 16. */
const ERR_WORDS = 8190;

function encodeUniforms(s: LoweredStep, errSlot: number, epoch: number): ArrayBuffer {
  const buf = new ArrayBuffer(Math.max(16, Math.ceil((s.uniforms.length * 4) / 16) * 16));
  const dv = new DataView(buf);
  s.kernel.uniforms.forEach((u, i) => {
    const v = i === s.errSlot ? ((epoch << 16) | ((errSlot + 1) << 3)) >>> 0 : s.uniforms[i]!;
    if (u.type === 'f32') dv.setFloat32(i * 4, v, true);
    else if (u.type === 'u32') dv.setUint32(i * 4, v >>> 0, true);
    else dv.setInt32(i * 4, v, true);
  });
  return buf;
}
