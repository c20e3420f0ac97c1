/**
 * The peer the headline benchmarks compare with: onnxruntime-web (1.30) — its WebGPU EP on the same Dawn adapter kiln
 * uses (lavapipe here), and its wasm EP on one thread for context. It is installed for benchmarks only:
 *
 *   npm install --no-save onnxruntime-web@1.30
 *
 * Running it in Node needs what `../shared/DESIGN.md` ("The peer to beat") describes: `navigator.gpu` from the
 * `webgpu` package on `globalThis` before `onnxruntime-web/webgpu` is imported, `GPUQueue.writeBuffer` wrapped so
 * SharedArrayBuffer-backed data (its wasm heap) is copied to a plain ArrayBuffer first, and `node --liftoff-only`
 * (bench/run.ts re-executes itself with it).
 *
 * Also here: a dispatch counter on `GPUComputePassEncoder.dispatchWorkgroups`. Both kiln and ORT-web load the same
 * `dawn.node`, so one prototype patch counts the kernels each of them launches.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

export const PEER_PACKAGE = 'onnxruntime-web';
export const PEER_MISSING = `peer not installed: run npm install --no-save ${PEER_PACKAGE}@1.30`;

/** The slice of onnxruntime-web's API the benchmarks use (typed here so the bench builds without the package). */
export interface OrtTensor {
  readonly data: ArrayLike<number | bigint>;
  readonly dims: readonly number[];
  readonly type: string;
}
export interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
export interface Ort {
  readonly env: { wasm: { numThreads?: number }; logLevel?: string; versions?: Record<string, string> };
  readonly Tensor: new (type: string, data: ArrayLike<number | bigint>, dims: readonly number[]) => OrtTensor;
  readonly InferenceSession: {
    create(model: Uint8Array, opts: { executionProviders: string[]; logSeverityLevel?: number }): Promise<OrtSession>;
  };
}

interface DawnGlobals {
  GPUQueue: { prototype: { writeBuffer(...args: unknown[]): void } };
  GPUComputePassEncoder: { prototype: { dispatchWorkgroups(...args: unknown[]): void } };
}
interface DawnModule {
  create(flags: string[]): GPU;
  globals: DawnGlobals & Record<string, unknown>;
}

let dispatchCount = 0;
/** Compute dispatches recorded in this process so far (by kiln and ORT-web alike). */
export function dispatches(): number {
  return dispatchCount;
}

let dawn: Promise<DawnModule> | undefined;
// The Dawn instance ORT-web uses must stay referenced for the process lifetime (collecting it crashes Dawn).
let peerGpu: GPU | undefined;

/** Loads `webgpu`, patches the prototypes once (writeBuffer copy, dispatch counter). */
export function patchDawn(): Promise<DawnModule> {
  dawn ??= (import('webgpu') as Promise<DawnModule>).then((mod) => {
    const queue = mod.globals.GPUQueue.prototype;
    const write = queue.writeBuffer;
    queue.writeBuffer = function (this: unknown, buffer: unknown, offset: unknown, data: unknown, ...rest: unknown[]) {
      // Dawn-node rejects views of a SharedArrayBuffer. slice() keeps the element type, so element offsets hold.
      if (ArrayBuffer.isView(data) && data.buffer instanceof SharedArrayBuffer) {
        data =
          data instanceof DataView
            ? new DataView(new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice().buffer)
            : (data as unknown as Uint8Array).slice();
      } else if (data instanceof SharedArrayBuffer) {
        data = new Uint8Array(data).slice().buffer;
      }
      return write.call(this, buffer, offset, data, ...rest);
    };
    const pass = mod.globals.GPUComputePassEncoder.prototype;
    const dispatch = pass.dispatchWorkgroups;
    pass.dispatchWorkgroups = function (this: unknown, ...args: unknown[]) {
      dispatchCount++;
      return dispatch.apply(this, args);
    };
    return mod;
  });
  return dawn;
}

/** The installed onnxruntime-web's folder, or undefined. Its `exports` hide package.json, so resolve an entry. */
function peerDir(): string | undefined {
  try {
    const entry = createRequire(import.meta.url).resolve(`${PEER_PACKAGE}/webgpu`);
    return entry.slice(0, entry.lastIndexOf(`/${PEER_PACKAGE}/`) + PEER_PACKAGE.length + 2);
  } catch {
    return undefined;
  }
}

export function peerInstalled(): boolean {
  return peerDir() !== undefined;
}

export function peerVersion(): string {
  const dir = peerDir();
  return dir ? (JSON.parse(readFileSync(`${dir}package.json`, 'utf8')) as { version: string }).version : 'missing';
}

let ort: Promise<Ort> | undefined;

/**
 * onnxruntime-web's WebGPU build, set up on the lavapipe adapter (`$KILN_WEBGPU_ADAPTER` overrides, as for kiln);
 * null when the package is not installed. The wasm EP comes from the same module, pinned to one thread.
 */
export async function loadPeer(): Promise<Ort | null> {
  if (!peerInstalled()) return null;
  ort ??= (async () => {
    const mod = await patchDawn();
    const adapter = process.env['KILN_WEBGPU_ADAPTER'] ?? 'llvmpipe';
    peerGpu = mod.create(adapter === 'default' ? [] : [`adapter=${adapter}`]);
    Object.defineProperty(globalThis, 'navigator', { value: { gpu: peerGpu }, configurable: true, writable: true });
    // The WebGPU constant namespaces (GPUBufferUsage, …) a browser would have; kiln reads its own from `webgpu`.
    for (const [k, v] of Object.entries(mod.globals)) if (!(k in globalThis)) Object.assign(globalThis, { [k]: v });
    const spec = `${PEER_PACKAGE}/webgpu`; // a variable: tsc must not try to resolve an optional package
    const m = (await import(spec)) as Ort & { default?: Ort };
    const o = m.InferenceSession ? m : m.default!;
    o.env.wasm.numThreads = 1;
    o.env.logLevel = 'error';
    return o;
  })();
  return ort;
}
