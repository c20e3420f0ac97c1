/**
 * The conformance runner's own contract, on small copies of suite tests in a temp folder: a test set with nothing to
 * compare fails, missing / empty / wrong-kind paths are typed errors, only allow-listed skips are skips, `opt` reaches
 * compile, only parameter inputs (axes, split) are specialized into constants, and device runs record placement.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { KilnError } from '../../ir/errors.js';
import type { CompileOptions } from '../../src/session.js';
import { skipWebgpu } from '../helpers/backends.js';
import { CONFORMANCE, REPO_ROOT } from '../helpers/paths.js';

// Every compile the runner makes, with the graph's input names and the options it passed.
const compiled: { inputs: string[]; opts: CompileOptions }[] = [];
vi.mock('../../src/session.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/session.js')>();
  return {
    ...real,
    compile: (graph: Parameters<typeof real.compile>[0], opts?: CompileOptions) => {
      compiled.push({ inputs: graph.inputs.map((v) => v.name), opts: { ...opts } });
      return real.compile(graph, opts);
    },
  };
});
const { ALLOWED_SKIPS, findTests, formatResult, runConformance } = await import('../../src/conformance.js');

const NODE = join(CONFORMANCE, 'onnx-node');
const tmp = mkdtempSync(join(tmpdir(), 'kiln-conf-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeEach(() => {
  compiled.length = 0;
});

/** A copy of a suite test under a new name, in its own folder. */
function copyTest(name: string, as: string): string {
  const dst = join(tmp, as, name);
  cpSync(join(NODE, name), dst, { recursive: true });
  return dst;
}

describe('conformance runner: what counts as a test', () => {
  it('a test set with inputs but no output_*.pb fails (nothing was compared)', async () => {
    const dir = copyTest('test_add', 'no-outputs');
    rmSync(join(dir, 'test_data_set_0', 'output_0.pb'));
    const s = await runConformance([dir]);
    expect(s.results.map((r) => r.status)).toEqual(['fail']);
    expect(s.results[0]!.reason).toMatch(/test_data_set_0.*no output_\*\.pb/);
    expect([s.passed, s.failed, s.skipped]).toEqual([0, 1, 0]);
  });

  it('a test folder without any test_data_set_N fails', async () => {
    const dir = copyTest('test_add', 'no-sets');
    rmSync(join(dir, 'test_data_set_0'), { recursive: true });
    const s = await runConformance([dir]);
    expect(s.results[0]!.status).toBe('fail');
    expect(s.results[0]!.reason).toMatch(/no test_data_set_/);
  });

  it('an empty folder, a missing path and a file are typed errors naming the path', async () => {
    const empty = join(tmp, 'empty');
    mkdirSync(empty);
    await expect(runConformance([empty])).rejects.toThrow(KilnError);
    await expect(runConformance([empty])).rejects.toThrow(/no conformance tests .*empty/);
    expect(() => findTests([join(tmp, 'nope')])).toThrow(/no such directory: .*nope/);
    const file = join(tmp, 'a-file');
    writeFileSync(file, 'x');
    expect(() => findTests([file])).toThrow(KilnError);
    expect(() => findTests([file])).toThrow(/not a directory: .*a-file/);
  });
});

describe('conformance runner: skips are an allow-list', () => {
  it('a skip for an allow-listed reason is a skip, tallied under that reason', async () => {
    const s = await runConformance([join(NODE, 'test_identity_sequence')]);
    expect(s.results[0]!.status).toBe('skip');
    expect(s.results[0]!.skipReason).toBe('sequence');
    expect(s.skipsByReason).toEqual({ sequence: 1 });
  });

  it("kiln's own limitation (an op it does not know) is a failure, not a skip", async () => {
    // test_add with its op renamed in place: op_type is field 4 of NodeProto (tag 0x22), length 3
    const dir = copyTest('test_add', 'unknown-op');
    const bytes = readFileSync(join(dir, 'model.onnx'));
    const at = bytes.indexOf(Buffer.from([0x22, 3, ...Buffer.from('Add')]));
    expect(at).toBeGreaterThanOrEqual(0);
    bytes.write('Qzx', at + 2, 'latin1');
    writeFileSync(join(dir, 'model.onnx'), bytes);
    const s = await runConformance([dir]);
    expect(s.results[0]!.status).toBe('fail');
    expect(s.results[0]!.reason).toMatch(/Qzx/);
    expect([s.passed, s.failed, s.skipped]).toEqual([0, 1, 0]);
  });

  it('the allow-list matches the messages it is meant for, and nothing broader', () => {
    const idOf = (msg: string) => ALLOWED_SKIPS.find((a) => a.match.test(msg))?.id;
    expect(idOf("Cast.to: unsupported dtype FLOAT8E4M3FNUZ [at node 'Cast_0' (Cast)]")).toBe('dtype');
    expect(idOf("unsupported dtype UINT2 [at tensor 'input']")).toBe('dtype');
    expect(idOf("unsupported dtype FLOAT4E2M1 [at tensor 'x']")).toBe('dtype');
    expect(idOf("unsupported dtype INT4 [at tensor 'x']")).toBeUndefined();
    expect(idOf("unsupported op Loop (ai.onnx, opset 27) at node 'Loop_9'")).toBe('loop');
    expect(idOf("unsupported op LoopFoo (ai.onnx, opset 27) at node 'x'")).toBeUndefined();
    expect(idOf("sequence value 'x' is not supported (kiln has tensors only)")).toBe('sequence');
    expect(idOf('no kernel lowering for op gather on webgpu')).toBeUndefined();
  });

  it('the expected counts in test/conformance/skips.json name only allow-listed reasons', () => {
    const expected = JSON.parse(readFileSync(join(REPO_ROOT, 'test/conformance/skips.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(Object.keys(expected).sort()).toEqual(ALLOWED_SKIPS.map((a) => a.id).sort());
  });
});

describe('conformance runner: options and specialization', () => {
  it('passes opt to compile, and rejects an unknown level before running anything', async () => {
    await runConformance([join(NODE, 'test_add')], { opt: 0 });
    expect(compiled.map((c) => c.opts.opt)).toEqual([0]);
    compiled.length = 0;
    await expect(runConformance([join(NODE, 'test_add')], { opt: 7 })).rejects.toThrow(/0, 1, 2, 3/);
    expect(compiled).toEqual([]);
  });

  it('specializes only the parameter input (axis) into a constant; integer data stays a graph input', async () => {
    // CumSum(x: int32[5], axis: int32 scalar): axis must be known at import, x is data
    const s = await runConformance([join(NODE, 'test_cumsum_1d_int32_exclusive')]);
    expect(s.results[0]!.status).toBe('pass');
    expect(compiled.map((c) => c.inputs)).toEqual([['x']]);
  });

  it('splits specialize the split sizes only', async () => {
    const s = await runConformance([join(NODE, 'test_split_variable_parts_1d_opset13')]);
    expect(s.results[0]!.status).toBe('pass');
    expect(compiled.map((c) => c.inputs)).toEqual([['input']]);
  });
});

// Whether libcuda and a GPU are here (the CUDA backend's own probe): without them a cuda run is one error.
const { CudaBackend } = await import('../../src/runtime/cuda/backend.js');
const cudaHere = await CudaBackend.create().then(
  () => true,
  () => false,
);
describe.skipIf(cudaHere)('conformance runner: a backend that is not here', () => {
  it('is one typed error before any test runs, not a failure per test', async () => {
    const log: string[] = [];
    const run = runConformance([NODE], { backend: 'cuda', log: (l) => log.push(l) });
    await expect(run).rejects.toThrow(KilnError);
    await expect(run).rejects.toThrow(/^backend 'cuda' is not available here: /);
    expect(log).toEqual([]);
  });
});

const noGpu = await skipWebgpu();
describe.skipIf(noGpu)('conformance runner: placement on a device backend', () => {
  it('records how many nodes ran on the device, and marks a pass with nothing on the device as host-only', async () => {
    // test_add: one Add of two inputs (a device kernel); test_shape: Shape of a static-shaped input, which import
    // folds into a constant, so the graph has no node at all and its output never touches the device
    const s = await runConformance([join(NODE, 'test_add'), join(NODE, 'test_shape')], { backend: 'webgpu' });
    const [add, shape] = s.results;
    expect(add!.placement).toEqual({ host: 0, device: 1 });
    expect(add!.hostOnly).toBe(false);
    expect(shape!.placement).toEqual({ host: 0, device: 0 });
    expect(shape!.hostOnly).toBe(true);
    expect([s.passed, s.hostOnly]).toEqual([2, 1]);
    expect(formatResult(add!)).toMatch(/^PASS test_add {2}\S+ {2}nodes: 1 device, 0 host$/);
    expect(formatResult(shape!)).toMatch(/^PASS test_shape {2}\S+ {2}nodes: 0 device, 0 host \(host-only\)$/);
  });

  it('the reference backend is not a device: no host-only marks, plain lines', async () => {
    const s = await runConformance([join(NODE, 'test_shape')]);
    expect(s.results[0]!.hostOnly).toBe(false);
    expect(s.hostOnly).toBe(0);
    expect(formatResult(s.results[0]!)).toMatch(/^PASS test_shape {2}\S+$/);
  });
});
