/**
 * Imported ONNX decoders through the generation runtime (`LanguageModelSession.fromOnnx`): the cache layout read from
 * the names, the cache kept on the device between steps, greedy ids equal to a step-by-step loop of the float64
 * reference (`interpret`) on the graph as imported, a bounded number of bytes crossing host ↔ device per decode step.
 *
 * - model_gpt2_past (GPT-2 packed `past_N` ↔ `present_N`, one token per run, positions made inside the model, output
 *   `last_state`: hidden states, so the argmax ranges over the hidden size — a deterministic check of the runtime,
 *   not language). Its position table has 8 rows, so the model as shipped generates 8 tokens after a 1-token prompt;
 *   the 20-token run widens the position table and the causal-mask buffers to 32 rows in the ONNX initializers
 *   (graph unchanged).
 * - a tiny Optimum-layout decoder built here (`past_key_values.N.key|value` ↔ `present.N.*`, `attention_mask` added
 *   to the scores as exporters write it, `position_ids` into a position table): the runtime feeds the mask and
 *   positions with the prompt and extends them on the device; a batch of left-padded prompts equals each prompt alone.
 * - bad layouts are typed errors naming the tensor.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import '../../ir/ops/index.js';
import { GraphBuilder } from '../../ir/builder.js';
import { KilnError, UnsupportedError, VerifyError } from '../../ir/errors.js';
import { Value, type Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { tensorType } from '../../ir/types.js';
import { importOnnx, importOnnxModel } from '../../src/frontends/onnx/import.js';
import { decodeModel } from '../../src/frontends/onnx/proto.js';
import { LanguageModelSession } from '../../src/generate/lm.js';
import { generateText } from '../../src/generate/text.js';
import type { Tokenizer } from '../../src/tokenizers/types.js';
import { describeDecoder } from '../../src/generate/onnx-decoder.js';
import { buildTinyGpt } from '../../src/models/tiny-gpt.js';
import type { BackendName } from '../../src/session.js';
import { deviceBackends } from '../helpers/device-backends.js';
import { CONFORMANCE } from '../helpers/paths.js';

const backends: BackendName[] = ['reference', ...(await deviceBackends())];
const sessions: LanguageModelSession[] = [];
afterAll(() => sessions.forEach((s) => s.dispose()));

const GPT2_BYTES = readFileSync(join(CONFORMANCE, 'models/model_gpt2_past/model.onnx'));
const gpt2 = (): Graph => importOnnx(GPT2_BYTES).graph;

/** model_gpt2_past with its position table and causal-mask buffers grown from 8 to `rows` positions. */
function gpt2Widened(rows: number): Graph {
  const m = decodeModel(GPT2_BYTES);
  let widened = 0;
  for (const t of m.graph.initializers) {
    if (t.name.startsWith('wpe.')) {
      const [n, d] = t.dims as [number, number];
      const v = new Float64Array(rows * d);
      v.set(t.values as Float64Array);
      // new rows: small deterministic values, like the trained ones in scale
      for (let i = n * d; i < v.length; i++) v[i] = 0.1 * Math.sin(i * 1.7 + 0.3);
      t.dims = [rows, d];
      t.values = v;
      widened++;
    } else if (/\.attn\.bias/.test(t.name) && t.dims.length === 4) {
      const v = new Float64Array(rows * rows);
      for (let i = 0; i < rows; i++) for (let j = 0; j <= i; j++) v[i * rows + j] = 1;
      t.dims = [1, 1, rows, rows];
      t.values = v;
      widened++;
    }
  }
  if (widened !== 13) throw new Error(`expected the position table and 12 mask buffers, widened ${widened}`);
  return importOnnxModel(m).graph;
}

function argmaxLast(t: Tensor): number {
  const n = t.shape[t.shape.length - 1]!;
  const off = t.data.length - n;
  let best = 0;
  for (let i = 1; i < n; i++) if (t.data[off + i]! > t.data[off + best]!) best = i;
  return best;
}

/**
 * Greedy ids by the float64 reference, step by step on the graph as imported: each step's present_* fed back as
 * past_*, the mask and positions written out here (not by the code under test).
 */
function referenceGreedy(
  graph: Graph,
  o: { cache: [string, string][]; out: string; emptyPast: (name: string) => Tensor; perRun: number },
  prompt: readonly number[],
  n: number,
  penalty = 1,
): number[] {
  const inputs = new Set(graph.inputs.map((v) => v.name));
  let past: Record<string, Tensor> = {};
  for (const [p] of o.cache) past[p] = o.emptyPast(p);
  const got: number[] = [];
  let pos = 0;
  let ids = [...prompt];
  while (got.length < n) {
    const run = ids.slice(0, o.perRun);
    const feeds: Record<string, Tensor> = { input_ids: makeTensor('i64', [1, run.length], run), ...past };
    if (inputs.has('position_ids')) {
      feeds['position_ids'] = makeTensor(
        'i64',
        [1, run.length],
        run.map((_, i) => pos + i),
      );
    }
    if (inputs.has('attention_mask')) {
      feeds['attention_mask'] = makeTensor('i64', [1, pos + run.length], new Array(pos + run.length).fill(1));
    }
    const out = interpret(graph, feeds);
    past = {};
    for (const [p, q] of o.cache) past[p] = out[q]!;
    pos += run.length;
    ids = ids.slice(run.length);
    if (ids.length === 0) {
      const row = Array.from(out[o.out]!.data.slice(-out[o.out]!.shape.at(-1)!));
      // CTRL-style repetition penalty over the prompt and the ids so far (positive divided, negative multiplied)
      for (const t of new Set([...prompt, ...got])) {
        if (t < row.length) row[t] = row[t]! > 0 ? row[t]! / penalty : row[t]! * penalty;
      }
      const next = argmaxLast(makeTensor('f64', [row.length], row));
      got.push(next);
      ids = [next];
    }
  }
  return got;
}

const GPT2_REF = {
  cache: Array.from({ length: 12 }, (_, l): [string, string] => [`past_${l}`, `present_${l}`]),
  out: 'last_state',
  emptyPast: () => makeTensor('f32', [2, 1, 2, 0, 2]),
  perRun: 1,
};

type Io = { write(b: unknown, bytes: Uint8Array): void; read(b: unknown, n: number): Promise<Uint8Array> };

/** Generate, counting host ↔ device bytes per decode step through the session's backend (device sessions). */
async function generateCounting(lm: LanguageModelSession, prompt: readonly number[], n: number, penalty = 1) {
  const be = (lm.session as unknown as { executor?: { backend: Io } }).executor?.backend;
  const io = { up: 0, down: 0, biggest: 0 };
  if (be) {
    const w = be.write.bind(be);
    const r = be.read.bind(be);
    be.write = (buf: unknown, bytes: Uint8Array) => (
      (io.up += bytes.byteLength),
      (io.biggest = Math.max(io.biggest, bytes.byteLength)),
      w(buf, bytes)
    );
    be.read = async (buf: unknown, k: number) => ((io.down += k), r(buf, k));
  }
  const ids: number[] = [];
  const steps: { up: number; down: number; biggest: number }[] = [];
  for await (const id of lm.generate(prompt, { maxTokens: n, repetitionPenalty: penalty })) {
    ids.push(id);
    steps.push({ ...io });
    io.up = io.down = io.biggest = 0;
  }
  return { ids, steps, counted: be !== undefined };
}

/**
 * Per decode step (after the prompt's runs): token ids, shape scalars and the error flag, plus `growing(total)` bytes
 * the model itself derives from shapes on the host — never the cache (which grows by a layer's K + V row per token).
 */
function expectBoundedIo(
  r: Awaited<ReturnType<typeof generateCounting>>,
  promptLen: number,
  growing: (total: number) => { up: number; biggest: number } = () => ({ up: 0, biggest: 0 }),
): void {
  if (!r.counted) return;
  for (const [i, s] of r.steps.entries()) {
    if (i === 0) continue;
    const g = growing(promptLen + i);
    expect(s.biggest, `step ${i}`).toBeLessThanOrEqual(Math.max(16, g.biggest));
    expect(s.up, `step ${i}`).toBeLessThanOrEqual(64 + g.up);
    expect(s.down, `step ${i}`).toBeLessThanOrEqual(64);
  }
}

/**
 * model_gpt2_past slices each layer's causal mask [1, 1, 1, total] out of a constant buffer by shape-derived bounds:
 * the executor computes that on the host and uploads it, one byte per position per layer (bool, padded to 4). The
 * cache of one layer is 32 bytes per position.
 */
const gpt2Growing = (total: number) => {
  const row = 4 * Math.ceil(total / 4);
  return { up: 12 * row, biggest: row };
};

describe('decoder layouts', () => {
  it('model_gpt2_past: GPT-2 packed cache, one token per run, hidden states as the output', () => {
    const d = describeDecoder(gpt2());
    expect(d.layout).toBe('gpt2-packed');
    expect(d.layers).toBe(12);
    expect(d.cache[3]).toEqual({ past: 'past_3', present: 'present_3' });
    expect(d.logits).toBe('last_state');
    expect(d.hiddenStates).toBe(true);
    expect(d.pastAxis).toBe(3);
    expect(d.tokensPerRun).toBe(1);
    expect(d.attentionMask).toBeUndefined();
    expect(d.positionIds).toBeUndefined();
  });

  it('optimum names: key before value per layer, mask and positions found', () => {
    const d = describeDecoder(optimumDecoder());
    expect(d.layout).toBe('optimum');
    expect(d.cache.slice(0, 3)).toEqual([
      { past: 'past_key_values.0.key', present: 'present.0.key' },
      { past: 'past_key_values.0.value', present: 'present.0.value' },
      { past: 'past_key_values.1.key', present: 'present.1.key' },
    ]);
    expect(d.hiddenStates).toBe(false);
    expect(d.pastAxis).toBe(2);
    expect(d.attentionMask).toBe('attention_mask');
    expect(d.positionIds).toBe('position_ids');
    expect(d.tokensPerRun).toBeUndefined();
  });

  it('the tiny decoder reads its mask: masking a prompt token changes the logits (reference)', () => {
    const g = optimumDecoder();
    const feeds = (mask: number[]) => ({
      input_ids: makeTensor('i64', [1, 3], [3, 17, 9]),
      position_ids: makeTensor('i64', [1, 3], [0, 1, 2]),
      attention_mask: makeTensor('i64', [1, 3], mask),
      ...Object.fromEntries(OPTIMUM_REF.cache.map(([p]) => [p, OPTIMUM_REF.emptyPast()])),
    });
    const a = interpret(g, feeds([1, 1, 1]))['logits']!;
    const b = interpret(g, feeds([0, 1, 1]))['logits']!;
    expect(a.data.slice(-24)).not.toEqual(b.data.slice(-24));
  });

  it('bad models are typed errors naming the tensor', () => {
    const noPresent = gpt2();
    noPresent.outputs = noPresent.outputs.filter((o) => o.name !== 'present_3');
    expect(() => describeDecoder(noPresent)).toThrow(VerifyError);
    expect(() => describeDecoder(noPresent)).toThrow(/'past_3' has no 'present_3'/);

    const renamed = optimumDecoder();
    renamed.outputs.find((o) => o.name === 'present.1.value')!.name = 'present.1.val';
    expect(() => describeDecoder(renamed)).toThrow(/past_key_values\.1\.value' has no 'present\.1\.value'/);

    const stray = gpt2();
    stray.outputs.find((o) => o.name === 'present_11')!.name = 'present_12';
    expect(() => describeDecoder(stray)).toThrow(/past_11/);

    const unknown = gpt2();
    unknown.inputs.find((v) => v.name === 'past_0')!.name = 'past_kv0';
    expect(() => describeDecoder(unknown)).toThrow(UnsupportedError);
    expect(() => describeDecoder(unknown)).toThrow(/past_kv0/);

    const mixed = optimumDecoder();
    mixed.inputs.find((v) => v.name === 'past_key_values.1.key')!.name = 'past_key_1';
    mixed.outputs.find((o) => o.name === 'present.1.key')!.name = 'present_key_1';
    expect(() => describeDecoder(mixed)).toThrow(/'past_key_1' is kiln but the other cache inputs are optimum/);

    const halfLayer = optimumDecoder();
    halfLayer.inputs = halfLayer.inputs.filter((v) => v.name !== 'past_key_values.1.value');
    halfLayer.outputs = halfLayer.outputs.filter((o) => o.name !== 'present.1.value');
    expect(() => describeDecoder(halfLayer)).toThrow(/layer 1 has 1 cache inputs/);

    expect(() =>
      describeDecoder(buildTinyGpt({ vocab: 16, hidden: 8, heads: 2, layers: 1, ffn: 16, seed: 1 })),
    ).toThrow(/needs past_\* cache inputs/);

    const extra = optimumDecoder();
    extra.inputs.push(new Value('token_type_ids', tensorType('i64', ['batch', 'seq'])));
    expect(() => describeDecoder(extra)).toThrow(/'token_type_ids' is not one the runtime can produce/);

    expect(() => describeDecoder(gpt2(), { logits: 'nope' })).toThrow(KilnError);
  });
});

describe.each(backends)('%s: model_gpt2_past through generate()', (backend) => {
  it('as shipped (8 positions): 8 greedy tokens equal the reference loop; maxSeq stops it', async () => {
    const expected = referenceGreedy(gpt2(), GPT2_REF, [5], 8);
    const lm = await LanguageModelSession.fromOnnx(gpt2(), { backend, maxSeq: 8 });
    sessions.push(lm);
    expect(lm.layout!.layout).toBe('gpt2-packed');
    const r = await generateCounting(lm, [5], 20);
    expect(r.ids).toEqual(expected);
    expectBoundedIo(r, 1, gpt2Growing);
  });

  it('widened to 32 positions: a 3-token prompt (prefilled a token per run) and 20 greedy tokens', async () => {
    const prompt = [5, 11, 2];
    const expected = referenceGreedy(gpt2Widened(32), GPT2_REF, prompt, 20);
    const lm = await LanguageModelSession.fromOnnx(gpt2Widened(32), { backend });
    sessions.push(lm);
    const r = await generateCounting(lm, prompt, 20);
    expect(r.ids).toEqual(expected);
    expect(r.ids).toHaveLength(20);
    expectBoundedIo(r, prompt.length, gpt2Growing);
    // the hidden state's argmax is nearly always 3; a repetition penalty (last_logits read to the host) makes the fed
    // ids vary, so the cache carries different tokens
    const varied = referenceGreedy(gpt2Widened(32), GPT2_REF, prompt, 20, 4);
    expect(new Set(varied).size).toBeGreaterThan(2);
    const rv = await generateCounting(lm, prompt, 20, 4);
    expect(rv.ids).toEqual(varied);
    expectBoundedIo(rv, prompt.length, gpt2Growing);
  });
});

/** A tiny decoder with Optimum's names: mask and positions as inputs, the cache in past_key_values.N.key|value. */
function optimumDecoder(): Graph {
  const vocab = 24;
  const d = 8;
  const heads = 2;
  const hd = d / heads;
  const layers = 2;
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  const b = new GraphBuilder('optimum_tiny');
  const w = (name: string, shape: number[], s: number) =>
    b.weight(
      name,
      makeTensor(
        'f32',
        shape,
        Array.from({ length: shape.reduce((a, c) => a * c, 1) }, () => rand() * s),
      ),
    );
  const ids = b.input('input_ids', 'i64', ['batch', 'seq']);
  const mask = b.input('attention_mask', 'i64', ['batch', 'total']);
  const positions = b.input('position_ids', 'i64', ['batch', 'seq']);
  let x = b.add(b.gather(w('wte', [vocab, d], 1), ids, 0), b.gather(w('wpe', [64, d], 0.5), positions, 0));
  // as exporters write it: (1 - mask) · large negative, added to the scores (finite, so fully padded rows stay finite)
  const fmask = b.op('cast', [mask], { to: 'f32' });
  const negative = b.mul(b.sub(b.const('f32', [1], []), fmask), b.const('f32', [-1e4], []));
  const bmask = b.reshape(negative, [0, 1, 1, -1]);
  const presents: [string, ReturnType<typeof b.input>][] = [];
  for (let l = 0; l < layers; l++) {
    const pk = b.input(`past_key_values.${l}.key`, 'f32', ['batch', heads, 'past', hd]);
    const pv = b.input(`past_key_values.${l}.value`, 'f32', ['batch', heads, 'past', hd]);
    const ones = b.weight(`ln${l}.g`, makeTensor('f32', [d], new Array(d).fill(1)));
    const zeros = b.weight(`ln${l}.b`, makeTensor('f32', [d], new Array(d).fill(0)));
    const h = b.layerNorm(x, ones, zeros);
    const q = b.matmul(h, w(`wq${l}`, [d, d], 0.6));
    const k = b.matmul(h, w(`wk${l}`, [d, d], 0.6));
    const v = b.matmul(h, w(`wv${l}`, [d, d], 0.6));
    const [y, nk, nv] = b.opN(
      'attention',
      [q, k, v, bmask, pk, pv],
      { is_causal: true, q_num_heads: heads, kv_num_heads: heads },
      3,
    );
    x = b.add(x, b.matmul(y!, w(`wo${l}`, [d, d], 0.5)));
    presents.push([`present.${l}.key`, nk!], [`present.${l}.value`, nv!]);
  }
  b.output(b.matmul(x, w('lm_head', [d, vocab], 1)), 'logits');
  for (const [name, v] of presents) b.output(v, name);
  return b.build();
}

const OPTIMUM_REF = {
  cache: Array.from({ length: 2 }, (_, l): [string, string][] => [
    [`past_key_values.${l}.key`, `present.${l}.key`],
    [`past_key_values.${l}.value`, `present.${l}.value`],
  ]).flat(),
  out: 'logits',
  emptyPast: () => makeTensor('f32', [1, 2, 0, 4]),
  perRun: Infinity,
};

describe.each(backends)('%s: an Optimum-layout decoder through generate()', (backend) => {
  it('mask and positions made by the runtime: 20 greedy tokens equal the reference loop', async () => {
    const prompt = [3, 17, 9, 1];
    const expected = referenceGreedy(optimumDecoder(), OPTIMUM_REF, prompt, 20);
    expect(new Set(expected).size, 'a sequence that is not one id repeated').toBeGreaterThan(3);
    const lm = await LanguageModelSession.fromOnnx(optimumDecoder(), { backend });
    sessions.push(lm);
    expect(lm.layout!.layout).toBe('optimum');
    // the mask is fed once with the prompt, then extended on the device by the model's next_attention_mask output
    expect(lm.session.outputNames).toContain('next_attention_mask');
    const r = await generateCounting(lm, prompt, 20);
    expect(r.ids).toEqual(expected);
    // nothing grows: the mask is made on the device, positions and ids come from the previous run
    expectBoundedIo(r, prompt.length);
  });
});

/** A character tokenizer over the tiny decoder's 24 ids, attached by the caller (no BOS / EOS). */
const CHARS = 'abcdefghijklmnopqrstuvwx';
const charTokenizer: Tokenizer = {
  vocabSize: CHARS.length,
  bos: undefined,
  eos: undefined,
  encode: (text) => [...text].map((c) => CHARS.indexOf(c)),
  decode: (ids) => ids.map((i) => CHARS[i]).join(''),
  streamDecoder: () => ({ push: (id) => CHARS[id]!, flush: () => '' }),
};

describe.each(backends)('%s: text through an attached tokenizer', (backend) => {
  it('generateText streams the decoded greedy ids of the reference loop', async () => {
    const expected = referenceGreedy(optimumDecoder(), OPTIMUM_REF, charTokenizer.encode('kiln'), 16);
    const lm = await LanguageModelSession.fromOnnx(optimumDecoder(), { backend });
    sessions.push(lm);
    let text = '';
    for await (const piece of generateText(lm, charTokenizer, 'kiln', { maxTokens: 16 })) text += piece;
    expect(text).toBe(charTokenizer.decode(expected));
  });
});

describe.each(backends)('%s: a batch of left-padded prompts (generateBatch)', (backend) => {
  it('each row equals its prompt decoded alone by the reference loop', async () => {
    const prompts = [[3, 17, 9, 1, 22], [8], [5, 5, 12]];
    const expected = prompts.map((p) => referenceGreedy(optimumDecoder(), OPTIMUM_REF, p, 12));
    const lm = await LanguageModelSession.fromOnnx(optimumDecoder(), { backend });
    sessions.push(lm);
    const be = (lm.session as unknown as { executor?: { backend: Io } }).executor?.backend;
    let up = 0;
    if (be) {
      const w = be.write.bind(be);
      be.write = (buf: unknown, bytes: Uint8Array) => ((up += bytes.byteLength), w(buf, bytes));
    }
    expect(await lm.generateBatch(prompts, { maxTokens: 12, padId: 7 })).toEqual(expected);
    // a row stops at its stop id, the others go on
    const stopAt = expected[1]![3]!;
    up = 0;
    const cut = await lm.generateBatch(prompts, { maxTokens: 12, stop: [stopAt] });
    cut.forEach((row, r) => {
      const i = expected[r]!.indexOf(stopAt);
      expect(row).toEqual(i < 0 ? expected[r] : expected[r]!.slice(0, i));
    });
    // uploads of the whole call: ids, positions and mask [3, 5] and four sampling parameters per row once (32-bit on
    // the device), then at most a few bytes per step — a mask or cache re-uploaded per step would be 60+ bytes each
    if (be) expect(up).toBeLessThanOrEqual(3 * 4 * 3 * 5 + 4 * 4 * 3 + 8 * 12);
  });

  it('different lengths without a mask input is a typed error', async () => {
    const lm = await LanguageModelSession.fromOnnx(gpt2(), { backend });
    sessions.push(lm);
    await expect(lm.generateBatch([[1], [2, 3]])).rejects.toThrow(/need a model with attention_mask and position_ids/);
    await expect(
      lm.generateBatch([
        [1, 4],
        [2, 3],
      ]),
    ).rejects.toThrow(KilnError);
  });
});
