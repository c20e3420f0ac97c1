/**
 * Appending nodes to a built graph (the generation runtime adds its sampling head to a model graph). Types are
 * inferred as in the builder; names are made unique against the graph's values.
 */
import { Graph, Node, Value } from '../../ir/graph.js';
import { inferOp } from '../../ir/infer.js';
import { makeTensor } from '../../ir/tensor.js';
import type { Attrs } from '../../ir/registry.js';
import { tensorType } from '../../ir/types.js';

export class GraphExtender {
  private readonly names = new Set<string>();
  private n = 0;
  constructor(readonly graph: Graph) {
    for (const v of graph.values()) this.names.add(v.name);
    for (const nd of graph.nodes) this.names.add(nd.name);
  }

  private fresh(hint: string): string {
    let name = hint;
    while (this.names.has(name)) name = `${hint}_${++this.n}`;
    this.names.add(name);
    return name;
  }

  output(name: string): Value {
    const v = this.graph.outputs.find((o) => o.name === name);
    if (!v) throw new Error(`graph has no output '${name}'`);
    return v;
  }

  constI64(values: readonly number[]): Value {
    const v = new Value(
      this.fresh('c'),
      tensorType('i64', [values.length]),
      makeTensor('i64', [values.length], values),
    );
    this.graph.constants.push(v);
    return v;
  }

  op(op: string, inputs: readonly Value[], attrs: Attrs = {}): Value {
    const name = this.fresh(op);
    const { types, attrs: resolved } = inferOp(
      op,
      name,
      inputs.map((x) => x.type),
      attrs,
      1,
      (i) => inputs[i]?.data,
    );
    const out = new Value(this.fresh(`${op}_out`), types[0]!);
    this.graph.nodes.push(new Node(name, op, [...inputs], [out], resolved));
    return out;
  }

  addOutput(v: Value, name: string): void {
    if (this.names.has(name)) throw new Error(`graph already has a value named '${name}'`);
    this.names.add(name);
    v.name = name;
    this.graph.outputs.push(v);
  }
}
