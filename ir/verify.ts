/** The verifier: a graph is well formed when every value is defined once before use and every type re-infers. */
import { VerifyError } from './errors.js';
import type { Graph, Value } from './graph.js';
import { inferNodeFull } from './infer.js';
import { typeToString } from './types.js';

/**
 * Checks that `graph` is well formed: unique value and node names, every value defined once before use, constants with
 * matching data, and every node's declared output types equal to what inference gives now.
 *
 * @throws VerifyError naming the node and / or tensor at the first problem (an unknown op: UnsupportedError).
 */
export function verify(graph: Graph): void {
  const defined = new Set<Value>();
  const names = new Set<string>();
  const define = (v: Value, where: { node?: string; op?: string }) => {
    if (defined.has(v)) throw new VerifyError(`value '${v.name}' defined twice`, { ...where, tensor: v.name });
    if (names.has(v.name)) throw new VerifyError(`duplicate value name '${v.name}'`, { ...where, tensor: v.name });
    defined.add(v);
    names.add(v.name);
  };
  for (const v of graph.inputs) {
    if (v.data) throw new VerifyError('a graph input cannot carry constant data', { tensor: v.name });
    define(v, {});
  }
  for (const c of graph.constants) {
    if (!c.data) throw new VerifyError('constant without data', { tensor: c.name });
    if (c.data.dtype !== c.type.dtype || c.data.shape.join() !== c.type.shape.join()) {
      throw new VerifyError(`constant data ${c.data.dtype}[${c.data.shape}] does not match ${typeToString(c.type)}`, {
        tensor: c.name,
      });
    }
    define(c, {});
  }
  const nodeNames = new Set<string>();
  for (const n of graph.nodes) {
    const loc = { node: n.name, op: n.op };
    if (nodeNames.has(n.name)) throw new VerifyError(`duplicate node name '${n.name}'`, loc);
    nodeNames.add(n.name);
    for (const x of n.inputs) {
      if (x && !defined.has(x))
        throw new VerifyError(`input '${x.name}' used before definition`, { ...loc, tensor: x.name });
    }
    // Symbolic values are re-derived in graph order, so a parsed or edited graph re-infers what the builder did.
    const { types, symbolic } = inferNodeFull(n);
    n.outputs.forEach((o, i) => {
      if (o.producer !== n)
        throw new VerifyError(`output '${o.name}' has a wrong producer`, { ...loc, tensor: o.name });
      const want = typeToString(types[i]!);
      const got = typeToString(o.type);
      if (want !== got) {
        throw new VerifyError(`output '${o.name}' declared ${got}, inferred ${want}`, { ...loc, tensor: o.name });
      }
      o.symbolic = symbolic[i];
      define(o, loc);
    });
  }
  for (const o of graph.outputs) {
    if (!defined.has(o)) throw new VerifyError(`graph output '${o.name}' is never defined`, { tensor: o.name });
  }
}
