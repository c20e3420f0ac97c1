/**
 * The CUDA driver API and NVRTC through the FFI package koffi: library discovery, the bindings kiln uses, and every
 * result checked ({@link checkCu} / {@link checkNvrtc} → typed {@link CudaError}).
 *
 * Libraries: libcuda from `$KILN_LIBCUDA`, else `libcuda.so.1` on the loader path (the driver installs it there);
 * libnvrtc from `$KILN_LIBNVRTC`, else `libnvrtc.so*` under `$CUDA_HOME` / `/usr/local/cuda*` / the loader path.
 * A missing library is a KilnError with code `unsupported` saying what was tried.
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { KilnError, UnsupportedError } from '../../../ir/errors.js';
import { checkCu, checkNvrtc, cuResultName } from './errors.js';

/* koffi's API as used here (its own typings are loose). Loaded lazily: cuda-emu users never load the FFI. */
interface KoffiLib {
  func(proto: string): (...args: unknown[]) => unknown;
}
interface Koffi {
  load(p: string): KoffiLib;
  opaque(name: string): unknown;
  pointer(name: string, t: unknown): unknown;
}
let koffiMemo: Koffi | undefined;
function koffi(): Koffi {
  if (koffiMemo) return koffiMemo;
  try {
    koffiMemo = createRequire(import.meta.url)('koffi') as Koffi;
  } catch (e) {
    throw new UnsupportedError(`the CUDA backend needs the FFI package koffi: ${(e as Error).message}`, {
      limit: 'koffi',
    });
  }
  // named pointer types used in the prototypes below
  koffiMemo.pointer('CUcontext', koffiMemo.opaque('CUctx_st'));
  koffiMemo.pointer('CUmodule', koffiMemo.opaque('CUmod_st'));
  koffiMemo.pointer('CUfunction', koffiMemo.opaque('CUfunc_st'));
  koffiMemo.pointer('CUstream', koffiMemo.opaque('CUstream_st'));
  koffiMemo.pointer('CUevent', koffiMemo.opaque('CUevent_st'));
  koffiMemo.pointer('nvrtcProgram', koffiMemo.opaque('_nvrtcProgram'));
  return koffiMemo;
}

/** An opaque driver handle (koffi gives pointers as bigint). */
export type Handle = unknown;

/** Candidate file names / paths for a library, in the order they are tried. */
export function libraryCandidates(which: 'cuda' | 'nvrtc', env: NodeJS.ProcessEnv = process.env): string[] {
  if (which === 'cuda') {
    const own = env['KILN_LIBCUDA'];
    if (own) return [own];
    return [
      'libcuda.so.1',
      '/usr/lib/x86_64-linux-gnu/libcuda.so.1',
      '/usr/lib64/libcuda.so.1',
      '/usr/lib/wsl/lib/libcuda.so.1',
    ];
  }
  const own = env['KILN_LIBNVRTC'];
  if (own) return [own];
  const out: string[] = [];
  const dirs = new Set<string>();
  for (const root of [env['CUDA_HOME'], env['CUDA_PATH'], '/usr/local/cuda'])
    if (root) dirs.add(path.join(root, 'lib64'));
  try {
    for (const e of readdirSync('/usr/local').sort().reverse())
      if (e.startsWith('cuda-')) dirs.add(path.join('/usr/local', e, 'lib64'));
  } catch {
    /* no /usr/local */
  }
  dirs.add('/usr/lib/x86_64-linux-gnu');
  for (const d of dirs) {
    if (!existsSync(d)) continue;
    const libs = readdirSync(d)
      .filter((f) => /^libnvrtc\.so(\.\d+)*$/.test(f))
      .sort((a, b) => b.length - a.length || b.localeCompare(a));
    if (libs.includes('libnvrtc.so')) out.push(path.join(d, 'libnvrtc.so'));
    else out.push(...libs.map((f) => path.join(d, f)));
  }
  out.push('libnvrtc.so', 'libnvrtc.so.13', 'libnvrtc.so.12', 'libnvrtc.so.11.2');
  return [...new Set(out)];
}

/**
 * libnvrtc dlopens libnvrtc-builtins by soname at compile time; when libnvrtc came from a directory outside the loader
 * path (a Python wheel, $KILN_LIBNVRTC) that fails. Loading the sibling first makes the soname resolve to it.
 */
function preloadBuiltins(k: Koffi, dir: string): void {
  try {
    for (const f of readdirSync(dir).filter((x) => /^libnvrtc-builtins\.so[.\d]*$/.test(x)))
      try {
        k.load(path.join(dir, f));
      } catch {
        /* not loadable: NVRTC reports it if it needs it */
      }
  } catch {
    /* unreadable directory */
  }
}

function loadLibrary(which: 'cuda' | 'nvrtc', env?: NodeJS.ProcessEnv): { lib: KoffiLib; path: string } {
  const k = koffi();
  const tried: string[] = [];
  for (const p of libraryCandidates(which, env)) {
    try {
      const lib = k.load(p);
      if (which === 'nvrtc' && path.isAbsolute(p)) preloadBuiltins(k, path.dirname(p));
      return { lib, path: p };
    } catch (e) {
      tried.push(`${p} (${(e as Error).message.split('\n')[0]})`);
    }
  }
  const what =
    which === 'cuda'
      ? 'the CUDA driver library libcuda.so.1 was not found — this machine has no NVIDIA driver (set KILN_LIBCUDA to its path if it is elsewhere)'
      : 'NVRTC (libnvrtc.so) was not found — install the CUDA toolkit or set KILN_LIBNVRTC to its path';
  throw new UnsupportedError(`backend 'cuda': ${what}; tried: ${tried.join('; ')}`, {
    limit: which === 'cuda' ? 'libcuda' : 'libnvrtc',
  });
}

/* ------------------------------------------------------------------------------------------ driver API */

export const CU_DEVICE_ATTRIBUTE = {
  MAX_THREADS_PER_BLOCK: 1,
  MAX_GRID_DIM_X: 5,
  MAX_GRID_DIM_Y: 6,
  MAX_SHARED_MEMORY_PER_BLOCK: 8,
  WARP_SIZE: 10,
  MULTIPROCESSOR_COUNT: 16,
  COMPUTE_CAPABILITY_MAJOR: 75,
  COMPUTE_CAPABILITY_MINOR: 76,
} as const;

type Fn = (...args: unknown[]) => number;

/** The driver API calls kiln makes, each checked. */
export class CudaDriver {
  private readonly fn: Record<string, Fn> = {};
  constructor(
    private readonly lib: KoffiLib,
    readonly libraryPath: string,
  ) {
    const decl = (name: string, proto: string, ...alts: string[]) => {
      for (const sym of [name, ...alts]) {
        try {
          this.fn[name] = lib.func(proto.replace('%s', sym)) as Fn;
          return;
        } catch {
          /* try the next symbol name */
        }
      }
      throw new KilnError('unsupported', `libcuda (${libraryPath}) lacks ${name}: the driver is too old`, {
        limit: 'libcuda',
      });
    };
    decl('cuInit', 'int %s(unsigned int flags)');
    decl('cuDriverGetVersion', 'int %s(_Out_ int *version)');
    decl('cuGetErrorName', 'int %s(int error, _Out_ const char **name)');
    decl('cuGetErrorString', 'int %s(int error, _Out_ const char **text)');
    decl('cuDeviceGetCount', 'int %s(_Out_ int *count)');
    decl('cuDeviceGet', 'int %s(_Out_ int *device, int ordinal)');
    decl('cuDeviceGetName', 'int %s(_Out_ uint8_t *name, int len, int dev)');
    decl('cuDeviceGetAttribute', 'int %s(_Out_ int *value, int attrib, int dev)');
    decl('cuDevicePrimaryCtxRetain', 'int %s(_Out_ CUcontext *ctx, int dev)');
    decl('cuDevicePrimaryCtxRelease', 'int %s(int dev)', 'cuDevicePrimaryCtxRelease_v2');
    decl('cuCtxSetCurrent', 'int %s(CUcontext ctx)');
    decl('cuCtxSynchronize', 'int %s()');
    decl('cuModuleLoadData', 'int %s(_Out_ CUmodule *module, const void *image)');
    decl('cuModuleUnload', 'int %s(CUmodule module)');
    decl('cuModuleGetFunction', 'int %s(_Out_ CUfunction *fn, CUmodule module, const char *name)');
    decl('cuMemAlloc_v2', 'int %s(_Out_ uint64_t *dptr, size_t bytes)');
    decl('cuMemFree_v2', 'int %s(uint64_t dptr)');
    decl('cuMemcpyHtoD_v2', 'int %s(uint64_t dst, const void *src, size_t bytes)');
    decl('cuMemcpyDtoH_v2', 'int %s(_Out_ void *dst, uint64_t src, size_t bytes)');
    decl('cuMemsetD8_v2', 'int %s(uint64_t dst, uint8_t value, size_t count)');
    decl(
      'cuLaunchKernel',
      'int %s(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by, ' +
        'unsigned int bz, unsigned int sharedBytes, CUstream stream, void **params, void **extra)',
    );
    decl('cuEventCreate', 'int %s(_Out_ CUevent *event, unsigned int flags)');
    decl('cuEventRecord', 'int %s(CUevent event, CUstream stream)');
    decl('cuEventSynchronize', 'int %s(CUevent event)');
    decl('cuEventElapsedTime', 'int %s(_Out_ float *ms, CUevent start, CUevent end)', 'cuEventElapsedTime_v2');
    decl('cuEventDestroy', 'int %s(CUevent event)', 'cuEventDestroy_v2');
  }

  /** Loads libcuda (typed `unsupported` error when absent). */
  static load(env?: NodeJS.ProcessEnv): CudaDriver {
    const { lib, path: p } = loadLibrary('cuda', env);
    return new CudaDriver(lib, p);
  }

  /** The driver's own name and description of a CUresult (falls back to kiln's table). */
  describe(r: number): string {
    const name: (string | null)[] = [null];
    const text: (string | null)[] = [null];
    try {
      this.fn['cuGetErrorName']!(r, name);
      this.fn['cuGetErrorString']!(r, text);
    } catch {
      /* keep the table's name */
    }
    return text[0] ?? name[0] ?? cuResultName(r);
  }

  private call(name: string, loc: { node?: string } | undefined, ...args: unknown[]): void {
    checkCu(this.fn[name]!(...args), name, loc ?? {}, (r) => this.describe(r));
  }

  init(): void {
    this.call('cuInit', undefined, 0);
  }
  driverVersion(): number {
    const v = [0];
    this.call('cuDriverGetVersion', undefined, v);
    return v[0]!;
  }
  deviceCount(): number {
    const n = [0];
    this.call('cuDeviceGetCount', undefined, n);
    return n[0]!;
  }
  device(ordinal: number): number {
    const d = [0];
    this.call('cuDeviceGet', undefined, d, ordinal);
    return d[0]!;
  }
  deviceName(dev: number): string {
    const buf = new Uint8Array(256);
    this.call('cuDeviceGetName', undefined, buf, buf.length, dev);
    const end = buf.indexOf(0);
    return new TextDecoder().decode(buf.subarray(0, end < 0 ? buf.length : end));
  }
  attribute(dev: number, attrib: number): number {
    const v = [0];
    this.call('cuDeviceGetAttribute', undefined, v, attrib, dev);
    return v[0]!;
  }
  primaryContext(dev: number): Handle {
    const c: Handle[] = [null];
    this.call('cuDevicePrimaryCtxRetain', undefined, c, dev);
    return c[0];
  }
  releasePrimaryContext(dev: number): void {
    this.call('cuDevicePrimaryCtxRelease', undefined, dev);
  }
  setCurrent(ctx: Handle): void {
    this.call('cuCtxSetCurrent', undefined, ctx);
  }
  synchronize(what?: string): void {
    this.call('cuCtxSynchronize', what === undefined ? undefined : { node: what });
  }
  loadModule(image: Uint8Array, label: string): Handle {
    const m: Handle[] = [null];
    this.call('cuModuleLoadData', { node: label }, m, image);
    return m[0];
  }
  unloadModule(m: Handle): void {
    this.call('cuModuleUnload', undefined, m);
  }
  getFunction(m: Handle, name: string): Handle {
    const f: Handle[] = [null];
    this.call('cuModuleGetFunction', { node: name }, f, m, name);
    return f[0];
  }
  memAlloc(bytes: number, label: string): bigint {
    const p: (number | bigint)[] = [0];
    this.call('cuMemAlloc_v2', { node: label }, p, bytes);
    return BigInt(p[0]!);
  }
  memFree(ptr: bigint): void {
    this.call('cuMemFree_v2', undefined, ptr);
  }
  memcpyHtoD(dst: bigint, src: Uint8Array): void {
    this.call('cuMemcpyHtoD_v2', undefined, dst, src, src.byteLength);
  }
  memcpyDtoH(dst: Uint8Array, src: bigint): void {
    this.call('cuMemcpyDtoH_v2', undefined, dst, src, dst.byteLength);
  }
  memsetD8(dst: bigint, value: number, count: number): void {
    this.call('cuMemsetD8_v2', undefined, dst, value, count);
  }
  launch(
    f: Handle,
    grid: readonly [number, number, number],
    block: readonly [number, number, number],
    params: readonly Uint8Array[],
    kernel: string,
  ): void {
    this.call('cuLaunchKernel', { node: kernel }, f, ...grid, ...block, 0, null, params, null);
  }
  eventCreate(): Handle {
    const e: Handle[] = [null];
    this.call('cuEventCreate', undefined, e, 0);
    return e[0];
  }
  eventRecord(e: Handle): void {
    this.call('cuEventRecord', undefined, e, null);
  }
  eventSynchronize(e: Handle): void {
    this.call('cuEventSynchronize', undefined, e);
  }
  eventElapsedMs(start: Handle, end: Handle): number {
    const ms = [0];
    this.call('cuEventElapsedTime', undefined, ms, start, end);
    return ms[0]!;
  }
  eventDestroy(e: Handle): void {
    this.call('cuEventDestroy', undefined, e);
  }
}

/* ------------------------------------------------------------------------------------------ NVRTC */

/** A compiled program: a cubin for the device's own architecture, or PTX (JIT by the driver) as a fallback. */
export interface NvrtcOutput {
  kind: 'cubin' | 'ptx';
  image: Uint8Array;
  log: string;
  options: string[];
}

/** NVRTC options for a device of compute capability `major.minor`. */
export function nvrtcOptions(
  major: number,
  minor: number,
  opts: { ptx?: boolean; includeDirs?: readonly string[] } = {},
): string[] {
  const arch = `${opts.ptx ? 'compute' : 'sm'}_${major}${minor}`;
  // 177: "declared but never referenced" — index values a kernel computes but does not use (compiled away)
  const out = [`--gpu-architecture=${arch}`, '--std=c++17', '--diag-suppress=177'];
  for (const d of opts.includeDirs ?? defaultIncludeDirs()) out.push(`-I${d}`);
  return out;
}

/** Where cuda_fp16.h lives: `$CUDA_HOME/include`, else /usr/local/cuda/include (NVRTC also has it built in). */
export function defaultIncludeDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const dirs = [env['CUDA_HOME'], env['CUDA_PATH'], '/usr/local/cuda']
    .filter((d): d is string => !!d)
    .map((d) => path.join(d, 'include'));
  const found = dirs.filter((d) => existsSync(path.join(d, 'cuda_fp16.h')));
  return found.length ? [found[0]!] : ['/usr/local/cuda/include'];
}

export class Nvrtc {
  private readonly fn: Record<string, Fn> = {};
  constructor(
    lib: KoffiLib,
    readonly libraryPath: string,
  ) {
    const decl = (name: string, proto: string) => {
      try {
        this.fn[name] = lib.func(proto.replace('%s', name)) as Fn;
      } catch {
        throw new KilnError('unsupported', `libnvrtc (${libraryPath}) lacks ${name}`, { limit: 'libnvrtc' });
      }
    };
    decl('nvrtcVersion', 'int %s(_Out_ int *major, _Out_ int *minor)');
    decl(
      'nvrtcCreateProgram',
      'int %s(_Out_ nvrtcProgram *prog, const char *src, const char *name, int numHeaders, const char **headers, ' +
        'const char **includeNames)',
    );
    decl('nvrtcCompileProgram', 'int %s(nvrtcProgram prog, int numOptions, const char **options)');
    decl('nvrtcGetProgramLogSize', 'int %s(nvrtcProgram prog, _Out_ size_t *size)');
    decl('nvrtcGetProgramLog', 'int %s(nvrtcProgram prog, _Out_ uint8_t *log)');
    decl('nvrtcGetCUBINSize', 'int %s(nvrtcProgram prog, _Out_ size_t *size)');
    decl('nvrtcGetCUBIN', 'int %s(nvrtcProgram prog, _Out_ uint8_t *cubin)');
    decl('nvrtcGetPTXSize', 'int %s(nvrtcProgram prog, _Out_ size_t *size)');
    decl('nvrtcGetPTX', 'int %s(nvrtcProgram prog, _Out_ uint8_t *ptx)');
    decl('nvrtcDestroyProgram', 'int %s(_Inout_ nvrtcProgram *prog)');
  }

  static load(env?: NodeJS.ProcessEnv): Nvrtc {
    const { lib, path: p } = loadLibrary('nvrtc', env);
    return new Nvrtc(lib, p);
  }

  version(): [number, number] {
    const a = [0];
    const b = [0];
    checkNvrtc(this.fn['nvrtcVersion']!(a, b), 'nvrtcVersion');
    return [a[0]!, b[0]!];
  }

  /**
   * Compiles `source` (with in-memory `headers`: include name → text). On failure throws a CudaError carrying the
   * compile log.
   */
  compile(
    source: string,
    name: string,
    options: readonly string[],
    headers: Readonly<Record<string, string>> = {},
  ): NvrtcOutput {
    const prog: Handle[] = [null];
    const names = Object.keys(headers);
    checkNvrtc(
      this.fn['nvrtcCreateProgram']!(
        prog,
        source,
        name,
        names.length,
        names.map((n) => headers[n]!),
        names,
      ),
      'nvrtcCreateProgram',
      { node: name },
    );
    try {
      const r = this.fn['nvrtcCompileProgram']!(prog[0], options.length, [...options]);
      const log = this.log(prog[0]);
      checkNvrtc(r, 'nvrtcCompileProgram', { node: name }, log);
      const ptx = options.some((o) => o.startsWith('--gpu-architecture=compute_'));
      const size: (number | bigint)[] = [0];
      checkNvrtc(this.fn[ptx ? 'nvrtcGetPTXSize' : 'nvrtcGetCUBINSize']!(prog[0], size), 'nvrtcGetCUBINSize');
      const image = new Uint8Array(Number(size[0]));
      checkNvrtc(this.fn[ptx ? 'nvrtcGetPTX' : 'nvrtcGetCUBIN']!(prog[0], image), 'nvrtcGetCUBIN');
      return { kind: ptx ? 'ptx' : 'cubin', image, log, options: [...options] };
    } finally {
      this.fn['nvrtcDestroyProgram']!(prog);
    }
  }

  private log(prog: Handle): string {
    const size: (number | bigint)[] = [0];
    if (this.fn['nvrtcGetProgramLogSize']!(prog, size) !== 0) return '';
    const buf = new Uint8Array(Math.max(1, Number(size[0])));
    if (this.fn['nvrtcGetProgramLog']!(prog, buf) !== 0) return '';
    const end = buf.indexOf(0);
    return new TextDecoder().decode(buf.subarray(0, end < 0 ? buf.length : end));
  }
}
