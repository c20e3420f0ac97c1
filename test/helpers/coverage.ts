/**
 * Which fast paths a graph's kernels take on a device: the tiled matmul, a workgroup (tree) reduction over rows longer
 * than the workgroup, warp shuffles. The graph is lowered exactly as a session lowers it for the device's caps (the
 * executor on a recording backend), so a property can assert that its random graphs really reach these paths — a
 * change that makes one unreachable (thresholds, shapes) then fails instead of leaving the path untested.
 */
import { kernelText, type Kernel, type Stmt } from '../../codegen/kir.js';
import type { DeviceCaps } from '../../codegen/lower/index.js';
import type { Graph } from '../../ir/graph.js';
import type { Tensor } from '../../ir/tensor.js';
import { Executor } from '../../src/runtime/executor.js';
import { RecordingBackend } from '../../src/runtime/recording.js';

export interface PathCoverage {
  graphs: number;
  /** Graphs with a tiled (register-blocked, workgroup-memory) matmul / gemm / einsum kernel. */
  tiledMatmul: number;
  /** Graphs with a row reduction done by a workgroup whose rows are longer than it has threads. */
  longRowReduction: number;
  /** Graphs with a kernel using warp shuffles. */
  warpShuffle: number;
}

export const emptyCoverage = (): PathCoverage => ({ graphs: 0, tiledMatmul: 0, longRowReduction: 0, warpShuffle: 0 });

class StepRecorder extends RecordingBackend {
  readonly steps: { kernel: Kernel; uniforms: ArrayBuffer }[] = [];
  override async run(
    steps: readonly { kernel: Kernel; uniforms: ArrayBuffer; grid: [number, number, number] }[],
  ): Promise<void> {
    for (const s of steps) this.steps.push({ kernel: s.kernel, uniforms: s.uniforms });
    await super.run(steps);
  }
}

const hasBarrier = (ss: readonly Stmt[]): boolean =>
  ss.some(
    (s) =>
      s.k === 'barrier' ||
      (s.k === 'for' && hasBarrier(s.body)) ||
      (s.k === 'if' && (hasBarrier(s.then) || hasBarrier(s.else ?? []))),
  );

/** A row-reduction launch: workgroup threads cooperating (barriers) on rows of `len` > threads elements. */
function longRow(k: Kernel, uniforms: ArrayBuffer): boolean {
  const threads = k.workgroup[0] * k.workgroup[1] * k.workgroup[2];
  const i = k.uniforms.findIndex((u) => /^len\d+$/.test(u.name));
  if (i < 0 || threads <= 1 || !hasBarrier(k.body)) return false;
  return new DataView(uniforms).getInt32(i * 4, true) > threads;
}

/** Lowers the graph for `caps` (nothing runs) and adds the paths its kernels take to `cov`. */
export async function recordPaths(
  cov: PathCoverage,
  graph: Graph,
  feeds: Record<string, Tensor>,
  caps: DeviceCaps,
): Promise<void> {
  const rec = new StepRecorder(caps);
  await new Executor(graph, rec).run(feeds);
  const ks = rec.steps;
  cov.graphs++;
  // kernel names: k_<op>_<schedule>_<hash> (transpose_tiled is a movement kernel, not a contraction)
  if (ks.some((s) => /(^|_)(matmul|gemm|einsum)\w*_tiled(_|$)/.test(s.kernel.name))) cov.tiledMatmul++;
  if (ks.some((s) => longRow(s.kernel, s.uniforms))) cov.longRowReduction++;
  if (ks.some((s) => kernelText(s.kernel).includes('"shuffle_xor"'))) cov.warpShuffle++;
}
