/**
 * f32 MatMul against the kernel a user would otherwise get: one ONNX model `y = a · b` (`b` an initializer), the same
 * bytes compiled by kiln (`importOnnx` + `compile(graph, { backend: 'webgpu' })`, the generated matmul template) and by
 * onnxruntime-web 1.30's WebGPU EP, on the same Dawn adapter in the same process. The repo's hand-written tiled 4×4
 * vec4 WGSL kernel (src/runtime/webgpu/handwritten-matmul.ts) is a second reference; it needs M % 64 == 0, so the GEMV
 * uses the hand-written naive kernel instead. Every engine pays the same per run: upload `a`, the kernel(s), read `y`
 * back (the weights stay on the device). Median of 10 after 3 warm-ups, the engines taking turns run by run, over
 * rounds (`$KILN_BENCH_ROUNDS`, default 2); ratios are kiln time / peer time per round (< 1 = kiln faster). Results
 * are checked against a float64 matmul.
 *
 *   npm run bench -- matmul              512³ and a decode GEMV (1×512 · 512×2048)
 *   npm run bench -- matmul M N K        one shape
 */
import {
  acquireGpu,
  bufferPool,
  compileKernel,
  encodeRun,
  handwrittenMatmulKernel,
  handwrittenMatmulWorkgroups,
  matmulDims,
  readbackAs,
  uploadArray,
  writeBuffer,
  type GpuContext,
  type HandwrittenMatmulVariant,
} from '../src/runtime/webgpu/index.js';
import { compile, importOnnx, makeTensor } from '../src/index.js';
import { interleaved, matmulF64, printTable, randomMatrix, ratios, relL2, spread } from './common.js';
import { matmulModel } from './onnx-writer.js';
import { dispatches, loadPeer, patchDawn, PEER_MISSING, peerVersion, type Ort } from './peer.js';

const WARMUPS = 3;
const REPS = Number(process.env['KILN_BENCH_REPS'] ?? 10);
const ROUNDS = Number(process.env['KILN_BENCH_ROUNDS'] ?? 2);

type Run = () => Promise<ArrayLike<number>>;
interface Engine {
  label: string;
  run?: Run;
  note?: string;
  ms: number[];
  dispatches: number[];
  err?: number;
}

async function kilnEngine(model: Uint8Array, M: number, K: number, a: Float32Array): Promise<Run> {
  const session = await compile(importOnnx(model).graph, { backend: 'webgpu' });
  const feeds = { a: makeTensor('f32', [M, K], a) };
  return async () => (await session.run(feeds))['y']!.data;
}

async function ortEngine(ort: Ort, model: Uint8Array, M: number, K: number, a: Float32Array): Promise<Run> {
  const session = await ort.InferenceSession.create(model, { executionProviders: ['webgpu'], logSeverityLevel: 3 });
  const feeds = { a: new ort.Tensor('float32', a, [M, K]) };
  return async () => (await session.run(feeds))['y']!.data as Float32Array;
}

async function handwrittenEngine(
  ctx: GpuContext,
  variant: HandwrittenMatmulVariant,
  [M, N, K]: readonly number[],
  a: Float32Array<ArrayBuffer>,
  b: Float32Array<ArrayBuffer>,
): Promise<Run> {
  const pipeline = await compileKernel(ctx, handwrittenMatmulKernel(variant));
  const pool = bufferPool(ctx);
  const [ga, gb, gc] = [await uploadArray(ctx, a), await uploadArray(ctx, b), await pool.acquire(M! * N! * 4)];
  const step = {
    pipeline,
    bindings: [ga, gb, gc],
    uniform: matmulDims(M!, N!, K!),
    workgroups: handwrittenMatmulWorkgroups(variant, M!, N!, K!),
  };
  return async () => {
    writeBuffer(ctx, ga, a);
    await encodeRun(ctx, [step]).done();
    return readbackAs(ctx, gc, Float32Array, M! * N!);
  };
}

async function benchShape(ort: Ort | null, ctx: GpuContext, [M, N, K]: [number, number, number]): Promise<void> {
  const a = randomMatrix(M * K, 1);
  const b = randomMatrix(K * N, 2);
  const ref = matmulF64(a, b, M, N, K);
  const model = matmulModel(M, N, K, b);
  const variant: HandwrittenMatmulVariant = M % 64 || N % 64 || K % 16 ? 'naive' : 'tiled4x4';
  const engines: Engine[] = [
    { label: 'kiln webgpu', ms: [], dispatches: [] },
    { label: 'ORT-web webgpu', ms: [], dispatches: [], note: ort ? undefined : 'peer not installed' },
    { label: `hand-written ${variant}`, ms: [], dispatches: [] },
  ];
  const make: (() => Promise<Run>)[] = [
    () => kilnEngine(model, M, K, a),
    () => ortEngine(ort!, model, M, K, a),
    () => handwrittenEngine(ctx, variant, [M, N, K], a, b),
  ];
  for (const [i, e] of engines.entries()) {
    if (e.note) continue;
    try {
      e.run = await make[i]!();
      e.err = relL2(await e.run(), ref); // first run: pipeline + shader compile, not timed
    } catch (err) {
      e.note = `failed: ${err instanceof Error ? err.message : String(err)}`;
    }
  }
  for (let round = 0; round < ROUNDS; round++) {
    const live = engines.filter((e) => e.run);
    const m = await interleaved(
      live.map((e) => e.run!),
      dispatches,
      WARMUPS,
      REPS,
    );
    live.forEach((e, i) => (e.ms.push(m.ms[i]!), e.dispatches.push(m.perCall[i]!)));
  }

  const gflops = (ms: number[]) => ms.map((t) => (2 * M * N * K) / (t * 1e6));
  const [kiln, peer, hand] = engines as [Engine, Engine, Engine];
  const cell = (e: Engine, f: (e: Engine) => string) => (e.run ? f(e) : (e.note ?? '-'));
  console.log(`\nMatMul ${M}×${K} · ${K}×${N} f32 (${((2 * M * N * K) / 1e6).toFixed(1)} MFLOP)`);
  printTable([
    ['', 'kiln / ORT-web', 'kiln / hand-written', 'kiln webgpu', 'ORT-web webgpu', `hand-written ${variant}`],
    [
      'run, ms',
      peer.run ? ratios(kiln.ms, peer.ms) : '-',
      hand.run ? ratios(kiln.ms, hand.ms) : '-',
      ...engines.map((e) => cell(e, (x) => spread(x.ms, 2))),
    ],
    ['GFLOP/s', '', '', ...engines.map((e) => cell(e, (x) => spread(gflops(x.ms), 2)))],
    ['dispatches / run', '', '', ...engines.map((e) => cell(e, (x) => spread(x.dispatches, 0)))],
    ['rel-L2 vs float64', '', '', ...engines.map((e) => cell(e, (x) => x.err?.toExponential(1) ?? '-'))],
  ]);
  if (!(kiln.err! < 1e-5)) {
    console.error(`FAILED accuracy check: kiln rel-L2 ${kiln.err} >= 1e-5`);
    process.exitCode = 1;
  }
}

export async function benchMatmul(): Promise<void> {
  await patchDawn();
  const ort = await loadPeer();
  const arg = process.argv.slice(2, 5).map(Number);
  const shapes: [number, number, number][] =
    arg.length === 3 && arg.every((x) => x > 0)
      ? [arg as [number, number, number]]
      : [
          [512, 512, 512],
          [1, 2048, 512],
        ];
  console.log(
    `\nmatmul: kiln webgpu vs ${ort ? `onnxruntime-web ${peerVersion()}` : 'onnxruntime-web (missing)'} webgpu EP ` +
      `vs hand-written WGSL, same adapter; median of ${REPS} after ${WARMUPS} warm-ups, ${ROUNDS} rounds ` +
      `(cells: median (min–max) over rounds; ratios kiln/peer per round, < 1 = kiln faster); shapes as M×K · K×N`,
  );
  const ctx = await acquireGpu();
  for (const s of shapes) await benchShape(ort, ctx, s);
  if (!ort) {
    console.error(`\n${PEER_MISSING}`);
    process.exitCode = 1;
  }
}
