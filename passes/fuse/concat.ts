/**
 * Concat fusion: a concat whose inputs are (through transposes / reshapes / squeezes / unsqueezes) other concats runs
 * as ONE `fused_injective` kernel instead of one kernel per concat. The shape exporters give a KV cache: GPT-2's
 * `present = stack(past_k ++ k, past_v ++ v)` is three concats — and the attention reads the two inner ones.
 *
 * So that an inner concat (or a value on the chain to it) may join the group although something else reads it too,
 * those other readers are first given a view of the outer concat's result that holds the same elements: the part of
 * the outer result along its axis (`slice`), taken back through the chain by each view op's inverse (squeeze for
 * unsqueeze, the inverse permutation, the reshape back). Views cost no kernel on the devices, and the values are
 * the same elements, so this is exact. A reader that is itself upstream of the outer concat, a graph output on the
 * chain, a part whose offset along the axis is symbolic, or a reshape back to a symbolic shape leaves that input out
 * of the group.
 */
import { Graph, Node, Value } from '../../ir/graph.js';
import { makeTensor } from '../../ir/tensor.js';
import { tensorType } from '../../ir/types.js';
import { printGraph } from '../../ir/text.js';
import type { Pass } from '../context.js';
import { Names } from '../rewrite.js';
import { groupBody } from './elementwise.js';

/** View ops a chain between two concats may pass through (their parameters constant). */
const CHAIN_OPS = new Set(['transpose', 'reshape', 'squeeze', 'unsqueeze']);
/** A slice end past any dim: the last part of a concat along a symbolic axis runs to the end. */
const SLICE_TO_END = 2 ** 31 - 1;
/** Most distinct values a group reads (a kernel binds ≤ 8 buffers: inputs + output). */
const MAX_INPUTS = 7;

const dense = (v: Value) => v.type.layout.kind === 'dense';
const isStatic = (v: Value) => v.type.shape.every((d) => typeof d === 'number');

/** A chain op whose parameters are known at compile time (reshape's target shape a constant). */
function chainOp(n: Node): boolean {
  if (!CHAIN_OPS.has(n.op) || n.outputs.length !== 1) return false;
  return n.inputs.slice(1).every((x) => !x || x.isConst);
}

/** Integer parameter constants move into the body (they cost no buffer). */
const isParam = (n: Node, i: number) => i > 0 && n.inputs[i]!.isConst;

interface Chain {
  /** Chain nodes from the one producing the concat's input down to the inner concat (last). */
  nodes: Node[];
  inner: Node;
}

/** The view chain under `x` down to a concat, if it reaches one. */
function chainTo(x: Value | null, taken: ReadonlySet<Node>): Chain | undefined {
  const nodes: Node[] = [];
  let v = x;
  while (v?.producer && !taken.has(v.producer)) {
    const p = v.producer;
    if (p.op === 'concat') return dense(p.outputs[0]!) ? { nodes: [...nodes, p], inner: p } : undefined;
    if (!chainOp(p)) return undefined;
    nodes.push(p);
    v = p.inputs[0]!;
  }
  return undefined;
}

/** Nodes upstream of `root` (its producers, transitively). */
function ancestors(root: Node): Set<Node> {
  const seen = new Set<Node>();
  const stack = [root];
  while (stack.length) {
    const n = stack.pop()!;
    for (const x of n.inputs) {
      const p = x?.producer;
      if (!p || seen.has(p)) continue;
      seen.add(p);
      stack.push(p);
    }
  }
  return seen;
}

class Fuser {
  private readonly names: Names;
  private readonly outputs: Set<Value>;
  readonly added: Node[] = [];
  private upstream: Set<Node> | undefined;

  constructor(
    private readonly graph: Graph,
    private readonly root: Node,
  ) {
    this.names = new Names(graph);
    this.outputs = new Set(graph.outputs);
  }

  private const64(hint: string, vals: readonly number[]): Value {
    const t = makeTensor('i64', [vals.length], vals);
    const v = new Value(this.names.fresh(hint), tensorType('i64', t.shape), t);
    this.graph.constants.push(v);
    return v;
  }

  private node(op: string, ins: Value[], like: Value, attrs: Record<string, unknown> = {}): Value {
    const y = new Value(this.names.fresh(`${like.name}_part`), like.type);
    this.added.push(new Node(this.names.fresh(`${op}_part`), op, ins, [y], attrs as never));
    return y;
  }

  /** Readers of `v` other than `next`: they must read a view of the root's result instead. */
  private others(v: Value, next: Node): Node[] {
    return this.graph.users(v).filter((u) => u !== next);
  }

  /**
   * Can every value on `chain` (under input k of `concat`) give its other readers a view instead? `viewable` says
   * whether `concat`'s own result can be rebuilt as a view of the root's (always for the root).
   */
  feasible(concat: Node, k: number, chain: Chain, viewable: boolean): boolean {
    const vals = chain.nodes.map((n) => n.outputs[0]!);
    const readers = [concat, ...chain.nodes.slice(0, -1)];
    let needed = false;
    for (let i = 0; i < vals.length; i++) {
      const v = vals[i]!;
      if (this.outputs.has(v)) return false;
      const extra = this.others(v, readers[i]!);
      if (!extra.length) continue;
      needed = true;
      this.upstream ??= ancestors(this.root);
      if (extra.some((u) => this.upstream!.has(u))) return false;
    }
    if (!needed) return true;
    if (!viewable) return false;
    // the part's offset and extent along the axis, and every reshape's way back, must be static
    const axis = axisOf(concat);
    const staticAlong = (x: Value | null) => typeof x!.type.shape[axis] === 'number';
    // the part's start must be static; its end too unless it is the last part (then the slice runs to the end)
    if (!concat.inputs.slice(0, k).every(staticAlong)) return false;
    if (k < concat.inputs.length - 1 && !staticAlong(concat.inputs[k]!)) return false;
    return chain.nodes.slice(0, -1).every((n) => n.op !== 'reshape' || isStatic(n.inputs[0]!));
  }

  /**
   * Give the other readers of the chain's values views of `whole` (a view of the root's result equal to `concat`'s
   * result): the part of input k, then back through each chain op. Returns the inner concat's result as such a view
   * (built on demand: only if a reader deeper down needs it).
   */
  rewire(concat: Node, k: number, chain: Chain, whole: () => Value): () => Value {
    const axis = axisOf(concat);
    const vals = chain.nodes.map((n) => n.outputs[0]!);
    const readers = [concat, ...chain.nodes.slice(0, -1)];
    const lazy = (make: () => Value) => {
      let v: Value | undefined;
      return () => (v ??= make());
    };
    const views: (() => Value)[] = [
      lazy(() => {
        if (concat.inputs.length === 1) return whole();
        const start = concat.inputs.slice(0, k).reduce((a, y) => a + (y!.type.shape[axis] as number), 0);
        const len = vals[0]!.type.shape[axis];
        const end = typeof len === 'number' ? start + len : SLICE_TO_END;
        const [s, e, a] = (
          [
            ['starts', start],
            ['ends', end],
            ['axes', axis],
          ] as const
        ).map(([h, x]) => this.const64(`${vals[0]!.name}_${h}`, [x]));
        return this.node('slice', [whole(), s!, e!, a!], vals[0]!);
      }),
    ];
    for (let i = 1; i < vals.length; i++) {
      const above = views[i - 1]!;
      views.push(lazy(() => inverse(this, chain.nodes[i - 1]!, above(), vals[i]!)));
    }
    vals.forEach((v, i) => {
      for (const u of this.others(v, readers[i]!)) u.inputs.forEach((y, j) => y === v && u.setInput(j, views[i]!()));
    });
    return views[vals.length - 1]!;
  }

  /** `inverse` needs to make nodes and constants. */
  make(op: string, ins: Value[], like: Value, attrs: Record<string, unknown> = {}): Value {
    return this.node(op, ins, like, attrs);
  }
  shapeConst(vals: readonly number[]): Value {
    return this.const64('shape', vals);
  }
}

const axisOf = (n: Node) => {
  const r = n.outputs[0]!.type.shape.length;
  return (((n.attrs['axis'] as number) % r) + r) % r;
};

/** `below` as a view of `y = op(below)`. */
function inverse(f: Fuser, op: Node, y: Value, below: Value): Value {
  switch (op.op) {
    case 'unsqueeze':
      return f.make('squeeze', [y], below, { axes: op.attrs['axes'] });
    case 'squeeze': {
      // the axes squeeze removed: given, or every 1 of the input
      const shape = below.type.shape;
      const axes =
        (op.attrs['axes'] as number[] | undefined)?.map((a) => (a + shape.length) % shape.length) ??
        shape.flatMap((d, i) => (d === 1 ? [i] : []));
      return f.make('unsqueeze', [y], below, { axes: [...axes].sort((a, b) => a - b) });
    }
    case 'transpose': {
      const r = below.type.shape.length;
      const perm = (op.attrs['perm'] as number[] | undefined) ?? Array.from({ length: r }, (_, i) => r - 1 - i);
      const inv = new Array<number>(r);
      perm.forEach((p, i) => (inv[p] = i));
      return f.make('transpose', [y], below, { perm: inv });
    }
    case 'reshape':
      return f.make('reshape', [y, f.shapeConst(below.type.shape as number[])], below);
  }
  throw new Error(`no inverse for ${op.op}`);
}

/** Fuse `graph` in place; returns the number of groups made. */
export function fuseConcats(graph: Graph): number {
  const taken = new Set<Node>();
  let groups = 0;
  const nodes = [...graph.nodes];
  for (let r = nodes.length - 1; r >= 0; r--) {
    const root = nodes[r]!;
    if (root.op !== 'concat' || taken.has(root) || !dense(root.outputs[0]!)) continue;
    const f = new Fuser(graph, root);
    const group = new Set<Node>([root]);
    // concats in the group with a way to rebuild their result as a view of the root's (for readers outside)
    const wholes = new Map<Node, (() => Value) | undefined>([[root, () => root.outputs[0]!]]);
    const queue = [root];
    while (queue.length) {
      const cc = queue.shift()!;
      cc.inputs.forEach((x, k) => {
        const chain = chainTo(x, taken);
        if (!chain || group.has(chain.inner)) return;
        const whole = wholes.get(cc);
        if (!f.feasible(cc, k, chain, whole !== undefined)) return;
        const trial = new Set([...group, ...chain.nodes]);
        if (externals(trial).length > MAX_INPUTS) return;
        const innerWhole = whole ? f.rewire(cc, k, chain, whole) : undefined;
        for (const n of chain.nodes) group.add(n);
        wholes.set(chain.inner, innerWhole);
        queue.push(chain.inner);
      });
    }
    if (group.size === 1) continue;
    for (const n of group) taken.add(n);
    const members = graph.nodes.filter((n) => group.has(n));
    const ins = externals(group);
    const body = groupBody(members, ins, root, isParam);
    const fused = new Node(root.name, 'fused_injective', ins, [root.outputs[0]!], { body: printGraph(body) });
    for (const n of f.added) graph.addNode(n);
    graph.addNode(fused, root);
    for (const n of members) graph.removeNode(n);
    groups++;
  }
  if (groups) {
    graph.toposort();
    const read = new Set<Value>(graph.outputs);
    for (const n of graph.nodes) for (const x of n.inputs) if (x) read.add(x);
    graph.constants = graph.constants.filter((c) => read.has(c));
  }
  return groups;
}

/** Values the group reads from outside, in first-read order (parameter constants excluded: they go in the body). */
function externals(group: ReadonlySet<Node>): Value[] {
  const out = new Set<Value>();
  for (const n of group) {
    n.inputs.forEach((x, i) => {
      if (!x || isParam(n, i) || (x.producer && group.has(x.producer))) return;
      out.add(x);
    });
  }
  return [...out];
}

/** The pass: level 1, after the recognizers (the attention they make reads the inner concats). */
export const fuseConcatsPass: Pass = {
  name: 'fuse-concat',
  minLevel: 1,
  run(graph) {
    return { changed: fuseConcats(graph) > 0 };
  },
};
