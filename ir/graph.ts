/**
 * Graph, nodes and values. A graph is a list of nodes in topological order over SSA values; constants (weights,
 * ONNX initializers) are values that carry their data. Mutation helpers keep use lists implicit: passes rebuild what
 * they need through `users()`.
 */
import { VerifyError } from './errors.js';
import type { Attrs } from './registry.js';
import type { Tensor } from './tensor.js';
import type { TensorType } from './types.js';

export class Value {
  /** Set when a node produces this value. */
  producer: Node | undefined = undefined;
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

export class Node {
  constructor(
    public name: string,
    public op: string,
    /** null marks an absent optional input. */
    public inputs: (Value | null)[],
    public outputs: Value[],
    public attrs: Attrs,
  ) {
    for (const o of outputs) o.producer = this;
  }
}

export class Graph {
  name: string;
  inputs: Value[] = [];
  outputs: Value[] = [];
  constants: Value[] = [];
  nodes: Node[] = [];
  constructor(name = 'main') {
    this.name = name;
  }

  /** Values in definition order: inputs, constants, then node results. */
  *values(): Iterable<Value> {
    yield* this.inputs;
    yield* this.constants;
    for (const n of this.nodes) yield* n.outputs;
  }

  /** Nodes that read `v`. */
  users(v: Value): Node[] {
    return this.nodes.filter((n) => n.inputs.includes(v));
  }

  /** Replace every use of `from` (node inputs and graph outputs) with `to`. */
  replaceAllUses(from: Value, to: Value): void {
    for (const n of this.nodes) n.inputs = n.inputs.map((x) => (x === from ? to : x));
    this.outputs = this.outputs.map((x) => (x === from ? to : x));
  }

  /** Drop nodes whose results are unused and constants nobody reads. */
  removeDead(): number {
    const live = new Set<Value>(this.outputs);
    const keep: Node[] = [];
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const n = this.nodes[i]!;
      if (n.outputs.some((o) => live.has(o))) {
        keep.push(n);
        for (const x of n.inputs) if (x) live.add(x);
      }
    }
    const removed = this.nodes.length - keep.length;
    this.nodes = keep.reverse();
    this.constants = this.constants.filter((c) => live.has(c));
    return removed;
  }

  /** Reorder nodes topologically (stable); throws on a cycle or a use of an undefined value. */
  toposort(): void {
    const defined = new Set<Value>([...this.inputs, ...this.constants]);
    const pending = [...this.nodes];
    const order: Node[] = [];
    while (pending.length) {
      const idx = pending.findIndex((n) => n.inputs.every((x) => x === null || defined.has(x)));
      if (idx < 0) {
        const n = pending[0]!;
        throw new VerifyError('graph has a cycle or reads an undefined value', { node: n.name, op: n.op });
      }
      const [n] = pending.splice(idx, 1);
      order.push(n!);
      for (const o of n!.outputs) defined.add(o);
    }
    this.nodes = order;
  }
}
