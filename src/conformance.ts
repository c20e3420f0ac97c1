/**
 * The conformance runner over the ONNX backend-test format: a folder with `model.onnx` and
 * `test_data_set_N/{input,output}_K.pb`. Stable contract for other tools: one line per test
 * (`PASS name  max_abs_err`, `FAIL name  reason`, `SKIP name  reason`; on a device backend a PASS line ends with
 * `  nodes: D device, H host`, plus ` (host-only)` when no node ran on the device) and a closing
 * `N passed, N failed, N skipped`.
 *
 * Only the reasons in {@link ALLOWED_SKIPS} make a skip: anything else kiln cannot run (an op without an importer
 * or a lowering, a missing feature) is a failure, so a limitation of kiln never hides among the skips.
 *
 * @module kiln/conformance
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { isFloat } from '../ir/dtype.js';
import { GraphBuilder } from '../ir/builder.js';
import { KilnError, UnsupportedError } from '../ir/errors.js';
import type { Tensor } from '../ir/tensor.js';
import { externalDataFrom, importOnnxModel, tensorFromOnnx, type ExternalDataReader } from './frontends/onnx/import.js';
import { decodeModel, decodeValue, type OnnxModel } from './frontends/onnx/proto.js';
import { compile, OPT_LEVELS, type BackendChoice, type BackendName, type Session } from './session.js';

/**
 * The reasons a conformance test may be skipped: ONNX features outside kiln's scope by design, not gaps in it.
 * `match` is tested against the UnsupportedError message. The expected count of each over the shared suite is in
 * `test/conformance/skips.json`, so a new skip or a fixed one shows up there.
 */
export const ALLOWED_SKIPS: readonly { id: string; why: string; match: RegExp }[] = [
  {
    id: 'dtype',
    why: 'sub-byte and 8-bit float dtypes (FLOAT8*, FLOAT8E8M0, FLOAT4E2M1, INT2, UINT2) have no kiln dtype',
    match:
      /\bunsupported dtype (FLOAT8E4M3FN|FLOAT8E4M3FNUZ|FLOAT8E5M2|FLOAT8E5M2FNUZ|FLOAT8E8M0|FLOAT4E2M1|INT2|UINT2)\b/,
  },
  {
    id: 'sequence',
    why: 'kiln values are tensors: no sequence values',
    match: /^sequence value '[^']*' is not supported/,
  },
  { id: 'loop', why: 'no data-dependent control flow (Loop)', match: /\bunsupported op Loop \(/ },
];

export interface ConformanceOptions {
  /** Default `reference`; `auto` is resolved per test by compile (see the result's `backend`). */
  backend?: BackendChoice;
  /**
   * Optimization level passed to compile (one of OPT_LEVELS; compile's default when left out). 0 runs the graph as
   * imported. Import itself always folds constant shape computations (kiln's IR has static ranks, so a reshape
   * target must be known at import).
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
  /** For a skip: the id of the {@link ALLOWED_SKIPS} entry that allowed it. */
  skipReason?: string;
  /** The backend the test was compiled for (what `auto` resolved to). */
  backend?: BackendName;
  /** Graph nodes that ran as device kernels / on the host (the reference backend runs everything on the host). */
  placement?: { host: number; device: number };
  /** A device backend ran none of the graph's nodes: the pass says nothing about the device's kernels. */
  hostOnly: boolean;
}

export interface ConformanceSummary {
  results: TestResult[];
  passed: number;
  failed: number;
  skipped: number;
  /** Passes on a device backend in which no node ran on the device (counted in `passed` too). */
  hostOnly: number;
  /** Skips by {@link ALLOWED_SKIPS} id. */
  skipsByReason: Record<string, number>;
}

/**
 * Test folders under the given paths: a folder with model.onnx is a test, any other folder is searched (4 levels
 * deep), in sorted order.
 *
 * @throws KilnError (code `runtime`) for a path that is missing or not a directory.
 */
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
    if (!statSync(p).isDirectory()) throw new KilnError('runtime', `not a directory: ${p} (give a test folder)`);
    walk(p, 0);
  }
  return out;
}

/**
 * Runs every test under the paths. Throws a KilnError (before running anything) for an unknown opt level, a path
 * that is missing or not a directory, or paths holding no test at all — an empty run is not a pass. Backend
 * `reference` by default.
 *
 * @throws KilnError (code `attribute`) for an unknown opt level; (code `runtime`) for a bad path or no tests; (code
 * `device`) when the backend asked for is not available here.
 */
export async function runConformance(
  paths: readonly string[],
  opts: ConformanceOptions = {},
): Promise<ConformanceSummary> {
  if (opts.opt !== undefined && !(OPT_LEVELS as readonly number[]).includes(opts.opt)) {
    throw new KilnError('attribute', `unknown optimization level ${opts.opt} (expected ${OPT_LEVELS.join(', ')})`, {
      limit: 'opt',
    });
  }
  const tests = findTests(paths);
  if (tests.length === 0) {
    throw new KilnError('runtime', `no conformance tests (folders with model.onnx) under ${paths.join(', ')}`);
  }
  await requireBackend(opts.backend ?? 'reference');
  const results: TestResult[] = [];
  await prepareBackend(tests, opts);
  for (const dir of tests) {
    const r = await runOne(dir, opts);
    results.push(r);
    opts.log?.(formatResult(r));
  }
  const skipsByReason: Record<string, number> = {};
  for (const r of results) if (r.skipReason) skipsByReason[r.skipReason] = (skipsByReason[r.skipReason] ?? 0) + 1;
  return {
    results,
    passed: results.filter((r) => r.status === 'pass').length,
    failed: results.filter((r) => r.status === 'fail').length,
    skipped: results.filter((r) => r.status === 'skip').length,
    hostOnly: results.filter((r) => r.status === 'pass' && r.hostOnly).length,
    skipsByReason,
  };
}

/**
 * A device backend that is not here (no libcuda, no WebGPU adapter, no g++) is one typed error up front, not a
 * failure per test: it compiles a one-node graph and turns an 'unsupported' / 'device' error into that.
 */
async function requireBackend(backend: BackendChoice): Promise<void> {
  if (backend === 'reference' || backend === 'auto') return;
  const b = new GraphBuilder('probe');
  const x = b.input('x', 'f32', [1]);
  b.output(b.op('add', [x, x]), 'y');
  let session: Session;
  try {
    session = await compile(b.build(), { backend });
  } catch (e) {
    if (!(e instanceof KilnError && (e.code === 'unsupported' || e.code === 'device'))) throw e;
    throw new KilnError('device', `backend '${backend}' is not available here: ${e.message}`, {}, { cause: e });
  }
  session.dispose();
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

/**
 * One report line for a case: `PASS name  maxAbsErr  nodes: D device, H host` (placement on device backends only),
 * or `FAIL name  reason` / `SKIP name  reason`.
 */
export function formatResult(r: TestResult): string {
  if (r.status === 'pass') {
    const line = `PASS ${r.name}  ${(r.maxAbsErr ?? 0).toExponential(2)}`;
    if (!r.placement || r.backend === 'reference' || r.backend === undefined) return line;
    const { device, host } = r.placement;
    return `${line}  nodes: ${device} device, ${host} host${r.hostOnly ? ' (host-only)' : ''}`;
  }
  return `${r.status.toUpperCase()} ${r.name}  ${r.reason ?? ''}`;
}

/** The allow-list entry for a skip message, if any. */
function allowedSkip(message: string): string | undefined {
  return ALLOWED_SKIPS.find((a) => a.match.test(message))?.id;
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
  const base = { name, dir, hostOnly: false };
  const owned: Session[] = [];
  try {
    const model = decodeModel(readFileSync(join(dir, 'model.onnx')));
    const unsupportedValue = firstNonTensorIO(model);
    if (unsupportedValue) throw new UnsupportedError(unsupportedValue);
    const { rtol, atol } = tolerances(dir, opts);
    const sets = readdirSync(dir)
      .filter((e) => e.startsWith('test_data_set_'))
      .sort();
    if (sets.length === 0) return { ...base, status: 'fail', reason: 'no test_data_set_* folder' };
    const inits = new Set(model.graph.initializers.map((t) => t.name));
    const graphInputs = model.graph.inputs.filter((i) => !inits.has(i.name));
    let plain: Session | undefined;
    let first: Session | undefined;
    let maxAbsErr = 0;
    for (const set of sets) {
      const sd = join(dir, set);
      // A set with nothing to compare would pass whatever kiln computed.
      if (!readdirSync(sd).some((f) => /^output_\d+\.pb$/.test(f))) {
        return { ...base, status: 'fail', reason: `${set} has no output_*.pb: nothing to compare` };
      }
      const feeds: Record<string, Tensor> = {};
      graphInputs.forEach((vi, k) => {
        const f = join(sd, `input_${k}.pb`);
        if (!existsSync(f)) return; // optional input left out
        const v = decodeValue(readFileSync(f), vi.type);
        if (v.kind !== 'tensor') throw new UnsupportedError(`${v.kind} inputs are not supported`);
        feeds[vi.name] = tensorFromOnnx(v.value, vi.name);
      });
      let session = plain;
      if (!session) {
        // initializers stored as external data are read from the files beside the model
        const reader = await externalDataFrom(dir);
        let c;
        try {
          c = await compileSpecialized(model, feeds, opts, reader);
        } finally {
          reader.close();
        }
        session = c.session;
        if (c.specialized) owned.push(session);
        else plain = session;
      }
      first ??= session;
      const runFeeds = Object.fromEntries(Object.entries(feeds).filter(([k]) => session.inputNames.includes(k)));
      const outs = await session.run(runFeeds);
      let compared = 0;
      for (let k = 0; k < model.graph.outputs.length; k++) {
        const vo = model.graph.outputs[k]!;
        const f = join(sd, `output_${k}.pb`);
        if (!existsSync(f)) continue; // an optional output the test does not check
        const v = decodeValue(readFileSync(f), vo.type);
        if (v.kind !== 'tensor') throw new UnsupportedError(`${v.kind} outputs are not supported`);
        const expected = tensorFromOnnx(v.value, vo.name);
        const got = outs[vo.name];
        if (!got) return { ...base, status: 'fail', reason: `output '${vo.name}' missing` };
        const cmp = compareTensors(got, expected, rtol, atol);
        if (!cmp.ok) return { ...base, status: 'fail', maxAbsErr: cmp.maxAbsErr, reason: `${vo.name}: ${cmp.reason}` };
        maxAbsErr = Math.max(maxAbsErr, cmp.maxAbsErr);
        compared++;
      }
      if (compared === 0) {
        return { ...base, status: 'fail', reason: `${set}: no output_K.pb matches a graph output: nothing compared` };
      }
    }
    if (plain) owned.push(plain);
    const placement = first!.placement();
    const hostOnly = first!.backend !== 'reference' && placement.device === 0;
    return { ...base, status: 'pass', maxAbsErr, backend: first!.backend, placement, hostOnly };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (e instanceof UnsupportedError) {
      const skipReason = allowedSkip(msg);
      if (skipReason) return { ...base, status: 'skip', reason: msg, skipReason };
      return { ...base, status: 'fail', reason: `not supported by kiln: ${msg}` };
    }
    return { ...base, status: 'fail', reason: e instanceof KilnError ? msg : `internal error: ${msg}` };
  } finally {
    for (const s of owned) s.dispose();
  }
}

/**
 * Imports and compiles the model. Where the importer needs a graph input as a constant (an `axes`, `split` or
 * `axis` input: kiln's IR has static shapes), that one input is bound to this data set's value and import retried;
 * every other input — integer data included — stays a graph input fed at run time, so the device computes it.
 * `specialized`: the session is bound to this data set's parameter values.
 */
async function compileSpecialized(
  model: OnnxModel,
  feeds: Readonly<Record<string, Tensor>>,
  opts: ConformanceOptions,
  externalData: ExternalDataReader,
): Promise<{ session: Session; specialized: boolean }> {
  const constants: Record<string, Tensor> = {};
  for (;;) {
    let graph;
    try {
      graph = importOnnxModel(model, { constants, externalData }).graph;
    } catch (e) {
      // The importer names the input it needed: "<what> must be a constant (input 'axes' is computed at run time)".
      const input =
        e instanceof UnsupportedError ? /must be a constant \(input '([^']+)'/.exec(e.message)?.[1] : undefined;
      if (input === undefined || !feeds[input] || constants[input]) throw e;
      constants[input] = feeds[input];
      continue;
    }
    const session = await compile(graph, { backend: opts.backend ?? 'reference', opt: opts.opt });
    return { session, specialized: Object.keys(constants).length > 0 };
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
