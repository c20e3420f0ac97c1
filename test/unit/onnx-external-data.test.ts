/**
 * ONNX external data (`data_location = EXTERNAL`): small models written to a temp directory with their initializers
 * in side files, imported by path (importOnnxFile). Only the named byte ranges are read (a sparse 3 GiB weights file
 * with a tensor past 2^31 bytes imports at once); a missing file, a location outside the model's directory and a file
 * shorter than offset + length are ParseErrors naming the tensor and the file.
 */
import {
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  openSync,
  readFileSync,
  writeSync,
  closeSync,
  ftruncateSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KilnError, ParseError, UnsupportedError } from '../../ir/errors.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor } from '../../ir/tensor.js';
import { externalDataFrom, importOnnx, importOnnxFile, importOnnxModel } from '../../src/frontends/onnx/import.js';
import { decodeModel } from '../../src/frontends/onnx/proto.js';
import { encodeModel, type TensorSpecProto } from '../helpers/onnx-writer.js';

const FLOAT = 1;
const INT64 = 7;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'kiln-extdata-'));
  dirs.push(d);
  return d;
}

const f32Bytes = (v: number[]) => new Uint8Array(new Float32Array(v).buffer);
const i64Bytes = (v: number[]) => new Uint8Array(new BigInt64Array(v.map(BigInt)).buffer);

const W = [1, 2, 3, 4, 5, 6]; // [2, 3]
const B = [0.5, -1, 2]; // [3]
const SHAPE = [3, 2];

/** y = Reshape(MatMul(x, W) + B, SHAPE), every initializer external (W and SHAPE in one file, B in another). */
function model(ext: { w?: Record<string, string>; b?: Record<string, string>; shape?: Record<string, string> } = {}) {
  const inits: TensorSpecProto[] = [
    {
      name: 'W',
      dims: [2, 3],
      data_type: FLOAT,
      external: ext.w ?? { location: 'weights.bin', offset: '16', length: '24' },
    },
    { name: 'B', dims: [3], data_type: FLOAT, external: ext.b ?? { location: 'sub/b.bin' } },
    {
      name: 'S',
      dims: [2],
      data_type: INT64,
      external: ext.shape ?? { location: 'weights.bin', offset: '40', length: '16' },
    },
  ];
  return encodeModel({
    opset: 17,
    nodes: [
      { op_type: 'MatMul', input: ['x', 'W'], output: ['m'], name: 'mm' },
      { op_type: 'Add', input: ['m', 'B'], output: ['a'], name: 'add' },
      { op_type: 'Reshape', input: ['a', 'S'], output: ['y'], name: 'rs' },
    ],
    inputs: [{ name: 'x', elem_type: FLOAT, dims: [2, 2] }],
    outputs: [{ name: 'y', elem_type: FLOAT }],
    initializers: inits,
  });
}

/** A model folder: model.onnx, weights.bin (16 junk bytes, W, S) and sub/b.bin. */
function writeModel(dir: string, bytes = model()): string {
  const junk = new Uint8Array(16).fill(0xab);
  writeFileSync(join(dir, 'weights.bin'), Buffer.concat([junk, f32Bytes(W), i64Bytes(SHAPE)]));
  mkdirSync(join(dir, 'sub'), { recursive: true });
  writeFileSync(join(dir, 'sub', 'b.bin'), f32Bytes(B));
  const path = join(dir, 'model.onnx');
  writeFileSync(path, bytes);
  return path;
}

/** The output for x = I: rows of W plus B, reshaped to [3, 2]. */
const EXPECTED = [1.5, 1, 5, 4.5, 4, 8];

async function run(path: string): Promise<number[]> {
  const { graph } = await importOnnxFile(path);
  const y = interpret(graph, { x: makeTensor('f32', [2, 2], [1, 0, 0, 1]) })['y']!;
  expect(y.shape).toEqual([3, 2]);
  return Array.from(y.data);
}

async function importError(path: string): Promise<KilnError> {
  const e = await importOnnxFile(path).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(KilnError);
  return e as KilnError;
}

describe('ONNX external data', () => {
  it('initializers in side files (f32 and i64, two files, a sub-directory) load by path', async () => {
    expect(await run(writeModel(tempDir()))).toEqual(EXPECTED);
  });

  it('only the named ranges are read: a tensor past 2^31 bytes of a sparse 3 GiB file', async () => {
    const dir = tempDir();
    const off = 2.5 * 2 ** 30;
    const path = writeModel(dir, model({ w: { location: 'big.bin', offset: String(off), length: '24' } }));
    const fd = openSync(join(dir, 'big.bin'), 'w');
    try {
      ftruncateSync(fd, 3 * 2 ** 30);
      writeSync(fd, f32Bytes(W), 0, 24, off);
    } finally {
      closeSync(fd);
    }
    const t0 = performance.now();
    expect(await run(path)).toEqual(EXPECTED);
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it('a caller that decodes the model itself passes externalDataFrom(dir)', async () => {
    const dir = tempDir();
    const path = writeModel(dir);
    const reader = await externalDataFrom(dir);
    try {
      const { graph } = importOnnxModel(decodeModel(readFileSync(path)), { externalData: reader });
      const y = interpret(graph, { x: makeTensor('f32', [2, 2], [1, 0, 0, 1]) })['y']!;
      expect(Array.from(y.data)).toEqual(EXPECTED);
    } finally {
      reader.close();
    }
  });

  it('without the model directory (bytes only) an external tensor is an UnsupportedError naming it', async () => {
    const bytes = model();
    expect(() => importOnnx(bytes)).toThrow(UnsupportedError);
    expect(() => importOnnx(bytes)).toThrow(/importOnnxFile.*\[at tensor 'W'\]/);
  });

  it('a custom reader (ImportOptions.externalData) sees each range once', async () => {
    const reads: string[] = [];
    const bytes = model();
    const { graph } = importOnnx(bytes, {
      externalData: {
        read(ref, tensor) {
          reads.push(`${tensor}:${ref.location}@${ref.offset}+${ref.length}`);
          if (tensor === 'W') return f32Bytes(W);
          if (tensor === 'B') return f32Bytes(B);
          return i64Bytes(SHAPE);
        },
      },
    });
    expect(reads).toEqual(['W:weights.bin@16+24', 'B:sub/b.bin@0+12', 'S:weights.bin@40+16']);
    expect(Array.from(interpret(graph, { x: makeTensor('f32', [2, 2], [1, 0, 0, 1]) })['y']!.data)).toEqual(EXPECTED);
  });

  it('a missing file names the tensor and the file', async () => {
    const dir = tempDir();
    const path = writeModel(dir, model({ b: { location: 'nope.bin' } }));
    const e = await importError(path);
    expect(e).toBeInstanceOf(ParseError);
    expect(e.message).toMatch(/external data file 'nope.bin' is missing.*\[at tensor 'B'\]/);
  });

  it('a file shorter than offset + length names the tensor, the file and the sizes', async () => {
    const dir = tempDir();
    const path = writeModel(dir, model({ shape: { location: 'weights.bin', offset: '48', length: '16' } }));
    const e = await importError(path);
    expect(e.message).toMatch(
      /external data file 'weights.bin' has 56 bytes, shorter than offset 48 \+ length 16.*\[at tensor 'S'\]/,
    );
  });

  it('locations outside the model directory are refused: .., an absolute path, a link pointing out', async () => {
    const outside = tempDir();
    writeFileSync(join(outside, 'b.bin'), f32Bytes(B));
    const dir = tempDir();
    for (const location of ['../b.bin', join(outside, 'b.bin'), 'sub/../../b.bin']) {
      const e = await importError(writeModel(dir, model({ b: { location } })));
      expect(e.message, location).toMatch(/is outside the model's directory.*\[at tensor 'B'\]/);
    }
    symlinkSync(join(outside, 'b.bin'), join(dir, 'link.bin'));
    const e = await importError(writeModel(dir, model({ b: { location: 'link.bin' } })));
    expect(e.message).toMatch(/'link.bin' links outside the model's directory.*\[at tensor 'B'\]/);
  });

  it('a length that does not match the tensor, or a malformed offset, is a ParseError naming it', async () => {
    const dir = tempDir();
    let e = await importError(writeModel(dir, model({ w: { location: 'weights.bin', offset: '16', length: '20' } })));
    expect(e.message).toMatch(/length 20 differs from the 24 bytes of its FLOAT elements.*\[at tensor 'W'\]/);
    e = await importError(writeModel(dir, model({ w: { location: 'weights.bin', offset: '-4' } })));
    expect(e.message).toMatch(/offset '-4' is not a byte count.*\[at tensor 'W'\]/);
  });

  it('a missing model file is a typed error', async () => {
    const e = await importError(join(tempDir(), 'absent.onnx'));
    expect(e.message).toContain('absent.onnx');
  });
});
