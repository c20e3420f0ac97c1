/**
 * The pass manager, its instruments, the default pipeline on random graphs (equal to the unoptimized graph under the
 * reference interpreter), and compile()'s use of it.
 */
import { dumpToFolder } from '../../passes/dump-folder.js';
import fc from 'fast-check';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../ir/builder.js';
import type { Graph, Value } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import { printGraph } from '../../ir/text.js';
import { verify } from '../../ir/verify.js';
import {
  canonicalize,
  cloneGraph,
  defaultPipeline,
  differentialInstrument,
  optimize,
  PassContext,
  PassMismatchError,
  PassVerifyError,
  runPasses,
  timingInstrument,
  verifyInstrument,
  type Pass,
} from '../../passes/index.js';
import { compile } from '../../src/session.js';
import { compareWithReference, tolerance } from '../helpers/compare.js';
import { arbGraphSeed, randomGraph } from '../helpers/random-graph.js';
import { ir } from './helpers.js';

const sample = () =>
  ir(`graph g {
    input %x: f32[batch,4]
    const %one: f32[] = [1]
    const %w: f32[4,4] = [1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 3, 0, 0, 0, 0, 4]
    %a: f32[batch,4] = mul(%x, %one)
    %b: f32[batch,4] = matmul(%a, %w)
    %c: f32[batch,4] = exp(%b)
    %d: f32[batch,4] = exp(%b)
    %y: f32[batch,4] = add(%c, %d)
    output %y
  }`);

/** A pass that breaks the numbers: every exp becomes a tanh (types stay right, so only the numbers tell). */
const wrongPass: Pass = {
  name: 'exp-to-tanh',
  minLevel: 1,
  run(g) {
    let changed = false;
    for (const n of g.nodes) {
      if (n.op === 'exp') {
        n.op = 'tanh';
        changed = true;
      }
    }
    return { changed };
  },
};

describe('pass manager and instruments', () => {
  it('runs the passes a level enables, minus disabled ones', () => {
    expect(defaultPipeline(0)).toEqual([]);
    expect(defaultPipeline(1).map((p) => p.name)).not.toContain('matmul-bias');
    expect(defaultPipeline(2).map((p) => p.name)).toContain('matmul-bias');
    const g = sample();
    const t = timingInstrument();
    // fusion off too, so the exp nodes stay visible
    runPasses(
      g,
      defaultPipeline(1),
      new PassContext({ level: 1, disabled: ['cse', 'fuse-elementwise'], instruments: [t] }),
    );
    expect(t.report.map((r) => r.pass)).not.toContain('cse');
    expect(g.nodes.filter((n) => n.op === 'exp')).toHaveLength(2); // CSE was off
  });

  it('timing reports each pass with its node-count delta', () => {
    const g = sample();
    const t = timingInstrument();
    runPasses(g, defaultPipeline(1), new PassContext({ instruments: [t] }));
    const canon = t.report.find((r) => r.pass === 'canonicalize')!;
    expect(canon).toMatchObject({ changed: true, nodesBefore: 5, nodesAfter: 4 });
    const cse = t.report.find((r) => r.pass === 'cse')!;
    expect(cse).toMatchObject({ changed: true, nodesBefore: 4, nodesAfter: 3 });
    expect(t.report.every((r) => r.ms >= 0)).toBe(true);
  });

  it('dumps the IR after every pass, numbered', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-dump-'));
    try {
      runPasses(sample(), defaultPipeline(1), new PassContext({ instruments: [dumpToFolder(dir)] }));
      const files = readdirSync(dir).sort();
      expect(files).toEqual([
        '00-input.ir',
        '01-dce.ir',
        '02-qdq-fold.ir',
        '03-canonicalize.ir',
        '04-recognize.ir',
        '05-cse.ir',
        '06-canonicalize.ir',
        '07-attention-heads.ir',
        '08-dce.ir',
        '09-merge-projections.ir',
        '10-merge-rotary.ir',
        '11-fuse-concat.ir',
        '12-fuse-elementwise.ir',
        '13-fuse-epilogue.ir',
        '14-fuse-norm-prologue.ir',
      ]);
      expect(readFileSync(join(dir, '05-cse.ir'), 'utf8')).not.toContain('%d:');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('verify names the pass that broke the graph', () => {
    const breaker: Pass = {
      name: 'drop-first-node',
      minLevel: 1,
      run(g) {
        g.removeNode(g.nodes[0]!);
        return { changed: true };
      },
    };
    expect(() =>
      runPasses(sample(), [canonicalize, breaker], new PassContext({ instruments: [verifyInstrument()] })),
    ).toThrow(PassVerifyError);
    try {
      runPasses(sample(), [canonicalize, breaker], new PassContext({ instruments: [verifyInstrument()] }));
    } catch (e) {
      expect((e as PassVerifyError).pass).toBe('drop-first-node');
      expect((e as Error).message).toContain('drop-first-node');
    }
  });

  it('the differential instrument names the first pass that changed the numbers', () => {
    const ctx = () => new PassContext({ instruments: [differentialInstrument({ dims: { batch: 3 }, seed: 7 })] });
    // the honest pipeline passes
    runPasses(sample(), defaultPipeline(3), ctx());
    let err: unknown;
    try {
      // without fusion, so the exp the wrong pass rewrites is still a node of its own
      const unfused = defaultPipeline(1).filter((p) => !p.name.startsWith('fuse-'));
      runPasses(sample(), [...unfused, wrongPass, canonicalize], ctx());
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PassMismatchError);
    expect((err as PassMismatchError).pass).toBe('exp-to-tanh');
    expect((err as PassMismatchError).output).toBe('y');
    // a symbolic dim without a value is a typed error, not a guess
    expect(() =>
      runPasses(sample(), defaultPipeline(1), new PassContext({ instruments: [differentialInstrument()] })),
    ).toThrow(/batch/);
  });

  it('cloneGraph copies nodes and values, shares constant data', () => {
    const g = sample();
    const c = cloneGraph(g);
    expect(printGraph(c)).toBe(printGraph(g));
    expect(c.nodes[0]).not.toBe(g.nodes[0]);
    expect(c.constants[1]).not.toBe(g.constants[1]);
    expect(c.constants[1]!.data).toBe(g.constants[1]!.data);
    c.nodes[0]!.setInput(0, c.inputs[0]!);
    expect(g.users(g.inputs[0]!)).toHaveLength(1);
    expect(c.users(c.inputs[0]!)).toHaveLength(1);
  });
});

/**
 * A random graph with identities sprinkled after its nodes (·1, +0, identity, transpose pairs, reshape round trips,
 * exact cast round trips, duplicated nodes) so the rules have something to do.
 */
function decorate(graph: Graph, seed: number): Graph {
  let s = seed >>> 0 || 1;
  const rnd = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
  const b = new GraphBuilder('decorated');
  const map = new Map<Value, Value>();
  for (const x of graph.inputs) map.set(x, b.input(x.name, x.type.dtype, x.type.shape));
  for (const c of graph.constants) map.set(c, b.weight(c.name, c.data!));
  for (const n of graph.nodes) {
    const ins = n.inputs.map((x) => (x ? map.get(x)! : null));
    let y = b.opN(n.op, ins, n.attrs, n.outputs.length)[0]!;
    const dt = y.type.dtype;
    const shape = y.type.shape as number[];
    const k = Math.floor(rnd() * 8);
    if (k === 0) y = b.mul(y, b.const(dt, [1], [], 'one'));
    else if (k === 1) y = b.add(b.const(dt, [0], [], 'zero'), y);
    else if (k === 2) y = b.op('identity', [y]);
    else if (k === 3 && shape.length >= 2) {
      const p = shape.map((_, i) => i).reverse();
      y = b.transpose(b.transpose(y, p), p);
    } else if (k === 4) y = b.reshape(b.reshape(y, [-1]), shape);
    else if (k === 5) y = b.cast(b.cast(y, 'f64'), dt);
    else if (k === 6) y = b.add(y, b.opN(n.op, ins, n.attrs, n.outputs.length)[0]!); // CSE: y + y
    map.set(n.outputs[0]!, y);
  }
  for (const o of graph.outputs) b.output(map.get(o)!, 'out');
  return b.build();
}

describe('default pipeline on random graphs', () => {
  it('levels 1–3 compute what the unoptimized graph computes (reference interpreter)', () => {
    fc.assert(
      fc.property(arbGraphSeed, fc.integer({ min: 1, max: 3 }), (seed, level) => {
        const { graph, feeds } = randomGraph(seed, 5);
        const g = decorate(graph, seed);
        const before = printGraph(g);
        const opt = optimize(g, { level, instruments: [verifyInstrument(), differentialInstrument({ seed })] });
        expect(printGraph(g)).toBe(before); // the input graph is untouched
        verify(opt);
        expect(opt.nodes.length).toBeLessThanOrEqual(g.nodes.length);
        const want = interpret(g, feeds)['out']!;
        const got = interpret(opt, feeds)['out']!;
        const bad = compareWithReference('out', got, want, tolerance(want.dtype, true));
        expect(bad).toBeUndefined();
      }),
      { numRuns: 40 },
    );
  });

  it('removes the sprinkled identities', () => {
    const { graph } = randomGraph(99, 6);
    const g = decorate(graph, 3);
    const opt = optimize(g, { level: 1 });
    const ops = (x: Graph) => x.nodes.filter((n) => n.op === 'identity' || n.op === 'cast').length;
    expect(ops(opt)).toBe(0);
  });
});

describe('compile() runs the pipeline on a copy', () => {
  it('opt 0 leaves the graph as it is, opt 1 optimizes a copy and never the caller’s graph', async () => {
    const g = sample();
    const text = printGraph(g);
    const s0 = await compile(g, { opt: 0 });
    expect(s0.graph).toBe(g);
    const s1 = await compile(g, { opt: 1 });
    expect(s1.graph).not.toBe(g);
    // exp + add fused, then the group taken as the matmul's epilogue
    expect(s1.graph.nodes.map((n) => n.op)).toEqual(['fused_contraction']);
    const sd = await compile(g);
    expect(sd.graph.nodes).toHaveLength(1); // the default level is 1
    expect(printGraph(g)).toBe(text);
    const x = { dtype: 'f32', shape: [2, 4], data: Float32Array.from([1, 2, 3, 4, -1, -2, -3, -4]) };
    const [r0, r1] = [await s0.run({ x }), await s1.run({ x })];
    expect(Array.from(r1['y']!.data)).toEqual(Array.from(r0['y']!.data));
    expect(s1.outputNames).toEqual(['y']);
  });
});
