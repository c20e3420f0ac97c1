/**
 * The CUDA backend (NVRTC + driver API through koffi).
 *
 * - Without libcuda (machines without an NVIDIA driver): `compile(graph, { backend: 'cuda' })` fails with a typed
 *   KilnError, code `unsupported`, that names the missing library.
 * - Up to the FFI boundary, on any x86-64 Linux machine with gcc: a mock libcuda / libnvrtc (C, built here) stands in
 *   for the driver, so every binding is loaded and called with real marshalling — out-parameters, the kernel-parameter
 *   array of cuLaunchKernel, strings, byte buffers — and failing CUresults / nvrtcResults come back as typed errors.
 * - The real NVRTC (a library or the nvidia-cuda-nvrtc wheel, no GPU needed) compiles every generated kernel.
 * - With a real GPU: test/gpu/cuda.test.ts (`npm run test:gpu`, outside the default run, which CI uses).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import { KilnError } from '../../ir/errors.js';
import '../../ir/ops/index.js';
import { makeTensor } from '../../ir/tensor.js';
import type { Kernel } from '../../codegen/kir.js';
import { CudaDriver, Nvrtc, libraryCandidates, nvrtcOptions } from '../../src/runtime/cuda/driver.js';
import {
  CU_RESULT_NAMES,
  CudaError,
  checkCu,
  checkNvrtc,
  codeOfCuResult,
  cuResultName,
} from '../../src/runtime/cuda/errors.js';
import { launchParams, type CudaBackend } from '../../src/runtime/cuda/backend.js';
import { cudaTranslationUnit, recordKernels } from '../../src/runtime/cuda/source.js';
import { findTests, runConformance } from '../../src/conformance.js';
import { compile } from '../../src/session.js';
import { CONFORMANCE, REPO_ROOT } from '../helpers/paths.js';
import { requireTool, sharedProbe } from '../helpers/tools.js';
import { randomGraph } from '../helpers/random-graph.js';

function libcudaPresent(): boolean {
  try {
    CudaDriver.load();
    return true;
  } catch {
    return false;
  }
}
const hasCuda = libcudaPresent();

function hasKoffi(): boolean {
  try {
    createRequire(import.meta.url).resolve('koffi');
    return true;
  } catch {
    return false;
  }
}

function hasGcc(): boolean {
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
    return process.platform === 'linux';
  } catch {
    return false;
  }
}

function tinyGraph() {
  const b = new GraphBuilder('t');
  const x = b.input('x', 'f32', [4, 8]);
  b.output(b.op('relu', [b.op('add', [x, b.input('y', 'f32', [8])])]), 'z');
  const feeds = {
    x: makeTensor(
      'f32',
      [4, 8],
      Array.from({ length: 32 }, () => Math.random() * 4 - 2),
    ),
    y: makeTensor(
      'f32',
      [8],
      Array.from({ length: 8 }, () => Math.random() * 4 - 2),
    ),
  };
  return { graph: b.build(), feeds };
}

describe('CUDA runtime pieces that need no GPU', () => {
  it('names every CUresult and maps it to a KilnError code', () => {
    expect(Object.keys(CU_RESULT_NAMES).length).toBeGreaterThan(90);
    expect(cuResultName(2)).toBe('CUDA_ERROR_OUT_OF_MEMORY');
    expect(cuResultName(100)).toBe('CUDA_ERROR_NO_DEVICE');
    expect(cuResultName(99999)).toBe('CUDA_ERROR_UNKNOWN_99999');
    expect(codeOfCuResult('CUDA_ERROR_OUT_OF_MEMORY')).toBe('limit');
    expect(codeOfCuResult('CUDA_ERROR_NO_DEVICE')).toBe('unsupported');
    expect(codeOfCuResult('CUDA_ERROR_LAUNCH_FAILED')).toBe('device');
    for (const [n, name] of Object.entries(CU_RESULT_NAMES)) {
      if (Number(n) === 0) continue;
      let err: unknown;
      try {
        checkCu(Number(n), 'cuTest', { node: 'k' });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CudaError);
      expect((err as CudaError).resultName).toBe(name);
      expect((err as CudaError).message).toContain(name);
      expect((err as CudaError).location.node).toBe('k');
    }
    expect(() => checkCu(0, 'cuTest')).not.toThrow();
    expect(() => checkNvrtc(6, 'nvrtcCompileProgram', {}, 'kernel.cu(3): error: bad')).toThrow(/bad/);
  });

  it('builds NVRTC options from the compute capability', () => {
    const o = nvrtcOptions(9, 0, { includeDirs: ['/usr/local/cuda/include'] });
    expect(o).toContain('--gpu-architecture=sm_90');
    expect(o).toContain('-I/usr/local/cuda/include');
    expect(nvrtcOptions(8, 6, { ptx: true, includeDirs: [] })).toContain('--gpu-architecture=compute_86');
  });

  it('lays out kernel parameters as cuLaunchKernel wants them: buffers, then 4-byte uniforms', () => {
    const k: Kernel = {
      name: 'k',
      buffers: [
        { name: 'b0', storage: 'f32', access: 'read' },
        { name: 'b1', storage: 'f32', access: 'read_write' },
      ],
      uniforms: [
        { name: 'n0', type: 'i32' },
        { name: 's1', type: 'f32' },
      ],
      shared: [],
      workgroup: [256, 1, 1],
      body: [],
    };
    const u = new ArrayBuffer(16);
    new DataView(u).setInt32(0, -7, true);
    new DataView(u).setFloat32(4, 0.5, true);
    const p = launchParams(k, [0x7f0000001000n, 0x7f0000002000n], u);
    expect(p.map((b) => b.length)).toEqual([8, 8, 4, 4]);
    expect(new DataView(p[1]!.buffer).getBigUint64(0, true)).toBe(0x7f0000002000n);
    expect(new DataView(p[2]!.buffer).getInt32(0, true)).toBe(-7);
    expect(new DataView(p[3]!.buffer).getFloat32(0, true)).toBe(0.5);
    expect(() => launchParams(k, [1n], u)).toThrow(KilnError);
  });

  it('finds libraries where the environment says', () => {
    expect(libraryCandidates('cuda', { KILN_LIBCUDA: '/x/libcuda.so.1' })).toEqual(['/x/libcuda.so.1']);
    expect(libraryCandidates('cuda', {})[0]).toBe('libcuda.so.1');
    expect(libraryCandidates('nvrtc', {}).some((p) => p.includes('libnvrtc'))).toBe(true);
  });
});

describe.skipIf(hasCuda)('without an NVIDIA driver', () => {
  it("compile(graph, { backend: 'cuda' }) fails with a typed 'unsupported' error naming libcuda", async () => {
    const { graph } = tinyGraph();
    let err: unknown;
    try {
      await compile(graph, { backend: 'cuda' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KilnError);
    expect((err as KilnError).code).toBe('unsupported');
    expect((err as KilnError).message).toMatch(/libcuda|koffi/);
  });
});

/* ------------------------------------------------------------------ a mock driver: the FFI boundary without a GPU */

const MOCK_C = String.raw`
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
typedef int CUresult;
static int ctx_dummy, fn_dummy;
static char *module_image = 0;
static int fail_next = 0;                   /* CUresult the next call returns, then 0 again */
static uint64_t last_params[16];
static unsigned last_dims[6], last_nparams, expect_ptrs, expect_scalars;
void mock_fail_next(int r) { fail_next = r; }
/* how the next launches' parameters are read: nptr 8-byte pointers, then nscalar 4-byte scalars */
void mock_expect_params(unsigned nptr, unsigned nscalar) { expect_ptrs = nptr; expect_scalars = nscalar; }
unsigned mock_last_launch(unsigned *dims, uint64_t *params) {
  memcpy(dims, last_dims, sizeof last_dims); memcpy(params, last_params, sizeof last_params); return last_nparams;
}
#define FAIL_CHECK do { if (fail_next) { int r = fail_next; fail_next = 0; return r; } } while (0)
CUresult cuInit(unsigned f) { FAIL_CHECK; return f == 0 ? 0 : 1; }
CUresult cuDriverGetVersion(int *v) { *v = 13000; return 0; }
CUresult cuGetErrorName(int e, const char **s) { *s = e == 2 ? "CUDA_ERROR_OUT_OF_MEMORY" : "CUDA_ERROR_MOCK"; return 0; }
CUresult cuGetErrorString(int e, const char **s) { *s = e == 2 ? "out of memory (mock)" : "mock error"; return 0; }
CUresult cuDeviceGetCount(int *n) { *n = 1; return 0; }
CUresult cuDeviceGet(int *d, int o) { *d = o; return o == 0 ? 0 : 101; }
CUresult cuDeviceGetName(char *n, int len, int d) { strncpy(n, "Kiln Mock GPU", len); return 0; }
CUresult cuDeviceGetAttribute(int *v, int a, int d) {
  switch (a) { case 1: *v = 1024; break; case 5: *v = 2147483647; break; case 6: *v = 65535; break;
    case 8: *v = 49152; break; case 10: *v = 32; break; case 16: *v = 132; break;
    case 75: *v = 9; break; case 76: *v = 0; break; default: return 1; }
  return 0;
}
CUresult cuDevicePrimaryCtxRetain(void **c, int d) { *c = &ctx_dummy; return 0; }
CUresult cuDevicePrimaryCtxRelease_v2(int d) { return 0; }
CUresult cuCtxSetCurrent(void *c) { return c == &ctx_dummy ? 0 : 201; }
CUresult cuCtxSynchronize(void) { FAIL_CHECK; return 0; }
CUresult cuModuleLoadData(void **m, const void *image) {
  free(module_image); module_image = strdup((const char *)image); *m = module_image; return 0;
}
CUresult cuModuleUnload(void *m) { return 0; }
CUresult cuModuleGetFunction(void **f, void *m, const char *name) {
  if (m != module_image || !strstr(module_image, name)) return 500; /* CUDA_ERROR_NOT_FOUND */
  *f = &fn_dummy; return 0;
}
CUresult cuMemAlloc_v2(uint64_t *p, size_t n) { FAIL_CHECK; *p = (uint64_t)(uintptr_t)malloc(n); return 0; }
CUresult cuMemFree_v2(uint64_t p) { free((void *)(uintptr_t)p); return 0; }
CUresult cuMemcpyHtoD_v2(uint64_t d, const void *s, size_t n) { memcpy((void *)(uintptr_t)d, s, n); return 0; }
CUresult cuMemcpyDtoH_v2(void *d, uint64_t s, size_t n) { memcpy(d, (void *)(uintptr_t)s, n); return 0; }
CUresult cuMemsetD8_v2(uint64_t d, unsigned char v, size_t n) { memset((void *)(uintptr_t)d, v, n); return 0; }
CUresult cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shmem, void *stream, void **params, void **extra) {
  FAIL_CHECK;
  if (f != &fn_dummy || extra) return 1;
  unsigned d[6] = {gx, gy, gz, bx, by, bz}; memcpy(last_dims, d, sizeof d);
  last_nparams = 0;
  for (unsigned i = 0; i < expect_ptrs + expect_scalars && i < 16; i++, last_nparams++)
    last_params[i] = i < expect_ptrs ? *(uint64_t *)params[i] : *(uint32_t *)params[i];
  return 0;
}
CUresult cuEventCreate(void **e, unsigned f) { *e = malloc(8); return 0; }
CUresult cuEventRecord(void *e, void *s) { return 0; }
CUresult cuEventSynchronize(void *e) { return 0; }
CUresult cuEventElapsedTime(float *ms, void *a, void *b) { *ms = 1.25f; return 0; }
CUresult cuEventDestroy_v2(void *e) { free(e); return 0; }
`;

const MOCK_NVRTC_C = String.raw`
#include <stdlib.h>
#include <string.h>
typedef struct { char *src; char *log; int has_header; } Prog;
int nvrtcVersion(int *a, int *b) { *a = 13; *b = 0; return 0; }
int nvrtcCreateProgram(Prog **p, const char *src, const char *name, int nh, const char **h, const char **names) {
  Prog *q = calloc(1, sizeof *q); q->src = strdup(src); q->log = strdup("");
  for (int i = 0; i < nh; i++) if (!strcmp(names[i], "kiln_cuda_shared.h") && strstr(h[i], "KILN_SHARED")) q->has_header = 1;
  *p = q; return 0;
}
int nvrtcCompileProgram(Prog *p, int n, const char **opts) {
  int arch = 0;
  for (int i = 0; i < n; i++) if (!strncmp(opts[i], "--gpu-architecture=sm_", 22)) arch = 1;
  free(p->log);
  if (!arch) { p->log = strdup("mock: no --gpu-architecture=sm_XY"); return 5; }
  if (!p->has_header || strstr(p->src, "#error")) { p->log = strdup("kernel.cu(1): error: mock compile error"); return 6; }
  p->log = strdup(""); return 0;
}
int nvrtcGetProgramLogSize(Prog *p, size_t *n) { *n = strlen(p->log) + 1; return 0; }
int nvrtcGetProgramLog(Prog *p, char *out) { strcpy(out, p->log); return 0; }
int nvrtcGetCUBINSize(Prog *p, size_t *n) { *n = strlen(p->src) + 1; return 0; }
int nvrtcGetCUBIN(Prog *p, char *out) { strcpy(out, p->src); return 0; }
int nvrtcGetPTXSize(Prog *p, size_t *n) { return nvrtcGetCUBINSize(p, n); }
int nvrtcGetPTX(Prog *p, char *out) { return nvrtcGetCUBIN(p, out); }
int nvrtcDestroyProgram(Prog **p) { free((*p)->src); free((*p)->log); free(*p); *p = 0; return 0; }
`;

// The mock stands in for a missing driver; with a real one the GPU tests (test/gpu) cover the same path.
const noMockTools = hasCuda
  ? true
  : (await requireTool('gcc (mock libcuda)', () => (hasGcc() ? undefined : 'apt-get install gcc'))) ||
    (await requireTool('koffi', () => (hasKoffi() ? undefined : 'npm ci (optional dependency koffi)')));

describe.skipIf(noMockTools)('the CUDA backend up to the FFI boundary (mock libcuda / libnvrtc)', () => {
  const dir = mkdtempSync(join(os.tmpdir(), 'kiln-mockcuda-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const build = (name: string, src: string) => {
    writeFileSync(join(dir, `${name}.c`), src);
    execFileSync('gcc', ['-shared', '-fPIC', '-O1', '-o', join(dir, `${name}.so`), join(dir, `${name}.c`)]);
    return join(dir, `${name}.so`);
  };

  it('binds every call, marshals launches and buffers, and types failures', async () => {
    const libcuda = build('libcuda_mock', MOCK_C);
    const libnvrtc = build('libnvrtc_mock', MOCK_NVRTC_C);
    process.env['KILN_LIBCUDA'] = libcuda;
    process.env['KILN_LIBNVRTC'] = libnvrtc;
    process.env['KILN_CACHE_DIR'] = dir;
    try {
      const koffi = (await import('koffi')).default;
      const mock = koffi.load(libcuda);
      const failNext = mock.func('void mock_fail_next(int r)');
      const expectParams = mock.func('void mock_expect_params(unsigned int nptr, unsigned int nscalar)');
      const lastLaunch = mock.func('unsigned int mock_last_launch(_Out_ unsigned int *dims, _Out_ uint64_t *params)');

      // NVRTC directly: options, in-memory header, log on failure
      const nv = Nvrtc.load();
      expect(nv.version()).toEqual([13, 0]);
      const out = nv.compile('extern "C" __global__ void k() {}', 'k.cu', nvrtcOptions(9, 0, { includeDirs: [] }), {
        'kiln_cuda_shared.h': '#define KILN_SHARED(t, n, c)',
      });
      expect(out.kind).toBe('cubin');
      let err: unknown;
      try {
        nv.compile('#error no', 'bad.cu', nvrtcOptions(9, 0, { includeDirs: [] }), {
          'kiln_cuda_shared.h': 'KILN_SHARED',
        });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CudaError);
      expect((err as CudaError).resultName).toBe('NVRTC_ERROR_COMPILATION');
      expect((err as CudaError).log).toMatch(/mock compile error/);

      // a whole graph through compile(): device opened, kernels compiled by "NVRTC", loaded, launched, read back
      const { graph, feeds } = tinyGraph();
      const { openCudaDevice } = await import('../../src/runtime/cuda/backend.js');
      const dev = await openCudaDevice();
      expect(dev.name).toBe('Kiln Mock GPU');
      expect(dev.cc).toEqual([9, 0]);
      const session = await compile(graph, { backend: 'cuda' });
      const be = (session as unknown as { executor: { backend: CudaBackend } }).executor.backend;
      expectParams(0, 0);
      await session.run(feeds); // the mock launches nothing: outputs are whatever the buffers held
      const dims = new Uint32Array(6);
      const params = new BigUint64Array(16);
      const n = lastLaunch(dims, params) as number;
      expect(n).toBe(0);
      expect(dims[3]! * dims[4]! * dims[5]!).toBeGreaterThan(0);
      expect(be.source([])).toContain('#include "kiln_cuda_shared.h"');

      // buffers: write / read round trip, poison
      const buf = be.alloc(64, 'b');
      be.write(
        buf,
        new Uint8Array(64).map((_, i) => i),
      );
      expect([...(await be.read(buf, 8))]).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      be.poison(buf, 16);
      expect([...(await be.read(buf, 17))].slice(15)).toEqual([255, 4 * 4]);
      be.release(buf);

      // a launch with known pointers and uniforms arrives in the driver as such
      const kernels = new Map<string, Kernel>();
      const rec = await import('../../src/runtime/cuda/source.js');
      const recorded = await rec.recordKernels(async () => {
        const s2 = await compile(graph, { backend: 'cuda' });
        await s2.run(feeds);
        s2.dispose();
      });
      for (const r of recorded.runs) for (const kk of r) kernels.set(kk.name, kk);
      const kern = [...kernels.values()][0]!;
      const a = be.alloc(256, 'a');
      const bufs = kern.buffers.map(() => a);
      const u = new ArrayBuffer(Math.max(16, kern.uniforms.length * 4));
      kern.uniforms.forEach((_x, i) => new DataView(u).setInt32(i * 4, 1000 + i, true));
      await be.prepare([kern]);
      expectParams(kern.buffers.length, kern.uniforms.length);
      await be.run([{ kernel: kern, buffers: bufs, uniforms: u, grid: [3, 2, 1] }]);
      const np = lastLaunch(dims, params) as number;
      expect(np).toBe(kern.buffers.length + kern.uniforms.length);
      expect([...dims]).toEqual([3, 2, 1, ...kern.workgroup]);
      for (let i = 0; i < kern.buffers.length; i++) expect(params[i]).toBe(a.ptr);
      for (let i = 0; i < kern.uniforms.length; i++) expect(params[kern.buffers.length + i]).toBe(BigInt(1000 + i));
      expect(cudaTranslationUnit([kern], 'nvrtc')).toContain(kern.name);

      // failing results are typed errors naming the call and the result
      failNext(2);
      let oom: unknown;
      try {
        be.alloc(1 << 20, 'big');
      } catch (e) {
        oom = e;
      }
      expect(oom).toBeInstanceOf(CudaError);
      expect((oom as CudaError).call).toBe('cuMemAlloc_v2');
      expect((oom as CudaError).resultName).toBe('CUDA_ERROR_OUT_OF_MEMORY');
      expect((oom as CudaError).code).toBe('limit');
      expect((oom as CudaError).message).toMatch(/out of memory \(mock\)/);
      failNext(719); // CUDA_ERROR_LAUNCH_FAILED
      await expect(be.run([{ kernel: kern, buffers: bufs, uniforms: u, grid: [1, 1, 1] }])).rejects.toMatchObject({
        call: 'cuLaunchKernel',
        resultName: 'CUDA_ERROR_LAUNCH_FAILED',
        code: 'device',
      });
      session.dispose();
    } finally {
      delete process.env['KILN_LIBCUDA'];
      delete process.env['KILN_LIBNVRTC'];
      delete process.env['KILN_CACHE_DIR'];
    }
  }, 120_000);
});

/* ------------------------------------------------------------------ the real NVRTC (needs no GPU) */

/**
 * A real libnvrtc: on the loader path / $KILN_LIBNVRTC, else extracted (no download) from an nvidia-cuda-nvrtc wheel
 * found on disk ($KILN_NVRTC_WHEEL, or the local package mirror of these machines).
 */
function realNvrtc(tmp: string): string | undefined {
  try {
    return Nvrtc.load().libraryPath;
  } catch {
    /* not installed as a library */
  }
  const wheelDir = '/opt/pypi-more/files';
  let wheel = process.env['KILN_NVRTC_WHEEL'];
  if (!wheel && existsSync(wheelDir))
    wheel = readdirSync(wheelDir)
      .filter((f) => /^nvidia_cuda_nvrtc-13.*x86_64.*\.whl$/.test(f))
      .map((f) => join(wheelDir, f))[0];
  if (!wheel) return undefined;
  try {
    execFileSync('python3', [
      '-c',
      'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); ' +
        "z.extractall(sys.argv[2], [n for n in z.namelist() if '/lib/libnvrtc' in n and '.alt.' not in n])",
      wheel,
      tmp,
    ]);
    const lib = execFileSync('find', [tmp, '-name', 'libnvrtc.so.*'], { encoding: 'utf8' }).trim().split('\n')[0];
    return lib || undefined;
  } catch {
    return undefined;
  }
}

const nvrtcTmp = mkdtempSync(join(os.tmpdir(), 'kiln-nvrtc-'));
afterAll(() => rmSync(nvrtcTmp, { recursive: true, force: true }));
const nvrtcPath = hasKoffi() ? realNvrtc(nvrtcTmp) : undefined;
const noNvrtc = await requireTool('libnvrtc', () =>
  nvrtcPath ? undefined : 'no libnvrtc (CUDA toolkit), no nvidia-cuda-nvrtc wheel (KILN_NVRTC_WHEEL), or no koffi',
);
const noShared = await requireTool('the ../shared conformance data', sharedProbe);

describe.skipIf(noNvrtc || noShared)('the real NVRTC compiles the generated kernels (no GPU needed)', () => {
  it("conformance and random-graph kernels → one sm_90 cubin, through kiln's NVRTC bindings", async () => {
    const rec = await recordKernels(async () => {
      const tests = findTests([join(CONFORMANCE, 'onnx-node'), join(CONFORMANCE, 'models')]);
      await runConformance(tests, { backend: 'cuda-emu' });
      for (let seed = 1; seed <= 20; seed++) {
        const { graph, feeds } = randomGraph(seed * 104729, 1 + (seed % 8), seed % 2 ? 'f32' : 'f16');
        try {
          const s = await compile(graph, { backend: 'cuda-emu' });
          await s.run(feeds).finally(() => s.dispose());
        } catch {
          /* ops without a lowering */
        }
      }
    });
    const kernels = new Map<string, Kernel>();
    for (const r of rec.runs) for (const k of r) kernels.set(k.name, k);
    expect(kernels.size).toBeGreaterThan(0);
    const nv = Nvrtc.load({ KILN_LIBNVRTC: nvrtcPath });
    const t0 = performance.now();
    const out = nv.compile(cudaTranslationUnit(kernels.values(), 'nvrtc'), 'kiln_all.cu', nvrtcOptions(9, 0), {
      'kiln_cuda_shared.h': readFileSync(join(REPO_ROOT, 'codegen/cuda/emu/kiln_cuda_shared.h'), 'utf8'),
    });
    console.log(
      `NVRTC ${nv.version().join('.')}: ${kernels.size} kernels → ${out.image.length} byte sm_90 cubin in ` +
        `${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    expect(out.kind).toBe('cubin');
    expect([...out.image.subarray(0, 4)]).toEqual([0x7f, 0x45, 0x4c, 0x46]); // ELF
    const text = Buffer.from(out.image).toString('latin1');
    expect([...kernels.keys()].filter((n) => !text.includes(n))).toEqual([]);
    // a compile error comes back typed, with NVRTC's log
    let err: unknown;
    try {
      nv.compile('extern "C" __global__ void k() { undeclared_thing = 1; }', 'bad.cu', nvrtcOptions(9, 0));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CudaError);
    expect((err as CudaError).resultName).toBe('NVRTC_ERROR_COMPILATION');
    expect((err as CudaError).log).toMatch(/undeclared_thing/);
  }, 300_000);
});

// Tests on a real GPU (libcuda) live in test/gpu/cuda.test.ts: `npm run test:gpu`, run by bench/gpu.sh.
