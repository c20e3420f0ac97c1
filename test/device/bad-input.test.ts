/**
 * Bad input on every backend: the reference's answer or a typed error naming the tensor / node — never numbers made
 * from garbage. Also: what a caller holds (feeds, returned tensors) is never shared with kiln's internals, and
 * dispose() during a run lets the run finish.
 */
import { afterAll, describe, expect, it } from 'vitest';
import '../../ir/ops/index.js';
import { GraphBuilder } from '../../ir/builder.js';
import { KilnError } from '../../ir/errors.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import type { Executor } from '../../src/runtime/executor.js';
import { compile, type BackendName, type Session } from '../../src/session.js';
import { deviceBackends } from '../helpers/device-backends.js';

const backends: BackendName[] = ['reference', ...(await deviceBackends())];
const sessions: Session[] = [];
afterAll(() => sessions.forEach((s) => s.dispose()));

async function session(build: (b: GraphBuilder) => void, backend: BackendName): Promise<Session> {
  const b = new GraphBuilder('t');
  build(b);
  const s = await compile(b.build(), { backend });
  sessions.push(s);
  return s;
}

async function expectKilnError(p: Promise<unknown>, code: string, names: string): Promise<void> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, 'expected a KilnError').toBeInstanceOf(KilnError);
  expect((e as KilnError).code).toBe(code);
  expect((e as KilnError).message).toContain(names);
}

const embedding = (b: GraphBuilder) => {
  const ids = b.input('ids', 'i64', [3]);
  const table = b.weight('table', makeTensor('f32', [4, 2], [0, 1, 2, 3, 4, 5, 6, 7]));
  b.output(b.op('gather', [table, ids], { axis: 0 }), 'y');
};

describe.each(backends)('%s: bad feeds are typed errors naming the tensor', (backend) => {
  it('data shorter than the shape (a hand-built tensor)', async () => {
    const s = await session((b) => b.output(b.op('neg', [b.input('x', 'f32', [2, 3])]), 'y'), backend);
    const short = { dtype: 'f32', shape: [2, 3], data: new Float32Array(4) } as const;
    await expectKilnError(s.run({ x: short }), 'shape', "'x'");
  });

  it('NaN or a fraction in an integer feed (a token id)', async () => {
    const s = await session(embedding, backend);
    await expectKilnError(s.run({ ids: { dtype: 'i64', shape: [3], data: [0, NaN, 1] } }), 'dtype', "'ids'");
    await expectKilnError(s.run({ ids: { dtype: 'i64', shape: [3], data: [0, 1.5, 1] } }), 'dtype', "'ids'");
    await expectKilnError(s.run({ ids: { dtype: 'i32' as 'i64', shape: [3], data: [0, 1, 1] } }), 'dtype', "'ids'");
  });

  it('unknown feed names, unknown dtypes, a missing feed', async () => {
    const s = await session(embedding, backend);
    const ids = makeTensor('i64', [3], [0, 1, 2]);
    await expectKilnError(s.run({ ids, idz: ids }), 'runtime', "'idz'");
    await expectKilnError(s.run({ ids: { dtype: 'int64', shape: [3], data: [0, 1, 2] } }), 'dtype', 'int64');
    await expectKilnError(s.run({}), 'runtime', "'ids'");
  });

  it('int64 feeds as BigInt64Array and bigint[] (as onnxruntime users pass them)', async () => {
    const s = await session(embedding, backend);
    const y1 = (await s.run({ ids: { dtype: 'i64', shape: [3], data: new BigInt64Array([3n, 0n, 2n]) } }))['y']!;
    expect(Array.from(y1.data)).toEqual([6, 7, 0, 1, 4, 5]);
    const y2 = (await s.run({ ids: { dtype: 'i64', shape: [3], data: [1n, 1n, 0n] } }))['y']!;
    expect(Array.from(y2.data)).toEqual([2, 3, 2, 3, 0, 1]);
    await expectKilnError(
      s.run({ ids: { dtype: 'i64', shape: [3], data: new BigInt64Array([2n ** 60n, 0n, 0n]) } }),
      'limit',
      "'ids'",
    );
  });
});

describe.each(backends)('%s: returned tensors and feeds belong to the caller', (backend) => {
  it('modifying outputs or feeds after a run does not change later runs', async () => {
    const s = await session((b) => {
      const x = b.input('x', 'f32', [3]);
      b.output(x, 'same'); // an output that is a graph input
      b.output(b.weight('w', makeTensor('f32', [3], [1, 2, 3])), 'w_out'); // an output that is a constant
      b.output(b.op('shape', [x]), 'shp'); // a host-computed (cached) result
      b.output(b.op('add', [x, b.weight('k', makeTensor('f32', [3], [10, 20, 30]))]), 'sum');
    }, backend);
    const xs = new Float32Array([1, 2, 3]);
    const first = await s.run({ x: makeTensor('f32', [3], xs) });
    const snapshot = Object.fromEntries(Object.entries(first).map(([k, t]) => [k, Array.from(t.data)]));
    expect(snapshot).toEqual({ same: [1, 2, 3], w_out: [1, 2, 3], shp: [3], sum: [11, 22, 33] });
    for (const t of Object.values(first)) (t.data as Float32Array).fill(-99);
    const again = await s.run({ x: makeTensor('f32', [3], [1, 2, 3]) });
    expect(Object.fromEntries(Object.entries(again).map(([k, t]) => [k, Array.from(t.data)]))).toEqual(snapshot);
    expect(Array.from(xs)).toEqual([1, 2, 3]); // the caller's feed was not written either
  });

  it('dispose() while a run is in flight: the run finishes with right numbers, later runs are refused', async () => {
    const s = await session((b) => {
      const x = b.input('x', 'f32', [64, 64]);
      b.output(b.op('matmul', [x, x]), 'y');
    }, backend);
    const x = makeTensor(
      'f32',
      [64, 64],
      Array.from({ length: 4096 }, (_, i) => ((i * 7) % 13) - 6),
    );
    const ref = await (await compile(s.graph)).run({ x });
    const pending = s.run({ x });
    s.dispose();
    const got = await pending;
    expect(Array.from(got['y']!.data)).toEqual(Array.from(ref['y']!.data)); // small integers: exact in f32
    await expectKilnError(s.run({ x }), 'runtime', 'disposed');
  });
});

describe('makeTensor validates what it is given', () => {
  it('unknown dtypes, NaN / fractional / out-of-range integers, wrong lengths are typed errors', () => {
    const bad: [() => Tensor, string][] = [
      [() => makeTensor('float32' as 'f32', [1], [1]), 'dtype'],
      [() => makeTensor('i32', [2], [1, NaN]), 'dtype'],
      [() => makeTensor('i64', [1], [0.5]), 'dtype'],
      [() => makeTensor('u8', [1], [256]), 'dtype'],
      [() => makeTensor('i8', [1], [-129]), 'dtype'],
      [() => makeTensor('bool', [1], [2]), 'dtype'],
      [() => makeTensor('f32', [2], [1]), 'shape'],
      [() => makeTensor('f32', [-1], []), 'shape'],
    ];
    for (const [f, code] of bad) {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(KilnError);
      expect((err as KilnError).code).toBe(code);
    }
  });

  it('holds natural arrays, taking matching ones without a copy', () => {
    const f = new Float32Array([1.5, 2]);
    expect(makeTensor('f32', [2], f).data).toBe(f);
    const i = new Int32Array([1, -2]);
    expect(makeTensor('i32', [2], i).data).toBe(i);
    expect(makeTensor('f16', [1], [1 / 3]).data).toBeInstanceOf(Float32Array);
    expect(makeTensor('f16', [1], [1 / 3]).data[0]).toBe(0.333251953125); // nearest f16
    expect(makeTensor('bool', [2], [1, 0]).data).toBeInstanceOf(Uint8Array);
    expect(makeTensor('i64', [1], [2 ** 40]).data).toBeInstanceOf(Float64Array);
    expect(Array.from(makeTensor('i64', [2], new BigInt64Array([-5n, 7n])).data)).toEqual([-5, 7]);
  });
});

describe.each(backends.filter((b) => b !== 'reference'))('%s: per-session caches are bounded', (backend) => {
  it('150 input shapes on one session keep at most maxCachedLowerings lowerings; dispose empties them', async () => {
    const s = await session((b) => {
      const x = b.input('x', 'f32', ['n']);
      b.output(b.op('exp', [b.op('neg', [x])]), 'y');
    }, backend);
    const ex = (s as unknown as { executor: Executor<unknown> }).executor;
    (ex as unknown as { maxLowerings: number }).maxLowerings = 20;
    for (let n = 1; n <= 150; n++) {
      const y = (await s.run({ x: makeTensor('f32', [n], new Float32Array(n).fill(1)) }))['y']!;
      expect(y.data[n - 1]).toBeCloseTo(Math.exp(-1), 6);
    }
    expect(ex.cacheStats().lowerings).toBeLessThanOrEqual(20);
    expect(ex.cacheStats().shapeResults).toBeLessThanOrEqual(16);
    s.dispose();
    expect(ex.cacheStats()).toEqual({ lowerings: 0, shapeResults: 0 });
  });
});

describe.each(backends)('%s: device-side bounds are typed errors naming the node', (backend) => {
  it('a token id past the embedding (and one below -rows) raises, a negative one in range wraps', async () => {
    const s = await session(embedding, backend);
    const ok = (await s.run({ ids: makeTensor('i64', [3], [-1, 0, 3]) }))['y']!;
    expect(Array.from(ok.data)).toEqual([6, 7, 0, 1, 6, 7]);
    await expectKilnError(s.run({ ids: makeTensor('i64', [3], [0, 4, 1]) }), 'runtime', 'gather');
    await expectKilnError(s.run({ ids: makeTensor('i64', [3], [0, -5, 1]) }), 'runtime', 'gather');
    // the session still works afterwards, and the flag does not stick
    const again = (await s.run({ ids: makeTensor('i64', [3], [2, 2, 2]) }))['y']!;
    expect(Array.from(again.data)).toEqual([4, 5, 4, 5, 4, 5]);
  });

  it('gather_elements and gather_nd check their indices too', async () => {
    const s = await session((b) => {
      const x = b.weight('x', makeTensor('f32', [2, 2], [1, 2, 3, 4]));
      const i = b.input('i', 'i64', [2, 2]);
      b.output(b.op('gather_elements', [x, i], { axis: 1 }), 'ge');
      b.output(b.op('gather_nd', [x, i]), 'gn');
    }, backend);
    const ok = await s.run({ i: makeTensor('i64', [2, 2], [1, 0, 0, 1]) });
    expect(Array.from(ok['ge']!.data)).toEqual([2, 1, 3, 4]);
    expect(Array.from(ok['gn']!.data)).toEqual([3, 2]);
    await expectKilnError(s.run({ i: makeTensor('i64', [2, 2], [1, 0, 2, 1]) }), 'runtime', 'gather');
  });
});

describe.each(backends)('%s: positions past the cache', (backend) => {
  it('device-computed position ids past the rotary cache raise, naming the node', async () => {
    const s = await session((b) => {
      const x = b.input('x', 'f32', [1, 1, 2, 4]);
      const p = b.input('p', 'i64', [1, 2]);
      const cos = b.weight('cos', makeTensor('f32', [3, 2], [1, 1, 1, 1, 1, 1]));
      const sin = b.weight('sin', makeTensor('f32', [3, 2], [0, 0, 0, 0, 0, 0]));
      // p + 0 runs on the device, so the rotary kernel sees positions the host never did
      const pos = b.op('add', [p, b.const('i64', [0], [])]);
      b.output(b.op('rotary_embedding', [x, cos, sin, pos]), 'y');
    }, backend);
    const x = makeTensor('f32', [1, 1, 2, 4], [1, 2, 3, 4, 5, 6, 7, 8]);
    const ok = (await s.run({ x, p: makeTensor('i64', [1, 2], [0, 2]) }))['y']!;
    expect(Array.from(ok.data)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]); // cos 1, sin 0: identity
    await expectKilnError(s.run({ x, p: makeTensor('i64', [1, 2], [0, 3]) }), 'runtime', 'rotary_embedding');
  });
});

describe.each(backends)('%s: 64-bit integer results never wrap', (backend) => {
  it('i64 add / sub / mul / neg / sum past 32 bits: the reference computes them, devices raise', async () => {
    const s = await session((b) => {
      const x = b.input('x', 'i64', [2]);
      const y = b.input('y', 'i64', [2]);
      b.output(b.op('add', [x, y]), 'add');
      b.output(b.op('sub', [x, y]), 'sub');
      b.output(b.op('mul', [x, y]), 'mul');
      b.output(b.op('neg', [x]), 'neg');
      b.output(b.op('sum', [x, y, x]), 'sum');
    }, backend);
    const i64 = (v: number[]) => makeTensor('i64', [2], v);
    const small = await s.run({ x: i64([-7, 40000]), y: i64([3, -50000]) });
    expect(Array.from(small['add']!.data)).toEqual([-4, -10000]);
    expect(Array.from(small['sub']!.data)).toEqual([-10, 90000]);
    expect(Array.from(small['mul']!.data)).toEqual([-21, -2000000000]);
    expect(Array.from(small['neg']!.data)).toEqual([7, -40000]);
    expect(Array.from(small['sum']!.data)).toEqual([-11, 30000]);
    const big: [number[], number[]][] = [
      [
        [70000, 0],
        [70000, 0],
      ], // mul → 4.9e9
      [
        [2 ** 31 - 1, 0],
        [1, 0],
      ], // add → 2^31
      [
        [-(2 ** 31), 0],
        [1, 0],
      ], // sub, neg → past -2^31 / 2^31
    ];
    for (const [xv, yv] of big) {
      const run = s.run({ x: i64(xv), y: i64(yv) });
      if (backend === 'reference') {
        const out = await run;
        expect(out['mul']!.data[0]).toBe(xv[0]! * yv[0]!);
        expect(out['add']!.data[0]).toBe(xv[0]! + yv[0]!);
      } else await expectKilnError(run, 'runtime', '32-bit');
    }
  });

  it('a float cast to i64 past 32 bits raises on the devices', async () => {
    const s = await session((b) => b.output(b.op('cast', [b.input('x', 'f32', [2])], { to: 'i64' }), 'y'), backend);
    const ok = (await s.run({ x: makeTensor('f32', [2], [-3.7, 2 ** 30]) }))['y']!;
    expect(Array.from(ok.data)).toEqual([-3, 2 ** 30]);
    const run = s.run({ x: makeTensor('f32', [2], [1, 2 ** 33]) });
    if (backend === 'reference') expect((await run)['y']!.data[1]).toBe(2 ** 33);
    else await expectKilnError(run, 'runtime', '32-bit');
  });
});
