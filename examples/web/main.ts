/**
 * The browser demo: stories260K (bundled with kiln) compiled for WebGPU (`navigator.gpu`), a story streamed with its
 * tokens per second, the kernels a run launches, and the graph as built and as optimized drawn by Graphviz (WASM).
 * Built by `npm run demo:web` (esbuild) into examples/web/dist; `npm run demo:web -- --serve` serves it.
 * When the page is loaded with `?report=URL` it POSTs what it did there (the browser test); with `?aot=DIR` it also
 * loads the ahead-of-time module in DIR (`kiln compile`) with kiln/runtime and generates the same story from it.
 */
import {
  LanguageModelSession,
  buildLlama,
  dotToSvg,
  generateText,
  graphDot,
  loadLlama2c,
  loadLlama2cTokenizer,
  type Tokenizer,
} from 'kiln';
import { loadModule } from 'kiln/runtime';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
const report = params.get('report');
const aot = params.get('aot');

async function fetchBytes(path: string): Promise<Uint8Array> {
  const r = await fetch(path);
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const [model, tokBytes] = await Promise.all([fetchBytes('models/stories260K.bin'), fetchBytes('models/tok512.bin')]);
  const { config, weights } = loadLlama2c(model);
  const tokenizer: Tokenizer = loadLlama2cTokenizer(tokBytes, config.vocab);
  const graph = buildLlama(config, weights);
  const lm = await LanguageModelSession.create({ graph, config }, { backend: 'webgpu' });
  $('stats').textContent = `ready in ${(performance.now() - t0).toFixed(0)} ms on ${lm.session.backend}`;
  const go = $<HTMLButtonElement>('go');

  const run = async () => {
    go.disabled = true;
    const story = $('story');
    story.textContent = $<HTMLInputElement>('prompt').value;
    for await (const piece of generateText(lm, tokenizer, $<HTMLInputElement>('prompt').value, { maxTokens: 96 }))
      story.textContent += piece;
    const s = lm.stats!;
    $('stats').textContent =
      `${s.generatedTokens} tokens · first token ${s.timeToFirstTokenMs.toFixed(0)} ms · ` +
      `decode ${s.decodeTokPerS.toFixed(1)} tok/s on ${lm.session.backend}`;
    const kernels = lm.session.kernels();
    $('kernels').innerHTML =
      '<tr><th>#</th><th>kernel</th><th>graph node</th><th>op</th></tr>' +
      kernels.map((k, i) => `<tr><td>${i + 1}</td><td>${k.name}</td><td>${k.node}</td><td>${k.op}</td></tr>`).join('');
    go.disabled = false;
    return { text: story.textContent, stats: s, kernels: kernels.length };
  };
  go.onclick = () => void run();
  go.disabled = false;

  const [result, svg] = await Promise.all([run(), dotToSvg(graphDot(lm.session.graph, graph))]);
  $('graph').innerHTML = svg;
  let aotText: string | undefined;
  if (aot) {
    // the same model as an ahead-of-time module: no passes, no loaders in this path
    const mod = await loadModule(new URL(aot.endsWith('/') ? aot : `${aot}/`, location.href), undefined, {
      backend: 'webgpu',
    });
    aotText = $<HTMLInputElement>('prompt').value;
    for await (const piece of mod.generateText(aotText, { maxTokens: 96 })) aotText += piece;
    mod.dispose();
  }
  if (report) {
    await fetch(report, {
      method: 'POST',
      body: JSON.stringify({ ...result, aotText, svgBytes: svg.length, adapter: lm.session.backend }),
    });
  }
}

main().catch(async (e: unknown) => {
  $('stats').textContent = `error: ${String(e)}`;
  if (report) await fetch(report, { method: 'POST', body: JSON.stringify({ error: String(e) }) });
});
