/**
 * Elementwise fusion: greedy producer → consumer grouping of elementwise / broadcast ops (by the OpDef's `fusion`
 * kind) into `fused_elementwise` nodes, each of which lowers to one pointwise kernel.
 *
 * Walking the graph from its end, every fusible node not yet taken roots a group; a producer joins the group when
 *  - its op is fusible (kind elementwise / broadcast, and one the fused lowering builds: `FUSIBLE_OPS`),
 *  - its one result is read by group nodes only (one user node) and is not a graph output — so nothing outside the
 *    group needs the value materialized; a `shape` / `size` reader needs only its type, and is moved to a value of
 *    the same shape the group reads from outside (the exporters' `Shape` of the attention scores, say),
 *  - its result and the root's are float (an integer chain keeps its i64 overflow checks, per node),
 *  - its shape broadcasts to the root's output shape (the group is evaluated per root output element; a broadcast
 *    producer is recomputed at each position it broadcasts to, its inputs loaded with broadcasting to the root),
 *  - and the group still reads at most `maxInputs` distinct values (a kernel binds ≤ 8 buffers: inputs + output).
 * Scalar constants move into the body (they cost no buffer); other constants stay inputs.
 */
import { isFloat } from '../../ir/dtype.js';
import { Graph, Node, Value } from '../../ir/graph.js';
import { FUSIBLE_OPS } from '../../ir/ops/fused.js';
import { getOp } from '../../ir/registry.js';
import type { Dim } from '../../ir/shape.js';
import { printGraph } from '../../ir/text.js';
import type { Pass } from '../context.js';

export interface FuseOptions {
  /** Most distinct values a group may read (the device's buffer limit minus the output). */
  maxInputs?: number;
}

const isScalarConst = (v: Value) => v.isConst && v.type.shape.every((d) => d === 1);

/** `shape` broadcasts to `target` provably (numpy rules; symbolic dims must match by name). */
export function broadcastsTo(shape: readonly Dim[], target: readonly Dim[]): boolean {
  if (shape.length > target.length) return false;
  const off = target.length - shape.length;
  return shape.every((d, i) => d === 1 || d === target[off + i]);
}

export function fusible(n: Node): boolean {
  if (!FUSIBLE_OPS.has(n.op) || n.outputs.length !== 1) return false;
  const kind = getOp(n.op).fusion;
  if (kind !== 'elementwise' && kind !== 'broadcast') return false;
  if (!isFloat(n.outputs[0]!.type.dtype) || n.outputs[0]!.type.layout.kind !== 'dense') return false;
  // clip's bounds are read as scalars by the lowering
  if (n.op === 'clip' && n.inputs.slice(1).some((x) => x && !x.type.shape.every((d) => d === 1))) return false;
  return true;
}

/** The values a group reads from outside it (scalar constants excluded: they become body constants). */
function externals(group: ReadonlySet<Node>): Value[] {
  const out = new Set<Value>();
  for (const n of group) {
    for (const x of n.inputs) {
      if (!x || isScalarConst(x) || (x.producer && group.has(x.producer))) continue;
      out.add(x);
    }
  }
  return [...out];
}

/** Readers of a value's type only: they may read any other value of the same shape instead. */
const SHAPE_ONLY = new Set(['shape', 'size']);

const sameShape = (a: Value, b: Value) =>
  a.type.shape.length === b.type.shape.length && a.type.shape.every((d, i) => d === b.type.shape[i]);

/**
 * A value the group reads from outside with the shape of interior value `x`, found upstream of `x` (so it is defined
 * before every reader of `x`); undefined when there is none.
 */
function substitute(x: Value, group: ReadonlySet<Node>): Value | undefined {
  for (const y of x.producer!.inputs) {
    if (!y) continue;
    if (y.producer && group.has(y.producer)) {
      const s = substitute(y, group);
      if (s && sameShape(s, x)) return s;
    } else if (!isScalarConst(y) && sameShape(y, x)) return y;
  }
  return undefined;
}

/** Readers outside the group of an interior value: shape-only ones, each with a substitute (checked per group). */
function outsideReadersOk(g: Graph, group: ReadonlySet<Node>, root: Node): boolean {
  for (const n of group) {
    if (n === root) continue;
    const x = n.outputs[0]!;
    const outside = g.users(x).filter((u) => !group.has(u));
    if (outside.length && (!outside.every((u) => SHAPE_ONLY.has(u.op)) || !substitute(x, group))) return false;
  }
  return true;
}

/** Grow the group rooted at `root`: breadth-first over producers, each joining if the rules above allow. */
function growGroup(
  g: Graph,
  root: Node,
  taken: ReadonlySet<Node>,
  outputs: ReadonlySet<Value>,
  max: number,
): Set<Node> {
  const group = new Set<Node>([root]);
  const target = root.outputs[0]!.type.shape;
  const queue = [root];
  while (queue.length) {
    const n = queue.shift()!;
    for (const x of n.inputs) {
      const p = x?.producer;
      if (!x || !p || group.has(p) || taken.has(p) || outputs.has(x) || !fusible(p)) continue;
      if (!broadcastsTo(x.type.shape, target)) continue;
      if (!g.users(x).every((u) => group.has(u) || SHAPE_ONLY.has(u.op))) continue;
      group.add(p);
      if (externals(group).length > max || !outsideReadersOk(g, group, root)) {
        group.delete(p);
        continue;
      }
      queue.push(p);
    }
  }
  return group;
}

/**
 * The group as a standalone graph over its external values (in order), with its root's result as the output; the
 * inputs `inBody` picks (constants: scalars here, shape / axes parameters for concat groups) become body constants.
 */
export function groupBody(
  group: readonly Node[],
  ins: readonly Value[],
  root: Node,
  inBody: (n: Node, i: number) => boolean = (n, i) => isScalarConst(n.inputs[i]!),
): Graph {
  const body = new Graph('body');
  const map = new Map<Value, Value>();
  let k = 0;
  const fresh = (v: Value, data = v.data) => {
    const c = new Value(`v${k++}`, v.type, data);
    map.set(v, c);
    return c;
  };
  body.inputs = ins.map((v) => fresh(v, undefined));
  for (const n of group) {
    n.inputs.forEach((x, i) => {
      if (x && inBody(n, i) && !map.has(x)) body.constants.push(fresh(x));
    });
  }
  group.forEach((n, i) => {
    const nodeIns = n.inputs.map((x) => (x ? map.get(x)! : null));
    body.nodes.push(new Node(`n${i}`, n.op, nodeIns, [fresh(n.outputs[0]!)], { ...n.attrs }));
  });
  body.outputs = [map.get(root.outputs[0]!)!];
  return body;
}

/** A one-node body over `u`'s inputs (for passes that start a body from a single node). */
export function nodeBody(u: Node): Graph {
  const body = new Graph('one');
  body.inputs = u.inputs.map((x, i) => new Value(`u${i}`, x!.type));
  body.nodes = [new Node('n', u.op, body.inputs, [new Value('y', u.outputs[0]!.type)], { ...u.attrs })];
  body.outputs = [body.nodes[0]!.outputs[0]!];
  return body;
}

/** Fuse `graph` in place; returns the number of groups made. */
export function fuseElementwise(graph: Graph, opts: FuseOptions = {}): number {
  const max = opts.maxInputs ?? 7;
  const outputs = new Set(graph.outputs);
  const taken = new Set<Node>();
  const groups: Set<Node>[] = [];
  const nodes = [...graph.nodes];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const root = nodes[i]!;
    if (taken.has(root) || !fusible(root)) continue;
    const group = growGroup(graph, root, taken, outputs, max);
    for (const n of group) taken.add(n);
    if (group.size > 1) groups.push(group);
  }
  if (!groups.length) return 0;
  const replaced = new Map<Node, Node>(); // root → fused node; other members → dropped
  for (const group of groups) {
    const members = nodes.filter((n) => group.has(n)); // graph order is topological
    const root = members[members.length - 1]!;
    const ins = externals(group);
    for (const n of members) {
      if (n === root) continue;
      const x = n.outputs[0]!;
      for (const u of graph.users(x)) {
        if (group.has(u)) continue;
        const s = substitute(x, group)!;
        u.inputs.forEach((y, i) => y === x && u.setInput(i, s));
      }
    }
    const body = groupBody(members, ins, root);
    // the fused node takes over the root's result value (and name), so every use of it stays as it is
    const fused = new Node(root.name, 'fused_elementwise', ins, [root.outputs[0]!], { body: printGraph(body) });
    for (const n of members) replaced.set(n, n === root ? fused : n);
  }
  const kept: Node[] = [];
  for (const n of nodes) {
    const r = replaced.get(n);
    if (r === undefined) kept.push(n);
    else if (r !== n) kept.push(r);
  }
  graph.nodes = kept;
  // constants only a group read (the scalars moved into bodies) are dead now
  const read = new Set<Value>(graph.outputs);
  for (const n of kept) for (const x of n.inputs) if (x) read.add(x);
  graph.constants = graph.constants.filter((c) => read.has(c));
  return groups.length;
}

/** The pass: runs at level 1 (the default) and up; `disabledPasses: ["fuse-elementwise"]` turns it off. */
export const fuseElementwisePass: Pass = {
  name: 'fuse-elementwise',
  minLevel: 1,
  run(graph) {
    return { changed: fuseElementwise(graph) > 0 };
  },
};
