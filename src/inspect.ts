/**
 * `kiln ir`, `kiln kernels` and `kiln inspect`: what kiln makes of a model — its IR text, the kernels it generates for
 * concrete input shapes, or the launches of one run with their cost (FLOPs, bytes, memory) — without running anything
 * on a device.
 */
import { readFileSync } from 'node:fs';
import { KilnError } from '../ir/errors.js';
import type { Graph, Node, Value } from '../ir/graph.js';
import { fusedBody } from '../ir/ops/fused.js';
import { isStatic, numel } from '../ir/shape.js';
import { makeTensor, type Tensor } from '../ir/tensor.js';
import { printGraph } from '../ir/text.js';
import { legalize } from '../codegen/legalize.js';
import { DEFAULT_CAPS, storageOf, type DeviceCaps } from '../codegen/lower/storage.js';
import { CudaRenderer, CUDA_PRELUDE } from '../codegen/render/cuda.js';
import { WgslRenderer } from '../codegen/render/wgsl.js';
import { externalDataFrom, importOnnxModel, type ExternalDataReader } from './frontends/onnx/import.js';
import { dirname, resolve } from 'node:path';
import { decodeModel } from './frontends/onnx/proto.js';
import { optimize } from '../passes/manager.js';
import { selectionLines, selectionReport, type LayoutChoice } from '../passes/sparsity/select.js';
import { nodeFlops } from './cost.js';
import { Executor, hostNodes, storageBytes } from './runtime/executor.js';
import { RecordingBackend } from './runtime/recording.js';

/**
 * Parse `batch=1,seq=8` into a dims map. Every entry must be `name=N` with decimal digits N (`batch=` is an error, not 0),
 * each name once; `undefined` (no --dims) is no dims, an empty string is an error.
 */
export function parseDims(spec: string | undefined): Record<string, number> {
  const dims: Record<string, number> = {};
  if (spec === undefined) return dims;
  if (spec.trim() === '') throw new KilnError('parse', `--dims is empty (want name=N,...)`);
  for (const part of spec.split(',')) {
    const m = /^\s*([^=\s]+)\s*=\s*(\d+)\s*$/.exec(part);
    if (!m) throw new KilnError('parse', `bad --dims entry '${part}' (want name=N with N a whole number)`);
    if (m[1]! in dims) throw new KilnError('parse', `--dims gives '${m[1]}' twice`);
    dims[m[1]!] = Number(m[2]);
  }
  return dims;
}

/**
 * Import a model file, binding the given symbolic input dims; a dim the model's inputs do not have is an error.
 * Initializers stored as external data are read from the model's directory (loadModelFile) — here they are an error.
 */
export function loadModel(file: string, dims: Record<string, number> = {}, externalData?: ExternalDataReader): Graph {
  const model = decodeModel(readFileSync(file));
  const symbolic = new Set<string>();
  for (const v of model.graph.inputs) {
    if (v.type.kind !== 'tensor') continue;
    for (const d of v.type.shape ?? []) if (typeof d === 'string' && d !== '') symbolic.add(d);
  }
  for (const k of Object.keys(dims)) {
    if (!symbolic.has(k)) {
      const known = symbolic.size
        ? `its inputs' symbolic dims: ${[...symbolic].join(', ')}`
        : 'it has no symbolic dims';
      throw new KilnError('parse', `--dims '${k}' is not a symbolic input dim of ${file} (${known})`);
    }
  }
  return importOnnxModel(model, { dims, externalData }).graph;
}

/** The dims a language-model checkpoint is inspected at unless `--dims` says otherwise: one decode step. */
export const LM_DIMS: Readonly<Record<string, number>> = { batch: 1, seq: 1, past: 15 };

/**
 * A model file as a graph with static input shapes where `dims` (and, for checkpoints, {@link LM_DIMS}) bind them:
 * ONNX (external data read from the files beside it: models past 2 GB keep weights there), kiln IR text (`.kir`,
 * what `kiln quantize --out` writes) and language-model checkpoints (llama2.c `.bin`, GGUF, safetensors), whose
 * graphs take batch / seq / past.
 */
export async function loadModelFile(file: string, dims: Record<string, number> = {}): Promise<Graph> {
  const head = new TextDecoder().decode(readFileSync(file).subarray(0, 64));
  const text = /^\s*graph\s/.test(head) || /\.kir$/i.test(file);
  if (text || (!/\.onnx$/i.test(file) && (head.startsWith('GGUF') || /\.(bin|safetensors)$/i.test(file)))) {
    let graph: Graph;
    if (text) {
      const { parseGraph } = await import('../ir/text.js');
      graph = parseGraph(readFileSync(file, 'utf8'));
    } else {
      const { loadLanguageModel } = await import('./generate/load.js');
      graph = loadLanguageModel(file).graph;
    }
    const symbolic = new Set(graph.inputs.flatMap((v) => v.type.shape.filter((d) => typeof d === 'string')));
    for (const k of Object.keys(dims)) {
      if (!symbolic.has(k)) {
        throw new KilnError(
          'parse',
          `--dims '${k}' is not a symbolic input dim of ${file} (${[...symbolic].join(', ') || 'none'})`,
        );
      }
    }
    if (!symbolic.size) return graph;
    const defaults = Object.fromEntries(Object.entries(LM_DIMS).filter(([k]) => symbolic.has(k)));
    const { bindDims } = await import('./prune-flops.js');
    return bindDims(graph, { ...defaults, ...dims });
  }
  const reader = await externalDataFrom(dirname(resolve(file)));
  try {
    return loadModel(file, dims, reader);
  } finally {
    reader.close();
  }
}

/** Zero-filled feeds for a graph whose input shapes are static (after --dims). */
export function zeroFeeds(graph: Graph): Record<string, Tensor> {
  const feeds: Record<string, Tensor> = {};
  for (const v of graph.inputs) {
    if (!isStatic(v.type.shape)) {
      const free = v.type.shape.filter((d) => typeof d === 'string');
      throw new KilnError('shape', `input has symbolic dims ${free.join(', ')}: give them with --dims`, {
        tensor: v.name,
      });
    }
    const shape = v.type.shape as number[];
    feeds[v.name] = makeTensor(v.type.dtype, shape);
  }
  return feeds;
}

/** The device capabilities kernels are generated for. */
async function capsOf(target: 'wgsl' | 'cuda'): Promise<DeviceCaps> {
  return target === 'cuda' ? (await import('./runtime/cuda-emu/backend.js')).CUDA_CAPS : DEFAULT_CAPS;
}

/** Kernel sources (one translation unit for CUDA, one module per kernel for WGSL) for the graph's input shapes. */
export async function kernelSources(graph: Graph, target: 'wgsl' | 'cuda'): Promise<string> {
  const caps = await capsOf(target);
  const rec = new RecordingBackend(caps);
  await new Executor(graph, rec).run(zeroFeeds(graph));
  const kernels = [...rec.kernels.values()].map(legalize);
  const header = `// ${kernels.length} kernels, ${rec.launches.length} launches for graph '${graph.name}'\n`;
  if (target === 'cuda') {
    // one translation unit: helpers are guarded, so kernels can share it
    return header + CUDA_PRELUDE + kernels.map((k) => new CudaRenderer().render(k)).join('\n');
  }
  return header + kernels.map((k) => `// ---- ${k.name}\n${new WgslRenderer().render(k)}`).join('\n');
}

// ---- kiln inspect ----

/** One launch of a run and what it costs. */
export interface KernelCost {
  kernel: string;
  node: string;
  op: string;
  /** The graph ops it computes: a fused node's body ops, else its own op (`copy` for a view copied out). */
  covers: string[];
  /** Step of its node (1-based) when the node launches several kernels; its FLOPs go to the first of its op. */
  step: number;
  steps: number;
  /** null when a shape was not static (the model computes it from data). */
  flops: number | null;
  /**
   * Bytes of the buffers the launch binds read-only / read-write (a view or alias counts its own elements, not its
   * root buffer's). An upper bound where a kernel reads only part of a buffer (a gather binds its whole table).
   */
  bytesRead: number;
  bytesWritten: number;
  /** Layer index (see {@link layerIndex}); -1 outside the layers; absent when the model has no layer names. */
  layer?: number;
}

export interface InspectReport {
  graph: string;
  opt: number;
  target: 'wgsl' | 'cuda';
  inputs: { name: string; dtype: string; shape: number[] }[];
  kernels: KernelCost[];
  /** Movement nodes bound as views / aliases of their input's buffer: no kernel ran. */
  views: { node: string; op: string }[];
  /** Nodes computed on the host (shape computations, constant subgraphs). */
  hostNodes: number;
  /** Kernels per layer (launches attributed to layer i), and those before / after the layers; absent without layers. */
  layers?: { count: number; perLayer: number[]; outside: number };
  /** Every launch's bound bytes vs the minimum: each constant a kernel reads, the inputs and outputs, once. */
  bytes: { read: number; written: number; moved: number; minimum: number };
  /** null when a kernel's FLOPs are unknown. */
  flops: number | null;
  /** Peak device bytes: as the executor allocates (temporaries live to the run's end) and by liveness. */
  peak: { asAllocated: number; byLiveness: number };
  /** sparse-select's choice per matmul by a weight with zeros (--opt 2 and above), with the estimates; absent if none. */
  layouts?: LayoutChoice[];
}

/** Layer index in a weight / node name: `h.0.`, `layers.3.`, `blocks.2`, `layer_1_` … */
const LAYER = /(?:^|[./_])(?:h|layers?|blocks?)[._](\d+)(?=[._/]|$)/;

/** The layer a name belongs to, or undefined. */
export function layerIndex(name: string): number | undefined {
  const m = LAYER.exec(name);
  return m ? Number(m[1]) : undefined;
}

/**
 * The layer of every node, in graph order: from its name or a weight it reads; a node reading a named parameter with
 * no layer (`ln_f.weight`, `wte.weight`) is outside the layers (-1); any other continues the previous node's layer
 * (attention, residual adds and reshapes between weighted nodes). Undefined when no name has a layer index.
 */
function nodeLayers(graph: Graph): Map<Node, number> | undefined {
  const named = (v: Value | null) => v !== null && v.isConst && /[A-Za-z]\w*\.\w/.test(v.name);
  let any = false;
  let cur = -1;
  const out = new Map<Node, number>();
  for (const n of graph.nodes) {
    const idx = [n.name, ...n.inputs.filter((x) => x?.isConst).map((x) => x!.name)]
      .map(layerIndex)
      .find((i) => i !== undefined);
    if (idx !== undefined) {
      cur = idx;
      any = true;
    } else if (n.inputs.some(named)) cur = -1;
    out.set(n, cur);
  }
  return any ? out : undefined;
}

/**
 * Run the graph, optimized at `opt`, on a recording backend with zero feeds and account for every launch: its node,
 * the ops it covers, FLOPs (src/cost.ts), bytes bound; then totals and peak memory.
 */
export async function inspectModel(
  imported: Graph,
  opts: { opt?: number; target?: 'wgsl' | 'cuda'; caps?: Partial<DeviceCaps> } = {},
): Promise<InspectReport> {
  const opt = opts.opt ?? 1;
  return inspectGraph(optimize(imported, { level: opt }), opt, opts.target ?? 'wgsl', opts.caps);
}

/** {@link inspectModel} of a graph optimized at level `opt` already. */
export async function inspectGraph(
  graph: Graph,
  opt: number,
  target: 'wgsl' | 'cuda',
  capsOverride: Partial<DeviceCaps> = {},
): Promise<InspectReport> {
  const caps = { ...(await capsOf(target)), ...capsOverride };
  const rec = new RecordingBackend(caps);
  const feeds = zeroFeeds(graph);
  await new Executor(graph, rec).run(feeds);

  const byName = new Map(graph.nodes.map((n) => [n.name, n]));
  const layers = nodeLayers(graph);
  const stepsOf = new Map<string, number>();
  for (const l of rec.launches) stepsOf.set(l.node ?? '', (stepsOf.get(l.node ?? '') ?? 0) + 1);
  const seen = new Map<string, number>();
  const costed = new Set<Node>();
  const kernels = rec.launches.map((l): KernelCost => {
    const node = byName.get(l.node ?? '');
    const op = l.op ?? node?.op ?? '?';
    const step = (seen.get(l.node ?? '') ?? 0) + 1;
    seen.set(l.node ?? '', step);
    const covers =
      op.startsWith('fused_') && node ? fusedBody(String(node.attrs['body'])).nodes.map((b) => b.op) : [op];
    let bytesRead = 0;
    let bytesWritten = 0;
    for (const b of l.buffers) {
      if (b.access === 'read') bytesRead += b.bytes;
      else bytesWritten += b.bytes;
    }
    const k: KernelCost = {
      kernel: l.kernel,
      node: l.node ?? '?',
      op,
      covers,
      step,
      steps: stepsOf.get(l.node ?? '')!,
      flops: 0,
      bytesRead,
      bytesWritten,
    };
    // a node's FLOPs go to its first kernel of its own op (not to a view copied out before it)
    if (node && op === node.op && !costed.has(node)) {
      costed.add(node);
      k.flops = flopsOf(node);
    }
    if (layers && node) k.layer = layers.get(node);
    return k;
  });

  let layerInfo: InspectReport['layers'];
  if (layers) {
    const count = Math.max(...layers.values()) + 1;
    const perLayer = new Array<number>(count).fill(0);
    let outside = 0;
    for (const k of kernels) {
      if (k.layer !== undefined && k.layer >= 0) perLayer[k.layer]!++;
      else outside++;
    }
    layerInfo = { count, perLayer, outside };
  }

  const read = kernels.reduce((a, k) => a + k.bytesRead, 0);
  const written = kernels.reduce((a, k) => a + k.bytesWritten, 0);
  const flops = kernels.every((k) => k.flops !== null) ? kernels.reduce((a, k) => a + k.flops!, 0) : null;
  return {
    graph: graph.name,
    opt,
    target,
    inputs: graph.inputs.map((v) => ({ name: v.name, dtype: v.type.dtype, shape: [...feeds[v.name]!.shape] })),
    kernels,
    views: rec.views,
    hostNodes: hostNodes(graph).size,
    layers: layerInfo,
    bytes: { read, written, moved: read + written, minimum: minimumBytes(graph, caps) },
    flops,
    peak: { asAllocated: rec.peakBytes, byLiveness: livenessPeak(rec) },
    ...(selectionReport(graph).length ? { layouts: [...selectionReport(graph)] } : {}),
  };
}

/** A node's FLOPs on its value shapes (static for the given input shapes); null when one is symbolic. */
function flopsOf(n: Node): number | null {
  const shape = (v: Value) => (isStatic(v.type.shape) ? (v.type.shape as number[]) : null);
  const inputs = n.inputs.map((x) => (x ? shape(x) : undefined));
  const outputs = n.outputs.map(shape);
  if (inputs.includes(null) || outputs.includes(null)) return null;
  return nodeFlops(n.op, n.attrs, {
    inputs: inputs as (number[] | undefined)[],
    outputs: outputs as number[][],
  });
}

/** Bytes a run must move at least: every constant a device node reads, the inputs they read and the outputs, once. */
function minimumBytes(graph: Graph, caps: DeviceCaps): number {
  const host = hostNodes(graph);
  const hostValues = new Set(graph.constants);
  for (const n of host) for (const o of n.outputs) hostValues.add(o);
  const need = new Set<Value>();
  for (const n of graph.nodes) {
    if (host.has(n)) continue;
    for (const x of n.inputs) if (x && (x.isConst || graph.inputs.includes(x))) need.add(x);
  }
  for (const o of graph.outputs) if (!hostValues.has(o) && !graph.inputs.includes(o)) need.add(o);
  let total = 0;
  for (const v of need) total += storageBytes(storageOf(v.type.dtype, caps), numel(v.type.shape as number[]));
  return total;
}

/**
 * Peak bytes if each buffer lived only from its first launch to its last: uploaded buffers (constants, feeds, the
 * error word) for the whole run, outputs read back to the end. Views bind their root's buffer, so share its life.
 */
function livenessPeak(rec: RecordingBackend): number {
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  rec.launches.forEach((l, i) => {
    for (const b of l.buffers) {
      if (!first.has(b.id)) first.set(b.id, i);
      last.set(b.id, i);
    }
  });
  const end = rec.launches.length;
  let persistent = 0;
  const delta = new Array<number>(end + 1).fill(0);
  for (const [id, { bytes }] of rec.allocs) {
    if (rec.uploaded.has(id)) persistent += bytes;
    else if (first.has(id)) {
      delta[first.get(id)!]! += bytes;
      delta[rec.readBack.has(id) ? end : last.get(id)! + 1]! -= bytes;
    } else if (rec.readBack.has(id)) persistent += bytes; // read back but never launched on: an output alias
  }
  let live = 0;
  let peak = 0;
  for (const d of delta) {
    live += d;
    peak = Math.max(peak, live);
  }
  return persistent + peak;
}

/** A count in SI units: `262 B`, `3.41 MB`, `201.5 MFLOP`. */
function si(x: number | null, unit: string): string {
  if (x === null) return '?';
  if (Math.abs(x) < 1000) return `${x} ${unit}`;
  const e = Math.min(4, Math.floor(Math.log10(Math.abs(x)) / 3));
  const v = x / 1000 ** e;
  return `${v.toFixed(v >= 100 ? 1 : 2)} ${'kMGT'[e - 1]}${unit}`;
}

/** `reshape 100, transpose 72`: how many of each op. */
function countOps(ops: readonly string[]): string {
  const n = new Map<string, number>();
  for (const op of ops) n.set(op, (n.get(op) ?? 0) + 1);
  return [...n].map(([op, c]) => `${op} ${c}`).join(', ');
}

/** The report as text: one line per launch, then the totals. */
export function formatInspect(r: InspectReport): string {
  const lines: string[] = [];
  const inputs = r.inputs.map((v) => `${v.name}: ${v.dtype}[${v.shape.join(',')}]`).join(', ');
  lines.push(`graph '${r.graph}' at --opt ${r.opt}, target ${r.target}; inputs ${inputs}`);
  const rows = r.kernels.map((k, i) => [
    String(i + 1),
    k.kernel,
    `${k.node} (${k.op})${k.steps > 1 ? ` step ${k.step}/${k.steps}` : ''}`,
    k.covers.join('+'),
    si(k.flops, 'FLOP'),
    si(k.bytesRead, 'B'),
    si(k.bytesWritten, 'B'),
    ...(r.layers ? [k.layer === undefined || k.layer < 0 ? '-' : String(k.layer)] : []),
  ]);
  const head = ['#', 'kernel', 'node (op)', 'covers', 'FLOPs', 'read', 'written', ...(r.layers ? ['layer'] : [])];
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)));
  const right = new Set([0, 4, 5, 6, 7]);
  for (const row of [head, ...rows]) {
    lines.push(
      row
        .map((x, c) => (right.has(c) ? x.padStart(widths[c]!) : x.padEnd(widths[c]!)))
        .join('  ')
        .trimEnd(),
    );
  }
  lines.push('');
  lines.push(`kernels per run: ${r.kernels.length}`);
  const views = countOps(r.views.map((v) => v.op));
  lines.push(`movement nodes bound as views (no kernel): ${r.views.length}${views ? ` (${views})` : ''}`);
  lines.push(`host nodes (shape computations, no kernel): ${r.hostNodes}`);
  if (r.layers) {
    const { count, perLayer, outside } = r.layers;
    const same = perLayer.every((n) => n === perLayer[0]);
    const each = same ? `${perLayer[0]} each` : perLayer.join(', ');
    lines.push(`kernels per layer: ${count} layers, ${each}; ${outside} outside the layers`);
  }
  const { read, written, moved, minimum } = r.bytes;
  lines.push(
    `bytes moved: ${si(moved, 'B')} (read ${si(read, 'B')}, written ${si(written, 'B')}) vs minimum ` +
      `${si(minimum, 'B')} (${(moved / minimum).toFixed(2)}×)`,
  );
  lines.push(`FLOPs: ${si(r.flops, 'FLOP')}`);
  lines.push(
    `peak device memory: ${si(r.peak.asAllocated, 'B')} as allocated (temporaries live to the end of the run), ` +
      `${si(r.peak.byLiveness, 'B')} by liveness`,
  );
  if (r.layouts) {
    lines.push(`weight layouts (sparse-select): ${r.layouts.length} matmuls by weights with zeros`);
    for (const l of selectionLines(r.layouts)) lines.push(`  ${l}`);
  }
  return lines.join('\n') + '\n';
}

export { graphDot, dotToSvg } from './draw.js';

export { optimize, printGraph };
