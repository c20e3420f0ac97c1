/**
 * Several sequences in flight through the pipeline at once, each (sequence, step) a micro-batch: the first stage
 * picks which ready sequence enters next, every later stage takes micro-batches in the order they arrive (a header
 * [sequence, length] precedes each hidden state), the last stage returns the greedy token and its measured time to
 * the first stage. Two policies for the first stage's pick:
 *
 * - static: readiness order (FIFO), the GPipe-style arrival order;
 * - dynamic: Johnson's rule on measured per-token times of the first stage (front) and of the rest (back, reported
 *   with each token): items with front ≤ back first by increasing front time, the rest by decreasing back time.
 *
 * Returns the generated tokens of every sequence (on the first stage) and this rank's busy / wall time.
 */
import { KilnError } from '../../ir/errors.js';
import type { Tensor } from '../../ir/tensor.js';
import { fromValues, makeTensor } from '../../ir/tensor.js';
import type { Graph } from '../../ir/graph.js';
import { interpretWithCollectives } from './interpret-ranks.js';
import type { Mpi } from './mpi.js';
import { mpiCollectiveTransport, planRank } from './runtime.js';

export interface PipelinedResult {
  /** Per sequence: prompt + generated ids (first-stage ranks only; empty elsewhere). */
  readonly tokens: number[][];
  readonly busy: number;
  readonly wall: number;
  readonly stage: number;
  /** The order micro-batches entered the pipeline, as sequence ids. */
  readonly order: number[];
}

const TAG_HEADER = 201;
const TAG_HIDDEN = 202;
const TAG_TOKEN = 203;

/**
 * Several sequences in flight through the pipeline stages of an MPI run (this process is one rank): each (sequence,
 * step) is a micro-batch; the first stage picks the next ready sequence by `policy` (`static`: readiness order,
 * `dynamic`: Johnson's rule on measured per-token stage times); rank 0 returns each prompt's greedy tokens and the
 * run's bubble and busy times.
 */
export function generatePipelined(
  graph: Graph,
  layout: { tp: number; pp: number; balance?: 'cost' | 'equal' },
  prompts: readonly (readonly number[])[],
  steps: number,
  policy: 'static' | 'dynamic',
  mpi: Mpi,
): PipelinedResult {
  const { tp, pp } = layout;
  if (mpi.size !== tp * pp) {
    throw new KilnError('limit', `--tp ${tp} × --pp ${pp} needs ${tp * pp} ranks, the MPI world has ${mpi.size}`, {
      limit: 'ranks',
    });
  }
  if (pp < 2) throw new KilnError('attribute', 'pipelined generation needs --pp ≥ 2');
  const plan = planRank(graph, layout, mpi.rank);
  if (tp > 1) mpi.group(plan.stage, plan.tpRank);
  const part = plan.parts[0]!;
  const g = part.graph;
  const transport = mpiCollectiveTransport(mpi);
  const K = prompts.length;
  const first = plan.stage === 0;
  const last = plan.stage === pp - 1;
  const rankOf = (stage: number) => stage * tp + plan.tpRank;
  // per-sequence caches of this rank's layers
  const caches = prompts.map(() => {
    const m = new Map<string, Tensor>();
    for (const v of g.inputs) {
      if (!v.name.startsWith('past_')) continue;
      const shape = v.type.shape.map((d) => (d === 'batch' ? 1 : d === 'past' ? 0 : (d as number)));
      m.set(v.name, makeTensor(v.type.dtype, shape));
    }
    return m;
  });
  const seqTokens = prompts.map((p) => [...p]);
  const pos = prompts.map(() => 0);
  const pending = prompts.map((p) => [...p]); // the chunk each sequence feeds next
  const run = (seq: number, n: number, hidden: Record<string, Tensor>): Record<string, Tensor> => {
    const chunk = pending[seq]!;
    const feeds: Record<string, Tensor> = { ...hidden };
    for (const v of g.inputs) {
      if (v.name === 'input_ids') feeds[v.name] = makeTensor('i64', [1, n], chunk);
      else if (v.name === 'position_ids')
        feeds[v.name] = makeTensor(
          'i64',
          [1, n],
          chunk.map((_, i) => pos[seq]! + i),
        );
      else if (v.name.startsWith('past_')) feeds[v.name] = caches[seq]!.get(v.name)!;
    }
    const out = interpretWithCollectives(g, feeds, transport);
    for (const k of Object.keys(out))
      if (k.startsWith('present_')) caches[seq]!.set(k.replace('present_', 'past_'), out[k]!);
    return out;
  };
  const send = (out: Record<string, Tensor>, seq: number, n: number) => {
    for (const [name] of part.sends) {
      mpi.send(new Float64Array([seq, n]), rankOf(plan.stage + 1), TAG_HEADER);
      mpi.send(Float64Array.from(out[name]!.data as ArrayLike<number>), rankOf(plan.stage + 1), TAG_HIDDEN);
    }
  };
  const t0 = performance.now();
  let busy = 0;
  const order: number[] = [];
  const total = K * steps;
  if (first) {
    const ready: number[] = prompts.map((_, i) => i);
    const inFlight: number[] = [];
    let front = 0; // measured ms per token on this stage
    let back = 0; // measured ms per token on the rest (reported with tokens)
    let frontN = 0;
    let backN = 0;
    let done = 0;
    let entered = 0;
    const receiveToken = () => {
      const seq = inFlight.shift()!;
      const msg = new Float64Array(2);
      mpi.recv(msg, rankOf(pp - 1), TAG_TOKEN);
      const n = pending[seq]!.length;
      back += msg[1]!;
      backN += n;
      pos[seq]! += n;
      seqTokens[seq]!.push(msg[0]!);
      pending[seq] = [msg[0]!];
      done++;
      if (seqTokens[seq]!.length - prompts[seq]!.length < steps) ready.push(seq);
    };
    while (done < total) {
      if (!ready.length || entered === total) {
        receiveToken();
        continue;
      }
      let pick = 0;
      if (policy === 'dynamic' && frontN > 0 && backN > 0) {
        const f = front / frontN;
        const b = back / backN;
        const key = (s: number) => {
          const n = pending[s]!.length;
          return f * n <= b * n ? [0, f * n] : [1, -b * n];
        };
        for (let i = 1; i < ready.length; i++) {
          const [ca, va] = key(ready[i]!);
          const [cb, vb] = key(ready[pick]!);
          if (ca! < cb! || (ca === cb && va! < vb!)) pick = i;
        }
      } else if (policy === 'dynamic') {
        // before any measurement: the shortest chunk first (both halves scale with length)
        for (let i = 1; i < ready.length; i++) if (pending[ready[i]!]!.length < pending[ready[pick]!]!.length) pick = i;
      }
      const seq = ready.splice(pick, 1)[0]!;
      const n = pending[seq]!.length;
      const c0 = performance.now();
      const out = run(seq, n, {});
      const dt = performance.now() - c0;
      busy += dt;
      front += dt;
      frontN += n;
      send(out, seq, n);
      inFlight.push(seq);
      order.push(seq);
      entered++;
    }
  } else {
    for (let i = 0; i < total; i++) {
      const head = new Float64Array(2);
      mpi.recv(head, rankOf(plan.stage - 1), TAG_HEADER);
      const [seq, n] = [head[0]!, head[1]!];
      const hidden: Record<string, Tensor> = {};
      for (const [name] of part.receives) {
        const v = g.inputs.find((x) => x.name === name)!;
        const shape = v.type.shape.map((d) => (d === 'batch' ? 1 : d === 'seq' ? n : (d as number)));
        const buf = new Float64Array(shape.reduce((a, b) => a * b, 1));
        mpi.recv(buf, rankOf(plan.stage - 1), TAG_HIDDEN);
        hidden[name] = fromValues(v.type.dtype, shape, buf);
      }
      // keep the ids / positions bookkeeping in step with the first stage
      if (pending[seq]!.length !== n) pending[seq] = new Array<number>(n).fill(0);
      const c0 = performance.now();
      const out = run(seq, n, hidden);
      const dt = performance.now() - c0;
      busy += dt;
      pos[seq]! += n;
      order.push(seq);
      if (!last) {
        send(out, seq, n);
        continue;
      }
      const logits = out['logits']!;
      const V = logits.shape[2]!;
      const row = (n - 1) * V;
      let best = 0;
      for (let j = 1; j < V; j++) if (logits.data[row + j]! > logits.data[row + best]!) best = j;
      pending[seq] = [best];
      mpi.send(new Float64Array([best, dt * (pp - 1)]), rankOf(0), TAG_TOKEN);
    }
  }
  return {
    tokens: first ? seqTokens : [],
    busy: busy / 1000,
    wall: (performance.now() - t0) / 1000,
    stage: plan.stage,
    order,
  };
}
