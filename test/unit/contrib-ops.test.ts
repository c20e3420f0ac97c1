/**
 * ONNX Runtime contrib ops (com.microsoft) through kiln's converters: hand-worked values for the ops without a
 * conformance case (BiasGelu, QuickGelu, BiasAdd, BiasSplitGelu, SimplifiedLayerNormalization, and the optional
 * outputs of the skip norms), the attention family against a naive float64 implementation written here from ONNX
 * Runtime's documented semantics (GQA: per-batch past lengths, local window, softcap, rotary, packed QKV; MHA: packed
 * QKV / KV, BNSH keys, bias, key-padding masks; Attention: mask_index forms, past), the same graphs on the device
 * backends against the reference, and fuzzed attributes / shapes → typed errors naming the node.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DType } from '../../ir/dtype.js';
import { KilnError } from '../../ir/errors.js';
import type { Graph } from '../../ir/graph.js';
import type { Dim } from '../../ir/shape.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { importOnnxModel } from '../../src/frontends/onnx/import.js';
import { compile } from '../../src/session.js';
import type { OnnxAttribute } from '../../src/frontends/onnx/proto.js';
import { checkAgainstReference } from '../helpers/backends.js';
import { deviceBackends } from '../helpers/device-backends.js';
import { onnxModelOf, onnxNodeOf } from '../helpers/onnx-model.js';
import { PROP_RUNS } from '../helpers/paths.js';

const backends = await deviceBackends();

const ELEM: Partial<Record<DType, number>> = { f32: 1, i32: 6, i64: 7, f16: 10, f64: 11 };
const NODE = 'contrib_node';

interface In {
  name: string;
  t: Tensor;
}
type AttrVal = number | number[] | string | { float: number };

function attrOf(v: AttrVal): OnnxAttribute {
  if (typeof v === 'string') return { kind: 'string', value: v } as OnnxAttribute;
  if (typeof v === 'object' && !Array.isArray(v)) return { kind: 'float', value: v.float } as OnnxAttribute;
  if (Array.isArray(v)) return { kind: 'ints', value: v } as OnnxAttribute;
  return (Number.isInteger(v) ? { kind: 'int', value: v } : { kind: 'float', value: v }) as OnnxAttribute;
}

/** A one-node com.microsoft model; `inputs` in node order ('' for an absent optional input). */
function graphOf(
  op: string,
  inputs: (In | null)[],
  outputs: string[],
  attrs: Record<string, AttrVal> = {},
  domain = 'com.microsoft',
  symbolic: Record<string, Dim[]> = {},
  /** Inputs given as initializers (constants) instead of graph inputs. */
  consts: readonly string[] = [],
): Graph {
  const node = onnxNodeOf(
    op,
    inputs.map((i) => i?.name ?? ''),
    outputs,
    Object.fromEntries(Object.entries(attrs).map(([k, v]) => [k, attrOf(v)])),
    NODE,
  );
  const m = onnxModelOf({
    nodes: [{ ...node, domain }],
    opset: 17,
    initializers: inputs
      .filter((i): i is In => !!i && consts.includes(i.name))
      .map((i) => ({
        name: i.name,
        dataType: ELEM[i.t.dtype]!,
        dims: [...i.t.shape],
        values: Float64Array.from(i.t.data),
        externalData: false,
      })),
    inputs: inputs
      .filter((i): i is In => !!i && !consts.includes(i.name))
      .map((i) => ({ name: i.name, elemType: ELEM[i.t.dtype], shape: symbolic[i.name] ?? [...i.t.shape] })),
    outputs: outputs.filter((o) => o !== ''),
  });
  if (domain !== '') m.opsetImport.push({ domain, version: 1 });
  return importOnnxModel(m).graph;
}

const feedsOf = (inputs: (In | null)[], consts: readonly string[] = []): Record<string, Tensor> =>
  Object.fromEntries(inputs.filter((i): i is In => !!i && !consts.includes(i.name)).map((i) => [i.name, i.t]));

function run(
  op: string,
  inputs: (In | null)[],
  outputs: string[],
  attrs: Record<string, AttrVal> = {},
  domain?: string,
) {
  return interpret(graphOf(op, inputs, outputs, attrs, domain), feedsOf(inputs));
}

const f32 = (name: string, shape: number[], data: number[]): In => ({ name, t: makeTensor('f32', shape, data) });
const i32 = (name: string, shape: number[], data: number[]): In => ({ name, t: makeTensor('i32', shape, data) });
const i64 = (name: string, shape: number[], data: number[]): In => ({ name, t: makeTensor('i64', shape, data) });

function expectClose(got: Tensor, want: readonly number[], tol = 1e-6): void {
  expect(got.data.length).toBe(want.length);
  want.forEach((w, i) => {
    const g = got.data[i]!;
    expect(Number.isNaN(g)).toBe(false);
    expect(Math.abs(g - w)).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(w)));
  });
}

/** Deterministic pseudo-random values in [-1, 1) (mulberry32). */
function rand(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  };
}
const randF32 = (r: () => number, name: string, shape: number[], amp = 1): In =>
  f32(
    name,
    shape,
    Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => Math.fround(r() * amp)),
  );

async function onDevices(g: Graph, feeds: Record<string, Tensor>): Promise<void> {
  for (const backend of backends) {
    expect(await checkAgainstReference(g, feeds, { backend }), backend).toEqual([]);
  }
}

// ---- hand-worked values ----

const GELU = { 0: 0, 1: 0.8413447460685429, [-1]: -0.15865525393145707, 2: 1.9544997361036416 } as Record<
  number,
  number
>;

describe('contrib elementwise ops (hand-worked values)', () => {
  it('BiasGelu = erf GELU of A + B', () => {
    const ins = [f32('a', [2, 2], [0, 2, -1, 0]), f32('b', [2], [1, -1])];
    expectClose(run('BiasGelu', ins, ['y'])['y']!, [GELU[1]!, GELU[1]!, 0, GELU[-1]!]);
  });

  it('QuickGelu = x * sigmoid(alpha x), alpha 1.702 by default', () => {
    const x = [f32('x', [3], [1, -2, 0.5])];
    expectClose(run('QuickGelu', x, ['y'])['y']!, [0.8457957659328212, -0.06434137685579186, 0.35038843660638014]);
    expectClose(run('QuickGelu', [f32('x', [2], [1, -2])], ['y'], { alpha: 2.5 })['y']!, [
      1 / (1 + Math.exp(-2.5)),
      -2 / (1 + Math.exp(5)),
    ]);
  });

  it('BiasAdd = X + bias + skip', () => {
    const ins = [
      f32('x', [1, 2, 2], [1, 2, 3, 4]),
      f32('bias', [2], [10, 20]),
      f32('skip', [1, 2, 2], [100, 200, 300, 400]),
    ];
    expectClose(run('BiasAdd', ins, ['y'])['y']!, [111, 222, 313, 424]);
  });

  it('BiasSplitGelu = left half * GELU(right half) of X + bias', () => {
    const ins = [f32('x', [1, 2, 4], [1, 2, 3, -1, 0, 1, 0, 2]), f32('bias', [4], [0, 0, -2, 2])];
    // sums: [1, 2, 1, 1] and [0, 1, -2, 4]: left [1, 2] * gelu([1, 1]); left [0, 1] * gelu([-2, 4])
    const y = run('BiasSplitGelu', ins, ['y'])['y']!;
    expect(y.shape).toEqual([1, 2, 2]);
    expectClose(y, [GELU[1]!, 2 * GELU[1]!, 0, 3.999873301058458]);
  });

  it('FastGelu = tanh GELU of X (+ bias)', () => {
    const y = run('FastGelu', [f32('x', [3], [0, 1, -1])], ['y'])['y']!;
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) at 1: 0.8411919906082768
    expectClose(y, [0, 0.8411919906082768, -0.15880800939172324]);
  });

  it('Gelu (com.microsoft) is the erf GELU', () => {
    expectClose(run('Gelu', [f32('x', [2], [1, 2])], ['y'])['y']!, [GELU[1]!, GELU[2]!]);
  });
});

describe('contrib normalizations (hand-worked values)', () => {
  const rows = [3, 4, 1, -1];
  it('SimplifiedLayerNormalization: y = x / rms(x) * scale, and inv_std_var, in both domains', () => {
    for (const domain of ['com.microsoft', '']) {
      const out = run(
        'SimplifiedLayerNormalization',
        [f32('x', [2, 2], rows), f32('s', [2], [1, 2])],
        ['y', 'inv'],
        {},
        domain,
      );
      expectClose(out['y']!, [0.8485277980128058, 2 * 1.1313703973504077, 0.9999950000374997, -2 * 0.9999950000374997]);
      expect(out['inv']!.shape).toEqual([2, 1]);
      expectClose(out['inv']!, [0.2828425993376019, 0.9999950000374997]);
    }
  });

  it('SkipSimplifiedLayerNormalization with bias: output, inv_std_var and input_skip_bias_sum', () => {
    const ins = [
      f32('x', [1, 2, 2], [1, 2, 0, 0]),
      f32('skip', [1, 2, 2], [1, 1, 1, -1]),
      f32('g', [2], [1, 1]),
      f32('b', [2], [1, 1]),
    ];
    // sums [3, 4] and [2, 0]
    const out = run('SkipSimplifiedLayerNormalization', ins, ['y', '', 'inv', 'sum'], { epsilon: 1e-5 });
    expectClose(out['sum']!, [3, 4, 2, 0]);
    expectClose(out['y']!, [0.8485277980128058, 1.1313703973504077, 1.4142100268524473, 0]);
    expectClose(out['inv']!, [0.2828425993376019, 0.7071050134262237]);
  });

  it('SkipLayerNormalization: mean, inv_std_var ([B, S, 1]) and the sum, broadcast 2-D skip', () => {
    const ins = [
      f32('x', [1, 2, 2], [1, 3, 0, 4]),
      f32('skip', [2, 2], [1, 1, 0, 0]),
      f32('g', [2], [2, 2]),
      f32('beta', [2], [1, 1]),
      f32('bias', [2], [0, 0]),
    ];
    // sums [2, 4] (mean 3, var 1) and [0, 4] (mean 2, var 4); eps 0.0001 attribute
    const out = run('SkipLayerNormalization', ins, ['y', 'mean', 'inv', 'sum'], { epsilon: 0.0001 });
    const i1 = 1 / Math.sqrt(1.0001);
    const i2 = 1 / Math.sqrt(4.0001);
    expectClose(out['y']!, [1 - 2 * i1, 1 + 2 * i1, 1 - 4 * i2, 1 + 4 * i2]);
    expect(out['mean']!.shape).toEqual([1, 2, 1]);
    expectClose(out['mean']!, [3, 2]);
    expectClose(out['inv']!, [i1, i2]);
    expectClose(out['sum']!, [2, 4, 0, 4]);
  });
});

describe('contrib RotaryEmbedding (hand-worked values)', () => {
  it('4-D input, 2-D position ids, rotate-halves pairs', () => {
    // one head of size 4, positions [1, 0]: angle row 1 = cos [0, 1], sin [1, 0] (90 degrees on pair 0, 0 on pair 1)
    const ins = [
      f32('x', [1, 1, 2, 4], [1, 2, 3, 4, 5, 6, 7, 8]),
      i64('pos', [1, 2], [1, 0]),
      f32('cos', [2, 2], [1, 1, 0, 1]),
      f32('sin', [2, 2], [0, 0, 1, 0]),
    ];
    // pos 1, pair (x0, x2) = (1, 3) rotated 90 degrees → (-3, 1); pair (x1, x3) unrotated; pos 0: identity
    expectClose(run('RotaryEmbedding', ins, ['y'])['y']!, [-3, 2, 1, 4, 5, 6, 7, 8]);
  });
});

// ---- the attention family against a naive implementation of ONNX Runtime's semantics ----

/**
 * softmax(softcap(scale q.k) + bias(b, h, i, j)) v over [B, N, S, H] q and [B, Nk, T, H] k / v (row-major
 * arrays); a bias of -Infinity excludes the key.
 */
function attend(
  q: number[],
  k: number[],
  v: number[],
  [B, N, Nk, S, T, H, Hv]: number[],
  bias: (b: number, h: number, i: number, j: number) => number,
  scale: number,
  softcap = 0,
): number[] {
  const y = new Array<number>(B * N * S * Hv).fill(0);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < N; h++) {
      const kh = Math.floor(h / (N / Nk));
      for (let i = 0; i < S; i++) {
        const s = new Array<number>(T);
        for (let j = 0; j < T; j++) {
          let d = 0;
          for (let x = 0; x < H; x++) d += q[((b * N + h) * S + i) * H + x]! * k[((b * Nk + kh) * T + j) * H + x]!;
          d *= scale;
          if (softcap > 0) d = softcap * Math.tanh(d / softcap);
          s[j] = d + bias(b, h, i, j);
        }
        const m = Math.max(...s);
        const e = s.map((x) => (x === -Infinity ? 0 : Math.exp(x - m)));
        const z = e.reduce((a, c) => a + c, 0);
        for (let j = 0; j < T; j++) {
          for (let x = 0; x < Hv; x++)
            y[((b * N + h) * S + i) * Hv + x] += (e[j]! / z) * v[((b * Nk + kh) * T + j) * Hv + x]!;
        }
      }
    }
  }
  return y;
}

/** [B, S, N*H] → [B, N, S, H] as arrays. */
function bnsh(x: ArrayLike<number>, B: number, S: number, N: number, H: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let s = 0; s < S; s++) for (let h = 0; h < H; h++) out.push(x[((b * S + s) * N + n) * H + h]!);
  return out;
}
const bsnh = (y: number[], B: number, N: number, S: number, H: number): number[] => {
  const out: number[] = [];
  for (let b = 0; b < B; b++)
    for (let s = 0; s < S; s++)
      for (let n = 0; n < N; n++) for (let h = 0; h < H; h++) out.push(y[((b * N + n) * S + s) * H + h]!);
  return out;
};

/** Rotary on [B, S, N*H] rows at positions pos[b][s] (caches [M, R/2]). */
function rotate(
  x: number[],
  [B, S, N, H]: number[],
  pos: number[][],
  cos: number[],
  sin: number[],
  R: number,
  inter: boolean,
) {
  const y = x.slice();
  const half = R / 2;
  for (let b = 0; b < B; b++)
    for (let s = 0; s < S; s++)
      for (let n = 0; n < N; n++) {
        const base = ((b * S + s) * N + n) * H;
        for (let i = 0; i < half; i++) {
          const [a, c] = inter ? [base + 2 * i, base + 2 * i + 1] : [base + i, base + i + half];
          const co = cos[pos[b]![s]! * half + i]!;
          const si = sin[pos[b]![s]! * half + i]!;
          y[a] = co * x[a]! - si * x[c]!;
          y[c] = si * x[a]! + co * x[c]!;
        }
      }
  return y;
}

interface GqaCase {
  B: number;
  S: number;
  N: number;
  kvN: number;
  H: number;
  P: number;
  seqlens: number[];
  total: number;
  window?: number;
  softcap?: number;
  rotary?: { R: number; interleaved: boolean };
  packed?: boolean;
  bias?: boolean;
  /** smooth_softmax (sink 0) or head_sink logits per head. */
  sink?: 'smooth' | number[];
  /** Explicit position_ids [B, S] for the rotary. */
  positions?: number[][];
}

function gqaCase(c: GqaCase, seed: number) {
  const r = rand(seed);
  const { B, S, N, kvN, H, P } = c;
  const q = randF32(r, 'q', [B, S, N * H], 2);
  const k = randF32(r, 'k', [B, S, kvN * H], 2);
  const v = randF32(r, 'v', [B, S, kvN * H]);
  const pk = P > 0 ? randF32(r, 'pk', [B, kvN, P, H], 2) : null;
  const pv = P > 0 ? randF32(r, 'pv', [B, kvN, P, H]) : null;
  const M = 16;
  const cos: number[] = [];
  const sin: number[] = [];
  if (c.rotary) {
    for (let m = 0; m < M; m++)
      for (let i = 0; i < c.rotary.R / 2; i++) {
        cos.push(Math.fround(Math.cos(m / (i + 1))));
        sin.push(Math.fround(Math.sin(m / (i + 1))));
      }
  }
  const T = P + S;
  const bias = c.bias ? randF32(r, 'ab', [B, 1, S, T]) : null;
  let packed: In | null = null;
  if (c.packed) {
    const d: number[] = [];
    for (let b = 0; b < B; b++)
      for (let s = 0; s < S; s++) {
        const row = (t: In, w: number) => Array.from(t.t.data.subarray((b * S + s) * w, (b * S + s + 1) * w));
        d.push(...row(q, N * H), ...row(k, kvN * H), ...row(v, kvN * H));
      }
    packed = f32('qkv', [B, S, (N + 2 * kvN) * H], d);
  }
  const inputs: (In | null)[] = [
    packed ?? q,
    packed ? null : k,
    packed ? null : v,
    pk,
    pv,
    i32('seqlens', [B], c.seqlens),
    i32('total', [1], [c.total]),
    c.rotary ? f32('cos', [M, c.rotary.R / 2], cos) : null,
    c.rotary ? f32('sin', [M, c.rotary.R / 2], sin) : null,
    c.positions ? i64('pos', [B, S], c.positions.flat()) : null,
    bias,
    Array.isArray(c.sink) ? f32('sink', [N], c.sink) : null,
  ];
  while (inputs.length && inputs.at(-1) === null) inputs.pop();
  const attrs: Record<string, AttrVal> = { num_heads: N, kv_num_heads: kvN };
  if (c.window !== undefined) attrs['local_window_size'] = c.window;
  if (c.softcap !== undefined) attrs['softcap'] = { float: c.softcap };
  if (c.rotary) Object.assign(attrs, { do_rotary: 1, rotary_interleaved: c.rotary.interleaved ? 1 : 0 });
  if (c.sink === 'smooth') attrs['smooth_softmax'] = 1;

  // naive: ONNX Runtime's GroupQueryAttention semantics
  const first = S === c.total;
  const past = c.seqlens.map((s) => (first ? 0 : s + 1 - S));
  const pos = c.positions ?? past.map((p) => Array.from({ length: S }, (_, i) => p + i));
  let qa = Array.from(q.t.data);
  let ka = Array.from(k.t.data);
  if (c.rotary) {
    qa = rotate(qa, [B, S, N, H], pos, cos, sin, c.rotary.R, c.rotary.interleaved);
    ka = rotate(ka, [B, S, kvN, H], pos, cos, sin, c.rotary.R, c.rotary.interleaved);
  }
  const present = (pastT: In | null, cur: number[]) => {
    const nb = bnsh(cur, B, S, kvN, H);
    const out: number[] = [];
    for (let b = 0; b < B; b++)
      for (let h = 0; h < kvN; h++)
        for (let t = 0; t < T; t++)
          for (let x = 0; x < H; x++) {
            const pb = past[b]!;
            out.push(
              t < pb
                ? pastT!.t.data[((b * kvN + h) * P + t) * H + x]!
                : t < pb + S
                  ? nb[((b * kvN + h) * S + (t - pb)) * H + x]!
                  : 0,
            );
          }
    return out;
  };
  const presK = present(pk, ka);
  const presV = present(pv, Array.from(v.t.data));
  const w = c.window ?? -1;
  // a sink is one more key: logit = the sink (uncapped), value zero
  const sinkOf = (h: number) => (c.sink === 'smooth' ? 0 : c.sink![h]!);
  const Tk = c.sink ? T + 1 : T;
  const withZeroKey = (a: number[]) => {
    if (!c.sink) return a;
    const out: number[] = [];
    for (let bh = 0; bh < B * kvN; bh++)
      out.push(...a.slice(bh * T * H, (bh + 1) * T * H), ...new Array<number>(H).fill(0));
    return out;
  };
  const y = attend(
    bnsh(qa, B, S, N, H),
    withZeroKey(presK),
    withZeroKey(presV),
    [B, N, kvN, S, Tk, H, H],
    (b, h, i, j) => {
      if (j === T) return sinkOf(h);
      const p = past[b]! + i;
      if (j > p || (w > 0 && j < p - w)) return -Infinity;
      return bias ? bias.t.data[(b * S + i) * T + j]! : 0;
    },
    1 / Math.sqrt(H),
    c.softcap ?? 0,
  );
  return { inputs, attrs, want: { y: bsnh(y, B, N, S, H), pk: presK, pv: presV } };
}

describe('GroupQueryAttention (vs a naive implementation of its semantics)', () => {
  const cases: [string, GqaCase][] = [
    ['prompt, GQA 4:2, right-padded batch', { B: 2, S: 4, N: 4, kvN: 2, H: 4, P: 0, seqlens: [3, 2], total: 4 }],
    [
      'decode, per-batch past lengths in a longer past buffer',
      { B: 2, S: 1, N: 2, kvN: 1, H: 4, P: 5, seqlens: [5, 3], total: 6 },
    ],
    [
      'subsequent prompt with local window and softcap',
      { B: 1, S: 3, N: 2, kvN: 2, H: 4, P: 4, seqlens: [6], total: 7, window: 2, softcap: 2 },
    ],
    [
      'rotary (rotate halves) in decode',
      { B: 2, S: 2, N: 2, kvN: 1, H: 4, P: 3, seqlens: [4, 3], total: 5, rotary: { R: 4, interleaved: false } },
    ],
    [
      'smooth_softmax with a local window',
      { B: 2, S: 2, N: 2, kvN: 1, H: 4, P: 3, seqlens: [4, 2], total: 5, sink: 'smooth', window: 1 },
    ],
    [
      'head_sink logits with softcap and an attention bias',
      { B: 1, S: 3, N: 4, kvN: 2, H: 2, P: 0, seqlens: [2], total: 3, sink: [0.5, -1, 2, 0], softcap: 1.5, bias: true },
    ],
    [
      'rotary at explicit position_ids',
      {
        B: 2,
        S: 2,
        N: 2,
        kvN: 2,
        H: 4,
        P: 1,
        seqlens: [2, 2],
        total: 3,
        rotary: { R: 4, interleaved: false },
        positions: [
          [7, 3],
          [0, 15],
        ],
      },
    ],
    [
      'rotary (interleaved, partial) in the prompt',
      { B: 1, S: 3, N: 2, kvN: 2, H: 8, P: 0, seqlens: [2], total: 3, rotary: { R: 4, interleaved: true } },
    ],
    [
      'packed QKV with an attention bias',
      { B: 1, S: 2, N: 2, kvN: 1, H: 4, P: 2, seqlens: [3], total: 4, packed: true, bias: true },
    ],
  ];
  for (const [name, c] of cases) {
    it(
      name,
      async () => {
        const { inputs, attrs, want } = gqaCase(c, name.length);
        const g = graphOf('GroupQueryAttention', inputs, ['y', 'present_k', 'present_v'], attrs);
        const out = interpret(g, feedsOf(inputs));
        expectClose(out['y']!, want.y, 2e-6);
        expectClose(out['present_k']!, want.pk, c.rotary ? 1e-6 : 0);
        expectClose(out['present_v']!, want.pv, 0);
        await onDevices(g, feedsOf(inputs));
      },
      60_000,
    );
  }
});

describe('GroupQueryAttention property: random configurations equal the naive implementation', () => {
  const cfg = fc
    .record({
      B: fc.integer({ min: 1, max: 2 }),
      S: fc.integer({ min: 1, max: 3 }),
      kvN: fc.integer({ min: 1, max: 2 }),
      group: fc.integer({ min: 1, max: 2 }),
      half: fc.integer({ min: 1, max: 2 }),
      P: fc.integer({ min: 0, max: 3 }),
      pasts: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 2, maxLength: 2 }),
      window: fc.integer({ min: -1, max: 3 }),
      softcap: fc.constantFrom(0, 1.5),
      rotary: fc.constantFrom(0, 1, 2),
      packed: fc.boolean(),
      bias: fc.boolean(),
      sink: fc.constantFrom(0, 1, 2),
      seed: fc.integer({ min: 1, max: 1000 }),
    })
    .map((r) => {
      const H = 2 * r.half;
      const past = r.pasts.slice(0, r.B).map((p) => Math.min(p, r.P));
      const first = past.every((p) => p === 0);
      const total = first ? r.S : Math.max(...past) + r.S;
      const c: GqaCase = {
        B: r.B,
        S: r.S,
        N: r.kvN * r.group,
        kvN: r.kvN,
        H,
        P: r.P,
        seqlens: past.map((p) => p + r.S - 1),
        total,
        packed: r.packed,
        bias: r.bias,
      };
      if (r.window >= 0) c.window = r.window;
      if (r.softcap) c.softcap = r.softcap;
      if (r.rotary) c.rotary = { R: r.rotary === 1 ? H : 2, interleaved: r.rotary === 2 };
      if (r.sink === 1) c.sink = 'smooth';
      if (r.sink === 2) c.sink = Array.from({ length: c.N }, (_, i) => i - 1);
      return { c, seed: r.seed };
    });
  it('(reference)', () => {
    fc.assert(
      fc.property(cfg, ({ c, seed }) => {
        const { inputs, attrs, want } = gqaCase(c, seed);
        const out = interpret(
          graphOf('GroupQueryAttention', inputs, ['y', 'present_k', 'present_v'], attrs),
          feedsOf(inputs),
        );
        expectClose(out['y']!, want.y, 5e-6);
        expectClose(out['present_k']!, want.pk, 1e-6);
        expectClose(out['present_v']!, want.pv, 0);
      }),
      { numRuns: PROP_RUNS },
    );
  });

  it('(device backends vs the reference, a few configurations)', async () => {
    await fc.assert(
      fc.asyncProperty(cfg, async ({ c, seed }) => {
        const { inputs, attrs } = gqaCase(c, seed);
        await onDevices(
          graphOf('GroupQueryAttention', inputs, ['y', 'present_k', 'present_v'], attrs),
          feedsOf(inputs),
        );
      }),
      { numRuns: 4 },
    );
  }, 120_000);
});

describe('GroupQueryAttention with a constant total_sequence_length inside the past buffer (shared buffer)', () => {
  it('present is the past buffer with the new rows written at past_b, other rows kept', async () => {
    // buffer of 4, batch past lengths [1, 2], one new token each: total 3 <= 4
    const B = 2;
    const H = 2;
    const { inputs, attrs } = gqaCase({ B, S: 1, N: 1, kvN: 1, H, P: 4, seqlens: [1, 2], total: 3 }, 77);
    const g = graphOf('GroupQueryAttention', inputs, ['y', 'present_k', 'present_v'], attrs, 'com.microsoft', {}, [
      'total',
    ]);
    const feeds = feedsOf(inputs, ['total']);
    const out = interpret(g, feeds);
    expect(out['present_k']!.shape).toEqual([B, 1, 4, H]);
    const pk = inputs[3]!.t.data;
    const k = inputs[1]!.t.data;
    const want: number[] = [];
    for (let b = 0; b < B; b++)
      for (let t = 0; t < 4; t++)
        for (let x = 0; x < H; x++) want.push(t === [1, 2][b] ? k[b * H + x]! : pk[(b * 4 + t) * H + x]!);
    expectClose(out['present_k']!, want, 0);
    // the output attends the valid rows only: the same as with the non-shared layout
    const free = interpret(graphOf('GroupQueryAttention', inputs, ['y'], attrs), feedsOf(inputs));
    expectClose(out['y']!, Array.from(free['y']!.data), 1e-6);
    await onDevices(g, feeds);
    // new rows that do not fit the buffer: a typed error naming the node
    const over = gqaCase({ B: 1, S: 1, N: 1, kvN: 1, H, P: 2, seqlens: [2], total: 2 }, 78);
    expect(() =>
      interpret(
        graphOf('GroupQueryAttention', over.inputs, ['y', 'pk_out', 'pv_out'], over.attrs, 'com.microsoft', {}, [
          'total',
        ]),
        feedsOf(over.inputs, ['total']),
      ),
    ).toThrow(new RegExp(NODE));
  }, 60_000);
});

describe('MultiHeadAttention (vs a naive implementation)', () => {
  const B = 2;
  const S = 3;
  const L = 4;
  const N = 2;
  const H = 2;
  const r = rand(7);
  const q = randF32(r, 'q', [B, S, N * H], 2);
  const k = randF32(r, 'k', [B, L, N * H], 2);
  const v = randF32(r, 'v', [B, L, N * H]);
  const bias = randF32(r, 'bias', [3 * N * H]);
  const withBias = (x: In, off: number) =>
    Array.from(x.t.data, (val, i) => Math.fround(val + bias.t.data[off + (i % (N * H))]!));
  const naive = (maskFor: (b: number, i: number, j: number) => number, useBias: boolean) => {
    const [qa, ka, va] = useBias
      ? [withBias(q, 0), withBias(k, N * H), withBias(v, 2 * N * H)]
      : [q, k, v].map((x) => Array.from(x.t.data));
    const y = attend(
      bnsh(qa!, B, S, N, H),
      bnsh(ka!, B, L, N, H),
      bnsh(va!, B, L, N, H),
      [B, N, N, S, L, H, H],
      (b, _h, i, j) => maskFor(b, i, j),
      1 / Math.sqrt(H),
    );
    return bsnh(y, B, N, S, H);
  };

  it('separate Q/K/V with bias and a [B] key-padding mask (mask_filter_value added)', async () => {
    const kpm = i32('kpm', [B], [3, 1]);
    const ins = [q, k, v, bias, kpm];
    const out = run('MultiHeadAttention', ins, ['y'], { num_heads: N, mask_filter_value: { float: -50 } })['y']!;
    expectClose(
      out,
      naive((b, _i, j) => (j < [3, 1][b]! ? 0 : -50), true),
      2e-6,
    );
    await onDevices(graphOf('MultiHeadAttention', ins, ['y'], { num_heads: N }), feedsOf(ins));
  }, 60_000);

  it('packed KV, a raw [B, T] mask and unidirectional', async () => {
    const kv: number[] = [];
    for (let b = 0; b < B; b++)
      for (let l = 0; l < L; l++)
        for (let n = 0; n < N; n++)
          for (const t of [k, v]) for (let h = 0; h < H; h++) kv.push(t.t.data[((b * L + l) * N + n) * H + h]!);
    const raw = [1, 0, 1, 1, 1, 1, 0, 1];
    const ins = [q, f32('kv', [B, L, N, 2, H], kv), null, null, i32('m', [B, L], raw)];
    const out = run('MultiHeadAttention', ins, ['y'], { num_heads: N, unidirectional: 1 })['y']!;
    // causal with S=3 queries over L=4 keys and no past: key j visible to query i when j <= i
    expectClose(
      out,
      naive((b, i, j) => (j > i ? -Infinity : raw[b * L + j] ? 0 : -10000), false),
      2e-6,
    );
    await onDevices(graphOf('MultiHeadAttention', ins, ['y'], { num_heads: N, unidirectional: 1 }), feedsOf(ins));
  }, 60_000);

  it('packed QKV equals separate Q/K/V; BNSH key / value equal BSNH ones', () => {
    const rowStart = (len: number, b: number, s0: number) => (b * len + s0) * N * H;
    const qkv: number[] = [];
    for (let b = 0; b < B; b++)
      for (let s = 0; s < S; s++)
        for (let n = 0; n < N; n++)
          for (const [t, len] of [
            [q, S],
            [k, L],
            [v, L],
          ] as const)
            for (let h = 0; h < H; h++) qkv.push(t.t.data[rowStart(len, b, s) + n * H + h]!);
    const firstS = (t: In, name: string) =>
      f32(
        name,
        [B, S, N * H],
        Array.from({ length: B }, (_, b) => Array.from(t.t.data.subarray(b * L * N * H, (b * L + S) * N * H))).flat(),
      );
    const [k3, v3] = [firstS(k, 'k3'), firstS(v, 'v3')];
    const q3 = q;
    const sep = run('MultiHeadAttention', [q3, k3, v3], ['y'], { num_heads: N })['y']!;
    const packed = run('MultiHeadAttention', [f32('qkv', [B, S, N, 3, H], qkv)], ['y'], { num_heads: N })['y']!;
    expectClose(packed, Array.from(sep.data), 1e-6);
    const k4 = f32('k4', [B, N, L, H], bnsh(k.t.data, B, L, N, H));
    const v4 = f32('v4', [B, N, L, H], bnsh(v.t.data, B, L, N, H));
    const cross = run('MultiHeadAttention', [q, k4, v4], ['y'], { num_heads: N })['y']!;
    expectClose(
      cross,
      naive(() => 0, false),
      2e-6,
    );
  });

  it('unidirectional with a single query attends every key (ONNX Runtime masks only from two queries on)', () => {
    const ins = [f32('q', [1, 1, 1], [1]), f32('k', [1, 3, 1], [1, 2, 3]), f32('v', [1, 3, 1], [1, 2, 4])];
    const y = run('MultiHeadAttention', ins, ['y'], { num_heads: 1, unidirectional: 1 })['y']!;
    const e = [1, 2, 3].map(Math.exp);
    expectClose(y, [(e[0]! * 1 + e[1]! * 2 + e[2]! * 4) / (e[0]! + e[1]! + e[2]!)], 1e-6);
  });

  it('BNSH key / value with a past: attended as given; present = past ++ key (the kvBNSH conformance case)', () => {
    const ins = [f32('q', [1, 1, 1], [1]), f32('k', [1, 1, 1, 1], [2]), f32('v', [1, 1, 1, 1], [3]), null, null];
    const all = [...ins, f32('ab', [1, 1, 1, 2], [10, 20]), f32('pk', [1, 1, 1, 1], [4]), f32('pv', [1, 1, 1, 1], [5])];
    const out = run('MultiHeadAttention', all, ['y', 'ok', 'ov'], { num_heads: 1 });
    // one key (2) with bias 10: the softmax weight is 1, y = v = 3 exactly
    expectClose(out['y']!, [3], 0);
    expectClose(out['ok']!, [4, 2], 0);
    expectClose(out['ov']!, [5, 3], 0);
  });

  it('past / present: the past is prepended when present is an output, ignored otherwise (as ONNX Runtime)', () => {
    const pk = randF32(r, 'pk', [B, N, 2, H]);
    const pv = randF32(r, 'pv', [B, N, 2, H]);
    const ins = [q, k, v, null, null, null, pk, pv];
    const withPresent = run('MultiHeadAttention', ins, ['y', 'pk_out', 'pv_out'], { num_heads: N });
    expect(withPresent['pk_out']!.shape).toEqual([B, N, 2 + L, H]);
    const kAll = (p: In, cur: In) => {
      const c = bnsh(cur.t.data, B, L, N, H);
      const out: number[] = [];
      for (let b = 0; b < B; b++)
        for (let n = 0; n < N; n++) {
          out.push(...Array.from(p.t.data.subarray((b * N + n) * 2 * H, (b * N + n + 1) * 2 * H)));
          out.push(...c.slice((b * N + n) * L * H, (b * N + n + 1) * L * H));
        }
      return out;
    };
    const [ka, va] = [kAll(pk, k), kAll(pv, v)];
    expectClose(withPresent['pk_out']!, ka, 0);
    const y = attend(bnsh(q.t.data, B, S, N, H), ka, va, [B, N, N, S, L + 2, H, H], () => 0, 1 / Math.sqrt(H));
    expectClose(withPresent['y']!, bsnh(y, B, N, S, H), 2e-6);
    const without = run('MultiHeadAttention', ins, ['y'], { num_heads: N })['y']!;
    expectClose(
      without,
      naive(() => 0, false),
      2e-6,
    );
  });
});

describe('Attention (vs a naive implementation)', () => {
  const B = 2;
  const S = 3;
  const D = 4;
  const N = 2;
  const r = rand(11);
  const x = randF32(r, 'x', [B, S, D], 2);
  const w = randF32(r, 'w', [D, 3 * D]);
  const bias = randF32(r, 'b', [3 * D]);
  const proj = (): number[][] => {
    const out = [[], [], []] as number[][];
    for (let row = 0; row < B * S; row++)
      for (let c = 0; c < 3 * D; c++) {
        let s = 0;
        for (let i = 0; i < D; i++) s += x.t.data[row * D + i]! * w.t.data[i * 3 * D + c]!;
        out[Math.floor(c / D)]!.push(s + bias.t.data[c]!);
      }
    return out;
  };
  const [qa, ka, va] = proj();
  const H = D / N;

  const maskCases: [string, In, (b: number, i: number, j: number) => number][] = [
    ['[B] end positions', i32('m', [B], [2, 3]), (b, _i, j) => (j < [2, 3][b]! ? 0 : -10000)],
    [
      '[2B] end and start positions',
      i32('m', [2 * B], [3, 2, 1, 0]),
      (b, _i, j) => (j < [3, 2][b]! && j >= [1, 0][b]! ? 0 : -10000),
    ],
    [
      '[B, S, T] raw',
      i32('m', [B, S, S], [1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1]),
      (b, i, j) => ([1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1][(b * S + i) * S + j] ? 0 : -10000),
    ],
  ];
  for (const [name, m, mask] of maskCases) {
    it(`mask_index ${name}, unidirectional`, async () => {
      const ins = [x, w, bias, m];
      const out = run('Attention', ins, ['y'], { num_heads: N, unidirectional: 1 })['y']!;
      const y = attend(
        bnsh(qa!, B, S, N, H),
        bnsh(ka!, B, S, N, H),
        bnsh(va!, B, S, N, H),
        [B, N, N, S, S, H, H],
        (b, _h, i, j) => (j > i ? -Infinity : mask(b, i, j)),
        1 / Math.sqrt(H),
      );
      expectClose(out, bsnh(y, B, N, S, H), 5e-6);
      await onDevices(graphOf('Attention', ins, ['y'], { num_heads: N, unidirectional: 1 }), feedsOf(ins));
    }, 60_000);
  }

  it('present without past is [2, B, N, S, H] of the projected K and V', () => {
    const out = run('Attention', [x, w, bias], ['y', 'present'], { num_heads: N });
    expect(out['present']!.shape).toEqual([2, B, N, S, H]);
    expectClose(out['present']!, [...bnsh(ka!, B, S, N, H), ...bnsh(va!, B, S, N, H)], 2e-6);
  });

  it('past [2, B, N, P, H] → present [2, B, N, P + S, H]', async () => {
    const past = randF32(r, 'past', [2, B, N, 1, H]);
    const ins = [x, w, bias, null, past];
    const out = run('Attention', ins, ['y', 'present'], { num_heads: N });
    expect(out['present']!.shape).toEqual([2, B, N, 1 + S, H]);
    const cat = (which: number, cur: number[]) => {
      const c = bnsh(cur, B, S, N, H);
      const o: number[] = [];
      for (let b = 0; b < B; b++)
        for (let n = 0; n < N; n++) {
          const p0 = ((which * B + b) * N + n) * H;
          o.push(
            ...Array.from(past.t.data.subarray(p0, p0 + H)),
            ...c.slice((b * N + n) * S * H, (b * N + n + 1) * S * H),
          );
        }
      return o;
    };
    const [kk, vv] = [cat(0, ka!), cat(1, va!)];
    expectClose(out['present']!, [...kk, ...vv], 2e-6);
    const y = attend(bnsh(qa!, B, S, N, H), kk, vv, [B, N, N, S, S + 1, H, H], () => 0, 1 / Math.sqrt(H));
    expectClose(out['y']!, bsnh(y, B, N, S, H), 5e-6);
    await onDevices(graphOf('Attention', ins, ['y', 'present'], { num_heads: N }), feedsOf(ins));
  }, 60_000);
});

describe('contrib ops on graphs with symbolic dims (one graph, run at concrete shapes)', () => {
  const same = async (
    op: string,
    ins: (In | null)[],
    outs: string[],
    attrs: Record<string, AttrVal>,
    sym: Record<string, Dim[]>,
  ) => {
    const g = graphOf(op, ins, outs, attrs, 'com.microsoft', sym);
    expect(g.inputs.some((v) => v.type.shape.some((d) => typeof d === 'string'))).toBe(true);
    const want = interpret(graphOf(op, ins, outs, attrs), feedsOf(ins));
    const got = interpret(g, feedsOf(ins));
    for (const o of outs.filter((x) => x !== '')) expectClose(got[o]!, Array.from(want[o]!.data), 0);
    await onDevices(g, feedsOf(ins));
  };

  it('GroupQueryAttention (batch, seq, past symbolic)', async () => {
    const { inputs, attrs } = gqaCase(
      { B: 2, S: 2, N: 2, kvN: 1, H: 4, P: 3, seqlens: [4, 3], total: 5, window: 2 },
      5,
    );
    await same('GroupQueryAttention', inputs, ['y', 'present_k', 'present_v'], attrs, {
      q: ['b', 's', 8],
      k: ['b', 's', 4],
      v: ['b', 's', 4],
      pk: ['b', 1, 'p', 4],
      pv: ['b', 1, 'p', 4],
      seqlens: ['b'],
    });
  }, 60_000);

  it('GroupQueryAttention decode loop: one compiled session, the present fed back as the past', async () => {
    const sym = {
      q: ['b', 's', 8],
      k: ['b', 's', 4],
      v: ['b', 's', 4],
      pk: ['b', 1, 'p', 4],
      pv: ['b', 1, 'p', 4],
      seqlens: ['b'],
    };
    const first = gqaCase({ B: 1, S: 1, N: 2, kvN: 1, H: 4, P: 2, seqlens: [2], total: 3 }, 31);
    const g = graphOf(
      'GroupQueryAttention',
      first.inputs,
      ['y', 'present_k', 'present_v'],
      first.attrs,
      'com.microsoft',
      sym,
    );
    for (const backend of backends) {
      const session = await compile(g, { backend });
      try {
        let feeds = feedsOf(first.inputs);
        for (let step = 0; step < 3; step++) {
          const got = await session.run(feeds);
          const want = interpret(g, feeds);
          for (const o of ['y', 'present_k', 'present_v']) expectClose(got[o]!, Array.from(want[o]!.data), 1e-5);
          const r = rand(100 + step);
          const p = got['present_k']!.shape[2]!;
          feeds = {
            ...feeds,
            q: randF32(r, 'q', [1, 1, 8]).t,
            k: randF32(r, 'k', [1, 1, 4]).t,
            v: randF32(r, 'v', [1, 1, 4]).t,
            pk: got['present_k']!,
            pv: got['present_v']!,
            seqlens: makeTensor('i32', [1], [p]),
            total: makeTensor('i32', [1], [p + 1]),
          };
        }
      } finally {
        session.dispose();
      }
    }
  }, 60_000);

  it('MultiHeadAttention with past and a [B] key-padding mask', async () => {
    const r = rand(9);
    const ins = [
      randF32(r, 'q', [2, 3, 4]),
      randF32(r, 'k', [2, 3, 4]),
      randF32(r, 'v', [2, 3, 4]),
      null,
      i32('m', [2], [4, 5]),
      null,
      randF32(r, 'pk', [2, 2, 2, 2]),
      randF32(r, 'pv', [2, 2, 2, 2]),
    ];
    await same(
      'MultiHeadAttention',
      ins,
      ['y', 'ok', 'ov'],
      { num_heads: 2, unidirectional: 1 },
      {
        q: ['b', 's', 4],
        k: ['b', 's', 4],
        v: ['b', 's', 4],
        m: ['b'],
        pk: ['b', 2, 'p', 2],
        pv: ['b', 2, 'p', 2],
      },
    );
  }, 60_000);

  it('Attention with past and RotaryEmbedding with a scalar start position', async () => {
    const r = rand(10);
    const ins = [
      randF32(r, 'x', [2, 3, 4]),
      randF32(r, 'w', [4, 12]),
      randF32(r, 'bias', [12]),
      i32('m', [2], [4, 2]),
      randF32(r, 'past', [2, 2, 2, 1, 2]),
    ];
    await same(
      'Attention',
      ins,
      ['y', 'present'],
      { num_heads: 2 },
      { x: ['b', 's', 4], m: ['b'], past: [2, 'b', 2, 'p', 2] },
    );
    const rot = [randF32(r, 'x', [1, 3, 8]), i64('p', [1], [2]), randF32(r, 'c', [8, 2]), randF32(r, 's', [8, 2])];
    await same('RotaryEmbedding', rot, ['y'], {}, { x: ['b', 'n', 8] });
  }, 60_000);
});

describe('contrib ops without a conformance case on the device backends', () => {
  const r = rand(3);
  const cases: [string, (In | null)[], string[], Record<string, AttrVal>, string?][] = [
    ['BiasGelu', [randF32(r, 'a', [3, 8], 3), randF32(r, 'b', [8])], ['y'], {}],
    ['QuickGelu', [randF32(r, 'x', [2, 5], 4)], ['y'], { alpha: 1.5 }],
    ['BiasAdd', [randF32(r, 'x', [2, 3, 4]), randF32(r, 'b', [4]), randF32(r, 's', [2, 3, 4])], ['y'], {}],
    ['BiasSplitGelu', [randF32(r, 'x', [2, 3, 8], 3), randF32(r, 'b', [8])], ['y'], {}],
    [
      'SimplifiedLayerNormalization',
      [randF32(r, 'x', [2, 3, 8], 3), randF32(r, 's', [8])],
      ['y', 'inv'],
      { epsilon: 1e-5 },
      '',
    ],
    [
      'SkipSimplifiedLayerNormalization',
      [randF32(r, 'x', [2, 3, 8]), randF32(r, 's', [2, 3, 8]), randF32(r, 'g', [8]), randF32(r, 'b', [8])],
      ['y', '', 'inv', 'sum'],
      {},
    ],
    [
      'SkipLayerNormalization',
      [
        randF32(r, 'x', [2, 3, 8]),
        randF32(r, 's', [3, 8]),
        randF32(r, 'g', [8]),
        randF32(r, 'be', [8]),
        randF32(r, 'b', [8]),
      ],
      ['y', 'mean', 'inv', 'sum'],
      {},
    ],
  ];
  for (const [op, ins, outs, attrs, domain] of cases) {
    it(
      op,
      async () => {
        await onDevices(graphOf(op, ins, outs, attrs, domain), feedsOf(ins));
      },
      60_000,
    );
  }
});

describe('contrib ops in f16 on the device backends', () => {
  const half = (x: In): In => ({ name: x.name, t: makeTensor('f16', [...x.t.shape], Array.from(x.t.data)) });
  it('GroupQueryAttention with rotary and softcap, SkipSimplifiedLayerNormalization', async () => {
    const { inputs, attrs } = gqaCase(
      {
        B: 1,
        S: 2,
        N: 2,
        kvN: 1,
        H: 4,
        P: 2,
        seqlens: [3],
        total: 4,
        softcap: 3,
        rotary: { R: 4, interleaved: false },
      },
      21,
    );
    const ins = inputs.map((i) => (i && i.t.dtype === 'f32' ? half(i) : i));
    await onDevices(graphOf('GroupQueryAttention', ins, ['y', 'present_k', 'present_v'], attrs), feedsOf(ins));
    const r = rand(22);
    const norm = [randF32(r, 'x', [2, 3, 8]), randF32(r, 's', [2, 3, 8]), randF32(r, 'g', [8])].map(half);
    await onDevices(graphOf('SkipSimplifiedLayerNormalization', norm, ['y', '', 'inv', 'sum']), feedsOf(norm));
  }, 60_000);
});

// ---- bad input → typed errors naming the node ----

/** Import (and, when that succeeds, run the reference on) a node: either it works or a KilnError names the node. */
function expectTypedOrOk(
  op: string,
  ins: (In | null)[],
  outs: string[],
  attrs: Record<string, AttrVal>,
): 'ok' | 'error' {
  try {
    const g = graphOf(op, ins, outs, attrs);
    interpret(g, feedsOf(ins));
    return 'ok';
  } catch (e) {
    expect(e, String(e)).toBeInstanceOf(KilnError);
    const k = e as KilnError;
    expect(`${k.location.node ?? ''} ${k.message}`, k.message).toContain(NODE);
    return 'error';
  }
}

function expectNodeError(op: string, ins: (In | null)[], outs: string[], attrs: Record<string, AttrVal>, msg: RegExp) {
  let err: unknown;
  try {
    interpret(graphOf(op, ins, outs, attrs), feedsOf(ins));
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a typed error').toBeInstanceOf(KilnError);
  expect((err as KilnError).message).toMatch(msg);
  expect((err as KilnError).message).toContain(NODE);
}

describe('contrib ops: bad attributes and inputs → typed errors naming the node', () => {
  const z = (name: string, shape: number[]) =>
    f32(name, shape, new Array<number>(shape.reduce((a, b) => a * b, 1)).fill(0.5));
  it('inconsistent head counts', () => {
    const gqa = (n: number, kvn: number, hidden = 8) => [
      z('q', [1, 2, hidden]),
      z('k', [1, 2, 4]),
      z('v', [1, 2, 4]),
      null,
      null,
      i32('sl', [1], [1]),
      i32('tl', [1], [2]),
    ];
    expectNodeError(
      'GroupQueryAttention',
      gqa(3, 2),
      ['y'],
      { num_heads: 3, kv_num_heads: 2 },
      /multiple of kv_num_heads/,
    );
    expectNodeError(
      'GroupQueryAttention',
      gqa(2, 1, 6),
      ['y'],
      { num_heads: 4, kv_num_heads: 1 },
      /not divisible by 4 heads/,
    );
    expectNodeError(
      'GroupQueryAttention',
      gqa(2, 1),
      ['y'],
      { num_heads: 0, kv_num_heads: 1 },
      /num_heads must be positive/,
    );
    expectNodeError(
      'GroupQueryAttention',
      gqa(2, 1),
      ['y'],
      { num_heads: 2, kv_num_heads: 2 },
      /key must be \[batch, seq, 2 \* 4\]/,
    );
    expectNodeError(
      'MultiHeadAttention',
      [z('q', [1, 2, 6]), z('k', [1, 2, 6]), z('v', [1, 2, 6])],
      ['y'],
      { num_heads: 4 },
      /divisible|heads/,
    );
    expectNodeError(
      'Attention',
      [z('x', [1, 2, 4]), z('w', [4, 12])],
      ['y'],
      { num_heads: 3 },
      /not divisible by 3 heads/,
    );
    expectNodeError(
      'Attention',
      [z('x', [1, 2, 4]), z('w', [4, 12])],
      ['y'],
      { num_heads: 2, qkv_hidden_sizes: [4, 4, 5] },
      /add up/,
    );
  });

  it('GroupQueryAttention caches without do_rotary are unused; one cache without the other is an error', () => {
    const { inputs, attrs } = gqaCase({ B: 1, S: 2, N: 2, kvN: 1, H: 4, P: 1, seqlens: [2], total: 3 }, 4);
    const cache = [z('cos', [8, 2]), z('sin', [8, 2])];
    const withCaches = [...inputs.slice(0, 7), ...cache];
    const a = run('GroupQueryAttention', inputs, ['y'], attrs)['y']!;
    const b = run('GroupQueryAttention', withCaches, ['y'], attrs)['y']!;
    expectClose(b, Array.from(a.data), 0);
    expectNodeError('GroupQueryAttention', [...inputs.slice(0, 7), cache[0]!], ['y'], attrs, /given together/);
  });

  it('masks and lengths that do not match the batch or the keys', () => {
    const qkv = [z('q', [2, 2, 4]), z('k', [2, 2, 4]), z('v', [2, 2, 4])];
    expectNodeError(
      'MultiHeadAttention',
      [...qkv, null, i32('m', [2, 3], new Array<number>(6).fill(1))],
      ['y'],
      { num_heads: 2 },
      /cover all 2 keys/,
    );
    expectNodeError(
      'MultiHeadAttention',
      [...qkv, null, i32('m', [3], [1, 1, 1])],
      ['y'],
      { num_heads: 2 },
      /batch = 2/,
    );
    const gqa = [...qkv, null, null, i32('sl', [3], [1, 1, 1]), i32('tl', [1], [2])];
    expectNodeError(
      'GroupQueryAttention',
      gqa,
      ['y'],
      { num_heads: 2, kv_num_heads: 2 },
      /seqlens_k must be 1-D \[batch = 2\]/,
    );
  });

  it('wrong ranks', () => {
    expectNodeError(
      'MultiHeadAttention',
      [z('q', [2, 4]), z('k', [2, 4]), z('v', [2, 4])],
      ['y'],
      { num_heads: 2 },
      /rank 3 or 5/,
    );
    expectNodeError(
      'Attention',
      [z('x', [1, 2, 4]), z('w', [4, 12]), null, i32('m', [1, 1, 1, 2, 2], new Array<number>(4).fill(1))],
      ['y'],
      { num_heads: 2 },
      /rank 5/,
    );
    expectNodeError(
      'RotaryEmbedding',
      [z('x', [2, 4]), i64('p', [1], [0]), z('c', [4, 1]), z('s', [4, 1])],
      ['y'],
      {},
      /rank 3 or 4/,
    );
    expectNodeError(
      'SkipLayerNormalization',
      [z('x', [1, 2, 4]), z('s', [1, 2, 4]), z('g', [2, 2])],
      ['y'],
      {},
      /gamma.*1-D/,
    );
    expectNodeError('BiasSplitGelu', [z('x', [2, 3]), z('b', [3])], ['y'], {}, /rank 3/);
    expectNodeError('BiasSplitGelu', [z('x', [1, 2, 3]), z('b', [3])], ['y'], {}, /must be even/);
  });

  it('bad rotary attributes and positions', () => {
    const x = z('x', [1, 2, 8]);
    const cache = [z('c', [4, 2]), z('s', [4, 2])];
    expectNodeError(
      'RotaryEmbedding',
      [x, i64('p', [1], [0]), ...cache],
      ['y'],
      { rotary_embedding_dim: 4 },
      /needs the num_heads/,
    );
    expectNodeError(
      'RotaryEmbedding',
      [x, i64('p', [1], [0]), ...cache],
      ['y'],
      { num_heads: 2, rotary_embedding_dim: 3 },
      /even|rotary/,
    );
    expectNodeError(
      'RotaryEmbedding',
      [x, i64('p', [1, 2], [0, 9]), ...cache],
      ['y'],
      { num_heads: 2 },
      /position id 9 outside/,
    );
  });

  it('a rotary position past the cache is a typed error naming the node on every backend', async () => {
    const ins = [z('x', [1, 2, 8]), i64('p', [1], [3]), z('c', [4, 2]), z('s', [4, 2])];
    const g = graphOf('RotaryEmbedding', ins, ['y'], { num_heads: 2 });
    for (const backend of backends) {
      const session = await compile(g, { backend });
      try {
        await expect(session.run(feedsOf(ins))).rejects.toThrow(new RegExp(NODE));
        await expect(session.run(feedsOf(ins))).rejects.toBeInstanceOf(KilnError);
      } finally {
        session.dispose();
      }
    }
  }, 60_000);

  it('GroupQueryAttention seqlens_k beyond the past buffer is a typed run-time error naming the node everywhere', async () => {
    // past buffer of 2, one new token: seqlens_k 2 is the last valid value; 4 and -5 are not
    for (const bad of [4, -5]) {
      const { inputs, attrs } = gqaCase({ B: 1, S: 1, N: 1, kvN: 1, H: 2, P: 2, seqlens: [bad], total: 3 }, 1);
      const g = graphOf('GroupQueryAttention', inputs, ['y', 'present_k', 'present_v'], attrs);
      expect(() => interpret(g, feedsOf(inputs))).toThrow(new RegExp(`${NODE}.*out of range|out of range.*${NODE}`));
      for (const backend of backends) {
        const session = await compile(g, { backend });
        try {
          await expect(session.run(feedsOf(inputs))).rejects.toThrow(new RegExp(NODE));
        } finally {
          session.dispose();
        }
      }
    }
  }, 60_000);

  it('fuzzed near-valid attention nodes (one dim or attribute off): typed errors naming the node', () => {
    const sizes = fc.record({
      B: fc.integer({ min: 1, max: 2 }),
      S: fc.integer({ min: 1, max: 3 }),
      N: fc.integer({ min: 1, max: 4 }),
      kvN: fc.integer({ min: 1, max: 4 }),
      H: fc.integer({ min: 1, max: 4 }),
      P: fc.integer({ min: 0, max: 2 }),
      op: fc.constantFrom('GroupQueryAttention', 'MultiHeadAttention', 'Attention'),
      which: fc.integer({ min: 0, max: 7 }),
      delta: fc.integer({ min: -1, max: 1 }),
      mask: fc.constantFrom(0, 1, 2, 3),
    });
    let errors = 0;
    let oks = 0;
    fc.assert(
      fc.property(sizes, ({ B, S, N, kvN, H, P, op, which, delta, mask }) => {
        const bump = (i: number, v: number) => (which === i ? Math.max(0, v + delta) : v);
        const ins: (In | null)[] = [];
        const attrs: Record<string, AttrVal> = { num_heads: bump(0, N) };
        if (op === 'GroupQueryAttention') {
          attrs['kv_num_heads'] = bump(1, kvN);
          attrs['local_window_size'] = bump(7, 1);
          ins.push(z('q', [B, S, bump(2, N * H)]), z('k', [B, S, bump(3, kvN * H)]), z('v', [B, S, kvN * H]));
          ins.push(P ? z('pk', [B, kvN, P, bump(4, H)]) : null, P ? z('pv', [B, kvN, P, H]) : null);
          ins.push(i32('sl', [bump(5, B)], new Array<number>(bump(5, B)).fill(P + S - 1)), i32('tl', [1], [P + S]));
        } else if (op === 'MultiHeadAttention') {
          ins.push(z('q', [B, S, bump(2, N * H)]), z('k', [B, S + 1, bump(3, N * H)]), z('v', [B, S + 1, N * H]));
          ins.push(which === 6 ? z('bias', [3 * N * H + delta]) : null);
          ins.push(
            mask
              ? i32(
                  'm',
                  mask === 1 ? [bump(5, B)] : [B, bump(5, P + S + 1)],
                  new Array<number>(mask === 1 ? bump(5, B) : B * bump(5, P + S + 1)).fill(1),
                )
              : null,
          );
          ins.push(mask === 3 ? z('ab', [1, bump(4, N), S, P + S + 1]) : null);
          ins.push(P ? z('pk', [B, N, P, bump(1, H)]) : null, P ? z('pv', [B, N, P, H]) : null);
        } else {
          const D = N * H;
          ins.push(
            z('x', [B, S, bump(2, D)]),
            z('w', [D, bump(3, 3 * D)]),
            which === 6 ? z('b', [3 * D + delta]) : null,
          );
          ins.push(
            mask
              ? i32(
                  'm',
                  mask === 1 ? [bump(5, B)] : mask === 2 ? [2 * B] : [B, S, bump(5, P + S)],
                  new Array<number>(mask === 1 ? bump(5, B) : mask === 2 ? 2 * B : B * S * bump(5, P + S)).fill(1),
                )
              : null,
          );
          ins.push(P ? z('past', [2, B, bump(1, N), P, bump(4, H)]) : null);
        }
        while (ins.length && ins.at(-1) === null) ins.pop();
        if (
          expectTypedOrOk(op, ins, P ? ['y', 'o1', 'o2'].slice(0, op === 'Attention' ? 2 : 3) : ['y'], attrs) ===
          'error'
        )
          errors++;
        else oks++;
      }),
      { numRuns: PROP_RUNS * 4 },
    );
    expect(errors).toBeGreaterThan(0);
    expect(oks).toBeGreaterThan(0);
  });

  it('fuzzed attributes and shapes: it works or fails with a typed error naming the node', () => {
    const dims = fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 0, maxLength: 5 });
    const op = fc.constantFrom(
      'GroupQueryAttention',
      'MultiHeadAttention',
      'Attention',
      'RotaryEmbedding',
      'SkipLayerNormalization',
      'SkipSimplifiedLayerNormalization',
      'BiasSplitGelu',
      'BiasAdd',
      'FastGelu',
      'QuickGelu',
      'SimplifiedLayerNormalization',
    );
    let errors = 0;
    fc.assert(
      fc.property(
        op,
        fc.array(dims, { minLength: 1, maxLength: 7 }),
        fc.integer({ min: -1, max: 4 }),
        fc.integer({ min: -1, max: 4 }),
        fc.integer({ min: -1, max: 6 }),
        (o, shapes, nh, kvn, extra) => {
          const ins: (In | null)[] = shapes.map((s, i) =>
            (o === 'GroupQueryAttention' && (i === 5 || i === 6)) ||
            (o === 'RotaryEmbedding' && i === 1) ||
            (o === 'Attention' && i === 3)
              ? i32(`in${i}`, s, new Array<number>(s.reduce((a, b) => a * b, 1)).fill(1))
              : z(`in${i}`, s),
          );
          if (o === 'RotaryEmbedding' && ins[1])
            ins[1] = i64('in1', [...ins[1].t.shape], new Array<number>(ins[1].t.data.length).fill(0));
          const attrs: Record<string, AttrVal> = {
            num_heads: nh,
            kv_num_heads: kvn,
            rotary_embedding_dim: extra,
            local_window_size: extra,
          };
          if (expectTypedOrOk(o, ins, ['y'], attrs) === 'error') errors++;
        },
      ),
      { numRuns: PROP_RUNS * 4 },
    );
    expect(errors).toBeGreaterThan(0);
  });
});
