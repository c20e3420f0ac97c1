/**
 * The engines the model benchmarks time, behind one small interface: kiln's WebGPU session and onnxruntime-web's
 * sessions (WebGPU EP, wasm EP). kiln is imported lazily so a cold-start child measuring ORT-web does not load it.
 * Test-case data (model bytes, `input_K.pb`) is decoded with kiln's ONNX protobuf module, which is all of kiln that
 * an ORT-web cold start loads (before its clock starts).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Tensor } from '../ir/tensor.js';
import { decodeTensor, type OnnxTensor } from '../src/frontends/onnx/proto.js';
import type { Ort, OrtTensor } from './peer.js';

/** An ONNX test folder: the model, its inputs in graph-input order (`input_K.pb`), and the count of goldens. */
export interface Case {
  name: string;
  dir: string;
  bytes: Uint8Array;
  inputs: OnnxTensor[];
  outputs: number;
}

export function loadCase(dir: string): Case {
  const set = join(dir, 'test_data_set_0');
  const files = readdirSync(set);
  const nIn = files.filter((f) => f.startsWith('input_')).length;
  return {
    name: dir.split('/').pop()!,
    dir,
    bytes: readFileSync(join(dir, 'model.onnx')),
    inputs: Array.from({ length: nIn }, (_, k) => decodeTensor(readFileSync(join(set, `input_${k}.pb`)))),
    outputs: files.filter((f) => f.startsWith('output_')).length,
  };
}

/** The stored ONNX Runtime CPU outputs, in model-output order. */
export async function goldens(c: Case): Promise<Tensor[]> {
  const { tensorFromOnnx } = await import('../src/index.js');
  const set = join(c.dir, 'test_data_set_0');
  return Array.from({ length: c.outputs }, (_, k) =>
    tensorFromOnnx(decodeTensor(readFileSync(join(set, `output_${k}.pb`)))),
  );
}

/** One engine with a compiled model: `run` returns the outputs in the model's output order. */
export interface Runner {
  run(): Promise<ArrayLike<number | bigint>[]>;
  /** Kernel steps kiln's executor handed to the backend so far (kiln only). */
  steps?(): number;
  /** Graph nodes run as kernels / on the host (kiln only). */
  placement?: { host: number; device: number; nodes: number };
  dispose(): Promise<void> | void;
}

/** kiln through its public API: `importOnnx`, `compile(graph, { backend: 'webgpu' })`, `session.run`. */
export async function kilnRunner(c: Case): Promise<Runner> {
  const { compile, importOnnx, tensorFromOnnx } = await import('../src/index.js');
  const { graph } = importOnnx(c.bytes);
  const session = await compile(graph, { backend: 'webgpu' });
  const feeds: Record<string, Tensor> = {};
  graph.inputs.forEach((v, k) => (feeds[v.name] = tensorFromOnnx(c.inputs[k]!)));
  // Count kernel steps by wrapping the backend's run (the executor submits all of a run's steps in one call).
  let steps = 0;
  const be = (session as unknown as { executor?: { backend?: { run(s: readonly unknown[]): Promise<void> } } }).executor
    ?.backend;
  if (be) {
    const run = be.run.bind(be);
    be.run = (s) => ((steps += s.length), run(s));
  }
  return {
    run: async () => {
      const out = await session.run(feeds);
      return graph.outputs.map((v) => out[v.name]!.data);
    },
    steps: () => steps,
    placement: { ...session.placement(), nodes: graph.nodes.length },
    dispose: () => session.dispose(),
  };
}

/** ONNX element type -> onnxruntime-web tensor type and array. */
const ORT_TYPES: Record<number, [string, (v: OnnxTensor['values']) => ArrayLike<number | bigint>]> = {
  1: ['float32', (v) => Float32Array.from(v as Float64Array)],
  6: ['int32', (v) => Int32Array.from(v as Float64Array)],
  7: ['int64', (v) => BigInt64Array.from(v as ArrayLike<number | bigint>, (x) => BigInt(x))],
  9: ['bool', (v) => Uint8Array.from(v as Float64Array)],
};

/** onnxruntime-web on one execution provider; outputs come back as CPU tensors (its default). */
export async function ortRunner(ort: Ort, c: Case, ep: 'webgpu' | 'wasm'): Promise<Runner> {
  // Severity 3 (errors): GPT-2's export trips many "initializer appears in graph inputs" warnings.
  const session = await ort.InferenceSession.create(c.bytes, { executionProviders: [ep], logSeverityLevel: 3 });
  const feeds: Record<string, OrtTensor> = {};
  session.inputNames.forEach((name, k) => {
    const t = c.inputs[k]!;
    const conv = ORT_TYPES[t.dataType];
    if (!conv) throw new Error(`bench: no ORT tensor type for ONNX dtype ${t.dataType} (${name})`);
    feeds[name] = new ort.Tensor(conv[0], conv[1](t.values), t.dims);
  });
  return {
    run: async () => {
      const out = await session.run(feeds);
      return session.outputNames.map((n) => out[n]!.data);
    },
    dispose: () => session.release(),
  };
}

/** Max |out − golden| over all outputs (Infinity on a length mismatch or NaN). */
export function maxErr(outs: ArrayLike<number | bigint>[], golden: Tensor[]): number {
  let m = 0;
  golden.forEach((g, k) => {
    const o = outs[k]!;
    if (o.length !== g.data.length) m = Infinity;
    for (let i = 0; i < g.data.length; i++) {
      const d = Math.abs(Number(o[i]) - g.data[i]!);
      m = Number.isNaN(d) ? Infinity : Math.max(m, d);
    }
  });
  return m;
}
