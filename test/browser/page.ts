/**
 * Runs in a browser page (bundled by test/browser/chromium.test.ts): the tiny GPT and a batch of random graphs on
 * WebGPU through `navigator.gpu`, each compared with the float64 reference in the same page. The result is POSTed
 * as JSON to `/result` on the test's loopback server.
 */
import { compile, interpret, makeTensor, buildTinyGpt } from '../../src/index.js';
import { compareWithReference, reducesLong, tolerance } from '../helpers/compare.js';
import { randomGraph } from '../helpers/random-graph.js';

interface PageResult {
  adapter: string;
  cases: number;
  mismatches: string[];
  error?: string;
}

const res: PageResult = { adapter: '', cases: 0, mismatches: [] };

async function main(): Promise<PageResult> {
  // what the page's adapter says about itself, reported even when a run fails
  const gpu = (globalThis as unknown as { navigator: { gpu: GPU } }).navigator.gpu;
  const info = (await gpu.requestAdapter())?.info;
  res.adapter = info ? `${info.description} (${info.vendor}/${info.architecture}/${info.device})` : 'none';
  const gpt = buildTinyGpt();
  const feeds = { input_ids: makeTensor('i64', [1, 6], [3, 1, 4, 1, 5, 9]) };
  const session = await compile(gpt, { backend: 'webgpu', poison: true });
  const ex = (session as unknown as { executor: { backend: { ctx: { caps: { adapterDescription: string } } } } })
    .executor;
  res.adapter += ` = ${ex.backend.ctx.caps.adapterDescription}`;
  const got = await session.run(feeds);
  const ref = interpret(gpt, feeds);
  const m = compareWithReference('logits', got['logits']!, ref['logits']!, tolerance('f32', true));
  if (m) res.mismatches.push(`tiny-gpt: ${m.reason}`);
  res.cases++;
  session.dispose();
  for (let seed = 1; seed <= 12; seed++) {
    const { graph, feeds: f } = randomGraph(seed * 7919, 6);
    const s = await compile(graph, { backend: 'webgpu', poison: true });
    const out = await s.run(f);
    const r = interpret(graph, f);
    const mm = compareWithReference('out', out['out']!, r['out']!, tolerance('f32', reducesLong(graph)));
    if (mm) res.mismatches.push(`random graph seed ${seed * 7919}: ${mm.reason}`);
    res.cases++;
    s.dispose();
  }
  return res;
}

const report = (r: PageResult) => fetch('/result', { method: 'POST', body: JSON.stringify(r) });
main().then(report, (e: unknown) =>
  report({ ...res, error: e instanceof Error ? `${e.message}\n${e.stack}` : String(e) }),
);
