/// <reference types="@webgpu/types" />
/**
 * GPU buffers: a size-class pool with reuse on release, uploads from typed arrays, async readback through a MAP_READ
 * staging buffer, and poisoning of output buffers (so an element a kernel forgot to write reads back as NaN).
 *
 * Allocation failures are typed: a size over `maxBufferSize` is a 'limit' KilnError naming the limit; a failed
 * allocation (out-of-memory error scope) is a 'device' KilnError naming the byte size and the limit.
 */
import { KilnError } from '../../../ir/errors.js';
import { BufferUsage, MapMode, type GpuContext } from './device.js';

/** Usage of kiln's tensor buffers: bindable as storage, copyable both ways (upload, readback, copies). */
export const STORAGE_USAGE = BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST;
/** Usage of the pooled readback staging buffers. */
export const READBACK_USAGE = BufferUsage.MAP_READ | BufferUsage.COPY_DST;
/** Usage of the pooled uniform buffers. */
export const UNIFORM_USAGE = BufferUsage.UNIFORM | BufferUsage.COPY_DST;

/** All-ones: a NaN for f32 and for both f16 halves (and -1 for i32), the default poison pattern. */
export const POISON_PATTERN = 0xffffffff;

const MIN_CLASS = 256;
const POW2_UP_TO = 1 << 20;

/**
 * The size class a request of `byteSize` bytes is rounded up to: 256 bytes minimum, the next power of two up to
 * 1 MiB, then the next multiple of 1/8 of the enclosing power of two (at most 12.5 % waste). Always a multiple of 256.
 */
export function sizeClass(byteSize: number): number {
  if (!Number.isFinite(byteSize) || byteSize < 0) throw new KilnError('runtime', `invalid buffer size ${byteSize}`);
  if (byteSize <= MIN_CLASS) return MIN_CLASS;
  if (byteSize <= POW2_UP_TO) return 2 ** Math.ceil(Math.log2(byteSize));
  const step = 2 ** Math.floor(Math.log2(byteSize)) / 8;
  return Math.ceil(byteSize / step) * step;
}

/** Rounds up to a multiple of `align` (a power of two or any positive integer). */
export function alignUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

export interface AcquireOptions {
  /** GPUBufferUsage flags; default {@link STORAGE_USAGE}. */
  usage?: number;
  /** Debug label of a newly created buffer (reused buffers keep theirs). */
  label?: string;
}

export interface BufferPoolStats {
  /** Buffers created by the pool since it was made. */
  created: number;
  /** Acquisitions served from released buffers. */
  reused: number;
  /** Buffers acquired and not yet released, and their bytes (size classes, not requested sizes). */
  live: number;
  liveBytes: number;
  /** Released buffers kept for reuse, and their bytes. */
  free: number;
  freeBytes: number;
}

interface Entry {
  cls: number;
  usage: number;
  /** The size asked for by the current holder. */
  byteLength: number;
  live: boolean;
}

/**
 * A pool of GPU buffers by (usage, size class). `acquire` returns a buffer at least as large as asked (its `size` is
 * the size class; {@link BufferPool.byteLength} gives the size asked for); `release` returns it for reuse.
 * Reusing a released buffer right away is safe: WebGPU orders queue writes after earlier submissions.
 */
export class BufferPool {
  private readonly ctx: GpuContext;
  private readonly free = new Map<string, GPUBuffer[]>();
  private readonly entries = new Map<GPUBuffer, Entry>();
  private counters = { created: 0, reused: 0 };
  private destroyed = false;
  private freeBytes = 0;
  /** Released buffers kept for reuse, in bytes; past it the oldest go back to the device. */
  readonly maxFreeBytes: number;

  constructor(ctx: GpuContext, opts: { maxFreeBytes?: number } = {}) {
    this.ctx = ctx;
    this.maxFreeBytes = opts.maxFreeBytes ?? 256 * 2 ** 20;
  }

  /**
   * A buffer of at least `byteSize` bytes. New buffers are created inside 'out-of-memory' and 'validation' error
   * scopes, awaited, so a failed allocation throws here, naming the size.
   */
  async acquire(byteSize: number, opts: AcquireOptions = {}): Promise<GPUBuffer> {
    const { buffer, fresh } = this.take(byteSize, opts, 'acquire');
    if (!fresh) return buffer;
    const device = this.ctx.device;
    const [validation, oom] = [device.popErrorScope(), device.popErrorScope()];
    const [verr, oerr] = await Promise.all([validation, oom]);
    if (oerr || verr) {
      this.forget(buffer);
      buffer.destroy();
      const cls = sizeClass(byteSize);
      if (oerr) {
        throw new KilnError(
          'device',
          `out of GPU memory allocating a buffer of ${byteSize} bytes (size class ${cls}; ` +
            `maxBufferSize ${this.ctx.caps.maxBufferSize}; ${this.stats().liveBytes} bytes live in the pool): ${oerr.message.trim()}`,
          { limit: 'maxBufferSize' },
        );
      }
      throw new KilnError('runtime', `creating a buffer of ${byteSize} bytes failed: ${verr!.message.trim()}`);
    }
    return buffer;
  }

  /**
   * Like {@link acquire} but synchronous: a failed allocation is recorded on the context and thrown by its next
   * operation (e.g. the readback) instead of here. Used for per-run uniform buffers.
   */
  acquireSync(byteSize: number, opts: AcquireOptions = {}): GPUBuffer {
    const { buffer, fresh } = this.take(byteSize, opts, 'acquire');
    if (fresh) {
      const device = this.ctx.device;
      const context = `allocating a buffer of ${byteSize} bytes`;
      const pops = [device.popErrorScope(), device.popErrorScope()];
      for (const p of pops) {
        this.ctx.track(
          p.then((e) => {
            if (e) this.ctx.recordError(e, context);
          }),
        );
      }
    }
    return buffer;
  }

  private take(byteSize: number, opts: AcquireOptions, op: string): { buffer: GPUBuffer; fresh: boolean } {
    if (this.destroyed) throw new KilnError('runtime', 'buffer pool was destroyed');
    this.ctx.check(`buffer ${op}`);
    const usage = opts.usage ?? STORAGE_USAGE;
    const { maxBufferSize, maxStorageBufferBindingSize } = this.ctx.caps;
    if (!Number.isInteger(byteSize) || byteSize < 0) {
      throw new KilnError('runtime', `invalid buffer size ${byteSize} (must be a non-negative integer)`);
    }
    if (byteSize > maxBufferSize) {
      throw new KilnError(
        'limit',
        `buffer of ${byteSize} bytes exceeds the device's maxBufferSize of ${maxBufferSize} bytes`,
        { limit: 'maxBufferSize' },
      );
    }
    let cls = Math.min(sizeClass(byteSize), maxBufferSize);
    // A storage buffer must stay bindable as a whole when the request itself is.
    if (usage & BufferUsage.STORAGE && byteSize <= maxStorageBufferBindingSize && cls > maxStorageBufferBindingSize) {
      cls = Math.max(alignUp(byteSize, 256), MIN_CLASS);
    }
    const key = `${usage}:${cls}`;
    const list = this.free.get(key);
    const reused = list?.pop();
    if (reused) {
      const e = this.entries.get(reused)!;
      this.freeBytes -= e.cls;
      e.live = true;
      e.byteLength = byteSize;
      this.counters.reused++;
      return { buffer: reused, fresh: false };
    }
    const device = this.ctx.device;
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    const buffer = device.createBuffer({ size: cls, usage, label: opts.label ?? `kiln-pool-${cls}` });
    this.entries.set(buffer, { cls, usage, byteLength: byteSize, live: true });
    this.counters.created++;
    return { buffer, fresh: true };
  }

  private forget(buffer: GPUBuffer): void {
    this.entries.delete(buffer);
  }

  /** Returns a buffer to the pool. Releasing a buffer twice, or one the pool did not make, throws. */
  release(buffer: GPUBuffer): void {
    const e = this.entries.get(buffer);
    if (!e) throw new KilnError('runtime', `release of a buffer '${buffer.label}' that this pool did not allocate`);
    if (!e.live) throw new KilnError('runtime', `buffer '${buffer.label}' released twice`);
    e.live = false;
    if (this.destroyed) {
      this.forget(buffer);
      buffer.destroy();
      return;
    }
    const key = `${e.usage}:${e.cls}`;
    let list = this.free.get(key);
    if (!list) this.free.set(key, (list = []));
    list.push(buffer);
    this.freeBytes += e.cls;
    // Bounded: many distinct sizes (a decode loop's growing past) must not pin device memory forever.
    for (const [k, l] of this.free) {
      if (this.freeBytes <= this.maxFreeBytes) break;
      while (l.length && this.freeBytes > this.maxFreeBytes) {
        const b = l.shift()!;
        this.freeBytes -= this.entries.get(b)!.cls;
        this.forget(b);
        b.destroy();
      }
      if (!l.length) this.free.delete(k);
    }
  }

  /** The size the current holder asked for (the buffer's `size` is its size class). */
  byteLength(buffer: GPUBuffer): number {
    return this.entries.get(buffer)?.byteLength ?? buffer.size;
  }

  /** True when the pool made this buffer. */
  owns(buffer: GPUBuffer): boolean {
    return this.entries.has(buffer);
  }

  stats(): BufferPoolStats {
    const s: BufferPoolStats = { ...this.counters, live: 0, liveBytes: 0, free: 0, freeBytes: 0 };
    for (const e of this.entries.values()) {
      if (e.live) {
        s.live++;
        s.liveBytes += e.cls;
      } else {
        s.free++;
        s.freeBytes += e.cls;
      }
    }
    return s;
  }

  /** Destroys every released buffer (live ones are untouched). */
  trim(): void {
    for (const list of this.free.values()) {
      for (const b of list) {
        this.forget(b);
        b.destroy();
      }
    }
    this.free.clear();
    this.freeBytes = 0;
  }

  /** Destroys released buffers now and live ones when they are released; the pool cannot acquire afterwards. */
  destroy(): void {
    this.trim();
    this.destroyed = true;
  }
}

const defaultPools = new WeakMap<GpuContext, BufferPool>();

/** The context's default buffer pool (made on first use). */
export function bufferPool(ctx: GpuContext): BufferPool {
  let pool = defaultPools.get(ctx);
  if (!pool) defaultPools.set(ctx, (pool = new BufferPool(ctx)));
  return pool;
}

export interface UploadOptions extends AcquireOptions {
  /** Pool to allocate from; default: the context's pool. */
  pool?: BufferPool;
}

/** Bytes of `data` as an ArrayBuffer slice view, padded with zeros to a multiple of 4 (WebGPU's copy granularity). */
function bytesOf(data: ArrayBufferView | ArrayBuffer): { buf: ArrayBuffer; offset: number; size: number } {
  const view = data instanceof ArrayBuffer ? new Uint8Array(data) : data;
  const { byteOffset, byteLength } = view;
  if (byteLength % 4 === 0 && view.buffer instanceof ArrayBuffer) {
    return { buf: view.buffer, offset: byteOffset, size: byteLength };
  }
  const padded = new Uint8Array(alignUp(byteLength, 4));
  padded.set(new Uint8Array(view.buffer, byteOffset, byteLength));
  return { buf: padded.buffer, offset: 0, size: padded.byteLength };
}

/** Writes `data` into `buffer` at `byteOffset` (a multiple of 4) via the queue. */
export function writeBuffer(
  ctx: GpuContext,
  buffer: GPUBuffer,
  data: ArrayBufferView | ArrayBuffer,
  byteOffset = 0,
): void {
  ctx.check('writeBuffer');
  const { buf, offset, size } = bytesOf(data);
  if (byteOffset % 4 !== 0) throw new KilnError('runtime', `writeBuffer offset ${byteOffset} is not a multiple of 4`);
  if (byteOffset + size > buffer.size) {
    throw new KilnError(
      'runtime',
      `writeBuffer of ${size} bytes at offset ${byteOffset} overflows buffer '${buffer.label}' of ${buffer.size} bytes`,
    );
  }
  ctx.device.queue.writeBuffer(buffer, byteOffset, buf, offset, size);
}

/** A new pooled storage buffer holding `data` (typed array of any element type; f16 data as a Uint16Array). */
export async function uploadArray(
  ctx: GpuContext,
  data: ArrayBufferView | ArrayBuffer,
  opts: UploadOptions = {},
): Promise<GPUBuffer> {
  const pool = opts.pool ?? bufferPool(ctx);
  const buffer = await pool.acquire(data.byteLength, opts);
  writeBuffer(ctx, buffer, data);
  return buffer;
}

let poisonChunk: Uint32Array<ArrayBuffer> | undefined;
const POISON_CHUNK_WORDS = 1 << 18; // 1 MiB per writeBuffer

/**
 * Fills `byteLength` bytes of `buffer` (default: the size asked for if pooled, else its whole size; rounded up to a
 * multiple of 4) with a 32-bit pattern before a run, so elements a kernel does not write are recognizable afterwards.
 * The default {@link POISON_PATTERN} is NaN for f32 and for f16.
 */
export function poisonBuffer(
  ctx: GpuContext,
  buffer: GPUBuffer,
  opts: { pattern?: number; byteLength?: number; pool?: BufferPool } = {},
): void {
  ctx.check('poisonBuffer');
  const pattern = (opts.pattern ?? POISON_PATTERN) >>> 0;
  const pool = opts.pool ?? bufferPool(ctx);
  const total = Math.min(alignUp(opts.byteLength ?? pool.byteLength(buffer), 4), buffer.size);
  if (!poisonChunk || poisonChunk[0] !== pattern) poisonChunk = new Uint32Array(POISON_CHUNK_WORDS).fill(pattern);
  for (let off = 0; off < total; off += poisonChunk.byteLength) {
    const n = Math.min(poisonChunk.byteLength, total - off);
    ctx.device.queue.writeBuffer(buffer, off, poisonChunk.buffer, 0, n);
  }
}

export interface ReadbackOptions {
  byteOffset?: number;
  /** Default: the size asked for if the buffer is pooled, else its whole size (minus byteOffset). */
  byteLength?: number;
  /** Pool for the staging buffer and the pool the source buffer may come from; default: the context's pool. */
  pool?: BufferPool;
}

/**
 * Copies bytes of `buffer` (which needs COPY_SRC usage) to a pooled MAP_READ staging buffer, maps it and returns a
 * copy. Waits for all submitted work, and throws any error recorded by earlier runs (so a failed run never reads
 * back as poison or stale data).
 */
export async function readback(ctx: GpuContext, buffer: GPUBuffer, opts: ReadbackOptions = {}): Promise<ArrayBuffer> {
  ctx.check('readback');
  const pool = opts.pool ?? bufferPool(ctx);
  const byteOffset = opts.byteOffset ?? 0;
  const byteLength = opts.byteLength ?? pool.byteLength(buffer) - byteOffset;
  if (!(buffer.usage & BufferUsage.COPY_SRC)) {
    throw new KilnError('runtime', `readback of buffer '${buffer.label}' which lacks COPY_SRC usage`);
  }
  if (byteOffset % 4 !== 0 || byteOffset < 0) {
    throw new KilnError('runtime', `readback offset ${byteOffset} is not a non-negative multiple of 4`);
  }
  if (byteLength < 0 || byteOffset + byteLength > buffer.size) {
    throw new KilnError(
      'runtime',
      `readback of ${byteLength} bytes at ${byteOffset} is outside buffer '${buffer.label}' of ${buffer.size} bytes`,
    );
  }
  if (byteLength === 0) return new ArrayBuffer(0);
  const copySize = alignUp(byteLength, 4);
  if (byteOffset + copySize > buffer.size) {
    throw new KilnError('runtime', `readback of ${byteLength} bytes needs ${copySize} bytes (multiple of 4) in buffer`);
  }
  const staging = await pool.acquire(copySize, { usage: READBACK_USAGE, label: 'kiln-readback' });
  try {
    const encoder = ctx.device.createCommandEncoder({ label: 'kiln-readback' });
    encoder.copyBufferToBuffer(buffer, byteOffset, staging, 0, copySize);
    ctx.device.queue.submit([encoder.finish()]);
    try {
      await staging.mapAsync(MapMode.READ, 0, copySize);
    } catch (e) {
      await ctx.settle('readback');
      throw new KilnError('device', `mapping the readback buffer failed: ${String(e)}`, {}, { cause: e });
    }
    const out = staging.getMappedRange(0, copySize).slice(0, byteLength);
    staging.unmap();
    await ctx.settle('readback');
    return out;
  } finally {
    if (staging.mapState === 'mapped') staging.unmap();
    pool.release(staging);
  }
}

type TypedArrayCtor<T> = {
  new (buffer: ArrayBuffer, byteOffset?: number, length?: number): T;
  BYTES_PER_ELEMENT: number;
};

/**
 * Reads `length` elements (default: the whole pooled size asked for) of `buffer` as a typed array, e.g.
 * `await readbackAs(ctx, out, Float32Array, n)`. f16 data reads back as Uint16Array.
 */
export async function readbackAs<T>(
  ctx: GpuContext,
  buffer: GPUBuffer,
  ctor: TypedArrayCtor<T>,
  length?: number,
  opts: Omit<ReadbackOptions, 'byteLength'> = {},
): Promise<T> {
  const byteLength = length === undefined ? undefined : length * ctor.BYTES_PER_ELEMENT;
  const bytes = await readback(ctx, buffer, { ...opts, byteLength });
  return new ctor(bytes, 0, Math.floor(bytes.byteLength / ctor.BYTES_PER_ELEMENT));
}
