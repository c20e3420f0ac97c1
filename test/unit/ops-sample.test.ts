/**
 * sample_token: hand-worked rows (greedy with ties, top_k 1 / 2, top_p cutting to the first candidate, temperature,
 * ties in sorted order, per-row parameters in one batch), the (seed, step) hash against values computed by hand
 * (Python big integers), type inference errors naming the node, and the empirical frequencies of a 4-token row over
 * many steps against its probabilities.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { DType } from '../../ir/dtype.js';
import '../../ir/index.js';
import { interpret } from '../../ir/interpret.js';
import { sampleBits, sampleUniform } from '../../ir/ops/sample.js';
import type { Dim } from '../../ir/shape.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { verifyError } from '../helpers/errors.js';

interface Row {
  logits: number[];
  temp: number;
  k?: number;
  p?: number;
  seed?: number;
  step?: number;
}

/** sample_token over rows of one vocab, one batch, through the interpreter. */
function sampleRows(rows: readonly Row[], opts: { dtype?: DType; intDtype?: DType } = {}): number[] {
  const V = rows[0]!.logits.length;
  const B = rows.length;
  const it = opts.intDtype ?? 'i64';
  const ins: [string, Tensor][] = [
    [
      'logits',
      makeTensor(
        opts.dtype ?? 'f32',
        [B, V],
        rows.flatMap((r) => r.logits),
      ),
    ],
    [
      'temperature',
      makeTensor(
        'f32',
        [B],
        rows.map((r) => r.temp),
      ),
    ],
    [
      'top_k',
      makeTensor(
        it,
        [B],
        rows.map((r) => r.k ?? 0),
      ),
    ],
    [
      'top_p',
      makeTensor(
        'f32',
        [B],
        rows.map((r) => r.p ?? 1),
      ),
    ],
    [
      'seed',
      makeTensor(
        it,
        [B],
        rows.map((r) => r.seed ?? 0),
      ),
    ],
    [
      'step',
      makeTensor(
        it,
        [B],
        rows.map((r) => r.step ?? 0),
      ),
    ],
  ];
  const b = new GraphBuilder('t');
  const feeds: Record<string, Tensor> = {};
  const vals = ins.map(([name, t]) => {
    feeds[name] = t;
    return b.input(name, t.dtype, t.shape);
  });
  b.output(b.op('sample_token', vals), 'y');
  const y = interpret(b.build(), feeds)['y']!;
  expect(y.dtype).toBe('i64');
  return Array.from(y.data);
}

// Draws used below (see the hash test): u(42, 7) = 0.0501, u(1, 0) = 0.3176, u(0, 1) = 0.5734, u(-1, 3) = 0.8927.
const U05 = { seed: 42, step: 7 };
const U32 = { seed: 1, step: 0 };
const U57 = { seed: 0, step: 1 };
const U89 = { seed: -1, step: 3 };
const LN3 = Math.log(3);

describe('sample_token hash', () => {
  it('matches values computed by hand for a few (seed, step)', () => {
    // x = seed ^ step·0x9E3779B9, then the murmur3 finalizer, all mod 2^32 (computed with Python integers)
    expect(sampleBits(0, 0)).toBe(0);
    expect(sampleBits(1, 0)).toBe(0x514e28b7);
    expect(sampleBits(0, 1)).toBe(0x92ca2f0e);
    expect(sampleBits(42, 7)).toBe(0xcd4850e);
    expect(sampleBits(2 ** 32 - 1, 3)).toBe(0xe48ac83a);
    expect(sampleBits(5, -2)).toBe(0x727c429a);
    // seed and step are taken modulo 2^32
    expect(sampleBits(-1, 3)).toBe(sampleBits(2 ** 32 - 1, 3));
    expect(sampleBits(7, 2 ** 32 + 5)).toBe(sampleBits(7, 5));
    // u = top 24 bits / 2^24
    expect(sampleUniform(1, 0)).toBe(0x514e28 / 2 ** 24);
    expect(sampleUniform(42, 7)).toBeCloseTo(0.0501178, 6);
    expect(sampleUniform(0, 1)).toBeCloseTo(0.5733976, 6);
    expect(sampleUniform(-1, 3)).toBeCloseTo(0.8927426, 6);
  });
});

describe('sample_token reference: hand-worked rows', () => {
  it('greedy (temperature <= 0) is the argmax, the first index on ties', () => {
    expect(sampleRows([{ logits: [1, 3, 3, 2], temp: 0, ...U89 }])).toEqual([1]);
    expect(sampleRows([{ logits: [1, 3, 3, 2], temp: -1, k: 3, p: 0.1, ...U89 }])).toEqual([1]);
    expect(sampleRows([{ logits: [-4, -2, -3, -2], temp: 0 }])).toEqual([1]);
  });

  it('top_k 1 is the argmax whatever the draw', () => {
    for (const u of [U05, U57, U89]) {
      expect(sampleRows([{ logits: [0.5, 2, -1, 2], temp: 1, k: 1, ...u }])).toEqual([1]);
    }
  });

  it('top_k 2: logits [0, ln 3, -10] keep {1: weight 1, 0: weight 1/3}; P(1) = 3/4', () => {
    const row = { logits: [0, LN3, -10], temp: 1, k: 2 };
    // target = u · 4/3: u 0.05 → 0.067 < 1 (token 1); u 0.89 → 1.19 ≥ 1, < 4/3 (token 0)
    expect(sampleRows([{ ...row, ...U05 }])).toEqual([1]);
    expect(sampleRows([{ ...row, ...U32 }])).toEqual([1]);
    expect(sampleRows([{ ...row, ...U89 }])).toEqual([0]);
    // token 2 (weight e^-(10+ln3)) is never drawn under top_k 2; with all kept u 0.89 still lands on token 0
    expect(sampleRows([{ ...row, k: 0, ...U89 }])).toEqual([0]);
  });

  it('top_p cuts to the first candidate when it alone reaches p of the mass', () => {
    // weights sorted [1 (token 1), 1/3 (token 0)], total 4/3: p 0.7 → 0.933 ≤ 1 keeps token 1 only;
    // p 0.8 → 1.067 > 1 keeps both, and u 0.89 (target 1.19) then lands on token 0
    expect(sampleRows([{ logits: [0, LN3], temp: 1, p: 0.7, ...U89 }])).toEqual([1]);
    expect(sampleRows([{ logits: [0, LN3], temp: 1, p: 0.8, ...U89 }])).toEqual([0]);
    // p <= 0 keeps one candidate
    expect(sampleRows([{ logits: [0, LN3], temp: 1, p: 0, ...U89 }])).toEqual([1]);
  });

  it('temperature scales the logits before the softmax', () => {
    // u 0.5734. T 1: P(token 1) = 3/4 > u → token 1. T 4: weights [1, 3^-1/4 = 0.7598], P(1) = 0.5682 < u → token 0
    expect(sampleRows([{ logits: [0, LN3], temp: 1, ...U57 }])).toEqual([1]);
    expect(sampleRows([{ logits: [0, LN3], temp: 4, ...U57 }])).toEqual([0]);
  });

  it('ties are walked lower index first', () => {
    // three equal weights: target u·3 → cumulative 1, 2, 3 in index order
    const row = { logits: [2, 2, 2], temp: 1 };
    expect(sampleRows([{ ...row, ...U05 }])).toEqual([0]);
    expect(sampleRows([{ ...row, ...U57 }])).toEqual([1]);
    expect(sampleRows([{ ...row, ...U89 }])).toEqual([2]);
    // top_k 2 among tied maxima keeps the two lower indices
    expect(sampleRows([{ logits: [1, 5, 5, 0, 5], temp: 1, k: 2, ...U89 }])).toEqual([2]);
    expect(sampleRows([{ logits: [1, 5, 5, 0, 5], temp: 1, k: 2, ...U32 }])).toEqual([1]);
  });

  it('per-row parameters in one batch; f16 logits; i32 integer inputs', () => {
    const rows: Row[] = [
      { logits: [0, LN3, -10], temp: 1, k: 2, ...U89 },
      { logits: [0, LN3, -10], temp: 0, ...U89 },
      { logits: [0, LN3, -10], temp: 1, p: 0.7, ...U89 },
      { logits: [2, 2, 2], temp: 1, ...U57 },
    ];
    expect(sampleRows(rows)).toEqual([0, 1, 1, 1]);
    expect(sampleRows(rows, { dtype: 'f16', intDtype: 'i32' })).toEqual([0, 1, 1, 1]);
  });
});

describe('sample_token inference', () => {
  const good: [DType, Dim[]][] = [
    ['f32', ['B', 10]],
    ['f32', ['B']],
    ['i64', ['B']],
    ['f32', ['B']],
    ['i64', ['B']],
    ['i32', ['B']],
  ];
  function infer(ins: readonly [DType, Dim[]][]) {
    const b = new GraphBuilder('t');
    return b.op(
      'sample_token',
      ins.map(([dt, s], i) => b.input(`in${i}`, dt, s)),
    );
  }
  const with_ = (i: number, t: [DType, Dim[]]) => good.map((g, j) => (j === i ? t : g));
  function inferError(ins: readonly [DType, Dim[]][], text: string): void {
    const e = verifyError(() => infer(ins));
    expect(e.location.node).toBe('sample_token_0');
    expect(e.message).toContain(text);
  }

  it('gives i64 [batch]', () => {
    const y = infer(good);
    expect(y.type.dtype).toBe('i64');
    expect(y.type.shape).toEqual(['B']);
  });

  it('rejects bad shapes and dtypes, naming the node', () => {
    inferError(with_(0, ['f32', [10]]), 'logits must be 2-D');
    inferError(with_(0, ['i32', ['B', 10]]), 'logits must be f32 or f16, got i32');
    inferError(with_(0, ['f32', ['B', 0]]), 'empty vocab');
    inferError(with_(1, ['f16', ['B']]), 'temperature must be f32, got f16');
    inferError(with_(2, ['f32', ['B']]), 'top_k must be i32 or i64, got f32');
    inferError(with_(3, ['f32', ['B', 1]]), 'top_p must be [batch]');
    inferError(with_(4, ['u8', ['B']]), 'seed must be i32 or i64');
    const fixed = with_(0, ['f32', [2, 10]]);
    inferError(
      fixed.map((t, i) => (i === 5 ? (['i64', [3]] as [DType, Dim[]]) : t)),
      'step must be [batch] = [2], got [3]',
    );
  });
});

describe('sample_token statistics', () => {
  /** Frequencies of each token over `n` steps of one row. */
  function freqs(row: Omit<Row, 'step'>, n: number): number[] {
    const got = sampleRows(Array.from({ length: n }, (_, step) => ({ ...row, step })));
    const f = new Array<number>(row.logits.length).fill(0);
    for (const t of got) f[t]! += 1 / n;
    return f;
  }

  // n = 4000: the standard error of a frequency is at most 0.008, so 0.03 is about 4 standard errors
  const n = 4000;
  const logits = [0, Math.log(2), Math.log(3), Math.log(4)];

  it('match the softmax probabilities [1, 2, 3, 4] / 10', () => {
    const f = freqs({ logits, temp: 1, seed: 123 }, n);
    [0.1, 0.2, 0.3, 0.4].forEach((p, i) => expect(Math.abs(f[i]! - p), `token ${i}: ${f[i]}`).toBeLessThan(0.03));
  });

  it('match the renormalized probabilities under top_k 3 and top_p 0.6', () => {
    const k = freqs({ logits, temp: 1, k: 3, seed: 9 }, n);
    [0, 2 / 9, 3 / 9, 4 / 9].forEach((p, i) => expect(Math.abs(k[i]! - p), `top_k token ${i}`).toBeLessThan(0.03));
    // sorted weights 4, 3, 2, 1 of 10: 0.6 · 10 = 6 is reached by {3, 2} → 4/7, 3/7
    const p = freqs({ logits, temp: 1, p: 0.6, seed: 9 }, n);
    [0, 0, 3 / 7, 4 / 7].forEach((q, i) => expect(Math.abs(p[i]! - q), `top_p token ${i}`).toBeLessThan(0.03));
  });
});
