/**
 * `npm run bench -- gemv [K N]`: a decode-shaped product x [1, K] · W [K, N] (default 4096 × 4096) on WebGPU with the
 * weights as f32, f16, int8 and int4 (RTN, group 32, `matmul_nbits`: packed on the device, dequantized in the GEMV's
 * loads), and W8A8 (int8 activations × int8 weights, `matmul_integer`) with the packed int8 dot product (the
 * trans_b rewrite at --opt 1, dot4I8Packed) and without it (--opt 0: the element-wise schedules), in one run, the
 * variants taking turns run by run; with the bytes each run moves by the cost account (≈ the weight bytes: decode is
 * bandwidth-bound). Ratios are each variant's time over f32's (< 1 = faster). Then the prefill shape M = 128 for
 * W8A8 with and without the dot path (KILN_BENCH_PREFILL=0 skips it).
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
    opt?: number;
  }[] = [
    { label: 'f32', graph: build('f32'), feeds: { x } },
    { label: 'f16', graph: build('f16'), feeds: { x: makeTensor('f16', [1, K], Array.from(x.data)) } },
  ];
  for (const bits of [8, 4] as const) {
    const g = build('f32');
    quantizeRtn(g, { bits, group: 32, head: true });
    variants.push({ label: `int${bits} (g32)`, graph: g, feeds: { x } });
  }
  const w8 = w8a8(K, N, 1);
  variants.push({ label: 'W8A8 dot4', graph: w8.graph, feeds: w8.feeds, opt: 1 });
  variants.push({ label: 'W8A8 per element', graph: w8.graph, feeds: w8.feeds, opt: 0 });
  const sessions = await Promise.all(
    variants.map((v) => compile(v.graph, { backend: 'webgpu', ...(v.opt !== undefined ? { opt: v.opt } : {}) })),
  );
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
      i === 0
        ? ''
        : v.label.startsWith('W8A8')
          ? w8Check(outs[i]!['y']!.data)
          : relL2(Array.from(outs[i]!['y']!.data), ref).toExponential(1),
    ]),
  ]);
  for (const s of sessions) s.dispose();
  if (process.env['KILN_BENCH_PREFILL'] !== '0') await benchW8A8Prefill(K, N);

  /** W8A8 rows: i32 sums, exact — checked against the first W8A8 row (the same products on another schedule). */
  function w8Check(y: ArrayLike<number>): string {
    const first = outs[variants.findIndex((v) => v.label.startsWith('W8A8'))]!['y']!.data;
    for (let i = 0; i < y.length; i++) if (y[i] !== first[i]) return `differs at ${i}`;
    return 'exact (i32)';
  }
}

/** x_q i8 [M, K] (an input) · W_q i8 [K, N] (a constant) through matmul_integer. */
function w8a8(K: number, N: number, M: number) {
  const b = new GraphBuilder(`w8a8_${M}`);
  const q = (n: number, seed: number) =>
    randomMatrix(n, seed).map((v) => Math.max(-128, Math.min(127, Math.round(v * 127))));
  const xi = b.input('x', 'i8', [M, K]);
  b.output(b.op('matmul_integer', [xi, b.weight('w', makeTensor('i8', [K, N], q(K * N, 9)))]), 'y');
  return { graph: b.build(), feeds: { x: makeTensor('i8', [M, K], q(M * K, 10)) } };
}

/** The prefill shape: W8A8 [M, K] · [K, N] with and without the dot path, taking turns. */
async function benchW8A8Prefill(K: number, N: number, M = 128): Promise<void> {
  const { graph, feeds } = w8a8(K, N, M);
  const sessions = [await compile(graph, { backend: 'webgpu' }), await compile(graph, { backend: 'webgpu', opt: 0 })];
  const outs = await Promise.all(sessions.map((s) => s.run(feeds)));
  const same = Array.from(outs[0]!['y']!.data).every((v, i) => v === outs[1]!['y']!.data[i]);
  const t = await interleaved(
    sessions.map((s) => () => s.run(feeds)),
    () => 0,
    1,
    3,
  );
  console.log(`\nW8A8 prefill: x [${M}, ${K}] · W [${K}, ${N}] on WebGPU, median of 3 after 1 warm-up`);
  printTable([
    ['', 'run, ms', 'time / per element'],
    ['W8A8 dot4', t.ms[0]!.toFixed(1), (t.ms[0]! / t.ms[1]!).toFixed(2)],
    ['W8A8 per element', t.ms[1]!.toFixed(1), '1'],
  ]);
  console.log(`same i32 outputs: ${same ? 'yes' : 'NO'}`);
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
