/** `kiln demo`: build the built-in tiny transformer, compile it for the best device, run it, say what happened. */
import type { Graph } from '../ir/graph.js';
// The builder looks ops up in the registry, which only ir/ops/index registers; the CLI loads this module alone.
import '../ir/ops/index.js';
import { interpret } from '../ir/interpret.js';
import { makeTensor } from '../ir/tensor.js';
import { buildTinyGpt, TINY_GPT } from './models/tiny-gpt.js';
import { compile, type BackendChoice } from './session.js';

export interface DemoOptions {
  /** Default `auto`: compile picks CUDA, else WebGPU, else the reference interpreter. */
  backend?: BackendChoice;
  seq?: number;
  log?: (line: string) => void;
}

function opCounts(g: Graph): string {
  const m = new Map<string, number>();
  for (const n of g.nodes) m.set(n.op, (m.get(n.op) ?? 0) + 1);
  return [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k}×${v}`)
    .join(' ');
}

export async function runDemo(opts: DemoOptions = {}): Promise<{ tokens: number[]; maxAbsDiff: number }> {
  const log = opts.log ?? (() => {});
  const seq = opts.seq ?? 8;
  const t0 = performance.now();
  const graph = buildTinyGpt();
  const cfg = TINY_GPT;
  log(
    `tiny-gpt: vocab ${cfg.vocab}, hidden ${cfg.hidden}, ${cfg.heads} heads, ${cfg.layers} layers, ffn ${cfg.ffn}` +
      ` — ${graph.nodes.length} nodes, ${graph.constants.length} constants (built in ${(performance.now() - t0).toFixed(1)} ms)`,
  );
  log(`ops: ${opCounts(graph)}`);
  log(`passes: none yet — the graph runs as built (fusion / quantization passes are tracked as separate issues)`);
  const asked = opts.backend ?? 'auto';
  const session = await compile(graph, { backend: asked });
  const ids = Array.from({ length: seq }, (_, i) => (i * 37 + 11) % cfg.vocab);
  const feeds = { input_ids: makeTensor('i64', [1, seq], ids) };
  const t1 = performance.now();
  const out = await session.run(feeds);
  const first = performance.now() - t1;
  const t2 = performance.now();
  await session.run(feeds);
  const again = performance.now() - t2;
  const p = session.placement();
  log(
    `backend: ${session.backend}${asked === 'auto' ? ' (auto: the best one available here)' : ''} — ` +
      `${p.device} nodes as device kernels, ${p.host} on the host`,
  );
  const logits = out['logits']!;
  const ref = interpret(graph, feeds)['logits']!;
  let maxAbsDiff = 0;
  for (let i = 0; i < ref.data.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(ref.data[i]! - logits.data[i]!));
  const tokens: number[] = [];
  for (let s = 0; s < seq; s++) {
    let best = 0;
    for (let v = 1; v < cfg.vocab; v++) {
      if (logits.data[s * cfg.vocab + v]! > logits.data[s * cfg.vocab + best]!) best = v;
    }
    tokens.push(best);
  }
  log(`input ids:   ${ids.join(' ')}`);
  log(`argmax next: ${tokens.join(' ')}`);
  log(
    `ran ${seq} tokens on ${session.backend}: first run ${first.toFixed(1)} ms (includes kernel compilation), ` +
      `second ${again.toFixed(1)} ms; max |logits − float64 reference| = ${maxAbsDiff.toExponential(2)}`,
  );
  session.dispose();
  return { tokens, maxAbsDiff };
}
