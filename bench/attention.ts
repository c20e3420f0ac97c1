/**
 * `npm run bench -- attention`: scaled-dot-product attention at N = 2048 on WebGPU, fused (the default level's
 * `attention` node on the tiled kernel: one workgroup per tile of query rows, K / V tiles in workgroup memory, online
 * softmax, no N×N scores in memory) beside the exporter form run unfused (`opt: 0`:
 * MatMul → Mul → Softmax → MatMul, the scores written and read back), in the same run, engines taking turns. With the
 * bytes each moves per run from the cost account (`kiln inspect`).
 */
import { GraphBuilder } from '../ir/builder.js';
import '../ir/ops/index.js';
import { makeTensor } from '../ir/tensor.js';
import { optimize } from '../passes/manager.js';
import { inspectGraph } from '../src/inspect.js';
import { compile } from '../src/session.js';
import { interleaved, printTable, randomMatrix, ratios, relL2, spread } from './common.js';

export async function benchAttention(N = Number(process.argv[2] ?? 2048)): Promise<void> {
  const [H, D] = [4, 64];
  const b = new GraphBuilder('sdpa');
  const [q, k, v] = ['q', 'k', 'v'].map((n) => b.input(n, 'f32', [1, H, N, D]));
  const kt = b.op('transpose', [k!], { perm: [0, 1, 3, 2] });
  const s = b.op('mul', [b.op('matmul', [q!, kt]), b.weight('c', makeTensor('f32', [], [1 / Math.sqrt(D)]))]);
  b.output(b.op('matmul', [b.op('softmax', [s], { axis: -1 }), v!]), 'y');
  const graph = b.build();
  const feeds = Object.fromEntries(
    ['q', 'k', 'v'].map((n, i) => [n, makeTensor('f32', [1, H, N, D], randomMatrix(H * N * D, i + 1))]),
  );
  const fused = await compile(graph, { backend: 'webgpu', attentionSchedule: 'tiled' });
  const unfused = await compile(graph, { backend: 'webgpu', opt: 0 });
  const [yf, yu] = [(await fused.run(feeds))['y']!, (await unfused.run(feeds))['y']!];
  const rounds = Number(process.env['KILN_BENCH_ROUNDS'] ?? 2);
  const ms: [number[], number[]] = [[], []];
  for (let r = 0; r < rounds; r++) {
    const t = await interleaved([() => fused.run(feeds), () => unfused.run(feeds)], () => 0, 2, 5);
    ms[0].push(t.ms[0]!);
    ms[1].push(t.ms[1]!);
  }
  const bytes = [
    (await inspectGraph(optimize(graph), 1, 'wgsl', { attentionSchedule: 'tiled' })).bytes.moved,
    (await inspectGraph(graph, 0, 'wgsl')).bytes.moved,
  ];
  console.log(
    `attention: [1, ${H}, ${N}, ${D}] f32 on WebGPU, median of 5 after 2 warm-ups, ${rounds} rounds; fused vs the unfused exporter form`,
  );
  printTable([
    ['', 'fused / unfused', 'fused (tiled kernel)', 'unfused (opt 0)'],
    ['run, ms', ratios(ms[0], ms[1]), spread(ms[0]), spread(ms[1])],
    ['kernels', '', String(fused.kernels().length), String(unfused.kernels().length)],
    [
      'bytes moved per run (cost account)',
      (bytes[0]! / bytes[1]!).toFixed(3) + '×',
      `${(bytes[0]! / 1e6).toFixed(2)} MB`,
      `${(bytes[1]! / 1e6).toFixed(2)} MB`,
    ],
    ['rel-L2 fused vs unfused', relL2(yf.data, yu.data).toExponential(1), '', ''],
  ]);
  fused.dispose();
  unfused.dispose();
}
