/**
 * The binary plan read by the CUDA emulator's host driver (codegen/cuda/emu/kiln_cuda_emu_rt.cpp) and the result it
 * writes back. Layout (little-endian, no padding):
 *
 * ```text
 * plan:   "KLNP" u32 version=1
 *         u32 nbuffers   { u64 bytes, u8 init (0 zeros | 1 fill: u8 byte | 2 contents: `bytes` bytes) }
 *         u32 nlaunches  { u32 nameLen, name, u32 grid[3], u32 block[3], u32 dynamicSharedBytes,
 *                          u32 flags (bit0 reverse order, bit1 forward order),
 *                          u32 nargs { u8 kind, payload } }
 *                        kind 1 pointer: u32 buffer (0xffffffff = null), u64 byte offset;
 *                        2 i32, 3 u32, 4 f32: 4 bytes; 5 i64, 6 u64, 7 f64: 8 bytes
 *         u32 noutputs   { u32 buffer }
 * result: "KLNR" u32 version=1, u32 nlaunches { f64 ms }, u32 noutputs { u32 buffer, u64 bytes, bytes }
 * ```
 */
import { KilnError } from '../../../ir/errors.js';

/** A launch dimension: `n` is `(n, 1, 1)`. */
export type Dim3 = number | readonly [number, number?, number?] | { x: number; y?: number; z?: number };

/** A device buffer: `size` bytes (defaults to `init.byteLength`), initialized from `init` (zero-padded) or `fill`. */
export interface EmuBuffer {
  size?: number;
  init?: ArrayBufferView;
  /** Byte value every byte is set to (e.g. 0xff poisons f32 outputs with NaN). */
  fill?: number;
}

/** A kernel argument: a buffer (device pointer at an optional byte offset; `null` passes a null pointer) or a scalar. */
export type EmuArg =
  | { buffer: number | null; offset?: number }
  | { i32: number }
  | { u32: number }
  | { f32: number }
  | { i64: bigint | number }
  | { u64: bigint | number }
  | { f64: number };

export interface EmuLaunch {
  /** Name under which the kernel was registered (KILN_EMU_REGISTER / KILN_EMU_REGISTER_AS). */
  kernel: string;
  grid: Dim3;
  block: Dim3;
  dynamicSharedBytes?: number;
  /** Order in which the fibers of a block run; default: the module's run option, else KILN_EMU_ORDER, else forward. */
  order?: 'forward' | 'reverse';
  args: readonly EmuArg[];
}

export interface EmuPlan {
  buffers: readonly EmuBuffer[];
  launches: readonly EmuLaunch[];
  /** Buffers whose final contents are returned. */
  outputs: readonly number[];
}

export interface EmuResult {
  /** Final contents of the requested buffers (each a fresh, aligned copy). */
  outputs: Map<number, Uint8Array>;
  /** Wall time of each launch inside the emulator, in milliseconds. */
  launchMs: number[];
  /** What the kernels printed (printf goes to stderr in the emulator). */
  log: string;
}

export const ARG_KIND = { ptr: 1, i32: 2, u32: 3, f32: 4, i64: 5, u64: 6, f64: 7 } as const;
export const ARG_KIND_NAMES: Record<number, string> = {
  1: 'pointer',
  2: 'i32',
  3: 'u32',
  4: 'f32',
  5: 'i64',
  6: 'u64',
  7: 'f64',
};

function planError(message: string, kernel?: string): KilnError {
  return new KilnError('runtime', `cuda-emu plan: ${message}`, kernel === undefined ? {} : { node: kernel });
}

function dims(d: Dim3, what: string, kernel: string): [number, number, number] {
  let r: [number, number, number];
  if (typeof d === 'number') r = [d, 1, 1];
  else if (Array.isArray(d)) r = [d[0] as number, d[1] ?? 1, d[2] ?? 1];
  else {
    const o = d as { x: number; y?: number; z?: number };
    r = [o.x, o.y ?? 1, o.z ?? 1];
  }
  for (const v of r)
    if (!Number.isInteger(v) || v < 1 || v > 0xffffffff)
      throw planError(`invalid ${what} ${JSON.stringify(d)}`, kernel);
  return r;
}

function u32(v: number, what: string, kernel?: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw planError(`${what} must be a u32, got ${v}`, kernel);
  return v;
}

class Writer {
  private buf = new Uint8Array(1024);
  private view = new DataView(this.buf.buffer);
  pos = 0;
  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.pos + n) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.pos));
    this.buf = nb;
    this.view = new DataView(nb.buffer);
  }
  u8(v: number): void {
    this.ensure(1);
    this.view.setUint8(this.pos, v);
    this.pos += 1;
  }
  u32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }
  i32(v: number): void {
    this.ensure(4);
    this.view.setInt32(this.pos, v, true);
    this.pos += 4;
  }
  f32(v: number): void {
    this.ensure(4);
    this.view.setFloat32(this.pos, v, true);
    this.pos += 4;
  }
  u64(v: bigint): void {
    this.ensure(8);
    this.view.setBigUint64(this.pos, v, true);
    this.pos += 8;
  }
  i64(v: bigint): void {
    this.ensure(8);
    this.view.setBigInt64(this.pos, v, true);
    this.pos += 8;
  }
  f64(v: number): void {
    this.ensure(8);
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }
  bytes(b: Uint8Array, size: number): void {
    this.ensure(size);
    this.buf.set(b.subarray(0, Math.min(b.length, size)), this.pos);
    this.buf.fill(0, this.pos + Math.min(b.length, size), this.pos + size);
    this.pos += size;
  }
  result(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

function bytesOf(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

function big(v: bigint | number, what: string, kernel: string): bigint {
  if (typeof v === 'bigint') return v;
  if (!Number.isSafeInteger(v)) throw planError(`${what} must be an integer, got ${v}`, kernel);
  return BigInt(v);
}

/**
 * Encodes a plan. `defaultOrder` applies to launches without an explicit `order` (undefined: the emulator's
 * KILN_EMU_ORDER environment variable decides).
 */
export function encodePlan(plan: EmuPlan, defaultOrder?: 'forward' | 'reverse'): Uint8Array {
  const w = new Writer();
  w.bytes(new TextEncoder().encode('KLNP'), 4);
  w.u32(1);
  const sizes: number[] = [];
  w.u32(plan.buffers.length);
  plan.buffers.forEach((b, i) => {
    const size = b.size ?? b.init?.byteLength;
    if (size === undefined || !Number.isSafeInteger(size) || size < 0)
      throw planError(`buffer ${i} needs a byte size (size or init)`);
    if (b.init && b.init.byteLength > size)
      throw planError(`buffer ${i}: init has ${b.init.byteLength} bytes but size is ${size}`);
    sizes.push(size);
    w.u64(BigInt(size));
    if (b.init) {
      w.u8(2);
      w.bytes(bytesOf(b.init), size);
    } else if (b.fill !== undefined) {
      if (!Number.isInteger(b.fill) || b.fill < 0 || b.fill > 255) throw planError(`buffer ${i}: fill must be a byte`);
      w.u8(1);
      w.u8(b.fill);
    } else {
      w.u8(0);
    }
  });
  w.u32(plan.launches.length);
  const enc = new TextEncoder();
  plan.launches.forEach((l, li) => {
    const name = enc.encode(l.kernel);
    w.u32(name.length);
    w.bytes(name, name.length);
    for (const v of dims(l.grid, 'grid', l.kernel)) w.u32(v);
    for (const v of dims(l.block, 'block', l.kernel)) w.u32(v);
    w.u32(u32(l.dynamicSharedBytes ?? 0, `launch ${li}: dynamicSharedBytes`, l.kernel));
    const order = l.order ?? defaultOrder;
    w.u32(order === 'reverse' ? 1 : order === 'forward' ? 2 : 0);
    w.u32(l.args.length);
    l.args.forEach((a, ai) => {
      const what = `launch ${li} (${l.kernel}) argument ${ai}`;
      if ('buffer' in a) {
        w.u8(ARG_KIND.ptr);
        if (a.buffer === null) {
          w.u32(0xffffffff);
          w.u64(0n);
          return;
        }
        if (!Number.isInteger(a.buffer) || a.buffer < 0 || a.buffer >= sizes.length)
          throw planError(`${what}: no buffer ${a.buffer}`, l.kernel);
        const off = a.offset ?? 0;
        if (!Number.isSafeInteger(off) || off < 0 || off > sizes[a.buffer]!)
          throw planError(`${what}: offset ${off} outside buffer ${a.buffer}`, l.kernel);
        w.u32(a.buffer);
        w.u64(BigInt(off));
      } else if ('i32' in a) {
        if (!Number.isInteger(a.i32) || a.i32 < -0x80000000 || a.i32 > 0x7fffffff)
          throw planError(`${what}: ${a.i32} is not an i32`, l.kernel);
        w.u8(ARG_KIND.i32);
        w.i32(a.i32);
      } else if ('u32' in a) {
        w.u8(ARG_KIND.u32);
        w.u32(u32(a.u32, what, l.kernel));
      } else if ('f32' in a) {
        w.u8(ARG_KIND.f32);
        w.f32(a.f32);
      } else if ('i64' in a) {
        w.u8(ARG_KIND.i64);
        w.i64(BigInt.asIntN(64, big(a.i64, what, l.kernel)));
      } else if ('u64' in a) {
        w.u8(ARG_KIND.u64);
        w.u64(BigInt.asUintN(64, big(a.u64, what, l.kernel)));
      } else if ('f64' in a) {
        w.u8(ARG_KIND.f64);
        w.f64(a.f64);
      } else {
        throw planError(`${what}: unknown argument ${JSON.stringify(a)}`, l.kernel);
      }
    });
  });
  w.u32(plan.outputs.length);
  for (const o of plan.outputs) {
    if (!Number.isInteger(o) || o < 0 || o >= sizes.length) throw planError(`output names no buffer: ${o}`);
    w.u32(o);
  }
  return w.result();
}

/** Decodes the emulator's stdout. */
export function decodeResult(out: Uint8Array): { outputs: Map<number, Uint8Array>; launchMs: number[] } {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const fail = (m: string): KilnError => new KilnError('runtime', `cuda-emu: malformed result from the emulator: ${m}`);
  if (out.length < 16 || new TextDecoder().decode(out.subarray(0, 4)) !== 'KLNR') throw fail('bad magic');
  if (view.getUint32(4, true) !== 1) throw fail('bad version');
  const nl = view.getUint32(8, true);
  let pos = 12;
  if (out.length < pos + 8 * nl + 4) throw fail('truncated');
  const launchMs: number[] = [];
  for (let i = 0; i < nl; i++, pos += 8) launchMs.push(view.getFloat64(pos, true));
  const nout = view.getUint32(pos, true);
  pos += 4;
  const outputs = new Map<number, Uint8Array>();
  for (let i = 0; i < nout; i++) {
    if (out.length < pos + 12) throw fail('truncated');
    const idx = view.getUint32(pos, true);
    const size = Number(view.getBigUint64(pos + 4, true));
    pos += 12;
    if (out.length < pos + size) throw fail('truncated');
    const copy = new Uint8Array(size); // a fresh ArrayBuffer: aligned, and not a view of Node's stdout Buffer
    copy.set(out.subarray(pos, pos + size));
    outputs.set(idx, copy);
    pos += size;
  }
  if (pos !== out.length) throw fail('trailing bytes');
  return { outputs, launchMs };
}
