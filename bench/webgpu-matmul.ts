/**
 * 512³ f32 matmul on the WebGPU device: a naive WGSL kernel and a tiled 4×4 register-blocked vec4 kernel with
 * workgroup memory, against a plain-JS triple loop (i-k-j, Float32Array), all in the same run. Both GPU results are
 * checked against a float64 JS matmul (rel-L2 < 1e-5).
 *
 * Run (compiles the project to a folder inside the repo, so `webgpu` resolves from node_modules; type errors in
 * unrelated files do not stop the emit):
 *
 *   npx tsc -p tsconfig.json --outDir node_modules/.cache/kiln-bench
 *   node node_modules/.cache/kiln-bench/bench/webgpu-matmul.js [size] [iterations]
 */
import {
  acquireGpu,
  bufferPool,
  compileKernel,
  encodeRun,
  handwrittenMatmulKernel,
  handwrittenMatmulWorkgroups,
  matmulDims,
  poisonBuffer,
  readbackAs,
  uploadArray,
  type GpuContext,
  type HandwrittenMatmulVariant,
} from '../src/runtime/webgpu/index.js';
import { matmulF64, matmulJsF32, median, randomMatrix, relL2 } from './common.js';

const size = Number(process.argv[2] ?? 512);
const iterations = Number(process.argv[3] ?? 10);
const [M, N, K] = [size, size, size];
const flop = 2 * M * N * K;

interface Result {
  name: string;
  seconds: number;
  gpuSeconds?: number;
  err?: number;
}

async function benchGpu(
  ctx: GpuContext,
  variant: HandwrittenMatmulVariant,
  a: Float32Array<ArrayBuffer>,
  b: Float32Array<ArrayBuffer>,
  ref: Float64Array,
): Promise<Result> {
  const pool = bufferPool(ctx);
  const t0 = performance.now();
  const pipeline = await compileKernel(ctx, handwrittenMatmulKernel(variant));
  const compileMs = performance.now() - t0;
  const [ga, gb, gc] = [await uploadArray(ctx, a), await uploadArray(ctx, b), await pool.acquire(M * N * 4)];
  poisonBuffer(ctx, gc);
  const step = {
    pipeline,
    bindings: [ga, gb, gc],
    uniform: matmulDims(M, N, K),
    workgroups: handwrittenMatmulWorkgroups(variant, M, N, K),
  };
  // First dispatch: lavapipe compiles the shader here. Its result is the one checked.
  const t1 = performance.now();
  await encodeRun(ctx, [step]).done();
  const firstMs = performance.now() - t1;
  const out = await readbackAs(ctx, gc, Float32Array, M * N);
  const err = relL2(out, ref);

  const wall: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t = performance.now();
    await encodeRun(ctx, [step]).done();
    wall.push((performance.now() - t) / 1000);
  }
  let gpuSeconds: number | undefined;
  if (ctx.caps.timestampQuery) {
    const ns = await encodeRun(ctx, [step, step, step], { timing: true }).timings();
    gpuSeconds = median(ns) / 1e9;
  }
  for (const buf of [ga, gb, gc]) pool.release(buf);
  console.log(
    `  ${variant}: pipeline ${compileMs.toFixed(1)} ms, first dispatch (incl. driver compile) ${firstMs.toFixed(1)} ms`,
  );
  return { name: `webgpu ${variant}`, seconds: median(wall), gpuSeconds, err };
}

async function main(): Promise<void> {
  const ctx = await acquireGpu();
  console.log(`webgpu-matmul: ${M}×${N}×${K} f32 on ${ctx.caps.adapterDescription}, median of ${iterations}`);
  const a = randomMatrix(M * K, 1);
  const b = randomMatrix(K * N, 2);
  const ref = matmulF64(a, b, M, N, K);

  const results: Result[] = [];
  const c = new Float32Array(M * N);
  const jsTimes: number[] = [];
  for (let i = 0; i < Math.min(3, iterations); i++) {
    const t = performance.now();
    matmulJsF32(a, b, c, M, N, K);
    jsTimes.push((performance.now() - t) / 1000);
  }
  results.push({ name: 'js i-k-j f32', seconds: median(jsTimes), err: relL2(c, ref) });
  for (const v of ['naive', 'tiled4x4'] as const) results.push(await benchGpu(ctx, v, a, b, ref));

  const base = results[0]!.seconds;
  const gf = (s: number) => flop / s / 1e9;
  console.log('');
  console.log('  variant          wall ms   GFLOP/s   vs JS    GPU-ts ms   rel-L2');
  for (const r of results) {
    const ts = r.gpuSeconds === undefined ? '      -' : (r.gpuSeconds * 1e3).toFixed(2).padStart(8);
    console.log(
      `  ${r.name.padEnd(16)} ${(r.seconds * 1e3).toFixed(2).padStart(8)} ${gf(r.seconds).toFixed(2).padStart(9)}` +
        ` ${(base / r.seconds).toFixed(2).padStart(7)}x ${ts}    ${r.err?.toExponential(2) ?? '-'}`,
    );
  }
  const naive = results[1]!;
  const tiled = results[2]!;
  console.log(`\n  tiled4x4 / naive: ${(naive.seconds / tiled.seconds).toFixed(2)}x`);
  const bad = results.filter((r) => r.name.startsWith('webgpu') && !((r.err ?? Infinity) < 1e-5));
  ctx.destroy();
  if (bad.length) {
    console.error(`FAILED accuracy check (rel-L2 >= 1e-5): ${bad.map((r) => `${r.name} ${r.err}`).join(', ')}`);
    process.exitCode = 1;
  }
}

await main();
