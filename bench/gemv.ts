/**
 * `npm run bench -- gemv [K N]`: a decode-shaped product x [1, K] · W [K, N] (default 4096 × 4096) on WebGPU with the
 * weights as f32, f16, int8 and int4 (RTN, group 32, `matmul_nbits`: packed on the device, dequantized in the GEMV's
 * loads), in one run, the variants taking turns run by run; with the bytes each run moves by the cost account (≈ the
 * weight bytes: decode is bandwidth-bound). Ratios are each variant's time over f32's (< 1 = faster).
 */
import { GraphBuilder } from '../ir/builder.js';
import '../ir/ops/index.js';
import { makeTensor } from '../ir/tensor.js';
import { quantizeRtn } from '../passes/quant/index.js';
import { inspectGraph } from '../src/inspect.js';
import { optimize } from '../passes/manager.js';
import { compile } from '../src/session.js';
import { interleaved, printTable, randomMatrix, ratios, relL2, spread } from './common.js';

export async function benchGemv(
  K = Number(process.argv[3] ?? 4096),
  N = Number(process.argv[4] ?? 4096),
): Promise<void> {
  const w = randomMatrix(K * N, 7);
  const x = makeTensor('f32', [1, K], randomMatrix(K, 8));
  const build = (dt: 'f32' | 'f16') => {
    const b = new GraphBuilder(`gemv_${dt}`);
    const xi = b.input('x', dt, [1, K]);
    b.output(b.op('matmul', [xi, b.weight('w', makeTensor(dt, [K, N], w))]), 'y');
    return b.build();
  };
  const variants: {
    label: string;
    graph: ReturnType<typeof build>;
    feeds: Record<string, ReturnType<typeof makeTensor>>;
  }[] = [
    { label: 'f32', graph: build('f32'), feeds: { x } },
    { label: 'f16', graph: build('f16'), feeds: { x: makeTensor('f16', [1, K], Array.from(x.data)) } },
  ];
  for (const bits of [8, 4] as const) {
    const g = build('f32');
    quantizeRtn(g, { bits, group: 32, head: true });
    variants.push({ label: `int${bits} (g32)`, graph: g, feeds: { x } });
  }
  const sessions = await Promise.all(variants.map((v) => compile(v.graph, { backend: 'webgpu' })));
  const outs = await Promise.all(sessions.map((s, i) => s.run(variants[i]!.feeds)));
  const rounds = Number(process.env['KILN_BENCH_ROUNDS'] ?? 2);
  const ms: number[][] = variants.map(() => []);
  for (let r = 0; r < rounds; r++) {
    const t = await interleaved(
      sessions.map((s, i) => () => s.run(variants[i]!.feeds)),
      () => 0,
      3,
      10,
    );
    t.ms.forEach((m, i) => ms[i]!.push(m));
  }
  const bytes = await Promise.all(variants.map(async (v) => (await inspectGraph(optimize(v.graph), 1, 'wgsl')).bytes));
  const ref = Array.from(outs[0]!['y']!.data);
  console.log(`gemv: x [1, ${K}] · W [${K}, ${N}] on WebGPU, median of 10 after 3 warm-ups, ${rounds} rounds`);
  printTable([
    ['', 'run, ms', 'time / f32', 'bytes moved (cost account)', 'rel-L2 vs f32'],
    ...variants.map((v, i) => [
      v.label,
      spread(ms[i]!),
      i === 0 ? '1' : ratios(ms[i]!, ms[0]!),
      `${(bytes[i]!.moved / 1e6).toFixed(2)} MB`,
      i === 0 ? '' : relL2(Array.from(outs[i]!['y']!.data), ref).toExponential(1),
    ]),
  ]);
  for (const s of sessions) s.dispose();
}

/**
 * stories260K greedy decode on WebGPU with f32 weights and with int4 RTN (group 32; embeddings and head kept f32),
 * in one run, the two sessions taking turns: decode tok/s of each and their ratio. The model is tiny (launch-bound:
 * a decode step is ~40 small kernels), so this shows the int4 kernels cost nothing there, not the bandwidth win.
 */
export async function benchGemvModel(tokens = 64): Promise<void> {
  const { join } = await import('node:path');
  const { bundledModelsDir, loadLanguageModel } = await import('../src/generate/load.js');
  const { LanguageModelSession } = await import('../src/generate/lm.js');
  const dir = bundledModelsDir();
  const load = () => loadLanguageModel(join(dir, 'stories260K.bin'), { tokenizer: join(dir, 'tok512.bin') });
  const f32 = load();
  const int4 = load();
  quantizeRtn(int4.graph, { bits: 4, group: 32 });
  const lms = [
    await LanguageModelSession.create(f32, { backend: 'webgpu' }),
    await LanguageModelSession.create(int4, { backend: 'webgpu' }),
  ];
  const prompt = f32.tokenizer!.encode('Once upon a time', { bos: true });
  const texts: string[] = ['', ''];
  const rate: number[][] = [[], []];
  for (let r = 0; r < 4; r++) {
    for (let i = 0; i < 2; i++) {
      const ids: number[] = [];
      for await (const t of lms[i]!.generate(prompt, { maxTokens: tokens })) ids.push(t);
      if (r === 0) texts[i] = f32.tokenizer!.decode(ids);
      else rate[i]!.push(lms[i]!.stats!.decodeTokPerS); // round 0 warms up (kernel compiles)
    }
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  console.log(`\nstories260K greedy decode on WebGPU, ${tokens} tokens, median of 3 runs taking turns`);
  printTable([
    ['weights', 'decode tok/s', 'vs f32'],
    ['f32', med(rate[0]!).toFixed(1), '1'],
    ['int4 RTN g32', med(rate[1]!).toFixed(1), `${(med(rate[1]!) / med(rate[0]!)).toFixed(2)}×`],
  ]);
  console.log(`same greedy text: ${texts[0] === texts[1] ? 'yes' : 'no (int4 rounding changes the argmax)'}`);
  for (const lm of lms) lm.dispose();
}
