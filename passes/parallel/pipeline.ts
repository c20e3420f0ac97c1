/**
 * Pipeline partition: a LLaMA / GPT-2 builder graph cut into consecutive stages of layers. Each node is tagged with
 * the layer it belongs to (the largest layer index among its weights, `past_*` inputs and its inputs' tags; the
 * embedding is layer 0, the final norm and head the last layer), layers are grouped into stages, and every value
 * produced in one stage and read in a later one becomes an output of the first and an input of the reader (the
 * hidden state; a stage's KV caches stay its own inputs / outputs). `balanceLayers` chooses the cut that minimizes
 * the slowest stage from per-layer costs (modeled: weight elements; or measured times) under a memory limit.
 */
import { GraphBuilder } from '../../ir/builder.js';
import { KilnError } from '../../ir/errors.js';
import type { Graph, Value } from '../../ir/graph.js';
import '../../ir/ops/index.js';

export interface PipelineStage {
  readonly graph: Graph;
  /** Layers [first, last] of the stage. */
  readonly layers: readonly [number, number];
  /** Stage inputs produced by earlier stages: name → producing stage. */
  readonly receives: ReadonlyMap<string, number>;
  /** Stage outputs read by later stages: name → reading stages. */
  readonly sends: ReadonlyMap<string, readonly number[]>;
}

const layerOfName = (name: string): number | undefined => {
  const m = /^(?:layers|h)\.(\d+)\.|^(?:past|present)_(?:key|value)_(\d+)$/.exec(name);
  return m ? Number(m[1] ?? m[2]) : undefined;
};

/** Number of decoder layers of a builder graph. */
export function graphLayers(graph: Graph): number {
  let n = 0;
  for (const v of [...graph.constants, ...graph.inputs]) n = Math.max(n, (layerOfName(v.name) ?? -1) + 1);
  if (n === 0)
    throw new KilnError('unsupported', `pipeline: graph '${graph.name}' has no layer weights (layers.i.* / h.i.*)`);
  return n;
}

/** Modeled per-layer cost: the weight elements each layer reads (∝ decode FLOPs and bytes per token). */
export function layerWeightCosts(graph: Graph): number[] {
  const costs = new Array<number>(graphLayers(graph)).fill(0);
  for (const c of graph.constants) {
    const l = layerOfName(c.name);
    if (l !== undefined) costs[l]! += c.data!.data.length;
  }
  return costs;
}

/**
 * Contiguous split of `costs` into `stages` groups minimizing the largest group's cost (dynamic programming), with
 * every group's `memory` sum ≤ `memoryLimit`. Returns the first layer of each stage. A typed error when no split fits.
 */
export function balanceLayers(
  costs: readonly number[],
  stages: number,
  memory: readonly number[] = costs.map(() => 0),
  memoryLimit = Infinity,
): number[] {
  const n = costs.length;
  if (!Number.isInteger(stages) || stages < 1 || stages > n) {
    throw new KilnError('limit', `pipeline: ${stages} stages for ${n} layers`, { limit: 'stages' });
  }
  const pre = [0];
  const mem = [0];
  for (let i = 0; i < n; i++) {
    pre.push(pre[i]! + costs[i]!);
    mem.push(mem[i]! + memory[i]!);
  }
  // best[s][i]: the smallest max-stage cost splitting layers [0, i) into s stages
  const best = Array.from({ length: stages + 1 }, () => new Array<number>(n + 1).fill(Infinity));
  const cut = Array.from({ length: stages + 1 }, () => new Array<number>(n + 1).fill(-1));
  best[0]![0] = 0;
  for (let s = 1; s <= stages; s++) {
    for (let i = s; i <= n; i++) {
      for (let j = s - 1; j < i; j++) {
        if (mem[i]! - mem[j]! > memoryLimit) continue;
        const v = Math.max(best[s - 1]![j]!, pre[i]! - pre[j]!);
        if (v < best[s]![i]!) {
          best[s]![i] = v;
          cut[s]![i] = j;
        }
      }
    }
  }
  if (best[stages]![n] === Infinity) {
    throw new KilnError(
      'limit',
      `pipeline: no split of ${n} layers into ${stages} stages fits ${memoryLimit} bytes per device`,
      {
        limit: 'device memory',
      },
    );
  }
  const starts: number[] = [];
  let i = n;
  for (let s = stages; s >= 1; s--) {
    i = cut[s]![i]!;
    starts.unshift(i);
  }
  return starts;
}

/** An equal-layer-count split (the baseline the balancer is compared with). */
export function equalLayers(n: number, stages: number): number[] {
  return Array.from({ length: stages }, (_, s) => Math.floor((s * n) / stages));
}

/** Cut `graph` into stages starting at the layers `starts` (ascending, starts[0] = 0). */
export function partitionPipeline(graph: Graph, starts: readonly number[]): PipelineStage[] {
  const L = graphLayers(graph);
  const S = starts.length;
  if (starts[0] !== 0 || starts.some((s, i) => i > 0 && s <= starts[i - 1]!) || starts.at(-1)! >= L) {
    throw new KilnError('attribute', `pipeline: bad stage starts [${starts}] for ${L} layers`);
  }
  const stageOfLayer = (l: number) => {
    let s = 0;
    while (s + 1 < S && starts[s + 1]! <= l) s++;
    return s;
  };
  // layer tags, then stages
  const tag = new Map<Value, number>();
  for (const v of [...graph.inputs, ...graph.constants]) tag.set(v, layerOfName(v.name) ?? -1);
  for (const n of graph.nodes) {
    let t = -1;
    for (const x of n.inputs) if (x) t = Math.max(t, tag.get(x)!);
    if (n.op === 'rms_norm' || n.op === 'layer_norm' || n.op === 'einsum' || n.op === 'matmul') {
      const w = n.inputs[1];
      if (w && (w.name === 'norm' || w.name === 'output' || w.name === 'ln_f.weight')) t = L - 1;
    }
    if (n.op === 'einsum') t = L - 1; // the tied head
    for (const o of n.outputs) tag.set(o, Math.max(t, 0));
  }
  for (const o of graph.outputs) if (o.producer && o.name === 'logits') tag.set(o, L - 1);
  const stageOf = (n: { outputs: readonly Value[] }) => stageOfLayer(tag.get(n.outputs[0]!)!);
  const producerStage = new Map<Value, number>();
  for (const n of graph.nodes) for (const o of n.outputs) producerStage.set(o, stageOf(n));
  const readers = new Map<Value, Set<number>>();
  for (const n of graph.nodes) {
    const s = stageOf(n);
    for (const x of n.inputs) {
      if (!x || !producerStage.has(x)) continue;
      const p = producerStage.get(x)!;
      if (p > s)
        throw new KilnError('verify', `pipeline: value read before its stage`, { node: n.name, tensor: x.name });
      if (p < s) (readers.get(x) ?? readers.set(x, new Set()).get(x)!).add(s);
    }
  }
  return starts.map((first, s) => {
    const b = new GraphBuilder(`${graph.name}.pp${S}.s${s}`);
    const map = new Map<Value, Value>();
    const receives = new Map<string, number>();
    const sends = new Map<string, number[]>();
    const nodes = graph.nodes.filter((n) => stageOf(n) === s);
    const used = new Set<Value>();
    for (const n of nodes) for (const x of n.inputs) if (x) used.add(x);
    for (const v of graph.inputs)
      if (used.has(v)) map.set(v, b.input(v.name, v.type.dtype, v.type.shape, v.type.layout));
    for (const c of graph.constants) if (used.has(c)) map.set(c, b.weight(c.name, c.data!, c.type.layout));
    for (const [v, rs] of readers) {
      if (rs.has(s)) {
        map.set(v, b.input(v.name, v.type.dtype, v.type.shape, v.type.layout));
        receives.set(v.name, producerStage.get(v)!);
      }
    }
    for (const n of nodes) {
      const outs = b.opN(
        n.op,
        n.inputs.map((x) => (x ? map.get(x)! : null)),
        n.attrs,
        n.outputs.length,
        n.outputs.map((o) => o.name),
      );
      n.outputs.forEach((o, i) => map.set(o, outs[i]!));
    }
    for (const o of graph.outputs)
      if (map.has(o) && o.producer && stageOf(o.producer) === s) b.output(map.get(o)!, o.name);
    for (const [v, rs] of readers) {
      if (producerStage.get(v) === s) {
        b.output(map.get(v)!, v.name);
        sends.set(v.name, [...rs].sort());
      }
    }
    const last = s + 1 < S ? starts[s + 1]! - 1 : L - 1;
    return { graph: b.build(), layers: [first, last] as const, receives, sends };
  });
}
