/** Shape/dtype inference for one node through the registry, with located errors. */
import { KilnError, VerifyError } from './errors.js';
import type { Node, Value } from './graph.js';
import { getOp, resolveAttrs, type Attrs, type InferContext, type OpDef } from './registry.js';
import type { Tensor } from './tensor.js';
import type { TensorType } from './types.js';

/** Check the node's input count against the op's ports. */
export function checkArity(def: OpDef, inputs: readonly (Value | TensorType | null | undefined)[], node: string): void {
  const loc = { node, op: def.name };
  const ports = def.inputs;
  const last = ports[ports.length - 1];
  const variadic = last?.variadic === true;
  const minFixed = variadic ? ports.length - 1 : ports.length;
  if (!variadic && inputs.length > ports.length) {
    throw new VerifyError(`op ${def.name} takes at most ${ports.length} inputs, got ${inputs.length}`, loc);
  }
  for (let i = 0; i < Math.max(minFixed, inputs.length); i++) {
    const p = ports[Math.min(i, ports.length - 1)]!;
    if ((inputs[i] === null || inputs[i] === undefined) && !p.optional) {
      throw new VerifyError(`missing required input ${i} ('${p.name}') of op ${def.name}`, loc);
    }
  }
  if (variadic && !last!.optional && inputs.length < ports.length) {
    throw new VerifyError(`op ${def.name} needs at least ${ports.length} inputs`, loc);
  }
}

/**
 * Infer output types of an op applied to `inputs`. `constOf` returns constant data for input i when known.
 * Deterministic: fresh symbols are named after the node, so re-inference (the verifier) reproduces them.
 */
export function inferOp(
  op: string,
  nodeName: string,
  inputs: readonly (TensorType | undefined)[],
  attrs: Attrs,
  numOutputs: number,
  constOf: (i: number) => Tensor | undefined,
): { types: TensorType[]; attrs: Attrs } {
  const def = getOp(op, { node: nodeName });
  checkArity(def, inputs, nodeName);
  const resolved = resolveAttrs(def, attrs, nodeName);
  const ctx: InferContext = {
    node: nodeName,
    op,
    inputs,
    attrs: resolved,
    numOutputs,
    constValue: constOf,
    fail(message: string): never {
      throw new VerifyError(message, { node: nodeName, op });
    },
  };
  let types: TensorType[];
  try {
    types = def.infer(ctx);
  } catch (e) {
    if (e instanceof KilnError) throw e;
    throw new VerifyError(`shape inference failed: ${(e as Error).message}`, { node: nodeName, op });
  }
  if (types.length < numOutputs) {
    throw new VerifyError(`op ${op} produces ${types.length} outputs, node declares ${numOutputs}`, {
      node: nodeName,
      op,
    });
  }
  return { types: types.slice(0, numOutputs), attrs: resolved };
}

export function inferNode(node: Node): TensorType[] {
  return inferOp(
    node.op,
    node.name,
    node.inputs.map((v) => v?.type),
    node.attrs,
    node.outputs.length,
    (i) => node.inputs[i]?.data,
  ).types;
}
