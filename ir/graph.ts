/**
 * Graph, nodes and values. A graph is a list of nodes in topological order over SSA values; constants (weights,
 * ONNX initializers) are values that carry their data.
 *
 * The graph keeps a use index (value → nodes reading it) up to date as it is edited, so `users` and
 * `replaceAllUses` cost O(uses) — a rewrite engine calls them constantly. To keep the index right, the node list
 * and node inputs are typed read-only except for the edits the graph sees: `nodes.push`, `addNode`, `removeNode`,
 * `nodes = …`, and a node's `setInput` / `inputs = …`.
 */
import { VerifyError } from './errors.js';
import type { Attrs } from './registry.js';
import type { Dim } from './shape.js';
import type { Tensor } from './tensor.js';
import type { TensorType } from './types.js';

/** An SSA value: a graph input, a constant (with `data`) or a node's result, with its tensor type. */
export class Value {
  /** Set when a node produces this value. */
  producer: Node | undefined = undefined;
  /**
   * The elements of a small integer tensor computed from shapes, as dims (`[batch, seq, 12, 64]`), when known
   * although the data is computed at run time. Derived by inference: set by the builder and re-derived by the
   * verifier, so reshape / expand / slice … can name their output dims; never printed.
   */
  symbolic: readonly Dim[] | undefined = undefined;
  /** A value named `name` of type `type`; `data` makes it a constant. */
  constructor(
    public name: string,
    public type: TensorType,
    /** Data of a constant (weight / initializer); undefined for graph inputs and node results. */
    public data: Tensor | undefined = undefined,
  ) {}
  get isConst(): boolean {
    return this.data !== undefined;
  }
}

/** Value → nodes reading it, with the number of input slots each reads it in (a node may read a value twice). */
class UseIndex {
  private readonly uses = new Map<Value, Map<Node, number>>();

  add(v: Value, n: Node): void {
    let m = this.uses.get(v);
    if (!m) this.uses.set(v, (m = new Map()));
    m.set(n, (m.get(n) ?? 0) + 1);
  }

  remove(v: Value, n: Node): void {
    const m = this.uses.get(v)!;
    const k = m.get(n)!;
    if (k > 1) m.set(n, k - 1);
    else if (m.size > 1) m.delete(n);
    else this.uses.delete(v);
  }

  users(v: Value): Node[] {
    const m = this.uses.get(v);
    return m ? [...m.keys()] : [];
  }
}

/** Lets Graph tell a node which use index its input edits go to (module-private: Node's field is #private). */
let setIndex: (n: Node, index: UseIndex | undefined) => void;

/**
 * One op application: `op` over `inputs` (null for an absent optional input) with `attrs`, producing `outputs`. Edit
 * inputs through `setInput` or `inputs = …` so the graph's use index stays right.
 */
export class Node {
  #inputs: (Value | null)[];
  /** The use index of the graph holding this node; undefined while the node is in no graph. */
  #index: UseIndex | undefined = undefined;

  static {
    setIndex = (n, index) => {
      if (index && n.#index) throw new VerifyError('node is already in a graph', { node: n.name, op: n.op });
      const target = index ?? n.#index;
      if (target) {
        for (const v of n.#inputs) {
          if (!v) continue;
          if (index) target.add(v, n);
          else target.remove(v, n);
        }
      }
      n.#index = index;
    };
  }

  /** A node (in no graph yet: add it with `graph.nodes.push` / `addNode`); it becomes its outputs' producer. */
  constructor(
    public name: string,
    public op: string,
    /** null marks an absent optional input. */
    inputs: readonly (Value | null)[],
    public outputs: Value[],
    public attrs: Attrs,
  ) {
    this.#inputs = [...inputs];
    for (const o of outputs) o.producer = this;
  }

  /** Inputs in port order; null marks an absent optional input. */
  get inputs(): readonly (Value | null)[] {
    return this.#inputs;
  }

  set inputs(xs: readonly (Value | null)[]) {
    const index = this.#index;
    if (index) for (const v of this.#inputs) if (v) index.remove(v, this);
    this.#inputs = [...xs];
    if (index) for (const v of this.#inputs) if (v) index.add(v, this);
  }

  /** Replace input `i` with `v` (null: absent), keeping the graph's use index up to date. */
  setInput(i: number, v: Value | null): void {
    const old = this.#inputs[i];
    if (old === v) return;
    if (old && this.#index) this.#index.remove(old, this);
    this.#inputs[i] = v;
    if (v && this.#index) this.#index.add(v, this);
  }
}

/** A graph's node list: read-only but for `push`, which indexes the new nodes' uses like `Graph.addNode`. */
export interface NodeList extends ReadonlyArray<Node> {
  /**
   * Append nodes to the graph; returns the new length.
   *
   * @throws VerifyError when a node is already in a graph.
   */
  push(...nodes: Node[]): number;
}

class TrackedNodes extends Array<Node> implements NodeList {
  // derived arrays (map, filter, slice …) are plain arrays, outside any graph
  static override get [Symbol.species](): ArrayConstructor {
    return Array;
  }
  index: UseIndex | undefined;
  override push(...nodes: Node[]): number {
    for (const n of nodes) setIndex(n, this.index);
    return super.push(...nodes);
  }
}

/**
 * A model: `inputs`, `constants` and `nodes` (topologically ordered once built) producing `outputs`. Build one with
 * {@link GraphBuilder}, `importOnnx` or `parseGraph`; check it with {@link verify}.
 */
export class Graph {
  name: string;
  inputs: Value[] = [];
  outputs: Value[] = [];
  constants: Value[] = [];
  readonly #uses = new UseIndex();
  #nodes = this.track([]);

  /** An empty graph named `name` (default `main`). */
  constructor(name = 'main') {
    this.name = name;
  }

  private track(ns: readonly Node[]): TrackedNodes {
    const t = new TrackedNodes();
    for (const n of ns) Array.prototype.push.call(t, n);
    t.index = this.#uses;
    return t;
  }

  /** Nodes in order (topological once built or sorted). */
  get nodes(): NodeList {
    return this.#nodes;
  }

  /** Replace the node list: nodes that leave stop counting as users, nodes that join start. */
  set nodes(ns: readonly Node[]) {
    const next = new Set(ns);
    if (next.size !== ns.length) throw new VerifyError('a node is listed twice in the graph');
    for (const n of this.#nodes) if (!next.has(n)) setIndex(n, undefined);
    const prev = new Set(this.#nodes);
    for (const n of ns) if (!prev.has(n)) setIndex(n, this.#uses);
    this.#nodes = this.track(ns);
  }

  /**
   * Append `n`, or insert it just before `before` (O(N) array insert, but no use-index rebuild).
   *
   * @throws VerifyError naming the node when `before` is not in the graph or `n` already is in a graph.
   */
  addNode(n: Node, before?: Node): Node {
    const at = before ? this.#nodes.indexOf(before) : this.#nodes.length;
    if (at < 0) throw new VerifyError('insertion point is not in the graph', { node: before!.name, op: before!.op });
    setIndex(n, this.#uses);
    this.#nodes.splice(at, 0, n);
    return n;
  }

  /**
   * Remove `n` from the node list (its outputs' users are not touched: replace their uses first).
   *
   * @throws VerifyError naming the node when it is not in the graph.
   */
  removeNode(n: Node): void {
    const at = this.#nodes.indexOf(n);
    if (at < 0) throw new VerifyError('node is not in the graph', { node: n.name, op: n.op });
    this.#nodes.splice(at, 1);
    setIndex(n, undefined);
  }

  /** Values in definition order: inputs, constants, then node results. */
  *values(): Iterable<Value> {
    yield* this.inputs;
    yield* this.constants;
    for (const n of this.#nodes) yield* n.outputs;
  }

  /** Nodes that read `v`, each once, in the order they started reading it (graph order for a graph built in order). */
  users(v: Value): Node[] {
    return this.#uses.users(v);
  }

  /** Replace every use of `from` (node inputs and graph outputs) with `to`. */
  replaceAllUses(from: Value, to: Value): void {
    if (from === to) return;
    for (const n of this.#uses.users(from)) {
      n.inputs.forEach((x, i) => {
        if (x === from) n.setInput(i, to);
      });
    }
    this.outputs = this.outputs.map((x) => (x === from ? to : x));
  }

  /** Drop nodes whose results are unused and constants nobody reads. */
  removeDead(): number {
    const { nodes, values } = this.live(this.outputs);
    const removed = this.#nodes.length - nodes.size;
    this.nodes = this.#nodes.filter((n) => nodes.has(n));
    this.constants = this.constants.filter((c) => values.has(c));
    return removed;
  }

  /**
   * The nodes `roots` depend on and the values they read (the roots included), walking the topologically ordered
   * nodes backwards once: what `removeDead` keeps, and what a run asking for some of the outputs has to launch.
   */
  live(roots: readonly Value[]): { nodes: Set<Node>; values: Set<Value> } {
    const values = new Set<Value>(roots);
    const nodes = new Set<Node>();
    for (let i = this.#nodes.length - 1; i >= 0; i--) {
      const n = this.#nodes[i]!;
      if (n.outputs.some((o) => values.has(o))) {
        nodes.add(n);
        for (const x of n.inputs) if (x) values.add(x);
      }
    }
    return { nodes, values };
  }

  /**
   * Reorder nodes topologically; throws on a cycle or a use of an undefined value. Stable: among the nodes ready to
   * go, the earliest in the current order goes first, so an order that is already topological stays as it is.
   * Kahn's algorithm with a cursor over the current order; a min-heap holds only nodes that became ready after the
   * cursor passed them, so a sorted graph costs O(N + E) and each node moved back adds O(log N).
   *
   * @throws VerifyError naming a node on the cycle, or the node and the undefined value it reads.
   */
  toposort(): void {
    const nodes = this.#nodes;
    const pos = new Map<Node, number>();
    nodes.forEach((n, i) => pos.set(n, i));
    const defined = new Set<Value>([...this.inputs, ...this.constants]);
    // pending[i]: inputs of node i produced by a node not yet placed (a value read twice counts twice)
    const pending = new Int32Array(nodes.length);
    for (let i = 0; i < nodes.length; i++) {
      for (const x of nodes[i]!.inputs) {
        if (x === null || defined.has(x)) continue;
        const p = x.producer;
        if (!p || !pos.has(p) || !p.outputs.includes(x)) {
          throw new VerifyError(`node reads an undefined value %${x.name}`, { node: nodes[i]!.name, op: nodes[i]!.op });
        }
        pending[i]!++;
      }
    }
    const order: Node[] = [];
    const heap = new MinHeap();
    let cursor = 0;
    const place = (i: number) => {
      const n = nodes[i]!;
      order.push(n);
      pending[i] = -1;
      for (const o of n.outputs) {
        for (const u of this.#uses.users(o)) {
          const j = pos.get(u)!;
          let k = 0;
          for (const x of u.inputs) if (x === o) k++;
          pending[j]! -= k;
          if (pending[j] === 0 && j < cursor) heap.push(j);
        }
      }
    };
    while (order.length < nodes.length) {
      if (heap.size > 0) place(heap.pop());
      else if (cursor < nodes.length) {
        const i = cursor++;
        if (pending[i] === 0) place(i);
      } else {
        const n = nodeOnCycle(nodes, pending, pos);
        throw new VerifyError('graph has a cycle', { node: n.name, op: n.op });
      }
    }
    this.#nodes = this.track(order);
  }
}

/** A node on a cycle among the unplaced nodes: follow unplaced producers until one repeats. */
function nodeOnCycle(nodes: readonly Node[], pending: Int32Array, pos: Map<Node, number>): Node {
  let i = pending.findIndex((p) => p > 0);
  const seen = new Set<number>();
  while (!seen.has(i)) {
    seen.add(i);
    const n = nodes[i]!;
    const x = n.inputs.find((x) => x?.producer && (pending[pos.get(x.producer) ?? 0] ?? 0) > 0 && pos.has(x.producer));
    i = pos.get(x!.producer!)!;
  }
  return nodes[i]!;
}

/** Binary min-heap of node positions. */
class MinHeap {
  private readonly a: number[] = [];
  get size(): number {
    return this.a.length;
  }
  push(x: number): void {
    const a = this.a;
    let i = a.push(x) - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= x) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = x;
  }
  pop(): number {
    const a = this.a;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const m = l + 1 < a.length && a[l + 1]! < a[l]! ? l + 1 : l;
        if (a[m]! >= last) break;
        a[i] = a[m]!;
        i = m;
      }
      a[i] = last;
    }
    return top;
  }
}
