/** `kiln plan`, `kiln run-parallel`, `kiln generate --tp/--pp` (issue 15). */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KilnError } from '../ir/errors.js';
import { loadLlama2c } from './frontends/llama2c.js';
import { bundledModelsDir } from './generate/load.js';
import { buildLlama } from './models/llama.js';
import type { Graph } from '../ir/graph.js';
import type { QuantizeIo } from './quantize.js';
import type { Tokenizer } from './tokenizers/types.js';
import { BACKEND_CHOICES, type BackendChoice } from './session.js';
import { loadLlama2cTokenizer } from './tokenizers/llama2c.js';

export const PARALLEL_HELP = `  plan, run-parallel                  tensor / pipeline parallel plans and runs over MPI; kiln plan --help`;

const usage = (m: string) => new KilnError('parse', m);

function parsed<T>(f: () => T, what: string): T {
  try {
    return f();
  } catch (e) {
    throw usage(`${what}: ${(e as Error).message}`);
  }
}

const int = (v: unknown, name: string, dflt: number): number => {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw usage(`--${name} must be a positive integer, got '${String(v)}'`);
  return n;
};

const GEN_OPTS = {
  tp: { type: 'string' },
  pp: { type: 'string' },
  prompt: { type: 'string' },
  steps: { type: 'string' },
  tokenizer: { type: 'string' },
  balance: { type: 'string' },
  virtual: { type: 'string' },
  backend: { type: 'string' },
  prompts: { type: 'string' },
  schedule: { type: 'string' },
} as const;

function modelPaths(model: string | undefined, tokenizer: string | undefined): { bin: string; tok: string } {
  if (!model || model === 'stories260K') {
    const dir = bundledModelsDir();
    return { bin: join(dir, 'stories260K.bin'), tok: tokenizer ?? join(dir, 'tok512.bin') };
  }
  if (!tokenizer) throw usage('generate --tp/--pp: a llama2.c checkpoint needs --tokenizer PATH');
  return { bin: model, tok: tokenizer };
}

/** `kiln generate MODEL --tp N --pp M`: run under mpirun (world = N·M); one process without MPI when N·M = 1. */
export async function generateParallelCommand(rest: string[], io: QuantizeIo): Promise<number> {
  const { values: v, positionals } = parsed(
    () => parseArgs({ args: rest, options: GEN_OPTS, allowPositionals: true }),
    'generate --tp/--pp',
  );
  const tp = int(v.tp, 'tp', 1);
  const pp = int(v.pp, 'pp', 1);
  const steps = int(v.steps, 'steps', 8);
  const balance = v.balance ?? 'cost';
  if (balance !== 'cost' && balance !== 'equal') throw usage(`--balance must be cost or equal, got '${balance}'`);
  const { bin, tok } = modelPaths(positionals[0], v.tokenizer);
  const m = loadLlama2c(new Uint8Array(readFileSync(bin)));
  const tokenizer = loadLlama2cTokenizer(new Uint8Array(readFileSync(tok)), m.config.vocab);
  const graph = buildLlama(m.config, m.weights);
  const prompt = tokenizer.encode(v.prompt ?? 'Once upon a time', { bos: true });
  if (v.prompts !== undefined) return pipelinedCommand(v, graph, tokenizer, { tp, pp, steps, balance }, io);
  const { generateParallel } = await import('./parallel/runtime.js');
  const world = tp * pp;
  const mpi = world > 1 ? (await import('./parallel/mpi.js')).mpiWorld() : undefined;
  const virtual = int(v.virtual, 'virtual', 1);
  const backend = v.backend as BackendChoice | undefined;
  if (backend !== undefined && !BACKEND_CHOICES.includes(backend)) {
    throw usage(`--backend must be one of ${BACKEND_CHOICES.join(', ')}, got '${backend}'`);
  }
  const r = await generateParallel(graph, { tp, pp, balance, virtual, backend }, prompt, steps, mpi);
  // per-rank numbers to rank 0
  const mine = new Float64Array([r.busy, r.wall, r.bytesSent, r.stage]);
  const all: Float64Array[] = [mine];
  if (mpi) {
    if (mpi.rank === 0) {
      for (let s = 1; s < world; s++) {
        const b = new Float64Array(4);
        mpi.recv(b, s, 999);
        all.push(b);
      }
    } else mpi.send(mine, 0, 999);
    mpi.barrier();
  }
  if ((mpi?.rank ?? 0) === 0) {
    io.out(tokenizer.decode(r.tokens.slice(prompt.length)) + '\n');
    const wall = Math.max(...all.map((a) => a[1]!));
    const busy = all.map((a) => a[0]!);
    const bubble = 1 - busy.reduce((a, b) => a + b, 0) / (world * wall);
    const bytes = all.reduce((a, b) => a + b[2]!, 0);
    io.out(
      `# tp ${tp} × pp ${pp}${virtual > 1 ? ` × ${virtual} virtual` : ''} (${world} ranks), ${steps} tokens, ${wall.toFixed(2)} s\n`,
    );
    io.out(`# per-rank busy s: ${busy.map((b, i) => `r${i}(stage ${all[i]![3]}) ${b.toFixed(3)}`).join(', ')}\n`);
    io.out(`# bubble fraction ${bubble.toFixed(3)}; bytes exchanged per token ${Math.round(bytes / steps)}\n`);
  }
  mpi?.finalize();
  return 0;
}

/**
 * `--prompts "a|b|c" --schedule static|dynamic`: several sequences in flight through the pipeline (under mpirun,
 * pp ≥ 2); rank 0 prints one line per sequence, then the numbers.
 */
async function pipelinedCommand(
  v: { prompts?: string; schedule?: string },
  graph: Graph,
  tokenizer: Tokenizer,
  o: { tp: number; pp: number; steps: number; balance: 'cost' | 'equal' },
  io: QuantizeIo,
): Promise<number> {
  const schedule = v.schedule ?? 'dynamic';
  if (schedule !== 'static' && schedule !== 'dynamic')
    throw usage(`--schedule must be static or dynamic, got '${schedule}'`);
  const prompts = v.prompts!.split('|').map((p) => tokenizer.encode(p, { bos: true }));
  const { generatePipelined } = await import('./parallel/pipelined.js');
  const mpi = (await import('./parallel/mpi.js')).mpiWorld();
  const r = generatePipelined(graph, o, prompts, o.steps, schedule, mpi);
  const world = o.tp * o.pp;
  const mine = new Float64Array([r.busy, r.wall, r.stage]);
  const all: Float64Array[] = [mine];
  if (mpi.rank === 0) {
    for (let s = 1; s < world; s++) {
      const b = new Float64Array(3);
      mpi.recv(b, s, 999);
      all.push(b);
    }
    r.tokens.forEach((t, i) => io.out(tokenizer.decode(t.slice(prompts[i]!.length)) + '\n'));
    const wall = Math.max(...all.map((a) => a[1]!));
    const busy = all.map((a) => a[0]!);
    const bubble = 1 - busy.reduce((a, b) => a + b, 0) / (world * wall);
    io.out(
      `# ${schedule} schedule, ${prompts.length} sequences × ${o.steps} tokens, tp ${o.tp} × pp ${o.pp}, ${wall.toFixed(2)} s\n`,
    );
    io.out(`# per-rank busy s: ${busy.map((b, i) => `r${i}(stage ${all[i]![2]}) ${b.toFixed(3)}`).join(', ')}\n`);
    io.out(`# bubble fraction ${bubble.toFixed(3)}; entry order ${r.order.join(',')}\n`);
  } else mpi.send(mine, 0, 999);
  mpi.barrier();
  mpi.finalize();
  return 0;
}

/** `kiln run-parallel --tp N --pp M [generate options]`: spawns `mpirun -np N·M` of this CLI's generate. */
export async function runParallelCommand(rest: string[], io: QuantizeIo): Promise<number> {
  const { values: v } = parsed(
    () => parseArgs({ args: rest, options: GEN_OPTS, allowPositionals: true }),
    'run-parallel',
  );
  const world = int(v.tp, 'tp', 1) * int(v.pp, 'pp', 1);
  const mpirun = process.env['KILN_MPIRUN'] ?? 'mpirun';
  const r = spawnSync(
    mpirun,
    [
      '--allow-run-as-root',
      '--oversubscribe',
      '-np',
      String(world),
      process.execPath,
      process.argv[1]!,
      'generate',
      ...rest,
    ],
    { encoding: 'utf8' },
  );
  if (r.error)
    throw new KilnError('unsupported', `run-parallel: cannot start '${mpirun}': ${r.error.message}`, {
      limit: 'mpirun',
    });
  io.out(r.stdout);
  if (r.status !== 0) io.err(r.stderr);
  return r.status ?? 1;
}

/* ------------------------------------------------------------------ plan */

export interface PlanModel {
  readonly name: string;
  readonly dim: number;
  readonly hiddenDim: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly vocab: number;
}

export const PLAN_MODELS: Record<string, PlanModel> = {
  'llama-7b': { name: 'llama-7b', dim: 4096, hiddenDim: 11008, layers: 32, heads: 32, kvHeads: 32, vocab: 32000 },
  'llama-70b': { name: 'llama-70b', dim: 8192, hiddenDim: 28672, layers: 80, heads: 64, kvHeads: 8, vocab: 32000 },
};

export interface PlanRow {
  readonly tp: number;
  readonly pp: number;
  readonly fits: boolean;
  /** GB per rank: weights + KV cache. */
  readonly memoryGB: number;
  /** Bytes moved by collectives + stage hand-offs per token (all ranks). */
  readonly bytesPerToken: number;
  /** Modeled ms per token of one sequence (decode). */
  readonly msPerToken: number;
  readonly bubble: number;
  readonly textbookBubble: number;
}

export interface PlanOptions {
  readonly devices: number;
  readonly deviceMemoryGB: number;
  /** Interconnect GB/s. */
  readonly bandwidthGBs: number;
  readonly memBandwidthGBs: number;
  readonly microbatches: number;
  readonly virtual: number;
  readonly context: number;
  readonly bytesPerParam: number;
}

/**
 * Every (tp, pp) with tp · pp = devices that the sharding passes accept (tp divides the query and KV heads, pp ≤
 * layers), with a roofline model of decode: weights streamed from device memory per token, two ring all-reduces of
 * the hidden state per layer (2·(tp−1)/tp of dim·2 bytes each), a hand-off per stage boundary; the pipeline bubble of
 * a fill / drain schedule of M micro-batches over S stages with V virtual stages each, (S−1)/(M·V + S−1), beside the
 * textbook ratio (S−1)/(M·V).
 */
export function planTable(m: PlanModel, o: PlanOptions): PlanRow[] {
  const rows: PlanRow[] = [];
  const hd = m.dim / m.heads;
  const layerParams = 2 * m.dim * m.dim + 2 * m.dim * m.kvHeads * hd + 3 * m.dim * m.hiddenDim;
  const params = m.layers * layerParams + 2 * m.vocab * m.dim;
  for (let tp = 1; tp <= o.devices; tp++) {
    if (o.devices % tp !== 0 || m.heads % tp !== 0 || m.kvHeads % tp !== 0) continue;
    const pp = o.devices / tp;
    if (pp > m.layers) continue;
    const weights = (params * o.bytesPerParam) / (tp * pp);
    const kv = (2 * m.layers * m.kvHeads * hd * o.context * o.bytesPerParam) / (tp * pp);
    const memoryGB = (weights + kv) / 1e9;
    const act = m.dim * o.bytesPerParam;
    const allReduce = tp > 1 ? 2 * m.layers * 2 * ((tp - 1) / tp) * act * tp : 0;
    const handoff = (pp - 1) * act * tp;
    const gather = tp > 1 ? ((tp - 1) / tp) * m.vocab * 4 * tp : 0;
    const bytesPerToken = allReduce + handoff + gather;
    const computeMs = ((params * o.bytesPerParam) / tp / (o.memBandwidthGBs * 1e9)) * 1e3;
    const commMs =
      ((allReduce / tp + handoff / tp + gather / tp) / (o.bandwidthGBs * 1e9)) * 1e3 +
      2 * m.layers * (tp > 1 ? 0.005 : 0);
    const S = pp;
    const M = o.microbatches;
    const V = o.virtual;
    rows.push({
      tp,
      pp,
      fits: memoryGB <= o.deviceMemoryGB,
      memoryGB,
      bytesPerToken,
      msPerToken: computeMs + commMs,
      bubble: (S - 1) / (M * V + S - 1),
      textbookBubble: (S - 1) / (M * V),
    });
  }
  return rows;
}

/** The plan the passes would choose: the fastest row that fits. */
export function choosePlan(rows: readonly PlanRow[]): PlanRow | undefined {
  return rows.filter((r) => r.fits).sort((a, b) => a.msPerToken - b.msPerToken || a.pp - b.pp)[0];
}

export async function planCommand(rest: string[], io: QuantizeIo): Promise<number> {
  const { values: v } = parsed(
    () =>
      parseArgs({
        args: rest,
        options: {
          model: { type: 'string' },
          devices: { type: 'string' },
          'device-memory': { type: 'string' },
          bandwidth: { type: 'string' },
          'mem-bandwidth': { type: 'string' },
          microbatches: { type: 'string' },
          virtual: { type: 'string' },
          context: { type: 'string' },
          help: { type: 'boolean' },
        },
      }),
    'plan',
  );
  if (v.help) {
    io.out(
      'kiln plan --model llama-7b|llama-70b|CONFIG.json --devices N [--device-memory GB=80] [--bandwidth GB/s=300]\n' +
        '          [--mem-bandwidth GB/s=2000] [--microbatches M=8] [--virtual V=1] [--context T=4096]\n',
    );
    return 0;
  }
  const name = v.model ?? 'llama-7b';
  const m: PlanModel = PLAN_MODELS[name] ?? (JSON.parse(readFileSync(name, 'utf8')) as PlanModel);
  const num = (x: string | undefined, d: number, what: string) => {
    const n = x === undefined ? d : Number(x);
    if (!(n > 0)) throw usage(`--${what} must be > 0`);
    return n;
  };
  const o: PlanOptions = {
    devices: int(v.devices, 'devices', 8),
    deviceMemoryGB: num(v['device-memory'], 80, 'device-memory'),
    bandwidthGBs: num(v.bandwidth, 300, 'bandwidth'),
    memBandwidthGBs: num(v['mem-bandwidth'], 2000, 'mem-bandwidth'),
    microbatches: int(v.microbatches, 'microbatches', 8),
    virtual: int(v.virtual, 'virtual', 1),
    context: int(v.context, 'context', 4096),
    bytesPerParam: 2,
  };
  const rows = planTable(m, o);
  const best = choosePlan(rows);
  io.out(
    `${m.name ?? name} on ${o.devices} devices (${o.deviceMemoryGB} GB, ${o.bandwidthGBs} GB/s link), f16, context ${o.context}, M=${o.microbatches} V=${o.virtual}\n`,
  );
  io.out('  tp  pp  GB/rank  fits  MB/token  ms/token  bubble  (S-1)/(M·V)\n');
  for (const r of rows) {
    io.out(
      `${r === best ? '*' : ' '}${String(r.tp).padStart(3)} ${String(r.pp).padStart(3)} ${r.memoryGB.toFixed(1).padStart(8)}  ${r.fits ? 'yes ' : 'no  '} ${(r.bytesPerToken / 1e6).toFixed(3).padStart(8)}  ${r.msPerToken.toFixed(2).padStart(8)}  ${r.bubble.toFixed(3).padStart(6)}  ${r.textbookBubble.toFixed(3).padStart(6)}\n`,
    );
  }
  if (!best) {
    io.err(`kiln plan: no tp × pp split of ${o.devices} devices fits ${o.deviceMemoryGB} GB per device\n`);
    return 1;
  }
  io.out(`plan: tp ${best.tp} × pp ${best.pp}\n`);
  return 0;
}
