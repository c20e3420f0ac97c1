/**
 * The all-ranks reference: one float64 interpreter per rank, run in lockstep. Each rank advances through its graph
 * until it reaches a collective; once every rank waits at one, the collectives must agree (same op, same world size,
 * rank r at rank r) and are resolved together by `collectiveReference`. The oracle for sharded graphs: the sharded
 * ranks' outputs must equal the unsplit graph's.
 */
import { KilnError } from '../../ir/errors.js';
import type { Graph, Node, Value } from '../../ir/graph.js';
import { COLLECTIVE_OPS, collectiveReference } from '../../ir/ops/collective.js';
import '../../ir/ops/index.js';
import { getOp, resolveAttrs, type RefContext } from '../../ir/registry.js';
import { bindShape, shapeToString } from '../../ir/shape.js';
import { fromValues, type Tensor } from '../../ir/tensor.js';

class RankState {
  readonly env = new Map<Value, Tensor>();
  readonly dims = new Map<string, number>();
  pc = 0;
  constructor(
    readonly graph: Graph,
    readonly rank: number,
    feeds: Readonly<Record<string, Tensor>>,
  ) {
    for (const v of graph.inputs) {
      const t = feeds[v.name];
      if (!t) throw new KilnError('runtime', `rank ${rank}: missing feed for graph input`, { tensor: v.name });
      if (t.dtype !== v.type.dtype) {
        throw new KilnError('dtype', `rank ${rank}: feed has dtype ${t.dtype}, input wants ${v.type.dtype}`, {
          tensor: v.name,
        });
      }
      if (!bindShape(v.type.shape, t.shape, this.dims)) {
        throw new KilnError(
          'shape',
          `rank ${rank}: feed shape [${t.shape}] does not match ${shapeToString(v.type.shape)}`,
          {
            tensor: v.name,
          },
        );
      }
      this.env.set(v, t);
    }
    for (const c of graph.constants) this.env.set(c, c.data!);
  }

  inputsOf(n: Node): (Tensor | undefined)[] {
    return n.inputs.map((x) => {
      if (!x) return undefined;
      const t = this.env.get(x);
      if (!t) throw new KilnError('runtime', 'value not computed', { node: n.name, op: n.op, tensor: x.name });
      return t;
    });
  }

  store(n: Node, outs: readonly Tensor[]): void {
    n.outputs.forEach((o, i) => {
      const t = outs[i];
      if (!t) throw new KilnError('runtime', `op produced no output ${i}`, { node: n.name, op: n.op });
      if (!bindShape(o.type.shape, t.shape, this.dims)) {
        throw new KilnError('shape', `output shape [${t.shape}] does not match ${shapeToString(o.type.shape)}`, {
          node: n.name,
          op: n.op,
          tensor: o.name,
        });
      }
      this.env.set(o, fromValues(o.type.dtype, t.shape, t.data));
    });
  }

  /** Run nodes until the next collective (returned, not run) or the end (undefined). */
  advance(): Node | undefined {
    const nodes = this.graph.nodes;
    while (this.pc < nodes.length) {
      const n = nodes[this.pc]!;
      if (COLLECTIVE_OPS.has(n.op)) return n;
      const def = getOp(n.op, { node: n.name });
      const ctx: RefContext = {
        node: n.name,
        op: n.op,
        numOutputs: n.outputs.length,
        outputDtypes: n.outputs.map((o) => o.type.dtype),
        fail(message: string): never {
          throw new KilnError('runtime', message, { node: n.name, op: n.op });
        },
      };
      let outs: Tensor[];
      try {
        outs = def.reference(this.inputsOf(n), resolveAttrs(def, n.attrs, n.name), ctx);
      } catch (e) {
        if (e instanceof KilnError) throw e;
        throw new KilnError('runtime', `reference failed: ${(e as Error).message}`, { node: n.name, op: n.op });
      }
      this.store(n, outs);
      this.pc++;
    }
    return undefined;
  }
}

/**
 * Interpret `graphs[r]` with `feeds[r]` for every rank r together, resolving collectives across ranks. Returns each
 * rank's outputs by name. A rank that ends while another waits at a collective, or collectives that disagree, raise
 * a `KilnError` naming the node.
 */
export function interpretRanks(
  graphs: readonly Graph[],
  feeds: readonly Readonly<Record<string, Tensor>>[],
): Record<string, Tensor>[] {
  const world = graphs.length;
  if (feeds.length !== world) {
    throw new KilnError('runtime', `interpretRanks: ${world} graphs but ${feeds.length} feed sets`);
  }
  const ranks = graphs.map((g, r) => new RankState(g, r, feeds[r]!));
  for (;;) {
    const at = ranks.map((s) => s.advance());
    const first = at.find((n) => n !== undefined);
    if (!first) break;
    const fail = (m: string): never => {
      throw new KilnError('runtime', m, { node: first.name, op: first.op });
    };
    at.forEach((n, r) => {
      if (!n) fail(`rank ${r} finished while rank ${at.indexOf(first)} waits at a collective`);
      if (n!.op !== first.op) fail(`rank ${r} is at ${n!.op} '${n!.name}', another rank at ${first.op}`);
      const a = resolveAttrs(getOp(n!.op), n!.attrs, n!.name);
      if (a['world_size'] !== world) fail(`rank ${r}: world_size ${String(a['world_size'])}, ${world} ranks run`);
      if (a['rank'] !== r) fail(`graph ${r} has a collective for rank ${String(a['rank'])}`);
    });
    const xs = at.map((n, r) => ranks[r]!.inputsOf(n!)[0]!);
    const attrs = resolveAttrs(getOp(first.op), first.attrs, first.name);
    const outs = collectiveReference(first.op, xs, attrs, fail);
    at.forEach((n, r) => {
      ranks[r]!.store(n!, [outs[r]!]);
      ranks[r]!.pc++;
    });
  }
  return ranks.map((s) => {
    const out: Record<string, Tensor> = {};
    for (const o of s.graph.outputs) out[o.name] = s.env.get(o)!;
    return out;
  });
}

/**
 * Interpret one rank's graph alone, each collective resolved by `resolve` (a transport such as MPI): given the node,
 * this rank's input and the resolved attributes, it returns this rank's output.
 */
export function interpretWithCollectives(
  graph: Graph,
  feeds: Readonly<Record<string, Tensor>>,
  resolve: (node: Node, x: Tensor, attrs: Record<string, unknown>) => Tensor,
): Record<string, Tensor> {
  const s = new RankState(graph, 0, feeds);
  for (let n = s.advance(); n; n = s.advance()) {
    s.store(n, [resolve(n, s.inputsOf(n)[0]!, resolveAttrs(getOp(n.op), n.attrs, n.name))]);
    s.pc++;
  }
  const out: Record<string, Tensor> = {};
  for (const o of graph.outputs) out[o.name] = s.env.get(o)!;
  return out;
}
