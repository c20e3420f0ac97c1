/**
 * Schedule choices of the contraction templates, and the tuned winners they read. A contraction is classed by
 * template, output dtype, log₂ buckets of its batch / M / N / K and which operand axes are contiguous; the autotuner
 * (`src/tune.ts`) times the candidates of each class on the actual device and keeps the winner in a store under
 * (device, class). Without a store, or for a class never tuned, the templates' static defaults apply — the same
 * kernels as before tuning existed.
 */
import type { DeviceCaps } from '../storage.js';
import { contiguousOn, total, type Contraction } from './contraction.js';

/** A tiled schedule: BM×BN outputs per workgroup, K in steps of BK, a TM×TN register block per thread. */
export interface TileCfg {
  readonly BM: number;
  readonly BN: number;
  readonly BK: number;
  readonly TM: number;
  readonly TN: number;
  /** No workgroup tiles: each thread reads its rows of a and columns of b straight from memory (no barriers). */
  readonly direct?: boolean;
}

/** Tile shapes the tuner tries (names are what stores hold). */
export const TILE_CANDIDATES: Readonly<Record<string, TileCfg>> = {
  t128x128: { BM: 128, BN: 128, BK: 8, TM: 8, TN: 8 },
  t64x64: { BM: 64, BN: 64, BK: 8, TM: 8, TN: 8 },
  t32x32: { BM: 32, BN: 32, BK: 8, TM: 4, TN: 4 },
  t64x128: { BM: 64, BN: 128, BK: 8, TM: 8, TN: 8 },
  t128x64: { BM: 128, BN: 64, BK: 8, TM: 8, TN: 8 },
  t64x64k16: { BM: 64, BN: 64, BK: 16, TM: 8, TN: 8 },
  d64x64: { BM: 64, BN: 64, BK: 8, TM: 8, TN: 8, direct: true },
  d128x128: { BM: 128, BN: 128, BK: 8, TM: 8, TN: 8, direct: true },
};

/** Threads sharing one output of the skinny (GEMV) schedule. */
export const SKINNY_CANDIDATES: Readonly<Record<string, number>> = { s1: 1, s2: 2, s4: 4, s8: 8, s16: 16, s32: 32 };

export type ScheduleFamily = 'tiled' | 'skinny';

/** Where tuned winners live: a file in Node (`src/tune.ts`), memory or the caller's own storage in browsers. */
export interface ScheduleStore {
  /** The winning candidate's name for a `device|class` key (`scheduleKey`), or undefined when none was tuned. */
  get(key: string): string | undefined;
  /** Records the winner for a key, replacing any earlier one. */
  set(key: string, value: string): void;
}

/** A {@link ScheduleStore} in a Map (browsers, tests, or tuning rounds that must not persist). */
export class MemoryScheduleStore implements ScheduleStore {
  readonly entries = new Map<string, string>();
  /** The stored winner for `key`, or undefined. */
  get(key: string): string | undefined {
    return this.entries.get(key);
  }
  /** Stores `value` under `key` (in memory only). */
  set(key: string, value: string): void {
    this.entries.set(key, value);
  }
}

/** What a device's caps carry for tuned schedules: the device's identity and the store to read. */
export interface ScheduleLookup {
  /** The device (adapter description, GPU name): winners on one device say nothing about another. */
  readonly device: string;
  readonly store: ScheduleStore;
  /** Told of every lookup (the tuner learns which classes a graph has and which node each serves). */
  readonly observe?: (family: ScheduleFamily, cls: string, node: string) => void;
}

const bucket = (x: number) => (x <= 1 ? 0 : Math.ceil(Math.log2(x)));

/** The class of a contraction for one template. */
export function contractionClass(family: ScheduleFamily, con: Contraction, dtype: string): string {
  const [B, M, N, K] = (['batch', 'm', 'n', 'k'] as const).map((a) => total(con, a));
  const flags = `a${contiguousOn(con.a.st, 'k') ? 'k' : 'm'}b${contiguousOn(con.b.st, 'n') ? 'n' : 'k'}`;
  return `${family}|${dtype}|b${bucket(B!)}m${bucket(M!)}n${bucket(N!)}k${bucket(K!)}|${flags}`;
}

/** The tuned choice for a class on this device, if any (the caller checks it fits the device). */
export function tunedChoice(caps: DeviceCaps, family: ScheduleFamily, cls: string, node: string): string | undefined {
  const s = caps.schedules;
  if (!s) return undefined;
  s.observe?.(family, cls, node);
  return s.store.get(scheduleKey(s.device, cls));
}

/** The store key of a class on a device. */
export const scheduleKey = (device: string, cls: string) => `${device}|${cls}`;

/** Whether a tile shape fits the device's workgroup size and memory. */
export function tileFits(t: TileCfg, caps: DeviceCaps): boolean {
  const threads = (t.BM / t.TM) * (t.BN / t.TN);
  // the tile loads (tiled.ts) give every thread the same number of elements of each tile, along either axis
  const loads =
    [t.BK, t.BM, t.BN].every((x) => threads % x === 0) && [t.BM, t.BN].every((x) => (x * t.BK) % threads === 0);
  return loads && threads <= caps.maxWorkgroupSize && t.BK * (t.BM + t.BN) * 4 <= caps.maxSharedBytes;
}
