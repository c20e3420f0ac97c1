/**
 * Whole-model timing against the peer a user would pick: the conformance models (the d512 decoder block, GPT-2 with
 * KV cache) on kiln's WebGPU backend and on onnxruntime-web 1.30's WebGPU EP, both on the same Dawn adapter (lavapipe
 * here), measured in the same process; ORT-web's wasm EP on one thread is a context column. Each number: median of 10
 * runs after 3 warm-ups, CPU tensors in and out, the engines taking turns run by run (so load from other processes on
 * a shared VM falls on all alike), repeated over rounds (default 2, `$KILN_BENCH_ROUNDS`) and printed as median
 * (min–max) over rounds. Ratios are kiln time / peer time per round: below 1 means kiln is faster.
 *
 * Also: cold start (import + create, then the first run) of each engine in a fresh child process (bench/cold.ts),
 * compute dispatches per run (counted on Dawn's `dispatchWorkgroups`, so the same way for both; kiln's executor step
 * count beside it), and the max |error| of each engine against the stored ONNX Runtime CPU goldens.
 *
 *   npm install --no-save onnxruntime-web@1.30
 *   npm run bench -- models
 */
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { interleaved, printTable, ratios, spread } from './common.js';
import { goldens, kilnRunner, loadCase, maxErr, ortRunner, type Runner } from './engines.js';
import { dispatches, loadPeer, patchDawn, PEER_MISSING, peerVersion } from './peer.js';

export const MODELS_ROOT = resolve(
  process.env['KILN_SHARED'] ?? resolve(import.meta.dirname, '../../../../../shared'),
  'conformance/models',
);
const MODELS = ['model_decoder_block_d512', 'model_gpt2_past'];
const WARMUPS = 3;
const REPS = Number(process.env['KILN_BENCH_REPS'] ?? 10);
const ROUNDS = Number(process.env['KILN_BENCH_ROUNDS'] ?? 2);

interface Column {
  label: string;
  runner?: Runner;
  ms: number[];
  dispatches: number[];
  steps: number[];
  err?: number;
}

/** Cold start of one engine in a fresh process: [create (import + session), first run] in ms. */
function coldStart(engine: 'kiln' | 'ort-webgpu', dir: string): [number, number] | undefined {
  const r = spawnSync(process.execPath, [...process.execArgv, join(import.meta.dirname, 'cold.js'), engine, dir], {
    encoding: 'utf8',
    timeout: 180_000,
  });
  const line = r.stdout?.split('\n').find((l) => l.startsWith('{'));
  if (r.status !== 0 || !line) {
    console.error(`  cold start of ${engine} failed: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`);
    return undefined;
  }
  const j = JSON.parse(line) as { createMs: number; firstMs: number };
  return [j.createMs, j.firstMs];
}

export async function benchModels(): Promise<void> {
  await patchDawn(); // dispatch counter before any device exists
  const ort = await loadPeer();
  console.log(
    `models: kiln webgpu vs ${ort ? `onnxruntime-web ${peerVersion()}` : 'onnxruntime-web (missing)'} on the same ` +
      `Dawn adapter; median of ${REPS} after ${WARMUPS} warm-ups, CPU tensors in/out, ${ROUNDS} rounds ` +
      `(cells: median (min–max) over rounds; ratios kiln/peer per round, < 1 = kiln faster)`,
  );
  for (const name of MODELS) {
    const c = loadCase(join(MODELS_ROOT, name));
    const cols: Column[] = [{ label: 'kiln webgpu', ms: [], dispatches: [], steps: [] }];
    const kiln0 = cols[0]!;
    kiln0.runner = await kilnRunner(c);
    if (ort) {
      for (const ep of ['webgpu', 'wasm'] as const) {
        const col: Column = {
          label: `ORT-web ${ep}${ep === 'wasm' ? ' 1 thread' : ''}`,
          ms: [],
          dispatches: [],
          steps: [],
        };
        try {
          col.runner = await ortRunner(ort, c, ep);
        } catch (e) {
          console.error(`  ${col.label}: ${e instanceof Error ? e.message : String(e)}`);
        }
        cols.push(col);
      }
    }
    const golden = await goldens(c);
    for (const col of cols) if (col.runner) col.err = maxErr(await col.runner.run(), golden);

    const cold: { kiln: number[][]; ort: number[][] } = { kiln: [], ort: [] };
    for (let round = 0; round < ROUNDS; round++) {
      const live = cols.filter((col) => col.runner);
      const s0 = kiln0.runner!.steps!();
      const m = await interleaved(
        live.map((col) => col.runner!.run),
        dispatches,
        WARMUPS,
        REPS,
      );
      live.forEach((col, i) => (col.ms.push(m.ms[i]!), col.dispatches.push(m.perCall[i]!)));
      kiln0.steps.push((kiln0.runner!.steps!() - s0) / (WARMUPS + REPS));
      const k = coldStart('kiln', c.dir);
      if (k) cold.kiln.push(k);
      if (ort) {
        const o = coldStart('ort-webgpu', c.dir);
        if (o) cold.ort.push(o);
      }
    }
    for (const col of cols) await col.runner?.dispose();

    const [kiln, gpu, wasm] = cols;
    const missing = ort ? 'failed' : 'peer not installed';
    const cell = (col: Column | undefined, f: (c: Column) => string) => (col?.ms.length ? f(col) : missing);
    const kCold = (i: number) => cold.kiln.map((x) => x[i]!);
    const oCold = (i: number) => cold.ort.map((x) => x[i]!);
    const p = kiln!.runner!.placement;
    console.log(`\n${name}: ${p?.nodes} nodes (kiln: ${p?.device} on the device, ${p?.host} on the host)`);
    printTable([
      ['', 'kiln / ORT-web webgpu', 'kiln webgpu', 'ORT-web webgpu', 'ORT-web wasm 1 thread', 'kiln / wasm'],
      [
        'run, ms',
        gpu?.ms.length ? ratios(kiln!.ms, gpu.ms) : '-',
        spread(kiln!.ms),
        cell(gpu, (x) => spread(x.ms)),
        cell(wasm, (x) => spread(x.ms)),
        wasm?.ms.length ? ratios(kiln!.ms, wasm.ms) : '-',
      ],
      [
        'dispatches / run',
        gpu?.ms.length ? ratios(kiln!.dispatches, gpu.dispatches) : '-',
        `${spread(kiln!.dispatches, 0)} (steps: ${spread(kiln!.steps, 0)})`,
        cell(gpu, (x) => spread(x.dispatches, 0)),
        cell(wasm, (x) => spread(x.dispatches, 0)),
        '',
      ],
      [
        'cold: import + create, ms',
        cold.ort.length ? ratios(kCold(0), oCold(0)) : '-',
        spread(kCold(0), 0),
        cold.ort.length ? spread(oCold(0), 0) : missing,
        '',
        '',
      ],
      [
        'cold: first run, ms',
        cold.ort.length ? ratios(kCold(1), oCold(1)) : '-',
        spread(kCold(1), 0),
        cold.ort.length ? spread(oCold(1), 0) : missing,
        '',
        '',
      ],
      [
        'max |err| vs ORT CPU golden',
        '',
        kiln!.err?.toExponential(1) ?? '-',
        cell(gpu, (x) => x.err?.toExponential(1) ?? '-'),
        cell(wasm, (x) => x.err?.toExponential(1) ?? '-'),
        '',
      ],
    ]);
  }
  if (!ort) {
    console.error(`\n${PEER_MISSING}`);
    process.exitCode = 1;
  }
}
