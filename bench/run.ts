/**
 * Benchmark entry point. Every benchmark prints kiln beside a baseline measured in the same run, as ratios.
 * The headline baselines are onnxruntime-web 1.30 on the same Dawn adapter (install it for benchmarks only:
 * `npm install --no-save onnxruntime-web@1.30`); without it they print kiln alone and exit non-zero.
 *
 *   npm run bench                    models + matmul (the headline comparisons)
 *   npm run bench -- models          d512 decoder block + GPT-2: kiln webgpu vs ORT-web webgpu (and wasm, 1 thread)
 *   npm run bench -- matmul          MatMul 512³ + a 1×512·512×2048 GEMV: kiln vs ORT-web webgpu, hand-written WGSL
 *   npm run bench -- webgpu-matmul   the hand-written WGSL matmuls (naive / 4×4 tiled) vs plain JS (design reference)
 *   npm run bench -- generate        stories260K prefill / decode tok/s per backend, the reference beside them
 *   npm run bench -- attention [N]   SDPA at N = 2048 on WebGPU: fused (one kernel) vs the unfused exporter form
 *   npm run bench -- gemv [K N]      decode GEMV 1×4096 · 4096×4096 on WebGPU with f32 / f16 / int8 / int4 weights
 *   npm run bench -- speculative [T] stories260K greedy: each draft source (n-gram, self, Medusa fitted here, mixes)
 *                                    vs plain decoding — accepted per pass, passes per token, tok/s, same text
 *   npm run bench -- aot             stories260K as an AOT module (kiln/runtime) vs JIT: bundle size, cold start
 *   npm run bench -- sparse [K N]    [M, 4096] · 4096×4096 on WebGPU: dense vs csr / bsr 4×4 / 2:4 at densities 5–90%,
 *                                    M = 1 and 32; crossover, fitted layout constants, the cost model's choice
 *
 * Environment: KILN_BENCH_ROUNDS (default 2), KILN_BENCH_REPS (default 10), KILN_WEBGPU_ADAPTER (default llvmpipe).
 */
import { spawnSync } from 'node:child_process';

// ORT-web's 27 MB wasm stalls its first run ~30 s while V8's optimizing tier compiles it; liftoff alone avoids that.
// It changes nothing for kiln (no wasm). Re-run this script under the flag when it was started without.
if (!process.execArgv.includes('--liftoff-only')) {
  const r = spawnSync(process.execPath, ['--liftoff-only', ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
}

const which = process.argv[2] ?? 'headline';
const known = [
  'headline',
  'all',
  'models',
  'matmul',
  'webgpu-matmul',
  'generate',
  'attention',
  'gemv',
  'aot',
  'sparse',
  'speculative',
];
if (!known.includes(which)) {
  console.error(`unknown benchmark '${which}' (expected one of ${known.join(', ')})`);
  process.exit(2);
}
const pick = (name: string) =>
  which === name ||
  which === 'all' ||
  (which === 'headline' &&
    name !== 'webgpu-matmul' &&
    name !== 'generate' &&
    name !== 'attention' &&
    name !== 'gemv' &&
    name !== 'aot' &&
    name !== 'sparse' &&
    name !== 'speculative');
// The individual benchmarks read their own options from argv[2...]: drop the benchmark name.
process.argv.splice(2, 1);

if (pick('models')) {
  const { benchModels } = await import('./models.js');
  await benchModels();
}
if (pick('matmul')) {
  const { benchMatmul } = await import('./matmul.js');
  await benchMatmul();
}
if (pick('webgpu-matmul')) await import('./webgpu-matmul.js');
if (pick('generate')) {
  const { benchGenerate } = await import('./generate.js');
  await benchGenerate();
}
if (pick('attention')) {
  const { benchAttention } = await import('./attention.js');
  await benchAttention();
}
if (pick('gemv')) {
  const { benchGemv, benchGemvModel } = await import('./gemv.js');
  await benchGemv();
  await benchGemvModel();
}
if (pick('sparse')) {
  const { benchSparse } = await import('./sparse.js');
  await benchSparse();
}
if (pick('speculative')) {
  const { benchSpeculative } = await import('./speculative.js');
  await benchSpeculative();
}
if (pick('aot')) {
  const { benchAot } = await import('./aot.js');
  await benchAot();
}
// Dawn's handles can keep the loop alive after the last device is dropped.
process.exit(process.exitCode ?? 0);
