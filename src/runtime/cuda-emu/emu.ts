/**
 * cuda-emu: compile CUDA C kernel source with g++ against kiln's CPU emulation header and run it in a child process.
 *
 * ```ts
 * const mod = await compileEmu(source);               // cached under ~/.cache/kiln/cuda-emu/<sha256>/
 * const out = await mod.run({ buffers, launches, outputs });   // Map<bufferIndex, Uint8Array>
 * ```
 *
 * The source must register its kernels with `KILN_EMU_REGISTER(kernel)` (see codegen/cuda/emu/kiln_cuda_emu.h).
 * Build: a runtime object (fibers, scheduler, host driver) and a precompiled emulation header are built once per
 * toolchain + header content and cached; each source is then one g++ invocation that compiles and links.
 * The cache is per user ({@link kilnCacheRoot}), bounded by `KILN_CACHE_MAX_MB` (least recently used entries go
 * first), and replaced by a private temporary directory when it cannot be written.
 * Every failure surfaces as a {@link KilnError}: code `runtime` (an {@link EmuError} with the emulator's error kind
 * and the kernel name as the location's node) for a fault the emulator diagnosed in a kernel, `device` for an
 * emulator process that died (a signal, OOM-kill, a bad exit or a malformed result), `limit` for buffers or transfers
 * larger than the emulator handles, or `unsupported` where g++ / x86-64 Linux is missing.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { constants as bufferConstants } from 'node:buffer';
import { existsSync, readFileSync, readdirSync, rmSync, utimesSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KilnError, type ErrorLocation, type KilnErrorCode } from '../../../ir/errors.js';
import { ARG_KIND_NAMES, decodeResult, encodePlan, type EmuPlan, type EmuResult } from './plan.js';

/** Flags every emulator translation unit is compiled with (part of every cache key). */
export const EMU_BASE_FLAGS: readonly string[] = ['-O2', '-std=c++17', '-fno-strict-aliasing', '-pthread'];

export interface CompileEmuOptions {
  /** Label used in errors and as the location of compile errors whose function is unknown (default 'cuda-emu'). */
  name?: string;
  /** Cache directory (default `<kilnCacheRoot()>/cuda-emu`; a private temporary directory if that is not writable). */
  cacheDir?: string;
  /** Directory holding kiln_cuda_emu.h & co. (default `<repo>/codegen/cuda/emu`, or `$KILN_CUDA_EMU_DIR`). */
  emuDir?: string;
  /** C++ compiler (default `$KILN_CXX` or `g++`). */
  cxx?: string;
  /** Extra g++ flags, appended to {@link EMU_BASE_FLAGS} (part of the cache key). */
  extraFlags?: readonly string[];
  /** Use a precompiled emulation header (default true; falls back to the plain header if it cannot be built). */
  pch?: boolean;
  /** Limit for each g++ invocation (default 300 s). */
  compileTimeoutMs?: number;
}

export interface EmuRunOptions {
  /** Kill the emulator after this long (default 60 s). */
  timeoutMs?: number;
  /** Fiber order for launches without their own `order` (default: KILN_EMU_ORDER, else forward). */
  order?: 'forward' | 'reverse';
  /** Worker OS threads (default: KILN_EMU_THREADS, else the hardware concurrency). */
  threads?: number;
  /** Stack bytes per CUDA thread (default 64 KiB). */
  stackBytes?: number;
  /** Extra environment for the emulator process. */
  env?: Record<string, string>;
  /**
   * Largest plan or result that may cross the pipe, in bytes (default and maximum {@link MAX_EMU_TRANSFER_BYTES}):
   * larger ones fail with a `limit` error before the emulator starts.
   */
  maxTransferBytes?: number;
  /** Called with the emulator's process id once it has started (diagnostics, tests). */
  onSpawn?: (pid: number) => void;
}

/**
 * The most bytes one plan or one result may have: each crosses the pipe as one Node Buffer, whose length is capped
 * (4 GiB on Node 20). Typed arrays share that cap, so it also bounds a single device buffer.
 */
export const MAX_EMU_TRANSFER_BYTES: number = Math.min(bufferConstants.MAX_LENGTH, 2 ** 32);

export interface EmuKernelSignature {
  name: string;
  params: string[];
}

export interface EmuModule {
  /** Path of the cached executable. */
  readonly executable: string;
  /** Cache key (sha256 of toolchain, flags, emulator sources and kernel source). */
  readonly key: string;
  readonly name: string;
  /** True when the executable came from the cache. */
  readonly cached: boolean;
  /** Time spent compiling in this call, in milliseconds (0 when cached). */
  readonly compileMs: number;
  /** Kernels the executable registered, with their parameter kinds. */
  kernels(): Promise<EmuKernelSignature[]>;
  /** Runs a plan; resolves to the final contents of `plan.outputs`. */
  run(plan: EmuPlan, opts?: EmuRunOptions): Promise<Map<number, Uint8Array>>;
  /** Like {@link run}, plus per-launch times and the kernels' printf output. */
  runDetailed(plan: EmuPlan, opts?: EmuRunOptions): Promise<EmuResult>;
}

/** A failure reported by the emulator, g++ or the child process. */
export class EmuError extends KilnError {
  /** The emulator's error kind (e.g. `shared-oob`, `barrier-divergence`, `crash`, `timeout`, `compile`). */
  readonly kind: string;
  readonly kernel: string | undefined;
  /** stderr of the failing process (kernel printf output, g++ diagnostics). */
  readonly stderr: string;
  constructor(
    kind: string,
    message: string,
    kernel: string | undefined,
    stderr = '',
    code: KilnErrorCode = 'runtime',
    location: ErrorLocation = {},
  ) {
    super(code, `cuda-emu ${kind}: ${message}`, kernel === undefined ? location : { node: kernel, ...location });
    this.name = 'EmuError';
    this.kind = kind;
    this.kernel = kernel;
    this.stderr = stderr;
  }
}

/* ------------------------------------------------------------------------------------------ processes */

interface ProcResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
  timedOut: boolean;
  /** stdout grew past `maxStdout`: the child was killed and `stdout` is empty. */
  overflow: boolean;
  ms: number;
}

const STDERR_CAP = 1 << 20;

/**
 * Runs a process to completion. The promise always settles: a failure inside an event handler (e.g. a stdout too
 * large to concatenate) rejects it instead of escaping as an uncaught exception.
 */
function runProcess(
  cmd: string,
  args: readonly string[],
  opts: {
    input?: Uint8Array;
    timeoutMs?: number;
    env?: NodeJS.ProcessEnv;
    maxStdout?: number;
    onSpawn?: (pid: number) => void;
  },
): Promise<ProcResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const settle = (f: () => void) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      f();
    };
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let outBytes = 0;
    let overflow = false;
    let err = '';
    let timedOut = false;
    if (opts.timeoutMs !== undefined)
      timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, opts.timeoutMs);
    child.stdout.on('data', (d: Buffer) => {
      if (overflow) return;
      outBytes += d.length;
      if (opts.maxStdout !== undefined && outBytes > opts.maxStdout) {
        // stop collecting before the chunks outgrow what one Buffer can hold
        overflow = true;
        out.length = 0;
        child.kill('SIGKILL');
        return;
      }
      out.push(d);
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      err += d;
      if (err.length > 2 * STDERR_CAP) err = err.slice(-STDERR_CAP);
    });
    child.on('error', (e) => settle(() => reject(e)));
    child.on('close', (code, signal) =>
      settle(() => {
        try {
          const stdout = Buffer.concat(out);
          resolve({ code, signal, stdout, stderr: err, timedOut, overflow, ms: performance.now() - t0 });
        } catch (e) {
          reject(e instanceof Error ? e : new Error(String(e)));
        }
      }),
    );
    child.stdin.on('error', () => {
      /* EPIPE when the child exits before reading its whole input; its exit status tells what happened */
    });
    if (child.pid !== undefined && opts.onSpawn) {
      try {
        opts.onSpawn(child.pid);
      } catch {
        /* a diagnostics hook must not break the run */
      }
    }
    child.stdin.end(opts.input ?? null);
  });
}

/* ------------------------------------------------------------------------------------------ toolchain */

let repoRootMemo: string | undefined;
function repoRoot(): string {
  if (repoRootMemo) return repoRootMemo;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === 'kiln') return (repoRootMemo = dir);
      } catch {
        /* not ours */
      }
    }
    const up = path.dirname(dir);
    if (up === dir) throw new EmuError('setup', 'cannot find the kiln package root', undefined, '', 'unsupported');
    dir = up;
  }
}

interface Toolchain {
  cxx: string;
  version: string;
  emuDir: string;
  header: string;
  stubDir: string;
  runtime: string;
  /** sha256 over compiler version and the emulator's files */
  contentHash: string;
}

const toolchains = new Map<string, Promise<Toolchain>>();

function sha256(...parts: readonly (string | Uint8Array)[]): string {
  const h = createHash('sha256');
  for (const p of parts) {
    h.update(typeof p === 'string' ? Buffer.from(p, 'utf8') : p);
    h.update('\0');
  }
  return h.digest('hex');
}

function unsupported(message: string): EmuError {
  return new EmuError('unsupported', message, undefined, '', 'unsupported');
}

async function loadToolchain(cxx: string, emuDir: string): Promise<Toolchain> {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    throw unsupported(`the CPU emulator needs x86-64 Linux (this is ${process.platform}-${process.arch})`);
  let version: string;
  try {
    const r = await runProcess(cxx, ['-dumpfullversion'], { timeoutMs: 30_000 });
    if (r.code !== 0) throw unsupported(`'${cxx} -dumpfullversion' failed: ${r.stderr.trim()}`);
    version = r.stdout.toString('utf8').trim();
  } catch (e) {
    if (e instanceof KilnError) throw e;
    throw unsupported(
      `the C++ compiler '${cxx}' was not found (${(e as Error).message}); the emulator needs g++ >= 12`,
    );
  }
  const header = path.join(emuDir, 'kiln_cuda_emu.h');
  const runtime = path.join(emuDir, 'kiln_cuda_emu_rt.cpp');
  const stubDir = path.join(emuDir, 'include');
  const files = [header, path.join(emuDir, 'kiln_cuda_shared.h'), runtime];
  if (existsSync(stubDir)) for (const f of readdirSync(stubDir).sort()) files.push(path.join(stubDir, f));
  const parts: (string | Uint8Array)[] = [cxx, version];
  for (const f of files) {
    try {
      parts.push(path.relative(emuDir, f), await fs.readFile(f));
    } catch (e) {
      throw new EmuError('setup', `cannot read ${f}: ${(e as Error).message}`, undefined, '', 'unsupported');
    }
  }
  return { cxx, version, emuDir, header, stubDir, runtime, contentHash: sha256(...parts) };
}

function toolchain(cxx: string, emuDir: string): Promise<Toolchain> {
  const k = `${cxx}\0${emuDir}`;
  let p = toolchains.get(k);
  if (!p) {
    p = loadToolchain(cxx, emuDir);
    toolchains.set(k, p);
    p.catch(() => toolchains.delete(k));
  }
  return p;
}

/* ------------------------------------------------------------------------------------------ cache */

/**
 * kiln's per-user cache directory: `$KILN_CACHE_DIR`, else `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`, else a
 * directory under the system temp dir. Never inside the installed package (which may be read-only or shared).
 */
export function kilnCacheRoot(env: Readonly<Record<string, string | undefined>> = process.env): string {
  if (env.KILN_CACHE_DIR) return path.resolve(env.KILN_CACHE_DIR);
  // the XDG spec says to ignore a relative XDG_CACHE_HOME
  if (env.XDG_CACHE_HOME && path.isAbsolute(env.XDG_CACHE_HOME)) return path.join(env.XDG_CACHE_HOME, 'kiln');
  let home = '';
  try {
    home = os.homedir();
  } catch {
    /* no home directory (e.g. a uid without a passwd entry) */
  }
  if (home) return path.join(home, '.cache', 'kiln');
  return path.join(os.tmpdir(), `kiln-cache-${process.getuid?.() ?? 'user'}`);
}

/** Default cap of the emulator's cache directory. */
export const DEFAULT_CACHE_MAX_MB = 256;

/** The cache cap in bytes: `$KILN_CACHE_MAX_MB` (a positive number of MiB), else {@link DEFAULT_CACHE_MAX_MB}. */
function cacheMaxBytes(): number {
  const v = process.env.KILN_CACHE_MAX_MB;
  if (v === undefined || v.trim() === '') return DEFAULT_CACHE_MAX_MB * 2 ** 20;
  const mb = Number(v);
  if (!Number.isFinite(mb) || mb <= 0)
    throw new KilnError('attribute', `KILN_CACHE_MAX_MB must be a positive number of MiB, got '${v}'`, {
      limit: 'KILN_CACHE_MAX_MB',
    });
  return Math.floor(mb * 2 ** 20);
}

let fallbackDir: string | undefined;
let fallbackWarned = false;

/** A private cache directory for this process, removed when it exits. */
function processCacheDir(): string {
  if (fallbackDir) return fallbackDir;
  fallbackDir = path.join(os.tmpdir(), `kiln-cuda-emu-${process.pid}-${randomBytes(4).toString('hex')}`);
  const dir = fallbackDir;
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const usableDirs = new Map<string, Promise<string>>();

/**
 * `dir` if it can be created and written, else this process's private temporary directory (with one warning): a
 * read-only or unusable cache costs compile time, never the run.
 */
function usableCacheDir(dir: string): Promise<string> {
  let p = usableDirs.get(dir);
  if (!p) {
    p = (async () => {
      try {
        await fs.mkdir(dir, { recursive: true });
        // root ignores permission bits, and a read-only mount only shows on write: probe with a real file
        const probe = path.join(dir, `.probe-${process.pid}-${randomBytes(4).toString('hex')}`);
        await fs.writeFile(probe, '');
        await fs.rm(probe, { force: true });
        return dir;
      } catch (e) {
        const fb = processCacheDir();
        await fs.mkdir(fb, { recursive: true });
        if (!fallbackWarned) {
          fallbackWarned = true;
          process.emitWarning(
            `kiln cuda-emu: cannot use the cache directory ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); ` +
              `compiled kernels go to ${fb} for this process (set KILN_CACHE_DIR to a writable directory)`,
          );
        }
        return fb;
      }
    })();
    usableDirs.set(dir, p);
  }
  return p;
}

/** Marks a cache entry as just used (its mtime is the least-recently-used clock); best effort. */
function touch(p: string): void {
  try {
    const now = new Date();
    utimesSync(p, now, now);
  } catch {
    /* pruned meanwhile, or read-only: harmless */
  }
}

async function entryBytes(p: string): Promise<number> {
  const st = await fs.lstat(p);
  if (!st.isDirectory()) return st.size;
  let n = 0;
  for (const f of await fs.readdir(p)) n += await entryBytes(path.join(p, f)).catch(() => 0);
  return n;
}

/** Temporary build directories older than this belong to a process that died mid-compile. */
const STALE_TMP_MS = 60 * 60 * 1000;

/**
 * Deletes least-recently-used entries (by mtime) of the cache directory `dir` until it holds at most `maxBytes`;
 * entries in `keep` and fresh temporary build directories stay. Returns the paths removed and the bytes left.
 */
export async function pruneCache(
  dir: string,
  maxBytes: number,
  keep: ReadonlySet<string> = new Set(),
): Promise<{ removed: string[]; bytes: number }> {
  const now = Date.now();
  const entries: { path: string; bytes: number; mtime: number }[] = [];
  const removed: string[] = [];
  let total = 0;
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    const p = path.join(dir, name);
    try {
      const st = await fs.lstat(p);
      const bytes = await entryBytes(p);
      if (name.startsWith('.')) {
        // in-progress builds and probes of live processes: leave them, unless long abandoned
        if (now - st.mtimeMs > STALE_TMP_MS) {
          await fs.rm(p, { recursive: true, force: true });
          removed.push(p);
        } else total += bytes;
        continue;
      }
      total += bytes;
      if (!keep.has(p)) entries.push({ path: p, bytes, mtime: st.mtimeMs });
    } catch {
      /* removed by another process meanwhile */
    }
  }
  entries.sort((a, b) => a.mtime - b.mtime);
  for (const e of entries) {
    if (total <= maxBytes) break;
    try {
      await fs.rm(e.path, { recursive: true, force: true });
      removed.push(e.path);
      total -= e.bytes;
    } catch {
      /* still in use or not ours to delete: try the next one */
    }
  }
  return { removed, bytes: total };
}

/** Runtime objects and PCHs this process links against: never pruned from under a compile in flight. */
const inUse = new Set<string>();
const pruning = new Map<string, Promise<unknown>>();

/** Prunes `dir` after a new entry went in; one prune per directory at a time, failures ignored. */
function pruneAfterWrite(dir: string, fresh: string): Promise<unknown> {
  const max = cacheMaxBytes();
  const prev = pruning.get(dir) ?? Promise.resolve();
  const next = prev.then(() => pruneCache(dir, max, new Set([...inUse, fresh]))).catch(() => undefined);
  pruning.set(dir, next);
  return next;
}

function tmpName(dir: string, stem: string): string {
  return path.join(dir, `.tmp-${stem.slice(0, 16)}-${process.pid}-${randomBytes(6).toString('hex')}`);
}

/** Moves a finished temporary directory into place; if another process won the race, keeps theirs. */
async function publishDir(tmp: string, final: string): Promise<void> {
  try {
    await fs.rename(tmp, final);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') {
      await fs.rm(tmp, { recursive: true, force: true });
      return;
    }
    throw e;
  }
}

const pending = new Map<string, Promise<unknown>>();
function once<T>(key: string, make: () => Promise<T>): Promise<T> {
  let p = pending.get(key) as Promise<T> | undefined;
  if (!p) {
    p = make();
    pending.set(key, p);
    p.then(
      () => pending.delete(key),
      () => pending.delete(key),
    );
  }
  return p;
}

function compileFailure(r: ProcResult, what: string, name: string): EmuError {
  // diagnostics name files in temporary build directories; drop those directory names
  const stderr = r.stderr.replace(/[^\s'"]*\/\.tmp-[0-9a-f]+-\d+-[0-9a-f]+\//g, '');
  r = { ...r, stderr };
  const fn = /In function '([^']+)'/.exec(r.stderr)?.[1];
  const kernel = fn ? (/([A-Za-z_]\w*)\s*(?:<[^(]*>)?\s*\(/.exec(fn)?.[1] ?? fn) : name;
  const lines = r.stderr.split('\n');
  const errors = lines.filter((l) => /\berror\b/.test(l));
  const shown = (errors.length ? errors : lines).slice(0, 20).join('\n');
  const why = r.timedOut ? 'timed out' : r.signal ? `was killed by ${r.signal}` : `exited with ${r.code}`;
  return new EmuError('compile', `g++ failed to compile ${what} (${why}):\n${shown}`, kernel, r.stderr);
}

async function gxx(
  tc: Toolchain,
  args: readonly string[],
  what: string,
  name: string,
  timeoutMs: number,
): Promise<ProcResult> {
  const r = await runProcess(tc.cxx, args, { timeoutMs, env: { ...process.env, LC_ALL: 'C' } });
  if (r.code !== 0 || r.timedOut) throw compileFailure(r, what, name);
  return r;
}

async function ensureRuntimeObject(tc: Toolchain, flags: readonly string[], cacheDir: string, timeoutMs: number) {
  const key = sha256('rt', tc.contentHash, ...flags);
  const obj = path.join(cacheDir, `rt-${key}.o`);
  inUse.add(obj);
  return once(obj, async () => {
    if (existsSync(obj)) {
      touch(obj);
      return obj;
    }
    const tmp = `${tmpName(cacheDir, key)}.o`;
    try {
      await gxx(tc, [...flags, '-c', tc.runtime, '-o', tmp], 'the emulator runtime', 'cuda-emu', timeoutMs);
      await fs.rename(tmp, obj);
    } finally {
      await fs.rm(tmp, { force: true });
    }
    return obj;
  });
}

/** Returns the header path to `-include` (next to its .gch), or undefined when no PCH could be built. */
async function ensurePch(tc: Toolchain, flags: readonly string[], cacheDir: string, timeoutMs: number) {
  const key = sha256('pch', tc.contentHash, ...flags);
  const dir = path.join(cacheDir, `pch-${key}`);
  const header = path.join(dir, 'kiln_cuda_emu.h');
  inUse.add(dir);
  return once(dir, async (): Promise<string | undefined> => {
    if (existsSync(`${header}.gch`)) {
      touch(dir);
      return header;
    }
    const tmp = tmpName(cacheDir, key);
    try {
      await fs.mkdir(tmp, { recursive: true });
      await fs.copyFile(tc.header, path.join(tmp, 'kiln_cuda_emu.h'));
      const out = path.join(tmp, 'kiln_cuda_emu.h.gch');
      await gxx(
        tc,
        [...flags, '-x', 'c++-header', path.join(tmp, 'kiln_cuda_emu.h'), '-o', out],
        'the PCH',
        'cuda-emu',
        timeoutMs,
      );
      await publishDir(tmp, dir);
      return header;
    } catch {
      return undefined; // compile without PCH
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
  });
}

/* ------------------------------------------------------------------------------------------ module */

const ERROR_LINE = /^KILN_EMU_ERROR: ([\w-]+): (.*)$/m;

function kernelOf(message: string, plan: EmuPlan): string | undefined {
  const m = /kernel '([^']+)'/.exec(message);
  if (m) return m[1];
  const l = /launch (\d+)/.exec(message);
  if (l) return plan.launches[Number(l[1])]?.kernel;
  const names = new Set(plan.launches.map((x) => x.kernel));
  return names.size === 1 ? [...names][0] : undefined;
}

/** The byte size of a plan buffer as encodePlan computes it (undefined when malformed: encodePlan reports it). */
function planBufferBytes(b: EmuPlan['buffers'][number]): number | undefined {
  const n = b.size ?? b.init?.byteLength;
  return n !== undefined && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

function limitError(message: string, kernel: string | undefined, limit: string, tensor?: string): EmuError {
  return new EmuError('limit', message, kernel, '', 'limit', tensor === undefined ? { limit } : { limit, tensor });
}

/** Checks the sizes of a plan and of its result against the transfer limit before anything is encoded or run. */
function checkPlanLimits(plan: EmuPlan, maxTransfer: number, kernel: string | undefined): void {
  const what = `MAX_EMU_TRANSFER_BYTES (${maxTransfer} bytes)`;
  let planBytes = 16;
  plan.buffers.forEach((b, i) => {
    const n = planBufferBytes(b) ?? 0;
    if (n > maxTransfer)
      throw limitError(
        `buffer ${i} has ${n} bytes; the emulator takes at most ${maxTransfer} bytes per buffer`,
        kernel,
        what,
        `buffer ${i}`,
      );
    planBytes += 13 + (b.init ? n : 1);
  });
  for (const l of plan.launches) planBytes += 48 + l.kernel.length + 9 * l.args.length;
  if (planBytes > maxTransfer)
    throw limitError(
      `the plan needs ${planBytes} bytes to send; at most ${maxTransfer} may cross the pipe`,
      kernel,
      what,
    );
  let resultBytes = 16 + 8 * plan.launches.length;
  for (const o of plan.outputs) resultBytes += 12 + (planBufferBytes(plan.buffers[o] ?? {}) ?? 0);
  if (resultBytes > maxTransfer)
    throw limitError(
      `the outputs need ${resultBytes} bytes to return; at most ${maxTransfer} may cross the pipe`,
      kernel,
      what,
    );
}

class Module implements EmuModule {
  private kernelList: Promise<EmuKernelSignature[]> | undefined;
  private lastTouch = Date.now();
  constructor(
    private exe: string,
    readonly key: string,
    readonly name: string,
    readonly cached: boolean,
    readonly compileMs: number,
    /** Compiles the source again (the cache entry may be pruned by this or another process while we hold it). */
    private readonly rebuild: () => Promise<EmuModule>,
  ) {}

  get executable(): string {
    return this.exe;
  }

  /** The executable, rebuilt if it was pruned from the cache since; the entry's LRU clock is advanced. */
  private async ensureExecutable(): Promise<string> {
    if (!existsSync(this.exe)) {
      this.exe = (await this.rebuild()).executable;
      this.lastTouch = Date.now();
    } else if (Date.now() - this.lastTouch > 60_000) {
      this.lastTouch = Date.now();
      touch(path.dirname(this.exe));
    }
    return this.exe;
  }

  kernels(): Promise<EmuKernelSignature[]> {
    this.kernelList ??= this.ensureExecutable()
      .then((exe) => runProcess(exe, ['--list'], { timeoutMs: 30_000 }))
      .then((r) => {
        if (r.code !== 0)
          throw new EmuError('crash', `'${this.exe} --list' failed: ${r.stderr}`, this.name, r.stderr, 'device');
        return r.stdout
          .toString('utf8')
          .split('\n')
          .filter((l) => l.length > 0)
          .map((l) => {
            const [name, kinds] = l.split('\t');
            const params = kinds ? kinds.split(',').map((k) => ARG_KIND_NAMES[Number(k)] ?? `kind ${k}`) : [];
            return { name: name!, params };
          })
          .reverse();
      });
    this.kernelList.catch(() => (this.kernelList = undefined));
    return this.kernelList;
  }

  async run(plan: EmuPlan, opts?: EmuRunOptions): Promise<Map<number, Uint8Array>> {
    return (await this.runDetailed(plan, opts)).outputs;
  }

  async runDetailed(plan: EmuPlan, opts: EmuRunOptions = {}): Promise<EmuResult> {
    const maxTransfer = Math.min(opts.maxTransferBytes ?? MAX_EMU_TRANSFER_BYTES, MAX_EMU_TRANSFER_BYTES);
    checkPlanLimits(plan, maxTransfer, kernelOf('', plan));
    let input: Uint8Array;
    try {
      input = encodePlan(plan, opts.order);
    } catch (e) {
      if (e instanceof KilnError) throw e;
      // a RangeError from growing the plan past what a typed array holds
      throw limitError(`cannot encode the plan: ${(e as Error).message}`, kernelOf('', plan), 'MAX_EMU_TRANSFER_BYTES');
    }
    const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
    if (opts.threads !== undefined) env.KILN_EMU_THREADS = String(opts.threads);
    if (opts.stackBytes !== undefined) env.KILN_EMU_STACK = String(opts.stackBytes);
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const kernel = kernelOf('', plan) ?? this.name;
    let r: ProcResult | undefined;
    for (let attempt = 0; !r; attempt++) {
      const exe = await this.ensureExecutable();
      try {
        r = await runProcess(exe, [], { input, timeoutMs, env, maxStdout: maxTransfer, onSpawn: opts.onSpawn });
      } catch (e) {
        // ENOENT: pruned between the check and the spawn; rebuild once
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' && attempt === 0) continue;
        throw new EmuError('spawn', `cannot run ${exe}: ${(e as Error).message}`, kernel, '', 'device');
      }
    }
    if (r.overflow)
      throw limitError(
        `the emulator's result grew past ${maxTransfer} bytes, the most that may cross the pipe`,
        kernel,
        'MAX_EMU_TRANSFER_BYTES',
      );
    const m = ERROR_LINE.exec(r.stderr);
    if (m) {
      const [, kind, message] = m;
      // an assert() prints its message just before aborting
      const before = r.stderr.slice(0, m.index).trim().split('\n').pop();
      const extra = kind === 'abort' && before ? ` — ${before}` : '';
      // the emulator's own out-of-memory report is a limit of this machine, not a kernel fault
      const code: KilnErrorCode = kind === 'resource' ? 'limit' : 'runtime';
      throw new EmuError(kind!, message! + extra, kernelOf(message!, plan), r.stderr, code);
    }
    const tail = r.stderr.trim().split('\n').slice(-10).join('\n');
    const stderrNote = tail ? `; stderr:\n${tail}` : '';
    if (r.timedOut)
      throw new EmuError(
        'timeout',
        `the emulator did not finish within ${timeoutMs} ms (a spin-wait on another thread or block never ends on ` +
          `fibers)${stderrNote}`,
        kernel,
        r.stderr,
      );
    if (r.signal)
      throw new EmuError(
        'crash',
        `the emulator process running '${kernel}' was killed by ${r.signal}` +
          (r.signal === 'SIGKILL' ? ' (out of memory, or killed from outside)' : '') +
          stderrNote,
        kernel,
        r.stderr,
        'device',
      );
    if (r.code !== 0)
      throw new EmuError(
        'crash',
        `the emulator process running '${kernel}' exited with status ${r.code}${stderrNote}`,
        kernel,
        r.stderr,
        'device',
      );
    try {
      return { ...decodeResult(r.stdout), log: r.stderr };
    } catch (e) {
      throw new EmuError('protocol', (e as Error).message, kernel, r.stderr, 'device');
    }
  }
}

/**
 * Compiles CUDA C `source` (kernels registered with KILN_EMU_REGISTER) into an emulator executable, or reuses the
 * cached one.
 */
export async function compileEmu(source: string, opts: CompileEmuOptions = {}): Promise<EmuModule> {
  const name = opts.name ?? 'cuda-emu';
  const cxx = opts.cxx ?? process.env.KILN_CXX ?? 'g++';
  const emuDir = opts.emuDir ?? process.env.KILN_CUDA_EMU_DIR ?? path.join(repoRoot(), 'codegen', 'cuda', 'emu');
  const tc = await toolchain(cxx, emuDir);
  cacheMaxBytes(); // a malformed KILN_CACHE_MAX_MB fails here, before any work
  const wanted = opts.cacheDir ?? path.join(kilnCacheRoot(), 'cuda-emu');
  const cacheDir = await usableCacheDir(wanted);
  try {
    return await compileIn(source, opts, name, tc, cacheDir);
  } catch (e) {
    if (e instanceof KilnError) throw e;
    // a cache that was writable at first and then failed (full disk, permissions changed): build privately
    const fb = processCacheDir();
    if (cacheDir === fb)
      throw new EmuError(
        'cache',
        `cannot write the cache directory ${fb}: ${(e as Error).message}`,
        name,
        '',
        'device',
        {
          limit: fb,
        },
      );
    await fs.mkdir(fb, { recursive: true });
    usableDirs.set(wanted, Promise.resolve(fb));
    return compileIn(source, opts, name, tc, fb);
  }
}

async function compileIn(
  source: string,
  opts: CompileEmuOptions,
  name: string,
  tc: Toolchain,
  cacheDir: string,
): Promise<EmuModule> {
  const flags = [...EMU_BASE_FLAGS, ...(opts.extraFlags ?? [])];
  const timeoutMs = opts.compileTimeoutMs ?? 300_000;
  const key = sha256('exe', tc.contentHash, ...flags, source);
  const dir = path.join(cacheDir, key);
  const exe = path.join(dir, 'kernel');
  const rebuild = () => compileEmu(source, opts);
  if (existsSync(exe)) {
    touch(dir);
    return new Module(exe, key, name, true, 0, rebuild);
  }
  return once(exe, async () => {
    if (existsSync(exe)) return new Module(exe, key, name, true, 0, rebuild);
    const t0 = performance.now();
    await fs.mkdir(cacheDir, { recursive: true });
    const [rt, pch] = await Promise.all([
      ensureRuntimeObject(tc, flags, cacheDir, timeoutMs),
      opts.pch === false ? Promise.resolve(undefined) : ensurePch(tc, flags, cacheDir, timeoutMs),
    ]);
    const tmp = tmpName(cacheDir, key);
    try {
      await fs.mkdir(tmp, { recursive: true });
      const src = path.join(tmp, 'kernel.cu');
      await fs.writeFile(src, `#line 1 "${name.replace(/[^\w.-]/g, '_')}.cu"\n${source}`);
      await gxx(
        tc,
        [
          ...flags,
          '-I',
          tc.stubDir,
          '-include',
          pch ?? tc.header,
          '-x',
          'c++',
          src,
          '-x',
          'none',
          rt,
          '-o',
          path.join(tmp, 'kernel'),
        ],
        `'${name}'`,
        name,
        timeoutMs,
      );
      await publishDir(tmp, dir);
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
    await pruneAfterWrite(cacheDir, dir);
    return new Module(exe, key, name, false, performance.now() - t0, rebuild);
  });
}

/** Whether the emulator can work here (x86-64 Linux with a runnable g++). */
export async function emuAvailable(cxx = process.env.KILN_CXX ?? 'g++'): Promise<boolean> {
  if (process.platform !== 'linux' || process.arch !== 'x64') return false;
  try {
    const r = await runProcess(cxx, ['-dumpfullversion'], { timeoutMs: 30_000 });
    return r.code === 0;
  } catch {
    return false;
  }
}
