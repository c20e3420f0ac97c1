/**
 * ONNX protobuf decoding: bytes of a `ModelProto` / `TensorProto` (and the backend-test value messages) in, plain,
 * typed, protobuf-free data out. No mapping to kiln ops happens here.
 *
 * Every malformed input (random bytes, truncation, wrong wire types, lengths past the end, element counts that do
 * not match `dims`, absurd sizes) raises {@link ParseError}; nothing else escapes. Element arrays are only allocated
 * after their size was checked against the bytes actually present, so a hostile header cannot make us allocate
 * gigabytes.
 *
 * Tensor element values are decoded to float64 exactly (every ONNX numeric type except (U)INT64 fits a float64
 * exactly). INT64 / UINT64 tensors come back as a `Float64Array` when every element is exactly representable as a
 * float64, and otherwise as a `BigInt64Array` (INT64) / `BigUint64Array` (UINT64) holding the exact values; use
 * {@link tensorValuesToFloat64} for a float64 view regardless. INT64 scalars elsewhere (dims, attribute ints,
 * opset versions, shape dims) are plain numbers and lose precision beyond 2^53.
 */
import protobuf from 'protobufjs';
import { ParseError, type ErrorLocation } from '../../../ir/errors.js';
import { ONNX_SCHEMA_PROTO } from './schema.js';

// ---------------------------------------------------------------------------------------------------------------
// Public data types

/** ONNX `TensorProto.DataType` codes. */
export const ONNX_DTYPE = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
  FLOAT8E4M3FN: 17,
  FLOAT8E4M3FNUZ: 18,
  FLOAT8E5M2: 19,
  FLOAT8E5M2FNUZ: 20,
  UINT4: 21,
  INT4: 22,
  FLOAT4E2M1: 23,
  FLOAT8E8M0: 24,
  UINT2: 25,
  INT2: 26,
} as const;

export type OnnxDtypeName = keyof typeof ONNX_DTYPE;

const DTYPE_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(ONNX_DTYPE).map(([k, v]) => [v, k]));

/** Name of an ONNX data-type code (`1` → `'FLOAT'`); unknown codes give `'UNKNOWN(<code>)'`. */
export function onnxDtypeName(code: number): string {
  return DTYPE_NAMES.get(code) ?? `UNKNOWN(${code})`;
}

/** ONNX `AttributeProto.AttributeType` codes. */
export const ONNX_ATTRIBUTE_TYPE = {
  UNDEFINED: 0,
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
  SPARSE_TENSOR: 11,
  SPARSE_TENSORS: 12,
  TYPE_PROTO: 13,
  TYPE_PROTOS: 14,
} as const;

export interface OnnxOpsetId {
  domain: string;
  version: number;
}

export interface OnnxModel {
  irVersion: number;
  producerName: string;
  producerVersion: string;
  opsetImport: OnnxOpsetId[];
  graph: OnnxGraph;
  functions: OnnxFunction[];
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  sparseInitializers: OnnxSparseTensor[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  valueInfo: OnnxValueInfo[];
}

export interface OnnxNode {
  name: string;
  opType: string;
  domain: string;
  /** Input value names; `''` marks an omitted optional input. */
  inputs: string[];
  outputs: string[];
  attributes: Map<string, OnnxAttribute>;
}

/**
 * A decoded attribute. `kind: 'ref'` is an attribute of a function-body node that refers to an attribute of the
 * calling node (`ref_attr_name`); `attrType` is its declared `AttributeType` code.
 */
export type OnnxAttribute =
  | { kind: 'float'; value: number }
  | { kind: 'int'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'tensor'; value: OnnxTensor }
  | { kind: 'graph'; value: OnnxGraph }
  | { kind: 'sparse_tensor'; value: OnnxSparseTensor }
  | { kind: 'type_proto'; value: OnnxType }
  | { kind: 'floats'; value: number[] }
  | { kind: 'ints'; value: number[] }
  | { kind: 'strings'; value: string[] }
  | { kind: 'tensors'; value: OnnxTensor[] }
  | { kind: 'graphs'; value: OnnxGraph[] }
  | { kind: 'sparse_tensors'; value: OnnxSparseTensor[] }
  | { kind: 'type_protos'; value: OnnxType[] }
  | { kind: 'ref'; refAttrName: string; attrType: number };

/** One dimension of a tensor type: a size, a symbolic name (`dim_param`), or `null` when neither is given. */
export type OnnxDim = number | string | null;

export type OnnxType =
  | { kind: 'tensor'; elemType: number; shape?: OnnxDim[] }
  | { kind: 'sequence'; elem: OnnxType }
  | { kind: 'optional'; elem: OnnxType }
  | { kind: 'map'; keyType: number; valueType: OnnxType }
  | { kind: 'sparse_tensor'; elemType: number; shape?: OnnxDim[] }
  | { kind: 'unknown' };

export interface OnnxValueInfo {
  name: string;
  type: OnnxType;
}

/**
 * Decoded element values. Numeric types: a `Float64Array` of exact values (BOOL as 0/1, COMPLEX64/128 interleaved
 * real, imaginary — so twice the element count). INT64 / UINT64 whose values do not all fit a float64 exactly:
 * `BigInt64Array` / `BigUint64Array`. STRING: `string[]`.
 */
export type OnnxTensorValues = Float64Array | BigInt64Array | BigUint64Array | string[];

export interface OnnxTensor {
  name: string;
  /** ONNX `DataType` code, see {@link ONNX_DTYPE}. */
  dataType: number;
  dims: number[];
  values: OnnxTensorValues;
  /** True when the data lives in an external file (`data_location = EXTERNAL`); `values` is then empty. */
  externalData: boolean;
  /** The `external_data` key/value entries (location, offset, length, checksum), when `externalData`. */
  externalInfo?: Record<string, string>;
  /** Present when the tensor is a segment `[begin, end)` of the flattened full tensor; `values` holds that range. */
  segment?: { begin: number; end: number };
}

export interface OnnxSparseTensor {
  dims: number[];
  /** 1-D tensor of the NNZ non-zero values. */
  values: OnnxTensor;
  /** `[NNZ]` linearized or `[NNZ, rank]` coordinate indices (INT64). */
  indices: OnnxTensor;
}

export interface OnnxFunction {
  name: string;
  domain: string;
  overload: string;
  inputs: string[];
  outputs: string[];
  /** Names of the attributes the function takes (both `attribute` and `attribute_proto` names). */
  attributes: string[];
  /** Default values of attributes declared with `attribute_proto`. */
  attributeDefaults: Map<string, OnnxAttribute>;
  nodes: OnnxNode[];
  opsetImport: OnnxOpsetId[];
}

/** A backend-test value (`test_data_set_N/*.pb`): a TensorProto, SequenceProto, OptionalProto or MapProto. */
export type OnnxValue =
  | { kind: 'tensor'; value: OnnxTensor }
  | { kind: 'sparse_tensor'; value: OnnxSparseTensor }
  | { kind: 'sequence'; name: string; elems: OnnxValue[] }
  | { kind: 'optional'; name: string; elem: OnnxValue | null }
  | { kind: 'map'; name: string; keyType: number; keys: number[] | string[]; values: OnnxValue[] };

// ---------------------------------------------------------------------------------------------------------------
// Raw decoded protobuf shapes (what protobufjs produces for ONNX_SCHEMA_PROTO with keepCase)

type Int64 = number | { low: number; high: number; unsigned?: boolean };
type Bytes = Uint8Array | number[];

interface PEntry {
  key: string;
  value: string;
}
interface POpset {
  domain: string;
  version: Int64;
}
interface PModel {
  ir_version: Int64;
  producer_name: string;
  producer_version: string;
  graph: PGraph | null;
  opset_import: POpset[];
  functions: PFunction[];
}
interface PGraph {
  node: PNode[];
  name: string;
  initializer: PTensor[];
  input: PValueInfo[];
  output: PValueInfo[];
  value_info: PValueInfo[];
  sparse_initializer: PSparse[];
}
interface PNode {
  input: string[];
  output: string[];
  name: string;
  op_type: string;
  attribute: PAttr[];
  domain: string;
}
interface PAttr {
  name: string;
  f: number;
  i: Int64;
  s: Bytes;
  t: PTensor | null;
  g: PGraph | null;
  floats: number[];
  ints: Int64[];
  strings: Bytes[];
  tensors: PTensor[];
  graphs: PGraph[];
  tp: PType | null;
  type_protos: PType[];
  type: number;
  ref_attr_name: string;
  sparse_tensor: PSparse | null;
  sparse_tensors: PSparse[];
}
interface PTensor {
  dims: Int64[];
  data_type: number;
  segment: { begin: Int64; end: Int64 } | null;
  float_data: number[];
  int32_data: number[];
  string_data: Bytes[];
  int64_data: Int64[];
  name: string;
  raw_data: Bytes;
  double_data: number[];
  uint64_data: Int64[];
  external_data: PEntry[];
  data_location: number;
}
interface PSparse {
  values: PTensor | null;
  indices: PTensor | null;
  dims: Int64[];
}
interface PValueInfo {
  name: string;
  type: PType | null;
}
interface PShape {
  dim: { dim_value?: Int64; dim_param?: string }[];
}
interface PType {
  tensor_type: { elem_type: number; shape: PShape | null } | null;
  sequence_type: { elem_type: PType | null } | null;
  map_type: { key_type: number; value_type: PType | null } | null;
  sparse_tensor_type: { elem_type: number; shape: PShape | null } | null;
  optional_type: { elem_type: PType | null } | null;
}
interface PFunction {
  name: string;
  input: string[];
  output: string[];
  attribute: string[];
  node: PNode[];
  opset_import: POpset[];
  domain: string;
  attribute_proto: PAttr[];
  overload: string;
}
interface PSequence {
  name: string;
  elem_type: number;
  tensor_values: PTensor[];
  sparse_tensor_values: PSparse[];
  sequence_values: PSequence[];
  map_values: PMap[];
  optional_values: POptional[];
}
interface PMap {
  name: string;
  key_type: number;
  keys: Int64[];
  string_keys: Bytes[];
  values: PSequence | null;
}
interface POptional {
  name: string;
  elem_type: number;
  tensor_value: PTensor | null;
  sparse_tensor_value: PSparse | null;
  sequence_value: PSequence | null;
  map_value: PMap | null;
  optional_value: POptional | null;
}

const root = protobuf.parse(ONNX_SCHEMA_PROTO, { keepCase: true }).root;
const ModelProto = root.lookupType('onnx.ModelProto');
const TensorProto = root.lookupType('onnx.TensorProto');
const SequenceProto = root.lookupType('onnx.SequenceProto');
const OptionalProto = root.lookupType('onnx.OptionalProto');
const MapProto = root.lookupType('onnx.MapProto');

// ---------------------------------------------------------------------------------------------------------------
// Entry points

/** Decodes a serialized `ModelProto` and checks its minimal structure (a graph; every node has an op_type). */
export function decodeModel(bytes: Uint8Array): OnnxModel {
  return guarded('model', () => {
    const p = ModelProto.decode(checkBytes(bytes)) as unknown as PModel;
    if (p.graph === null || p.graph === undefined) throw new ParseError('ONNX model has no graph');
    const functions = p.functions.map(convertFunction);
    return {
      irVersion: int64ToNumber(p.ir_version),
      producerName: p.producer_name,
      producerVersion: p.producer_version,
      opsetImport: p.opset_import.map(convertOpset),
      graph: convertGraph(p.graph),
      functions,
    };
  });
}

/** Decodes a serialized `TensorProto` (e.g. a backend-test `input_0.pb`). */
export function decodeTensor(bytes: Uint8Array): OnnxTensor {
  return guarded('tensor', () => convertTensor(TensorProto.decode(checkBytes(bytes)) as unknown as PTensor));
}

/**
 * Decodes a backend-test value file whose message kind follows from the graph input/output type it belongs to:
 * tensor → TensorProto, sequence → SequenceProto, optional → OptionalProto, map → MapProto. A sparse-tensor or
 * unknown type is read as a TensorProto.
 */
export function decodeValue(bytes: Uint8Array, type: OnnxType): OnnxValue {
  return guarded('value', () => {
    const buf = checkBytes(bytes);
    switch (type.kind) {
      case 'sequence':
        return convertSequence(SequenceProto.decode(buf) as unknown as PSequence);
      case 'optional':
        return convertOptional(OptionalProto.decode(buf) as unknown as POptional);
      case 'map':
        return convertMap(MapProto.decode(buf) as unknown as PMap);
      default:
        return { kind: 'tensor', value: convertTensor(TensorProto.decode(buf) as unknown as PTensor) };
    }
  });
}

/** Where an external tensor's bytes live: a file relative to the model's directory, a byte offset and a length. */
export interface ExternalDataRef {
  location: string;
  offset: number;
  length: number;
}

/**
 * The `external_data` entries of an external tensor, checked: `location` (required), `offset` (default 0) and
 * `length` (default: the bytes its elements need; if given it must be exactly that) as non-negative integers.
 * A malformed entry is a ParseError naming the tensor.
 */
export function externalDataRef(t: OnnxTensor): ExternalDataRef {
  const loc: ErrorLocation = { tensor: t.name };
  const info = t.externalInfo;
  if (!t.externalData || !info) throw new ParseError('tensor has no external data', loc);
  const location = info['location'];
  if (!location) throw new ParseError('external tensor data without a location', loc);
  const num = (key: string, dflt: number): number => {
    const v = info[key];
    if (v === undefined) return dflt;
    const n = /^\d+$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n)) throw new ParseError(`external data ${key} '${v}' is not a byte count`, loc);
    return n;
  };
  const need = externalByteLength(t);
  const length = num('length', need);
  if (length !== need) {
    throw new ParseError(
      `external data length ${length} differs from the ${need} bytes of its ${onnxDtypeName(t.dataType)} elements`,
      loc,
    );
  }
  return { location, offset: num('offset', 0), length };
}

/** Bytes the elements of an external tensor take in raw (little-endian, packed) form. */
function externalByteLength(t: OnnxTensor): number {
  const loc: ErrorLocation = { tensor: t.name };
  const bits = elementBits(t.dataType);
  if (bits === undefined || t.dataType === ONNX_DTYPE.STRING) {
    throw new ParseError(`external data of type ${onnxDtypeName(t.dataType)} is not supported`, loc);
  }
  let count = 1;
  for (const d of t.dims) count *= d;
  if (t.segment) count = t.segment.end - t.segment.begin;
  if (count > MAX_ELEMENTS) throw new ParseError(`tensor has ${count} elements, more than supported`, loc);
  return Math.ceil((count * bits) / 8);
}

/**
 * The tensor with its values decoded from `bytes`, the raw (little-endian) contents of its external data range;
 * a wrong byte count is a ParseError naming the tensor.
 */
export function withExternalValues(t: OnnxTensor, bytes: Uint8Array): OnnxTensor {
  const loc: ErrorLocation = { tensor: t.name };
  const need = externalByteLength(t);
  if (bytes.length !== need) throw countMismatch(bytes.length, 'external data bytes', need, t.dataType, loc);
  const bits = elementBits(t.dataType)!;
  const components = t.dataType === ONNX_DTYPE.COMPLEX64 || t.dataType === ONNX_DTYPE.COMPLEX128 ? 2 : 1;
  const count = t.segment ? t.segment.end - t.segment.begin : t.dims.reduce((a, b) => a * b, 1);
  const values = guarded('external tensor data', () => decodeRaw(bytes, t.dataType, bits, count, components));
  const out: OnnxTensor = { ...t, values, externalData: false };
  delete out.externalInfo;
  return out;
}

/** Element values as float64 (INT64/UINT64 big-integer arrays are rounded to nearest; STRING is rejected). */
export function tensorValuesToFloat64(t: OnnxTensor): Float64Array {
  const v = t.values;
  if (v instanceof Float64Array) return v;
  if (Array.isArray(v)) throw new ParseError('string tensor has no numeric values', { tensor: t.name });
  const out = new Float64Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = Number(v[i]);
  return out;
}

function checkBytes(bytes: Uint8Array): Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw new ParseError('ONNX input must be a Uint8Array');
  return bytes;
}

function guarded<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ParseError) throw e;
    const msg = e instanceof Error ? e.message : String(e);
    throw new ParseError(`malformed ONNX ${what}: ${msg}`, {}, { cause: e });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Structure conversion

const utf8 = new TextDecoder('utf-8');

function bytesToString(b: Bytes | null | undefined): string {
  if (b === null || b === undefined || b.length === 0) return '';
  return utf8.decode(b instanceof Uint8Array ? b : Uint8Array.from(b));
}

function has(obj: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(obj, key);
}

function convertOpset(o: POpset): OnnxOpsetId {
  return { domain: o.domain, version: int64ToNumber(o.version) };
}

function convertGraph(g: PGraph): OnnxGraph {
  return {
    name: g.name,
    nodes: g.node.map(convertNode),
    initializers: g.initializer.map(convertTensor),
    sparseInitializers: g.sparse_initializer.map(convertSparse),
    inputs: g.input.map(convertValueInfo),
    outputs: g.output.map(convertValueInfo),
    valueInfo: g.value_info.map(convertValueInfo),
  };
}

function convertNode(n: PNode): OnnxNode {
  const loc: ErrorLocation = { node: n.name };
  if (n.op_type === '') throw new ParseError('ONNX node has no op_type', loc);
  loc.op = n.op_type;
  return {
    name: n.name,
    opType: n.op_type,
    domain: n.domain,
    inputs: n.input.slice(),
    outputs: n.output.slice(),
    attributes: convertAttributes(n.attribute, loc),
  };
}

function convertAttributes(attrs: PAttr[], loc: ErrorLocation): Map<string, OnnxAttribute> {
  const out = new Map<string, OnnxAttribute>();
  for (const a of attrs) {
    if (a.name === '') throw new ParseError('ONNX attribute without a name', loc);
    if (out.has(a.name)) throw new ParseError(`duplicate attribute '${a.name}'`, loc);
    out.set(a.name, convertAttribute(a, loc));
  }
  return out;
}

const T = ONNX_ATTRIBUTE_TYPE;

/** The attribute type, inferred from the fields present when `type` is UNDEFINED (very old writers). */
function attributeType(a: PAttr): number {
  if (a.type !== T.UNDEFINED) return a.type;
  const singular: [string, number][] = [
    ['f', T.FLOAT],
    ['i', T.INT],
    ['s', T.STRING],
    ['t', T.TENSOR],
    ['g', T.GRAPH],
    ['sparse_tensor', T.SPARSE_TENSOR],
    ['tp', T.TYPE_PROTO],
  ];
  for (const [k, t] of singular) if (has(a, k)) return t;
  const lists: [keyof PAttr, number][] = [
    ['floats', T.FLOATS],
    ['ints', T.INTS],
    ['strings', T.STRINGS],
    ['tensors', T.TENSORS],
    ['graphs', T.GRAPHS],
    ['sparse_tensors', T.SPARSE_TENSORS],
    ['type_protos', T.TYPE_PROTOS],
  ];
  for (const [k, t] of lists) if ((a[k] as unknown[]).length > 0) return t;
  return T.UNDEFINED;
}

function convertAttribute(a: PAttr, nodeLoc: ErrorLocation): OnnxAttribute {
  const type = attributeType(a);
  if (a.ref_attr_name !== '') return { kind: 'ref', refAttrName: a.ref_attr_name, attrType: type };
  const missing = (what: string) => new ParseError(`attribute '${a.name}' of type ${what} has no value`, nodeLoc);
  switch (type) {
    case T.FLOAT:
      return { kind: 'float', value: a.f };
    case T.INT:
      return { kind: 'int', value: int64ToNumber(a.i) };
    case T.STRING:
      return { kind: 'string', value: bytesToString(a.s) };
    case T.TENSOR:
      if (!a.t) throw missing('TENSOR');
      return { kind: 'tensor', value: convertTensor(a.t) };
    case T.GRAPH:
      if (!a.g) throw missing('GRAPH');
      return { kind: 'graph', value: convertGraph(a.g) };
    case T.SPARSE_TENSOR:
      if (!a.sparse_tensor) throw missing('SPARSE_TENSOR');
      return { kind: 'sparse_tensor', value: convertSparse(a.sparse_tensor) };
    case T.TYPE_PROTO:
      if (!a.tp) throw missing('TYPE_PROTO');
      return { kind: 'type_proto', value: convertType(a.tp) };
    case T.FLOATS:
      return { kind: 'floats', value: a.floats.slice() };
    case T.INTS:
      return { kind: 'ints', value: a.ints.map(int64ToNumber) };
    case T.STRINGS:
      return { kind: 'strings', value: a.strings.map(bytesToString) };
    case T.TENSORS:
      return { kind: 'tensors', value: a.tensors.map(convertTensor) };
    case T.GRAPHS:
      return { kind: 'graphs', value: a.graphs.map(convertGraph) };
    case T.SPARSE_TENSORS:
      return { kind: 'sparse_tensors', value: a.sparse_tensors.map(convertSparse) };
    case T.TYPE_PROTOS:
      return { kind: 'type_protos', value: a.type_protos.map(convertType) };
    default:
      throw new ParseError(`attribute '${a.name}' has invalid type ${type}`, nodeLoc);
  }
}

function convertValueInfo(v: PValueInfo): OnnxValueInfo {
  return { name: v.name, type: v.type ? convertType(v.type) : { kind: 'unknown' } };
}

function convertShape(s: PShape | null): OnnxDim[] | undefined {
  if (!s) return undefined;
  return s.dim.map((d) => {
    if (has(d, 'dim_param')) return d.dim_param!;
    if (has(d, 'dim_value')) return int64ToNumber(d.dim_value!);
    return null;
  });
}

function convertType(t: PType): OnnxType {
  if (t.tensor_type) {
    const shape = convertShape(t.tensor_type.shape);
    return shape
      ? { kind: 'tensor', elemType: t.tensor_type.elem_type, shape }
      : { kind: 'tensor', elemType: t.tensor_type.elem_type };
  }
  if (t.sequence_type) {
    const e = t.sequence_type.elem_type;
    return { kind: 'sequence', elem: e ? convertType(e) : { kind: 'unknown' } };
  }
  if (t.optional_type) {
    const e = t.optional_type.elem_type;
    return { kind: 'optional', elem: e ? convertType(e) : { kind: 'unknown' } };
  }
  if (t.map_type) {
    const v = t.map_type.value_type;
    return { kind: 'map', keyType: t.map_type.key_type, valueType: v ? convertType(v) : { kind: 'unknown' } };
  }
  if (t.sparse_tensor_type) {
    const shape = convertShape(t.sparse_tensor_type.shape);
    return shape
      ? { kind: 'sparse_tensor', elemType: t.sparse_tensor_type.elem_type, shape }
      : { kind: 'sparse_tensor', elemType: t.sparse_tensor_type.elem_type };
  }
  return { kind: 'unknown' };
}

function convertFunction(f: PFunction): OnnxFunction {
  const loc: ErrorLocation = { node: `${f.domain}.${f.name}`, op: 'function' };
  if (f.name === '') throw new ParseError('ONNX function without a name', loc);
  const attributeDefaults = convertAttributes(f.attribute_proto, loc);
  return {
    name: f.name,
    domain: f.domain,
    overload: f.overload,
    inputs: f.input.slice(),
    outputs: f.output.slice(),
    attributes: [...f.attribute, ...attributeDefaults.keys()],
    attributeDefaults,
    nodes: f.node.map(convertNode),
    opsetImport: f.opset_import.map(convertOpset),
  };
}

function convertSparse(s: PSparse): OnnxSparseTensor {
  if (!s.values || !s.indices) throw new ParseError('sparse tensor without values or indices');
  const values = convertTensor(s.values);
  return { dims: s.dims.map((d) => checkDim(d, values.name)), values, indices: convertTensor(s.indices) };
}

function convertSequence(s: PSequence): OnnxValue {
  const elems: OnnxValue[] = [
    ...s.tensor_values.map((t): OnnxValue => ({ kind: 'tensor', value: convertTensor(t) })),
    ...s.sparse_tensor_values.map((t): OnnxValue => ({ kind: 'sparse_tensor', value: convertSparse(t) })),
    ...s.sequence_values.map(convertSequence),
    ...s.map_values.map(convertMap),
    ...s.optional_values.map(convertOptional),
  ];
  return { kind: 'sequence', name: s.name, elems };
}

function convertOptional(o: POptional): OnnxValue {
  let elem: OnnxValue | null = null;
  if (o.tensor_value) elem = { kind: 'tensor', value: convertTensor(o.tensor_value) };
  else if (o.sparse_tensor_value) elem = { kind: 'sparse_tensor', value: convertSparse(o.sparse_tensor_value) };
  else if (o.sequence_value) elem = convertSequence(o.sequence_value);
  else if (o.map_value) elem = convertMap(o.map_value);
  else if (o.optional_value) elem = convertOptional(o.optional_value);
  return { kind: 'optional', name: o.name, elem };
}

function convertMap(m: PMap): OnnxValue {
  const keys = m.key_type === ONNX_DTYPE.STRING ? m.string_keys.map(bytesToString) : m.keys.map(int64ToNumber);
  const values = m.values ? (convertSequence(m.values) as { elems: OnnxValue[] }).elems : [];
  if (keys.length !== values.length) {
    throw new ParseError(`map '${m.name}' has ${keys.length} keys but ${values.length} values`);
  }
  return { kind: 'map', name: m.name, keyType: m.key_type, keys, values };
}

// ---------------------------------------------------------------------------------------------------------------
// 64-bit integers

const TWO32 = 4294967296;

function int64Parts(v: Int64): { lo: number; hi: number } {
  if (typeof v === 'number') {
    // Only when protobufjs runs without the `long` package: value already rounded to a double.
    const hi = Math.floor(v / TWO32);
    return { lo: v - hi * TWO32, hi: hi | 0 };
  }
  return { lo: v.low, hi: v.high };
}

/** Signed (or, for Long values flagged unsigned, unsigned) 64-bit value as the nearest double. */
function int64ToNumber(v: Int64): number {
  if (typeof v === 'number') return v;
  const hi = v.unsigned ? v.high >>> 0 : v.high | 0;
  return hi * TWO32 + (v.low >>> 0);
}

/** Is the 64-bit value (lo, hi) exactly representable as a double? */
function int64Exact(lo: number, hi: number, unsigned: boolean): boolean {
  const h = unsigned ? hi >>> 0 : hi | 0;
  if (h >= -0x200000 && h < 0x200000) return true; // |v| < 2^53
  const big = unsigned ? bigU64(lo, hi) : bigI64(lo, hi);
  return BigInt(Number(big)) === big;
}

function bigI64(lo: number, hi: number): bigint {
  return BigInt.asIntN(64, (BigInt(hi | 0) << 32n) | BigInt(lo >>> 0));
}

function bigU64(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** Builds INT64 / UINT64 values from (lo, hi) word pairs, exact-float64 when possible. */
function build64(
  count: number,
  lo: (i: number) => number,
  hi: (i: number) => number,
  unsigned: boolean,
): Float64Array | BigInt64Array | BigUint64Array {
  const f = new Float64Array(count);
  let exact = true;
  for (let i = 0; i < count; i++) {
    const l = lo(i);
    const h = hi(i);
    f[i] = (unsigned ? h >>> 0 : h | 0) * TWO32 + (l >>> 0);
    if (exact && !int64Exact(l, h, unsigned)) exact = false;
  }
  if (exact) return f;
  if (unsigned) {
    const b = new BigUint64Array(count);
    for (let i = 0; i < count; i++) b[i] = bigU64(lo(i), hi(i));
    return b;
  }
  const b = new BigInt64Array(count);
  for (let i = 0; i < count; i++) b[i] = bigI64(lo(i), hi(i));
  return b;
}

// ---------------------------------------------------------------------------------------------------------------
// Scalar formats (bit pattern → exact float64)

/** IEEE 754 binary16. */
export function float16BitsToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1024 + m) * 2 ** (e - 25);
}

/** bfloat16 (the top half of an IEEE binary32). */
export function bfloat16BitsToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 7) & 0xff;
  const m = h & 0x7f;
  if (e === 0) return s * m * 2 ** -133;
  if (e === 255) return m ? NaN : s * Infinity;
  return s * (128 + m) * 2 ** (e - 134);
}

type MiniKind = 'ieee' | 'fn' | 'fnuz' | 'e8m0' | 'e2m1';

/** Lookup table for a small float format with `eb` exponent bits, `mb` mantissa bits and bias. */
function miniFloatTable(eb: number, mb: number, bias: number, kind: MiniKind): Float64Array {
  const bits = 1 + eb + mb;
  const n = 1 << (kind === 'e8m0' ? 8 : bits);
  const table = new Float64Array(n);
  for (let code = 0; code < n; code++) {
    if (kind === 'e8m0') {
      table[code] = code === 0xff ? NaN : 2 ** (code - 127);
      continue;
    }
    const sign = (code >> (eb + mb)) & 1;
    const e = (code >> mb) & ((1 << eb) - 1);
    const m = code & ((1 << mb) - 1);
    const eMax = (1 << eb) - 1;
    const s = sign ? -1 : 1;
    let v: number;
    if (kind === 'fnuz' && sign === 1 && e === 0 && m === 0)
      v = NaN; // 0x80: the only NaN, no -0
    else if (kind === 'fn' && e === eMax && m === (1 << mb) - 1)
      v = NaN; // S.1111.111
    else if (kind === 'ieee' && e === eMax) v = m ? NaN : s * Infinity;
    else if (e === 0) v = s * m * 2 ** (1 - bias - mb);
    else v = s * ((1 << mb) + m) * 2 ** (e - bias - mb);
    table[code] = v;
  }
  return table;
}

const miniTables = new Map<number, Float64Array>();

function miniTable(dtype: number): Float64Array {
  let t = miniTables.get(dtype);
  if (t) return t;
  switch (dtype) {
    case ONNX_DTYPE.FLOAT8E4M3FN:
      t = miniFloatTable(4, 3, 7, 'fn');
      break;
    case ONNX_DTYPE.FLOAT8E4M3FNUZ:
      t = miniFloatTable(4, 3, 8, 'fnuz');
      break;
    case ONNX_DTYPE.FLOAT8E5M2:
      t = miniFloatTable(5, 2, 15, 'ieee');
      break;
    case ONNX_DTYPE.FLOAT8E5M2FNUZ:
      t = miniFloatTable(5, 2, 16, 'fnuz');
      break;
    case ONNX_DTYPE.FLOAT8E8M0:
      t = miniFloatTable(8, 0, 127, 'e8m0');
      break;
    case ONNX_DTYPE.FLOAT4E2M1:
      t = miniFloatTable(2, 1, 1, 'e2m1');
      break;
    default:
      throw new Error(`no small-float table for dtype ${dtype}`);
  }
  miniTables.set(dtype, t);
  return t;
}

/** Decodes one element's bit pattern (8-bit, 16-bit or sub-byte code) of a narrow dtype to its exact value. */
export function decodeNarrowBits(dtype: number, bits: number): number {
  return narrowDecoder(dtype)(bits);
}

function narrowDecoder(dtype: number): (bits: number) => number {
  const D = ONNX_DTYPE;
  switch (dtype) {
    case D.UINT8:
    case D.UINT16:
    case D.UINT4:
    case D.UINT2:
      return (b) => b;
    case D.INT8:
      return (b) => (b << 24) >> 24;
    case D.INT16:
      return (b) => (b << 16) >> 16;
    case D.INT4:
      return (b) => (b & 8 ? (b & 15) - 16 : b & 15);
    case D.INT2:
      return (b) => (b & 2 ? (b & 3) - 4 : b & 3);
    case D.BOOL:
      return (b) => (b !== 0 ? 1 : 0);
    case D.FLOAT16:
      return float16BitsToNumber;
    case D.BFLOAT16:
      return bfloat16BitsToNumber;
    default: {
      const table = miniTable(dtype);
      const mask = table.length - 1;
      return (b) => table[b & mask]!;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Tensor values

/** Bits per element in raw_data (COMPLEX: both components); 0 for STRING; undefined for unknown codes. */
function elementBits(dtype: number): number | undefined {
  const D = ONNX_DTYPE;
  switch (dtype) {
    case D.UINT8:
    case D.INT8:
    case D.BOOL:
    case D.FLOAT8E4M3FN:
    case D.FLOAT8E4M3FNUZ:
    case D.FLOAT8E5M2:
    case D.FLOAT8E5M2FNUZ:
    case D.FLOAT8E8M0:
      return 8;
    case D.UINT16:
    case D.INT16:
    case D.FLOAT16:
    case D.BFLOAT16:
      return 16;
    case D.FLOAT:
    case D.INT32:
    case D.UINT32:
      return 32;
    case D.INT64:
    case D.UINT64:
    case D.DOUBLE:
    case D.COMPLEX64:
      return 64;
    case D.COMPLEX128:
      return 128;
    case D.UINT4:
    case D.INT4:
    case D.FLOAT4E2M1:
      return 4;
    case D.UINT2:
    case D.INT2:
      return 2;
    case D.STRING:
      return 0;
    default:
      return undefined;
  }
}

/** Largest element count accepted for one tensor (a Float64Array of it is 32 GiB). */
const MAX_ELEMENTS = 2 ** 32;

function checkDim(d: Int64, tensor: string): number {
  const n = int64ToNumber(d);
  if (!Number.isSafeInteger(n) || n < 0) throw new ParseError(`invalid dimension ${n}`, { tensor });
  return n;
}

function convertTensor(p: PTensor): OnnxTensor {
  const name = p.name;
  const loc: ErrorLocation = { tensor: name };
  const dtype = p.data_type;
  const bits = elementBits(dtype);
  if (bits === undefined) throw new ParseError(`invalid tensor data type ${dtype}`, loc);
  const dims = p.dims.map((d) => checkDim(d, name));
  let total = 1;
  for (const d of dims) total *= d;
  if (!Number.isSafeInteger(total)) throw new ParseError(`element count overflows (dims [${dims}])`, loc);

  const external = p.data_location === 1;
  if (p.data_location !== 0 && !external) {
    throw new ParseError(`invalid data_location ${p.data_location}`, loc);
  }
  const tensor: OnnxTensor = { name, dataType: dtype, dims, values: new Float64Array(0), externalData: external };
  if (dtype === ONNX_DTYPE.STRING) tensor.values = [];

  let count = total;
  if (p.segment) {
    const begin = int64ToNumber(p.segment.begin);
    const end = int64ToNumber(p.segment.end);
    if (!(Number.isSafeInteger(begin) && Number.isSafeInteger(end) && 0 <= begin && begin <= end && end <= total)) {
      throw new ParseError(`invalid segment [${begin}, ${end}) of ${total} elements`, loc);
    }
    tensor.segment = { begin, end };
    count = end - begin;
  }

  if (external) {
    const info: Record<string, string> = {};
    for (const e of p.external_data) info[e.key] = e.value;
    if (info.location === undefined) throw new ParseError('external tensor data without a location', loc);
    tensor.externalInfo = info;
    return tensor;
  }
  if (count > MAX_ELEMENTS) throw new ParseError(`tensor has ${count} elements, more than supported`, loc);
  tensor.values = decodeValues(p, dtype, bits, count, loc);
  return tensor;
}

function countMismatch(have: number, what: string, want: number, dtype: number, loc: ErrorLocation): ParseError {
  return new ParseError(
    `tensor data has ${have} ${what} but ${want} are needed for its ${onnxDtypeName(dtype)} elements`,
    loc,
  );
}

function decodeValues(p: PTensor, dtype: number, bits: number, count: number, loc: ErrorLocation): OnnxTensorValues {
  const D = ONNX_DTYPE;
  const raw = p.raw_data;
  if (dtype === D.STRING) {
    if (raw.length > 0) throw new ParseError('STRING tensor must not use raw_data', loc);
    if (p.string_data.length !== count) throw countMismatch(p.string_data.length, 'strings', count, dtype, loc);
    return p.string_data.map(bytesToString);
  }
  const components = dtype === D.COMPLEX64 || dtype === D.COMPLEX128 ? 2 : 1;

  if (raw.length > 0) {
    const bytes = raw instanceof Uint8Array ? raw : Uint8Array.from(raw);
    const need = Math.ceil((count * bits) / 8);
    if (bytes.length !== need) throw countMismatch(bytes.length, 'raw_data bytes', need, dtype, loc);
    return decodeRaw(bytes, dtype, bits, count, components);
  }

  switch (dtype) {
    case D.FLOAT:
    case D.COMPLEX64:
    case D.DOUBLE:
    case D.COMPLEX128: {
      const src = dtype === D.FLOAT || dtype === D.COMPLEX64 ? p.float_data : p.double_data;
      const n = count * components;
      if (src.length !== n) throw countMismatch(src.length, 'values', n, dtype, loc);
      return Float64Array.from(src);
    }
    case D.INT64:
      if (p.int64_data.length !== count) throw countMismatch(p.int64_data.length, 'int64_data', count, dtype, loc);
      return build64FromLongs(p.int64_data, false);
    case D.UINT64:
    case D.UINT32: {
      const src = p.uint64_data;
      if (src.length !== count) throw countMismatch(src.length, 'uint64_data', count, dtype, loc);
      if (dtype === D.UINT64) return build64FromLongs(src, true);
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) {
        const { lo, hi } = int64Parts(src[i]!);
        out[i] = (hi >>> 0) * TWO32 + (lo >>> 0);
      }
      return out;
    }
    case D.INT32: {
      if (p.int32_data.length !== count) throw countMismatch(p.int32_data.length, 'int32_data', count, dtype, loc);
      return Float64Array.from(p.int32_data);
    }
    default: {
      // Narrow types in int32_data: one element per entry (8/16-bit), or one packed byte per entry (4/2-bit).
      const src = p.int32_data;
      const need = bits >= 8 ? count : Math.ceil((count * bits) / 8);
      if (src.length !== need) throw countMismatch(src.length, 'int32_data', need, dtype, loc);
      const mask = bits === 16 ? 0xffff : 0xff;
      return unpackNarrow(dtype, bits, count, (k) => src[k]! & mask);
    }
  }
}

function build64FromLongs(src: Int64[], unsigned: boolean): Float64Array | BigInt64Array | BigUint64Array {
  const lo = new Int32Array(src.length);
  const hi = new Int32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const parts = int64Parts(src[i]!);
    lo[i] = parts.lo;
    hi[i] = parts.hi;
  }
  return build64(
    src.length,
    (i) => lo[i]!,
    (i) => hi[i]!,
    unsigned,
  );
}

/** Unpacks `count` narrow elements; `unit(k)` is the k-th element's bits (≥ 8-bit types) or k-th packed byte. */
function unpackNarrow(dtype: number, bits: number, count: number, unit: (k: number) => number): Float64Array {
  const dec = narrowDecoder(dtype);
  const out = new Float64Array(count);
  if (bits >= 8) {
    for (let i = 0; i < count; i++) out[i] = dec(unit(i));
  } else if (bits === 4) {
    for (let i = 0; i < count; i++) out[i] = dec((unit(i >> 1) >> ((i & 1) * 4)) & 0xf);
  } else {
    for (let i = 0; i < count; i++) out[i] = dec((unit(i >> 2) >> ((i & 3) * 2)) & 0x3);
  }
  return out;
}

function decodeRaw(
  bytes: Uint8Array,
  dtype: number,
  bits: number,
  count: number,
  components: number,
): OnnxTensorValues {
  const D = ONNX_DTYPE;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case D.FLOAT:
    case D.COMPLEX64: {
      const n = count * components;
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
      return out;
    }
    case D.DOUBLE:
    case D.COMPLEX128: {
      const n = count * components;
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true);
      return out;
    }
    case D.INT32: {
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getInt32(4 * i, true);
      return out;
    }
    case D.UINT32: {
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getUint32(4 * i, true);
      return out;
    }
    case D.INT64:
    case D.UINT64:
      return build64(
        count,
        (i) => dv.getInt32(8 * i, true),
        (i) => dv.getInt32(8 * i + 4, true),
        dtype === D.UINT64,
      );
    default:
      if (bits === 16) return unpackNarrow(dtype, bits, count, (k) => dv.getUint16(2 * k, true));
      return unpackNarrow(dtype, bits, count, (k) => bytes[k]!);
  }
}
