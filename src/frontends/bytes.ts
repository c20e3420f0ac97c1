/**
 * Bounds-checked little-endian reading for the weight-file parsers (llama2.c, GGUF, safetensors). Every read past the
 * end, every count that cannot fit in the bytes left and every 64-bit value beyond 2^53 is a {@link ParseError}, so
 * a hostile or truncated file is a typed error, never a RangeError or a huge allocation.
 */
import { f16BitsToNumber } from '../../ir/dtype.js';
import { ParseError } from '../../ir/errors.js';

/** Typed arrays are host-endian; every format here is little-endian. Views are only taken on little-endian hosts. */
export const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export class ByteReader {
  readonly view: DataView;
  pos = 0;
  constructor(
    readonly bytes: Uint8Array,
    /** Names the format in error messages. */
    readonly what: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get remaining(): number {
    return this.bytes.length - this.pos;
  }

  fail(message: string, tensor?: string, limit?: string): never {
    throw new ParseError(`${this.what}: ${message}`, {
      ...(tensor !== undefined && { tensor }),
      ...(limit && { limit }),
    });
  }

  /** Checks that `n` more bytes exist (`what` names the field for the error). */
  need(n: number, what: string, tensor?: string): void {
    if (!(n >= 0 && n <= this.remaining)) {
      this.fail(`${what} needs ${n} bytes at offset ${this.pos}, but only ${this.remaining} remain`, tensor);
    }
  }

  u8(what = 'u8'): number {
    this.need(1, what);
    return this.view.getUint8(this.pos++);
  }
  i8(what = 'i8'): number {
    this.need(1, what);
    return this.view.getInt8(this.pos++);
  }
  u16(what = 'u16'): number {
    this.need(2, what);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  i16(what = 'i16'): number {
    this.need(2, what);
    const v = this.view.getInt16(this.pos, true);
    this.pos += 2;
    return v;
  }
  u32(what = 'u32'): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  i32(what = 'i32'): number {
    this.need(4, what);
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }
  f32(what = 'f32'): number {
    this.need(4, what);
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }
  f64(what = 'f64'): number {
    this.need(8, what);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }
  /** A u64 as a number; past 2^53 (no sane count, size or offset is) a typed error. */
  u64(what = 'u64'): number {
    const v = this.u64Big(what);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} = ${v} is beyond 2^53`, undefined, '2^53');
    return Number(v);
  }
  u64Big(what = 'u64'): bigint {
    this.need(8, what);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }
  i64Big(what = 'i64'): bigint {
    this.need(8, what);
    const v = this.view.getBigInt64(this.pos, true);
    this.pos += 8;
    return v;
  }
  /** `n` bytes as a subarray (no copy). */
  take(n: number, what: string, tensor?: string): Uint8Array {
    this.need(n, what, tensor);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Strict UTF-8 decoding; invalid bytes are a ParseError naming `what`. */
export function decodeUtf8(bytes: Uint8Array, what: string, format: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new ParseError(`${format}: ${what} is not valid UTF-8`);
  }
}

/**
 * `n` little-endian f32 values at `offset` of `bytes`: a view sharing the file's memory when the absolute offset is
 * 4-aligned on a little-endian host, else a copy. The caller has checked the range.
 */
export function f32Values(bytes: Uint8Array, offset: number, n: number): Float32Array {
  const abs = bytes.byteOffset + offset;
  if (LITTLE_ENDIAN_HOST && abs % 4 === 0) return new Float32Array(bytes.buffer, abs, n);
  const out = new Float32Array(n);
  const dv = new DataView(bytes.buffer, abs, n * 4);
  for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
  return out;
}

/** `n` little-endian half-precision values (f16 or bf16 bit patterns) at `offset`, widened to f32 (exact). */
export function halfValues(bytes: Uint8Array, offset: number, n: number, kind: 'f16' | 'bf16'): Float32Array {
  const out = new Float32Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, n * 2);
  if (kind === 'bf16') {
    // bf16 is the top half of an f32: shift the bits into place.
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) u[i] = dv.getUint16(i * 2, true) << 16;
    return out;
  }
  // f16: a 64K-entry table is cheaper than decoding each value once tensors pass a few thousand elements.
  if (n > 4096) {
    const table = f16Table();
    for (let i = 0; i < n; i++) out[i] = table[dv.getUint16(i * 2, true)]!;
  } else {
    for (let i = 0; i < n; i++) out[i] = f16BitsToNumber(dv.getUint16(i * 2, true));
  }
  return out;
}

let F16_TABLE: Float32Array | undefined;
function f16Table(): Float32Array {
  if (!F16_TABLE) {
    F16_TABLE = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) F16_TABLE[h] = f16BitsToNumber(h);
  }
  return F16_TABLE;
}
