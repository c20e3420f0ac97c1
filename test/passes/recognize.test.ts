/** Recognition rules: before / after IR text per rule, near misses, the ONNX `_expanded` tests, and a property. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { importOnnx, tensorFromOnnx } from '../../src/frontends/onnx/import.js';
import { decodeTensor } from '../../src/frontends/onnx/proto.js';
import { canonicalize, commonSubexpressionElimination, deadCodeElimination } from '../../passes/canonicalize/index.js';
import { PassContext, verifyInstrument } from '../../passes/context.js';
import { runPasses } from '../../passes/manager.js';
import { applyRules } from '../../passes/rewrite.js';
import {
  activationRules,
  attentionHeadRules,
  attentionRules,
  filledAttentionRules,
  normRules,
  recognize,
  recognizeRules,
} from '../../passes/recognize/index.js';
import { expectSameGraph, expectUnchanged, ir, rewrite } from './helpers.js';

const f32 = (x: number) => Math.fround(x);

describe('gelu', () => {
  it('erf form, decoder-block order: ((x·(erf(x/√2)+1))·0.5)', () => {
    const g = rewrite(
      `graph g {
        input %x: f32[2,3]
        const %r2: f32[] = [${f32(Math.SQRT2)}]
        const %one: f32[] = [1]
        const %half: f32[] = [0.5]
        %a: f32[2,3] = div(%x, %r2)
        %e: f32[2,3] = erf(%a)
        %p: f32[2,3] = add(%e, %one)
        %q: f32[2,3] = mul(%x, %p)
        %y: f32[2,3] = mul(%q, %half)
        output %y
      }`,
      activationRules,
    );
    expectSameGraph(
      g,
      `graph g {
        input %x: f32[2,3]
        %y: f32[2,3] = gelu(%x)
        output %y
      }`,
    );
  });

  it('erf form, ONNX order: (0.5·x)·(1 + erf(x·(1/√2)))', () => {
    const g = rewrite(
      `graph g {
        input %x: f32[4]
        const %k: f32[1] = [${f32(Math.SQRT1_2)}]
        const %one: f32[] = [1]
        const %half: f32[] = [0.5]
        %h: f32[4] = mul(%half, %x)
        %a: f32[4] = mul(%x, %k)
        %e: f32[4] = erf(%a)
        %p: f32[4] = add(%one, %e)
        %y: f32[4] = mul(%h, %p)
        %z: f32[4] = neg(%y)
        output %z
      }`,
      activationRules,
    );
    expectSameGraph(
      g,
      `graph g {
        input %x: f32[4]
        %y: f32[4] = gelu(%x)
        %z: f32[4] = neg(%y)
        output %z
      }`,
    );
  });

  it('tanh form, GPT-2 order with pow(x, 3)', () => {
    const g = rewrite(
      `graph g {
        input %x: f32[2,8]
        const %half: f32[] = [0.5]
        const %three: f32[] = [3]
        const %c: f32[] = [0.044715]
        const %k: f32[] = [${f32(Math.sqrt(2 / Math.PI))}]
        const %one: f32[] = [1]
        %h: f32[2,8] = mul(%x, %half)
        %x3: f32[2,8] = pow(%x, %three)
        %cx3: f32[2,8] = mul(%x3, %c)
        %in: f32[2,8] = add(%x, %cx3)
        %ki: f32[2,8] = mul(%in, %k)
        %t: f32[2,8] = tanh(%ki)
        %p: f32[2,8] = add(%t, %one)
        %y: f32[2,8] = mul(%h, %p)
        output %y
      }`,
      activationRules,
    );
    expectSameGraph(
      g,
      `graph g {
        input %x: f32[2,8]
        %y: f32[2,8] = gelu(%x) {approximate="tanh"}
        output %y
      }`,
    );
  });

  it('tanh form with x·x·x', () => {
    const g = rewrite(
      `graph g {
        input %x: f32[3]
        const %half: f32[] = [0.5]
        const %c: f32[] = [0.044715]
        const %k: f32[] = [${f32(Math.sqrt(2 / Math.PI))}]
        const %one: f32[] = [1]
        %x2: f32[3] = mul(%x, %x)
        %x3: f32[3] = mul(%x2, %x)
        %cx3: f32[3] = mul(%c, %x3)
        %in: f32[3] = add(%cx3, %x)
        %ki: f32[3] = mul(%k, %in)
        %t: f32[3] = tanh(%ki)
        %p: f32[3] = add(%one, %t)
        %xp: f32[3] = mul(%x, %p)
        %y: f32[3] = mul(%half, %xp)
        output %y
      }`,
      activationRules,
    );
    expectSameGraph(
      g,
      `graph g {
        input %x: f32[3]
        %y: f32[3] = gelu(%x) {approximate="tanh"}
        output %y
      }`,
    );
  });

  it('near miss: a constant off by more than f32 rounding, another variable, a broadcasting constant', () => {
    const erfGraph = (r2: string, r2Type = 'f32[]', second = '%x', extra = '') => `graph g {
        input %x: f32[2,3]
        input %w: f32[2,3]
        ${extra}
        const %r2: ${r2Type} = ${r2}
        const %one: f32[] = [1]
        const %half: f32[] = [0.5]
        %a: f32[2,3] = div(${second}, %r2)
        %e: f32[2,3] = erf(%a)
        %p: f32[2,3] = add(%e, %one)
        %q: f32[2,3] = mul(%x, %p)
        %y: f32[2,3] = mul(%q, %half)
        output %y
      }`;
    expectUnchanged(erfGraph('[1.4142]'), activationRules); // √2 to 5 digits is not √2
    expectUnchanged(erfGraph(`[${f32(Math.SQRT2)}]`, 'f32[]', '%w'), activationRules); // erf of another value
    expectUnchanged(erfGraph(`[${f32(Math.SQRT2)}, ${f32(Math.SQRT2)}, 1]`, 'f32[3]'), activationRules);
    // tanh form with 0.0447 (a different curve)
    expectUnchanged(
      `graph g {
        input %x: f32[3]
        const %half: f32[] = [0.5]
        const %three: f32[] = [3]
        const %c: f32[] = [0.0447]
        const %k: f32[] = [${f32(Math.sqrt(2 / Math.PI))}]
        const %one: f32[] = [1]
        %h: f32[3] = mul(%x, %half)
        %x3: f32[3] = pow(%x, %three)
        %cx3: f32[3] = mul(%x3, %c)
        %in: f32[3] = add(%x, %cx3)
        %ki: f32[3] = mul(%in, %k)
        %t: f32[3] = tanh(%ki)
        %p: f32[3] = add(%t, %one)
        %y: f32[3] = mul(%h, %p)
        output %y
      }`,
      activationRules,
    );
  });
});

describe('silu', () => {
  it('x·sigmoid(x) in either order', () => {
    for (const body of ['mul(%x, %s)', 'mul(%s, %x)']) {
      const g = rewrite(
        `graph g {
          input %x: f32[2,3]
          %s: f32[2,3] = sigmoid(%x)
          %y: f32[2,3] = ${body}
          output %y
        }`,
        activationRules,
      );
      expectSameGraph(
        g,
        `graph g {
          input %x: f32[2,3]
          %y: f32[2,3] = silu(%x)
          output %y
        }`,
      );
    }
  });

  it('near miss: x·sigmoid(w)', () => {
    expectUnchanged(
      `graph g {
        input %x: f32[2,3]
        input %w: f32[2,3]
        %s: f32[2,3] = sigmoid(%w)
        %y: f32[2,3] = mul(%x, %s)
        output %y
      }`,
      activationRules,
    );
  });
});

describe('layer norm', () => {
  const twoPass = (div: string, sq = 'pow(%d, %two)', eps = 'add(%v, %eps)', extra = '') => `graph g {
      input %x: f32[2,3,4]
      const %two: f32[] = [2]
      const %eps: f32[] = [0.00001]
      const %w: f32[4] = [1, 2, 3, 4]
      const %b: f32[1,1,4] = [0.5, 0, -0.5, 1]
      ${extra}
      %m: f32[2,3,1] = reduce_mean(%x) {axes=[-1], keepdims=true}
      %d: f32[2,3,4] = sub(%x, %m)
      %sq: f32[2,3,4] = ${sq}
      %v: f32[2,3,1] = reduce_mean(%sq) {axes=[2], keepdims=true}
      %ve: f32[2,3,1] = ${eps}
      %s: f32[2,3,1] = sqrt(%ve)
      ${div}
      %sc: f32[2,3,4] = mul(%n, %w)
      %y: f32[2,3,4] = add(%sc, %b)
      output %y
    }`;
  const after = `graph g {
      input %x: f32[2,3,4]
      const %w: f32[4] = [1, 2, 3, 4]
      const %b: f32[1,1,4] = [0.5, 0, -0.5, 1]
      const %shape: i64[1] = [4]
      %b4: f32[4] = reshape(%b, %shape)
      %y: f32[2,3,4] = layer_norm(%x, %w, %b4) {axis=-1, epsilon=${f32(1e-5)}}
      output %y
    }`;

  it('PyTorch form: div, pow(2), scale, bias (a [1,1,4] bias is reshaped to the normalized dims)', () => {
    expectSameGraph(rewrite(twoPass('%n: f32[2,3,4] = div(%d, %s)'), normRules), after);
  });

  it('reciprocal·mul and d·d forms', () => {
    const div = '%r: f32[2,3,1] = reciprocal(%s)\n %n: f32[2,3,4] = mul(%d, %r)';
    expectSameGraph(rewrite(twoPass(div, 'mul(%d, %d)'), normRules), after);
  });

  it('the ONNX function body: mean(x²) − mean², over the trailing axes 1..2, no scale or bias', () => {
    const g = rewrite(
      `graph g {
        input %x: f32[2,3,4]
        const %eps: f32[] = [0.1]
        %m: f32[2,1,1] = reduce_mean(%x) {axes=[1, 2], keepdims=true}
        %x2: f32[2,3,4] = mul(%x, %x)
        %mx2: f32[2,1,1] = reduce_mean(%x2) {axes=[-2, -1], keepdims=true}
        %m2: f32[2,1,1] = mul(%m, %m)
        %v: f32[2,1,1] = sub(%mx2, %m2)
        %ve: f32[2,1,1] = add(%v, %eps)
        %s: f32[2,1,1] = sqrt(%ve)
        %d: f32[2,3,4] = sub(%x, %m)
        %y: f32[2,3,4] = div(%d, %s)
        output %y
      }`,
      normRules,
    );
    expectSameGraph(
      g,
      `graph g {
        input %x: f32[2,3,4]
        const %o: f32[3,4] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
        %y: f32[2,3,4] = layer_norm(%x, %o) {axis=-2, epsilon=${f32(0.1)}}
        output %y
      }`,
    );
  });

  it('near miss: eps after sqrt, a middle axis, different axes, dropped dims, a per-row scale', () => {
    // sqrt(var) + eps is not sqrt(var + eps): the scale/bias may not be absorbed either, nothing is recognized
    expectUnchanged(
      twoPass(
        '%se: f32[2,3,1] = add(%s2, %eps)\n %n: f32[2,3,4] = div(%d, %se)',
        'pow(%d, %two)',
        'identity(%v)',
      ).replace('%s: f32[2,3,1] = sqrt(%ve)', '%s2: f32[2,3,1] = sqrt(%ve)'),
      normRules,
    );
    const axes = (a: string, b: string, keep = 'true', vs = '[2,3,1]') => `graph g {
        input %x: f32[2,3,4]
        const %eps: f32[] = [0.00001]
        %m: f32[${a === '[1]' ? '2,1,4' : '2,3,1'}] = reduce_mean(%x) {axes=${a}, keepdims=true}
        %d: f32[2,3,4] = sub(%x, %m)
        %sq: f32[2,3,4] = mul(%d, %d)
        %v: f32${vs} = reduce_mean(%sq) {axes=${b}, keepdims=${keep}}
        %ve: f32${vs} = add(%v, %eps)
        %s: f32${vs} = sqrt(%ve)
        %y: f32[2,3,4] = div(%d, %s)
        output %y
      }`;
    // mean over the last axis, variance over the last two: not a layer norm, but exactly an RMS norm of x − mean
    expectSameGraph(
      rewrite(axes('[-1]', '[1, 2]', 'true', '[2,1,1]'), normRules),
      `graph g {
        input %x: f32[2,3,4]
        const %o: f32[3,4] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
        %m: f32[2,3,1] = reduce_mean(%x) {axes=[-1], keepdims=true}
        %d: f32[2,3,4] = sub(%x, %m)
        %y: f32[2,3,4] = rms_norm(%d, %o) {axis=-2, epsilon=${f32(1e-5)}}
        output %y
      }`,
    );
    expectUnchanged(axes('[1]', '[1]', 'true', '[2,1,4]'), normRules);
    // a per-row scale [2,3,1] is not a parameter of the normalized dims
    expectUnchanged(
      `graph g {
        input %x: f32[2,3,4]
        input %w: f32[2,3,1]
        const %o: f32[4] = [1, 1, 1, 1]
        %n: f32[2,3,4] = layer_norm(%x, %o) {axis=-1, epsilon=0.00001}
        %y: f32[2,3,4] = mul(%n, %w)
        output %y
      }`,
      normRules,
    );
  });
});

describe('rms norm', () => {
  const rms = (x2: string, div: string, scale = '%w') => `graph g {
      input %x: f32[2,8]
      const %two: f32[] = [2]
      const %eps: f32[] = [0.000001]
      const %w: f32[8] = [1, 2, 3, 4, 5, 6, 7, 8]
      %x2: f32[2,8] = ${x2}
      %v: f32[2,1] = reduce_mean(%x2) {axes=[-1], keepdims=true}
      %ve: f32[2,1] = add(%eps, %v)
      %s: f32[2,1] = sqrt(%ve)
      ${div}
      %y: f32[2,8] = mul(${scale}, %n)
      output %y
    }`;
  const after = `graph g {
      input %x: f32[2,8]
      const %w: f32[8] = [1, 2, 3, 4, 5, 6, 7, 8]
      %y: f32[2,8] = rms_norm(%x, %w) {axis=-1, epsilon=${f32(1e-6)}}
      output %y
    }`;

  it('pow / div and mul / reciprocal·mul / div(1, ·) forms, times scale', () => {
    expectSameGraph(rewrite(rms('pow(%x, %two)', '%n: f32[2,8] = div(%x, %s)'), normRules), after);
    const rec = '%r: f32[2,1] = reciprocal(%s)\n %n: f32[2,8] = mul(%x, %r)';
    expectSameGraph(rewrite(rms('mul(%x, %x)', rec), normRules), after);
    const inv = 'const %one: f32[] = [1]\n %r: f32[2,1] = div(%one, %s)\n %n: f32[2,8] = mul(%r, %x)';
    expectSameGraph(rewrite(rms('mul(%x, %x)', inv), normRules), after);
  });

  it('near miss: x³, x / sqrt(mean(w²)), a full-shape scale', () => {
    expectUnchanged(
      rms('pow(%x, %two)', '%n: f32[2,8] = div(%x, %s)').replace('const %two: f32[] = [2]', 'const %two: f32[] = [3]'),
      normRules,
    );
    expectUnchanged(
      rms('mul(%u, %u)', '%n: f32[2,8] = div(%x, %s)').replace(
        'input %x: f32[2,8]',
        'input %x: f32[2,8]\n input %u: f32[2,8]',
      ),
      normRules,
    );
  });
});

describe('attention', () => {
  const sdpa = (scale: string, mask: string, maskConst = '[0, -inf, 0, 0]', kt = 'f32[1,2,4,2]') => `graph g {
      input %q: f32[1,2,2,4]
      input %kt: ${kt}
      input %v: f32[1,2,2,3]
      const %c: f32[] = [${scale.split(':')[1]}]
      const %mask: f32[2,2] = ${maskConst}
      %s: f32[1,2,2,2] = matmul(%q, %kt)
      %sc: f32[1,2,2,2] = ${scale.split(':')[0]}(%s, %c)
      ${mask ? `%m: f32[1,2,2,2] = add(${mask})` : ''}
      %p: f32[1,2,2,2] = softmax(${mask ? '%m' : '%sc'}) {axis=-1}
      %y: f32[1,2,2,3] = matmul(%p, %v)
      output %y
    }`;
  const after = (scale: number, mask: boolean) => `graph g {
      input %q: f32[1,2,2,4]
      input %kt: f32[1,2,4,2]
      input %v: f32[1,2,2,3]
      ${mask ? 'const %mask: f32[2,2] = [0, -inf, 0, 0]' : ''}
      %k: f32[1,2,2,4] = transpose(%kt) {perm=[0, 1, 3, 2]}
      %y: f32[1,2,2,3] = attention(%q, %k, %v${mask ? ', %mask' : ''}) {scale=${scale}}
      output %y
    }`;

  it('mul by the scale, an additive causal mask (either order)', () => {
    expectSameGraph(rewrite(sdpa('mul:0.5', '%sc, %mask'), attentionRules), after(0.5, true));
    expectSameGraph(rewrite(sdpa('mul:0.5', '%mask, %sc'), attentionRules), after(0.5, true));
  });

  it('computes what the pattern computed', () => {
    for (const [scale, mask] of [
      ['mul:0.5', '%sc, %mask'],
      ['div:2', ''],
    ] as const) {
      const before = ir(sdpa(scale, mask));
      const after = rewrite(sdpa(scale, mask), attentionRules);
      expect(after.nodes.map((n) => n.op)).toEqual(['transpose', 'attention']);
      let k = 0;
      const rnd = (shape: number[]) =>
        makeTensor(
          'f32',
          shape,
          Array.from({ length: shape.reduce((a, c) => a * c) }, () => Math.sin(++k * 1.7) * 2),
        );
      const feeds = { q: rnd([1, 2, 2, 4]), kt: rnd([1, 2, 4, 2]), v: rnd([1, 2, 2, 3]) };
      const want = interpret(before, feeds)['y']!;
      const got = interpret(after, feeds)['y']!;
      want.data.forEach((w, i) => expect(Math.abs(got.data[i]! - w)).toBeLessThanOrEqual(1e-6 + 1e-5 * Math.abs(w)));
    }
  });

  it('div by √d, no mask', () => {
    expectSameGraph(rewrite(sdpa('div:2', ''), attentionRules), after(0.5, false));
  });

  it('near miss: a row with every key masked, a non-constant scale, rank 3', () => {
    expectUnchanged(sdpa('mul:0.5', '%sc, %mask', '[0, 0, -inf, -inf]'), attentionRules);
    expectUnchanged(sdpa('mul:0.5', '').replace('const %c: f32[] = [0.5]', 'input %c: f32[]'), attentionRules);
    expectUnchanged(
      `graph g {
        input %q: f32[2,2,4]
        input %kt: f32[2,4,2]
        input %v: f32[2,2,3]
        const %c: f32[] = [0.5]
        %s: f32[2,2,2] = matmul(%q, %kt)
        %sc: f32[2,2,2] = mul(%s, %c)
        %p: f32[2,2,2] = softmax(%sc) {axis=-1}
        %y: f32[2,2,3] = matmul(%p, %v)
        output %y
      }`,
      attentionRules,
    );
    // softmax over the queries, not the keys
    expectUnchanged(sdpa('mul:0.5', '').replace('{axis=-1}', '{axis=2}'), attentionRules);
  });
});

describe('attention with Where(mask, scores, fill) masking (GPT-2) → mask_fill', () => {
  const where = (cond: string, fill = '-10000', condShape = '1,1,2,2') => `graph g {
      input %q: f32[1,2,2,4]
      input %kt: f32[1,2,4,2]
      input %v: f32[1,2,2,3]
      input %mask: bool[${condShape}]
      const %c: f32[] = [2]
      const %fill: f32[] = [${fill}]
      %s: f32[1,2,2,2] = matmul(%q, %kt)
      %sc: f32[1,2,2,2] = div(%s, %c)
      %w: f32[1,2,2,2] = where(${cond})
      %p: f32[1,2,2,2] = softmax(%w) {axis=-1}
      %y: f32[1,2,2,3] = matmul(%p, %v)
      output %y
    }`;
  const after = `graph g {
      input %q: f32[1,2,2,4]
      input %kt: f32[1,2,4,2]
      input %v: f32[1,2,2,3]
      input %mask: bool[1,1,2,2]
      %k: f32[1,2,2,4] = transpose(%kt) {perm=[0, 1, 3, 2]}
      %y: f32[1,2,2,3] = attention(%q, %k, %v, %mask) {mask_fill=-10000, scale=0.5}
      output %y
    }`;

  it('a run-time bool mask and a finite fill: the op with mask_fill', () => {
    expectSameGraph(rewrite(where('%mask, %sc, %fill'), filledAttentionRules), after);
  });

  it('computes exactly what the pattern computed — a fully masked row too (uniform, as the softmax makes it)', () => {
    const before = ir(where('%mask, %sc, %fill'));
    const got = rewrite(where('%mask, %sc, %fill'), filledAttentionRules);
    let k = 0;
    const rnd = (shape: number[]) =>
      makeTensor(
        'f32',
        shape,
        Array.from({ length: shape.reduce((a, c) => a * c) }, () => Math.sin(++k * 1.7) * 2),
      );
    const feeds = {
      q: rnd([1, 2, 2, 4]),
      kt: rnd([1, 2, 4, 2]),
      v: rnd([1, 2, 2, 3]),
      mask: makeTensor('bool', [1, 1, 2, 2], [1, 0, 0, 0]), // row 1 has no attendable key
    };
    const want = interpret(before, feeds)['y']!;
    const y = interpret(got, feeds)['y']!;
    want.data.forEach((w, i) => expect(Math.abs(y.data[i]! - w)).toBeLessThanOrEqual(1e-6 + 1e-5 * Math.abs(w)));
  });

  it('near miss: the fill where the scores go, a non-finite fill, a mask shorter than the keys', () => {
    expectUnchanged(where('%mask, %fill, %sc'), filledAttentionRules);
    expectUnchanged(where('%mask, %sc, %fill', '-inf'), filledAttentionRules);
    expectUnchanged(where('%mask, %sc, %fill', '-10000', '1,1,2,1'), filledAttentionRules);
  });
});

// ---- the ONNX `_expanded` node tests: the function body collapses to the op, the goldens still match ----

/** Level 1 with recognition after the first canonicalize (where defaultPipeline is to run it). */
function optimize(g: Graph): Graph {
  const passes = [deadCodeElimination, canonicalize, recognize, commonSubexpressionElimination, canonicalize];
  runPasses(g, [...passes, deadCodeElimination], new PassContext({ instruments: [verifyInstrument()] }));
  return g;
}

const NODE = join(import.meta.dirname, '../../../shared/conformance/onnx-node');

function opCounts(g: Graph): Record<string, number> {
  const c: Record<string, number> = {};
  for (const n of g.nodes) c[n.op] = (c[n.op] ?? 0) + 1;
  return c;
}

function expectGoldens(dir: string, g: Graph): void {
  const read = (f: string) => tensorFromOnnx(decodeTensor(readFileSync(join(dir, 'test_data_set_0', f))));
  const feeds: Record<string, Tensor> = {};
  g.inputs.forEach((x, k) => (feeds[x.name] = read(`input_${k}.pb`)));
  const got = interpret(g, feeds);
  g.outputs.forEach((o, k) => {
    const want = read(`output_${k}.pb`);
    const y = got[o.name]!;
    expect(y.shape).toEqual(want.shape);
    for (let i = 0; i < want.data.length; i++) {
      expect(Math.abs(y.data[i]! - want.data[i]!)).toBeLessThanOrEqual(1e-6 + 1e-4 * Math.abs(want.data[i]!));
    }
  });
}

describe.skipIf(!existsSync(NODE))('ONNX expanded node tests', () => {
  const layerNorm = existsSync(NODE)
    ? readdirSync(NODE).filter((d) => /^test_layer_normalization_.*_expanded/.test(d))
    : [];

  it('gelu (erf) collapses to one gelu', () => {
    const dir = join(NODE, 'test_gelu_default_1_expanded');
    const g = optimize(importOnnx(readFileSync(join(dir, 'model.onnx'))).graph);
    expect(opCounts(g)).toEqual({ gelu: 1 });
    expectGoldens(dir, g);
  });

  it.each(layerNorm)('%s: the normalized output becomes one layer_norm', (name) => {
    const dir = join(NODE, name);
    const g = optimize(importOnnx(readFileSync(join(dir, 'model.onnx'))).graph);
    const c = opCounts(g);
    expect(c['layer_norm']).toBe(1);
    // Y no longer reads the deviation or its division; the extra Mean / InvStdDev outputs keep their own nodes
    const y = g.outputs[0]!;
    expect(y.producer!.op === 'layer_norm' || y.producer!.inputs[0]!.producer!.op === 'layer_norm').toBe(true);
    expect(c['div'] ?? 0).toBe(0);
    expectGoldens(dir, g);
  });
});

// ---- property: random instances of every pattern compute the same before and after, and are recognized ----

interface Case {
  text: string;
  op: string;
}

const fmt = (x: number) => String(Math.fround(x));

/** One random pattern instance: shape [r, c], random eps / scale / bias, one of the exporter variants. */
function instance(kind: number, r: number, c: number, eps: number, variant: number, w: number[]): Case {
  const T = `f32[${r},${c}]`;
  const R = `f32[${r},1]`;
  const head = `graph g {\n input %x: ${T}\n const %eps: f32[] = [${fmt(eps)}]\n const %w: f32[${c}] = [${w.map(fmt).join(', ')}]
 const %two: f32[] = [2]\n const %half: f32[] = [0.5]\n const %one: f32[] = [1]\n`;
  const sq = (a: string) => (variant % 2 ? `pow(${a}, %two)` : `mul(${a}, ${a})`);
  const div = (a: string, b: string) =>
    variant < 2 ? `%n: ${T} = div(${a}, ${b})` : `%rc: ${R} = reciprocal(${b})\n %n: ${T} = mul(${a}, %rc)`;
  switch (kind) {
    case 0:
      return {
        op: 'layer_norm',
        text: `${head} %m: ${R} = reduce_mean(%x) {axes=[-1], keepdims=true}\n %d: ${T} = sub(%x, %m)
 %sq: ${T} = ${sq('%d')}\n %v: ${R} = reduce_mean(%sq) {axes=[1], keepdims=true}\n %ve: ${R} = add(%v, %eps)
 %s: ${R} = sqrt(%ve)\n ${div('%d', '%s')}\n %sc: ${T} = mul(%w, %n)\n %y: ${T} = add(%sc, %w)\n output %y\n}`,
      };
    case 1:
      return {
        op: 'rms_norm',
        text: `${head} %sq: ${T} = ${sq('%x')}\n %v: ${R} = reduce_mean(%sq) {axes=[-1], keepdims=true}
 %ve: ${R} = add(%eps, %v)\n %s: ${R} = sqrt(%ve)\n ${div('%x', '%s')}\n %y: ${T} = mul(%n, %w)\n output %y\n}`,
      };
    case 2:
      return {
        op: 'gelu',
        text: `${head} const %k: f32[] = [${fmt(variant % 2 ? Math.SQRT2 : Math.SQRT1_2)}]
 %a: ${T} = ${variant % 2 ? 'div' : 'mul'}(%x, %k)\n %e: ${T} = erf(%a)\n %p: ${T} = add(%one, %e)
 %h: ${T} = mul(%x, %half)\n %y: ${T} = mul(${variant < 2 ? '%h, %p' : '%p, %h'})\n output %y\n}`,
      };
    case 3:
      return {
        op: 'gelu',
        text: `${head} const %three: f32[] = [3]\n const %c: f32[] = [0.044715]
 const %k: f32[] = [${fmt(Math.sqrt(2 / Math.PI))}]
 %x3: ${T} = pow(%x, %three)\n %cx: ${T} = mul(%c, %x3)\n %i: ${T} = add(%x, %cx)\n %ki: ${T} = mul(%i, %k)
 %t: ${T} = tanh(%ki)\n %p: ${T} = add(%t, %one)\n %xp: ${T} = mul(%x, %p)\n %y: ${T} = mul(%xp, %half)\n output %y\n}`,
      };
    default:
      return { op: 'silu', text: `${head} %s: ${T} = sigmoid(%x)\n %y: ${T} = mul(%s, %x)\n output %y\n}` };
  }
}

describe('property', () => {
  it('random pattern instances keep their numbers and collapse to the op', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 9 }),
        fc.double({ min: 1e-7, max: 0.5, noNaN: true }),
        fc.integer({ min: 0, max: 3 }),
        fc.array(fc.double({ min: -3, max: 3, noNaN: true }), { minLength: 9, maxLength: 9 }),
        fc.array(fc.double({ min: -4, max: 4, noNaN: true }), { minLength: 36, maxLength: 36 }),
        (kind, r, c, eps, variant, w, xs) => {
          const cs = instance(kind, r, c, eps, variant, w.slice(0, c));
          const before = ir(cs.text);
          const after = ir(cs.text);
          applyRules(after, recognizeRules);
          expect(after.nodes.map((n) => n.op)).toEqual([cs.op]);
          const feeds = { x: makeTensor('f32', [r, c], xs.slice(0, r * c)) };
          const want = interpret(before, feeds)['y']!;
          const got = interpret(after, feeds)['y']!;
          for (let i = 0; i < want.data.length; i++) {
            // f32 rounding of each primitive step vs one float64 evaluation
            expect(Math.abs(got.data[i]! - want.data[i]!)).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(want.data[i]!));
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('attention over head-split tensors → the 3-D form', () => {
  const src = (opts: { extraUse?: boolean; perm?: string; kvHeads?: number } = {}) => {
    const hk = opts.kvHeads ?? 2;
    return `graph g {
    input %q3: f32[1,6,8]
    input %k3: f32[1,6,${hk * 4}]
    input %v3: f32[1,6,${hk * 4}]
    input %m: f32[6,6]
    const %sq: i64[4] = [1, 6, 2, 4]
    const %skv: i64[4] = [1, 6, ${hk}, 4]
    const %s3: i64[3] = [1, 6, 8]
    %rq: f32[1,6,2,4] = reshape(%q3, %sq)
    %tq: f32[1,2,6,4] = transpose(%rq) {perm=[0, 2, 1, 3]}
    %rk: f32[1,6,${hk},4] = reshape(%k3, %skv)
    %tk: f32[1,${hk},6,4] = transpose(%rk) {perm=[0, 2, 1, 3]}
    %rv: f32[1,6,${hk},4] = reshape(%v3, %skv)
    %tv: f32[1,${hk},6,4] = transpose(%rv) {perm=[0, 2, 1, 3]}
    %a: f32[1,2,6,4] = attention(%tq, %tk, %tv, %m) {scale=0.5}
    %t: f32[1,6,2,4] = transpose(%a) {perm=${opts.perm ?? '[0, 2, 1, 3]'}}
    %y: f32[1,6,8] = reshape(%t, %s3)
    output %y
    ${opts.extraUse ? '%z: f32[1,2,6,4] = neg(%a)\n    output %z' : ''}
  }`;
  };

  it('split heads in, merged heads out: one 3-D attention on the unsplit tensors (GQA kept)', () => {
    for (const hk of [2, 1]) {
      const g = rewrite(src({ kvHeads: hk }), attentionHeadRules);
      deadCodeElimination.run(g, new PassContext());
      expectSameGraph(
        g,
        `graph g {
        input %q3: f32[1,6,8]
        input %k3: f32[1,6,${hk * 4}]
        input %v3: f32[1,6,${hk * 4}]
        input %m: f32[6,6]
        %y: f32[1,6,8] = attention(%q3, %k3, %v3, %m) {kv_num_heads=${hk}, q_num_heads=2, scale=0.5}
        output %y
      }`,
      );
      const feeds: Record<string, Tensor> = {};
      let k = 0;
      const before = ir(src({ kvHeads: hk }));
      for (const v of before.inputs) {
        const shape = v.type.shape as number[];
        feeds[v.name] = makeTensor(
          'f32',
          shape,
          Array.from({ length: shape.reduce((a, c) => a * c) }, () => Math.sin(++k * 1.3)),
        );
      }
      expect(Array.from(interpret(g, feeds)['y']!.data)).toEqual(Array.from(interpret(before, feeds)['y']!.data));
    }
  });

  it('near misses: the 4-D result read elsewhere, or merged with another permutation', () => {
    for (const o of [{ extraUse: true }, { perm: '[0, 2, 3, 1]' }]) {
      const g = rewrite(o.perm ? src(o).replace('%t: f32[1,6,2,4]', '%t: f32[1,6,4,2]') : src(o), attentionHeadRules);
      expect(g.nodes.filter((n) => n.op === 'attention')[0]!.inputs[0]!.name).toBe('tq');
    }
  });
});
