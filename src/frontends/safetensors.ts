/**
 * safetensors: an 8-byte little-endian header length N, N bytes of JSON (`name → { dtype, shape, data_offsets }` and
 * an optional `__metadata__` of strings), then the tensor bytes, offsets relative to the end of the header.
 *
 * f32 / f64 / integer tensors are views of `bytes` when their absolute offset is aligned (else copies); f16 / bf16 are
 * widened to f32 (exact). Every malformed header or range is a {@link ParseError} naming the tensor.
 */
import type { DType } from '../../ir/dtype.js';
import { KilnError, ParseError, UnsupportedError } from '../../ir/errors.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { LITTLE_ENDIAN_HOST, f32Values, halfValues } from './bytes.js';
import { floatTensor } from './weight-layout.js';

export interface SafetensorsFile {
  /** Tensors in header order. */
  readonly tensors: ReadonlyMap<string, Tensor>;
  readonly metadata: Readonly<Record<string, string>>;
}

const FORMAT = 'safetensors';
/** The format caps the JSON header at 100 MB. */
export const MAX_SAFETENSORS_HEADER = 100_000_000;

const DTYPES: Record<string, { dtype: DType; size: number }> = {
  F64: { dtype: 'f64', size: 8 },
  F32: { dtype: 'f32', size: 4 },
  F16: { dtype: 'f16', size: 2 },
  BF16: { dtype: 'bf16', size: 2 },
  I64: { dtype: 'i64', size: 8 },
  U64: { dtype: 'u64', size: 8 },
  I32: { dtype: 'i32', size: 4 },
  U32: { dtype: 'u32', size: 4 },
  I16: { dtype: 'i16', size: 2 },
  U16: { dtype: 'u16', size: 2 },
  I8: { dtype: 'i8', size: 1 },
  U8: { dtype: 'u8', size: 1 },
  BOOL: { dtype: 'bool', size: 1 },
};
/** Known to the format but without a kiln dtype. */
const UNSUPPORTED = new Set(['F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F6_E2M3', 'F6_E3M2', 'F4', 'C64']);

const fail = (message: string, tensor?: string, limit?: string): never => {
  throw new ParseError(`${FORMAT}: ${message}`, { ...(tensor !== undefined && { tensor }), ...(limit && { limit }) });
};

type IntCtor =
  | Float64ArrayConstructor
  | Int32ArrayConstructor
  | Uint32ArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Int8ArrayConstructor
  | Uint8ArrayConstructor;

/** A typed-array view of `n` elements at absolute-aligned `offset`, or a little-endian copy. */
function viewOrCopy(ctor: IntCtor, bytes: Uint8Array, offset: number, n: number): InstanceType<IntCtor> {
  const size = ctor.BYTES_PER_ELEMENT;
  const abs = bytes.byteOffset + offset;
  if (size === 1 || (LITTLE_ENDIAN_HOST && abs % size === 0)) return new ctor(bytes.buffer as ArrayBuffer, abs, n);
  const out = new ctor(n);
  const src = bytes.subarray(offset, offset + n * size);
  if (LITTLE_ENDIAN_HOST) new Uint8Array(out.buffer).set(src);
  else for (let i = 0; i < n * size; i++) new Uint8Array(out.buffer)[i] = src[i - (i % size) + size - 1 - (i % size)]!;
  return out;
}

function tensorAt(name: string, st: string, shape: number[], bytes: Uint8Array, offset: number, n: number): Tensor {
  const { dtype } = DTYPES[st]!;
  const where = { tensor: name };
  switch (st) {
    case 'F32':
      return floatTensor('f32', shape, f32Values(bytes, offset, n), name);
    case 'F16':
    case 'BF16':
      return floatTensor(dtype, shape, halfValues(bytes, offset, n, dtype as 'f16' | 'bf16'), name);
    case 'F64':
      return floatTensor('f64', shape, viewOrCopy(Float64Array, bytes, offset, n) as Float64Array, name);
    case 'I64':
    case 'U64': {
      // kiln holds 64-bit integers as float64, exact to 2^53
      const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, n * 8);
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const v = st === 'I64' ? dv.getBigInt64(i * 8, true) : dv.getBigUint64(i * 8, true);
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) {
          throw new KilnError('limit', `${FORMAT}: element ${i} = ${v} is beyond 2^53, kiln's integer range`, {
            ...where,
            limit: 'i64 exact to 2^53',
          });
        }
        out[i] = Number(v);
      }
      return makeTensor(dtype, shape, out, where);
    }
    case 'I32':
      return makeTensor(dtype, shape, viewOrCopy(Int32Array, bytes, offset, n), where);
    case 'U32':
      return makeTensor(dtype, shape, viewOrCopy(Uint32Array, bytes, offset, n), where);
    case 'I16':
      return makeTensor(dtype, shape, viewOrCopy(Int16Array, bytes, offset, n), where);
    case 'U16':
      return makeTensor(dtype, shape, viewOrCopy(Uint16Array, bytes, offset, n), where);
    case 'I8':
      return makeTensor(dtype, shape, viewOrCopy(Int8Array, bytes, offset, n), where);
    default: {
      // U8, BOOL (makeTensor checks that bools are 0 / 1)
      try {
        return makeTensor(dtype, shape, bytes.subarray(offset, offset + n), where);
      } catch (e) {
        if (e instanceof KilnError && e.code === 'dtype') fail(e.message, name);
        throw e;
      }
    }
  }
}

/**
 * Parses a safetensors file (tensors decoded from the header's byte ranges).
 *
 * @throws ParseError naming the tensor for a malformed header, an unsupported dtype, or a byte range outside the file
 * or not matching the shape.
 */
export function parseSafetensors(bytes: Uint8Array): SafetensorsFile {
  if (bytes.length < 8) fail(`file of ${bytes.length} bytes has no 8-byte header length`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dv.getBigUint64(0, true);
  if (n > BigInt(Math.min(MAX_SAFETENSORS_HEADER, bytes.length - 8))) {
    fail(`header length ${n} exceeds the file (${bytes.length - 8} bytes after it) or 100 MB`, undefined, 'header');
  }
  const headerEnd = 8 + Number(n);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, headerEnd)));
  } catch (e) {
    fail(`header is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('header is not a JSON object');
  const dataLen = bytes.length - headerEnd;
  const tensors = new Map<string, Tensor>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) fail('__metadata__ is not an object');
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__.${k} is not a string`);
      }
      metadata = { ...(entry as Record<string, string>) };
      continue;
    }
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) fail('entry is not an object', name);
    const { dtype, shape, data_offsets: offs } = entry as Record<string, unknown>;
    if (typeof dtype !== 'string') fail('dtype is missing', name);
    if (UNSUPPORTED.has(dtype as string)) {
      throw new UnsupportedError(`${FORMAT}: dtype ${String(dtype)} is not supported by kiln`, { tensor: name });
    }
    const info = DTYPES[dtype as string];
    if (!info) fail(`unknown dtype '${String(dtype)}'`, name);
    if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      fail(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`, name);
    }
    if (!Array.isArray(offs) || offs.length !== 2 || offs.some((o) => !Number.isSafeInteger(o) || o < 0)) {
      fail(`data_offsets ${JSON.stringify(offs)} is not [begin, end]`, name);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end || end > dataLen) {
      fail(`data_offsets [${begin}, ${end}] are outside the ${dataLen} data bytes`, name, 'file size');
    }
    // element count against the bytes present (a product that overflows cannot match)
    let count = 1;
    for (const d of shape as number[]) count *= d;
    if (count * info!.size !== end - begin) {
      fail(`shape [${shape}] of ${dtype} needs ${count * info!.size} bytes, data_offsets span ${end - begin}`, name);
    }
    if (tensors.has(name)) fail('tensor is listed twice', name);
    tensors.set(name, tensorAt(name, dtype as string, shape as number[], bytes, headerEnd + begin, count));
  }
  return { tensors, metadata };
}
