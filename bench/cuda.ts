/**
 * GPU timings (for the machine with an NVIDIA GPU; bench/gpu.sh runs it): f32 matmul and softmax through
 * `--backend cuda` (kiln's generated CUDA C, NVRTC, driver API) beside PyTorch (cuBLAS / its softmax kernel) measured
 * in the same run when python3 with a CUDA build of torch is present. Kernel time is measured with CUDA events around
 * the run's launches (inputs already on the device); the wall time of `session.run` (upload, launches, sync, readback)
 * is printed too. Without libcuda it prints why and exits 0.
 *
 *   npx tsc -p tsconfig.bench.json && node node_modules/.cache/kiln-bench/bench/cuda.js
 *   KILN_BENCH_REPS=20 ...   repetitions (median reported)
 */
import { spawnSync } from 'node:child_process';
import { GraphBuilder } from '../ir/builder.js';
import type { Graph } from '../ir/graph.js';
import '../ir/ops/index.js';
import { makeTensor, type Tensor } from '../ir/tensor.js';
import { KilnError } from '../ir/errors.js';
import type { CudaBackend } from '../src/runtime/cuda/backend.js';
import { compile, type Session } from '../src/session.js';
import { median } from './common.js';

const REPS = Number(process.env['KILN_BENCH_REPS'] ?? 10);

const MATMULS: [number, number, number][] = [
  [512, 512, 512],
  [1024, 1024, 1024],
  [2048, 2048, 2048],
  [4096, 4096, 4096],
];
const SOFTMAX: [number, number][] = [
  [4096, 1024],
  [1024, 4096],
  [256, 32768],
];

function randn(shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = Math.random() * 2 - 1;
  return makeTensor('f32', shape, d);
}

function matmulGraph(m: number, n: number, k: number): { graph: Graph; feeds: Record<string, Tensor> } {
  const b = new GraphBuilder('matmul');
  const a = b.input('a', 'f32', [m, k]);
  b.output(b.op('matmul', [a, b.weight('w', randn([k, n]))]), 'y');
  return { graph: b.build(), feeds: { a: randn([m, k]) } };
}

function softmaxGraph(rows: number, cols: number): { graph: Graph; feeds: Record<string, Tensor> } {
  const b = new GraphBuilder('softmax');
  b.output(b.op('softmax', [b.input('x', 'f32', [rows, cols])], { axis: -1 }), 'y');
  return { graph: b.build(), feeds: { x: randn([rows, cols]) } };
}

/** Median kernel ms (CUDA events) and wall ms of session.run. */
async function timeKiln(graph: Graph, feeds: Record<string, Tensor>): Promise<{ kernelMs: number; wallMs: number }> {
  const session: Session = await compile(graph, { backend: 'cuda' });
  const be = (session as unknown as { executor: { backend: CudaBackend } }).executor.backend;
  try {
    await session.run(feeds); // compile + warm up
    be.timeRuns = true;
    const kernel: number[] = [];
    const wall: number[] = [];
    for (let i = 0; i < REPS; i++) {
      const t = performance.now();
      await session.run(feeds);
      wall.push(performance.now() - t);
      kernel.push(be.lastRunMs);
    }
    return { kernelMs: median(kernel), wallMs: median(wall) };
  } finally {
    session.dispose();
  }
}

const TORCH = String.raw`
import json, sys
try:
    import torch
    assert torch.cuda.is_available()
except Exception as e:
    print(json.dumps({"error": repr(e)})); sys.exit(0)
reps = int(sys.argv[1]); cases = json.loads(sys.argv[2]); out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
torch.backends.cuda.matmul.allow_tf32 = False
def t(fn):
    fn(); torch.cuda.synchronize(); ms = []
    for _ in range(reps):
        s = torch.cuda.Event(enable_timing=True); e = torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); e.synchronize(); ms.append(s.elapsed_time(e))
    ms.sort(); return ms[len(ms) // 2]
for m, n, k in cases["matmul"]:
    a = torch.randn(m, k, device="cuda"); b = torch.randn(k, n, device="cuda")
    out[f"matmul {m}x{n}x{k}"] = t(lambda: a @ b)
for r, c in cases["softmax"]:
    x = torch.randn(r, c, device="cuda")
    out[f"softmax {r}x{c}"] = t(lambda: torch.softmax(x, -1))
print(json.dumps(out))
`;

function torchBaseline(): Record<string, number | string> | string {
  const r = spawnSync('python3', ['-c', TORCH, String(REPS), JSON.stringify({ matmul: MATMULS, softmax: SOFTMAX })], {
    encoding: 'utf8',
    timeout: 600_000,
  });
  if (r.error) return `python3 not runnable (${r.error.message})`;
  try {
    const j = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as Record<string, number | string>;
    return j['error'] !== undefined ? `torch with CUDA not available (${j['error']})` : j;
  } catch {
    return `torch baseline failed: ${r.stderr.slice(-500)}`;
  }
}

async function main(): Promise<void> {
  try {
    const { openCudaDevice } = await import('../src/runtime/cuda/backend.js');
    const dev = await openCudaDevice();
    console.log(
      `device: ${dev.name} (sm_${dev.cc.join('')}), driver ${dev.driverVersion}, NVRTC ${dev.nvrtcVersion.join('.')}`,
    );
  } catch (e) {
    if (e instanceof KilnError && e.code === 'unsupported') {
      console.log(`bench/cuda: no CUDA device here — ${e.message}`);
      return;
    }
    throw e;
  }
  const base = torchBaseline();
  if (typeof base === 'string') console.log(`baseline: ${base}`);
  else console.log(`baseline: torch ${base['torch']} on ${base['device']} (TF32 off)`);
  /** `work` per ms in `unit`: GFLOP/s for matmul (flops), GB/s for softmax (bytes moved: read + write). */
  const row = (name: string, work: number, unit: string, k: { kernelMs: number; wallMs: number }) => {
    const b = typeof base === 'string' ? undefined : (base[name] as number | undefined);
    const rate = (ms: number) => `${(work / ms / 1e6).toFixed(0)} ${unit}`;
    console.log(
      `${name.padEnd(24)} kiln ${k.kernelMs.toFixed(3)} ms (${rate(k.kernelMs)}, run ${k.wallMs.toFixed(1)} ms)` +
        (b !== undefined
          ? `   torch ${b.toFixed(3)} ms (${rate(b)})   kiln/torch ${(k.kernelMs / b).toFixed(2)}×`
          : ''),
    );
  };
  for (const [m, n, k] of MATMULS) {
    const { graph, feeds } = matmulGraph(m, n, k);
    row(`matmul ${m}x${n}x${k}`, 2 * m * n * k, 'GFLOP/s', await timeKiln(graph, feeds));
  }
  for (const [r, c] of SOFTMAX) {
    const { graph, feeds } = softmaxGraph(r, c);
    row(`softmax ${r}x${c}`, 8 * r * c, 'GB/s', await timeKiln(graph, feeds));
  }
}

await main();
