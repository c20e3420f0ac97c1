/**
 * The autotuner: for each class of contraction a graph runs (codegen/lower/contraction/schedules.ts), time every
 * candidate schedule on the actual device with GPU timestamps and keep the winner in a store under (device, class).
 * Sessions compiled afterwards read the store; a class never tuned, or one where no candidate beat the static default,
 * keeps the default. In Node the store is a JSON file in kiln's cache directory; browsers pass their own store (or a
 * MemoryScheduleStore).
 *
 * A round gives every class its i-th candidate at once and runs the whole graph: each kernel's time is attributed to
 * the class of the node it serves (the lookups tell which), so one run measures all classes. Rounds stop when the
 * budget is spent; a class's result is its median over the runs of each round.
 *
 * @module kiln/tune
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  MemoryScheduleStore,
  scheduleKey,
  SKINNY_CANDIDATES,
  TILE_CANDIDATES,
  tileFits,
  type ScheduleFamily,
  type ScheduleStore,
} from '../codegen/lower/contraction/schedules.js';
import type { DeviceCaps } from '../codegen/lower/storage.js';
import { KilnError } from '../ir/errors.js';
import type { Graph } from '../ir/graph.js';
import type { Tensor } from '../ir/tensor.js';
import { optimize } from '../passes/manager.js';
import { kilnCacheRoot } from './runtime/cuda-emu/emu.js';
import { Executor } from './runtime/executor.js';
import { sharedGpuContext } from './session.js';

export { MemoryScheduleStore, type ScheduleStore } from '../codegen/lower/contraction/schedules.js';

/** Winners in a JSON file (`{ "device|class": "candidate" }`), written whole on each change (atomic rename). */
export class FileScheduleStore implements ScheduleStore {
  private entries: Record<string, string> = {};
  /**
   * Opens the store at `path` (a missing file is an empty store; it is created on the first `set`).
   *
   * @throws KilnError (code `parse`) when the file exists but is not a JSON object of strings.
   */
  constructor(readonly path: string) {
    if (!existsSync(path)) return;
    try {
      const parsed = JSON.parse(readFileSync(path, 'utf8')) as unknown;
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
        for (const [k, v] of Object.entries(parsed)) if (typeof v === 'string') this.entries[k] = v;
      }
    } catch (e) {
      throw new KilnError('parse', `schedule store ${path} is not a JSON object of strings: ${(e as Error).message}`);
    }
  }
  /** The stored winner for `key`, or undefined. */
  get(key: string): string | undefined {
    return Object.hasOwn(this.entries, key) ? this.entries[key] : undefined;
  }
  /** Stores `value` under `key` and rewrites the file (parent directories created; atomic rename). */
  set(key: string, value: string): void {
    this.entries[key] = value;
    mkdirSync(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.entries, null, 1) + '\n');
    renameSync(tmp, this.path);
  }
}

/** The store sessions read by default in Node: `schedules.json` in kiln's cache directory (see kilnCacheRoot). */
export function defaultScheduleFile(): string {
  return join(kilnCacheRoot(), 'schedules.json');
}

const CANDIDATES: Readonly<Record<ScheduleFamily, readonly string[]>> = {
  tiled: Object.keys(TILE_CANDIDATES),
  skinny: Object.keys(SKINNY_CANDIDATES),
};

function fits(family: ScheduleFamily, name: string, caps: DeviceCaps): boolean {
  return family === 'skinny'
    ? SKINNY_CANDIDATES[name]! <= caps.maxWorkgroupSize
    : tileFits(TILE_CANDIDATES[name]!, caps);
}

export interface TuneOptions {
  /** Where winners go (default: the file store at defaultScheduleFile()). */
  store?: ScheduleStore;
  /** Stop starting rounds after this long (default 60 s); the default round and the first candidates' always run. */
  budgetMs?: number;
  /** Timed runs per round after one warm-up (default 3). */
  runs?: number;
  /** Optimization level the graph is compiled at (default 1). */
  opt?: number;
  /** Told after each round. */
  onRound?: (round: string, ms: number) => void;
}

export interface TuneResult {
  /** The contraction class (template | dtype | size buckets | layout). */
  readonly cls: string;
  readonly family: ScheduleFamily;
  /** Graph nodes of this class. */
  readonly nodes: readonly string[];
  /** Median kernel time (ms, summed over the class's kernels in a run) per candidate measured. */
  readonly times: Readonly<Record<string, number>>;
  /** The static default's time. */
  readonly defaultMs: number;
  /** The stored choice, or undefined when the default was not beaten. */
  readonly winner?: string;
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Tune every contraction class `graph` runs with these feeds on WebGPU; returns one result per class. Winners that
 * beat the static default are written to `opts.store` (default: the file at {@link defaultScheduleFile}); 3 timed runs
 * per round, a 60 s budget, opt level 1 by default.
 *
 * @throws KilnError (code `unsupported`) when the adapter has no GPU timestamps (timestamp-query); (code `device`)
 * when no WebGPU adapter is available; run errors as `Session.run` for bad feeds.
 */
export async function autotune(
  graph: Graph,
  feeds: Readonly<Record<string, Tensor>>,
  opts: TuneOptions = {},
): Promise<TuneResult[]> {
  const { WebGpuBackend, deviceCapsOf } = await import('./runtime/webgpu/backend.js');
  const ctx = await sharedGpuContext(false);
  if (!ctx.caps.timestampQuery) {
    throw new KilnError(
      'unsupported',
      `tuning needs GPU timestamps (timestamp-query) on ${ctx.caps.adapterDescription}`,
    );
  }
  const device = ctx.caps.adapterDescription;
  const store = opts.store ?? new FileScheduleStore(defaultScheduleFile());
  const runs = opts.runs ?? 3;
  const budget = opts.budgetMs ?? 60_000;
  const g = optimize(graph, { level: opts.opt ?? 1 });
  const base = deviceCapsOf(ctx);
  const classOf = new Map<string, { family: ScheduleFamily; nodes: Set<string> }>();

  /** Median per class of one round's kernel times, with every class given `choice(cls)`. */
  const round = async (choice: (cls: string, family: ScheduleFamily) => string | undefined) => {
    const forced = new MemoryScheduleStore();
    // a node's classes in lowering order (decomposed attention has two contractions in one node)
    const nodeClass = new Map<string, string[]>();
    const caps: DeviceCaps = {
      ...base,
      schedules: {
        device,
        store: forced,
        observe: (family, cls, node) => {
          nodeClass.set(node, [...(nodeClass.get(node) ?? []), cls]);
          const known = classOf.get(cls) ?? { family, nodes: new Set<string>() };
          known.nodes.add(node);
          classOf.set(cls, known);
          const c = choice(cls, family);
          if (c !== undefined) forced.set(scheduleKey(device, cls), c);
        },
      },
    };
    const be = new WebGpuBackend(ctx, caps);
    const ex = new Executor(g, be);
    // per launched step: the class of the contraction it is (its node's i-th template kernel), if it is one
    const stepClass: (string | undefined)[] = [];
    const run = be.run.bind(be);
    be.run = (steps) => {
      const seen = new Map<string, number>();
      stepClass.length = 0;
      for (const st of steps) {
        const node = (st as { node?: string }).node ?? '';
        const isTemplate = /_(tiled|skinny)_/.test(st.kernel.name);
        const i = seen.get(node) ?? 0;
        if (isTemplate) seen.set(node, i + 1);
        stepClass.push(isTemplate ? nodeClass.get(node)?.[i] : undefined);
      }
      return run(steps);
    };
    try {
      await ex.run(feeds); // lowers (the lookups name the classes) and warms up
      be.profile = true;
      const per = new Map<string, number[]>();
      for (let r = 0; r < runs; r++) {
        await ex.run(feeds);
        const sums = new Map<string, number>();
        be.lastTimings.forEach((ns, i) => {
          const cls = stepClass[i];
          if (cls !== undefined) sums.set(cls, (sums.get(cls) ?? 0) + ns / 1e6);
        });
        for (const [cls, ms] of sums) per.set(cls, [...(per.get(cls) ?? []), ms]);
      }
      return new Map([...per].map(([cls, ms]) => [cls, median(ms)]));
    } finally {
      ex.dispose();
    }
  };

  const t0 = performance.now();
  const defaults = await round(() => undefined);
  opts.onRound?.('default', performance.now() - t0);
  const times = new Map<string, Record<string, number>>();
  const longest = Math.max(...Object.values(CANDIDATES).map((c) => c.length));
  for (let i = 0; i < longest && (i === 0 || performance.now() - t0 < budget); i++) {
    const tried = new Map<string, string>();
    const got = await round((cls, family) => {
      const name = CANDIDATES[family][i];
      if (name === undefined || !fits(family, name, base)) return undefined;
      tried.set(cls, name);
      return name;
    });
    for (const [cls, name] of tried) {
      const ms = got.get(cls);
      if (ms !== undefined) times.set(cls, { ...(times.get(cls) ?? {}), [name]: ms });
    }
    opts.onRound?.(`candidate ${i + 1}/${longest}`, performance.now() - t0);
  }
  const results: TuneResult[] = [];
  for (const [cls, { family, nodes }] of classOf) {
    const t = times.get(cls) ?? {};
    const defaultMs = defaults.get(cls) ?? Infinity;
    const best = Object.entries(t).sort((a, b) => a[1] - b[1])[0];
    // keep a winner only when it beats the default by more than the noise of a few runs (3 %)
    const winner = best && best[1] < defaultMs * 0.97 ? best[0] : undefined;
    // 'default' names no candidate: the templates fall back to their static choice (and an older winner is gone)
    store.set(scheduleKey(device, cls), winner ?? 'default');
    results.push({ cls, family, nodes: [...nodes].sort(), times: t, defaultMs, winner });
  }
  return results;
}
