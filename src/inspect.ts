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
import { importOnnx } from './frontends/onnx/import.js';
import { Executor } from './runtime/executor.js';
import { RecordingBackend } from './runtime/recording.js';

/** Parse `batch=1,seq=8` into a dims map. */
export function parseDims(spec: string | undefined): Record<string, number> {
  const dims: Record<string, number> = {};
  for (const part of (spec ?? '').split(',').filter(Boolean)) {
    const [k, v] = part.split('=');
    const n = Number(v);
    if (!k || !Number.isInteger(n) || n < 0) throw new KilnError('parse', `bad --dims entry '${part}' (want name=N)`);
    dims[k] = n;
  }
  return dims;
}

export function loadModel(file: string, dims: Record<string, number> = {}): Graph {
  return importOnnx(readFileSync(file), { dims }).graph;
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
