/**
 * The rank runtime: each MPI rank (stage s, tensor-parallel rank t; world rank s·tp + t) builds the model, keeps its
 * stage (`partitionPipeline`) and its tensor-parallel shard (`shardTensorParallel`), and runs it in the float64
 * reference with every collective served by MPI on its stage's group. Stages hand the hidden state to the next
 * stage's rank with the same t (MPI send / recv); the last stage picks the greedy token and broadcasts it. Each rank
 * keeps its own head-shard of its own layers' KV cache. Prints nothing: returns the tokens and per-rank timings.
 */
import { KilnError } from '../../ir/errors.js';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import type { Dim } from '../../ir/shape.js';
import { fromValues, makeTensor, type Tensor } from '../../ir/tensor.js';
import { balanceLayers, equalLayers, layerWeightCosts, partitionPipeline } from '../../passes/parallel/index.js';
import { shardTensorParallelRank } from '../../passes/parallel/tensor-parallel.js';
import { interpretWithCollectives } from './interpret-ranks.js';
import type { Mpi } from './mpi.js';

export interface ParallelLayout {
  readonly tp: number;
  readonly pp: number;
  /** 'cost': stages balanced by per-layer weight cost; 'equal': equal layer counts. */
  readonly balance?: 'cost' | 'equal';
}

export interface RankPlan {
  readonly stage: number;
  readonly tpRank: number;
  readonly graph: Graph;
  readonly receives: ReadonlyMap<string, number>;
  readonly sends: ReadonlyMap<string, readonly number[]>;
  readonly layers: readonly [number, number];
}

/** The graph and stage I/O of world rank `rank`. */
export function planRank(graph: Graph, layout: ParallelLayout, rank: number): RankPlan {
  const { tp, pp } = layout;
  const costs = layerWeightCosts(graph);
  const starts = layout.balance === 'equal' ? equalLayers(costs.length, pp) : balanceLayers(costs, pp);
  const stage = Math.floor(rank / tp);
  const tpRank = rank % tp;
  const st = partitionPipeline(graph, starts)[stage]!;
  const g = tp === 1 ? st.graph : shardTensorParallelRank(st.graph, tp, tpRank);
  return { stage, tpRank, graph: g, receives: st.receives, sends: st.sends, layers: st.layers };
}

function concrete(shape: readonly Dim[], dims: Record<string, number>, what: string): number[] {
  return shape.map((d) => {
    const v = typeof d === 'number' ? d : dims[d];
    if (v === undefined) throw new KilnError('shape', `stage input dim '${String(d)}' is not known`, { tensor: what });
    return v;
  });
}

/** The collective transport for a rank graph: all_reduce / all_gather over the rank's MPI group. */
function mpiCollective(mpi: Mpi) {
  return (node: { op: string; name: string }, x: Tensor, attrs: Record<string, unknown>): Tensor => {
    const buf = Float64Array.from(x.data as ArrayLike<number>);
    if (node.op === 'all_reduce') {
      mpi.allreduce(buf);
      return fromValues(x.dtype, x.shape, buf);
    }
    if (node.op === 'all_gather') {
      const n = attrs['world_size'] as number;
      const rank = x.shape.length;
      const axis = (attrs['axis'] as number) < 0 ? (attrs['axis'] as number) + rank : (attrs['axis'] as number);
      const recv = mpi.allgather(buf, n);
      let outer = 1;
      for (let i = 0; i < axis; i++) outer *= x.shape[i]!;
      const block = buf.length / outer; // d · inner
      const out = new Float64Array(recv.length);
      for (let o = 0; o < outer; o++) {
        for (let r = 0; r < n; r++)
          out.set(recv.subarray(r * buf.length + o * block, r * buf.length + (o + 1) * block), (o * n + r) * block);
      }
      const shape = [...x.shape];
      shape[axis] = shape[axis]! * n;
      return fromValues(x.dtype, shape, out);
    }
    throw new KilnError('unsupported', `collective ${node.op} has no MPI transport here`, {
      node: node.name,
      op: node.op,
    });
  };
}

export interface ParallelGenerateResult {
  readonly tokens: number[];
  /** Seconds this rank spent computing (interpretation including its collectives). */
  readonly busy: number;
  /** Seconds of the whole decode on this rank. */
  readonly wall: number;
  /** Bytes this rank sent (collectives + stage hand-off). */
  readonly bytesSent: number;
  readonly stage: number;
  readonly layers: readonly [number, number];
}

/**
 * Greedy generation of `steps` tokens after `prompt` over the MPI world (`mpi` undefined: one process, the plain
 * reference — the single-process baseline).
 */
export function generateParallel(
  graph: Graph,
  layout: ParallelLayout,
  prompt: readonly number[],
  steps: number,
  mpi: Mpi | undefined,
): ParallelGenerateResult {
  const world = layout.tp * layout.pp;
  if ((mpi?.size ?? 1) !== world) {
    throw new KilnError(
      'limit',
      `--tp ${layout.tp} × --pp ${layout.pp} needs ${world} ranks, the MPI world has ${mpi?.size ?? 1}`,
      {
        limit: 'ranks',
      },
    );
  }
  const rank = mpi?.rank ?? 0;
  const plan = planRank(graph, layout, rank);
  if (mpi && world > 1) mpi.group(plan.stage, plan.tpRank);
  const last = layout.pp - 1;
  const caches = new Map<string, Tensor>();
  for (const v of plan.graph.inputs) {
    if (v.name.startsWith('past_'))
      caches.set(v.name, makeTensor(v.type.dtype, concrete(v.type.shape, { batch: 1, past: 0 }, v.name)));
  }
  const tokens = [...prompt];
  const t0 = performance.now();
  let busy = 0;
  let pos = 0;
  let chunk = [...prompt];
  for (let step = 0; step < steps; step++) {
    const n = chunk.length;
    const feeds: Record<string, Tensor> = {
      input_ids: makeTensor('i64', [1, n], chunk),
      position_ids: makeTensor(
        'i64',
        [1, n],
        chunk.map((_, i) => pos + i),
      ),
    };
    for (const [k, v] of caches) feeds[k] = v;
    for (const [name, from] of plan.receives) {
      const v = plan.graph.inputs.find((x) => x.name === name)!;
      const buf = new Float64Array(concrete(v.type.shape, { batch: 1, seq: n }, name).reduce((a, b) => a * b, 1));
      mpi!.recv(buf, from * layout.tp + plan.tpRank, 100 + from);
      feeds[name] = fromValues(v.type.dtype, concrete(v.type.shape, { batch: 1, seq: n }, name), buf);
    }
    const ins: Record<string, Tensor> = {};
    for (const v of plan.graph.inputs) ins[v.name] = feeds[v.name]!;
    const c0 = performance.now();
    const out = mpi ? interpretWithCollectives(plan.graph, ins, mpiCollective(mpi)) : interpret(plan.graph, ins);
    busy += performance.now() - c0;
    for (const [name, to] of plan.sends) {
      const buf = Float64Array.from(out[name]!.data as ArrayLike<number>);
      for (const s of to) mpi!.send(buf, s * layout.tp + plan.tpRank, 100 + plan.stage);
    }
    for (const k of Object.keys(out)) if (k.startsWith('present_')) caches.set(k.replace('present_', 'past_'), out[k]!);
    const next = new Float64Array(1);
    if (plan.stage === last) {
      const logits = out['logits']!;
      const V = logits.shape[2]!;
      const row = (n - 1) * V;
      let best = 0;
      for (let j = 1; j < V; j++) if (logits.data[row + j]! > logits.data[row + best]!) best = j;
      next[0] = best;
    }
    if (mpi && world > 1) mpi.bcast(next, last * layout.tp);
    tokens.push(next[0]!);
    pos += n;
    chunk = [next[0]!];
  }
  return {
    tokens,
    busy: busy / 1000,
    wall: (performance.now() - t0) / 1000,
    bytesSent: mpi?.bytes.value ?? 0,
    stage: plan.stage,
    layers: plan.layers,
  };
}
