/**
 * Writing ONNX protobuf bytes in tests: plain objects with the snake_case field names of `onnx.proto3` encoded by
 * protobufjs over kiln's own schema subset (src/frontends/onnx/schema.ts). Enough for models with initializers held
 * in external files; a full writer belongs to the export side.
 */
import protobuf from 'protobufjs';
import { ONNX_SCHEMA_PROTO } from '../../src/frontends/onnx/schema.js';

const root = protobuf.parse(ONNX_SCHEMA_PROTO, { keepCase: true }).root;
const ModelProto = root.lookupType('onnx.ModelProto');

export interface TensorSpecProto {
  name: string;
  dims: number[];
  data_type: number;
  raw_data?: Uint8Array;
  float_data?: number[];
  /** data_location 1 = EXTERNAL, with these key / value entries (location, offset, length). */
  external?: Record<string, string>;
}

export interface ModelSpecProto {
  opset: number;
  nodes: { op_type: string; input: string[]; output: string[]; name?: string; attribute?: object[] }[];
  inputs: { name: string; elem_type: number; dims: number[] }[];
  outputs: { name: string; elem_type: number }[];
  initializers: TensorSpecProto[];
}

export function tensorProto(t: TensorSpecProto): object {
  const { external, ...rest } = t;
  return external
    ? { ...rest, data_location: 1, external_data: Object.entries(external).map(([key, value]) => ({ key, value })) }
    : rest;
}

/** The bytes of a ModelProto. */
export function encodeModel(m: ModelSpecProto): Uint8Array {
  const msg = ModelProto.fromObject({
    ir_version: 8,
    opset_import: [{ domain: '', version: m.opset }],
    graph: {
      name: 'g',
      node: m.nodes,
      initializer: m.initializers.map(tensorProto),
      input: m.inputs.map((i) => ({
        name: i.name,
        type: { tensor_type: { elem_type: i.elem_type, shape: { dim: i.dims.map((d) => ({ dim_value: d })) } } },
      })),
      output: m.outputs.map((o) => ({ name: o.name, type: { tensor_type: { elem_type: o.elem_type } } })),
    },
  });
  return ModelProto.encode(msg).finish();
}
