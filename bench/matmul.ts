/**
 * f32 matmul (default 512³) through kiln: a graph with one `matmul` node compiled by `compile(graph, { backend:
 * 'webgpu' })`, so the kernel is the generated tiled one (codegen/lower/matmul.ts), against a plain-JS i-k-j loop over
 * Float32Array in the same run. Each timing is the median of several runs after a warm-up run (the warm-up pays the
 * pipeline and driver compile); a kiln run is a whole `session.run`: upload of a and b, the kernel, readback of y.
 * Both results are checked against a float64 matmul (rel-L2 < 1e-5).
 *
 * Run (compiles the project into a folder inside the repo so `webgpu` resolves from node_modules; type errors in
 * unrelated files do not stop the emit):
 *
 *   npx tsc -p tsconfig.json --outDir node_modules/.cache/kiln-bench
 *   node node_modules/.cache/kiln-bench/bench/matmul.js [size] [iterations] [M N K]
 *
 * `size` sets M = N = K; pass `0 it M N K` for another shape (e.g. `0 10 1 4096 4096`, a GEMV).
 */
import { GraphBuilder } from '../ir/builder.js';
import '../ir/ops/index.js';
import { makeTensor } from '../ir/tensor.js';
import { compile } from '../src/session.js';
import { matmulF64, matmulJsF32, median, randomMatrix, relL2 } from './common.js';

const size = Number(process.argv[2] ?? 512);
const iterations = Number(process.argv[3] ?? 7);
const [M, N, K] = size > 0 ? [size, size, size] : (process.argv.slice(4, 7).map(Number) as [number, number, number]);
const flop = 2 * M * N * K;

async function main(): Promise<void> {
  const a = randomMatrix(M * K, 1);
  const b = randomMatrix(K * N, 2);
  const ref = matmulF64(a, b, M, N, K);

  // plain JS baseline
  const c = new Float32Array(M * N);
  matmulJsF32(a, b, c, M, N, K);
  const js: number[] = [];
  for (let i = 0; i < Math.min(3, iterations); i++) {
    const t = performance.now();
    matmulJsF32(a, b, c, M, N, K);
    js.push((performance.now() - t) / 1000);
  }
  const jsErr = relL2(c, ref);

  // kiln: one matmul node on the webgpu backend
  const g = new GraphBuilder('bench_matmul');
  const x = g.input('a', 'f32', [M, K]);
  const w = g.input('b', 'f32', [K, N]);
  g.output(g.matmul(x, w), 'y');
  const session = await compile(g.build(), { backend: 'webgpu' });
  const feeds = { a: makeTensor('f32', [M, K], a), b: makeTensor('f32', [K, N], b) };
  const t0 = performance.now();
  const first = await session.run(feeds); // warm-up: pipeline creation + driver compile at first dispatch
  const firstMs = performance.now() - t0;
  const kilnErr = relL2(first['y']!.data, ref);
  const runs: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t = performance.now();
    await session.run(feeds);
    runs.push((performance.now() - t) / 1000);
  }
  session.dispose();

  const gf = (s: number) => flop / s / 1e9;
  const kiln = median(runs);
  const base = median(js);
  console.log(
    `matmul ${M}×${N}×${K} f32, median of ${iterations} (JS: ${js.length}); first kiln run ${firstMs.toFixed(0)} ms`,
  );
  console.log('  variant              wall ms   GFLOP/s   rel-L2 vs f64');
  const row = (name: string, s: number, err: number) =>
    console.log(
      `  ${name.padEnd(20)} ${(s * 1e3).toFixed(2).padStart(8)} ${gf(s).toFixed(2).padStart(9)}   ${err.toExponential(2)}`,
    );
  row('js i-k-j f32', base, jsErr);
  row('kiln webgpu session', kiln, kilnErr);
  console.log(`  kiln / js: ${(base / kiln).toFixed(2)}x`);
  if (!(kilnErr < 1e-5)) {
    console.error(`FAILED accuracy check: kiln rel-L2 ${kilnErr} >= 1e-5`);
    process.exitCode = 1;
  }
}

await main();
