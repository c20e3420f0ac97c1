/**
 * cuda-emu: compile CUDA C kernel source with g++ against kiln's CPU emulation header and run it in a child process.
 *
 * ```ts
 * const mod = await compileEmu(source);               // cached under <repo>/.kiln-cache/cuda-emu/<sha256>/
 * const out = await mod.run({ buffers, launches, outputs });   // Map<bufferIndex, Uint8Array>
 * ```
 *
 * The source must register its kernels with `KILN_EMU_REGISTER(kernel)` (see codegen/cuda/emu/kiln_cuda_emu.h).
 * Build: a runtime object (fibers, scheduler, host driver) and a precompiled emulation header are built once per
 * toolchain + header content and cached; each source is then one g++ invocation that compiles and links.
 * Every failure surfaces as a {@link KilnError}: code `runtime` (an {@link EmuError} with the emulator's error kind
 * and the kernel name as the location's node), or `unsupported` where g++ / x86-64 Linux is missing.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KilnError, type KilnErrorCode } from '../../../ir/errors.js';
import { ARG_KIND_NAMES, decodeResult, encodePlan, type EmuPlan, type EmuResult } from './plan.js';

/** Flags every emulator translation unit is compiled with (part of every cache key). */
export const EMU_BASE_FLAGS: readonly string[] = ['-O2', '-std=c++17', '-fno-strict-aliasing', '-pthread'];

export interface CompileEmuOptions {
  /** Label used in errors and as the location of compile errors whose function is unknown (default 'cuda-emu'). */
  name?: string;
  /** Cache directory (default `<repo>/.kiln-cache/cuda-emu`, or `$KILN_CACHE_DIR/cuda-emu`). */
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
}

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
  constructor(kind: string, message: string, kernel: string | undefined, stderr = '', code: KilnErrorCode = 'runtime') {
    super(code, `cuda-emu ${kind}: ${message}`, kernel === undefined ? {} : { node: kernel });
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
  ms: number;
}

const STDERR_CAP = 1 << 20;

function runProcess(
  cmd: string,
  args: readonly string[],
  opts: { input?: Uint8Array; timeoutMs?: number; env?: NodeJS.ProcessEnv },
): Promise<ProcResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let settled = false;
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    let timedOut = false;
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, opts.timeoutMs);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      err += d;
      if (err.length > 2 * STDERR_CAP) err = err.slice(-STDERR_CAP);
    });
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      if (!settled) {
        settled = true;
        reject(e);
      }
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (settled) return;
      settled = true;
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: err, timedOut, ms: performance.now() - t0 });
    });
    child.stdin.on('error', () => {
      /* EPIPE when the child exits before reading its whole input; its exit status tells what happened */
    });
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
  return once(obj, async () => {
    if (existsSync(obj)) return obj;
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
  return once(dir, async (): Promise<string | undefined> => {
    if (existsSync(`${header}.gch`)) return header;
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

class Module implements EmuModule {
  private kernelList: Promise<EmuKernelSignature[]> | undefined;
  constructor(
    readonly executable: string,
    readonly key: string,
    readonly name: string,
    readonly cached: boolean,
    readonly compileMs: number,
  ) {}

  kernels(): Promise<EmuKernelSignature[]> {
    this.kernelList ??= runProcess(this.executable, ['--list'], { timeoutMs: 30_000 }).then((r) => {
      if (r.code !== 0) throw new EmuError('crash', `'${this.executable} --list' failed: ${r.stderr}`, this.name);
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
    return this.kernelList;
  }

  async run(plan: EmuPlan, opts?: EmuRunOptions): Promise<Map<number, Uint8Array>> {
    return (await this.runDetailed(plan, opts)).outputs;
  }

  async runDetailed(plan: EmuPlan, opts: EmuRunOptions = {}): Promise<EmuResult> {
    const input = encodePlan(plan, opts.order);
    const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
    if (opts.threads !== undefined) env.KILN_EMU_THREADS = String(opts.threads);
    if (opts.stackBytes !== undefined) env.KILN_EMU_STACK = String(opts.stackBytes);
    const timeoutMs = opts.timeoutMs ?? 60_000;
    let r: ProcResult;
    try {
      r = await runProcess(this.executable, [], { input, timeoutMs, env });
    } catch (e) {
      throw new EmuError('spawn', `cannot start ${this.executable}: ${(e as Error).message}`, this.name);
    }
    const m = ERROR_LINE.exec(r.stderr);
    if (m) {
      const [, kind, message] = m;
      // an assert() prints its message just before aborting
      const before = r.stderr.slice(0, m.index).trim().split('\n').pop();
      const extra = kind === 'abort' && before ? ` — ${before}` : '';
      throw new EmuError(kind!, message! + extra, kernelOf(message!, plan), r.stderr);
    }
    const tail = r.stderr.trim().split('\n').slice(-10).join('\n');
    const kernel = kernelOf('', plan) ?? this.name;
    if (r.timedOut)
      throw new EmuError(
        'timeout',
        `the emulator did not finish within ${timeoutMs} ms (a spin-wait on another thread or block never ends on ` +
          `fibers)${tail ? `; stderr:\n${tail}` : ''}`,
        kernel,
        r.stderr,
      );
    if (r.signal)
      throw new EmuError(
        'crash',
        `the emulator was killed by ${r.signal}${tail ? `; stderr:\n${tail}` : ''}`,
        kernel,
        r.stderr,
      );
    if (r.code !== 0)
      throw new EmuError(
        'crash',
        `the emulator exited with status ${r.code}${tail ? `; stderr:\n${tail}` : ''}`,
        kernel,
        r.stderr,
      );
    return { ...decodeResult(r.stdout), log: r.stderr };
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
  const cacheDir =
    opts.cacheDir ??
    (process.env.KILN_CACHE_DIR
      ? path.join(process.env.KILN_CACHE_DIR, 'cuda-emu')
      : path.join(repoRoot(), '.kiln-cache', 'cuda-emu'));
  const flags = [...EMU_BASE_FLAGS, ...(opts.extraFlags ?? [])];
  const timeoutMs = opts.compileTimeoutMs ?? 300_000;
  const key = sha256('exe', tc.contentHash, ...flags, source);
  const dir = path.join(cacheDir, key);
  const exe = path.join(dir, 'kernel');
  if (existsSync(exe)) return new Module(exe, key, name, true, 0);
  return once(exe, async () => {
    if (existsSync(exe)) return new Module(exe, key, name, true, 0);
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
    return new Module(exe, key, name, false, performance.now() - t0);
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
