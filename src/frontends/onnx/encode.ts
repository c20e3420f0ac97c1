/**
 * Writing ONNX protobuf bytes: plain objects with the snake_case field names of `onnx.proto3`, encoded by protobufjs
 * over kiln's own schema subset (./schema.ts, the one the decoder reads), and tensor data as ONNX `raw_data`
 * (little-endian; 4-bit elements two per byte, low nibble first; float16 / bfloat16 as their bit patterns).
 */
import protobuf from 'protobufjs';
import { numberToBF16Bits, numberToF16Bits, type DType } from '../../../ir/dtype.js';
import { KilnError } from '../../../ir/errors.js';
import type { Tensor } from '../../../ir/tensor.js';
import { ONNX_SCHEMA_PROTO } from './schema.js';

const root = protobuf.parse(ONNX_SCHEMA_PROTO, { keepCase: true }).root;
const ModelProto = root.lookupType('onnx.ModelProto');
const TensorProto = root.lookupType('onnx.TensorProto');

/** The bytes of a ModelProto given as a plain object (`{ ir_version, opset_import, graph: { node, … } }`). */
export function encodeModelProto(model: object): Uint8Array {
  return ModelProto.encode(ModelProto.fromObject(model)).finish();
}

/** The bytes of a TensorProto given as a plain object (backend-test `.pb` files). */
export function encodeTensorProto(tensor: object): Uint8Array {
  return TensorProto.encode(TensorProto.fromObject(tensor)).finish();
}

/** AttributeProto.AttributeType codes. */
export const ATTR = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Bytes of `n` elements of `dtype` in raw form. */
export function rawByteLength(dtype: DType, n: number): number {
  switch (dtype) {
    case 'f64':
    case 'i64':
    case 'u64':
      return n * 8;
    case 'f32':
    case 'i32':
    case 'u32':
      return n * 4;
    case 'f16':
    case 'bf16':
    case 'i16':
    case 'u16':
      return n * 2;
    case 'i8':
    case 'u8':
    case 'bool':
      return n;
    case 'i4':
    case 'u4':
      return Math.ceil(n / 2);
  }
}

/** A typed array's bytes, little-endian whatever the platform. */
function leBytes(a: ArrayBufferView & { length: number; BYTES_PER_ELEMENT: number }): Uint8Array {
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (LITTLE_ENDIAN || a.BYTES_PER_ELEMENT === 1) return bytes;
  const out = new Uint8Array(bytes.length);
  const w = a.BYTES_PER_ELEMENT;
  for (let i = 0; i < bytes.length; i += w) for (let j = 0; j < w; j++) out[i + j] = bytes[i + w - 1 - j]!;
  return out;
}

/** A tensor's values as ONNX raw_data bytes. */
export function tensorRawData(t: Tensor): Uint8Array {
  const d = t.data;
  const n = d.length;
  switch (t.dtype) {
    case 'f32':
      return leBytes(d instanceof Float32Array ? d : Float32Array.from(d));
    case 'f64':
      return leBytes(d instanceof Float64Array ? d : Float64Array.from(d));
    case 'f16':
    case 'bf16': {
      const bits = new Uint16Array(n);
      const conv = t.dtype === 'f16' ? numberToF16Bits : numberToBF16Bits;
      for (let i = 0; i < n; i++) bits[i] = conv(d[i]!);
      return leBytes(bits);
    }
    case 'i64':
    case 'u64': {
      // kiln holds 64-bit integers as float64: exact to 2^53, and the importer's INT64_MAX (a common "to the end"
      // slice bound) became 2^63, which is written back clamped to the type's range
      const signed = t.dtype === 'i64';
      const out = signed ? new BigInt64Array(n) : new BigUint64Array(n);
      const [lo, hi] = signed ? [-(2n ** 63n), 2n ** 63n - 1n] : [0n, 2n ** 64n - 1n];
      for (let i = 0; i < n; i++) {
        const v = d[i]!;
        if (!Number.isInteger(v)) {
          throw new KilnError('dtype', `${t.dtype} element ${i} (${v}) is not an integer`, {});
        }
        const b = BigInt(v);
        out[i] = b < lo ? lo : b > hi ? hi : b;
      }
      return leBytes(out);
    }
    case 'i32':
      return leBytes(d instanceof Int32Array ? d : Int32Array.from(d));
    case 'u32':
      return leBytes(d instanceof Uint32Array ? d : Uint32Array.from(d));
    case 'i16':
      return leBytes(d instanceof Int16Array ? d : Int16Array.from(d));
    case 'u16':
      return leBytes(d instanceof Uint16Array ? d : Uint16Array.from(d));
    case 'i8':
      return leBytes(d instanceof Int8Array ? d : Int8Array.from(d));
    case 'u8':
    case 'bool':
      return d instanceof Uint8Array ? d : Uint8Array.from(d);
    case 'i4':
    case 'u4': {
      const out = new Uint8Array(Math.ceil(n / 2));
      for (let i = 0; i < n; i++) out[i >> 1]! |= (d[i]! & 0xf) << ((i & 1) * 4);
      return out;
    }
  }
}
