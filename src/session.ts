/**
 * Compiled sessions: the one interface every backend offers. Weights are bound once at compile time; `run` takes
 * feeds by input name and returns outputs by output name.
 */
import { KilnError } from '../ir/errors.js';
import type { Graph } from '../ir/graph.js';
import { interpret } from '../ir/interpret.js';
import type { Tensor } from '../ir/tensor.js';
import { Executor } from './runtime/executor.js';
import type { GpuContext } from './runtime/webgpu/device.js';

export type BackendName = 'reference' | 'webgpu' | 'cuda-emu' | 'cuda';
export const BACKENDS: readonly BackendName[] = ['reference', 'webgpu', 'cuda-emu', 'cuda'];

export interface CompileOptions {
  backend?: BackendName;
  /** WebGPU, cuda-emu: no f16 storage (exercise the f32 fallback). */
  disableF16?: boolean;
  /** Poison output buffers before each run so unwritten elements show as NaN (tests). */
  poison?: boolean;
}

export interface Session {
  readonly backend: BackendName;
  readonly graph: Graph;
  run(feeds: Readonly<Record<string, Tensor>>): Promise<Record<string, Tensor>>;
  dispose(): void;
}

class ReferenceSession implements Session {
  readonly backend = 'reference' as const;
  private disposed = false;
  constructor(readonly graph: Graph) {}
  async run(feeds: Readonly<Record<string, Tensor>>): Promise<Record<string, Tensor>> {
    if (this.disposed) throw new KilnError('runtime', 'session was disposed');
    return interpret(this.graph, feeds);
  }
  dispose(): void {
    this.disposed = true;
  }
}

/** A session over the device executor (WebGPU, cuda-emu, CUDA). */
class DeviceSession<B> implements Session {
  private disposed = false;
  constructor(
    readonly backend: BackendName,
    readonly graph: Graph,
    readonly executor: Executor<B>,
  ) {}
  async run(feeds: Readonly<Record<string, Tensor>>): Promise<Record<string, Tensor>> {
    if (this.disposed) throw new KilnError('runtime', 'session was disposed');
    return this.executor.run(feeds);
  }
  dispose(): void {
    if (!this.disposed) this.executor.dispose();
    this.disposed = true;
  }
}

// One device per process and f16 setting: acquiring a WebGPU device is slow, and Dawn wants few of them alive.
const gpus = new Map<boolean, Promise<GpuContext>>();
function sharedGpu(
  acquire: (o: { disableF16?: boolean }) => Promise<GpuContext>,
  disableF16: boolean,
): Promise<GpuContext> {
  let p = gpus.get(disableF16);
  if (!p) {
    p = acquire({ disableF16 });
    gpus.set(disableF16, p);
    p.catch(() => gpus.delete(disableF16));
  }
  return p;
}

/** Compile a graph for a backend. */
export async function compile(graph: Graph, opts: CompileOptions = {}): Promise<Session> {
  const backend = opts.backend ?? 'reference';
  switch (backend) {
    case 'reference':
      return new ReferenceSession(graph);
    case 'webgpu': {
      const { acquireGpu } = await import('./runtime/webgpu/device.js');
      const { WebGpuBackend } = await import('./runtime/webgpu/backend.js');
      const ctx = await sharedGpu(acquireGpu, opts.disableF16 === true);
      return new DeviceSession('webgpu', graph, new Executor(graph, new WebGpuBackend(ctx), { poison: opts.poison }));
    }
    case 'cuda-emu': {
      const { CudaEmuBackend, requireEmulator } = await import('./runtime/cuda-emu/backend.js');
      await requireEmulator(); // UnsupportedError without g++ / x86-64 Linux
      return new DeviceSession(
        'cuda-emu',
        graph,
        new Executor(graph, new CudaEmuBackend({ caps: { f16: opts.disableF16 !== true } }), { poison: opts.poison }),
      );
    }
    case 'cuda': {
      const { CudaBackend } = await import('./runtime/cuda/backend.js');
      const be = await CudaBackend.create(); // typed 'unsupported' error without libcuda / libnvrtc / a GPU
      return new DeviceSession('cuda', graph, new Executor(graph, be, { poison: opts.poison }));
    }
    default:
      throw new KilnError('unsupported', `backend '${backend}' is not available yet`, { limit: `backend=${backend}` });
  }
}
