/**
 * Running graphs on device backends in tests and comparing with the float64 reference.
 * WebGPU: without an adapter, tests skip with the install hint; with CI=true a missing adapter fails.
 */
import { isFloat, type DType } from '../../ir/dtype.js';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import type { Tensor } from '../../ir/tensor.js';
import { compile, type CompileOptions, type Session } from '../../src/session.js';

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

/** For `describe.skipIf`: resolves the probe at module load (top-level await in the test file). */
export async function skipWebgpu(): Promise<boolean> {
  const why = await webgpuUnavailable();
  if (why && process.env['CI'] === 'true') throw new Error(`CI=true but no WebGPU adapter: ${why}`);
  if (why) console.warn(`WebGPU tests skipped: ${why}`);
  return why !== undefined;
}

/** Tolerances per dtype (DESIGN.md numerical conventions). */
export function tolerance(dt: DType, longReduction = false): { rel: number; abs: number } {
  switch (dt) {
    case 'f16':
      return { rel: 2e-3, abs: 2e-3 };
    case 'bf16':
      return { rel: 1e-2, abs: 1e-2 };
    case 'f32':
    case 'f64':
      return longReduction ? { rel: 1e-4, abs: 1e-5 } : { rel: 1e-5, abs: 1e-5 };
    default:
      return { rel: 0, abs: 0 };
  }
}

export interface Mismatch {
  output: string;
  reason: string;
}

/**
 * Compare an output with the reference: rel-L2 ‖got−ref‖/‖ref‖ ≤ rel (or an RMS error ≤ abs) and elementwise
 * |got−ref| ≤ abs + rel·|ref|
 * (with a 10× looser elementwise rel, as single elements near cancellation are noisier than the norm), integers
 * exact. NaN only where the reference has NaN.
 */
export function compareWithReference(
  name: string,
  got: Tensor,
  ref: Tensor,
  tol = tolerance(ref.dtype),
): Mismatch | undefined {
  if (got.dtype !== ref.dtype) return { output: name, reason: `dtype ${got.dtype} vs ${ref.dtype}` };
  if (got.shape.join() !== ref.shape.join()) return { output: name, reason: `shape [${got.shape}] vs [${ref.shape}]` };
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.data.length; i++) {
    const g = got.data[i]!;
    const r = ref.data[i]!;
    if (Number.isNaN(r) || Number.isNaN(g)) {
      if (Number.isNaN(r) && Number.isNaN(g)) continue;
      return { output: name, reason: `element ${i}: got ${g}, reference ${r}` };
    }
    if (g === r) continue;
    if (!isFloat(ref.dtype)) return { output: name, reason: `element ${i}: got ${g}, reference ${r} (exact dtype)` };
    const d = Math.abs(g - r);
    if (!Number.isFinite(d) || d > tol.abs + 10 * tol.rel * Math.abs(r)) {
      return { output: name, reason: `element ${i}: got ${g}, reference ${r}` };
    }
    num += d * d;
    den += r * r;
  }
  const rel = den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
  const rms = ref.data.length ? Math.sqrt(num / ref.data.length) : 0;
  // fails when the error is large both relative to the output's norm and in absolute terms (an output of tiny values
  // — e.g. gelu far in the negative tail — has a large relative error from f32 rounding alone)
  if (rel > Math.max(tol.rel, tol.abs) && rms > tol.abs) {
    return { output: name, reason: `rel-L2 ${rel.toExponential(2)}, rms ${rms.toExponential(2)}` };
  }
  return undefined;
}

/** Run on a backend (outputs poisoned first) and compare every output with the reference interpreter. */
export async function checkAgainstReference(
  graph: Graph,
  feeds: Record<string, Tensor>,
  opts: CompileOptions & { longReduction?: boolean } = { backend: 'webgpu' },
): Promise<Mismatch[]> {
  const ref = interpret(graph, feeds);
  let session: Session | undefined;
  try {
    session = await compile(graph, { poison: true, ...opts });
    const got = await session.run(feeds);
    const out: Mismatch[] = [];
    for (const [k, r] of Object.entries(ref)) {
      const m = compareWithReference(k, got[k]!, r, tolerance(r.dtype, opts.longReduction));
      if (m) out.push(m);
    }
    return out;
  } finally {
    session?.dispose();
  }
}
