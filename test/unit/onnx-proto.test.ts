import { requireTool, sharedProbe } from '../helpers/tools.js';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { ParseError } from '../../ir/errors.js';
import {
  ONNX_DTYPE,
  decodeModel,
  decodeTensor,
  decodeValue,
  onnxDtypeName,
  tensorValuesToFloat64,
  type OnnxGraph,
  type OnnxModel,
  type OnnxTensor,
} from '../../src/frontends/onnx/proto.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const conformanceRoot = path.resolve(repoRoot, '../shared/conformance');
const haveConformance = !(await requireTool('../shared conformance data', sharedProbe));
const PROP_RUNS = Number(process.env.KILN_PROP_RUNS ?? 1000);

/** Every folder under the conformance root that holds a model.onnx. */
function modelDirs(): string[] {
  const out: string[] = [];
  for (const sub of ['onnx-node', 'models']) {
    const dir = path.join(conformanceRoot, sub);
    if (!fs.existsSync(dir)) continue;
    for (const d of fs.readdirSync(dir).sort()) {
      if (fs.existsSync(path.join(dir, d, 'model.onnx'))) out.push(path.join(dir, d));
    }
  }
  return out;
}

const D = ONNX_DTYPE;

// ---------------------------------------------------------------------------------------------------------------
// A tiny hand-rolled TensorProto / ModelProto writer (field numbers from onnx.proto3), independent of the schema.

const WIRE_VARINT = 0;
const WIRE_LEN = 2;
const tag = (field: number, wire: number) => (field << 3) | wire;
/** 64-bit value as the decimal string protobufjs writers accept (two's complement for uint64). */
const long = (v: bigint) => BigInt.asIntN(64, v).toString();

interface TensorSpec {
  name?: string;
  dims: number[];
  dataType: number;
  raw?: number[];
  int32?: number[];
  int64?: bigint[];
  uint64?: bigint[];
  float?: number[];
  double?: number[];
  strings?: string[];
  external?: boolean;
}

function writeTensor(w: protobuf.Writer, t: TensorSpec): void {
  for (const d of t.dims) w.uint32(tag(1, WIRE_VARINT)).int64(d);
  w.uint32(tag(2, WIRE_VARINT)).int32(t.dataType);
  if (t.float) {
    w.uint32(tag(4, WIRE_LEN)).fork();
    for (const v of t.float) w.float(v);
    w.ldelim();
  }
  if (t.int32) {
    w.uint32(tag(5, WIRE_LEN)).fork();
    for (const v of t.int32) w.int32(v);
    w.ldelim();
  }
  for (const s of t.strings ?? []) w.uint32(tag(6, WIRE_LEN)).bytes(new TextEncoder().encode(s));
  if (t.int64) {
    w.uint32(tag(7, WIRE_LEN)).fork();
    for (const v of t.int64) w.int64(long(v));
    w.ldelim();
  }
  if (t.name !== undefined) w.uint32(tag(8, WIRE_LEN)).string(t.name);
  if (t.raw) w.uint32(tag(9, WIRE_LEN)).bytes(Uint8Array.from(t.raw));
  if (t.double) {
    w.uint32(tag(10, WIRE_LEN)).fork();
    for (const v of t.double) w.double(v);
    w.ldelim();
  }
  if (t.uint64) {
    w.uint32(tag(11, WIRE_LEN)).fork();
    for (const v of t.uint64) w.uint64(long(v));
    w.ldelim();
  }
  if (t.external) {
    w.uint32(tag(13, WIRE_LEN)).fork();
    w.uint32(tag(1, WIRE_LEN)).string('location');
    w.uint32(tag(2, WIRE_LEN)).string('weights.bin');
    w.ldelim();
    w.uint32(tag(14, WIRE_VARINT)).int32(1);
  }
}

function tensorBytes(t: TensorSpec): Uint8Array {
  const w = protobuf.Writer.create();
  writeTensor(w, t);
  return w.finish();
}

function decode(t: TensorSpec): number[] {
  return Array.from(tensorValuesToFloat64(decodeTensor(tensorBytes(t))));
}

function u16le(codes: number[]): number[] {
  return codes.flatMap((c) => [c & 0xff, c >> 8]);
}

/** Same value, treating NaN as equal to NaN and distinguishing -0. */
function sameValues(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

function expectParseError(fn: () => unknown, pattern?: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ParseError);
  if (pattern) expect((err as Error).message).toMatch(pattern);
}

/** Returns 'ok' or 'parse'; rethrows anything that is not a ParseError. */
function outcome(fn: () => unknown): 'ok' | 'parse' {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (e instanceof ParseError) return 'parse';
    throw e;
  }
}

/** Deterministic PRNG for the corpus mutations (seed printed on failure via the test name). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------------------------

describe('ONNX tensor decoding (hand-computed bit patterns)', () => {
  it('FLOAT16 from raw_data and from int32_data', () => {
    const codes = [0x3c00, 0x7bff, 0x0001, 0xc000, 0x8000, 0x03ff, 0x0400, 0x7c00, 0xfc00, 0x7e00, 0x3555];
    const want = [1, 65504, 2 ** -24, -2, -0, 1023 * 2 ** -24, 2 ** -14, Infinity, -Infinity, NaN, 1365 * 2 ** -12];
    expect(sameValues(decode({ dims: [codes.length], dataType: D.FLOAT16, raw: u16le(codes) }), want)).toBe(true);
    expect(sameValues(decode({ dims: [codes.length], dataType: D.FLOAT16, int32: codes }), want)).toBe(true);
  });

  it('BFLOAT16', () => {
    const codes = [0x3f80, 0xc000, 0x7f80, 0xff80, 0x7fc0, 0x0001, 0x7f7f, 0x8000, 0x3e20];
    const want = [1, -2, Infinity, -Infinity, NaN, 2 ** -133, (2 - 2 ** -7) * 2 ** 127, -0, 0.15625];
    expect(sameValues(decode({ dims: [codes.length], dataType: D.BFLOAT16, raw: u16le(codes) }), want)).toBe(true);
    expect(sameValues(decode({ dims: [codes.length], dataType: D.BFLOAT16, int32: codes }), want)).toBe(true);
  });

  it('INT4 / UINT4 (low nibble first) and INT2 / UINT2 (LSB first)', () => {
    // 0x10 -> (0, 1); 0xC7 -> (7, 0xC); 0x08 -> (8, pad)
    expect(decode({ dims: [5], dataType: D.INT4, raw: [0x10, 0xc7, 0x08] })).toEqual([0, 1, 7, -4, -8]);
    expect(decode({ dims: [5], dataType: D.UINT4, raw: [0x10, 0xc7, 0x08] })).toEqual([0, 1, 7, 12, 8]);
    expect(decode({ dims: [5], dataType: D.INT4, int32: [0x10, 0xc7, 0x08] })).toEqual([0, 1, 7, -4, -8]);
    // 0xE4 = 0b11_10_01_00 -> (0, 1, 2, 3)
    expect(decode({ dims: [2, 2], dataType: D.UINT2, raw: [0xe4] })).toEqual([0, 1, 2, 3]);
    expect(decode({ dims: [2, 2], dataType: D.INT2, raw: [0xe4] })).toEqual([0, 1, -2, -1]);
    expect(decode({ dims: [5], dataType: D.INT2, int32: [0xe4, 0x02] })).toEqual([0, 1, -2, -1, -2]);
    // odd count needs ceil(count / 2) bytes
    expectParseError(() => decodeTensor(tensorBytes({ dims: [5], dataType: D.INT4, raw: [0x10, 0xc7] })));
  });

  it('8-bit and 4-bit float formats', () => {
    const f = (dataType: number, raw: number[]) => decode({ dims: [raw.length], dataType, raw });
    expect(
      sameValues(f(D.FLOAT8E4M3FN, [0x38, 0x7e, 0x7f, 0xff, 0x01, 0x08, 0x80, 0xc0]), [
        1,
        448,
        NaN,
        NaN,
        2 ** -9,
        2 ** -6,
        -0,
        -2,
      ]),
    ).toBe(true);
    expect(sameValues(f(D.FLOAT8E4M3FNUZ, [0x40, 0x7f, 0x80, 0x01, 0x00]), [1, 240, NaN, 2 ** -10, 0])).toBe(true);
    expect(
      sameValues(f(D.FLOAT8E5M2, [0x3c, 0x7b, 0x7c, 0xfc, 0x7d, 0x01, 0x80]), [
        1,
        57344,
        Infinity,
        -Infinity,
        NaN,
        2 ** -16,
        -0,
      ]),
    ).toBe(true);
    expect(sameValues(f(D.FLOAT8E5M2FNUZ, [0x40, 0x7f, 0x80, 0x01, 0xff]), [1, 57344, NaN, 2 ** -17, -57344])).toBe(
      true,
    );
    expect(sameValues(f(D.FLOAT8E8M0, [0x7f, 0x00, 0xfe, 0xff, 0x80]), [1, 2 ** -127, 2 ** 127, NaN, 2])).toBe(true);
    // FLOAT4E2M1: all 16 codes, two per byte, low nibble first
    const raw = [0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe];
    expect(
      sameValues(
        decode({ dims: [16], dataType: D.FLOAT4E2M1, raw }),
        [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6],
      ),
    ).toBe(true);
  });

  it('fixed-width integers, floats, bool, strings; raw little-endian and typed fields', () => {
    expect(decode({ dims: [3], dataType: D.INT8, raw: [0x7f, 0x80, 0xff] })).toEqual([127, -128, -1]);
    expect(decode({ dims: [3], dataType: D.INT8, int32: [127, -128, -1] })).toEqual([127, -128, -1]);
    expect(decode({ dims: [2], dataType: D.UINT8, raw: [0, 255] })).toEqual([0, 255]);
    expect(decode({ dims: [2], dataType: D.INT16, raw: [0x00, 0x80, 0x34, 0x12] })).toEqual([-32768, 0x1234]);
    expect(decode({ dims: [1], dataType: D.UINT16, int32: [65535] })).toEqual([65535]);
    expect(decode({ dims: [2], dataType: D.INT32, raw: [0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0x80] })).toEqual([
      -1,
      -(2 ** 31) + 1,
    ]);
    expect(decode({ dims: [1], dataType: D.UINT32, raw: [0xff, 0xff, 0xff, 0xff] })).toEqual([4294967295]);
    expect(decode({ dims: [2], dataType: D.UINT32, uint64: [7n, 4294967295n] })).toEqual([7, 4294967295]);
    expect(decode({ dims: [3], dataType: D.BOOL, raw: [0, 1, 2] })).toEqual([0, 1, 1]);
    expect(decode({ dims: [2], dataType: D.FLOAT, raw: [0, 0, 0x80, 0x3f, 0, 0, 0xc0, 0xff] })).toEqual([1, NaN]);
    expect(decode({ dims: [2], dataType: D.FLOAT, float: [0.5, -3] })).toEqual([0.5, -3]);
    expect(decode({ dims: [], dataType: D.DOUBLE, double: [0.1] })).toEqual([0.1]);
    expect(decode({ dims: [1], dataType: D.DOUBLE, raw: [0x9a, 0x99, 0x99, 0x99, 0x99, 0x99, 0xb9, 0x3f] })).toEqual([
      0.1,
    ]);
    expect(decode({ dims: [2], dataType: D.COMPLEX64, float: [1, 2, 3, 4] })).toEqual([1, 2, 3, 4]);
    const s = decodeTensor(tensorBytes({ name: 's', dims: [2], dataType: D.STRING, strings: ['héllo', ''] }));
    expect(s.values).toEqual(['héllo', '']);
  });

  it('INT64 / UINT64: Float64Array when exact, BigInt arrays otherwise', () => {
    const small = decodeTensor(tensorBytes({ dims: [3], dataType: D.INT64, int64: [1n, -1n, -(2n ** 63n)] }));
    expect(small.values).toBeInstanceOf(Float64Array);
    expect(Array.from(small.values as Float64Array)).toEqual([1, -1, -(2 ** 63)]);
    const big = decodeTensor(tensorBytes({ dims: [2], dataType: D.INT64, int64: [2n ** 53n + 1n, 2n ** 63n - 1n] }));
    expect(big.values).toBeInstanceOf(BigInt64Array);
    expect(Array.from(big.values as BigInt64Array)).toEqual([2n ** 53n + 1n, 2n ** 63n - 1n]);
    const raw = decodeTensor(tensorBytes({ dims: [1], dataType: D.INT64, raw: [0xfe, ...Array(7).fill(0xff)] }));
    expect(Array.from(raw.values as Float64Array)).toEqual([-2]);
    const u = decodeTensor(
      tensorBytes({ dims: [2], dataType: D.UINT64, raw: [...Array(8).fill(0xff), 5, 0, 0, 0, 0, 0, 0, 0] }),
    );
    expect(u.values).toBeInstanceOf(BigUint64Array);
    expect(Array.from(u.values as BigUint64Array)).toEqual([2n ** 64n - 1n, 5n]);
    const u2 = decodeTensor(tensorBytes({ dims: [1], dataType: D.UINT64, uint64: [2n ** 64n - 1n] }));
    expect(Array.from(u2.values as BigUint64Array)).toEqual([2n ** 64n - 1n]);
  });

  it('scalars, empty tensors, external data', () => {
    expect(decodeTensor(tensorBytes({ dims: [], dataType: D.INT32, int32: [7] })).dims).toEqual([]);
    expect(decode({ dims: [0, 5], dataType: D.FLOAT })).toEqual([]);
    const ext = decodeTensor(tensorBytes({ name: 'w', dims: [1000, 1000], dataType: D.FLOAT, external: true }));
    expect(ext.externalData).toBe(true);
    expect(ext.values.length).toBe(0);
    expect(ext.externalInfo).toEqual({ location: 'weights.bin' });
  });

  it('rejects element-count mismatches, bad dims and bad dtypes, naming the tensor', () => {
    const bad = (t: TensorSpec, re?: RegExp) => expectParseError(() => decodeTensor(tensorBytes(t)), re);
    bad({ name: 'x', dims: [3], dataType: D.FLOAT, float: [1, 2] }, /tensor 'x'/);
    bad({ name: 'y', dims: [], dataType: D.FLOAT }, /tensor 'y'/); // scalar needs one element
    bad({ name: 'z', dims: [2], dataType: D.FLOAT, raw: [0, 0, 0, 0, 0] }, /tensor 'z'/);
    bad({ name: 'n', dims: [-1], dataType: D.FLOAT, float: [] }, /dimension/);
    bad({ name: 'h', dims: [2 ** 40, 2 ** 40], dataType: D.FLOAT, raw: [0, 0, 0, 0] }, /tensor 'h'/);
    bad({ name: 'q', dims: [2 ** 30, 2 ** 30, 2 ** 30], dataType: D.FLOAT }, /overflow/);
    bad({ name: 'u', dims: [1], dataType: 99, raw: [0] }, /data type/);
    bad({ name: 'u0', dims: [1], dataType: 0, raw: [0] }, /data type/);
    bad({ name: 's', dims: [1], dataType: D.STRING, raw: [65] });
  });
});

describe('ONNX model decoding (structure)', () => {
  function modelBytes(nodes: { opType?: string; name?: string; attrs?: (w: protobuf.Writer) => void }[]) {
    const w = protobuf.Writer.create();
    w.uint32(tag(1, WIRE_VARINT)).int64(9);
    w.uint32(tag(8, WIRE_LEN)).fork().uint32(tag(2, WIRE_VARINT)).int64(17).ldelim();
    w.uint32(tag(7, WIRE_LEN)).fork();
    for (const n of nodes) {
      w.uint32(tag(1, WIRE_LEN)).fork();
      w.uint32(tag(1, WIRE_LEN)).string('a');
      w.uint32(tag(2, WIRE_LEN)).string('b');
      if (n.name) w.uint32(tag(3, WIRE_LEN)).string(n.name);
      if (n.opType) w.uint32(tag(4, WIRE_LEN)).string(n.opType);
      n.attrs?.(w);
      w.ldelim();
    }
    w.ldelim();
    return w.finish();
  }

  it('decodes a minimal model with attributes', () => {
    const m = decodeModel(
      modelBytes([
        {
          opType: 'Relu',
          name: 'r',
          attrs: (w) => {
            w.uint32(tag(5, WIRE_LEN)).fork();
            w.uint32(tag(1, WIRE_LEN)).string('alpha').uint32(tag(2, 5)).float(0.5);
            w.uint32(tag(20, WIRE_VARINT)).int32(1).ldelim();
            w.uint32(tag(5, WIRE_LEN)).fork();
            w.uint32(tag(1, WIRE_LEN)).string('perm');
            for (const v of [0, 2, 1]) w.uint32(tag(8, WIRE_VARINT)).int64(v);
            w.uint32(tag(20, WIRE_VARINT)).int32(7).ldelim();
          },
        },
      ]),
    );
    expect(m.irVersion).toBe(9);
    expect(m.opsetImport).toEqual([{ domain: '', version: 17 }]);
    const n = m.graph.nodes[0]!;
    expect(n).toMatchObject({ name: 'r', opType: 'Relu', inputs: ['a'], outputs: ['b'] });
    expect(n.attributes.get('alpha')).toEqual({ kind: 'float', value: 0.5 });
    expect(n.attributes.get('perm')).toEqual({ kind: 'ints', value: [0, 2, 1] });
  });

  it('rejects a model without a graph and a node without op_type', () => {
    expectParseError(() => decodeModel(new Uint8Array(0)), /no graph/);
    expectParseError(() => decodeModel(modelBytes([{ name: 'n1' }])), /op_type.*node 'n1'/);
    expectParseError(() => decodeModel('not bytes' as unknown as Uint8Array));
  });

  it('turns stack exhaustion on absurdly deep nesting into ParseError', () => {
    // graph.input[0].type = sequence(sequence(... 200k levels ...))
    const w = protobuf.Writer.create();
    w.uint32(tag(7, WIRE_LEN)).fork(); // graph
    w.uint32(tag(11, WIRE_LEN)).fork(); // input ValueInfoProto
    w.uint32(tag(2, WIRE_LEN)).fork(); // type
    const depth = 200_000;
    for (let i = 0; i < depth; i++) w.uint32(tag(4, WIRE_LEN)).fork().uint32(tag(1, WIRE_LEN)).fork();
    for (let i = 0; i < depth; i++) w.ldelim().ldelim();
    w.ldelim().ldelim().ldelim();
    expectParseError(() => decodeModel(w.finish()));
  });
});

describe.skipIf(!haveConformance)('ONNX conformance corpus', () => {
  const dirs = haveConformance ? modelDirs() : [];
  const models = new Map<string, { bytes: Uint8Array; model: OnnxModel }>();
  const load = (d: string) => {
    let m = models.get(d);
    if (!m) {
      const bytes = fs.readFileSync(path.join(d, 'model.onnx'));
      m = { bytes, model: decodeModel(bytes) };
      models.set(d, m);
    }
    return m;
  };
  const readTensor = (test: string, file: string): OnnxTensor =>
    decodeTensor(fs.readFileSync(path.join(conformanceRoot, 'onnx-node', test, 'test_data_set_0', file)));

  it('every model.onnx and test_data_set_*/*.pb decodes', () => {
    expect(dirs.length).toBeGreaterThan(500);
    let files = 0;
    for (const d of dirs) {
      const { model } = load(d);
      expect(model.graph.nodes.length, d).toBeGreaterThan(0);
      const inits = new Set(model.graph.initializers.map((t) => t.name));
      const inputs = model.graph.inputs.filter((i) => !inits.has(i.name));
      for (const ds of fs.readdirSync(d).filter((x) => x.startsWith('test_data_set_'))) {
        for (const f of fs.readdirSync(path.join(d, ds))) {
          const m = /^(input|output)_(\d+)\.pb$/.exec(f);
          if (!m) continue;
          const info = (m[1] === 'input' ? inputs : model.graph.outputs)[Number(m[2])];
          expect(info, `${d}/${ds}/${f}`).toBeDefined();
          const v = decodeValue(fs.readFileSync(path.join(d, ds, f)), info!.type);
          if (v.kind === 'tensor' && info!.type.kind === 'tensor') {
            expect(v.value.dataType, `${d}/${ds}/${f}`).toBe(info!.type.elemType);
          }
          files++;
        }
      }
    }
    expect(files).toBeGreaterThan(2000);
  });

  it('spot values: small tensors, int4 in int32_data, a sequence input', () => {
    // test_dequantizelinear_int4/input_0.pb = 08 05 10 16 2a 04 10 c7 01 08 42 01 78:
    // dims [5], INT4, int32_data [0x10, 0xc7, 0x08], name 'x'
    const x = readTensor('test_dequantizelinear_int4', 'input_0.pb');
    expect(x).toMatchObject({ name: 'x', dataType: D.INT4, dims: [5] });
    expect(Array.from(x.values as Float64Array)).toEqual([0, 1, 7, -4, -8]);
    expect(Array.from(readTensor('test_dequantizelinear_int4', 'output_0.pb').values as Float64Array)).toEqual([
      -2, 0, 12, -10, -18,
    ]);
    const e4 = readTensor('test_dequantizelinear_e4m3fn', 'input_0.pb');
    expect(Array.from(e4.values as Float64Array)).toEqual([0, 0.5, 1, 448, -104]);
    const add = readTensor('test_add', 'input_0.pb');
    expect(add.dims).toEqual([3, 4, 5]);
    expect(add.values.length).toBe(60);
    const dir = path.join(conformanceRoot, 'onnx-node', 'test_identity_sequence');
    const { model } = load(dir);
    expect(model.graph.inputs[0]!.type).toEqual({ kind: 'sequence', elem: { kind: 'tensor', elemType: D.FLOAT } });
    const seq = decodeValue(
      fs.readFileSync(path.join(dir, 'test_data_set_0', 'input_0.pb')),
      model.graph.inputs[0]!.type,
    );
    expect(seq.kind).toBe('sequence');
    if (seq.kind === 'sequence') {
      expect(seq.elems.length).toBe(2);
      const t0 = seq.elems[0]!;
      expect(t0.kind === 'tensor' && Array.from(t0.value.values as Float64Array)).toEqual([1, 2, 3, 4]);
    }
  });

  it('exact widening casts: decoded input equals decoded output', () => {
    const exact = [
      'test_cast_BFLOAT16_to_FLOAT',
      'test_cast_FLOAT16_to_DOUBLE',
      'test_cast_FLOAT4E2M1_to_FLOAT',
      'test_cast_FLOAT8E4M3FN_to_FLOAT',
      'test_cast_FLOAT8E4M3FNUZ_to_FLOAT',
      'test_cast_FLOAT8E5M2_to_FLOAT',
      'test_cast_FLOAT8E5M2FNUZ_to_FLOAT',
      'test_cast_e8m0_FLOAT8E8M0_to_FLOAT',
      'test_cast_INT4_to_FLOAT',
      'test_cast_UINT4_to_FLOAT',
      'test_cast_INT2_to_FLOAT',
      'test_cast_UINT2_to_FLOAT',
    ].filter((t) => fs.existsSync(path.join(conformanceRoot, 'onnx-node', t)));
    expect(exact.length).toBeGreaterThan(8);
    for (const t of exact) {
      const a = tensorValuesToFloat64(readTensor(t, 'input_0.pb'));
      const b = tensorValuesToFloat64(readTensor(t, 'output_0.pb'));
      expect(sameValues(a, b), t).toBe(true);
    }
  });

  it('truncated models throw ParseError (mostly) and never anything else', () => {
    const seed = 0x5eed;
    const rnd = mulberry32(seed);
    let threw = 0;
    let total = 0;
    for (const d of dirs) {
      const { bytes } = load(d);
      const cuts = bytes.length > 1_000_000 ? 1 : 3;
      for (let k = 0; k < cuts; k++) {
        const cut = Math.floor(rnd() * bytes.length);
        if (outcome(() => decodeModel(bytes.subarray(0, cut))) === 'parse') threw++;
        total++;
      }
    }
    expect(threw / total, `seed ${seed}: ${threw}/${total} truncations threw`).toBeGreaterThan(0.5);
  });

  it('models with random bytes flipped return or throw ParseError', () => {
    const seed = 0xf11b;
    const rnd = mulberry32(seed);
    for (const d of dirs) {
      const { bytes } = load(d);
      if (bytes.length > 1_000_000) continue;
      for (let k = 0; k < 3; k++) {
        const copy = Uint8Array.from(bytes);
        const flips = 1 + Math.floor(rnd() * 4);
        for (let j = 0; j < flips; j++) copy[Math.floor(rnd() * copy.length)] = Math.floor(rnd() * 256);
        expect(() => outcome(() => decodeModel(copy)), `seed ${seed} ${d}`).not.toThrow();
      }
    }
  });

  it('op census is well formed (domains, opsets)', () => {
    const visit = (g: OnnxGraph): number => {
      let n = 0;
      for (const node of g.nodes) {
        n++;
        for (const a of node.attributes.values()) {
          if (a.kind === 'graph') n += visit(a.value);
          if (a.kind === 'graphs') for (const sg of a.value) n += visit(sg);
        }
      }
      return n;
    };
    for (const d of dirs) {
      const { model } = load(d);
      expect(visit(model.graph)).toBeGreaterThan(0);
      expect(model.opsetImport.length, d).toBeGreaterThan(0);
    }
  });
});

describe('fuzz: decoders never throw anything but ParseError', () => {
  it('random bytes -> decodeModel', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 2000 }), (bytes) => {
        outcome(() => decodeModel(bytes));
      }),
      { numRuns: PROP_RUNS },
    );
  });

  it('random bytes -> decodeTensor', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 2000 }), (bytes) => {
        outcome(() => decodeTensor(bytes));
      }),
      { numRuns: PROP_RUNS },
    );
  });

  it('structured-ish random tensors: valid tag soup -> decodeTensor', () => {
    // Bias toward well-formed wire data so that decoding gets past the protobuf layer.
    const field = fc.oneof(
      fc.record({ f: fc.constantFrom(1, 2, 14), v: fc.integer({ min: -5, max: 2 ** 31 - 1 }) }),
      fc.record({ f: fc.constantFrom(4, 5, 7, 9, 10, 11), b: fc.uint8Array({ maxLength: 64 }) }),
    );
    fc.assert(
      fc.property(fc.array(field, { maxLength: 12 }), (fields) => {
        const w = protobuf.Writer.create();
        for (const x of fields) {
          if ('v' in x) w.uint32(tag(x.f, WIRE_VARINT)).int64(x.v);
          else w.uint32(tag(x.f, WIRE_LEN)).bytes(x.b);
        }
        const bytes = w.finish();
        if (outcome(() => decodeTensor(bytes)) === 'ok') {
          const t = decodeTensor(bytes);
          const n = t.dims.reduce((a, b) => a * b, 1);
          const per = t.dataType === D.COMPLEX64 || t.dataType === D.COMPLEX128 ? 2 : 1;
          if (!t.externalData) expect(t.values.length).toBe(n * per);
          expect(onnxDtypeName(t.dataType)).not.toMatch(/UNKNOWN/);
        }
      }),
      { numRuns: PROP_RUNS },
    );
  });
});
