/**
 * The graph's use index and toposort against brute force: on random DAGs edited by random replaceAllUses, setInput,
 * node insertions and removals, `users(v)` is exactly the set of nodes whose inputs include v, and toposort gives
 * the order the old quadratic algorithm gave (repeatedly the earliest ready node) — a valid order that leaves a
 * sorted one unchanged.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VerifyError } from '../../ir/errors.js';
import { Graph, Node, Value } from '../../ir/graph.js';
import { tensorType } from '../../ir/types.js';
import { PROP_RUNS } from '../helpers/paths.js';

const T = tensorType('f32', [1]);
const names = (ns: readonly Node[]) => ns.map((n) => n.name);

/** Brute force: nodes reading v, in graph order. */
const scanUsers = (g: Graph, v: Value) => g.nodes.filter((n) => n.inputs.includes(v));

/** The reference toposort: repeatedly take the earliest node whose inputs are all defined. */
function slowToposort(g: Graph): Node[] {
  const defined = new Set<Value>([...g.inputs, ...g.constants]);
  const pending = [...g.nodes];
  const order: Node[] = [];
  while (pending.length) {
    const i = pending.findIndex((n) => n.inputs.every((x) => x === null || defined.has(x)));
    if (i < 0) throw new Error('cycle');
    const [n] = pending.splice(i, 1);
    order.push(n!);
    for (const o of n!.outputs) defined.add(o);
  }
  return order;
}

function isTopological(g: Graph): boolean {
  const defined = new Set<Value>([...g.inputs, ...g.constants]);
  for (const n of g.nodes) {
    if (!n.inputs.every((x) => x === null || defined.has(x))) return false;
    for (const o of n.outputs) defined.add(o);
  }
  return true;
}

type Edit =
  | { k: 'replace'; from: number; to: number }
  | { k: 'set'; node: number; port: number; value: number }
  | { k: 'insert'; at: number; ins: number[] }
  | { k: 'push'; ins: number[] }
  | { k: 'remove'; node: number };

const arbEdit: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ k: fc.constant('replace' as const), from: fc.nat(), to: fc.nat() }),
  fc.record({ k: fc.constant('set' as const), node: fc.nat(), port: fc.nat(), value: fc.nat() }),
  fc.record({
    k: fc.constant('insert' as const),
    at: fc.nat(),
    ins: fc.array(fc.nat(), { minLength: 1, maxLength: 3 }),
  }),
  fc.record({ k: fc.constant('push' as const), ins: fc.array(fc.nat(), { minLength: 1, maxLength: 3 }) }),
  fc.record({ k: fc.constant('remove' as const), node: fc.nat() }),
);

/** Node i reads values picked by `ins` among those defined before it (a value may be read twice). */
const arbDag = fc.record({
  inputs: fc.integer({ min: 1, max: 3 }),
  nodes: fc.array(
    fc.record({ ins: fc.array(fc.nat(), { minLength: 1, maxLength: 3 }), outs: fc.integer({ min: 1, max: 2 }) }),
    {
      maxLength: 12,
    },
  ),
  edits: fc.array(arbEdit, { maxLength: 12 }),
});

type DagSpec = typeof arbDag extends fc.Arbitrary<infer S> ? S : never;

/**
 * Builds the DAG in order and applies the edits. Every value gets a sequence number, and edits only ever make a node
 * read values numbered below its outputs (replaceAllUses(from, to) only with to < from), so the graph stays acyclic
 * whatever order the node list ends up in.
 */
function build({ inputs, nodes, edits }: DagSpec) {
  const g = new Graph();
  const values: Value[] = [];
  const add = (name: string) => {
    const v = new Value(name, T);
    values.push(v);
    return v;
  };
  for (let i = 0; i < inputs; i++) g.inputs.push(add(`x${i}`));
  const makeNode = (ins: number[], outs: number) => {
    const reads = ins.map((i) => values[i % values.length]!);
    const name = `n${g.nodes.length}_${values.length}`;
    return new Node(
      name,
      'op',
      reads,
      Array.from({ length: outs }, (_, j) => add(`${name}_${j}`)),
      {},
    );
  };
  for (const n of nodes) g.nodes.push(makeNode(n.ins, n.outs));
  g.outputs = values.slice(-1);
  const sortedBefore = [...g.nodes];
  const seqOf = (v: Value) => values.indexOf(v);
  for (const e of edits) {
    if (e.k === 'replace') {
      const from = values[e.from % values.length]!;
      const to = values[e.to % values.length]!;
      if (seqOf(to) < seqOf(from)) g.replaceAllUses(from, to);
    } else if (e.k === 'set' && g.nodes.length) {
      const n = g.nodes[e.node % g.nodes.length]!;
      const lim = Math.min(...n.outputs.map(seqOf));
      n.setInput(e.port % n.inputs.length, values[e.value % lim]!);
    } else if (e.k === 'insert' && g.nodes.length) {
      g.addNode(makeNode(e.ins, 1), g.nodes[e.at % g.nodes.length]);
    } else if (e.k === 'push') {
      g.nodes.push(makeNode(e.ins, 1));
    } else if (e.k === 'remove' && g.nodes.length) {
      g.removeNode(g.nodes[e.node % g.nodes.length]!);
    }
  }
  return { g, values, sortedBefore };
}

const params = { numRuns: PROP_RUNS * 5 };

describe('graph use index and toposort (random DAGs and edits)', () => {
  it('users(v) equals the brute-force scan after random edits', () => {
    fc.assert(
      fc.property(arbDag, (spec) => {
        const { g, values } = build(spec);
        for (const v of values) {
          const got = g.users(v);
          expect(new Set(got).size).toBe(got.length);
          const pos = (n: Node) => g.nodes.indexOf(n);
          expect(names([...got].sort((a, b) => pos(a) - pos(b)))).toEqual(names(scanUsers(g, v)));
        }
      }),
      params,
    );
  });

  it('an already sorted node list is left unchanged', () => {
    fc.assert(
      fc.property(arbDag, (spec) => {
        const { g, sortedBefore } = build({ ...spec, edits: [] });
        g.toposort();
        expect(names(g.nodes)).toEqual(names(sortedBefore));
      }),
      params,
    );
  });

  it('toposort is valid and stable: the earliest ready node first, as the quadratic scan', () => {
    fc.assert(
      fc.property(arbDag, (spec) => {
        const { g, values } = build(spec);
        // a removed node may leave readers of its results behind: both versions must refuse that graph
        const defined = new Set([...g.inputs, ...g.nodes.flatMap((n) => n.outputs)]);
        if (!g.nodes.every((n) => n.inputs.every((x) => x === null || defined.has(x)))) {
          expect(() => slowToposort(g)).toThrow();
          expect(() => g.toposort()).toThrow(VerifyError);
          return;
        }
        const want = slowToposort(g);
        g.toposort();
        expect(names(g.nodes)).toEqual(names(want));
        expect(isTopological(g)).toBe(true);
        // the use index survives the reorder
        for (const v of values) expect(names(g.users(v)).sort()).toEqual(names(scanUsers(g, v)).sort());
        const again = names(g.nodes);
        g.toposort();
        expect(names(g.nodes)).toEqual(again);
      }),
      params,
    );
  });
});
