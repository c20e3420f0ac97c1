/** The pass manager: run a pipeline of passes under a context, instruments around each. */
import type { Graph } from '../ir/graph.js';
import { verify } from '../ir/verify.js';
import { canonicalize, commonSubexpressionElimination, deadCodeElimination, matmulBias } from './canonicalize/index.js';
import { cloneGraph } from './clone.js';
import {
  fuseConcatsPass,
  fuseElementwisePass,
  fuseEpiloguePass,
  mergeProjectionsPass,
  mergeRotaryPass,
  fuseNormProloguePass,
} from './fuse/index.js';
import { recognize, recognizeHeads } from './recognize/index.js';
import { sparseSelectPass } from './sparsity/select.js';
import { qdqFoldPass } from './quant/qdq.js';
import { PassContext, type Pass, type PassContextOptions } from './context.js';

/**
 * Run `passes` on `graph` in place (the ones `ctx` enables), calling the instruments around each; returns whether
 * any changed the graph. The default context is level 1 with no instruments.
 *
 * @throws PassVerifyError (from `verifyInstrument`) naming the pass whose result does not verify;
 * PassMismatchError (from the differential instrument) naming the pass that changed the numbers.
 */
export function runPasses(graph: Graph, passes: readonly Pass[], ctx: PassContext = new PassContext()): boolean {
  let changed = false;
  let index = 0;
  for (const pass of passes) {
    if (!ctx.enabled(pass)) continue;
    for (const ins of ctx.instruments) ins.before?.(pass, graph, index);
    const r = pass.run(graph, ctx);
    changed ||= r.changed;
    for (const ins of ctx.instruments) ins.after?.(pass, graph, r, index);
    index++;
  }
  return changed;
}

/** The passes of optimization level `level` (0: none). */
export function defaultPipeline(level: number): Pass[] {
  const all: Pass[] = [
    deadCodeElimination,
    qdqFoldPass, // before constant folding turns a weight's dequantize into an f32 constant
    canonicalize,
    sparseSelectPass, // --opt 2: a constant weight with zeros → sparse_matmul where the layout cost model says it wins
    recognize,
    commonSubexpressionElimination,
    matmulBias,
    canonicalize,
    recognizeHeads, // after canonicalize composed the transposes recognition left around the keys
    deadCodeElimination,
    mergeProjectionsPass, // Q / K / V (gate / up) projections of one activation: one matmul, split as views
    mergeRotaryPass, // the merged projection's queries and keys: one rotary over both
    fuseConcatsPass, // nested concats (a KV cache's present) → one kernel; their other readers get views
    fuseElementwisePass, // groups the elementwise ops the rules above left
    fuseEpiloguePass, // a matmul / gemm takes the group reading it as its epilogue
    fuseNormProloguePass, // last: an RMS norm rides on the projection after it
  ];
  return all.filter((p) => level >= p.minLevel);
}

/**
 * Optimize a copy of `graph` with the default pipeline of `opts.level` (default 1); the caller's graph is untouched.
 *
 * @throws KilnError (code `attribute`, limit `opt`) for a level other than 0–3; instrument errors as
 * {@link runPasses}.
 */
export function optimize(graph: Graph, opts: PassContextOptions = {}): Graph {
  const ctx = new PassContext(opts);
  if (ctx.level === 0) return graph;
  const copy = cloneGraph(graph);
  runPasses(copy, defaultPipeline(ctx.level), ctx);
  verify(copy); // a pass bug fails here, at compile time, rather than as wrong numbers later
  return copy;
}
