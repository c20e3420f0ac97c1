/**
 * ONNX op converters: one small function per ONNX op (per opset range where semantics changed) that emits kiln ops
 * through the builder. Converter files under ./ops register themselves with `onnxOp`.
 */
import type { GraphBuilder } from '../../../ir/builder.js';
import type { DType } from '../../../ir/dtype.js';
import { UnsupportedError, VerifyError } from '../../../ir/errors.js';
import type { Value } from '../../../ir/graph.js';
import type { Attrs } from '../../../ir/registry.js';
import type { Tensor } from '../../../ir/tensor.js';
import type { OnnxAttribute, OnnxGraph, OnnxNode, OnnxTensor } from './proto.js';

export interface ConvertContext {
  readonly node: OnnxNode;
  /** Node name for errors (the ONNX name, or op type + index when unnamed). */
  readonly nodeName: string;
  /** Opset version of the node's domain. */
  readonly opset: number;
  readonly builder: GraphBuilder;
  /** Input i, or null when absent / the empty name. */
  input(i: number): Value | null;
  /** Input i, failing with a located error when absent. */
  req(i: number): Value;
  readonly numInputs: number;
  readonly numOutputs: number;
  /** Constant data of input i, when it is a constant (initializer / Constant node / folded). */
  constInput(i: number): Tensor | undefined;
  /** Constant input i as plain numbers, failing with `what` when not constant. */
  constInts(i: number, what: string): number[];
  hasAttr(name: string): boolean;
  attr(name: string): OnnxAttribute | undefined;
  int(name: string, dflt?: number): number;
  float(name: string, dflt?: number): number;
  str(name: string, dflt?: string): string;
  ints(name: string, dflt?: readonly number[]): number[];
  floats(name: string, dflt?: readonly number[]): number[];
  tensor(name: string): Tensor;
  graph(name: string): OnnxGraph;
  /** Emit a kiln op with one output. */
  emit(op: string, inputs: readonly (Value | null)[], attrs?: Attrs): Value;
  /** Emit a kiln op with several outputs. */
  emitN(op: string, inputs: readonly (Value | null)[], attrs: Attrs, numOutputs: number): Value[];
  /** A constant value. */
  constant(dtype: DType, values: readonly number[], shape?: readonly number[]): Value;
  /** Convert an ONNX tensor to a kiln tensor (typed error for unsupported dtypes). */
  toTensor(t: OnnxTensor): Tensor;
  /** Dtype of an ONNX DataType code (typed error if unsupported). */
  dtype(code: number, what: string): DType;
  unsupported(message: string): never;
  fail(message: string): never;
}

/** Returns one value per ONNX output (null for an output the converter does not produce). */
export type OnnxConverter = (ctx: ConvertContext) => (Value | null)[];

interface Entry {
  readonly since: number;
  readonly convert: OnnxConverter;
}

const CONVERTERS = new Map<string, Entry[]>();

/**
 * Register a converter for `opType` in `domain` valid from opset `since` on (a later registration with a higher
 * `since` takes over from that version).
 */
export function onnxOp(opType: string, convert: OnnxConverter, since = 1, domain = ''): void {
  const key = `${domain}::${opType}`;
  const list = CONVERTERS.get(key) ?? [];
  list.push({ since, convert });
  list.sort((a, b) => b.since - a.since);
  CONVERTERS.set(key, list);
}

export function findConverter(domain: string, opType: string, opset: number): OnnxConverter | undefined {
  const list = CONVERTERS.get(`${domain === 'ai.onnx' ? '' : domain}::${opType}`);
  return list?.find((e) => e.since <= opset)?.convert;
}

export function hasConverter(domain: string, opType: string): boolean {
  return CONVERTERS.has(`${domain === 'ai.onnx' ? '' : domain}::${opType}`);
}

export function makeError(kind: 'unsupported' | 'verify', message: string, nodeName: string, op: string): Error {
  return kind === 'unsupported'
    ? new UnsupportedError(message, { node: nodeName, op })
    : new VerifyError(message, { node: nodeName, op });
}
