/** QDQ folding (passes/quant/qdq.ts): each rule's before / after in IR text, near misses, and the numbers kept. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { matmulIntegerTransBRules, optimize, qdqIntegerRules, qdqRules, qdqWeightRules } from '../../passes/index.js';
import { PROP_RUNS } from '../helpers/paths.js';
import { expectSameGraph, expectUnchanged, ir, rewrite } from './helpers.js';

/** Deterministic pseudo-random floats in [-1, 1). */
function rand(n: number, seed: number): number[] {
  let s = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

function run(g: Graph, x: Tensor): Float64Array {
  return Float64Array.from(interpret(g, { x })['y']!.data as ArrayLike<number>);
}

const ops = (g: Graph): string[] => g.nodes.map((n) => n.op);

describe('qdq-weight-nbits', () => {
  it('a signed int4 per-column weight dequantized into a matmul becomes matmul_nbits (codes + 8, default zero point)', () => {
    const g = rewrite(
      `graph g {
        input %x: f32[3,4]
        const %wq: i4[4,2] = [1, -2, 3, 4, -8, 7, 0, -1]
        const %ws: f32[2] = [0.5, 0.25]
        %w: f32[4,2] = dequantize_linear(%wq, %ws) {axis=1}
        %y: f32[3,2] = matmul(%x, %w)
        output %y
      }`,
      qdqWeightRules,
    );
    // W transposed to [N, K]; column 0 codes 1, 3, -8, 0 → 9, 11, 0, 8 (low nibble first), padded to a block of 16
    expectSameGraph(
      g,
      `graph g {
        input %x: f32[3,4]
        const %b: u8[2,1,8] blockq(bits=4,group=16,axis=1,scale=f32,zp=0) = [185, 128, 0, 0, 0, 0, 0, 0, 198, 127, 0, 0, 0, 0, 0, 0]
        const %s: f32[2] = [0.5, 0.25]
        %y: f32[3,2] = matmul_nbits(%x, %b, %s) {K=4, N=2, bits=4, block_size=16}
        output %y
      }`,
    );
  });

  it('an asymmetric u8 weight blocked along K keeps its zero points (packed) and its numbers', () => {
    const K = 40;
    const N = 3;
    const codes = rand(K * N, 7).map((r) => Math.floor((r + 1) * 127.9));
    const scales = rand(3 * N, 8).map((r) => 0.01 + Math.abs(r) * 0.02);
    const zps = rand(3 * N, 9).map((r) => Math.floor((r + 1) * 100));
    const before = `graph g {
        input %x: f32[2,${K}]
        const %wq: u8[${K},${N}] = [${codes.join(', ')}]
        const %ws: f32[3,${N}] = [${scales.join(', ')}]
        const %wz: u8[3,${N}] = [${zps.join(', ')}]
        %w: f32[${K},${N}] = dequantize_linear(%wq, %ws, %wz) {axis=0, block_size=16}
        %y: f32[2,${N}] = matmul(%x, %w)
        output %y
      }`;
    const g = rewrite(before, qdqWeightRules);
    expect(ops(g)).toEqual(['matmul_nbits']);
    const nb = g.nodes[0]!;
    expect(nb.attrs).toEqual({ K, N, bits: 8, block_size: 16 });
    expect(nb.inputs[3]!.type.dtype).toBe('u8'); // zero points kept
    const x = makeTensor('f32', [2, K], rand(2 * K, 3));
    const want = run(ir(before), x);
    const got = run(g, x);
    // same codes, scales, zero points: the QDQ graph rounds each dequantized weight to f32, matmul_nbits' reference
    // keeps it in float64, and both outputs are rounded to f32 — a few f32 ulps apart at most
    for (let i = 0; i < want.length; i++)
      expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(want[i]!)));
  });

  it('gemm with transB and a bias: the [N, K] weight is quantized per row (axis 0), the bias rides along', () => {
    const before = `graph g {
        input %x: f32[2,4]
        const %wq: i8[2,4] = [1, -2, 3, 4, -8, 7, 0, -1]
        const %ws: f32[2] = [0.5, 0.25]
        const %c: f32[2] = [1, -1]
        %w: f32[2,4] = dequantize_linear(%wq, %ws) {axis=0}
        %y: f32[2,2] = gemm(%x, %w, %c) {transB=true}
        output %y
      }`;
    const g = rewrite(before, qdqWeightRules);
    expectSameGraph(
      g,
      `graph g {
        input %x: f32[2,4]
        const %c: f32[2] = [1, -1]
        const %b: u8[2,1,16] blockq(bits=8,group=16,axis=1,scale=f32,zp=0) = [129, 126, 131, 132, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 120, 135, 128, 127, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        const %s: f32[2] = [0.5, 0.25]
        %y: f32[2,2] = matmul_nbits(%x, %b, %s, _, _, %c) {K=4, N=2, bits=8, block_size=16}
        output %y
      }`,
    );
  });

  it('near misses: a weight that is not a constant, a scale per K without blocks, a block of 8, gemm alpha 2', () => {
    expectUnchanged(
      `graph g {
        input %x: f32[3,4]
        input %wq: i8[4,2]
        const %ws: f32[2] = [0.5, 0.25]
        %w: f32[4,2] = dequantize_linear(%wq, %ws) {axis=1}
        %y: f32[3,2] = matmul(%x, %w)
        output %y
      }`,
      qdqRules,
    );
    expectUnchanged(
      `graph g {
        input %x: f32[3,2]
        const %wq: i8[2,2] = [1, -2, 3, 4]
        const %ws: f32[2] = [0.5, 0.25]
        %w: f32[2,2] = dequantize_linear(%wq, %ws) {axis=0}
        %y: f32[3,2] = matmul(%x, %w)
        output %y
      }`,
      qdqRules,
    );
    expectUnchanged(
      `graph g {
        input %x: f32[3,16]
        const %wq: i8[16,1] = [1, -2, 3, 4, 1, -2, 3, 4, 1, -2, 3, 4, 1, -2, 3, 4]
        const %ws: f32[2,1] = [0.5, 0.25]
        %w: f32[16,1] = dequantize_linear(%wq, %ws) {axis=0, block_size=8}
        %y: f32[3,1] = matmul(%x, %w)
        output %y
      }`,
      qdqRules,
    );
    expectUnchanged(
      `graph g {
        input %x: f32[2,2]
        const %wq: i8[2,2] = [1, -2, 3, 4]
        const %ws: f32[2] = [0.5, 0.25]
        %w: f32[2,2] = dequantize_linear(%wq, %ws) {axis=0}
        %y: f32[2,2] = gemm(%x, %w) {transB=true, alpha=2.0}
        output %y
      }`,
      qdqRules,
    );
  });
});

describe('qdq-act-weight-integer', () => {
  const qdq = (sx2: string) => `graph g {
        input %x: f32[3,4]
        const %sx: f32[] = [0.125]
        const %sx2: f32[] = [${sx2}]
        const %zx: u8[] = [128]
        const %wq: i8[4,2] = [1, -2, 3, 4, -8, 7, 0, -1]
        const %ws: f32[2] = [0.5, 0.25]
        %q: u8[3,4] = quantize_linear(%x, %sx, %zx)
        %xd: f32[3,4] = dequantize_linear(%q, %sx2, %zx)
        %w: f32[4,2] = dequantize_linear(%wq, %ws) {axis=1}
        %y: f32[3,2] = matmul(%xd, %w)
        output %y
      }`;

  it('activation Q → DQ and a per-column int8 weight: matmul_integer on the codes, one f32 rescale', () => {
    const g = rewrite(qdq('0.125'), qdqRules);
    expectSameGraph(
      g,
      `graph g {
        input %x: f32[3,4]
        const %sx: f32[] = [0.125]
        const %zx: u8[] = [128]
        const %wq: i8[4,2] = [1, -2, 3, 4, -8, 7, 0, -1]
        const %r: f32[2] = [0.0625, 0.03125]
        %q: u8[3,4] = quantize_linear(%x, %sx, %zx)
        %a: i32[3,2] = matmul_integer(%q, %wq, %zx, _)
        %f: f32[3,2] = cast(%a) {to="f32"}
        %y: f32[3,2] = mul(%f, %r)
        output %y
      }`,
    );
    const x = makeTensor(
      'f32',
      [3, 4],
      rand(12, 5).map((r) => r * 10),
    );
    const want = run(ir(qdq('0.125')), x);
    const got = run(g, x);
    // scales are powers of two here, so every product is exact in both forms: equal to the last bit
    expect(Array.from(got)).toEqual(Array.from(want));
  });

  it('near miss: a dequantize with another scale than the quantize keeps the activation pair (the weight still folds)', () => {
    const g = rewrite(qdq('0.25'), qdqRules);
    expect(ops(g)).toEqual(['quantize_linear', 'dequantize_linear', 'matmul_nbits']);
    expectUnchanged(qdq('0.25'), qdqIntegerRules);
  });
});

describe('pipeline', () => {
  it('optimize() folds a 2-layer QDQ MLP: no dequantize of a weight, no f32 weight constant', () => {
    const w1 = rand(8 * 6, 11).map((r) => Math.round(r * 127));
    const w2 = rand(6 * 3, 12).map((r) => Math.round(r * 7));
    const text = `graph g {
        input %x: f32[2,8]
        const %s1: f32[6] = [${rand(6, 13)
          .map((r) => 0.01 + Math.abs(r) / 50)
          .join(', ')}]
        const %w1: i8[8,6] = [${w1.join(', ')}]
        const %s2: f32[3] = [${rand(3, 14)
          .map((r) => 0.05 + Math.abs(r) / 10)
          .join(', ')}]
        const %w2: i4[6,3] = [${w2.join(', ')}]
        const %sa: f32[] = [0.05]
        const %za: i8[] = [0]
        %qa: i8[2,8] = quantize_linear(%x, %sa, %za)
        %da: f32[2,8] = dequantize_linear(%qa, %sa, %za)
        %d1: f32[8,6] = dequantize_linear(%w1, %s1) {axis=1}
        %h: f32[2,6] = matmul(%da, %d1)
        %r: f32[2,6] = relu(%h)
        %d2: f32[6,3] = dequantize_linear(%w2, %s2) {axis=1}
        %y: f32[2,3] = matmul(%r, %d2)
        output %y
      }`;
    const before = ir(text);
    const g = optimize(before);
    expect(ops(g)).not.toContain('dequantize_linear');
    expect(ops(g)).toContain('matmul_integer');
    expect(g.constants.filter((c) => c.type.dtype === 'f32' && c.type.shape.length === 2)).toEqual([]);
    const x = makeTensor(
      'f32',
      [2, 8],
      rand(16, 15).map((r) => r * 5),
    );
    const want = run(before, x);
    const got = run(g, x);
    // same codes on both sides; the folded graph sums exact integers and scales once where the QDQ graph rounds
    // each dequantized product to f32: |Δ| ≤ K · 2^-23 · Σ|terms| — well under 1e-4 relative at these sizes
    for (let i = 0; i < want.length; i++)
      expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(1e-4 * (1 + Math.abs(want[i]!)));
  });
});

describe("ORT's dynamic quantizer chain", () => {
  it('DynamicQuantizeLinear → MatMulInteger → Cast → Mul(x scale · w scale) stays integer: no f32 weight appears', () => {
    const text = `graph g {
        input %x: f32[2,4]
        const %wq: u8[4,3] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
        const %wz: u8[] = [6]
        const %ws: f32[] = [0.5]
        %xq: u8[2,4], %xs: f32[], %xz: u8[] = dynamic_quantize_linear(%x)
        %acc: i32[2,3] = matmul_integer(%xq, %wq, %xz, %wz)
        %f: f32[2,3] = cast(%acc) {to="f32"}
        %s: f32[] = mul(%xs, %ws)
        %y: f32[2,3] = mul(%f, %s)
        output %y
      }`;
    const before = ir(text);
    const g = optimize(before);
    expect(ops(g)).toContain('matmul_integer');
    expect(g.constants.filter((c) => c.type.dtype === 'f32' && c.type.shape.length === 2)).toEqual([]);
    const x = makeTensor('f32', [2, 4], rand(8, 21));
    expect(Array.from(run(g, x))).toEqual(Array.from(run(before, x)));
  });
});

describe('qdq-weight-nbits on random weights', () => {
  it('any 8- / 4-bit dtype, scale layout, zero points and K folds and keeps the numbers', () => {
    const RANGE: Record<string, [number, number]> = { i8: [-128, 127], u8: [0, 255], i4: [-8, 7], u4: [0, 15] };
    fc.assert(
      fc.property(
        fc.constantFrom('i8', 'u8', 'i4', 'u4'),
        fc.constantFrom('tensor', 'column', 'block16', 'block32'),
        fc.boolean(),
        fc.integer({ min: 1, max: 70 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 1000 }),
        (dt, layout, withZp, K, N, seed) => {
          const [lo, hi] = RANGE[dt]!;
          const int = (n: number, s: number) => rand(n, s).map((r) => lo + Math.floor(((r + 1) / 2) * (hi - lo + 1)));
          const block = layout === 'block16' ? 16 : layout === 'block32' ? 32 : 0;
          const sShape = layout === 'tensor' ? [] : layout === 'column' ? [N] : [Math.ceil(K / block), N];
          const ns = sShape.reduce((a, b) => a * b, 1);
          const attrs = block ? `{axis=0, block_size=${block}}` : '{axis=1}';
          const before = `graph g {
            input %x: f32[2,${K}]
            const %wq: ${dt}[${K},${N}] = [${int(K * N, seed).join(', ')}]
            const %ws: f32[${sShape.join(',')}] = [${rand(ns, seed + 1)
              .map((r) => Math.fround(0.01 + Math.abs(r) / 20))
              .join(', ')}]
            ${withZp ? `const %wz: ${dt}[${sShape.join(',')}] = [${int(ns, seed + 2).join(', ')}]` : ''}
            %w: f32[${K},${N}] = dequantize_linear(%wq, %ws${withZp ? ', %wz' : ''}) ${attrs}
            %y: f32[2,${N}] = matmul(%x, %w)
            output %y
          }`;
          const g = rewrite(before, qdqRules);
          expect(ops(g)).toEqual(['matmul_nbits']);
          const x = makeTensor('f32', [2, K], rand(2 * K, seed + 3));
          const want = run(ir(before), x);
          const got = run(g, x);
          for (let i = 0; i < want.length; i++)
            expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(want[i]!)));
        },
      ),
      { numRuns: PROP_RUNS },
    );
  });
});

describe('shared weights', () => {
  it('a dequantized weight read by two matmuls is packed once', () => {
    const g = rewrite(
      `graph g {
        input %x: f32[3,4]
        input %z: f32[1,4]
        const %wq: i8[4,2] = [1, -2, 3, 4, -8, 7, 0, -1]
        const %ws: f32[2] = [0.5, 0.25]
        %w: f32[4,2] = dequantize_linear(%wq, %ws) {axis=1}
        %y: f32[3,2] = matmul(%x, %w)
        %y2: f32[1,2] = matmul(%z, %w)
        output %y
        output %y2
      }`,
      qdqRules,
    );
    expect(ops(g)).toEqual(['matmul_nbits', 'matmul_nbits']);
    expect(g.nodes[0]!.inputs[1]).toBe(g.nodes[1]!.inputs[1]);
    expect(g.constants.length).toBe(2); // packed codes and scales, nothing else
  });
});

describe('matmul-integer-trans-b', () => {
  const mm = (w: string, extra = '') =>
    `graph g {
      input %x: u8[2,4]
      ${w}
      %y: i32[2,3] = matmul_integer(%x, %w)${extra}
      output %y
    }`;
  const W = 'const %w: i8[4,3] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, -12]';

  it('a constant weight [K, N] with K % 4 == 0 is stored transposed [N, K], trans_b set; the numbers kept', () => {
    const g = rewrite(mm(W), matmulIntegerTransBRules);
    expectSameGraph(
      g,
      `graph g {
        input %x: u8[2,4]
        const %wt: i8[3,4] = [1, 4, 7, 10, 2, 5, 8, 11, 3, 6, 9, -12]
        %y: i32[2,3] = matmul_integer(%x, %wt) {trans_b=true}
        output %y
      }`,
    );
    const x = makeTensor('u8', [2, 4], [0, 255, 128, 7, 1, 2, 3, 250]);
    // row 0 · column 0 by hand: 0·1 + 255·4 + 128·7 + 7·10 = 1986
    const got = interpret(g, { x })['y']!.data;
    const want = interpret(ir(mm(W)), { x })['y']!.data;
    expect(got[0]).toBe(1986);
    expect(Array.from(got)).toEqual(Array.from(want));
  });

  it('near misses: b not a constant, K % 4 != 0, trans_b already set', () => {
    expectUnchanged(mm('input %w: i8[4,3]'), matmulIntegerTransBRules);
    expectUnchanged(
      `graph g {
        input %x: u8[2,3]
        const %w: i8[3,3] = [1, 2, 3, 4, 5, 6, 7, 8, 9]
        %y: i32[2,3] = matmul_integer(%x, %w)
        output %y
      }`,
      matmulIntegerTransBRules,
    );
    expectUnchanged(
      `graph g {
        input %x: u8[2,4]
        const %w: i8[3,4] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
        %y: i32[2,3] = matmul_integer(%x, %w) {trans_b=true}
        output %y
      }`,
      matmulIntegerTransBRules,
    );
  });

  it('runs in the default pipeline (qdq-fold): optimize gives the trans_b form', () => {
    const g = optimize(ir(mm(W)));
    const n = g.nodes.find((x) => x.op === 'matmul_integer')!;
    expect(n.attrs['trans_b']).toBe(true);
    expect(n.inputs[1]!.type.shape).toEqual([3, 4]);
  });
});
