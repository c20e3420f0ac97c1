/**
 * The conformance runner over the ONNX backend-test format: a folder with `model.onnx` and
 * `test_data_set_N/{input,output}_K.pb`. Stable contract for other tools: one line per test
 * (`PASS name  max_abs_err`, `FAIL name  reason`, `SKIP name  reason`) and a closing `N passed, N failed, N skipped`.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { isFloat, isInteger } from '../ir/dtype.js';
import { KilnError, UnsupportedError } from '../ir/errors.js';
import type { Tensor } from '../ir/tensor.js';
import { importOnnxModel, tensorFromOnnx } from './frontends/onnx/import.js';
import { decodeModel, decodeValue, type OnnxModel } from './frontends/onnx/proto.js';
import { compile, type BackendName, type Session } from './session.js';

export interface ConformanceOptions {
  backend?: BackendName;
  /**
   * 0: run the graph as imported, with no optimization passes. Import itself always folds constant shape
   * computations (kiln's IR has static ranks, so a reshape target must be known at import).
   */
  opt?: number;
  rtol?: number;
  atol?: number;
  /** Per-test tolerance overrides by test name (from `--tolerances FILE`): { name: { rtol?, atol?, why } }. */
  overrides?: Readonly<Record<string, { rtol?: number; atol?: number }>>;
  /** Called with each result line as it is produced. */
  log?: (line: string) => void;
}

export interface TestResult {
  name: string;
  dir: string;
  status: 'pass' | 'fail' | 'skip';
  /** For pass/fail on values: largest |out - expected|. */
  maxAbsErr?: number;
  reason?: string;
}

export interface ConformanceSummary {
  results: TestResult[];
  passed: number;
  failed: number;
  skipped: number;
}

/** Test folders under the given paths: a folder with model.onnx is a test, any other folder is searched. */
export function findTests(paths: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (p: string, depth: number) => {
    if (existsSync(join(p, 'model.onnx'))) {
      out.push(p);
      return;
    }
    if (depth > 4) return;
    for (const e of readdirSync(p).sort()) {
      const q = join(p, e);
      if (statSync(q).isDirectory()) walk(q, depth + 1);
    }
  };
  for (const p of paths) {
    if (!existsSync(p)) throw new KilnError('runtime', `no such directory: ${p}`);
    walk(p, 0);
  }
  return out;
}

export async function runConformance(
  paths: readonly string[],
  opts: ConformanceOptions = {},
): Promise<ConformanceSummary> {
  const results: TestResult[] = [];
  const tests = findTests(paths);
  await prepareBackend(tests, opts);
  for (const dir of tests) {
    const r = await runOne(dir, opts);
    results.push(r);
    opts.log?.(formatResult(r));
  }
  return {
    results,
    passed: results.filter((r) => r.status === 'pass').length,
    failed: results.filter((r) => r.status === 'fail').length,
    skipped: results.filter((r) => r.status === 'skip').length,
  };
}

/**
 * Backends that compile kernels ahead (cuda-emu, cuda) lower every test once with recording on (nothing runs), then
 * compile all distinct kernels in a few translation units, so that the tests themselves compile nothing.
 * `KILN_PREPARE_ALL=0` turns this off (each run then compiles its own kernels).
 */
async function prepareBackend(tests: readonly string[], opts: ConformanceOptions): Promise<void> {
  if (process.env['KILN_PREPARE_ALL'] === '0') return;
  const body = async () => {
    for (const dir of tests) await runOne(dir, opts);
  };
  if (opts.backend === 'cuda-emu') await (await import('./runtime/cuda-emu/backend.js')).prepareAll(body);
  if (opts.backend === 'cuda') await (await import('./runtime/cuda/backend.js')).prepareAll(body);
}

export function formatResult(r: TestResult): string {
  if (r.status === 'pass') return `PASS ${r.name}  ${(r.maxAbsErr ?? 0).toExponential(2)}`;
  return `${r.status.toUpperCase()} ${r.name}  ${r.reason ?? ''}`;
}

/** Per-test tolerance override: a `data.json` beside model.onnx with `rtol` / `atol`, as ONNX's model tests use. */
function tolerances(dir: string, opts: ConformanceOptions): { rtol: number; atol: number } {
  let rtol = opts.rtol ?? 1e-3;
  let atol = opts.atol ?? 1e-7;
  const f = join(dir, 'data.json');
  if (existsSync(f)) {
    try {
      const j = JSON.parse(readFileSync(f, 'utf8')) as { rtol?: number; atol?: number };
      if (typeof j.rtol === 'number') rtol = j.rtol;
      if (typeof j.atol === 'number') atol = j.atol;
    } catch {
      /* a malformed override is ignored: defaults apply */
    }
  }
  const o = opts.overrides?.[basename(dir)];
  if (o?.rtol !== undefined) rtol = o.rtol;
  if (o?.atol !== undefined) atol = o.atol;
  return { rtol, atol };
}

async function runOne(dir: string, opts: ConformanceOptions): Promise<TestResult> {
  const name = basename(dir);
  const base = { name, dir };
  try {
    const model = decodeModel(readFileSync(join(dir, 'model.onnx')));
    const backend = opts.backend ?? 'reference';
    const unsupportedValue = firstNonTensorIO(model);
    if (unsupportedValue) return { ...base, status: 'skip', reason: unsupportedValue };
    const { rtol, atol } = tolerances(dir, opts);
    const sets = readdirSync(dir)
      .filter((e) => e.startsWith('test_data_set_'))
      .sort();
    if (sets.length === 0) return { ...base, status: 'skip', reason: 'no test_data_set_* folder' };
    const inits = new Set(model.graph.initializers.map((t) => t.name));
    const graphInputs = model.graph.inputs.filter((i) => !inits.has(i.name));
    // Import once; if the model feeds a parameter kiln needs as a constant (axes, split sizes) through a graph
    // input, specialize: bind the test's integer inputs as constants and import per data set.
    let shared: Session | undefined;
    try {
      shared = await compile(importOnnxModel(model).graph, { backend });
    } catch (e) {
      if (!(e instanceof UnsupportedError && /must be a constant/.test(e.message))) throw e;
    }
    let maxAbsErr = 0;
    for (const set of sets) {
      const sd = join(dir, set);
      const feeds: Record<string, Tensor> = {};
      graphInputs.forEach((vi, k) => {
        const f = join(sd, `input_${k}.pb`);
        if (!existsSync(f)) return; // optional input left out
        const v = decodeValue(readFileSync(f), vi.type);
        if (v.kind !== 'tensor') throw new UnsupportedError(`${v.kind} inputs are not supported`);
        feeds[vi.name] = tensorFromOnnx(v.value, vi.name);
      });
      let session = shared;
      if (!session) {
        const constants = Object.fromEntries(Object.entries(feeds).filter(([, t]) => isInteger(t.dtype)));
        session = await compile(importOnnxModel(model, { constants }).graph, { backend });
      }
      let outs: Record<string, Tensor>;
      try {
        const runFeeds = Object.fromEntries(
          Object.entries(feeds).filter(([k]) => session.graph.inputs.some((i) => i.name === k)),
        );
        outs = await session.run(runFeeds);
      } finally {
        if (session !== shared) session.dispose();
      }
      for (let k = 0; k < model.graph.outputs.length; k++) {
        const vo = model.graph.outputs[k]!;
        const f = join(sd, `output_${k}.pb`);
        if (!existsSync(f)) continue;
        const v = decodeValue(readFileSync(f), vo.type);
        if (v.kind !== 'tensor') throw new UnsupportedError(`${v.kind} outputs are not supported`);
        const expected = tensorFromOnnx(v.value, vo.name);
        const got = outs[vo.name];
        if (!got) return { ...base, status: 'fail', reason: `output '${vo.name}' missing` };
        const cmp = compareTensors(got, expected, rtol, atol);
        if (!cmp.ok) return { ...base, status: 'fail', maxAbsErr: cmp.maxAbsErr, reason: `${vo.name}: ${cmp.reason}` };
        maxAbsErr = Math.max(maxAbsErr, cmp.maxAbsErr);
      }
    }
    shared?.dispose();
    return { ...base, status: 'pass', maxAbsErr };
  } catch (e) {
    if (e instanceof UnsupportedError) return { ...base, status: 'skip', reason: e.message };
    const msg = e instanceof Error ? e.message : String(e);
    return { ...base, status: 'fail', reason: e instanceof KilnError ? msg : `internal error: ${msg}` };
  }
}

function firstNonTensorIO(m: OnnxModel): string | undefined {
  for (const v of [...m.graph.inputs, ...m.graph.outputs]) {
    if (v.type.kind !== 'tensor') return `${v.type.kind} value '${v.name}' is not supported (kiln has tensors only)`;
  }
  return undefined;
}

export interface Comparison {
  ok: boolean;
  maxAbsErr: number;
  reason?: string;
}

/**
 * numpy.allclose-style comparison: |got - exp| <= atol + rtol * |exp|, shapes and dtypes equal, integers exact.
 * NaN matches only NaN at the same position (as numpy's equal_nan); a NaN where a number was expected fails.
 */
export function compareTensors(got: Tensor, exp: Tensor, rtol: number, atol: number): Comparison {
  if (got.dtype !== exp.dtype)
    return { ok: false, maxAbsErr: NaN, reason: `dtype ${got.dtype}, expected ${exp.dtype}` };
  if (got.shape.join(',') !== exp.shape.join(',')) {
    return { ok: false, maxAbsErr: NaN, reason: `shape [${got.shape}], expected [${exp.shape}]` };
  }
  const exact = !isFloat(exp.dtype);
  let maxAbsErr = 0;
  for (let i = 0; i < exp.data.length; i++) {
    const g = got.data[i]!;
    const e = exp.data[i]!;
    if (Number.isNaN(e) || Number.isNaN(g)) {
      if (Number.isNaN(e) && Number.isNaN(g)) continue;
      return { ok: false, maxAbsErr: NaN, reason: `element ${i}: got ${g}, expected ${e}` };
    }
    if (g === e) continue; // covers equal infinities
    const d = Math.abs(g - e);
    if (!(d <= (exact ? 0 : atol + rtol * Math.abs(e)))) {
      return {
        ok: false,
        maxAbsErr: d,
        reason: `element ${i}: got ${g}, expected ${e} (|diff| ${d.toExponential(2)})`,
      };
    }
    maxAbsErr = Math.max(maxAbsErr, d);
  }
  return { ok: true, maxAbsErr };
}
