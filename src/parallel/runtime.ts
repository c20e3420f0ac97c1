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
import type { BackendChoice } from '../session.js';
import { SegmentedRank } from './segments.js';

export interface ParallelLayout {
  readonly tp: number;
  readonly pp: number;
  /** Interleaved virtual stages per device (default 1): layers cut into pp·V chunks, chunk c on device c mod pp. */
  readonly virtual?: number;
  /** 'cost': stages balanced by per-layer weight cost; 'equal': equal layer counts. */
  readonly balance?: 'cost' | 'equal';
  /**
   * Run each rank's graphs as kiln Sessions on this backend, cut at the collectives (`SegmentedRank`); undefined: the
   * float64 interpreter with collectives in line.
   */
  readonly backend?: BackendChoice;
}

/** One virtual stage held by a rank. */
export interface RankPart {
  /** Virtual stage index (0 … pp·V − 1). */
  readonly virtualStage: number;
  readonly graph: Graph;
  /** Stage inputs from earlier virtual stages: name → producing virtual stage. */
  readonly receives: ReadonlyMap<string, number>;
  /** Stage outputs: name → reading virtual stages. */
  readonly sends: ReadonlyMap<string, readonly number[]>;
  readonly layers: readonly [number, number];
}

export interface RankPlan {
  /** Pipeline device (0 … pp − 1). */
  readonly stage: number;
  readonly tpRank: number;
  /** The rank's virtual stages, in pipeline order. */
  readonly parts: readonly RankPart[];
}

/** The graphs and stage I/O of world rank `rank` (= stage · tp + tpRank). */
export function planRank(graph: Graph, layout: ParallelLayout, rank: number): RankPlan {
  const { tp, pp } = layout;
  const V = layout.virtual ?? 1;
  const costs = layerWeightCosts(graph);
  const chunks = pp * V;
  const starts = layout.balance === 'equal' ? equalLayers(costs.length, chunks) : balanceLayers(costs, chunks);
  const stage = Math.floor(rank / tp);
  const tpRank = rank % tp;
  const parts = partitionPipeline(graph, starts)
    .map((st, v) => ({ st, v }))
    .filter(({ v }) => v % pp === stage)
    .map(({ st, v }) => ({
      virtualStage: v,
      graph: tp === 1 ? st.graph : shardTensorParallelRank(st.graph, tp, tpRank),
      receives: st.receives,
      sends: st.sends,
      layers: st.layers,
    }));
  return { stage, tpRank, parts };
}

function concrete(shape: readonly Dim[], dims: Record<string, number>, what: string): number[] {
  return shape.map((d) => {
    const v = typeof d === 'number' ? d : dims[d];
    if (v === undefined) throw new KilnError('shape', `stage input dim '${String(d)}' is not known`, { tensor: what });
    return v;
  });
}

/** The collective transport for a rank graph: all_reduce / all_gather over the rank's MPI group. */
export function mpiCollectiveTransport(mpi: Mpi) {
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
  /** Layers of each virtual stage this rank ran. */
  readonly layers: readonly (readonly [number, number])[];
}

/**
 * Greedy generation of `steps` tokens after `prompt` over the MPI world (`mpi` undefined: one process, the plain
 * reference — the single-process baseline).
 */
export async function generateParallel(
  graph: Graph,
  layout: ParallelLayout,
  prompt: readonly number[],
  steps: number,
  mpi: Mpi | undefined,
): Promise<ParallelGenerateResult> {
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
  const { tp, pp } = layout;
  const lastVirtual = pp * (layout.virtual ?? 1) - 1;
  const transport = mpi
    ? mpiCollectiveTransport(mpi)
    : () => {
        throw new KilnError('runtime', 'a collective needs the MPI world');
      };
  const compiled = layout.backend
    ? await Promise.all(plan.parts.map((p) => SegmentedRank.compile(p.graph, { backend: layout.backend, opt: 0 })))
    : undefined;
  const deviceOf = (v: number) => (v % pp) * tp + plan.tpRank;
  const caches = new Map<string, Tensor>();
  for (const part of plan.parts) {
    for (const v of part.graph.inputs) {
      if (v.name.startsWith('past_')) {
        caches.set(v.name, makeTensor(v.type.dtype, concrete(v.type.shape, { batch: 1, past: 0 }, v.name)));
      }
    }
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
    const next = new Float64Array(1);
    for (const part of plan.parts) {
      for (const [name, from] of part.receives) {
        if (deviceOf(from) === rank) continue; // an earlier virtual stage on this rank left it in feeds
        const v = part.graph.inputs.find((x) => x.name === name)!;
        const shape = concrete(v.type.shape, { batch: 1, seq: n }, name);
        const buf = new Float64Array(shape.reduce((a, b) => a * b, 1));
        mpi!.recv(buf, deviceOf(from), 100 + from);
        feeds[name] = fromValues(v.type.dtype, shape, buf);
      }
      const ins: Record<string, Tensor> = {};
      for (const v of part.graph.inputs) ins[v.name] = feeds[v.name]!;
      const c0 = performance.now();
      const idx = plan.parts.indexOf(part);
      const out = compiled
        ? await compiled[idx]!.run(ins, transport)
        : mpi
          ? interpretWithCollectives(part.graph, ins, transport)
          : interpret(part.graph, ins);
      busy += performance.now() - c0;
      for (const [name, to] of part.sends) {
        const buf = Float64Array.from(out[name]!.data as ArrayLike<number>);
        for (const v of to) {
          if (deviceOf(v) === rank) feeds[name] = out[name]!;
          else mpi!.send(buf, deviceOf(v), 100 + part.virtualStage);
        }
      }
      for (const k of Object.keys(out))
        if (k.startsWith('present_')) caches.set(k.replace('present_', 'past_'), out[k]!);
      if (part.virtualStage === lastVirtual) {
        const logits = out['logits']!;
        const V = logits.shape[2]!;
        const row = (n - 1) * V;
        let best = 0;
        for (let j = 1; j < V; j++) if (logits.data[row + j]! > logits.data[row + best]!) best = j;
        next[0] = best;
      }
    }
    if (mpi && world > 1) mpi.bcast(next, deviceOf(lastVirtual));
    tokens.push(next[0]!);
    pos += n;
    chunk = [next[0]!];
  }
  compiled?.forEach((c) => c.dispose());
  return {
    tokens,
    busy: busy / 1000,
    wall: (performance.now() - t0) / 1000,
    bytesSent: mpi?.bytes.value ?? 0,
    stage: plan.stage,
    layers: plan.parts.map((p) => p.layers),
  };
}
