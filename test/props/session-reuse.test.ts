/**
 * Property: one session, several runs with fresh feeds, each equal to the float64 reference — on every device
 * backend here. Random graphs get fresh values per run; a second family feeds its data-dependent parameters (slice
 * bounds, pad amounts, expand shapes, range limits, a scalar) and its input lengths anew every run.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import '../../ir/ops/index.js';
import { GraphBuilder } from '../../ir/builder.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { compile, type Session } from '../../src/session.js';
import { compareWithReference, tolerance } from '../helpers/backends.js';
import { deviceBackends } from '../helpers/device-backends.js';
import { PROP_RUNS } from '../helpers/paths.js';
import { arbGraphSeed, randomGraph } from '../helpers/random-graph.js';

const backends = await deviceBackends();
const runs = Math.max(6, Math.round(PROP_RUNS / 6));
const sessions: Session[] = [];
afterAll(() => sessions.forEach((s) => s.dispose()));

async function expectRunsMatch(s: Session, feedsList: Record<string, Tensor>[]): Promise<void> {
  for (const [i, feeds] of feedsList.entries()) {
    const ref = interpret(s.graph, feeds);
    const got = await s.run(feeds);
    for (const [k, r] of Object.entries(ref)) {
      const m = compareWithReference(k, got[k]!, r, tolerance(r.dtype, true));
      expect(m, `run ${i}: ${m?.reason}`).toBeUndefined();
    }
  }
}

/** A graph whose kernels depend on run-time host values; `feeds(rand)` draws a fresh, valid set of them. */
function paramGraph() {
  const b = new GraphBuilder('params');
  const x = b.input('x', 'f32', ['n']);
  const s = b.input('s', 'i64', [1]);
  const e = b.input('e', 'i64', [1]);
  const pads = b.input('pads', 'i64', [2]);
  const shp = b.input('shp', 'i64', [2]);
  const lim = b.input('lim', 'f32', []);
  const k = b.input('k', 'f32', []);
  const sl = b.op('slice', [x, s, e]);
  const padded = b.op('pad', [sl, pads]);
  b.output(b.op('mul', [b.op('expand', [b.op('unsqueeze', [padded], { axes: [0] }), shp]), k]), 'y');
  b.output(b.op('add', [b.op('range', [b.const('f32', [0], []), lim, b.const('f32', [1], [])]), k]), 'r');
  const graph = b.build();
  const feeds = (rand: () => number): Record<string, Tensor> => {
    const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
    const n = int(1, 9);
    const lo = int(0, n - 1);
    const hi = int(lo + 1, n);
    const p0 = int(0, 3);
    const p1 = int(0, 3);
    return {
      x: makeTensor(
        'f32',
        [n],
        Array.from({ length: n }, () => rand() * 4 - 2),
      ),
      s: makeTensor('i64', [1], [lo]),
      e: makeTensor('i64', [1], [hi]),
      pads: makeTensor('i64', [2], [p0, p1]),
      shp: makeTensor('i64', [2], [int(1, 3), hi - lo + p0 + p1]),
      lim: makeTensor('f32', [], [int(1, 6)]),
      k: makeTensor('f32', [], [rand() * 4 - 2]),
    };
  };
  return { graph, feeds };
}

function mulberry(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe.each(backends)('%s: one session, several runs with fresh feeds', (backend) => {
  it('random graphs, fresh values every run', async () => {
    await fc.assert(
      fc.asyncProperty(arbGraphSeed, fc.integer({ min: 1, max: 6 }), async (seed, steps) => {
        const { graph, feeds } = randomGraph(seed, steps);
        const s = await compile(graph, { backend, poison: true });
        try {
          const rand = mulberry(seed);
          const fresh = () =>
            Object.fromEntries(
              Object.entries(feeds).map(([k, t]) => [
                k,
                makeTensor(
                  t.dtype,
                  t.shape,
                  Array.from({ length: t.data.length }, () => rand() * 4 - 2),
                ),
              ]),
            );
          await expectRunsMatch(s, [feeds, fresh(), fresh()]);
        } finally {
          s.dispose();
        }
      }),
      { numRuns: runs },
    );
  }, 300_000);

  it('data-dependent parameters and lengths, fresh every run', async () => {
    const { graph, feeds } = paramGraph();
    const s = await compile(graph, { backend, poison: true });
    sessions.push(s);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 0x7fffffff }), async (seed) => {
        const rand = mulberry(seed);
        await expectRunsMatch(s, [feeds(rand), feeds(rand), feeds(rand)]);
      }),
      { numRuns: runs * 2 },
    );
  }, 300_000);
});
