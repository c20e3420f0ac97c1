/**
 * `kiln ir` and `kiln kernels`: what kiln makes of a model — its IR text, or the kernels it generates for concrete
 * input shapes — without running anything on a device.
 */
import { readFileSync } from 'node:fs';
import { KilnError } from '../ir/errors.js';
import type { Graph } from '../ir/graph.js';
import { isStatic } from '../ir/shape.js';
import { makeTensor, type Tensor } from '../ir/tensor.js';
import { printGraph } from '../ir/text.js';
import { legalize } from '../codegen/legalize.js';
import { DEFAULT_CAPS } from '../codegen/lower/storage.js';
import { CudaRenderer, CUDA_PRELUDE } from '../codegen/render/cuda.js';
import { WgslRenderer } from '../codegen/render/wgsl.js';
import { importOnnxModel } from './frontends/onnx/import.js';
import { decodeModel } from './frontends/onnx/proto.js';
import { Executor } from './runtime/executor.js';
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

/** Import a model file, binding the given symbolic input dims; a dim the model's inputs do not have is an error. */
export function loadModel(file: string, dims: Record<string, number> = {}): Graph {
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
  return importOnnxModel(model, { dims }).graph;
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

/** Kernel sources (one translation unit for CUDA, one module per kernel for WGSL) for the graph's input shapes. */
export async function kernelSources(graph: Graph, target: 'wgsl' | 'cuda'): Promise<string> {
  const caps = target === 'cuda' ? (await import('./runtime/cuda-emu/backend.js')).CUDA_CAPS : DEFAULT_CAPS;
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

export { printGraph };
