/**
 * The reference interpreter: runs a graph in float64 on the CPU, node by node, through each op's reference
 * definition. It is the oracle every pass, importer and backend is tested against.
 */
import { KilnError } from './errors.js';
import type { Graph, Value } from './graph.js';
import { getOp, resolveAttrs, type RefContext } from './registry.js';
import { bindShape, numel, shapeToString } from './shape.js';
import { fromValues, type Tensor } from './tensor.js';

export interface InterpretOptions {
  /** Called after each node with its outputs (debugging, shape-inference property tests). */
  onNode?: (node: { name: string; op: string }, outputs: readonly Tensor[]) => void;
}

/**
 * Runs `graph` on `feeds` (one tensor per graph input, by name) with each op's float64 reference, rounding every
 * result to its dtype — the oracle device backends are compared against. Returns the graph outputs by name.
 *
 * @throws KilnError naming the tensor when a feed is missing (code `runtime`), has the wrong dtype (`dtype`) or a
 * shape that does not bind the input's dims consistently (`shape`); naming the node when a reference fails (`runtime`,
 * e.g. an index out of range) or an output shape contradicts inference (`shape`).
 */
export function interpret(
  graph: Graph,
  feeds: Readonly<Record<string, Tensor>>,
  opts: InterpretOptions = {},
): Record<string, Tensor> {
  const env = new Map<Value, Tensor>();
  const dims = new Map<string, number>();
  for (const v of graph.inputs) {
    const t = feeds[v.name];
    if (!t) throw new KilnError('runtime', `missing feed for graph input`, { tensor: v.name });
    if (t.dtype !== v.type.dtype) {
      throw new KilnError('dtype', `feed has dtype ${t.dtype}, input wants ${v.type.dtype}`, { tensor: v.name });
    }
    if (!bindShape(v.type.shape, t.shape, dims)) {
      throw new KilnError('shape', `feed shape [${t.shape}] does not match ${shapeToString(v.type.shape)}`, {
        tensor: v.name,
      });
    }
    if (t.data.length !== numel(t.shape)) throw new KilnError('shape', 'feed data length mismatch', { tensor: v.name });
    env.set(v, t);
  }
  for (const c of graph.constants) env.set(c, c.data!);
  for (const n of graph.nodes) {
    const def = getOp(n.op, { node: n.name });
    const inputs = n.inputs.map((x) => {
      if (!x) return undefined;
      const t = env.get(x);
      if (!t) throw new KilnError('runtime', 'value not computed', { node: n.name, op: n.op, tensor: x.name });
      return t;
    });
    const ctx: RefContext = {
      node: n.name,
      op: n.op,
      numOutputs: n.outputs.length,
      outputDtypes: n.outputs.map((o) => o.type.dtype),
      fail(message: string): never {
        throw new KilnError('runtime', message, { node: n.name, op: n.op });
      },
    };
    let outs: Tensor[];
    try {
      outs = def.reference(inputs, resolveAttrs(def, n.attrs, n.name), ctx);
    } catch (e) {
      if (e instanceof KilnError) throw e;
      throw new KilnError('runtime', `reference failed: ${(e as Error).message}`, { node: n.name, op: n.op });
    }
    n.outputs.forEach((o, i) => {
      const t = outs[i];
      if (!t) throw new KilnError('runtime', `op produced no output ${i}`, { node: n.name, op: n.op });
      // Symbolic dims must bind consistently across the whole run (e.g. every `seq` is the same number).
      if (!bindShape(o.type.shape, t.shape, dims)) {
        throw new KilnError(
          'shape',
          `output shape [${t.shape}] does not match inferred ${shapeToString(o.type.shape)}`,
          { node: n.name, op: n.op, tensor: o.name },
        );
      }
      // Stored once in the dtype's natural array, rounded; a reference that returns its input's array (reshape)
      // shares it, never modifies it.
      env.set(o, fromValues(o.type.dtype, t.shape, t.data));
    });
    opts.onNode?.(
      n,
      n.outputs.map((o) => env.get(o)!),
    );
  }
  const result: Record<string, Tensor> = {};
  for (const o of graph.outputs) result[o.name] = env.get(o)!;
  return result;
}
