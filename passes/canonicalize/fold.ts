/** Constant folding through each op's float64 reference: a node whose inputs are all constants becomes one. */
import { VerifyError } from '../../ir/errors.js';
import type { Node, Value } from '../../ir/graph.js';
import { getOp, resolveAttrs } from '../../ir/registry.js';
import { isStatic, numel } from '../../ir/shape.js';
import { fromValues, type Tensor } from '../../ir/tensor.js';
import { op, rule, type Rule } from '../rewrite.js';

/** Largest result folded (elements): shape arithmetic and small tables, not copies of weights. */
export const FOLD_LIMIT = 1 << 16;

function fold(n: Node): Tensor[] | undefined {
  const def = getOp(n.op);
  if (!n.outputs.every((o) => isStatic(o.type.shape) && numel(o.type.shape as number[]) <= FOLD_LIMIT)) return;
  if (n.outputs.some((o) => o.type.layout.kind !== 'dense')) return;
  const attrs = resolveAttrs(def, n.attrs, n.name);
  const fail = (message: string): never => {
    throw new VerifyError(message, { node: n.name, op: n.op });
  };
  // shape / size of a statically shaped tensor need its type only
  if (def.foldFromTypes) {
    const r = def.foldFromTypes({
      node: n.name,
      op: n.op,
      inputs: n.inputs.map((x) => x?.type),
      attrs,
      numOutputs: n.outputs.length,
      constValue: (i) => n.inputs[i]?.data,
      symbolicValue: () => undefined,
      fail,
    });
    if (r) return r;
  }
  if (!n.inputs.every((x) => x === null || x.isConst)) return;
  const outs = def.reference(
    n.inputs.map((x) => x?.data),
    attrs,
    { node: n.name, op: n.op, numOutputs: n.outputs.length, outputDtypes: n.outputs.map((o) => o.type.dtype), fail },
  );
  return outs.map((t, i) => fromValues(n.outputs[i]!.type.dtype, t.shape, t.data));
}

export const foldRules: Rule[] = [
  rule('fold-constant', op(undefined), (m, rw): Value[] | undefined => {
    const n = m.root;
    // a graph output stays a node (its name is the caller's; a constant cannot take it)
    if (n.outputs.some((o) => rw.isOutput(o))) return undefined;
    let ts: Tensor[] | undefined;
    try {
      ts = fold(n);
    } catch {
      return undefined; // a reference that rejects these constants: leave the node for run time to report
    }
    if (!ts || ts.some((t, i) => t.shape.join() !== (n.outputs[i]!.type.shape as number[]).join())) return undefined;
    return ts.map((t) => rw.constant(t));
  }),
];
