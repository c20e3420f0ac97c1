/** Shape/dtype inference for one node through the registry, with located errors. */
import { isInteger } from './dtype.js';
import { KilnError, VerifyError } from './errors.js';
import type { Node, Value } from './graph.js';
import { getOp, resolveAttrs, type Attrs, type InferContext, type OpDef } from './registry.js';
import { numel, type Dim } from './shape.js';
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

/** Largest integer tensor that carries a symbolic value (shape vectors and their pieces are a handful of elements). */
export const SYMBOLIC_MAX_ELEMENTS = 64;

const carriesSymbolic = (t: TensorType | undefined): boolean =>
  t !== undefined &&
  (isInteger(t.dtype) || t.dtype === 'bool') &&
  t.shape.every((d) => typeof d === 'number') &&
  numel(t.shape as number[]) <= SYMBOLIC_MAX_ELEMENTS;

export interface Inferred {
  types: TensorType[];
  attrs: Attrs;
  /** Per output: its symbolic value (see `Value.symbolic`) when known. */
  symbolic: (readonly Dim[] | undefined)[];
}

/**
 * Infer output types of an op applied to `inputs`. `constOf` returns constant data for input i when known, `symOf`
 * the symbolic value of a non-constant input when known. Deterministic: fresh symbols are named after the node, so
 * re-inference (the verifier) reproduces them.
 *
 * @throws UnsupportedError for an unknown op.
 * @throws VerifyError naming the node for wrong input counts, bad attributes, rejected shapes / dtypes, or an output
 * count other than the op produces.
 */
export function inferOp(
  op: string,
  nodeName: string,
  inputs: readonly (TensorType | undefined)[],
  attrs: Attrs,
  numOutputs: number,
  constOf: (i: number) => Tensor | undefined,
  symOf: (i: number) => readonly Dim[] | undefined = () => undefined,
): Inferred {
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
    symbolicValue(i: number) {
      const t = inputs[i];
      if (!carriesSymbolic(t)) return undefined;
      const c = constOf(i);
      if (c) return Array.from(c.data);
      const s = symOf(i);
      return s && s.length === numel(t!.shape as number[]) ? s : undefined;
    },
    fail(message: string): never {
      throw new VerifyError(message, { node: nodeName, op });
    },
  };
  let types: TensorType[];
  let symbolic: (readonly Dim[] | undefined)[] = [];
  try {
    types = def.infer(ctx);
    if (def.symbolic && types.slice(0, numOutputs).some(carriesSymbolic)) {
      const s = def.symbolic(ctx, types) ?? [];
      symbolic = types.slice(0, numOutputs).map((t, i) => {
        const v = s[i];
        // A hook that cannot tell returns undefined; a wrong element count would be a bug, not a value.
        return v && carriesSymbolic(t) && v.length === numel(t.shape as number[]) ? v : undefined;
      });
    }
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
  return { types: types.slice(0, numOutputs), attrs: resolved, symbolic };
}

/** Output types of a node in its graph, reading its inputs' constant data and symbolic values. */
export function inferNode(node: Node): TensorType[] {
  return inferNodeFull(node).types;
}

/** Output types and symbolic values of a node in its graph. */
export function inferNodeFull(node: Node): Inferred {
  return inferOp(
    node.op,
    node.name,
    node.inputs.map((v) => v?.type),
    node.attrs,
    node.outputs.length,
    (i) => node.inputs[i]?.data,
    (i) => node.inputs[i]?.symbolic,
  );
}
