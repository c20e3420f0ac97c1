/**
 * The reference for a pipeline of (optionally tensor-parallel) stages: stages run in order in one process, each
 * stage's ranks together through `interpretRanks`, values sent between stages handed over by name.
 */
import type { Graph } from '../../ir/graph.js';
import type { Tensor } from '../../ir/tensor.js';
import { interpretRanks } from './interpret-ranks.js';

/**
 * `stages[s][r]`: stage s, tensor-parallel rank r. `feedsFor(s, r, name)` gives the graph inputs (ids, positions,
 * caches); values from earlier stages are passed along. Returns every stage's rank outputs.
 */
export function interpretPipeline(
  stages: readonly (readonly Graph[])[],
  feedsFor: (stage: number, rank: number, input: string) => Tensor | undefined,
): Record<string, Tensor>[][] {
  const carried = new Map<string, Tensor[]>();
  const results: Record<string, Tensor>[][] = [];
  stages.forEach((ranks, s) => {
    const feeds = ranks.map((g, r) => {
      const f: Record<string, Tensor> = {};
      for (const v of g.inputs) {
        const t = carried.get(v.name)?.[r] ?? feedsFor(s, r, v.name);
        if (t) f[v.name] = t;
      }
      return f;
    });
    const outs = interpretRanks(ranks, feeds);
    for (const o of ranks[0]!.outputs)
      carried.set(
        o.name,
        outs.map((x) => x[o.name]!),
      );
    results.push(outs);
  });
  return results;
}
