/** Graph editing: the use index, toposort on hand-worked graphs, its errors, and its cost on a long chain. */
import { describe, expect, it } from 'vitest';
import { VerifyError } from '../../ir/errors.js';
import { Graph, Node, Value } from '../../ir/graph.js';
import { tensorType } from '../../ir/types.js';

const T = tensorType('f32', [1]);
const val = (name: string) => new Value(name, T);
const node = (name: string, ins: (Value | null)[], outs: Value[]) => new Node(name, 'op', ins, outs, {});
const names = (ns: readonly Node[]) => ns.map((n) => n.name);

describe('graph use index', () => {
  it('tracks push, setInput, replaceAllUses and removal; a node reading a value twice is one user', () => {
    const g = new Graph();
    const [x, y, a, b] = [val('x'), val('y'), val('a'), val('b')];
    g.inputs.push(x, y);
    const A = node('A', [x, x], [a]);
    const B = node('B', [a, y], [b]);
    g.nodes.push(A, B);
    g.outputs = [a, b];
    expect(names(g.users(x))).toEqual(['A']);
    expect(names(g.users(a))).toEqual(['B']);
    A.setInput(1, y);
    expect(names(g.users(x))).toEqual(['A']);
    expect(names(g.users(y))).toEqual(['B', 'A']);
    g.replaceAllUses(y, x);
    expect(A.inputs).toEqual([x, x]);
    expect(B.inputs).toEqual([a, x]);
    expect(names(g.users(x))).toEqual(['A', 'B']);
    expect(g.users(y)).toEqual([]);
    g.replaceAllUses(a, b);
    expect(g.outputs).toEqual([b, b]);
    expect(names(g.users(b))).toEqual(['B']); // B now reads its own result: the index does not judge
    g.removeNode(B);
    expect(names(g.users(x))).toEqual(['A']);
    expect(g.users(b)).toEqual([]);
  });

  it('nodes = … re-indexes; a node cannot join a second graph', () => {
    const g = new Graph();
    const x = val('x');
    const A = node('A', [x], [val('a')]);
    const B = node('B', [x], [val('b')]);
    g.nodes = [A, B];
    expect(names(g.users(x))).toEqual(['A', 'B']);
    g.nodes = [B];
    expect(names(g.users(x))).toEqual(['B']);
    A.setInput(0, null); // A is in no graph now: nothing to update
    expect(names(g.users(x))).toEqual(['B']);
    expect(() => new Graph().nodes.push(B)).toThrow(VerifyError);
  });
});

describe('toposort', () => {
  it('puts the earliest ready node first', () => {
    // d(x), b(a), a(x), c(x): d and a are ready; b waits for a and goes right after it, before c
    const g = new Graph();
    const [x, a, b, c, d] = ['x', 'a', 'b', 'c', 'd'].map(val) as [Value, Value, Value, Value, Value];
    g.inputs.push(x);
    g.nodes.push(node('D', [x], [d]), node('B', [a], [b]), node('A', [x], [a]), node('C', [x], [c]));
    g.toposort();
    expect(names(g.nodes)).toEqual(['D', 'A', 'B', 'C']);
  });

  it('reverses a chain listed backwards; absent inputs (null) are fine', () => {
    const g = new Graph();
    const v = ['x', 'p', 'q', 'r'].map(val);
    g.inputs.push(v[0]!);
    g.nodes.push(node('R', [v[2]!, null], [v[3]!]), node('Q', [v[1]!], [v[2]!]), node('P', [v[0]!], [v[1]!]));
    g.toposort();
    expect(names(g.nodes)).toEqual(['P', 'Q', 'R']);
  });

  it('names a node on the cycle', () => {
    const g = new Graph();
    const [x, a, b, c] = ['x', 'a', 'b', 'c'].map(val) as [Value, Value, Value, Value];
    g.inputs.push(x);
    // C is fine but waits on the cycle A ⇄ B; the error must name A or B, not C
    g.nodes.push(node('C', [b], [c]), node('A', [x, b], [a]), node('B', [a], [b]));
    let err: unknown;
    try {
      g.toposort();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VerifyError);
    expect((err as VerifyError).message).toMatch(/cycle/);
    expect(['A', 'B']).toContain((err as VerifyError).location.node);
  });

  it('names the node that reads an undefined value', () => {
    const g = new Graph();
    const [x, ghost] = [val('x'), val('ghost')];
    g.inputs.push(x);
    g.nodes.push(node('A', [x], [val('a')]), node('B', [ghost], [val('b')]));
    expect(() => g.toposort()).toThrow(/B.*undefined value %ghost|undefined value %ghost.*B/);
  });

  it('a 10,000-node chain listed backwards: toposort and 10,000 users() calls in well under 2 s', () => {
    const N = 10_000;
    const g = new Graph();
    const vs = Array.from({ length: N + 1 }, (_, i) => val(`v${i}`));
    g.inputs.push(vs[0]!);
    g.nodes = Array.from({ length: N }, (_, i) => node(`n${N - 1 - i}`, [vs[N - 1 - i]!], [vs[N - i]!]));
    const t0 = performance.now();
    g.toposort();
    let users = 0;
    for (const v of vs) users += g.users(v).length;
    const ms = performance.now() - t0;
    expect(g.nodes[0]!.name).toBe('n0');
    expect(g.nodes[N - 1]!.name).toBe(`n${N - 1}`);
    expect(users).toBe(N);
    expect(ms).toBeLessThan(2000);
  });
});
