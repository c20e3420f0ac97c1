/** FLOPs of a language-model graph at a concrete prefill shape, by the cost account (src/cost.ts), for `kiln prune`. */
import { KilnError } from '../ir/errors.js';
import type { Graph } from '../ir/graph.js';
import { tensorType } from '../ir/types.js';
import { cloneGraph } from '../passes/clone.js';
import { reinferTypes } from '../passes/sparsity/index.js';
import { nodeFlops } from './cost.js';

/** A copy of the graph with its symbolic input dims bound (every one must be given) and its types re-inferred. */
export function bindDims(graph: Graph, dims: Readonly<Record<string, number>>): Graph {
  const g = cloneGraph(graph);
  for (const v of g.inputs) {
    const shape = v.type.shape.map((d) => {
      if (typeof d === 'number') return d;
      const n = dims[d];
      if (n === undefined) throw new KilnError('shape', `no value for the symbolic dim '${d}'`, { tensor: v.name });
      return n;
    });
    v.type = tensorType(v.type.dtype, shape, v.type.layout);
  }
  reinferTypes(g);
  return g;
}

/** FLOPs per op of one run at these dims (nodeFlops summed over the nodes; every shape must be static). */
export function flopsByOp(graph: Graph, dims: Readonly<Record<string, number>>): Map<string, number> {
  const g = bindDims(graph, dims);
  const out = new Map<string, number>();
  for (const n of g.nodes) {
    const shapes = {
      inputs: n.inputs.map((x) => (x ? (x.type.shape as number[]) : undefined)),
      outputs: n.outputs.map((o) => o.type.shape as number[]),
    };
    out.set(n.op, (out.get(n.op) ?? 0) + nodeFlops(n.op, n.attrs, shapes));
  }
  return out;
}

/** Total FLOPs of one prefill of `seq` tokens (batch 1, empty cache). */
export function prefillFlops(graph: Graph, seq: number): number {
  let t = 0;
  for (const f of flopsByOp(graph, { batch: 1, seq, past: 0 }).values()) t += f;
  return t;
}
