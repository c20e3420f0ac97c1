/**
 * Writing ONNX protobuf bytes in tests: plain objects with the snake_case field names of `onnx.proto3`, encoded by
 * the export side's encoder (src/frontends/onnx/encode.ts, protobufjs over kiln's schema subset). Enough for models
 * with initializers held in external files; whole kiln graphs are written by src/frontends/onnx/export.ts.
 */
import { encodeModelProto } from '../../src/frontends/onnx/encode.js';

export { encodeModelProto };

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
  return encodeModelProto({
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
}
