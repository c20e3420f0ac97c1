/**
 * Symbolic shape values: integer tensors computed from shapes (Shape → Gather → Unsqueeze → Concat …) carry their
 * value as dims, so reshape / expand / slice / tile / range / constant_of_shape get real dims (`seq`, `past+seq`,
 * `batch*heads`) instead of fresh `<node>_d<k>` symbols.
 */
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import { dimAdd, dimDiv, dimMul, dimSub, evalDim, simplifyDim } from '../../ir/dim-expr.js';
import type { Value } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import '../../ir/ops/index.js';
import { bindShape, type Dim } from '../../ir/shape.js';
import { makeTensor } from '../../ir/tensor.js';
import { parseGraph, printGraph } from '../../ir/text.js';
import { verify } from '../../ir/verify.js';
import { loadModel } from '../../src/inspect.js';
import { CONFORMANCE, hasShared } from '../helpers/paths.js';

const SYNTHETIC = /_d\d+\b/;

describe('dim arithmetic (dim-expr)', () => {
  it('normalizes sums, products and exact quotients', () => {
    expect(dimAdd('seq', 1)).toBe('seq+1');
    expect(dimAdd(1, 'seq')).toBe('seq+1');
    expect(dimMul('seq', 1)).toBe('seq');
    expect(dimMul(2, 'seq')).toBe('2*seq');
    expect(dimMul('heads', 'batch')).toBe('batch*heads');
    expect(dimSub('past+seq', 'seq')).toBe('past');
    expect(dimSub('seq', 'past')).toBe('seq-past');
    expect(dimSub(1, 'seq')).toBe('1-seq');
    expect(dimSub('seq', 'seq')).toBe(0);
    expect(dimDiv('4*seq', 2)).toBe('2*seq');
    expect(dimDiv('batch*heads', 'heads')).toBe('batch');
    expect(dimDiv(7, 2)).toBe(3); // integer Div truncates
    expect(dimDiv('seq', 2)).toBeUndefined(); // no exact value
    expect(dimDiv(3, 0)).toBeUndefined();
    // (past+seq)*batch expands; dividing by batch or by (past+seq) gives the other factor back
    const kv = dimMul(dimAdd('past', 'seq')!, 'batch')!;
    expect(kv).toBe('batch*past+batch*seq');
    expect(dimDiv(kv, 'batch')).toBe('past+seq');
    expect(dimDiv(kv, 'past+seq')).toBe('batch');
    expect(simplifyDim('seq*1')).toBe('seq');
    expect(simplifyDim('(a*b)/b')).toBe('a');
    expect(simplifyDim('past+seq-1+1')).toBe('past+seq');
    expect(simplifyDim('a.b')).toBe('a.b'); // not expression text: left alone
    expect(dimAdd('a.b', 1)).toBeUndefined();
  });

  it('the normalized text evaluates like the arithmetic it stands for', () => {
    const leaf = fc.oneof(fc.constantFrom<Dim>('a', 'b', 'c'), fc.integer({ min: 0, max: 9 }));
    const expr = fc.letrec<{ e: Dim }>((tie) => ({
      e: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        leaf,
        fc
          .tuple(tie('e'), tie('e'), fc.constantFrom('+', '-', '*'))
          .map(([x, y, op]) => (op === '+' ? dimAdd(x, y) : op === '-' ? dimSub(x, y) : dimMul(x, y))!),
      ),
    })).e;
    const env = { a: 3, b: 5, c: 11 };
    fc.assert(
      fc.property(expr, expr, (x, y) => {
        const ev = (d: Dim) => evalDim(d, env) + 0; // +0: -0 and 0 are the same dim
        const [vx, vy] = [ev(x), ev(y)];
        expect(ev(dimAdd(x, y)!)).toBe(vx + vy);
        expect(ev(dimSub(x, y)!)).toBe(vx - vy);
        expect(ev(dimMul(x, y)!)).toBe(vx * vy + 0);
        const q = dimDiv(dimMul(x, y)!, y);
        if (q !== undefined && vy !== 0) expect(ev(q)).toBe(vx);
      }),
      { numRuns: 200 },
    );
  });
});

describe('bindShape evaluates expression dims', () => {
  it('checks an expression once its symbols are bound, in any order', () => {
    expect(bindShape(['seq', 'seq+1'], [3, 4], new Map())).toBe(true);
    expect(bindShape(['seq', 'seq+1'], [3, 5], new Map())).toBe(false);
    expect(bindShape(['seq+1', 'seq'], [4, 3], new Map())).toBe(true);
    expect(bindShape(['batch*2'], [6], new Map([['batch', 3]]))).toBe(true);
    expect(bindShape(['batch*2'], [7], new Map([['batch', 3]]))).toBe(false);
    expect(bindShape(['a+b'], [7], new Map())).toBe(true); // unbound symbols: not checked
  });
});

// ---- propagation rules, one graph each ----------------------------------------------------------------------------

/** x: f32[batch, seq, 768] and its shape's dims as scalars. */
function setup() {
  const b = new GraphBuilder('g');
  const x = b.input('x', 'f32', ['batch', 'seq', 768]);
  const s = b.op('shape', [x]);
  const dim = (k: number) => b.gather(s, b.const('i64', [k], [], 'k'));
  const vec = (v: Value) => b.op('unsqueeze', [v], { axes: [0] });
  return { b, x, s, dim, vec };
}

describe('symbolic values through shape ops', () => {
  it('shape → gather → unsqueeze → concat → reshape gives [batch, seq, heads, hd]', () => {
    const { b, x, s, dim, vec } = setup();
    expect(s.symbolic).toEqual(['batch', 'seq', 768]);
    const batch = dim(0);
    expect(batch.symbolic).toEqual(['batch']);
    const shape = b.concat([vec(batch), vec(dim(1)), b.const('i64', [12, 64])], 0);
    expect(shape.symbolic).toEqual(['batch', 'seq', 12, 64]);
    const r = b.op('reshape', [x, shape]);
    expect(r.type.shape).toEqual(['batch', 'seq', 12, 64]);
  });

  it('shape with start / end, slice of a shape, size', () => {
    const { b, x } = setup();
    expect(b.op('shape', [x], { start: 1 }).symbolic).toEqual(['seq', 768]);
    expect(b.op('shape', [x], { start: -2, end: -1 }).symbolic).toEqual(['seq']);
    const s = b.op('shape', [x]);
    const tail = b.op('slice', [s, b.const('i64', [1]), b.const('i64', [1e9])]);
    expect(tail.symbolic).toEqual(['seq', 768]);
    const rev = b.op('slice', [
      s,
      b.const('i64', [-1]),
      b.const('i64', [-1e9]),
      b.const('i64', [0]),
      b.const('i64', [-2]),
    ]);
    expect(rev.symbolic).toEqual([768, 'batch']);
    expect(b.op('size', [x]).symbolic).toEqual(['768*batch*seq']);
  });

  it('reshape with 0 (copy) and -1 (inferred by symbolic division)', () => {
    const { b, x, dim, vec } = setup();
    // [0, seq, -1]: 0 copies batch, -1 is batch*seq*768 / (batch*seq) = 768
    const t = b.concat([b.const('i64', [0]), vec(dim(1)), b.const('i64', [-1])], 0);
    expect(b.op('reshape', [x, t]).type.shape).toEqual(['batch', 'seq', 768]);
    // [batch*seq, -1] through mul: -1 = 768
    const bs = b.mul(dim(0), dim(1));
    expect(bs.symbolic).toEqual(['batch*seq']);
    const flat = b.op('reshape', [x, b.concat([vec(bs), b.const('i64', [-1])], 0)]);
    expect(flat.type.shape).toEqual(['batch*seq', 768]);
    // [-1, other] where the quotient 768*batch*seq / n has no exact form: a fresh dim as before
    const n = b.input('y', 'f32', ['n']);
    const odd = b.op('reshape', [x, b.concat([b.const('i64', [-1]), b.op('shape', [n])], 0)], {}, 'odd');
    expect(odd.type.shape[1]).toBe('n');
    expect(odd.type.shape[0]).toMatch(SYNTHETIC);
  });

  it('integer add / sub / mul / div with a broadcast scalar, and casts between integers', () => {
    const { b, dim, s } = setup();
    const seq = dim(1);
    const one = b.const('i64', [1], []);
    expect(b.add(seq, one).symbolic).toEqual(['seq+1']);
    expect(b.sub(b.add(seq, one), one).symbolic).toEqual(['seq']);
    expect(b.mul(seq, one).symbolic).toEqual(['seq']);
    // head dim = hidden / heads: numbers divide; a symbolic quotient only when exact
    expect(b.div(dim(2), b.const('i64', [12], [])).symbolic).toEqual([64]);
    expect(b.div(b.mul(seq, b.const('i64', [4], [])), b.const('i64', [2], [])).symbolic).toEqual(['2*seq']);
    expect(b.div(seq, b.const('i64', [2], [])).symbolic).toBeUndefined();
    // a shape vector times a scalar, elementwise
    expect(b.mul(s, b.const('i64', [2], [])).symbolic).toEqual(['2*batch', '2*seq', 1536]);
    expect(b.cast(b.cast(seq, 'i32'), 'i64').symbolic).toEqual(['seq']);
    expect(b.cast(seq, 'f32').symbolic).toBeUndefined();
  });

  it('constant_of_shape, expand, tile and range use a symbolic shape input', () => {
    const { b, x, s, dim, vec } = setup();
    const z = b.op('constant_of_shape', [s], { value: makeTensor('f32', [1], [0]) });
    expect(z.type.shape).toEqual(['batch', 'seq', 768]);
    const ones = b.op('constant_of_shape', [b.const('i64', [3])], { value: makeTensor('i64', [1], [1]) });
    expect(ones.symbolic).toEqual([1, 1, 1]);
    const bias = b.input('bias', 'f32', [1, 1, 768]);
    expect(b.op('expand', [bias, s]).type.shape).toEqual(['batch', 'seq', 768]);
    // expand's own value: a scalar dim broadcast to a vector
    expect(b.op('expand', [vec(dim(1)), b.const('i64', [2])]).symbolic).toEqual(['seq', 'seq']);
    const reps = b.concat([vec(dim(0)), b.const('i64', [1, 2])], 0);
    expect(b.op('tile', [x, reps]).type.shape).toEqual(['batch*batch', 'seq', 1536]);
    // positions past .. past+seq
    const past = b.input('past', 'f32', ['batch', 'past', 64]);
    const p = b.gather(b.op('shape', [past]), b.const('i64', [1], []));
    const total = b.add(p, dim(1));
    expect(total.symbolic).toEqual(['past+seq']);
    const pos = b.op('range', [p, total, b.const('i64', [1], [])]);
    expect(pos.type.shape).toEqual(['seq']);
    // one new token: the positions themselves are known
    const step = b.op('range', [p, b.add(p, b.const('i64', [1], [])), b.const('i64', [1], [])]);
    expect(step.type.shape).toEqual([1]);
    expect(step.symbolic).toEqual(['past']);
    void x;
  });

  it('equal / where: the exporter pattern Where(Equal(shape, -1), ones, shape) before an Expand', () => {
    const { b, dim, vec } = setup();
    const target = b.concat([vec(dim(0)), b.const('i64', [1]), vec(dim(1))], 0);
    const ones = b.op('constant_of_shape', [b.op('shape', [target])], { value: makeTensor('i64', [1], [1]) });
    const neg = b.mul(ones, b.const('i64', [-1], []));
    expect(neg.symbolic).toEqual([-1, -1, -1]);
    const eq = b.op('equal', [target, neg]);
    expect(eq.symbolic).toEqual([0, 0, 0]); // input dims are never -1
    const shape = b.op('where', [eq, ones, target]);
    expect(shape.symbolic).toEqual(['batch', 1, 'seq']);
    expect(b.op('expand', [b.input('m', 'f32', [1, 1, 1]), shape]).type.shape).toEqual(['batch', 1, 'seq']);
    // seq == past is not known: no value, and where cannot choose
    const past = b.gather(b.op('shape', [b.input('p', 'f32', ['past'])]), b.const('i64', [0], []));
    const unknown = b.op('equal', [dim(1), past]);
    expect(unknown.symbolic).toBeUndefined();
    expect(b.op('where', [unknown, dim(1), past]).symbolic).toBeUndefined();
    expect(b.op('equal', [dim(1), dim(1)]).symbolic).toEqual([1]);
  });

  it('slice with symbolic bounds: the causal-mask rows [total-seq, total) of a fixed table', () => {
    const { b, dim, vec } = setup();
    const past = b.input('past', 'f32', ['batch', 'past', 64]);
    const total = b.add(b.gather(b.op('shape', [past]), b.const('i64', [1], [])), dim(1));
    const start = b.sub(total, dim(1));
    const table = b.input('mask', 'f32', [1, 1, 1024, 1024]);
    const rows = b.op('slice', [table, vec(start), vec(total), b.const('i64', [2])]);
    expect(rows.type.shape).toEqual([1, 1, 'seq', 1024]);
    const cols = b.op('slice', [rows, b.const('i64', [0]), vec(total), b.const('i64', [3])]);
    expect(cols.type.shape).toEqual([1, 1, 'seq', 'past+seq']);
  });

  it('the interpreter runs such a graph and its expression dims check out', () => {
    const { b, x, dim, vec } = setup();
    const one = b.const('i64', [1], []);
    const seq1 = b.add(dim(1), one);
    const z = b.op('constant_of_shape', [b.concat([vec(dim(0)), vec(seq1)], 0)], {
      value: makeTensor('f32', [1], [2]),
    });
    expect(z.type.shape).toEqual(['batch', 'seq+1']);
    const bs = b.mul(dim(0), dim(1));
    const flat = b.op('reshape', [x, b.concat([vec(bs), b.const('i64', [-1])], 0)]);
    b.output(z, 'z');
    b.output(flat, 'flat');
    const g = b.build();
    const out = interpret(g, { x: makeTensor('f32', [2, 3, 768], new Array(2 * 3 * 768).fill(1)) });
    expect(out['z']!.shape).toEqual([2, 4]);
    expect(out['flat']!.shape).toEqual([6, 768]);
  });

  it('parsed IR text re-derives symbolic values when verified, and round-trips', () => {
    const { b, x, dim, vec } = setup();
    const shape = b.concat([vec(dim(0)), vec(dim(1)), b.const('i64', [12, 64])], 0);
    b.output(b.op('reshape', [x, shape]), 'y');
    const text = printGraph(b.build());
    expect(text).toContain('%y: f32[batch,seq,12,64] = reshape');
    const g = parseGraph(text);
    expect(() => verify(g)).not.toThrow();
    expect(g.nodes.find((n) => n.op === 'concat')!.outputs[0]!.symbolic).toEqual(['batch', 'seq', 12, 64]);
    expect(printGraph(g)).toBe(text);
  });
});

describe.skipIf(!hasShared)('GPT-2 with past: readable output shapes', () => {
  const file = join(CONFORMANCE, 'models/model_gpt2_past/model.onnx');

  it('every output dim is a number or an expression of batch_size / seq_len; no synthetic dims anywhere', () => {
    const g = loadModel(file);
    const inputs = Object.fromEntries(g.inputs.map((v) => [v.name, v.type.shape]));
    expect(inputs['input_ids']).toEqual(['batch_size', 1]);
    expect(inputs['past_0']).toEqual([2, 'batch_size', 2, 'seq_len', 2]);
    const outs = Object.fromEntries(g.outputs.map((v) => [v.name, v.type.shape]));
    // one new token appended to seq_len cached positions
    for (let l = 0; l < 12; l++) expect(outs[`present_${l}`]).toEqual([2, 'batch_size', 2, 'seq_len+1', 2]);
    expect(outs['last_state']).toEqual(['batch_size', 1, 4]);
    for (const v of g.outputs) {
      for (const d of v.type.shape) expect(String(d)).toMatch(/^(\d+|batch_size|seq_len|seq_len\+1)$/);
    }
    expect(printGraph(g)).not.toMatch(SYNTHETIC);
  });

  it('the reference run binds the expression dims to the real sizes', () => {
    const g = loadModel(file);
    const feeds = Object.fromEntries(
      g.inputs.map((v) => {
        const shape = v.type.shape.map((d) => (d === 'batch_size' ? 2 : d === 'seq_len' ? 3 : (d as number)));
        const n = shape.reduce((p, d) => p * d, 1);
        return [v.name, makeTensor(v.type.dtype, shape, new Array<number>(n).fill(v.type.dtype === 'i64' ? 1 : 0.5))];
      }),
    );
    const out = interpret(g, feeds);
    expect(out['present_0']!.shape).toEqual([2, 2, 2, 4, 2]);
    expect(out['last_state']!.shape).toEqual([2, 1, 4]);
  });
});
