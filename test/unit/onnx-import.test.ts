import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KilnError, UnsupportedError } from '../../ir/errors.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor } from '../../ir/tensor.js';
import { verify } from '../../ir/verify.js';
import { findTests } from '../../src/conformance.js';
import { importOnnxModel, importOnnx } from '../../src/frontends/onnx/import.js';
import { decodeModel, type OnnxModel, type OnnxNode } from '../../src/frontends/onnx/proto.js';
import { onnxModelOf, onnxNodeOf } from '../helpers/onnx-model.js';
import { CONFORMANCE, PROP_RUNS } from '../helpers/paths.js';

const onnxDir = join(CONFORMANCE, 'onnx-node');

/** A minimal in-memory ONNX model (no protobuf needed) around a list of nodes. */
const model = (nodes: OnnxNode[], opset = 17): OnnxModel =>
  onnxModelOf({ nodes, opset, inputs: [{ name: 'x', shape: ['batch', 3] }], outputs: [{ name: 'y', elemType: 1 }] });
const node = (opType: string, inputs: string[], outputs: string[], name = ''): OnnxNode =>
  onnxNodeOf(opType, inputs, outputs, {}, name);

describe('ONNX import', () => {
  it('imports and runs a small graph with a symbolic batch dim', () => {
    const { graph } = importOnnxModel(model([node('Relu', ['x'], ['r']), node('Neg', ['r'], ['y'])]));
    expect(graph.inputs[0]!.type.shape).toEqual(['batch', 3]);
    const y = interpret(graph, { x: makeTensor('f32', [2, 3], [1, -2, 3, -4, 5, -6]) })['y']!;
    expect(Array.from(y.data)).toEqual([-1, -0, -3, -0, -5, -0]);
  });

  it('names an unsupported op with domain, opset and node', () => {
    expect(() => importOnnxModel(model([node('FooBar', ['x'], ['y'], 'my_node')], 13))).toThrow(
      "unsupported op FooBar (ai.onnx, opset 13) at node 'my_node'",
    );
    try {
      importOnnxModel(model([node('FooBar', ['x'], ['y'], 'my_node')], 13));
    } catch (e) {
      expect(e).toBeInstanceOf(UnsupportedError);
      expect((e as UnsupportedError).location.node).toBe('my_node');
    }
  });

  it('reports an undefined input and a missing graph output with a typed error', () => {
    expect(() => importOnnxModel(model([node('Relu', ['nope'], ['y'], 'n1')]))).toThrow(/'nope'.*n1|n1.*'nope'/s);
    expect(() => importOnnxModel(model([node('Relu', ['x'], ['z'], 'n1')]))).toThrow(KilnError);
  });

  it('random bytes give a typed error, never a crash', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        try {
          importOnnx(bytes);
        } catch (e) {
          expect(e).toBeInstanceOf(KilnError);
        }
      }),
      { numRuns: PROP_RUNS * 5 },
    );
  });

  it('truncated real models give a typed error (or, cut at a field boundary, a graph that verifies)', () => {
    const tests = findTests([onnxDir]).filter((_, i) => i % 7 === 0);
    let errors = 0;
    let total = 0;
    fc.assert(
      fc.property(fc.nat(tests.length - 1), fc.double({ min: 0, max: 1, noNaN: true }), (ti, frac) => {
        const bytes = readFileSync(join(tests[ti]!, 'model.onnx'));
        const cut = bytes.subarray(0, Math.floor(bytes.length * frac * 0.999));
        total++;
        try {
          const { graph } = importOnnx(cut);
          verify(graph);
        } catch (e) {
          expect(e).toBeInstanceOf(KilnError);
          errors++;
        }
      }),
      { numRuns: PROP_RUNS * 3 },
    );
    expect(errors / total).toBeGreaterThan(0.9);
  });

  it('inlines a model-local function, binding its attributes (ref_attr_name) and renaming its internals', () => {
    const m = model([
      {
        ...node('Scale', ['x'], ['y'], 'call'),
        domain: 'local',
        attributes: new Map([['k', { kind: 'float', value: 3 }]]),
      },
    ]);
    m.opsetImport.push({ domain: 'local', version: 1 });
    m.functions.push({
      name: 'Scale',
      domain: 'local',
      overload: '',
      inputs: ['a'],
      outputs: ['b'],
      attributes: ['k'],
      attributeDefaults: new Map(),
      opsetImport: [{ domain: '', version: 17 }],
      nodes: [
        {
          ...node('Constant', [], ['kk']),
          attributes: new Map([['value_float', { kind: 'ref', refAttrName: 'k', attrType: 1 }]]),
        },
        node('Mul', ['a', 'kk'], ['t']),
        node('Relu', ['t'], ['b']),
      ],
    });
    const { graph } = importOnnxModel(m);
    const y = interpret(graph, { x: makeTensor('f32', [1, 3], [1, -2, 0.5]) })['y']!;
    expect(Array.from(y.data)).toEqual([3, 0, 1.5]);
  });

  it('real models with flipped bytes give a typed error or a graph that verifies, never a crash', () => {
    const tests = findTests([onnxDir]).filter((_, i) => i % 5 === 0);
    fc.assert(
      fc.property(
        fc.nat(tests.length - 1),
        fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        (ti, flips) => {
          const bytes = new Uint8Array(readFileSync(join(tests[ti]!, 'model.onnx')));
          for (const [at, v] of flips) bytes[Math.min(bytes.length - 1, Math.floor(at * bytes.length))] = v;
          try {
            const { graph } = importOnnx(bytes);
            verify(graph);
          } catch (e) {
            expect(e).toBeInstanceOf(KilnError);
          }
        },
      ),
      { numRuns: PROP_RUNS * 5 },
    );
  });

  it('a model without opset_import is rejected', () => {
    const m = decodeModel(readFileSync(join(onnxDir, 'test_add', 'model.onnx')));
    expect(() => importOnnxModel({ ...m, opsetImport: [] })).toThrow(/opset/);
  });
});
