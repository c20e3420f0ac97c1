/**
 * Whole-model timing: the conformance models (GPT-2 with KV cache, the d512 decoder block) on the WebGPU runtime,
 * with the plain-JS float64 reference interpreter as the baseline measured in the same run. Prints medians, the
 * ratio, and the max error against the stored ONNX Runtime goldens.
 *
 *   npm run bench -- models            (builds to node_modules/.cache/kiln-bench, then runs)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { interpret } from '../ir/interpret.js';
import type { Tensor } from '../ir/tensor.js';
import { importOnnx, tensorFromOnnx } from '../src/frontends/onnx/import.js';
import { decodeTensor } from '../src/frontends/onnx/proto.js';
import { compile } from '../src/session.js';
import { median } from './common.js';

const ROOT = resolve(
  process.env['KILN_SHARED'] ?? resolve(import.meta.dirname, '../../../../../shared'),
  'conformance/models',
);

async function time(fn: () => Promise<unknown> | unknown, reps: number): Promise<number> {
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await fn();
    ts.push(performance.now() - t);
  }
  return median(ts);
}

function maxErr(a: Tensor, b: Tensor): number {
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i]! - b.data[i]!));
  return m;
}

export async function benchModels(reps = Number(process.env['KILN_BENCH_REPS'] ?? 5)): Promise<void> {
  for (const name of ['model_gpt2_past', 'model_decoder_block_d512']) {
    const dir = join(ROOT, name);
    const { graph } = importOnnx(readFileSync(join(dir, 'model.onnx')));
    const set = join(dir, 'test_data_set_0');
    const feeds: Record<string, Tensor> = {};
    graph.inputs.forEach(
      (v, k) => (feeds[v.name] = tensorFromOnnx(decodeTensor(readFileSync(join(set, `input_${k}.pb`))))),
    );
    const goldens = readdirSync(set).filter((f) => f.startsWith('output_')).length;
    const golden = (k: number) => tensorFromOnnx(decodeTensor(readFileSync(join(set, `output_${k}.pb`))));

    const refMs = await time(() => interpret(graph, feeds), Math.min(reps, 3));
    const session = await compile(graph, { backend: 'webgpu' });
    const t0 = performance.now();
    const out = await session.run(feeds); // first run: kernel compilation included
    const firstMs = performance.now() - t0;
    const gpuMs = await time(() => session.run(feeds), reps);
    let err = 0;
    for (let k = 0; k < goldens; k++) err = Math.max(err, maxErr(out[graph.outputs[k]!.name]!, golden(k)));
    const stats = (session as unknown as { executor: { stats(): { host: number; device: number } } }).executor.stats();
    session.dispose();
    console.log(
      `${name}: ${graph.nodes.length} nodes (${stats.device} device, ${stats.host} host) | ` +
        `reference JS ${refMs.toFixed(1)} ms | webgpu ${gpuMs.toFixed(1)} ms (first run ${firstMs.toFixed(0)} ms) | ` +
        `speedup ×${(refMs / gpuMs).toFixed(2)} | max |err| vs ORT golden ${err.toExponential(2)}`,
    );
  }
}
