/** In-memory ONNX models for converter tests (no protobuf round trip needed). */
import type { Dim } from '../../ir/shape.js';
import type { OnnxAttribute, OnnxFunction, OnnxModel, OnnxNode, OnnxTensor } from '../../src/frontends/onnx/proto.js';

export const ONNX = { FLOAT: 1, INT64: 7, DOUBLE: 11 } as const;

export interface ModelSpec {
  nodes: OnnxNode[];
  opset: number;
  /** Graph inputs: name, ONNX element type, shape. */
  inputs: { name: string; elemType?: number; shape?: Dim[] }[];
  /** Graph outputs by name (element type left undefined unless given). */
  outputs: (string | { name: string; elemType: number })[];
  initializers?: OnnxTensor[];
  functions?: OnnxFunction[];
  irVersion?: number;
}

export function onnxModelOf(spec: ModelSpec): OnnxModel {
  return {
    irVersion: spec.irVersion ?? 8,
    producerName: 'test',
    producerVersion: '',
    opsetImport: [{ domain: '', version: spec.opset }],
    functions: spec.functions ?? [],
    graph: {
      name: 'g',
      nodes: spec.nodes,
      initializers: spec.initializers ?? [],
      sparseInitializers: [],
      inputs: spec.inputs.map((i) => ({
        name: i.name,
        type: { kind: 'tensor', elemType: i.elemType ?? ONNX.FLOAT, shape: i.shape ?? [] },
      })),
      outputs: spec.outputs.map((o) =>
        typeof o === 'string'
          ? { name: o, type: { kind: 'tensor', elemType: 0 } }
          : { name: o.name, type: { kind: 'tensor', elemType: o.elemType } },
      ),
      valueInfo: [],
    },
  };
}

export function onnxNodeOf(
  opType: string,
  inputs: string[],
  outputs: string[],
  attributes: Record<string, OnnxAttribute> = {},
  name = '',
): OnnxNode {
  return { name, opType, domain: '', inputs, outputs, attributes: new Map(Object.entries(attributes)) };
}
