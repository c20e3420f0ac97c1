/**
 * Compiled sessions: the one interface every backend offers. Weights are bound once at compile time; `run` takes
 * feeds by input name and returns outputs by output name.
 */
import { KilnError } from '../ir/errors.js';
import type { Graph } from '../ir/graph.js';
import { interpret } from '../ir/interpret.js';
import type { Tensor } from '../ir/tensor.js';

export type BackendName = 'reference' | 'webgpu' | 'cuda-emu' | 'cuda';
export const BACKENDS: readonly BackendName[] = ['reference', 'webgpu', 'cuda-emu', 'cuda'];

export interface CompileOptions {
  backend?: BackendName;
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

/** Compile a graph for a backend. */
export async function compile(graph: Graph, opts: CompileOptions = {}): Promise<Session> {
  const backend = opts.backend ?? 'reference';
  switch (backend) {
    case 'reference':
      return new ReferenceSession(graph);
    default:
      throw new KilnError('unsupported', `backend '${backend}' is not available yet`, { limit: `backend=${backend}` });
  }
}
