import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import { KilnError, VerifyError } from '../../ir/errors.js';
import '../../ir/index.js';
import { interpret } from '../../ir/interpret.js';
import type { Attrs } from '../../ir/registry.js';
import type { Dim } from '../../ir/shape.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import type { DType } from '../../ir/dtype.js';
import { importOnnxModel } from '../../src/frontends/onnx/import.js';
import type { OnnxAttribute, OnnxModel } from '../../src/frontends/onnx/proto.js';
import { PROP_RUNS } from '../helpers/paths.js';

/** Run one op on concrete inputs (absent optional inputs as null); returns all its outputs. */
function run(op: string, ins: readonly (Tensor | null)[], attrs: Attrs = {}, numOutputs = 1): Tensor[] {
  const b = new GraphBuilder('t');
  const feeds: Record<string, Tensor> = {};
  const vals = ins.map((t, i) => {
    if (!t) return null;
    feeds[`in${i}`] = t;
    return b.input(`in${i}`, t.dtype, t.shape);
  });
  const outs = b.opN(op, vals, attrs, numOutputs);
  outs.forEach((o, i) => b.output(o, `out${i}`));
  const r = interpret(b.build(), feeds);
  return outs.map((_, i) => r[`out${i}`]!);
}

/** Output types of one op applied to symbolic input types. */
function inferShapes(
  op: string,
  ins: readonly ([DType, Dim[]] | null)[],
  attrs: Attrs = {},
  numOutputs = 1,
): (readonly Dim[])[] {
  const b = new GraphBuilder('t');
  const vals = ins.map((t, i) => (t ? b.input(`in${i}`, t[0], t[1]) : null));
  return b.opN(op, vals, attrs, numOutputs).map((v) => v.type.shape);
}

/** The VerifyError thrown when adding the op, checked to name the node. */
function inferError(op: string, ins: readonly ([DType, Dim[]] | null)[], attrs: Attrs = {}): VerifyError {
  try {
    inferShapes(op, ins, attrs);
  } catch (e) {
    expect(e).toBeInstanceOf(VerifyError);
    const err = e as VerifyError;
    expect(err.location.node).toBe(`${op}_0`);
    expect(err.message).toContain(`node '${op}_0'`);
    return err;
  }
  throw new Error('expected a VerifyError');
}

const t64 = (shape: number[], data: number[]) => makeTensor('f64', shape, data);

function expectClose(got: Tensor, want: readonly number[] | Tensor, tol = 1e-12): void {
  const w = 'data' in want ? Array.from(want.data) : want;
  if ('shape' in want) expect(got.shape).toEqual(want.shape);
  expect(got.data.length).toBe(w.length);
  for (let i = 0; i < w.length; i++) {
    const g = got.data[i]!;
    expect(Number.isNaN(g)).toBe(false);
    expect(Math.abs(g - w[i]!)).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(w[i]!)));
  }
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const arbTensor = (shape: number[]) =>
  fc
    .array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: numel(shape), maxLength: numel(shape) })
    .map((d) => t64(shape, d));

/** x[b, h, s, d] of a 4-D [B, H, S, D] tensor. */
const at4 = (t: Tensor, b: number, h: number, s: number, d: number) => {
  const [, H, S, D] = t.shape as number[];
  return t.data[((b * H! + h) * S! + s) * D! + d]!;
};
function build4(shape: number[], f: (b: number, h: number, s: number, d: number) => number): Tensor {
  const [B, H, S, D] = shape as [number, number, number, number];
  const out: number[] = [];
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) for (let s = 0; s < S; s++) for (let d = 0; d < D; d++) out.push(f(b, h, s, d));
  return t64(shape, out);
}
/** Slice [.., .., from:to, ..] of a 4-D tensor. */
const seqSlice = (t: Tensor, from: number, to: number) =>
  build4([t.shape[0]!, t.shape[1]!, to - from, t.shape[3]!], (b, h, s, d) => at4(t, b, h, s + from, d));

describe('attention', () => {
  it('with a single key returns that key’s value for every query', () => {
    const q = t64([1, 1, 3, 2], [0.3, -1, 2, 0.5, -0.7, 1.1]);
    const k = t64([1, 1, 1, 2], [0.9, -0.4]);
    const v = t64([1, 1, 1, 4], [1, -2, 3, 0.25]);
    const [y] = run('attention', [q, k, v]);
    expectClose(y!, t64([1, 1, 3, 4], [1, -2, 3, 0.25, 1, -2, 3, 0.25, 1, -2, 3, 0.25]));
  });

  it('with Q = 0 (uniform scores) returns the mean of the value rows', () => {
    const q = t64([1, 1, 2, 2], [0, 0, 0, 0]);
    const k = t64([1, 1, 3, 2], [1, 2, -3, 4, 5, -6]);
    const v = t64([1, 1, 3, 2], [3, 0, 6, 3, 0, 9]);
    const [y] = run('attention', [q, k, v]);
    expectClose(y!, [3, 4, 3, 4]);
  });

  it('causal: the first query sees only the first key; the second weighs exp(scores) by hand', () => {
    // head size 1, scale 1: query 1 scores keys 0, 1 as [0, ln 3] → weights [1/4, 3/4]
    const q = t64([1, 1, 2, 1], [5, 1]);
    const k = t64([1, 1, 2, 1], [0, Math.log(3)]);
    const v = t64([1, 1, 2, 1], [4, 8]);
    const [y] = run('attention', [q, k, v], { is_causal: true, scale: 1 });
    expectClose(y!, [4, 0.25 * 4 + 0.75 * 8]);
  });

  it('default scale is 1/sqrt(head_size)', () => {
    // head size 4, scale 1/2: q·k0 = 0, q·k1 = 4 ln 2 → scores [0, ln 4] → weights [1/5, 4/5]
    const l = Math.log(2);
    const q = t64([1, 1, 1, 4], [1, 1, 1, 1]);
    const k = t64([1, 1, 2, 4], [0, 0, 0, 0, l, l, l, l]);
    const v = t64([1, 1, 2, 1], [10, 20]);
    const [y] = run('attention', [q, k, v]);
    expectClose(y!, [10 / 5 + (20 * 4) / 5]);
  });

  it('an additive mask shifts scores and a bool mask drops keys', () => {
    const q = t64([1, 1, 1, 1], [0]);
    const k = t64([1, 1, 3, 1], [1, 2, 3]);
    const v = t64([1, 1, 3, 1], [3, 6, 100]);
    const add = t64([1, 3], [0, Math.log(2), -Infinity]);
    expectClose(run('attention', [q, k, v, add])[0]!, [3 / 3 + (6 * 2) / 3]);
    const keep = makeTensor('bool', [3], [1, 1, 0]);
    expectClose(run('attention', [q, k, v, keep])[0]!, [4.5]);
  });

  it('mask_fill: a masked key gets the fill as its logit (weights by hand), a fully masked row is uniform', () => {
    // q = 1, k = [1, 2]: raw [1, 2]; mask [true, false] → logits [1, fill] with fill = 1 + ln 3 → weights [1/4, 3/4]
    const q = t64([1, 1, 1, 1], [1]);
    const k = t64([1, 1, 2, 1], [1, 2]);
    const v = t64([1, 1, 2, 1], [4, 8]);
    const keep = makeTensor('bool', [2], [1, 0]);
    expectClose(run('attention', [q, k, v, keep], { scale: 1, mask_fill: 1 + Math.log(3) })[0]!, [0.25 * 4 + 0.75 * 8]);
    const none = makeTensor('bool', [2], [0, 0]);
    expectClose(run('attention', [q, k, v, none], { scale: 1, mask_fill: -10000 })[0]!, [6]);
  });

  it('mask_fill needs a bool mask and a finite fill: a typed error naming the node otherwise', () => {
    const q = t64([1, 1, 1, 1], [1]);
    const k = t64([1, 1, 2, 1], [1, 2]);
    const v = t64([1, 1, 2, 1], [4, 8]);
    expect(() => run('attention', [q, k, v, t64([2], [0, 0])], { mask_fill: -1 })).toThrow(/mask_fill needs a bool/);
    const keep = makeTensor('bool', [2], [1, 0]);
    expect(() => run('attention', [q, k, v, keep], { mask_fill: -Infinity })).toThrow(/mask_fill needs a bool/);
  });

  it('a mask shorter than the keys masks the keys it does not cover', () => {
    const q = t64([1, 1, 1, 1], [0]);
    const k = t64([1, 1, 3, 1], [1, 2, 3]);
    const v = t64([1, 1, 3, 1], [2, 4, 1000]);
    expectClose(run('attention', [q, k, v, t64([1, 2], [0, 0])])[0]!, [3]);
  });

  it('a query whose keys are all masked outputs zeros (and zero weights)', () => {
    const q = t64([1, 1, 2, 1], [1, 1]);
    const k = t64([1, 1, 2, 1], [1, 2]);
    const v = t64([1, 1, 2, 1], [5, 7]);
    const mask = makeTensor('bool', [2, 2], [0, 0, 1, 0]);
    const [y, , , p] = run('attention', [q, k, v, mask], { qk_matmul_output_mode: 3 }, 4);
    expectClose(y!, [0, 5]);
    expectClose(p!, [0, 0, 1, 0]);
  });

  it('qk_matmul_output modes expose scaled QK, softcapped, biased and softmaxed scores', () => {
    const q = t64([1, 1, 1, 1], [2]);
    const k = t64([1, 1, 2, 1], [1, -3]);
    const v = t64([1, 1, 2, 1], [1, 2]);
    const mask = t64([1, 2], [0.5, -1]);
    const attrs = { scale: 0.5, softcap: 4 };
    const raw = [1, -3];
    const capped = raw.map((s) => 4 * Math.tanh(s / 4));
    const biased = [capped[0]! + 0.5, capped[1]! - 1];
    const e = biased.map(Math.exp);
    const probs = e.map((x) => x / (e[0]! + e[1]!));
    const out = (mode: number) => run('attention', [q, k, v, mask], { ...attrs, qk_matmul_output_mode: mode }, 4)[3]!;
    expectClose(out(0), raw);
    expectClose(out(1), capped);
    expectClose(out(2), biased);
    expectClose(out(3), probs);
    expectClose(run('attention', [q, k, v, mask], attrs)[0]!, [probs[0]! + 2 * probs[1]!]);
  });

  it('softcap keeps -inf mask entries masked (it applies before the mask)', () => {
    const q = t64([1, 1, 1, 1], [1]);
    const k = t64([1, 1, 2, 1], [1, 1]);
    const v = t64([1, 1, 2, 1], [3, 1000]);
    expectClose(run('attention', [q, k, v, t64([2], [0, -Infinity])], { softcap: 0.5 })[0]!, [3]);
  });

  it('past_key/past_value are prepended and returned as present_key/present_value', () => {
    const pk = t64([1, 1, 1, 1], [0]);
    const pv = t64([1, 1, 1, 1], [10]);
    const k = t64([1, 1, 1, 1], [Math.log(3)]);
    const v = t64([1, 1, 1, 1], [2]);
    const q = t64([1, 1, 1, 1], [1]);
    const [y, presK, presV] = run('attention', [q, k, v, null, pk, pv], { scale: 1, is_causal: true }, 3);
    expect(presK!.shape).toEqual([1, 1, 2, 1]);
    expectClose(presK!, [0, Math.log(3)]);
    expectClose(presV!, [10, 2]);
    // causal with a past: the query sits after the past, so it sees both keys: weights [1/4, 3/4]
    expectClose(y!, [2.5 + 1.5]);
  });

  it('nonpad_kv_seqlen ignores padded keys per batch', () => {
    const q = t64([2, 1, 1, 1], [0, 0]);
    const k = t64([2, 1, 3, 1], [1, 2, 3, 4, 5, 6]);
    const v = t64([2, 1, 3, 1], [1, 3, 99, 2, 4, 6]);
    const n = makeTensor('i64', [2], [2, 3]);
    expectClose(run('attention', [q, k, v, null, null, null, n])[0]!, [2, 4]);
  });

  it('3-D inputs split hidden into heads ([batch, seq, heads*size])', () => {
    // two heads of size 1, one key: each head returns its own value slot
    const q = t64([1, 2, 2], [1, 2, 3, 4]);
    const k = t64([1, 1, 2], [1, 1]);
    const v = t64([1, 1, 4], [1, 2, 3, 4]);
    const [y, pk] = run('attention', [q, k, v], { q_num_heads: 2, kv_num_heads: 2 }, 2);
    expectClose(y!, t64([1, 2, 4], [1, 2, 3, 4, 1, 2, 3, 4]));
    expect(pk!.shape).toEqual([1, 2, 1, 1]);
  });

  it('property: a masked-out key has no influence', () => {
    fc.assert(
      fc.property(
        arbTensor([1, 2, 3, 2]),
        arbTensor([1, 2, 4, 2]),
        arbTensor([1, 2, 4, 3]),
        fc.integer({ min: 0, max: 3 }),
        fc.double({ min: -50, max: 50, noNaN: true }),
        (q, k, v, j, junk) => {
          const mask = makeTensor(
            'bool',
            [4],
            [0, 1, 2, 3].map((i) => (i === j ? 0 : 1)),
          );
          const k2 = build4([1, 2, 4, 2], (b, h, s, d) => (s === j ? junk : at4(k, b, h, s, d)));
          const v2 = build4([1, 2, 4, 3], (b, h, s, d) => (s === j ? -junk : at4(v, b, h, s, d)));
          const drop = (t: Tensor) =>
            build4([1, 2, 3, t.shape[3]!], (b, h, s, d) => at4(t, b, h, s < j ? s : s + 1, d));
          const y1 = run('attention', [q, k, v, mask])[0]!;
          expectClose(run('attention', [q, k2, v2, mask])[0]!, y1, 1e-12);
          expectClose(run('attention', [q, drop(k), drop(v)])[0]!, y1, 1e-12);
        },
      ),
      { numRuns: PROP_RUNS },
    );
  });

  it('property: GQA equals MHA with each KV head repeated for its group of query heads', () => {
    fc.assert(
      fc.property(
        arbTensor([2, 6, 3, 2]),
        arbTensor([2, 2, 4, 2]),
        arbTensor([2, 2, 4, 3]),
        fc.boolean(),
        (q, k, v, causal) => {
          const rep = (t: Tensor) => build4([2, 6, 4, t.shape[3]!], (b, h, s, d) => at4(t, b, Math.floor(h / 3), s, d));
          const gqa = run('attention', [q, k, v], { is_causal: causal })[0]!;
          expectClose(gqa, run('attention', [q, rep(k), rep(v)], { is_causal: causal })[0]!);
        },
      ),
      { numRuns: PROP_RUNS },
    );
  });

  it('property: 3-D inputs equal 4-D ones after splitting heads', () => {
    fc.assert(
      fc.property(arbTensor([2, 3, 4, 2]), arbTensor([2, 1, 5, 2]), arbTensor([2, 1, 5, 3]), (q, k, v) => {
        // [B, H, S, D] → [B, S, H*D]
        const to3 = (t: Tensor) => {
          const [B, H, S, D] = t.shape as number[];
          const out: number[] = [];
          for (let b = 0; b < B!; b++)
            for (let s = 0; s < S!; s++)
              for (let h = 0; h < H!; h++) for (let d = 0; d < D!; d++) out.push(at4(t, b, h, s, d));
          return t64([B!, S!, H! * D!], out);
        };
        const y4 = run('attention', [q, k, v], { is_causal: true })[0]!;
        const y3 = run('attention', [to3(q), to3(k), to3(v)], { is_causal: true, q_num_heads: 3, kv_num_heads: 1 })[0]!;
        expectClose(y3, to3(y4));
      }),
      { numRuns: PROP_RUNS },
    );
  });

  it('property: a cache step equals attention over past ++ new keys (causal decode = full attention)', () => {
    fc.assert(
      fc.property(arbTensor([1, 2, 1, 2]), arbTensor([1, 2, 4, 2]), arbTensor([1, 2, 4, 2]), (q, kAll, vAll) => {
        const [pk, k] = [seqSlice(kAll, 0, 3), seqSlice(kAll, 3, 4)];
        const [pv, v] = [seqSlice(vAll, 0, 3), seqSlice(vAll, 3, 4)];
        const [y, presK, presV] = run('attention', [q, k, v, null, pk, pv], { is_causal: true }, 3);
        expectClose(presK!, kAll, 0);
        expectClose(presV!, vAll, 0);
        expectClose(y!, run('attention', [q, kAll, vAll])[0]!);
      }),
      { numRuns: PROP_RUNS },
    );
  });

  it('property: causal with nonpad_kv_seqlen aligns queries to the last valid key', () => {
    fc.assert(
      fc.property(
        arbTensor([1, 1, 2, 2]),
        arbTensor([1, 1, 5, 2]),
        arbTensor([1, 1, 5, 2]),
        fc.integer({ min: 2, max: 5 }),
        (q, k, v, n) => {
          const lens = makeTensor('i64', [1], [n]);
          const y = run('attention', [q, k, v, null, null, null, lens], { is_causal: true })[0]!;
          // same as a cache of the first n - 2 keys followed by the 2 new ones
          const want = run(
            'attention',
            [q, seqSlice(k, n - 2, n), seqSlice(v, n - 2, n), null, seqSlice(k, 0, n - 2), seqSlice(v, 0, n - 2)],
            { is_causal: true },
          )[0]!;
          expectClose(y, want);
        },
      ),
      { numRuns: PROP_RUNS },
    );
  });

  it('infers symbolic shapes: GQA with a cache and 3-D hidden inputs', () => {
    const [y, pk, pv, qk] = inferShapes(
      'attention',
      [
        ['f32', ['batch', 8, 'seq', 64]],
        ['f32', ['batch', 2, 'seq', 64]],
        ['f32', ['batch', 2, 'seq', 32]],
        ['bool', ['batch', 1, 'seq', 'total']],
        ['f32', ['batch', 2, 'past', 64]],
        ['f32', ['batch', 2, 'past', 32]],
      ],
      { is_causal: true },
      4,
    );
    expect(y).toEqual(['batch', 8, 'seq', 32]);
    expect(pk).toEqual(['batch', 2, 'past+seq', 64]);
    expect(pv).toEqual(['batch', 2, 'past+seq', 32]);
    expect(qk).toEqual(['batch', 8, 'seq', 'past+seq']);
    const [y3, pk3] = inferShapes(
      'attention',
      [
        ['f16', ['batch', 'seq', 512]],
        ['f16', ['batch', 'seq', 128]],
        ['f16', ['batch', 'seq', 128]],
      ],
      { q_num_heads: 8, kv_num_heads: 2 },
      2,
    );
    expect(y3).toEqual(['batch', 'seq', 512]);
    expect(pk3).toEqual(['batch', 2, 'seq', 64]);
  });

  it('rejects inconsistent heads and dims with located errors', () => {
    const f = (s: Dim[]): [DType, Dim[]] => ['f32', s];
    expect(inferError('attention', [f([1, 3, 2, 8]), f([1, 2, 2, 8]), f([1, 2, 2, 8])]).message).toContain(
      'multiple of kv heads',
    );
    expect(inferError('attention', [f([1, 2, 24]), f([1, 2, 24]), f([1, 2, 24])]).message).toContain('q_num_heads');
    expect(
      inferError('attention', [f([1, 2, 24]), f([1, 2, 24]), f([1, 2, 24])], { q_num_heads: 5, kv_num_heads: 3 })
        .message,
    ).toContain('not divisible');
    expect(inferError('attention', [f([1, 2, 2, 8]), f([1, 2, 2, 4]), f([1, 2, 2, 8])]).message).toContain('head size');
    expect(inferError('attention', [f([1, 2, 2, 8]), f([1, 2, 2, 8]), f([1, 2, 3, 8])]).message).toContain(
      'sequence lengths',
    );
    expect(inferError('attention', [f([1, 2, 2, 8]), f([1, 2, 8]), f([1, 2, 8])]).message).toContain('same rank');
    expect(inferError('attention', [f([1, 2, 2, 8]), f([1, 2, 3, 8]), f([1, 2, 3, 8]), f([3, 3])]).message).toContain(
      'does not broadcast',
    );
    expect(
      inferError('attention', [f([1, 2, 2, 8]), f([1, 2, 3, 8]), f([1, 2, 3, 8]), null, f([1, 2, 4, 8])]).message,
    ).toContain('together');
    expect(
      inferError('attention', [f([1, 2, 2, 8]), f([1, 2, 3, 8]), f([1, 2, 3, 8])], { qk_matmul_output_mode: 4 })
        .message,
    ).toContain('qk_matmul_output_mode');
    expect(
      inferError('attention', [f([1, 2, 2, 8]), f([1, 2, 3, 8]), f([1, 2, 3, 8]), ['i32', [2, 3]]]).message,
    ).toContain('bool or float');
  });

  it('imports ONNX Attention with skipped outputs (Y, , , qk_matmul_output)', () => {
    const attrs = new Map<string, OnnxAttribute>([['qk_matmul_output_mode', { kind: 'int', value: 3 }]]);
    const ti = (name: string, shape: number[]) => ({
      name,
      type: { kind: 'tensor' as const, elemType: 1, shape },
    });
    const model: OnnxModel = {
      irVersion: 10,
      producerName: 'test',
      producerVersion: '',
      opsetImport: [{ domain: '', version: 23 }],
      functions: [],
      graph: {
        name: 'g',
        nodes: [
          {
            name: 'att',
            opType: 'Attention',
            domain: '',
            inputs: ['q', 'k', 'v'],
            outputs: ['y', '', '', 'p'],
            attributes: attrs,
          },
        ],
        initializers: [],
        sparseInitializers: [],
        inputs: [ti('q', [1, 1, 1, 1]), ti('k', [1, 1, 2, 1]), ti('v', [1, 1, 2, 1])],
        outputs: [ti('y', [1, 1, 1, 1]), ti('p', [1, 1, 1, 2])],
        valueInfo: [],
      },
    };
    const { graph } = importOnnxModel(model);
    const r = interpret(graph, {
      q: makeTensor('f32', [1, 1, 1, 1], [0]),
      k: makeTensor('f32', [1, 1, 2, 1], [1, 2]),
      v: makeTensor('f32', [1, 1, 2, 1], [2, 4]),
    });
    expectClose(r['y']!, [3]);
    expectClose(r['p']!, [0.5, 0.5]);
  });
});

describe('rotary_embedding', () => {
  it('position 0 (cos 1, sin 0) is the identity', () => {
    const x = t64([1, 2, 1, 4], [1, 2, 3, 4, 5, 6, 7, 8]);
    const cos = t64([3, 2], [1, 1, 0.5, 0.5, 0, 0]);
    const sin = t64([3, 2], [0, 0, 0.5, 0.5, 1, 1]);
    const pos = makeTensor('i64', [1, 1], [0]);
    expectClose(run('rotary_embedding', [x, cos, sin, pos])[0]!, x);
    expectClose(run('rotary_embedding', [x, cos, sin, pos], { interleaved: true })[0]!, x);
  });

  it('a 90° rotation, worked by hand (half split and interleaved pairs)', () => {
    const x = t64([1, 1, 1, 4], [1, 2, 3, 4]);
    const cos = t64([1, 1, 2], [0, 0]);
    const sin = t64([1, 1, 2], [1, 1]);
    // pairs (x0, x2), (x1, x3): (a, b) → (a cos - b sin, a sin + b cos) = (-b, a)
    expectClose(run('rotary_embedding', [x, cos, sin])[0]!, [-3, -4, 1, 2]);
    // pairs (x0, x1), (x2, x3)
    expectClose(run('rotary_embedding', [x, cos, sin], { interleaved: true })[0]!, [-2, 1, -4, 3]);
  });

  it('rotary_embedding_dim rotates only the leading features', () => {
    const x = t64([1, 1, 1, 6], [1, 2, 3, 4, 5, 6]);
    const cos = t64([1, 1, 2], [0, -1]);
    const sin = t64([1, 1, 2], [1, 0]);
    // pairs (x0, x2) by 90°, (x1, x3) by 180°; x4, x5 untouched
    expectClose(run('rotary_embedding', [x, cos, sin], { rotary_embedding_dim: 4 })[0]!, [-3, -2, 1, -4, 5, 6]);
  });

  it('3-D input with num_heads rotates each head', () => {
    const x = t64([1, 1, 4], [1, 2, 3, 4]);
    const cos = t64([2, 1], [1, 0]);
    const sin = t64([2, 1], [0, 1]);
    const pos = makeTensor('i64', [1, 1], [1]);
    expectClose(run('rotary_embedding', [x, cos, sin, pos], { num_heads: 2 })[0]!, [-2, 1, -4, 3]);
  });

  it('property: rotation preserves the norm of every pair and position_ids gather the caches', () => {
    fc.assert(
      fc.property(
        arbTensor([2, 2, 3, 4]),
        fc.array(fc.double({ min: -Math.PI, max: Math.PI, noNaN: true }), { minLength: 10, maxLength: 10 }),
        fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 6, maxLength: 6 }),
        fc.boolean(),
        (x, angles, ids, interleaved) => {
          const cos = t64([5, 2], angles.map(Math.cos));
          const sin = t64([5, 2], angles.map(Math.sin));
          const pos = makeTensor('i64', [2, 3], ids);
          const y = run('rotary_embedding', [x, cos, sin, pos], { interleaved })[0]!;
          const pairs = interleaved
            ? [
                [0, 1],
                [2, 3],
              ]
            : [
                [0, 2],
                [1, 3],
              ];
          for (let r = 0; r < 12; r++) {
            for (const [i, j] of pairs) {
              const n0 = Math.hypot(x.data[r * 4 + i!]!, x.data[r * 4 + j!]!);
              const n1 = Math.hypot(y.data[r * 4 + i!]!, y.data[r * 4 + j!]!);
              expect(Math.abs(n0 - n1)).toBeLessThan(1e-12);
            }
          }
          // the same caches pre-gathered per (batch, seq) without position_ids
          const gather = (c: Tensor) =>
            t64(
              [2, 3, 2],
              ids.flatMap((p) => [c.data[2 * p]!, c.data[2 * p + 1]!]),
            );
          expectClose(run('rotary_embedding', [x, gather(cos), gather(sin)], { interleaved })[0]!, y);
        },
      ),
      { numRuns: PROP_RUNS },
    );
  });

  it('infers symbolic shapes and rejects bad geometry with located errors', () => {
    expect(
      inferShapes('rotary_embedding', [
        ['f32', ['batch', 8, 'seq', 64]],
        ['f32', ['max_pos', 32]],
        ['f32', ['max_pos', 32]],
        ['i64', ['batch', 'seq']],
      ])[0],
    ).toEqual(['batch', 8, 'seq', 64]);
    expect(
      inferShapes(
        'rotary_embedding',
        [
          ['f32', ['batch', 'seq', 512]],
          ['f32', [100, 32]],
          ['f32', [100, 32]],
          ['i64', ['batch', 'seq']],
        ],
        {
          num_heads: 8,
        },
      )[0],
    ).toEqual(['batch', 'seq', 512]);
    const f = (s: Dim[]): [DType, Dim[]] => ['f32', s];
    expect(
      inferError('rotary_embedding', [f([1, 2, 3, 8]), f([4, 5]), f([4, 5]), ['i64', [1, 3]]], {
        rotary_embedding_dim: 10,
      }).message,
    ).toContain('exceeds');
    expect(
      inferError('rotary_embedding', [f([1, 2, 3, 8]), f([4, 2]), f([4, 2]), ['i64', [1, 3]]], {
        rotary_embedding_dim: 3,
      }).message,
    ).toContain('even');
    expect(inferError('rotary_embedding', [f([1, 3, 16]), f([4, 4]), f([4, 4]), ['i64', [1, 3]]]).message).toContain(
      'num_heads',
    );
    expect(inferError('rotary_embedding', [f([1, 2, 3, 8]), f([4, 3]), f([4, 3]), ['i64', [1, 3]]]).message).toContain(
      'rotary_dim / 2',
    );
    expect(
      inferError('rotary_embedding', [f([1, 2, 3, 8]), f([1, 3, 4]), f([1, 3, 4]), ['i64', [1, 3]]]).message,
    ).toContain('2-D');
  });

  it('a position outside the cache is a located run-time error', () => {
    const x = t64([1, 1, 1, 2], [1, 2]);
    const c = t64([2, 1], [1, 1]);
    expect(() => run('rotary_embedding', [x, c, c, makeTensor('i64', [1, 1], [2])])).toThrow(KilnError);
    expect(() => run('rotary_embedding', [x, c, c, makeTensor('i64', [1, 1], [2])])).toThrow(/rotary_embedding_0/);
  });
});
