/**
 * Running graphs on device backends in tests and comparing with the float64 reference.
 * WebGPU: without an adapter, tests skip with the install hint; with CI=true a missing adapter fails (tools.ts).
 */
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import type { Tensor } from '../../ir/tensor.js';
import { compile, type CompileOptions, type Session } from '../../src/session.js';
import { compareWithReference, reducesLong, tolerance, type Mismatch } from './compare.js';
import { roundingSpread } from './sensitivity.js';
import { requireTool } from './tools.js';

// the comparison itself lives in compare.ts, which the browser page bundles too (no Node or vitest imports there)
export { compareWithReference, reducesLong, tolerance, type Mismatch } from './compare.js';

let gpuProbe: Promise<string | undefined> | undefined;

/** undefined when a WebGPU adapter is available, else the reason (with the install hint). */
export function webgpuUnavailable(): Promise<string | undefined> {
  gpuProbe ??= (async () => {
    try {
      const { acquireGpu } = await import('../../src/runtime/webgpu/device.js');
      await acquireGpu();
      return undefined;
    } catch (e) {
      return (e as Error).message;
    }
  })();
  return gpuProbe;
}

/** For `describe.skipIf` (top-level await in the test file): true to skip locally; a failing test in CI. */
export function skipWebgpu(): Promise<boolean> {
  return requireTool('a WebGPU adapter', webgpuUnavailable);
}

/**
 * Run on a backend (outputs poisoned first) and compare every output with the reference interpreter. The looser f32
 * tolerance after long reductions applies where the graph has one (matmul, reductions, softmax, norms, attention):
 * exactly there (`longReduction: false` keeps the tight one); `longReduction: true` cannot loosen any other graph.
 */
export async function checkAgainstReference(
  graph: Graph,
  feeds: Record<string, Tensor>,
  opts: CompileOptions & { longReduction?: boolean } = { backend: 'webgpu' },
): Promise<Mismatch[]> {
  // asked for or not, the long-reduction tolerance never applies to a graph of elementwise / movement ops
  const long = reducesLong(graph) && opts.longReduction !== false;
  const ref = interpret(graph, feeds);
  let session: Session | undefined;
  try {
    session = await compile(graph, { poison: true, ...opts });
    const got = await session.run(feeds);
    const compare = (spread?: Record<string, Float64Array>) =>
      Object.entries(ref).flatMap(([k, r]) => {
        const m = compareWithReference(k, got[k]!, r, { ...tolerance(r.dtype, long), spread: spread?.[k] });
        return m ? [m] : [];
      });
    const out = compare();
    // f16 / bf16 intermediates: each element's allowance also covers how far the reference moves when they round the
    // other way (an ill-conditioned norm amplifies that beyond any fixed tolerance; sensitivity.ts). Measured only
    // when the plain comparison fails: it costs three more reference runs.
    if (out.length === 0) return out;
    const spread = roundingSpread(graph, feeds, ref);
    return spread ? compare(spread) : out;
  } finally {
    session?.dispose();
  }
}
