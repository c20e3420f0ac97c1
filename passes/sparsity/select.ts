/**
 * Dense vs sparse layout choice per matmul by a cost model (issue 14): the `sparse-select` pass.
 *
 * For each `matmul` by a constant 2-D weight W [K, N] (f32 / f16, a's last dim K), count W's zeros; a weight with
 * fewer than `minZeros` zeros (default 5%) is left alone at once (dense models cost one pass over their weights and
 * compile to the same kernels). Otherwise detect 2:4 along K, find the bsr block with the cheapest estimate, and
 * estimate every layout's time for `m` rows of a (layout-cost.ts: bytes incl. indices, stored MACs, per-device
 * constants). When a sparse layout wins, the matmul becomes `sparse_matmul` reading the packed constants, its `reason`
 * attribute holding the estimates; every examined matmul, kept or rewritten, is in the report (`selectionReport`).
 * The pass runs at --opt 2 and above (`defaultPipeline`), so level 1 keeps every weight dense.
 */
import { isFloat } from '../../ir/dtype.js';
import { Node, Value, type Graph } from '../../ir/graph.js';
import { packBsr, packCsr, packNm, sparseIndexDtype, sparseLayout, type PackedSparse } from '../../ir/ops/sparse.js';
import { makeTensor } from '../../ir/tensor.js';
import { tensorType } from '../../ir/types.js';
import type { Pass } from '../context.js';
import { Names } from '../rewrite.js';
import {
  estimateLayouts,
  LAVAPIPE_COSTS,
  weightStats,
  type LayoutCostConstants,
  type LayoutEstimate,
  type LayoutName,
  type WeightStats,
} from './layout-cost.js';

export * from './layout-cost.js';

export interface SparseSelectOptions {
  /** Rows of a the estimate is for when a's leading dims are symbolic (default 1: decode). */
  m?: number;
  costs?: LayoutCostConstants;
  /** Weights with a smaller zero fraction stay dense without further analysis (default 0.05). */
  minZeros?: number;
  /** Only these nodes. */
  only?: readonly string[];
}

export interface LayoutChoice {
  node: string;
  weight: string;
  K: number;
  N: number;
  M: number;
  density: number;
  layout: LayoutName;
  /** bsr block [h, w] when layout is bsr. */
  block?: readonly [number, number];
  estimates: LayoutEstimate[];
  reason: string;
}

const reports = new WeakMap<Graph, LayoutChoice[]>();

/** The choices the last `sparse-select` run on this graph made (empty when it never ran or saw no sparse weight). */
export function selectionReport(graph: Graph): readonly LayoutChoice[] {
  return reports.get(graph) ?? [];
}

const fmtBytes = (b: number) => (b >= 1e6 ? `${(b / 1e6).toFixed(2)} MB` : `${(b / 1e3).toFixed(1)} kB`);
const fmtNs = (ns: number) => (ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : `${(ns / 1e3).toFixed(1)} µs`);

function describe(e: LayoutEstimate, s: WeightStats): string {
  return e.layout === 'bsr' ? `bsr(${s.bsr!.block.join('x')})` : e.layout === 'nm' ? '2:4' : e.layout;
}

/** Why: the density and the estimates, fastest first. */
function reasonOf(s: WeightStats, M: number, est: readonly LayoutEstimate[], k: LayoutCostConstants): string {
  const d = ((100 * s.nnz) / (s.K * s.N)).toFixed(1);
  // the per-run launch is the same for every layout: left out of the printed times
  const list = est.map((e) => `${describe(e, s)} ${fmtNs(e.ns - k.launchNs)} (${fmtBytes(e.bytes)})`).join(' < ');
  return `${d}% non-zeros${s.twoFour ? ', 2:4 along K' : ''}; est. at M=${M} on ${k.device}: ${list}`;
}

/** The packed constants of weight `name` in `layout`, added to the graph: values, indices, row_ptr (or null). */
function packConstants(
  graph: Graph,
  names: Names,
  name: string,
  dt: 'f32' | 'f16',
  data: ArrayLike<number>,
  K: number,
  N: number,
  layout: LayoutName,
  block: readonly [number, number] | undefined,
): { geometry: PackedSparse['geometry']; values: (Value | null)[] } {
  const p: PackedSparse =
    layout === 'csr' ? packCsr(data, K, N) : layout === 'bsr' ? packBsr(data, K, N, block!) : packNm(data, K, N);
  const g = p.geometry;
  const constant = (hint: string, t: ReturnType<typeof makeTensor>, sparse: boolean) => {
    const v = new Value(names.fresh(hint), tensorType(t.dtype, t.shape, sparse ? sparseLayout(g) : undefined), t);
    graph.constants.push(v);
    return v;
  };
  const vShape =
    g.format === 'csr' ? [p.values.length] : g.format === 'bsr' ? [p.indices.length, ...g.block] : [N, K / 2];
  const indexDt = g.format === 'nm' ? 'u8' : sparseIndexDtype(g);
  return {
    geometry: g,
    values: [
      constant(`${name}_${g.format}_values`, makeTensor(dt, vShape, p.values), true),
      constant(`${name}_${g.format}_indices`, makeTensor(indexDt, [p.indices.length], p.indices), false),
      p.rowPtr ? constant(`${name}_${g.format}_row_ptr`, makeTensor('i32', [p.rowPtr.length], p.rowPtr), false) : null,
    ],
  };
}

/** Analyse (and, when a sparse layout wins, rewrite) every matmul by a constant weight; returns the choices. */
export function selectSparseLayouts(graph: Graph, opts: SparseSelectOptions = {}): LayoutChoice[] {
  const costs = opts.costs ?? LAVAPIPE_COSTS;
  const minZeros = opts.minZeros ?? 0.05;
  const only = opts.only && new Set(opts.only);
  const out: LayoutChoice[] = [];
  let names: Names | undefined;
  const packed = new Map<Value, Map<string, { geometry: PackedSparse['geometry']; values: (Value | null)[] }>>();
  for (const n of [...graph.nodes]) {
    if (n.op !== 'matmul' || (only && !only.has(n.name))) continue;
    const [a, w] = n.inputs;
    if (!a || !w?.data || w.type.shape.length !== 2 || w.type.layout.kind !== 'dense') continue;
    const dt = w.type.dtype;
    if ((dt !== 'f32' && dt !== 'f16') || !isFloat(a.type.dtype) || a.type.shape.length < 1) continue;
    const [K, N] = w.type.shape as [number, number];
    if (a.type.shape[a.type.shape.length - 1] !== K) continue;
    const data = w.data.data as ArrayLike<number>;
    let zeros = 0;
    for (let i = 0; i < data.length; i++) if (data[i] === 0) zeros++;
    if (zeros < minZeros * K * N || zeros === 0) continue;
    const lead = a.type.shape.slice(0, -1);
    const M = lead.every((d) => typeof d === 'number')
      ? lead.reduce<number>((p, d) => p * (d as number), 1)
      : (opts.m ?? 1);
    const s = weightStats(data, K, N, dt === 'f16' ? 2 : 4, M, costs);
    const est = estimateLayouts(s, M, costs);
    const best = est[0]!;
    const reason = reasonOf(s, M, est, costs);
    out.push({
      node: n.name,
      weight: w.name,
      K,
      N,
      M,
      density: s.nnz / (K * N),
      layout: best.layout,
      block: best.layout === 'bsr' ? s.bsr!.block : undefined,
      estimates: est,
      reason,
    });
    if (best.layout === 'dense') continue;
    names ??= new Names(graph);
    // a weight several matmuls read (with the same choice) is packed once
    const key = `${best.layout}:${best.layout === 'bsr' ? s.bsr!.block.join('x') : ''}`;
    let arrays = packed.get(w)?.get(key);
    if (!arrays) {
      arrays = packConstants(graph, names, w.name, dt, data, K, N, best.layout, s.bsr?.block);
      if (!packed.has(w)) packed.set(w, new Map());
      packed.get(w)!.set(key, arrays);
    }
    const g = arrays.geometry;
    const ins = [a, ...arrays.values];
    const attrs = { format: g.format, K, N, block: [...g.block], reason };
    graph.addNode(new Node(names.fresh(`${n.name}_sparse`), 'sparse_matmul', ins, [...n.outputs], attrs), n);
    graph.removeNode(n);
  }
  if (out.some((c) => c.layout !== 'dense'))
    graph.constants = graph.constants.filter((c) => graph.users(c).length > 0 || graph.outputs.includes(c));
  reports.set(graph, out);
  return out;
}

/** The pass: `selectSparseLayouts` with the defaults (M = 1 where a's rows are symbolic, lavapipe constants). */
export const sparseSelectPass: Pass = {
  name: 'sparse-select',
  minLevel: 2,
  run(graph) {
    const choices = selectSparseLayouts(graph);
    return { changed: choices.some((c) => c.layout !== 'dense') };
  },
};

/** Lines for `kiln inspect`: each examined matmul's layout and why (of a graph the pass ran on, or its report). */
export function selectionLines(from: Graph | readonly LayoutChoice[]): string[] {
  const choices = Array.isArray(from) ? (from as readonly LayoutChoice[]) : selectionReport(from as Graph);
  return choices.map(
    (c) =>
      `${c.node} [${c.K}x${c.N}] → ${c.layout === 'bsr' ? `bsr(${c.block!.join('x')})` : c.layout === 'nm' ? '2:4' : c.layout}: ${c.reason}`,
  );
}
