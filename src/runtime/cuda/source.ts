/**
 * CUDA C translation units from kernel IR, shared by the CPU emulator (cuda-emu), the NVRTC runtime (cuda) and the
 * nvcc compile check: every kernel is legalized and rendered by the CUDA dialect of the shared renderer, and many
 * kernels go into one translation unit (compilers pay a large fixed cost per file).
 *
 * Also the kernel-set recorder behind `prepareAll`: a conformance run (or any batch of runs) is first executed with
 * recording on — backends lower everything but launch nothing — so that all distinct kernels of the batch can be
 * compiled in a few translation units before the real runs.
 */
import { fnv1a64 } from '../../../ir/text.js';
import type { Kernel } from '../../../codegen/kir.js';
import { legalize } from '../../../codegen/legalize.js';
import { CUDA_PRELUDE, CudaRenderer } from '../../../codegen/render/cuda.js';

const renderer = new CudaRenderer();
const rendered = new Map<string, string>();

/**
 * CUDA C of one kernel (legalized, rendered; helpers guarded; ends with its KILN_EMU_REGISTER line). Kernel names
 * carry the structural hash, so the text is memoized by name.
 */
export function cudaKernelSource(k: Kernel): string {
  let s = rendered.get(k.name);
  if (s === undefined) {
    s = renderer.render(legalize(k));
    rendered.set(k.name, s);
  }
  return s;
}

/** Who compiles the translation unit: the emulator (g++, header force-included), nvcc, or NVRTC. */
export type CudaTarget = 'emu' | 'nvcc' | 'nvrtc';

/**
 * One translation unit holding `kernels` (deduplicated by name, in name order so that the text — and every cache key
 * derived from it — does not depend on the order kernels were met). nvcc / NVRTC get {@link CUDA_PRELUDE}
 * (cuda_fp16.h and kiln_cuda_shared.h); the emulator force-includes its own header.
 */
export function cudaTranslationUnit(kernels: Iterable<Kernel>, target: CudaTarget): string {
  const byName = new Map<string, Kernel>();
  for (const k of kernels) byName.set(k.name, k);
  const names = [...byName.keys()].sort();
  const head = target === 'emu' ? '' : CUDA_PRELUDE;
  return head + names.map((n) => cudaKernelSource(byName.get(n)!)).join('\n');
}

/** Stable key of a set of kernels (their sorted names). */
export function kernelSetKey(names: Iterable<string>): string {
  return fnv1a64([...new Set(names)].sort().join('\n'));
}

/* ------------------------------------------------------------------------------------------ recording */

/** The kernel sets that runs needed while recording: one entry per `prepare` call, in order. */
export interface KernelRecording {
  readonly runs: Kernel[][];
}

let recording: KernelRecording | undefined;

/** The active recording, if any (backends then record in `prepare` and launch nothing in `run`). */
export function activeRecording(): KernelRecording | undefined {
  return recording;
}

/**
 * Runs `body` with recording on and returns the kernel sets its runs needed. While recording, cuda-emu and cuda
 * backends lower and record but do not compile or launch: outputs are garbage, so `body` must ignore its results.
 */
export async function recordKernels(body: () => Promise<void>): Promise<KernelRecording> {
  if (recording) throw new Error('recordKernels: a recording is already active');
  const rec: KernelRecording = { runs: [] };
  recording = rec;
  try {
    await body();
  } finally {
    recording = undefined;
  }
  return rec;
}

/**
 * Splits recorded runs into at most `n` groups of consecutive runs with about the same number of distinct kernels;
 * each group becomes one translation unit (a kernel used by runs of two groups is compiled in both). Consecutive runs
 * (tests of the same op) share most kernels, so duplication stays small, and every run finds all its kernels in one
 * unit — what the emulator needs, as a run executes in one process.
 */
export function groupRuns(runs: readonly (readonly Kernel[])[], n: number): Kernel[][] {
  const sets = runs.filter((r) => r.length > 0);
  const all = new Set(sets.flatMap((r) => r.map((k) => k.name)));
  const target = Math.max(1, Math.ceil(all.size / Math.max(1, n)));
  const groups: Map<string, Kernel>[] = [];
  let cur = new Map<string, Kernel>();
  for (const r of sets) {
    const fresh = r.filter((k) => !cur.has(k.name)).length;
    if (cur.size > 0 && cur.size + fresh > target && groups.length < n - 1) {
      groups.push(cur);
      cur = new Map();
    }
    for (const k of r) cur.set(k.name, k);
  }
  if (cur.size) groups.push(cur);
  return groups.map((g) => [...g.values()]);
}
