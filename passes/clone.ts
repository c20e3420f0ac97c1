/** Deep copy of a graph: new nodes and values, constants' data shared (tensors are immutable once built). */
import { Graph, Node, Value } from '../ir/graph.js';

/** A copy of `g` with new nodes and values (same names); constants' data are shared, not copied. */
export function cloneGraph(g: Graph): Graph {
  const out = new Graph(g.name);
  const map = new Map<Value, Value>();
  const copy = (v: Value): Value => {
    const c = new Value(v.name, v.type, v.data);
    c.symbolic = v.symbolic;
    map.set(v, c);
    return c;
  };
  out.inputs = g.inputs.map(copy);
  out.constants = g.constants.map(copy);
  const get = (v: Value): Value => map.get(v) ?? copy(v); // a value read but defined nowhere: keep it visible
  for (const n of g.nodes) {
    const ins = n.inputs.map((x) => (x ? get(x) : null));
    out.nodes.push(new Node(n.name, n.op, ins, n.outputs.map(copy), { ...n.attrs }));
  }
  out.outputs = g.outputs.map(get);
  return out;
}
