/** IR properties: text round trip, structural hash, inference vs. interpreter shapes, broadcasting laws, verifier. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ParseError, VerifyError } from '../../ir/errors.js';
import { Value } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import { broadcastShapes } from '../../ir/shape.js';
import { parseGraph, printGraph, structuralHash } from '../../ir/text.js';
import { tensorType } from '../../ir/types.js';
import { verify } from '../../ir/verify.js';
import { PROP_RUNS } from '../helpers/paths.js';
import { arbGraphSeed, evalDim, randomGraph, symbolize } from '../helpers/random-graph.js';

const params = { numRuns: PROP_RUNS, verbose: 1 as const };

describe('text format', () => {
  it('print → parse → print is exact and keeps the structural hash', () => {
    fc.assert(
      fc.property(arbGraphSeed, fc.integer({ min: 1, max: 10 }), (seed, steps) => {
        const { graph } = randomGraph(seed, steps);
        const text = printGraph(graph);
        const back = parseGraph(text);
        verify(back);
        expect(printGraph(back)).toBe(text);
        expect(structuralHash(back)).toBe(structuralHash(graph));
      }),
      params,
    );
  });

  it('a parsed graph computes bit-identical results', () => {
    fc.assert(
      fc.property(arbGraphSeed, (seed) => {
        const { graph, feeds } = randomGraph(seed, 5);
        const a = interpret(graph, feeds)['out']!;
        const b = interpret(parseGraph(printGraph(graph)), feeds)['out']!;
        expect(Array.from(b.data)).toEqual(Array.from(a.data));
      }),
      params,
    );
  });

  it('garbage and mutated text give a ParseError (or a graph), never another exception', () => {
    const { graph } = randomGraph(12345, 6);
    const text = printGraph(graph);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 200 }),
          fc
            .tuple(fc.nat(text.length), fc.nat(40), fc.string({ maxLength: 12 }))
            .map(([at, cut, ins]) => text.slice(0, at) + ins + text.slice(Math.min(text.length, at + cut))),
        ),
        (src) => {
          try {
            parseGraph(src);
          } catch (e) {
            expect(e).toBeInstanceOf(ParseError);
          }
        },
      ),
      { numRuns: PROP_RUNS * 10 },
    );
  });

  it('structural hash ignores names but not structure', () => {
    fc.assert(
      fc.property(arbGraphSeed, (seed) => {
        const { graph } = randomGraph(seed, 4);
        const h = structuralHash(graph);
        for (const v of graph.values()) v.name = `renamed_${v.name}`;
        for (const n of graph.nodes) n.name = `n_${n.name}`;
        expect(structuralHash(graph)).toBe(h);
        const extra = parseGraph(
          printGraph(graph).replace(
            /\n {2}output/,
            '\n  %zz: f32[] = reduce_sum(%renamed_x0) {keepdims=false}\n  output',
          ),
        );
        expect(structuralHash(extra)).not.toBe(h);
      }),
      params,
    );
  });
});

describe('shape inference', () => {
  it('agrees with the shapes the interpreter produces at every node', () => {
    fc.assert(
      fc.property(arbGraphSeed, fc.integer({ min: 1, max: 12 }), (seed, steps) => {
        const { graph, feeds } = randomGraph(seed, steps);
        const inferred = new Map(graph.nodes.map((n) => [n.name, n.outputs.map((o) => o.type.shape.join(','))]));
        interpret(graph, feeds, {
          onNode: (n, outs) => {
            expect(outs.map((t) => t.shape.join(','))).toEqual(inferred.get(n.name));
            for (const t of outs) expect(t.data.length).toBe(t.shape.reduce((a, c) => a * c, 1));
          },
        });
      }),
      params,
    );
  });
});

describe('symbolic shape inference', () => {
  it('with symbolic input dims, every inferred shape evaluates to what the interpreter produces', () => {
    fc.assert(
      fc.property(arbGraphSeed, fc.integer({ min: 1, max: 10 }), (seed, steps) => {
        const { graph, feeds } = randomGraph(seed, steps);
        const sym = symbolize(graph);
        expect(sym.inputs.some((v) => v.type.shape.some((d) => typeof d === 'string'))).toBe(
          graph.inputs.some((v) => v.type.shape.some((d) => typeof d === 'number' && d > 1)),
        );
        const env: Record<string, number> = {};
        for (let d = 2; d <= 64; d++) env[`n${d}`] = d;
        const inferred = new Map(sym.nodes.map((n) => [n.name, n.outputs.map((o) => o.type.shape)]));
        const out = interpret(sym, feeds, {
          onNode: (n, outs) => {
            const shapes = inferred.get(n.name)!;
            outs.forEach((t, i) => {
              // dims the inference could not name (data-dependent) are fresh symbols: skip those
              const want = shapes[i]!.map((d) => {
                try {
                  return evalDim(d, env);
                } catch {
                  return undefined;
                }
              });
              want.forEach((w, k) => w !== undefined && expect(t.shape[k], `${n.name} output ${i} dim ${k}`).toBe(w));
              expect(t.shape.length).toBe(shapes[i]!.length);
            });
          },
        })['out']!;
        // and the symbolic graph computes exactly what the static one does
        expect(Array.from(out.data)).toEqual(Array.from(interpret(graph, feeds)['out']!.data));
      }),
      params,
    );
  });
});

describe('broadcasting laws', () => {
  const arbShape = fc.array(fc.constantFrom(1, 2, 3, 5), { maxLength: 4 });
  /** Independent statement of the numpy rule: right-align, each dim pair equal or one of them 1. */
  const numpy = (a: number[], b: number[]): number[] | null => {
    const r = Math.max(a.length, b.length);
    const out: number[] = [];
    for (let i = 0; i < r; i++) {
      const x = a[a.length - r + i] ?? 1;
      const y = b[b.length - r + i] ?? 1;
      if (x !== y && x !== 1 && y !== 1) return null;
      out.push(Math.max(x, y));
    }
    return out;
  };
  const bc = (...s: number[][]) => {
    try {
      return broadcastShapes(s) as number[];
    } catch {
      return null;
    }
  };

  it('matches the numpy rule', () => {
    fc.assert(
      fc.property(arbShape, arbShape, (a, b) => {
        expect(bc(a, b)).toEqual(numpy(a, b));
      }),
      params,
    );
  });
  it('is commutative and associative, with [] as identity', () => {
    fc.assert(
      fc.property(arbShape, arbShape, arbShape, (a, b, c) => {
        expect(bc(a, b)).toEqual(bc(b, a));
        expect(bc(a, [])).toEqual(a);
        const ab = bc(a, b);
        const bcc = bc(b, c);
        if (ab && bcc) expect(bc(ab, c)).toEqual(bc(a, bcc));
      }),
      params,
    );
  });
  it('keeps symbolic dims against 1 and against themselves', () => {
    expect(
      broadcastShapes([
        ['batch', 1, 64],
        [1, 'seq', 64],
      ]),
    ).toEqual(['batch', 'seq', 64]);
    expect(broadcastShapes([['seq'], ['seq']])).toEqual(['seq']);
    expect(() =>
      broadcastShapes([
        [2, 3],
        [4, 3],
      ]),
    ).toThrow(VerifyError);
  });
});

describe('verifier', () => {
  it('rejects a wrongly declared output type, naming the node', () => {
    fc.assert(
      fc.property(arbGraphSeed, fc.nat(), fc.constantFrom('dtype', 'dim', 'rank'), (seed, pick, how) => {
        const { graph } = randomGraph(seed, 4);
        const node = graph.nodes[pick % graph.nodes.length]!;
        const o = node.outputs[0]!;
        const shape = [...o.type.shape];
        if (how === 'dtype') o.type = tensorType(o.type.dtype === 'f32' ? 'f16' : 'f32', shape);
        else if (how === 'rank') o.type = tensorType(o.type.dtype, [...shape, 1]);
        else if (shape.length) o.type = tensorType(o.type.dtype, [(shape[0] as number) + 1, ...shape.slice(1)]);
        else o.type = tensorType(o.type.dtype, [2]);
        expect(() => verify(graph)).toThrow(VerifyError);
        try {
          verify(graph);
        } catch (e) {
          expect((e as VerifyError).location.node).toBe(node.name);
          expect((e as Error).message).toContain(node.name);
        }
      }),
      params,
    );
  });

  it('rejects a use before definition and an ill-typed operand, naming the node', () => {
    fc.assert(
      fc.property(arbGraphSeed, (seed) => {
        const { graph } = randomGraph(seed, 3);
        const n = graph.nodes[0]!;
        const ghost = new Value('ghost', tensorType('f32', [3]));
        const saved = n.inputs[0]!;
        n.setInput(0, ghost);
        expect(() => verify(graph)).toThrow(/ghost.*used before definition|used before definition/);
        // an i64 operand where f32 is required
        const intIn = new Value('int_in', tensorType('i64', saved.type.shape));
        n.setInput(0, intIn);
        graph.inputs.push(intIn);
        expect(() => verify(graph)).toThrow(VerifyError);
      }),
      params,
    );
  });
});
