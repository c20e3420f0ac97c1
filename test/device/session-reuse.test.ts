/**
 * One session, many runs: whatever a lowering reads from host data (slice bounds, pad amounts, range limits, expand
 * shapes, scalars, `Slice(x, 0, Shape(past))`) must not be served stale from the lowering cache on a later run.
 * Every run is compared with the float64 reference, on every device backend available here.
 */
import { afterAll, describe, expect, it } from 'vitest';
import '../../ir/ops/index.js';
import { GraphBuilder } from '../../ir/builder.js';
import type { Graph } from '../../ir/graph.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { compile, type Session } from '../../src/session.js';
import { compareWithReference } from '../helpers/backends.js';
import { deviceBackends } from '../helpers/device-backends.js';

const backends = await deviceBackends();
const sessions: Session[] = [];
afterAll(() => sessions.forEach((s) => s.dispose()));

async function runAll(graph: Graph, feedsList: Record<string, Tensor>[], backend: (typeof backends)[number]) {
  const s = await compile(graph, { backend, poison: true });
  sessions.push(s);
  for (const [i, feeds] of feedsList.entries()) {
    const got = await s.run(feeds);
    const ref = interpret(graph, feeds);
    for (const [k, r] of Object.entries(ref)) {
      const m = compareWithReference(k, got[k]!, r);
      expect(m, `run ${i}: ${m?.reason}`).toBeUndefined();
    }
  }
}

const i64 = (v: number[]) => makeTensor('i64', [v.length], v);

describe.each(backends)('%s: one session, fresh host data every run', (backend) => {
  it('slice with starts / ends fed at run time', async () => {
    const b = new GraphBuilder('slice_fed');
    const x = b.input('x', 'f32', [8]);
    const s = b.input('s', 'i64', [1]);
    const e = b.input('e', 'i64', [1]);
    b.output(b.op('slice', [x, s, e]), 'y');
    const xs = makeTensor('f32', [8], [0, 1, 2, 3, 4, 5, 6, 7]);
    const g = b.build();
    // hand-worked: [1,5) → 1..4, [3,7) → 3..6, [0,8) → all
    const ses = await compile(g, { backend });
    sessions.push(ses);
    for (const [lo, hi] of [
      [1, 5],
      [3, 7],
      [0, 8],
    ] as const) {
      const y = (await ses.run({ x: xs, s: i64([lo]), e: i64([hi]) }))['y']!;
      expect(Array.from(y.data)).toEqual(Array.from({ length: hi - lo }, (_, i) => lo + i));
    }
  });

  it('slice of a same-shaped buffer up to Shape(past) (static KV cache)', async () => {
    const b = new GraphBuilder('kv_static');
    const cache = b.input('cache', 'f32', [16, 4]);
    const past = b.input('past', 'f32', ['p', 4]);
    const len = b.op('slice', [b.op('shape', [past]), b.const('i64', [0]), b.const('i64', [1])]);
    b.output(b.op('slice', [cache, b.const('i64', [0]), len]), 'y');
    const g = b.build();
    const c = makeTensor(
      'f32',
      [16, 4],
      Array.from({ length: 64 }, (_, i) => i * 0.5 - 3),
    );
    await runAll(
      g,
      [1, 5, 2, 16].map((p) => ({ cache: c, past: makeTensor('f32', [p, 4], new Array(p * 4).fill(1)) })),
      backend,
    );
  });

  it('pad amounts, range limits, expand shapes, a scalar operand fed at run time', async () => {
    const b = new GraphBuilder('fed_params');
    const x = b.input('x', 'f32', [2, 3]);
    const pads = b.input('pads', 'i64', [4]);
    const lim = b.input('lim', 'f32', []);
    const shp = b.input('shp', 'i64', [3]);
    const k = b.input('k', 'f32', []);
    b.output(b.op('pad', [x, pads]), 'padded');
    b.output(b.op('range', [b.const('f32', [0], []), lim, b.const('f32', [1], [])]), 'r');
    b.output(b.op('expand', [x, shp]), 'ex');
    b.output(b.op('mul', [x, k]), 'scaled');
    const g = b.build();
    const x0 = makeTensor('f32', [2, 3], [1, -2, 3, -4, 5, -6]);
    await runAll(
      g,
      [
        {
          x: x0,
          pads: i64([0, 1, 1, 0]),
          lim: makeTensor('f32', [], [3]),
          shp: i64([1, 2, 3]),
          k: makeTensor('f32', [], [2]),
        },
        {
          x: x0,
          pads: i64([1, 0, 0, 2]),
          lim: makeTensor('f32', [], [5]),
          shp: i64([2, 2, 3]),
          k: makeTensor('f32', [], [-1]),
        },
        {
          x: x0,
          pads: i64([0, 0, 0, 0]),
          lim: makeTensor('f32', [], [1]),
          shp: i64([3, 1, 1]),
          k: makeTensor('f32', [], [0.5]),
        },
      ],
      backend,
    );
  });
});
