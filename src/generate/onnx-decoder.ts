/**
 * Imported decoders for the generation runtime. An ONNX decoder exported with a KV cache names its cache inputs and
 * outputs after its exporter; this module reads the layout from the names and shapes and makes the graph one that
 * `LanguageModelSession` runs like a kiln-built model:
 *
 * - Optimum / transformers.js: `past_key_values.{i}.key|value` in, `present.{i}.key|value` out;
 * - GPT-2 packed (the original ONNX model zoo export): `past_{i}` [2, batch, heads, past, head] in, `present_{i}` out;
 * - kiln's own: `past_key_{i}` / `past_value_{i}` in, `present_key_{i}` / `present_value_{i}` out.
 *
 * An `attention_mask` input stays an input, and the graph gets an output `next_attention_mask` (the mask and a column
 * of ones, made on the device) that the runtime feeds back: the mask crosses to the device once, with the prompt (left
 * padding included), and like the cache never again. `position_ids` is fed with the prompt, then made on the device by
 * the sampling head. The output generation reads is `logits`, or else the first output that is not a cache: a model
 * that returns hidden states (model_gpt2_past's `last_state`) generates by the argmax over its hidden size —
 * deterministic, not a language model's tokens. Bad layouts are typed errors naming the tensor.
 */
import { UnsupportedError, VerifyError } from '../../ir/errors.js';
import type { Graph } from '../../ir/graph.js';
import { GraphExtender } from './extend.js';

export type CacheLayout = 'optimum' | 'gpt2-packed' | 'kiln';

/** One cache tensor: the graph input a step reads and the output it returns, fed back as that input next step. */
export interface CachePair {
  past: string;
  present: string;
}

export interface DecoderLayout {
  layout: CacheLayout;
  /** Layer by layer (key before value where they are separate). */
  cache: CachePair[];
  layers: number;
  /** The output generation reads (before it is renamed `logits`). */
  logits: string;
  /** True when that output is not named logits (hidden states, say): its last dim is what the argmax ranges over. */
  hiddenStates: boolean;
  /** The axis of a past input that grows by one per token. */
  pastAxis: number;
  attentionMask: string | undefined;
  positionIds: string | undefined;
  /** input_ids' sequence dim when the model fixes it (model_gpt2_past: 1): the most tokens one run takes. */
  tokensPerRun: number | undefined;
}

const PATTERNS: { layout: CacheLayout; past: RegExp; present: (m: RegExpMatchArray) => string; layer: number }[] = [
  {
    layout: 'optimum',
    past: /^past_key_values\.(\d+)\.(key|value)$/,
    present: (m) => `present.${m[1]}.${m[2]}`,
    layer: 1,
  },
  { layout: 'kiln', past: /^past_(key|value)_(\d+)$/, present: (m) => `present_${m[1]}_${m[2]}`, layer: 2 },
  { layout: 'gpt2-packed', past: /^past_(\d+)$/, present: (m) => `present_${m[1]}`, layer: 1 },
];

const isCacheName = (name: string): boolean => /^past[_.]/.test(name);
const isPresentName = (name: string): boolean => /^present[_.]/.test(name);

/** The cache layout, mask / position inputs and the output to generate from, read from a decoder's names and shapes. */
export function describeDecoder(graph: Graph, opts: { logits?: string } = {}): DecoderLayout {
  const ids = graph.inputs.find((v) => v.name === 'input_ids');
  if (!ids) throw new VerifyError('a decoder needs an input_ids input', { tensor: 'input_ids' });
  if (ids.type.shape.length !== 2 || (ids.type.dtype !== 'i64' && ids.type.dtype !== 'i32')) {
    throw new VerifyError(
      `input_ids must be an integer [batch, seq] tensor, got ${ids.type.dtype}[${ids.type.shape}]`,
      {
        tensor: 'input_ids',
      },
    );
  }
  const outputs = new Map(graph.outputs.map((v) => [v.name, v]));
  const cache: (CachePair & { layer: number; kv: number })[] = [];
  let layout: CacheLayout | undefined;
  for (const v of graph.inputs) {
    if (!isCacheName(v.name)) continue;
    const hit = PATTERNS.map((p) => ({ p, m: v.name.match(p.past) })).find((x) => x.m);
    if (!hit) {
      throw new UnsupportedError(
        `cache input '${v.name}' matches no known layout (past_key_values.N.key|value, past_N, past_key_N|past_value_N)`,
        { tensor: v.name },
      );
    }
    const { p, m } = hit;
    if (layout && layout !== p.layout) {
      throw new VerifyError(`cache input '${v.name}' is ${p.layout} but the other cache inputs are ${layout}`, {
        tensor: v.name,
      });
    }
    layout = p.layout;
    const present = p.present(m!);
    const out = outputs.get(present);
    if (!out) {
      throw new VerifyError(`cache input '${v.name}' has no '${present}' output to feed it back from`, {
        tensor: v.name,
      });
    }
    if (out.type.dtype !== v.type.dtype || out.type.shape.length !== v.type.shape.length) {
      throw new VerifyError(
        `'${present}' (${out.type.dtype}, rank ${out.type.shape.length}) cannot be fed back as '${v.name}' ` +
          `(${v.type.dtype}, rank ${v.type.shape.length})`,
        { tensor: present },
      );
    }
    const kv = m!.length > 2 ? (m![p.layer === 1 ? 2 : 1] === 'key' ? 0 : 1) : 0;
    cache.push({ past: v.name, present, layer: Number(m![p.layer]), kv });
  }
  if (!layout) throw new VerifyError('a decoder needs past_* cache inputs paired with present_* outputs');
  const paired = new Set(cache.map((c) => c.present));
  for (const o of graph.outputs) {
    if (isPresentName(o.name) && !paired.has(o.name)) {
      throw new VerifyError(`output '${o.name}' has no cache input it feeds`, { tensor: o.name });
    }
  }
  cache.sort((a, b) => a.layer - b.layer || a.kv - b.kv);
  const layers = new Set(cache.map((c) => c.layer)).size;
  const perLayer = layout === 'gpt2-packed' ? 1 : 2;
  for (let l = 0; l < layers; l++) {
    const got = cache.filter((c) => c.layer === l).length;
    if (got !== perLayer) {
      throw new VerifyError(`layer ${l} has ${got} cache inputs, a ${layout} decoder has ${perLayer} per layer`, {
        tensor: cache.find((c) => c.layer === l)?.past ?? `layer ${l}`,
      });
    }
  }
  // the past length: the one symbolic dim of the first cache that is not the batch
  const batchDim = ids.type.shape[0];
  const first = graph.inputs.find((v) => v.name === cache[0]!.past)!;
  const growing = first.type.shape.flatMap((d, i) => (typeof d === 'string' && d !== batchDim ? [i] : []));
  if (growing.length !== 1) {
    throw new UnsupportedError(
      `cache input '${first.name}' [${first.type.shape}] needs exactly one symbolic past-length dim besides the batch`,
      { tensor: first.name },
    );
  }
  const logits =
    opts.logits ?? (outputs.has('logits') ? 'logits' : graph.outputs.find((o) => !paired.has(o.name))?.name);
  if (logits === undefined || !outputs.has(logits) || paired.has(logits)) {
    throw new VerifyError(`decoder has no output to generate from${opts.logits ? ` named '${opts.logits}'` : ''}`, {
      tensor: opts.logits ?? 'logits',
    });
  }
  const lt = outputs.get(logits)!.type;
  if (lt.shape.length < 2 || (lt.dtype !== 'f32' && lt.dtype !== 'f16')) {
    throw new VerifyError(`output '${logits}' must be float [..., seq, vocab], got ${lt.dtype}[${lt.shape}]`, {
      tensor: logits,
    });
  }
  const known = new Set(['input_ids', 'attention_mask', 'position_ids', ...cache.map((c) => c.past)]);
  for (const v of graph.inputs) {
    if (!known.has(v.name)) {
      throw new UnsupportedError(`decoder input '${v.name}' is not one the runtime can produce`, { tensor: v.name });
    }
  }
  const has = (n: string) => (graph.inputs.some((v) => v.name === n) ? n : undefined);
  const seq = ids.type.shape[1];
  return {
    layout,
    cache: cache.map(({ past, present }) => ({ past, present })),
    layers,
    logits,
    hiddenStates: !/logits/i.test(logits),
    pastAxis: growing[0]!,
    attentionMask: has('attention_mask'),
    positionIds: has('position_ids'),
    tokensPerRun: typeof seq === 'number' ? seq : undefined,
  };
}

/**
 * Make an imported decoder ready for `LanguageModelSession` (in place): the generation output renamed `logits`; an
 * `attention_mask` input gets an output `next_attention_mask` (the mask with a column of ones appended, made on the
 * device from input_ids) that the runtime feeds back as the next step's mask, so the mask crosses to the device once,
 * with the prompt (left padding included), and never again. Returns the layout (`mask`: that input / output pair).
 */
export function adaptDecoder(graph: Graph, opts: { logits?: string } = {}): DecoderLayout & { mask?: CachePair } {
  const d = describeDecoder(graph, opts);
  const names = new Set([...graph.values()].map((v) => v.name));
  if (d.logits !== 'logits') {
    if (names.has('logits')) {
      throw new VerifyError(`cannot name '${d.logits}' logits: a value already has that name`, { tensor: 'logits' });
    }
    graph.outputs.find((o) => o.name === d.logits)!.name = 'logits';
  }
  if (!d.attentionMask) return d;
  const mask = graph.inputs.find((v) => v.name === d.attentionMask)!;
  if (
    mask.type.shape.length !== 2 ||
    mask.type.shape[0] !== graph.inputs.find((v) => v.name === 'input_ids')!.type.shape[0]
  ) {
    throw new UnsupportedError(`attention_mask must be [batch, past + seq], got [${mask.type.shape}]`, {
      tensor: mask.name,
    });
  }
  const next = `next_${mask.name}`;
  if (names.has(next)) throw new VerifyError(`a value is already named '${next}'`, { tensor: next });
  const x = new GraphExtender(graph);
  const ids = graph.inputs.find((v) => v.name === 'input_ids')!;
  // ones [batch, 1] computed from input_ids (not from a constant, which would make it a host value uploaded each step)
  const first = x.op('gather', [ids, x.constI64([0])], { axis: 1 });
  const truth = x.op('equal', [first, first]);
  const ones = mask.type.dtype === 'bool' ? truth : x.op('cast', [truth], { to: mask.type.dtype });
  x.addOutput(x.op('concat', [mask, ones], { axis: 1 }), next);
  return { ...d, mask: { past: mask.name, present: next } };
}
