/**
 * A rank graph cut at its collectives: the nodes between two collectives become one segment graph (compiled as a kiln
 * Session on the rank's backend), the collectives run on the host through a transport (MPI). Segment inputs are the
 * graph inputs and earlier values it reads; its outputs the values read later (by a segment, a collective or the
 * graph's outputs).
 */
import { GraphBuilder } from '../../ir/builder.js';
import type { Graph, Node, Value } from '../../ir/graph.js';
import { COLLECTIVE_OPS } from '../../ir/ops/collective.js';
import { getOp, resolveAttrs } from '../../ir/registry.js';
import type { Tensor } from '../../ir/tensor.js';
import type { CompileOptions, Session } from '../session.js';

export type CutStep =
  | { readonly kind: 'segment'; readonly graph: Graph }
  | { readonly kind: 'collective'; readonly node: Node; readonly input: string; readonly output: string };

/** Cut `graph` at its collectives (in node order). */
export function cutAtCollectives(graph: Graph): CutStep[] {
  const groups: (Node[] | Node)[] = [];
  let cur: Node[] = [];
  for (const n of graph.nodes) {
    if (COLLECTIVE_OPS.has(n.op)) {
      if (cur.length) groups.push(cur);
      groups.push(n);
      cur = [];
    } else cur.push(n);
  }
  if (cur.length) groups.push(cur);
  // where each value is read: group index
  const readers = new Map<Value, number[]>();
  groups.forEach((g, i) => {
    for (const n of Array.isArray(g) ? g : [g])
      for (const x of n.inputs) if (x) (readers.get(x) ?? readers.set(x, []).get(x)!).push(i);
  });
  const outs = new Set(graph.outputs);
  return groups.map((g, i): CutStep => {
    if (!Array.isArray(g)) return { kind: 'collective', node: g, input: g.inputs[0]!.name, output: g.outputs[0]!.name };
    const b = new GraphBuilder(`${graph.name}.seg${i}`);
    const map = new Map<Value, Value>();
    const mine = new Set(g.flatMap((n) => n.outputs));
    for (const n of g) {
      for (const x of n.inputs) {
        if (!x || map.has(x) || mine.has(x)) continue;
        map.set(
          x,
          x.data ? b.weight(x.name, x.data, x.type.layout) : b.input(x.name, x.type.dtype, x.type.shape, x.type.layout),
        );
      }
      const o = b.opN(
        n.op,
        n.inputs.map((x) => (x ? map.get(x)! : null)),
        n.attrs,
        n.outputs.length,
        n.outputs.map((v) => v.name),
      );
      n.outputs.forEach((v, k) => map.set(v, o[k]!));
    }
    for (const v of mine) if (outs.has(v) || (readers.get(v) ?? []).some((r) => r > i)) b.output(map.get(v)!, v.name);
    return { kind: 'segment', graph: b.build() };
  });
}

/** Runs one collective node for this rank: its input tensor in, the collective's result out (MPI, or a test double). */
export type Transport = (node: Node, x: Tensor, attrs: Record<string, unknown>) => Tensor;

/** A rank graph as compiled segments + host collectives. */
export class SegmentedRank {
  private constructor(
    private readonly steps: readonly (CutStep & { session?: Session })[],
    private readonly outputs: readonly string[],
  ) {}

  /** Cut `graph` at its collectives and compile each segment as a session (`opts.backend`). */
  static async compile(graph: Graph, opts: CompileOptions): Promise<SegmentedRank> {
    const { compile } = await import('../session.js');
    const steps: (CutStep & { session?: Session })[] = [];
    for (const s of cutAtCollectives(graph)) {
      steps.push(s.kind === 'segment' ? { ...s, session: await compile(s.graph, opts) } : s);
    }
    return new SegmentedRank(
      steps,
      graph.outputs.map((o) => o.name),
    );
  }

  /** Run the segments in order, each collective through `transport`; returns the rank graph's outputs. */
  async run(feeds: Readonly<Record<string, Tensor>>, transport: Transport): Promise<Record<string, Tensor>> {
    const env = new Map<string, Tensor>(Object.entries(feeds));
    for (const s of this.steps) {
      if (s.kind === 'collective') {
        const attrs = resolveAttrs(getOp(s.node.op), s.node.attrs, s.node.name);
        env.set(s.output, transport(s.node, env.get(s.input)!, attrs));
        continue;
      }
      const f: Record<string, Tensor> = {};
      for (const v of s.graph.inputs) f[v.name] = env.get(v.name)!;
      for (const [k, v] of Object.entries(await s.session!.run(f))) env.set(k, v);
    }
    const out: Record<string, Tensor> = {};
    for (const o of this.outputs) out[o] = env.get(o)!;
    return out;
  }

  /** Dispose every segment's session. */
  dispose(): void {
    for (const s of this.steps) s.session?.dispose();
  }
}
