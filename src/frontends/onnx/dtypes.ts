/** ONNX TensorProto.DataType codes ↔ kiln dtypes. */
import type { DType } from '../../../ir/dtype.js';

const TO_KILN: Readonly<Record<number, DType>> = {
  1: 'f32',
  2: 'u8',
  3: 'i8',
  4: 'u16',
  5: 'i16',
  6: 'i32',
  7: 'i64',
  9: 'bool',
  10: 'f16',
  11: 'f64',
  12: 'u32',
  13: 'u64',
  16: 'bf16',
  21: 'u4',
  22: 'i4',
};

const NAMES: Readonly<Record<number, string>> = {
  0: 'UNDEFINED',
  1: 'FLOAT',
  2: 'UINT8',
  3: 'INT8',
  4: 'UINT16',
  5: 'INT16',
  6: 'INT32',
  7: 'INT64',
  8: 'STRING',
  9: 'BOOL',
  10: 'FLOAT16',
  11: 'DOUBLE',
  12: 'UINT32',
  13: 'UINT64',
  14: 'COMPLEX64',
  15: 'COMPLEX128',
  16: 'BFLOAT16',
  17: 'FLOAT8E4M3FN',
  18: 'FLOAT8E4M3FNUZ',
  19: 'FLOAT8E5M2',
  20: 'FLOAT8E5M2FNUZ',
  21: 'UINT4',
  22: 'INT4',
  23: 'FLOAT4E2M1',
  24: 'FLOAT8E8M0',
  25: 'UINT2',
  26: 'INT2',
};

export function kilnDtypeOf(code: number): DType | undefined {
  return TO_KILN[code];
}

export function onnxCodeOf(dt: DType): number {
  for (const [k, v] of Object.entries(TO_KILN)) if (v === dt) return Number(k);
  throw new Error(`no ONNX code for ${dt}`);
}

export function onnxTypeName(code: number): string {
  return NAMES[code] ?? `DataType(${code})`;
}
