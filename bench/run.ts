/**
 * Benchmark entry point. Every benchmark prints kiln beside a baseline measured in the same run, as ratios.
 *
 *   npm run bench                    all of them
 *   npm run bench -- models          GPT-2 + d512 decoder block: WebGPU vs the plain-JS float64 reference
 *   npm run bench -- matmul          512³ f32 matmul through kiln's generated kernel vs a plain-JS loop
 *   npm run bench -- webgpu-matmul   hand-written WGSL matmuls (naive / 4×4 tiled) vs plain JS
 */
const which = process.argv[2] ?? 'all';
const all = which === 'all';
// The individual benchmarks read their own options from argv[2...]: drop the benchmark name.
process.argv.splice(2, 1);

if (all || which === 'matmul') await import('./matmul.js');
if (all || which === 'webgpu-matmul') await import('./webgpu-matmul.js');
if (all || which === 'models') {
  const { benchModels } = await import('./models.js');
  await benchModels();
}
export {};
