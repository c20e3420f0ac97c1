/** `kiln demo`: build the built-in tiny transformer, compile it for a backend, run it, and say what happened. */
import type { Graph } from '../ir/graph.js';
import { makeTensor } from '../ir/tensor.js';
import { buildTinyGpt, TINY_GPT } from './models/tiny-gpt.js';
import { compile, type BackendName } from './session.js';

export interface DemoOptions {
  backend?: BackendName;
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

export async function runDemo(opts: DemoOptions = {}): Promise<{ tokens: number[] }> {
  const log = opts.log ?? (() => {});
  const seq = opts.seq ?? 8;
  const t0 = performance.now();
  const graph = buildTinyGpt();
  const cfg = TINY_GPT;
  log(
    `tiny-gpt: vocab ${cfg.vocab}, hidden ${cfg.hidden}, ${cfg.heads} heads, ${cfg.layers} layers, ffn ${cfg.ffn}` +
      ` — ${graph.nodes.length} nodes, ${graph.constants.length} constants (${(performance.now() - t0).toFixed(1)} ms)`,
  );
  log(`ops: ${opCounts(graph)}`);
  const backend = opts.backend ?? 'reference';
  log(`passes: none yet — the graph runs as built (fusion / quantization passes are tracked as separate issues)`);
  const session = await compile(graph, { backend });
  log(`backend: ${session.backend}`);
  const ids = Array.from({ length: seq }, (_, i) => (i * 37 + 11) % cfg.vocab);
  const t1 = performance.now();
  const out = await session.run({ input_ids: makeTensor('i64', [1, seq], ids) });
  const ms = performance.now() - t1;
  const logits = out['logits']!;
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
  log(`ran ${seq} tokens in ${ms.toFixed(1)} ms on ${session.backend}`);
  session.dispose();
  return { tokens };
}
