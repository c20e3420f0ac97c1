/**
 * Common-subexpression elimination: nodes with the same op, inputs and attributes compute the same thing, and so do
 * small constants with the same data. One pass in graph order with a table keyed by the node's structure, O(N).
 */
import type { Graph, Node, Value } from '../../ir/graph.js';
import type { AttrValue } from '../../ir/registry.js';
import { numToText } from '../../ir/text.js';
import { typeToString } from '../../ir/types.js';
import { replaceValue } from '../rewrite.js';

/** Constants up to this many elements are deduplicated by content. */
const CONST_CSE_LIMIT = 1024;

function attrKey(x: AttrValue): string {
  if (typeof x === 'number') return numToText(x);
  if (typeof x === 'string' || typeof x === 'boolean') return JSON.stringify(x);
  if (Array.isArray(x))
    return `[${x.map((e: number | string) => (typeof e === 'number' ? numToText(e) : JSON.stringify(e))).join(',')}]`;
  const t = x as { dtype: string; shape: readonly number[]; data: ArrayLike<number> };
  return `T${t.dtype}[${t.shape.join(',')}]${Array.from(t.data, numToText).join(',')}`;
}

/** Returns how many nodes and constants it merged away. */
export function eliminateCommonSubexpressions(g: Graph): number {
  const id = new Map<Value, number>();
  const idOf = (x: Value | null): string => {
    if (!x) return '_';
    let k = id.get(x);
    if (k === undefined) id.set(x, (k = id.size));
    return String(k);
  };
  const outputs = new Set(g.outputs);
  let removed = 0;

  // constants first: equal small constants become one, so nodes reading either compare equal below
  const consts = new Map<string, Value>();
  for (const c of g.constants) {
    const t = c.data!;
    if (t.data.length > CONST_CSE_LIMIT || outputs.has(c)) continue;
    const key = `${typeToString(c.type)}=${Array.from(t.data, numToText).join(',')}`;
    const had = consts.get(key);
    if (had) g.replaceAllUses(c, had);
    else consts.set(key, c);
  }

  const table = new Map<string, Node>();
  const dead = new Set<Node>();
  for (const n of g.nodes) {
    const attrs = Object.keys(n.attrs)
      .sort()
      .map((k) => `${k}=${attrKey(n.attrs[k]!)}`)
      .join(',');
    const key = `${n.op}(${n.inputs.map(idOf).join(',')}){${attrs}}#${n.outputs.map((o) => typeToString(o.type)).join(';')}`;
    const had = table.get(key);
    if (!had) {
      table.set(key, n);
      continue;
    }
    // an output keeps its name: the survivor can take it only if it names no output itself
    if (!n.outputs.every((o, i) => !outputs.has(o) || !outputs.has(had.outputs[i]!))) continue;
    n.outputs.forEach((o, i) => {
      if (outputs.has(o)) {
        // the survivor takes the output's name (an output name is what the caller sees)
        replaceValue(g, o, had.outputs[i]!, outputs);
      } else g.replaceAllUses(o, had.outputs[i]!);
    });
    dead.add(n);
    removed++;
  }
  if (removed > 0) g.nodes = g.nodes.filter((n) => !dead.has(n));
  const live = g.constants.filter((c) => outputs.has(c) || g.users(c).length > 0);
  removed += g.constants.length - live.length;
  g.constants = live;
  return removed;
}
